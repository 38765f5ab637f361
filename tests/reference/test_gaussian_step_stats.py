"""Statistical tests of one Gaussian speculative step (ALGORITHMS.md §2.3, §2.4, §4.2,
T6, §8 item 4) and of the residual samplers, with local known-wrong variants that the
same tests must reject.

Every statistical test has a fixed seed and a stated alpha (false-positive rate) and
power; see tests/_continuous_stats.py for the power formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from _continuous_stats import binomial_pvalue, normal_law_pvalue
from specoracle.reference import gaussian as g

M_P = np.array([0.3, -0.2, 0.5])
M_Q = np.zeros(3)
S = 0.7
ACC = 0.659709  # T6
N_STEP = 20000


def _basis(e):
    """Orthonormal basis [d, d] whose first column is e (so coordinate 0 is the e-axis)."""
    q, _ = np.linalg.qr(np.column_stack([e, np.eye(len(e))]))
    return q


def _step_samples(step, n, seed):
    rng = np.random.default_rng(seed)
    out = np.empty((n, 3))
    acc = 0
    for i in range(n):
        r = step(rng)
        out[i] = r.x
        acc += r.accepted
    return out, acc


def _law_pvalue(x):
    """Whitened in a basis containing e = (m_p - m_q)/|m_p - m_q|: x ~ N(m_p, s^2 I)?"""
    e = (M_P - M_Q) / np.linalg.norm(M_P - M_Q)
    y = (x - M_P) @ _basis(e) / S
    return normal_law_pvalue(y, np.zeros(3), np.eye(3))


def _reflection_wrong_sign(rng):
    """KNOWN-WRONG: on rejection Y = m_p - s (z - 2 (e.z) e): the reflected noise lands on
    the wrong side along e (a sign error in the reflection map)."""
    z, u = rng.standard_normal(3), rng.random()
    r = g.reflection_coupling(M_P, M_Q, S, z, u)
    if r.accepted:
        return r
    e = (M_Q - M_P) / np.linalg.norm(M_Q - M_P)
    return g.GaussianStep(M_P - S * (z - 2 * (e @ z) * e), False, r.draft, r.log_ratio)


STEPS = {
    "reflection": lambda rng: g.reflection_coupling_rng(M_P, M_Q, S, rng),
    "gamma": lambda rng: g.gamma_coupling_rng(M_P, M_Q, S, rng),
    "gamma_reuse_orth": lambda rng: g.gamma_coupling_rng(M_P, M_Q, S, rng, reuse_orth=True),
}


@pytest.mark.statistical
@pytest.mark.parametrize("name", sorted(STEPS))
def test_step_law_and_acceptance_t6(name, specoracle_alpha):
    """T6, 3-D, 2*10^4 draws per coupling. alpha = the budget's share, 1e-3 per coupling (5e-4 for the exact
    binomial test of the acceptance count against 2 Phi(-delta/2) = 0.659709, 5e-4 for the
    law: KS + mean + variance on each whitened coordinate, Bonferroni over 9).
    Power 90%: acceptance changes of 0.017, mean shifts of 0.039 s along any basis axis
    (e included), variance changes of 5.5%."""
    x, acc = _step_samples(STEPS[name], N_STEP, seed=101)
    assert binomial_pvalue(acc, N_STEP, ACC) > specoracle_alpha / 2
    assert _law_pvalue(x) > specoracle_alpha / 2


@pytest.mark.statistical
def test_reflection_wrong_sign_is_rejected(specoracle_alpha):
    """The same law check (alpha 5e-4: half the budget's share, 1e-3, as in
    test_step_law_and_acceptance_t6) must reject the wrong-sign reflection (its mean along e
    is off by about 0.5 s): a negative control of that test. Its acceptance count must pass
    (an exact-sampler check, alpha 5e-4)."""
    x, acc = _step_samples(_reflection_wrong_sign, N_STEP, seed=101)
    assert binomial_pvalue(acc, N_STEP, ACC) > specoracle_alpha / 2  # acceptance alone cannot see it
    assert _law_pvalue(x) < specoracle_alpha / 2


@pytest.mark.statistical
def test_gamma_residual_mean_matches_closed_form(specoracle_alpha):
    """Rejected gamma-coupling outputs: S = e.(Y - m_q)/s has mean
    delta Phi(delta/2)/(2 Phi(delta/2) - 1) (T6). 6000 rejections; z-test, alpha = the budget's share, 1e-3;
    power 90%: a shift of 0.06 in E[S] (sd of S given the residual is ~ 0.7)."""
    rng = np.random.default_rng(7)
    delta = np.linalg.norm(M_P - M_Q) / S
    e = (M_P - M_Q) / np.linalg.norm(M_P - M_Q)
    vals = []
    while len(vals) < 6000:
        r = g.gamma_coupling_rng(M_P, M_Q, S, rng)
        if not r.accepted:
            vals.append(e @ (r.x - M_Q) / S)
    vals = np.array(vals)
    z = (vals.mean() - g.residual_mean(1.0, delta)) / (vals.std(ddof=1) / math.sqrt(len(vals)))
    assert 2 * stats.norm.sf(abs(z)) > specoracle_alpha
    assert vals.min() > delta / 2 - 1e-9  # support S > s* = delta/2 for c = 1


# ---------------------------------------------------------------- the 1-D residual vs its naive form


def _naive_quantile(u, c, delta):
    """KNOWN-WRONG: the inverse of F computed from differences of CDF values near 1,
    F(s) = (c [Phi(s - delta) - Phi(s* - delta)] - [Phi(s) - Phi(s*)]) / R, bisection."""
    s_star = delta / 2 - math.log(c) / delta
    phi_cdf = special.ndtr
    mass = c * (1 - phi_cdf(s_star - delta)) - (1 - phi_cdf(s_star))

    def cdf(s):
        return (c * (phi_cdf(s - delta) - phi_cdf(s_star - delta)) - (phi_cdf(s) - phi_cdf(s_star))) / mass
    lo, hi = s_star, s_star + 1.0
    while cdf(hi) < u and hi < s_star + 64:
        hi = s_star + 2 * (hi - s_star)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if cdf(mid) < u else (lo, mid)
    return 0.5 * (lo + hi)


def _ks_against_quadrature(x, c, delta):
    """KS p-value of 1-D residual samples against the CDF integrated (scipy quad) from the
    cancellation-free density c phi(t - delta)(1 - exp(-delta (t - s*))): independent of
    the code under test."""
    s_star = delta / 2 - math.log(c) / delta

    def dens(t):  # scaled by 1 / (c phi(s* - delta)): no underflow in the far tail
        return math.exp(-0.5 * (t - delta) ** 2 + 0.5 * (s_star - delta) ** 2) * -math.expm1(-delta * (t - s_star))
    xs = np.sort(np.asarray(x))
    cum, acc, prev = np.empty_like(xs), 0.0, s_star
    for i, v in enumerate(xs):
        if v > prev:
            acc += integrate.quad(dens, prev, v, epsabs=0, epsrel=1e-12)[0]
            prev = v
        cum[i] = acc
    total = acc + integrate.quad(dens, prev, np.inf, epsabs=0, epsrel=1e-12)[0]
    f = cum / total
    n = len(xs)
    dist = max(np.max(np.arange(1, n + 1) / n - f), np.max(f - np.arange(n) / n))
    return float(stats.kstwo.sf(dist, n))


@pytest.mark.statistical
def test_naive_cdf_residual_is_biased_survival_is_not(specoracle_alpha):
    """The issue's demonstration: a scaled residual deep in the tail (delta = 1,
    c = e^-7.5, s* = 8, R ~ 1e-16 relative to the CDF values). Same 3000 uniforms fed to
    the survival-function sampler and to the naive CDF-difference sampler; one-sample KS
    against an independent quadrature CDF, alpha = the budget's share, 1e-3, each. Power: sup-CDF distance
    0.04. The survival sampler passes; the naive one is rejected."""
    c, delta = math.exp(-7.5), 1.0
    u = np.random.default_rng(11).random(3000)
    good = [g.residual_quantile(v, c, delta) for v in u]
    bad = [_naive_quantile(v, c, delta) for v in u]
    assert _ks_against_quadrature(good, c, delta) > specoracle_alpha
    assert _ks_against_quadrature(bad, c, delta) < specoracle_alpha


@pytest.mark.statistical
@pytest.mark.parametrize("sampler", ["inverse_cdf", "rejection_1d", "rejection_full"])
def test_scaled_residual_samplers_agree(sampler, specoracle_alpha):
    """ResidualGauss (inverse CDF), its 1-D rejection variant (§4.2) and the A14
    rejection sampler, c = 0.4, delta = 0.9 in 3-D: the projection S on e follows the
    residual law (KS vs quadrature, alpha 1e-3, power: sup distance 0.06 at n = 1500) and
    the orthogonal part is N(0, I - ee^T) (whitened mean/variance/KS, alpha 1e-3); the A14
    sampler's mean trial count too (z-test, alpha 1e-3): a third of the budget's share (3e-3)
    each."""
    rng = np.random.default_rng(23)
    c = 0.4
    m_p = np.array([0.9 * 0.7, 0.0, 0.0]) @ np.linalg.qr(rng.standard_normal((3, 3)))[0]
    m_q = np.zeros(3)
    delta = np.linalg.norm(m_p) / 0.7
    e = m_p / np.linalg.norm(m_p)
    xs, trials = [], []
    for _ in range(1500):
        if sampler == "inverse_cdf":
            x, fb = g.residual_gauss_rng(m_p, m_q, 0.7, c, rng)
            assert fb == ()
            t = 1
        elif sampler == "rejection_1d":
            x, t = g.residual_gauss_1d_rejection_rng(m_p, m_q, 0.7, c, rng)
        else:
            x, t = g.residual_gauss_rejection_rng(m_p, m_q, 0.7, c, rng)
        xs.append(x)
        trials.append(t)
    xs = np.array(xs)
    basis = _basis(e)
    y = (xs - m_q) @ basis / 0.7
    alpha = specoracle_alpha / 3
    assert _ks_against_quadrature(y[:, 0], c, delta) > alpha
    assert normal_law_pvalue(y[:, 1:], np.zeros(2), np.eye(2)) > alpha
    if sampler == "rejection_full":  # mean trials c / R(c, delta) (A14)
        mean_t = c / g.residual_mass(c, delta)
        z = (np.mean(trials) - mean_t) / (np.std(trials, ddof=1) / math.sqrt(len(trials)))
        assert 2 * stats.norm.sf(abs(z)) > alpha
