"""Black-box certification of any speculative sampler against the exact laws of the
battery in :mod:`specoracle.proofs.scenarios` (issues 4 and 20; DESIGN.md principle 5).

``certify(impl, *, samples=None, alpha=1e-3, power=0.9, target_tv=0.05, seed=0,
progress=False, stop_early=True) -> Report``

What is checked (ALGORITHMS.md §7 testing protocol, with stated error rates):
  * for every scenario of the impl's protocol, the JOINT law of the emitted block
    (completed to a fixed length by target sampling) against the target's law;
  * when the impl declares its algorithm (``law="chain"`` or ``"block"``), the law of
    (tau, emitted tokens) - i.e. the law conditional on the accepted length - the law of
    tau (multinomial), and P(tau >= 1) (exact binomial), against closed forms;
  * multi-round requests ("probs" protocol, scenario ``rounds``): each request runs R
    consecutive rounds with its own generator and continues after its last emitted
    token; the first tokens of the request must follow the target chain and (declared
    law) the joint law of (tau_1..tau_R) the product of the exact per-round laws along
    the request: noise reused across rounds (a stale buffer, an RNG keyed on the position
    in the block) is invisible to one-round checks and shows here;
  * continuous samplers: Anderson-Darling / KS on whitened 1-D projections, an energy
    test in d dims, exact binomial acceptance;
  * where the impl exposes a noise-injected ``core``: a coupled check, decision by
    decision against the oracle under the same noise (agreement rate, first disagreement).

Error rates: the false-positive budget ``alpha`` is split over the m checks of the run
by Holm's step-down (family-wise error <= alpha for any dependence between checks;
the coupled checks are deterministic and take no share). Categorical checks use a
simulated (Monte-Carlo, Besag-Clifford) null, valid at the small per-check levels where
the chi-square approximation over-rejects (proofs/stats.py). Power: each calibrated
check must detect ``target_tv`` (TV for categorical laws, KS distance for continuous
projections, |p - p0| for binomials) with probability >= ``power`` at the Bonferroni
level alpha/m (Holm rejects at least whatever Bonferroni rejects). ``samples=None``
picks, per scenario, the smallest n that achieves this; a smaller ``samples`` makes the
run ``underpowered`` (unless a check already rejects, which is valid evidence anyway).
The report states the smallest effect each check (and the whole run) could see.
``stop_early``: once a check's p-value is <= alpha/(10 m) (a rejection no later check can
undo: Holm's first step rejects it at alpha/m, with a margin of 10), the remaining
scenarios are skipped and the report says so.

Names: ``reference.*``, ``mutant.*``, adapters (``transformers.speculative_sampling``,
``flashinfer.chain_speculative_sampling``, ``vllm.v1.rejection_sampler``), fast paths
(``numba.*``, ``torch.*``, discovered lazily), or ``module:function`` (adapter
protocol below). Register more with :func:`register_impl`.

Adapter protocols (``Impl.protocol``); every call gets a ``numpy.random.Generator``:
  "probs"          fn(p [K+1, V], q [K, V], draft [K], rng) -> emitted tokens
  "logits"         fn(target_logits [K+1, V], draft_logits [K, V], draft [K], rng,
                      temperature, top_p, *, top_k=..., min_p=...) -> emitted tokens
                      (top_k / min_p are passed only by scenarios that use them; an
                      fn without those keywords skips those scenarios, with a note)
  "mss"            fn(p [V], q [k, V], children [k], rng) -> Verdict (n_accepted 0/1)
  "kseq"           fn(p [V], q [V], candidates [k], rng) -> Verdict
  "tree"           fn(p [N+1, V], tokens [N], parents [N], rng) -> emitted tokens
  "gauss_step"     fn(m_p [d], m_q [d], s, z [d], rng) -> GaussianStep or (y [d], accepted)
  "gauss_residual" fn(m_p [d], m_q [d], s, c, rng) -> y [d]
  "gauss_block"    fn(m_p [L+1, d], m_q [L, d], s [L+1], z [L, d], rng) -> states [tau+1, d]
  "batch"          fn(target_probs [N+B, V], draft_probs [N, V], draft_token_ids [N],
                      cu_num_draft_tokens [B], temperature [B], generators [B]) -> ids [B, max K+1]
                   (B ragged requests, vLLM V1 layout; checked by :mod:`specoracle.proofs.batch`)
Inputs: probability rows are float64 C-contiguous arrays that sum to 1 and CONTAIN EXACT
ZEROS (tokens of probability 0: take logs with care, log 0 = -inf); logits are float64
(-inf never occurs; rows carry arbitrary per-row offsets, as a model's logits do); draft
ids, children, candidates, tree tokens and parents are int64; ``rng`` is a
``numpy.random.Generator`` (single-round scenarios share one for the scenario; in the
``rounds`` scenario every request has its own, passed to each of its rounds).
Outputs: "emitted tokens" may be a Verdict, a 1-D sequence of integer ids, or
``(ids, n_accepted)`` (for "batch": see :mod:`specoracle.proofs.batch`).
``n_accepted`` (tau) is the number of ACCEPTED DRAFT tokens, 0..K; the emitted block is those tau draft tokens followed by ONE corrected or bonus
token, so ``len(ids) == n_accepted + 1`` (1..K+1 ids, each in [0, V), no padding).
Without ``n_accepted``, tau = len(ids) - 1. An output that breaks these rules (a float
dtype, -1 padding, n_accepted counting the bonus token, a wrong length, an id out of
range) stops the run with the verdict ``format error: <scenario>: <problem>``.
A ``module:function`` target may set attributes ``specoracle_protocol`` (default
"probs") and ``specoracle_law`` ("chain", "block"; default None: the algorithm-agnostic
checks only, and the report says so); a misspelt attribute or an unknown value is an
``InvalidInput`` error.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import json
import math
import sys
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import stats as sps

from specoracle.reference.types import InvalidInput, InvalidTest

from . import scenarios as scn
from . import stats as st

PROTOCOLS = ("probs", "logits", "mss", "kseq", "tree", "gauss_step", "gauss_residual", "gauss_block", "batch")
LAWS = ("chain", "block")   # values of Impl.law / fn.specoracle_law (None: algorithm-agnostic)
ADAPTER_ATTRIBUTES = ("specoracle_protocol", "specoracle_law")

DEFAULT_SCENARIOS = {
    "probs": ("t1", "zeros", "scaled", "markov", "spread", "rounds"),
    "logits": ("warped", "topk", "minp", "offsets"),
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
DECISIVE = 10.0          # stop_early: a p-value <= alpha_i / DECISIVE ends the run
PROGRESS_INTERVAL = 10.0  # seconds between plain progress lines (no TTY)
NOT_CALIBRATED = ("agreement", "error", "format")  # CheckRow metrics outside the Holm family


class OutputFormatError(Exception):
    """A sampler's output breaks the adapter protocol (module doc: Outputs)."""


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
    impossible: int = 0   # observations in cells of null probability 0 (each one alone gives p = 0)

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
    planned: int = 0      # calibrated checks planned (the Holm family of a complete run)

    @property
    def exact(self) -> bool:
        return self.verdict == "exact"

    @property
    def calibrated(self) -> list:
        """The rows of the Holm family (statistical checks that ran)."""
        return [c for c in self.checks if c.metric not in NOT_CALIBRATED]

    def sensitivity(self) -> dict:
        """Per effect metric: the smallest effect EVERY check of that metric detects with
        the stated power (the run's figure: the largest per-check detectable effect), the
        most sensitive check and its figure."""
        out = {}
        for c in self.calibrated:
            if not math.isfinite(c.detectable):
                continue
            d = out.setdefault(c.metric, {"every_check": 0.0, "best": float("inf"), "best_check": ""})
            d["every_check"] = max(d["every_check"], c.detectable)
            if c.detectable < d["best"]:
                d["best"], d["best_check"] = c.detectable, c.name
        return out

    def as_json(self) -> dict:
        return {"impl": self.impl, "description": self.description, "verdict": self.verdict,
                "alpha": self.alpha, "power": self.power, "target_tv": self.target_tv, "seed": self.seed,
                "multiplicity": f"Holm step-down over the {len(self.calibrated)} calibrated checks that ran "
                                f"({self.planned} planned; FWER <= alpha)",
                "checks_ran": len(self.calibrated), "checks_planned": self.planned,
                "smallest_detectable": self.sensitivity(),
                "seconds": round(self.seconds, 3), "notes": self.notes,
                "checks": [c.as_json() for c in self.checks]}

    def to_json(self, path) -> None:
        with open(path, "w") as fh:
            json.dump(self.as_json(), fh, indent=2)

    def format(self) -> str:
        ran = len(self.calibrated)
        family = f"Holm over {ran} checks" + (f" of {self.planned} planned" if self.planned > ran else "")
        lines = [f"certify {self.impl}" + (f": {self.description}" if self.description else ""),
                 f"alpha = {self.alpha:g} per run ({family}), power = {self.power:g} at effect "
                 f"{self.target_tv:g}, seed = {self.seed}",
                 f"{'check':34s} {'statistic':>11s} {'p-value':>10s} {'alpha_i':>9s} {'n':>7s} "
                 f"{'detectable':>16s}  verdict"]
        for c in self.checks:
            det = "-" if not math.isfinite(c.detectable) else f"{c.detectable:.4f} {c.metric}"
            a = "-" if not math.isfinite(c.alpha_share) else f"{c.alpha_share:.2g}"
            stat = "impossible" if c.impossible else f"{c.statistic:.4g}"
            lines.append(f"{c.name:34s} {stat:>11s} {c.p_value:10.3g} {a:>9s} {c.n:7d} {det:>16s}  {c.verdict}")
        for c in self.checks:
            if c.verdict in ("REJECT", "DISAGREE", "FORMAT") and c.detail:
                lines.append(f"  {c.name}: {c.detail}")
        sens = self.sensitivity()
        if sens:
            lines.append("smallest effect seen with power {:g}: ".format(self.power) + "; ".join(
                f"{m} {d['every_check']:.4g} by every check (best {d['best']:.4g}, {d['best_check']})"
                for m, d in sens.items()))
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
    from . import adapters, batch, mutants  # noqa: F401  (they register themselves)
    adapters.register_all(register_impl)
    mutants.register_all(register_impl)
    batch.register_all(register_impl)


