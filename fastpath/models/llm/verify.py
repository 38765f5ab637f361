"""Batched verification and draft sampling for the decoding engine.

Backends (``backend=``):
    "numba"     the batched numba twins (specoracle.fastpath.numba_cpu.categorical), default
    "reference" the float64 oracle (specoracle.reference.categorical), row by row: slower,
                validates every row; the checked fallback (the two agree decision by decision
                on the same noise: tests/test_llm_engine.py)

Shapes (B rows, K drafted tokens, V vocabulary):
    p [B, K+1, V] float64, q [B, K, V] float64, draft [B, K] int64, u [B, K+1] in [0, 1)
    -> list of B reference Verdicts (method "greedy" ignores q and u).

Draft sampling (:func:`sample_rows`) is the reference's inverse-CDF primitive
(``reference.categorical.sample_categorical``) vectorised: the smallest i with
``u * total < w_0 + ... + w_i`` where sums accumulate left to right (``np.cumsum``, so the
same float64 additions in the same order) and ``total`` is the last cumulative sum.
"""
from __future__ import annotations

import numpy as np

from specoracle.reference import categorical as ref

METHODS = ("chain", "block", "greedy")
BACKENDS = ("numba", "reference")


def numba_available() -> bool:
    try:
        from specoracle.fastpath.numba_cpu import categorical  # noqa: F401
    except Exception:  # pragma: no cover - the numba helper's module absent or broken
        return False
    return True


def verify(method: str, p, q, draft, u, backend: str = "numba") -> list:
    """Verify B rows; returns the list of B :class:`~specoracle.reference.types.Verdict`."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if backend == "numba" and numba_available():
        from specoracle.fastpath.numba_cpu import categorical as nbc
        if method == "greedy":
            bv = nbc.verify_greedy(p, draft)
        elif method == "chain":
            bv = nbc.verify_chain(p, q, draft, u)
        else:
            bv = nbc.verify_block(p, q, draft, u)
        return [bv.verdict(b) for b in range(len(bv))]
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    out = []
    for b in range(p.shape[0]):
        if method == "greedy":
            out.append(ref.verify_greedy(p[b], draft[b]))
        elif method == "chain":
            out.append(ref.verify_chain(p[b], q[b], draft[b], u[b]))
        else:
            out.append(ref.verify_block(p[b], q[b], draft[b], u[b]))
    return out


def sample_rows(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws from each row of ``probs`` [B, V] with uniforms ``u`` [B] -> [B] int64."""
    csum = np.cumsum(probs, axis=-1)
    thr = u * csum[:, -1]
    out = np.empty(probs.shape[0], dtype=np.int64)
    for b in range(probs.shape[0]):
        i = int(np.searchsorted(csum[b], thr[b], side="right"))
        if i >= probs.shape[1]:  # cdf_rounding: the last category of positive weight
            i = int(np.flatnonzero(probs[b] > 0)[-1])
        out[b] = i
    return out
