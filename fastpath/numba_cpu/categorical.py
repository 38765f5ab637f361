"""Batched numba twins of ``specoracle.reference.categorical``: chain, greedy and
block verification on the CPU.

Same names and positional parameters as the oracle, batched (fastpath/types.py):
    p [B, K+1, V], q [B, K, V], draft [B, K], u [B, K+1]; keyword ``num_draft`` [B]
    for ragged rows (drafts at positions >= num_draft[b] are padding, PAD_ID = -1
    by convention, never read). Row b equals the reference on
    (p[b, :n+1], q[b, :n], draft[b, :n], u[b, :n+1]) with n = num_draft[b]:
    u[b, i] (i < n) is the accept test of draft i (eta_{i+1} for block
    verification), u[b, n] the final draw (residual or bonus).

Arithmetic: float64, in the reference's order (see ``_primitives``), so float64
inputs give the reference's decisions and tokens exactly. float32 inputs are read
as float32 and promoted to float64 on read (half the bytes; the decisions are
then those of the reference on the float64 upcast of the inputs).

What the kernels read (the memory floor of docs/PERFORMANCE.md):
    chain  - p[b, i, x_i], q[b, i, x_i] up to the first rejection, then one
             residual row pair (p and q at the rejected position) or the bonus
             row, each read twice (total, then running sum; the second read hits
             the cache).
    block  - scans i = n..1 and stops at the first passing index, computing the
             residual mass R_i (a full row pair) only for the indices it tests,
             then one residual row pair or the bonus row. Worst case: every row.
    greedy - the argmax of each target row up to the first mismatch.

The kernels cannot raise; they set ``status[b]`` and the wrappers raise
``InvalidInput`` naming the first bad row unless ``raise_on_error=False``. Rows are
NOT checked for normalisation or negative entries (that would read every row and
defeat the memory floor); the reference is the tool for validating inputs.

Parallelism: ``numba.prange`` over the batch (threads = ``numba.get_num_threads()``);
kernels are compiled once per dtype and cached on disk (``cache=True``).
"""
from __future__ import annotations

import numba as nb
import numpy as np

from specoracle.reference.types import InvalidInput
from specoracle.reference.validation import check_generator

from ..types import (STATUS_DRAFT_OUT_OF_RANGE, STATUS_DRAFT_ZERO_Q,
                     STATUS_NONFINITE)
from . import _batch
from ._batch import checked_length, length_if_ok
from ._primitives import draw_scaled_residual, draw_target, residual_mass

__all__ = ["verify_chain", "verify_chain_rng", "verify_greedy", "verify_block", "verify_block_rng",
           "sample_categorical_rows"]


#: below this many sequences the serial kernel is used (thread start-up costs more)
PARALLEL_MIN_BATCH = 4


def _use_threads(parallel, bsz) -> bool:
    """Keyword ``parallel``: True / False forces; None (default) picks threads for B >= 4."""
    if parallel is None:
        return bsz >= PARALLEL_MIN_BATCH and nb.get_num_threads() > 1
    return bool(parallel)


# ---------------------------------------------------------------- per-row checks (inside kernels)


@nb.njit(cache=True)
def _check_drafts(q, draft, b, n, v):
    """Status of row b's drafts: ids in [0, V), q(x) > 0 and finite (reference ``_validate``)."""
    for i in range(n):
        x = draft[b, i]
        if x < 0 or x >= v:
            return STATUS_DRAFT_OUT_OF_RANGE
    for i in range(n):
        qx = np.float64(q[b, i, draft[b, i]])
        if not np.isfinite(qx):
            return STATUS_NONFINITE
        if not qx > 0.0:
            return STATUS_DRAFT_ZERO_Q
    return 0


@nb.njit(cache=True)
def _emit(tokens, draft, b, n_acc, y):
    for i in range(n_acc):
        tokens[b, i] = draft[b, i]
    tokens[b, n_acc] = y


