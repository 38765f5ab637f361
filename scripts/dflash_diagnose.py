#!/usr/bin/env python
"""Diagnose the DFlash / VP drafters of the zoo target on fixed held-out blocks.

  python scripts/dflash_diagnose.py table --json runs/diag/table.json
  python scripts/dflash_diagnose.py curves --variants "shipped recipe" "decay 2" --steps 120 \\
      --every 20 --json runs/diag/curves.json
  python scripts/dflash_diagnose.py plot --curves runs/diag/curves*.json --table runs/diag/table.json \\
      --out docs/figures/dflash_diagnosis.png

``table``: n-gram tables of the training documents, the AR zoo draft and each --drafter (as
trained, target features zeroed, features of another window), scored against the target's greedy
continuation (tau at T = 0 per block) and against the text, at blocks 16 and 8, plus the probes
(head / norm scales, off-by-one). ``curves``: short training runs of the variants of
fastpath/models/dflash_diagnose.VARIANTS with held-out tau every --every steps. ``plot``: the
one figure. The held-out blocks are cached in --heldout (recomputing them takes minutes).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "fastpath" / "models" / "dflash_weights"


def _models(args, draft=False):
    import torch

    from specoracle.fastpath.models.llm.hf import load_model
    torch.set_num_threads(args.threads)
    target, tok = load_model(args.target)
    return target, tok, (load_model(args.draft)[0] if draft else None)


def _heldout(args, target, tok):
    from specoracle.fastpath.models.dflash import diagnose as dd
    path = Path(args.heldout)
    if path.is_file():
        return dd.load_heldout(target, path)
    ho = dd.heldout_blocks(target, tok, n_windows=args.windows, corpus=args.corpus)
    path.parent.mkdir(parents=True, exist_ok=True)
    dd.save_heldout(ho, path)
    return ho


def cmd_table(args):
    from specoracle.fastpath.models.dflash import diagnose as dd
    from specoracle.fastpath.models.dflash.model import DFlashDrafter
    target, tok, draft = _models(args, draft=True)
    ho = _heldout(args, target, tok)
    drafters = args.drafter or [str(SHIPPED / "cpu-dflash"), str(SHIPPED / "cpu-vp")]
    out = {"blocks": {}, "probes": {}}
    for g in (16, 8):
        rows = dd.baselines(target, tok, ho, g, draft=draft, corpus=args.corpus)
        for folder in drafters:
            d = DFlashDrafter.load(folder)
            rows.update(dd.drafter_rows(target, d, ho, g, name=Path(folder).name))
            out["probes"][Path(folder).name] = dd.probes(target, d, ho)
        out["blocks"][str(g)] = rows
        print(f"block {g}\n{dd.table(rows)}\n")
    print(json.dumps(out["probes"], indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


def cmd_curves(args):
    from specoracle.fastpath.models.dflash import diagnose as dd
    from specoracle.fastpath.models.dflash.train import FeatureCache
    unknown = [v for v in args.variants if v not in dd.VARIANTS]
    if unknown:
        print(f"--variants: unknown {unknown}; known: {list(dd.VARIANTS)}", file=sys.stderr)
        sys.exit(2)
    target, tok, _ = _models(args)
    ho = _heldout(args, target, tok)
    feats = FeatureCache(target, (1, 2, 3, 4, 5), 0)   # shared: every variant sees the same windows
    res = {}
    for name in args.variants:
        print(f"variant {name}", flush=True)
        over = dict(dd.VARIANTS[name])
        if args.init_from:
            over.update(init_from=args.init_from)
        if args.lr:
            over.update(lr=args.lr)
        if args.max_seconds:
            over.update(max_seconds=args.max_seconds)
        slug = "".join(c if c.isalnum() else "_" for c in name)
        out = Path(args.out) / slug if args.out else None
        label = f"{name} (from {Path(args.init_from).name})" if args.init_from else name
        res[label] = dd.curve(target, tok, ho, args.steps, args.every, over,
                              feature_cache=feats, corpus=args.corpus, out=out,
                              checkpoint_every=args.every if out else 0, resume=args.resume,
                              log=lambda m: print(m, flush=True))
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1))


def cmd_plot(args):
    from specoracle.fastpath.models.dflash import diagnose as dd
    curves = {}
    for f in args.curves:
        curves.update(json.loads(Path(f).read_text()))
    base = {}
    if args.table:
        rows = json.loads(Path(args.table).read_text())["blocks"]["16"]
        base = {k: v["tau0"] for k, v in rows.items() if k.startswith(("bigram", "AR draft", "cpu-dflash"))
                and "features" not in k}
    fit = None
    if args.fit:
        pts = [(p["tokens"] + dd.tokens_offset(curves[n].get("overrides", {})), p["tau0_b16"])
               for n in args.fit for p in curves[n]["points"]]
        fit = dd.extrapolate([t for t, _ in pts], [y for _, y in pts], args.goal)
        print(json.dumps(fit))
    dd.plot(curves, args.out, base, fit=fit)
    print(args.out)


def cmd_tau(args):
    """tau of DFlash (blocks 8, 16) and D2SD on the bench prompts (bench --suite dflash's
    decode_rows, restricted to --methods) for the given drafter folders."""
    from specoracle.fastpath.models.zoo.prompts import bench_prompts
    from specoracle.fastpath.models.dflash.model import DFlashDrafter
    from specoracle.fastpath.models.dflash_bench import decode_rows, tau_table
    target, tok, draft = _models(args, draft=True)
    prompts = bench_prompts(tok, args.prompts, 64)
    rows = decode_rows(target, draft, DFlashDrafter.load(args.dflash), DFlashDrafter.load(args.vp),
                       prompts, args.new_tokens, temperatures=tuple(args.temperatures),
                       methods=args.methods, progress=lambda m: print(m, flush=True))
    print("\n".join(tau_table(rows)))
    if args.json:
        Path(args.json).write_text(json.dumps(dict(rows=rows, dflash=args.dflash, vp=args.vp,
                                                   prompts=len(prompts), new_tokens=args.new_tokens),
                                              indent=1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="zoo:code-target")
    p.add_argument("--draft", default="zoo:code-draft")
    p.add_argument("--corpus", default=None, help="text file (.xz ok); default: the zoo corpus")
    p.add_argument("--heldout", default="runs/diag/heldout.pt", help="cache of the held-out blocks")
    p.add_argument("--windows", type=int, default=64, help="held-out windows (x 4 anchors)")
    p.add_argument("--threads", type=int, default=1)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("table")
    t.add_argument("--drafter", action="append", help="drafter folder (repeatable); default: shipped")
    t.add_argument("--json")
    c = sub.add_parser("curves")
    c.add_argument("--variants", nargs="+", required=True)
    c.add_argument("--steps", type=int, default=120)
    c.add_argument("--every", type=int, default=20)
    c.add_argument("--json")
    c.add_argument("--init-from", help="continue from this drafter folder (same architecture)")
    c.add_argument("--lr", type=float, help="override the variant's learning rate")
    c.add_argument("--max-seconds", type=float, help="stop each run after this wall time")
    c.add_argument("--out", help="save each variant's drafter (and checkpoints) under OUT/<variant>")
    c.add_argument("--resume", action="store_true", help="continue each variant from OUT/<variant>/checkpoint")
    u = sub.add_parser("tau", help="tau on the bench prompts (decode_rows of bench --suite dflash)")
    u.add_argument("--dflash", default=str(SHIPPED / "cpu-dflash"))
    u.add_argument("--vp", default=str(SHIPPED / "cpu-vp"))
    u.add_argument("--methods", nargs="+", default=["dflash-b8", "dflash-b16", "d2sd"])
    u.add_argument("--temperatures", nargs="+", type=float, default=[0.0, 1.0])
    u.add_argument("--prompts", type=int, default=8)
    u.add_argument("--new-tokens", type=int, default=160)
    u.add_argument("--json")
    q = sub.add_parser("plot")
    q.add_argument("--curves", nargs="+", required=True)
    q.add_argument("--table")
    q.add_argument("--fit", nargs="+", help="curves whose points (block 16) the power law is fitted to")
    q.add_argument("--goal", type=float, default=2.715, help="tau the fit is extrapolated to")
    q.add_argument("--out", default=str(ROOT / "docs" / "figures" / "dflash_diagnosis.png"))
    args = p.parse_args(argv)
    {"table": cmd_table, "curves": cmd_curves, "plot": cmd_plot, "tau": cmd_tau}[args.cmd](args)


if __name__ == "__main__":
    main()
