"""Triton device functions: logits -> warped probabilities inside a kernel, without a
sort and without materialising the probability row (ALGORITHMS.md §1.2).

The warp is reference/processing.py's, in its order and with its tie rules:
temperature (z = x / T; T = 0: one-hot on the first maximum of the raw row), top-k
(the first k of the stable descending order: lower id first on ties), softmax over
the kept set, top-p (the smallest prefix of that order whose cumulative mass is
>= top_p, at least one token), min-p (probabilities >= min_p * max), renormalise.

How, per row (``warp_state``; V read in tiles of BLOCK_V, every pass streams the row):

1. one pass: the row maximum of z, its first position (greedy rows), the smallest
   z, and the bad-row flags (NaN, +inf, every logit -inf);
2. top-k (k < V): the k-th largest value theta_k by bisection on the monotone integer
   key of z (bit pattern with the negative half flipped; at most 32 passes for
   float32, 64 for float64, each pass a count of ``key >= mid``); the ties at theta_k
   are resolved by id: keep the first ``k - #(z > theta_k)`` of them (one pass, a
   running ``tl.cumsum`` of the tie mask finds the id of the c-th tie);
3. one pass: S = sum of exp(z - max) over the kept set (the max is always kept);
4. top-p (top_p < 1): theta_p = the largest value t with G(t) = sum_{z >= t, kept}
   exp(z - max) / S >= top_p, by the same key bisection (each pass a masked sum);
   inside its tie group the first c = ceil((top_p - G(> theta_p)) / p(theta_p)) ties
   by id are kept; if even the total mass rounds below top_p every token is kept (the
   reference's clamp); Sp = the kept mass (one pass);
5. min-p (min_p > 0): threshold = min_p * (1 / S) / Sp (the largest probability is
   that of the maximum, exp(0) / S / Sp), Sm = the kept mass (one pass).

The row's state (13 numbers) is stored in a float64 scratch record (ids and values
are exact in float64), so any later pass -- a drafted entry, a residual tile, the
final draw -- computes a probability from its logit in O(1) (``warped``). Disabled
warps are identities: theta = -inf and cut = V keep everything, Sp = Sm = 1 divide
exactly.

Precision: the compute dtype CD is float64 for float64 logits, else float32 (bf16 /
fp16 upcast on load). Summation orders differ from NumPy's, so the parity rule is
``decisions_with_margin`` (tests/TOLERANCES.md), float64 included; a top-p boundary
within that margin of the cumulative mass is excluded by the same rule.

Cost: 3 + (top-k: <= 33) + (top-p: <= 34) + (min-p: 1) passes over a row; the passes
after the first hit the L2 cache on a GPU for V <= ~10^5 per program.
"""
from __future__ import annotations

import triton
import triton.language as tl

#: fields of a row's warp record (float64 scratch, NF per row)
F_T = tl.constexpr(0)        # temperature used for the division (1 for greedy rows)
F_GREEDY = tl.constexpr(1)   # 1.0 for a temperature-0 row
F_AMAX = tl.constexpr(2)     # first position of the maximum
F_MAX = tl.constexpr(3)      # max of z
F_S = tl.constexpr(4)        # sum of exp(z - max) over the top-k set
F_THK = tl.constexpr(5)      # theta_k (-inf: top-k off)
F_CUTK = tl.constexpr(6)     # last kept id among the ties at theta_k
F_THP = tl.constexpr(7)      # theta_p (-inf: top-p off)
F_CUTP = tl.constexpr(8)     # last kept id among the ties at theta_p
F_SP = tl.constexpr(9)       # top-p kept mass (1: off)
F_THR = tl.constexpr(10)     # min-p threshold on probabilities (0: off)
F_SM = tl.constexpr(11)      # min-p kept mass (1: off)
F_BAD = tl.constexpr(12)     # 1.0: NaN, +inf or all -inf (STATUS_NONFINITE)
NF = 16


@triton.jit
def key_of(z, CD: tl.constexpr):
    """Monotone int64 key of float z (no NaN; -0.0 must already be +0.0)."""
    if CD == tl.float64:
        b = z.to(tl.int64, bitcast=True)
        k = tl.where(b < 0, b ^ 0x7FFFFFFFFFFFFFFF, b)
    else:
        b32 = z.to(tl.int32, bitcast=True)
        k = tl.where(b32 < 0, b32 ^ 0x7FFFFFFF, b32).to(tl.int64)
    return k