def list_impls() -> list[str]:
    """Every built-in name (reference, adapters, fast paths, mutants), sorted."""
    _discover()
    return sorted(_FACTORIES)


def resolve_impl(impl) -> Impl:
    """An :class:`Impl` from a name, ``module:function``, a callable, or an Impl.

    ``module:function`` imports the module (``ImportError`` if it is missing, or
    ``AttributeError`` if it has no such function: the CLI reports both as "not
    loadable"); the function's ``specoracle_protocol`` / ``specoracle_law`` attributes
    are validated (:func:`adapter_attributes`)."""
    if isinstance(impl, Impl):
        return impl
    if callable(impl):
        proto, law = adapter_attributes(impl, getattr(impl, "__name__", "callable"))
        return Impl(getattr(impl, "__name__", "callable"), proto, impl, law, first_sentence(impl.__doc__))
    _discover()
    if impl in _FACTORIES:
        return _FACTORIES[impl]()
    if ":" in impl:
        mod, _, fname = impl.partition(":")
        module = importlib.import_module(mod)
        if not hasattr(module, fname):
            raise AttributeError(f"module {mod!r} ({getattr(module, '__file__', '?')}) has no attribute {fname!r}")
        fn = getattr(module, fname)
        proto, law = adapter_attributes(fn, impl)
        return Impl(impl, proto, fn, law, first_sentence(getattr(fn, "__doc__", "")))
    raise InvalidInput("impl", f"unknown sampler {impl!r}: see `specoracle certify --list` or use module:function")


