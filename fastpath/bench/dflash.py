"""``specoracle bench --device cpu --suite dflash``: tau and speed of the AR zoo draft, DFlash and
D2SD on the zoo target, in ONE run on the SAME prompts (ALGORITHMS.md §5.1: tau = mean
committed tokens per cycle, bonus included).

Methods (batch 1, each prompt decoded in turn, seed = prompt index, T in {0, 1}):
  * target      target-only autoregressive decoding, specoracle's own loop (engine.py)
  * ar-draft    the AR zoo draft (``zoo:code-draft``), k = 4: greedy verification at T = 0,
                chain (Leviathan) at T = 1 (engine.py)
  * dflash-b8 / dflash-b16   the shipped DFlash drafter, blocks 8 and 16 (argmax drafts +
                sample-and-match; a block-16 drafter drafting 8 serves block 8)
  * d2sd        D2SD, K = 4 branches, block 16, the shipped VP drafter
Rows: ``median_us`` = microseconds per generated token (total time / total tokens over the prompt
set), ``tok_per_s``, ``tau``, ``vs_target`` (speed-up over target-only at the same T);
``K`` = draft length k (AR) or block size G (DFlash, D2SD).

Then the cascade-attention measurement of the D2SD tree pass (fastpath/models/dflash/cascade.py): one
target pass over ``[anchor] + trie`` after a prefix of P cached tokens, plain SDPA with the
additive tree mask vs cascade (dense prefix + masked tree, merged by LSE); rows ``op =
"tree-pass"``, ``L`` = P, ``vs_sdpa`` = speed-up of cascade.

Prompts: models/zoo/prompts.bench_prompts (the first 8, quick 2, held-out zoo documents longer than 2000
characters; the drafters' training split excludes them), 64 tokens each (quick 32); 160 new
tokens (quick 24).

Suite ``dflash-cuda`` (``specoracle bench --device cuda --suite dflash-cuda``): the same rows with
the target and the drafters on the GPU; the tree-pass rows at the longest prefixes the zoo target
takes (its 512 positions). The generation paths keep the models' tensors on the device and
bring the logits to the host for verification; they have never run on a GPU, so a failure of the
decode rows there is recorded as a note and the tree-pass rows still run.
"""
from __future__ import annotations

import numpy as np

from ..registry import register_suite
from . import BenchContext

METHODS = ("target", "ar-draft", "dflash-b8", "dflash-b16", "d2sd")


def _row(method, temperature, k, tokens, seconds, tau=None, **extra):
    row = {"op": "dflash-decode", "backend": method, "B": 1, "K": k, "T": temperature,
           "median_us": seconds / max(tokens, 1) * 1e6, "tok_per_s": tokens / seconds,
           "tokens": tokens, "tau": tau}
    row.update(extra)
    return row


