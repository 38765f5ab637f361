"""Torch twins of the Gaussian window verifiers (fastpath/torch_cuda/gaussian.py) against
reference/gaussian.py, row by row on the same noise.

Rule ``allclose_vs_naive`` (tests/TOLERANCES.md, "torch / Triton fast path"): decisions
(tau, bonus, corrected, fallbacks) equal; states allclose rtol = atol = 1e-9 (the
residual quantile is bisected to ~1e-13 in S and dot products sum in another order);
log-survivals rtol 1e-12, residual masses rtol 1e-10.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from specoracle.fastpath.torch_cuda import gaussian as tg
from specoracle.reference import gaussian as g
from specoracle.reference.types import InvalidInput


def _window(rng, b, big_l, d, spread=(0.01, 0.3, 2.0), bonus=True):
    m_q = rng.normal(size=(b, big_l, d))
    m_p = m_q + rng.normal(size=(b, big_l, d)) * rng.choice(spread, size=(b, 1, 1))
    if bonus:
        m_p = np.concatenate([m_p, rng.normal(size=(b, 1, d))], 1)
    s = rng.uniform(0.5, 1.5, size=(b, m_p.shape[1]))
    return (m_p, m_q, s, rng.normal(size=(b, big_l, d)), rng.random((b, big_l)), rng.random(b),
            rng.normal(size=(b, d)))


def _check(out, args, n, name, kw):
    m_p, m_q, s, z, eta, u_res, z_orth = args
    extra = m_p.shape[1] - m_q.shape[1]
    for b in range(len(n)):
        k = int(n[b])
        want = getattr(g, name)(m_p[b, : k + extra], m_q[b, :k], s[b, : k + extra], z[b, :k], eta[b, :k],
                                u_res[b], z_orth[b], **kw)
        got = out.verdict(b)
        assert (got.n_accepted, got.bonus, got.corrected, got.fallbacks) == \
            (want.n_accepted, want.bonus, want.corrected, want.fallbacks), (b, got, want)
        np.testing.assert_allclose(got.states, want.states, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(got.log_ratio, want.log_ratio, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got.log_survival, want.log_survival, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got.residual_mass, want.residual_mass, rtol=1e-10, atol=0)


@pytest.mark.parametrize("name,kw", [("verify_gaussian_block", {}), ("verify_gaussian_chain", {}),
                                     ("verify_gaussian_chain", {"coupling": "reflection"}),
                                     ("verify_gaussian_chain", {"reuse_orth": True})],
                         ids=["block", "chain-gamma", "chain-reflection", "chain-reuse-orth"])
@pytest.mark.parametrize("bonus", [True, False])
def test_matches_reference(name, kw, bonus):
    rng = np.random.default_rng(42 + bonus)
    args = _window(rng, 48, 5, 3, bonus=bonus)
    n = rng.integers(1, 6, size=48)
    out = getattr(tg, name)(*args, lengths=n, **kw)
    _check(out, args, n, name, kw)


def test_block_accepts_more_than_chain_and_tiny_survivals():
    """Small offsets (long accepted runs, p_i near 1) and large ones (p_i tiny: the
    quadrature branch of the residual mass) in one batch."""
    rng = np.random.default_rng(7)
    args = _window(rng, 64, 8, 4, spread=(0.02, 1.0, 6.0))
    n = np.full(64, 8)
    out = tg.verify_gaussian_block(*args)
    _check(out, args, n, "verify_gaussian_block", {})
    chain = tg.verify_gaussian_chain(*args)
    assert int(out.n_accepted.sum()) >= int(chain.n_accepted.sum())


def test_float32_inputs_and_rng_wrapper():
    rng = np.random.default_rng(3)
    m_p, m_q, s, z, *_ = _window(rng, 8, 3, 5)
    out = tg.verify_gaussian_block_rng(torch.tensor(m_p, dtype=torch.float32),
                                       torch.tensor(m_q, dtype=torch.float32), torch.tensor(s), torch.tensor(z),
                                       np.random.default_rng(5))
    r = np.random.default_rng(5)
    eta, u_res, z_orth = r.random((8, 3)), r.random(8), r.standard_normal((8, 5))
    m_p32 = torch.tensor(m_p, dtype=torch.float32).double().numpy()
    m_q32 = torch.tensor(m_q, dtype=torch.float32).double().numpy()
    _check(out, (m_p32, m_q32, s, z, eta, u_res, z_orth), np.full(8, 3), "verify_gaussian_block", {})


def test_bad_inputs():
    rng = np.random.default_rng(1)
    args = list(_window(rng, 2, 3, 2))
    with pytest.raises(InvalidInput, match="eta"):
        tg.verify_gaussian_block(*args[:4], np.ones((2, 3)), *args[5:])
    with pytest.raises(InvalidInput, match="s"):
        tg.verify_gaussian_block(args[0], args[1], -1.0, *args[3:])
    with pytest.raises(InvalidInput, match="lengths"):
        tg.verify_gaussian_block(*args, lengths=[0, 3])
    with pytest.raises(InvalidInput, match="coupling"):
        tg.verify_gaussian_chain(*args, coupling="nope")


@pytest.mark.parametrize("coupling", ["gamma", "reflection"])
def test_single_step_couplings(coupling):
    rng = np.random.default_rng(13)
    b, d = 32, 3
    m_q = rng.normal(size=(b, d))
    m_p = m_q + rng.normal(size=(b, d)) * rng.choice([0.1, 1.0, 3.0], size=(b, 1))
    s, z, u = rng.uniform(0.5, 2, size=b), rng.normal(size=(b, d)), rng.random(b)
    u_res, z_orth = rng.random(b), rng.normal(size=(b, d))
    if coupling == "gamma":
        out = tg.gamma_coupling(m_p, m_q, s, z, u, u_res, z_orth)
    else:
        out = tg.reflection_coupling(m_p, m_q, s, z, u)
    for i in range(b):
        if coupling == "gamma":
            want = g.gamma_coupling(m_p[i], m_q[i], s[i], z[i], u[i], u_res[i], z_orth[i])
        else:
            want = g.reflection_coupling(m_p[i], m_q[i], s[i], z[i], u[i])
        got = out.verdict(i)
        assert (got.accepted, got.fallbacks) == (want.accepted, want.fallbacks)
        np.testing.assert_allclose(got.x, want.x, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(got.draft, want.draft, rtol=1e-12, atol=1e-12)
        assert got.log_ratio == pytest.approx(want.log_ratio, rel=1e-12, abs=1e-12)
