"""CLI pieces for the DFlash / D2SD drafters (wired by the lead):

* ``add_parser(subparsers)`` registers ``train-dflash`` on the ``specoracle zoo`` sub-parsers
  (``run`` trains and saves a drafter);
* ``add_generate_arguments(parser)`` + ``run_generate(args)`` implement
  ``specoracle generate --drafter dflash|d2sd``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from specoracle.cli import _args, _deps
from specoracle.fastpath.models.zoo import SHIPPED_DFLASH, SHIPPED_VP

EPILOG = """examples:
  specoracle zoo train-dflash --target zoo:code-target --out runs/dflash-cpu --recipe cpu
  specoracle zoo train-dflash --out runs/cpu-dflash --recipe shipped-dflash --threads 1
  specoracle zoo train-dflash --out runs/vp --data regenerated --regen-windows 256 --objective vp \\
      --prefix-beta 0.7 --prefix-tau 4 --steps 100
  specoracle zoo train-dflash --target zoo:code-target --out runs/dflash-gpu --recipe gpu --device cuda
"""

GEN_EPILOG = """examples:
  specoracle generate --target zoo:code-target --drafter dflash --prompt "def " --temperature 0
  specoracle generate --target zoo:code-target --drafter dflash --dflash-mode stochastic \\
      --verify block --temperature 1 --top-k 20 --prompt "import "
  specoracle generate --target zoo:code-target --drafter d2sd --branches 4 --prompt "class "
