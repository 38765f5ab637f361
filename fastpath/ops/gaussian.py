"""Parity ops and input factories for the Gaussian twins (rule ``allclose_vs_naive``).

Registers ``gaussian_chain`` (``gaussian.verify_gaussian_chain``, Gamma coupling),
``gaussian_block`` (``gaussian.verify_gaussian_block``), ``gaussian_step``
(``gaussian.gamma_coupling``) and ``gaussian_reflection``
(``gaussian.reflection_coupling``).

Rule ``allclose_vs_naive`` (tests/TOLERANCES.md): the accept decisions (tau, bonus,
corrected / accepted) must equal the oracle's wherever every test the oracle made
on the row has a float64 margin > ``GAUSS_MARGIN`` (|log eta - l|, |eta (R + 1 - p) - R|,
|eta - p_L|); the states, log-ratios, log-survivals and residual masses must then be
``numpy.allclose`` to the oracle's with ``rtol = atol = GAUSS_RTOL``.

Cases (fixed seeds): d in {1, 2, 3, 64}, L in {1, 3, 8}, standardized offsets
delta in {0.1, 0.5, 1, 2, 4} (so every tau occurs), scalar and per-step s, with and
without the bonus row, ragged windows, steps with m_p == m_q (delta = 0, R = 0),
eta = 0 and u_res = 0, a far offset (delta = 12, almost every draft rejected).
"""
from __future__ import annotations

import numpy as np

from ..registry import Case, Op, register
from .categorical import case_rng

#: decisions whose float64 margin is below this are not compared (rounding of dot products)
GAUSS_MARGIN = 1e-9
#: states and scalars must agree to this relative / absolute tolerance
GAUSS_RTOL = 1e-9


def window_batch(rng, bsz, big_l, d, bonus=True, ragged=False, per_step_s=True, delta_scale=None):
    lp = big_l + 1 if bonus else big_l
    s = rng.uniform(0.5, 2.0, size=(bsz, lp)) if per_step_s else np.full((bsz, lp), rng.uniform(0.5, 2))
    m_q = rng.standard_normal((bsz, lp, d))
    scale = delta_scale if delta_scale is not None else rng.choice([0.1, 0.5, 1.0, 2.0, 4.0], size=(bsz, 1, 1))
    direction = rng.standard_normal((bsz, lp, d))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    m_p = m_q + scale * s[..., None] * direction
    return dict(m_p=m_p, m_q=m_q[:, :big_l].copy(), s=s, z=rng.standard_normal((bsz, big_l, d)),
                eta=rng.random((bsz, big_l)), u_res=rng.random(bsz),
                z_orth=rng.standard_normal((bsz, d)),
                lengths=(rng.integers(1, big_l + 1, size=bsz) if ragged else np.full(bsz, big_l)))


def window_cases(quick: bool) -> list[Case]:
    bsz = 16 if quick else 128
    out = []
    for d in (1, 2, 3, 64):
        for big_l in (1, 3, 8):
            name = f"gauss d={d} L={big_l}"
            rng = case_rng(name)
            out.append(Case(name, window_batch(rng, bsz, big_l, d, bonus=bool(big_l % 2),
                                               per_step_s=big_l != 3)))
    name = "gauss ragged d=5 L=6"
    out.append(Case(name, window_batch(case_rng(name), 4 * bsz, 6, 5, ragged=True)))
    name = "gauss m_p == m_q at some steps"
    x = window_batch(case_rng(name), bsz, 4, 3)
    x["m_p"][:, 1] = x["m_q"][:, 1]
    x["m_p"][::2, 0] = x["m_q"][::2, 0]
    out.append(Case(name, x))
    name = "gauss eta = 0, u_res = 0"
    x = window_batch(case_rng(name), bsz, 4, 3)
    x["eta"][:, ::2] = 0.0
    x["u_res"][::2] = 0.0
    out.append(Case(name, x))
    name = "gauss far offset delta=12"
    out.append(Case(name, window_batch(case_rng(name), bsz, 3, 4, delta_scale=12.0)))
    return out


def step_cases(quick: bool) -> list[Case]:
    out = []
    for c in window_cases(quick):
        x = c.inputs
        if "ragged" in c.name:
            continue
        out.append(Case(c.name.replace("gauss", "step"),
                        dict(m_p=x["m_p"][:, 0].copy(), m_q=x["m_q"][:, 0].copy(), s=x["s"][:, 0].copy(),
                             z=x["z"][:, 0].copy(), u=x["eta"][:, 0].copy(), u_res=x["u_res"],
                             z_orth=x["z_orth"])))
    return out


# ---------------------------------------------------------------- reference rows and margins


def _window_row(x, b):
    n = int(x["lengths"][b])
    lp = n + (x["m_p"].shape[1] - x["m_q"].shape[1])
    return (x["m_p"][b, :lp], x["m_q"][b, :n], x["s"][b, :lp], x["z"][b, :n], x["eta"][b, :n],
            float(x["u_res"][b]), x["z_orth"][b])


def window_reference(function_name):
    def ref(case, b):
        from specoracle.reference import gaussian

        return getattr(gaussian, function_name)(*_window_row(case.inputs, b))
    return ref


def step_reference(function_name):
    def ref(case, b):
        from specoracle.reference import gaussian

        x = case.inputs
        args = [x["m_p"][b], x["m_q"][b], float(x["s"][b]), x["z"][b], float(x["u"][b])]
        if function_name == "gamma_coupling":
            args += [float(x["u_res"][b]), x["z_orth"][b]]
        return getattr(gaussian, function_name)(*args)
    return ref


def _log_margin(u, ell):
    return np.inf if u == 0.0 else abs(np.log(u) - ell)


