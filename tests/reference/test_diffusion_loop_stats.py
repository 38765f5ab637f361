"""The speculative diffusion loop reproduces the TARGET CHAIN's law for every
(drafter x verification) combination (ALGORITHMS.md §3.2, §2.5, T7-T10), acceptance
matches the closed forms, block verification dominates token verification, and the
known-wrong scaled residual (c = 1 instead of p_tau) is rejected.

Per-test alpha and power are in each docstring (formulas: tests/_continuous_stats.py); each
test reads its level from the suite budget (``specoracle_alpha``, tests/conftest.py): 30
combination / Langevin cases at 2e-4 + 4 T7 cases at 2e-3 + 4 cases at 1e-3 = 0.017.
The loops verify with the batched NumPy twin (``verifier=nbg``, parity-checked against the
oracle's one-window verifiers; tests/fastpath/test_gaussian_batch.py checks whole runs of the two
agree decision for decision): 10^4 chains in seconds."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from _continuous_stats import binomial_pvalue, normal_law_pvalue
from specoracle.fastpath.numpy_batch import gaussian as nbg
from specoracle.reference import diffusion as df
from specoracle.reference import targets_continuous as tc

SCHED = tc.linear_schedule(50, 1e-3, 0.2)
N_COMBO = 10000

COMBOS = [(d, v, {}) for d in ("free", "frozen", "independent", "target")
          for v in ("block", "token", "reflection")]
COMBOS += [("free", "token", {"reuse_orth": True}), ("free", "block", {"bonus": True}),
           ("frozen", "block", {"freeze": "output"})]


def _run(data, sampler, drafter, verify, opts, draft_data, seed, n=N_COMBO, par="eps"):
    target = df.TargetModel(sampler, tc.ExactDenoiser(data, sampler.schedule, par))
    dr = df.make_drafter(drafter, target, freeze=opts.get("freeze", "drift"),
                         draft_denoiser=tc.ExactDenoiser(draft_data, sampler.schedule, "x0"))
    rng = np.random.default_rng(seed)
    return df.speculative_sample(target, dr, rng.standard_normal((n, data.dim)), rng, window=4,
                                 verify=verify, bonus=opts.get("bonus", False),
                                 reuse_orth=opts.get("reuse_orth", False), verifier=nbg)


@pytest.mark.statistical
@pytest.mark.parametrize("drafter,verify,opts", COMBOS)
def test_gaussian_data_chain_law(drafter, verify, opts, specoracle_alpha):
    """T9 in d = 2 (DDPM, sigma_1 = 0 applied outside the loop): 10^4 chains against the
    recursion's N(m_0, V_0 I). alpha: the budget's share, 2e-4 (KS + mean + variance per whitened coordinate,
    Bonferroni); power 90%: mean shifts of 0.054 sd, variance changes of 7.7%."""
    data = tc.GaussianData([0.7, -0.3], 0.4)
    sampler = df.DiffusionSampler(SCHED, "ddpm")
    res = _run(data, sampler, drafter, verify, opts, tc.GaussianData([0.7, -0.3], 0.5), seed=41)
    m, v = tc.linear_chain_law(data, sampler)
    assert normal_law_pvalue(res.samples, m[-1], v[-1] * np.eye(2)) > specoracle_alpha
    assert res.sequential_calls.mean() < 50


@pytest.mark.statistical
def test_gaussian_data_chain_law_em_sampler(specoracle_alpha):
    """The same check for Euler-Maruyama (free drafter, block verification); alpha: the
    budget's share, 2e-4."""
    data = tc.GaussianData([0.7, -0.3], 0.4)
    sampler = df.DiffusionSampler(SCHED, "em")
    res = _run(data, sampler, "free", "block", {}, data, seed=43, par="score")
    m, v = tc.linear_chain_law(data, sampler)
    assert normal_law_pvalue(res.samples, m[-1], v[-1] * np.eye(2)) > specoracle_alpha


@pytest.fixture(scope="module")
def mixture_reference():
    mix = tc.GaussianMixtureData([0.3, 0.7], [-2.0, 1.5], [0.5, 0.3])
    sampler = df.DiffusionSampler(SCHED, "ddpm", final_noise=True)
    return mix, sampler, tc.grid_reference_1d(mix, sampler, n=2001)


