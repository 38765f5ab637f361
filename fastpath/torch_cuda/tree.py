"""Batched tree verification in torch: twins of reference/tree.py's ``verify_mss_tree``
(SpecInfer multi-step speculative sampling, Miao et al. arXiv 2305.09781; ALGORITHMS.md
§1.4.1) and ``verify_tree_deterministic`` (sample-and-match for deterministic
candidates, DFlash arXiv 2602.06036 / D2SD arXiv 2606.04446; §1.4.3, §6.4).

Batched shapes (B trees, N = max nodes, V vocabulary); row b equals the reference on
rows ``[:n+1]`` and nodes ``[:n]``, n = num_nodes[b]:
    p         [B, N+1, V]  target rows: p[b, 0] after the root, p[b, m+1] after node m
    q         [B, N+1, V]  draft rows (MSS): q[b, m+1] the row node m's children were drawn from
    tokens    [B, N]       node token ids (entries >= n are padding)
    parents   [B, N]       parent index, -1 for the root's children, < own index
    u         MSS [B, N+1]: u[b, m] node m's accept test, u[b, n] the one final draw;
              deterministic [B, W], W >= depth_b + 1: u[b, d] draws the d-th emitted token.
Result: BatchVerdict (numpy in -> numpy out, torch in -> TorchBatchVerdict) with
``paths`` [B, N] (accepted node indices, PAD_ID-padded).

The walk is data dependent, so it is vectorised over the batch and stepped in Python:
MSS takes at most 2N + 1 steps (every child is scanned once, every accept moves down),
sample-and-match at most depth + 1 steps; each step is a handful of batched ops on
[B, N] and one row [B, V] per sequence. Running MSS residuals P <- (P - q)_+ / sum use
torch's sum (the reference: NumPy's pairwise sum; differences are ulps).

Statuses: STATUS_BAD_LENGTH (num_nodes outside 0..N, or u too short), STATUS_BAD_TREE,
STATUS_DRAFT_OUT_OF_RANGE (a token outside [0, V)), STATUS_DRAFT_ZERO_Q (MSS: a node's
token has q = 0 in its parent's draft row), STATUS_NONFINITE (NaN / inf anywhere in
the row slice: the tree verifiers check every row of the slice, as the oracle does).
"""
from __future__ import annotations

import numpy as np
import torch

from specoracle.reference.types import InvalidInput

from ..types import (FALLBACK_RESIDUAL_ZERO_MASS, PAD_ID, STATUS_BAD_LENGTH, STATUS_BAD_TREE,
                     STATUS_DRAFT_OUT_OF_RANGE, STATUS_DRAFT_ZERO_Q, STATUS_NONFINITE, STATUS_OK,
                     BatchVerdict)
from ._common import (TorchBatchVerdict, _np, as_tensor, compute_dtype, rounding_bits, row_counts,
                      sample_rows, set_status)

__all__ = ["verify_mss_tree", "verify_mss_tree_rng", "verify_tree_deterministic",
           "verify_tree_deterministic_rng"]


def _prepare(p, q, tokens, parents, u, num_nodes, need_q):
    numpy_in = not isinstance(p, torch.Tensor)
    p = as_tensor(p, "p")
    if p.ndim != 3 or p.shape[1] < 1 or p.shape[2] < 1:
        raise InvalidInput("p", f"expected [B, N+1, V] with N+1 >= 1, V >= 1, got shape {tuple(p.shape)}")
    b, n1, v = p.shape
    n = n1 - 1
    dev = p.device
    if need_q:
        q = as_tensor(q, "q", dev)
        if tuple(q.shape) != (b, n1, v):
            raise InvalidInput("q", f"expected shape {(b, n1, v)}, got {tuple(q.shape)}")
    tokens = as_tensor(tokens, "tokens", dev)
    parents = as_tensor(parents, "parents", dev)
    for name, t in (("tokens", tokens), ("parents", parents)):
        if t.numel() == b * n:
            t = t.reshape(b, n)
        if tuple(t.shape) != (b, n) or t.dtype.is_floating_point or t.dtype == torch.bool:
            raise InvalidInput(name, f"expected integer ids of shape {(b, n)}, got {t.dtype} {tuple(t.shape)}")
    tokens = tokens.reshape(b, n).to(torch.int64)
    parents = parents.reshape(b, n).to(torch.int64)
    u = as_tensor(u, "u", dev).to(torch.float64)
    if u.ndim != 2 or u.shape[0] != b or u.shape[1] < 1:
        raise InvalidInput("u", f"expected [B={b}, width >= 1] uniforms, got {tuple(u.shape)}")
    if bool((~((u >= 0) & (u < 1))).any()):
        raise InvalidInput("u", "uniforms must lie in [0, 1)", index=tuple(int(i) for i in torch.nonzero(~((u >= 0) & (u < 1)))[0]))
    nn = row_counts(num_nodes, "num_nodes", b, n, dev, "node counts")
    return p, q, tokens, parents, u, nn, numpy_in


