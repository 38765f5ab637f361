"""Vectorised (NumPy, float64) twins of reference/gaussian.py's decisions, over N rows.

Used by the batched diffusion loop (reference/diffusion.py) so that 10^5 chains run in
seconds; every function here is tested against its one-row original in
reference/gaussian.py on the same noise (tests/test_gaussian_batch.py): same formulas,
same comparisons, decisions equal and states equal to ~1e-12.

Shapes: N rows, window L, dimension d.
    m_p, m_q [N, L, d] means of steps 1..L at X~_0..X~_{L-1};  s [N, L];  z [N, L, d]
    eta [N, L] accept uniforms;  lengths [N] per-row window length in 1..L
    (steps j >= lengths[n] are padding: never tested, never read for decisions).
"""
from __future__ import annotations

import numpy as np
from scipy import special

from . import gaussian as g

_SQRT2 = np.sqrt(2.0)


def log_ratios(m_p, m_q, s, z):
    """log r [N, L] = -z.D - |D|^2/2 and delta [N, L] = |D|, D = (m_q - m_p)/s (§2.3, §2.5)."""
    big_d = (m_q - m_p) / s[..., None]
    ell = -np.sum(z * big_d, axis=-1) - 0.5 * np.sum(big_d * big_d, axis=-1)
    return ell, np.sqrt(np.sum(big_d * big_d, axis=-1))


def residual_log_mass(log_c, delta):
    """log R(c, delta) [N] (c = exp(log_c) in (0, 1], delta > 0): gaussian._log_mass
    over rows (erf for c = 1, else gaussian.log_tail at s*, itself vectorised)."""
    log_c = np.asarray(log_c, dtype=np.float64)
    delta = np.asarray(delta, dtype=np.float64)
    out = np.empty(log_c.shape)
    one = log_c == 0.0
    with np.errstate(divide="ignore"):
        out[one] = np.log(special.erf(delta[one] / (2 * _SQRT2)))
    rest = ~one
    s_star = delta[rest] / 2 - log_c[rest] / delta[rest]
    out[rest] = g.log_tail(s_star, log_c[rest], delta[rest], s_star)
    return out


def residual_quantile(u, log_c, delta, iters=80):
    """S [N]: inverse CDF of the 1-D residual at u (gaussian.residual_quantile), by a
    vectorised bracket doubling and ``iters`` bisection steps on the same log-tail
    equation log T(S) = log1p(-u) + log R (80 halvings of a bracket <= 2^k leave an
    error far below 1e-13, the one-row Brent tolerance)."""
    u = np.asarray(u, dtype=np.float64)
    log_c = np.asarray(log_c, dtype=np.float64)
    delta = np.asarray(delta, dtype=np.float64)
    s_star = delta / 2 - log_c / delta
    target = np.log1p(-u) + residual_log_mass(log_c, delta)
    lo = s_star.copy()
    m = np.ones_like(s_star)
    grow = np.ones(s_star.shape, dtype=bool)
    while grow.any():
        val = g.log_tail(s_star[grow] + m[grow], log_c[grow], delta[grow], s_star[grow])
        still = val > target[grow]
        idx = np.flatnonzero(grow)
        m[idx[still]] *= 2.0
        grow[idx[~still]] = False
    hi = s_star + m
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        above = g.log_tail(mid, log_c, delta, s_star) > target
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    out = 0.5 * (lo + hi)
    out[u == 0.0] = s_star[u == 0.0]
    return out


def residual_draw(m_p, m_q, s, log_c, u_res, z_orth):
    """ResidualGauss over N rows: x [N, d] ~ normalise((c p - q)_+), c = exp(log_c).
    Returns (x, zero_mass [N] bool); zero-mass rows get m_p + s z_orth (the fallback
    ``residual_zero_mass`` of gaussian.residual_gauss)."""
    diff = m_p - m_q
    norm = np.sqrt(np.sum(diff * diff, axis=-1))
    delta = norm / s
    ok = delta > 0
    if ok.any():
        ok[ok] = np.isfinite(residual_log_mass(log_c[ok], delta[ok]))
    x = m_p + s[:, None] * z_orth
    if ok.any():
        e = diff[ok] / norm[ok, None]
        big_s = residual_quantile(u_res[ok], log_c[ok], delta[ok])
        w = z_orth[ok] - np.sum(e * z_orth[ok], axis=-1, keepdims=True) * e
        x[ok] = m_q[ok] + s[ok, None] * (big_s[:, None] * e + w)
    return x, ~ok


def reflect(m_p, m_q, s, z):
    """Reflection correction Y = m_p + s (z - 2 (e.z) e), e = D/|D| (§2.3) [N, d]."""
    big_d = (m_q - m_p) / s[:, None]
    e = big_d / np.sqrt(np.sum(big_d * big_d, axis=-1, keepdims=True))
    return m_p + s[:, None] * (z - 2 * np.sum(e * z, axis=-1, keepdims=True) * e)


def accepts(eta, ell):
    """Division-free log test: log(eta) < ell (eta = 0 always accepts)."""
    with np.errstate(divide="ignore"):
        return (eta == 0.0) | (np.log(eta) < ell)


def token_tau(ell, lengths, eta):
    """tau [N] of token-level verification: the first rejected step (0-based), or the length."""
    n, big_l = ell.shape
    live = np.arange(big_l)[None, :] < lengths[:, None]
    reject = live & ~accepts(eta, ell)
    first = np.where(reject.any(axis=1), np.argmax(reject, axis=1), lengths)
    return first.astype(np.int64)


def block_tau(ell, delta, lengths, eta):
    """Gaussian block verification (gaussian.verify_gaussian_block) over N rows.

    Returns tau [N], log_p [N, L+1] (log p_0..log p_L) and mass [N, L] (R_i, i < L;
    0 at padding). Index i < length passes iff eta_i (R_i + 1 - p_i) < R_i, index
    ``length`` iff eta < p_length; tau is the largest passing index.
    """
    n, big_l = ell.shape
    log_p = np.zeros((n, big_l + 1))
    for i in range(1, big_l + 1):
        log_p[:, i] = np.minimum(log_p[:, i - 1] + ell[:, i - 1], 0.0)
    mass = np.zeros((n, big_l))
    need = (np.arange(big_l)[None, :] < lengths[:, None]) & (delta > 0) & (log_p[:, :big_l] > -np.inf)
    if need.any():
        mass[need] = np.exp(residual_log_mass(log_p[:, :big_l][need], delta[need]))
    surv = np.exp(log_p)
    tau = np.zeros(n, dtype=np.int64)
    for i in range(1, big_l + 1):  # later passing indices overwrite: tau is the largest
        if i < big_l:
            pass_inner = (i < lengths) & (eta[:, i - 1] * (mass[:, i] + 1 - surv[:, i]) < mass[:, i])
        else:
            pass_inner = np.zeros(n, dtype=bool)
        pass_last = (i == lengths) & (eta[:, i - 1] < surv[:, i])
        tau = np.where(pass_inner | pass_last, i, tau)
    return tau, log_p, mass