@nb.njit(cache=True)
def _row_length(q, draft, num_draft, b, v, status):
    """Row b's draft length n, or -1 after writing its status (n outside 0..K, or a bad
    draft: reference ``_validate``)."""
    n = checked_length(num_draft, b, q.shape[1], status)
    if n < 0:
        return -1
    return length_if_ok(n, _check_drafts(q, draft, b, n, v), b, status)


@nb.njit(cache=True)
def _finish_row(b, p, q, draft, u, n, tau, scale, n_acc, tokens, bonus, status, fallbacks):
    """Emit row b's tau accepted drafts and its final token, drawn with u[b, n]: from the
    target row p[n] if all n drafts passed (bonus), else from the residual of
    (p[tau], q[tau]) scaled by ``scale`` (1 for chain, the prefix survival for block)."""
    if tau == n:
        y, bits, ok = draw_target(p[b, n], u[b, n])
    else:
        y, bits, ok = draw_scaled_residual(p[b, tau], q[b, tau], scale, u[b, n])
    if not ok:
        status[b] = STATUS_NONFINITE
        return
    n_acc[b] = tau
    bonus[b] = tau == n
    fallbacks[b] = bits
    _emit(tokens, draft, b, tau, y)


# ---------------------------------------------------------------- chain


@nb.njit(cache=True)
def _chain_row(b, n, p, q, draft, u, n_acc, tokens, bonus, status, fallbacks):
    st = 0
    rejected = n
    for i in range(n):
        x = draft[b, i]
        px = np.float64(p[b, i, x])
        if not np.isfinite(px):
            st = STATUS_NONFINITE
            break
        if not u[b, i] * np.float64(q[b, i, x]) < px:
            rejected = i
            break
    if st != 0:
        status[b] = st
        return
    _finish_row(b, p, q, draft, u, n, rejected, 1.0, n_acc, tokens, bonus, status, fallbacks)


def _run_pq(block, p, q, draft, u, num_draft, raise_on_error, parallel):
    """Validate the batched (p, q, draft, u, num_draft) inputs of fastpath/types.py, run the
    block (``block``) or chain row kernel (threaded from a few rows on), and turn its
    outputs into a BatchVerdict."""
    p = _batch.as_prob_batch(p, "p")
    q = _batch.as_prob_batch(q, "q")
    p, q = _batch.common_float(p, q)
    bsz, k, _ = _batch.check_pq_shapes(p, q)
    draft = _batch.as_draft_batch(draft, bsz, k)
    num_draft = _batch.as_num_draft(num_draft, bsz, k)
    u = _batch.as_uniform_batch(u, bsz, k)
    out = _batch.alloc_outputs(bsz, k)
    kernel = _pq_parallel if _use_threads(parallel, bsz) else _pq_serial
    kernel(block, p, q, draft, num_draft, u, *out)
    return _batch.finish(out, raise_on_error)


def verify_chain(p, q, draft, u, *, num_draft=None, raise_on_error: bool = True,
                 parallel: bool | None = None):
    """Token-level speculative sampling, batched (Leviathan et al. 2023, arXiv 2211.17192,
    Algorithm 1; ALGORITHMS.md §1.2); twin of ``reference.categorical.verify_chain``.

    Row b: accept x_i iff ``u[b, i-1] * q_i(x_i) < p_i(x_i)`` for i = 1..n; at the first
    rejection draw from normalise((p_i - q_i)_+) with u[b, n], else the bonus token from
    p_{n+1} with u[b, n]. Returns a :class:`~specoracle.fastpath.types.BatchVerdict`.
    """
    return _run_pq(False, p, q, draft, u, num_draft, raise_on_error, parallel)


def verify_chain_rng(p, q, draft, rng, *, num_draft=None, raise_on_error: bool = True):
    """:func:`verify_chain` with noise ``u = rng.random((B, K + 1))`` (C order: row b
    consumes the stream's draws b*(K+1) .. b*(K+1)+K). With every num_draft[b] = K this
    is the reference's ``verify_chain_rng`` called on rows 0..B-1 in order with the same
    generator."""
    check_generator(rng)
    bsz, k1 = np.shape(p)[0], np.shape(p)[1]
    return verify_chain(p, q, draft, rng.random((bsz, k1)), num_draft=num_draft,
                        raise_on_error=raise_on_error)


