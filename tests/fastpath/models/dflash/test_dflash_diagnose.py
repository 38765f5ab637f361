"""The DFlash diagnosis (fastpath/models/dflash/diagnose.py) and the training options it
chose between (dflash_train: layer_ids, norm_init, init_from, callback): tiny random Llama, no zoo."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from specoracle.fastpath.models.dflash import diagnose as dd
from specoracle.fastpath.models.dflash.model import DFlashDrafter, DraftCache, draft_logits
from specoracle.fastpath.models.dflash.train import FeatureCache, train_dflash
from specoracle.reference.types import InvalidInput

from _dflash_zoo import CharTokenizer, tiny_drafter, tiny_target

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _heldout(windows, anchors, greedy, block):
    return dd.HeldOut(torch.as_tensor(windows), tuple(anchors), torch.as_tensor(greedy), (), block)


def test_ngram_tables_and_chaining():
    ids = [1, 2, 3, 1, 2, 4, 1, 2, 3, 5, 2, 3, 6, 7, 6, 8]
    bi, tri = dd.NGram(ids, 12, 2), dd.NGram(ids, 12, 3)
    prev2, prev1 = np.array([1, 5, 9, 0, 0]), np.array([2, 2, 2, 6, 11])
    # 2 -> 3 (3x) beats 2 -> 4 (1x); 6 -> 7 / 6 -> 8 tie: smallest id; unseen 11: most frequent (2)
    assert bi.next(prev2, prev1).tolist() == [3, 3, 3, 7, 2]
    # trigram (1, 2) -> 3 (2x) vs 4 (1x); (9, 2) unseen: bigram back-off
    assert tri.next(np.array([1, 9]), np.array([2, 2])).tolist() == [3, 3]
    assert tri.next(np.array([3]), np.array([1])).tolist() == [2]
    ho = _heldout([[0, 1, 2, 0, 0, 0]], [1], np.zeros((1, 1, 3)), 4)
    # anchor x_1 = 1: chain 1 -> 2 -> 3 -> 1
    assert bi.drafts(ho, 4).tolist() == [[[2, 3, 1]]]
    with pytest.raises(InvalidInput, match="n"):
        dd.NGram(ids, 12, 4)


def test_score_counts_the_common_prefix():
    windows = [[0, 5, 6, 7, 8, 9], [0, 5, 6, 7, 8, 9]]
    greedy = [[[6, 7, 1]], [[1, 7, 8]]]
    ho = _heldout(windows, [1], greedy, 4)
    drafts = torch.tensor([[[6, 7, 8]], [[6, 7, 8]]])
    s = dd.score(drafts, ho)
    assert s["greedy"]["accepted"] == 1.0 and s["tau0"] == 2.0      # rows accept 2 and 0
    assert s["greedy"]["acc"] == [0.5, 1.0, 0.5] and s["greedy"]["first"] == 0.5
    assert s["text"]["accepted"] == 3.0                              # the text is 6, 7, 8
    assert ho.text(4, 1).tolist() == [[[7, 8, 9]], [[7, 8, 9]]]


@torch.no_grad()
def test_diagnosis_block_pass_equals_inference_pass():
    """The diagnosis scores exactly what generate_dflash drafts: its block pass (context = the
    features of positions < a, anchor at a) equals draft_logits on a DraftCache; zeroed and
    shuffled features change the logits."""
    t, d = tiny_target(), tiny_drafter()
    g = d.block_size
    win = torch.randint(1, 12, (2, 16), generator=torch.Generator().manual_seed(5))
    hidden = t(input_ids=win, output_hidden_states=True).hidden_states
    ho = dd.HeldOut(win, (3, 9), torch.zeros(2, 2, g - 1, dtype=torch.long), hidden, g)
    logits = dd.dflash_logits(t, d, ho, g)                        # [S, A, G, V]
    for s in range(2):
        for j, a in enumerate(ho.anchors):
            cache = DraftCache(d)
            cache.extend(tuple(h[s: s + 1, :a] for h in hidden), 0)
            rows = torch.tensor([[int(win[s, a])] + [0] * (g - 1)])
            ref = draft_logits(t, d, cache, rows, torch.tensor([1]), a)[0]
            assert (ref - logits[s, j]).abs().max() < 1e-4
    for f in ("zero", "shuffled"):
        assert (dd.dflash_logits(t, d, ho, g, f) - logits).abs().max() > 1e-3
    with pytest.raises(InvalidInput, match="features"):
        dd.dflash_logits(t, d, ho, g, "none")
    p = dd.probes(t, d, ho)
    assert p["tied_head"] and set(p["first_vs_text_shift"]) == {"-1", "0", "1"}


def test_training_options(tmp_path):
    """layer_ids overrides the formula, norm_init="target" copies the target's final norm,
    init_from continues from saved weights (and refuses another architecture), the callback
    runs at step 0, every k steps and at the end, a feature cache without the drafter's layers
    is refused."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("abcdefg" * 300)
    t, tok = tiny_target(), CharTokenizer()
    small = dict(block_size=4, num_layers=1, intermediate_size=32, seq_len=32, anchors=4,
                 windows_per_step=2, corpus=corpus)
    seen = []
    d, m = train_dflash(t, tok, steps=5, layer_ids=(0, 3), norm_init="target", out=tmp_path / "a",
                        callback=lambda step, dr, losses: seen.append((step, len(losses))),
                        callback_every=2, **small)
    assert seen == [(0, 0), (2, 2), (4, 4), (5, 5)]
    assert m["layer_ids"] == [0, 3] and d.cfg.layer_ids == (0, 3)
    d0, _ = train_dflash(t, tok, steps=0, norm_init="target", **small)
    assert torch.equal(d0.norm.weight, t.model.norm.weight.float())
    d1, _ = train_dflash(t, tok, steps=0, layer_ids=(0, 3), init_from=str(tmp_path / "a"), **small)
    for a, b in zip(d.state_dict().values(), d1.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(InvalidInput, match="init_from"):
        train_dflash(t, tok, steps=0, init_from=str(tmp_path / "a"), **small)   # layers (1, 1)
    with pytest.raises(InvalidInput, match="layer_ids"):
        train_dflash(t, tok, steps=0, layer_ids=(0, 4), **small)
    with pytest.raises(InvalidInput, match="norm_init"):
        train_dflash(t, tok, steps=0, norm_init="two", **small)
    with pytest.raises(InvalidInput, match="feature_cache"):
        train_dflash(t, tok, steps=1, layer_ids=(0, 3), feature_cache=FeatureCache(t, (1, 2), 0), **small)


def test_curve_heldout_and_plot(tmp_path):
    """End to end at tiny size: held-out blocks from a corpus (saved and re-loaded), the
    baselines, one short variant with its curve points, and the figure."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("<|endoftext|>".join(["abcdefg" * 40 + "hij" * i for i in range(12)]))
    t, tok = tiny_target(), CharTokenizer()
    ho = dd.heldout_blocks(t, tok, n_windows=4, anchors=(3, 20), block=4, seq_len=32, corpus=corpus)
    assert ho.windows.shape == (4, 32) and ho.greedy.shape == (4, 2, 3)
    dd.save_heldout(ho, tmp_path / "h.pt")
    back = dd.load_heldout(t, tmp_path / "h.pt")
    assert torch.equal(back.greedy, ho.greedy) and torch.equal(back.hidden[-1], ho.hidden[-1])
    rows = dd.baselines(t, tok, ho, 4, draft=t, corpus=corpus)
    assert rows["AR draft (greedy chain)"]["tau0"] == 4.0     # the target drafting itself
    c = dd.curve(t, tok, ho, 4, 2, dict(block_size=4, intermediate_size=32, seq_len=32, anchors=4,
                                        windows_per_step=2), blocks=(4, 2), corpus=corpus)
    assert [p["step"] for p in c["points"]] == [0, 2, 4]
    assert c["points"][1]["tokens"] == 2 * 2 * 4 * 4 and "tau0_b2" in c["points"][-1]
    dd.plot({"tiny": c}, tmp_path / "f.png", {"bigram": rows["bigram (train docs)"]["tau0"]}, block=4)
    assert (tmp_path / "f.png").stat().st_size > 1000
    with pytest.raises(InvalidInput, match="anchors"):
        dd.heldout_blocks(t, tok, n_windows=2, anchors=(30,), block=4, seq_len=32, corpus=corpus)


def test_resume_equals_an_uninterrupted_run(tmp_path):
    """A run stopped after its checkpoint at step 3 and resumed ends with the weights of the
    same run done in one go; a checkpoint of another config is refused."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("abcdefgh" * 300)
    t, tok = tiny_target(), CharTokenizer()
    kw = dict(block_size=4, num_layers=1, intermediate_size=32, seq_len=32, anchors=4,
              windows_per_step=2, corpus=corpus, steps=6, checkpoint_every=3)
    whole, _ = train_dflash(t, tok, out=tmp_path / "a", **kw)

    def stop(step, drafter, losses):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_dflash(t, tok, out=tmp_path / "b", callback=stop, callback_every=3, **kw)
    again, m = train_dflash(t, tok, out=tmp_path / "b", resume=True, **kw)
    assert m["steps"] == 6
    for a, b in zip(whole.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(InvalidInput, match="resume"):
        train_dflash(t, tok, out=tmp_path / "b", resume=True, **dict(kw, lr=1e-2))
    with pytest.raises(InvalidInput, match="resume"):
        train_dflash(t, tok, out=tmp_path / "c", resume=True, **kw)


def test_gpu_run_script_at_tiny_size(tmp_path):
    """scripts/dflash_gpu_run.py (the prepared GPU run) end to end at its --tiny size on the CPU:
    one JSON with the baselines, both curves and tables, and the two bf16 drafters."""
    import importlib.util
    import json
    from pathlib import Path
    spec = importlib.util.spec_from_file_location(
        "dflash_gpu_run", Path(__file__).resolve().parents[4] / "scripts" / "dflash_gpu_run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    corpus = tmp_path / "c.txt"
    corpus.write_text("<|endoftext|>".join(["abcdefg" * 40 + "hij" * i for i in range(12)]))
    t = tiny_target()
    res = mod.run(t, CharTokenizer(), t, tmp_path / "out", corpus=corpus, recipe=mod.TINY,
                  budget=mod.TINY_BUDGET, log=lambda m: None)
    back = json.loads((tmp_path / "out" / "dflash_gpu.json").read_text())
    assert set(back) >= {"baselines", "dflash_curve", "vp_curve", "dflash_table", "vp_table"}
    assert back["baselines"]["4"]["AR draft (greedy chain)"]["tau0"] == 4.0
    assert [p["step"] for p in back["dflash_curve"]["points"]] == [0, 2, 4]
    assert res["vp_curve"]["points"][-1]["step"] == 2
    vp = DFlashDrafter.load(tmp_path / "out" / "vp")
    assert vp.cfg.block_size == 4
    assert mod.main(["--zoo", str(tmp_path / "nozoo"), "--out", str(tmp_path / "o")]) == 2


def test_extrapolate_recovers_exact_laws():
    t = np.array([1e4, 1e5, 1e6])
    power = dd.extrapolate(t, 1 + 0.01 * t ** 0.5, goal=1 + 0.01 * 1e8 ** 0.5)
    assert abs(power["power_alpha"] - 0.5) < 1e-9 and abs(power["power_tokens"] / 1e8 - 1) < 1e-6
    lin = dd.extrapolate(t, 1.1 + 0.05 * np.log(t), goal=1.1 + 0.05 * np.log(1e9))
    assert abs(lin["loglinear_tokens"] / 1e9 - 1) < 1e-6
    flat = dd.extrapolate(t, [1.2, 1.1, 1.05], goal=2.0)
    assert flat["power_tokens"] is None and flat["loglinear_tokens"] is None
    with pytest.raises(InvalidInput, match="tokens"):
        dd.extrapolate([0, 1e4], [1.0, 1.2], goal=2.0)
