"""Fused Triton kernels for chain and block verification from probabilities.

One program per sequence (grid = (B,)), one launch per call. This module imports
triton at its top and is itself imported lazily (categorical.py, on first use with
``impl="triton"`` or a CUDA tensor). With TRITON_INTERPRET=1 set before triton is
imported, the same kernel source runs on CPU tensors in Triton's interpreter,
which is how CI checks it without a GPU.

Memory traffic (the memory floors):
    chain  the n drafted entries of p and q (one gather each), then ONE row pair
           (p[b, tau], q[b, tau]) read once in tiles of BLOCK_V, plus one tile re-read
           for the inverse-CDF draw; q is not read on a bonus row.
    block  rows 1..n-1 of p and q once (their residual masses R_i), then the row pair
           as for chain.

The inverse-CDF draw over tiles (reference ``sample_categorical``) is
triton_draw.final_draw (two passes over a scratch [B, 2, n_tiles] of tile prefixes).
Summation order differs from the reference's left-to-right loop, so parity is
``decisions_with_margin`` (tests/TOLERANCES.md), float64 included.

Launch helpers shared with triton_logits.py / triton_tree.py: ``check_device``,
``tiles``, ``row_pair_inputs``, ``outputs``, ``compile_options``.

Compute dtype: float64 for float64 inputs, float32 otherwise (bf16/fp16 upcast on
load); the uniforms stay float64, so the accept tests u * q < p and the draw
threshold u * total are formed in float64 from the dtype's values.

Compiled with ``enable_fp_fusion=False``: no multiply-add contraction, so
``s * p - q`` and ``u * q`` round as in the reference.

Status codes as in fastpath/types.py; a draft id outside [0, V) is replaced by 0
before any load (the load is also masked), never read out of bounds.
"""
from __future__ import annotations

import functools
import importlib.util

import torch
import triton
import triton.language as tl

from ._common import assemble
from .triton_draw import final_draw, program_row, residual_mass, status_code

BLOCK_V_DEFAULT = 1024


def available() -> bool:
    """True when triton is importable (categorical.py checks before importing this module)."""
    return importlib.util.find_spec("triton") is not None


# ---------------------------------------------------------------- kernel (the tile loops and the
# final draw are the shared device functions of triton_draw.py)


@triton.jit
def _chain_kernel(p_ptr, q_ptr, d_ptr, u_ptr, n_ptr, scr_ptr, tau_ptr, tok_ptr, st_ptr, fb_ptr,
                  K, V, NT, spb, spk, sqb, sqk, sdb, sub,
                  CD: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_V: tl.constexpr,
                  BLOCK_MODE: tl.constexpr, BLOCK_T: tl.constexpr):
    b, bad_len, nn = program_row(n_ptr, K)
    ks = tl.arange(0, BLOCK_K)
    inside = ks < nn
    x = tl.load(d_ptr + b * sdb + ks, mask=inside, other=0)
    oor = inside & ((x < 0) | (x >= V))
    ld = inside & (x >= 0) & (x < V)
    xs = tl.where(ld, x, 0)
    pd = tl.load(p_ptr + b * spb + ks * spk + xs, mask=ld, other=1.0).to(CD)       # [BLOCK_K]
    qd = tl.load(q_ptr + b * sqb + ks * sqk + xs, mask=ld, other=1.0).to(CD)
    uk = tl.load(u_ptr + b * sub + ks, mask=inside, other=0.0).to(tl.float64)
    nonfin = tl.max((ld & (((pd - pd) != 0) | ((qd - qd) != 0))).to(tl.int32), 0) > 0
    zero_q = tl.max((ld & ~(qd > 0)).to(tl.int32), 0) > 0
    any_oor = tl.max(oor.to(tl.int32), 0) > 0
    scale = tl.sum(tl.zeros([BLOCK_K], dtype=CD), 0) + 1.0
    if BLOCK_MODE:
        # block verification (Sun et al. §1.3): survivals, residual masses, largest passing i
        tau = nn * 0
        surv = scale
        for i in range(1, K + 1):
            pi = tl.sum(tl.where(ks == i - 1, pd, 0.0), 0)
            qi = tl.sum(tl.where(ks == i - 1, qd, 0.0), 0)
            eta = tl.sum(tl.where(ks == i - 1, uk, 0.0), 0)
            qi = tl.where(qi > 0, qi, 1.0)  # q(x) = 0 only on STATUS_DRAFT_ZERO_Q rows
            surv = tl.minimum(surv * pi / qi, 1.0)
            mass = surv * 0.0
            if i < nn:
                mass, bad = residual_mass(p_ptr + b * spb + i * spk, q_ptr + b * sqb + i * sqk, u_ptr,
                                          u_ptr, V, NT, surv, CD, BLOCK_V, False, False, False, False)
                nonfin = nonfin | bad
            passed = tl.where(i == nn, eta < surv, eta * (mass + 1.0 - surv) < mass) & (i <= nn)
            tau = tl.where(passed, i, tau)
            scale = tl.where(passed, surv, scale)
    else:
        rej = inside & ~(uk * qd < pd)
        tau = tl.minimum(tl.min(tl.where(rej, ks, BLOCK_K + 1), 0), nn)
    prow = p_ptr + b * spb + tau * spk
    qrow = q_ptr + b * sqb + tl.minimum(tau, tl.maximum(K - 1, 0)) * sqk
    u_last = tl.load(u_ptr + b * sub + nn).to(tl.float64)
    idx, rounding, zero_mass, bad = final_draw(prow, qrow, u_ptr, u_ptr, scr_ptr + b * 2 * NT, V, NT, scale,
                                               tau == nn, u_last, CD, BLOCK_V, BLOCK_T, False, False, False,
                                               False)
    status = status_code(bad_len, any_oor, nonfin | bad, zero_q)
    tl.store(tau_ptr + b, tau.to(tl.int64))
    tl.store(tok_ptr + b, idx.to(tl.int64))
    tl.store(st_ptr + b, status.to(tl.int32))
    tl.store(fb_ptr + b, (tl.where(zero_mass, 1, 0) | tl.where(rounding, 2, 0)).to(tl.int32))


