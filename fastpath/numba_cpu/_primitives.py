"""numba primitives shared by the CPU kernels: the oracle's arithmetic, bit for bit.

Each function here is the compiled twin of one primitive of
``specoracle.reference.categorical`` and performs the SAME floating-point
operations in the SAME order, so a float64 kernel built from them returns the
reference's tokens exactly (comparison rule ``exact``, tests/TOLERANCES.md):

- :func:`draw_scaled_residual` = ``_draw_residual`` / ``_draw_target`` +
  ``sample_categorical``: inverse CDF with one uniform, weights
  ``max(scale * p[j] - q[j], 0)`` accumulated left to right (total first, then
  the running sum), the smallest j with ``u * total < running`` among positive
  weights, the ``cdf_rounding`` and ``residual_zero_mass`` fallbacks.
- :func:`residual_mass` = ``residual_weights(...).sum()``: NumPy's ``add.reduce``
  on a contiguous float64 vector is a *pairwise* sum (blocks of <= 128 entries
  summed with 8 interleaved accumulators, larger ranges split in two halves at a
  multiple of 8); NumPy < 2.3 applies it to chunks of 8192 entries and adds
  the chunk sums left to right (:data:`REDUCE_CHUNK`). The block-verification
  tests compare against that sum, so it is reproduced exactly here (checked
  against ``ndarray.sum`` in tests/fastpath/numba_cpu/test_numba_kernels.py).

Rows are 1-D views; float32 rows are promoted to float64 on read (all arithmetic
and every accumulator is float64).
"""
from __future__ import annotations

import numba as nb
import numpy as np

PAIRWISE_BLOCK = 128  # NumPy's PW_BLOCKSIZE


def _reduce_chunk() -> int:
    """Entries per inner reduction loop of ``ndarray.sum``: 0 = the whole vector.

    NumPy < 2.3 runs reductions through its buffered iterator, whose inner loop
    sees at most ``np.getbufsize()`` (default 8192) entries even when no buffer
    is needed; 2.3 reorganised the iterator and sums the whole contiguous vector
    pairwise. Read once at import: numba freezes it into the compiled kernels
    (so a numba cache built under another NumPy must be cleared, and
    ``np.setbufsize`` changes made later are not followed).
    """
    major, minor = (int(x) for x in np.__version__.split(".")[:2])
    return 0 if (major, minor) >= (2, 3) else int(np.getbufsize())


REDUCE_CHUNK = _reduce_chunk()

NOT_FOUND = -1


@nb.njit(cache=True, inline="always")
def residual_weight(scale, p_j, q_j):
    """``max(scale * p_j - q_j, 0)`` as ``np.maximum`` computes it (NaN propagates).

    Written as a select, not a branch: the sign of p - q is random across a row, and a
    mispredicted branch per entry made the residual draw ~4x slower."""
    w = scale * np.float64(p_j) - np.float64(q_j)
    return w if not (w < 0.0) else 0.0


@nb.njit(cache=True)
def _pairwise_leaf(p_row, q_row, scale, lo, n):
    # n <= PAIRWISE_BLOCK: NumPy's unrolled 8-accumulator loop, then the tail.
    if n < 8:
        res = 0.0
        for i in range(n):
            res += residual_weight(scale, p_row[lo + i], q_row[lo + i])
        return res
    r0 = residual_weight(scale, p_row[lo], q_row[lo])
    r1 = residual_weight(scale, p_row[lo + 1], q_row[lo + 1])
    r2 = residual_weight(scale, p_row[lo + 2], q_row[lo + 2])
    r3 = residual_weight(scale, p_row[lo + 3], q_row[lo + 3])
    r4 = residual_weight(scale, p_row[lo + 4], q_row[lo + 4])
    r5 = residual_weight(scale, p_row[lo + 5], q_row[lo + 5])
    r6 = residual_weight(scale, p_row[lo + 6], q_row[lo + 6])
    r7 = residual_weight(scale, p_row[lo + 7], q_row[lo + 7])
    stop = n - n % 8
    i = 8
    while i < stop:
        j = lo + i
        r0 += residual_weight(scale, p_row[j], q_row[j])
        r1 += residual_weight(scale, p_row[j + 1], q_row[j + 1])
        r2 += residual_weight(scale, p_row[j + 2], q_row[j + 2])
        r3 += residual_weight(scale, p_row[j + 3], q_row[j + 3])
        r4 += residual_weight(scale, p_row[j + 4], q_row[j + 4])
        r5 += residual_weight(scale, p_row[j + 5], q_row[j + 5])
        r6 += residual_weight(scale, p_row[j + 6], q_row[j + 6])
        r7 += residual_weight(scale, p_row[j + 7], q_row[j + 7])
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += residual_weight(scale, p_row[lo + i], q_row[lo + i])
        i += 1
    return res