@triton.jit
def value_of(k, CD: tl.constexpr):
    """Inverse of :func:`key_of`."""
    if CD == tl.float64:
        b = tl.where(k < 0, k ^ 0x7FFFFFFFFFFFFFFF, k)
        z = b.to(tl.float64, bitcast=True)
    else:
        k32 = k.to(tl.int32)
        b32 = tl.where(k32 < 0, k32 ^ 0x7FFFFFFF, k32)
        z = b32.to(tl.float32, bitcast=True)
    return z


@triton.jit
def _z(row, offs, m, t, CD: tl.constexpr):
    """z = x / t of a tile (masked entries -inf; -0.0 normalised to +0.0)."""
    x = tl.load(row + offs, mask=m, other=float("-inf")).to(CD)
    return x / t + 0.0


@triton.jit
def _keep_k(z, offs, thk, cutk):
    return (z > thk) | ((z == thk) & (offs <= cutk))


@triton.jit
def _kept_sum(row, V, NT, t, mxs, s, thk, cutk, thp, cutp, CD: tl.constexpr, BLOCK_V: tl.constexpr):
    """Sum of exp(z - max) / s over the positions kept by top-k (thk, cutk) and top-p (thp,
    cutp; thp = -inf keeps every finite z), tile by tile in id order."""
    acc = mxs * 0.0
    for tt in range(0, NT):
        offs = tt * BLOCK_V + tl.arange(0, BLOCK_V)
        m = offs < V
        z = _z(row, offs, m, t, CD)
        keep = m & _keep_k(z, offs, thk, cutk) & _keep_k(z, offs, thp, cutp)
        acc = acc + tl.sum(tl.where(keep, tl.exp(z - mxs) / s, 0.0), 0)
    return acc


@triton.jit
def _nth_tie(row, V, NT, t, theta, c, thk, cutk, CD: tl.constexpr, BLOCK_V: tl.constexpr):
    """Id of the c-th (1-based, in id order) top-k-kept position with z == theta; the
    last such id if there are fewer than c."""
    run = c * 0
    found = c * 0 - 1
    last = c * 0 - 1
    for tt in range(0, NT):
        offs = tt * BLOCK_V + tl.arange(0, BLOCK_V)
        m = offs < V
        z = _z(row, offs, m, t, CD)
        tie = m & (z == theta) & _keep_k(z, offs, thk, cutk)
        cs = tl.cumsum(tie.to(tl.int64), 0) + run
        hit = tl.max(tl.where(tie & (cs == c), offs, -1), 0).to(tl.int64)
        found = tl.where((found < 0) & (hit >= 0), hit, found)
        last = tl.maximum(last, tl.max(tl.where(tie, offs, -1), 0).to(tl.int64))
        run = run + tl.sum(tie.to(tl.int64), 0)
    return tl.where(found >= 0, found, last)


@triton.jit
def _bisect(row, V, NT, t, mxs, s, thk, cutk, target, kmin, kmax, MASS: tl.constexpr, CD: tl.constexpr,
            BLOCK_V: tl.constexpr):
    """theta = the largest value with F(>= theta) >= target, where F sums w over the
    top-k-kept positions (w = 1: a count, MASS = False; w = exp(z - max) / s, MASS =
    True), by bisection on the key in [kmin, kmax]; returns (theta, F(> theta)).

    Each pass also finds the smallest key at or above mid and its weight; when that key
    alone carries F across the target the answer is known and the loop stops early
    (typically after ~log2(V) passes instead of the key width)."""
    big = kmax + 1
    lo = kmin
    hi = big
    above = target * 0
    done = kmin > kmax
    theta_k = kmin
    while (lo + 1 < hi) & (done == 0):
        mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)
        f = target * 0
        mn = big
        w_mn = target * 0
        for tt in range(0, NT):
            offs = tt * BLOCK_V + tl.arange(0, BLOCK_V)
            m = offs < V
            z = _z(row, offs, m, t, CD)
            key = key_of(z, CD)
            sel = m & _keep_k(z, offs, thk, cutk) & (key >= mid)
            if MASS:
                w = tl.where(sel, tl.exp(z - mxs) / s, 0.0)
            else:
                w = sel.to(tl.int64)
            f = f + tl.sum(w, 0)
            kt = tl.min(tl.where(sel, key, big), 0)
            wt = tl.sum(tl.where(sel & (key == kt), w, 0), 0)
            w_mn = tl.where(kt < mn, wt, tl.where(kt == mn, w_mn + wt, w_mn))
            mn = tl.minimum(mn, kt)
        up = f >= target
        exact = up & (f - w_mn < target)
        done = exact
        theta_k = tl.where(exact, mn, theta_k)
        above = tl.where(exact, f - w_mn, tl.where(up, above, f))
        lo = tl.where(up, mid, lo)
        hi = tl.where(up, hi, mid)
    theta_k = tl.where(done, theta_k, lo)
    return value_of(theta_k, CD), above


