"""Batched, ragged verification of Gaussian speculative windows (float64 NumPy).

The vectorised twin, over a batch of B chains with their own window lengths, of the
oracle's ``specoracle.reference.gaussian.verify_gaussian_chain`` (token level, with the
Gamma-maximal or the reflection coupling) and ``verify_gaussian_block`` (block
verification), ALGORITHMS.md §2.3-§2.5, §3.2, §4.2-§4.3 (De Bortoli et al., arXiv
2501.05370; Soen et al., arXiv 2606.13426; Sun et al., arXiv 2403.10444, Algorithm 2).
Bonus step: off (the §9 default); a window with tau = n_b emits its n_b drafts.

Shapes (B chains, window L, dimension D; row b uses its first n_b = lengths[b] steps):
    m_p  [B, L, D]  target means m^p(X~_{i-1}) of steps i = 1..L
    m_q  [B, L, D]  draft means  m^q(X~_{i-1})
    s    [B, L]     kernel standard deviations (> 0 where used)
    NOISE (the reference's window layout, one row per chain):
    z      [B, L, D]  draft noise: X~_i = m_q[:, i-1] + s[:, i-1] z[:, i-1]
    eta    [B, L]     accept uniforms (token: u of step i; block: eta_i)
    u_res  [B]        residual uniform
    z_orth [B, D]     fresh orthogonal noise of the residual
Row b equals the reference on (m_p[b, :n_b], m_q[b, :n_b], s[b, :n_b], z[b, :n_b],
eta[b, :n_b], u_res[b], z_orth[b]): identical decisions, states equal up to the
residual quantile's solver tolerance (bisection here, brentq there; tests/TOLERANCES.md).

The closed forms are evaluated as in the reference, in log-survival space
(R(c, delta) = c Phibar(s* - delta) (1 - Phibar(s*)/(c Phibar(s* - delta))), bracket by
expm1). Rows where that bracket falls below ``EXPM1_SWITCH`` (tiny delta: the two
survival terms nearly cancel) are delegated to the reference's scalar functions, which
integrate the cancellation-free density; the count is reported as ``n_scalar_fallback``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from specoracle.reference import gaussian as ref
from specoracle.reference.types import InvalidInput

METHODS = ("block", "token", "reflection")
BISECTION_ITERS = 200          # bracket halvings; stops early once the bracket stops shrinking
_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class WindowBatch:
    """Result of :func:`verify_windows` for B chains.

    n_accepted [B] int64: tau_b accepted drafts; n_emitted [B]: tau_b + 1 if corrected else tau_b;
    states [B, L, D]: emitted states (rows >= n_emitted[b] are NaN padding);
    corrected [B] bool; log_ratio [B, L] (NaN beyond lengths[b]);
    log_survival [B, L+1] (block: log p_i; token: running sum of min(log r_i, 0));
    fallbacks [B] int32: 1 = residual of zero mass (target draw instead, as the reference);
    n_scalar_fallback: rows whose residual went to the reference's scalar path.
    """

    n_accepted: np.ndarray
    n_emitted: np.ndarray
    states: np.ndarray
    corrected: np.ndarray
    log_ratio: np.ndarray
    log_survival: np.ndarray
    fallbacks: np.ndarray
    n_scalar_fallback: int = 0


def _log_sf(x):
    return special.log_ndtr(-x)


def _log_tail_bracket(s, log_c, delta):
    """(log of c Phibar(s - delta), log Phibar(s)/(c Phibar(s - delta))) elementwise."""
    la = log_c + _log_sf(s - delta)
    return la, _log_sf(s) - la


def log_residual_mass(log_c, delta):
    """log R(c, delta) elementwise [N] and a mask of entries needing the scalar path.

    delta = 0 or c = 0 gives -inf (an empty residual). c = 1 uses log erf(delta / 2 sqrt 2),
    as the reference does.
    """
    log_c = np.asarray(log_c, np.float64)
    delta = np.asarray(delta, np.float64)
    out = np.full(log_c.shape, -np.inf)
    scalar = np.zeros(log_c.shape, bool)
    ok = (delta > 0) & np.isfinite(log_c)
    one = ok & (log_c == 0.0)
    with np.errstate(divide="ignore"):
        out[one] = np.log(special.erf(delta[one] / (2 * _SQRT2)))
    gen = ok & ~one
    if gen.any():
        lc, dl = log_c[gen], delta[gen]
        s_star = dl / 2 - lc / dl
        la, d = _log_tail_bracket(s_star, lc, dl)
        bracket = -np.expm1(d)
        good = bracket > ref.EXPM1_SWITCH
        vals = np.full(lc.shape, -np.inf)
        vals[good] = la[good] + np.log(bracket[good])
        out[gen] = vals
        sc = np.zeros(lc.shape, bool)
        sc[~good] = True
        scalar[gen] = sc
    return out, scalar


def residual_quantile(u, log_c, delta, log_mass):
    """Vectorised inverse CDF of the 1-D residual (c phi(s - delta) - phi(s))_+ / R.

    Solves log T(S) = log1p(-u) + log R on S >= s* (T the residual tail in log-survival
    form), bracket [s*, s* + M] with M doubled from 1, then bisection until the bracket
    stops shrinking (float64 resolution). Entries must have finite log_mass and not need
    the scalar path (callers route those to the reference).
    """
    u, log_c, delta, log_mass = (np.asarray(a, np.float64) for a in (u, log_c, delta, log_mass))
    s_star = delta / 2 - log_c / delta
    target = np.log1p(-u) + log_mass

    def f(s):
        la, d = _log_tail_bracket(s, log_c, delta)
        with np.errstate(divide="ignore"):
            return la + np.log(-np.expm1(np.minimum(d, 0.0))) - target

    m = np.ones_like(s_star)
    for _ in range(64):
        high = f(s_star + m) > 0
        if not high.any():
            break
        m = np.where(high, 2 * m, m)
    lo, hi = s_star.copy(), s_star + m
    for _ in range(BISECTION_ITERS):
        mid = 0.5 * (lo + hi)
        if np.all((mid == lo) | (mid == hi)):
            break
        pos = f(mid) > 0
        lo = np.where(pos, mid, lo)
        hi = np.where(pos, hi, mid)
    res = 0.5 * (lo + hi)
    return np.where(u == 0.0, s_star, res)


def _accepts(u, ell):
    with np.errstate(divide="ignore"):
        return (u == 0.0) | (np.log(u) < ell)


def _check(m_p, m_q, s, z, eta, u_res, z_orth, lengths):
    m_q = np.asarray(m_q, np.float64)
    if m_q.ndim != 3:
        raise InvalidInput("m_q", f"expected [B, L, D], got shape {m_q.shape}")
    B, L, D = m_q.shape
    arrs = {"m_p": (m_p, (B, L, D)), "s": (s, (B, L)), "z": (z, (B, L, D)), "eta": (eta, (B, L)),
            "u_res": (u_res, (B,)), "z_orth": (z_orth, (B, D))}
    out = {}
    for name, (a, shape) in arrs.items():
        a = np.asarray(a, np.float64)
        if a.shape != shape:
            raise InvalidInput(name, f"expected shape {shape}, got {a.shape}")
        out[name] = a
    lengths = np.asarray(lengths, np.int64)
    if lengths.shape != (B,) or np.any(lengths < 1) or np.any(lengths > L):
        raise InvalidInput("lengths", f"expected [B] integers in 1..{L}")
    return m_q, out, lengths


def verify_windows(m_p, m_q, s, z, eta, u_res, z_orth, lengths, *, method: str = "block",
                   reuse_orth: bool = False) -> WindowBatch:
    """Verify B ragged windows at once (module docstring). ``method``: "block" (block
    verification, residual scaled by c = p_tau), "token" (token level, Gamma-maximal
    coupling: residual with c = 1, fresh orthogonal noise unless ``reuse_orth``), or
    "reflection" (token level, reflection coupling)."""
    if method not in METHODS:
        raise InvalidInput("method", f"expected one of {METHODS}, got {method!r}")
    if reuse_orth and method != "token":
        raise InvalidInput("reuse_orth", "re-using the draft's orthogonal noise is valid in token mode only")
    m_q, a, n = _check(m_p, m_q, s, z, eta, u_res, z_orth, lengths)
    m_p, s, z, eta, u_res, z_orth = a["m_p"], a["s"], a["z"], a["eta"], a["u_res"], a["z_orth"]
    B, L, D = m_q.shape
    pos = np.arange(L)[None, :]                                   # [1, L]
    valid = pos < n[:, None]                                      # [B, L]
    if np.any(valid & ~(s > 0)):
        raise InvalidInput("s", "standard deviation must be finite and > 0",
                           index=tuple(np.argwhere(valid & ~(s > 0))[0]))
    s_safe = np.where(valid, s, 1.0)
    big_d = (m_q - m_p) / s_safe[:, :, None]                      # [B, L, D]
    ell = -np.einsum("bld,bld->bl", z, big_d) - 0.5 * np.einsum("bld,bld->bl", big_d, big_d)
    delta = np.sqrt(np.einsum("bld,bld->bl", big_d, big_d))      # [B, L]
    ell = np.where(valid, ell, np.nan)
    drafts = m_q + s_safe[:, :, None] * z                         # [B, L, D]
    rows = np.arange(B)

    if method == "block":
        log_p = np.zeros((B, L + 1))
        for i in range(1, L + 1):
            step = np.where(valid[:, i - 1], ell[:, i - 1], 0.0)
            log_p[:, i] = np.minimum(log_p[:, i - 1] + step, 0.0)
        log_mass, scalar = log_residual_mass(np.where(valid, log_p[:, :L], -np.inf), delta)
        for b, i in zip(*np.nonzero(scalar)):   # tiny delta: the reference's quadrature path
            log_mass[b, i] = ref._log_mass(float(log_p[b, i]), float(delta[b, i]))
        surv = np.exp(log_p)                                      # [B, L+1]
        mass = np.exp(log_mass)                                   # [B, L]
        # index i in 1..n_b-1 passes iff eta_i (R_i + 1 - p_i) < R_i; index n_b iff eta < p_{n_b}
        passed = np.zeros((B, L + 1), bool)
        for i in range(1, L + 1):
            if i < L:
                inner = eta[:, i - 1] * (mass[:, i] + 1 - surv[:, i]) < mass[:, i]
            else:
                inner = np.zeros(B, bool)
            last = eta[:, i - 1] < surv[:, i]
            passed[:, i] = np.where(i < n, inner, (i == n) & last)
        idx = np.arange(L + 1)[None, :]
        tau = np.max(np.where(passed, idx, 0), axis=1)
        log_c_res = log_p[rows, tau]
        survival = log_p
    else:
        acc = _accepts(eta, np.where(valid, ell, -np.inf)) & valid   # [B, L]
        first_rej = np.where(acc, L + 1, pos)
        tau = np.minimum(np.min(first_rej, axis=1), n)
        log_c_res = np.zeros(B)
        survival = np.concatenate([np.zeros((B, 1)), np.cumsum(np.where(valid, np.minimum(ell, 0.0), 0.0), 1)], 1)

    corrected = tau < n
    n_emitted = tau + corrected.astype(np.int64)
    states = np.where((pos < tau[:, None])[:, :, None], drafts, np.nan)
    fallbacks = np.zeros(B, np.int32)
    n_scalar = 0
    cb = np.flatnonzero(corrected)
    if cb.size:
        j = tau[cb]
        mp, mq, sj, zj = m_p[cb, j], m_q[cb, j], s[cb, j], z[cb, j]      # [C, D], [C]
        if method == "reflection":
            dd = (mq - mp) / sj[:, None]
            e = dd / np.linalg.norm(dd, axis=1, keepdims=True)
            y = mp + sj[:, None] * (zj - 2 * np.einsum("cd,cd->c", e, zj)[:, None] * e)
        else:
            y, fb, n_scalar = _residual_rows(mp, mq, sj, log_c_res[cb], u_res[cb], z_orth[cb],
                                             zj if reuse_orth else None)
            fallbacks[cb] = fb
        states[cb, j] = y
    return WindowBatch(tau.astype(np.int64), n_emitted, states, corrected, ell, survival,
                       fallbacks, n_scalar)


def _residual_rows(m_p, m_q, s, log_c, u_res, z_orth, z_reuse):
    """ResidualGauss for C rows: m_p, m_q [C, D], s [C], log_c [C] (log of the scale c),
    u_res [C], z_orth [C, D]; z_reuse [C, D] or None. Returns (y [C, D], fallbacks [C], n_scalar)."""
    diff = m_p - m_q
    norm = np.linalg.norm(diff, axis=1)
    delta = norm / s
    y = np.empty_like(m_p)
    fb = np.zeros(m_p.shape[0], np.int32)
    log_mass, scalar = log_residual_mass(log_c, delta)
    empty = ~np.isfinite(log_mass) & ~scalar
    if empty.any():                       # the reference's "residual_zero_mass" fallback
        y[empty] = m_p[empty] + s[empty, None] * z_orth[empty]
        fb[empty] = 1
    vec = ~empty & ~scalar
    big_s = np.zeros(m_p.shape[0])
    if vec.any():
        big_s[vec] = residual_quantile(u_res[vec], log_c[vec], delta[vec], log_mass[vec])
    for c in np.flatnonzero(scalar):      # tiny delta: the reference's cancellation-free path
        big_s[c] = ref._quantile_log(float(u_res[c]), float(log_c[c]), float(delta[c]))
    ok = ~empty
    if ok.any():
        e = diff[ok] / norm[ok, None]
        src = z_orth[ok] if z_reuse is None else z_reuse[ok]
        w = src - np.einsum("cd,cd->c", e, src)[:, None] * e
        y[ok] = m_q[ok] + s[ok, None] * (big_s[ok, None] * e + w)
    return y, fb, int(scalar.sum())
