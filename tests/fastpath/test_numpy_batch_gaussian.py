"""The batched NumPy twin of Gaussian window verification (fastpath/numpy_batch/gaussian.py)
against the oracle (reference/gaussian.py) row by row, on the inputs the parity registry's
cases do not reach: the rejected draft's own orthogonal noise (token ``reuse_orth``), offsets
down to delta = 1e-7 (the log tail's Gauss-Legendre branch), D = 17. Identical decisions,
states within the residual quantile's solver tolerance (tests/TOLERANCES.md, "Gaussian
batched twins"). The registry's parity test covers the four registered ops on its cases."""
from __future__ import annotations

import numpy as np
import pytest

from specoracle.fastpath.numpy_batch import gaussian as nbg
from specoracle.reference import gaussian as ref
from specoracle.reference.types import InvalidInput

STATE_ATOL = 1e-9   # residual quantile: 80-step bisection here vs brentq (xtol 1e-13) there


def _window_batch(rng, B, L, D, scales):
    scale = rng.choice(scales, size=(B, 1, 1))
    m_q = rng.standard_normal((B, L, D))
    m_p = m_q + scale * rng.standard_normal((B, L, D))
    s = rng.uniform(0.5, 1.5, (B, L))
    z = rng.standard_normal((B, L, D))
    eta = rng.random((B, L))
    u_res = rng.random(B)
    z_orth = rng.standard_normal((B, D))
    n = rng.integers(1, L + 1, B)
    return m_p, m_q, s, z, eta, u_res, z_orth, n


def _verify(method, args, reuse=False):
    *arrays, n = args
    if method == "block":
        return nbg.verify_gaussian_block(*arrays, lengths=n)
    coupling = "gamma" if method == "token" else "reflection"
    return nbg.verify_gaussian_chain(*arrays, coupling=coupling, reuse_orth=reuse, lengths=n)


def _reference_row(method, m_p, m_q, s, z, eta, u_res, z_orth, k, reuse):
    if method == "block":
        return ref.verify_gaussian_block(m_p[:k], m_q[:k], s[:k], z[:k], eta[:k], u_res, z_orth)
    coupling = "gamma" if method == "token" else "reflection"
    return ref.verify_gaussian_chain(m_p[:k], m_q[:k], s[:k], z[:k], eta[:k], u_res, z_orth,
                                     coupling=coupling, reuse_orth=reuse)


@pytest.mark.parametrize("method,reuse", [("block", False), ("token", False), ("token", True),
                                          ("reflection", False)])
@pytest.mark.parametrize("D", [1, 3, 17])
def test_rows_equal_reference(method, reuse, D, rng):
    B, L = 80, 5
    args = _window_batch(rng, B, L, D, [1e-7, 0.01, 0.3, 1.0, 3.0])  # 1e-7: quadrature branch
    m_p, m_q, s, z, eta, u_res, z_orth, n = args
    res = _verify(method, args, reuse)
    for b in range(B):
        v = _reference_row(method, m_p[b], m_q[b], s[b], z[b], eta[b], u_res[b], z_orth[b], n[b], reuse)
        got = res.verdict(b)
        assert (got.n_accepted, got.corrected, got.bonus) == (v.n_accepted, v.corrected, v.bonus), b
        assert res.n_emitted[b] == len(v.states)
        np.testing.assert_allclose(got.states, v.states, rtol=0, atol=STATE_ATOL)
        np.testing.assert_allclose(got.log_ratio, v.log_ratio, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got.log_survival, v.log_survival, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got.residual_mass, v.residual_mass, rtol=1e-12, atol=1e-300)
        assert got.fallbacks == v.fallbacks
    assert np.all(np.isnan(res.states[np.arange(L + 1)[None, :] >= res.n_emitted[:, None]]))


def test_tiny_offsets_use_the_oracles_quadrature():
    """log R(c, delta) for tiny delta (the survival bracket cancels: the reference's
    Gauss-Legendre branch) equals the scalar oracle; c = 1 and empty residuals too."""
    log_c = np.log(np.array([1.0, 0.5, 0.9, 0.3, 0.05]))
    delta = np.array([1e-8, 1e-8, 2e-7, 0.5, 2.0])
    lm = nbg.residual_log_mass(log_c, delta)
    for i in range(5):
        assert lm[i] == pytest.approx(ref.residual_log_mass(np.exp(log_c[i]), delta[i]), rel=1e-12)
    x, zero = nbg.residual_draw(np.zeros((2, 2)), np.array([[0.0, 0.0], [1.0, 0.0]]), np.ones(2),
                                np.array([0.0, 0.0]), np.array([0.5, 0.5]), np.ones((2, 2)))
    assert zero.tolist() == [True, False]       # delta = 0: the target draw m_p + s z_orth
    np.testing.assert_array_equal(x[0], [1.0, 1.0])


def test_all_accepted_when_draft_equals_target(rng):
    args = list(_window_batch(rng, 50, 4, 2, [1.0]))
    args[0] = args[1].copy()          # m_p = m_q: every log-ratio is 0
    for method in ("block", "token", "reflection"):
        res = _verify(method, args)
        assert np.array_equal(res.n_accepted, args[-1]) and not res.corrected.any()


def test_bonus_row(rng):
    """m_p with L + 1 rows: a fully accepted window emits the bonus m_p[n] + s_n z_orth."""
    m_p, m_q, s, z, eta, u_res, z_orth, n = _window_batch(rng, 30, 3, 2, [0.01])
    m_p1 = np.concatenate([m_p, rng.standard_normal((30, 1, 2))], axis=1)
    s1 = np.concatenate([s, np.full((30, 1), 0.7)], axis=1)
    full = np.full(30, 3)
    res = nbg.verify_gaussian_block(m_p1, m_q, s1, z, eta, u_res, z_orth, lengths=full)
    for b in range(30):
        v = ref.verify_gaussian_block(m_p1[b], m_q[b], s1[b], z[b], eta[b], u_res[b], z_orth[b])
        got = res.verdict(b)
        assert (got.n_accepted, got.bonus) == (v.n_accepted, v.bonus)
        np.testing.assert_allclose(got.states, v.states, rtol=0, atol=STATE_ATOL)
    assert res.bonus.any()


def test_bad_input(rng):
    m_p, m_q, s, z, eta, u_res, z_orth, n = _window_batch(rng, 4, 3, 2, [1.0])
    with pytest.raises(InvalidInput, match="lengths"):
        nbg.verify_gaussian_block(m_p, m_q, s, z, eta, u_res, z_orth, lengths=np.array([0, 1, 2, 3]))
    with pytest.raises(InvalidInput, match="coupling"):
        nbg.verify_gaussian_chain(m_p, m_q, s, z, eta, u_res, z_orth, coupling="greedy")
    with pytest.raises(InvalidInput, match="eta"):
        nbg.verify_gaussian_block(m_p, m_q, s, z, eta[:, :2], u_res, z_orth)
    with pytest.raises(InvalidInput, match="eta"):
        nbg.verify_gaussian_block(m_p, m_q, s, z, eta + 1.0, u_res, z_orth)
    bad_s = s.copy()
    bad_s[0, 0] = 0.0
    with pytest.raises(InvalidInput, match="s"):
        nbg.verify_gaussian_block(m_p, m_q, bad_s, z, eta, u_res, z_orth)
    bad_m = m_p.copy()
    bad_m[1, 2, 0] = np.nan
    with pytest.raises(InvalidInput, match=r"m_p\[1, 2, 0\]"):
        nbg.verify_gaussian_chain(bad_m, m_q, s, z, eta, u_res, z_orth)
