#!/usr/bin/env python
"""The prepared GPU run: train the DFlash drafter and D2SD's VP drafter of the zoo
target on one GPU in at most about 10 minutes, measure them on the diagnosis' held-out blocks,
and write ONE JSON (plus the two drafters) under --out.

On a device machine (the `run` tool of a session lent a GPU; the zoo is carried as an ignored
folder of the checkout, e.g. runs/zoo = a copy of ../shared/zoo, 55 MB):

  python scripts/dflash_gpu_run.py --zoo runs/zoo --out "$OUT" --device cuda

What it does (times are budgets, not measurements: this run has not been made yet):
  1. regenerates ``regen_windows`` target continuations (the shipped recipe's data, 6.4x more);
  2. trains DFlash with GPU_RUN (same architecture as the shipped CPU drafter: 1 layer, block
     16, features of target layers 1 and 3, so the result can replace it; 64 windows x 48
     anchors per step, i.e. 96x the shipped batch) for ``steps`` or ``dflash_seconds``,
     recording the held-out curve every ``every`` steps;
  3. trains the VP drafter from the DFlash weights (``vp_steps`` / ``vp_seconds``);
  4. scores the n-gram tables, the AR zoo draft and both drafters on the held-out blocks
     (blocks 16 and 8) and writes ``dflash_gpu.json`` (rewritten after every phase, so a run cut
     by the time limit still returns what it did) and the drafters (bf16) in OUT/dflash, OUT/vp.

``--tiny`` shrinks everything (CPU smoke run; tests/fastpath/models/dflash/test_dflash_diagnose.py runs :func:`run`).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

GPU_RUN = dict(block_size=16, num_layers=1, n_features=2, intermediate_size=1024, seq_len=128,
               windows_per_step=64, anchors=48, lr=2e-3, data="regenerated", prompt_len=32,
               regen_windows=16384, regen_batch=1024, steps=4000, seed=0, cache_features=True)
GPU_BUDGET = dict(dflash_seconds=330.0, vp_seconds=120.0, vp_steps=1500, every=250,
                  heldout_windows=64, anchors=(31, 55, 79, 103), prefix_beta=0.7, prefix_tau=4.0)
TINY = dict(block_size=4, intermediate_size=32, seq_len=32, windows_per_step=2, anchors=4,
            regen_windows=8, regen_batch=4, prompt_len=8, steps=4)
TINY_BUDGET = dict(dflash_seconds=120.0, vp_seconds=60.0, vp_steps=2, every=2, heldout_windows=4,
                   anchors=(8, 20))


def run(target, tokenizer, draft, out, corpus=None, recipe=None, budget=None, log=print) -> dict:
    """Phases 1-4 of the module docstring with in-memory models; returns the JSON dict."""
    import torch

    from specoracle.fastpath.models.dflash import diagnose as dd
    from specoracle.fastpath.models.dflash.train import train_dflash

    recipe = dict(GPU_RUN, **(recipe or {}))
    budget = dict(GPU_BUDGET, **(budget or {}))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = next(target.parameters()).device
    res = dict(device=torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu",
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), recipe=recipe,
               budget={k: (list(v) if isinstance(v, tuple) else v) for k, v in budget.items()},
               torch=torch.__version__)
    path = out / "dflash_gpu.json"

    def save():
        path.write_text(json.dumps(res, indent=1))

    t0 = time.perf_counter()
    g = recipe["block_size"]
    ho = dd.heldout_blocks(target, tokenizer, n_windows=budget["heldout_windows"],
                           anchors=budget["anchors"], block=g, seq_len=recipe["seq_len"],
                           corpus=corpus)
    res["heldout_seconds"] = time.perf_counter() - t0
    res["baselines"] = {str(b): dd.baselines(target, tokenizer, ho, b, draft=draft, corpus=corpus)
                        for b in sorted({g, max(2, g // 2)})}
    save()
    for kind in ("dflash", "vp"):
        over = dict(recipe)
        if kind == "vp":
            over.update(objective="vp", prefix_beta=budget["prefix_beta"],
                        prefix_tau=budget["prefix_tau"], init_from=str(out / "dflash"),
                        steps=budget["vp_steps"])
            (out / "vp-run").mkdir(exist_ok=True)       # re-use the regenerated data
            shutil.copy(out / "dflash-run" / "regenerated.pt", out / "vp-run" / "regenerated.pt")
        over["max_seconds"] = budget[f"{kind}_seconds"]
        log(f"training {kind}")
        c = dd.curve(target, tokenizer, ho, over.pop("steps"), budget["every"], over,
                     blocks=tuple(sorted({g, max(2, g // 2)}, reverse=True)), corpus=corpus,
                     out=out / f"{kind}-run", log=log)
        res[f"{kind}_curve"] = c
        from specoracle.fastpath.models.dflash.model import DFlashDrafter
        d = DFlashDrafter.load(out / f"{kind}-run")
        d.save(out / kind, dtype=torch.bfloat16)
        d = d.to(dev)
        res[f"{kind}_table"] = {str(b): dd.drafter_rows(target, d, ho, b, name=kind)
                                for b in sorted({g, max(2, g // 2)})}
        res["seconds"] = time.perf_counter() - t0
        save()
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zoo", default="runs/zoo", help="folder with code-target, code-draft, corpus/")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="CPU smoke size")
    args = p.parse_args(argv)
    zoo = Path(args.zoo)
    for need in ("code-target", "code-draft", "corpus/heldout.txt.xz"):
        if not (zoo / need).exists():
            print(f"--zoo: {zoo / need} is missing (copy ../shared/zoo there)", file=sys.stderr)
            return 2
    import torch

    from specoracle.fastpath.models.llm.hf import load_model
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device: cuda is not available", file=sys.stderr)
        return 2
    if args.device == "cuda":
        torch.set_float32_matmul_precision("high")   # TF32 matmuls (the drafter trains in fp32)
    target, tok = load_model(str(zoo / "code-target"), device=args.device)
    draft, _ = load_model(str(zoo / "code-draft"), device=args.device)
    run(target, tok, draft, args.out, corpus=zoo / "corpus" / "heldout.txt.xz",
        recipe=TINY if args.tiny else None, budget=TINY_BUDGET if args.tiny else None,
        log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