def adapter_attributes(fn, name: str = "impl"):
    """``(protocol, law)`` from ``fn.specoracle_protocol`` (default "probs") and
    ``fn.specoracle_law`` (default None), validated: an unknown value, or an attribute
    that looks like a misspelling of one of them, raises :class:`InvalidInput`."""
    attrs = [a for a in getattr(fn, "__dict__", {}) if a not in ADAPTER_ATTRIBUTES]
    for a in attrs:
        close = difflib.get_close_matches(a.lower(), ADAPTER_ATTRIBUTES, n=1, cutoff=0.75)
        if close or a.lower().startswith("specoracle"):
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise InvalidInput("impl", f"{name}: unknown attribute {a!r}; {hint}the adapter attributes are "
                                       f"{', '.join(ADAPTER_ATTRIBUTES)}")
    proto = getattr(fn, "specoracle_protocol", "probs")
    if proto not in PROTOCOLS:
        raise InvalidInput("impl", f"{name}: specoracle_protocol = {proto!r} is not a protocol "
                                   f"(one of {', '.join(PROTOCOLS)})")
    law = getattr(fn, "specoracle_law", None)
    if law is not None and law not in LAWS:
        raise InvalidInput("impl", f"{name}: specoracle_law = {law!r} is not a known law "
                                   f"(one of {', '.join(LAWS)}, or None for the algorithm-agnostic checks)")
    return proto, law


def first_sentence(doc) -> str:
    """The first sentence of a docstring's first paragraph, on one line ("" if none)."""
    para = inspect.cleandoc(doc or "").split("\n\n")[0]
    text = " ".join(para.split())
    for end in (". ", ".\n"):
        i = text.find(end)
        if i >= 0:
            return text[:i + 1]
    return text


# ---------------------------------------------------------------- output normalisation


def _emitted(out):
    """(tokens tuple, tau or None) from a Verdict, a sequence, or (sequence, tau)."""
    raw, tau = _split_output(out)
    return tuple(int(t) for t in np.asarray(raw).ravel()), (None if tau is None else int(tau))


def _split_output(out):
    """(ids, n_accepted or None) of an output (module doc: Outputs), unchecked."""
    if hasattr(out, "tokens") and hasattr(out, "n_accepted"):
        return out.tokens, out.n_accepted
    if isinstance(out, tuple) and len(out) == 2 and np.ndim(out[0]) == 1 and np.ndim(out[1]) == 0:
        return out
    return out, None


def _short_output(out) -> str:
    text = repr(out)
    return text if len(text) <= 120 else text[:117] + "..."


def _ids(raw, V: int, max_len: int, out) -> tuple:
    """Token ids from ``raw``, or :class:`OutputFormatError` naming what is wrong."""
    arr = np.asarray(raw)
    if arr.ndim != 1:
        raise OutputFormatError(f"expected a 1-D sequence of token ids, got shape {arr.shape}: {_short_output(out)}")
    if arr.size == 0:
        raise OutputFormatError(f"no token emitted (a round emits n_accepted + 1 >= 1 tokens): {_short_output(out)}")
    if arr.dtype.kind not in "iu":
        raise OutputFormatError(f"token ids have dtype {arr.dtype}, expected integers: {_short_output(out)}")
    if np.any(arr < 0):
        i = int(np.flatnonzero(arr < 0)[0])
        what = "-1 padding" if arr[i] == -1 else f"a negative id {int(arr[i])}"
        raise OutputFormatError(f"{what} at index {i}: return only the emitted tokens: {_short_output(out)}")
    if np.any(arr >= V):
        i = int(np.flatnonzero(arr >= V)[0])
        raise OutputFormatError(f"token id {int(arr[i])} at index {i} is out of range [0, {V}): {_short_output(out)}")
    if arr.size > max_len:
        raise OutputFormatError(f"{arr.size} tokens emitted, at most {max_len} (K + 1) per round: "
                                f"{_short_output(out)}")
    return tuple(int(t) for t in arr)


