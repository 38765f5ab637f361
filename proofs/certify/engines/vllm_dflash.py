"""specoracle's DFlash drafter served by vLLM V1 ("Served by vLLM, certified there"):
tau in vLLM against specoracle's own DFlash generation, T = 0 token identity, T = 1 law.

For each k (= block size - 1; vLLM drafts k masks after the anchor) one vLLM engine start with
``speculative_config={"method": "dflash", "model": <export of the drafter>}``
(fastpath/models/dflash/export.py), then:

  * tau: the held-out prompts of ``specoracle bench --suite dflash`` (bench_llm.bench_prompts,
    8 x 64 tokens, 160 new tokens, EOS ignored as in the bench), ONE ``generate`` call, T = 0;
    tau = 1 + accepted / drafts from vLLM's spec-decode counters (``LLM.get_metrics``), against
    specoracle's ``generate_dflash`` (greedy mode, same drafter, same block) on the same prompts:
    tau = mean committed tokens per cycle. Both are "tokens per target step with drafts".
  * T = 0 identity: vLLM DFlash tokens vs specoracle's DFlash tokens (= the target's greedy
    continuation, cache-based, float32) and, if run, vs vLLM without speculation.
  * T = 1 (``--law``): vllm_verdicts.law_check, the law of the first 2 tokens over the full
    vocabulary (16 strata), 4 prompts, Pearson chi-square per prompt, Holm; optionally with
    the engine's ``expand_kernel`` CPU fallback replaced (``patch_expand``, fault localisation).

Run (project venv; the vLLM venv must import this checkout): ``python -m
specoracle.proofs.certify.engines.vllm_dflash --json FILE [--ks 7,15] [--none] [--law] [--patch-expand]``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from .vllm_verdicts import write_record

NEW_TOKENS = 160
N_PROMPTS, PROMPT_TOKENS = 8, 64


def specoracle_runs(target, drafter, prompts, block: int, new_tokens: int) -> dict:
    """specoracle's own DFlash at T = 0 (greedy mode): tokens and tau over the prompt set."""
    import numpy as np

    from specoracle.fastpath.models.dflash.generate import generate_dflash

    toks, taus, secs = [], [], 0.0
    for i, pr in enumerate(prompts):
        r = generate_dflash(target, drafter, pr, new_tokens, 0.0, "greedy", i, block_size=block)
        toks.append(list(r.tokens))
        taus += [a + 1 for a in r.accepted]
        secs += r.seconds
    return {"tokens": toks, "tau": float(np.mean(taus)), "cycles": len(taus), "seconds": round(secs, 1)}


