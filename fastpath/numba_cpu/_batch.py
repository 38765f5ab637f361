"""Input checks and output allocation shared by the numba CPU wrappers.

The kernels themselves cannot raise: they set a per-row status
(``fastpath.types.STATUS_*``). Everything that is cheap to check on the whole
batch (shapes, dtypes, the uniforms lying in [0, 1), ``num_draft`` in 0..K) is
checked here, in Python, before the kernel runs; the per-row checks that need
the probability rows (draft ids in range, q(x) > 0 for drafted tokens,
non-finite values in rows that are read) are the kernel's statuses; the
kernels share :func:`checked_length` and :func:`length_if_ok` for a row's length and
status.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from specoracle.reference.types import InvalidInput

from ..types import (PAD_ID, STATUS_BAD_LENGTH, STATUS_DRAFT_OUT_OF_RANGE, STATUS_DRAFT_ZERO_Q,
                     STATUS_MESSAGES, STATUS_NONFINITE, STATUS_OK, BatchVerdict)

#: which argument a status code blames when the wrapper raises
STATUS_ARGUMENT = {STATUS_DRAFT_OUT_OF_RANGE: "draft", STATUS_DRAFT_ZERO_Q: "draft",
                   STATUS_NONFINITE: "p", STATUS_BAD_LENGTH: "num_draft"}


@nb.njit(cache=True)
def checked_length(num, b, nmax, status):
    """Row b's length num[b], or -1 after writing status[b] = STATUS_BAD_LENGTH when it
    lies outside 0..nmax (called from the kernels, one row per call)."""
    n = num[b]
    if n < 0 or n > nmax:
        status[b] = STATUS_BAD_LENGTH
        return -1
    return n


@nb.njit(cache=True)
def length_if_ok(n, st, b, status):
    """n when the row's check status ``st`` is 0, else -1 after writing status[b] = st."""
    if st != 0:
        status[b] = st
        return -1
    return n


def as_prob_batch(x, name: str, ndim: int = 3) -> np.ndarray:
    """C-contiguous float64 or float32 array (float32 is kept: it halves the bytes read;
    the kernels promote every value to float64 on read)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise InvalidInput(name, f"expected a numeric array, got dtype {arr.dtype}")
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64, copy=False)
    if arr.ndim != ndim:
        raise InvalidInput(name, f"expected {ndim} dimensions, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def common_float(p: np.ndarray, q: np.ndarray):
    """p and q in one dtype (float32 only if both are float32)."""
    if p.dtype != q.dtype:
        return p.astype(np.float64), q.astype(np.float64)
    return p, q


def as_draft_batch(draft, b: int, k: int) -> np.ndarray:
    arr = np.asarray(draft)
    if arr.size == 0 and b * k == 0:
        return np.zeros((b, k), dtype=np.int64)
    if arr.ndim != 2 or arr.shape != (b, k):
        raise InvalidInput("draft", f"expected shape {(b, k)}, got {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InvalidInput("draft", f"token ids must be integers, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def as_target_and_draft(p, draft, rows: str):
    """p as a probability batch [B, X+1, V] with X+1 >= 1 and V >= 1 (X is ``rows``, "K"
    or "N", in the message) and the drafted ids [B, X] (:func:`as_draft_batch`).
    Returns (p, draft, B, X)."""
    p = as_prob_batch(p, "p")
    bsz, x1, v = p.shape
    if x1 < 1 or v < 1:
        raise InvalidInput("p", f"expected [B, {rows}+1, V] with {rows}+1 >= 1 and V >= 1, got shape {p.shape}")
    return p, as_draft_batch(draft, bsz, x1 - 1), bsz, x1 - 1

def as_num_draft(num_draft, b: int, k: int) -> np.ndarray:
    if num_draft is None:
        return np.full(b, k, dtype=np.int64)
    arr = np.asarray(num_draft)
    if arr.shape != (b,):
        raise InvalidInput("num_draft", f"expected shape {(b,)}, got {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise InvalidInput("num_draft", f"expected integers, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def as_uniform_batch(u, b: int, k: int) -> np.ndarray:
    arr = np.asarray(u, dtype=np.float64)
    if arr.shape != (b, k + 1):
        raise InvalidInput("u", f"expected shape {(b, k + 1)}, got {arr.shape}")
    bad = ~((arr >= 0) & (arr < 1))
    if bad.any():
        raise InvalidInput("u", "uniforms must lie in [0, 1)", index=tuple(np.argwhere(bad)[0]))
    return np.ascontiguousarray(arr)


def check_pq_shapes(p: np.ndarray, q: np.ndarray) -> tuple[int, int, int]:
    """Returns (B, K, V) from p [B, K+1, V] and q [B, K, V]."""
    b, k1, v = p.shape
    if k1 < 1:
        raise InvalidInput("p", f"needs K+1 >= 1 target rows, got shape {p.shape}")
    if v < 1:
        raise InvalidInput("p", "empty vocabulary (last axis has size 0)")
    if q.shape != (b, k1 - 1, v):
        raise InvalidInput("q", f"expected shape {(b, k1 - 1, v)} (one row fewer than p), got {q.shape}")
    return b, k1 - 1, v


def alloc_outputs(b: int, k: int):
    """n_accepted [B], tokens [B, K+1] (PAD_ID), bonus [B], status [B], fallbacks [B]."""
    return (np.zeros(b, np.int64), np.full((b, k + 1), PAD_ID, np.int64), np.zeros(b, np.bool_),
            np.zeros(b, np.int32), np.zeros(b, np.int32))


def finish(outputs, raise_on_error: bool, paths=None) -> BatchVerdict:
    n_acc, tokens, bonus, status, fallbacks = outputs
    bv = BatchVerdict(n_acc, tokens, bonus, status, fallbacks, paths)
    if raise_on_error:
        bad = np.flatnonzero(status != STATUS_OK)
        if bad.size:
            row = int(bad[0])
            code = int(status[row])
            raise InvalidInput(STATUS_ARGUMENT.get(code, "p"), STATUS_MESSAGES.get(code, f"status {code}"),
                               index=row)
    return bv
