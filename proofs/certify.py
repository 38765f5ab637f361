"""Black-box certification of any speculative sampler against the exact laws of the
battery in :mod:`specoracle.proofs.scenarios` (issue 4; DESIGN.md principle 5).

``certify(impl, *, samples=None, alpha=1e-3, power=0.9, target_tv=0.05, seed=0,
progress=False) -> Report``

What is checked (ALGORITHMS.md §7 testing protocol, with stated error rates):
  * for every scenario of the impl's protocol, the JOINT law of the emitted block
    (completed to a fixed length by target sampling) against the target's law;
  * when the impl declares its algorithm (``law="chain"`` or ``"block"``), the law of
    (tau, emitted tokens) - i.e. the law conditional on the accepted length - the law of
    tau (multinomial), and P(tau >= 1) (exact binomial), against closed forms;
  * continuous samplers: Anderson-Darling / KS on whitened 1-D projections, an energy
    test in d dims, exact binomial acceptance;
  * where the impl exposes a noise-injected ``core``: a coupled check, decision by
    decision against the oracle under the same noise (agreement rate, first disagreement).

Error rates: the false-positive budget ``alpha`` is split over the m checks of the run
by Holm's step-down (family-wise error <= alpha for any dependence between checks;
the coupled checks are deterministic and take no share). Power: each calibrated check
must detect ``target_tv`` (TV for categorical laws, KS distance for continuous
projections, |p - p0| for binomials) with probability >= ``power`` at the Bonferroni
level alpha/m (Holm rejects at least whatever Bonferroni rejects). ``samples=None``
picks, per scenario, the smallest n that achieves this; a smaller ``samples`` makes the
run ``underpowered`` (unless a check already rejects, which is valid evidence anyway).

Names: ``reference.*``, ``mutant.*``, adapters (``transformers.speculative_sampling``,
``flashinfer.chain_speculative_sampling``, ``vllm.v1.rejection_sampler``), fast paths
(``numba.*``, ``torch.*``, discovered lazily), or ``module:function`` (adapter
protocol below). Register more with :func:`register_impl`.

Adapter protocols (``Impl.protocol``); every call gets a ``numpy.random.Generator``:
  "probs"          fn(p [K+1, V], q [K, V], draft [K], rng) -> emitted tokens
  "logits"         fn(target_logits [K+1, V], draft_logits [K, V], draft [K], rng,
                      temperature, top_p[, top_k=]) -> emitted tokens (top_k passed only by
                      scenarios that use it)
  "mss"            fn(p [V], q [k, V], children [k], rng) -> Verdict (n_accepted 0/1)
  "kseq"           fn(p [V], q [V], candidates [k], rng) -> Verdict
  "tree"           fn(p [N+1, V], tokens [N], parents [N], rng) -> emitted tokens
  "gauss_step"     fn(m_p [d], m_q [d], s, z [d], rng) -> GaussianStep or (y [d], accepted)
  "gauss_residual" fn(m_p [d], m_q [d], s, c, rng) -> y [d]
  "gauss_block"    fn(m_p [L+1, d], m_q [L, d], s [L+1], z [L, d], rng) -> states [tau+1, d]
"Emitted tokens" may be a Verdict, a sequence of ids, or (ids, n_accepted); for
"probs"/"logits"/"tree" tau = len(ids) - 1 unless n_accepted is given.
A ``module:function`` target may set attributes ``specoracle_protocol`` (default
"probs") and ``specoracle_law`` (default None: algorithm-agnostic checks only).
"""
from __future__ import annotations

import importlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import stats as sps

from specoracle.reference.types import InvalidInput, InvalidTest

from . import scenarios as scn
from . import stats as st

PROTOCOLS = ("probs", "logits", "mss", "kseq", "tree", "gauss_step", "gauss_residual", "gauss_block")

