"""Closed forms of the Gaussian step (ALGORITHMS.md §2.1, §2.4, T6) and bad input.

Deterministic tests: the T6 table must come out to its printed 6 decimals, the 1-D
residual's CDF and quantile must agree with a 40-digit mpmath evaluation of the
survival-function formula (independent of the code under test). Properties on any
parameters (hypothesis, tests/strategies.py): quantile/CDF inversion, the reflection step."""
from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import example, given
from scipy import integrate, stats

from strategies import gaussian_step, residual_params
from specoracle.reference import gaussian as g
from specoracle.reference.types import InvalidInput

T6 = [  # delta, acceptance, E[S | residual, c=1], R(0.5, delta)
    (0.25, 0.900524, 1.381579, 0.000146),
    (0.5, 0.802587, 1.516383, 0.013069),
    (1.0, 0.617075, 1.805739, 0.095305),
    (2.0, 0.317311, 2.464795, 0.282571),
]


@pytest.mark.parametrize("delta,acc,mean_s,r_half", T6)
def test_t6_table(delta, acc, mean_s, r_half):
    assert round(g.acceptance_rate(delta), 6) == acc
    assert round(g.residual_mean(1.0, delta), 6) == mean_s
    assert round(g.residual_mass(0.5, delta), 6) == r_half
    assert g.residual_mass(1.0, delta) == pytest.approx(g.total_variation(delta), rel=1e-14)
    assert g.acceptance_rate(delta) + g.total_variation(delta) == pytest.approx(1.0, abs=1e-15)


def test_t6_means_and_mahalanobis():
    d1 = g.standardized_distance([0.3, -0.2, 0.5], [0, 0, 0], 0.7)
    d2 = g.standardized_distance([0.3, -0.3, 0.5], [0, 0, 0], 0.7)
    assert (round(d1, 6), round(g.acceptance_rate(d1), 6)) == (0.880631, 0.659709)
    assert (round(d2, 6), round(g.acceptance_rate(d2), 6)) == (0.936777, 0.639507)
    big_d = g.mahalanobis([1, 1], [0, 0], [[2, 0.5], [0.5, 1]])
    assert round(big_d, 6) == 1.069045
    assert round(g.total_variation(big_d), 6) == 0.40702
    assert round(g.acceptance_rate(big_d), 6) == 0.59298
    # isotropic covariance: Mahalanobis = |m_p - m_q| / s
    assert g.mahalanobis([0.3, -0.2, 0.5], [0, 0, 0], 0.49 * np.eye(3)) == pytest.approx(d1, rel=1e-14)


def _mp_residual(c, delta):
    c, delta = mp.mpf(c), mp.mpf(delta)
    s_star = delta / 2 - mp.log(c) / delta

    def sf(x):
        return mp.erfc(x / mp.sqrt(2)) / 2
    mass = c * sf(s_star - delta) - sf(s_star)
    return s_star, mass, (lambda s: 1 - (c * sf(mp.mpf(s) - delta) - sf(mp.mpf(s))) / mass)


def test_residual_quantile_matches_mpmath():
    """Random (c, delta) with c in [1e-12, 1], delta in [1e-6, 10] and s* < 37 (R > 1e-300):
    F(quantile(u)) = u to 1e-10 and R to 1e-9 relative, against 40-digit arithmetic."""
    mp.mp.dps = 40
    rng = np.random.default_rng(5)
    checked = 0
    while checked < 120:
        delta, c = 10 ** rng.uniform(-6, 1), 10 ** rng.uniform(-12, 0)
        if delta / 2 - math.log(c) / delta > 37:
            continue
        u = rng.random()
        s_star, mass, cdf = _mp_residual(c, delta)
        big_s = g.residual_quantile(u, c, delta)
        assert big_s >= float(s_star) - 1e-12
        assert abs(float(cdf(big_s)) - u) < 1e-10
        assert g.residual_mass(c, delta) == pytest.approx(float(mass), rel=1e-9)
        assert g.residual_cdf(big_s, c, delta) == pytest.approx(u, abs=1e-10)
        checked += 1


def test_residual_threshold_and_support():
    c, delta = 0.3, 0.8
    s_star = g.residual_threshold(c, delta)
    assert s_star == pytest.approx(delta / 2 - math.log(c) / delta, rel=1e-15)
    assert c * stats.norm.pdf(s_star - delta) == pytest.approx(stats.norm.pdf(s_star), rel=1e-12)
    assert g.residual_cdf(s_star - 0.1, c, delta) == 0.0
    assert g.residual_quantile(0.0, c, delta) == s_star


@pytest.mark.parametrize("c,delta", [(0.3, 0.8), (1.0, 1.0), (0.05, 2.0), (0.9, 0.1)])
def test_residual_mean_general_c_by_quadrature(c, delta):
    s_star = delta / 2 - math.log(c) / delta

    def dens(s):
        return c * stats.norm.pdf(s - delta) - stats.norm.pdf(s)
    mass = integrate.quad(dens, s_star, np.inf, epsabs=0, epsrel=1e-12)[0]
    mean = integrate.quad(lambda s: s * dens(s), s_star, np.inf, epsabs=0, epsrel=1e-12)[0] / mass
    assert g.residual_mass(c, delta) == pytest.approx(mass, rel=1e-9)
    assert g.residual_mean(c, delta) == pytest.approx(mean, rel=1e-9)