@triton.jit
def warp_state(row, V, NT, temp, topk, topp, minp, st, CD: tl.constexpr, BLOCK_V: tl.constexpr,
               HAS_TOPK: tl.constexpr, HAS_TOPP: tl.constexpr, HAS_MINP: tl.constexpr):
    """Compute one row's warp record (module docstring) into ``st[0:NF]``; returns bad."""
    greedy = temp == 0
    t = tl.where(greedy, 1.0, temp).to(CD)
    zero = tl.sum(tl.zeros([BLOCK_V], dtype=CD), 0)
    ninf = zero - float("inf")
    mx = ninf
    amax = tl.sum(tl.zeros([BLOCK_V], dtype=tl.int64), 0) + V
    kmin = key_of(zero + float("inf"), CD)
    nan = amax < 0
    posinf = amax < 0
    # pass 1: max, first argmax, smallest key, bad flags
    for tt in range(0, NT):
        offs = tt * BLOCK_V + tl.arange(0, BLOCK_V)
        m = offs < V
        z = _z(row, offs, m, t, CD)
        nan = nan | (tl.max((m & (z != z)).to(tl.int32), 0) > 0)
        posinf = posinf | (tl.max((m & (z == float("inf"))).to(tl.int32), 0) > 0)
        zc = tl.where(m & (z == z), z, float("-inf"))
        tmax = tl.max(zc, 0)
        first = tl.min(tl.where(m & (zc == tmax), offs, V), 0).to(tl.int64)
        amax = tl.where(tmax > mx, first, amax)
        mx = tl.maximum(mx, tmax)
        kmin = tl.minimum(kmin, tl.min(key_of(tl.where(m & (z == z), z, float("inf")), CD), 0))
    bad = nan | posinf | (mx == float("-inf"))
    active = ~greedy & ~bad
    mxs = tl.where(bad, 0.0, mx)
    kmax = key_of(mxs, CD)
    # each field of the record is stored as soon as it is final (read back after the barrier)
    tl.store(st + F_T, t.to(tl.float64))
    tl.store(st + F_GREEDY, greedy.to(tl.float64))
    tl.store(st + F_AMAX, amax.to(tl.float64))
    tl.store(st + F_MAX, mxs.to(tl.float64))
    tl.store(st + F_BAD, bad.to(tl.float64))
    # top-k: theta_k by key bisection, ties by id
    thk = ninf
    cutk = amax * 0 + V
    if HAS_TOPK:
        kk = topk.to(tl.int64)
        if active & (kk < V):
            thk, cnt_hi = _bisect(row, V, NT, t, mxs, zero + 1.0, ninf, amax * 0 + V, kk, kmin, kmax, False,
                                  CD, BLOCK_V)
            cutk = _nth_tie(row, V, NT, t, thk, kk - cnt_hi, ninf, amax * 0 + V, CD, BLOCK_V)
    tl.store(st + F_THK, thk.to(tl.float64))
    tl.store(st + F_CUTK, cutk.to(tl.float64))
    # softmax normaliser over the top-k set (division by 1.0 is exact)
    s = _kept_sum(row, V, NT, t, mxs, zero + 1.0, thk, cutk, ninf, amax * 0 + V, CD, BLOCK_V)
    s = tl.where((s > 0) & ~bad, s, 1.0)  # bad rows: any finite normaliser (the row gets a status)
    tl.store(st + F_S, s.to(tl.float64))
    # top-p: theta_p by key bisection on the kept mass, ties by id
    thp = ninf
    cutp = amax * 0 + V
    sp = zero + 1.0
    if HAS_TOPP:
        tp = topp.to(CD)
        if active & (tp < 1):
            tot = _kept_sum(row, V, NT, t, mxs, s, thk, cutk, ninf, amax * 0 + V, CD, BLOCK_V)
            sp = tot
            if tot >= tp:
                thp, g_hi = _bisect(row, V, NT, t, mxs, s, thk, cutk, tp, kmin, kmax, True, CD, BLOCK_V)
                ptie = tl.exp(thp - mxs) / s
                cf = tl.where(ptie > 0, (tp - g_hi) / tl.where(ptie > 0, ptie, 1.0), 1.0)
                ci = tl.minimum(tl.maximum(cf, 1.0), V + 0.0).to(tl.int64)
                ci = tl.where(ci.to(CD) < cf, ci + 1, ci)
                cutp = _nth_tie(row, V, NT, t, thp, ci, thk, cutk, CD, BLOCK_V)
                sp = _kept_sum(row, V, NT, t, mxs, s, thk, cutk, thp, cutp, CD, BLOCK_V)
    tl.store(st + F_THP, thp.to(tl.float64))
    tl.store(st + F_CUTP, cutp.to(tl.float64))
    tl.store(st + F_SP, sp.to(tl.float64))
    # min-p: threshold relative to the largest probability, exp(0) / s / sp
    thr = zero
    sm = zero + 1.0
    if HAS_MINP:
        mp = minp.to(CD)
        if active & (mp > 0):
            thr = mp * ((1.0 / s) / sp)
            sm = zero
            for tt in range(0, NT):
                offs = tt * BLOCK_V + tl.arange(0, BLOCK_V)
                m = offs < V
                z = _z(row, offs, m, t, CD)
                keep = m & _keep_k(z, offs, thk, cutk) & _keep_k(z, offs, thp, cutp)
                pr = tl.where(keep, tl.exp(z - mxs) / s, 0.0) / sp
                sm = sm + tl.sum(tl.where(pr >= thr, pr, 0.0), 0)
    tl.store(st + F_THR, thr.to(tl.float64))
    tl.store(st + F_SM, sm.to(tl.float64))
    tl.debug_barrier()  # the record is read back by every thread of the program
    return bad


