"""Target-regenerated training data of the DFlash / VP drafters (fastpath/models/dflash/data.py)
at tiny size (random 4-layer Llama, no zoo): the document split holds out the bench documents,
greedy continuations are the target's greedy decoding, the on-disk cache is re-used only for the
same recipe, training on regenerated data puts every anchor in the continuation, and the in-memory
feature cache leaves the loss unchanged (up to the bf16 rounding of the stored features)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from specoracle.fastpath.models.dflash.data import (SEP, random_prompts, regenerate,
                                                    regenerated_windows, split_documents)
from specoracle.fastpath.models.dflash.train import (FeatureCache, TrainConfig, block_batch,
                                                     block_loss, train_dflash)
from specoracle.reference.types import InvalidInput

from _dflash_zoo import CharTokenizer, tiny_drafter, tiny_target

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def test_split_holds_out_the_bench_documents():
    docs = [f"doc{i} " + ("x" * (2500 if i % 3 == 0 else 100)) for i in range(40)]
    train, held = split_documents(SEP.join(docs), n_bench=8, every=10)
    long_ = [d for d in docs if len(d) > 2000][:8]          # what fastpath/bench/llm.py bench_prompts takes
    assert all(d in held for d in long_) and not set(train) & set(held)
    assert sorted(train + held) == sorted(docs)
    assert docs[9] in held and docs[19] in held and docs[1] in train


@torch.no_grad()
def test_greedy_regeneration_is_target_greedy():
    t = tiny_target()
    prompts = random_prompts(list(range(1, 12)) * 20, 5, 4, np.random.default_rng(0))
    out, temps = regenerate(t, prompts, 6, temperatures=(0.0,), batch=2)
    assert out.shape == (5, 10) and torch.equal(out[:, :4], prompts) and (temps == 0).all()
    seq = prompts.clone()
    for _ in range(6):   # no cache: full forward, argmax of the last position
        seq = torch.cat([seq, t(input_ids=seq).logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, seq)


def test_sampled_regeneration_is_seeded_and_alternates():
    t = tiny_target()
    prompts = random_prompts(list(range(1, 12)) * 20, 6, 4, np.random.default_rng(1))
    a, ta = regenerate(t, prompts, 5, temperatures=(0.0, 1.0), seed=3, batch=2)
    b, _ = regenerate(t, prompts, 5, temperatures=(0.0, 1.0), seed=3, batch=2)
    c, _ = regenerate(t, prompts, 5, temperatures=(0.0, 1.0), seed=4, batch=2)
    assert torch.equal(a, b) and ta.tolist() == [0, 0, 1, 1, 0, 0]
    assert torch.equal(a[:2], c[:2]) and not torch.equal(a[2:4], c[2:4])  # greedy rows do not move
    with pytest.raises(InvalidInput):
        regenerate(t, prompts, 0)


def test_cache_reused_only_for_the_same_recipe(tmp_path):
    t = tiny_target()
    ids = list(range(1, 12)) * 30
    path = tmp_path / "regenerated.pt"
    logs = []
    a, ia = regenerated_windows(t, None, ids, n=4, seq_len=10, prompt_len=4, path=path, log=logs.append)
    b, ib = regenerated_windows(t, None, ids, n=4, seq_len=10, prompt_len=4, path=path, log=logs.append)
    assert path.is_file() and torch.equal(a, b) and not ia["reused"] and ib["reused"]
    c, ic = regenerated_windows(t, None, ids, n=4, seq_len=10, prompt_len=4, seed=1, path=path,
                                log=logs.append)
    assert not ic["reused"] and any("another recipe" in m for m in logs)
    with pytest.raises(InvalidInput):
        regenerated_windows(t, None, ids, n=4, seq_len=10, prompt_len=10)


def test_train_on_regenerated_data(tmp_path, monkeypatch):
    corpus = tmp_path / "c.txt"
    corpus.write_text(SEP.join(["abcdefg" * 60 + str(i) for i in range(12)]))
    t = tiny_target()
    seen = []
    import specoracle.fastpath.models.dflash.train as dt
    real = dt.block_batch
    monkeypatch.setattr(dt, "block_batch", lambda w, rng, cfg: seen.append(real(w, rng, cfg)) or seen[-1])
    _, m = train_dflash(t, CharTokenizer(), corpus=corpus, out=tmp_path / "d", steps=4, block_size=4,
                        num_layers=1, intermediate_size=32, seq_len=24, anchors=4, data="regenerated",
                        prompt_len=8, regen_windows=6, regen_batch=4)
    assert (tmp_path / "d" / "regenerated.pt").is_file() and m["data"]["kind"] == "regenerated"
    assert m["train_windows"] == 6 and m["steps"] == 4
    assert all(int(a.min()) >= 7 for a, _ in seen)           # anchors in the continuation
    with pytest.raises(InvalidInput, match="data"):
        TrainConfig(data="web").validate()
    with pytest.raises(InvalidInput, match="anchors"):
        TrainConfig(data="regenerated", seq_len=24, prompt_len=8, block_size=4, anchors=15).validate()


@torch.no_grad()
def test_feature_cache_leaves_the_loss_unchanged():
    t, d = tiny_target(), tiny_drafter()
    cfg = TrainConfig(block_size=d.block_size, seq_len=16, anchors=4)
    w = torch.randint(1, 12, (3, 16), generator=torch.Generator().manual_seed(0))
    a, v = block_batch(w, np.random.default_rng(0), cfg)
    plain, _ = block_loss(t, d, w, a, v, cfg)
    fc = FeatureCache(t, d.cfg.layer_ids, 3)
    idx = torch.tensor([0, 1, 2])
    first, _ = block_loss(t, d, w, a, v, cfg, hidden=fc.get(idx, w))
    again, _ = block_loss(t, d, w, a, v, cfg, hidden=fc.get(idx, w))
    assert len(fc.store) == 3 and float(first) == float(again)
    assert abs(float(first) - float(plain)) < 2e-2 * abs(float(plain))
