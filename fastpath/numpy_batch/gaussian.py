"""Batched float64 NumPy twins of ``specoracle.reference.gaussian`` (ALGORITHMS.md §2.3-§2.5,
§3.2, §4.2-§4.3): token-level window verification with the Gamma-maximal or the
reflection coupling (A15, A12, A10), Gaussian block verification (A13; Sun et al. arXiv
2403.10444 Algorithm 2 with closed-form Gaussian quantities; Soen et al. arXiv
2606.13426), and one step of each coupling.

Same function names and positional parameters as the reference, the batched API of the
numba and torch twins (fastpath/numba_cpu/gaussian.py, fastpath/torch_cuda/gaussian.py),
results in :class:`~specoracle.fastpath.gaussian_types.GaussianBatchVerdict`. Registered
in fastpath/registry.py (backend ``numpy_batch``) and compared with the oracle row by row
by the parity test (rule ``allclose_vs_naive``, tests/TOLERANCES.md).

Shapes (B windows, L steps, d dimensions):
    m_p    [B, L, d] or [B, L+1, d] (the last row enables the bonus draw)
    m_q    [B, L, d]
    s      scalar, [B], or [B, L(+1)] standard deviations (> 0 everywhere, padding too)
    z      [B, L, d]  draft noise: X~_i = m_q[i] + s_i z[i]
    eta    [B, L]     accept uniforms (eta_i of Alg. 2 for block)
    u_res  [B]        residual uniform (used once, at the correction)
    z_orth [B, d]     fresh orthogonal noise of the residual, or the bonus noise
    keyword lengths [B] in 1..L (ragged windows; row b is the reference on the slices
    [:n(+1)] of m_p / s and [:n] of m_q, z, eta; steps >= n are padding, never decided on)
One step (``reflection_coupling``, ``gamma_coupling``): m_p, m_q, z, z_orth [B, d];
s scalar or [B]; u, u_res [B]. Noise layout: the reference's (z, u or eta, u_res, z_orth).

Arithmetic: the oracle's formulas over rows. The log-ratio l = -z.D - |D|^2/2 and the
log residual masses are the reference's closed forms (``gaussian.log_tail``,
``gaussian.residual_log_mass_from_log_c``, vectorised there); the only different
algorithm is the 1-D residual quantile: bracket doubling from s* and ``QUANTILE_ITERS``
bisection steps on the same log-tail equation instead of Brent's method (states agree
to ~1e-12). The scalar helpers below (``block_tau``, ``token_tau``, ``residual_draw``,
``residual_quantile``) are shared by the numba twin, whose kernels do the
d-dimensional passes.
"""
from __future__ import annotations

import numpy as np
from scipy import special

from specoracle.reference import gaussian as g
from specoracle.reference.types import InvalidInput

from ..gaussian_types import GaussianBatchVerdict, GaussianStepBatch
from ..types import FALLBACK_RESIDUAL_ZERO_MASS

#: bisection steps of the residual quantile: 80 halvings of a bracket <= 2^k leave an
#: error far below 1e-13, the reference's Brent tolerance
QUANTILE_ITERS = 80

_SQRT2 = np.sqrt(2.0)

__all__ = ["verify_gaussian_chain", "verify_gaussian_block", "gamma_coupling", "reflection_coupling"]

residual_log_mass = g.residual_log_mass_from_log_c


# ---------------------------------------------------------------- row-wise closed forms


def log_ratios(m_p, m_q, s, z):
    """log r [N, L] = -z.D - |D|^2/2 and delta [N, L] = |D|, D = (m_q - m_p)/s (§2.3, §2.5)."""
    big_d = (m_q - m_p) / s[..., None]
    ell = -np.sum(z * big_d, axis=-1) - 0.5 * np.sum(big_d * big_d, axis=-1)
    return ell, np.sqrt(np.sum(big_d * big_d, axis=-1))


def residual_quantile(u, log_c, delta, iters=QUANTILE_ITERS):
    """S [N]: inverse CDF of the 1-D residual at u (reference ``residual_quantile``), by a
    vectorised bracket doubling and ``iters`` bisection steps on the same log-tail
    equation log T(S) = log1p(-u) + log R."""
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


def residual_draw(m_p, m_q, s, log_c, u_res, z_orth, w_reuse=None):
    """ResidualGauss over N rows: x [N, d] ~ normalise((c p - q)_+), c = exp(log_c), with
    the orthogonal part of z_orth [N, d] (or the given W ``w_reuse`` [N, d], token mode's
    ``reuse_orth``). Returns (x, zero_mass [N] bool); zero-mass rows get m_p + s z_orth
    (the fallback ``residual_zero_mass`` of reference ``residual_gauss``)."""
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
        if w_reuse is None:
            w = z_orth[ok] - np.sum(e * z_orth[ok], axis=-1, keepdims=True) * e
        else:
            w = w_reuse[ok]
        x[ok] = m_q[ok] + s[ok, None] * (big_s[:, None] * e + w)
    return x, ~ok


