"""The four Gaussian theorems (ALGORITHMS.md §2.1-2.5, §4.3, T6-T8), each
proved symbolically (sympy) or by numerical quadrature of the exact density, AND
checked against reference/gaussian.py's own functions so that a bug in the code
fails the proof.

- gaussian.reflection_exact (symbolic): the reflection map z -> z - 2 (e.z) e sends the
  rejected-draft sub-density (phi(z) - phi(z + Delta))_+ onto the residual
  (phi(w) - phi(w - Delta))_+ = (p - q)_+ (whitened), and the code's rejected outputs
  are exactly that map of the draft noise (with the code's own log-ratio).
- gaussian.gamma_residual_exact (symbolic): c phi(s - delta) > phi(s) iff s > s*; the
  mass of (c phi(s - delta) - phi(s))_+ is R(c, delta) = c Phibar(s* - delta) - Phibar(s*)
  and F(s) is its normalised integral, both cases of the piecewise positive part;
  the code's residual_mass / residual_cdf / residual_quantile agree with the symbolic
  forms evaluated at 30 digits.
- gaussian.acceptance_closed_form (symbolic): int min(p, q) = 2 Phi(-delta/2), split at
  the crossing delta/2; the code's acceptance_rate, and the acceptance probability of the
  code's own division-free log test integrated over the draft noise, agree; the
  Mahalanobis example of T6.
- gaussian.block_lossless (numeric): one round of Gaussian block verification (L = 2) on
  T8's 1-D linear chain, completed by target sampling: the output density, assembled by
  quadrature from the code's p_i and R_i, the code's decision thresholds (checked by
  probing verify_gaussian_block on both sides) and the code's residual draws (c = p_tau,
  checked by inverting them), equals p(y_1) p(y_2 | y_1) to 1e-7 (relative to the
  largest density value).
"""
from __future__ import annotations

import math

import numpy as np

from specoracle.proofs.theorems import ProofFailure, Theorem, register
from specoracle.reference import gaussian as g

PAPER_1 = "arXiv 2606.13426 (Soen et al. 2026)"
PAPER_2 = "arXiv 2501.05370 (De Bortoli et al. 2025)"


def _sympy_phi():
    """sympy, the standard normal density phi and its tail Phibar (``sf``), the real symbol
    ``s`` and the positive symbol ``delta`` (a whitened mean gap) that the proofs share."""
    import sympy as sp

    def phi(x):
        return sp.exp(-x ** 2 / 2) / sp.sqrt(2 * sp.pi)

    def sf(x):  # Phibar
        return sp.erfc(x / sp.sqrt(2)) / 2
    return sp, phi, sf, sp.symbols("s", real=True), sp.symbols("delta", positive=True)


# ---------------------------------------------------------------- reflection


