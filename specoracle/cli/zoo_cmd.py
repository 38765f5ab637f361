"""`specoracle zoo`: list, install and train the project's own small real models."""
from __future__ import annotations

import argparse
import sys

from specoracle.cli import _args, _deps

EPILOG = """examples:
  specoracle zoo list
  specoracle zoo install --from ../shared/zoo --link
  specoracle zoo train-lm --tiny --out /tmp/tiny-pair          # CPU smoke run, < 60 s
  specoracle zoo train-lm --corpus-from-sources --out zoo-new   # the full recipe (GPU)
"""


HELP = "the model zoo: list, install, train-lm"
DESCRIPTION = ("specoracle's own small real models, found in $SPECORACLE_ZOO (default "
               "~/.cache/specoracle/zoo) under short names zoo:NAME.")


def add_parser(subparsers) -> None:
    p = _args.command(subparsers, "zoo", HELP, DESCRIPTION, EPILOG)
    sub = p.add_subparsers(dest="zoo_command", metavar="ACTION")
    sub.add_parser("list", help="registered and installed models")
    ins = sub.add_parser("install", help="copy or link every model folder of DIR into the zoo")
    ins.add_argument("--from", dest="source", required=True, metavar="DIR", type=_args.input_dir,
                     help="a folder of model folders (or one model folder)")
    ins.add_argument("--link", action="store_true", help="symlink instead of copying")
    ins.add_argument("--force", action="store_true", help="replace entries that exist")
    tr = sub.add_parser("train-lm", help="train a target/draft Llama pair (the zoo recipe)",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog="examples:\n  specoracle zoo train-lm --tiny --out /tmp/tiny-pair\n"
                               "  specoracle zoo train-lm --corpus-from-sources --device cuda "
                               "--out zoo-new\n")
    from specoracle.fastpath.models.zoo.lm_train import add_train_arguments
    add_train_arguments(tr)
    # the recipe's options are defined in fastpath/models (which must not import the CLI)
    _args.retype(tr, out=_args.output_dir, vocab=_args.positive_int, steps=_args.positive_int,
                 seconds=_args.positive_float, lr_target=_args.positive_float,
                 lr_draft=_args.positive_float, seed=_args.seed, threads=_args.positive_int,
                 device=_args.device, corpus=_args.input_file)
    tr.set_defaults(check=check_train_lm)
    _add_other_zoo_commands(sub)
    p.set_defaults(func=run, _zoo_parser=p)


def check_train_lm(args) -> None:
    """``train-lm`` before any work: the extra, the device, the tokenizer source."""
    _deps.require("models", *_deps.LLM)
    if args.device:
        _args.check_device("--device", args.device)
    _args.check_model("--tokenizer-from", args.tokenizer_from, folder_needs_weights=False)


def _add_other_zoo_commands(sub) -> None:
    """Other areas' zoo actions: every module specoracle/cli/zoo_<name>.py with an
    ``add_parser(zoo_subparsers)`` (e.g. train-diffusion, train-dflash) is registered here."""
    import importlib
    import pkgutil

    from specoracle import cli

    for info in sorted(pkgutil.iter_modules(cli.__path__), key=lambda i: i.name):
        if info.name.startswith("zoo_") and info.name != "zoo_cmd":
            mod = importlib.import_module(f"specoracle.cli.{info.name}")
            if hasattr(mod, "add_parser"):
                mod.add_parser(sub)


def run(args) -> int:
    from specoracle.fastpath.models.zoo import registry as zoo

    action = getattr(args, "zoo_command", None)
    if action == "list":
        have = zoo.installed()
        print(f"zoo directory: {zoo.zoo_dir()}")
        names = list(zoo.ZOO_MODELS) + [n for n in have if n not in zoo.ZOO_MODELS]
        for n in names:
            entry = zoo.ZOO_MODELS.get(n)
            state = "installed" if n in have else (
                "converted on first use" if entry and entry.source == "gguf" else "not installed")
            desc = entry.description if entry else "(local folder)"
            print(f"  zoo:{n:<16} {state:<24} {desc}")
        return 0
    if action == "install":
        from specoracle.reference.types import InvalidInput
        try:
            done = zoo.install(args.source, link=args.link, force=args.force)
        except InvalidInput as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        for name, dest, how in done:
            print(f"zoo:{name:<16} {how:<7} -> {dest}")
        return 0
    if action == "train-lm":
        from specoracle.fastpath.models.zoo.lm_train import run_training
        return run_training(args)
    args._zoo_parser.print_help()
    return 2
