"""Shared helpers of the torch / Triton fast-path tests (tests/test_torch_*.py).

``compare_batch`` runs the oracle on every row slice and compares with a batched
result under the rule of tests/TOLERANCES.md ("torch / Triton fast path"):
``tol = 0`` is the ``exact`` rule (every decision compared); ``tol > 0`` is
``decisions_with_margin``: a row that differs is excluded only if the oracle's
smallest decision margin on it (fastpath/ops/parity.py chain_margin / block_margin) is
<= tol, and the excluded fraction must stay <= 2 %.
"""
from __future__ import annotations

import numpy as np

from specoracle.fastpath.ops.parity import block_margin, chain_margin
from specoracle.fastpath.types import PAD_ID, STATUS_OK
from specoracle.reference import categorical as ref
from specoracle.reference.types import InvalidInput

MAX_EXCLUDED = 0.02


def dirichlet(rng, alpha, shape):
    g = rng.gamma(alpha, size=shape)
    g[..., 0] += g.sum(-1) == 0
    return g / g.sum(-1, keepdims=True)


def random_batch(rng, b, k, v, *, ragged=True, alpha=0.3, mix=0.5):
    """p [B, K+1, V], q [B, K, V] (q = mix of p and noise), draft, u, num_draft (float64)."""
    p = dirichlet(rng, alpha, (b, k + 1, v))
    q = (1 - mix) * p[:, :k] + mix * dirichlet(rng, alpha, (b, k, v))
    q /= q.sum(-1, keepdims=True)
    c = np.cumsum(q, -1)
    r = rng.random((b, k))[..., None] * c[..., -1:]
    draft = np.argmax(c > r, axis=-1).astype(np.int64)
    n = rng.integers(0, k + 1, size=b) if ragged else np.full(b, k)
    for i in range(b):
        draft[i, n[i]:] = PAD_ID
    return p, q, draft, rng.random((b, k + 1)), n.astype(np.int64)


def row(p, q, draft, u, n, b):
    m = int(n[b])
    return (np.asarray(p[b, : m + 1], np.float64), np.asarray(q[b, :m], np.float64),
            np.asarray(draft[b, :m]), np.asarray(u[b, : m + 1], np.float64))


def compare_batch(out, p, q, draft, u, n, kind="chain", tol=0.0):
    """Compare a batched verdict with the oracle row by row; returns (compared, excluded)."""
    fn = {"chain": ref.verify_chain, "block": ref.verify_block}[kind]
    margin_fn = {"chain": chain_margin, "block": block_margin}[kind]
    compared = excluded = 0
    for b in range(len(n)):
        args = row(p, q, draft, u, n, b)
        try:
            want = fn(*args)
        except InvalidInput:
            assert int(out.status[b]) != STATUS_OK, f"row {b}: oracle rejects, status OK"
            continue
        assert int(out.status[b]) == STATUS_OK, f"row {b}: status {int(out.status[b])}"
        got = out.verdict(b)
        if tol == 0:
            assert got == want, f"row {b}: got {got}, oracle {want}"
        elif (got.n_accepted, got.tokens, got.bonus) != (want.n_accepted, want.tokens, want.bonus):
            m = margin_fn(*args, want)
            assert m <= tol, f"row {b}: got {got}, oracle {want}, margin {m:.3g} > {tol:.3g}"
            excluded += 1
            continue
        compared += 1
    assert excluded <= MAX_EXCLUDED * max(compared + excluded, 1) + 1, (compared, excluded)
    return compared, excluded