def decode_rows(target, draft, dflash, vp, prompts, new_tokens: int, temperatures=(0.0, 1.0),
                clock=None, progress=lambda msg: None, blocks=(8, 16), k_ar: int = 4,
                branches: int = 4, d2sd_block: int | None = None, methods=None) -> list:
    """One row per (method, T): same prompts and seeds for every method. ``methods``: a subset
    of the method names to run (default all; without "target", ``vs_target`` is None)."""
    import time

    from specoracle.fastpath.models.dflash.d2sd import generate_d2sd
    from specoracle.fastpath.models.dflash.generate import generate_dflash
    from specoracle.fastpath.models.llm.engine import autoregressive_generate, speculative_generate
    from specoracle.fastpath.models.llm.processing import Warp

    clock = clock or time.perf_counter
    rows = []
    for temp in temperatures:
        w = Warp(temp)
        runs = {"target": lambda pr, i: autoregressive_generate(
                    target, [pr], warping=w, max_new_tokens=new_tokens, seeds=i),
                "ar-draft": lambda pr, i: speculative_generate(
                    target, draft, [pr], k=k_ar, method="greedy" if temp == 0 else "chain",
                    warping=w, max_new_tokens=new_tokens, seeds=i)}
        for g in blocks:
            runs[f"dflash-b{g}"] = (lambda g: lambda pr, i: generate_dflash(
                target, dflash, pr, new_tokens, temp, "greedy", i, block_size=g))(g)
        runs["d2sd"] = lambda pr, i: generate_d2sd(target, dflash, vp, pr, new_tokens, temp, i,
                                                   k_branches=branches, block_size=d2sd_block)
        base = None
        for name, fn in runs.items():
            if methods is not None and name not in methods:
                continue
            progress(f"dflash: {name} T={temp}")
            toks, secs, taus, nodes = 0, 0.0, [], []
            for i, pr in enumerate(prompts):
                t0 = clock()
                r = fn(pr, i)
                secs += clock() - t0
                if hasattr(r, "n_tokens"):      # engine.GenerationResult
                    toks += r.n_tokens
                    taus += [a + 1 for row in r.accepted for a in row]
                else:                           # dflash_generate.DraftRunResult
                    toks += len(r.tokens)
                    taus += [a + 1 for a in r.accepted]
                    nodes += list(r.nodes)
            k = {"target": 0, "ar-draft": k_ar}.get(name)
            if k is None:
                k = int(name.split("-b")[1]) if name.startswith("dflash") else int(
                    d2sd_block or dflash.block_size)
            row = _row(name, temp, k, toks, secs, tau=float(np.mean(taus)) if taus else 1.0)
            if nodes:
                row["tree_nodes"] = float(np.mean(nodes))
            if name == "target":
                base = row
            row["vs_target"] = base["median_us"] / row["median_us"] if base else None
            rows.append(row)
    return rows


