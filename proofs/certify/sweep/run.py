"""Certification sweeps: many scenarios, split into tasks, run by an executor, merged
exactly, decided once with Holm (docs/CERTIFICATION.md "Sweeps and Ray").

``sweep(impl, n_random, *, samples=None, alpha, power, target_tv, seed, executor,
workers, results, retries, chunk, progress) -> SweepReport``

Work. The scenarios are the protocol's fixed battery (certify's) followed by
``n_random`` random scenarios (:mod:`.scenarios`). Scenario s gets ``rounds[s]`` rounds
(``samples``, or certify's power rule at alpha/m over the m checks of the WHOLE sweep),
cut into blocks of ``block_rounds``; a task is a run of consecutive blocks of one
scenario and returns count tables (:mod:`.counts`). Block b of scenario s draws all its
randomness from ``SeedSequence(seed, spawn_key=(s, b))`` (=
``SeedSequence(seed).spawn(S)[s].spawn(B)[b]``; random scenario s's parameters come from
``SeedSequence(seed).spawn(S)[s]`` itself), so the merged counts are the same for every
executor, worker count and chunking.

Results file (JSON lines, optional). Line 1 is a header holding the sweep's parameters
and their SHA-256; every completed task is appended (flushed and fsynced) as soon as it
finishes. Re-running with the same file skips the blocks already there (a resume); a
header with another hash is refused (InvalidInput naming ``results``); a torn last line
(a kill during a write) is ignored.

Failures. A task that raises is retried ``retries`` times by the executor, then listed in
the report and the verdict becomes ``incomplete`` (its scenario's checks are reported as
not run but still count in Holm's m). A sampler that raises on valid input is not an
infrastructure failure: it is recorded as a rejection (``<scenario>/run``), as in certify.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from specoracle.reference.types import InvalidInput

from ... import stats as st
from .. import executors as ex
from ..decision import (DEFAULT_ALPHA, DEFAULT_POWER, DEFAULT_TARGET_TV, CheckRow, Report, check_run_args, decide,
                        verdict_of)
from ..impl import DEFAULT_SCENARIOS
from ..registry import resolve_impl
from ..sampling import all_scenarios
from . import counts as ct
from .scenarios import random_scenario

BLOCK_ROUNDS = 500
FORMAT = 1


# ---------------------------------------------------------------- tasks (run on the workers)


@dataclass(frozen=True)
class Task:
    """The picklable payload of one task: blocks [b0, b1) of scenario ``s``."""

    impl: object          # a built-in name / module:function (resolved on the worker) or an Impl
    seed: int
    s: int
    scenario: tuple       # ("battery", name) | ("random", protocol)
    blocks: tuple
    rounds: int           # the scenario's total rounds (the last block may be short)
    block_rounds: int
    sizes: tuple          # ((table, cells), ...)


class SamplerRaised(Exception):
    """The sampler under test raised: a property of the sampler, not retried."""


class _Guard:
    def __init__(self, fn):
        self.fn = fn
        self.__wrapped__ = fn   # inspect.signature sees the sampler's own keywords (top_k, min_p)

    def __call__(self, *args, **kw):
        try:
            return self.fn(*args, **kw)
        except Exception as exc:  # noqa: BLE001 - reported as a rejection of the sampler
            raise SamplerRaised(f"{type(exc).__name__}: {exc}") from exc


@lru_cache(maxsize=16)
def _resolve(name):
    return resolve_impl(name)


@lru_cache(maxsize=16)
def scenario_of(seed: int, s: int, key: tuple):
    if key[0] == "battery":
        return all_scenarios()[key[1]]
    return random_scenario(seed, s, key[1], name=key[2] if len(key) > 2 else None)


def run_task(task: Task) -> dict:
    """Count tables of one task (module doc); pure function of the task."""
    spec = _resolve(task.impl) if isinstance(task.impl, str) else resolve_impl(task.impl)
    spec = replace(spec, fn=_Guard(spec.fn), batch=_Guard(spec.batch) if spec.batch is not None else None)
    sc = scenario_of(task.seed, task.s, task.scenario)
    sizes = dict(task.sizes)
    tables = {k: [0] * (v + 1) for k, v in sizes.items()}
    for b in range(*task.blocks):
        n = min(task.block_rounds, task.rounds - b * task.block_rounds)
        rng = np.random.default_rng(np.random.SeedSequence(task.seed, spawn_key=(task.s, b)))
        try:
            tables = ct.add_tables(tables, ct.count_rounds(spec, sc, n, rng, sizes))
        except SamplerRaised as exc:
            return {"tables": tables, "sampler_error": f"block {b}: {exc}"}
    return {"tables": tables, "sampler_error": ""}


# ---------------------------------------------------------------- planning


@dataclass
class Planned:
    s: int
    key: tuple
    scenario: object
    checks: list
    rounds: int

    @property
    def name(self):
        return self.scenario.name

    @property
    def n_blocks(self):
        return -(-self.rounds // BLOCK_ROUNDS)


def plan(spec, n_random, *, seed, samples, alpha, power, target_tv, battery=True, scenarios=None) -> list:
    """The sweep's scenarios with their checks and rounds (module doc)."""
    if spec.protocol not in ct.SWEPT_PROTOCOLS:
        raise InvalidInput("impl", f"protocol {spec.protocol!r} is not count-based and cannot be swept "
                                   f"(sweeps cover {', '.join(ct.SWEPT_PROTOCOLS)}); use certify without --sweep")
    if n_random and spec.protocol not in ("probs", "logits"):
        raise InvalidInput("sweep", f"random scenarios exist for the probs and logits protocols, not {spec.protocol!r}")
    pool = all_scenarios()
    names = list(scenarios or spec.scenarios or DEFAULT_SCENARIOS[spec.protocol]) if battery else []
    for nm in names:
        if nm not in pool:
            raise InvalidInput("scenarios", f"unknown scenario {nm!r} (one of {', '.join(sorted(pool))})")
        if scenarios and not ct.sweepable(pool[nm]):
            raise InvalidInput("scenarios", f"scenario {nm!r} is not count-based per round; certify it without --sweep")
    names = [nm for nm in names if ct.sweepable(pool[nm])]   # the default battery's `rounds` runs in certify only
    out = []
    for s, nm in enumerate(names):
        out.append(Planned(s, ("battery", nm), pool[nm], ct.checks(spec, pool[nm]), 0))
    for i in range(int(n_random)):
        s = len(names) + i
        key = ("random", spec.protocol, f"r{i}")
        sc = scenario_of(seed, s, key)
        out.append(Planned(s, key, sc, ct.checks(spec, sc), 0))
    if not out:
        raise InvalidInput("sweep", "no scenario to run (no battery and no random scenario)")
    m = sum(len(p.checks) for p in out)
    for p in out:
        p.rounds = int(samples) if samples is not None else ct.needed_rounds(spec, p.scenario, alpha / m, power,
                                                                            target_tv)
    return out