@triton.jit
def warped(row, offs, m, st, CD: tl.constexpr, HAS_TOPK: tl.constexpr, HAS_TOPP: tl.constexpr,
           HAS_MINP: tl.constexpr):
    """Warped probabilities at ``offs`` (a tile or a single id) of the row whose record is
    ``st``: the reference's formulas, (exp(z - max) / S [/ Sp] [/ Sm]) on the kept set."""
    t = tl.load(st + F_T).to(CD)
    z = _z(row, offs, m, t, CD)
    keep = m
    if HAS_TOPK:
        keep = keep & _keep_k(z, offs, tl.load(st + F_THK).to(CD), tl.load(st + F_CUTK).to(tl.int64))
    pr = tl.where(keep, tl.exp(z - tl.load(st + F_MAX).to(CD)), 0.0) / tl.load(st + F_S).to(CD)
    if HAS_TOPP:
        kp = _keep_k(z, offs, tl.load(st + F_THP).to(CD), tl.load(st + F_CUTP).to(tl.int64))
        pr = tl.where(kp, pr / tl.load(st + F_SP).to(CD), 0.0)
    if HAS_MINP:
        pr = tl.where(pr >= tl.load(st + F_THR).to(CD), pr / tl.load(st + F_SM).to(CD), 0.0)
    greedy = tl.load(st + F_GREEDY) != 0
    hot = tl.where(offs == tl.load(st + F_AMAX).to(tl.int64), 1.0, 0.0).to(CD)
    return tl.where(m, tl.where(greedy, hot, pr), 0.0)  # masked entries exactly 0 (records may be unset)
