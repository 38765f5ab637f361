"""Batched numba twins of ``specoracle.reference.gaussian``: the Gaussian speculative
step (reflection and Gamma-maximal coupling) and Gaussian window verification
(token-level chain and block verification), ALGORITHMS.md §2.3-§2.5, §3.2, §4.2-§4.3.

Target kernel N(m_p, s^2 I), draft N(m_q, s^2 I). Window shapes (B windows, L steps,
d dimensions), the same batched API as ``fastpath.torch_cuda.gaussian``:
    m_p    [B, L, d] or [B, L+1, d] (the last row enables the bonus draw)
    m_q    [B, L, d]
    s      scalar, [B], or [B, L(+1)] standard deviations
    z      [B, L, d]  draft noise: X~_i = m_q[i] + s_i z[i]
    eta    [B, L]     accept uniforms (eta_i of Alg. 2 for block)
    u_res  [B]        residual uniform (used once, at the correction)
    z_orth [B, d]     fresh orthogonal noise of the residual, or the bonus noise
    keyword lengths [B] in 1..L (ragged windows; row b is the reference on the slices
    [:n(+1)] of m_p / s and [:n] of m_q, z, eta)
One step (``reflection_coupling``, ``gamma_coupling``): m_p, m_q, z, z_orth [B, d];
s scalar or [B]; u, u_res [B]. Noise layout and ``*_rng`` draw order: the reference's
(z, u or eta, u_res, z_orth).

Split of the work: the d-dimensional passes (log-ratios l = -z.D - |D|^2/2 with
D = (m_q - m_p)/s, |D|, the drafts, the residual / reflection / bonus states) are
numba kernels over the batch, reading each mean and noise vector once; the per-window
scalars (log survival, residual masses R(p_i, delta), the 1-D residual quantile) are
the batched NumPy twin's helpers (``fastpath.numpy_batch.gaussian``: the oracle's
Mills-ratio log-tails, 80-step bisection), as are the input checks. Dot products are summed left to right, not in NumPy's
BLAS order, so results agree with the oracle to rounding: rule ``allclose_vs_naive``
(decisions with margin, states allclose; tests/TOLERANCES.md).
"""
from __future__ import annotations

import numba as nb
import numpy as np

from specoracle.reference.validation import check_generator

from ..gaussian_types import GaussianBatchVerdict, GaussianStepBatch  # noqa: F401 (re-exported)
from ..numpy_batch import gaussian as gb
from ..types import FALLBACK_RESIDUAL_ZERO_MASS


# kinds of the last emitted state (assembled by _states_kernel)
_NONE, _RESIDUAL, _ZERO_MASS, _BONUS, _REFLECT = 0, 1, 2, 3, 4

__all__ = ["GaussianBatchVerdict", "GaussianStepBatch", "reflection_coupling", "gamma_coupling",
           "verify_gaussian_chain", "verify_gaussian_block", "reflection_coupling_rng",
           "gamma_coupling_rng", "verify_gaussian_chain_rng", "verify_gaussian_block_rng"]


# ---------------------------------------------------------------- kernels (d-dimensional passes)


@nb.njit(cache=True, parallel=True)
def _log_ratio_kernel(m_p, m_q, s, z, lengths, ell, delta):
    """ell[b, i] = -z.D - |D|^2 / 2, delta[b, i] = |D|, D = (m_q - m_p)/s, for i < lengths[b]."""
    bsz, big_l, d = m_q.shape
    for b in nb.prange(bsz):
        for i in range(lengths[b]):
            zd = 0.0
            dd = 0.0
            si = s[b, i]
            for j in range(d):
                dj = (m_q[b, i, j] - m_p[b, i, j]) / si
                zd += z[b, i, j] * dj
                dd += dj * dj
            ell[b, i] = -zd - 0.5 * dd
            delta[b, i] = np.sqrt(dd)


