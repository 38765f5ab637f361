"""The zoo: naming, install (copy and link), list, missing-model errors, shared tokenizer check."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from specoracle.cli import main
from specoracle.fastpath.models.zoo import registry as zoo
from specoracle.fastpath.models.llm.hf import check_same_tokenizer
from specoracle.reference.types import InvalidInput


def _fake_model(folder, vocab=5):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": vocab}))
    (folder / "model.safetensors").write_bytes(b"")
    return folder


@pytest.fixture
def zoo_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECORACLE_ZOO", str(tmp_path / "zoo"))
    src = tmp_path / "src"
    _fake_model(src / "m-target")
    _fake_model(src / "m-draft")
    (src / "corpus").mkdir()  # not a model: ignored
    return src


def test_zoo_dir_default_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv("SPECORACLE_ZOO", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert zoo.zoo_dir() == tmp_path / "specoracle" / "zoo"
    monkeypatch.setenv("SPECORACLE_ZOO", str(tmp_path / "z"))
    assert zoo.zoo_dir() == tmp_path / "z"


@pytest.mark.parametrize("link", [False, True])
def test_install_copy_or_link(zoo_env, link, capsys):
    argv = ["zoo", "install", "--from", str(zoo_env)] + (["--link"] if link else [])
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert ("linked" if link else "copied") in out
    have = zoo.installed()
    assert sorted(have) == ["m-draft", "m-target"]
    assert have["m-target"].is_symlink() == link
    assert zoo.resolve("zoo:m-target") == zoo.zoo_dir() / "m-target"
    assert main(argv) == 0 and "kept" in capsys.readouterr().out  # idempotent
    assert main(["zoo", "list"]) == 0
    listing = capsys.readouterr().out
    assert "zoo:m-target" in listing and "zoo:code-target" in listing and "not installed" in listing


def test_missing_model_and_bad_source(zoo_env, tmp_path):
    with pytest.raises(InvalidInput, match="zoo install"):
        zoo.resolve("zoo:code-target")
    with pytest.raises(InvalidInput, match="neither"):
        zoo.resolve(str(tmp_path / "nope"))
    assert main(["zoo", "install", "--from", str(tmp_path / "nope")]) == 2
    assert "not installed" in zoo.zoo_reason("zoo:code-target")


class _Tok:
    def __init__(self, vocab, eos=0):
        self._v, self.eos_token_id, self.bos_token_id = vocab, eos, eos

    def get_vocab(self):
        return dict(self._v)


def test_shared_tokenizer_check():
    a = _Tok({"a": 0, "b": 1, "c": 2})
    check_same_tokenizer(a, _Tok({"a": 0, "b": 1, "c": 2}))
    with pytest.raises(InvalidInput, match="must share a tokenizer"):
        check_same_tokenizer(a, _Tok({"a": 0, "c": 1, "b": 2}))
    with pytest.raises(InvalidInput, match="3 tokens"):
        check_same_tokenizer(a, _Tok({"a": 0, "b": 1}))
    with pytest.raises(InvalidInput, match="eos_token_id"):
        check_same_tokenizer(a, _Tok({"a": 0, "b": 1, "c": 2}, eos=2))


def test_cli_help_lists_examples():
    out = subprocess.run([sys.executable, "-m", "specoracle", "zoo", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "zoo install --from ../shared/zoo --link" in out
    out = subprocess.run([sys.executable, "-m", "specoracle", "generate", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "--verify" in out and "zoo:code-target" in out
