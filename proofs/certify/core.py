"""One certification run in one process: :func:`certify` (the package doc of
:mod:`specoracle.proofs.certify` states what is checked, the error budget and the power
rule) and the coupled check :func:`coupled_check`. It resolves the sampler
(registry.py), plans the checks (decision.py), runs the scenarios (sampling.py) or hands
protocol "batch" to batch.py, and decides once (decision.py).
"""
from __future__ import annotations

import sys
import time

import numpy as np

from specoracle.reference.types import InvalidInput, InvalidTest

from .. import stats as st
from . import scenarios as scn
from .batch import certify_batch
from .decision import (DEFAULT_ALPHA, DEFAULT_POWER, DEFAULT_TARGET_TV, CheckRow, Report, check_run_args, decide,
                       needed_n, plan_checks, verdict_of)
from .impl import DEFAULT_SCENARIOS, LAWS, PROTOCOLS, Impl, OutputFormatError, tokens_and_tau
from .registry import resolve_impl
from .sampling import RUNNERS, all_scenarios, logit_keywords, takes_keywords

COUPLED_CASES = 500      # cases per scenario of a coupled check
DECISIVE = 10.0          # stop_early: a p-value <= alpha_i / DECISIVE ends the run
PROGRESS_INTERVAL = 10.0  # seconds between plain progress lines (no TTY)


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
        x = tokens_and_tau(oracle(*case))
        y = tokens_and_tau(core(*case))
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
        return certify_batch(spec, samples=samples, alpha=alpha, power=power, target_tv=target_tv, seed=seed,
                             scenarios=scenarios, progress=progress)
    pool = all_scenarios()
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
    plans = {sc.name: plan_checks(spec, sc) for sc in chosen}
    m = sum(len(v) for v in plans.values())
    alpha_i = alpha / max(m, 1)
    sizes = {}
    for sc in chosen:
        need = max(needed_n(p, alpha_i, power, target_tv) for p in plans[sc.name])
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
                got = RUNNERS[type(sc)](spec, sc, sizes[sc.name], rng, alpha_i, power, bar)
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
    rows = decide(results, alpha, power, target_tv, m)
    if stopped is not None:
        rows.append(stopped)
    if spec.core is not None and spec.oracle is not None and spec.protocol == "probs" and stopped is None:
        for sc in ran:
            if isinstance(sc, scn.MarkovScenario):
                row, _ = coupled_check(spec.core, spec.oracle, coupled_cases(sc, rng), f"{sc.name}/coupled")
                rows.append(row)
    verdict = verdict_of(rows)
    return Report(spec.name, spec.description, verdict, alpha, power, target_tv, seed, rows,
                  time.perf_counter() - t0, notes, planned=m)


def _runnable(spec: Impl, chosen: list, notes: list) -> list:
    """The scenarios the sampler can be fed: one it is exempt from (``Impl.exempt``) is bad
    input naming the reason; a logits fn without the top_k / min_p keywords skips the
    scenarios that need them (with a note)."""
    exempt = dict(spec.exempt)
    for sc in chosen:
        if sc.name in exempt:
            raise InvalidInput("scenarios", f"{spec.name} cannot run scenario {sc.name!r}: {exempt[sc.name]}")
    if spec.protocol != "logits":
        return chosen
    out = []
    for sc in chosen:
        extra = logit_keywords(sc)
        if extra and not takes_keywords(spec.fn, extra):
            notes.append(f"{sc.name} skipped: {spec.name} takes no keyword {', '.join(extra)} "
                         f"(logits protocol, module doc)")
            continue
        out.append(sc)
    if not out:
        raise InvalidInput("scenarios", f"{spec.name} can run none of the chosen logits scenarios")
    return out


def coupled_cases(sc, rng, n=COUPLED_CASES):
    draft, p, q = sc.draw_drafts(n, rng)
    u = rng.random((n, sc.K + 1))
    return [(p[j], q[j], draft[j], u[j]) for j in range(n)]


