"""The ``specoracle`` command.

Each subcommand lives in its own module ``specoracle/cli/<name>_cmd.py`` (``-`` in a command
name is ``_`` in its module's) with two
functions: ``add_parser(subparsers)`` (registers the parser, with an example in its
epilog, and sets ``func=run``) and ``run(args) -> int`` (the exit status). Heavy
imports (torch, transformers, numba) happen inside ``run`` so ``--help`` is fast.

Bad input (README "Command line errors"): argparse ``type=`` validators of
:mod:`specoracle.cli._args` check each value at parse time; a command may register
``set_defaults(check=...)``, called here right after parsing and before ``run``, for
options that contradict each other, model names, devices and missing extras
(:mod:`specoracle.cli._deps`). Every such error is one line ``specoracle CMD: error:
...`` on stderr with exit status 2, before any work.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from specoracle.cli._args import Parser, UsageError, report
from specoracle.cli._deps import MissingExtra, from_import_error

COMMANDS = ["verify", "prove", "certify", "certify-engine", "bench", "generate", "diffuse", "zoo", "notebooks"]

EPILOG = """examples:
  specoracle verify                      # every proof + certification, one table
  specoracle verify --json cert.json     # ... and write the certificate
  specoracle prove --quick               # exact and symbolic proofs only
  specoracle certify reference.chain     # certify one sampler statistically
  specoracle certify --list              # every built-in sampler and mutant
  specoracle certify-engine transformers --target zoo:code-target --draft zoo:code-draft --top-k 8
  specoracle <command> --help            # details and examples for one command
"""


def build_parser() -> argparse.ArgumentParser:
    from specoracle import __version__

    parser = Parser(
        prog="specoracle",
        description="An oracle for speculative sampling: exact reference verifiers, proofs, "
                    "calibrated certification of any sampler, and fast paths checked against them.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"specoracle {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        modname = f"specoracle.cli.{name.replace('-', '_')}_cmd"
        if importlib.util.find_spec(modname) is None:
            continue
        importlib.import_module(modname).add_parser(sub)
    return parser


def _prog(args) -> str:
    words = ["specoracle", getattr(args, "command", None), getattr(args, "zoo_command", None)]
    return " ".join(w for w in words if w)


def main(argv=None) -> int:
    from specoracle.reference.types import InvalidInput

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error (its one line is printed): return the status
        if exc.code == 2:
            return 2
        raise  # --help, --version
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    prog = _prog(args)
    try:
        if getattr(args, "check", None):
            args.check(args)
        return int(args.func(args) or 0)
    except (UsageError, MissingExtra, InvalidInput) as exc:
        return report(prog, exc)
    except ModuleNotFoundError as exc:  # a missing extra that no check foresaw: still one line
        missing = from_import_error(exc)
        if missing is None:
            raise
        return report(prog, missing)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
