"""Calibrated statistics for certifying samplers: every test states its false-positive
rate (alpha) and its power (the smallest effect it detects), and refuses to run
underpowered (:class:`~specoracle.reference.types.InvalidTest`).

DESIGN.md principle 5; ALGORITHMS.md §7 "Testing protocol". Used by
:mod:`specoracle.proofs.certify` and reusable by any test of the project.

Public API (all p-values are exact or stated asymptotic approximations)
-----------------------------------------------------------------------
Categorical laws
    ``merge_cells(expected, min_expected=5)``  -> labels grouping small cells
    ``chisquare_gof(counts, probs, ...)``      -> :class:`TestResult` (Pearson or G;
                                                  asymptotic or simulated null)
    ``simulated_pvalue(stat, sampler, ...)``   -> sequential Monte-Carlo p-value
    ``binomial_test(k, n, p0)``                -> :class:`TestResult` (exact, two-sided)
    ``detectable_tv(n, df, alpha, power)``     -> smallest TV a chi-square GOF detects
    ``gof_sample_size(tv, df, alpha, power)``  -> n reaching ``power`` at TV distance ``tv``
    ``binomial_detectable(n, p0, alpha, power)`` / ``binomial_sample_size``
    ``require_power(...)``                     -> raises InvalidTest when underpowered
Continuous laws (null: standard normal after whitening)
    ``ks_normal(x)``, ``anderson_normal(x)``   -> 1-D tests on whitened projections
    ``energy_normal(x, reps=400)``             -> d-dim energy test, gamma-approximated null
    ``ks_detectable(n, alpha, power)``         -> DKW bound on the detectable KS distance
False-positive budget
    ``holm(p_values, alpha)``                  -> reject flags (Holm-Bonferroni, FWER alpha)
Coupled (decision-by-decision) comparison
    ``agreement(a, b)``                        -> (rate, first index that differs or None)

Power rule for categorical tests (stated once, used everywhere). Under an alternative
r with TV(r, p0) = eps the Pearson statistic is approximately noncentral chi-square with
``df`` degrees of freedom and noncentrality ``lam = n * sum_x (r(x) - p0(x))^2 / p0(x)``.
By Cauchy-Schwarz, ``sum |r - p0| <= sqrt(sum (r - p0)^2 / p0) * sqrt(sum p0)``, so
``lam >= 4 n eps^2`` for EVERY alternative at TV eps (the worst case; equality when
|r - p0| is proportional to p0). The power we state is the noncentral chi-square power at
``lam = 4 n eps^2``: conservative over alternatives, asymptotic in n (the usual
noncentral approximation; Cohen 1988 ch. 7). An alternative that puts mass on a cell of
null probability 0 has lam = infinity: our tests give p = 0 for any such observation
("impossible outcome"), a rule that is exact, not asymptotic.

Simulated null (``null="simulated"``, what :mod:`specoracle.proofs.certify` uses).
With merged cells near an expected count of 5 the chi-square(df) tail is too light at
the small per-check levels a run needs: at 5e-5, 10 cells of expected 5 reject 2.0x as
often as stated, 10 cells of expected 40 still 1.2x (2M-replicate simulation).
The simulated p-value instead compares the observed statistic with statistics of
multinomial(n, merged null) draws, by Besag & Clifford's sequential procedure
(Biometrika 78 (1991) 301): draw until ``h = MC_EXCEEDANCES`` simulated statistics are
>= the observed one (p = h / L after L draws) or ``B - 1`` draws are made (p = (g + 1) / B
with g exceedances). This p-value is valid at every level, simulation error included:
P(p <= a) <= a under the null (ties count as exceedances: conservative). Under the null
it stops after ~h (1 + ln(B / h)) draws; only a check that is about to reject pays all B.
``B = ceil(MC_DRAWS_PER_LEVEL / alpha)``: the MC test rejects at ``alpha`` iff it sees at
most ``MC_DRAWS_PER_LEVEL - 1`` exceedances, so whenever the exact p-value is <= alpha / 3
it rejects with probability >= ``mc_power_factor(alpha)`` (>= 0.997, a binomial tail).
Its stated power is therefore the asymptotic power at level alpha / 3 times that factor,
and sample sizes are planned that way (:func:`gof_sample_size` with ``null="simulated"``).

Merging rule: cells with expected count < ``min_expected`` (default 5) are merged,
smallest first, into one pooled cell until the pooled cell reaches ``min_expected``
(a pooled remainder below it is folded into the smallest regular cell). Cells with null
probability exactly 0 are never merged: they are the impossible outcomes above. The TV
reported as detectable is TV on the merged partition (a lower bound on the TV of the
unmerged laws).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, special, stats

from specoracle.reference.types import InvalidInput, InvalidTest

DEFAULT_MIN_EXPECTED = 5.0
MC_EXCEEDANCES = 10        # h of the sequential Monte-Carlo p-value (module doc)
MC_DRAWS_PER_LEVEL = 10    # B = ceil(MC_DRAWS_PER_LEVEL / alpha) simulated statistics at most
MC_LEVEL_DIVISOR = 3       # the simulated test's power is planned at level alpha / 3
NULLS = ("asymptotic", "simulated")


@dataclass(frozen=True)
class TestResult:
    """One statistical test: statistic, p-value, and how much it could have seen.

    ``detectable`` is the smallest effect (in ``metric``: "TV", "KS", "abs(p-p0)", or
    "energy") detected with probability >= ``power`` at level ``alpha``; ``df`` the
    degrees of freedom where meaningful; ``impossible`` counts observations that fall
    in cells of null probability 0 (any such observation gives p = 0).
    """

    __test__ = False  # not a pytest class

    name: str
    statistic: float
    p_value: float
    n: int
    df: int = 0
    alpha: float = float("nan")
    power: float = float("nan")
    detectable: float = float("nan")
    metric: str = "TV"
    impossible: int = 0
    detail: str = ""

    def as_json(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}


# ---------------------------------------------------------------- power and sample size


@lru_cache(maxsize=4096)
def _noncentrality(df: int, alpha: float, power: float) -> float:
    """The noncentrality lam at which a level-alpha chi-square(df) test has ``power``."""
    crit = stats.chi2.isf(alpha, df)
    f = lambda lam: stats.ncx2.sf(crit, df, lam) - power  # noqa: E731
    hi = 1.0
    while f(hi) < 0:
        hi *= 2
    return float(optimize.brentq(f, 1e-9, hi, xtol=1e-10, rtol=1e-10))


def _check_level(alpha, power):
    if not (0 < alpha < 1):
        raise InvalidInput("alpha", f"must lie in (0, 1), got {alpha}")
    if not (0 < power < 1):
        raise InvalidInput("power", f"must lie in (0, 1), got {power}")


def mc_power_factor(alpha: float) -> float:
    """P(the simulated test rejects at ``alpha`` | exact p-value = alpha / 3): the chance
    that B = ceil(MC_DRAWS_PER_LEVEL / alpha) draws show at most MC_DRAWS_PER_LEVEL - 1
    exceedances (a binomial tail; module doc)."""
    b = int(math.ceil(MC_DRAWS_PER_LEVEL / alpha))
    return float(stats.binom.cdf(MC_DRAWS_PER_LEVEL - 1, b, alpha / MC_LEVEL_DIVISOR))


def _planning_level(alpha: float, power: float, null: str):
    """(level, power) at which the asymptotic power formula is evaluated for ``null``."""
    if null == "asymptotic":
        return alpha, power
    if null == "simulated":
        return alpha / MC_LEVEL_DIVISOR, min(power / mc_power_factor(alpha), 1 - 1e-9)
    raise InvalidInput("null", f"expected one of {', '.join(NULLS)}, got {null!r}")


def detectable_tv(n: int, df: int, alpha: float, power: float = 0.9, *, null: str = "asymptotic") -> float:
    """Smallest TV distance a level-``alpha`` chi-square GOF test with ``df`` degrees of
    freedom on ``n`` samples detects with probability >= ``power`` (worst case over
    alternatives, noncentral approximation: ``eps = sqrt(lam* / (4 n))``; module doc).
    ``null="simulated"``: the Monte-Carlo test's power (level alpha / 3, module doc)."""
    _check_level(alpha, power)
    if n <= 0:
        return float("inf")
    if df <= 0:
        return 0.0  # one cell: only impossible outcomes can be seen, and they always are
    a, pw = _planning_level(alpha, power, null)
    return math.sqrt(_noncentrality(int(df), float(a), float(pw)) / (4.0 * n))


