"""``specoracle zoo train-diffusion NAME``: reproduce a diffusion zoo pair.

Registered under the ``zoo`` command (owned by specoracle/cli/zoo_cmd.py) with
:func:`add_parser` on its sub-parsers. Trains the target and the draft epsilon networks
of ``NAME`` (moons: seconds; digits: about two minutes on a CPU) with the fixed seeds of
the recipe (fastpath/models/zoo/diffusion.py) and writes ``target.*``, ``draft.*`` and
``metrics.json`` to ``--out`` (default ``$SPECORACLE_ZOO/diffusion-NAME``, which
``zoo:NAME`` then prefers over the shipped weights).
"""
from __future__ import annotations

import json
import sys

from specoracle.cli import _args, _deps

EPILOG = """examples:
  specoracle zoo train-diffusion moons                  # seconds; writes $SPECORACLE_ZOO/diffusion-moons
  specoracle zoo train-diffusion digits --out ./digits  # about two minutes on a CPU
  specoracle zoo train-diffusion digits --scale-steps 0.05 --no-quality --out /tmp/d   # smoke run
"""


HELP = "train a diffusion zoo pair (target + draft eps-nets)"
DESCRIPTION = ("Train the target and draft epsilon networks of a diffusion zoo model with the "
               "project's recipe (fixed seeds) and write weights + metrics.json.")


def add_parser(zoo_subparsers):
    p = _args.command(zoo_subparsers, "train-diffusion", HELP, DESCRIPTION, EPILOG)
    p.add_argument("name", help="moons | digits")
    p.add_argument("--out", default=None, type=_args.output_dir,
                   help="output folder (default $SPECORACLE_ZOO/diffusion-NAME)")
    p.add_argument("--scale-steps", type=_args.positive_float, default=1.0,
                   help="multiply the training steps (1 = the shipped recipe)")
    p.add_argument("--no-quality", action="store_true",
                   help="skip the energy-distance sample-quality metric")
    p.set_defaults(func=run, check=check)
    return p


def check(args) -> None:
    """Before any work: the extra and the model name."""
    _deps.require("models", "safetensors", "sklearn")
    from specoracle.fastpath.models.zoo.diffusion import ZOO

    if args.name.removeprefix("zoo:") not in ZOO:
        raise _args.UsageError("name", f"unknown diffusion zoo model {args.name!r}; known: "
                                       + ", ".join(ZOO))


def run(args) -> int:
    from specoracle.fastpath.models.zoo.diffusion import entry, train_pair, zoo_root
    from specoracle.reference.types import InvalidInput

    try:
        e = entry(args.name)
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out or str(zoo_root() / f"diffusion-{e.name}")
    metrics = train_pair(e.name, out, progress=sys.stderr.isatty(), quality=not args.no_quality,
                         scale_steps=args.scale_steps)
    summary = {role: {k: metrics[role].get(k) for k in
                      ("n_params", "train_seconds", "final_train_loss", "eval_loss_ema",
                       "energy_distance_to_data", "file_bytes")} for role in ("target", "draft")}
    print(f"zoo:{e.name} written to {out}")
    print(json.dumps(summary, indent=2))
    return 0