def header(spec, impl, planned, *, seed, alpha, power, target_tv) -> dict:
    params = {"format": FORMAT, "impl": impl if isinstance(impl, str) else spec.name, "protocol": spec.protocol,
              "law": spec.law, "seed": int(seed), "alpha": alpha, "power": power, "target_tv": target_tv,
              "block_rounds": BLOCK_ROUNDS,
              "scenarios": [[p.s, list(p.key), p.rounds] for p in planned]}
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
    return {"specoracle_sweep": params, "sha256": digest}


# ---------------------------------------------------------------- results file


class ResultsFile:
    """Append-only JSON lines (module doc): ``done`` holds the records already there."""

    def __init__(self, path, head: dict):
        self.path = path
        self.done: list = []
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path) as fh:
                lines = fh.read().split("\n")
            try:
                first = json.loads(lines[0])
            except ValueError:
                raise InvalidInput("results", f"{path} is not a specoracle sweep results file") from None
            if first.get("sha256") != head["sha256"]:
                raise InvalidInput("results", f"{path} was written by a sweep with other parameters "
                                              f"({str(first.get('sha256'))[:12]} != {head['sha256'][:12]}); "
                                              "use another file or the same parameters")
            body = [ln for ln in lines[1:] if ln.strip()]
            for i, ln in enumerate(body):
                try:
                    self.done.append(json.loads(ln))
                except ValueError:
                    if i != len(body) - 1:
                        raise InvalidInput("results", f"{path}: unreadable line {i + 2}") from None
            self._rewrite(head)   # drops a torn last line
        else:
            self._rewrite(head)

    def _rewrite(self, head):
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as fh:
            for rec in [head] + self.done:
                fh.write(json.dumps(rec) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def append(self, rec: dict) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


# ---------------------------------------------------------------- the sweep


@dataclass
class SweepReport:
    """A certify :class:`~specoracle.proofs.certify.Report` (checks, verdict) plus the sweep's
    bookkeeping: per-scenario rounds and detectable TV, tasks, failures, workers, time."""

    report: Report
    executor: str
    scenarios: list
    tasks: int
    resumed: int
    failed: list
    workers_used: int
    task_seconds: float
    counts: dict = field(repr=False, default_factory=dict)

    @property
    def verdict(self) -> str:
        return self.report.verdict

    @property
    def total_rounds(self) -> int:
        return sum(s["rounds_done"] for s in self.scenarios)

    def as_json(self) -> dict:
        out = self.report.as_json()
        out["sweep"] = {"executor": self.executor, "tasks": self.tasks, "resumed": self.resumed,
                        "failed": self.failed, "workers_used": self.workers_used,
                        "task_seconds": round(self.task_seconds, 3), "total_rounds": self.total_rounds,
                        "scenarios": self.scenarios}
        return out

    def to_json(self, path) -> None:
        with open(path, "w") as fh:
            json.dump(self.as_json(), fh, indent=2)

    def format(self) -> str:
        lines = [f"sweep: {len(self.scenarios)} scenarios, {self.total_rounds} rounds, {self.tasks} tasks "
                 f"({self.resumed} from the results file, {len(self.failed)} failed), executor {self.executor}, "
                 f"{self.workers_used} worker(s), {self.task_seconds:.1f} s in tasks",
                 f"{'scenario':10s} {'V|d':>6s} {'K':>2s} {'rounds':>9s} {'detectable TV':>14s}  description"]
        for s in self.scenarios:
            det = "-" if s["detectable_tv"] is None else f"{s['detectable_tv']:.4f}"
            lines.append(f"{s['name']:10s} {s['V']:6d} {s['K']:2d} {s['rounds_done']:9d} {det:>14s}  "
                         f"{s['description']}")
        lines += [f"FAILED task {f['scenario']} blocks {f['blocks']}: {f['error']} ({f['attempts']} attempts)"
                  for f in self.failed]
        return "\n".join(lines) + "\n" + self.report.format()


def _chunks(planned, done_blocks, chunk):
    """Tasks over the blocks not yet done: runs of <= ``chunk`` consecutive blocks."""
    out = []
    for p in planned:
        todo = [b for b in range(p.n_blocks) if (p.s, b) not in done_blocks]
        run = []
        for b in todo:
            if run and (b != run[-1] + 1 or len(run) == chunk):
                out.append((p, (run[0], run[-1] + 1)))
                run = []
            run.append(b)
        if run:
            out.append((p, (run[0], run[-1] + 1)))
    return out


def sweep(impl, n_random: int = 0, *, samples: int | None = None, alpha: float = DEFAULT_ALPHA,
          power: float = DEFAULT_POWER, target_tv: float = DEFAULT_TARGET_TV, seed: int = 0,
          battery: bool = True, scenarios=None, executor: str = "inprocess", workers: int | None = None,
          results: str | None = None, retries: int = 2, chunk: int | None = None, progress: bool = False,
          runtime_env: dict | None = None, task_fn=None, on_task=None) -> SweepReport:
    """Run a certification sweep (module doc). ``task_fn`` replaces :func:`run_task` (tests,
    instrumentation); ``on_task(record)`` is called after each completed task is saved."""
    t0 = time.perf_counter()
    check_run_args(alpha, target_tv, samples, power=power)
    if n_random < 0:
        raise InvalidInput("sweep", f"must be >= 0, got {n_random}")
    if chunk is not None and chunk < 1:
        raise InvalidInput("chunk", f"must be >= 1, got {chunk}")
    ex.parse_executor(executor)
    spec = resolve_impl(impl)
    planned = plan(spec, n_random, seed=seed, samples=samples, alpha=alpha, power=power, target_tv=target_tv,
                   battery=battery, scenarios=scenarios)
    head = header(spec, impl, planned, seed=seed, alpha=alpha, power=power, target_tv=target_tv)
    store = ResultsFile(results, head) if results else None
    previous = store.done if store else []
    done_blocks = {(r["s"], b) for r in previous for b in range(*r["blocks"])}
    total_blocks = sum(p.n_blocks for p in planned)
    if chunk is None:
        chunk = max(1, min(8, -(-total_blocks // (4 * max(int(workers or os.cpu_count() or 1), 1)))))
    todo = _chunks(planned, done_blocks, chunk)
    payload = impl if isinstance(impl, str) else spec
    items = [((p.s, blocks), Task(payload, int(seed), p.s, p.key, blocks, p.rounds, BLOCK_ROUNDS,
                                  tuple(sorted(ct.table_sizes(p.scenario).items()))))
             for p, blocks in todo]
    records = list(previous)
    failed, workers_seen, task_secs = [], set(), 0.0
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(items), desc=f"sweep {spec.name}", unit="task", leave=False)
    try:
        for o in ex.map_tasks(task_fn or run_task, items, executor, workers, retries, runtime_env):
            s, blocks = o.key
            if bar is not None:
                bar.update(1)
            if not o.ok:
                failed.append({"scenario": planned[s].name, "s": s, "blocks": list(blocks), "error": o.error,
                               "attempts": o.attempts})
                continue
            rec = {"s": s, "blocks": list(blocks), "tables": o.value["tables"],
                   "sampler_error": o.value.get("sampler_error", ""), "seconds": round(o.seconds, 4),
                   "attempts": o.attempts, "worker": o.worker}
            if store:
                store.append(rec)
            records.append(rec)
            workers_seen.add(o.worker)
            task_secs += o.seconds
            if on_task is not None:
                on_task(rec)
    finally:
        if bar is not None:
            bar.close()
    return _decide(spec, planned, records, failed, alpha=alpha, power=power, target_tv=target_tv, seed=seed,
                   executor=executor, n_tasks=len(items), resumed=len(previous), workers=len(workers_seen),
                   task_secs=task_secs, t0=t0)


def merge_records(planned, records) -> tuple[dict, dict, dict]:
    """Per scenario: merged tables, rounds done, first sampler error (exact integer sums)."""
    tables, rounds, errors = {}, {p.s: 0 for p in planned}, {}
    for r in sorted(records, key=lambda r: (r["s"], r["blocks"][0])):
        s = r["s"]
        tables[s] = ct.add_tables(tables.get(s, {}), r["tables"])
        if r.get("sampler_error"):
            errors.setdefault(s, r["sampler_error"])
    for s, t in tables.items():
        rounds[s] = ct.total_rounds(t)
    return tables, rounds, errors


def _shape(sc) -> tuple:
    """(V or the Gaussian dimension d, K / tree depth / window L / children k) of a scenario."""
    if hasattr(sc, "V"):
        return sc.V, getattr(sc, "K", None) or getattr(sc, "D", None) or getattr(sc, "k", 1)
    if hasattr(sc, "x0"):
        return len(sc.x0), sc.L
    return len(sc.m_p), 1


def _decide(spec, planned, records, failed, *, alpha, power, target_tv, seed, executor, n_tasks, resumed,
            workers, task_secs, t0) -> SweepReport:
    tables, rounds, errors = merge_records(planned, records)
    m = sum(len(p.checks) for p in planned)
    alpha_i = alpha / m
    complete = {p.s for p in planned if rounds[p.s] == p.rounds and p.s not in errors}
    results, missing, notes, scen = [], [], [], []
    for p in planned:
        dets = []   # the detectable TV of each chi-square check of the scenario
        for c in p.checks:
            if p.s in complete:
                r = c.test(tables[p.s], alpha_i, power)
                results.append(r)
                if r.metric == "TV" and math.isfinite(r.detectable):
                    dets.append(r.detectable)
            else:
                missing.append(c.name)
        sc = p.scenario
        size, depth = _shape(sc)
        scen.append({"name": p.name, "description": sc.description, "V": int(size), "K": int(depth),
                     "rounds": p.rounds,
                     "rounds_done": rounds[p.s], "checks": len(p.checks),
                     "detectable_tv": max(dets) if dets else None})
    # checks that could not run keep their share of alpha: Holm over the planned m
    padded = results + [st.TestResult(nm, float("nan"), 1.0, 0) for nm in missing]
    rows = decide(padded, alpha, power, target_tv, m)
    for row in rows[len(results):]:
        row.verdict = "not run"
    for s, err in errors.items():
        rows.append(CheckRow(f"{planned[s].name}/run", float("nan"), 0.0, 0, "error", float("nan"),
                                verdict="REJECT", detail=err))
        notes.append(f"{planned[s].name}: the sampler raised {err}")
    verdict = verdict_of(rows)
    if failed and not verdict.startswith("not exact"):
        verdict = f"incomplete: {len(failed)} task(s) failed after retries"
    elif missing and not verdict.startswith("not exact"):
        verdict = f"incomplete: {len(missing)} check(s) not run"
    if failed:
        notes.append(f"{len(missing)} check(s) not run (scenario incomplete): resume with the same --results file")
    report = Report(spec.name, spec.description, verdict, alpha, power, target_tv, seed, rows,
                       time.perf_counter() - t0, notes)
    return SweepReport(report, executor, scen, n_tasks, resumed, failed, workers, task_secs, tables)