def _block_output(out, V: int, K: int):
    """(tokens, tau) of one round with K drafted tokens; OutputFormatError if malformed."""
    raw, tau = _split_output(out)
    toks = _ids(raw, V, K + 1, out)
    if tau is None:
        return toks, len(toks) - 1
    if np.asarray(tau).dtype.kind not in "iu":
        raise OutputFormatError(f"n_accepted has dtype {np.asarray(tau).dtype}, expected an integer: "
                                f"{_short_output(out)}")
    tau = int(tau)
    if tau == len(toks):
        raise OutputFormatError(f"n_accepted = {tau} with {len(toks)} tokens counts the bonus/corrected token: "
                                f"n_accepted is the number of accepted DRAFT tokens, len(tokens) == n_accepted + 1: "
                                f"{_short_output(out)}")
    if tau != len(toks) - 1:
        raise OutputFormatError(f"n_accepted = {tau} but {len(toks)} tokens emitted (expected len(tokens) == "
                                f"n_accepted + 1): {_short_output(out)}")
    return toks, tau


# ---------------------------------------------------------------- planning


@dataclass
class _Planned:
    name: str
    kind: str      # "gof" | "binom" | "ks" | "energy"
    df: int = 0
    p0: float = 0.5


def _gof_df(law) -> int:
    return int((np.asarray(law) > 0).sum()) - 1


def _plan(impl: Impl, sc) -> list:
    """The calibrated checks one scenario contributes (before sampling)."""
    if isinstance(sc, scn.MarkovScenario):
        out = [_Planned(f"{sc.name}/joint", "gof", _gof_df(sc.joint_law()))]
        if impl.law in LAWS:
            em = sc.chain_law() if impl.law == "chain" else sc.block_law()
            ln = sc.length_law(em)
            out += [_Planned(f"{sc.name}/emitted|tau", "gof", _gof_df(em)),
                    _Planned(f"{sc.name}/tau", "gof", _gof_df(ln)),
                    _Planned(f"{sc.name}/accept1", "binom", 1, float(1 - ln[0]))]
        return out
    if isinstance(sc, scn.RoundsScenario):
        out = [_Planned(f"{sc.name}/stream", "gof", _gof_df(sc.stream_law()))]
        if impl.law in LAWS:
            out.append(_Planned(f"{sc.name}/taus", "gof", _gof_df(sc.taus_law(impl.law))))
        return out
    if isinstance(sc, scn.MultiScenario):
        law = sc.law()
        return [_Planned(f"{sc.name}/token", "gof", _gof_df(law[:sc.V] + law[sc.V:])),
                _Planned(f"{sc.name}/accepted,token", "gof", _gof_df(law)),
                _Planned(f"{sc.name}/accept", "binom", 1, float(law[sc.V:].sum()))]
    if isinstance(sc, scn.TreeScenario):
        return [_Planned(f"{sc.name}/joint", "gof", _gof_df(sc.joint_law())),
                _Planned(f"{sc.name}/tau", "gof", _gof_df(sc.length_law()))]
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
        return st.gof_sample_size(tv, p.df, alpha_i, power, null=GOF_NULL) if p.df > 0 else 1
    if p.kind == "binom":
        return st.binomial_sample_size(tv, p.p0, alpha_i, power)
    if p.kind == "ks":
        a = math.sqrt(math.log(2 / alpha_i)) + math.sqrt(math.log(2 / (1 - power)))
        return int(math.ceil(a * a / (2 * tv * tv)))
    return 1


def _all_scenarios():
    out = {}
    for f in (scn.markov_scenarios, scn.greedy_scenarios, scn.logits_scenarios, scn.rounds_scenarios,
              scn.multi_scenarios, scn.tree_scenarios, scn.gauss_scenarios):
        out.update(f())
    return out


_LOGIT_KEYWORDS = ("top_k", "min_p")


def _logit_keywords(sc) -> dict:
    """The keyword warps (top_k, min_p) a logits scenario passes to the sampler."""
    return {k: sc.warp[k] for k in _LOGIT_KEYWORDS if sc.warp.get(k) is not None}


def _takes_keywords(fn, names) -> bool:
    """Whether ``fn`` accepts the keyword arguments ``names`` (True if it cannot be inspected)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return True
    have = {p.name for p in params if p.kind in (inspect.Parameter.KEYWORD_ONLY,
                                                  inspect.Parameter.POSITIONAL_OR_KEYWORD)}
    return set(names) <= have


# ---------------------------------------------------------------- sampling per scenario type


GOF_NULL = "simulated"   # categorical checks: Monte-Carlo null (proofs/stats.py, issue 20)


def _keyed(rng, purpose: int, name: str) -> np.random.SeedSequence:
    """A seed sequence keyed on the run's seed (the entropy of ``rng``, read without
    advancing it), a purpose tag and a name: streams separate from the sampler's."""
    ss = getattr(rng.bit_generator, "seed_seq", None)
    entropy = ss.entropy if isinstance(getattr(ss, "entropy", None), int) else 0
    return np.random.SeedSequence(entropy, spawn_key=(purpose, zlib.crc32(name.encode())))


def _mc_rng(rng, name: str) -> np.random.Generator:
    """The null-simulation generator of the check ``name`` (:func:`_keyed`)."""
    return np.random.default_rng(_keyed(rng, 0x6D63, name))


def _tick(bar, j: int) -> None:
    """Progress: one update per 256 rounds (call with the 0-based round index)."""
    if bar is not None and j % 256 == 255:
        bar.update(256)


