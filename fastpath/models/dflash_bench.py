"""tau and speed of the AR zoo draft vs DFlash vs D2SD on the zoo target (CPU measurement of
issue 10; ALGORITHMS.md §5.1: tau = mean committed tokens per cycle, bonus included).

``bench(prompts, max_new_tokens, temperatures)`` runs, for each temperature and prompt, the same
seeds: target-only autoregressive decoding, the AR draft (``zoo:code-draft``, k = 4, chain),
DFlash (block 8, argmax drafts + sample-and-match) and D2SD (block 8, K = 4), and returns rows
{method, T, tau, tok_s, speedup}. Run: ``python -m specoracle.fastpath.models.dflash_bench``.
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np


def bench(prompts_text, max_new_tokens=64, temperatures=(0.0, 1.0), dflash_path=None, vp_path=None,
          block=8, branches=4, seed=0):
    from specoracle.cli.zoo_dflash import SHIPPED

    from .d2sd import generate_d2sd
    from .dflash import DFlashDrafter
    from .dflash_generate import generate_dflash
    from .engine import autoregressive_generate, speculative_generate
    from .hf import load_pair
    from .processing import Warp

    target, draft, tok = load_pair("zoo:code-target", "zoo:code-draft")
    dfl = DFlashDrafter.load(dflash_path or SHIPPED / "tiny-dflash")
    vp = DFlashDrafter.load(vp_path or SHIPPED / "tiny-vp")
    prompts = [tok(p).input_ids for p in prompts_text]
    rows = []
    for temp in temperatures:
        acc = {m: {"tau": [], "tok": 0, "sec": 0.0} for m in ("target", "ar-draft", "dflash", "d2sd")}
        for i, pr in enumerate(prompts):
            w = Warp(temp)
            r = autoregressive_generate(target, [pr], warping=w, max_new_tokens=max_new_tokens, seeds=seed + i)
            acc["target"]["tok"] += r.n_tokens
            acc["target"]["sec"] += r.seconds
            r = speculative_generate(target, draft, [pr], k=4, method="greedy" if temp == 0 else "chain",
                                     warping=w, max_new_tokens=max_new_tokens, seeds=seed + i)
            acc["ar-draft"]["tau"] += [a + 1 for row in r.accepted for a in row]
            acc["ar-draft"]["tok"] += r.n_tokens
            acc["ar-draft"]["sec"] += r.seconds
            r = generate_dflash(target, dfl, pr, max_new_tokens, temp, "greedy", seed + i, block_size=block)
            acc["dflash"]["tau"] += [a + 1 for a in r.accepted]
            acc["dflash"]["tok"] += len(r.tokens)
            acc["dflash"]["sec"] += r.seconds
            r = generate_d2sd(target, dfl, vp, pr, max_new_tokens, temp, seed + i, k_branches=branches,
                              block_size=block)
            acc["d2sd"]["tau"] += [a + 1 for a in r.accepted]
            acc["d2sd"]["tok"] += len(r.tokens)
            acc["d2sd"]["sec"] += r.seconds
        base = acc["target"]["tok"] / acc["target"]["sec"]
        for m, a in acc.items():
            tps = a["tok"] / a["sec"]
            rows.append(dict(method=m, T=temp, tau=float(np.mean(a["tau"])) if a["tau"] else 1.0,
                             tok_s=tps, speedup=tps / base))
    return rows


PROMPTS = ["def main(argv=None):\n    ", "import numpy as np\n\n\ndef ", "class Foo:\n    def __init__(self",
           "KING RICHARD III:\n", "    for i in range(", "from typing import", "    return self.", "# Copyright"]


if __name__ == "__main__":  # pragma: no cover - measurement script
    import torch
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    t0 = time.time()
    n_prompts = int(sys.argv[3]) if len(sys.argv) > 3 else len(PROMPTS)
    out = bench(PROMPTS[:n_prompts], max_new_tokens=int(sys.argv[2]) if len(sys.argv) > 2 else 64)
    for r in out:
        print(json.dumps(r))
    print(f"# {time.time() - t0:.0f}s", flush=True)