def _tree_status(p, q, tokens, parents, nn):
    """Status [B], node mask [B, N] (m < n_b), safe tokens/parents, depth [B, N] and max depth [B]."""
    b, n1, v = p.shape
    n = n1 - 1
    dev = p.device
    status = torch.zeros(b, dtype=torch.int32, device=dev)
    bad_len = (nn < 0) | (nn > n)
    nc = nn.clamp(0, n)
    ar = torch.arange(n, device=dev)
    live = ar[None, :] < nc[:, None]
    bad_tree = (live & ((parents < -1) | (parents >= ar[None, :]))).any(dim=1)
    oor = (live & ((tokens < 0) | (tokens >= v))).any(dim=1)
    status = torch.where(bad_len, STATUS_BAD_LENGTH, status)
    status = set_status(status, bad_tree, STATUS_BAD_TREE)
    status = set_status(status, oor, STATUS_DRAFT_OUT_OF_RANGE)
    ok_par = live & (parents >= -1) & (parents < ar[None, :])
    par = torch.where(ok_par, parents, -1)
    tok = torch.where(live & (tokens >= 0) & (tokens < v), tokens, 0)
    rows = torch.arange(n1, device=dev)[None, :] <= nc[:, None]
    nonfin = (~torch.isfinite(p).all(dim=-1) & rows).any(dim=1)
    if q is not None:
        nonfin |= (~torch.isfinite(q).all(dim=-1) & rows).any(dim=1)
    status = set_status(status, nonfin, STATUS_NONFINITE)
    depth = torch.zeros(b, n, dtype=torch.int64, device=dev)
    bi = torch.arange(b, device=dev)
    for m in range(n):
        pm = par[:, m]
        depth[:, m] = torch.where(pm < 0, 1, depth[bi, pm.clamp(min=0)] + 1)
    depth = torch.where(live, depth, 0)
    return status, live, tok, par, depth, depth.amax(dim=1) if n else torch.zeros(b, dtype=torch.int64, device=dev)


def _paths_of(first, par, n):
    """Ancestors of node ``first`` [B] (root excluded), root-first, PAD_ID-padded: [B, N]."""
    b = first.shape[0]
    dev = first.device
    bi = torch.arange(b, device=dev)
    chain = []
    m = first.clone()
    for _ in range(n):
        chain.append(m)
        m = torch.where(m >= 0, par[bi, m.clamp(min=0)], -1)
    if not chain:
        return torch.zeros(b, 0, dtype=torch.int64, device=dev)
    rev = torch.stack(chain, dim=1)                                  # [B, N] deepest first
    d = (rev >= 0).sum(dim=1)
    idx = (d[:, None] - 1 - torch.arange(n, device=dev)[None, :])
    out = rev.gather(1, idx.clamp(min=0))
    return torch.where(idx >= 0, out, PAD_ID)


def _result(n_acc, out_tok, bonus, status, fb, paths, numpy_in, raise_on_error):
    ok = status == STATUS_OK
    n_acc = torch.where(ok, n_acc, 0)
    out_tok = torch.where(ok[:, None], out_tok, PAD_ID)
    paths = torch.where(ok[:, None], paths, PAD_ID)
    fields = (n_acc, out_tok, bonus & ok, status.to(torch.int32), torch.where(ok, fb, 0).to(torch.int32), paths)
    res = BatchVerdict(*(_np(f) for f in fields)) if numpy_in else TorchBatchVerdict(*fields)
    if raise_on_error:
        res.raise_on_error("tokens")
    return res


# ---------------------------------------------------------------- MSS