@pytest.mark.statistical
@pytest.mark.parametrize("drafter,verify,opts", COMBOS[:12])
def test_mixture_chain_law_against_grid(drafter, verify, opts, mixture_reference, specoracle_alpha):
    """T10, 1-D mixture, every step Gaussian: 10^4 chains against the grid law. The budget's
    share (2e-4) split in two: KS (alpha 1e-4; power 90%: sup-CDF distance 0.021) and mean
    z-test (alpha 1e-4; power: shifts of 0.054 sd)."""
    mix, sampler, law = mixture_reference
    draft = tc.GaussianMixtureData([0.3, 0.7], [-2.0, 1.5], [0.6, 0.4])
    x = _run(mix, sampler, drafter, verify, opts, draft, seed=47).samples[:, 0]
    assert stats.kstest(x, law.cdf).pvalue > specoracle_alpha / 2
    mean, var, _ = law.moments()
    assert 2 * stats.norm.sf(abs(x.mean() - mean) / math.sqrt(var / x.size)) > specoracle_alpha / 2


# ---------------------------------------------------------------- T7: constant offset


def _constant_offset(delta, verify, n, seed, big_l=3, dim=2):
    s = 0.6
    b = np.zeros(dim)
    b[0] = 0.2
    b_q = b.copy()
    b_q[0] -= delta * s

    def m_p(k, x):
        return x + b

    def m_q(k, x):
        return x + b_q
    rng = np.random.default_rng(seed)
    return df.speculative_sample_chain(m_p, m_q, np.full(big_l, s), np.zeros((n, dim)), rng,
                                       window=big_l, verify=verify, verifier=nbg), b, s


@pytest.mark.statistical
@pytest.mark.parametrize("delta", [0.5, 1.0])
@pytest.mark.parametrize("verify", ["block", "token"])
def test_t7_acceptance_closed_forms(delta, verify, specoracle_alpha):
    """T7, window 3, 6*10^4 chains: P(tau >= i), i = 1..3, of the first round against
    a^i (token) or the quadrature values (block; P(tau >= 3) on an 801^2 trapezoid grid,
    accurate to < 1e-6). The budget's share (2e-3) split in two: exact binomial tests at
    alpha 1e-3 / 3 each; power 90%: a change of 0.009 in any P(tau >= i). The output law
    N(x_0 + 3b, 3 s^2 I) is checked too (alpha 1e-3)."""
    n = 60000
    res, b, s = _constant_offset(delta, verify, n, seed=53)
    closed = tc.constant_offset_tau_survival(delta, verify, grid=801)
    for i in range(1, 4):
        assert binomial_pvalue(np.sum(res.tau_first >= i), n, closed[i - 1]) > specoracle_alpha / 2 / 3
    assert normal_law_pvalue(res.samples, 3 * b, 3 * s ** 2 * np.eye(2)) > specoracle_alpha / 2


@pytest.mark.parametrize("delta", [0.25, 0.5, 1.0, 2.0])
def test_t7_block_dominates_token(delta):
    """Closed forms (T7): block P(tau >= i) >= token's, strictly for i >= 2; equal at i = 1."""
    block = tc.constant_offset_tau_survival(delta, "block", grid=801)
    token = tc.constant_offset_tau_survival(delta, "token")
    assert block[0] == pytest.approx(token[0], rel=1e-14)
    assert np.all(block[1:] > token[1:] + 1e-3)


# ---------------------------------------------------------------- known-wrong variants


def _c_one(m_p, m_q, s, log_c, *args, _orig=nbg.residual_draw, **kw):
    """KNOWN-WRONG: the block residual drawn without the scale c = p_tau (c = 1)."""
    return _orig(m_p, m_q, s, np.zeros_like(log_c), *args, **kw)


@pytest.mark.statistical
@pytest.mark.parametrize("variant", ["correct", "c_one"])
def test_block_residual_needs_the_scale(variant, monkeypatch, specoracle_alpha):
    """1-D constant offset, delta = 1.5, window 3, 4*10^4 chains; law of x_3 against
    N(3b, 3 s^2): alpha = the budget's share, 1e-3 (KS + mean + variance). The correct
    sampler passes, the scaled residual without c = p_tau is rejected (its law check
    p-value < alpha)."""
    if variant == "c_one":
        monkeypatch.setattr(nbg, "residual_draw", _c_one)
    s, b = 0.6, np.array([0.9])

    def m_p(k, x):
        return x + b

    def m_q(k, x):
        return x
    res = df.speculative_sample_chain(m_p, m_q, np.full(3, s), np.zeros((40000, 1)),
                                      np.random.default_rng(59), window=3, verify="block", verifier=nbg)
    p = normal_law_pvalue(res.samples, 3 * b, 3 * s ** 2 * np.eye(1))
    assert (p > specoracle_alpha) if variant == "correct" else (p < specoracle_alpha)


