"""Triton device functions shared by the categorical kernels: one row pair's tiles,
a row pair's residual mass, the final inverse-CDF draw over vocabulary tiles, and the
program's row and length (``program_row``).

Every kernel of triton_kernels.py (probabilities), triton_logits.py (warped logits)
and triton_tree.py calls these, so the tile-prefix draw exists once.

Tiles (``row_pair_tile``): probabilities are loaded (upcast to the compute dtype CD);
with ``LOGITS`` the values are the warped probabilities of triton_warp.warped,
computed from the logits and the row's warp record. The q row is read only where
``read_q`` (never on a bonus row).

The draw (reference ``sample_categorical``, ALGORITHMS.md §1.2): weights w = p (bonus,
or a residual of zero mass: fallback ``residual_zero_mass``) or (scale * p - q)_+.
Pass 1 computes each tile's inclusive scan (tl.cumsum) and stores the running prefix
of tile totals in the scratch ``scr`` [2, NT] (row 0 residual, row 1 target weights);
the total is the last prefix. Pass 2 loads the prefixes BLOCK_T at a time, takes the
first tile whose prefix exceeds u * total and re-reads that one tile. The prefixes are
the same float operations in both passes, so the chosen tile holds a qualifying index
except through the non-monotone rounding of a parallel scan; then the tile's last
positive index is taken and FALLBACK_CDF_ROUNDING set, exactly as for a total that
rounds up (no qualifying index anywhere: the row's last positive index).

Scratch written by one program and read back by it (the tile prefixes here, the warp
records of triton_warp.py, MSS's running residual) is followed by ``tl.debug_barrier()``:
a scalar store is issued by one thread, and the vector loads that follow run on others.
"""
from __future__ import annotations

import triton
import triton.language as tl

from .triton_warp import warped


@triton.jit
def row_pair_tile(prow, qrow, pst, qst, offs, m, read_q, CD: tl.constexpr, LOGITS: tl.constexpr,
                  HAS_TOPK: tl.constexpr, HAS_TOPP: tl.constexpr, HAS_MINP: tl.constexpr):
    """(p tile, q tile) in CD; q is 0 where not ``read_q``."""
    mq = tl.where(read_q, m, False)
    if LOGITS:
        pv = warped(prow, offs, m, pst, CD, HAS_TOPK, HAS_TOPP, HAS_MINP)
        qv = warped(qrow, offs, mq, qst, CD, HAS_TOPK, HAS_TOPP, HAS_MINP)
    else:
        pv = tl.load(prow + offs, mask=m, other=0.0).to(CD)
        qv = tl.load(qrow + offs, mask=mq, other=0.0).to(CD)
    return pv, qv


@triton.jit
def _nonfinite(m, pv, qv):
    return tl.max((m & (((pv - pv) != 0) | ((qv - qv) != 0))).to(tl.int32), 0) > 0


@triton.jit
def residual_mass(prow, qrow, pst, qst, V, NT, scale, CD: tl.constexpr, BLOCK_V: tl.constexpr,
                  LOGITS: tl.constexpr, HAS_TOPK: tl.constexpr, HAS_TOPP: tl.constexpr,
                  HAS_MINP: tl.constexpr):
    """(sum_x (scale p(x) - q(x))_+, any non-finite value) over one row pair."""
    mass = scale * 0.0
    nonfin = scale != scale
    for t in range(0, NT):
        offs = t * BLOCK_V + tl.arange(0, BLOCK_V)
        m = offs < V
        pv, qv = row_pair_tile(prow, qrow, pst, qst, offs, m, m == m, CD, LOGITS, HAS_TOPK, HAS_TOPP,
                               HAS_MINP)
        nonfin = nonfin | _nonfinite(m, pv, qv)
        mass = mass + tl.sum(tl.maximum(scale * pv - qv, 0.0), 0)
    return mass, nonfin


