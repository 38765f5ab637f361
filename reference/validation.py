"""Input validation shared by the oracle (DESIGN.md, principle 6).

Probabilities may be given as floats (converted to float64) or as
``fractions.Fraction`` (kept as an object array, so that the proofs can run the
oracle in exact rational arithmetic). Tolerance for a row to sum to 1 in floating
point: ``ROW_SUM_ATOL = 1e-5`` (absolute): loose enough for rows that were
normalised in float32 upstream (relative error ~1e-7 per entry, summed over up
to ~10^5 entries), tight enough to catch an unnormalised or truncated row.
Fraction rows must sum to exactly 1.
"""
from __future__ import annotations

from fractions import Fraction
from numbers import Integral, Real

import numpy as np

from .types import InvalidInput

ROW_SUM_ATOL = 1e-5


def is_exact(a) -> bool:
    """True if ``a`` holds Python objects (Fractions, traced noise) instead of floats."""
    return isinstance(a, np.ndarray) and a.dtype == object


def as_probs(x, name: str, ndim: int, normalised: bool = True) -> np.ndarray:
    """Return ``x`` as a float64 (or exact object) array of probabilities.

    Checks: the number of dimensions, finiteness, non-negativity and (if
    ``normalised``) that every row along the last axis sums to 1.
    """
    arr = np.asarray(x)
    src_dtype = arr.dtype
    exact = arr.dtype == object or any(isinstance(v, Fraction) for v in arr.flat[:1])
    if exact:
        arr = np.asarray(x, dtype=object)
    else:
        if arr.dtype.kind not in "fiub":
            raise InvalidInput(name, f"expected a numeric array, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
    if arr.ndim != ndim:
        raise InvalidInput(name, f"expected {ndim} dimensions, got shape {arr.shape}")
    if arr.shape[-1] == 0:
        raise InvalidInput(name, "empty vocabulary (last axis has size 0)")
    if not exact:
        bad = ~np.isfinite(arr)
        if bad.any():
            raise InvalidInput(name, "NaN or infinite value", index=tuple(np.argwhere(bad)[0]))
        neg = arr < 0
        if neg.any():
            raise InvalidInput(name, "negative probability", index=tuple(np.argwhere(neg)[0]))
        if normalised:
            sums = arr.sum(axis=-1)
            off = np.abs(sums - 1.0) > ROW_SUM_ATOL
            if off.any():
                where = tuple(np.argwhere(off)[0]) if off.ndim else None
                val = sums[where] if where else sums
                raise InvalidInput(name, f"row sums to {float(val):.9g}, not 1 "
                                   f"{_tolerance_note(src_dtype)}", index=where)
    else:
        for idx in np.ndindex(arr.shape):
            v = arr[idx]
            if not isinstance(v, (Fraction, Integral)):
                raise InvalidInput(name, f"exact arrays must hold Fractions, got {type(v).__name__}",
                                   index=idx)
            if v < 0:
                raise InvalidInput(name, "negative probability", index=idx)
        if normalised:
            for idx in np.ndindex(arr.shape[:-1]):
                s = sum(arr[idx], Fraction(0))
                if s != 1:
                    raise InvalidInput(name, f"row sums to {s}, not 1", index=idx or None)
    return arr


def _tolerance_note(dtype) -> str:
    """The tolerance used and the input dtype, with a hint when the dtype cannot meet it."""
    note = f"(tolerance {ROW_SUM_ATOL}, input dtype {dtype}"
    if dtype.kind == "f" and np.finfo(dtype).eps > ROW_SUM_ATOL:
        note += (f": {dtype} rounds each entry by up to {np.finfo(dtype).eps / 2:.3g}, "
                 "normalise in float32 or float64 before passing")
    return note + ")"


def as_tokens(x, name: str, vocab: int, length: int | None = None) -> np.ndarray:
    """Return ``x`` as a 1-D int64 array of token ids in ``[0, vocab)``."""
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise InvalidInput(name, f"expected a 1-D sequence of token ids, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InvalidInput(name, f"token ids must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if length is not None and arr.shape[0] != length:
        raise InvalidInput(name, f"expected {length} token ids, got {arr.shape[0]}")
    for i, t in enumerate(arr):
        if t < 0 or t >= vocab:
            raise InvalidInput(name, f"token id {int(t)} outside the vocabulary [0, {vocab})", index=i)
    return arr


def as_uniforms(x, name: str, length: int) -> np.ndarray:
    """Return the uniform noise ``x`` (values in [0, 1)) as a 1-D array of ``length``.

    Object arrays (Fractions or the proofs' traced uniforms) are passed through
    without range checks: comparing a traced uniform would fork the proof.
    """
    arr = np.asarray(x)
    if arr.dtype != object:
        arr = arr.astype(np.float64)
    if arr.ndim != 1 or arr.shape[0] != length:
        raise InvalidInput(name, f"expected {length} uniforms, got shape {arr.shape}")
    if arr.dtype != object:
        bad = ~((arr >= 0) & (arr < 1))
        if bad.any():
            raise InvalidInput(name, "uniforms must lie in [0, 1)", index=int(np.argmax(bad)))
    return arr


def check_uniform(u, name: str):
    """A scalar uniform must lie in [0, 1) (NaN rejected). Non-numeric ``u`` (the proofs'
    traced uniforms) passes unchecked: comparing it would fork the proof."""
    if isinstance(u, Real) and not 0 <= u < 1:
        raise InvalidInput(name, f"uniform must lie in [0, 1), got {u!r}")
    return u


def check_same_vocab(p: np.ndarray, q: np.ndarray, pname: str = "p", qname: str = "q") -> None:
    if p.shape[-1] != q.shape[-1]:
        raise InvalidInput(qname, f"vocabulary size {q.shape[-1]} differs from {pname}'s {p.shape[-1]}")


def check_generator(rng, name: str = "rng") -> None:
    if not isinstance(rng, np.random.Generator):
        raise InvalidInput(name, f"expected a numpy.random.Generator, got {type(rng).__name__}")
