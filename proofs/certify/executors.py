"""Executors for certification at scale: run independent tasks in-process or on Ray.

specoracle does not schedule work itself; it hands independent tasks to an executor and
merges what comes back. Two entry points:

``map_tasks(fn, items, executor="inprocess", workers=None, retries=2)``
    ``items`` is a list of ``(key, arg)``; yields one :class:`Outcome` per item, in the
    order they finish, with ``fn(arg)`` or the error of its last attempt. A task that
    raises is submitted again, up to ``retries`` more times; after that its Outcome
    carries the error (``ok`` False) - it is never dropped.
``map_actors(factory, fn, items, executor="inprocess", actors=2, retries=2)``
    the actor-pool variant for engines: each actor builds ``engine = factory()`` ONCE
    (e.g. loads a model) and then runs ``fn(engine, arg)`` for the items it is given.
    Requests are sharded by the caller into items; results are merged by the caller
    (see :func:`merged_counts` for Counters of token tuples). In-process, one engine
    is built and the items run one after the other.

``executor`` spellings (:func:`parse_executor`):
    ``inprocess`` (default, nothing to install) | ``ray`` (a local Ray started on the
    fly with ``workers`` CPUs and shut down afterwards) | ``ray://HOST:PORT`` (Ray Client
    to an existing cluster) | ``auto`` (``ray.init(address="auto")``: the cluster this
    machine belongs to). An already initialised Ray (``ray.is_initialized()``) is used as
    it is and left running. ``fn``, ``factory`` and the args must be picklable (module
    level functions; on a remote cluster the modules must be importable there: install
    specoracle on the cluster or pass a Ray ``runtime_env``).

Reproducibility is the caller's business and is easy: give every task its own seed
(``numpy.random.SeedSequence(seed).spawn``), never a worker-dependent one; then the
merged result does not depend on the executor, the number of workers or the order in
which tasks finish.
"""
from __future__ import annotations

import os
import socket
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from specoracle.reference.types import InvalidInput

RAY_EXTRA = 'pip install "specoracle[ray]"'
LOCAL_OBJECT_STORE = 100 * 1024 ** 2   # bytes: tasks return small count tables


class MissingExtra(ImportError):
    """An optional extra is not installed; the message names the pip command."""


@dataclass
class Outcome:
    """One task's result: ``value`` (when ``ok``) or ``error`` (repr of the last
    exception), the ``attempts`` it took, its run time and the worker that ran it."""

    key: Any
    value: Any = None
    error: str = ""
    attempts: int = 1
    seconds: float = 0.0
    worker: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def parse_executor(spec: str) -> tuple[str, str | None]:
    """("inprocess" | "ray", address) from an executor spelling; InvalidInput otherwise.
    The address is None for a local Ray, "auto", or "ray://HOST:PORT"."""
    spec = (spec or "inprocess").strip()
    if spec in ("inprocess", "in-process", "local"):
        return "inprocess", None
    if spec == "ray":
        return "ray", None
    if spec == "auto":
        return "ray", "auto"
    if spec.startswith("ray://"):
        host, _, port = spec[len("ray://"):].rpartition(":")
        if not host or not port.isdigit():
            raise InvalidInput("executor", f"expected ray://HOST:PORT, got {spec!r}")
        return "ray", spec
    raise InvalidInput("executor", f"expected inprocess, ray, ray://HOST:PORT or auto, got {spec!r}")


def require_ray():
    """Import Ray or raise :class:`MissingExtra` naming the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise MissingExtra(f"Ray is not installed ({exc}); {RAY_EXTRA}") from None
    return ray


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _timed(fn, arg):
    t0 = time.perf_counter()
    value = fn(arg)
    return value, time.perf_counter() - t0, worker_id()


class _RaySession:
    """Connect to (or start) Ray for the duration of a ``with`` block."""

    def __init__(self, address, workers, runtime_env=None):
        self.address, self.workers, self.runtime_env = address, workers, runtime_env
        self.started = False

    def __enter__(self):
        ray = require_ray()
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if not ray.is_initialized():
            kw = dict(log_to_driver=False, configure_logging=False)
            if self.runtime_env:
                kw["runtime_env"] = self.runtime_env
            if self.address is None:  # a NEW local Ray ("local": never another user's cluster), small
                kw.update(address="local", num_cpus=int(self.workers or os.cpu_count() or 1), include_dashboard=False,
                          object_store_memory=LOCAL_OBJECT_STORE)
                ray.init(**kw)
            else:
                ray.init(address=self.address, **kw)
            self.started = True
        return ray

    def __exit__(self, *exc):
        if self.started:
            import ray
            ray.shutdown()


def session(executor: str, workers: int | None = None, runtime_env: dict | None = None):
    """A context manager holding one Ray for several map_tasks / map_actors calls (they
    reuse an initialised Ray); a no-op for the in-process executor."""
    from contextlib import nullcontext
    kind, address = parse_executor(executor)
    return nullcontext() if kind == "inprocess" else _RaySession(address, workers, runtime_env)


def _capacity(ray, workers):
    """How many tasks to keep in flight: ``workers`` or the cluster's CPUs."""
    if workers:
        return int(workers)
    return max(int(ray.cluster_resources().get("CPU", 1)), 1)


def map_tasks(fn: Callable, items: Iterable, executor: str = "inprocess", workers: int | None = None,
              retries: int = 2, runtime_env: dict | None = None) -> Iterator[Outcome]:
    """Run ``fn(arg)`` for every ``(key, arg)`` of ``items``; yield :class:`Outcome` s as
    they finish (module doc). ``workers`` bounds the tasks in flight (Ray: also the CPUs of
    a local Ray); ``retries`` extra attempts per failing task."""
    kind, address = parse_executor(executor)
    items = list(items)
    if retries < 0:
        raise InvalidInput("retries", f"must be >= 0, got {retries}")
    if kind == "inprocess":
        for key, arg in items:
            yield _inprocess(fn, key, arg, retries)
        return
    with _RaySession(address, workers, runtime_env) as ray:
        remote = ray.remote(num_cpus=1, max_retries=0)(_timed)
        yield from _ray_loop(ray, items, _capacity(ray, workers), retries,
                             lambda arg: remote.remote(fn, arg))


