"""Benchmark framework of ``specoracle bench``: timing, the copy bandwidth, tables; every suite.

DESIGN.md principle 9: benchmarks are not tests. Each figure is a median wall time
per call, printed beside its *memory floor* (the bytes the algorithm must read once,
divided by the copy bandwidth measured in the same run) and as speed-up ratios over
baselines measured in the same run.

Suites are registered by name and device in the one registry (fastpath/registry.py,
``register_suite`` / ``suites``, re-exported here), so other areas add theirs without
touching this file::

    from specoracle.fastpath.registry import register_suite
    register_suite("e2e-llm", "cuda", run_my_suite)   # run_my_suite(ctx) -> list[dict]

A suite returns rows ``{"op", "backend", "B", ..., "median_us", "floor_us",
"vs_<baseline>": ...}`` (the JSON schema of docs/PERFORMANCE.md; extra keys are allowed). ``backend``
uses the registry's vocabulary (reference, numba, torch, ...) for specoracle's own code
and names the baseline otherwise (torch_plain, hf, vllm, ...).

Built-in suites (``registry.SUITE_MODULES``, each module of this package registers its own):

    kernels       cpu   kernels_cpu.py (+ gaussian_cpu.py; torch_plain.py: the plain-torch anchor)
    cuda-kernels  cuda  kernels_cuda.py
    llm, llm-tau  cpu   llm.py (end-to-end decoding on the zoo pair); llm-cuda on cuda
    dflash        cpu   dflash.py (DFlash / D2SD vs the AR draft)
    diffusion     cpu   diffusion.py (speculative diffusion sampling)
    device-round  cpu   device_round.py (device round vs host round, paired); device-round-cuda
"""
from __future__ import annotations

import datetime as _dt
import json
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..registry import Suite, register_suite, suites  # noqa: F401  (the one suite registry)


@dataclass
class BenchContext:
    """What a suite gets: the options, the measured copy bandwidth, a progress callback."""

    quick: bool = False
    tiny: bool = False         # plumbing size (the CPU check of `bench --all`); implies quick
    device: str = ""           # torch device of the suite's tensors; "" = its registered device
    options: dict = field(default_factory=dict)    # per-run size overrides (see sizes())
    dtype: str = "float32"
    clock: str = "wall"        # "wall" (perf_counter) or "cpu" (this process's CPU time)
    copy_bandwidth_GBps: float = 0.0
    copy_threads: int = 1      # threads of the copy that measured the bandwidth
    notes: list = field(default_factory=list)      # lines printed under the table
    extra: dict = field(default_factory=dict)      # extra top-level JSON entries
    progress: Callable[[str], None] = lambda msg: None

    def __post_init__(self):
        self.quick = self.quick or self.tiny    # suites that know only --quick get their smallest

    def sizes(self, full: dict, quick: dict | None = None, tiny: dict | None = None) -> dict:
        """A suite's sizes for this run: ``full``, updated by ``quick`` (``--quick``) or by
        ``quick`` then ``tiny`` (the plumbing size), then by :attr:`options` (the overrides a
        caller such as ``bench --all`` passes; keys the suite does not know are an error)."""
        out = dict(full)
        if self.quick:
            out.update(quick or {})
        if self.tiny:
            out.update(tiny or {})
        unknown = sorted(set(self.options) - set(out))
        if unknown:
            raise KeyError(f"unknown size option(s) {unknown}; this suite has {sorted(out)}")
        out.update(self.options)
        return out

    def time_us(self, fn: Callable[[], object], **kw) -> float:
        """Median microseconds of ``fn()`` on this context's clock (see :func:`median_us`;
        at the tiny size: three calls, no minimum time)."""
        if self.tiny:
            kw.setdefault("min_time", 0.0)
        return median_us(fn, clock=self.clock, **kw)

    def timer(self) -> Callable[[], float]:
        return clock_function(self.clock)

    def floor_us(self, nbytes: float) -> float:
        """Microseconds to read ``nbytes`` once at the measured copy bandwidth."""
        return nbytes / (self.copy_bandwidth_GBps * 1e9) * 1e6


# ---------------------------------------------------------------- measurements


def clock_function(clock: str = "wall") -> Callable[[], float]:
    """``time.perf_counter`` (wall) or ``time.process_time`` (CPU time of this process: all its
    threads together; with --threads 1 it is the kernel's own time, robust to other
    processes competing for the cores of a shared machine)."""
    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock must be 'wall' or 'cpu', got {clock!r}")
    return time.perf_counter if clock == "wall" else time.process_time