def run(ks=(7, 15), *, none: bool = False, law: bool = False, patch_expand: bool = False,
        law_per_prompt: int = 300, law_batch: int = 150, new_tokens: int = NEW_TOKENS,
        n_prompts: int = N_PROMPTS, eager: bool = False, log=print) -> dict:
    """The record (module doc); one engine start per k (and one for ``none``); the law check
    (``law``) runs with the first k only. ``eager``: vLLM's ``enforce_eager`` (no torch.compile:
    minutes less per start on a loaded machine; the sampler is the same)."""
    import torch

    torch.set_num_threads(1)  # specoracle's own runs: more threads only spin on a shared machine
    from specoracle.fastpath.models.zoo.prompts import bench_prompts
    from specoracle.fastpath.models.dflash.model import DFlashDrafter
    from specoracle.fastpath.models.dflash.export import SHIPPED_DFLASH
    from specoracle.fastpath.models.llm.hf import load_model

    from .vllm import WorkerError, make_engine, tau_from_counters
    from .vllm_verdicts import EOS_ID, greedy_identity, law_check

    torch.manual_seed(0)
    target, tok = load_model("zoo:code-target")
    drafter = DFlashDrafter.load(SHIPPED_DFLASH)
    prompts = bench_prompts(tok, n_prompts, PROMPT_TOKENS)
    law_prompts = bench_prompts(tok, 4, 24)
    record = {"date": dt.date.today().isoformat(), "drafter": str(SHIPPED_DFLASH), "prompts": len(prompts),
              "prompt_tokens": PROMPT_TOKENS, "new_tokens": new_tokens, "runs": {}}
    record["enforce_eager"] = eager
    extra = {"enforce_eager": True} if eager else {}
    base = None
    if none:
        with make_engine(target="zoo:code-target", draft=None, method="none", k=1, **extra) as eng:
            base = eng.generate(prompts, n=new_tokens, seeds=list(range(len(prompts))), temperature=0.0,
                                ignore_eos=True)
    for k in ks:
        own = specoracle_runs(target, drafter, prompts, k + 1, new_tokens)
        log(f"[vllm-dflash] specoracle block {k + 1}: tau {own['tau']:.3f} ({own['seconds']} s)")
        rec = {"k": k, "block": k + 1, "specoracle_tau": own["tau"], "specoracle_cycles": own["cycles"]}
        t0 = time.perf_counter()
        eng = make_engine(target="zoo:code-target", draft=None, method="dflash", k=k, patch_expand=patch_expand,
                          **extra)
        try:
            rec.update(version=eng.version, start_s=round(time.perf_counter() - t0, 1))
            m0 = eng.metrics()
            t0 = time.perf_counter()
            toks = eng.generate(prompts, n=new_tokens, seeds=list(range(len(prompts))), temperature=0.0,
                                ignore_eos=True)
            m1 = eng.metrics()
            rec.update(generate_s=round(time.perf_counter() - t0, 1), counters=m1,
                       vllm_tau=tau_from_counters(m0, m1),
                       identity_vs_specoracle_dflash=greedy_identity(toks, own["tokens"]))
            if base is not None:
                rec["identity_vs_vllm_none"] = greedy_identity(toks, base)
            log(f"[vllm-dflash] vLLM k={k}: tau {rec['vllm_tau']:.3f}; identity "
                f"{rec['identity_vs_specoracle_dflash']['identical']}")
            if law and k == ks[0]:
                try:
                    res = law_check(eng, target, law_prompts, n=2, per_prompt=law_per_prompt, temperature=1.0,
                                    seed=1000, batch=law_batch, strata=16)
                except WorkerError as e:
                    res = {"verdict": "not exact: engine crashed", "error": str(e).splitlines()[0][:300]}
                rec["law_T1"] = res
                log(f"[vllm-dflash] vLLM k={k} T=1: {res['verdict']} {res.get('p_values')}")
        finally:
            eng.close()
        record["runs"][f"k{k}"] = rec
    record["eos_id"] = EOS_ID
    return record


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", metavar="FILE", required=True)
    ap.add_argument("--ks", default="7,15", help="comma-separated k (= block - 1), one engine start each")
    ap.add_argument("--none", action="store_true", help="also run vLLM without speculation (T = 0 identity)")
    ap.add_argument("--law", action="store_true", help="T = 1 law of the first 2 tokens (4 prompts)")
    ap.add_argument("--patch-expand", action="store_true", help="replace vLLM's CPU expand_kernel fallback")
    ap.add_argument("--per-prompt", type=int, default=300, help="T = 1 requests per prompt (default 300)")
    ap.add_argument("--new-tokens", type=int, default=NEW_TOKENS)
    ap.add_argument("--prompts", type=int, default=N_PROMPTS)
    ap.add_argument("--eager", action="store_true", help="vLLM enforce_eager (no torch.compile)")
    args = ap.parse_args(argv)
    record = run(tuple(int(x) for x in args.ks.split(",")), none=args.none, law=args.law,
                 patch_expand=args.patch_expand, law_per_prompt=args.per_prompt, new_tokens=args.new_tokens,
                 n_prompts=args.prompts, eager=args.eager, log=lambda s: print(s, file=sys.stderr, flush=True))
    write_record(record, args.json, "vllm_dflash", argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