@triton.jit
def final_draw(prow, qrow, pst, qst, scr, V, NT, scale, bonus, u_last, CD: tl.constexpr,
               BLOCK_V: tl.constexpr, BLOCK_T: tl.constexpr, LOGITS: tl.constexpr,
               HAS_TOPK: tl.constexpr, HAS_TOPP: tl.constexpr, HAS_MINP: tl.constexpr):
    """The one inverse-CDF draw of a row (module docstring). ``u_last`` is float64.
    Returns (index int64, rounding, zero_mass, non-finite value seen)."""
    not_bonus = bonus == 0  # (~ on an int1 scalar is not a mask in the interpreter)
    tot_r = scale * 0.0
    tot_p = scale * 0.0
    last_r = tl.sum(tl.zeros([BLOCK_V], dtype=tl.int64), 0) - 1
    last_p = last_r
    nonfin = scale != scale
    for t in range(0, NT):
        offs = t * BLOCK_V + tl.arange(0, BLOCK_V)
        m = offs < V
        pv, qv = row_pair_tile(prow, qrow, pst, qst, offs, m, not_bonus, CD, LOGITS, HAS_TOPK, HAS_TOPP,
                               HAS_MINP)
        nonfin = nonfin | _nonfinite(m, pv, qv)
        r = tl.maximum(scale * pv - qv, 0.0)
        is_last = tl.arange(0, BLOCK_V) == BLOCK_V - 1
        tot_r = tot_r + tl.sum(tl.where(is_last, tl.cumsum(r, 0), 0.0), 0)
        tot_p = tot_p + tl.sum(tl.where(is_last, tl.cumsum(pv, 0), 0.0), 0)
        tl.store(scr + t, tot_r)
        tl.store(scr + NT + t, tot_p)
        last_r = tl.maximum(last_r, tl.max(tl.where(m & (r > 0), offs, -1), 0).to(tl.int64))
        last_p = tl.maximum(last_p, tl.max(tl.where(m & (pv > 0), offs, -1), 0).to(tl.int64))
    tl.debug_barrier()  # the prefixes were stored by scalar stores: make them visible to every thread
    zero_mass = not_bonus & (last_r < 0)
    use_p = bonus | zero_mass
    total = tl.where(use_p, tot_p, tot_r)
    thr = u_last * total
    # pass 2: the first tile whose prefix exceeds thr, then that one tile re-read
    sel = tl.where(use_p, NT, 0)
    found = last_r * 0 - 1
    for t0 in range(0, NT, BLOCK_T):
        ts = t0 + tl.arange(0, BLOCK_T)
        tm = ts < NT
        pref = tl.load(scr + sel + ts, mask=tm, other=0.0)
        cand = tl.min(tl.where(tm & (thr < pref), ts, NT), 0).to(tl.int64)
        found = tl.where((found < 0) & (cand < NT), cand, found)
    before = tl.load(scr + sel + tl.maximum(found - 1, 0))
    before = tl.where(found > 0, before, 0.0)
    offs = tl.maximum(found, 0) * BLOCK_V + tl.arange(0, BLOCK_V)
    m = tl.where(found >= 0, offs < V, False)
    pv, qv = row_pair_tile(prow, qrow, pst, qst, offs, m, not_bonus, CD, LOGITS, HAS_TOPK, HAS_TOPP,
                           HAS_MINP)
    w = tl.where(use_p, pv, tl.maximum(scale * pv - qv, 0.0))
    c = before + tl.cumsum(w, 0)
    idx = tl.min(tl.where(m & (w > 0) & (thr < c), offs, V), 0).to(tl.int64)
    tile_last = tl.max(tl.where(m & (w > 0), offs, -1), 0).to(tl.int64)
    rounding = (found < 0) | (idx >= V)
    idx = tl.where(found < 0, tl.where(use_p, last_p, last_r), tl.where(idx >= V, tile_last, idx))
    return idx, rounding, zero_mass, nonfin


@triton.jit
def program_row(n_ptr, K):
    """This program's row b (grid = (B,)), whether its length n = num_draft[b] is out of
    [0, K] (STATUS_BAD_LENGTH), and n clamped to [0, K] for the loads."""
    b = tl.program_id(0).to(tl.int64)
    n = tl.load(n_ptr + b)
    return b, (n < 0) | (n > K), tl.minimum(tl.maximum(n, 0), K)


@triton.jit
def status_code(bad_len, any_oor, nonfin, zero_q):
    """STATUS_* of fastpath/types.py, first cause wins (BAD_LENGTH, OUT_OF_RANGE, NONFINITE, ZERO_Q)."""
    return tl.where(bad_len, 4, tl.where(any_oor, 1, tl.where(nonfin, 3, tl.where(zero_q, 2, 0))))
