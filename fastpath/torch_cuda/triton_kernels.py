"""Fused Triton kernels for chain and block verification from probabilities.

One program per sequence (grid = (B,)), one launch per call. This module imports
triton at its top and is itself imported lazily (categorical.py, on first use with
``impl="triton"`` or a CUDA tensor). With TRITON_INTERPRET=1 set before triton is
imported, the same kernel source runs on CPU tensors in Triton's interpreter,
which is how CI checks it without a GPU.

Memory traffic (the floors of issue 7):
    chain  the n drafted entries of p and q (one gather each), then ONE row pair
           (p[b, tau], q[b, tau]) read once in tiles of BLOCK_V, plus one tile re-read
           for the inverse-CDF draw; q is not read on a bonus row.
    block  rows 1..n-1 of p and q once (their residual masses R_i), then the row pair
           as for chain.

The inverse-CDF draw over tiles (reference ``sample_categorical``): pass 1 computes
each tile's inclusive cumulative sum (tl.cumsum) and stores the running prefix of
tile totals in a small scratch buffer [B, 2, n_tiles] (residual and target
weights); the total is the last prefix; pass 2 loads the prefixes BLOCK_T at a time
(one vector load for V <= 256 * BLOCK_V), takes the first tile whose prefix exceeds
u * total and re-reads that one tile. The prefixes are
the same float operations in both passes, so the chosen tile always holds a
qualifying index except through the non-monotone rounding of a parallel scan
(then the tile's last positive index is taken and FALLBACK_CDF_ROUNDING set,
exactly like a total that rounds up). Summation order differs from the
reference's left-to-right loop, so parity is ``decisions_with_margin``
(tests/TOLERANCES.md), float64 included.

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

BLOCK_V_DEFAULT = 1024


def available() -> bool:
    """True when triton is importable (categorical.py checks before importing this module)."""
    return importlib.util.find_spec("triton") is not None


# ---------------------------------------------------------------- kernels (plain functions,
# wrapped by triton.jit or the interpreter in _kernels())


def _chain_kernel(p_ptr, q_ptr, d_ptr, u_ptr, n_ptr, scr_ptr, tau_ptr, tok_ptr, st_ptr, fb_ptr,
                  K, V, NT, spb, spk, sqb, sqk, sdb, sub,
                  CD: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_V: tl.constexpr,
                  BLOCK_MODE: tl.constexpr, BLOCK_T: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    n = tl.load(n_ptr + b)
    bad_len = (n < 0) | (n > K)
    nn = tl.minimum(tl.maximum(n, 0), K)
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
                for t in range(0, NT):
                    offs = t * BLOCK_V + tl.arange(0, BLOCK_V)
                    m = offs < V
                    pv = tl.load(p_ptr + b * spb + i * spk + offs, mask=m, other=0.0).to(CD)
                    qv = tl.load(q_ptr + b * sqb + i * sqk + offs, mask=m, other=0.0).to(CD)
                    bad = tl.max((m & (((pv - pv) != 0) | ((qv - qv) != 0))).to(tl.int32), 0) > 0
                    nonfin = nonfin | bad
                    mass = mass + tl.sum(tl.maximum(surv * pv - qv, 0.0), 0)
            passed = tl.where(i == nn, eta < surv, eta * (mass + 1.0 - surv) < mass) & (i <= nn)
            tau = tl.where(passed, i, tau)
            scale = tl.where(passed, surv, scale)
    else:
        rej = inside & ~(uk * qd < pd)
        tau = tl.minimum(tl.min(tl.where(rej, ks, BLOCK_K + 1), 0), nn)
    bonus = tau == nn
    not_bonus = tau != nn
    tq = tl.minimum(tau, tl.maximum(K - 1, 0))
    prow = p_ptr + b * spb + tau * spk
    qrow = q_ptr + b * sqb + tq * sqk
    scr = scr_ptr + b * 2 * NT
    # pass 1: per-tile prefixes of the residual weights (row 0) and of p (row 1)
    tot_r = scale * 0.0
    tot_p = scale * 0.0
    last_r = tau * 0 - 1
    last_p = tau * 0 - 1
    for t in range(0, NT):
        offs = t * BLOCK_V + tl.arange(0, BLOCK_V)
        m = offs < V
        pv = tl.load(prow + offs, mask=m, other=0.0).to(CD)
        qv = tl.load(qrow + offs, mask=tl.where(not_bonus, m, False), other=0.0).to(CD)
        bad = tl.max((m & (((pv - pv) != 0) | ((qv - qv) != 0))).to(tl.int32), 0) > 0
        nonfin = nonfin | bad
        r = tl.maximum(scale * pv - qv, 0.0)
        cr = tl.cumsum(r, 0)
        cp = tl.cumsum(pv, 0)
        tot_r = tot_r + tl.sum(tl.where(tl.arange(0, BLOCK_V) == BLOCK_V - 1, cr, 0.0), 0)
        tot_p = tot_p + tl.sum(tl.where(tl.arange(0, BLOCK_V) == BLOCK_V - 1, cp, 0.0), 0)
        tl.store(scr + t, tot_r)
        tl.store(scr + NT + t, tot_p)
        last_r = tl.maximum(last_r, tl.max(tl.where(m & (r > 0), offs, -1), 0))
        last_p = tl.maximum(last_p, tl.max(tl.where(m & (pv > 0), offs, -1), 0))
    zero_mass = not_bonus & (last_r < 0)
    use_p = bonus | zero_mass
    total = tl.where(use_p, tot_p, tot_r)
    u_last = tl.load(u_ptr + b * sub + nn).to(tl.float64)
    thr = u_last * total
    # pass 2: the first tile whose prefix exceeds thr (BLOCK_T prefixes per vector load),
    # then that one tile re-read
    sel = tl.where(use_p, NT, 0)
    found = tau * 0 - 1
    for t0 in range(0, NT, BLOCK_T):
        ts = t0 + tl.arange(0, BLOCK_T)
        tm = ts < NT
        pref = tl.load(scr + sel + ts, mask=tm, other=0.0)
        cand = tl.min(tl.where(tm & (thr < pref), ts, NT), 0)
        found = tl.where((found < 0) & (cand < NT), cand, found)
    before = tl.load(scr + sel + tl.maximum(found - 1, 0))
    before = tl.where(found > 0, before, 0.0)
    ft = tl.maximum(found, 0)
    offs = ft * BLOCK_V + tl.arange(0, BLOCK_V)
    m = tl.where(found >= 0, offs < V, False)
    pv = tl.load(prow + offs, mask=m, other=0.0).to(CD)
    qv = tl.load(qrow + offs, mask=tl.where(not_bonus, m, False), other=0.0).to(CD)
    w = tl.where(use_p, pv, tl.maximum(scale * pv - qv, 0.0))
    c = before + tl.cumsum(w, 0)
    idx = tl.min(tl.where(m & (w > 0) & (thr < c), offs, V), 0)
    tile_last = tl.max(tl.where(m & (w > 0), offs, -1), 0)
    glob_last = tl.where(use_p, last_p, last_r)
    rounding = (found < 0) | (idx >= V)
    idx = tl.where(found < 0, glob_last, tl.where(idx >= V, tile_last, idx))
    status = tl.where(bad_len, 4, tl.where(any_oor, 1, tl.where(nonfin, 3, tl.where(zero_q, 2, 0))))
    fb = tl.where(zero_mass, 1, 0) | tl.where(rounding, 2, 0)
    tl.store(tau_ptr + b, tau.to(tl.int64))
    tl.store(tok_ptr + b, idx.to(tl.int64))
    tl.store(st_ptr + b, status.to(tl.int32))
    tl.store(fb_ptr + b, fb.to(tl.int32))


# ---------------------------------------------------------------- wrapping and launch


def _chain_logits_kernel(p_ptr, q_ptr, d_ptr, u_ptr, n_ptr, t_ptr, scr_ptr, tau_ptr, tok_ptr, st_ptr,
                         fb_ptr, K, V, NT, spb, spk, sqb, sqk, sdb, sub,
                         CD: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_T: tl.constexpr):
    """Chain verification from logits with temperature (T > 0, no top-k / top-p): each
    row read is normalised by a streaming (online) log-sum-exp over vocabulary tiles; the
    scan stops at the first rejection, so rows after it are never read; the row pair's
    probabilities are recomputed tile by tile from the logits and the two log-sum-exps."""
    b = tl.program_id(0).to(tl.int64)
    n = tl.load(n_ptr + b)
    bad_len = (n < 0) | (n > K)
    nn = tl.minimum(tl.maximum(n, 0), K)
    inv_t = 1.0 / tl.load(t_ptr + b).to(CD)
    zero = tl.sum(tl.zeros([BLOCK_V], dtype=CD), 0)
    ninf = zero - float("inf")
    any_oor = nn < 0
    nonfin = nn < 0
    zero_q = nn < 0
    alive = nn >= 0
    tau = nn
    lse_p_tau = zero
    lse_q_tau = zero
    for i in range(0, K + 1):
        if alive & (i <= nn):
            # streaming log-sum-exp of p row i (and q row i for i < nn)
            mp = ninf
            sp = zero
            mq = ninf
            sq = zero
            for t in range(0, NT):
                offs = t * BLOCK_V + tl.arange(0, BLOCK_V)
                m = offs < V
                zp = tl.load(p_ptr + b * spb + i * spk + offs, mask=m, other=float("-inf")).to(CD) * inv_t
                mp_new = tl.maximum(mp, tl.max(zp, 0))
                mp_safe = tl.where(mp_new == float("-inf"), 0.0, mp_new)
                sp = sp * tl.exp(mp - mp_safe) + tl.sum(tl.exp(zp - mp_safe), 0)
                mp = mp_new
                if i < nn:
                    zq = tl.load(q_ptr + b * sqb + i * sqk + offs, mask=m, other=float("-inf")).to(CD) * inv_t
                    mq_new = tl.maximum(mq, tl.max(zq, 0))
                    mq_safe = tl.where(mq_new == float("-inf"), 0.0, mq_new)
                    sq = sq * tl.exp(mq - mq_safe) + tl.sum(tl.exp(zq - mq_safe), 0)
                    mq = mq_new
            lse_p = mp + tl.log(tl.where(sp > 0, sp, 1.0))
            lse_q = mq + tl.log(tl.where(sq > 0, sq, 1.0))
            if i < nn:
                x = tl.load(d_ptr + b * sdb + i)
                bad_x = (x < 0) | (x >= V)
                any_oor = any_oor | bad_x
                xs = tl.where(bad_x, 0, x)
                pdx = tl.exp(tl.load(p_ptr + b * spb + i * spk + xs).to(CD) * inv_t - lse_p)
                qdx = tl.exp(tl.load(q_ptr + b * sqb + i * sqk + xs).to(CD) * inv_t - lse_q)
                nonfin = nonfin | ((pdx - pdx) != 0) | ((qdx - qdx) != 0)
                zero_q = zero_q | ~(qdx > 0)
                uk = tl.load(u_ptr + b * sub + i).to(tl.float64)
                rej = ~(uk * qdx < pdx)
                tau = tl.where(rej, i, tau)
                lse_p_tau = tl.where(rej, lse_p, lse_p_tau)
                lse_q_tau = tl.where(rej, lse_q, lse_q_tau)
                alive = alive & ~rej
            else:
                lse_p_tau = lse_p  # i == nn, every draft accepted: the bonus row
                nonfin = nonfin | ((lse_p - lse_p) != 0)
    bonus = tau == nn
    not_bonus = tau != nn
    prow = p_ptr + b * spb + tau * spk
    qrow = q_ptr + b * sqb + tl.minimum(tau, tl.maximum(K - 1, 0)) * sqk
    scr = scr_ptr + b * 2 * NT
    tot_r = zero
    tot_p = zero
    last_r = tau * 0 - 1
    last_p = tau * 0 - 1
    for t in range(0, NT):
        offs = t * BLOCK_V + tl.arange(0, BLOCK_V)
        m = offs < V
        pv = tl.exp(tl.load(prow + offs, mask=m, other=float("-inf")).to(CD) * inv_t - lse_p_tau)
        qv = tl.exp(tl.load(qrow + offs, mask=tl.where(not_bonus, m, False), other=float("-inf")).to(CD)
                    * inv_t - lse_q_tau)
        bad = tl.max((m & (((pv - pv) != 0) | ((qv - qv) != 0))).to(tl.int32), 0) > 0
        nonfin = nonfin | bad
        r = tl.maximum(pv - qv, 0.0)
        cr = tl.cumsum(r, 0)
        cp = tl.cumsum(pv, 0)
        tot_r = tot_r + tl.sum(tl.where(tl.arange(0, BLOCK_V) == BLOCK_V - 1, cr, 0.0), 0)
        tot_p = tot_p + tl.sum(tl.where(tl.arange(0, BLOCK_V) == BLOCK_V - 1, cp, 0.0), 0)
        tl.store(scr + t, tot_r)
        tl.store(scr + NT + t, tot_p)
        last_r = tl.maximum(last_r, tl.max(tl.where(m & (r > 0), offs, -1), 0))
        last_p = tl.maximum(last_p, tl.max(tl.where(m & (pv > 0), offs, -1), 0))
    zero_mass = not_bonus & (last_r < 0)
    use_p = bonus | zero_mass
    total = tl.where(use_p, tot_p, tot_r)
    thr = tl.load(u_ptr + b * sub + nn).to(tl.float64) * total
    sel = tl.where(use_p, NT, 0)
    found = tau * 0 - 1
    for t0 in range(0, NT, BLOCK_T):
        ts = t0 + tl.arange(0, BLOCK_T)
        tm = ts < NT
        pref = tl.load(scr + sel + ts, mask=tm, other=0.0)
        cand = tl.min(tl.where(tm & (thr < pref), ts, NT), 0)
        found = tl.where((found < 0) & (cand < NT), cand, found)
    before = tl.load(scr + sel + tl.maximum(found - 1, 0))
    before = tl.where(found > 0, before, 0.0)
    ft = tl.maximum(found, 0)
    offs = ft * BLOCK_V + tl.arange(0, BLOCK_V)
    m = tl.where(found >= 0, offs < V, False)
    pv = tl.exp(tl.load(prow + offs, mask=m, other=float("-inf")).to(CD) * inv_t - lse_p_tau)
    qv = tl.exp(tl.load(qrow + offs, mask=tl.where(not_bonus, m, False), other=float("-inf")).to(CD)
                * inv_t - lse_q_tau)
    w = tl.where(use_p, pv, tl.maximum(pv - qv, 0.0))
    c = before + tl.cumsum(w, 0)
    idx = tl.min(tl.where(m & (w > 0) & (thr < c), offs, V), 0)
    tile_last = tl.max(tl.where(m & (w > 0), offs, -1), 0)
    glob_last = tl.where(use_p, last_p, last_r)
    rounding = (found < 0) | (idx >= V)
    idx = tl.where(found < 0, glob_last, tl.where(idx >= V, tile_last, idx))
    status = tl.where(bad_len, 4, tl.where(any_oor, 1, tl.where(nonfin, 3, tl.where(zero_q, 2, 0))))
    fb = tl.where(zero_mass, 1, 0) | tl.where(rounding, 2, 0)
    tl.store(tau_ptr + b, tau.to(tl.int64))
    tl.store(tok_ptr + b, idx.to(tl.int64))
    tl.store(st_ptr + b, status.to(tl.int32))
    tl.store(fb_ptr + b, fb.to(tl.int32))


def interpreting() -> bool:
    """True when triton runs its interpreter (TRITON_INTERPRET=1 set before import)."""
    return bool(triton.knobs.runtime.interpret)


@functools.lru_cache(maxsize=1)
def _kernel():
    return triton.jit(_chain_kernel)


@functools.lru_cache(maxsize=1)
def _logits_kernel():
    return triton.jit(_chain_logits_kernel)


def _launch(p, q, draft, u, n, numpy_in, block_mode: bool, block_v: int = BLOCK_V_DEFAULT):
    b, k1, v = p.shape
    k = k1 - 1
    if p.device.type != "cuda" and not interpreting():
        raise RuntimeError("the Triton kernels run on CPU tensors only in Triton's interpreter: set "
                           "TRITON_INTERPRET=1 before triton is first imported (or use impl='torch')")
    kern = _kernel()
    dev = p.device
    p = p.contiguous() if p.stride(-1) != 1 else p
    if k == 0:  # keep valid pointers for q and draft
        q = torch.zeros(b, 1, v, dtype=p.dtype, device=dev)
        draft_c = torch.zeros(b, 1, dtype=torch.int64, device=dev)
    else:
        q = q.contiguous() if q.stride(-1) != 1 else q
        draft_c = draft.contiguous()
    block_v = min(block_v, triton.next_power_of_2(v))
    nt = triton.cdiv(v, block_v)
    block_k = max(triton.next_power_of_2(max(k, 1)), 2)
    cd = tl.float64 if p.dtype == torch.float64 else tl.float32
    ucd = u.to(torch.float64).contiguous()
    scr = torch.empty(b, 2, nt, dtype=torch.float64 if p.dtype == torch.float64 else torch.float32,
                      device=dev)
    tau = torch.empty(b, dtype=torch.int64, device=dev)
    tok = torch.empty(b, dtype=torch.int64, device=dev)
    st = torch.empty(b, dtype=torch.int32, device=dev)
    fb = torch.empty(b, dtype=torch.int32, device=dev)
    kern[(b,)](p, q, draft_c, ucd, n.contiguous(), scr, tau, tok, st, fb,
               k, v, nt, p.stride(0), p.stride(1), q.stride(0), q.stride(1), draft_c.stride(0),
               ucd.stride(0), CD=cd, BLOCK_K=block_k, BLOCK_V=block_v, BLOCK_MODE=block_mode,
               BLOCK_T=max(min(triton.next_power_of_2(nt), 256), 2),
               **({} if interpreting() else {"enable_fp_fusion": False}))
    nc = n.clamp(0, k)
    return assemble(draft, tau, tok, tau == nc, st, fb, numpy_in)


def chain(p, q, draft, u, n, numpy_in, block_v: int = BLOCK_V_DEFAULT):
    """Chain verification (checked inputs from categorical.prepare) -> BatchVerdict."""
    return _launch(p, q, draft, u, n, numpy_in, False, block_v)


def block(p, q, draft, u, n, numpy_in, block_v: int = BLOCK_V_DEFAULT):
    """Block verification (checked inputs from categorical.prepare) -> BatchVerdict."""
    return _launch(p, q, draft, u, n, numpy_in, True, block_v)


def chain_logits(p_logits, q_logits, draft, u, n, temperature, numpy_in, block_v: int = BLOCK_V_DEFAULT):
    """Chain verification from logits with per-row temperatures [B] (all > 0) and no
    other warp -> BatchVerdict (checked inputs from categorical.prepare)."""
    b, k1, v = p_logits.shape
    k = k1 - 1
    if p_logits.device.type != "cuda" and not interpreting():
        raise RuntimeError("the Triton kernels run on CPU tensors only in Triton's interpreter: set "
                           "TRITON_INTERPRET=1 before triton is first imported (or use impl='torch')")
    dev = p_logits.device
    p = p_logits.contiguous()
    if k == 0:
        q = torch.zeros(b, 1, v, dtype=p.dtype, device=dev)
        draft_c = torch.zeros(b, 1, dtype=torch.int64, device=dev)
    else:
        q = q_logits.contiguous()
        draft_c = draft.contiguous()
    block_v = min(block_v, triton.next_power_of_2(v))
    nt = triton.cdiv(v, block_v)
    f64 = p.dtype == torch.float64
    cd = tl.float64 if f64 else tl.float32
    scr = torch.empty(b, 2, nt, dtype=torch.float64 if f64 else torch.float32, device=dev)
    temp = temperature.to(torch.float64 if f64 else torch.float32).contiguous()
    ucd = u.to(torch.float64).contiguous()
    outs = [torch.empty(b, dtype=dt, device=dev) for dt in (torch.int64, torch.int64, torch.int32, torch.int32)]
    _logits_kernel()[(b,)](p, q, draft_c, ucd, n.contiguous(), temp, scr, *outs,
                           k, v, nt, p.stride(0), p.stride(1), q.stride(0), q.stride(1), draft_c.stride(0),
                           ucd.stride(0), CD=cd, BLOCK_V=block_v,
                           BLOCK_T=max(min(triton.next_power_of_2(nt), 256), 2),
                           **({} if interpreting() else {"enable_fp_fusion": False}))
    tau, tok, st, fb = outs
    return assemble(draft, tau, tok, tau == n.clamp(0, k), st, fb, numpy_in)
