"""Every bad command-line input gets a clear error before any work.

One row per (subcommand, flag with a range, an enumerated choice, a path or a constraint
between options). Each row asserts: exit status 2; exactly one line of output says
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

ROWS = [
    # verify
    R("verify --seed -1", "--seed"),
    R("verify --seed abc", "--seed"),
    R(f"verify --json {NOPE}/c.json", "--json", "does not exist"),
    R("verify --json {tmp}", "--json", "directory"),
    # prove
    R(f"prove --quick --only block.paper_example --json {NOPE}/p.json", "--json"),
    R("prove --only no.such.theorem", "--only", "no.such.theorem"),
    # certify (value checks only: the rest of certify is another area's)
    R(f"{C} --json {NOPE}/r.json", "--json"),
    R(f"{C} --json {UNDER_FILE}.json", "--json"),
    R(f"{C} --seed -1", "--seed"),
    R(f"{C} --samples 0", "--samples"),
    R(f"{C} --samples -5", "--samples"),
    R(f"{C} --alpha 0", "--alpha"),
    R(f"{C} --alpha 1.5", "--alpha"),
    R(f"{C} --alpha nan", "--alpha"),
    R(f"{C} --power 1", "--power"),
    R(f"{C} --power 0", "--power"),
    R(f"{C} --tv 0", "--tv"),
    R(f"{C} --tv 1.5", "--tv"),
    R("certify", "IMPL"),
    R(f"{C} --sweep -1", "--sweep"),
    R(f"{C} --sweep 1 --workers 0", "--workers"),
    R(f"{C} --sweep 1 --retries -1", "--retries"),
    R(f"{C} --sweep 1 --chunk 0", "--chunk"),
    R(f"{C} --sweep 1 --executor spark", "--executor", "expected inprocess"),
    # certify-engine (values and paths before any model is loaded)
    R("certify-engine nope --target zoo:code-target", "ENGINE", "invalid choice"),
    R("certify-engine transformers", "--target", "required"),
    R(f"{CE} --k 0", "--k"),
    R(f"{CE} --temperature -1", "--temperature"),
    R(f"{CE} --top-k 0", "--top-k"),
    R(f"{CE} --top-p 1.5", "--top-p"),
    R(f"{CE} --n 0", "--n"),
    R(f"{CE} --batch 0", "--batch"),
    R(f"{CE} --samples 0", "--samples"),
    R(f"{CE} --alpha 1", "--alpha"),
    R(f"{CE} --power 0", "--power"),
    R(f"{CE} --tv 0", "--tv"),
    R(f"{CE} --seed -1", "--seed"),
    R(f"{CE} --min-prob 1", "--min-prob"),
    R(f"{CE} --threads 0", "--threads"),
    R(f"{CE} --option novalue", "--option", "KEY=VALUE"),
    R(f"{CE} --json {NOPE}/e.json", "--json"),
    R(f"{CE} --executor spark", "--executor", "expected inprocess"),
    R(f"{CE} --executor ray://nohost", "--executor", "ray://HOST:PORT"),
    R(f"{CE} --actors 0", "--actors"),
    R(f"{C} --samples 5", "--samples"),
    # bench
    R("bench --device tpu", "--device"),
    R("bench --threads 0 --suite kernels --quick", "--threads"),
    R("bench --threads -1 --suite kernels --quick", "--threads"),
    R(f"bench --suite kernels --quick --json {NOPE}/b.json", "--json"),
    R("bench --suite nosuch", "--suite", "nosuch"),
    R("bench --dtype float16", "--dtype"),
    R("bench --clock gpu", "--clock"),
    R("bench --all --tiny --device cpu", "--json", "one JSON"),
    R("bench --all --device cpu --json {tmp}/a.json", "--device", "--tiny"),
    R("bench --tiny --suite kernels --quick", "--tiny", "without --all"),
    R("bench --all --tiny --device cpu --suite kernels --json {tmp}/a.json", "--suite", "with --all"),
    R("bench --all --tiny --quick --device cpu --json {tmp}/a.json", "--tiny", "--quick"),
    R("bench --all --tiny --device cpu --only nosuch --json {tmp}/a.json", "--only", "nosuch"),
    R("bench --all --tiny --device cpu --with-dflash-train --json {tmp}/a.json", "--with-dflash-train"),
    R("bench --all --tiny --device cpu --budget 0 --json {tmp}/a.json", "--budget"),
    R("bench --all --tiny --device cpu --clock cpu --json {tmp}/a.json", "--clock", "with --all"),
    R("bench --all --device cuda --only dflash-train --json {tmp}/a.json", "--"),

    R("bench --list --suite kernels", "--suite", "--list"),
    R("bench --list --quick", "--quick", "--list"),
    R("bench --list --json {tmp}/b.json", "--json", "--list"),
    # generate: values
    R(f"{G} --max-new-tokens 0", "--max-new-tokens"),
    R(f"{G} --max-new-tokens -5", "--max-new-tokens"),
    R(f"{G} --k 0", "--k"),
    R(f"{G} --k -2", "--k"),
    R(f"{G} --batch 0", "--batch"),
    R(f"{G} --threads 0", "--threads"),
    R(f"{G} --seed -1", "--seed"),
    R(f"{G} --temperature -1", "--temperature"),
    R(f"{G} --temperature inf", "--temperature"),
    R(f"{G} --top-k 0", "--top-k"),
    R(f"{G} --top-p 0", "--top-p"),
    R(f"{G} --top-p 1.5", "--top-p"),
    R(f"{G} --min-p 1.5", "--min-p"),
    R(f"{G} --min-p -0.1", "--min-p"),
    R(f"{G} --device tpu", "--device"),
    R(f"{G} --verify fast", "--verify"),
    R(f"{G} --backend cuda", "--backend"),
    R(f"{G} --round gpu", "--round"),
    R(f"{G} --round-dtype float16", "--round-dtype"),
    R(f"{G} --compile fast", "--compile"),
    R(f"{G} --drafter medusa", "--drafter"),
    # generate: options that contradict each other or that the mode would ignore
    R(f"{G} --cuda-graphs", "--cuda-graphs", "--static-cache"),
    R(f"{G} --compile default", "--compile", "--static-cache"),
    R(f"{G} --round-dtype float32", "--round-dtype", "--round device"),
    R(f"{G} --round device --backend reference", "--backend", "--round device"),
    R(f"{G} --temperature 0 --top-k 5", "--top-k", "greedy"),
    R(f"{G} --verify greedy --top-p 0.9", "--top-p", "greedy"),
    R(f"{G} --temperature 0 --min-p 0.1", "--min-p", "greedy"),
    R(f"{G} --verify greedy --temperature 0 --seed 3", "--seed", "greedy"),
    R(f"{G} --drafter dflash", "--draft", "--drafter"),
    R(f"{G} --block-size 8", "--block-size", "--drafter"),
    R(f"{G} --branches 2", "--branches", "--drafter"),
    R(f"{GD} --batch 2", "--batch"),
    R(f"{GD} --backend reference", "--backend"),
    R(f"{GD} --static-cache", "--static-cache"),
    R(f"{GD} --round device", "--round"),
    R(f"{GD} --min-p 0.1", "--min-p"),
    R(f"{GD} --block-size 0", "--block-size"),
    R(f"{GD} --block-size -3", "--block-size"),
    R(f"{GD} --block-size 1", "--block-size"),
    R(f"{GD} --branches 0", "--branches"),
    R(f"{GD} --dflash-mode fast", "--dflash-mode"),
    R(f"{GD} --dflash-path {NOPE}", "--dflash-path"),
    R("generate --target zoo:code-target --no-baseline", "--draft"),
    # generate: models
    R("generate --target zoo:nonexistent --draft zoo:code-draft", "--target", "unknown model"),
    R("generate --target {tmp}/fake-model --draft zoo:nonexistent", "--draft", "unknown model"),
    R("generate --target {tmp}/fake-model --draft {tmp}/empty", "--draft", "config.json"),
    R(f"generate --target {NOPE} --draft zoo:code-draft", "--target"),
    # diffuse (analytic targets)
    R(f"{D} --steps -5", "--steps"),
    R(f"{D} --steps 0", "--steps"),
    R(f"{D} --schedule linear:0.5:2", "--schedule", "range"),
    R(f"{D} --schedule const:0", "--schedule", "range"),
    R(f"{D} --schedule cosine", "--schedule", "linear:START:END"),
    R(f"{D} --schedule linear:a:b", "--schedule", "linear:START:END"),
    R(f"{D} --dim 0", "--dim"),
    R(f"{D} --window 0", "--window"),
    R(f"{D} --chains 0", "--chains"),
    R(f"{D} --seed -1", "--seed"),
    R(f"{D} --draft-std-scale 0", "--draft-std-scale"),
    R(f"{D} --data uniform", "--data"),
    R(f"{D} --sampler heun", "--sampler"),
    R(f"{D} --verify maybe", "--verify"),
    R(f"{D} --drafter medusa", "--drafter"),
    R(f"{D} --parameterization v", "--parameterization"),
    R(f"{D} --freeze all", "--freeze"),
    R(f"{D} --out {NOPE}/s.npy", "--out"),
    R(f"{D} --json {NOPE}/s.json", "--json"),
    R(f"{D} --json {UNDER_FILE}.json", "--json"),
    R(f"{D} --stds 0.5,-0.3", "--stds"),
    R(f"{D} --weights 0.3,0.6", "weights"),
    R(f"{D} --means=-2,1.5,3", "means"),
    R(f"{D} --weights a,b", "--weights"),
    R(f"{D} --means=1,x", "--means"),
    R(f"{D} --n 5", "--n", "--model"),
    R(f"{D} --png {{tmp}}/x.png", "--png", "--model"),
    R(f"{D} --compare-plain", "--compare-plain", "--model"),
    # diffuse --model (trained denoisers)
    R("diffuse --model zoo:nonexistent", "--model", "unknown"),
    R("diffuse --model nonsense", "--model"),
    R(f"diffuse --model diffusers:{NOPE}", "--model"),
    R(f"{DM} --n 0", "--n"),
    R(f"{DM} --threads 0", "--threads"),
    R(f"{DM} --device tpu", "--device"),
    R(f"{DM} --variance big", "--variance"),
    R(f"{DM} --png {NOPE}/x.png", "--png"),
    R(f"{DM} --dim 3", "--dim", "--model"),
    R(f"{DM} --chains 5", "--chains", "--model"),
    R(f"{DM} --parameterization x0", "--parameterization", "--model"),
    # zoo
    R("zoo fly", "ACTION"),
    R(f"zoo install --from {NOPE}", "--from"),
    R(f"zoo train-lm --tiny --out {UNDER_FILE}", "--out"),
    R("zoo train-lm --tiny --out {tmp}/afile", "--out"),
    R("zoo train-lm --tiny --out {tmp}/o --vocab 0", "--vocab"),
    R("zoo train-lm --tiny --out {tmp}/o --steps 0", "--steps"),
    R("zoo train-lm --tiny --out {tmp}/o --seconds 0", "--seconds"),
    R("zoo train-lm --tiny --out {tmp}/o --lr-target 0", "--lr-target"),
    R("zoo train-lm --tiny --out {tmp}/o --threads 0", "--threads"),
    R("zoo train-lm --tiny --out {tmp}/o --seed -1", "--seed"),
    R("zoo train-lm --tiny --out {tmp}/o --device tpu", "--device"),
    R("zoo train-lm --tiny --out {tmp}/o --only both", "--only"),
    R(f"zoo train-lm --tiny --out {{tmp}}/o --corpus {NOPE}/c.txt", "--corpus"),
    R(f"zoo train-dflash --out {UNDER_FILE}", "--out"),
    R("zoo train-dflash --out {tmp}/o --steps 0", "--steps"),
    R("zoo train-dflash --out {tmp}/o --block-size 0", "--block-size"),
    R("zoo train-dflash --out {tmp}/o --lr 0", "--lr"),
    R("zoo train-dflash --out {tmp}/o --threads 0", "--threads"),
    R("zoo train-dflash --out {tmp}/o --init-from {tmp}/no-such-drafter", "--init-from"),
    R("zoo train-dflash --out {tmp}/o --seed -1", "--seed"),
    R("zoo train-dflash --out {tmp}/o --recipe huge", "--recipe"),
    R("zoo train-dflash --out {tmp}/o --target zoo:nonexistent", "--target", "unknown model"),
    R("zoo export-dflash --out {tmp}/o", "--to"),
    R("zoo export-dflash --to sglang --out {tmp}/o", "--to"),
    R(f"zoo export-dflash --to vllm --out {UNDER_FILE}", "--out"),
    R(f"zoo export-dflash --to vllm --out {{tmp}}/o --drafter {NOPE}", "--drafter"),
    R("zoo export-dflash --to vllm --out {tmp}/o --drafter {tmp}", "--drafter", "dflash_config.json"),
    R("zoo export-dflash --to vllm --out {tmp}/o --target zoo:nonexistent", "--target", "unknown model"),
    *(R(f"zoo train-dflash --out {{tmp}}/o --{opt} {bad}", f"--{opt}") for opt, bad in (
        ("num-layers", 0), ("n-features", -1), ("intermediate-size", 0), ("seq-len", 0),
        ("windows-per-step", 0), ("anchors", 0), ("max-chars", 0), ("max-seconds", 0),
        ("gamma-decay", 0), ("prompt-len", 0), ("regen-windows", 0), ("prefix-beta", 1.5),
        ("prefix-tau", 0), ("objective", "ce"), ("data", "web"), ("device", "tpu"))),
    R("zoo train-lm --tiny --out {tmp}/o --lr-draft -1", "--lr-draft"),
    R("zoo train-diffusion cats", "name", "cats"),
    R("zoo train-diffusion moons --scale-steps 0", "--scale-steps"),
    R(f"zoo train-diffusion moons --out {UNDER_FILE}", "--out"),
    # notebooks
    R("notebooks --only nosuch", "--only", "nosuch"),
    R(f"notebooks --render {UNDER_FILE}", "--render"),
]

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
