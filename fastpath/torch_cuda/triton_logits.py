"""Fused Triton kernel: chain and block verification from logits, with temperature,
top-k, top-p and min-p applied inside the kernel (ALGORITHMS.md §1.2, §1.3).

One program per sequence (grid = (B,)), one launch per call. Nothing of size V is
written: each logit row read gets a warp record (triton_warp.warp_state: a max / LSE
pass, a key bisection for theta_k and theta_p, the tie cut by id) in a float64
scratch [B, 2K+2, NF]; drafted entries, residual masses and the final draw then
compute probabilities from the logits and the record, tile by tile.

Rows read:
    chain  every row p[b, :n+1], q[b, :n] once for its record (plus the warp passes),
           so that every row is checked as the oracle checks it (NaN, q(x) = 0); with
           ``full_check=False`` (engine mode) the scan stops at the first rejection tau
           and later rows are never read; then the row pair at tau again for the draw
           (triton_draw.final_draw);
    block  every row p[b, :n+1], q[b, :n] (their records and residual masses R_i),
           then the row pair at tau.

Per-row knobs (tensors [B]): temperature (0: greedy, a one-hot row on the first
maximum, so greedy and random rows mix in one batch), top_k (int; >= V: off),
top_p ((0, 1]; 1: off), min_p ([0, 1]; 0: off). A warp that is None for the whole
batch is compiled out (constexpr HAS_TOPK / HAS_TOPP / HAS_MINP).

Statuses (fastpath/types.py): BAD_LENGTH, DRAFT_OUT_OF_RANGE (the id is replaced by
0 before any load), NONFINITE (a NaN / +inf logit or an all -inf row among the rows
read), DRAFT_ZERO_Q (the drafted token has warped q = 0, e.g. cut by top-k, or not
the argmax of a greedy row). With ``full_check=False`` only the rows read are checked.

Precision: float64 logits compute in float64, others in float32; uniforms float64.
Rule decisions_with_margin (tests/TOLERANCES.md): tolerance 1e-12 in float64,
32 * 2^-23 otherwise, on the accept tests, the draw and the warp boundaries.
"""
from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from ._common import assemble
from .triton_draw import final_draw, program_row, residual_mass, status_code
from .triton_kernels import BLOCK_V_DEFAULT, check_device, compile_options, outputs, row_pair_inputs, tiles
from .triton_warp import NF, warp_state, warped