def check_reflection(quick: bool = True):
    sp, phi, _, _, delta = _sympy_phi()
    z, w = sp.symbols("z w", real=True)
    # along e (the other coordinates factor out and are unchanged by the reflection):
    # the draft noise's e-component z, Delta = (m_q - m_p)/s has e-component +delta.
    ell = -z * delta - delta ** 2 / 2                                 # the code's l, §2.3
    if sp.simplify(sp.exp(ell) * phi(z) - phi(z + delta)) != 0:
        raise ProofFailure("log-ratio: exp(l) phi(z) != phi(z + Delta)")
    rejected = phi(z) - phi(z + delta)                                # q - p at the draft, z-coords
    pushed = rejected.subs(z, -w)                                     # W = R z flips the e-component, |det R| = 1
    residual = phi(w) - phi(w - delta)                                # p - q in w = (Y - m_p)/s coords
    if sp.simplify(pushed - residual) != 0:
        raise ProofFailure("the reflected rejected density differs from (p - q)_+")
    # piecewise: the positive parts live on z > -delta/2 and w < delta/2, mapped onto each other
    cross_z = sp.solve(sp.Eq(phi(z), phi(z + delta)), z)
    cross_w = sp.solve(sp.Eq(phi(w), phi(w - delta)), w)
    if cross_z != [-delta / 2] or cross_w != [delta / 2]:
        raise ProofFailure(f"crossing points {cross_z}, {cross_w}")
    if not (rejected.subs({z: 0, delta: 1}).evalf() > 0 and residual.subs({w: 0, delta: 1}).evalf() > 0):
        raise ProofFailure("positive-part orientation")
    cases = 4
    # the code: rejected outputs are m_p + s R z, and the density identity holds pointwise
    rng = np.random.default_rng(1)
    n = 200 if quick else 5000
    for _ in range(n):
        d = int(rng.integers(1, 5))
        m_p, m_q = rng.normal(size=d), rng.normal(size=d)
        s = float(rng.uniform(0.2, 2.0))
        zz = rng.normal(size=d)
        step = g.reflection_coupling(m_p, m_q, s, zz, float(np.nextafter(1.0, 0.0)))
        big_d = (m_q - m_p) / s
        want_l = -(zz @ big_d) - 0.5 * big_d @ big_d
        if abs(step.log_ratio - want_l) > 1e-12 * (1 + abs(want_l)):
            raise ProofFailure(f"code log-ratio {step.log_ratio} != {want_l}")
        if step.accepted:
            continue
        ww = (step.x - m_p) / s
        dens_rej = math.exp(-0.5 * zz @ zz) - math.exp(-0.5 * (zz + big_d) @ (zz + big_d))
        dens_res = math.exp(-0.5 * ww @ ww) - math.exp(-0.5 * (ww - big_d) @ (ww - big_d))
        if not (dens_rej > 0 and abs(dens_rej - dens_res) <= 1e-12) or abs(ww @ ww - zz @ zz) > 1e-9:
            raise ProofFailure(f"code's reflected output is not R z: {ww} from {zz}")
        cases += 1
    return cases, "symbolic pushforward (both pieces) + code's outputs are the reflection"


# ---------------------------------------------------------------- the scaled residual


def check_gamma_residual(quick: bool = True):
    sp, phi, sf, s, delta = _sympy_phi()
    c = sp.symbols("c", positive=True)
    s_star = delta / 2 - sp.log(c) / delta
    # piecewise: c phi(s - delta) - phi(s) has the sign of log c + delta s - delta^2/2,
    # which is linear increasing in s with root s* (so the positive part is s > s*)
    log_ratio = sp.expand(sp.log(c) + sp.log(phi(s - delta)) - sp.log(phi(s)), force=True)
    if sp.simplify(log_ratio - (sp.log(c) + delta * s - delta ** 2 / 2)) != 0:
        raise ProofFailure(f"log ratio {log_ratio}")
    if sp.solve(sp.Eq(sp.log(c) + delta * s - delta ** 2 / 2, 0), s) != [sp.simplify(s_star)]:
        raise ProofFailure("crossing point s*")
    # mass: the antiderivative of the integrand on (s*, inf) is -(c Phibar(s - delta) - Phibar(s))
    tail = c * sf(s - delta) - sf(s)
    if sp.simplify(sp.diff(-tail, s) - (c * phi(s - delta) - phi(s))) != 0:
        raise ProofFailure("d/ds of the tail")
    if sp.limit(tail, s, sp.oo) != 0:
        raise ProofFailure("tail at infinity")
    mass = tail.subs(s, s_star)                                       # R(c, delta)
    cdf = (mass - tail) / mass                                        # F(s), s >= s*
    if sp.simplify(cdf.subs(s, s_star)) != 0:
        raise ProofFailure("F(s*) != 0")
    if sp.simplify(mass.subs(c, 1) - (1 - 2 * sf(delta / 2))) != 0:
        raise ProofFailure("R(1, delta) != 2 Phi(delta/2) - 1")
    cases = 6
    # the code against the symbolic forms at 30 digits
    rng = np.random.default_rng(2)
    n = 25 if quick else 300
    pts = [(1.0, 0.5), (0.5, 1.0), (0.05, 2.0)] + [
        (float(10 ** rng.uniform(-6, 0)), float(10 ** rng.uniform(-2, 0.8))) for _ in range(n)]
    for cv, dv in pts:
        sstar = dv / 2 - math.log(cv) / dv
        if sstar > 30:
            continue
        subs = {c: sp.Float(cv, 40), delta: sp.Float(dv, 40)}
        r_sym = float(mass.subs(subs).evalf(30))
        if abs(g.residual_mass(cv, dv) / r_sym - 1) > 1e-9:
            raise ProofFailure(f"residual_mass({cv}, {dv}) = {g.residual_mass(cv, dv)} != {r_sym}")
        u = float(rng.random())
        big_s = g.residual_quantile(u, cv, dv)
        f_sym = float(cdf.subs(subs).subs(s, sp.Float(big_s, 40)).evalf(30))
        if abs(f_sym - u) > 1e-9 or abs(g.residual_cdf(big_s, cv, dv) - f_sym) > 1e-9:
            raise ProofFailure(f"F(quantile({u})) = {f_sym} for c = {cv}, delta = {dv}")
        cases += 1
    return cases, "symbolic mass/CDF (s > s* piece; zero below) + code at 30 digits"


