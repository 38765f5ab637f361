"""The ``kernels`` bench suite on the CPU: reference vs numba vs torch on the CPU.

Row backends: ``reference``, ``numba`` (the twins), ``torch_plain`` (chain / block written with
plain batched torch ops, torch_plain.py: the anchor a user would write) and, for the Gaussian
rows, ``torch`` (the torch twins, fastpath/torch_cuda/gaussian.py, on CPU tensors).

Shapes (full run): chain and block verification at (B, K, V) in
{(1, 8, 32000), (64, 8, 32000), (256, 4, 32000), (64, 8, 151936), (1024, 8, 1000)};
Gaussian block verification and the Gaussian (gamma-coupling) step at (B, L, d) in
{(1024, 8, 2), (256, 8, 3072)}. ``--quick`` uses small shapes (a smoke run).

Inputs: float32 probability rows by default (``--dtype float64`` for the exact path),
target rows ``r^4 / sum`` with r ~ U[0, 1) (a skewed, LLM-like row), draft rows
0.7 p + 0.3 (another such row), drafts drawn from q, uniforms from a fixed seed.

Memory floors (bytes that must be read once / copy bandwidth):
    chain   B K entries of p and of q at the drafted ids + one row pair (p, q) per sequence
    block   every row of p and q: B (2K + 1) V entries
    gaussian block  m_p [B, L+1, d], m_q [B, L, d], z [B, L, d] (float64)
    gaussian step   m_p, m_q, z of B*L independent steps (float64)
The reference (one sequence per call, Python loops) is timed on a subset of rows and
scaled per sequence to the batch; the output says so.
"""
from __future__ import annotations

import time

import numpy as np

from ..registry import register_suite
from . import BenchContext
from .gaussian_cpu import gaussian_compile_times, run_gaussian

CAT_SHAPES = [(1, 8, 32000), (64, 8, 32000), (256, 4, 32000), (64, 8, 151936), (1024, 8, 1000)]
CAT_SHAPES_QUICK = [(1, 8, 1000), (64, 4, 2000)]
CAT_SHAPES_TINY = [(2, 2, 50)]


def categorical_inputs(bsz, k, v, dtype, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.random((bsz, k + 1, v), dtype=np.float32) ** 4
    p /= p.sum(-1, keepdims=True)
    noise = rng.random((bsz, k, v), dtype=np.float32) ** 4
    noise /= noise.sum(-1, keepdims=True)
    q = 0.7 * p[:, :k] + 0.3 * noise
    del noise
    q /= q.sum(-1, keepdims=True)
    c = np.cumsum(q, axis=-1, dtype=np.float64)
    r = rng.random((bsz, k, 1)) * c[..., -1:]
    draft = np.minimum((c <= r).sum(-1), v - 1).astype(np.int64)
    del c
    u = rng.random((bsz, k + 1))
    return p.astype(dtype, copy=False), q.astype(dtype, copy=False), draft, u


def _floor_bytes(op, bsz, k, v, itemsize):
    if op == "chain":
        return itemsize * (2 * bsz * k + 2 * bsz * v)
    return itemsize * bsz * (2 * k + 1) * v


def _reference_us_per_seq(fn, p, q, draft, u, n_rows, now=time.perf_counter):
    times = []
    for b in range(n_rows):
        t0 = now()
        fn(p[b], q[b], draft[b], u[b])
        times.append(now() - t0)
    return float(np.median(times)) * 1e6


def compile_times(dtype) -> dict:
    """Seconds of the first call of each kernel (compile, or load from numba's cache)."""
    from ..numba_cpu import categorical as nc

    out = {}
    p, q, d, u = categorical_inputs(2, 2, 5, dtype)
    for name in ("verify_chain", "verify_block"):
        t0 = time.perf_counter()
        getattr(nc, name)(p, q, d, u)
        out[name] = round(time.perf_counter() - t0, 3)
    try:
        out.update(gaussian_compile_times())
    except ImportError:
        pass
    return out


def run_categorical(ctx: BenchContext) -> list:
    import torch

    from specoracle.reference import categorical as ref

    from ..numba_cpu import categorical as nc
    from . import torch_plain

    dtype = np.dtype(ctx.dtype)
    rows = []
    shapes = CAT_SHAPES_TINY if ctx.tiny else CAT_SHAPES_QUICK if ctx.quick else CAT_SHAPES
    for bsz, k, v in shapes:
        p, q, draft, u = categorical_inputs(bsz, k, v, dtype)
        tp, tq, td, tu = (torch.from_numpy(a) for a in (p, q, draft, u))
        for op, fast, base, reff in (("chain", nc.verify_chain, torch_plain.chain, ref.verify_chain),
                                     ("block", nc.verify_block, torch_plain.block, ref.verify_block)):
            ctx.progress(f"{op} B={bsz} K={k} V={v}")
            t_numba = ctx.time_us(lambda: fast(p, q, draft, u))
            with torch.inference_mode():
                t_torch = ctx.time_us(lambda: base(tp, tq, td, tu))
            n_ref = min(bsz, 2 if v > 100_000 else 4 if v > 10_000 else 32)
            t_ref = _reference_us_per_seq(reff, p, q, draft, u, n_ref, ctx.timer()) * bsz
            floor = ctx.floor_us(_floor_bytes(op, bsz, k, v, dtype.itemsize))
            shape = {"B": bsz, "K": k, "V": v}
            rows.append({"op": op, "backend": "reference", **shape, "median_us": t_ref,
                         "floor_us": floor, "vs_reference": 1.0, "vs_torch_plain": t_torch / t_ref,
                         "reference_rows_timed": n_ref})
            rows.append({"op": op, "backend": "numba", **shape, "median_us": t_numba,
                         "floor_us": floor, "vs_reference": t_ref / t_numba,
                         "vs_torch_plain": t_torch / t_numba})
            rows.append({"op": op, "backend": "torch_plain", **shape, "median_us": t_torch,
                         "floor_us": floor, "vs_reference": t_ref / t_torch, "vs_torch_plain": 1.0})
        del p, q, draft, u, tp, tq, td, tu
    ctx.notes.append("reference: one sequence per call (Python), timed on the first "
                     "reference_rows_timed rows and scaled per sequence to B")
    return rows


def run_kernels(ctx: BenchContext) -> list:
    import numba

    ctx.extra["numba_first_call_s"] = compile_times(np.dtype(ctx.dtype))
    ctx.extra["numba_threads"] = numba.get_num_threads()
    ctx.extra["input_dtype"] = ctx.dtype
    return run_categorical(ctx) + run_gaussian(ctx)


register_suite("kernels", "cpu", run_kernels,
               "chain / block verification and the Gaussian step / block: reference, numba, torch on the CPU")
