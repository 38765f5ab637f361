"""Checks of command-line input, shared by every ``specoracle`` command.

The error policy (README "Command line errors"): bad input ends the command with exit
status 2 and ONE line ``specoracle CMD: error: argument --FLAG: reason`` on stderr, no
traceback, before any heavy import or any work (so a typo in ``--json`` cannot throw away
a finished run). Three layers give that:

* argparse ``type=`` validators (this module: :func:`positive_int`, :func:`seed`,
  :func:`unit_open_closed`, :func:`output_file`, ...): one value at a time, at parse time;
* each command's ``check(args)`` (registered with ``set_defaults(check=...)`` and called by
  :func:`specoracle.cli.main` right after parsing): options that contradict each other or
  that the chosen mode would ignore, model names, the device; it raises :class:`UsageError`;
* a missing optional dependency raises :class:`specoracle.cli._deps.MissingExtra`.

No import of numpy, torch or transformers here: ``--help`` and the errors stay instant.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

SEED_MAX = 2 ** 63 - 1


class UsageError(Exception):
    """Bad command-line input found after parsing: names the flag (``--k``) or argument."""

    def __init__(self, flag: str, message: str):
        self.flag = flag
        super().__init__(f"argument {flag}: {message}" if flag else message)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage block is in ``--help``)."""

    def error(self, message):  # noqa: D401 - argparse's hook
        die(self.prog, message)


