"""Gaussian rows of the CPU ``kernels`` bench: block verification of B windows of L
steps in d dimensions, and B*L independent Gamma-coupling steps (the kernel bench shapes
(B, L, d) in {(1024, 8, 2), (256, 8, 3072)}).

Backends: the reference (one window / step per call, timed on a subset and scaled),
the numba twin, and torch on CPU tensors (``fastpath.torch_cuda.gaussian``: plain
batched torch ops, the vectorised version a user would write; the step is its
token-level window with L = 1). Floor: m_p, m_q and z (float64) read once.
"""
from __future__ import annotations

import time

import numpy as np

from . import BenchContext

GAUSS_SHAPES = [(1024, 8, 2), (256, 8, 3072)]
GAUSS_SHAPES_QUICK = [(64, 4, 2), (16, 4, 64)]
GAUSS_SHAPES_TINY = [(4, 2, 2)]


def gaussian_inputs(bsz, big_l, d, seed=0):
    rng = np.random.default_rng(seed)
    s = np.full((bsz, big_l + 1), 0.5)
    m_q = rng.standard_normal((bsz, big_l + 1, d))
    m_p = m_q + 0.3 * rng.standard_normal((bsz, big_l + 1, d)) / np.sqrt(d)
    return dict(m_p=m_p, m_q=np.ascontiguousarray(m_q[:, :big_l]), s=s,
                z=rng.standard_normal((bsz, big_l, d)), eta=rng.random((bsz, big_l)),
                u_res=rng.random(bsz), z_orth=rng.standard_normal((bsz, d)))


def gaussian_compile_times() -> dict:
    from ..numba_cpu import gaussian as ng

    x = gaussian_inputs(2, 2, 2)
    t0 = time.perf_counter()
    ng.verify_gaussian_block(**x)
    return {"verify_gaussian_block": round(time.perf_counter() - t0, 3)}


def _torch_block():
    try:
        import torch

        from ..torch_cuda import gaussian as tg
    except ImportError:
        return None
    return torch, tg


def run_gaussian(ctx: BenchContext) -> list:
    from specoracle.reference import gaussian as ref

    from ..numba_cpu import gaussian as ng

    tb = _torch_block()
    now = ctx.timer()
    rows = []
    for bsz, big_l, d in (GAUSS_SHAPES_TINY if ctx.tiny else GAUSS_SHAPES_QUICK if ctx.quick
                          else GAUSS_SHAPES):
        x = gaussian_inputs(bsz, big_l, d)
        shape = {"B": bsz, "L": big_l, "d": d}
        # ---- block verification over windows
        ctx.progress(f"gaussian_block B={bsz} L={big_l} d={d}")
        t_numba = ctx.time_us(lambda: ng.verify_gaussian_block(**x))
        t_torch = None
        if tb is not None:
            torch, tg = tb
            tx = {k: torch.from_numpy(v) for k, v in x.items()}
            with torch.inference_mode():
                t_torch = ctx.time_us(lambda: tg.verify_gaussian_block(**tx))
        n_ref = min(bsz, 16)
        times = []
        for b in range(n_ref):
            t0 = now()
            ref.verify_gaussian_block(x["m_p"][b], x["m_q"][b], x["s"][b], x["z"][b], x["eta"][b],
                                      float(x["u_res"][b]), x["z_orth"][b])
            times.append(now() - t0)
        t_ref = float(np.median(times)) * 1e6 * bsz
        floor = ctx.floor_us(8 * bsz * d * (3 * big_l + 1))
        rows += _rows("gaussian_block", shape, floor, t_ref, t_numba, t_torch, n_ref)
        # ---- B*L independent Gamma-coupling steps
        ctx.progress(f"gaussian_step B*L={bsz * big_l} d={d}")
        n = bsz * big_l
        sx = dict(m_p=x["m_p"][:, :big_l].reshape(n, d), m_q=x["m_q"].reshape(n, d), s=0.5,
                  z=x["z"].reshape(n, d), u=x["eta"].reshape(n), u_res=np.resize(x["u_res"], n),
                  z_orth=np.resize(x["z_orth"], (n, d)))
        t_numba = ctx.time_us(lambda: ng.gamma_coupling(**sx))
        t_torch = None
        if tb is not None:
            wx = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in (
                ("m_p", sx["m_p"][:, None]), ("m_q", sx["m_q"][:, None]), ("z", sx["z"][:, None]),
                ("eta", sx["u"][:, None]), ("u_res", sx["u_res"]), ("z_orth", sx["z_orth"]))}
            with torch.inference_mode():
                t_torch = ctx.time_us(lambda: tg.verify_gaussian_chain(s=0.5, **wx))
        times = []
        for b in range(min(n, 32)):
            t0 = now()
            ref.gamma_coupling(sx["m_p"][b], sx["m_q"][b], 0.5, sx["z"][b], float(sx["u"][b]),
                               float(sx["u_res"][b]), sx["z_orth"][b])
            times.append(now() - t0)
        t_ref = float(np.median(times)) * 1e6 * n
        floor = ctx.floor_us(8 * n * d * 3)
        rows += _rows("gaussian_step", shape, floor, t_ref, t_numba, t_torch, min(n, 32))
    return rows


def _rows(op, shape, floor, t_ref, t_numba, t_torch, n_ref):
    out = [{"op": op, "backend": "reference", **shape, "median_us": t_ref, "floor_us": floor,
            "vs_reference": 1.0, "vs_torch": (t_torch / t_ref) if t_torch else None,
            "reference_rows_timed": n_ref},
           {"op": op, "backend": "numba", **shape, "median_us": t_numba, "floor_us": floor,
            "vs_reference": t_ref / t_numba, "vs_torch": (t_torch / t_numba) if t_torch else None}]
    if t_torch:
        out.append({"op": op, "backend": "torch", **shape, "median_us": t_torch, "floor_us": floor,
                    "vs_reference": t_ref / t_torch, "vs_torch": 1.0})
    return out
