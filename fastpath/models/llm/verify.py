"""Batched verification and draft sampling for the decoding engine.

Backends (``backend=``):
    "numba"     the batched numba twins (specoracle.fastpath.numba_cpu.categorical), default
    "reference" the float64 oracle (specoracle.reference.categorical), row by row: slower,
                validates every row; the checked fallback (the two agree decision by decision
                on the same noise: tests/fastpath/models/llm/test_llm_engine.py)

Shapes (B rows, K drafted tokens, V vocabulary):
    p [B, K+1, V] float64, q [B, K, V] float64, draft [B, K] int64, u [B, K+1] in [0, 1)
    -> n_accepted [B] int64, tokens [B, K+1] int64 PAD_ID-padded (method "greedy" ignores
    q and u). Token ids stay int64 arrays from the draft draw to the engine's commit.

Draft sampling (:func:`sample_rows`) calls the backend's one home of the inverse-CDF draw
(``reference.categorical.sample_categorical`` batched): ``numba_cpu.categorical.
sample_categorical_rows`` or ``reference.categorical.sample_categorical_rows``; both give the
reference's ids (same sums in the same order).
"""
from __future__ import annotations

import numpy as np

from specoracle.reference import categorical as ref

from specoracle.fastpath.types import PAD_ID

METHODS = ("chain", "block", "greedy")
BACKENDS = ("numba", "reference")


def numba_available() -> bool:
    try:
        from specoracle.fastpath.numba_cpu import categorical  # noqa: F401
    except Exception:  # pragma: no cover - the numba helper's module absent or broken
        return False
    return True


def verify(method: str, p, q, draft, u, backend: str = "numba") -> tuple:
    """Verify B rows -> ``(n_accepted [B] int64, tokens [B, K+1] int64, PAD_ID-padded)``: the
    batched arrays of the numba twins, or the reference's B Verdicts written into the same
    arrays (each row's Verdict is the oracle's result; the engine reads the arrays)."""
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
        return bv.n_accepted, bv.tokens
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    n_acc = np.zeros(p.shape[0], np.int64)
    tokens = np.full((p.shape[0], p.shape[1]), PAD_ID, np.int64)
    for b in range(p.shape[0]):
        if method == "greedy":
            v = ref.verify_greedy(p[b], draft[b])
        elif method == "chain":
            v = ref.verify_chain(p[b], q[b], draft[b], u[b])
        else:
            v = ref.verify_block(p[b], q[b], draft[b], u[b])
        n_acc[b] = v.n_accepted
        tokens[b, :len(v.tokens)] = v.tokens
    return n_acc, tokens


def sample_rows(probs: np.ndarray, u: np.ndarray, backend: str = "numba") -> np.ndarray:
    """Inverse-CDF draws from each row of ``probs`` [B, V] with uniforms ``u`` [B] -> [B] int64,
    by the ``backend``'s home of the draw (identical ids on both backends)."""
    if backend == "numba" and numba_available():
        from specoracle.fastpath.numba_cpu.categorical import sample_categorical_rows
    elif backend in BACKENDS:
        sample_categorical_rows = ref.sample_categorical_rows
    else:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return sample_categorical_rows(probs, u)[0]
