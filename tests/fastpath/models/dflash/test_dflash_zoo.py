"""End-to-end on the zoo target with the shipped CPU drafters (fastpath/models/zoo/weights/dflash/
cpu-*, block 16): T = 0 output equals target-only greedy at blocks 8 and 16 (the block-16 drafter
serves block 8 by drafting a shorter block), and the law of the first 2 tokens at T = 1, top-k 3
equals the target's exact law for DFlash (argmax drafts, sample-and-match, blocks 8 and 16;
sampled drafts, block verification) and D2SD. Skips when the zoo is not installed
(`specoracle zoo install --from ../shared/zoo --link`, or $SPECORACLE_ZOO)."""
from __future__ import annotations

import pytest

from specoracle.fastpath.models.dflash.d2sd import generate_d2sd
from specoracle.fastpath.models.dflash.generate import generate_dflash
from specoracle.fastpath.models.llm.engine import autoregressive_generate
from specoracle.fastpath.models.llm.processing import Warp

from _dflash_cert import certify
from _dflash_zoo import shipped_drafter, zoo_target

pytestmark = [pytest.mark.zoo, pytest.mark.usefixtures("one_torch_thread")]  # fixture: tests/conftest.py


@pytest.fixture(scope="module")
def models():
    target, tok = zoo_target()
    return target, tok, shipped_drafter("dflash"), shipped_drafter("vp")


def test_shipped_drafters_are_small_and_match_the_target(models):
    from _dflash_zoo import SHIPPED
    from specoracle.fastpath.models.dflash.train import SHIPPED_RECIPES
    target, _, dfl, vp = models
    import json
    for kind in ("dflash", "vp"):
        folder = SHIPPED / f"cpu-{kind}"
        assert (folder / "dflash.safetensors").stat().st_size < 10_000_000
        m = json.loads((folder / "metrics.json").read_text())
        # the CLI recipes reproduce the shipped runs; cpu-dflash is shipped-dflash
        # continued by shipped-dflash-continue (metrics.json: "previous" = the first stage)
        stages = [(m, f"shipped-{kind}")] if kind == "vp" else [
            (m["previous"], "shipped-dflash"), (m, "shipped-dflash-continue")]
        for mm, name in stages:
            assert mm["steps"] == mm["config"]["steps"]
            recipe = SHIPPED_RECIPES[name]
            assert all(mm["config"][k] == v for k, v in recipe.items()), name
        assert stages[0][0]["data"]["kind"] == "regenerated"
    assert dfl.cfg.layer_ids == (1, 3) and dfl.block_size == 16 and vp.cfg.objective == "vp"
    assert vp.block_size == 16


def test_greedy_equals_target_greedy(models):
    target, tok, dfl, vp = models
    pr = tok("def main(argv=None):\n    ").input_ids
    ar = autoregressive_generate(target, [pr], warping=Warp(0.0), max_new_tokens=24)
    a = generate_dflash(target, dfl, pr, 24, 0.0)
    a8 = generate_dflash(target, dfl, pr, 24, 0.0, block_size=8)
    b = generate_d2sd(target, dfl, vp, pr, 24, 0.0)
    assert a.tokens == a8.tokens == ar.tokens[0] == b.tokens
    assert max(a.target_calls, a8.target_calls, b.target_calls) < ar.target_calls


@pytest.mark.statistical
@pytest.mark.parametrize("which", ["dflash-greedy",
                                   pytest.param("dflash-greedy-b8", marks=pytest.mark.slow),
                                   pytest.param("dflash-block", marks=pytest.mark.slow),
                                   pytest.param("d2sd", marks=pytest.mark.slow)])
def test_first_tokens_law_equals_target(models, which, specoracle_alpha):
    """First 2 tokens, T = 1, top-k 3 (<= 9 cells), 300 samples, chi-square GOF at
    alpha = the suite budget's share (1e-3); detects TV >= 0.2 at power 0.9 (asserted)."""
    target, tok, dfl, vp = models
    pr = tok("import numpy as").input_ids

    def one(seed, st):
        if which == "d2sd":
            return generate_d2sd(target, dfl, vp, pr, 2, 1.0, seed, top_k=3, prefilled=st).tokens
        mode, method = ("stochastic", "block") if which == "dflash-block" else ("greedy", "chain")
        return generate_dflash(target, dfl, pr, 2, 1.0, mode, seed, top_k=3, method=method,
                               block_size=8 if which.endswith("b8") else None, prefilled=st).tokens

    res, _ = certify(target, one, pr, Warp(1.0, top_k=3), 2, 300, specoracle_alpha, seed0=3000)
    assert res.p_value > specoracle_alpha, res
    assert res.detectable < 0.2


def test_cli_train_and_generate(models, tmp_path, capsys):
    import argparse
    import json

    from specoracle.cli import zoo_dflash
    parser = argparse.ArgumentParser()
    zoo_dflash.add_parser(parser.add_subparsers())
    args = parser.parse_args(["train-dflash", "--out", str(tmp_path / "d"), "--steps", "2",
                              "--max-chars", "20000", "--seq-len", "32", "--anchors", "4"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 2
    gen = argparse.ArgumentParser()
    zoo_dflash.add_generate_arguments(gen)
    for drafter in ("dflash", "d2sd"):
        args = gen.parse_args(["--drafter", drafter, "--prompt", "def ", "--max-new-tokens", "6",
                               "--dflash-path", str(tmp_path / "d"), "--vp-path", "none"])
        assert zoo_dflash.run_generate(args) == 0
        out = capsys.readouterr()
        assert out.out.startswith("def ") and "tau" in out.err and "speed-up" in out.err