def _mp_log_mass(c, delta):
    """log R(c, delta) = log(c Phibar(s* - delta) - Phibar(s*)) in 80-digit arithmetic
    (mpmath's exponent range is unbounded: no underflow); c = 1: log erf(delta / 2 sqrt 2)."""
    with mp.workdps(80):
        c, delta = mp.mpf(c), mp.mpf(delta)
        if c == 1:
            return mp.log(mp.erf(delta / (2 * mp.sqrt(2))))
        s_star = delta / 2 - mp.log(c) / delta
        return mp.log(c * mp.ncdf(-(s_star - delta)) - mp.ncdf(-s_star))


@pytest.mark.parametrize("c,delta,underflows", [
    (1e-3, 0.01, True), (1e-10, 0.1, True), (1e-300, 1.0, True), (0.5, 1e-3, True),
    (1e-200, 0.05, True), (1.0, 5e-324, True), (1.0, 1e-300, False), (0.999, 1e-4, False),
    (0.9, 0.01, False), (1e-5, 40.0, False), (0.5, 60.0, False), (1.0, 1.0, False)])
def test_residual_log_mass_matches_mpmath_where_the_mass_underflows(c, delta, underflows):
    """residual_log_mass is finite and correct to 1e-13 relative (float64 evaluation of
    log_ndtr / erfcx, ~1e-15 seen) where residual_mass underflows to 0 (down to
    log R ~ -4e7), and agrees with log(residual_mass) where that is representable."""
    got = g.residual_log_mass(c, delta)
    assert math.isfinite(got)
    assert got == pytest.approx(float(_mp_log_mass(c, delta)), rel=1e-13)
    assert (g.residual_mass(c, delta) == 0.0) == underflows
    if not underflows:
        assert math.log(g.residual_mass(c, delta)) == pytest.approx(got, rel=1e-12)


def test_residual_log_mass_edges_and_bad_input():
    assert g.residual_log_mass(0.5, 0.0) == -math.inf
    for c, delta, name in [(0.0, 1.0, "c"), (1.5, 1.0, "c"), (0.5, -1.0, "delta"), (0.5, math.nan, "delta")]:
        with pytest.raises(InvalidInput) as info:
            g.residual_log_mass(c, delta)
        assert info.value.argument == name


def test_log_tail_both_branches_match_mpmath():
    """log T(s) (the residual tail) to 1e-11 relative against 40-digit arithmetic, with the
    default branch choice AND with the Gauss-Legendre branch forced everywhere, over
    delta in [1e-7, 20], c in [1e-12, 1) (incl. c within 1e-12 of 1), s* < 37."""
    mp.mp.dps = 40

    def sf(x):
        return mp.erfc(mp.mpf(x) / mp.sqrt(2)) / 2
    rng = np.random.default_rng(3)
    checked = 0
    while checked < 150:
        delta = 10 ** rng.uniform(-7, 1.3)
        c = 10 ** rng.uniform(-12, 0) if rng.random() < 0.7 else 1 - 10 ** rng.uniform(-12, -1)
        log_c = math.log(c)
        s_star = g._s_star(log_c, delta)
        if s_star > 37:
            continue
        s = s_star + rng.exponential(0.3) * rng.integers(0, 2)
        true = float(mp.log(mp.mpf(c) * sf(mp.mpf(s) - mp.mpf(delta)) - sf(s)))
        for switch in (g.EXPM1_SWITCH, 1.0):
            old = g.EXPM1_SWITCH
            g.EXPM1_SWITCH = switch
            try:
                got = g.log_tail(s, log_c, delta, s_star)
            finally:
                g.EXPM1_SWITCH = old
            assert abs(math.expm1(got - true)) < 1e-11, (delta, c, s, switch)
        checked += 1


# ---------------------------------------------------------------- bad input


def _raises(arg, fn, *a, **k):
    with pytest.raises(InvalidInput) as info:
        fn(*a, **k)
    assert info.value.argument == arg
    return info.value