def gof_sample_size(tv: float, df: int, alpha: float, power: float = 0.9, *, null: str = "asymptotic") -> int:
    """Samples a chi-square GOF test needs to detect TV ``tv`` with ``power`` (module doc)."""
    _check_level(alpha, power)
    if not (0 < tv <= 1):
        raise InvalidInput("tv", f"must lie in (0, 1], got {tv}")
    if df <= 0:
        return 1
    a, pw = _planning_level(alpha, power, null)
    return int(math.ceil(_noncentrality(int(df), float(a), float(pw)) / (4.0 * tv * tv)))


def binomial_detectable(n: int, p0: float, alpha: float, power: float = 0.9) -> float:
    """Smallest |p - p0| a two-sided level-alpha binomial test on n trials detects with
    ``power`` (normal approximation with the larger of the two variances, conservative:
    ``(z_{alpha/2} + z_power) * sqrt(v / n)`` with ``v = max over p in [p0 - d, p0 + d]
    of p(1-p)``, bounded above by 1/4)."""
    _check_level(alpha, power)
    if n <= 0:
        return float("inf")
    z = stats.norm.isf(alpha / 2) + stats.norm.isf(1 - power)
    d = z * math.sqrt(max(p0 * (1 - p0), 1e-12) / n)
    for _ in range(50):  # fixed point with the worst variance over [p0 - d, p0 + d]
        lo, hi = max(p0 - d, 0.0), min(p0 + d, 1.0)
        v = 0.25 if lo <= 0.5 <= hi else max(lo * (1 - lo), hi * (1 - hi))
        d_new = z * math.sqrt(v / n)
        if abs(d_new - d) < 1e-12:
            break
        d = d_new
    return float(d)