def chain_margin(ref, eta) -> float:
    m = np.inf
    for i in range(min(ref.n_accepted + 1, len(ref.log_ratio))):
        m = min(m, _log_margin(eta[i], ref.log_ratio[i]))
    return m


def block_margin(ref, eta) -> float:
    big_l = len(ref.log_ratio)
    surv = np.exp(ref.log_survival)
    mass = ref.residual_mass
    m = np.inf
    for i in range(big_l, max(ref.n_accepted, 1) - 1, -1):
        if i < big_l:
            m = min(m, abs(eta[i - 1] * (mass[i] + 1 - surv[i]) - mass[i]))
        else:
            m = min(m, abs(eta[i - 1] - surv[i]))
    return m


def _close(a, b) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=GAUSS_RTOL, atol=GAUSS_RTOL, equal_nan=True))


def compare_window(margin_fn):
    def compare(case, b, out, ref):
        if isinstance(ref, Exception):
            return "mismatch", f"oracle rejects the row: {ref}"
        got = out.verdict(b)
        same = (got.n_accepted, got.bonus, got.corrected) == (ref.n_accepted, ref.bonus, ref.corrected)
        if not same:
            eta = _window_row(case.inputs, b)[4]
            m = margin_fn(ref, eta)
            if m <= GAUSS_MARGIN:
                return "excluded", f"margin {m:.3g}"
            return "mismatch", (f"tau/bonus/corrected {got.n_accepted, got.bonus, got.corrected} vs "
                                f"oracle {ref.n_accepted, ref.bonus, ref.corrected} (margin {m:.3g})")
        for field in ("states", "log_ratio", "log_survival", "residual_mass"):
            if not _close(getattr(got, field), getattr(ref, field)):
                return "mismatch", f"{field} differs: {getattr(got, field)} vs {getattr(ref, field)}"
        if got.fallbacks != ref.fallbacks:
            return "mismatch", f"fallbacks {got.fallbacks} vs {ref.fallbacks}"
        return "match", ""
    return compare


def compare_step(case, b, out, ref):
    if isinstance(ref, Exception):
        return "mismatch", f"oracle rejects the row: {ref}"
    got = out.verdict(b)
    if got.accepted != ref.accepted:
        m = _log_margin(float(case.inputs["u"][b]), ref.log_ratio)
        if m <= GAUSS_MARGIN:
            return "excluded", f"margin {m:.3g}"
        return "mismatch", f"accepted {got.accepted} vs oracle {ref.accepted} (margin {m:.3g})"
    for field in ("x", "draft", "log_ratio"):
        if not _close(getattr(got, field), getattr(ref, field)):
            return "mismatch", f"{field} differs: {getattr(got, field)} vs {getattr(ref, field)}"
    if got.fallbacks != ref.fallbacks:
        return "mismatch", f"fallbacks {got.fallbacks} vs {ref.fallbacks}"
    return "match", ""


def _host(out):
    return out.to_numpy() if hasattr(out, "to_numpy") else out


def call_window(fn, case):
    x = case.inputs
    return _host(fn(x["m_p"], x["m_q"], x["s"], x["z"], x["eta"], x["u_res"], x["z_orth"],
                    lengths=x["lengths"]))


def call_step(function_name):
    def run(fn, case):
        x = case.inputs
        args = [x["m_p"], x["m_q"], x["s"], x["z"], x["u"]]
        if function_name == "gamma_coupling":
            args += [x["u_res"], x["z_orth"]]
        return _host(fn(*args))
    return run


def sweep_windows(n_sequences: int, seed: int, chunk: int = 8192) -> list[Case]:
    rng = np.random.default_rng(seed)
    out, done, i = [], 0, 0
    while done < n_sequences:
        d = int(rng.choice([1, 2, 3, 8]))
        big_l = int(rng.integers(1, 9))
        bsz = min(chunk, n_sequences - done)
        out.append(Case(f"gauss sweep#{i} d={d} L={big_l}",
                        window_batch(rng, bsz, big_l, d, bonus=bool(rng.integers(0, 2)), ragged=True)))
        done += bsz
        i += 1
    return out


# Certify names: the protocols of the oracle's names (reference.gaussian_chain / _block:
# "gauss_block"; reference.gaussian_gamma / _reflection: "gauss_step"), same scenarios; the
# adapters (proofs/certify/adapters.py) call the batched twin once per scenario (a batch of
# one costs 1-20 ms here: numba's thread launch, torch's per-op overhead).
register(Op(name="gaussian_chain", module="gaussian", function="verify_gaussian_chain",
            rule="allclose_vs_naive", cases=window_cases, call=call_window,
            reference_row=window_reference("verify_gaussian_chain"),
            compare_row=compare_window(chain_margin), sweep=sweep_windows, certify="gaussian_chain"))
register(Op(name="gaussian_block", module="gaussian", function="verify_gaussian_block",
            rule="allclose_vs_naive", cases=window_cases, call=call_window,
            reference_row=window_reference("verify_gaussian_block"),
            compare_row=compare_window(block_margin), sweep=sweep_windows, certify="gaussian_block"))
register(Op(name="gaussian_step", module="gaussian", function="gamma_coupling",
            rule="allclose_vs_naive", cases=step_cases, call=call_step("gamma_coupling"),
            reference_row=step_reference("gamma_coupling"), compare_row=compare_step,
            certify="gaussian_gamma"))
register(Op(name="gaussian_reflection", module="gaussian", function="reflection_coupling",
            rule="allclose_vs_naive", cases=step_cases, call=call_step("reflection_coupling"),
            reference_row=step_reference("reflection_coupling"), compare_row=compare_step,
            certify="gaussian_reflection"))