# ---------------------------------------------------------------- inverse-CDF draws


@nb.njit(cache=True)
def _draw_rows(w, u, ids, rounding, ok):
    for b in range(w.shape[0]):
        tok, bits, finite = draw_target(w[b], u[b])
        ids[b], rounding[b], ok[b] = tok, (bits & 2) != 0, finite and tok >= 0


def sample_categorical_rows(weights, u):
    """Twin of ``reference.categorical.sample_categorical_rows``: one inverse-CDF draw per row
    of ``weights`` [B, V] with ``u`` [B] -> ``(ids [B] int64, rounding [B] bool)``, by the
    compiled primitive ``draw_target`` (the reference's sums in its order; float32 weights
    are promoted on read). Rows are not checked for negative entries; a row with a NaN/inf
    or no positive weight raises InvalidInput naming the row (``weights``)."""
    w = np.ascontiguousarray(weights)
    uu = np.ascontiguousarray(u, dtype=np.float64)
    if w.ndim != 2 or uu.shape != (w.shape[0],):
        raise InvalidInput("u", f"expected weights [B, V] and u [B], got {w.shape} and {uu.shape}")
    ids = np.empty(w.shape[0], np.int64)
    rounding = np.empty(w.shape[0], np.bool_)
    ok = np.empty(w.shape[0], np.bool_)
    _draw_rows(w, uu, ids, rounding, ok)
    if not ok.all():
        raise InvalidInput("weights", "non-finite weights or no positive weight",
                           index=int(np.flatnonzero(~ok)[0]))
    return ids, rounding


# ---------------------------------------------------------------- greedy


@nb.njit(cache=True)
def _argmax_first(row):
    """Reference ``argmax_first``: lowest index on ties; returns -1 if a NaN is seen."""
    best = 0
    bv = row[0]
    if bv != bv:
        return -1
    for i in range(1, row.shape[0]):
        x = row[i]
        if x != x:
            return -1
        if x > bv:
            best = i
            bv = x
    return best


@nb.njit(cache=True, parallel=True)
def _greedy_kernel(p, draft, num_draft, n_acc, tokens, bonus, status, fallbacks):
    bsz = p.shape[0]
    kmax = p.shape[1] - 1
    v = p.shape[2]
    for b in nb.prange(bsz):
        n = checked_length(num_draft, b, kmax, status)
        if n < 0:
            continue
        bad = False
        for i in range(n):
            if draft[b, i] < 0 or draft[b, i] >= v:
                bad = True
        if bad:
            status[b] = STATUS_DRAFT_OUT_OF_RANGE
            continue
        acc = n
        y = -1
        for i in range(n + 1):
            best = _argmax_first(p[b, i])
            if best < 0:
                break
            if i == n or draft[b, i] != best:
                acc = i
                y = best
                break
        if y < 0:
            status[b] = STATUS_NONFINITE
            continue
        n_acc[b] = acc
        bonus[b] = acc == n
        _emit(tokens, draft, b, acc, y)


def verify_greedy(p, draft, *, num_draft=None, raise_on_error: bool = True):
    """Greedy verification (temperature 0), batched; twin of
    ``reference.categorical.verify_greedy`` (ALGORITHMS.md §1.2 with T = 0).

    p [B, K+1, V] (probabilities or logits: only the argmax is read; ties go to the
    lowest id), draft [B, K]. No noise. NaN in a row that is read sets STATUS_NONFINITE.
    """
    p, draft, bsz, k = _batch.as_target_and_draft(p, draft, "K")
    num_draft = _batch.as_num_draft(num_draft, bsz, k)
    out = _batch.alloc_outputs(bsz, k)
    _greedy_kernel(p, draft, num_draft, *out)
    return _batch.finish(out, raise_on_error)


# ---------------------------------------------------------------- block


