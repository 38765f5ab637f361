"""Batched numba twins of ``specoracle.reference.tree``: SpecInfer MSS over a token
tree and sample-and-match verification of deterministic trees (ALGORITHMS.md §1.4.1,
§1.4.3).

Batched shapes (B trees, N = max nodes, V vocabulary), row b being the reference
on the slice ``[:n+1]`` of the rows and ``[:n]`` of the nodes, n = num_nodes[b]:
    p         [B, N+1, V]  target rows: p[b, 0] after the root, p[b, m+1] after node m
    q         [B, N+1, V]  draft rows (MSS only), same indexing
    tokens    [B, N]       node token ids (entries >= num_nodes[b] are padding)
    parents   [B, N]       parent node index, -1 for the root's children, < own index
    num_nodes [B]          keyword, default N for every row
    u         MSS: [B, N+1]: u[b, m] node m's accept test, u[b, n] the final draw.
              deterministic: [B, W] with W >= depth_b + 1; row b uses u[b, :depth_b+1]
              (u[b, d] draws the d-th emitted token), depth_b = its deepest node.
Result: :class:`~specoracle.fastpath.types.BatchVerdict` with ``paths`` [B, N]
(accepted node indices, PAD_ID-padded).

Arithmetic follows the reference exactly (float64): the running MSS residual is
``P <- max(P - q, 0) / sum`` with NumPy's pairwise sum (``_primitives.residual_mass``),
draws are the oracle's inverse CDF. Statuses: STATUS_BAD_TREE (a parent out of
range), STATUS_DRAFT_OUT_OF_RANGE (a token id outside [0, V)),
STATUS_DRAFT_ZERO_Q (MSS: a node's token has q = 0 in its parent's draft row),
STATUS_NONFINITE, STATUS_BAD_LENGTH (num_nodes outside 0..N, or u too short).
"""
from __future__ import annotations

import numba as nb
import numpy as np

from specoracle.reference.types import InvalidInput
from specoracle.reference.validation import check_generator

from ..types import (PAD_ID, STATUS_BAD_LENGTH, STATUS_BAD_TREE, STATUS_DRAFT_OUT_OF_RANGE,
                     STATUS_DRAFT_ZERO_Q, STATUS_NONFINITE)
from . import _batch
from ._batch import checked_length, length_if_ok
from ._primitives import draw_target, residual_mass, sample_weights

#: prange over trees only pays off for big batches; serial kernels compile ~3x faster
PARALLEL = False

__all__ = ["verify_mss_tree", "verify_mss_tree_rng", "verify_tree_deterministic",
           "verify_tree_deterministic_rng"]


@nb.njit(cache=True)
def _check_tree(tokens, parents, b, n, v):
    for i in range(n):
        par = parents[b, i]
        if par < -1 or par >= i:
            return STATUS_BAD_TREE
    for i in range(n):
        if tokens[b, i] < 0 or tokens[b, i] >= v:
            return STATUS_DRAFT_OUT_OF_RANGE
    return 0


@nb.njit(cache=True)
def _depth(parents, b, n):
    """Deepest node of row b's tree (0 for the empty tree)."""
    d = np.zeros(n, np.int64)
    best = 0
    for i in range(n):
        par = parents[b, i]
        d[i] = 1 if par < 0 else d[par] + 1
        if d[i] > best:
            best = d[i]
    return best


@nb.njit(cache=True)
def _checked_tree(tokens, parents, num_nodes, b, v, status):
    """Row b's node count n, or -1 after writing its status (n outside 0..N, or a parent /
    token out of range: :func:`_check_tree`)."""
    n = checked_length(num_nodes, b, tokens.shape[1], status)
    if n < 0:
        return -1
    return length_if_ok(n, _check_tree(tokens, parents, b, n, v), b, status)


# ---------------------------------------------------------------- MSS