def binomial_sample_size(delta: float, p0: float, alpha: float, power: float = 0.9) -> int:
    """Trials a two-sided binomial test needs to detect |p - p0| >= ``delta``."""
    _check_level(alpha, power)
    z = stats.norm.isf(alpha / 2) + stats.norm.isf(1 - power)
    return int(math.ceil(0.25 * (z / delta) ** 2))


def ks_detectable(n: int, alpha: float, power: float = 0.9) -> float:
    """Smallest Kolmogorov distance sup|F - F0| a one-sample KS test at level alpha
    detects with probability >= power, by the Dvoretzky-Kiefer-Wolfowitz inequality
    (Massart's constant; rigorous, not asymptotic): the empirical CDF lies within
    sqrt(ln(2/x)/(2n)) of the truth with probability >= 1-x, so a distance of
    ``sqrt(ln(2/alpha)/(2n)) + sqrt(ln(2/(1-power))/(2n))`` is always rejected.
    Note KS distance <= TV, so this is a KS (not TV) effect size."""
    _check_level(alpha, power)
    if n <= 0:
        return float("inf")
    return math.sqrt(math.log(2 / alpha) / (2 * n)) + math.sqrt(math.log(2 / (1 - power)) / (2 * n))


def require_power(detectable: float, target: float, what: str = "check") -> None:
    """Raise :class:`InvalidTest` if a check can only see effects larger than ``target``."""
    if not detectable <= target:
        raise InvalidTest(f"{what} is underpowered: it detects only effects >= {detectable:.4g} "
                          f"at the stated power, the target is {target:.4g}; add samples")


# ---------------------------------------------------------------- categorical tests