def median_us(fn: Callable[[], object], min_time: float = 0.25, min_reps: int = 3,
              max_reps: int = 200, clock: str = "wall") -> float:
    """Median time of ``fn()`` in microseconds on ``clock`` (one untimed warm-up call first)."""
    now = clock_function(clock)
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < min_time and len(times) < max_reps):
        t0 = now()
        fn()
        times.append(now() - t0)
    return statistics.median(times) * 1e6


def copy_bandwidth_GBps(nbytes: int = 256 * 2 ** 20, reps: int = 7, clock: str = "wall",
                        threads: int = 1) -> float:
    """Copy bandwidth in GB/s, STREAM convention: (bytes read + bytes written) / time, for
    a copy of a buffer far larger than the last-level cache (best of ``reps``).
    Reading alone proceeds at about this total rate, so bytes-to-read / this bandwidth is
    the floor of a memory-bound kernel.

    ``threads`` = 1: ``numpy.copyto`` (one core). ``threads`` > 1: a torch ``copy_`` with that
    many intra-op threads, so that the floor of kernels run on ``threads`` cores is divided
    by the bandwidth those cores reach together (one core cannot saturate the memory bus).
    The CPU clock sums the time of all threads, so with ``clock="cpu"`` one thread is used."""
    now = clock_function(clock)
    if threads > 1 and clock == "wall":
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            src_t = torch.ones(nbytes // 8, dtype=torch.float64)
            dst_t = torch.empty_like(src_t)
            copy = lambda: dst_t.copy_(src_t)  # noqa: E731
            size = src_t.numel() * 8
            return 2 * size / _best_time(copy, now, reps) / 1e9
        finally:
            torch.set_num_threads(before)
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    return 2 * src.nbytes / _best_time(lambda: np.copyto(dst, src), now, reps) / 1e9


def _best_time(fn: Callable[[], object], now: Callable[[], float], reps: int) -> float:
    """Best of ``reps`` timed calls of ``fn`` after one untimed call."""
    fn()
    best = np.inf
    for _ in range(reps):
        t0 = now()
        fn()
        best = min(best, now() - t0)
    return best


def device_name() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import os

    return f"{cpu}, {os.cpu_count()} cores"


# ---------------------------------------------------------------- running and printing


def run_suites(names, ctx: BenchContext, device: str) -> dict:
    """Run the named suites; return the JSON document (schema above)."""
    import os

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    import torch

    ctx.device = ctx.device or device
    ctx.copy_threads = torch.get_num_threads() if ctx.clock == "wall" else 1
    ctx.copy_bandwidth_GBps = copy_bandwidth_GBps(clock=ctx.clock, threads=ctx.copy_threads)
    rows = []
    for name in names:
        rows.extend(suites()[name].run(ctx))
    doc = {"device": device_name() if device == "cpu" else device,
           "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "copy_bandwidth_GBps": round(ctx.copy_bandwidth_GBps, 2), "copy_threads": ctx.copy_threads,
           "clock": ctx.clock, "rows": rows}
    doc.update(ctx.extra)
    if load_before is not None:
        # other processes on the machine distort every figure: record how busy it was
        doc["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return doc


def _fmt(x, nd=1):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}" if abs(x) < 1e5 else f"{x:.3g}"
    return str(x)


def format_table(doc: dict) -> str:
    """A plain-text (markdown) table of the rows."""
    rows = doc["rows"]
    ratio_keys = sorted({k for r in rows for k in r if k.startswith("vs_")})
    shape_keys = [k for k in ("B", "K", "N", "V", "L", "d") if any(k in r for r in rows)]
    head = ["op", "backend", *shape_keys, "median_us", "floor_us", "x floor", *ratio_keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        xfloor = r["median_us"] / r["floor_us"] if r.get("floor_us") else None
        cells = [r["op"], r["backend"], *[_fmt(r.get(k)) for k in shape_keys],
                 _fmt(r["median_us"]), _fmt(r.get("floor_us"), 1), _fmt(xfloor, 2),
                 *[_fmt(r.get(k), 2) for k in ratio_keys]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_json(doc: dict, path: str) -> None:
    with open(path, "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