def verify_mss_tree(p, q, tokens, parents, u, *, num_nodes=None, raise_on_error: bool = True,
                    impl: str = "auto"):
    """SpecInfer MSS over B stochastic token trees (reference ``verify_mss_tree``): walk
    from the root; at the current node scan its children in index order, accepting child c
    iff ``u[b, c] * q[row, tok_c] < P[tok_c]`` (P starts at the node's target row and becomes
    normalise((P - q[row])_+) after each rejection, kept with FALLBACK_RESIDUAL_ZERO_MASS if
    that mass is 0); move into an accepted child; end with a draw from P (no child accepted)
    or the bonus from the row after a leaf, with u[b, n].

    ``impl``: "torch" (the batched walk below), "triton" (triton_tree.mss_walk, one program
    per tree), "auto" (Triton for CUDA tensors)."""
    p, q, tokens, parents, u, nn, numpy_in = _prepare(p, q, tokens, parents, u, num_nodes, True)
    b, n1, v = p.shape
    n = n1 - 1
    dev = p.device
    cd = compute_dtype(p)
    if u.shape[1] < n1:
        raise InvalidInput("u", f"expected [B, N+1 = {n1}] uniforms, got {tuple(u.shape)}")
    status, live, tok, par, _, _ = _tree_status(p, q, tokens, parents, nn)
    bi = torch.arange(b, device=dev)
    nc = nn.clamp(0, n)
    if n:  # a node's token must have q > 0 in its parent's draft row
        qtok = q[bi[:, None], par + 1, tok].to(cd)                     # [B, N]
        status = set_status(status, (live & ~(qtok > 0)).any(dim=1), STATUS_DRAFT_ZERO_Q)
    from .categorical import _use_triton
    if _use_triton(impl, p):
        from . import triton_tree
        depth, out_tok, first, bonus, fb = triton_tree.mss_walk(p, q, tok, par, u, nc, status)
        return _result(depth, out_tok, bonus, status, fb, _paths_of(first, par, n), numpy_in, raise_on_error)
    ar = torch.arange(n, device=dev)
    row = torch.zeros(b, dtype=torch.int64, device=dev)             # current node's row
    last = torch.full((b,), -1, dtype=torch.int64, device=dev)      # last scanned child
    P = p[:, 0].to(cd)
    active = status == STATUS_OK
    depth_now = torch.zeros(b, dtype=torch.int64, device=dev)
    out_tok = torch.full((b, n1), PAD_ID, dtype=torch.int64, device=dev)
    path_first = torch.full((b,), -1, dtype=torch.int64, device=dev)
    final_w = torch.zeros(b, v, dtype=cd, device=dev)
    bonus = torch.zeros(b, dtype=torch.bool, device=dev)
    fb = torch.zeros(b, dtype=torch.int32, device=dev)
    for _ in range(2 * n + 2):
        if not bool(active.any()):
            break
        kids = live & (par + 1 == row[:, None])                     # [B, N]
        leaf = ~kids.any(dim=1)
        nxt = torch.where(kids & (ar[None, :] > last[:, None]), ar[None, :], n).amin(dim=1) if n else \
            torch.zeros(b, dtype=torch.int64, device=dev)
        exhausted = ~leaf & (nxt >= n)
        # rows that stop now: leaf -> bonus from p[row]; exhausted -> residual P
        stop_leaf = active & leaf
        stop_res = active & exhausted
        final_w = torch.where(stop_leaf[:, None], p[bi, row].to(cd), final_w)
        final_w = torch.where(stop_res[:, None], P, final_w)
        bonus = bonus | stop_leaf
        active = active & ~leaf & ~exhausted
        if not bool(active.any()):
            break
        c = nxt.clamp(max=max(n - 1, 0))
        tc_ = tok[bi, c]
        qrow = q[bi, row].to(cd)                                      # [B, V]
        acc = u[bi, c] * qrow[bi, tc_] < P[bi, tc_]
        move = active & acc
        rej = active & ~acc
        out_tok[bi, depth_now.clamp(max=n)] = torch.where(move, tc_, out_tok[bi, depth_now.clamp(max=n)])
        path_first = torch.where(move, c, path_first)
        depth_now = depth_now + move.to(torch.int64)
        row = torch.where(move, c + 1, row)
        last = torch.where(move, -1, torch.where(rej, c, last))
        w = torch.clamp(P - qrow, min=0)
        pos = (w > 0).any(dim=1)
        newP = w / torch.where(pos, w.sum(dim=1), 1.0)[:, None]
        fb = fb | torch.where(rej & ~pos, FALLBACK_RESIDUAL_ZERO_MASS, 0).to(torch.int32)
        P = torch.where((rej & pos)[:, None], newP, P)
        P = torch.where(move[:, None], p[bi, row].to(cd), P)
    u_last = u[bi, nc]
    y, rounding = sample_rows(final_w, u_last)
    fb = fb | rounding_bits(rounding)
    out_tok[bi, depth_now.clamp(max=n)] = y
    paths = _paths_of(path_first, par, n)
    return _result(depth_now, out_tok, bonus, status, fb, paths, numpy_in, raise_on_error)


