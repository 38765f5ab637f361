"""Measure a sweep on the in-process executor and on a local Ray with 1 and 2 workers, and
tabulate the detectable TV against total samples (docs/PERFORMANCE.md).

    python -m specoracle.proofs.certify.sweep.measure --impl reference.chain --sweep 8 --samples 3000 \
        --workers 2 --json sweep_measure.json

One local Ray is started (its start-up time is reported apart) and reused for both worker
counts; every run must give the same counts (checked: the script fails otherwise).
"""
from __future__ import annotations

import argparse
import json
import os
import time

from ... import stats as st
from ..decision import DEFAULT_ALPHA, DEFAULT_POWER
from ..registry import resolve_impl
from ..executors import LOCAL_OBJECT_STORE, map_tasks, require_ray
from .run import plan, sweep

ROUNDS = (10 ** 3, 10 ** 4, 10 ** 5, 10 ** 6, 10 ** 7)
EMPTY_TASKS = 200


def _identity(x):
    return x


def detectable_table(impl, n_random, seed, alpha, power, rounds=ROUNDS) -> list:
    """Rows (rounds per scenario, total rounds, worst and best detectable TV over the chi-square
    checks) for the sweep's scenarios and Holm share alpha/m (stats.detectable_tv)."""
    spec = resolve_impl(impl)
    planned = plan(spec, n_random, seed=seed, samples=1000, alpha=alpha, power=power, target_tv=0.05)
    m = sum(len(p.checks) for p in planned)
    dfs = [c.df for p in planned for c in p.checks if c.kind == "gof" and c.df > 0]
    out = []
    for n in rounds:
        tv = [st.detectable_tv(n, df, alpha / m, power) for df in dfs]
        out.append({"rounds_per_scenario": n, "total_rounds": n * len(planned), "checks": m,
                    "worst_tv": max(tv), "best_tv": min(tv)})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impl", default="reference.chain")
    ap.add_argument("--sweep", type=int, default=8)
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    kw = dict(samples=a.samples, seed=a.seed, chunk=1)
    out = {"impl": a.impl, "sweep": a.sweep, "samples": a.samples, "cpus": os.cpu_count()}
    t = time.perf_counter()
    base = sweep(a.impl, a.sweep, **kw)
    out["inprocess_s"] = time.perf_counter() - t
    out["tasks"] = base.tasks
    out["rounds"] = base.total_rounds
    out["inprocess_task_s"] = base.task_seconds
    ray = require_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    t = time.perf_counter()
    ray.init(address="local", num_cpus=a.workers, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=LOCAL_OBJECT_STORE)
    out["ray_start_s"] = time.perf_counter() - t
    try:
        sweep(a.impl, 0, samples=10, seed=a.seed, executor="ray", workers=a.workers, scenarios=None)  # warm workers
        for kind in ("inprocess", "ray"):   # the executor's own cost: tasks that do nothing
            t = time.perf_counter()
            list(map_tasks(_identity, [(i, i) for i in range(EMPTY_TASKS)], kind, a.workers))
            out[f"empty_task_{kind}_ms"] = 1e3 * (time.perf_counter() - t) / EMPTY_TASKS
        for w in range(1, a.workers + 1):
            t = time.perf_counter()
            rep = sweep(a.impl, a.sweep, executor="ray", workers=w, **kw)
            out[f"ray_{w}_s"] = time.perf_counter() - t
            out[f"ray_{w}_workers_used"] = rep.workers_used
            if rep.counts != base.counts:
                raise SystemExit(f"ray with {w} workers gave other counts than in-process")
    finally:
        ray.shutdown()
    out["ratio_1_over_2"] = out["ray_1_s"] / out[f"ray_{a.workers}_s"]
    out["overhead_per_task_ms"] = 1e3 * (out["ray_1_s"] - out["inprocess_s"]) / out["tasks"]
    out["detectable"] = detectable_table(a.impl, a.sweep, a.seed, DEFAULT_ALPHA, DEFAULT_POWER)
    print(json.dumps(out, indent=2))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
