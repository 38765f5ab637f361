"""The diffusion loop (reference/diffusion.py) makes the same decisions with the oracle's
one-window verifiers (reference/gaussian.py, the default) and with the batched NumPy twin
(fastpath/numpy_batch/gaussian.py, what 10^4-chain callers pass as ``verifier``) on the
same noise: tau equal, emitted states equal to 1e-9 (bisection vs Brent in the residual).
The twin's row-by-row parity: tests/fastpath/test_numpy_batch_gaussian.py and the registry."""
from __future__ import annotations

import numpy as np
import pytest

from specoracle.fastpath.numpy_batch import gaussian as nbg
from specoracle.reference import diffusion as df
from specoracle.reference import gaussian as g


def test_batch_quantile_equals_brent():
    rng = np.random.default_rng(3)
    n = 400
    delta = 10 ** rng.uniform(-6, 1, n)
    log_c = np.where(rng.random(n) < 0.3, 0.0, -rng.exponential(3.0, n))
    keep = delta / 2 - log_c / delta < 30
    delta, log_c = delta[keep], log_c[keep]
    u = rng.random(delta.size)
    got = nbg.residual_quantile(u, log_c, delta)
    want = np.array([g._quantile_log(float(a), float(b), float(c)) for a, b, c in zip(u, log_c, delta)])
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-10)


@pytest.mark.parametrize("verifier", [None, nbg], ids=["oracle", "numpy_batch"])
def test_loop_first_round_equals_reference_block(verifier):
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
                                      window=3, verify="block", verifier=verifier)
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


@pytest.mark.parametrize("verify,opts", [("block", {}), ("token", {}), ("reflection", {}),
                                         ("token", {"reuse_orth": True}), ("block", {"bonus": True})])
@pytest.mark.parametrize("drafter", ["free", "frozen", "independent"])
def test_loop_oracle_and_numpy_batch_verifiers_agree(verify, opts, drafter):
    """Whole runs (DDPM on a 2-D mixture, 60 chains, 30 steps, window 4) with the two
    verifiers on the same generator: every decision and counter equal, samples to 1e-9."""
    from specoracle.reference import targets_continuous as tc

    sched = tc.linear_schedule(30, 1e-3, 0.2)
    mix = tc.GaussianMixtureData(np.array([0.3, 0.7]), np.array([[-2.0, 0.5], [1.5, -1.0]]),
                                 np.array([0.5, 0.3]))
    draft = tc.GaussianMixtureData(np.array([0.5, 0.5]), np.array([[-1.5, 0.0], [1.0, -0.5]]),
                                   np.array([0.6, 0.5]))
    sampler = df.DiffusionSampler(sched, "ddpm", final_noise=bool(opts.get("bonus")))
    target = df.TargetModel(sampler, tc.ExactDenoiser(mix, sched, "eps"))
    x0 = np.random.default_rng(5).standard_normal((60, 2))
    runs = []
    for verifier in (None, nbg):
        dr = df.make_drafter(drafter, target, draft_denoiser=tc.ExactDenoiser(draft, sched, "eps"))
        runs.append(df.speculative_sample(target, dr, x0, np.random.default_rng(7), window=4,
                                          verify=verify, verifier=verifier, **opts))
    a, b = runs
    for field in ("tau_hist", "tau_first", "drafted_per_step", "judged_per_step", "accepted_per_step",
                  "sequential_calls", "target_evals", "draft_evals"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert (a.rounds, a.target_calls, a.draft_calls, a.fallbacks) == (b.rounds, b.target_calls,
                                                                      b.draft_calls, b.fallbacks)
    np.testing.assert_allclose(a.samples, b.samples, rtol=0, atol=1e-9)


class _Recorded:
    """A noise source replaying recorded rounds (randomness is an input of the loop)."""

    def __init__(self, rounds):
        self.rounds = list(rounds)

    def round(self, n, lmax, d):
        return self.rounds.pop(0)


def test_loop_takes_its_noise_as_arrays():
    """speculative_sample(rng) is the thin wrapper of sample_with_noise: replaying the rounds
    it drew gives the identical run; a round noise of the wrong shape is InvalidInput."""
    from specoracle.reference.types import InvalidInput

    sig = np.full(6, 0.5)
    x0 = np.random.default_rng(1).standard_normal((40, 2))

    def m_p(k, x):
        return 0.9 * x + 0.2

    def m_q(k, x):
        return 0.8 * x
    drawn = []

    class _Recording(df.RngNoise):
        def round(self, n, lmax, d):
            drawn.append(super().round(n, lmax, d))
            return drawn[-1]
    chain = df._FunctionChain(sig)
    target = df.TargetModel(chain, df._FunctionDenoiser(m_p, chain, x0), "score")
    draft = df.IndependentDrafter(df.TargetModel(chain, df._FunctionDenoiser(m_q, chain, x0), "score"))
    a = df.sample_with_noise(target, draft, x0, _Recording(np.random.default_rng(3)), window=3)
    b = df.sample_with_noise(target, draft, x0, _Recorded(drawn), window=3)
    c = df.speculative_sample(target, draft, x0, np.random.default_rng(3), window=3)
    for r in (b, c):
        np.testing.assert_array_equal(r.samples, a.samples)
        np.testing.assert_array_equal(r.tau_hist, a.tau_hist)
    short = df.RoundNoise(drawn[0].z[:, :2], drawn[0].eta, drawn[0].u_res, drawn[0].z_orth)
    with pytest.raises(InvalidInput, match=r"noise\.z"):
        df.sample_with_noise(target, draft, x0, _Recorded([short]), window=3)