DEFAULT_SCENARIOS = {
    "probs": ("t1", "zeros", "scaled", "markov", "spread"),
    "logits": ("warped",),
    "mss": ("mss",),
    "kseq": ("kseq",),
    "tree": ("tree",),
    "gauss_step": ("gstep", "gstep_far"),
    "gauss_residual": ("gres", "gres_tail"),
    "gauss_block": ("gblock",),
}

DEFAULT_ALPHA = 1e-3
DEFAULT_POWER = 0.9
DEFAULT_TARGET_TV = 0.05
ENERGY_MAX_N = 250       # the energy test uses the first 250 samples (O(n^2) cost)
COUPLED_CASES = 500      # cases per scenario of a coupled check


@dataclass(frozen=True)
class Impl:
    """A sampler to certify. ``fn`` follows ``protocol`` (module doc); ``law`` names the
    algorithm whose closed-form tau law applies ("chain", "block", or None);
    ``scenarios`` overrides the protocol's default battery; ``core``/``oracle`` (both
    ``(p, q, draft, u) -> Verdict``) enable the coupled check; ``batch`` (probs protocol,
    batched fast paths) lets the statistical runs call the kernel once per scenario with
    u = rng.random((n, K+1))."""

    name: str
    protocol: str
    fn: Callable
    law: str | None = None
    description: str = ""
    issue: str = ""
    scenarios: tuple | None = None
    core: Callable | None = None
    oracle: Callable | None = None
    batch: Callable | None = None   # (p [B,K+1,V], q [B,K,V], draft [B,K], u [B,K+1]) -> BatchVerdict


@dataclass
class CheckRow:
    name: str
    statistic: float
    p_value: float
    n: int
    metric: str
    detectable: float
    alpha_share: float = float("nan")
    verdict: str = ""
    detail: str = ""

    def as_json(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in self.__dict__.items()}


@dataclass
class Report:
    impl: str
    description: str
    verdict: str
    alpha: float
    power: float
    target_tv: float
    seed: int
    checks: list
    seconds: float
    notes: list = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return self.verdict == "exact"

    def as_json(self) -> dict:
        return {"impl": self.impl, "description": self.description, "verdict": self.verdict,
                "alpha": self.alpha, "power": self.power, "target_tv": self.target_tv, "seed": self.seed,
                "multiplicity": "Holm step-down over the calibrated checks (FWER <= alpha)",
                "seconds": round(self.seconds, 3), "notes": self.notes,
                "checks": [c.as_json() for c in self.checks]}

    def to_json(self, path) -> None:
        with open(path, "w") as fh:
            json.dump(self.as_json(), fh, indent=2)

    def format(self) -> str:
        lines = [f"certify {self.impl}" + (f": {self.description}" if self.description else ""),
                 f"alpha = {self.alpha:g} per run (Holm over {sum(1 for c in self.checks if c.metric != 'agreement')}"
                 f" checks), power = {self.power:g} at effect {self.target_tv:g}, seed = {self.seed}",
                 f"{'check':34s} {'statistic':>11s} {'p-value':>10s} {'alpha_i':>9s} {'n':>7s} "
                 f"{'detectable':>16s}  verdict"]
        for c in self.checks:
            det = "-" if not math.isfinite(c.detectable) else f"{c.detectable:.4f} {c.metric}"
            a = "-" if not math.isfinite(c.alpha_share) else f"{c.alpha_share:.2g}"
            lines.append(f"{c.name:34s} {c.statistic:11.4g} {c.p_value:10.3g} {a:>9s} {c.n:7d} {det:>16s}  {c.verdict}")
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"verdict: {self.verdict}   ({self.seconds:.1f} s)")
        return "\n".join(lines)


# ---------------------------------------------------------------- registry

_FACTORIES: dict[str, Callable[[], Impl]] = {}
_DISCOVERED = False


def register_impl(name: str, factory: Callable[[], Impl]) -> None:
    """Register a built-in name. ``factory()`` builds the :class:`Impl` lazily (it may
    import heavy packages and raise ``ImportError``, reported as 'not available')."""
    _FACTORIES[name] = factory


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    from . import adapters, mutants  # noqa: F401  (they register themselves)
    adapters.register_all(register_impl)
    mutants.register_all(register_impl)


