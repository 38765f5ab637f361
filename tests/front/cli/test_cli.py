"""The command line: `specoracle --help` and every subcommand's --help show examples."""
from __future__ import annotations

import pytest

from specoracle.cli import COMMANDS, build_parser, main


def test_top_level_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "specoracle verify" in out


def _registered():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sorted(sub.choices)


def test_every_registered_command_is_known():
    names = _registered()
    assert "verify" in names
    assert set(names) <= set(COMMANDS)


@pytest.mark.parametrize("name", _registered())
def test_subcommand_help_has_examples(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out.lower(), f"`specoracle {name} --help` shows no example"
    assert f"specoracle {name}" in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out
