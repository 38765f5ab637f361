"""Every bad command-line input gets a clear error before any work.

One row per (subcommand, flag with a range, an enumerated choice, a path or a constraint
between options), in the table bad_input_rows.txt next to this file. Each row asserts: exit status 2; exactly one line of output says
``error`` and it names the flag or argument (and, where given, the reason); no
``Traceback``; done in seconds (the error comes before the work: the slowest rows would
otherwise run proofs, load models or execute notebooks). Rows run in-process through
``specoracle.cli.main``; a few run as real subprocesses to prove that no traceback reaches
the user, and missing extras are simulated in a subprocess (``sys.modules[name] = None``).

``python tests/front/cli/test_cli_bad_input.py`` runs every row as a subprocess and prints the
survey (clean / traceback / unclear / slow), the before/after measure.
"""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Row:
    argv: tuple          # after "specoracle"; "{tmp}" is a prepared folder (see _prepare)
    flag: str            # must appear in the error line
    says: str = ""       # ... and so must this (the reason), if given

    @property
    def id(self) -> str:
        return " ".join(self.argv)[:90]


def R(cmd: str, flag: str, says: str = "") -> Row:
    return Row(tuple(cmd.split()), flag, says)


NOPE = "{tmp}/no/such/dir"            # a folder that does not exist
UNDER_FILE = "{tmp}/afile/sub"        # a path below a regular file
G = "generate --target zoo:code-target --draft zoo:code-draft --no-baseline --max-new-tokens 4"
GD = "generate --target zoo:code-target --drafter dflash --no-baseline --max-new-tokens 4"
D = "diffuse --chains 200 --steps 10"
DM = "diffuse --model zoo:moons --n 8 --steps 10"
C = "certify reference.chain --scenarios t1 --samples 2000"
CE = "certify-engine transformers --target zoo:code-target --draft zoo:code-draft --no-progress"

SHORTHANDS = {"{G}": G, "{GD}": GD, "{D}": D, "{DM}": DM, "{C}": C, "{CE}": CE,
              "{NOPE}": NOPE, "{UNDER_FILE}": UNDER_FILE}