def list_impls() -> list[str]:
    """Every built-in name (reference, adapters, fast paths, mutants), sorted."""
    _discover()
    return sorted(_FACTORIES)


def resolve_impl(impl) -> Impl:
    """An :class:`Impl` from a name, ``module:function``, a callable, or an Impl."""
    if isinstance(impl, Impl):
        return impl
    if callable(impl):
        return Impl(getattr(impl, "__name__", "callable"), getattr(impl, "specoracle_protocol", "probs"), impl,
                    getattr(impl, "specoracle_law", None))
    _discover()
    if impl in _FACTORIES:
        return _FACTORIES[impl]()
    if ":" in impl:
        mod, _, fname = impl.partition(":")
        fn = getattr(importlib.import_module(mod), fname)
        proto = getattr(fn, "specoracle_protocol", "probs")
        if proto not in PROTOCOLS:
            raise InvalidInput("impl", f"unknown protocol {proto!r} (one of {', '.join(PROTOCOLS)})")
        return Impl(impl, proto, fn, getattr(fn, "specoracle_law", None), getattr(fn, "__doc__", "") or "")
    raise InvalidInput("impl", f"unknown sampler {impl!r}: see `specoracle certify --list` or use module:function")


# ---------------------------------------------------------------- output normalisation


def _emitted(out):
    """(tokens tuple, tau or None) from a Verdict, a sequence, or (sequence, tau)."""
    if hasattr(out, "tokens") and hasattr(out, "n_accepted"):
        return tuple(int(t) for t in out.tokens), int(out.n_accepted)
    if isinstance(out, tuple) and len(out) == 2 and np.ndim(out[0]) == 1 and np.ndim(out[1]) == 0:
        return tuple(int(t) for t in np.asarray(out[0]).ravel()), int(out[1])
    arr = np.asarray(out).ravel()
    return tuple(int(t) for t in arr), None


# ---------------------------------------------------------------- planning


@dataclass
class _Planned:
    name: str
    kind: str      # "gof" | "binom" | "ks" | "energy"
    df: int = 0
    p0: float = 0.5


def _plan(impl: Impl, sc) -> list:
    """The calibrated checks one scenario contributes (before sampling)."""
    if isinstance(sc, scn.MarkovScenario):
        out = [_Planned(f"{sc.name}/joint", "gof", int((sc.joint_law() > 0).sum()) - 1)]
        if impl.law in ("chain", "block"):
            em = sc.chain_law() if impl.law == "chain" else sc.block_law()
            ln = sc.length_law(em)
            out += [_Planned(f"{sc.name}/emitted|tau", "gof", int((em > 0).sum()) - 1),
                    _Planned(f"{sc.name}/tau", "gof", int((ln > 0).sum()) - 1),
                    _Planned(f"{sc.name}/accept1", "binom", 1, float(1 - ln[0]))]
        return out
    if isinstance(sc, scn.MultiScenario):
        law = sc.law()
        return [_Planned(f"{sc.name}/token", "gof", int((law[:sc.V] + law[sc.V:] > 0).sum()) - 1),
                _Planned(f"{sc.name}/accepted,token", "gof", int((law > 0).sum()) - 1),
                _Planned(f"{sc.name}/accept", "binom", 1, float(law[sc.V:].sum()))]
    if isinstance(sc, scn.TreeScenario):
        return [_Planned(f"{sc.name}/joint", "gof", int((sc.joint_law() > 0).sum()) - 1),
                _Planned(f"{sc.name}/tau", "gof", int((sc.length_law() > 0).sum()) - 1)]
    if isinstance(sc, scn.GaussResidualScenario):
        d = len(sc.m_p)
        return ([_Planned(f"{sc.name}/S ks", "ks"), _Planned(f"{sc.name}/S ad", "ks")]
                + [_Planned(f"{sc.name}/W{j} ad", "ks") for j in range(1, d)])
    if isinstance(sc, scn.GaussStepScenario):
        d = len(sc.m_p)
        return ([_Planned(f"{sc.name}/e ks", "ks"), _Planned(f"{sc.name}/e ad", "ks")]
                + [_Planned(f"{sc.name}/orth{j} ad", "ks") for j in range(1, d)]
                + [_Planned(f"{sc.name}/energy", "energy"),
                   _Planned(f"{sc.name}/accept", "binom", 1, float(2 * sps.norm.cdf(-sc.delta / 2)))])
    if isinstance(sc, scn.GaussBlockScenario):
        d = len(sc.x0)
        return ([_Planned(f"{sc.name}/xi{i}[{j}] ad", "ks") for i in range(1, sc.L + 2) for j in range(d)]
                + [_Planned(f"{sc.name}/energy", "energy"),
                   _Planned(f"{sc.name}/accept1", "binom", 1, float(2 * sps.norm.cdf(-sc.delta1 / 2)))])
    raise TypeError(type(sc))