# ---------------------------------------------------------------- acceptance


def check_acceptance(quick: bool = True):
    from scipy import integrate

    sp, phi, sf, s, delta = _sympy_phi()
    # min(phi(s), phi(s - delta)) = phi(s - delta) for s < delta/2, phi(s) above
    lower = sp.integrate(phi(s - delta), (s, -sp.oo, delta / 2))
    upper = sp.integrate(phi(s), (s, delta / 2, sp.oo))
    if sp.simplify((lower + upper - 2 * sf(delta / 2)).rewrite(sp.erf)) != 0:
        raise ProofFailure(f"int min(p, q) = {sp.simplify(lower + upper)}")
    if sp.simplify((phi(s) - phi(s - delta)).subs(s, delta / 2)) != 0:
        raise ProofFailure("crossing point")
    cases = 2
    for dv in [0.25, 0.5, 1.0, 2.0, 0.880631, 0.936777, 3.5, 1e-4]:
        sym = float((2 * sf(delta / 2)).subs(delta, sp.Float(dv, 40)).evalf(30))
        if abs(g.acceptance_rate(dv) - sym) > 1e-14:
            raise ProofFailure(f"acceptance_rate({dv})")
        # the code's own test: P(log u < l) = E_q[min(1, e^l)], l from the code's log-ratio
        m_p, m_q = np.array([dv * 0.7, 0.0]), np.zeros(2)

        def integrand(zv, dv=dv, m_p=m_p):
            st = g.reflection_coupling(m_p, m_q, 0.7, np.array([zv, 0.0]), 0.5)
            return math.exp(-0.5 * zv * zv) / math.sqrt(2 * math.pi) * min(1.0, math.exp(st.log_ratio))
        val = integrate.quad(integrand, -12, 12, points=[-dv / 2], epsabs=1e-13, epsrel=1e-12,
                             limit=200)[0]
        if abs(val - sym) > 1e-10:
            raise ProofFailure(f"code's acceptance integral {val} != {sym} at delta {dv}")
        cases += 1
    big_d = g.mahalanobis([1, 1], [0, 0], [[2, 0.5], [0.5, 1]])
    if abs(big_d - math.sqrt(8 / 7)) > 1e-14 or round(g.acceptance_rate(big_d), 6) != 0.59298:
        raise ProofFailure(f"Mahalanobis example: {big_d}")
    return cases + 1, "symbolic int min(p, q) (two pieces) + code's test integrated"


# ---------------------------------------------------------------- block verification, L = 2


A_P, B_P, A_Q, B_Q, SIG = 0.9, 0.3, 0.8, 0.0, 0.6   # T8


def _npdf(x, m):
    return math.exp(-0.5 * ((x - m) / SIG) ** 2) / (SIG * math.sqrt(2 * math.pi))


