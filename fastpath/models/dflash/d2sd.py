"""D²SD: dual diffusion drafters and a confidence-guided prefix tree (Zhang et al., arXiv
2606.04446; ALGORITHMS.md §6.2-6.4, §1.4.3).

One cycle (batch 1, anchor = last committed token at position ``start``):

1. DFlash pass on ``[a, MASK x (G-1)]`` -> argmax tokens t_1..t_{G-1} and confidences
   c_k = max_v q_k(v) (softmax of the raw draft logits, Eq. (3));
2. rejection-boundary posterior r(i) = (prod_{k<=i} c_k)(1 - c_{i+1}), i = 0..G-2 (Eq. (4)) and the
   branch set S = Top-K of r (Eq. (5); reference ``d2sd_branch_set``: ties keep the lower i, sorted
   ascending; K = min(K, G-1));
3. ONE batched VP-drafter pass over K rows ``[a, t_1..t_i, MASK x (G-1-i)]`` (i in S; the same
   context features, broadcast K/V) -> argmax fills positions i+1..G-1;
4. candidates = the K VP rows (by i ascending) then the DFlash row, merged into a trie
   (``trie_from_sequences``: duplicated prefixes once); ONE target pass over ``[a] + trie nodes``
   with a tree attention mask (every node attends to the cached prefix, the anchor, its ancestors
   and itself; RoPE position = start + depth), so the shared prefix is computed once;
5. sample-and-match tree verification (reference ``verify_tree_deterministic``): lossless at any
   temperature for any candidate set, and optimal for deterministic candidates (§6.4);
6. keep the cached K/V of the anchor and the accepted path only (index-select), append those
   positions' fused features to BOTH drafters' context caches; anchor <- last emitted token.

Without a VP drafter (``vp_drafter=None``) the DFlash drafter is re-used as the second drafter
(the paper's Table 6 ablation). Noise: prefill ``rng.random(1)`` (none at T = 0), per cycle
``rng.random(D + 1)`` with D the trie depth (sample-and-match layout; none at T = 0).

``fault="accept_all"`` (negative control only): commit the DFlash row and the bonus unverified;
``fault="causal_mask"``: the tree pass uses a plain causal mask over the flattened trie
(siblings see each other), so p of later branches is wrong.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from specoracle.reference.types import InvalidInput

from specoracle.fastpath.models.dflash.model import DFlashDrafter, DraftCache, draft_logits
from specoracle.fastpath.models.dflash.generate import (DraftRunResult, Prefilled, TargetSession, check_run, commit, draw,
                              prefill, select_hidden)
from specoracle.fastpath.models.llm.processing import warp

FAULTS = (None, "accept_all", "causal_mask")


def confidences(dl: torch.Tensor):
    """Draft logits [G-1, V] -> (argmax tokens list, confidences c_k list in [0, 1]) (Eq. (3))."""
    probs = torch.softmax(dl.double(), dim=-1)
    c, t = probs.max(dim=-1)
    return t.tolist(), [min(1.0, max(0.0, float(x))) for x in c]


def tree_attention(parents, start: int) -> torch.Tensor:
    """Additive mask [1, 1, N+1, start+N+1] for the query ``[anchor] + nodes``: all see the cached
    prefix; node j (query j+1) sees the anchor, its ancestors and itself."""
    n = len(parents)
    allow = torch.zeros(n + 1, start + n + 1, dtype=torch.bool)
    allow[:, : start + 1] = True
    for j in range(n):
        node = j
        while node >= 0:
            allow[j + 1, start + 1 + node] = True
            node = int(parents[node])
    return torch.where(allow, 0.0, float("-inf"))[None, None]


def node_depths(parents) -> list:
    depth = []
    for par in parents:
        depth.append(1 if par < 0 else depth[int(par)] + 1)
    return depth


def candidate_rows(target, drafter, vp, caches, anchor: int, start: int, g: int, k: int):
    """Steps 1-3: (list of K+1 candidate token rows of length G-1, confidences, branch set)."""
    from specoracle.reference.tree import d2sd_branch_set

    dcache, vcache = caches
    rows = torch.tensor([[anchor] + [0] * (g - 1)])
    dl = draft_logits(target, drafter, dcache, rows, torch.tensor([1]), start)[0, 1:]
    t_hat, c = confidences(dl)
    branch = d2sd_branch_set(c, min(k, g - 1))
    vrows = torch.tensor([[anchor] + t_hat[:i] + [0] * (g - 1 - i) for i in branch])
    visible = torch.tensor([1 + i for i in branch])
    vl = draft_logits(target, vp, vcache, vrows, visible, start)  # [K, G, V]
    fill = torch.argmax(vl, dim=-1).tolist()
    cands = [t_hat[:i] + fill[r][1 + i:] for r, i in enumerate(branch)]
    return cands + [t_hat], c, branch


def generate_d2sd(target, drafter: DFlashDrafter, vp_drafter: DFlashDrafter | None, prompt_ids,
                  max_new_tokens: int = 64, temperature: float = 0.0, seed: int = 0, *,
                  k_branches: int = 4, top_k=None, top_p=None, min_p=None,
                  block_size: int | None = None, eos_id=None, fault=None,
                  prefilled: Prefilled | None = None) -> DraftRunResult:
    """Speculative decoding of ``target`` with D²SD (module docstring). Returns tokens, the
    accepted depth per cycle (tau = mean + 1) and the trie size per cycle (``nodes``)."""
    from specoracle.reference.tree import verify_tree_deterministic

    if int(k_branches) < 1:
        raise InvalidInput("k_branches", f"must be >= 1, got {k_branches}")
    vp = vp_drafter if vp_drafter is not None else drafter
    w, g, prompt = check_run(target, [drafter, vp], prompt_ids, fault, FAULTS,
                             (temperature, top_k, top_p, min_p), block_size)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    sess = TargetSession(target)
    first = DraftCache(drafter)
    caches = (first, DraftCache(vp) if vp is not drafter else first)
    res = DraftRunResult([], block_size=g)
    if max_new_tokens <= 0:
        return res
    unique = [caches[0]] if caches[1] is caches[0] else list(caches)
    anchor = prefill(sess, unique, prompt, w, rng, prefilled)
    done = commit(res.tokens, [anchor], eos_id, max_new_tokens)
    from specoracle.reference.tree import trie_from_sequences
    while not done:
        start = sess.length
        cands, _, _ = candidate_rows(target, drafter, vp, caches, anchor, start, g, k_branches)
        res.draft_calls += 2
        tokens, parents, _ = trie_from_sequences(cands)
        depth = node_depths(parents)
        pos = [start] + [start + d for d in depth]
        if fault == "causal_mask":
            n = len(tokens)
            mask = torch.zeros(1, 1, n + 1, start + n + 1)
            mask[0, 0, :, start:] = torch.triu(torch.full((n + 1, n + 1), float("-inf")), 1)
        else:
            mask = tree_attention(parents, start)
        logits, hidden = sess.forward([anchor] + tokens.tolist(), pos, mask)
        p = warp(logits, w).numpy()  # [N+1, V]
        if fault == "accept_all":
            path = _row_path(cands[-1], tokens, parents)
            last_row = p[path[-1] + 1]
            y = int(np.argmax(last_row)) if w.greedy else draw(last_row, rng.random())
            emitted, n_acc = [int(tokens[j]) for j in path] + [y], len(path)
        else:
            u = np.full(max(depth) + 1, 0.5) if w.greedy else rng.random(max(depth) + 1)
            v = verify_tree_deterministic(p, tokens, parents, u)
            path, emitted, n_acc = list(v.path), list(v.tokens), v.n_accepted
        res.accepted.append(n_acc)
        res.nodes.append(len(tokens))
        done = commit(res.tokens, emitted, eos_id, max_new_tokens - len(res.tokens))
        sess.keep_indices(list(range(start + 1)) + [start + 1 + j for j in path])
        feats = select_hidden(hidden, [0] + [1 + j for j in path])
        for c in unique:
            c.extend(feats, start)
        anchor = emitted[-1]
    res.seconds = time.perf_counter() - t0
    res.target_calls = sess.calls
    return res


def _row_path(row, tokens, parents) -> list:
    """Trie nodes of a candidate row (its tokens from the root)."""
    path, node = [], -1
    for t in row:
        node = next(j for j in range(len(tokens)) if parents[j] == node and tokens[j] == t)
        path.append(node)
    return path