def _inprocess(fn, key, arg, retries, call=None):
    call = call or (lambda a: _timed(fn, a))
    for attempt in range(1, retries + 2):
        try:
            value, secs, who = call(arg)
            return Outcome(key, value, "", attempt, secs, who)
        except Exception as exc:  # noqa: BLE001 - any task error is retried, then reported
            err = f"{type(exc).__name__}: {exc}"
    return Outcome(key, None, err, retries + 1, 0.0, worker_id())


def _ray_loop(ray, items, capacity, retries, submit, release=None):
    """Keep at most ``capacity`` tasks in flight; resubmit failures up to ``retries``
    times. ``submit(arg)`` returns an ObjectRef; ``release(ref)`` frees its slot (actors)."""
    pending = list(reversed(items))
    flight: dict = {}   # ref -> (key, arg, attempt)

    def push(key, arg, attempt):
        flight[submit(arg)] = (key, arg, attempt)

    while pending or flight:
        while pending and len(flight) < capacity:
            key, arg = pending.pop()
            push(key, arg, 1)
        done, _ = ray.wait(list(flight), num_returns=1)
        ref = done[0]
        key, arg, attempt = flight.pop(ref)
        if release is not None:
            release(ref)
        try:
            value, secs, who = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - RayTaskError, worker crash, actor death: retried
            if attempt <= retries:
                push(key, arg, attempt + 1)
                continue
            cause = getattr(exc, "cause", None) or exc
            yield Outcome(key, None, f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}",
                          attempt, 0.0, "")
            continue
        yield Outcome(key, value, "", attempt, secs, who)


# ---------------------------------------------------------------- actor pool (engines)


class EngineHost:
    """Holds one engine built by ``factory()``; ``run(fn, arg)`` -> (fn(engine, arg), s, worker).
    On Ray each actor is one EngineHost (one engine per actor)."""

    def __init__(self, factory: Callable):
        self.engine = factory()

    def run(self, fn, arg):
        t0 = time.perf_counter()
        value = fn(self.engine, arg)
        return value, time.perf_counter() - t0, worker_id()


def map_actors(factory: Callable, fn: Callable, items: Iterable, executor: str = "inprocess", actors: int = 2,
               retries: int = 2, runtime_env: dict | None = None) -> Iterator[Outcome]:
    """Run ``fn(engine, arg)`` for every ``(key, arg)``, one engine per actor (module doc).
    Yields :class:`Outcome` s as they finish; failing items are retried on any actor."""
    kind, address = parse_executor(executor)
    items = list(items)
    if actors < 1:
        raise InvalidInput("actors", f"must be >= 1, got {actors}")
    if kind == "inprocess":
        host = EngineHost(factory)
        for key, arg in items:
            yield _inprocess(None, key, arg, retries, call=lambda a: host.run(fn, a))
        return
    with _RaySession(address, actors, runtime_env) as ray:
        cls = ray.remote(num_cpus=1, max_restarts=1)(EngineHost)
        pool = [cls.remote(factory) for _ in range(actors)]
        idle = list(pool)
        busy: dict = {}

        def submit(arg):
            actor = idle.pop(0)
            ref = actor.run.remote(fn, arg)
            busy[ref] = actor
            return ref

        def release(ref):
            idle.append(busy.pop(ref))

        try:
            yield from _ray_loop(ray, items, actors, retries, submit, release)
        finally:
            for a in pool:
                ray.kill(a)


def merged_counts(outcomes: Iterable[Outcome]) -> tuple[Counter, list]:
    """Sum the Counters of successful outcomes (exact: integer addition commutes, so the
    merge does not depend on the split or the finishing order); failures are returned."""
    total: Counter = Counter()
    failed = []
    for o in outcomes:
        if o.ok:
            total.update(o.value)
        else:
            failed.append(o)
    return total, failed


def engine_counts(factory: Callable, sample: Callable, n_requests: int, *, shard: int, seed: int,
                  executor: str = "inprocess", actors: int = 2, retries: int = 2,
                  runtime_env: dict | None = None) -> tuple[Counter, list, list]:
    """Engine-level certification sharded over actors: requests ``0..n_requests-1`` are cut
    into shards of ``shard`` requests; ``sample(engine, first, count, seed)`` returns a
    Counter of token tuples for requests ``first..first+count-1`` (request r's seed must
    be a function of ``seed`` and r only, e.g. ``seed + r``). Returns (merged Counter,
    failed Outcomes, all Outcomes). The merged counts are identical for any number of
    actors and for the in-process executor."""
    if n_requests < 1 or shard < 1:
        raise InvalidInput("n_requests" if n_requests < 1 else "shard", "must be >= 1")
    items = [((s, min(shard, n_requests - s)), (s, min(shard, n_requests - s), seed))
             for s in range(0, n_requests, shard)]
    outs = list(map_actors(factory, _ShardCall(sample), items, executor, actors, retries, runtime_env))
    total, failed = merged_counts(outs)
    return total, failed, outs


class _ShardCall:
    """Picklable adapter: (engine, (first, count, seed)) -> sample(engine, first, count, seed)."""

    def __init__(self, sample):
        self.sample = sample

    def __call__(self, engine, arg):
        first, count, seed = arg
        return Counter(self.sample(engine, first, count, seed))