@nb.njit(cache=True)
def _block_row(b, n, p, q, draft, u, n_acc, tokens, bonus, status, fallbacks):
    st = 0
    # prefix survival p_i = min(p_{i-1} * p(x_i) / q(x_i), 1), p_0 = 1   [n+1]
    survival = np.empty(n + 1, np.float64)
    survival[0] = 1.0
    for i in range(1, n + 1):
        x = draft[b, i - 1]
        px = np.float64(p[b, i - 1, x])
        if not np.isfinite(px):
            st = STATUS_NONFINITE
        s = survival[i - 1] * px / np.float64(q[b, i - 1, x])
        if 1.0 < s:
            s = 1.0
        survival[i] = s
    if st != 0 or not np.isfinite(survival[n]):
        status[b] = STATUS_NONFINITE
        return
    # scan i = n..1, stop at the first (= largest) passing index
    tau = 0
    for i in range(n, 0, -1):
        if i < n:
            mass = residual_mass(p[b, i], q[b, i], survival[i])
            if not np.isfinite(mass):
                st = STATUS_NONFINITE
                break
            passed = u[b, i - 1] * (mass + 1.0 - survival[i]) < mass
        else:
            passed = u[b, i - 1] < survival[i]
        if passed:
            tau = i
            break
    if st != 0:
        status[b] = st
        return
    _finish_row(b, p, q, draft, u, n, tau, survival[tau], n_acc, tokens, bonus, status, fallbacks)


@nb.njit(cache=True)
def _pq_row(block, b, p, q, draft, num_draft, u, n_acc, tokens, bonus, status, fallbacks):
    """Row b of block verification (``block``) or of chain verification, once its length
    and drafts pass :func:`_row_length`."""
    n = _row_length(q, draft, num_draft, b, p.shape[2], status)
    if n < 0:
        return
    if block:
        _block_row(b, n, p, q, draft, u, n_acc, tokens, bonus, status, fallbacks)
    else:
        _chain_row(b, n, p, q, draft, u, n_acc, tokens, bonus, status, fallbacks)


@nb.njit(cache=True, parallel=True)
def _pq_parallel(block, p, q, draft, num_draft, u, n_acc, tokens, bonus, status, fallbacks):
    for b in nb.prange(p.shape[0]):
        _pq_row(block, b, p, q, draft, num_draft, u, n_acc, tokens, bonus, status, fallbacks)


@nb.njit(cache=True)
def _pq_serial(block, p, q, draft, num_draft, u, n_acc, tokens, bonus, status, fallbacks):
    for b in range(p.shape[0]):
        _pq_row(block, b, p, q, draft, num_draft, u, n_acc, tokens, bonus, status, fallbacks)


def verify_block(p, q, draft, u, *, num_draft=None, raise_on_error: bool = True,
                 parallel: bool | None = None):
    """Block verification, batched (Sun et al., arXiv 2403.10444; Algorithm 2 of
    ALGORITHMS.md §1.3 in the division-free form of §0.3); twin of
    ``reference.categorical.verify_block``.

    Row b: index i < n passes iff ``eta_i * (R_i + 1 - p_i) < R_i``, index n iff
    ``eta_n < p_n`` (eta_i = u[b, i-1]); tau = the largest passing index; then the bonus
    token from p[b, n] or the scaled residual normalise((p_tau p(.|X^tau) - q(.|X^tau))_+),
    both with u[b, n]. R_i is summed in NumPy's pairwise order (``_primitives``).
    """
    return _run_pq(True, p, q, draft, u, num_draft, raise_on_error, parallel)


def verify_block_rng(p, q, draft, rng, *, num_draft=None, raise_on_error: bool = True):
    """:func:`verify_block` with noise ``u = rng.random((B, K + 1))`` (layout as
    :func:`verify_chain_rng`)."""
    check_generator(rng)
    bsz, k1 = np.shape(p)[0], np.shape(p)[1]
    return verify_block(p, q, draft, rng.random((bsz, k1)), num_draft=num_draft,
                        raise_on_error=raise_on_error)