def _window(x1, x2):
    """(m_p [2, 1], m_q [2, 1], z [2, 1]) of the window from x_0 = 0 with drafts x1, x2."""
    m_p = np.array([[B_P], [A_P * x1 + B_P]])
    m_q = np.array([[B_Q], [A_Q * x1 + B_Q]])
    z = np.array([[(x1 - m_q[0, 0]) / SIG], [(x2 - m_q[1, 0]) / SIG]])
    return m_p, m_q, z


def _thresholds(x1, x2):
    """(t_1, t_2, p_1) from the code's gaussian_block_quantities: index 1 passes iff eta_1 < t_1
    (t_1 = h_1 = R_1 / (R_1 + 1 - p_1)), index 2 iff eta_2 < t_2 = p_2."""
    m_p, m_q, z = _window(x1, x2)
    ell, delta = g._window_log_ratios(m_p, m_q, np.full(2, SIG), z)
    log_p, mass = g.gaussian_block_quantities(ell, delta)
    p1, p2 = math.exp(log_p[1]), math.exp(log_p[2])
    den = mass[1] + 1 - p1
    return (mass[1] / den if den > 0 else 0.0), p2, p1, float(mass[1])


def _probe_code(x1, x2, rng):
    """The code's decisions flip at the thresholds, and its residual draws invert the
    CDF with c = p_tau (tau = 1) and c = 1 (tau = 0). Returns the number of probes."""
    t1, t2, p1, r1 = _thresholds(x1, x2)
    m_p, m_q, z = _window(x1, x2)
    s = np.full(2, SIG)
    zo = np.zeros(1)
    below, above = 1 - 1e-7, 1 + 1e-7
    n = 0
    if t2 * above < 1:
        if g.verify_gaussian_block(m_p, m_q, s, z, [0.999999, t2 * below], 0.5, zo).n_accepted != 2:
            raise ProofFailure("index 2 should pass below p_2")
        if g.verify_gaussian_block(m_p, m_q, s, z, [0.0, t2 * above], 0.5, zo).n_accepted == 2:
            raise ProofFailure("index 2 should fail above p_2")
        n += 2
        if 0 < t1 and t1 * above < 1:
            u = float(rng.uniform(0.05, 0.95))
            v = g.verify_gaussian_block(m_p, m_q, s, z, [t1 * below, t2 * above], u, zo)
            if v.n_accepted != 1:
                raise ProofFailure(f"index 1 should pass below h_1 (got tau = {v.n_accepted})")
            # the residual is (p_1 p - q)_+ at step 2: S = quantile(u, c = p_1)
            delta2 = abs(m_p[1, 0] - m_q[1, 0]) / SIG
            sgn = math.copysign(1.0, m_p[1, 0] - m_q[1, 0])
            want = m_q[1, 0] + SIG * sgn * g.residual_quantile(u, p1, delta2)
            if abs(v.states[-1, 0] - want) > 1e-9:
                raise ProofFailure(f"residual after tau = 1 is not (p_1 p - q)_+: {v.states[-1, 0]} != {want}")
            v0 = g.verify_gaussian_block(m_p, m_q, s, z, [t1 * above, t2 * above], u, zo)
            if v0.n_accepted != 0:
                raise ProofFailure("index 1 should fail above h_1")
            delta1 = abs(m_p[0, 0] - m_q[0, 0]) / SIG
            sgn1 = math.copysign(1.0, m_p[0, 0] - m_q[0, 0])
            want0 = m_q[0, 0] + SIG * sgn1 * g.residual_quantile(u, 1.0, delta1)
            if abs(v0.states[-1, 0] - want0) > 1e-9:
                raise ProofFailure("residual after tau = 0 is not (p - q)_+")
            n += 2
    return n