def tree_pass_rows(target, prefix_lens=(128, 384), n_nodes: int = 40, reps: int = 20,
                   clock=None) -> list:
    """Median time of one D2SD tree pass (``[anchor] + n_nodes`` trie nodes of 4 branches after a
    prefix of P cached tokens) with plain SDPA + additive tree mask vs cascade attention, on the
    target's device (synchronised before each clock read on a GPU)."""
    import copy
    import time

    import torch

    from specoracle.fastpath.models.dflash.cascade import use_cascade
    from specoracle.fastpath.models.dflash.d2sd import node_depths, tree_attention
    from specoracle.fastpath.models.llm.kv import forward_cached, new_cache

    clock = clock or time.perf_counter
    parents = [-1]                 # a shared first node, then 4 chains of m nodes under it
    for _ in range(4):
        prev = 0
        for _ in range(max(1, (n_nodes - 1) // 4)):
            parents.append(prev)
            prev = len(parents) - 1
    n_nodes = len(parents)
    depth = node_depths(parents)
    v = int(target.config.vocab_size)
    dev = next(target.parameters()).device
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    rows = []
    gen = torch.Generator().manual_seed(0)
    for p in prefix_lens:
        ids = torch.randint(1, v, (1, p), generator=gen).to(dev)
        base_cache = new_cache(target)
        with torch.inference_mode():
            forward_cached(target, base_cache, input_ids=ids)
        x = torch.randint(1, v, (1, n_nodes + 1), generator=gen).to(dev)
        pos = torch.tensor([[p] + [p + d for d in depth]], device=dev)
        mask = tree_attention(parents, p).to(dev)
        times = {}
        for name in ("sdpa", "cascade"):
            prev = use_cascade(target, name == "cascade")
            best = []
            try:
                for _ in range(reps):
                    c = copy.deepcopy(base_cache)
                    sync()
                    t0 = clock()
                    with torch.inference_mode():
                        forward_cached(target, c, input_ids=x, position_ids=pos,
                                       attention_mask=mask)
                    sync()
                    best.append(clock() - t0)
            finally:
                target.set_attn_implementation(prev if prev in ("sdpa", "eager") else "sdpa")
            times[name] = float(np.median(best)) * 1e6
        for name in ("sdpa", "cascade"):
            rows.append({"op": "tree-pass", "backend": name, "B": 1, "K": n_nodes, "L": p,
                         "median_us": times[name], "vs_sdpa": times["sdpa"] / times[name]})
    return rows


def tau_table(rows) -> list:
    """Markdown lines: method x T -> tau and speed-up (printed under the bench table)."""
    out = ["| method | K | T | tau (bonus incl.) | tok/s | vs target |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r["op"] == "dflash-decode":
            vs = "-" if r["vs_target"] is None else f"{r['vs_target']:.2f}x"
            out.append(f"| {r['backend']} | {r['K']} | {r['T']:g} | {r['tau']:.3f} | "
                       f"{r['tok_per_s']:.1f} | {vs} |")
    return out


def run_dflash(ctx: BenchContext, device: str = "cpu", suite: str = "dflash") -> list:
    """The ``dflash`` suite (CPU) and ``dflash-cuda`` (``device`` "cuda"). Sizes (``ctx.sizes``):
    ``prompts``, ``prompt_tokens``, ``new_tokens``, ``temperatures``, ``blocks`` (DFlash), and
    ``prefixes`` and ``reps`` (tree pass)."""
    import torch

    from specoracle.fastpath.models.dflash.model import DFlashDrafter
    from specoracle.fastpath.models.zoo import SHIPPED_DFLASH, SHIPPED_VP

    from specoracle.fastpath.models.zoo.prompts import bench_prompts

    from .llm import zoo_pair

    pair = zoo_pair(ctx, suite, device=device)
    if pair is None:
        return []
    target, draft, tok = pair
    dflash, vp = (DFlashDrafter.load(p).to(device) for p in (SHIPPED_DFLASH, SHIPPED_VP))
    sz = ctx.sizes(full=dict(prompts=8, prompt_tokens=64, new_tokens=160, prefixes=(128, 448), reps=30,
                             temperatures=(0.0, 1.0), blocks=(8, 16)),
                   quick=dict(prompts=2, prompt_tokens=32, new_tokens=24, prefixes=(64,), reps=5),
                   tiny=dict(prompts=1, prompt_tokens=8, new_tokens=3, prefixes=(16,), reps=2,
                             temperatures=(1.0,), blocks=(4,)))
    prompts = bench_prompts(tok, sz["prompts"], sz["prompt_tokens"])
    new = sz["new_tokens"]
    ctx.extra[suite.replace("-", "_")] = {
        "prompts": len(prompts), "prompt_tokens": len(prompts[0]), "new_tokens": new,
        "torch_threads": torch.get_num_threads(), "device": device,
        "dflash": str(SHIPPED_DFLASH.name), "vp": str(SHIPPED_VP.name)}
    rows = []
    try:
        rows = decode_rows(target, draft, dflash, vp, prompts, new, tuple(sz["temperatures"]),
                           clock=ctx.timer(), progress=ctx.progress, blocks=tuple(sz["blocks"]))
    except Exception as e:  # noqa: BLE001 - record it, still measure the tree pass
        if not device.startswith("cuda"):
            raise
        ctx.notes.append(f"{suite} decode rows failed: {type(e).__name__}: {e}"[:400])
    ctx.progress(f"{suite}: tree pass sdpa vs cascade")
    rows += tree_pass_rows(target, tuple(sz["prefixes"]), reps=sz["reps"], clock=ctx.timer())
    ctx.notes.extend(tau_table(rows))
    return rows


register_suite("dflash", "cpu", run_dflash,
               "DFlash / D2SD vs AR draft vs target-only on the zoo pair: tau, tok/s, speed-up")
register_suite("dflash-cuda", "cuda", lambda ctx: run_dflash(ctx, ctx.device or "cuda", "dflash-cuda"),
               "the dflash suite on a CUDA GPU: DFlash / D2SD tau and speed, cascade vs SDPA tree pass")
