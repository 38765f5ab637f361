"""What a user writing an adapter sees: format errors that name the
problem, validated adapter attributes, exit codes, the current directory on the import
path, progress without a terminal, early stop after a decisive rejection, the Holm
family after a crash, the impossible outcome named, the smallest TV the run could see.

Statistical runs: alpha = 1e-3 per run (Holm), power 0.9 at TV 0.1 (QUICK), fixed seeds;
the samplers here are either exact (the reference) or wrong by a wide margin."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from specoracle.cli import main as cli_main
from specoracle.proofs import certify as C
from specoracle.reference import categorical as cat
from specoracle.reference.types import InvalidInput

QUICK = dict(target_tv=0.1, seed=0)


def _chain(p, q, d, rng):
    return cat.verify_chain_rng(p, q, d, rng)


# ---------------------------------------------------------------- malformed outputs


def _bonus_counted(p, q, d, rng):
    v = _chain(p, q, d, rng)
    return list(v.tokens), v.n_accepted + 1


def _padded(p, q, d, rng):
    v = _chain(p, q, d, rng)
    return list(v.tokens) + [-1] * (len(d) + 1 - len(v.tokens))


def _floats(p, q, d, rng):
    return np.asarray(_chain(p, q, d, rng).tokens, dtype=np.float64)


def _too_long(p, q, d, rng):
    return list(_chain(p, q, d, rng).tokens) + [0, 0]


@pytest.mark.parametrize("fn, words", [
    (_bonus_counted, "counts the bonus/corrected token"),
    (_padded, "-1 padding at index"),
    (_floats, "dtype float64, expected integers"),
    (_too_long, "at most 3 (K + 1)"),
])
def test_malformed_outputs_name_the_problem(fn, words):
    report = C.certify(fn, scenarios=("zeros",), **QUICK)
    assert report.verdict.startswith("format error: zeros: round "), report.verdict
    assert words in report.verdict
    assert [r.verdict for r in report.checks] == ["FORMAT"]
    assert "Holm over 0 checks of 1 planned" in report.format()


def test_format_error_exit_code(tmp_path):
    mod = tmp_path / "padmod.py"
    mod.write_text("def f(p, q, d, rng):\n    return [0] + [-1] * len(d)\n")
    sys.path.insert(0, str(tmp_path))
    try:
        assert cli_main(["certify", "padmod:f", "--scenarios", "t1", "--tv", "0.1", "--no-progress"]) == 4
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("padmod", None)


# ---------------------------------------------------------------- adapter attributes


def test_misspelt_or_unknown_law_is_an_error():
    def f(p, q, d, rng):
        return _chain(p, q, d, rng)
    f.specoracle_laws = "chain"
    with pytest.raises(InvalidInput, match="did you mean 'specoracle_law'"):
        C.resolve_impl(f)
    del f.specoracle_laws
    f.specoracle_law = "chains"
    with pytest.raises(InvalidInput, match="one of chain, block"):
        C.resolve_impl(f)
    f.specoracle_law = "chain"
    assert C.resolve_impl(f).law == "chain"


@pytest.mark.statistical
def test_missing_law_is_said(specoracle_alpha):
    """alpha: the suite budget's share (1e-3); power 0.9 at TV 0.1."""
    report = C.certify(_chain, scenarios=("t1",), alpha=specoracle_alpha, **QUICK)
    assert report.verdict == "exact"
    assert any("declares no law" in n and "chain, block" in n for n in report.notes)


def test_description_is_the_first_sentence():
    def f(p, q, d, rng):
        """My sampler. It does a lot of things.

        Long explanation that must not be printed.
        """
        return _chain(p, q, d, rng)
    assert C.resolve_impl(f).description == "My sampler."
    assert C.first_sentence("One line\nwraps here\n\nsecond paragraph") == "One line wraps here"


# ---------------------------------------------------------------- CLI loading


def test_cli_loads_from_the_current_directory(tmp_path, monkeypatch, capsys):
    (tmp_path / "cwdsampler.py").write_text(
        "from specoracle.reference.categorical import verify_chain_rng\n"
        "def verify(p, q, d, rng):\n    return verify_chain_rng(p, q, d, rng)\n"
        "verify.specoracle_law = 'chain'\n")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.chdir(tmp_path)
    try:
        rc = cli_main(["certify", "cwdsampler:verify", "--scenarios", "t1", "--tv", "0.1", "--no-progress"])
    finally:
        sys.modules.pop("cwdsampler", None)
    assert rc == 0, capsys.readouterr()
    assert "verdict: exact" in capsys.readouterr().out


