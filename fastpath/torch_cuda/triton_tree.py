"""Fused Triton kernels for tree verification: sample-and-match over deterministic
candidate trees (DFlash arXiv 2602.06036 / D2SD arXiv 2606.04446; ALGORITHMS.md §1.4.3),
the Triton twin of tree.verify_tree_deterministic; and SpecInfer's multi-step
speculative sampling (MSS, Miao et al. arXiv 2305.09781; §1.4.1) over stochastic trees,
the twin of tree.verify_mss_tree (``mss_walk``, below).

One program per tree (grid = (B,)). The walk: valid = {root}; draw y from the target
row of the lowest valid node with u[b, d] (d = tokens emitted so far; the inverse-CDF
draw over vocabulary tiles is triton_draw.final_draw); valid <- the children of valid
nodes whose token is y; stop when no child matches (y is the correction) or the valid
nodes have no children (y is the bonus). The node set (N <= BLOCK_N) lives in
registers: the children of the valid set are found with one [BLOCK_N, BLOCK_N]
comparison of parents against node ids, so the walk reads only the rows it draws
from (depth + 1 rows of V, each read once plus one tile).

The statuses (bad tree, out-of-range tokens, NaN in the slice, u too short) are
computed before the launch by the torch twin's checks (tree._tree_status: they read
every row of the slice, as the oracle does); rows with a status are not walked.

Noise layout: u [B, W], W >= depth + 1 (u[b, d] draws the d-th emitted token).
Parity: decisions_with_margin, 1e-12 in float64 (tile sums; tests/TOLERANCES.md).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .triton_draw import final_draw, residual_mass
from .triton_kernels import BLOCK_V_DEFAULT, check_device, compile_options, tiles


@triton.jit
def _tree_kernel(p_ptr, tok_ptr, par_ptr, u_ptr, n_ptr, st_ptr, scr_ptr, out_ptr, first_ptr, nem_ptr,
                 bonus_ptr, fb_ptr, N, V, NT, spb, spk, stb, sub, sob,
                 CD: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_T: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    nn = tl.minimum(tl.maximum(tl.load(n_ptr + b), 0), N)
    ar = tl.arange(0, BLOCK_N)
    live = ar < nn
    tok = tl.load(tok_ptr + b * stb + ar, mask=live, other=-1)
    par = tl.load(par_ptr + b * stb + ar, mask=live, other=-2)
    same = par[:, None] == ar[None, :]                                  # [BLOCK_N, BLOCK_N]
    valid = ar < 0
    root_valid = nn >= 0
    first = nn * 0 - 1
    emitted = nn * 0
    active = tl.load(st_ptr + b) == 0
    bonus = nn < 0
    fb = nn * 0
    yes = nn >= 0
    for _ in range(0, N + 1):
        if active:
            row = p_ptr + b * spb + (first + 1) * spk
            u = tl.load(u_ptr + b * sub + emitted).to(tl.float64)
            one = tl.load(row).to(CD) * 0.0 + 1.0
            y, rounding, zm, nf = final_draw(row, row, u_ptr, u_ptr, scr_ptr + b * 2 * NT, V, NT, one, yes, u,
                                             CD, BLOCK_V, BLOCK_T, False, False, False, False)
            fb = fb | tl.where(rounding, 2, 0)
            tl.store(out_ptr + b * sob + emitted, y)
            emitted = emitted + 1
            of_valid = tl.max(tl.where(same & valid[None, :], 1, 0), 1) > 0        # parent is valid
            kids = live & (((par == -1) & root_valid) | of_valid)
            has_kids = tl.max(kids.to(tl.int32), 0) > 0
            match = kids & (tok == y)
            go = has_kids & (tl.max(match.to(tl.int32), 0) > 0)
            bonus = bonus | ~has_kids
            first = tl.where(go, tl.min(tl.where(match, ar, BLOCK_N), 0).to(first.dtype), first)
            valid = tl.where(go, match, valid)
            root_valid = root_valid & ~go
            active = go
    tl.store(first_ptr + b, first)
    tl.store(nem_ptr + b, emitted)
    tl.store(bonus_ptr + b, bonus.to(tl.int32))
    tl.store(fb_ptr + b, fb.to(tl.int32))


def _walk_inputs(p, tok, par, u, block_v: int):
    """The launch inputs shared by :func:`walk` and :func:`mss_walk`: (B, N, V, device,
    p with a contiguous last dim, BLOCK_V, NT, BLOCK_T, float64?, tok, par (one dummy
    row when N = 0, so that the pointers are valid), u as float64), all contiguous."""
    check_device(p)
    b, n1, v = p.shape
    n = n1 - 1
    dev = p.device
    pc = p.contiguous() if p.stride(-1) != 1 else p
    block_v, nt, block_t = tiles(v, block_v)
    f64 = p.dtype == torch.float64
    tk = (tok if n else torch.zeros(b, 1, dtype=torch.int64, device=dev)).contiguous()
    pr = (par if n else torch.full((b, 1), -1, dtype=torch.int64, device=dev)).contiguous()
    ucd = u.to(torch.float64).contiguous()
    return b, n, v, dev, pc, block_v, nt, block_t, f64, tk, pr, ucd


def walk(p, tok, par, u, nn, status, block_v: int = BLOCK_V_DEFAULT):
    """Sample-and-match walk of every tree whose status is OK. p [B, N+1, V]; tok, par
    [B, N] (the clamped / safe arrays of tree._tree_status); u [B, W] float64.
    Returns (emitted [B], out_tok [B, N+1] PAD-filled, first [B], bonus [B] bool, fb [B])."""
    b, n, v, dev, pc, block_v, nt, block_t, f64, tk, pr, ucd = _walk_inputs(p, tok, par, u, block_v)
    n1 = n + 1
    scr = torch.empty(b, 2, nt, dtype=torch.float64 if f64 else torch.float32, device=dev)
    out_tok = torch.full((b, n1), -1, dtype=torch.int64, device=dev)
    first = torch.empty(b, dtype=torch.int64, device=dev)
    emitted = torch.empty(b, dtype=torch.int64, device=dev)
    bonus = torch.empty(b, dtype=torch.int32, device=dev)
    fb = torch.empty(b, dtype=torch.int32, device=dev)
    _tree_kernel[(b,)](pc, tk, pr, ucd, nn.contiguous(), status.to(torch.int32).contiguous(), scr, out_tok,
                       first, emitted, bonus, fb, n, v, nt, pc.stride(0), pc.stride(1), tk.stride(0),
                       ucd.stride(0), out_tok.stride(0), CD=tl.float64 if f64 else tl.float32,
                       BLOCK_N=max(triton.next_power_of_2(max(n, 1)), 2), BLOCK_V=block_v, BLOCK_T=block_t,
                       **compile_options())
    return emitted, out_tok, first, bonus.bool(), fb


# ---------------------------------------------------------------- MSS (stochastic trees)


@triton.jit
def _normalise_into(src, qrow, dst, mass, V, NT, CD: tl.constexpr, BLOCK_V: tl.constexpr):
    """dst <- (src - qrow)_+ / mass, tile by tile (src may be dst: each tile is read, then written)."""
    for t in range(0, NT):
        offs = t * BLOCK_V + tl.arange(0, BLOCK_V)
        m = offs < V
        pv = tl.load(src + offs, mask=m, other=0.0).to(CD)
        qv = tl.load(qrow + offs, mask=m, other=0.0).to(CD)
        tl.store(dst + offs, tl.maximum(pv - qv, 0.0) / mass, mask=m)
    tl.debug_barrier()  # later tiles of dst may be read by other threads


@triton.jit
def _mss_kernel(p_ptr, q_ptr, tok_ptr, par_ptr, u_ptr, n_ptr, st_ptr, res_ptr, scr_ptr, out_ptr, first_ptr,
                dep_ptr, bonus_ptr, fb_ptr, N, V, NT, spb, spk, sqb, sqk, stb, sub, sob,
                CD: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_T: tl.constexpr):
    """MSS walk of one tree. The running target P is the current node's row of p until
    the first rejection at that node; from then on it lives in the scratch row
    res_ptr[b] (compute dtype), updated in place to normalise((P - q[row])_+)."""
    b = tl.program_id(0).to(tl.int64)
    nn = tl.minimum(tl.maximum(tl.load(n_ptr + b), 0), N)
    ar = tl.arange(0, BLOCK_N)
    live = ar < nn
    tok = tl.load(tok_ptr + b * stb + ar, mask=live, other=0)
    par = tl.load(par_ptr + b * stb + ar, mask=live, other=-2)
    res = res_ptr + b * V
    row = nn * 0
    last = nn * 0 - 1
    first = nn * 0 - 1
    depth = nn * 0
    fb = nn * 0
    p_is_row = nn >= 0
    bonus = nn < 0
    active = tl.load(st_ptr + b) == 0
    yes = nn >= 0
    for _ in range(0, 2 * N + 2):
        if active:
            kids = live & (par + 1 == row)
            leaf = tl.max(kids.to(tl.int32), 0) == 0
            nxt = tl.min(tl.where(kids & (ar > last), ar, BLOCK_N), 0).to(row.dtype)
            if leaf | (nxt >= BLOCK_N):
                bonus = leaf
                active = nn < 0
            else:
                tc = tl.sum(tl.where(ar == nxt, tok, 0), 0).to(tl.int64)
                uc = tl.load(u_ptr + b * sub + nxt).to(tl.float64)
                prow = p_ptr + b * spb + row * spk
                qrow = q_ptr + b * sqb + row * sqk
                qtc = tl.load(qrow + tc).to(CD)
                if p_is_row:
                    ptc = tl.load(prow + tc).to(CD)
                else:
                    ptc = tl.load(res + tc).to(CD)
                if uc * qtc < ptc:
                    tl.store(out_ptr + b * sob + depth, tc)
                    first = nxt
                    depth = depth + 1
                    row = nxt + 1
                    last = nn * 0 - 1
                    p_is_row = nn >= 0
                else:
                    last = nxt
                    one = ptc * 0.0 + 1.0
                    if p_is_row:
                        mass, nf = residual_mass(prow, qrow, u_ptr, u_ptr, V, NT, one, CD, BLOCK_V, False, False,
                                                 False, False)
                        if mass > 0:
                            _normalise_into(prow, qrow, res, mass, V, NT, CD, BLOCK_V)
                            p_is_row = nn < 0
                    else:
                        mass, nf = residual_mass(res, qrow, u_ptr, u_ptr, V, NT, one, CD, BLOCK_V, False, False,
                                                 False, False)
                        if mass > 0:
                            _normalise_into(res, qrow, res, mass, V, NT, CD, BLOCK_V)
                    fb = fb | tl.where(mass > 0, 0, 1)
    u_last = tl.load(u_ptr + b * sub + nn).to(tl.float64)
    prow = p_ptr + b * spb + row * spk
    if tl.load(st_ptr + b) == 0:
        if p_is_row | bonus:
            one = tl.load(prow).to(CD) * 0.0 + 1.0
            y, rounding, zm, nf = final_draw(prow, prow, u_ptr, u_ptr, scr_ptr + b * 2 * NT, V, NT, one, yes,
                                             u_last, CD, BLOCK_V, BLOCK_T, False, False, False, False)
        else:
            one = tl.load(res).to(CD) * 0.0 + 1.0
            y, rounding, zm, nf = final_draw(res, res, u_ptr, u_ptr, scr_ptr + b * 2 * NT, V, NT, one, yes,
                                             u_last, CD, BLOCK_V, BLOCK_T, False, False, False, False)
        fb = fb | tl.where(rounding, 2, 0)
        tl.store(out_ptr + b * sob + depth, y)
    tl.store(first_ptr + b, first)
    tl.store(dep_ptr + b, depth)
    tl.store(bonus_ptr + b, bonus.to(tl.int32))
    tl.store(fb_ptr + b, fb.to(tl.int32))


def mss_walk(p, q, tok, par, u, nn, status, block_v: int = BLOCK_V_DEFAULT):
    """MSS walk of every tree whose status is OK (tree.verify_mss_tree's checks ran first).
    p, q [B, N+1, V]; tok, par [B, N] (safe arrays); u [B, N+1] float64.
    Returns (depth [B], out_tok [B, N+1] PAD-filled, first [B], bonus [B] bool, fb [B])."""
    b, n, v, dev, pc, block_v, nt, block_t, f64, tk, pr, ucd = _walk_inputs(p, tok, par, u, block_v)
    n1 = n + 1
    qc = q.contiguous() if q.stride(-1) != 1 else q
    cdt = torch.float64 if f64 else torch.float32
    res = torch.empty(b, v, dtype=cdt, device=dev)
    scr = torch.empty(b, 2, nt, dtype=cdt, device=dev)
    out_tok = torch.full((b, n1), -1, dtype=torch.int64, device=dev)
    first = torch.empty(b, dtype=torch.int64, device=dev)
    depth = torch.empty(b, dtype=torch.int64, device=dev)
    bonus = torch.empty(b, dtype=torch.int32, device=dev)
    fb = torch.empty(b, dtype=torch.int32, device=dev)
    _mss_kernel[(b,)](pc, qc, tk, pr, ucd, nn.contiguous(), status.to(torch.int32).contiguous(), res, scr, out_tok,
                      first, depth, bonus, fb, n, v, nt, pc.stride(0), pc.stride(1), qc.stride(0), qc.stride(1),
                      tk.stride(0), ucd.stride(0), out_tok.stride(0), CD=tl.float64 if f64 else tl.float32,
                      BLOCK_N=max(triton.next_power_of_2(max(n, 1)), 2), BLOCK_V=block_v, BLOCK_T=block_t,
                      **compile_options())
    return depth, out_tok, first, bonus.bool(), fb