@nb.njit(cache=True, parallel=True)
def _states_kernel(m_p, m_q, s, z, z_orth, tau, lengths, kind, big_s, reuse_orth, states):
    """states[b, :tau] = drafts; states[b, tau] = the correction / bonus by ``kind``;
    NaN in the rows after the emitted ones (``states`` comes in uninitialised)."""
    bsz, big_l, d = m_q.shape
    for b in nb.prange(bsz):
        t = tau[b]
        for i in range(t):
            for j in range(d):
                states[b, i, j] = m_q[b, i, j] + s[b, i] * z[b, i, j]
        k = kind[b]
        for i in range(t + (k != _NONE), big_l + 1):
            for j in range(d):
                states[b, i, j] = np.nan
        if k == _NONE:
            continue
        if k == _BONUS:
            n = lengths[b]
            for j in range(d):
                states[b, t, j] = m_p[b, n, j] + s[b, n] * z_orth[b, j]
        elif k == _ZERO_MASS:
            for j in range(d):
                states[b, t, j] = m_p[b, t, j] + s[b, t] * z_orth[b, j]
        elif k == _REFLECT:
            # Y = m_p + s (z - 2 (e.z) e), e = D/|D|, D = (m_q - m_p)/s
            nn = 0.0
            for j in range(d):
                dj = (m_q[b, t, j] - m_p[b, t, j]) / s[b, t]
                nn += dj * dj
            nn = np.sqrt(nn)
            ez = 0.0
            for j in range(d):
                ez += (m_q[b, t, j] - m_p[b, t, j]) / s[b, t] / nn * z[b, t, j]
            for j in range(d):
                e = (m_q[b, t, j] - m_p[b, t, j]) / s[b, t] / nn
                states[b, t, j] = m_p[b, t, j] + s[b, t] * (z[b, t, j] - 2.0 * ez * e)
        else:
            # ResidualGauss: x = m_q + s (S e + W), e = (m_p - m_q)/|m_p - m_q|,
            # W = w0 - (e.w0) e with w0 = z_orth (fresh) or the rejected draft's z
            nn = 0.0
            for j in range(d):
                dj = m_p[b, t, j] - m_q[b, t, j]
                nn += dj * dj
            nn = np.sqrt(nn)
            ew = 0.0
            for j in range(d):
                w0 = z[b, t, j] if reuse_orth else z_orth[b, j]
                ew += (m_p[b, t, j] - m_q[b, t, j]) / nn * w0
            for j in range(d):
                e = (m_p[b, t, j] - m_q[b, t, j]) / nn
                w0 = z[b, t, j] if reuse_orth else z_orth[b, j]
                states[b, t, j] = m_q[b, t, j] + s[b, t] * (big_s[b] * e + (w0 - ew * e))


# ---------------------------------------------------------------- inputs


def _residual_kind_and_s(m_p, m_q, s, tau, n, log_c, delta, u_res, rows):
    """Kind (_RESIDUAL / _ZERO_MASS) and S of ResidualGauss for ``rows`` (corrected rows)."""
    kind = np.full(tau.shape[0], _NONE, np.int64)
    big_s = np.zeros(tau.shape[0])
    if rows.size == 0:
        return kind, big_s
    t = tau[rows]
    dl = delta[rows, t]  # |D| = |m_p - m_q| / s at the rejected step
    lc = log_c[rows]
    ok = dl > 0
    if ok.any():
        ok[ok] = np.isfinite(gb.residual_log_mass(lc[ok], dl[ok])) & np.isfinite(dl[ok] / 2 - lc[ok] / dl[ok])
    kind[rows] = np.where(ok, _RESIDUAL, _ZERO_MASS)
    if ok.any():
        big_s[rows[ok]] = gb.residual_quantile(u_res[rows[ok]], lc[ok], dl[ok])
    return kind, big_s


def _assemble(m_p, m_q, s, z, z_orth, tau, n, kind, big_s, reuse_orth, ell, log_surv, mass, has_bonus):
    bsz, big_l, d = m_q.shape
    states = np.empty((bsz, big_l + 1, d))
    _states_kernel(m_p, m_q, s, z, z_orth, tau, n, kind, big_s, reuse_orth, states)
    corrected = tau < n
    bonus = kind == _BONUS
    n_emitted = tau + (kind != _NONE)
    fb = np.where(kind == _ZERO_MASS, FALLBACK_RESIDUAL_ZERO_MASS, 0).astype(np.int32)
    return GaussianBatchVerdict(tau, states, n_emitted, bonus, corrected, ell, log_surv, mass, fb, n)


def _window(m_p, m_q, s, z, lengths):
    bsz, big_l, _ = m_q.shape
    ell = np.full((bsz, big_l), np.nan)
    delta = np.full((bsz, big_l), np.nan)
    _log_ratio_kernel(m_p, m_q, s, z, lengths, ell, delta)
    return ell, delta


# ---------------------------------------------------------------- window verifiers


def verify_gaussian_chain(m_p, m_q, s, z, eta, u_res, z_orth, *, coupling="gamma", reuse_orth=False,
                          lengths=None) -> GaussianBatchVerdict:
    """Token-level verification of B windows (A15, §3.2), the twin of the reference's
    ``verify_gaussian_chain`` (algorithm and shapes: fastpath/numpy_batch/gaussian.py, whose
    decision helpers this uses); the d-dimensional passes are the kernels above."""
    gb.check_coupling(coupling)
    m_p, m_q, s, z, eta, u_res, z_orth, n, has_bonus = gb.prepare_windows(m_p, m_q, s, z, eta, u_res, z_orth, lengths)
    bsz, big_l, _ = m_q.shape
    ell, delta = _window(m_p, m_q, s, z, n)
    live = np.arange(big_l)[None, :] < n[:, None]
    tau = gb.token_tau(np.where(live, ell, 0.0), n, eta)
    rows = np.flatnonzero(tau < n)
    if coupling == "reflection":
        kind = np.full(bsz, _NONE, np.int64)
        kind[rows] = _REFLECT
        big_s = np.zeros(bsz)
    else:
        kind, big_s = _residual_kind_and_s(m_p, m_q, s, tau, n, np.zeros(bsz), delta, u_res, rows)
    if has_bonus:
        kind[tau == n] = _BONUS
    log_surv, mass = gb.token_summaries(ell, delta, n)
    return _assemble(m_p, m_q, s, z, z_orth, tau, n, kind, big_s, bool(reuse_orth and coupling == "gamma"),
                     np.where(live, ell, np.nan), log_surv, mass, has_bonus)