def _tick_end(bar, n: int) -> None:
    if bar is not None:
        bar.update(n % 256)


def _run_markov(impl, sc, n, rng, bar):
    """Emitted blocks of n rounds: completed-block indices, emitted-cell indices, taus."""
    draft, p, q = sc.draw_drafts(n, rng)
    joint = np.empty(n, dtype=np.int64)
    emitted = np.empty(n, dtype=np.int64)
    taus = np.empty(n, dtype=np.int64)
    V, K = sc.V, sc.K
    prevs = np.concatenate([np.full((n, 1), V), draft], axis=1)
    extra = _logit_keywords(sc)
    batched = None
    if impl.batch is not None and impl.protocol == "probs":
        bv = impl.batch(p, q, draft, rng.random((n, K + 1)))
        batched = [bv.verdict(j) for j in range(n)]
    for j in range(n):
        if batched is not None:
            out = batched[j]
        elif impl.protocol == "logits":
            lp, lq = sc.logits_along(prevs[j])
            out = impl.fn(lp, lq, draft[j], rng, sc.warp.get("temperature", 1.0), sc.warp.get("top_p"), **extra)
        else:
            out = impl.fn(p[j], q[j], draft[j], rng)
        try:
            toks, taus[j] = _block_output(out, V, K)
        except OutputFormatError as exc:
            raise OutputFormatError(f"round {j}: {exc}") from None
        joint[j] = scn.seq_index(sc.complete(toks, rng), V)
        emitted[j] = sc.emitted_index(toks)
        _tick(bar, j)
    _tick_end(bar, n)
    return joint, emitted, taus


def _counts(idx, size):
    """Counts [size] of the indices idx."""
    return np.bincount(np.asarray(idx), minlength=size).astype(np.float64)


def _gof(name, idx, law, alpha_i, power, rng=None, describe=None):
    """Chi-square GOF of the observed cell indices ``idx`` against ``law`` (simulated
    null; ``rng`` keys the simulation, see :func:`_mc_rng`). ``describe(cell) -> str``
    names a cell for the report when an impossible outcome is observed."""
    law = np.asarray(law, dtype=np.float64)
    counts = _counts(idx, len(law))
    mc = _mc_rng(rng if rng is not None else np.random.default_rng(0), name)
    r = st.chisquare_gof(counts, law / law.sum(), alpha=alpha_i, power=power, name=name, null=GOF_NULL, rng=mc)
    if r.impossible:
        r = dataclasses.replace(r, detail=_impossible_detail(counts, law, describe))
    return r


def _impossible_detail(counts, law, describe) -> str:
    bad = np.flatnonzero((law <= 0) & (counts > 0))
    worst = int(bad[np.argmax(counts[bad])])
    what = describe(worst) if describe is not None else f"cell {worst}"
    total = int(counts[bad].sum())
    more = f"; {total} impossible outputs in {len(bad)} cells" if len(bad) > 1 else ""
    return (f"impossible outcome emitted: {what} has probability 0 under the exact law, seen "
            f"{int(counts[worst])} times in {int(counts.sum())} rounds{more}")


def _tokens_of(index: int, V: int, length: int) -> tuple:
    out = []
    for _ in range(length):
        out.append(index % V)
        index //= V
    return tuple(reversed(out))


def _describe_emitted(sc):
    off = sc.emitted_offsets()

    def describe(cell):
        t = int(np.searchsorted(off, cell, side="right")) - 1
        return f"tau = {t}, tokens {_tokens_of(cell - int(off[t]), sc.V, t + 1)}"
    return describe


def _check_markov(impl, sc, n, rng, alpha_i, power, bar):
    joint, emitted, taus = _run_markov(impl, sc, n, rng, bar)
    res = [_gof(f"{sc.name}/joint", joint, sc.joint_law(), alpha_i, power, rng,
                lambda c: f"completed block {_tokens_of(c, sc.V, sc.K + 1)}")]
    if impl.law in LAWS:
        em = sc.chain_law() if impl.law == "chain" else sc.block_law()
        ln = sc.length_law(em)
        res.append(_gof(f"{sc.name}/emitted|tau", emitted, em, alpha_i, power, rng, _describe_emitted(sc)))
        res.append(_gof(f"{sc.name}/tau", taus, ln, alpha_i, power, rng, lambda c: f"tau = {c}"))
        res.append(st.binomial_test(int(np.sum(taus >= 1)), n, float(1 - ln[0]),
                                    alpha=alpha_i, power=power, name=f"{sc.name}/accept1"))
    return res


def _check_rounds(impl, sc, n, rng, alpha_i, power, bar):
    """n requests of R rounds each, every request with its own generator (module doc).
    A batched kernel (``Impl.batch``: its noise comes from the certifier, there is no
    sampler RNG to reuse) is called once per round for all requests instead."""
    V, K, R = sc.V, sc.K, sc.R
    rounds = sc.rounds()
    run = _rounds_batched if impl.batch is not None and impl.protocol == "probs" else _rounds_per_request
    toks, taus = run(impl, sc, rounds, n, rng, bar)          # emitted tokens per request, [n, R] taus
    stream = np.array([scn.seq_index(t[:sc.M], V) for t in toks], dtype=np.int64)
    hist = np.zeros(n, dtype=np.int64)
    for r in range(R):
        hist = hist * (K + 1) + taus[:, r]
    res = [_gof(f"{sc.name}/stream", stream, sc.stream_law(), alpha_i, power, rng,
                lambda c: f"first tokens {_tokens_of(c, V, sc.M)}")]
    if impl.law in LAWS:
        res.append(_gof(f"{sc.name}/taus", hist, sc.taus_law(impl.law), alpha_i, power, rng,
                        lambda c: f"taus {_tokens_of(c, K + 1, R)}"))
    return res