def _needed_n(p: _Planned, alpha_i, power, tv) -> int:
    if p.kind == "gof":
        return st.gof_sample_size(tv, p.df, alpha_i, power) if p.df > 0 else 1
    if p.kind == "binom":
        return st.binomial_sample_size(tv, p.p0, alpha_i, power)
    if p.kind == "ks":
        a = math.sqrt(math.log(2 / alpha_i)) + math.sqrt(math.log(2 / (1 - power)))
        return int(math.ceil(a * a / (2 * tv * tv)))
    return 1


def _all_scenarios():
    out = {}
    for f in (scn.markov_scenarios, scn.greedy_scenarios, scn.logits_scenarios, scn.multi_scenarios,
              scn.tree_scenarios, scn.gauss_scenarios):
        out.update(f())
    return out


# ---------------------------------------------------------------- sampling per scenario type


def _run_markov(impl, sc, n, rng, bar):
    """Emitted blocks of n rounds: list of (tokens, tau) and completed index arrays."""
    draft, p, q = sc.draw_drafts(n, rng)
    joint, emitted, taus, bad = [], [], [], 0
    V, K = sc.V, sc.K
    prevs = np.concatenate([np.full((n, 1), V), draft], axis=1)
    batched = None
    if impl.batch is not None and impl.protocol == "probs":
        bv = impl.batch(p, q, draft, rng.random((n, K + 1)))
        batched = [bv.verdict(j) for j in range(n)]
    for j in range(n):
        if batched is not None:
            out = batched[j]
        elif impl.protocol == "logits":
            lp, lq = sc.logits_along(prevs[j])
            top_k = {"top_k": sc.warp["top_k"]} if sc.warp.get("top_k") is not None else {}
            out = impl.fn(lp, lq, draft[j], rng, sc.warp.get("temperature", 1.0), sc.warp.get("top_p"), **top_k)
        else:
            out = impl.fn(p[j], q[j], draft[j], rng)
        toks, tau = _emitted(out)
        if tau is None:
            tau = len(toks) - 1
        if not (1 <= len(toks) <= K + 1) or any(t < 0 or t >= V for t in toks) or tau != len(toks) - 1:
            bad += 1
            joint.append(-1)
            emitted.append(-1)
            taus.append(-1)
        else:
            joint.append(seq_index_safe(sc.complete(toks, rng), V))
            emitted.append(sc.emitted_index(toks))
            taus.append(tau)
        if bar is not None and j % 256 == 255:
            bar.update(256)
    if bar is not None:
        bar.update(n % 256)
    return np.array(joint), np.array(emitted), np.array(taus), bad


def seq_index_safe(seq, V):
    return scn.seq_index(seq, V)


def _counts(idx, size):
    """Counts [size + 1]: the last cell holds malformed outputs (index -1)."""
    idx = np.asarray(idx)
    c = np.bincount(idx[idx >= 0], minlength=size).astype(np.float64)
    return np.concatenate([c, [float(np.sum(idx < 0))]])