def command(subparsers, name: str, help: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """Register subcommand ``name``: one-line ``help`` (the command list), ``description``
    (top of ``--help``) and an ``examples:`` ``epilog`` printed as written."""
    return subparsers.add_parser(name, help=help, description=description, epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)


def report(prog: str, message) -> int:
    """Print ``PROG: error: MESSAGE`` as one line on stderr; return the exit status 2."""
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def die(prog: str, message):
    """:func:`report`, then exit with status 2 (argparse's error hook)."""
    sys.exit(report(prog, message))


# ---------------------------------------------------------------- numbers


def _number(text: str, kind):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if kind is float and (value != value or value in (float("inf"), float("-inf"))):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def int_at_least(low: int, high: int | None = None):
    """``type=`` for an integer in [low, high]."""
    def parse(text):
        value = _number(text, int)
        if value < low or (high is not None and value > high):
            span = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"must be an integer {span}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


positive_int = int_at_least(1)
nonneg_int = int_at_least(0)
seed = int_at_least(0, SEED_MAX)


def float_in(low: float | None, high: float | None, low_open: bool = True, high_open: bool = False):
    """``type=`` for a finite number in an interval; ``None`` is an unbounded end."""
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"

    def parse(text):
        value = _number(text, float)
        if low is not None and (value < low or (low_open and value == low)):
            raise argparse.ArgumentTypeError(f"must lie in {span}, got {value:g}")
        if high is not None and (value > high or (high_open and value == high)):
            raise argparse.ArgumentTypeError(f"must lie in {span}, got {value:g}")
        return value
    parse.__name__ = f"number in {span}"
    return parse


positive_float = float_in(0, None)                      # (0, inf)
nonneg_float = float_in(0, None, low_open=False)        # [0, inf)
unit_open = float_in(0, 1, high_open=True)              # (0, 1): alpha, power
unit_open_closed = float_in(0, 1)                       # (0, 1]: top-p, a TV distance
unit_closed = float_in(0, 1, low_open=False)            # [0, 1]: min-p


def device(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` (whether CUDA is present is checked by :func:`check_device`)."""
    if text == "cpu" or re.fullmatch(r"cuda(:\d+)?", text):
        return text
    raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")


def check_device(flag: str, value: str) -> None:
    """UsageError unless ``value`` is the CPU or an available CUDA device (imports torch)."""
    if value == "cpu":
        return
    import torch

    if not torch.cuda.is_available():
        raise UsageError(flag, f"{value!r} requested, but torch sees no CUDA device (use --device cpu)")
    index = int(value.split(":")[1]) if ":" in value else 0
    if index >= torch.cuda.device_count():
        raise UsageError(flag, f"{value!r}: only {torch.cuda.device_count()} CUDA device(s)")


# ---------------------------------------------------------------- output paths


def output_file(text: str) -> str:
    """``type=`` for a file to be written at the end of a run: checked now, before the work.

    The parent folder must exist and accept a new file (tried for real: a probe file is
    created and removed, which also catches read-only file systems and works as root);
    an existing file must be a writable regular file. Nothing is left behind.
    """
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory, expected a file name")
    parent = path.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise argparse.ArgumentTypeError(f"cannot write {text}: folder {parent} {what}")
    try:
        if path.exists():
            with open(path, "ab"):
                pass
        else:
            with open(path, "xb"):
                pass
            path.unlink()
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write {text}: {exc.strerror or exc}") from None
    return text


def add_json(parser: argparse.ArgumentParser, help: str) -> None:
    """The ``--json FILE`` option of a command that writes its result as JSON (checked by
    :func:`output_file` when the arguments are parsed, before the work)."""
    parser.add_argument("--json", metavar="FILE", type=output_file, help=help)


def output_dir(text: str) -> str:
    """``type=`` for a folder a command creates (with its parents) and writes into."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a directory")
    base = path
    while not base.exists():
        if base.parent == base:
            break
        base = base.parent
    if not base.is_dir():
        raise argparse.ArgumentTypeError(f"cannot create {text}: {base} is not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot create or write {text}: {base} is not writable")
    return text


def input_file(text: str) -> str:
    """``type=`` for a file that must exist and be readable."""
    path = Path(text).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return text


def input_dir(text: str) -> str:
    """``type=`` for a folder that must exist."""
    if not Path(text).expanduser().is_dir():
        raise argparse.ArgumentTypeError(f"{text}: no such directory")
    return text


def float_list(each):
    """``type=`` for comma-separated numbers, each checked by ``each`` (e.g. positive_float)."""
    def parse(text):
        parts = [v for v in str(text).split(",") if v.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
        try:
            for v in parts:
                each(v)
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"{exc} (in {text!r})") from None
        return text  # parsed where it is used (the count depends on other options)
    parse.__name__ = "comma-separated numbers"
    return parse


any_float = float_in(None, None)


# ---------------------------------------------------------------- cross-option helpers


def required(dest: str, name: str, unless: str | None = None):
    """A ``check`` for a positional argument that is optional only together with ``--unless``
    (e.g. ``certify IMPL`` or ``certify --list``)."""
    def check(args) -> None:
        if getattr(args, dest, None) is None and not (unless and getattr(args, unless, False)):
            alt = f" (or --{unless.replace('_', '-')})" if unless else ""
            raise UsageError(name, f"required{alt}")
    return check


def retype(parser: argparse.ArgumentParser, **types) -> None:
    """Give options defined elsewhere (e.g. by a models module that must not import the CLI)
    their validator: ``retype(p, __steps=positive_int)`` sets the ``type`` of ``--steps``."""
    for name, typ in types.items():
        opt = "--" + name.lstrip("_").replace("_", "-")
        action = parser._option_string_actions.get(opt)
        if action is None:
            raise KeyError(f"{parser.prog} has no option {opt}")
        action.type = typ


def changed(args, parser: argparse.ArgumentParser, dests) -> list[str]:
    """The ``--flags`` among ``dests`` whose value differs from the parser's default."""
    out = []
    for dest in dests:
        if hasattr(args, dest) and getattr(args, dest) != parser.get_default(dest):
            action = next(a for a in parser._actions if a.dest == dest)
            out.append(action.option_strings[0])
    return out


def reject_unused(args, parser: argparse.ArgumentParser, dests, mode: str) -> None:
    """UsageError naming the first option of ``dests`` that is set although ``mode`` ignores it
    (an option given at its default value changes nothing and passes)."""
    used = changed(args, parser, dests)
    if used:
        raise UsageError(used[0], f"not supported {mode} (it would be ignored)")


def check_model(flag: str, spec: str | None, folder_needs_weights: bool = True) -> None:
    """UsageError unless ``spec`` names a model that can be loaded: a known zoo name that is
    installed (or convertible), or a local Hugging Face folder (config.json + weights).

    ``zoo:NOSUCH`` is an *unknown* model (the known names are listed); a known name that
    is not installed says how to install it. ``folder_needs_weights=False``: any existing
    folder passes (a tokenizer). Cheap: no torch or transformers import."""
    if spec is None:
        return
    from specoracle.fastpath.models.zoo import registry as zoo

    if spec.startswith(zoo.PREFIX):
        short = spec[len(zoo.PREFIX):]
        have = zoo.installed()
        if short in have:
            return
        known = sorted(set(zoo.ZOO_MODELS) | set(have))
        if short not in zoo.ZOO_MODELS:
            raise UsageError(flag, f"unknown model {spec!r}; known: "
                                   + ", ".join(f"zoo:{n}" for n in known))
        if zoo.ZOO_MODELS[short].source == "gguf":
            return  # converted on first use; the converter names its own missing packages
        raise UsageError(flag, f"{spec} is known but not installed in {zoo.zoo_dir()}: run "
                               "`specoracle zoo install --from DIR` (or set $SPECORACLE_ZOO)")
    path = Path(spec).expanduser()
    if not path.exists():
        raise UsageError(flag, f"{spec!r} is neither a zoo name (zoo:NAME) nor an existing folder")
    if not folder_needs_weights:  # e.g. a tokenizer folder
        return
    if not (path / "config.json").is_file():
        raise UsageError(flag, f"{spec} is not a Hugging Face model folder (no config.json)")
    if not zoo.is_model_dir(path):
        raise UsageError(flag, f"{spec} has a config.json but no weights (*.safetensors or *.bin)")