"""


HELP = "train a DFlash (or D2SD VP) block-diffusion drafter for a target"
DESCRIPTION = ("Train a block-diffusion drafter conditioned on the target's hidden states "
               "(DFlash, arXiv 2602.06036; VP objective of D2SD, arXiv 2606.04446): random "
               "anchors, blocks trained jointly with a block-sparse mask, CE with exponentially "
               "decayed position weights. Saves dflash_config.json, dflash.safetensors and "
               "metrics.json in --out.")


def add_parser(subparsers) -> None:
    p = _args.command(subparsers, "train-dflash", HELP, DESCRIPTION, EPILOG)
    p.add_argument("--target", default="zoo:code-target", help="zoo:NAME or a local HF folder")
    p.add_argument("--out", required=True, type=_args.output_dir, help="output folder")
    p.add_argument("--recipe", choices=["cpu", "gpu", "shipped-dflash", "shipped-vp",
                                        "shipped-dflash-continue"], default="cpu",
                   help="cpu: 1 layer, block 8, < 10 min on 2 cores; gpu: 5 layers, block 16; "
                        "shipped-dflash / shipped-vp: the recipes of the shipped drafters "
                        "(objective included; run with --threads 1 to reproduce them)")
    p.add_argument("--objective", choices=["dflash", "vp"], default="dflash")
    p.add_argument("--prefix-beta", type=_args.unit_open_closed, default=None, help="vp: prefix prior beta (required)")
    p.add_argument("--prefix-tau", type=_args.positive_float, default=None, help="vp: loss decay tau (required)")
    p.add_argument("--corpus", default=None, type=_args.input_file,
                   help="text file (.xz ok); default: the zoo corpus")
    p.add_argument("--data", choices=["corpus", "regenerated"], default=None,
                   help="corpus windows, or target-regenerated continuations of corpus prompts "
                        "(half greedy, half T=1; cached in OUT/regenerated.pt)")
    count, number = _args.positive_int, _args.positive_float
    for name, typ in (("steps", count), ("block-size", count), ("num-layers", count),
                      ("n-features", count), ("intermediate-size", count), ("seq-len", count),
                      ("windows-per-step", count), ("anchors", count), ("lr", number),
                      ("max-chars", count), ("max-seconds", number), ("gamma-decay", number),
                      ("prompt-len", count), ("regen-windows", count)):
        p.add_argument(f"--{name}", type=typ, default=None, help="override the recipe")
    p.add_argument("--init-from", default=None, type=_args.input_dir,
                   help="continue from this drafter folder (required by shipped-dflash-continue)")
    p.add_argument("--seed", type=_args.seed, default=0)
    p.add_argument("--device", type=_args.device, default="cpu")
    p.add_argument("--threads", type=_args.positive_int, default=None, help="torch CPU threads")
    p.set_defaults(func=run, check=check_train)


def check_train(args) -> None:
    """``train-dflash`` before any work: the extra, the device, the target model."""
    _deps.require("models", *_deps.LLM)
    _args.check_device("--device", args.device)
    _args.check_model("--target", args.target)


def run(args) -> int:
    import torch

    from specoracle.fastpath.models.dflash.train import (CPU_RECIPE, GPU_RECIPE, SHIPPED_RECIPES,
                                                         train_dflash)
    from specoracle.fastpath.models.llm.hf import load_model
    from specoracle.reference.types import InvalidInput

    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = dict(CPU_RECIPE if args.recipe == "cpu" else GPU_RECIPE)
    if args.recipe in SHIPPED_RECIPES:
        recipe = dict(SHIPPED_RECIPES[args.recipe])
    for key in ("steps", "block_size", "num_layers", "n_features", "intermediate_size", "seq_len",
                "windows_per_step", "anchors", "lr", "max_chars", "max_seconds", "gamma_decay",
                "prompt_len", "regen_windows", "data"):
        val = getattr(args, key)
        if val is not None:
            recipe[key] = val
    if args.recipe not in SHIPPED_RECIPES:
        recipe.update(objective=args.objective, prefix_beta=args.prefix_beta,
                      prefix_tau=args.prefix_tau)
    recipe.update(seed=args.seed)
    if args.init_from:
        recipe["init_from"] = str(args.init_from)
    elif args.recipe == "shipped-dflash-continue":
        print("error: --init-from: shipped-dflash-continue needs the shipped-dflash run's folder",
              file=sys.stderr)
        return 2
    try:
        target, tok = load_model(args.target, device=args.device)
        if args.device != "cpu":
            print("note: the training loop runs on the target's device; untested at scale",
                  file=sys.stderr)
        _, metrics = train_dflash(target, tok, corpus=args.corpus, out=args.out,
                                  progress=sys.stderr.isatty(),
                                  log=lambda m: print(m, file=sys.stderr, flush=True), **recipe)
    except InvalidInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    metrics.pop("losses", None)
    print(json.dumps(metrics, indent=2))
    return 0


# ---------------------------------------------------------------- generate --drafter dflash|d2sd


def add_generate_arguments(parser) -> None:
    """Options of ``specoracle generate --drafter dflash|d2sd`` (``--target``, ``--prompt``,
    ``--max-new-tokens``, ``--temperature``, ``--top-k``, ``--top-p``, ``--seed`` and ``--verify``
    are added here only if the parser lacks them)."""
    have = {a.dest for a in parser._actions}

    def add(*names, **kw):
        dest = kw.get("dest") or names[0].lstrip("-").replace("-", "_")
        if dest not in have:
            parser.add_argument(*names, **kw)
            have.add(dest)

    add("--target", default="zoo:code-target")
    add("--prompt", default="")
    add("--max-new-tokens", type=_args.positive_int, default=100)
    add("--temperature", type=_args.nonneg_float, default=0.0)
    add("--top-k", type=_args.positive_int, default=None)
    add("--top-p", type=_args.unit_open_closed, default=None)
    add("--seed", type=_args.seed, default=0)
    add("--verify", choices=["chain", "block", "greedy"], default="chain")
    add("--drafter", choices=["dflash", "d2sd"], default="dflash")
    add("--dflash-path", default=str(SHIPPED_DFLASH),
        help="DFlash drafter folder (default: the shipped CPU drafter, block 16)")
    add("--vp-path", default=str(SHIPPED_VP),
        help="D2SD VP drafter folder ('none': re-use the DFlash drafter)")
    add("--dflash-mode", choices=["greedy", "stochastic"], default="greedy",
        help="greedy: argmax drafts + sample-and-match; stochastic: sampled drafts + --verify")
    add("--block-size", type=_args.int_at_least(2), default=None,
        help="G >= 2, at most the drafter's trained block (default: the drafter's)")
    add("--branches", type=_args.positive_int, default=4, help="D2SD: K VP branches")
    add("--no-baseline", action="store_true", help="skip the target-only run")


def check_drafter_paths(args) -> None:
    """UsageError unless --dflash-path (and, for d2sd, --vp-path) hold a trained drafter."""
    paths = [("--dflash-path", args.dflash_path)]
    if args.drafter == "d2sd" and str(args.vp_path).lower() != "none":
        paths.append(("--vp-path", args.vp_path))
    for flag, folder in paths:
        if not (Path(folder).expanduser() / "dflash_config.json").is_file():
            raise _args.UsageError(flag, f"{folder} holds no dflash_config.json (train a drafter "
                                         "with `specoracle zoo train-dflash`)")


def run_generate(args) -> int:
    from specoracle.fastpath.models.dflash.d2sd import generate_d2sd
    from specoracle.fastpath.models.dflash.model import DFlashDrafter
    from specoracle.fastpath.models.dflash.generate import generate_dflash
    from specoracle.fastpath.models.llm.engine import autoregressive_generate
    from specoracle.fastpath.models.llm.hf import load_model
    from specoracle.fastpath.models.llm.processing import Warp
    from specoracle.reference.types import InvalidInput

    try:
        target, tok = load_model(args.target)
        drafter = DFlashDrafter.load(args.dflash_path)
        prompt = tok(args.prompt).input_ids or [tok.eos_token_id or 0]
        kw = dict(top_k=args.top_k, top_p=args.top_p, block_size=args.block_size,
                  eos_id=tok.eos_token_id)
        if args.drafter == "dflash":
            method = "chain" if args.verify == "greedy" else args.verify
            res = generate_dflash(target, drafter, prompt, args.max_new_tokens, args.temperature,
                                  args.dflash_mode, args.seed, method=method, **kw)
        else:
            vp = None if str(args.vp_path).lower() == "none" else DFlashDrafter.load(args.vp_path)
            res = generate_d2sd(target, drafter, vp, prompt, args.max_new_tokens, args.temperature,
                                args.seed, k_branches=args.branches, **kw)
    except InvalidInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(args.prompt + tok.decode(res.tokens))
    line = (f"[{args.drafter}] {len(res.tokens)} tokens in {res.seconds:.2f}s "
            f"({res.tokens_per_second:.1f} tok/s), cycles {len(res.accepted)}, "
            f"tau {res.tau():.3f} (bonus included), target calls {res.target_calls}")
    if not args.no_baseline:
        base = autoregressive_generate(target, [prompt], warping=Warp(args.temperature, args.top_k,
                                       args.top_p), max_new_tokens=args.max_new_tokens,
                                       eos_id=tok.eos_token_id, seeds=args.seed)
        line += (f", target-only {base.tokens_per_second:.1f} tok/s, speed-up "
                 f"{res.tokens_per_second / base.tokens_per_second:.2f}x")
    print(line, file=sys.stderr)
    return 0