@triton.jit
def _logits_kernel(p_ptr, q_ptr, d_ptr, u_ptr, n_ptr, t_ptr, k_ptr, tp_ptr, mp_ptr, ws_ptr, scr_ptr,
                   tau_ptr, tok_ptr, st_ptr, fb_ptr, K, V, NT, spb, spk, sqb, sqk, sdb, sub,
                   CD: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_MODE: tl.constexpr,
                   HAS_TOPK: tl.constexpr, HAS_TOPP: tl.constexpr, HAS_MINP: tl.constexpr,
                   NREC: tl.constexpr, FULL_CHECK: tl.constexpr):
    b, bad_len, nn = program_row(n_ptr, K)
    temp = tl.load(t_ptr + b).to(CD)
    topk = tl.load(k_ptr + b) if HAS_TOPK else nn
    topp = tl.load(tp_ptr + b).to(CD) if HAS_TOPP else temp
    minp = tl.load(mp_ptr + b).to(CD) if HAS_MINP else temp
    ws = ws_ptr + b * (2 * K + 2) * NREC
    zero = temp * 0.0
    any_oor = nn < 0
    nonfin = nn < 0
    zero_q = nn < 0
    alive = nn >= 0
    tau = nn * 0 if BLOCK_MODE else nn
    surv = zero + 1.0
    scale = zero + 1.0
    for i in range(0, K + 1):
        if (alive | FULL_CHECK) & (i <= nn):
            prow = p_ptr + b * spb + i * spk
            qrow = q_ptr + b * sqb + tl.minimum(i, tl.maximum(K - 1, 0)) * sqk
            pst = ws + i * NREC
            qst = ws + (K + 1 + i) * NREC
            nonfin = nonfin | warp_state(prow, V, NT, temp, topk, topp, minp, pst, CD, BLOCK_V,
                                         HAS_TOPK, HAS_TOPP, HAS_MINP)
            if i < nn:
                nonfin = nonfin | warp_state(qrow, V, NT, temp, topk, topp, minp, qst, CD, BLOCK_V,
                                             HAS_TOPK, HAS_TOPP, HAS_MINP)
            if BLOCK_MODE:
                # index i (1..n) of Sun et al.'s Algorithm 2 with s_i = surv
                mass = zero
                if (i >= 1) & (i < nn):
                    mass, bad = residual_mass(prow, qrow, pst, qst, V, NT, surv, CD, BLOCK_V, True,
                                              HAS_TOPK, HAS_TOPP, HAS_MINP)
                    nonfin = nonfin | bad
                eta = tl.load(u_ptr + b * sub + tl.maximum(i - 1, 0)).to(tl.float64)
                passed = (i >= 1) & tl.where(i == nn, eta < surv, eta * (mass + 1.0 - surv) < mass)
                tau = tl.where(passed, i, tau)
                scale = tl.where(passed, surv, scale)
            if i < nn:
                x = tl.load(d_ptr + b * sdb + i)
                bad_x = (x < 0) | (x >= V)
                any_oor = any_oor | bad_x
                xs = tl.where(bad_x, 0, x)
                pdx = warped(prow, xs, xs >= 0, pst, CD, HAS_TOPK, HAS_TOPP, HAS_MINP)
                qdx = warped(qrow, xs, xs >= 0, qst, CD, HAS_TOPK, HAS_TOPP, HAS_MINP)
                zero_q = zero_q | ~(qdx > 0)
                if BLOCK_MODE:
                    surv = tl.minimum(surv * pdx / tl.where(qdx > 0, qdx, 1.0), 1.0)
                else:
                    uk = tl.load(u_ptr + b * sub + i).to(tl.float64)
                    rej = alive & ~(uk * qdx < pdx)
                    tau = tl.where(rej, i, tau)
                    alive = alive & ~rej
    tq = tl.minimum(tau, tl.maximum(K - 1, 0))
    prow = p_ptr + b * spb + tau * spk
    qrow = q_ptr + b * sqb + tq * sqk
    u_last = tl.load(u_ptr + b * sub + nn).to(tl.float64)
    qrec = tl.where(tau == nn, tau, K + 1 + tau)  # a bonus row never reads q: point at a set record
    idx, rounding, zero_mass, bad = final_draw(prow, qrow, ws + tau * NREC, ws + qrec * NREC,
                                               scr_ptr + b * 2 * NT, V, NT, scale, tau == nn, u_last, CD,
                                               BLOCK_V, BLOCK_T, True, HAS_TOPK, HAS_TOPP, HAS_MINP)
    status = status_code(bad_len, any_oor, nonfin | bad, zero_q)
    tl.store(tau_ptr + b, tau.to(tl.int64))
    tl.store(tok_ptr + b, idx.to(tl.int64))
    tl.store(st_ptr + b, status.to(tl.int32))
    tl.store(fb_ptr + b, (tl.where(zero_mass, 1, 0) | tl.where(rounding, 2, 0)).to(tl.int32))


@functools.lru_cache(maxsize=1)
def _kernel():
    return _logits_kernel


def verify(p_logits, q_logits, draft, u, n, temperature, numpy_in, block_mode: bool, *,
           block_v: int = BLOCK_V_DEFAULT, top_k=None, top_p=None, min_p=None, full_check: bool = True):
    """Chain (``block_mode=False``) or block verification from logits -> BatchVerdict.

    Inputs checked by categorical.prepare; knobs per-row tensors [B] on the logits'
    device (temperature required; top_k / top_p / min_p None: compiled out).
    ``full_check=False`` (chain): stop reading rows at the first rejection (statuses
    then cover the rows read only)."""
    check_device(p_logits)
    b, k1, v = p_logits.shape
    k = k1 - 1
    p, q, dc, cd, sdt = row_pair_inputs(p_logits, q_logits, draft)
    block_v, nt, block_t = tiles(v, block_v)
    dev = p.device
    ucd = u.to(torch.float64).contiguous()
    scr = torch.empty(b, 2, nt, dtype=sdt, device=dev)
    ws = torch.empty(b, 2 * k + 2, NF, dtype=torch.float64, device=dev)
    temp = temperature.to(sdt).contiguous()
    kt = top_k.to(torch.int64).contiguous() if top_k is not None else temp
    tp = top_p.to(sdt).contiguous() if top_p is not None else temp
    mp = min_p.to(sdt).contiguous() if min_p is not None else temp
    tau, tok, st, fb = outputs(b, dev)
    _logits_kernel[(b,)](p, q, dc, ucd, n.contiguous(), temp, kt, tp, mp, ws, scr, tau, tok, st, fb,
                         k, v, nt, p.stride(0), p.stride(1), q.stride(0), q.stride(1), dc.stride(0),
                         ucd.stride(0), CD=cd, BLOCK_V=block_v, BLOCK_T=block_t, BLOCK_MODE=block_mode,
                         HAS_TOPK=top_k is not None, HAS_TOPP=top_p is not None, HAS_MINP=min_p is not None,
                         NREC=NF, FULL_CHECK=full_check or block_mode, **compile_options())
    return assemble(draft, tau, tok, tau == n.clamp(0, k), st, fb, numpy_in)
