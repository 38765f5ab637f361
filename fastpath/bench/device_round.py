"""Paired, interleaved timing of the device round against the host round (engine.py,
``Runtime.round_impl``), same models, prompts, seeds and settings, on one thread.

Each repetition runs both rounds back to back, alternating which goes first (so a slow
phase of the machine hits both), and records wall time (``perf_counter``) and process CPU
time (``process_time``) of the whole generation. Reported per setting: median seconds of
each round, and the median and quartiles of the paired ratio device / host (< 1: the device
round saves time). In float64 both runs must emit identical tokens, checked every time.
Two suites: ``device-round`` (CPU: both caches, float64) and ``device-round-cuda`` (GPU:
float64 parity and float32 speed with the static cache and CUDA graphs, generate tok/s).
On a GPU every round ends with the device round's one device -> host
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


def paired_timing(target, draft, prompts, *, reps: int, runtime, k: int = 4, method: str = "chain",
                  warping=None, max_new_tokens: int = 64, round_dtype: str = "float64") -> dict:
    """Interleaved host/device pairs; returns medians and paired device/host ratios.
    ``runtime``: the host round's :class:`~specoracle.fastpath.models.llm.runtime.Runtime`
    (cache, CUDA graphs); the device round runs the same with ``round_impl="device"`` and
    ``round_dtype``."""
    import dataclasses

    from specoracle.fastpath.models.llm.engine import speculative_generate
    from specoracle.fastpath.models.llm.processing import Warp

    kw = dict(k=k, method=method, warping=warping or Warp(1.0), max_new_tokens=max_new_tokens,
              seeds=list(range(len(prompts))))
    impls = {"host": runtime,
             "device": dataclasses.replace(runtime, round_impl="device", round_dtype=round_dtype)}
    for impl in ("host", "device"):                           # warm-up (numba, allocator)
        speculative_generate(target, draft, prompts, **kw, runtime=impls[impl])
    rows = {"host": [], "device": []}
    for r in range(reps):
        order = ("host", "device") if r % 2 == 0 else ("device", "host")
        toks = {}
        for impl in order:
            rt = impls[impl]
            res, wall, cpu = _run(lambda: speculative_generate(target, draft, prompts, **kw, runtime=rt))
            rows[impl].append((wall, cpu))
            toks[impl] = (res.tokens, res.accepted, res.n_tokens)
        if round_dtype == "float64":
            assert toks["host"][:2] == toks["device"][:2], "device and host rounds disagree"
    h, d = np.array(rows["host"]), np.array(rows["device"])
    ratio = d / h                                                              # [reps, 2]
    q = np.percentile(ratio, [25, 50, 75], axis=0)
    return dict(batch=len(prompts), cache=runtime.cache, tokens=toks["host"][2],
                host_wall=float(np.median(h[:, 0])), device_wall=float(np.median(d[:, 0])),
                host_cpu=float(np.median(h[:, 1])), device_cpu=float(np.median(d[:, 1])),
                ratio_wall=tuple(float(x) for x in q[:, 0]), ratio_cpu=tuple(float(x) for x in q[:, 1]))


def settings(quick: bool) -> list:
    """(cache, batch) of each paired CPU measurement: both caches at batch 1 and 8, float64
    (tokens checked identical). The GPU measurements are the ``device-round-cuda`` suite's."""
    return [(c, b) for c in (("dynamic",) if quick else ("dynamic", "static")) for b in ((1,) if quick else (1, 8))]


def run_device_round(ctx) -> list:
    """The ``device-round`` suite (CPU): one row per round (host, device) and setting;
    ``median_us`` is the median wall time per generated token, ``vs_host`` the host round's
    time over this row's (> 1: faster than the host round), with the paired ratio's quartiles
    (``ratio_wall``, ``ratio_cpu``: device / host)."""
    from specoracle.fastpath.models.llm.engine import Runtime

    from .llm import zoo_pair

    pair = zoo_pair(ctx, "device-round")
    if pair is None:
        return []
    target, draft, tok = pair
    reps, new = (2, 16) if ctx.quick else (7, 64)
    rows = []
    for cache, bsz in settings(ctx.quick):
        ctx.progress(f"device-round {cache} B={bsz} float64")
        prompts = [tok(p).input_ids for p in PROMPTS[:bsz]]
        r = paired_timing(target, draft, prompts, reps=reps, max_new_tokens=new,
                          runtime=Runtime(cache=cache))
        for impl in ("host", "device"):
            rows.append({"op": "llm-round", "backend": f"{impl}-round", "B": bsz, "K": 4, "cache": cache,
                         "round_dtype": "float64", "tokens": r["tokens"],
                         "median_us": r[f"{impl}_wall"] / max(r["tokens"], 1) * 1e6,
                         "cpu_s": r[f"{impl}_cpu"], "vs_host": r["host_wall"] / r[f"{impl}_wall"],
                         "ratio_wall": r["ratio_wall"], "ratio_cpu": r["ratio_cpu"]})
    ctx.notes.append("device-round: paired, interleaved host/device generations (chain, k = 4, T = 1); "
                     "ratio_* = device / host [25%, 50%, 75%]; float64 rows assert identical tokens")
    return rows


TOK_PER_S_TARGET = 1500.0