def check_block_lossless(quick: bool = True):
    from scipy import integrate

    rng = np.random.default_rng(4)
    # 1. the code's decisions and residual draws at random drafts
    probes = 0
    for _ in range(25 if quick else 400):
        x1 = float(rng.normal(B_Q, 1.5 * SIG))
        x2 = float(rng.normal(A_Q * x1 + B_Q, 1.5 * SIG))
        probes += _probe_code(x1, x2, rng)
    # 2. the output density by quadrature over the unobserved drafts
    lo, hi = -4.0, 4.5
    tol = dict(epsabs=1e-11, epsrel=1e-9, limit=200)

    def q1(x1):
        return _npdf(x1, B_Q)

    def q2(x2, x1):
        return _npdf(x2, A_Q * x1 + B_Q)

    def p2(y2, y1):
        return _npdf(y2, A_P * y1 + B_P)

    def mass0_inner(x1):
        def f(x2):
            t1, t2, _, _ = _thresholds(x1, x2)
            return q2(x2, x1) * (1 - t1) * (1 - t2)
        c = A_Q * x1 + B_Q
        return q1(x1) * integrate.quad(f, c - 10 * SIG, c + 10 * SIG, **tol)[0]

    mass0 = integrate.quad(mass0_inner, B_Q - 10 * SIG, B_Q + 10 * SIG, **tol)[0]
    tv1 = g.total_variation(abs(B_P - B_Q) / SIG)
    if abs(mass0 - tv1) > 1e-8:
        raise ProofFailure(f"P(tau = 0) = {mass0} != TV = {tv1}")
    k = 4 if quick else 12
    ys = np.linspace(lo, hi, k)
    worst = 0.0
    peak = _npdf(B_P, B_P) * _npdf(0, 0)
    for y1 in ys:
        t1c = A_Q * y1 + B_Q
        # tau = 1: q_1(y1) int q_2(x2|y1) h_1 (1 - p_2) dx2 * (p_1 p_2 - q_2)_+(y2) / R_1
        def f1(x2, y1=y1):
            t1, t2, _, _ = _thresholds(y1, x2)
            return q2(x2, y1) * t1 * (1 - t2)
        w1 = q1(y1) * integrate.quad(f1, t1c - 10 * SIG, t1c + 10 * SIG, **tol)[0]
        _, _, p1, r1 = _thresholds(y1, y1)
        for y2 in ys:
            accepted = q1(y1) * q2(y2, y1) * _thresholds(y1, y2)[1]
            res1 = (w1 * max(p1 * p2(y2, y1) - q2(y2, y1), 0.0) / r1) if r1 > 0 else 0.0
            res0 = mass0 * max(_npdf(y1, B_P) - q1(y1), 0.0) / tv1 * p2(y2, y1)
            target = _npdf(y1, B_P) * p2(y2, y1)
            worst = max(worst, abs(accepted + res1 + res0 - target) / peak)
    if worst > 1e-7:
        raise ProofFailure(f"output density differs from the target chain's by {worst:.3g} (relative)")
    return probes + k * k + 1, f"max |density error| / peak = {worst:.2e} (tolerance 1e-7)"


register(Theorem(
    "gaussian.reflection_exact",
    "The reflection map z -> z - 2(e.z)e sends the rejected-draft density (q - p)_+ onto the "
    "residual (p - q)_+; the reflection coupling's output is exactly N(m_p, s^2 I).",
    PAPER_2, "symbolic", check_reflection))
register(Theorem(
    "gaussian.gamma_residual_exact",
    "The 1-D scaled residual (c phi(s - delta) - phi(s))_+ lives on s > s* = delta/2 - ln(c)/delta, "
    "has mass R(c, delta) = c Phibar(s* - delta) - Phibar(s*) and CDF F(s); ResidualGauss inverts it.",
    PAPER_1, "symbolic", check_gamma_residual))
register(Theorem(
    "gaussian.acceptance_closed_form",
    "P(accept) of the log-ratio test for N(m_p, s^2 I) vs N(m_q, s^2 I) is int min(p, q) = "
    "2 Phi(-delta/2) (Mahalanobis Delta for a general covariance).",
    PAPER_2, "symbolic", check_acceptance))
register(Theorem(
    "gaussian.block_lossless",
    "Gaussian block verification (L = 2, T8's 1-D linear chain), completed by target sampling, "
    "emits exactly the target chain's law (numerical quadrature of the exact density, 1e-7).",
    PAPER_1, "numeric", check_block_lossless))