def load_rows(path: Path) -> list:
    """The rows of ``path``: ``COMMAND | FLAG [| REASON]`` per line, ``#`` comments, shorthands
    of :data:`SHORTHANDS` expanded (``{tmp}`` stays for :func:`_argv`)."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split(" | ")]
        if len(fields) not in (2, 3) or not all(fields):
            raise ValueError(f"{path.name}:{number}: expected 'COMMAND | FLAG [| REASON]', got {line!r}")
        command = fields[0]
        for short, long in SHORTHANDS.items():
            command = command.replace(short, long)
        rows.append(R(command, *fields[1:]))
    return rows


ROWS = load_rows(Path(__file__).with_name("bad_input_rows.txt"))

# rows also run as `python -m specoracle ...` (the user's view: what reaches the terminal)
SUBPROCESS_ROWS = [R("verify --seed -1", "--seed"), R(f"{D} --schedule linear:0.5:2", "--schedule", "range"),
                   R(f"{G} --batch 0", "--batch"), R(f"{GD} --static-cache", "--static-cache"),
                   R("generate --target zoo:nonexistent --draft zoo:code-draft", "--target", "unknown model")]

SECONDS = 20.0  # a row that takes longer did work before failing (2 shared cores; most take < 1 s)


def _prepare(tmp: Path) -> None:
    (tmp / "afile").write_text("x")
    (tmp / "empty").mkdir(exist_ok=True)
    fake = tmp / "fake-model"
    fake.mkdir(exist_ok=True)
    (fake / "config.json").write_text("{}")
    (fake / "model.safetensors").write_bytes(b"")


def _argv(row: Row, tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)) for a in row.argv]


def _check_output(row: Row, text: str, code) -> None:
    assert "Traceback" not in text, text
    assert code == 2, f"exit status {code}, expected 2; output:\n{text}"
    errors = [ln for ln in text.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1, f"expected one error line, got:\n{text}"
    assert row.flag in errors[0], f"the error does not name {row.flag}: {errors[0]}"
    assert row.says in errors[0], f"the error does not say {row.says!r}: {errors[0]}"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("badinput")
    _prepare(tmp)
    return tmp


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_row(row, prepared, capsys):
    from specoracle.cli import main

    t0 = time.perf_counter()
    try:
        code = main(_argv(row, prepared))
    except SystemExit as exc:
        code = exc.code
    seconds = time.perf_counter() - t0
    out = capsys.readouterr()
    _check_output(row, out.out + out.err, code)
    assert seconds < SECONDS, f"{seconds:.1f} s: work was done before the error"
    assert not (prepared / "o").exists(), "an output folder was created for a failed command"


@pytest.mark.parametrize("row", SUBPROCESS_ROWS, ids=[r.id for r in SUBPROCESS_ROWS])
def test_bad_input_subprocess(row, prepared):
    res = subprocess.run([sys.executable, "-m", "specoracle", *_argv(row, prepared)],
                         capture_output=True, text=True, timeout=120)
    assert res.stdout == "", res.stdout
    assert len(res.stderr.splitlines()) == 1, res.stderr       # one line, nothing else
    _check_output(row, res.stderr, res.returncode)


def test_every_subcommand_has_rows():
    from specoracle.cli import COMMANDS

    covered = {r.argv[0] for r in ROWS}
    assert covered == set(COMMANDS), set(COMMANDS) - covered


def test_every_choice_and_bounded_option_has_a_row():
    """Every option with choices or a validating type (except the harmless ones) has a row."""
    from specoracle.cli import _args, build_parser

    parser = build_parser()
    flags = [(r.argv[1] if r.argv[0] == "zoo" else r.argv[0], a.split("=")[0])
             for r in ROWS for a in r.argv if a.startswith("--")]
    covered = set(flags)
    plain = {str, None, int, float}
    missing = []
    sub = next(a for a in parser._actions if a.dest == "command")
    todo = list(sub.choices.items())
    while todo:
        name, p = todo.pop()
        for action in p._actions:
            if isinstance(action.choices, dict):  # nested sub-commands (zoo ACTION)
                todo += list(action.choices.items())
                continue
            if not action.option_strings or action.dest == "help":
                continue
            typed = action.type not in plain and action.type is not _args.input_file
            if (action.choices or typed) and not any((name, o) in covered for o in action.option_strings):
                missing.append(f"{name} {action.option_strings[0]}")
    assert not missing, f"options with a range or choices but no bad-input row: {missing}"


# ---------------------------------------------------------------- missing extras

EXTRA_ROWS = [
    (["generate", "--target", "zoo:code-target", "--draft", "zoo:code-draft"], "transformers", "models"),
    (["generate", "--target", "zoo:code-target", "--drafter", "dflash"], "transformers", "models"),
    (["diffuse", "--model", "zoo:moons", "--n", "4", "--steps", "4"], "safetensors", "models"),
    (["diffuse", "--model", "diffusers:{tmp}/empty"], "diffusers", "models"),
    (["notebooks", "--smoke", "--only", "02_block_vs_token"], "jupytext", "notebooks"),
    (["notebooks", "--render", "{tmp}/nb", "--only", "02_block_vs_token"], "nbconvert", "notebooks"),
    (["bench", "--suite", "llm", "--quick"], "transformers", "models"),
    (["bench", "--suite", "llm-tau", "--quick"], "transformers", "models"),
    (["bench", "--suite", "dflash", "--quick"], "transformers", "models"),
    (["zoo", "train-lm", "--tiny", "--out", "{tmp}/o"], "tokenizers", "models"),
    (["zoo", "train-dflash", "--out", "{tmp}/o"], "transformers", "models"),
    (["certify-engine", "specoracle", "--target", "zoo:code-target", "--executor", "ray"], "ray", "ray"),
    (["zoo", "train-diffusion", "moons", "--out", "{tmp}/o"], "safetensors", "models"),
]


_RUNNER = """
import contextlib, io, json, sys, traceback
rows = json.loads(sys.argv[1])
from specoracle.cli import main
results = []
for argv, blocked in rows:
    saved = {m: sys.modules.get(m) for m in blocked}
    sys.modules.update({m: None for m in blocked})     # `import m` now fails as if not installed
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        except BaseException:
            traceback.print_exc()
            code = 1
    for m, mod in saved.items():
        sys.modules.pop(m)
        if mod is not None:
            sys.modules[m] = mod
    results.append((code, buf.getvalue()))
