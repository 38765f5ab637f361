"""Batched ragged window verification (fastpath/models/diffusion/verify.py) against the
oracle (reference/gaussian.py) row by row: identical decisions, states within the residual
quantile's solver tolerance (tests/TOLERANCES.md, section "diffusion models")."""
from __future__ import annotations

import numpy as np
import pytest

from specoracle.fastpath.models.diffusion.verify import log_residual_mass, verify_windows
from specoracle.reference import gaussian as ref
from specoracle.reference.types import InvalidInput

STATE_ATOL = 1e-9   # residual quantile: bisection here vs brentq (xtol 1e-13) there


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
    args = _window_batch(rng, B, L, D, [1e-7, 0.01, 0.3, 1.0, 3.0])  # 1e-7: scalar fallback path
    m_p, m_q, s, z, eta, u_res, z_orth, n = args
    res = verify_windows(*args, method=method, reuse_orth=reuse)
    for b in range(B):
        v = _reference_row(method, m_p[b], m_q[b], s[b], z[b], eta[b], u_res[b], z_orth[b], n[b], reuse)
        assert v.n_accepted == res.n_accepted[b], b
        assert v.n_emitted == res.n_emitted[b], b
        assert v.corrected == bool(res.corrected[b])
        np.testing.assert_allclose(res.states[b, :v.n_emitted], v.states, rtol=0, atol=STATE_ATOL)
        np.testing.assert_allclose(res.log_ratio[b, :n[b]], v.log_ratio, rtol=1e-12, atol=1e-12)
    assert np.all(np.isnan(res.states[np.arange(L)[None, :] >= res.n_emitted[:, None]]))


def test_residual_mass_and_scalar_routing():
    """Tiny offsets make the survival-form bracket cancel: those entries are flagged for the
    reference's cancellation-free path (exercised end to end by the 1e-7 rows above); the
    others equal the reference's R(c, delta)."""
    log_c = np.log(np.array([1.0, 0.5, 0.9, 0.3, 0.05]))
    delta = np.array([1e-8, 1e-8, 2e-7, 0.5, 2.0])
    lm, scalar = log_residual_mass(log_c, delta)
    assert scalar.tolist() == [False, True, True, False, False]
    for i in (0, 3, 4):
        np.testing.assert_allclose(np.exp(lm[i]), ref.residual_mass(np.exp(log_c[i]), delta[i]),
                                   rtol=1e-12)
    lm0, sc0 = log_residual_mass(np.array([0.0, -np.inf]), np.array([0.0, 1.0]))
    assert np.all(lm0 == -np.inf) and not sc0.any()     # empty residuals


def test_all_accepted_when_draft_equals_target(rng):
    args = list(_window_batch(rng, 50, 4, 2, [1.0]))
    args[0] = args[1].copy()          # m_p = m_q: every log-ratio is 0
    for method in ("block", "token", "reflection"):
        res = verify_windows(*args, method=method)
        assert np.array_equal(res.n_accepted, args[-1]) and not res.corrected.any()


def test_bad_input(rng):
    m_p, m_q, s, z, eta, u_res, z_orth, n = _window_batch(rng, 4, 3, 2, [1.0])
    with pytest.raises(InvalidInput, match="lengths"):
        verify_windows(m_p, m_q, s, z, eta, u_res, z_orth, np.array([0, 1, 2, 3]))
    with pytest.raises(InvalidInput, match="reuse_orth"):
        verify_windows(m_p, m_q, s, z, eta, u_res, z_orth, n, method="block", reuse_orth=True)
    with pytest.raises(InvalidInput, match="method"):
        verify_windows(m_p, m_q, s, z, eta, u_res, z_orth, n, method="greedy")
    with pytest.raises(InvalidInput, match="eta"):
        verify_windows(m_p, m_q, s, z, eta[:, :2], u_res, z_orth, n)
    bad_s = s.copy()
    bad_s[0, 0] = 0.0
    with pytest.raises(InvalidInput, match="s"):
        verify_windows(m_p, m_q, bad_s, z, eta, u_res, z_orth, n)
