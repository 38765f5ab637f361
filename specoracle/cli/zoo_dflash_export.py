"""``specoracle zoo export-dflash --to vllm``: write a DFlash drafter in the checkpoint format
vLLM's DFlash proposer loads (fastpath/models/dflash/export.py; docs/DFLASH_D2SD.md, "Served
by vLLM"). Registered on the ``zoo`` sub-parsers by zoo_cmd's module scan."""
from __future__ import annotations

import sys

from specoracle.cli import _args, _deps

from specoracle.fastpath.models.dflash.export import SHIPPED_DFLASH

EPILOG = """examples:
  specoracle zoo export-dflash --to vllm --out runs/dflash-vllm
  specoracle zoo export-dflash --to vllm --drafter runs/d16 --target zoo:code-target --out runs/d16-vllm

then, in vLLM (num_speculative_tokens = block size - 1 at most):
  LLM(model=TARGET_FOLDER, speculative_config={"method": "dflash", "model": "runs/dflash-vllm",
                                               "num_speculative_tokens": 15})
"""


HELP = "export a DFlash drafter for another engine (vLLM)"
DESCRIPTION = ("Write a specoracle DFlash drafter as a vLLM DFlashDraftModel checkpoint "
               "(config.json + model.safetensors, float32): the learned MASK vector becomes an "
               "extra embedding row (mask_token_id = V), the LM head stays the target's.")


def add_parser(subparsers) -> None:
    p = _args.command(subparsers, "export-dflash", HELP, DESCRIPTION, EPILOG)
    p.add_argument("--to", required=True, choices=["vllm"], help="the engine whose format to write")
    p.add_argument("--drafter", default=str(SHIPPED_DFLASH), type=_args.input_dir,
                   help="drafter folder (dflash_config.json; default: the shipped CPU drafter)")
    p.add_argument("--target", default="zoo:code-target", help="zoo:NAME or a local HF folder")
    p.add_argument("--out", required=True, type=_args.output_dir, help="output folder")
    p.set_defaults(func=run, check=check)


def check(args) -> None:
    """Before any work: the extra, the drafter folder, the target model."""
    from pathlib import Path
    _deps.require("models", *_deps.LLM)
    if not (Path(args.drafter) / "dflash_config.json").is_file():
        raise _args.UsageError("--drafter", f"{args.drafter} holds no dflash_config.json "
                                            "(train one with `specoracle zoo train-dflash`)")
    _args.check_model("--target", args.target)


def run(args) -> int:
    from specoracle.fastpath.models.dflash.export import export_vllm
    from specoracle.reference.types import InvalidInput

    try:
        out = export_vllm(args.drafter, args.target, args.out)
    except InvalidInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0
