"""D2SD on a tiny random Llama target (no zoo): confidences and branch set, the tree attention
pass equals separate causal passes, greedy equals target-only greedy, and the law of the first
3 tokens at T = 1, top-k 3 equals the target's exact law (faulty variants rejected)."""
from __future__ import annotations

import pytest
import torch

from specoracle.fastpath.models.dflash.d2sd import (candidate_rows, confidences, generate_d2sd, node_depths,
                                             tree_attention)
from specoracle.fastpath.models.dflash.model import DraftCache
from specoracle.fastpath.models.dflash.generate import TargetSession
from specoracle.fastpath.models.llm.engine import autoregressive_generate
from specoracle.fastpath.models.llm.processing import Warp
from specoracle.reference.tree import d2sd_boundary_posterior, d2sd_branch_set, trie_from_sequences
from specoracle.reference.types import InvalidInput

from _dflash_cert import assert_verdict, certify
from _dflash_zoo import tiny_drafter, tiny_target

PROMPT = [1, 2, 3]
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def test_confidences_and_branch_set():
    logits = torch.log(torch.tensor([[0.95, 0.05], [0.84, 0.16], [0.62, 0.38], [0.70, 0.30],
                                     [0.42, 0.58]]))
    t, c = confidences(logits)
    assert t == [0, 0, 0, 0, 1]
    assert c == pytest.approx([0.95, 0.84, 0.62, 0.70, 0.58])
    r = d2sd_boundary_posterior([0.95, 0.84, 0.62, 0.70, 0.42])  # T5
    assert r == pytest.approx([0.05, 0.152, 0.30324, 0.14843, 0.20087], abs=1e-5)
    assert d2sd_branch_set([0.95, 0.84, 0.62, 0.70, 0.42], 4) == [1, 2, 3, 4]


@torch.no_grad()
def test_tree_pass_equals_separate_causal_passes():
    """One target pass over [anchor] + trie (tree mask, depth positions) gives, for every node,
    the logits of a plain causal pass over its own path."""
    t = tiny_target()
    rows = [[4, 5, 6], [4, 7, 2], [9, 1, 1]]
    tokens, parents, node_of = trie_from_sequences(rows)
    assert len(tokens) == 8  # the shared 4 is stored once
    sess = TargetSession(t)
    sess.forward(PROMPT)
    start = len(PROMPT)
    anchor = 8
    pos = [start] + [start + dd for dd in node_depths(parents)]
    logits, _ = sess.forward([anchor] + tokens.tolist(), pos, tree_attention(parents, start))
    for r, row in enumerate(rows):
        full = t(input_ids=torch.tensor([PROMPT + [anchor] + row])).logits[0, start:].float()
        assert (logits[0] - full[0]).abs().max() < 1e-4
        for i, node in enumerate(node_of[r]):
            assert (logits[1 + node] - full[1 + i]).abs().max() < 1e-4


@torch.no_grad()
def test_candidate_rows_keep_the_dflash_prefix():
    t, d = tiny_target(), tiny_drafter(block=5)
    sess = TargetSession(t)
    _, hidden = sess.forward(PROMPT)
    cache = DraftCache(d)
    cache.extend(hidden, 0)
    cands, c, branch = candidate_rows(t, d, d, (cache, cache), 6, len(PROMPT), 5, 3)
    assert len(cands) == 4 and all(len(x) == 4 for x in cands) and len(branch) == 3
    assert branch == sorted(branch) == d2sd_branch_set(c, 3)
    for row, i in zip(cands, branch):
        assert row[:i] == cands[-1][:i]  # VP row i keeps the first i DFlash tokens


def test_temperature_zero_equals_target_greedy():
    t, d = tiny_target(), tiny_drafter()
    for prompt in ([1, 2, 3], [7, 7, 2, 9, 4]):
        ar = autoregressive_generate(t, [prompt], warping=Warp(0.0), max_new_tokens=15)
        r = generate_d2sd(t, d, None, prompt, 15, 0.0, 0, k_branches=3)
        assert r.tokens == ar.tokens[0]
        assert all(n >= 3 for n in r.nodes)  # at least the DFlash row (G - 1 = 3 nodes)


@pytest.mark.statistical
@pytest.mark.parametrize("fault", [None, "accept_all"])
def test_first_tokens_law_equals_target(fault, specoracle_alpha):
    """Law of the first 3 tokens, T = 1, top-k 3, block 3, K = 2 branches (a 2-level tree).
    Chi-square GOF, alpha = the suite budget's share (1e-3, tests/alpha_budget.toml); 600 samples
    detect TV >= 0.15 at power 0.9 (asserted).
    The faulty variant (commit the DFlash row unverified) must be rejected. (The ``causal_mask``
    fault, siblings attending to each other, is NOT a control here: its effect on this tiny
    target's first 3 tokens is below the detectable TV, measured p = 0.033; the exact tree-pass
    test above catches a wrong mask to 1e-4 instead.)"""
    t, d = tiny_target(), tiny_drafter()

    def one(seed, st):
        return generate_d2sd(t, d, None, PROMPT, 3, 1.0, seed, top_k=3, k_branches=2,
                             block_size=3, fault=fault, prefilled=st).tokens

    res, _ = certify(t, one, PROMPT, Warp(1.0, top_k=3), 3, 600, specoracle_alpha, seed0=2000)
    assert_verdict(res, fault, specoracle_alpha, max_detectable=0.15)


def test_bad_input():
    t, d = tiny_target(), tiny_drafter()
    with pytest.raises(InvalidInput, match="k_branches"):
        generate_d2sd(t, d, None, PROMPT, 3, k_branches=0)
    with pytest.raises(InvalidInput, match="fault"):
        generate_d2sd(t, d, None, PROMPT, 3, fault="nope")
    with pytest.raises(InvalidInput, match="trained block"):
        generate_d2sd(t, d, None, PROMPT, 3, block_size=d.block_size + 1)
    with pytest.raises(InvalidInput, match="prompt"):
        generate_d2sd(t, d, None, [99], 3)