def _round_output(out, V, K, j, r):
    try:
        return _block_output(out, V, K)
    except OutputFormatError as exc:
        raise OutputFormatError(f"request {j}, round {r}: {exc}") from None


def _rounds_per_request(impl, sc, rounds, n, rng, bar):
    requests = _keyed(rng, 0x7275, sc.name).spawn(n)   # one generator per request
    toks_all = [[] for _ in range(n)]
    taus = np.empty((n, sc.R), dtype=np.int64)
    for j in range(n):
        own = np.random.default_rng(requests[j])
        c = sc.V
        for r in range(sc.R):
            draft, p, q = rounds[c].draw_drafts(1, rng)
            toks, taus[j, r] = _round_output(impl.fn(p[0], q[0], draft[0], own), sc.V, sc.K, j, r)
            toks_all[j] += toks
            c = toks[-1]
        _tick(bar, j)
    _tick_end(bar, n)
    return toks_all, taus


def _rounds_batched(impl, sc, rounds, n, rng, bar):
    V, K = sc.V, sc.K
    toks_all = [[] for _ in range(n)]
    taus = np.empty((n, sc.R), dtype=np.int64)
    ctx = np.full(n, V)
    for r in range(sc.R):
        draft = np.empty((n, K), dtype=np.int64)
        p, q = np.empty((n, K + 1, V)), np.empty((n, K, V))
        for c in np.unique(ctx):
            idx = np.flatnonzero(ctx == c)
            draft[idx], p[idx], q[idx] = rounds[c].draw_drafts(len(idx), rng)
        bv = impl.batch(p, q, draft, rng.random((n, K + 1)))
        for j in range(n):
            toks, taus[j, r] = _round_output(bv.verdict(j), V, K, j, r)
            toks_all[j] += toks
            ctx[j] = toks[-1]
    if bar is not None:
        bar.update(n)
    return toks_all, taus


def _check_multi(impl, sc, n, rng, alpha_i, power, bar):
    children = sc.draw_children(n, rng)
    V = sc.V
    cells = np.empty(n, dtype=np.int64)
    for j in range(n):
        if sc.kind == "mss":
            out = impl.fn(sc.p, sc.q, children[j], rng)
        else:
            out = impl.fn(sc.p, sc.q[0], children[j], rng)
        raw, tau = _split_output(out)
        try:
            toks = _ids(raw, V, 1, out)
        except OutputFormatError as exc:
            raise OutputFormatError(f"round {j}: {exc}") from None
        if tau is None or int(tau) not in (0, 1):
            raise OutputFormatError(f"round {j}: n_accepted must be 0 (the token is a correction) or 1 (a child "
                                    f"was accepted), got {tau!r}: {_short_output(out)}")
        cells[j] = int(tau) * V + toks[0]
        _tick(bar, j)
    _tick_end(bar, n)
    law = sc.law()

    def describe(c):
        return f"{'accepted child' if c >= V else 'corrected token'} {c % V}"
    return [_gof(f"{sc.name}/token", cells % V, law[:V] + law[V:], alpha_i, power, rng, lambda c: f"token {c}"),
            _gof(f"{sc.name}/accepted,token", cells, law, alpha_i, power, rng, describe),
            st.binomial_test(int(np.sum(cells >= V)), n, float(law[V:].sum()),
                             alpha=alpha_i, power=power, name=f"{sc.name}/accept")]


def _check_tree(impl, sc, n, rng, alpha_i, power, bar):
    rows = sc.rows()
    joint, taus = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    for j in range(n):
        out = impl.fn(rows, sc.tokens, sc.parents, rng)
        try:
            toks, taus[j] = _block_output(out, sc.V, sc.D)
        except OutputFormatError as exc:
            raise OutputFormatError(f"round {j}: {exc}") from None
        joint[j] = scn.seq_index(sc.complete(toks, rng), sc.V)
        _tick(bar, j)
    _tick_end(bar, n)
    return [_gof(f"{sc.name}/joint", joint, sc.joint_law(), alpha_i, power, rng,
                 lambda c: f"completed path {_tokens_of(c, sc.V, sc.D + 1)}"),
            _gof(f"{sc.name}/tau", taus, sc.length_law(), alpha_i, power, rng, lambda c: f"tau = {c}")]


def _finite_rows(y, d):
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    return y if y.shape == (d,) and np.all(np.isfinite(y)) else None


def _sample_gauss_step(impl, sc, n, rng, bar):
    """Whitened outputs w [n, d] (basis coordinates; 1e6 for malformed ones), accepted [n], bad."""
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
        _tick(bar, j)
    _tick_end(bar, n)
    return w, acc, bad


def _check_gauss_step(impl, sc, n, rng, alpha_i, power, bar):
    d = len(sc.m_p)
    w, acc, bad = _sample_gauss_step(impl, sc, n, rng, bar)
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
    return dataclasses.replace(r, name=name)


