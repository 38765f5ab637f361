"""Fused Triton pass for Gaussian window verification over (B, L, d) (
ALGORITHMS.md §2.5, §4.3): the one pass that touches the d-dimensional data.

``window_stats`` launches one program per step (grid = (B, L)); step i of window b
(i < lengths[b]) reads m_p[b, i], m_q[b, i] and z[b, i] ONCE, in tiles of BLOCK_D,
and produces
    ell[b, i]   = -z.D - |D|^2 / 2   with D = (m_q - m_p) / s_i   (the log-ratio at the draft)
    delta[b, i] = |D|                                              (the standardized offset)
    states[b, i] = m_q + s_i z                                     (the draft, written once)
in float64 whatever the input dtype (fp32 / bf16 / fp16 are upcast on load; no
multiply-add contraction). Steps i >= lengths[b] read nothing and get ell = delta = 0.

Everything after it runs on [B, L] scalars and [B, d] rows in torch (gaussian.py):
the accept tests, the block survivals and residual masses, tau, and the 1-D residual
sampler (bracket doubling + bisection on the log-tail) with the correction built
from the two rows at tau. ``fill_states`` then writes only rows >= tau of the states
buffer (NaN, or the correction / bonus at tau): rows < tau keep the drafts written by
the fused pass, so the big tensor is never copied.

Memory traffic: 3 B L d reads (the issue's floor) + B L d float64 writes of the
drafts (the output) + rows >= tau.
Parity: rule allclose_vs_naive as the torch twin (dot products sum in tile order).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .triton_kernels import check_device, compile_options

BLOCK_D_DEFAULT = 1024


@triton.jit
def _stats_kernel(mp_ptr, mq_ptr, z_ptr, s_ptr, n_ptr, x_ptr, ell_ptr, dl_ptr, D,
                  spb, spl, sqb, sql, szb, szl, ssb, sxb, sxl, seb,
                  BLOCK_D: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    i = tl.program_id(1).to(tl.int64)
    n = tl.load(n_ptr + b)
    if i < n:
        s = tl.load(s_ptr + b * ssb + i).to(tl.float64)
        acc_zd = tl.zeros([BLOCK_D], dtype=tl.float64)
        acc_dd = tl.zeros([BLOCK_D], dtype=tl.float64)
        for d0 in range(0, D, BLOCK_D):
            offs = d0 + tl.arange(0, BLOCK_D)
            m = offs < D
            mp = tl.load(mp_ptr + b * spb + i * spl + offs, mask=m, other=0.0).to(tl.float64)
            mq = tl.load(mq_ptr + b * sqb + i * sql + offs, mask=m, other=0.0).to(tl.float64)
            z = tl.load(z_ptr + b * szb + i * szl + offs, mask=m, other=0.0).to(tl.float64)
            dd = (mq - mp) / s
            acc_zd = acc_zd + z * dd
            acc_dd = acc_dd + dd * dd
            tl.store(x_ptr + b * sxb + i * sxl + offs, mq + s * z, mask=m)
        zd = tl.sum(acc_zd, 0)
        sq = tl.sum(acc_dd, 0)
        tl.store(ell_ptr + b * seb + i, -zd - 0.5 * sq)
        tl.store(dl_ptr + b * seb + i, tl.sqrt(sq))
    else:
        tl.store(ell_ptr + b * seb + i, 0.0)
        tl.store(dl_ptr + b * seb + i, 0.0)


@triton.jit
def _fill_kernel(x_ptr, tau_ptr, emit_ptr, last_ptr, D, sxb, sxl, slb, BLOCK_D: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    r = tl.program_id(1).to(tl.int64)
    tau = tl.load(tau_ptr + b)
    if r >= tau:
        put = (r == tau) & (tl.load(emit_ptr + b) != 0)
        for d0 in range(0, D, BLOCK_D):
            offs = d0 + tl.arange(0, BLOCK_D)
            m = offs < D
            last = tl.load(last_ptr + b * slb + offs, mask=tl.where(put, m, False), other=float("nan"))
            tl.store(x_ptr + b * sxb + r * sxl + offs, last, mask=m)


def _last_contig(t):
    return t if t.stride(-1) == 1 else t.contiguous()


def window_stats(m_p, m_q, s, z, n, block_d: int = BLOCK_D_DEFAULT):
    """m_p [B, L(+1), d], m_q / z [B, L, d] (any float dtype), s [B, L(+1)] float64,
    n [B] int64 -> (states [B, L+1, d] float64 with rows < n holding the drafts,
    ell [B, L], delta [B, L]) (float64)."""
    check_device(m_q)
    b, big_l, d = m_q.shape
    dev = m_q.device
    m_p, m_q, z = _last_contig(m_p), _last_contig(m_q), _last_contig(z)
    s = s.to(torch.float64)
    s = s if s.stride(-1) == 1 else s.contiguous()
    states = torch.empty(b, big_l + 1, d, dtype=torch.float64, device=dev)
    ell = torch.empty(b, big_l, dtype=torch.float64, device=dev)
    delta = torch.empty_like(ell)
    block_d = min(block_d, triton.next_power_of_2(d))
    _stats_kernel[(b, big_l)](m_p, m_q, z, s, n.contiguous(), states, ell, delta, d,
                              m_p.stride(0), m_p.stride(1), m_q.stride(0), m_q.stride(1), z.stride(0),
                              z.stride(1), s.stride(0), states.stride(0), states.stride(1), ell.stride(0),
                              BLOCK_D=block_d, **compile_options())
    return states, ell, delta


def fill_states(states, tau, emit_last, last, block_d: int = BLOCK_D_DEFAULT):
    """In place: rows r > tau[b] of states[b] -> NaN; row tau[b] -> last[b] if
    emit_last[b] else NaN. Returns states."""
    b, l1, d = states.shape
    last = last.to(torch.float64).contiguous()
    _fill_kernel[(b, l1)](states, tau.contiguous(), emit_last.to(torch.int32).contiguous(), last, d,
                          states.stride(0), states.stride(1), last.stride(0),
                          BLOCK_D=min(block_d, triton.next_power_of_2(d)), **compile_options())
    return states
