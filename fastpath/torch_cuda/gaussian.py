"""Batched Gaussian window verification in torch: the twins of reference/gaussian.py's
``verify_gaussian_chain`` (token-level, A15, §3.2; reflection or Gamma coupling) and
``verify_gaussian_block`` (A13, §2.5, §4.3; Sun et al. arXiv 2403.10444 Algorithm 2
with closed-form Gaussian quantities; paper 1, Soen et al. 2026).

Target kernel N(m_p, s^2 I), draft N(m_q, s^2 I). Shapes (B windows, L steps, d dims):
    m_p    [B, L, d] or [B, L+1, d] (the last row enables the bonus draw)
    m_q    [B, L, d]
    s      scalar, [B], or [B, L(+1)] standard deviations
    z      [B, L, d]  draft noise: X~_i = m_q[i] + s_i z[i]
    eta    [B, L]     accept uniforms (eta_i of Alg. 2 for block)
    u_res  [B]        residual uniform (one per window, used at the correction)
    z_orth [B, d]     fresh orthogonal noise of the residual, or the bonus noise
Keyword ``lengths`` [B] (1..L, default L): ragged windows; row b equals the reference
on (m_p[b, :n(+1)], m_q[b, :n], s[b, :n(+1)], z[b, :n], eta[b, :n], u_res[b], z_orth[b]).

Arithmetic: float64 throughout (inputs of lower precision are upcast), the same
formulas as the reference: l = -z.D - |D|^2/2 with D = (m_q - m_p)/s from the noise;
log-space tests log(eta) < l; block survival log p_i = min(log p_{i-1} + l_i, 0) and
residual masses R(p_i, delta_{i+1}) from the log-tail closed form (Mills-ratio
survival form, Gauss-Legendre quadrature of the cancellation-free density where the
bracket is below the reference's EXPM1_SWITCH); the 1-D residual quantile by bracket
doubling and 80 bisection steps in log-tail space (as fastpath/numpy_batch/gaussian.py).
Dot products sum in a different order than NumPy: rule ``allclose_vs_naive``
(decisions with margin, states allclose), tests/TOLERANCES.md.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from specoracle.reference import gaussian as _ref
from specoracle.reference.types import InvalidInput

from ..gaussian_types import GaussianBatchVerdict, GaussianStepBatch  # noqa: F401 (re-exported)
from ..types import FALLBACK_RESIDUAL_ZERO_MASS

_SQRT2 = math.sqrt(2.0)
_GL_CACHE: dict = {}


def _gl(device):
    key = str(device)
    if key not in _GL_CACHE:
        nodes, weights = np.polynomial.legendre.leggauss(_ref.GAUSS_NODES)
        _GL_CACHE[key] = (torch.tensor(nodes, device=device), torch.tensor(weights, device=device))
    return _GL_CACHE[key]


# ---------------------------------------------------------------- closed forms (float64 tensors)


def log_tail(s, log_c, delta, s_star):
    """log T(s) (reference gaussian.log_tail), elementwise over tensors."""
    a = s - delta
    log1mg = (torch.log(torch.special.erfcx(s / _SQRT2)) - torch.log(torch.special.erfcx(a / _SQRT2))
              - delta * (s - s_star))
    gap = -torch.expm1(log1mg)
    out = log_c + torch.special.log_ndtr(-a) + torch.log(gap)
    slow = ~(gap > _ref.EXPM1_SWITCH)
    if bool(slow.any()):
        nodes, weights = _gl(s.device)
        aa, gs, dl = a[slow], (s - s_star)[slow], delta[slow]
        ub = torch.where(aa < 5.0, 12.0 + torch.clamp(-aa, min=0.0), 60.0 / torch.clamp(aa, min=5.0))
        v = 0.5 * ub[:, None] * (nodes[None, :] + 1.0)
        f = torch.exp(-0.5 * v * v - v * aa[:, None]) * -torch.expm1(-dl[:, None] * (gs[:, None] + v))
        val = 0.5 * ub * (f @ weights)
        out = out.clone()
        out[slow] = log_c[slow] - 0.5 * aa * aa - 0.5 * math.log(2 * math.pi) + torch.log(val)
    return out


def residual_log_mass(log_c, delta):
    """log R(c, delta) (reference gaussian._log_mass), elementwise; delta > 0."""
    one = log_c == 0.0
    s_star = delta / 2 - log_c / delta
    general = log_tail(s_star, log_c, delta, s_star)
    return torch.where(one, torch.log(torch.erf(delta / (2 * _SQRT2))), general)


def residual_quantile(u, log_c, delta, iters: int = 80):
    """S: inverse CDF of the 1-D scaled residual at u, by bracket doubling from s* and
    ``iters`` bisection steps in log-tail space."""
    s_star = delta / 2 - log_c / delta
    target = torch.log1p(-u) + residual_log_mass(log_c, delta)
    lo = s_star.clone()
    m = torch.ones_like(s_star)
    for _ in range(64):
        grow = log_tail(s_star + m, log_c, delta, s_star) > target
        if not bool(grow.any()):
            break
        m = torch.where(grow, 2 * m, m)
    hi = s_star + m
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        above = log_tail(mid, log_c, delta, s_star) > target
        lo = torch.where(above, mid, lo)
        hi = torch.where(above, hi, mid)
    return torch.where(u == 0.0, s_star, 0.5 * (lo + hi))


def residual_draw(m_p, m_q, s, log_c, u_res, z_orth, w_reuse=None):
    """ResidualGauss over rows: x [R, d] ~ normalise((c p - q)_+), and zero_mass [R]
    (rows with delta = 0 or an underflowed mass get m_p + s z_orth, the reference's
    fallback ``residual_zero_mass``)."""
    diff = m_p - m_q
    norm = torch.linalg.vector_norm(diff, dim=-1)
    delta = norm / s
    ok = delta > 0
    safe_delta = torch.where(ok, delta, torch.ones_like(delta))
    lm = residual_log_mass(log_c, safe_delta)
    ok = ok & torch.isfinite(lm) & torch.isfinite(safe_delta / 2 - log_c / safe_delta)
    x = m_p + s[:, None] * z_orth
    if bool(ok.any()):
        e = diff / torch.where(ok, norm, torch.ones_like(norm))[:, None]
        big_s = residual_quantile(u_res, torch.where(ok, log_c, 0.0), safe_delta)
        w = z_orth - (e * z_orth).sum(-1, keepdim=True) * e if w_reuse is None else w_reuse
        x = torch.where(ok[:, None], m_q + s[:, None] * (big_s[:, None] * e + w), x)
    return x, ~ok


# ---------------------------------------------------------------- inputs


def _prepare(m_p, m_q, s, z, eta, u_res, z_orth, lengths, keep_dtype=False):
    """Checked tensors on m_q's device, float64; with ``keep_dtype`` the big [B, L, d]
    tensors m_p, m_q, z keep their float dtype (the fused Triton pass upcasts on load)."""
    f = torch.float64
    numpy_in = not isinstance(m_q, torch.Tensor)
    m_q = torch.as_tensor(m_q) if not isinstance(m_q, torch.Tensor) else m_q
    dev = m_q.device
    cv = lambda x: torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x,  # noqa: E731
                                   device=dev).to(f)
    big = (lambda x: torch.as_tensor(x, device=dev)) if keep_dtype else cv  # noqa: E731
    m_q = big(m_q)
    if not m_q.dtype.is_floating_point:
        m_q = m_q.to(f)
    m_p, z, eta, u_res, z_orth = big(m_p), big(z), cv(eta), cv(u_res), cv(z_orth)
    if m_q.ndim != 3:
        raise InvalidInput("m_q", f"expected [B, L, d], got shape {tuple(m_q.shape)}")
    b, big_l, d = m_q.shape
    if m_p.ndim != 3 or m_p.shape[0] != b or m_p.shape[2] != d or m_p.shape[1] not in (big_l, big_l + 1):
        raise InvalidInput("m_p", f"expected [{b}, {big_l} or {big_l + 1}, {d}], got {tuple(m_p.shape)}")
    has_bonus = m_p.shape[1] == big_l + 1
    s = cv(s)
    if s.ndim == 0:
        s = s.expand(b, m_p.shape[1])
    elif s.ndim == 1:
        s = s[:, None].expand(b, m_p.shape[1])
    if tuple(s.shape) != (b, m_p.shape[1]) or bool((~(s > 0) | ~torch.isfinite(s)).any()):
        raise InvalidInput("s", f"expected positive finite std devs, scalar, [B] or [B, {m_p.shape[1]}]")
    for name, t, shape in (("z", z, (b, big_l, d)), ("eta", eta, (b, big_l)), ("u_res", u_res, (b,)),
                           ("z_orth", z_orth, (b, d))):
        if tuple(t.shape) != shape:
            raise InvalidInput(name, f"expected shape {shape}, got {tuple(t.shape)}")
    for name, t in (("eta", eta), ("u_res", u_res)):
        if bool((~((t >= 0) & (t < 1))).any()):
            raise InvalidInput(name, "uniforms must lie in [0, 1)")
    if lengths is None:
        n = torch.full((b,), big_l, dtype=torch.int64, device=dev)
    else:
        n = torch.as_tensor(np.asarray(lengths) if not isinstance(lengths, torch.Tensor) else lengths,
                            device=dev).to(torch.int64).reshape(-1)
        if n.shape[0] != b or bool(((n < 1) | (n > big_l)).any()):
            raise InvalidInput("lengths", f"expected {b} window lengths in 1..{big_l}")
    return m_p, m_q, s, z, eta, u_res, z_orth, n, has_bonus, numpy_in


def _log_ratios(m_p, m_q, s, z):
    big_l = m_q.shape[1]
    big_d = (m_q - m_p[:, :big_l]) / s[:, :big_l, None]
    ell = -(z * big_d).sum(-1) - 0.5 * (big_d * big_d).sum(-1)
    return ell, torch.linalg.vector_norm(big_d, dim=-1)


def _accepts(eta, ell):
    return (eta == 0.0) | (torch.log(eta) < ell)


def _window(m_p, m_q, s, z, n, impl):
    """The pass over the d-dimensional data: (drafts [B, L, d] or, fused, the states
    buffer [B, L+1, d] holding them; ell [B, L]; delta [B, L]; fused)."""
    from .categorical import _use_triton
    if _use_triton(impl, m_q):
        from . import triton_gaussian
        return (*triton_gaussian.window_stats(m_p, m_q, s, z, n), True)
    big_l = m_q.shape[1]
    drafts = m_q + s[:, :big_l, None] * z
    ell, delta = _log_ratios(m_p, m_q, s, z)
    return drafts, ell, delta, False


def _open_windows(m_p, m_q, s, z, eta, u_res, z_orth, lengths, impl):
    """The opening of chain and block: :func:`_prepare` (the big tensors keep their dtype
    when the fused pass runs), the :func:`_window` pass, and live [B, L] (i < n[b]).
    Returns (m_p, m_q, s, z, eta, u_res, z_orth, n, has_bonus, drafts, ell, delta, fused, live)."""
    fused = _fused(impl, m_q)
    m_p, m_q, s, z, eta, u_res, z_orth, n, has_bonus, _ = _prepare(m_p, m_q, s, z, eta, u_res, z_orth, lengths,
                                                                   keep_dtype=fused)
    drafts, ell, delta, fused = _window(m_p, m_q, s, z, n, "triton" if fused else "torch")
    live = torch.arange(m_q.shape[1], device=m_q.device)[None, :] < n[:, None]
    return m_p, m_q, s, z, eta, u_res, z_orth, n, has_bonus, drafts, ell, delta, fused, live


def _rows(t, bi, j):
    """Rows t[b, j[b]] [B, d] in float64 (the only rows after the fused pass)."""
    return t[bi, j].to(torch.float64)


def _finish(tau, n, drafts, m_p, s, z_orth, has_bonus, corr, zero_mass, ell, log_surv, mass, fused=False):
    b, big_l, d = drafts.shape
    big_l = big_l - 1 if fused else big_l
    dev = drafts.device
    bi = torch.arange(b, device=dev)
    corrected = tau < n
    bonus = ~corrected & has_bonus
    y_bonus = _rows(m_p, bi, n.clamp(max=m_p.shape[1] - 1)) + s[bi, n.clamp(max=s.shape[1] - 1), None] * z_orth
    last = torch.where(corrected[:, None], corr, y_bonus)
    emit_last = corrected | bonus
    if fused:  # rows < tau already hold the drafts: write rows >= tau only
        from . import triton_gaussian
        states = triton_gaussian.fill_states(drafts, tau, emit_last, last)
    else:
        pos = torch.arange(big_l + 1, device=dev)[None, :, None]
        padded = torch.cat([drafts, torch.full((b, 1, d), float("nan"), dtype=drafts.dtype, device=dev)], 1)
        states = torch.where(pos < tau[:, None, None], padded, float("nan"))
        states = torch.where((pos == tau[:, None, None]) & emit_last[:, None, None], last[:, None, :], states)
    n_emitted = tau + emit_last.to(torch.int64)
    fb = torch.where(corrected & zero_mass, FALLBACK_RESIDUAL_ZERO_MASS, 0).to(torch.int32)
    live = torch.arange(big_l, device=dev)[None, :] < n[:, None]
    ell = torch.where(live, ell, float("nan"))
    return GaussianBatchVerdict(tau, states, n_emitted, bonus, corrected, ell, log_surv, mass, fb, n)


# ---------------------------------------------------------------- verifiers


def _fused(impl, m_q) -> bool:
    """Whether the fused Triton pass runs (``impl`` "triton", or "auto" on CUDA tensors)."""
    from .categorical import _use_triton
    return _use_triton(impl, m_q if isinstance(m_q, torch.Tensor) else torch.empty(0))


def verify_gaussian_chain(m_p, m_q, s, z, eta, u_res, z_orth, *, coupling="gamma", reuse_orth=False,
                          lengths=None, impl: str = "auto") -> GaussianBatchVerdict:
    """Token-level verification of B windows (reference ``verify_gaussian_chain``):
    tau = first i with not log(eta_i) < l_i; correction by the Gamma coupling
    (ResidualGauss, c = 1, u_res, z_orth or the rejected draft's own W if reuse_orth)
    or by reflection; bonus m_p[L] + s_L z_orth when every step passes and m_p has L+1 rows.

    ``impl``: "torch", "triton" (the fused (B, L, d) pass of triton_gaussian.py, then
    [B, L] scalars and the tau rows in torch), "auto" (Triton for CUDA tensors)."""
    if coupling not in ("gamma", "reflection"):
        raise InvalidInput("coupling", f"expected 'gamma' or 'reflection', got {coupling!r}")
    (m_p, m_q, s, z, eta, u_res, z_orth, n, has_bonus, drafts, ell, delta, fused,
     live) = _open_windows(m_p, m_q, s, z, eta, u_res, z_orth, lengths, impl)
    b, big_l, d = m_q.shape
    dev = m_q.device
    rej = live & ~_accepts(eta, ell)
    tau = torch.minimum(torch.where(rej, torch.arange(big_l, device=dev), big_l).amin(1), n)
    bi = torch.arange(b, device=dev)
    j = tau.clamp(max=big_l - 1)
    mp_j, mq_j, s_j, z_j = _rows(m_p, bi, j), _rows(m_q, bi, j), s[bi, j], _rows(z, bi, j)
    if coupling == "reflection":
        big_d = (mq_j - mp_j) / s_j[:, None]
        e = big_d / torch.linalg.vector_norm(big_d, dim=-1, keepdim=True)
        corr = mp_j + s_j[:, None] * (z_j - 2 * (e * z_j).sum(-1, keepdim=True) * e)
        zero_mass = torch.zeros(b, dtype=torch.bool, device=dev)
    else:
        w = None
        if reuse_orth:
            diff = mp_j - mq_j
            e = diff / torch.linalg.vector_norm(diff, dim=-1, keepdim=True).clamp_min(1e-300)
            w = z_j - (e * z_j).sum(-1, keepdim=True) * e
        corr, zero_mass = residual_draw(mp_j, mq_j, s_j, torch.zeros_like(s_j), u_res, z_orth, w)
    log_surv = torch.cat([torch.zeros(b, 1, dtype=ell.dtype, device=dev),
                          torch.cumsum(torch.clamp(torch.where(live, ell, 0.0), max=0.0), 1)], 1)
    mass = torch.erf(delta / (2 * _SQRT2))
    return _finish(tau, n, drafts, m_p, s, z_orth, has_bonus, corr, zero_mass, ell, log_surv, mass, fused)


def verify_gaussian_block(m_p, m_q, s, z, eta, u_res, z_orth, *, lengths=None,
                          impl: str = "auto") -> GaussianBatchVerdict:
    """Gaussian block verification of B windows (reference ``verify_gaussian_block``):
    log p_i = min(log p_{i-1} + l_i, 0), R_i = R(p_i, delta_{i+1}); index i < n passes
    iff eta_i (R_i + 1 - p_i) < R_i, index n iff eta_n < p_n; tau the largest passing
    index; correction ResidualGauss(c = p_tau) with u_res and fresh z_orth, or the bonus.
    ``impl`` as for :func:`verify_gaussian_chain`."""
    (m_p, m_q, s, z, eta, u_res, z_orth, n, has_bonus, drafts, ell, delta, fused,
     live) = _open_windows(m_p, m_q, s, z, eta, u_res, z_orth, lengths, impl)
    b, big_l, d = m_q.shape
    dev = m_q.device
    lp = [torch.zeros(b, dtype=ell.dtype, device=dev)]
    for i in range(1, big_l + 1):
        lp.append(torch.where(live[:, i - 1], torch.clamp(lp[-1] + ell[:, i - 1], max=0.0), lp[-1]))
    log_p = torch.stack(lp, 1)                                               # [B, L+1]
    need = live & (delta > 0) & (log_p[:, :big_l] > -math.inf)
    mass = torch.zeros(b, big_l, dtype=ell.dtype, device=dev)
    if bool(need.any()):
        mass[need] = torch.exp(residual_log_mass(log_p[:, :big_l][need], delta[need]))
    surv = torch.exp(log_p)
    tau = torch.zeros(b, dtype=torch.int64, device=dev)
    for i in range(1, big_l + 1):
        inner = (i < n) & (eta[:, i - 1] * (mass[:, min(i, big_l - 1)] + 1 - surv[:, i]) < mass[:, min(i, big_l - 1)])
        last = (i == n) & (eta[:, i - 1] < surv[:, i])
        tau = torch.where(inner | last, i, tau)
    bi = torch.arange(b, device=dev)
    j = tau.clamp(max=big_l - 1)
    corr, zero_mass = residual_draw(_rows(m_p, bi, j), _rows(m_q, bi, j), s[bi, j], log_p[bi, tau], u_res, z_orth)
    log_p = torch.where(torch.arange(big_l + 1, device=dev)[None, :] <= n[:, None], log_p, float("nan"))
    return _finish(tau, n, drafts, m_p, s, z_orth, has_bonus, corr, zero_mass, ell, log_p, mass, fused)


# ---------------------------------------------------------------- one step (A10, A12)


def _step(m_p, m_q, s, z, u, u_res, z_orth, coupling, reuse_orth=False, impl="auto") -> GaussianStepBatch:
    """One step = a window of L = 1 without a bonus row (same formulas, same noise).
    Fused (Triton) mode keeps m_p, m_q, z in their dtype; the returned draft m_q + s z
    is then formed once more in torch (the fused pass writes it into the states buffer,
    which the correction overwrites)."""
    f = torch.float64
    cv = lambda x: (x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))).to(f)  # noqa: E731
    fused = _fused(impl, m_q)
    big = (lambda x: x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))) if fused else cv  # noqa: E731
    m_p, m_q, z = big(m_p), big(m_q), big(z)
    if m_q.ndim != 2:
        raise InvalidInput("m_q", f"expected [B, d], got shape {tuple(m_q.shape)}")
    b, d = m_q.shape
    dev = m_q.device
    u = cv(u).to(dev).reshape(b, 1)
    s = cv(s).to(dev)
    s = s.reshape(b) if s.ndim else s.expand(b)
    if u_res is None:
        u_res, z_orth = torch.zeros(b, dtype=f, device=dev), torch.zeros(b, d, dtype=f, device=dev)
    w = verify_gaussian_chain(m_p[:, None], m_q[:, None], s, z[:, None], u, u_res, z_orth,
                              coupling=coupling, reuse_orth=reuse_orth, impl="triton" if fused else "torch")
    return GaussianStepBatch(w.states[:, 0], w.n_accepted == 1, m_q.to(dev) + s[:, None] * z.to(dev),
                             w.log_ratio[:, 0], w.fallbacks)


def reflection_coupling(m_p, m_q, s, z, u, *, impl: str = "auto") -> GaussianStepBatch:
    """Batched reflection maximal coupling (reference ``reflection_coupling``, A10, §2.3):
    accept the draft m_q + s z iff log(u) < l, else Y = m_p + s (z - 2 (e.z) e).
    Shapes: m_p, m_q, z [B, d]; s scalar or [B]; u [B]."""
    return _step(m_p, m_q, s, z, u, None, None, "reflection", impl=impl)


def gamma_coupling(m_p, m_q, s, z, u, u_res, z_orth, *, reuse_orth=False, impl: str = "auto") -> GaussianStepBatch:
    """Batched Gamma-maximal coupling (reference ``gamma_coupling``, A12, §4.2): accept iff
    log(u) < l, else ResidualGauss(c = 1) with u_res [B] and z_orth [B, d]."""
    return _step(m_p, m_q, s, z, u, u_res, z_orth, "gamma", reuse_orth, impl)


def _window_noise_rng(rng, m_q):
    b, big_l, d = np.shape(m_q)
    if isinstance(rng, np.random.Generator):
        return rng.random((b, big_l)), rng.random(b), rng.standard_normal((b, d))
    raise InvalidInput("rng", f"expected a numpy.random.Generator, got {type(rng).__name__}")


def verify_gaussian_chain_rng(m_p, m_q, s, z, rng, **kw):
    """:func:`verify_gaussian_chain` with eta = rng.random((B, L)), u_res = rng.random(B),
    z_orth = rng.standard_normal((B, d))."""
    return verify_gaussian_chain(m_p, m_q, s, z, *_window_noise_rng(rng, m_q), **kw)


def verify_gaussian_block_rng(m_p, m_q, s, z, rng, **kw):
    """:func:`verify_gaussian_block` with the noise of :func:`verify_gaussian_chain_rng`."""
    return verify_gaussian_block(m_p, m_q, s, z, *_window_noise_rng(rng, m_q), **kw)