def _sample_gauss_residual(impl, sc, n, rng, bar):
    """zS [n] (S through the exact residual law, then to N(0, 1)) and W [n, d-1]; 1e6 if malformed."""
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
        _tick(bar, j)
    _tick_end(bar, n)
    # probability integral transform through the exact residual law, then to N(0, 1)
    with np.errstate(all="ignore"):
        lt = sc.log_tail(S)
        zS = -sps.norm.ppf(np.exp(lt))  # S has tail exp(lt) = Phi_bar(zS)
    bad = ~np.isfinite(S) | (S < sc.s_star())
    zS = np.where(bad | ~np.isfinite(zS), 1e6, zS)
    W = np.where(np.isfinite(W), W, 1e6)
    return zS, W


def _check_gauss_residual(impl, sc, n, rng, alpha_i, power, bar):
    d = len(sc.m_p)
    zS, W = _sample_gauss_residual(impl, sc, n, rng, bar)
    res = [_named(st.ks_normal(zS, alpha=alpha_i, power=power), f"{sc.name}/S ks"),
           _named(st.anderson_normal(zS, alpha=alpha_i, power=power), f"{sc.name}/S ad")]
    res += [_named(st.anderson_normal(W[:, j - 1], alpha=alpha_i, power=power), f"{sc.name}/W{j} ad")
            for j in range(1, d)]
    return res


def _sample_gauss_block(impl, sc, n, rng, bar):
    """Innovations xi [n, L+1, d] of the completed trajectories (1e6 if malformed), tau [n] (-1)."""
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
        _tick(bar, j)
    _tick_end(bar, n)
    return xi, taus


def _check_gauss_block(impl, sc, n, rng, alpha_i, power, bar):
    d, L = len(sc.x0), sc.L
    xi, taus = _sample_gauss_block(impl, sc, n, rng, bar)
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
    scn.RoundsScenario: _check_rounds,
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


# ---------------------------------------------------------------- progress