def _gof(name, idx, law, alpha_i, power):
    probs = np.concatenate([law / law.sum(), [0.0]])
    return st.chisquare_gof(_counts(idx, len(law)), probs, alpha=alpha_i, power=power, name=name)


def _check_markov(impl, sc, n, rng, alpha_i, power, bar):
    joint, emitted, taus, bad = _run_markov(impl, sc, n, rng, bar)
    res = [_gof(f"{sc.name}/joint", joint, sc.joint_law(), alpha_i, power)]
    if impl.law in ("chain", "block"):
        em = sc.chain_law() if impl.law == "chain" else sc.block_law()
        ln = sc.length_law(em)
        res.append(_gof(f"{sc.name}/emitted|tau", emitted, em, alpha_i, power))
        res.append(_gof(f"{sc.name}/tau", taus, ln, alpha_i, power))
        ok = taus >= 0
        res.append(st.binomial_test(int(np.sum(taus[ok] >= 1)), max(int(ok.sum()), 1), float(1 - ln[0]),
                                    alpha=alpha_i, power=power, name=f"{sc.name}/accept1"))
    return res


def _check_multi(impl, sc, n, rng, alpha_i, power, bar):
    children = sc.draw_children(n, rng)
    V = sc.V
    cells = np.empty(n, dtype=np.int64)
    for j in range(n):
        if sc.kind == "mss":
            out = impl.fn(sc.p, sc.q, children[j], rng)
        else:
            out = impl.fn(sc.p, sc.q[0], children[j], rng)
        toks, tau = _emitted(out)
        if len(toks) != 1 or tau not in (0, 1) or not 0 <= toks[0] < V:
            cells[j] = -1
        else:
            cells[j] = tau * V + toks[0]
        if bar is not None and j % 256 == 255:
            bar.update(256)
    if bar is not None:
        bar.update(n % 256)
    law = sc.law()
    token = np.where(cells >= 0, cells % V, -1)
    ok = cells >= 0
    return [_gof(f"{sc.name}/token", token, law[:V] + law[V:], alpha_i, power),
            _gof(f"{sc.name}/accepted,token", cells, law, alpha_i, power),
            st.binomial_test(int(np.sum(cells[ok] >= V)), max(int(ok.sum()), 1), float(law[V:].sum()),
                             alpha=alpha_i, power=power, name=f"{sc.name}/accept")]


def _check_tree(impl, sc, n, rng, alpha_i, power, bar):
    rows = sc.rows()
    joint, taus = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    for j in range(n):
        toks, tau = _emitted(impl.fn(rows, sc.tokens, sc.parents, rng))
        tau = len(toks) - 1 if tau is None else tau
        if not (1 <= len(toks) <= sc.D + 1) or any(t < 0 or t >= sc.V for t in toks) or tau != len(toks) - 1:
            joint[j] = taus[j] = -1
        else:
            joint[j] = scn.seq_index(sc.complete(toks, rng), sc.V)
            taus[j] = tau
        if bar is not None and j % 256 == 255:
            bar.update(256)
    if bar is not None:
        bar.update(n % 256)
    return [_gof(f"{sc.name}/joint", joint, sc.joint_law(), alpha_i, power),
            _gof(f"{sc.name}/tau", taus, sc.length_law(), alpha_i, power)]


def _finite_rows(y, d):
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    return y if y.shape == (d,) and np.all(np.isfinite(y)) else None