@nb.njit(cache=True)
def residual_mass(p_row, q_row, scale):
    """``np.maximum(scale * p_row - q_row, 0).sum()`` bit for bit (NumPy's order).

    NumPy >= 2.3 sums the whole contiguous vector pairwise; older NumPy hands the
    reduction loop chunks of at most ``REDUCE_CHUNK`` (its buffer size, 8192)
    entries, sums each chunk pairwise and adds the chunk sums left to right
    (measured on 1.24.0 - 2.2.0 vs 2.3.0, V = 32000; see the module docstring).
    """
    n = p_row.shape[0]
    if REDUCE_CHUNK == 0 or n <= REDUCE_CHUNK:
        return _pairwise_range(p_row, q_row, scale, 0, n)
    total = 0.0
    lo = 0
    while lo < n:
        m = min(REDUCE_CHUNK, n - lo)
        total += _pairwise_range(p_row, q_row, scale, lo, m)
        lo += m
    return total


@nb.njit(cache=True)
def _pairwise_range(p_row, q_row, scale, lo0, n):
    """NumPy's ``pairwise_sum`` of the weights ``lo0 .. lo0 + n - 1``.

    The recursion is unrolled with an explicit stack: a range longer than 128
    splits at ``n2 = n // 2 - (n // 2) % 8``; the sum of a range is (sum of left
    half) + (sum of right half).
    """
    if n <= PAIRWISE_BLOCK:
        return _pairwise_leaf(p_row, q_row, scale, lo0, n)
    # Post-order walk: stack of (lo, n, state); values stack holds partial sums.
    lo_st = np.empty(64, np.int64)
    n_st = np.empty(64, np.int64)
    state = np.empty(64, np.int64)
    vals = np.empty(64, np.float64)
    top = 0
    nv = 0
    lo_st[0] = lo0
    n_st[0] = n
    state[0] = 0
    while top >= 0:
        lo = lo_st[top]
        m = n_st[top]
        if m <= PAIRWISE_BLOCK:
            vals[nv] = _pairwise_leaf(p_row, q_row, scale, lo, m)
            nv += 1
            top -= 1
            continue
        half = m // 2
        half -= half % 8
        if state[top] == 0:      # push left child
            state[top] = 1
            top += 1
            lo_st[top] = lo
            n_st[top] = half
            state[top] = 0
        elif state[top] == 1:    # push right child
            state[top] = 2
            top += 1
            lo_st[top] = lo + half
            n_st[top] = m - half
            state[top] = 0
        else:                    # both children done: combine left + right
            right = vals[nv - 1]
            left = vals[nv - 2]
            nv -= 2
            vals[nv] = left + right
            nv += 1
            top -= 1
    return vals[0]


@nb.njit(cache=True)
def _weight(p_row, q_row, scale, use_residual, j):
    if use_residual:
        return residual_weight(scale, p_row[j], q_row[j])
    return np.float64(p_row[j])


@nb.njit(cache=True)
def sample_weights(p_row, q_row, scale, use_residual, u):
    """Inverse-CDF draw (reference ``sample_categorical``) from ``max(scale*p - q, 0)``
    if ``use_residual`` else from ``p`` itself. Returns ``(index, total, rounding)``:
    ``rounding`` is True when ``u * total`` reached the total (the last positive
    index is returned, fallback ``cdf_rounding``). ``total`` is NaN/inf on bad rows.

    The reference returns the smallest i with ``w_i > 0`` and ``u * total < C_i``
    (C_i the running sum). The smallest i with ``u * total < C_i`` alone always has
    ``w_i > 0`` (C_i > u * total >= C_{i-1} forces C_i > C_{i-1}), so the loop tests only
    the running sum (a branch that is predictable) and the last positive index is
    looked up only in the rounding fallback.
    """
    n = p_row.shape[0]
    total = 0.0
    for j in range(n):
        total += _weight(p_row, q_row, scale, use_residual, j)
    threshold = u * total
    running = 0.0
    for j in range(n):
        running += _weight(p_row, q_row, scale, use_residual, j)
        if threshold < running:
            return j, total, False
    for j in range(n - 1, -1, -1):
        if _weight(p_row, q_row, scale, use_residual, j) > 0.0:
            return j, total, True
    return NOT_FOUND, total, True


@nb.njit(cache=True)
def draw_scaled_residual(p_row, q_row, scale, u):
    """Reference ``_draw_residual``: a draw from normalise((scale*p - q)_+) with u;
    if that mass is not > 0, from p (fallback ``residual_zero_mass``).

    Returns ``(token, fallback_bits, finite)``; bits: 1 residual_zero_mass,
    2 cdf_rounding (fastpath.types.FALLBACK_*)."""
    bits = 0
    tok, total, rounding = sample_weights(p_row, q_row, scale, True, u)
    if not np.isfinite(total):
        return NOT_FOUND, 0, False
    if not total > 0.0:
        bits |= 1
        tok, total, rounding = sample_weights(p_row, q_row, scale, False, u)
        if not np.isfinite(total):
            return NOT_FOUND, 0, False
    if rounding:
        bits |= 2
    return tok, bits, True


@nb.njit(cache=True)
def draw_target(p_row, u):
    """Reference ``_draw_target``: a draw from p with u. Returns (token, bits, finite)."""
    tok, total, rounding = sample_weights(p_row, p_row, 1.0, False, u)
    if not np.isfinite(total):
        return NOT_FOUND, 0, False
    return tok, (2 if rounding else 0), True