# ---------------------------------------------------------------- launch


def interpreting() -> bool:
    """True when triton runs its interpreter (TRITON_INTERPRET=1 set before import)."""
    return bool(triton.knobs.runtime.interpret)


def compile_options() -> dict:
    """Launch options: no multiply-add contraction when compiling (the interpreter has none)."""
    return {} if interpreting() else {"enable_fp_fusion": False}


def check_device(t: torch.Tensor) -> None:
    if t.device.type != "cuda" and not interpreting():
        raise RuntimeError("the Triton kernels run on CPU tensors only in Triton's interpreter: set "
                           "TRITON_INTERPRET=1 before triton is first imported (or use impl='torch')")


def tiles(v: int, block_v: int):
    """(BLOCK_V, NT, BLOCK_T) for a vocabulary of v."""
    block_v = min(block_v, triton.next_power_of_2(v))
    nt = triton.cdiv(v, block_v)
    return block_v, nt, max(min(triton.next_power_of_2(nt), 256), 2)


def row_pair_inputs(p, q, draft):
    """Contiguous-last-dim p, q, draft with valid pointers when K = 0 (q, draft of one
    dummy row), the compute dtype (tl) and the scratch dtype (torch)."""
    b, k1, v = p.shape
    dev = p.device
    p = p.contiguous() if p.stride(-1) != 1 else p
    if k1 == 1:
        q = torch.zeros(b, 1, v, dtype=p.dtype, device=dev)
        draft = torch.zeros(b, 1, dtype=torch.int64, device=dev)
    else:
        q = q.contiguous() if q.stride(-1) != 1 else q
        draft = draft.contiguous()
    f64 = p.dtype == torch.float64
    return p, q, draft, (tl.float64 if f64 else tl.float32), (torch.float64 if f64 else torch.float32)


def outputs(b: int, dev):
    """tau [B] int64, token [B] int64, status [B] int32, fallbacks [B] int32."""
    return [torch.empty(b, dtype=dt, device=dev) for dt in (torch.int64, torch.int64, torch.int32, torch.int32)]


@functools.lru_cache(maxsize=1)
def _kernel():
    return _chain_kernel


def _launch(p, q, draft, u, n, numpy_in, block_mode: bool, block_v: int = BLOCK_V_DEFAULT):
    check_device(p)
    b, k1, v = p.shape
    k = k1 - 1
    pc, qc, dc, cd, sdt = row_pair_inputs(p, q, draft)
    block_v, nt, block_t = tiles(v, block_v)
    ucd = u.to(torch.float64).contiguous()
    scr = torch.empty(b, 2, nt, dtype=sdt, device=p.device)
    tau, tok, st, fb = outputs(b, p.device)
    _chain_kernel[(b,)](pc, qc, dc, ucd, n.contiguous(), scr, tau, tok, st, fb,
                        k, v, nt, pc.stride(0), pc.stride(1), qc.stride(0), qc.stride(1), dc.stride(0),
                        ucd.stride(0), CD=cd, BLOCK_K=max(triton.next_power_of_2(max(k, 1)), 2),
                        BLOCK_V=block_v, BLOCK_MODE=block_mode, BLOCK_T=block_t, **compile_options())
    return assemble(draft, tau, tok, tau == n.clamp(0, k), st, fb, numpy_in)


def chain(p, q, draft, u, n, numpy_in, block_v: int = BLOCK_V_DEFAULT):
    """Chain verification (checked inputs from categorical.prepare) -> BatchVerdict."""
    return _launch(p, q, draft, u, n, numpy_in, False, block_v)


def block(p, q, draft, u, n, numpy_in, block_v: int = BLOCK_V_DEFAULT):
    """Block verification (checked inputs from categorical.prepare) -> BatchVerdict."""
    return _launch(p, q, draft, u, n, numpy_in, True, block_v)