def _check_gauss_step(impl, sc, n, rng, alpha_i, power, bar):
    d = len(sc.m_p)
    basis = sc.basis()
    w = np.empty((n, d))
    acc = np.zeros(n, dtype=bool)
    bad = 0
    for j in range(n):
        z = rng.standard_normal(d)
        out = impl.fn(sc.m_p, sc.m_q, sc.s, z, rng)
        y, a = (out.x, out.accepted) if hasattr(out, "accepted") else out
        y = _finite_rows(y, d)
        draft = sc.m_q + sc.s * z
        if y is None or (bool(a) and not np.allclose(y, draft, rtol=0, atol=1e-12)):
            bad += 1
            y = np.full(d, 1e6)  # an impossible value: rejected by every test
        w[j] = basis @ ((y - sc.m_p) / sc.s)
        acc[j] = bool(a)
        if bar is not None and j % 256 == 255:
            bar.update(256)
    if bar is not None:
        bar.update(n % 256)
    res = [_named(st.ks_normal(w[:, 0], alpha=alpha_i, power=power), f"{sc.name}/e ks"),
           _named(st.anderson_normal(w[:, 0], alpha=alpha_i, power=power), f"{sc.name}/e ad")]
    res += [_named(st.anderson_normal(w[:, j], alpha=alpha_i, power=power), f"{sc.name}/orth{j} ad")
            for j in range(1, d)]
    res.append(_named(st.energy_normal(w[:ENERGY_MAX_N], alpha=alpha_i, power=power), f"{sc.name}/energy"))
    res.append(st.binomial_test(int(acc.sum()), n, float(2 * sps.norm.cdf(-sc.delta / 2)), alpha=alpha_i,
                                power=power, name=f"{sc.name}/accept"))
    if bad:
        res.append(st.TestResult(f"{sc.name}/wellformed", float(bad), 0.0, n, 0, alpha_i, power, 0.0,
                                 "count", bad, "non-finite output, or 'accepted' output != draft"))
    return res


def _named(r: st.TestResult, name: str) -> st.TestResult:
    return st.TestResult(name, r.statistic, r.p_value, r.n, r.df, r.alpha, r.power, r.detectable, r.metric,
                         r.impossible, r.detail)


def _check_gauss_residual(impl, sc, n, rng, alpha_i, power, bar):
    d = len(sc.m_p)
    basis = sc.basis()
    S = np.empty(n)
    W = np.empty((n, d - 1))
    for j in range(n):
        y = _finite_rows(impl.fn(sc.m_p, sc.m_q, sc.s, sc.c, rng), d)
        if y is None:
            y = np.full(d, np.nan)
        v = basis @ ((y - sc.m_q) / sc.s)
        S[j], W[j] = v[0], v[1:]
        if bar is not None and j % 256 == 255:
            bar.update(256)
    if bar is not None:
        bar.update(n % 256)
    # probability integral transform through the exact residual law, then to N(0, 1)
    with np.errstate(all="ignore"):
        lt = sc.log_tail(S)
        zS = -sps.norm.ppf(np.exp(lt))  # S has tail exp(lt) = Phi_bar(zS)
    bad = ~np.isfinite(S) | (S < sc.s_star())
    zS = np.where(bad | ~np.isfinite(zS), 1e6, zS)
    W = np.where(np.isfinite(W), W, 1e6)
    res = [_named(st.ks_normal(zS, alpha=alpha_i, power=power), f"{sc.name}/S ks"),
           _named(st.anderson_normal(zS, alpha=alpha_i, power=power), f"{sc.name}/S ad")]
    res += [_named(st.anderson_normal(W[:, j - 1], alpha=alpha_i, power=power), f"{sc.name}/W{j} ad")
            for j in range(1, d)]
    return res


