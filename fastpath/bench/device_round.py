"""Paired, interleaved timing of the device round against the host round (engine.py
``round_impl``), same models, prompts, seeds and settings, on one thread.

Each repetition runs both rounds back to back, alternating which goes first (so a slow
phase of the machine hits both), and records wall time (``perf_counter``) and process CPU
time (``process_time``) of the whole generation. Reported per setting: median seconds of
each round, and the median and quartiles of the paired ratio device / host (< 1: the device
round saves time). In float64 both runs must emit identical tokens, checked every time.
On a GPU (``--device cuda``) every round ends with the device round's one device -> host
read (the host round copies logits per call), so the wall clock needs no extra sync.

    python -m specoracle.fastpath.models.bench_device_round --reps 7
    python -m specoracle.fastpath.models.bench_device_round --device cuda --round-dtype float32 \
        --caches static --cuda-graphs --max-new-tokens 200
"""
from __future__ import annotations

import argparse
import time

import numpy as np

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
    from .engine import speculative_generate
    from .processing import Warp

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--method", default="chain")
    ap.add_argument("--caches", default="dynamic,static")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--round-dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--cuda-graphs", action="store_true", help="static cache only, CUDA models")
    args = ap.parse_args(argv)
    import torch

    from .hf import load_pair
    torch.set_num_threads(1)
    target, draft, tok = load_pair("zoo:code-target", "zoo:code-draft", device=args.device)
    for cache in args.caches.split(","):
        for bsz in (1, 8):
            prompts = [tok(p).input_ids for p in PROMPTS[:bsz]]
            r = paired_timing(target, draft, prompts, reps=args.reps, k=args.k, method=args.method,
                              max_new_tokens=args.max_new_tokens, cache=cache, round_dtype=args.round_dtype,
                              cuda_graphs=args.cuda_graphs)
            print(f"{cache:7s} batch {bsz}: {r['tokens']} tokens | wall host {r['host_wall']:.3f} s, "
                  f"device {r['device_wall']:.3f} s, ratio device/host median {r['ratio_wall'][1]:.3f} "
                  f"[IQR {r['ratio_wall'][0]:.3f}-{r['ratio_wall'][2]:.3f}] | "
                  f"CPU host {r['host_cpu']:.3f} s, "
                  f"device {r['device_cpu']:.3f} s, ratio {r['ratio_cpu'][1]:.3f} "
                  f"[{r['ratio_cpu'][0]:.3f}-{r['ratio_cpu'][2]:.3f}]", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