def test_bad_inputs_name_the_argument():
    z, m = np.zeros(2), np.zeros(2)
    _raises("s", g.reflection_coupling, m, m + 1, 0.0, z, 0.5)
    _raises("s", g.reflection_coupling, m, m + 1, -1.0, z, 0.5)
    _raises("m_p", g.reflection_coupling, [np.nan, 0], m, 1.0, z, 0.5)
    _raises("m_q", g.gamma_coupling, m, [0, np.inf], 1.0, z, 0.5, 0.5, z)
    _raises("m_q", g.reflection_coupling, m, np.zeros(3), 1.0, z, 0.5)
    _raises("z", g.reflection_coupling, m, m, 1.0, np.zeros(3), 0.5)
    _raises("u", g.reflection_coupling, m, m, 1.0, z, 1.0)
    _raises("u_res", g.gamma_coupling, m, m + 1, 1.0, z, 0.5, -0.1, z)
    _raises("z_orth", g.gamma_coupling, m, m + 1, 1.0, z, 0.5, 0.5, np.zeros(1))
    _raises("c", g.residual_mass, 1.5, 1.0)
    _raises("c", g.residual_mass, 0.0, 1.0)
    _raises("delta", g.residual_quantile, 0.5, 0.5, 0.0)
    _raises("delta", g.acceptance_rate, -1.0)
    _raises("cov", g.mahalanobis, [1, 1], [0, 0], [[1, 2], [2, 1]])
    mq = np.zeros((3, 2))
    _raises("m_p", g.verify_gaussian_block, np.zeros((5, 2)), mq, 1.0, mq, np.zeros(3), 0.1, z)
    _raises("s", g.verify_gaussian_block, mq, mq, [1.0, 0.0, 1.0], mq, np.zeros(3), 0.1, z)
    _raises("eta", g.verify_gaussian_block, mq, mq, 1.0, mq, np.zeros(2), 0.1, z)
    _raises("coupling", g.verify_gaussian_chain, mq, mq, 1.0, mq, np.zeros(3), 0.1, z, coupling="x")
    _raises("rng", g.gamma_coupling_rng, m, m, 1.0, 42)


def test_equal_means_always_accept_and_residual_fallback_is_counted():
    m = np.array([0.5, -1.0])
    for u in [0.0, 0.3, np.nextafter(1.0, 0.0)]:
        assert g.reflection_coupling(m, m, 0.7, np.array([2.0, -1.0]), u).accepted
        assert g.gamma_coupling(m, m, 0.7, np.array([2.0, -1.0]), u, 0.5, np.ones(2)).accepted
    x, fb = g.residual_gauss(m, m, 0.7, 1.0, 0.5, np.ones(2))
    assert fb == ("residual_zero_mass",)
    np.testing.assert_allclose(x, m + 0.7)


def test_gaussian_api_reachable_from_import_specoracle():
    """`specoracle.gaussian` is the oracle module (imported lazily), the window verifiers
    are re-exported, and the front door's docstring examples run."""
    import doctest

    import specoracle as so
    assert so.gaussian is g
    assert so.verify_gaussian_block is g.verify_gaussian_block
    assert so.verify_gaussian_chain_rng is g.verify_gaussian_chain_rng
    assert {"gaussian", "verify_gaussian_chain"} <= set(dir(so))
    with pytest.raises(AttributeError):
        so.no_such_name  # noqa: B018
    assert doctest.testmod(so).failed == 0


def test_residual_functions_take_c_then_delta():
    """One argument order, (c, delta), for every residual function of the Gaussian API."""
    import inspect
    for name in ("residual_threshold", "residual_mass", "residual_log_mass", "residual_mean",
                 "residual_cdf", "residual_quantile"):
        params = list(inspect.signature(getattr(g, name)).parameters)
        assert params[-2:] == ["c", "delta"], (name, params)


# ---------------------------------------------------------------- properties (hypothesis)


@given(residual_params())
@example((2.0 ** -53, 1.0, 0.05))  # the smallest positive rng.random(): f(s*) rounded to <= 0
def test_residual_quantile_inverts_the_cdf(params):
    """For any (u, c, delta): S = residual_quantile(u) lies in the residual's support
    (S >= s*) and residual_cdf(S) == u within 1e-9 (the quantile's bracket-and-Brent
    tolerance, ~1e-13 in S, times the density, <= 1)."""
    u, c, delta = params
    s = g.residual_quantile(u, c, delta)
    assert s >= g.residual_threshold(c, delta)
    assert g.residual_cdf(s, c, delta) == pytest.approx(u, abs=1e-9)


@given(gaussian_step())
def test_reflection_step_is_the_documented_coupling(step):
    """Reflection coupling (§2.3) on any parameters: log_ratio is log N(draft; m_p) -
    log N(draft; m_q); the draft is accepted iff log(u) < log_ratio (equal means: always),
    and then Y is the draft; on a rejection Y is the reflection, an isometry of the
    noise: |Y - m_p| / s == |z|, and Y is the mirror image of the draft across the
    bisector of the means: |Y - m_q| == |draft - m_p|."""
    m_p, m_q, s, z, u = step
    out = g.reflection_coupling(m_p, m_q, s, z, u)
    draft = m_q + s * z
    direct = (np.sum((draft - m_q) ** 2) - np.sum((draft - m_p) ** 2)) / (2 * s * s)
    assert out.log_ratio == pytest.approx(direct, rel=1e-9, abs=1e-9)
    assert np.array_equal(out.draft, draft)
    assert out.accepted == (u == 0.0 or math.log(u) < out.log_ratio)
    if np.array_equal(m_p, m_q):
        assert out.accepted
    if out.accepted:
        assert np.array_equal(out.x, draft)
    else:
        assert np.linalg.norm(out.x - m_p) / s == pytest.approx(np.linalg.norm(z), rel=1e-9, abs=1e-12)
        assert np.linalg.norm(out.x - m_q) == pytest.approx(np.linalg.norm(draft - m_p), rel=1e-9, abs=1e-9)