def orthogonal_part(m_p, m_q, z):
    """W [N, d] = z - (e.z) e, e = (m_p - m_q)/|m_p - m_q|: the rejected draft's own
    orthogonal noise (token mode's ``reuse_orth``, §2.4)."""
    diff = m_p - m_q
    norm = np.linalg.norm(diff, axis=1, keepdims=True)
    e = diff / np.where(norm > 0, norm, 1.0)    # rows with m_p = m_q: W = z (never used)
    return z - np.sum(e * z, axis=1, keepdims=True) * e


def reflect(m_p, m_q, s, z):
    """Reflection correction Y = m_p + s (z - 2 (e.z) e), e = D/|D| (§2.3) [N, d]."""
    big_d = (m_q - m_p) / s[:, None]
    e = big_d / np.sqrt(np.sum(big_d * big_d, axis=-1, keepdims=True))
    return m_p + s[:, None] * (z - 2 * np.sum(e * z, axis=-1, keepdims=True) * e)


def accepts(eta, ell):
    """Division-free log test (§0.3): log(eta) < ell (eta = 0 always accepts)."""
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
    """Gaussian block verification's decision over N rows (reference ``verify_gaussian_block``).

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


def token_summaries(ell, delta, lengths):
    """Token verification's log_survival [B, L+1] (running sum of min(l_i, 0), NaN beyond
    the length) and residual_mass [B, L] (TV_i = erf(delta_i / 2 sqrt 2), NaN at padding)."""
    bsz, big_l = ell.shape
    live = np.arange(big_l)[None, :] < lengths[:, None]
    log_surv = np.full((bsz, big_l + 1), np.nan)
    log_surv[:, 0] = 0.0
    cum = np.cumsum(np.minimum(np.where(live, ell, 0.0), 0.0), axis=1)
    log_surv[:, 1:] = np.where(np.arange(1, big_l + 1)[None, :] <= lengths[:, None], cum, np.nan)
    mass = np.where(live, special.erf(np.where(live, delta, 0.0) / (2 * _SQRT2)), np.nan)
    return log_surv, mass


# ---------------------------------------------------------------- inputs


def as_f64(x, name):
    """A C-contiguous float64 copy-or-view of x; InvalidInput naming the first non-finite entry."""
    arr = np.ascontiguousarray(np.asarray(x, dtype=np.float64))
    # one pass, no temporary: the sum is finite iff every entry is (or it overflowed,
    # in which case the entry-wise check below decides)
    if not np.isfinite(arr.sum()):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise InvalidInput(name, "NaN or infinite value", index=tuple(np.argwhere(bad)[0]))
    return arr


def check_coupling(coupling):
    """The token-level correction: "gamma" (ResidualGauss, §4.2) or "reflection" (§2.3)."""
    if coupling not in ("gamma", "reflection"):
        raise InvalidInput("coupling", f"expected 'gamma' or 'reflection', got {coupling!r}")


def prepare_windows(m_p, m_q, s, z, eta, u_res, z_orth, lengths):
    """Checked float64 window inputs (module docstring shapes): returns
    (m_p, m_q, s [B, L(+1)], z, eta, u_res, z_orth, lengths [B] int64, has_bonus)."""
    m_q = as_f64(m_q, "m_q")
    if m_q.ndim != 3 or 0 in m_q.shape:
        raise InvalidInput("m_q", f"expected [B, L, d], got shape {m_q.shape}")
    bsz, big_l, d = m_q.shape
    m_p = as_f64(m_p, "m_p")
    if m_p.ndim != 3 or m_p.shape[0] != bsz or m_p.shape[2] != d or m_p.shape[1] not in (big_l, big_l + 1):
        raise InvalidInput("m_p", f"expected [{bsz}, {big_l} or {big_l + 1}, {d}], got {m_p.shape}")
    lp = m_p.shape[1]
    s = as_f64(s, "s")
    if s.ndim == 0:
        s = np.full((bsz, lp), float(s))
    elif s.ndim == 1:
        s = np.repeat(s[:, None], lp, axis=1) if s.shape[0] == bsz else s
    if s.shape != (bsz, lp) or not np.all(s > 0):
        raise InvalidInput("s", f"expected positive standard deviations: scalar, [B] or [B, {lp}]")
    s = np.ascontiguousarray(s)
    z = as_f64(z, "z")
    eta = as_f64(eta, "eta")
    u_res = as_f64(u_res, "u_res")
    z_orth = as_f64(z_orth, "z_orth")
    for name, arr, shape in (("z", z, (bsz, big_l, d)), ("eta", eta, (bsz, big_l)),
                             ("u_res", u_res, (bsz,)), ("z_orth", z_orth, (bsz, d))):
        if arr.shape != shape:
            raise InvalidInput(name, f"expected shape {shape}, got {arr.shape}")
    for name, arr in (("eta", eta), ("u_res", u_res)):
        bad = ~((arr >= 0) & (arr < 1))
        if bad.any():
            raise InvalidInput(name, "uniforms must lie in [0, 1)", index=tuple(np.argwhere(bad)[0]))
    if lengths is None:
        n = np.full(bsz, big_l, np.int64)
    else:
        n = np.asarray(lengths).astype(np.int64).reshape(-1)
        if n.shape[0] != bsz or np.any((n < 1) | (n > big_l)):
            raise InvalidInput("lengths", f"expected {bsz} window lengths in 1..{big_l}")
    return m_p, m_q, s, z, eta, u_res, z_orth, n, lp == big_l + 1


# ---------------------------------------------------------------- window verifiers


def _assemble(m_p, m_q, s, z, z_orth, tau, n, corr, zero_mass, has_bonus, ell, log_surv, mass):
    """The batched verdict: states [B, L+1, d] = drafts before tau, then the correction
    ``corr`` [B, d] (rows with tau < n), the bonus m_p[n] + s_n z_orth (tau = n with a
    bonus row) or nothing; NaN after the emitted rows."""
    bsz, big_l, d = m_q.shape
    rows = np.arange(bsz)
    drafts = m_q + s[:, :big_l, None] * z                                 # [B, L, d]
    states = np.full((bsz, big_l + 1, d), np.nan)
    before = np.arange(big_l)[None, :] < tau[:, None]                      # [B, L]
    states[:, :big_l][before] = drafts[before]
    corrected = tau < n
    bonus = ~corrected & has_bonus
    states[rows[corrected], tau[corrected]] = corr[corrected]
    if bonus.any():
        nb = n[bonus]
        states[rows[bonus], nb] = m_p[rows[bonus], nb] + s[rows[bonus], nb][:, None] * z_orth[bonus]
    n_emitted = tau + (corrected | bonus)
    fb = np.where(corrected & zero_mass, FALLBACK_RESIDUAL_ZERO_MASS, 0).astype(np.int32)
    live = np.arange(big_l)[None, :] < n[:, None]
    return GaussianBatchVerdict(tau, states, n_emitted, bonus, corrected, np.where(live, ell, np.nan),
                                log_surv, mass, fb, n)


def _at_tau(arr, tau):
    """Rows arr[b, min(tau_b, L - 1)] of a [B, L, ...] array."""
    return arr[np.arange(arr.shape[0]), np.minimum(tau, arr.shape[1] - 1)]


def verify_gaussian_chain(m_p, m_q, s, z, eta, u_res, z_orth, *, coupling="gamma", reuse_orth=False,
                          lengths=None) -> GaussianBatchVerdict:
    """Token-level verification of B windows (A15, §3.2); twin of the reference's
    ``verify_gaussian_chain``: step i passes iff log(eta_i) < l_i; at the first rejection
    the correction is the Gamma coupling (ResidualGauss c = 1 with u_res and z_orth, or
    the rejected draft's own orthogonal part if ``reuse_orth``) or the reflection; the
    bonus m_p[n] + s_n z_orth when every step passes and m_p has L+1 rows."""
    check_coupling(coupling)
    m_p, m_q, s, z, eta, u_res, z_orth, n, has_bonus = prepare_windows(m_p, m_q, s, z, eta, u_res,
                                                                       z_orth, lengths)
    bsz, big_l, d = m_q.shape
    ell, delta = log_ratios(m_p[:, :big_l], m_q, s[:, :big_l], z)
    tau = token_tau(ell, n, eta)
    corr = np.zeros((bsz, d))
    zero_mass = np.zeros(bsz, dtype=bool)
    c = np.flatnonzero(tau < n)
    if c.size:
        mp, mq, sj, zj = (_at_tau(a[c], tau[c]) for a in (m_p, m_q, s, z))
        if coupling == "reflection":
            corr[c] = reflect(mp, mq, sj, zj)
        else:
            w = orthogonal_part(mp, mq, zj) if reuse_orth else None
            corr[c], zero_mass[c] = residual_draw(mp, mq, sj, np.zeros(c.size), u_res[c], z_orth[c], w)
    log_surv, mass = token_summaries(ell, delta, n)
    return _assemble(m_p, m_q, s, z, z_orth, tau, n, corr, zero_mass, has_bonus, ell, log_surv, mass)


def verify_gaussian_block(m_p, m_q, s, z, eta, u_res, z_orth, *, lengths=None) -> GaussianBatchVerdict:
    """Gaussian block verification of B windows (A13; §2.5, §4.3; Sun et al. arXiv
    2403.10444 Algorithm 2 with closed-form Gaussian quantities); twin of the reference's
    ``verify_gaussian_block``: log p_i = min(log p_{i-1} + l_i, 0), R_i = R(p_i, delta_{i+1});
    index i < n passes iff eta_i (R_i + 1 - p_i) < R_i, index n iff eta_n < p_n; tau is the
    largest passing index; correction ResidualGauss(c = p_tau) with u_res and FRESH z_orth,
    or the bonus m_p[n] + s_n z_orth."""
    m_p, m_q, s, z, eta, u_res, z_orth, n, has_bonus = prepare_windows(m_p, m_q, s, z, eta, u_res,
                                                                       z_orth, lengths)
    bsz, big_l, d = m_q.shape
    ell, delta = log_ratios(m_p[:, :big_l], m_q, s[:, :big_l], z)
    tau, log_p, mass = block_tau(ell, delta, n, eta)
    corr = np.zeros((bsz, d))
    zero_mass = np.zeros(bsz, dtype=bool)
    c = np.flatnonzero(tau < n)
    if c.size:
        mp, mq, sj = (_at_tau(a[c], tau[c]) for a in (m_p, m_q, s))
        corr[c], zero_mass[c] = residual_draw(mp, mq, sj, log_p[c, tau[c]], u_res[c], z_orth[c])
    log_p = np.where(np.arange(big_l + 1)[None, :] <= n[:, None], log_p, np.nan)
    live = np.arange(big_l)[None, :] < n[:, None]
    return _assemble(m_p, m_q, s, z, z_orth, tau, n, corr, zero_mass, has_bonus, ell, log_p,
                     np.where(live, mass, np.nan))


# ---------------------------------------------------------------- one step (A10, A12)


def step_from_window(verify_chain, m_p, m_q, s, z, u, u_res, z_orth, coupling,
                     reuse_orth=False) -> GaussianStepBatch:
    """B independent steps as windows of L = 1 without a bonus row (same formulas, same
    noise), verified by ``verify_chain`` (this module's or another backend's
    ``verify_gaussian_chain``). Shapes: m_p, m_q, z, z_orth [B, d]; s scalar or [B]; u, u_res [B]."""
    m_p = as_f64(m_p, "m_p")
    if m_p.ndim != 2 or 0 in m_p.shape:
        raise InvalidInput("m_p", f"expected [B, d], got shape {m_p.shape}")
    bsz, d = m_p.shape
    s = np.asarray(s, dtype=np.float64)
    s = np.full(bsz, float(s)) if s.ndim == 0 else s
    u = np.asarray(u, dtype=np.float64).reshape(-1)
    if u.shape != (bsz,):
        raise InvalidInput("u", f"expected shape {(bsz,)}, got {u.shape}")
    res = verify_chain(m_p[:, None], np.asarray(m_q, np.float64)[:, None], s,
                       np.asarray(z, np.float64)[:, None], u[:, None], u_res, z_orth,
                       coupling=coupling, reuse_orth=reuse_orth)
    accepted = res.n_accepted == 1
    draft = np.asarray(m_q, np.float64) + s[:, None] * np.asarray(z, np.float64)
    x = np.where(accepted[:, None], draft, res.states[:, 0])
    return GaussianStepBatch(x, accepted, draft, res.log_ratio[:, 0], res.fallbacks)


def gamma_coupling(m_p, m_q, s, z, u, u_res, z_orth, *, reuse_orth=False) -> GaussianStepBatch:
    """Gamma-maximal coupling (A12, §4.2; paper 1, arXiv 2606.13426), B independent steps;
    twin of the reference's ``gamma_coupling``: draft X~ = m_q + s z, accept iff
    log(u) < l, else ResidualGauss(c = 1) with u_res and z_orth. Shapes [B, d] / [B]."""
    return step_from_window(verify_gaussian_chain, m_p, m_q, s, z, u, u_res, z_orth, "gamma", reuse_orth)


def reflection_coupling(m_p, m_q, s, z, u) -> GaussianStepBatch:
    """Reflection maximal coupling (A10, §2.3; paper 2, arXiv 2501.05370), B independent
    steps; twin of the reference's ``reflection_coupling`` (no residual noise)."""
    bsz, d = np.shape(m_p)
    return step_from_window(verify_gaussian_chain, m_p, m_q, s, z, u, np.zeros(bsz), np.zeros((bsz, d)),
                            "reflection")