def verify_mss_tree_rng(p, q, tokens, parents, rng, *, num_nodes=None, raise_on_error: bool = True):
    """:func:`verify_mss_tree` with ``u = rng.random((B, N + 1))`` (as the numba twin)."""
    if not isinstance(rng, np.random.Generator):
        raise InvalidInput("rng", f"expected a numpy.random.Generator, got {type(rng).__name__}")
    u = rng.random((int(np.shape(p)[0]), int(np.shape(p)[1])))
    return verify_mss_tree(p, q, tokens, parents, u, num_nodes=num_nodes, raise_on_error=raise_on_error)


# ---------------------------------------------------------------- deterministic (sample-and-match)


def verify_tree_deterministic(p, tokens, parents, u, *, num_nodes=None, raise_on_error: bool = True,
                              impl: str = "auto"):
    """Sample-and-match over B deterministic trees (reference ``verify_tree_deterministic``):
    valid = {root}; draw y from the row of the lowest valid node with u[b, d] (d = tokens
    emitted so far); valid <- children of valid nodes whose token is y; stop when that set
    is empty (y is the correction) or the valid nodes have no children (y is the bonus).

    ``impl``: "torch" (the batched walk below), "triton" (the fused kernel of
    triton_tree.py, one program per tree), "auto" (Triton for CUDA tensors)."""
    p, _, tokens, parents, u, nn, numpy_in = _prepare(p, None, tokens, parents, u, num_nodes, False)
    b, n1, v = p.shape
    n = n1 - 1
    dev = p.device
    cd = compute_dtype(p)
    status, live, tok, par, _, maxdepth = _tree_status(p, None, tokens, parents, nn)
    status = set_status(status, maxdepth + 1 > u.shape[1], STATUS_BAD_LENGTH)
    from .categorical import _use_triton
    if _use_triton(impl, p):
        from . import triton_tree
        emitted, out_tok, first, bonus, fb = triton_tree.walk(p, tok, par, u, nn.clamp(0, n), status)
        return _result(emitted - 1, out_tok, bonus, status, fb, _paths_of(first, par, n), numpy_in,
                       raise_on_error)
    bi = torch.arange(b, device=dev)
    ar = torch.arange(n, device=dev)
    valid = torch.zeros(b, n + 1, dtype=torch.bool, device=dev)     # valid[:, m + 1]: node m
    valid[:, 0] = True
    first = torch.full((b,), -1, dtype=torch.int64, device=dev)
    emitted = torch.zeros(b, dtype=torch.int64, device=dev)
    out_tok = torch.full((b, n1), PAD_ID, dtype=torch.int64, device=dev)
    bonus = torch.zeros(b, dtype=torch.bool, device=dev)
    fb = torch.zeros(b, dtype=torch.int32, device=dev)
    active = status == STATUS_OK
    for _ in range(n + 1):
        if not bool(active.any()):
            break
        ucol = u[bi, emitted.clamp(max=u.shape[1] - 1)]
        y, rounding = sample_rows(p[bi, first + 1].to(cd), ucol)
        fb = fb | torch.where(active, rounding_bits(rounding), 0)
        out_tok[bi, emitted.clamp(max=n)] = torch.where(active, y, out_tok[bi, emitted.clamp(max=n)])
        emitted = emitted + active.to(torch.int64)
        if n == 0:
            bonus = bonus | active
            break
        kids = live & valid.gather(1, par + 1)                        # children of valid nodes
        has_kids = kids.any(dim=1)
        match = kids & (tok == y[:, None])
        any_match = match.any(dim=1)
        bonus = bonus | (active & ~has_kids)
        go = active & has_kids & any_match
        new_first = torch.where(match, ar[None, :], n).amin(dim=1)
        first = torch.where(go, new_first, first)
        valid = torch.where(go[:, None], torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=dev), match], 1),
                            valid)
        active = go
    paths = _paths_of(first, par, n)
    return _result(emitted - 1, out_tok, bonus, status, fb, paths, numpy_in, raise_on_error)


def verify_tree_deterministic_rng(p, tokens, parents, rng, *, num_nodes=None, raise_on_error: bool = True):
    """:func:`verify_tree_deterministic` with ``u = rng.random((B, D + 1))``, D the largest
    tree depth in the batch (as the numba twin)."""
    if not isinstance(rng, np.random.Generator):
        raise InvalidInput("rng", f"expected a numpy.random.Generator, got {type(rng).__name__}")
    par = np.asarray(parents, dtype=np.int64).reshape(int(np.shape(p)[0]), -1)
    depth = 0
    for r in par:
        d: list = []
        for i, x in enumerate(r):
            d.append(1 if x < 0 or x >= i else d[int(x)] + 1)
        depth = max(depth, max(d, default=0))
    u = rng.random((int(np.shape(p)[0]), depth + 1))
    return verify_tree_deterministic(p, tokens, parents, u, num_nodes=num_nodes, raise_on_error=raise_on_error)
