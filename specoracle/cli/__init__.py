"""The ``specoracle`` command.

Each subcommand lives in its own module ``specoracle/cli/<name>_cmd.py`` (``-`` in a command
name is ``_`` in its module's) with two
functions: ``add_parser(subparsers)`` (registers the parser, with an example in its
epilog, and sets ``func=run``) and ``run(args) -> int`` (the exit status). Heavy
imports (torch, transformers, numba) happen inside ``run`` so ``--help`` is fast.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

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

    parser = argparse.ArgumentParser(
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


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
