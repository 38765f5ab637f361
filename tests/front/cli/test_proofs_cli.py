"""`specoracle prove`: table, JSON certificate, exit status, --only/--list."""
import json

import pytest

from specoracle.cli import main
from specoracle.reference import categorical


def test_prove_only_writes_the_certificate(tmp_path, capsys):
    out = tmp_path / "proofs.json"
    status = main(["prove", "--quick", "--no-progress", "--only", "block.paper_example",
                   "greedy.lossless", "--json", str(out)])
    assert status == 0
    text = capsys.readouterr().out
    assert "block.paper_example" in text and "proved" in text
    cert = json.loads(out.read_text())
    assert cert["specoracle_version"]
    ids = [t["id"] for t in cert["theorems"]]
    assert ids == ["greedy.lossless", "block.paper_example"]
    for t in cert["theorems"]:
        assert set(t) >= {"id", "statement", "paper", "method", "cases", "status", "seconds"}
        assert t["status"] == "proved" and t["method"] == "exact" and t["cases"] > 0


def test_prove_exits_1_when_a_proof_fails(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(categorical, "residual_weights", lambda p, q, scale=1: abs(scale * p - q))
    out = tmp_path / "bad.json"
    status = main(["prove", "--quick", "--no-progress", "--only", "token.lossless", "--json", str(out)])
    assert status == 1
    assert "FAILED token.lossless" in capsys.readouterr().out
    assert json.loads(out.read_text())["theorems"][0]["status"] == "failed"


def test_prove_list_and_unknown_id(capsys):
    assert main(["prove", "--list"]) == 0
    listed = capsys.readouterr().out.split()
    assert "block.lossless" in listed and "tree_deterministic.expected_length" in listed
    assert main(["prove", "--only", "no.such.theorem"]) == 2


def test_prove_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["prove", "--help"])
    assert "specoracle prove --quick" in capsys.readouterr().out
