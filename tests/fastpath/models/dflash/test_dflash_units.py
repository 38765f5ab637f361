"""DFlash drafter units (no zoo): layer selection, loss weights, the prefix prior, the
block-sparse training mask, and training == inference (the jointly trained blocks see exactly
what one inference block sees)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from specoracle.fastpath.models.dflash.model import (DFlashConfig, DFlashDrafter, DraftCache, decay_weights,
                                               draft_logits, target_layer_ids)
from specoracle.fastpath.models.dflash.train import (TrainConfig, block_sparse_mask,
                                                     train_dflash, truncated_geometric)
from specoracle.reference.types import InvalidInput

from _dflash_zoo import CharTokenizer, tiny_drafter, tiny_target


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def test_layer_selection_formula():
    assert target_layer_ids(36, 5) == (1, 9, 17, 25, 33)  # Qwen3-8B, ALGORITHMS.md §5.2
    assert target_layer_ids(6, 2) == (1, 3)
    assert target_layer_ids(6, 3) == (1, 2, 3)
    with pytest.raises(InvalidInput):
        target_layer_ids(6, 0)


def test_decay_weights_t5():
    w = decay_weights(15, 7.0, torch.float64)
    assert w[0] == 1 and math.isclose(w[7], math.exp(-1)) and math.isclose(w[14], math.exp(-2))
    assert TrainConfig(block_size=16).decay() == 7 and TrainConfig(block_size=8).decay() == 4
    with pytest.raises(InvalidInput):
        decay_weights(3, 0.0)


@pytest.mark.statistical
def test_truncated_geometric_prior(specoracle_alpha):
    """Pr(l = j) ∝ beta^j on 0..n-1 (D2SD Eq. (6)). Chi-square GOF, 20000 draws, alpha = the
    suite budget's share (1e-3);
    the detectable TV at power 0.9 is checked below (< 0.03); the wrong variant (untruncated
    geometric clipped to n-1, i.e. the tail mass piled on the last cell) is rejected."""
    from specoracle.proofs.stats import chisquare_gof
    rng = np.random.default_rng(7)
    beta, n, size = 0.7, 7, 20000
    draws = truncated_geometric(rng, beta, n, size)
    pmf = beta ** np.arange(n) / (beta ** np.arange(n)).sum()
    alpha = specoracle_alpha
    res = chisquare_gof(np.bincount(draws, minlength=n), pmf, alpha=alpha)
    assert res.p_value > alpha and res.detectable < 0.03
    wrong = np.minimum(rng.geometric(1 - beta, size) - 1, n - 1)
    assert chisquare_gof(np.bincount(wrong, minlength=n), pmf, alpha=alpha).p_value < alpha


def test_block_sparse_mask():
    m = block_sparse_mask(torch.tensor([[2, 5]]), 3, 8)[0, 0]  # [6, 8 + 6]
    assert m.shape == (6, 14)
    assert m[0, :2].all() and not m[0, 2:8].any()           # block 0 sees positions < 2
    assert m[3, :5].all() and not m[3, 5:8].any()           # block 1 sees positions < 5
    assert m[0, 8:11].all() and not m[0, 11:].any()         # own block only, bidirectional
    assert m[5, 11:].all() and not m[5, 8:11].any()


def test_vp_objective_needs_beta_and_tau():
    with pytest.raises(InvalidInput, match="prefix_beta"):
        TrainConfig(objective="vp", prefix_tau=2.0).validate()
    with pytest.raises(InvalidInput, match="prefix_tau"):
        TrainConfig(objective="vp", prefix_beta=0.5).validate()
    with pytest.raises(InvalidInput, match="objective"):
        TrainConfig(objective="ar").validate()


@torch.no_grad()
def test_training_blocks_equal_inference_blocks():
    """The joint block-sparse forward of training gives, for every block, the logits of an
    inference pass with the context cache holding exactly the positions before the anchor."""
    t, d = tiny_target(), tiny_drafter()
    g = d.block_size
    gen = torch.Generator().manual_seed(3)
    win = torch.randint(1, 12, (1, 20), generator=gen)
    anchors = torch.tensor([[3, 9, 14]])
    hidden = t(input_ids=win, output_hidden_states=True).hidden_states
    ctx = d.fuse(hidden)
    kv = d.context_kv(ctx, torch.arange(20)[None])
    qpos = (anchors[:, :, None] + torch.arange(g)).reshape(1, -1)
    tokens = torch.gather(win, 1, qpos)
    emb = t.get_input_embeddings()(tokens)
    first = (torch.arange(g).repeat(3) == 0)[None, :, None]
    x = torch.where(first, emb, d.mask_embedding)
    h = d(x, qpos, kv, block_sparse_mask(anchors, g, 20))
    joint = t.get_output_embeddings()(h)[0].view(3, g, -1)
    for j, a in enumerate(anchors[0].tolist()):
        cache = DraftCache(d)
        cache.extend(tuple(s[:, :a] for s in hidden), 0)
        rows = torch.tensor([[int(win[0, a])] + [0] * (g - 1)])
        inf = draft_logits(t, d, cache, rows, torch.tensor([1]), a)[0]
        assert (inf - joint[j]).abs().max() < 1e-4


@torch.no_grad()
def test_context_cache_in_pieces_equals_one_shot():
    t, d = tiny_target(), tiny_drafter()
    ids = torch.tensor([[1, 5, 2, 7, 3, 3, 9]])
    hidden = t(input_ids=ids, output_hidden_states=True).hidden_states
    one, two = DraftCache(d), DraftCache(d)
    one.extend(hidden, 0)
    two.extend(tuple(s[:, :4] for s in hidden), 0)
    two.extend(tuple(s[:, 4:] for s in hidden), 4)
    for (k1, v1), (k2, v2) in zip(one.kv, two.kv):
        assert (k1 - k2).abs().max() < 1e-5 and (v1 - v2).abs().max() < 1e-5
    assert one.length == two.length == 7


def test_training_learns_a_periodic_corpus(tmp_path):
    """A 2-layer drafter on a periodic text: the held-out weighted CE falls well below its
    start and argmax drafts get accepted (teacher-forced) after 60 steps; saving and loading
    round-trips."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("abcdefg" * 400)
    t = tiny_target()
    d, m = train_dflash(t, CharTokenizer(), corpus=corpus, out=tmp_path / "d", steps=60,
                        block_size=4, num_layers=1, n_features=2, intermediate_size=64, seq_len=32,
                        anchors=8, windows_per_step=4, lr=5e-3)
    assert m["steps"] == 60 and m["eval_loss"] < 0.5 * m["train_loss_first"]
    assert m["eval_accepted_prefix"] > 1.0
    back = DFlashDrafter.load(tmp_path / "d")
    for a, b in zip(d.state_dict().values(), back.state_dict().values()):
        assert torch.equal(a, b)
    d2, m2 = train_dflash(t, CharTokenizer(), corpus=corpus, steps=3, block_size=4, num_layers=1,
                          intermediate_size=64, seq_len=32, anchors=8, objective="vp",
                          prefix_beta=0.6, prefix_tau=2.0)
    assert m2["steps"] == 3 and np.isfinite(m2["eval_loss"])


def test_config_matches_target():
    t = tiny_target()
    cfg = DFlashConfig.for_target(t.config, num_layers=3, block_size=6)
    assert cfg.hidden_size == 32 and cfg.layer_ids == target_layer_ids(4, 3) and cfg.vocab_size == 12
    with pytest.raises(InvalidInput):
        DFlashDrafter(DFlashConfig.for_target(t.config, block_size=1))
