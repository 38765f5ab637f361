"""``specoracle diffuse``: runs, writes the JSON it promises, uses fewer sequential
target calls than the plain chain, and rejects bad input with exit status 2."""
from __future__ import annotations

import json

import numpy as np
import pytest



def _main(argv):
    from specoracle.cli import main

    return main(["diffuse", *argv])


BASE = ["--data", "gmm", "--weights", "0.3,0.7", "--means=-2,1.5", "--stds", "0.5,0.3", "--dim", "1",
        "--steps", "50", "--schedule", "linear:1e-3:0.2", "--sampler", "ddpm", "--drafter", "free",
        "--window", "4", "--chains", "3000", "--seed", "0"]


def test_diffuse_block_json_and_samples(tmp_path, capsys):
    out, js = tmp_path / "s.npy", tmp_path / "s.json"
    assert _main(BASE + ["--verify", "block", "--out", str(out), "--json", str(js)]) == 0
    stats = json.loads(js.read_text())
    x = np.load(out)
    assert x.shape == (3000, 1)
    for key in ("acceptance_rate_per_step", "accepted_length_histogram", "sequential_target_calls",
                "target_network_evaluations", "sample_moments"):
        assert key in stats
    assert len(stats["acceptance_rate_per_step"]) == 50
    assert sum(stats["accepted_length_histogram"]) > 0
    assert stats["sequential_target_calls"]["mean"] < 50
    assert stats["sample_moments"]["mean"][0] == pytest.approx(float(x.mean()), rel=1e-12)
    assert "sequential target calls" in capsys.readouterr().out


def test_diffuse_none_is_the_plain_chain(tmp_path):
    js = tmp_path / "n.json"
    assert _main(BASE + ["--verify", "none", "--json", str(js)]) == 0
    stats = json.loads(js.read_text())
    assert stats["sequential_target_calls"]["mean"] == 50


@pytest.mark.parametrize("extra", [["--weights", "0.3,0.6"], ["--window", "0"],
                                   ["--schedule", "linear:1e-3:1.5"], ["--stds", "0.5,-0.3"],
                                   ["--means=-2,1.5,3"]])
def test_diffuse_bad_input_exit_2(extra, capsys):
    assert _main(BASE + extra) == 2
    assert "error" in capsys.readouterr().err
