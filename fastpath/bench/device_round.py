"""Paired, interleaved timing of the device round against the host round (engine.py
``round_impl``), same models, prompts, seeds and settings, on one thread.

Each repetition runs both rounds back to back, alternating which goes first (so a slow
phase of the machine hits both), and records wall time (``perf_counter``) and process CPU
time (``process_time``) of the whole generation. Reported per setting: median seconds of
each round, and the median and quartiles of the paired ratio device / host (< 1: the device
round saves time). In float64 both runs must emit identical tokens, checked every time.
On a GPU (``--device cuda``) every round ends with the device round's one device -> host
read (the host round copies logits per call), so the wall clock needs no extra sync.

    specoracle bench --suite device-round --threads 1        # CPU: both caches, batch 1 and 8
    specoracle bench --device cuda --suite device-round-cuda # static cache + CUDA graphs
"""
from __future__ import annotations

import time

import numpy as np

from ..registry import register_suite

PROMPTS = ["def fib(n):", "import os\nimport sys\n", "class Stack:", "for i in range(",
           "ROMEO:\n", "return sorted(", "with open(path) as f:", "while True:"]


def _run(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    res = fn()
    return res, time.perf_counter() - w0, time.process_time() - c0


def paired_timing(target, draft, prompts, *, reps: int, k: int = 4, method: str = "chain",
                  warping=None, max_new_tokens: int = 64, cache: str = "dynamic",
                  round_dtype: str = "float64", cuda_graphs: bool = False) -> dict:
    """Interleaved host/device pairs; returns medians and paired device/host ratios."""
    from specoracle.fastpath.models.llm.engine import speculative_generate
    from specoracle.fastpath.models.llm.processing import Warp

    kw = dict(k=k, method=method, warping=warping or Warp(1.0), max_new_tokens=max_new_tokens,
              seeds=list(range(len(prompts))), cache=cache, cuda_graphs=cuda_graphs)
    speculative_generate(target, draft, prompts, **kw)                      # warm-up (numba, allocator)
    dev_kw = dict(kw, round_impl="device", round_dtype=round_dtype)
    speculative_generate(target, draft, prompts, **dev_kw)
    rows = {"host": [], "device": []}
    for r in range(reps):
        order = ("host", "device") if r % 2 == 0 else ("device", "host")
        toks = {}
        for impl in order:
            args = dev_kw if impl == "device" else kw
            res, wall, cpu = _run(lambda: speculative_generate(target, draft, prompts, **args))
            rows[impl].append((wall, cpu))
            toks[impl] = (res.tokens, res.accepted, res.n_tokens)
        if round_dtype == "float64":
            assert toks["host"][:2] == toks["device"][:2], "device and host rounds disagree"
    h, d = np.array(rows["host"]), np.array(rows["device"])
    ratio = d / h                                                              # [reps, 2]
    q = np.percentile(ratio, [25, 50, 75], axis=0)
    return dict(batch=len(prompts), cache=cache, tokens=toks["host"][2],
                host_wall=float(np.median(h[:, 0])), device_wall=float(np.median(d[:, 0])),
                host_cpu=float(np.median(h[:, 1])), device_cpu=float(np.median(d[:, 1])),
                ratio_wall=tuple(float(x) for x in q[:, 0]), ratio_cpu=tuple(float(x) for x in q[:, 1]))


def settings(device: str, quick: bool) -> list:
    """(cache, batch, round_dtype, cuda_graphs) of each paired measurement. CPU: both caches at
    batch 1 and 8 in float64 (tokens checked identical). CUDA (docs/PERFORMANCE.md, "LLM: GPU
    measurements that remain", item 2): the static cache with CUDA graphs, float64 (parity:
    identical tokens) and float32 (speed), batch 1 and 8."""
    if device == "cuda":
        return [("static", b, dt, True) for dt in ("float64", "float32") for b in ((1,) if quick else (1, 8))]
    return [(c, b, "float64", False) for c in (("dynamic",) if quick else ("dynamic", "static"))
            for b in ((1,) if quick else (1, 8))]


def run_device_round(ctx, device: str = "cpu") -> list:
    """The ``device-round`` suite (``device-round-cuda`` on a GPU): one row per round (host,
    device) and setting; ``median_us`` is the median wall time per generated token, ``vs_host``
    the host round's time over this row's (> 1: faster than the host round), with the paired
    ratio's quartiles (``ratio_wall``, ``ratio_cpu``: device / host)."""
    import torch

    from .llm import zoo_pair

    if device == "cuda" and not torch.cuda.is_available():
        ctx.notes.append("device-round-cuda suite skipped: no CUDA device")
        return []
    pair = zoo_pair(ctx, "device-round", device)
    if pair is None:
        return []
    target, draft, tok = pair
    reps, new = (2, 16) if ctx.quick else ((5, 200) if device == "cuda" else (7, 64))
    rows = []
    for cache, bsz, dtype, graphs in settings(device, ctx.quick):
        ctx.progress(f"device-round {cache} B={bsz} {dtype}")
        prompts = [tok(p).input_ids for p in PROMPTS[:bsz]]
        r = paired_timing(target, draft, prompts, reps=reps, max_new_tokens=new, cache=cache,
                          round_dtype=dtype, cuda_graphs=graphs)
        for impl in ("host", "device"):
            rows.append({"op": "llm-round", "backend": f"{impl}-round", "B": bsz, "K": 4, "cache": cache,
                         "round_dtype": dtype, "cuda_graphs": graphs, "tokens": r["tokens"],
                         "median_us": r[f"{impl}_wall"] / max(r["tokens"], 1) * 1e6,
                         "cpu_s": r[f"{impl}_cpu"], "vs_host": r["host_wall"] / r[f"{impl}_wall"],
                         "ratio_wall": r["ratio_wall"], "ratio_cpu": r["ratio_cpu"]})
    ctx.notes.append("device-round: paired, interleaved host/device generations (chain, k = 4, T = 1); "
                     "ratio_* = device / host [25%, 50%, 75%]; float64 rows assert identical tokens")
    return rows


register_suite("device-round", "cpu", run_device_round,
               "the on-device round vs the host round, paired and interleaved, on the zoo pair")
register_suite("device-round-cuda", "cuda", lambda ctx: run_device_round(ctx, "cuda"),
               "the on-device round vs the host round on a GPU: static cache + CUDA graphs, "
               "float64 (identical tokens) and float32 (speed)")