@pytest.mark.statistical
def test_orthogonal_part_is_independent_of_tau_in_block_verification(specoracle_alpha):
    """ALGORITHMS.md §2.4 says re-using the rejected draft's orthogonal noise W_{tau+1} is
    invalid in block verification. It is in fact valid: given X~^{i+1}, the probability
    that no index > i passes is 1 - p_{i+1} (induction with E[p_{j+1} | X~^j] = p_j - R_j
    and 1 - h_j = (1 - p_j)/(R_j + 1 - p_j)), which depends on S_{i+1} only, so
    P(tau = i | X~^i, S_{i+1}, W_{i+1}) = h_i (1 - p_{i+1}) is free of W_{i+1}
    (docs/CONTINUOUS.md). This test checks the consequence on a chain built to make
    W_{i+1} matter as much as possible (the next offset is 3 x_2): the component of
    W_{tau+1} orthogonal to e is N(0, 1) given each value of tau. 3*10^5 windows;
    KS + mean + variance per tau, alpha = the budget's share, 1e-3 in all (Bonferroni over 9); power 90%:
    mean shifts of 0.011 sd for the rarest tau (~10^5 windows)."""
    rng = np.random.default_rng(61)
    n, big_l, s = 300000, 3, 0.6
    a_p, b_p = np.array([[1.0, 3.0], [0.0, 1.0]]), np.array([0.5, 0.0])
    z = rng.standard_normal((n, big_l, 2))
    eta = rng.random((n, big_l))
    xs = np.zeros((n, big_l + 1, 2))
    m_p, m_q = np.zeros((n, big_l, 2)), np.zeros((n, big_l, 2))
    for j in range(big_l):
        m_p[:, j], m_q[:, j] = xs[:, j] @ a_p.T + b_p, xs[:, j]
        xs[:, j + 1] = m_q[:, j] + s * z[:, j]
    ell, delta = nbg.log_ratios(m_p, m_q, np.full((n, big_l), s), z)
    tau, _, _ = nbg.block_tau(ell, delta, np.full(n, big_l), eta)
    pvals = []
    for t in range(big_l):
        sel = tau == t
        e = m_p[sel, t] - m_q[sel, t]
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        w = z[sel, t, 0] * -e[:, 1] + z[sel, t, 1] * e[:, 0]
        pvals.append(normal_law_pvalue(w[:, None], np.zeros(1), np.eye(1)))
    assert min(pvals) * 3 > specoracle_alpha


@pytest.mark.statistical
@pytest.mark.parametrize("drafter", ["frozen", "free"])
def test_langevin_chain_law(drafter, specoracle_alpha):
    """§3.4: the same loop on an unadjusted Langevin chain for pi = N(1, 0.5^2),
    x' = x + h grad log pi(x) + sqrt(2h) xi (h = 0.05, 20 steps, block verification, FD
    drafters freezing the gradient drift). The chain is linear: its law after 20 steps is
    N(m, v) with m <- a m + h mu / sigma^2, v <- a^2 v + 2h, a = 1 - h / sigma^2.
    2*10^4 chains from x_0 = -2; alpha: the budget's share, 2e-4 (KS + mean + variance); power 90%: mean shifts
    of 0.038 sd."""
    h, mu, sd, k = 0.05, 1.0, 0.5, 20
    a = 1 - h / sd ** 2

    def m_p(kk, x):
        return x + h * (mu - x) / sd ** 2
    m, v = -2.0, 0.0
    for _ in range(k):
        m, v = a * m + h * mu / sd ** 2, a * a * v + 2 * h
    res = df.speculative_sample_chain(m_p, None, np.full(k, math.sqrt(2 * h)), np.full((20000, 1), -2.0),
                                      np.random.default_rng(67), window=4, verify="block", drafter=drafter,
                                      verifier=nbg)
    assert normal_law_pvalue(res.samples, [m], [[v]]) > specoracle_alpha
    assert res.sequential_calls.mean() < k
