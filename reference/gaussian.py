"""One Gaussian speculative step and Gaussian block verification: the continuous oracle.

Target p = N(m_p, s^2 I), draft q = N(m_q, s^2 I) (ALGORITHMS.md §2.1: only the
means differ). p is the target, q the draft. Float64 NumPy/SciPy, one sequence at a
time. The batched twins (fastpath/numpy_batch, fastpath/numba_cpu, fastpath/torch_cuda
``gaussian.py``) are checked against these functions by the parity registry.

Algorithms (ALGORITHMS.md):
  - closed forms (§2.1, §2.4, T6): ``acceptance_rate``, ``total_variation``,
    ``mahalanobis``, ``residual_threshold`` (s*), ``residual_mass`` (R(c, delta)),
    ``residual_log_mass`` (log R, no underflow), ``residual_cdf`` (F(s)),
    ``residual_mean`` (E[S | residual]); every residual function takes (c, delta) in
    that order (after s or u where there is one);
  - reflection maximal coupling (A10, §2.3; De Bortoli et al. 2025, arXiv 2501.05370);
  - ``residual_gauss`` (A11, §2.4): exact fixed-cost sampler of (c p - q)_+ by the
    rank-1 decomposition (§2.2) and a 1-D inverse CDF evaluated in log-survival
    space, for any c in (0, 1]; its 1-D rejection variant (§4.2) and the
    rejection-sampling residual (A14, §3.2), both of random cost;
  - the Gamma-maximal coupling (A12, §4.2; Soen et al. 2026, arXiv 2606.13426);
  - token-level verification of a window (A15, §3.2) and Gaussian block
    verification (A13, §2.5, §4.3; Sun et al., arXiv 2403.10444, Algorithm 2).

NOISE LAYOUT (every core takes its noise; ``*_rng`` wrappers draw it in this order):
  one step (``reflection_coupling``, ``gamma_coupling``):
      z       [d]  standard normal draft noise: the draft is X~ = m_q + s z
      u       ()   accept uniform in [0, 1): accept iff log(u) < l
      u_res   ()   residual uniform in [0, 1) (inverse CDF of the 1-D residual)
      z_orth  [d]  fresh standard normal; its component orthogonal to e is the
                   residual's orthogonal part W (gamma coupling only)
  ``residual_gauss``: u_res (), z_orth [d].
  a window of L steps (``verify_gaussian_chain``, ``verify_gaussian_block``):
      z       [L, d]  draft noise, X~_i = m_q[i-1] + s[i-1] z[i-1]
      eta     [L]     accept uniforms (token: u of step i; block: eta_i of Alg. 2)
      u_res   ()      residual uniform (used once, at the correction)
      z_orth  [d]     fresh orthogonal noise of the residual, or the noise of the
                      bonus draw Y = m_p[L] + s[L] z_orth when tau = L
  ``_rng`` order: z, u (or eta), u_res, z_orth, each from rng.standard_normal /
  rng.random with the shapes above.

The log-ratio is always computed from the noise, cancellation-free:
l = -z.D - |D|^2 / 2 with D = (m_q - m_p)/s (§2.3), never as a difference of two
squared distances.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

from .block import block_tau
from .gaussian_types import GaussianBlockVerdict, GaussianStep
from .types import InvalidInput
from .validation import check_generator

# Solver tolerance of the 1-D inverse CDF (brentq in S): |S - S_true| <= XTOL + RTOL |S|.
QUANTILE_XTOL = 1e-13
QUANTILE_RTOL = 1e-15
# Below this value of g = 1 - Phibar(s)/(c Phibar(s - delta)) the survival form of the
# residual tail would lose more than ~1e-13 relative accuracy (error ~ 1e-16 / g); the
# tail is then integrated from the cancellation-free density
# c phi(s - delta) (-expm1(-delta (s - s*))) instead (§2.4), see ``log_tail``.
EXPM1_SWITCH = 1e-3
GAUSS_NODES = 160
_GL = np.polynomial.legendre.leggauss(GAUSS_NODES)

_SQRT2 = math.sqrt(2.0)

# ---------------------------------------------------------------- validation


def _vector(x, name, d=None):
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise InvalidInput(name, f"expected a 1-D vector, got shape {arr.shape}")
    if d is not None and arr.shape[0] != d:
        raise InvalidInput(name, f"dimension {arr.shape[0]} differs from the expected {d}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise InvalidInput(name, "NaN or infinite value", index=int(np.argmax(bad)))
    return arr


def _matrix(x, name, rows, d):
    """A finite float64 [rows, d] array; rows is a tuple of allowed lengths or None (any >= 1)."""
    arr = np.asarray(x, dtype=np.float64)
    ok_rows = arr.ndim == 2 and (arr.shape[0] >= 1 if rows is None else arr.shape[0] in rows)
    if not ok_rows or arr.shape[1] == 0 or (d is not None and arr.shape[1] != d):
        want = " or ".join(f"[{r}, {d if d is not None else 'd'}]" for r in (rows or ("L",)))
        raise InvalidInput(name, f"expected shape {want}, got {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise InvalidInput(name, "NaN or infinite value", index=tuple(np.argwhere(bad)[0]))
    return arr


def _std(s, name="s"):
    s = float(np.asarray(s, dtype=np.float64))
    if not math.isfinite(s) or not s > 0:
        raise InvalidInput(name, f"standard deviation must be finite and > 0, got {s!r}")
    return s


def _stds(s, name, length):
    arr = np.asarray(s, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(length, float(arr))
    if arr.ndim != 1 or arr.shape[0] != length:
        raise InvalidInput(name, f"expected a scalar or {length} standard deviations, got shape {arr.shape}")
    bad = ~(np.isfinite(arr) & (arr > 0))
    if bad.any():
        raise InvalidInput(name, "standard deviation must be finite and > 0", index=int(np.argmax(bad)))
    return arr


def _uniform(u, name):
    u = float(u)
    if not 0.0 <= u < 1.0:
        raise InvalidInput(name, f"uniform must lie in [0, 1), got {u!r}")
    return u


def _uniforms(u, name, length):
    arr = np.asarray(u, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] != length:
        raise InvalidInput(name, f"expected {length} uniforms, got shape {arr.shape}")
    bad = ~((arr >= 0) & (arr < 1))
    if bad.any():
        raise InvalidInput(name, "uniforms must lie in [0, 1)", index=int(np.argmax(bad)))
    return arr


def _scale(c, name="c"):
    c = float(c)
    if not (math.isfinite(c) and 0.0 < c <= 1.0):
        raise InvalidInput(name, f"the residual scale must lie in (0, 1], got {c!r}")
    return c


def _delta(delta, name="delta"):
    delta = float(delta)
    if not (math.isfinite(delta) and delta >= 0):
        raise InvalidInput(name, f"expected a finite distance >= 0, got {delta!r}")
    return delta


# ---------------------------------------------------------------- closed forms (§2.1, §2.4, T6)


def acceptance_rate(delta) -> float:
    """Maximal acceptance 1 - TV = 2 Phi(-delta/2) (§2.1), computed as erfc(delta / (2 sqrt 2))."""
    return float(special.erfc(_delta(delta) / (2 * _SQRT2)))


def total_variation(delta) -> float:
    """TV(N(mu1, S), N(mu2, S)) = 2 Phi(delta/2) - 1 = erf(delta / (2 sqrt 2)) (§2.1)."""
    return float(special.erf(_delta(delta) / (2 * _SQRT2)))


def standardized_distance(m_p, m_q, s) -> float:
    """delta = |m_p - m_q| / s for covariance s^2 I."""
    m_p = _vector(m_p, "m_p")
    m_q = _vector(m_q, "m_q", m_p.shape[0])
    return float(np.linalg.norm(m_p - m_q) / _std(s))


def mahalanobis(mu1, mu2, cov) -> float:
    """Delta = sqrt((mu1 - mu2)^T cov^{-1} (mu1 - mu2)) for a general covariance (§2.1).

    Uses a Cholesky factorisation: cov must be symmetric positive definite.
    """
    mu1 = _vector(mu1, "mu1")
    mu2 = _vector(mu2, "mu2", mu1.shape[0])
    cov = np.asarray(cov, dtype=np.float64)
    if cov.shape != (mu1.shape[0], mu1.shape[0]):
        raise InvalidInput("cov", f"expected shape {(mu1.shape[0],) * 2}, got {cov.shape}")
    if not np.all(np.isfinite(cov)) or not np.allclose(cov, cov.T, rtol=1e-12, atol=0):
        raise InvalidInput("cov", "must be finite and symmetric")
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise InvalidInput("cov", "not positive definite") from None
    w = np.linalg.solve(chol, mu1 - mu2)
    return float(np.sqrt(w @ w))


def residual_threshold(c, delta) -> float:
    """s* = delta/2 - ln(c)/delta: c phi(s - delta) > phi(s) iff s > s* (§2.4). delta > 0."""
    c, delta = _scale(c), _delta(delta)
    if delta == 0:
        raise InvalidInput("delta", "the residual of two equal Gaussians is empty (delta = 0)")
    return _s_star(math.log(c), delta)


def _s_star(log_c, delta):
    return delta / 2 - log_c / delta


def _log_sf(x):
    """log Phi-bar(x) = log P(N(0,1) > x), accurate in both tails."""
    return float(special.log_ndtr(-x))


def log_tail(s, log_c, delta, s_star):
    """log T(s), T(s) = int_s^inf (c phi(t - delta) - phi(t)) dt for s >= s* (§2.4).

    Vectorised over NumPy arrays (also used by the batched twins). Two exact
    forms, chosen by the size of the bracket g = 1 - Phibar(s) / (c Phibar(s - delta)):
      - g > EXPM1_SWITCH: survival form T = c Phibar(s - delta) g, with log Phibar from
        log_ndtr and log(1 - g) = log erfcx(s/sqrt2) - log erfcx((s - delta)/sqrt2)
        - delta (s - s*) (Mills ratios: no cancellation of two large log-survivals),
        then g = -expm1(.);
      - otherwise the cancellation-free density c phi(t - delta) (-expm1(-delta (t - s*)))
        integrated by GAUSS_NODES-point Gauss-Legendre over v = t - s in [0, ub], with
        the factor c phi(s - delta) taken out (ub: the integrand is < e^-60 beyond).
    """
    if all(isinstance(v, float) for v in (s, log_c, delta, s_star)):
        return _log_tail_scalar(s, log_c, delta, s_star)
    s, log_c, delta, s_star = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64)
                                                    for a in (s, log_c, delta, s_star)))
    a = s - delta
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        log1mg = (np.log(special.erfcx(s / _SQRT2)) - np.log(special.erfcx(a / _SQRT2))
                  - delta * (s - s_star))
        gap = -np.expm1(log1mg)
        out = log_c + special.log_ndtr(-a) + np.log(gap)
    slow = ~(gap > EXPM1_SWITCH)
    if slow.any():
        out = np.array(out, dtype=np.float64, copy=True)
        out[slow] = _log_tail_quadrature(a[slow], s[slow] - s_star[slow], log_c[slow], delta[slow])
    return out if out.ndim else float(out)


def _log_tail_scalar(s, log_c, delta, s_star):
    """``log_tail`` for Python floats: the same formulas, without array overhead."""
    a = s - delta
    log1mg = (math.log(special.erfcx(s / _SQRT2)) - math.log(special.erfcx(a / _SQRT2))
              - delta * (s - s_star))
    gap = -math.expm1(log1mg)
    if gap > EXPM1_SWITCH:
        return log_c + float(special.log_ndtr(-a)) + math.log(gap)
    return float(_log_tail_quadrature(np.array([a]), np.array([s - s_star]), np.array([log_c]),
                                      np.array([delta]))[0])


def _log_tail_quadrature(a, gap_s, log_c, delta):
    """log T by Gauss-Legendre (see ``log_tail``); a = s - delta, gap_s = s - s* >= 0."""
    nodes, weights = _GL
    ub = np.where(a < 5.0, 12.0 + np.maximum(-a, 0.0), 60.0 / np.maximum(a, 5.0))  # [n]
    v = 0.5 * ub[:, None] * (nodes[None, :] + 1.0)                                  # [n, G]
    f = np.exp(-0.5 * v * v - v * a[:, None]) * -np.expm1(-delta[:, None] * (gap_s[:, None] + v))
    val = 0.5 * ub * (f @ weights)
    return log_c - 0.5 * a * a - 0.5 * math.log(2 * math.pi) + np.log(val)


def _log_mass(log_c, delta):
    """log R(c, delta) (c = exp(log_c) <= 1, delta > 0); R(1, delta) = erf(delta / 2 sqrt 2)."""
    if log_c == 0.0:
        x = delta / (2 * _SQRT2)
        if x < 1e-100:  # erf(x) = 2x/sqrt(pi) (1 - x^2/3 + ...): no underflow of x itself
            return math.log(delta) - math.log(_SQRT2 * math.sqrt(math.pi))
        return math.log(special.erf(x))
    s_star = _s_star(log_c, delta)
    return log_tail(s_star, log_c, delta, s_star)


def residual_log_mass_from_log_c(log_c, delta):
    """log R(c, delta) elementwise over arrays (c = exp(log_c) in (0, 1], delta > 0).

    The vectorised form of :func:`residual_log_mass`, taking log c because the block
    verifier's scale c = p_i underflows long before log p_i does (§2.5): log erf(delta /
    (2 sqrt 2)) where log_c = 0, else ``log_tail`` at s* (itself vectorised). Used by
    closed forms over grids (reference/targets_continuous.py) and by the batched twins.
    """
    log_c = np.asarray(log_c, dtype=np.float64)
    delta = np.asarray(delta, dtype=np.float64)
    out = np.empty(log_c.shape)
    one = log_c == 0.0
    with np.errstate(divide="ignore"):
        out[one] = np.log(special.erf(delta[one] / (2 * _SQRT2)))
    rest = ~one
    s_star = delta[rest] / 2 - log_c[rest] / delta[rest]
    out[rest] = log_tail(s_star, log_c[rest], delta[rest], s_star)
    return out


def residual_mass(c, delta) -> float:
    """R(c, delta) = int (c phi(s - delta) - phi(s))_+ ds = c Phibar(s* - delta) - Phibar(s*) (§2.4).

    For two Gaussians N(m_p, s^2 I), N(m_q, s^2 I) with delta = |m_p - m_q|/s this is the
    mass of (c p - q)_+. R(1, delta) = TV. R(c, 0) = 0 for c <= 1. Evaluated in
    log-survival space (see ``log_tail``), never as a difference of CDFs. Underflows to
    0 where R < ~1e-308 (small c with small delta): use :func:`residual_log_mass` there.
    """
    c, delta = _scale(c), _delta(delta)
    if delta == 0:
        return 0.0
    return math.exp(_log_mass(math.log(c), delta))


def residual_log_mass(c, delta) -> float:
    """log R(c, delta), finite wherever R > 0, also where :func:`residual_mass` underflows.

    R(c, delta) = c Phibar(s* - delta) - Phibar(s*), s* = delta/2 - ln(c)/delta (§2.4), so
    log R = ln c + log Phibar(s* - delta) + log(1 - Phibar(s*) / (c Phibar(s* - delta))),
    evaluated by ``log_tail`` at s = s* (log_ndtr and erfcx Mills ratios, or Gauss-Legendre
    on the cancellation-free density when the bracket is small); c = 1:
    log erf(delta / (2 sqrt 2)) (log(delta / sqrt(2 pi)) below delta ~ 1e-100).
    -inf for delta = 0 (the residual of two equal Gaussians is empty).
    Example: R(1e-3, 0.01) ~ exp(-2.39e5), far below the smallest float64.
    """
    c, delta = _scale(c), _delta(delta)
    if delta == 0:
        return -math.inf
    return float(_log_mass(math.log(c), delta))


def residual_cdf(s, c, delta) -> float:
    """F(s) = P(S <= s) under the 1-D residual density (c phi(s - delta) - phi(s))_+ / R (§2.4).

    Computed as 1 - T(s)/R with T the residual tail (survival form): F = 0 below s*.
    """
    c, delta = _scale(c), _delta(delta)
    if delta == 0:
        raise InvalidInput("delta", "the residual of two equal Gaussians is empty (delta = 0)")
    log_c = math.log(c)
    s_star = _s_star(log_c, delta)
    s = float(s)
    if s <= s_star:
        return 0.0
    return float(-math.expm1(log_tail(s, log_c, delta, s_star) - _log_mass(log_c, delta)))


def residual_mean(c, delta) -> float:
    """E[S | residual] of the 1-D residual (S measured from m_q along e, §2.4, T6).

    Arguments in the order of every residual function: (c, delta).
    c = 1: delta Phi(delta/2) / (2 Phi(delta/2) - 1). General c:
    (c (delta Phibar(s* - delta) + phi(s* - delta)) - phi(s*)) / R(c, delta).
    """
    c, delta = _scale(c), _delta(delta)
    if delta == 0:
        raise InvalidInput("delta", "the residual of two equal Gaussians is empty (delta = 0)")
    if c == 1.0:
        return float(delta * special.ndtr(delta / 2) / special.erf(delta / (2 * _SQRT2)))
    s_star = _s_star(math.log(c), delta)
    num = c * (delta * special.ndtr(-(s_star - delta)) + _phi(s_star - delta)) - _phi(s_star)
    return float(num / residual_mass(c, delta))


def _phi(x):
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


# ---------------------------------------------------------------- the 1-D residual (§2.4)


def residual_quantile(u, c, delta) -> float:
    """Inverse CDF of the 1-D residual (c phi(s - delta) - phi(s))_+ / R at u in [0, 1).

    Solves T(S) = (1 - u) R in log space, log T(S) = log1p(-u) + log R, with T the
    residual tail (log-survival form, ``log_tail``). Bracket [s*, s* + M], M doubled
    from 1 until T(s* + M) <= (1 - u) R; then Brent's method (scipy brentq) to
    |S - S_true| <= QUANTILE_XTOL + QUANTILE_RTOL |S|. Fixed cost up to the bracket
    search (at most ~log2 of the distance to the quantile).
    """
    c, delta, u = _scale(c), _delta(delta), _uniform(u, "u_res")
    if delta == 0:
        raise InvalidInput("delta", "the residual of two equal Gaussians is empty (delta = 0)")
    return _quantile_log(u, math.log(c), delta)


def _quantile_log(u, log_c, delta):
    s_star = _s_star(log_c, delta)
    target = math.log1p(-u) + _log_mass(log_c, delta)

    def f(s):
        return log_tail(s, log_c, delta, s_star) - target

    if u == 0.0 or f(s_star) <= 0:  # u within rounding of 0 (e.g. 2^-53): T(s*) = R
        return s_star
    m = 1.0
    while f(s_star + m) > 0:
        m *= 2.0
        if m > 1e6:  # T decays like a Gaussian tail: unreachable for u < 1
            raise RuntimeError("residual quantile bracket search diverged")
    return float(optimize.brentq(f, s_star, s_star + m, xtol=QUANTILE_XTOL,
                                 rtol=QUANTILE_RTOL, maxiter=500))


def _direction(m_p, m_q):
    """e = (m_p - m_q)/|m_p - m_q| [d] and |m_p - m_q| (0, None if the means coincide)."""
    diff = m_p - m_q
    norm = float(np.linalg.norm(diff))
    if norm == 0.0:
        return None, 0.0
    return diff / norm, norm


def _orthogonal(z, e):
    """W = z - (e.z) e [d]: the component of z orthogonal to e."""
    return z - (e @ z) * e


def residual_gauss(m_p, m_q, s, c, u_res, z_orth, *, _log_c=None):
    """ResidualGauss (A11, §2.4): one exact draw from normalise((c p - q)_+), fixed cost.

    p = N(m_p, s^2 I), q = N(m_q, s^2 I), c in (0, 1]. With e = (m_p - m_q)/|m_p - m_q|,
    delta = |m_p - m_q|/s: S = ``residual_quantile(u_res, c, delta)`` and
    W = z_orth - (e.z_orth) e (fresh orthogonal noise), return m_q + s (S e + W) [d].

    Returns ``(x [d], fallbacks)``. Fallback ``"residual_zero_mass"``: if the residual
    is empty (delta = 0, or its mass underflows to 0) x = m_p + s z_orth is drawn
    from the target instead; the callers never request it in exact arithmetic (§0.3).
    """
    m_p = _vector(m_p, "m_p")
    d = m_p.shape[0]
    m_q = _vector(m_q, "m_q", d)
    s = _std(s)
    log_c = math.log(_scale(c)) if _log_c is None else float(_log_c)
    u_res = _uniform(u_res, "u_res")
    z_orth = _vector(z_orth, "z_orth", d)
    return _residual_core(m_p, m_q, s, log_c, u_res, z_orth, None)


def _residual_core(m_p, m_q, s, log_c, u_res, z_orth, w_reuse):
    e, norm = _direction(m_p, m_q)
    delta = norm / s if e is not None else 0.0
    if delta == 0.0 or not math.isfinite(_s_star(log_c, delta)) or _log_mass(log_c, delta) == -math.inf:
        return m_p + s * z_orth, ("residual_zero_mass",)
    big_s = _quantile_log(u_res, log_c, delta)
    w = _orthogonal(z_orth, e) if w_reuse is None else w_reuse
    return m_q + s * (big_s * e + w), ()


# ---------------------------------------------------------------- one step (A10, A12)


def _step_inputs(m_p, m_q, s, z, u):
    m_p = _vector(m_p, "m_p")
    d = m_p.shape[0]
    m_q = _vector(m_q, "m_q", d)
    return m_p, m_q, _std(s), _vector(z, "z", d), _uniform(u, "u")


def _log_ratio(z, big_d):
    """l = log p(X~)/q(X~) = -z.D - |D|^2/2 with D = (m_q - m_p)/s (§2.3)."""
    return float(-(z @ big_d) - 0.5 * (big_d @ big_d))


def _accepts(u, log_ratio):
    """Division-free log-space test (§0.3): accept iff log(u) < l (u = 0 always accepts)."""
    return u == 0.0 or math.log(u) < log_ratio


def reflection_coupling(m_p, m_q, s, z, u) -> GaussianStep:
    """Reflection maximal coupling (A10, ALGORITHMS.md §2.3; paper 2, arXiv 2501.05370).

    Draft X~ = m_q + s z. Accept iff log(u) < l (l from ``_log_ratio``); otherwise
    reflect the draft noise across e-perp, e = D/|D|, D = (m_q - m_p)/s:
    Y = m_p + s (z - 2 (e.z) e). Y ~ N(m_p, s^2 I) exactly; P(accept) = 2 Phi(-delta/2).
    Noise: z [d], u (). No residual draw.
    """
    m_p, m_q, s, z, u = _step_inputs(m_p, m_q, s, z, u)
    big_d = (m_q - m_p) / s
    ell = _log_ratio(z, big_d)
    draft = m_q + s * z
    if _accepts(u, ell):
        return GaussianStep(draft, True, draft, ell)
    return GaussianStep(_reflect(m_p, m_q, s, z), False, draft, ell)


def _reflect(m_p, m_q, s, z):
    """Y = m_p + s (z - 2 (e.z) e), e = D/|D|, D = (m_q - m_p)/s (§2.3); D != 0 on a rejection."""
    big_d = (m_q - m_p) / s
    e = big_d / np.linalg.norm(big_d)
    return m_p + s * (z - 2 * (e @ z) * e)


def gamma_coupling(m_p, m_q, s, z, u, u_res, z_orth, *, reuse_orth=False) -> GaussianStep:
    """Gamma-maximal coupling GammaCouplingGauss (A12, §4.2; paper 1, arXiv 2606.13426).

    Draft X~ = m_q + s z; accept iff log(u) < l; otherwise Y = ResidualGauss(m_p, m_q, s,
    c = 1) drawn with u_res and the fresh orthogonal noise z_orth (§2.4). With
    ``reuse_orth=True`` the rejected draft's own orthogonal part z - (e.z) e is used
    instead (valid in token mode only, §2.4; z_orth is then ignored).
    Noise: z [d], u (), u_res (), z_orth [d].
    """
    m_p, m_q, s, z, u = _step_inputs(m_p, m_q, s, z, u)
    u_res = _uniform(u_res, "u_res")
    z_orth = _vector(z_orth, "z_orth", m_p.shape[0])
    big_d = (m_q - m_p) / s
    ell = _log_ratio(z, big_d)
    draft = m_q + s * z
    if _accepts(u, ell):
        return GaussianStep(draft, True, draft, ell)
    w = None
    if reuse_orth:
        e, _ = _direction(m_p, m_q)
        w = _orthogonal(z, e) if e is not None else None
    x, fb = _residual_core(m_p, m_q, s, 0.0, u_res, z_orth, w)
    return GaussianStep(x, False, draft, ell, fb)


def reflection_coupling_rng(m_p, m_q, s, rng) -> GaussianStep:
    """:func:`reflection_coupling` with z = rng.standard_normal(d), u = rng.random()."""
    check_generator(rng)
    d = np.shape(m_p)[0]
    return reflection_coupling(m_p, m_q, s, rng.standard_normal(d), rng.random())


def gamma_coupling_rng(m_p, m_q, s, rng, *, reuse_orth=False) -> GaussianStep:
    """:func:`gamma_coupling` with z = rng.standard_normal(d), u = rng.random(),
    u_res = rng.random(), z_orth = rng.standard_normal(d), drawn in that order."""
    check_generator(rng)
    d = np.shape(m_p)[0]
    z, u, u_res, z_orth = rng.standard_normal(d), rng.random(), rng.random(), rng.standard_normal(d)
    return gamma_coupling(m_p, m_q, s, z, u, u_res, z_orth, reuse_orth=reuse_orth)


def residual_gauss_rng(m_p, m_q, s, c, rng):
    """:func:`residual_gauss` with u_res = rng.random(), z_orth = rng.standard_normal(d)."""
    check_generator(rng)
    d = np.shape(m_p)[0]
    return residual_gauss(m_p, m_q, s, c, rng.random(), rng.standard_normal(d))


# ---------------------------------------------------------------- random-cost residuals (A14, §4.2)


def residual_gauss_rejection_rng(m_p, m_q, s, c, rng, *, max_trials=10**7):
    """Rejection-sampling residual (A14, §3.2): exact, random cost (baseline).

    Propose Y = m_p + s zeta ~ p and accept with probability (1 - q(Y)/(c p(Y)))_+,
    i.e. iff u < -expm1(-(l(Y) + ln c)) where l = log p/q. Mean number of trials
    c / R(c, delta) (1 / TV for c = 1). Noise is a stream: per trial zeta [d] then u.
    Returns ``(x [d], trials)``.
    """
    check_generator(rng)
    m_p = _vector(m_p, "m_p")
    m_q = _vector(m_q, "m_q", m_p.shape[0])
    s, log_c = _std(s), math.log(_scale(c))
    if np.array_equal(m_p, m_q):
        raise InvalidInput("m_q", "the residual of two equal Gaussians is empty (m_p == m_q)")
    big_d = (m_p - m_q) / s  # Y = m_p + s zeta = m_q + s (zeta + big_d)
    for trial in range(1, max_trials + 1):
        zeta = rng.standard_normal(m_p.shape[0])
        u = rng.random()
        # l(Y) = log p/q at Y: whitened around m_q the draft noise is zeta + big_d
        ell = _log_ratio(zeta + big_d, -big_d)
        if ell + log_c > 0 and u < -math.expm1(-(ell + log_c)):
            return m_p + s * zeta, trial
    raise RuntimeError(f"no residual sample accepted in {max_trials} trials")


def residual_gauss_1d_rejection_rng(m_p, m_q, s, c, rng, *, max_trials=10**7):
    """ResidualGauss with the 1-D rejection variant of §4.2: exact, random cost.

    Propose S from N(delta, 1) truncated to (s*, inf) (inverse survival in log space:
    log Phibar(S - delta) = log v + log Phibar(s* - delta)), accept with probability
    1 - exp(-delta (S - s*)); then x = m_q + s (S e + W), W the orthogonal part of a
    fresh z_orth. Noise stream: per trial v, u; then z_orth [d]. Expected trials
    c Phibar(s* - delta) / R(c, delta). Returns ``(x [d], trials)``.
    """
    check_generator(rng)
    m_p = _vector(m_p, "m_p")
    d = m_p.shape[0]
    m_q = _vector(m_q, "m_q", d)
    s, log_c = _std(s), math.log(_scale(c))
    e, norm = _direction(m_p, m_q)
    if e is None:
        raise InvalidInput("m_q", "the residual of two equal Gaussians is empty (m_p == m_q)")
    delta = norm / s
    s_star = _s_star(log_c, delta)
    log_tail0 = _log_sf(s_star - delta)
    for trial in range(1, max_trials + 1):
        v, u = rng.random(), rng.random()
        big_s = delta - float(special.ndtri_exp(math.log1p(-v) + log_tail0))
        if big_s > s_star and u < -math.expm1(-delta * (big_s - s_star)):
            w = _orthogonal(rng.standard_normal(d), e)
            return m_q + s * (big_s * e + w), trial
    raise RuntimeError(f"no residual sample accepted in {max_trials} trials")


# ---------------------------------------------------------------- a window of L steps (A13, A15)


def _window_inputs(m_p, m_q, s, z, eta, u_res, z_orth):
    m_q = _matrix(m_q, "m_q", rows=None, d=None)
    big_l, d = m_q.shape
    m_p = _matrix(m_p, "m_p", rows=(big_l, big_l + 1), d=d)
    has_bonus = m_p.shape[0] == big_l + 1
    s = _stds(s, "s", m_p.shape[0])
    z = _matrix(z, "z", rows=(big_l,), d=d)
    eta = _uniforms(eta, "eta", big_l)
    u_res = _uniform(u_res, "u_res")
    z_orth = _vector(z_orth, "z_orth", d)
    return m_p, m_q, s, z, eta, u_res, z_orth, has_bonus


def _window_log_ratios(m_p, m_q, s, z):
    """log r_i [L] from the draft noise (§2.5), and the per-step delta_i [L]."""
    big_l = m_q.shape[0]
    ell = np.empty(big_l)
    delta = np.empty(big_l)
    for i in range(big_l):
        big_d = (m_q[i] - m_p[i]) / s[i]
        ell[i] = _log_ratio(z[i], big_d)
        delta[i] = float(np.linalg.norm(big_d))
    return ell, delta


def _finish(tau, drafts, m_p, s, z_orth, has_bonus, corrected_fn):
    """Emitted states after tau accepted drafts: correction (tau < L), bonus, or nothing."""
    big_l = drafts.shape[0]
    if tau < big_l:
        y, fb = corrected_fn(tau)
        return np.vstack([drafts[:tau], y[None, :]]), False, True, fb
    if has_bonus:
        y = m_p[big_l] + s[big_l] * z_orth
        return np.vstack([drafts, y[None, :]]), True, False, ()
    return drafts.copy(), False, False, ()


def verify_gaussian_chain(m_p, m_q, s, z, eta, u_res, z_orth, *, coupling="gamma",
                          reuse_orth=False) -> GaussianBlockVerdict:
    """Token-level speculative sampling of a window of L Gaussian steps (A15, §3.2).

    Shapes: m_q [L, d] draft means m^q_i(X~_{i-1}); m_p [L, d] target means
    m^p_i(X~_{i-1}) (or [L+1, d]: the last row is m^p at X~_L, enabling the bonus
    draw); s [L] or [L+1] (or a scalar); noise as in the module's NOISE LAYOUT.
    Step i = 1..L is accepted iff log(eta_i) < log r_i; at the first rejection the
    correction is the ``coupling`` draw: "gamma" (ResidualGauss, c = 1, with u_res and
    z_orth, or the rejected draft's orthogonal part if ``reuse_orth``) or
    "reflection" (Y = m_p + s (z - 2 (e.z) e), no extra noise).
    """
    m_p, m_q, s, z, eta, u_res, z_orth, has_bonus = _window_inputs(m_p, m_q, s, z, eta, u_res, z_orth)
    if coupling not in ("gamma", "reflection"):
        raise InvalidInput("coupling", f"expected 'gamma' or 'reflection', got {coupling!r}")
    big_l = m_q.shape[0]
    drafts = m_q + s[:big_l, None] * z
    ell, delta = _window_log_ratios(m_p, m_q, s, z)
    tau = big_l
    for i in range(big_l):
        if not _accepts(eta[i], ell[i]):
            tau = i
            break

    def correct(j):
        if coupling == "reflection":
            return _reflect(m_p[j], m_q[j], s[j], z[j]), ()
        w = None
        if reuse_orth:
            e, _ = _direction(m_p[j], m_q[j])
            w = _orthogonal(z[j], e) if e is not None else None
        return _residual_core(m_p[j], m_q[j], s[j], 0.0, u_res, z_orth, w)

    states, bonus, corrected, fb = _finish(tau, drafts, m_p, s, z_orth, has_bonus, correct)
    log_surv = np.concatenate([[0.0], np.cumsum(np.minimum(ell, 0.0))])
    mass = np.array([special.erf(dl / (2 * _SQRT2)) for dl in delta])
    return GaussianBlockVerdict(tau, states, bonus, corrected, ell, log_surv, mass, fb)


def gaussian_block_quantities(log_ratio, delta):
    """log p_i [L+1] and R_i [L] of Gaussian block verification (§2.5).

    log p_0 = 0, log p_i = min(log p_{i-1} + log r_i, 0); R_i = R(p_i, delta_{i+1}) for
    i = 0..L-1 (R_0 = TV of step 1; R_i = 0 where delta_{i+1} = 0).
    """
    big_l = len(log_ratio)
    log_p = np.zeros(big_l + 1)
    for i in range(1, big_l + 1):
        log_p[i] = min(log_p[i - 1] + log_ratio[i - 1], 0.0)
    mass = np.zeros(big_l)
    for i in range(big_l):
        if delta[i] > 0 and log_p[i] > -math.inf:
            mass[i] = math.exp(_log_mass(float(log_p[i]), float(delta[i])))
    return log_p, mass


def verify_gaussian_block(m_p, m_q, s, z, eta, u_res, z_orth) -> GaussianBlockVerdict:
    """Gaussian block verification (A13; ALGORITHMS.md §2.5, §4.3; paper 1 arXiv 2606.13426,
    Algorithm 2 of Sun et al. arXiv 2403.10444 with closed-form Gaussian quantities).

    Shapes and noise as :func:`verify_gaussian_chain`. With log p_i and R_i from
    :func:`gaussian_block_quantities`, index i < L passes iff eta_i (R_i + 1 - p_i) < R_i and
    index L passes iff eta_L < p_L (division-free, §0.3); tau is the LARGEST passing
    index (0 if none). If tau < L the correction is ResidualGauss(m_p[tau], m_q[tau],
    s[tau], c = p_tau) with u_res and FRESH orthogonal noise z_orth (re-using the
    rejected draft's W is invalid here, §2.4); if tau = L the bonus
    Y = m_p[L] + s[L] z_orth is drawn when m_p has L+1 rows, else nothing.
    """
    m_p, m_q, s, z, eta, u_res, z_orth, has_bonus = _window_inputs(m_p, m_q, s, z, eta, u_res, z_orth)
    big_l = m_q.shape[0]
    drafts = m_q + s[:big_l, None] * z
    ell, delta = _window_log_ratios(m_p, m_q, s, z)
    log_p, mass = gaussian_block_quantities(ell, delta)
    surv = np.exp(log_p)
    tau = block_tau(surv, mass, eta)

    def correct(j):
        return _residual_core(m_p[j], m_q[j], s[j], float(log_p[j]), u_res, z_orth, None)

    states, bonus, corrected, fb = _finish(tau, drafts, m_p, s, z_orth, has_bonus, correct)
    return GaussianBlockVerdict(tau, states, bonus, corrected, ell, log_p, mass, fb)


def _window_noise(rng, m_q):
    check_generator(rng)
    big_l, d = np.shape(m_q)
    return rng.random(big_l), rng.random(), rng.standard_normal(d)


def verify_gaussian_chain_rng(m_p, m_q, s, z, rng, *, coupling="gamma", reuse_orth=False):
    """:func:`verify_gaussian_chain` with eta = rng.random(L), u_res = rng.random(),
    z_orth = rng.standard_normal(d). The draft noise z is an input: the means depend on it."""
    eta, u_res, z_orth = _window_noise(rng, m_q)
    return verify_gaussian_chain(m_p, m_q, s, z, eta, u_res, z_orth, coupling=coupling,
                                 reuse_orth=reuse_orth)


def verify_gaussian_block_rng(m_p, m_q, s, z, rng):
    """:func:`verify_gaussian_block` with eta = rng.random(L), u_res = rng.random(),
    z_orth = rng.standard_normal(d). The draft noise z is an input: the means depend on it."""
    eta, u_res, z_orth = _window_noise(rng, m_q)
    return verify_gaussian_block(m_p, m_q, s, z, eta, u_res, z_orth)
