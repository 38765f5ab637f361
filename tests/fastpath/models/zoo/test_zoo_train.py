"""`specoracle zoo train-lm --tiny`: the recipe runs end to end on the CPU and writes
loadable sharded models, a shared tokenizer and a metrics file."""
from __future__ import annotations

import json
import time

import pytest

from specoracle.cli import main
from specoracle.fastpath.models.zoo.lm_train import Schedule, lr_at, split_documents


def test_schedule_warmup_then_cosine_to_ten_percent():
    s = Schedule(warmup=10)
    assert lr_at(0, 100, 1.0, s) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, s) == pytest.approx(1.0)
    assert lr_at(10, 100, 1.0, s) == pytest.approx(1.0)
    assert lr_at(100, 100, 1.0, s) == pytest.approx(0.1)
    mids = [lr_at(i, 100, 1.0, s) for i in range(10, 101)]
    assert all(a >= b for a, b in zip(mids, mids[1:]))


def test_heldout_split_rule():
    train, held = split_documents([str(i) for i in range(120)])
    assert held == ["7", "57", "107"] and len(train) == 117


def test_tiny_recipe_end_to_end(tmp_path, monkeypatch):
    import torch
    threads = torch.get_num_threads()
    monkeypatch.setenv("SPECORACLE_ZOO", str(tmp_path / "zoo"))
    t0 = time.process_time()  # CPU seconds: robust to other processes on a shared machine
    assert main(["zoo", "train-lm", "--tiny", "--out", str(tmp_path / "pair"), "--device", "cpu",
                 "--shard-size", "200KB", "--threads", "1"]) == 0
    seconds = time.process_time() - t0
    metrics = json.loads((tmp_path / "pair" / "metrics.json").read_text())
    for role in ("target", "draft"):
        m = metrics["models"][role]
        assert m["steps"] == 30 and m["heldout_loss_nats_per_token"] < 6.3  # ln(512) = 6.24 at init
        curve = [loss for _, loss in m["loss_curve"]]
        assert curve[-1] < curve[0]  # it learned
    assert len(list((tmp_path / "pair" / "code-target").glob("model-*.safetensors"))) > 1  # sharded
    # the pair installs into the zoo and decodes speculatively
    assert main(["zoo", "install", "--from", str(tmp_path / "pair")]) == 0
    from specoracle.fastpath.models.llm.engine import speculative_generate
    from specoracle.fastpath.models.llm.hf import load_pair
    target, draft, tok = load_pair("zoo:code-target", "zoo:code-draft")
    r = speculative_generate(target, draft, [tok("def ").input_ids], k=3, max_new_tokens=10)
    assert len(r.tokens[0]) == 10
    torch.set_num_threads(threads)
    assert seconds < 60, f"tiny recipe took {seconds:.0f} CPU seconds (budget 60)"


@pytest.mark.zoo
def test_tiny_draft_for_an_existing_target(tmp_path):
    """`--tokenizer-from MODEL --only draft` (the SmolLM2-draft recipe, here on the zoo target's
    tokenizer): the draft shares the target's tokenizer and vocabulary, so load_pair accepts it."""
    import torch

    from _llm_zoo import require_zoo
    require_zoo("zoo:code-target")
    threads = torch.get_num_threads()
    try:
        assert main(["zoo", "train-lm", "--tiny", "--out", str(tmp_path / "d"), "--device", "cpu",
                     "--tokenizer-from", "zoo:code-target", "--only", "draft", "--steps", "5",
                     "--threads", "1"]) == 0
        metrics = json.loads((tmp_path / "d" / "metrics.json").read_text())
        assert list(metrics["models"]) == ["draft"] and metrics["tokenizer_from"] == "zoo:code-target"
        assert not (tmp_path / "d" / "code-target").exists()
        from specoracle.fastpath.models.llm.engine import speculative_generate
        from specoracle.fastpath.models.llm.hf import load_pair
        target, draft, tok = load_pair("zoo:code-target", str(tmp_path / "d" / "code-draft"))
        assert draft.config.vocab_size == target.config.vocab_size
        r = speculative_generate(target, draft, [tok("def ").input_ids], k=2, max_new_tokens=4)
        assert len(r.tokens[0]) == 4
    finally:
        torch.set_num_threads(threads)