def test_cli_not_loadable_exit_code(capsys):
    assert cli_main(["certify", "no_such_module_xyz:fn"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not loadable: no module named 'no_such_module_xyz'" in err[0]
    assert cli_main(["certify", "specoracle.reference.categorical:no_such_fn"]) == 3
    assert "has no attribute 'no_such_fn'" in capsys.readouterr().err
    assert cli_main(["certify", "nonexistent.builtin"]) == 2   # bad usage: one line, no traceback
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


# ---------------------------------------------------------------- run control and report


def test_crash_header_counts_the_holm_family():
    def crashes_on_v4(p, q, d, rng):
        if np.shape(p)[1] == 4:
            raise RuntimeError("boom")
        return _chain(p, q, d, rng)
    crashes_on_v4.specoracle_law = "chain"
    report = C.certify(crashes_on_v4, scenarios=("t1", "zeros", "scaled"), **QUICK)
    assert report.verdict.startswith("not exact: zeros/run")
    assert len(report.calibrated) == 4 and report.planned == 12
    assert "Holm over 4 checks of 12 planned" in report.format()


def test_progress_lines_without_a_terminal(capsys):
    C.certify("reference.chain", scenarios=("t1", "zeros"), progress=True, **QUICK)
    err = capsys.readouterr().err
    assert "certify reference.chain: scenario t1" in err and "scenario zeros" in err
    assert "\r" not in err   # plain lines, no bar redraws


def test_early_stop_after_a_decisive_rejection():
    """accept_always emits impossible blocks on t1 (p = 0 <= alpha_i / 10)."""
    report = C.certify("mutant.accept_always", scenarios=("t1", "zeros"), **QUICK)
    assert report.verdict.startswith("not exact: t1/")
    assert any(n.startswith("stopped early after t1") and "skipped zeros" in n for n in report.notes)
    assert {r.name.split("/")[0] for r in report.checks} == {"t1"}
    full = C.certify("mutant.accept_always", scenarios=("t1", "zeros"), stop_early=False, **QUICK)
    assert {r.name.split("/")[0] for r in full.checks} == {"t1", "zeros"}


def test_impossible_outcome_is_named():
    def emits_three(p, q, d, rng):
        return [3]   # token 3 has p = 0 at the first position of `zeros`
    emits_three.specoracle_law = "chain"
    report = C.certify(emits_three, scenarios=("zeros",), **QUICK)
    assert "impossible outcome emitted" in report.verdict
    text = report.format()
    assert "impossible outcome emitted: tau = 0, tokens (3,) has probability 0" in text
    assert " inf " not in text


def test_report_states_the_smallest_tv(tmp_path):
    report = C.certify("reference.chain", scenarios=("t1", "rounds"), **QUICK)
    sens = report.sensitivity()["TV"]
    assert 0 < sens["best"] <= sens["every_check"] <= 0.1
    assert "smallest effect seen with power 0.9: TV" in report.format()
    path = tmp_path / "r.json"
    report.to_json(path)
    data = json.loads(path.read_text())
    assert data["smallest_detectable"]["TV"]["every_check"] == pytest.approx(sens["every_check"])


@pytest.mark.statistical
def test_logits_adapter_without_the_new_keywords_skips_with_a_note(specoracle_alpha):
    """alpha: the suite budget's share (1e-3); power 0.9 at TV 0.1."""
    from specoracle.reference.processing import process_logits

    def old(lp, lq, d, rng, temperature, top_p):
        w = dict(temperature=temperature, top_p=top_p)
        return cat.verify_chain_rng(process_logits(lp, **w), process_logits(lq, **w), d, rng)
    old.specoracle_protocol = "logits"
    old.specoracle_law = "chain"
    report = C.certify(old, scenarios=("warped", "topk"), alpha=specoracle_alpha, **QUICK)
    assert report.verdict == "exact"
    assert any(n.startswith("topk skipped") for n in report.notes)