def _pair_row(check: str, r: dict, **extra) -> dict:
    return {"op": "device-round", "backend": check, "B": r["batch"], "K": extra.pop("k"),
            "median_us": r["device_wall"] * 1e6, "host_us": r["host_wall"] * 1e6,
            "ratio_wall": r["ratio_wall"][1], "ratio_wall_iqr": [r["ratio_wall"][0], r["ratio_wall"][2]],
            "ratio_cpu": r["ratio_cpu"][1], "tokens": r["tokens"], "cache": r["cache"], **extra}


def _generate_rows(ctx, target, draft, prompt, static, *, k: int, new_tokens: int, warmup: bool) -> list:
    """(c) of the ``device-round-cuda`` suite: one generation (batch 1, chain, T = 1) with the
    host round and with the float32 device round over the ``static`` Runtime; tok/s each."""
    import dataclasses

    from specoracle.fastpath.models.llm.engine import speculative_generate
    from specoracle.fastpath.models.llm.processing import Warp

    kw = dict(k=k, method="chain", warping=Warp(1.0), max_new_tokens=new_tokens, seeds=[0])
    device_f32 = dataclasses.replace(static, round_impl="device", round_dtype="float32")
    rows = []
    for label, rt in (("host", static), ("device-float32", device_f32)):
        ctx.progress(f"device-round: generate tok/s, {label} round")
        if warmup:
            speculative_generate(target, draft, prompt, **kw, runtime=rt)     # warm-up (capture)
        res = speculative_generate(target, draft, prompt, **kw, runtime=rt)
        rows.append({"op": "generate", "backend": f"{label}-round", "B": 1, "K": k, "T": 1.0,
                     "median_us": res.seconds / max(res.n_tokens, 1) * 1e6,
                     "tok_per_s": res.n_tokens / res.seconds, "tokens": res.n_tokens,
                     "target_tok_per_s": TOK_PER_S_TARGET})
    return rows


def run_device_round_cuda(ctx) -> list:
    """The ``device-round-cuda`` suite: (a) float64 token parity of the device round against the
    host round (static cache, CUDA graphs, batch 1 and 8), (b) the paired float32 speed ratio,
    (c) tokens per second of one generation against the 1500 tok/s target. ``ctx.device``
    "cpu" runs it on CPU models (the plumbing size, no graphs). Sizes: ``reps``, ``parity_tokens``, ``speed_tokens``,
    ``batches``, ``k``, ``warmup`` (of the generate rows), ``speed`` (the paired float32 rows)."""
    import torch

    from specoracle.fastpath.models.llm.engine import Runtime

    from .llm import zoo_pair

    device = ctx.device or "cuda"
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        ctx.notes.append("device-round-cuda suite skipped: no CUDA device")
        return []
    pair = zoo_pair(ctx, "device-round-cuda", device=device)
    if pair is None:
        return []
    target, draft, tok = pair
    sz = ctx.sizes(full=dict(reps=5, parity_tokens=64, speed_tokens=200, batches=(1, 8), k=4, warmup=True,
                             speed=True),
                   quick=dict(reps=2, parity_tokens=32, speed_tokens=64),
                   tiny=dict(reps=1, parity_tokens=3, speed_tokens=3, batches=(2,), k=2, warmup=False,
                             speed=False))
    k = sz["k"]
    static = Runtime(cache="static", cuda_graphs=cuda)     # graphs on CUDA only (the CPU plumbing size)
    rows = []
    for bsz in sz["batches"]:
        prompts = [tok(p).input_ids for p in (PROMPTS * bsz)[:bsz]]
        ctx.progress(f"device-round: float64 parity B={bsz}")
        try:
            r = paired_timing(target, draft, prompts, reps=sz["reps"], k=k, runtime=static,
                              max_new_tokens=sz["parity_tokens"], round_dtype="float64")
            rows.append(_pair_row("parity-float64", r, k=k, tokens_equal=True))
        except AssertionError as e:    # a float64 token mismatch: a result, not a crash
            ctx.notes.append(f"device-round B={bsz}: float64 tokens differ from the host round ({e}); "
                             "see tests/TOLERANCES.md (CUDA cumsum margins)")
            rows.append({"op": "device-round", "backend": "parity-float64", "B": bsz, "K": k,
                         "median_us": None, "tokens_equal": False})
        if not sz["speed"]:     # the tiny size: the float32 round runs in the generate rows
            continue
        ctx.progress(f"device-round: float32 speed B={bsz}")
        r = paired_timing(target, draft, prompts, reps=sz["reps"], k=k, runtime=static,
                          max_new_tokens=sz["speed_tokens"], round_dtype="float32")
        rows.append(_pair_row("speed-float32", r, k=k))
    rows += _generate_rows(ctx, target, draft, [tok("def ").input_ids], static, k=k,
                           new_tokens=sz["speed_tokens"], warmup=sz["warmup"])
    best = max(r["tok_per_s"] for r in rows if r["op"] == "generate")
    ctx.notes.append(f"device-round: best generate {best:.0f} tok/s (target {TOK_PER_S_TARGET:.0f}: "
                     f"{'met' if best >= TOK_PER_S_TARGET else 'MISSED'}); ratio_wall < 1: the device "
                     "round saves time")
    return rows


register_suite("device-round", "cpu", run_device_round,
               "the on-device round vs the host round, paired and interleaved, on the zoo pair")
register_suite("device-round-cuda", "cuda", run_device_round_cuda,
               "the on-device speculative round vs the host round on a GPU: float64 token parity, "
               "float32 speed (batch 1 and 8), generate tok/s vs the 1500 tok/s target")