@nb.njit(cache=True, parallel=PARALLEL)
def _mss_kernel(p, q, tokens, parents, num_nodes, u, n_acc, out_tokens, bonus, status, fallbacks,
                paths):
    bsz = p.shape[0]
    v = p.shape[2]
    for b in nb.prange(bsz):
        n = _checked_tree(tokens, parents, num_nodes, b, v, status)
        if n < 0:
            continue
        st = 0
        for i in range(n):
            qx = np.float64(q[b, parents[b, i] + 1, tokens[b, i]])
            if not np.isfinite(qx):
                st = STATUS_NONFINITE
                break
            if not qx > 0.0:
                st = STATUS_DRAFT_ZERO_Q
                break
        if st != 0:
            status[b] = st
            continue
        big_p = np.empty(v, np.float64)  # the running residual target P   [V]
        bits = 0
        row = 0
        depth = 0
        y = -1
        is_bonus = False
        ok = True
        while True:
            has_kids = False
            for j in range(v):
                big_p[j] = np.float64(p[b, row, j])
            accepted = -1
            for c in range(n):
                if parents[b, c] + 1 != row:
                    continue
                has_kids = True
                tok = tokens[b, c]
                pc = big_p[tok]
                if not np.isfinite(pc):
                    ok = False
                    break
                if u[b, c] * np.float64(q[b, row, tok]) < pc:
                    accepted = c
                    break
                mass = residual_mass(big_p, q[b, row], 1.0)
                if not np.isfinite(mass):
                    ok = False
                    break
                if mass > 0.0:
                    for j in range(v):
                        w = big_p[j] - np.float64(q[b, row, j])
                        big_p[j] = (w if w >= 0.0 else 0.0) / mass
                else:
                    bits |= 1
            if not ok:
                break
            if not has_kids:
                y, fb, ok = draw_target(p[b, row], u[b, n])
                bits |= fb
                is_bonus = True
                break
            if accepted < 0:
                y, total, rounding = sample_weights(big_p, big_p, 1.0, False, u[b, n])
                ok = np.isfinite(total)
                if rounding:
                    bits |= 2
                break
            paths[b, depth] = accepted
            out_tokens[b, depth] = tokens[b, accepted]
            depth += 1
            row = accepted + 1
        if not ok:
            status[b] = STATUS_NONFINITE
            for i in range(depth):
                paths[b, i] = PAD_ID
                out_tokens[b, i] = PAD_ID
            continue
        n_acc[b] = depth
        out_tokens[b, depth] = y
        bonus[b] = is_bonus
        fallbacks[b] = bits


def _tree_inputs(p, tokens, parents, num_nodes):
    p, tokens, bsz, n = _batch.as_target_and_draft(p, tokens, "N")
    parents = np.asarray(parents)
    if parents.size == 0 and bsz * n == 0:
        parents = np.zeros((bsz, n), np.int64)
    if parents.shape != (bsz, n) or parents.dtype.kind not in "iu":
        raise InvalidInput("parents", f"expected integer parents of shape {(bsz, n)}, got "
                           f"{parents.dtype} {parents.shape}")
    parents = np.ascontiguousarray(parents, dtype=np.int64)
    num_nodes = _batch.as_num_draft(num_nodes, bsz, n)
    return p, tokens, parents, num_nodes, bsz, n


def _outputs(bsz, n):
    out = _batch.alloc_outputs(bsz, n)
    paths = np.full((bsz, max(n, 1)), PAD_ID, np.int64)
    return out, paths


def verify_mss_tree(p, q, tokens, parents, u, *, num_nodes=None, raise_on_error: bool = True):
    """SpecInfer multi-step speculative sampling over a stochastic token tree, batched
    (Miao et al., arXiv 2305.09781; ALGORITHMS.md §1.4.1); twin of
    ``reference.tree.verify_mss_tree``.

    Walk from the root: at each node scan its children in index order, accepting child
    c iff ``u[b, c] * q(c) < P(c)`` where P starts as the node's target row and becomes
    normalise((P - q)_+) after each rejection; move into an accepted child. The round
    ends with a draw from the final P (no child accepted) or the bonus row after a
    leaf, with u[b, n]. Shapes and noise layout: module docstring.
    """
    p, tokens, parents, num_nodes, bsz, n = _tree_inputs(p, tokens, parents, num_nodes)
    q = _batch.as_prob_batch(q, "q")
    if q.shape != p.shape:
        raise InvalidInput("q", f"expected shape {p.shape} (one draft row per tree row), got {q.shape}")
    p, q = _batch.common_float(p, q)
    u = _batch.as_uniform_batch(u, bsz, n)
    out, paths = _outputs(bsz, n)
    _mss_kernel(p, q, tokens, parents, num_nodes, u, *out, paths)
    return _batch.finish(out, raise_on_error, paths=paths[:, :n])


def verify_mss_tree_rng(p, q, tokens, parents, rng, *, num_nodes=None, raise_on_error: bool = True):
    """:func:`verify_mss_tree` with ``u = rng.random((B, N + 1))`` (C order; with every
    num_nodes[b] = N, the reference's ``verify_mss_tree_rng`` on rows 0..B-1 in order)."""
    check_generator(rng)
    bsz, n1 = np.shape(p)[0], np.shape(p)[1]
    return verify_mss_tree(p, q, tokens, parents, rng.random((bsz, n1)), num_nodes=num_nodes,
                           raise_on_error=raise_on_error)


