"""`specoracle diffuse --model ...` (specoracle/cli/diffuse_model.py) on the shipped moons pair."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from specoracle.cli import diffuse_model as cli
from specoracle.fastpath.models.zoo import diffusion as zoo

pytest.importorskip("sklearn", reason="scikit-learn provides the zoo's data")
pytestmark = pytest.mark.skipif(not (zoo.SHIPPED_DIR / "moons" / "target.safetensors").exists(),
                                reason="zoo:moons weights not shipped")


@pytest.fixture(autouse=True)
def _restore_threads():
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)


def test_model_diffuse_writes_png_json_npy(tmp_path, capsys):
    args = cli.build_parser().parse_args([
        "--model", "zoo:moons", "--steps", "12", "--window", "4", "--drafter", "free", "--verify", "block",
        "--n", "40", "--seed", "3", "--png", str(tmp_path / "s.png"), "--json", str(tmp_path / "s.json"),
        "--out", str(tmp_path / "s.npy"), "--compare-plain", "--threads", "1"])
    assert cli.run_model_diffuse(args) == 0
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["n"] == 40 and stats["steps"] == 12 and stats["window"] == 4
    assert stats["seq_target_calls"] < stats["plain"]["seq_target_calls"] == 12
    assert len(stats["tau_histogram"]) == 5 and len(stats["acceptance_per_step"]) == 12
    assert np.load(tmp_path / "s.npy").shape == (40, 2)
    assert (tmp_path / "s.png").stat().st_size > 1000
    assert "sequential target calls" in capsys.readouterr().out


@pytest.mark.parametrize("verify,drafter", [("none", "free"), ("token", "target"), ("reflection", "independent")])
def test_model_diffuse_modes(tmp_path, verify, drafter):
    args = cli.build_parser().parse_args(["--model", "zoo:moons", "--steps", "8", "--n", "16", "--window", "4",
                                          "--verify", verify, "--drafter", drafter, "--sampler", "em",
                                          "--json", str(tmp_path / "s.json"), "--threads", "1"])
    assert cli.run_model_diffuse(args) == 0
    stats = json.loads((tmp_path / "s.json").read_text())
    if verify == "none":
        assert stats["seq_target_calls"] == 8
    if drafter == "target":                       # exact draft: ceil(8 / 4) calls (T11)
        assert stats["seq_target_calls"] == 2 and stats["accepted_drafts"] == 16 * 8


def test_add_model_arguments_keeps_existing_options():
    """The lead wires the options into `specoracle diffuse`, whose parser already defines
    --steps, --window, ...: those are kept, only the missing ones are added."""
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--chains", type=int, default=100000)
    cli.add_model_arguments(p)
    a = p.parse_args(["--model", "zoo:moons", "--png", "x.png"])
    assert a.steps == 50 and a.model == "zoo:moons" and a.png == "x.png" and a.n is None


def test_model_diffuse_errors(capsys):
    args = cli.build_parser().parse_args(["--model", "zoo:cats"])
    assert cli.run_model_diffuse(args) == 2
    args = cli.build_parser().parse_args(["--model", "zoo:moons", "--window", "0", "--steps", "4"])
    assert cli.run_model_diffuse(args) == 2
    assert "window" in capsys.readouterr().err


def test_bench_suite_rows():
    """The `diffusion` bench suite (registered with specoracle bench) on a tiny grid."""
    from specoracle.fastpath import bench
    from specoracle.fastpath.bench.diffusion import run_diffusion

    assert "diffusion" in bench.suites("cpu")
    ctx = bench.BenchContext(quick=True)
    rows = run_diffusion(ctx, models=("mixture",), grid={"steps": (12,), "windows": (4,), "batch": 8})
    assert [r["backend"] for r in rows] == ["plain", "spec-token", "spec-block"]
    assert rows[0]["seq_target_calls"] == 12
    for r in rows[1:]:
        assert r["seq_target_calls"] < 12 and r["mean_accepted_length"] > 0
        assert r["vs_plain_seq_calls"] == pytest.approx(12 / r["seq_target_calls"])
    assert ctx.notes