def merge_cells(expected, min_expected: float = DEFAULT_MIN_EXPECTED) -> np.ndarray:
    """Group labels [C] for cells with ``expected`` counts [C] (module doc: merging rule).

    Cells with expected 0 get label -1 (impossible outcomes, never merged). Returns an
    int array; cells sharing a label are pooled.
    """
    e = np.asarray(expected, dtype=np.float64)
    labels = np.full(e.shape, -1, dtype=np.int64)
    pos = np.flatnonzero(e > 0)
    big = [int(i) for i in pos if e[i] >= min_expected]
    small = sorted((int(i) for i in pos if e[i] < min_expected), key=lambda i: (e[i], i))
    for lab, i in enumerate(big):
        labels[i] = lab
    nxt = len(big)
    pool, mass = [], 0.0
    for i in small:
        pool.append(i)
        mass += e[i]
        if mass >= min_expected:
            labels[pool] = nxt
            nxt += 1
            pool, mass = [], 0.0
    if pool:
        if nxt > 0:  # fold the remainder into the smallest existing group
            sums = np.bincount(labels[labels >= 0], weights=e[labels >= 0], minlength=nxt)
            labels[pool] = int(np.argmin(sums))
        else:
            labels[pool] = 0
    return labels


def _gof_statistic(obs, exp, method):
    """Pearson X^2 or G = 2 sum O ln(O/E) of observed counts obs [..., k] (expected exp [k])."""
    if method == "pearson":
        return np.sum((obs - exp) ** 2 / exp, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(obs > 0, obs * np.log(obs / exp), 0.0)
    return 2 * np.sum(terms, axis=-1)


def simulated_pvalue(observed: float, draw, *, alpha: float, rng, h: int = MC_EXCEEDANCES):
    """Besag & Clifford's (1991) sequential Monte-Carlo p-value (module doc).

    ``draw(rng, size)`` returns ``size`` statistics simulated under the null. Draws stop
    after ``h`` of them are >= ``observed`` (p = h / L) or after B - 1 draws, with
    B = ceil(MC_DRAWS_PER_LEVEL / alpha) (p = (g + 1) / B). Valid at every level:
    P(p <= a) <= a under the null. Returns ``(p, draws made)``.
    """
    b = int(math.ceil(MC_DRAWS_PER_LEVEL / alpha))
    limit = b - 1
    thresh = observed - 1e-9 * max(1.0, abs(observed))  # ties (rounding) count as exceedances
    done, g, chunk = 0, 0, 64
    while done < limit:
        k = min(chunk, limit - done)
        c = np.cumsum(np.asarray(draw(rng, k)) >= thresh)
        if g + c[-1] >= h:
            stop = done + int(np.searchsorted(c, h - g)) + 1  # the draw that brought the h-th exceedance
            return h / stop, stop
        g += int(c[-1])
        done += k
        chunk = min(4 * chunk, 1 << 16)
    return (g + 1) / b, done


def chisquare_gof(counts, probs, *, min_expected: float = DEFAULT_MIN_EXPECTED, method: str = "pearson",
                  alpha: float = float("nan"), power: float = 0.9, name: str = "gof",
                  null: str = "asymptotic", rng=None) -> TestResult:
    """Goodness of fit of observed ``counts`` [C] to null ``probs`` [C] (summing to 1).

    Cells are merged by :func:`merge_cells`; ``method`` is "pearson" (chi-square) or "g"
    (likelihood ratio, G = 2 sum O ln(O/E)). ``null="asymptotic"``: p-value from
    chi-square(df = cells - 1); ``null="simulated"``: the sequential Monte-Carlo p-value
    of the statistic under multinomial(n, merged null) (module doc; valid at every level,
    resolved down to ``alpha``, which must then be given), drawn from ``rng`` (a
    Generator or seed; default seed 0). Any count in a cell of null probability 0 gives
    p = 0 (``impossible`` > 0). With ``alpha`` given, ``detectable`` is the TV detected
    with ``power`` (module doc).
    """
    c = np.asarray(counts, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    if c.shape != p.shape or c.ndim != 1:
        raise InvalidInput("counts", f"shape {c.shape} does not match probs {p.shape}")
    if np.any(p < 0) or abs(p.sum() - 1) > 1e-9:
        raise InvalidInput("probs", f"null probabilities must be >= 0 and sum to 1 (sum {p.sum():.12g})")
    if method not in ("pearson", "g"):
        raise InvalidInput("method", f"expected 'pearson' or 'g', got {method!r}")
    if null not in NULLS:
        raise InvalidInput("null", f"expected one of {', '.join(NULLS)}, got {null!r}")
    if null == "simulated" and not (0 < alpha < 1):
        raise InvalidInput("alpha", f"a simulated null needs the level alpha in (0, 1), got {alpha}")
    n = int(round(c.sum()))
    impossible = int(c[p <= 0].sum())
    labels = merge_cells(n * p, min_expected)
    k = int(labels.max()) + 1 if (labels >= 0).any() else 0
    ok = labels >= 0
    obs = np.bincount(labels[ok], weights=c[ok], minlength=k)
    exp = np.bincount(labels[ok], weights=n * p[ok], minlength=k)
    df = max(k - 1, 0)
    stat = float(_gof_statistic(obs, exp, method)) if k else 0.0
    detail = f"{method}, {len(p)} cells -> {k} after merging (expected >= {min_expected:g})"
    if impossible:
        pval = 0.0
        stat = float("inf")
    elif df == 0:
        pval = 1.0
    elif null == "asymptotic":
        pval = float(stats.chi2.sf(stat, df))
    else:
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(0 if rng is None else rng)
        merged = exp / n

        def draw(g, size):
            return _gof_statistic(g.multinomial(n, merged, size=size).astype(np.float64), exp, method)

        pval, draws = simulated_pvalue(stat, draw, alpha=alpha, rng=gen)
        detail += f"; simulated null, {draws} draws (Besag-Clifford)"
    det = detectable_tv(n, df, alpha, power, null=null) if math.isfinite(alpha) else float("nan")
    return TestResult(name, stat, pval, n, df, alpha, power, det, "TV", impossible, detail)


def binomial_test(k: int, n: int, p0: float, *, alpha: float = float("nan"), power: float = 0.9,
                  name: str = "binomial") -> TestResult:
    """Exact two-sided binomial test of k successes in n trials against ``p0``
    (scipy's minlike p-value). p0 in {0, 1} is exact: any contrary outcome gives p = 0."""
    if n <= 0:
        raise InvalidInput("n", "needs at least one trial")
    impossible = 0
    if p0 <= 0 or p0 >= 1:
        impossible = k if p0 <= 0 else n - k
        pval = 0.0 if impossible else 1.0
    else:
        pval = float(stats.binomtest(int(k), int(n), float(p0)).pvalue)
    det = binomial_detectable(n, p0, alpha, power) if math.isfinite(alpha) else float("nan")
    return TestResult(name, k / n, pval, int(n), 1, alpha, power, det, "abs(p-p0)", impossible,
                      f"exact binomial, p0 = {p0:.6g}, observed {k}/{n}")


# ---------------------------------------------------------------- continuous tests


def ks_normal(x, *, alpha: float = float("nan"), power: float = 0.9, name: str = "ks") -> TestResult:
    """One-sample Kolmogorov-Smirnov test of 1-D ``x`` [n] against N(0, 1) (exact p-value
    for small n, asymptotic for large, scipy's 'auto'); ``detectable`` by the DKW bound."""
    x = np.asarray(x, dtype=np.float64).ravel()
    res = stats.kstest(x, "norm")
    det = ks_detectable(len(x), alpha, power) if math.isfinite(alpha) else float("nan")
    return TestResult(name, float(res.statistic), float(res.pvalue), len(x), 0, alpha, power, det, "KS",
                      0, "one-sample KS vs N(0,1)")


# Anderson-Darling: p-values of A^2 for a fully specified null (case 0) by the
# Marsaglia & Marsaglia (2004) asymptotic-plus-correction formula.
def _ad_cdf_inf(z: float) -> float:
    if z <= 0:
        return 0.0
    if z < 2:
        return math.exp(-1.2337141 / z) / math.sqrt(z) * (
            2.00012 + (0.247105 - (0.0649821 - (0.0347962 - (0.011672 - 0.00168691 * z) * z) * z) * z) * z)
    return math.exp(-math.exp(1.0776 - (2.30695 - (0.43424 - (0.082433 - (0.008056 - 0.0003146 * z) * z) * z) * z) * z))


def _ad_errfix(n: int, x: float) -> float:
    if x > 0.8:
        return (-130.2137 + (745.2337 - (1705.091 - (1950.646 - (1116.360 - 255.7844 * x) * x) * x) * x) * x) / n
    c = 0.01265 + 0.1757 / n
    if x < c:
        t = x / c
        t = math.sqrt(t) * (1 - t) * (49 * t - 102)
        return t * (0.0037 / n ** 3 + 0.00078 / n ** 2 + 0.00006 / n)
    t = (x - c) / (0.8 - c)
    t = -0.00022633 + (6.54034 - (14.6538 - (14.458 - (8.259 - 1.91864 * t) * t) * t) * t) * t
    return t * (0.04213 / n + 0.01365 / n ** 2)


def anderson_normal(x, *, alpha: float = float("nan"), power: float = 0.9, name: str = "ad") -> TestResult:
    """Anderson-Darling test of 1-D ``x`` [n] against the fully specified N(0, 1), with the
    Marsaglia-Marsaglia (2004, J. Stat. Softw. 9(2)) p-value (accurate to ~1e-6 for n >= 5).
    The power is at least the KS test's in practice; ``detectable`` reports the DKW KS bound."""
    x = np.sort(np.asarray(x, dtype=np.float64).ravel())
    n = len(x)
    if n < 5:
        raise InvalidTest("Anderson-Darling needs at least 5 observations")
    logF = stats.norm.logcdf(x)
    logS = stats.norm.logsf(x)
    i = np.arange(1, n + 1)
    a2 = float(-n - np.mean((2 * i - 1) * (logF + logS[::-1])))
    cdf = _ad_cdf_inf(a2)
    cdf = min(max(cdf + _ad_errfix(n, cdf), 0.0), 1.0)
    det = ks_detectable(n, alpha, power) if math.isfinite(alpha) else float("nan")
    return TestResult(name, a2, 1.0 - cdf, n, 0, alpha, power, det, "KS", 0,
                      "Anderson-Darling vs N(0,1), Marsaglia-Marsaglia p-value")


def _mean_dist_to_normal(x: np.ndarray) -> np.ndarray:
    """E ||x - Z|| for Z ~ N(0, I_d), rows of x [n, d]: sqrt(2) G((d+1)/2)/G(d/2) 1F1(-1/2; d/2; -|x|^2/2)."""
    d = x.shape[1]
    c = math.sqrt(2) * math.exp(special.gammaln((d + 1) / 2) - special.gammaln(d / 2))
    return c * special.hyp1f1(-0.5, d / 2, -0.5 * np.sum(x * x, axis=1))


def _energy_stat(x: np.ndarray) -> float:
    """n * (2 mean E|x - Z| - E|Z - Z'| - mean |x_i - x_j|), Szekely & Rizzo's energy
    statistic against N(0, I_d) (E|Z - Z'| = 2 G((d+1)/2)/G(d/2))."""
    n, d = x.shape
    ezz = 2 * math.exp(special.gammaln((d + 1) / 2) - special.gammaln(d / 2))
    sq = np.sum(x * x, axis=1)
    g = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    return float(n * (2 * _mean_dist_to_normal(x).mean() - ezz - np.sqrt(g).mean()))


@lru_cache(maxsize=64)
def _energy_null(n: int, d: int, reps: int, seed: int) -> tuple:
    """(mean, variance) of the energy statistic under N(0, I_d), from ``reps`` draws."""
    rng = np.random.default_rng(seed)
    draws = np.array([_energy_stat(rng.standard_normal((n, d))) for _ in range(reps)])
    return float(draws.mean()), float(draws.var(ddof=1))


def energy_normal(x, *, reps: int = 200, seed: int = 12345, alpha: float = float("nan"),
                  power: float = 0.9, name: str = "energy") -> TestResult:
    """Energy test (Szekely & Rizzo 2005) of d-dim ``x`` [n, d] against N(0, I_d).

    The statistic uses the closed-form expectations under N(0, I) (no second sample).
    Its null law is a weighted sum of chi-square(1) variables; the p-value is from a
    two-moment gamma approximation to it (Satterthwaite), with the mean and variance
    taken from ``reps`` simulated null draws of the same (n, d) (cached per n, d, seed).
    The approximation is checked for calibration in tests/test_stats_*.py; it lets
    small alphas (after the multiplicity split) be used without 1/alpha null draws.
    Cost O(n^2 d) per draw: keep n <= ~1000 (subsample). No closed-form power:
    ``detectable`` is NaN and the check never counts as underpowered.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n, d = x.shape
    if n < 10:
        raise InvalidTest("the energy test needs at least 10 observations")
    stat = _energy_stat(x)
    mean, var = _energy_null(n, d, int(reps), int(seed))
    shape, scale = mean * mean / var, var / mean
    pval = float(stats.gamma.sf(stat, shape, scale=scale))
    return TestResult(name, stat, pval, n, d, alpha, power, float("nan"), "energy", 0,
                      f"energy distance vs N(0, I_{d}), gamma-approximated null ({reps} draws)")


# ---------------------------------------------------------------- multiplicity


def holm(p_values, alpha: float) -> np.ndarray:
    """Holm-Bonferroni step-down: reject flags [m] controlling the family-wise error rate
    at ``alpha`` (any dependence between tests). Sort p ascending; reject p_(j) while
    p_(j) <= alpha / (m - j) (j = 0..m-1), stop at the first failure."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    reject = np.zeros(m, dtype=bool)
    for j, i in enumerate(np.argsort(p, kind="stable")):
        if p[i] <= alpha / (m - j):
            reject[i] = True
        else:
            break
    return reject


def agreement(a, b):
    """Decision-by-decision agreement of two equal-length sequences of outcomes:
    returns ``(rate, first)`` with ``first`` the first index where they differ (or None)."""
    if len(a) != len(b):
        raise InvalidInput("b", f"length {len(b)} differs from {len(a)}")
    first = None
    same = 0
    for i, (x, y) in enumerate(zip(a, b)):
        if x == y:
            same += 1
        elif first is None:
            first = i
    return (same / len(a) if len(a) else 1.0), first


# ---------------------------------------------------------------- two-sample homogeneity


def chisquare_homogeneity(counts_a, counts_b, *, min_expected: float = DEFAULT_MIN_EXPECTED,
                          alpha: float = float("nan"), power: float = 0.9, name: str = "homogeneity") -> TestResult:
    """Pearson chi-square test that two samples of counts [C] (n_a, n_b draws) come from
    the SAME categorical law (a 2 x C contingency table; the common law is unknown).

    Cells empty in both samples carry no information and are dropped; the rest are merged
    by :func:`merge_cells` on the expected counts of the smaller sample under the pooled
    law. p-value from chi-square(df = cells - 1). Power: with r_a, r_b the two laws and
    rbar the pooled law, the noncentrality is lam = n_eff sum (r_a - r_b)^2 / rbar with
    n_eff = n_a n_b / (n_a + n_b), and Cauchy-Schwarz gives lam >= 4 n_eff eps^2 for
    TV(r_a, r_b) = eps: the module's power rule with n replaced by n_eff, so
    ``detectable`` is :func:`detectable_tv` (n_eff, df)."""
    a = np.asarray(counts_a, dtype=np.float64)
    b = np.asarray(counts_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise InvalidInput("counts_b", f"shape {b.shape} does not match counts_a {a.shape}")
    na, nb = float(a.sum()), float(b.sum())
    if na <= 0 or nb <= 0:
        raise InvalidInput("counts_a" if na <= 0 else "counts_b", "needs at least one observation")
    keep = (a + b) > 0
    a, b = a[keep], b[keep]
    pooled = (a + b) / (na + nb)
    labels = merge_cells(min(na, nb) * pooled, min_expected)
    k = int(labels.max()) + 1
    oa = np.bincount(labels, weights=a, minlength=k)
    ob = np.bincount(labels, weights=b, minlength=k)
    pk = np.bincount(labels, weights=pooled, minlength=k)
    stat = float(np.sum((oa - na * pk) ** 2 / (na * pk) + (ob - nb * pk) ** 2 / (nb * pk)))
    df = k - 1
    pval = float(stats.chi2.sf(stat, df)) if df > 0 else 1.0
    n_eff = int(na * nb / (na + nb))
    det = detectable_tv(n_eff, df, alpha, power) if math.isfinite(alpha) else float("nan")
    return TestResult(name, stat, pval, n_eff, df, alpha, power, det, "TV", 0,
                      f"pearson 2 x {len(keep)} table ({int(na)} vs {int(nb)} draws) -> {k} cells after merging; "
                      f"n = n_a n_b / (n_a + n_b)")