# ---------------------------------------------------------------- deterministic (sample-and-match)


@nb.njit(cache=True, parallel=PARALLEL)
def _det_kernel(p, tokens, parents, num_nodes, u, n_acc, out_tokens, bonus, status, fallbacks,
                paths):
    bsz = p.shape[0]
    for b in nb.prange(bsz):
        n = _checked_tree(tokens, parents, num_nodes, b, p.shape[2], status)
        if n < 0:
            continue
        if _depth(parents, b, n) + 1 > u.shape[1]:
            status[b] = STATUS_BAD_LENGTH
            continue
        valid = np.zeros(n + 1, np.bool_)  # valid[m + 1]: node m is valid (m = -1: root)
        valid[0] = True
        first = -1                          # lowest valid node index
        emitted = 0
        bits = 0
        ok = True
        is_bonus = False
        while True:
            y, fb, ok = draw_target(p[b, first + 1], u[b, emitted])
            if not ok:
                break
            bits |= fb
            out_tokens[b, emitted] = y
            emitted += 1
            has_kids = False
            nxt_first = -2
            for c in range(n):
                if valid[parents[b, c] + 1]:
                    has_kids = True
                    if tokens[b, c] == y and nxt_first == -2:
                        nxt_first = c
            if not has_kids:
                is_bonus = True
                break
            if nxt_first == -2:
                break
            # valid <- children of valid nodes whose token is y
            new_valid = np.zeros(n + 1, np.bool_)
            for c in range(n):
                if valid[parents[b, c] + 1] and tokens[b, c] == y:
                    new_valid[c + 1] = True
            valid = new_valid
            first = nxt_first
        if not ok:
            status[b] = STATUS_NONFINITE
            for i in range(emitted):
                out_tokens[b, i] = PAD_ID
            continue
        n_acc[b] = emitted - 1
        bonus[b] = is_bonus
        fallbacks[b] = bits
        # path: ancestors of the lowest valid node (root excluded)
        d = 0
        m = first
        while m >= 0:
            d += 1
            m = parents[b, m]
        m = first
        for i in range(d - 1, -1, -1):
            paths[b, i] = m
            m = parents[b, m]


def verify_tree_deterministic(p, tokens, parents, u, *, num_nodes=None, raise_on_error: bool = True):
    """Sample-and-match verification of deterministic candidates, batched (ALGORITHMS.md
    §1.4.3, §6.4; DFlash / D2SD); twin of ``reference.tree.verify_tree_deterministic``.

    valid = {root}; loop: draw y from the target row of the lowest valid node with
    u[b, d] (d = tokens emitted so far); valid <- children of valid nodes with token y;
    stop when valid is empty (y is the correction) or has no children (y is the bonus).
    Shapes and noise layout: module docstring.
    """
    p, tokens, parents, num_nodes, bsz, n = _tree_inputs(p, tokens, parents, num_nodes)
    u = np.asarray(u, dtype=np.float64)
    if u.ndim != 2 or u.shape[0] != bsz or u.shape[1] < 1:
        raise InvalidInput("u", f"expected shape (B={bsz}, depth + 1), got {u.shape}")
    u = _batch.as_uniform_batch(u, bsz, u.shape[1] - 1)
    out, paths = _outputs(bsz, n)
    _det_kernel(p, tokens, parents, num_nodes, u, *out, paths)
    return _batch.finish(out, raise_on_error, paths=paths[:, :n])


def verify_tree_deterministic_rng(p, tokens, parents, rng, *, num_nodes=None,
                                  raise_on_error: bool = True):
    """:func:`verify_tree_deterministic` with ``u = rng.random((B, D + 1))``, D the largest
    tree depth in the batch (C order; for a single tree, the reference's
    ``verify_tree_deterministic_rng``)."""
    check_generator(rng)
    par = np.asarray(parents, dtype=np.int64)
    depth = 0
    for row in par.reshape(np.shape(p)[0], -1):
        d: list = []
        for i, x in enumerate(row):
            d.append(1 if x < 0 or x >= i else d[int(x)] + 1)
        depth = max(depth, max(d, default=0))
    return verify_tree_deterministic(p, tokens, parents, rng.random((np.shape(p)[0], depth + 1)),
                                     num_nodes=num_nodes, raise_on_error=raise_on_error)
