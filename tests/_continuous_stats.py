"""Small calibrated checks shared by the continuous-oracle tests (test_gaussian_*,
test_diffusion_*). Each returns the smallest Bonferroni-adjusted p-value; a test
rejects when it is below its stated alpha.

Power (two-sided, 90%): with n samples and per-check level a, the mean z-test detects
a shift of (z_{1-a/2} + 1.2816) / sqrt(n) standard deviations, the variance test a
relative change of (z_{1-a/2} + 1.2816) sqrt(2/n), the KS test a sup-CDF distance of
about 1.36 sqrt(-ln(a/2)/2) * sqrt(2/n) (Massey's bound, conservative).
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def normal_law_pvalue(x, mean, cov):
    """x [n, d] against N(mean, cov): whiten with the Cholesky factor of cov, then per
    coordinate a KS test against N(0, 1), a mean z-test and a variance z-test
    (sqrt(2/n) standard error, exact for Gaussian data). Bonferroni over 3d checks."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if x.shape[0] == 1 and x.shape[1] > 1 and np.ndim(mean) == 0:
        x = x.T
    n, d = x.shape
    mean = np.broadcast_to(np.asarray(mean, dtype=np.float64), (d,))
    cov = np.atleast_2d(np.asarray(cov, dtype=np.float64))
    if cov.shape == (1, 1) and d > 1:
        cov = np.eye(d) * cov[0, 0]
    y = np.linalg.solve(np.linalg.cholesky(cov), (x - mean).T).T
    ps = []
    for j in range(d):
        ps.append(stats.kstest(y[:, j], "norm").pvalue)
        zm = y[:, j].mean() * np.sqrt(n)
        ps.append(2 * stats.norm.sf(abs(zm)))
        zv = (y[:, j].var() - 1.0) / np.sqrt(2.0 / n)
        ps.append(2 * stats.norm.sf(abs(zv)))
    return min(1.0, min(ps) * len(ps))


def cdf_law_pvalue(x, cdf):
    """One-sample KS test of 1-D samples against a CDF (vectorised callable)."""
    return float(stats.kstest(np.asarray(x, dtype=np.float64).ravel(), cdf).pvalue)


def binomial_pvalue(successes, trials, p):
    """Two-sided exact binomial test of an acceptance count against a closed form."""
    return float(stats.binomtest(int(successes), int(trials), float(p)).pvalue)