def verify_gaussian_block(m_p, m_q, s, z, eta, u_res, z_orth, *, lengths=None) -> GaussianBatchVerdict:
    """Gaussian block verification of B windows (A13; §2.5, §4.3; Sun et al. arXiv
    2403.10444 Algorithm 2), the twin of the reference's ``verify_gaussian_block``
    (algorithm and shapes: fastpath/numpy_batch/gaussian.py, whose decision helpers this
    uses); the d-dimensional passes are the kernels above."""
    m_p, m_q, s, z, eta, u_res, z_orth, n, has_bonus = gb.prepare_windows(m_p, m_q, s, z, eta, u_res, z_orth, lengths)
    bsz, big_l, _ = m_q.shape
    ell, delta = _window(m_p, m_q, s, z, n)
    live = np.arange(big_l)[None, :] < n[:, None]
    tau, log_p, mass = gb.block_tau(np.where(live, ell, 0.0), np.where(live, delta, 0.0), n, eta)
    rows = np.flatnonzero(tau < n)
    log_c = log_p[np.arange(bsz), tau]
    kind, big_s = _residual_kind_and_s(m_p, m_q, s, tau, n, log_c, delta, u_res, rows)
    if has_bonus:
        kind[tau == n] = _BONUS
    log_p = np.where(np.arange(big_l + 1)[None, :] <= n[:, None], log_p, np.nan)
    mass = np.where(live, mass, np.nan)
    return _assemble(m_p, m_q, s, z, z_orth, tau, n, kind, big_s, False, np.where(live, ell, np.nan),
                     log_p, mass, has_bonus)


def _window_noise(rng, m_q):
    check_generator(rng)
    bsz, big_l, d = np.shape(m_q)
    return rng.random((bsz, big_l)), rng.random(bsz), rng.standard_normal((bsz, d))


def verify_gaussian_chain_rng(m_p, m_q, s, z, rng, **kw):
    """:func:`verify_gaussian_chain` with eta = rng.random((B, L)), u_res = rng.random(B),
    z_orth = rng.standard_normal((B, d)) (in that order; B = 1 is the reference's draw)."""
    eta, u_res, z_orth = _window_noise(rng, m_q)
    return verify_gaussian_chain(m_p, m_q, s, z, eta, u_res, z_orth, **kw)


def verify_gaussian_block_rng(m_p, m_q, s, z, rng, **kw):
    """:func:`verify_gaussian_block` with the noise of :func:`verify_gaussian_chain_rng`."""
    eta, u_res, z_orth = _window_noise(rng, m_q)
    return verify_gaussian_block(m_p, m_q, s, z, eta, u_res, z_orth, **kw)


# ---------------------------------------------------------------- one step


def gamma_coupling(m_p, m_q, s, z, u, u_res, z_orth, *, reuse_orth=False) -> GaussianStepBatch:
    """Gamma-maximal coupling (A12, §4.2; paper 1, arXiv 2606.13426), B independent steps;
    twin of the reference's ``gamma_coupling``: draft X~ = m_q + s z, accept iff
    log(u) < l, else ResidualGauss(c = 1) with u_res and z_orth. Shapes [B, d] / [B]."""
    return gb.step_from_window(verify_gaussian_chain, m_p, m_q, s, z, u, u_res, z_orth, "gamma", reuse_orth)


def reflection_coupling(m_p, m_q, s, z, u) -> GaussianStepBatch:
    """Reflection maximal coupling (A10, §2.3; paper 2, arXiv 2501.05370), B independent
    steps; twin of the reference's ``reflection_coupling`` (no residual noise)."""
    bsz, d = np.shape(m_p)
    return gb.step_from_window(verify_gaussian_chain, m_p, m_q, s, z, u, np.zeros(bsz), np.zeros((bsz, d)),
                               "reflection")


def gamma_coupling_rng(m_p, m_q, s, rng, *, reuse_orth=False) -> GaussianStepBatch:
    """:func:`gamma_coupling` with z = rng.standard_normal((B, d)), u = rng.random(B),
    u_res = rng.random(B), z_orth = rng.standard_normal((B, d)), in that order."""
    check_generator(rng)
    bsz, d = np.shape(m_p)
    z, u, u_res, z_orth = (rng.standard_normal((bsz, d)), rng.random(bsz), rng.random(bsz),
                           rng.standard_normal((bsz, d)))
    return gamma_coupling(m_p, m_q, s, z, u, u_res, z_orth, reuse_orth=reuse_orth)


def reflection_coupling_rng(m_p, m_q, s, rng) -> GaussianStepBatch:
    """:func:`reflection_coupling` with z = rng.standard_normal((B, d)), u = rng.random(B)."""
    check_generator(rng)
    bsz, d = np.shape(m_p)
    return reflection_coupling(m_p, m_q, s, rng.standard_normal((bsz, d)), rng.random(bsz))