def _check_gauss_block(impl, sc, n, rng, alpha_i, power, bar):
    d, L = len(sc.x0), sc.L
    xi = np.empty((n, L + 1, d))
    taus = np.empty(n, dtype=np.int64)
    s = np.full(L + 1, sc.s)
    for j in range(n):
        z = rng.standard_normal((L, d))
        xs = [sc.x0]
        for i in range(L):
            xs.append(sc.m_q(xs[-1]) + sc.s * z[i])
        m_q = np.stack([sc.m_q(x) for x in xs[:L]])
        m_p = np.stack([sc.m_p(x) for x in xs])
        out = impl.fn(m_p, m_q, s, z, rng)
        states = np.asarray(out.states if hasattr(out, "states") else out, dtype=np.float64)
        ok = states.ndim == 2 and states.shape[1] == d and 1 <= states.shape[0] <= L + 1 and np.all(np.isfinite(states))
        if not ok:
            xi[j] = 1e6
            taus[j] = -1
            continue
        taus[j] = states.shape[0] - 1
        traj = [sc.x0] + list(states)
        while len(traj) < L + 2:
            traj.append(sc.m_p(traj[-1]) + sc.s * rng.standard_normal(d))
        for i in range(1, L + 2):
            xi[j, i - 1] = (traj[i] - sc.m_p(traj[i - 1])) / sc.s
        if bar is not None and j % 256 == 255:
            bar.update(256)
    if bar is not None:
        bar.update(n % 256)
    res = [_named(st.anderson_normal(xi[:, i - 1, jj], alpha=alpha_i, power=power), f"{sc.name}/xi{i}[{jj}] ad")
           for i in range(1, L + 2) for jj in range(d)]
    res.append(_named(st.energy_normal(xi[:ENERGY_MAX_N].reshape(min(n, ENERGY_MAX_N), -1), alpha=alpha_i,
                                       power=power), f"{sc.name}/energy"))
    ok = taus >= 0
    res.append(st.binomial_test(int(np.sum(taus[ok] >= 1)), max(int(ok.sum()), 1),
                                float(2 * sps.norm.cdf(-sc.delta1 / 2)), alpha=alpha_i, power=power,
                                name=f"{sc.name}/accept1"))
    return res


_RUNNERS = {
    scn.MarkovScenario: _check_markov,
    scn.MultiScenario: _check_multi,
    scn.TreeScenario: _check_tree,
    scn.GaussResidualScenario: _check_gauss_residual,
    scn.GaussStepScenario: _check_gauss_step,
    scn.GaussBlockScenario: _check_gauss_block,
}


# ---------------------------------------------------------------- coupled check


def coupled_check(core, oracle, cases, name="coupled"):
    """Compare ``core`` with ``oracle`` decision by decision under the same noise.

    ``cases`` is a list of argument tuples (each ending with the noise); both are called
    as ``f(*case)`` and compared on (n_accepted, tokens). Returns ``(CheckRow, first)``
    with ``first`` = (index, case, oracle output, core output) or None.
    """
    a, b = [], []
    first = None
    for i, case in enumerate(cases):
        x = _emitted(oracle(*case))
        y = _emitted(core(*case))
        a.append(x)
        b.append(y)
        if x != y and first is None:
            first = (i, case, x, y)
    rate, _ = st.agreement(a, b)
    detail = "" if first is None else (f"first disagreement at case {first[0]}: oracle {first[2]} vs "
                                       f"impl {first[3]} on inputs {_short(first[1])}")
    row = CheckRow(name, rate, 0.0 if first else 1.0, len(cases), "agreement", float("nan"),
                   verdict="agree" if first is None else "DISAGREE", detail=detail)
    return row, first


def _short(case):
    return "(" + ", ".join(np.array2string(np.asarray(c), precision=4, separator=",", threshold=40).replace("\n", "")
                           for c in case) + ")"


# ---------------------------------------------------------------- certify


