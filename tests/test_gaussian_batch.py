"""The vectorised twins (reference/gaussian_batch.py) and the batched diffusion loop
make the same decisions as the one-row oracle (reference/gaussian.py) on the same
noise: tau equal, emitted states equal to 1e-9 (bisection vs Brent in the residual)."""
from __future__ import annotations

import numpy as np
import pytest

from specoracle.reference import diffusion as df
from specoracle.reference import gaussian as g
from specoracle.reference import gaussian_batch as gb


def _random_windows(rng, n, big_l, d, scale):
    m_q = rng.standard_normal((n, big_l, d))
    m_p = m_q + scale * rng.standard_normal((n, big_l, d)) * rng.random((n, 1, 1))
    s = 0.3 + rng.random((n, big_l))
    z = rng.standard_normal((n, big_l, d))
    eta = rng.random((n, big_l))
    u_res = rng.random(n)
    z_orth = rng.standard_normal((n, d))
    lengths = rng.integers(1, big_l + 1, size=n)
    return m_p, m_q, s, z, eta, u_res, z_orth, lengths


@pytest.mark.parametrize("verify", ["block", "token", "reflection"])
@pytest.mark.parametrize("scale", [0.05, 0.5, 2.0])
def test_batch_decisions_equal_reference(verify, scale):
    rng = np.random.default_rng(int(scale * 100) + len(verify))
    n, big_l, d = 300, 4, 3
    m_p, m_q, s, z, eta, u_res, z_orth, lengths = _random_windows(rng, n, big_l, d, scale)
    ell, delta = gb.log_ratios(m_p, m_q, s, z)
    if verify == "block":
        tau, log_p, mass = gb.block_tau(ell, delta, lengths, eta)
        log_c = log_p[np.arange(n), tau]
    else:
        tau = gb.token_tau(ell, lengths, eta)
        log_c = np.zeros(n)
    corr = np.flatnonzero(tau < lengths)
    ys, _ = df._correction(verify, m_p[corr, tau[corr]], m_q[corr, tau[corr]], s[corr, tau[corr]],
                           z[corr, tau[corr]], log_c[corr], u_res[corr], z_orth[corr], False)
    y_of = dict(zip(corr.tolist(), ys))
    for b in range(n):
        k = lengths[b]
        args = (m_p[b, :k], m_q[b, :k], s[b, :k], z[b, :k], eta[b, :k], u_res[b], z_orth[b])
        if verify == "block":
            ref = g.verify_gaussian_block(*args)
            np.testing.assert_allclose(log_p[b, :k + 1], ref.log_survival, rtol=0, atol=1e-12)
            np.testing.assert_allclose(mass[b, 1:k], ref.residual_mass[1:k], rtol=1e-12, atol=1e-300)
        else:
            coupling = "reflection" if verify == "reflection" else "gamma"
            ref = g.verify_gaussian_chain(*args, coupling=coupling)
        assert ref.n_accepted == tau[b]
        if tau[b] < k:
            np.testing.assert_allclose(y_of[b], ref.states[-1], rtol=1e-9, atol=1e-9)


def test_batch_quantile_equals_brent():
    rng = np.random.default_rng(3)
    n = 400
    delta = 10 ** rng.uniform(-6, 1, n)
    log_c = np.where(rng.random(n) < 0.3, 0.0, -rng.exponential(3.0, n))
    keep = delta / 2 - log_c / delta < 30
    delta, log_c = delta[keep], log_c[keep]
    u = rng.random(delta.size)
    got = gb.residual_quantile(u, log_c, delta)
    want = np.array([g._quantile_log(float(a), float(b), float(c)) for a, b, c in zip(u, log_c, delta)])
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-10)


def test_loop_first_round_equals_reference_block():
    """One window of the batched loop on a 2-D linear chain (K = L = 3, independent
    draft) against the one-row oracle replayed on the same noise stream."""
    a_p = np.array([[0.9, 0.2], [-0.1, 0.8]])
    a_q = np.array([[0.8, 0.0], [0.0, 0.8]])
    b_p = np.array([0.3, -0.2])

    def m_p_fn(k, x):
        return x @ a_p.T + b_p

    def m_q_fn(k, x):
        return x @ a_q.T
    sig = np.full(3, 0.6)
    big_b, d = 200, 2
    x0 = np.random.default_rng(0).standard_normal((big_b, d))
    res = df.speculative_sample_chain(m_p_fn, m_q_fn, sig, x0, np.random.default_rng(9),
                                      window=3, verify="block")
    rng = np.random.default_rng(9)
    z = rng.standard_normal((big_b, 3, d))
    eta, u_res, z_orth = rng.random((big_b, 3)), rng.random(big_b), rng.standard_normal((big_b, d))
    for b in range(big_b):
        xs = [x0[b]]
        mq, mp = [], []
        for j in range(3):
            mq.append(m_q_fn(j, xs[-1][None])[0])
            mp.append(m_p_fn(j, xs[-1][None])[0])
            xs.append(mq[-1] + 0.6 * z[b, j])
        ref = g.verify_gaussian_block(np.array(mp), np.array(mq), sig, z[b], eta[b], u_res[b], z_orth[b])
        assert ref.n_accepted == res.tau_first[b]
        if ref.n_accepted == 3:
            np.testing.assert_allclose(res.samples[b], ref.states[-1], rtol=0, atol=1e-12)