print(json.dumps(results))
"""


def _run_blocked(rows) -> list:
    """Run ``main(argv)`` for each (argv, blocked modules) in ONE fresh interpreter (the
    blocked modules made unimportable during that row); returns (exit status, output)."""
    import json

    res = subprocess.run([sys.executable, "-c", _RUNNER, json.dumps(rows)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def extra_results(prepared):
    rows = [([a.replace("{tmp}", str(prepared)) for a in argv], [module])
            for argv, module, _ in EXTRA_ROWS]
    return _run_blocked(rows)


@pytest.mark.parametrize("i", range(len(EXTRA_ROWS)),
                         ids=[" ".join(r[0][:3]) + " -" + r[1] for r in EXTRA_ROWS])
def test_missing_extra_is_one_line(i, extra_results):
    argv, module, extra = EXTRA_ROWS[i]
    code, text = extra_results[i]
    assert "Traceback" not in text, text
    assert code == 2, text
    errors = [ln for ln in text.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1 and f"specoracle[{extra}]" in errors[0] and module in errors[0], text


def test_help_works_without_any_extra():
    blocked = ["transformers", "safetensors", "tokenizers", "sklearn", "diffusers", "jupytext",
               "nbclient", "nbformat", "nbconvert", "ipykernel"]
    cases = [["--help"], ["zoo", "--help"], ["bench", "--list"], ["zoo", "list"], ["notebooks", "--list"]]
    for argv, (code, text) in zip(cases, _run_blocked([(argv, blocked) for argv in cases])):
        assert code == 0 and "Traceback" not in text, (argv, text)


def test_extra_mapping_matches_pyproject():
    import tomllib

    from specoracle.cli._deps import MODULE_EXTRA

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    dist = {"sklearn": "scikit-learn"}
    for module, extra in MODULE_EXTRA.items():
        names = [req.split(">")[0].split("=")[0].split(";")[0].strip().lower() for req in extras[extra]]
        assert dist.get(module, module) in names, f"{module} is not in the {extra!r} extra"


def test_output_path_helpers(tmp_path):
    import argparse

    from specoracle.cli import _args

    assert _args.output_file(str(tmp_path / "new.json")) == str(tmp_path / "new.json")
    assert not (tmp_path / "new.json").exists()            # the probe is removed
    (tmp_path / "old.json").write_text("keep")
    _args.output_file(str(tmp_path / "old.json"))
    assert (tmp_path / "old.json").read_text() == "keep"   # an existing file is not touched
    assert _args.output_dir(str(tmp_path / "a" / "b")) and not (tmp_path / "a").exists()
    for bad in (tmp_path / "no" / "x.json", tmp_path):
        with pytest.raises(argparse.ArgumentTypeError):
            _args.output_file(str(bad))
    with pytest.raises(argparse.ArgumentTypeError):
        _args.output_dir(str(tmp_path / "old.json" / "sub"))


def test_library_errors_behind_the_rows(tmp_path, monkeypatch):
    """The library functions behind two rows say the same thing to Python callers."""
    from specoracle.fastpath.models.zoo import registry as zoo
    from specoracle.reference.targets_continuous import parse_schedule
    from specoracle.reference.types import InvalidInput

    with pytest.raises(InvalidInput, match="beta must lie in"):     # a range error, not the format
        parse_schedule("linear:0.5:2", 10)
    with pytest.raises(InvalidInput, match="beta must lie in"):
        parse_schedule("const:0", 10)
    for bad in ("cosine", "linear:a:b", "linear:0.1", "const:0.1:0.2"):
        with pytest.raises(InvalidInput, match="expected 'linear:START:END'"):
            parse_schedule(bad, 10)
    assert parse_schedule("const:0.1", 3).n_steps == 3
    monkeypatch.setenv("SPECORACLE_ZOO", str(tmp_path))
    with pytest.raises(InvalidInput, match="unknown model 'zoo:nonexistent'; known: zoo:code-draft"):
        zoo.resolve("zoo:nonexistent")
    with pytest.raises(InvalidInput, match="known but not installed"):
        zoo.resolve("zoo:code-target")


# ---------------------------------------------------------------- the survey (script mode)


def survey(start: int = 0) -> int:
    """Run every row (from ``start``) as a subprocess; print clean / traceback / unclear / slow
    per row. A row still running after SECONDS + 5 s is stopped and counted as slow: it did
    work before any error."""
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="badinput-"))
    _prepare(tmp)
    counts = {"clean": 0, "traceback": 0, "unclear": 0, "slow": 0}
    limit = SECONDS + 5
    for row in ROWS[start:]:
        t0 = time.perf_counter()
        try:
            res = subprocess.run([sys.executable, "-m", "specoracle", *_argv(row, tmp)],
                                 capture_output=True, text=True, timeout=limit)
            text, code = res.stdout + res.stderr, res.returncode
        except subprocess.TimeoutExpired:
            text, code = f"(stopped after {limit:.0f} s)", None
        seconds = time.perf_counter() - t0
        if "Traceback" in text:
            kind = "traceback"
        elif code is None or seconds > SECONDS:
            kind = "slow"
        else:
            try:
                _check_output(row, text, code)
                kind = "clean"
            except AssertionError:
                kind = "unclear"
        counts[kind] += 1
        last = (text.strip().splitlines() or [""])[-1][:110]
        print(f"{kind:9s} {code!s:>4} {seconds:5.1f}s  {row.id[:60]:60s} | {last}", flush=True)
    print(f"\n{len(ROWS) - start} rows: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(survey(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