def certify(impl, *, samples: int | None = None, alpha: float = DEFAULT_ALPHA, power: float = DEFAULT_POWER,
            target_tv: float = DEFAULT_TARGET_TV, seed: int = 0, scenarios=None,
            progress: bool = False) -> Report:
    """Certify ``impl`` (a name, ``module:function``, callable or :class:`Impl`); see
    the module doc for the checks, the error budget and the power rule.

    ``samples``: rounds per scenario (None: the smallest n reaching ``power`` at
    ``target_tv`` for every check). ``scenarios``: restrict the battery (names).
    Verdict: ``exact``, ``not exact: <check> p=<p>`` (the smallest rejected p-value),
    or ``underpowered``.
    """
    t0 = time.perf_counter()
    if not (0 < alpha < 1):
        raise InvalidInput("alpha", f"must lie in (0, 1), got {alpha}")
    if not (0 < target_tv <= 1):
        raise InvalidInput("target_tv", f"must lie in (0, 1], got {target_tv}")
    if samples is not None and int(samples) < 10:
        raise InvalidInput("samples", f"needs at least 10 samples per scenario, got {samples}")
    spec = resolve_impl(impl)
    if spec.protocol not in PROTOCOLS:
        raise InvalidInput("impl", f"unknown protocol {spec.protocol!r}")
    pool = _all_scenarios()
    names = tuple(scenarios or spec.scenarios or DEFAULT_SCENARIOS[spec.protocol])
    for nm in names:
        if nm not in pool:
            raise InvalidInput("scenarios", f"unknown scenario {nm!r} (one of {', '.join(sorted(pool))})")
    chosen = [pool[nm] for nm in names]
    plans = {sc.name: _plan(spec, sc) for sc in chosen}
    m = sum(len(v) for v in plans.values())
    alpha_i = alpha / m
    sizes = {}
    for sc in chosen:
        need = max(_needed_n(p, alpha_i, power, target_tv) for p in plans[sc.name])
        sizes[sc.name] = int(samples) if samples is not None else max(need, 200)
    rng = np.random.default_rng(seed)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=sum(sizes.values()), desc=f"certify {spec.name}", unit="round", leave=False)
    results: list[st.TestResult] = []
    notes: list[str] = []
    crashed = None
    try:
        for sc in chosen:
            try:
                results += _RUNNERS[type(sc)](spec, sc, sizes[sc.name], rng, alpha_i, power, bar)
            except InvalidTest:
                raise
            except Exception as exc:  # a sampler that crashes on valid input is not exact
                crashed = CheckRow(f"{sc.name}/run", float("nan"), 0.0, 0, "error", float("nan"),
                                   verdict="REJECT", detail=f"{type(exc).__name__}: {exc}")
                notes.append(f"{sc.name}: the sampler raised {type(exc).__name__}: {exc}")
                break
    finally:
        if bar is not None:
            bar.close()
    rows = _decide(results, alpha, power, target_tv, m)
    if crashed is not None:
        rows.append(crashed)
    if spec.core is not None and spec.oracle is not None and spec.protocol == "probs":
        for sc in chosen:
            row, _ = coupled_check(spec.core, spec.oracle, _coupled_cases(sc, rng), f"{sc.name}/coupled")
            rows.append(row)
    verdict = _verdict(rows)
    return Report(spec.name, spec.description, verdict, alpha, power, target_tv, seed, rows,
                  time.perf_counter() - t0, notes)


def _coupled_cases(sc, rng, n=COUPLED_CASES):
    draft, p, q = sc.draw_drafts(n, rng)
    u = rng.random((n, sc.K + 1))
    return [(p[j], q[j], draft[j], u[j]) for j in range(n)]


def _decide(results, alpha, power, target_tv, m) -> list:
    reject = st.holm([r.p_value for r in results], alpha) if results else []
    rows = []
    for r, rej in zip(results, reject):
        under = math.isfinite(r.detectable) and r.metric != "energy" and r.detectable > target_tv
        verdict = "REJECT" if rej else ("underpowered" if under else "pass")
        rows.append(CheckRow(r.name, float(r.statistic), float(r.p_value), int(r.n), r.metric,
                             float(r.detectable), alpha / m, verdict, r.detail))
    return rows


def _verdict(rows) -> str:
    bad = [r for r in rows if r.verdict in ("REJECT", "DISAGREE")]
    if bad:
        worst = min(bad, key=lambda r: r.p_value)
        return f"not exact: {worst.name} p={worst.p_value:.3g}"
    if any(r.verdict == "underpowered" for r in rows):
        return "underpowered"
    return "exact"