class _Progress:
    """Progress of a run on stderr: a tqdm bar on a terminal; otherwise (a log, CI) plain
    lines, one when each scenario starts and one every ``interval`` seconds."""

    def __init__(self, total: int, desc: str, tty: bool, file=None, interval: float = PROGRESS_INTERVAL):
        self.total, self.desc, self.done = total, desc, 0
        self.file = file if file is not None else sys.stderr
        self.interval = interval
        self.bar = None
        self.last = time.monotonic()
        if tty:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=desc, unit="round", leave=False, file=self.file)

    def _line(self, what: str) -> None:
        print(f"{self.desc}: {what} ({self.done}/{self.total} rounds, {100 * self.done / max(self.total, 1):.0f}%)",
              file=self.file, flush=True)
        self.last = time.monotonic()

    def scenario(self, name: str, n: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(name)
        else:
            self._line(f"scenario {name}, {n} rounds")

    def update(self, k: int) -> None:
        self.done += k
        if self.bar is not None:
            self.bar.update(k)
        elif time.monotonic() - self.last >= self.interval:
            self._line("running")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------- certify


def check_run_args(alpha, target_tv, samples, *, power=None) -> None:
    """InvalidInput for a bad alpha, power, target TV or sample count (certify and sweeps)."""
    if not (0 < alpha < 1):
        raise InvalidInput("alpha", f"must lie in (0, 1), got {alpha}")
    if power is not None and not (0 < power < 1):
        raise InvalidInput("power", f"must lie in (0, 1), got {power}")
    if not (0 < target_tv <= 1):
        raise InvalidInput("target_tv", f"must lie in (0, 1], got {target_tv}")
    if samples is not None and int(samples) < 10:
        raise InvalidInput("samples", f"needs at least 10 samples per scenario, got {samples}")


def certify(impl, *, samples: int | None = None, alpha: float = DEFAULT_ALPHA, power: float = DEFAULT_POWER,
            target_tv: float = DEFAULT_TARGET_TV, seed: int = 0, scenarios=None,
            progress: bool = False, stop_early: bool = True) -> Report:
    """Certify ``impl`` (a name, ``module:function``, callable or :class:`Impl`); see
    the module doc for the checks, the error budget and the power rule.

    ``samples``: rounds (requests, for ``rounds``) per scenario (None: the smallest n
    reaching ``power`` at ``target_tv`` for every check). ``scenarios``: restrict the
    battery (names). ``progress``: True shows progress on stderr (a bar on a terminal,
    plain periodic lines otherwise). ``stop_early``: end the run after a decisive
    rejection (module doc). Verdict: ``exact``, ``not exact: <check> p=<p>`` (the
    smallest rejected p-value), ``format error: <scenario>: <problem>`` (the output
    breaks the adapter protocol), or ``underpowered``.
    """
    t0 = time.perf_counter()
    check_run_args(alpha, target_tv, samples, power=power)
    spec = resolve_impl(impl)
    if spec.protocol not in PROTOCOLS:
        raise InvalidInput("impl", f"unknown protocol {spec.protocol!r}")
    if spec.protocol == "batch":  # B ragged requests per call: proofs/batch.py
        from .batch import certify_batch
        return certify_batch(spec, samples=samples, alpha=alpha, power=power, target_tv=target_tv, seed=seed,
                             scenarios=scenarios, progress=progress)
    pool = _all_scenarios()
    names = tuple(scenarios or spec.scenarios or DEFAULT_SCENARIOS[spec.protocol])
    for nm in names:
        if nm not in pool:
            raise InvalidInput("scenarios", f"unknown scenario {nm!r} (one of {', '.join(sorted(pool))})")
    notes: list[str] = []
    chosen = _runnable(spec, [pool[nm] for nm in names], notes)
    if spec.law is None and spec.protocol in ("probs", "logits"):
        notes.append(f"{spec.name} declares no law (specoracle_law): only the algorithm-agnostic checks ran; "
                     f"set specoracle_law to one of {', '.join(LAWS)} to also check the law of the accepted "
                     f"length (tau, emitted|tau, accept1)")
    plans = {sc.name: _plan(spec, sc) for sc in chosen}
    m = sum(len(v) for v in plans.values())
    alpha_i = alpha / max(m, 1)
    sizes = {}
    for sc in chosen:
        need = max(_needed_n(p, alpha_i, power, target_tv) for p in plans[sc.name])
        sizes[sc.name] = int(samples) if samples is not None else max(need, 200)
    rng = np.random.default_rng(seed)
    bar = None
    if progress:
        bar = _Progress(sum(sizes.values()), f"certify {spec.name}", tty=sys.stderr.isatty())
    results: list[st.TestResult] = []
    stopped, ran = None, []
    try:
        for k, sc in enumerate(chosen):
            if bar is not None:
                bar.scenario(sc.name, sizes[sc.name])
            try:
                got = _RUNNERS[type(sc)](spec, sc, sizes[sc.name], rng, alpha_i, power, bar)
            except InvalidTest:
                raise
            except OutputFormatError as exc:
                stopped = CheckRow(f"{sc.name}/format", float("nan"), 0.0, 0, "format", float("nan"),
                                   verdict="FORMAT", detail=str(exc))
                notes.append(f"{sc.name}: the sampler's output breaks the adapter protocol; the run stopped "
                             f"(module doc of specoracle.proofs.certify: Outputs)")
                break
            except Exception as exc:  # a sampler that crashes on valid input is not exact
                stopped = CheckRow(f"{sc.name}/run", float("nan"), 0.0, 0, "error", float("nan"),
                                   verdict="REJECT", detail=f"{type(exc).__name__}: {exc}")
                notes.append(f"{sc.name}: the sampler raised {type(exc).__name__}: {exc}")
                break
            results += got
            ran.append(sc)
            decisive = [r for r in got if r.p_value <= alpha_i / DECISIVE]
            rest = [s.name for s in chosen[k + 1:]]
            if stop_early and decisive and rest:
                worst = min(decisive, key=lambda r: r.p_value)
                notes.append(f"stopped early after {sc.name}: {worst.name} p={worst.p_value:.3g} <= alpha_i/"
                             f"{DECISIVE:g} = {alpha_i / DECISIVE:.2g} is rejected whatever the other checks show; "
                             f"skipped {', '.join(rest)} (stop_early=False / --no-early-stop runs them)")
                break
    finally:
        if bar is not None:
            bar.close()
    rows = _decide(results, alpha, power, target_tv, m)
    if stopped is not None:
        rows.append(stopped)
    if spec.core is not None and spec.oracle is not None and spec.protocol == "probs" and stopped is None:
        for sc in ran:
            if isinstance(sc, scn.MarkovScenario):
                row, _ = coupled_check(spec.core, spec.oracle, _coupled_cases(sc, rng), f"{sc.name}/coupled")
                rows.append(row)
    verdict = _verdict(rows)
    return Report(spec.name, spec.description, verdict, alpha, power, target_tv, seed, rows,
                  time.perf_counter() - t0, notes, planned=m)


def _runnable(spec: Impl, chosen: list, notes: list) -> list:
    """The scenarios the sampler can be fed: a logits fn without the top_k / min_p
    keywords skips the scenarios that need them (with a note)."""
    if spec.protocol != "logits":
        return chosen
    out = []
    for sc in chosen:
        extra = _logit_keywords(sc)
        if extra and not _takes_keywords(spec.fn, extra):
            notes.append(f"{sc.name} skipped: {spec.name} takes no keyword {', '.join(extra)} "
                         f"(logits protocol, module doc)")
            continue
        out.append(sc)
    if not out:
        raise InvalidInput("scenarios", f"{spec.name} can run none of the chosen logits scenarios")
    return out


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
                             float(r.detectable), alpha / max(m, 1), verdict, r.detail, int(r.impossible)))
    return rows


def _verdict(rows) -> str:
    fmt = [r for r in rows if r.verdict == "FORMAT"]
    if fmt:
        return f"format error: {fmt[0].name.split('/')[0]}: {fmt[0].detail}"
    bad = [r for r in rows if r.verdict in ("REJECT", "DISAGREE")]
    if bad:
        worst = min(bad, key=lambda r: (r.p_value, -r.impossible))
        why = f" (impossible outcome emitted {worst.impossible} times)" if worst.impossible else ""
        p = "p<1e-300" if worst.p_value == 0 and not worst.impossible and worst.metric != "error" else \
            f"p={worst.p_value:.3g}"
        return f"not exact: {worst.name} {p}{why}"
    if any(r.verdict == "underpowered" for r in rows):
        return "underpowered"
    return "exact"
