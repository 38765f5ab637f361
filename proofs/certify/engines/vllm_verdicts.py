"""Engine-level checks of vLLM V1 on the zoo pair, black box: only token ids come out.

  * T = 0: every token of the speculative engine equals the same engine without speculation
    (and, reported alongside, the target's greedy tokens from specoracle's own loop on the
    transformers model: a different kernel stack, so equality there is informative, not required);
  * T = 1 (with top-k / top-p): the law of the first n generated tokens against the target's
    exact law, computed from the transformers target in float32 by
    :func:`~specoracle.proofs.certify.lossless.exact_prefix_law`; Pearson chi-square per prompt
    (:func:`~specoracle.proofs.certify.lossless.prefix_law_gof`), Holm over the prompts, so the
    family-wise false-positive rate of one configuration is <= alpha; ``detectable`` is the
    largest per-prompt TV detected with power 0.9 at the per-prompt Bonferroni level.

Batching: ``batch=None`` sends all requests (prompts interleaved, seeds ``seed + j``) in ONE
``generate`` call (several different requests per batch); ``batch=1`` sends one request per call.

Run: ``python -m specoracle.proofs.certify.engines.vllm_verdicts --json FILE`` (in the project venv; each
method is one engine start; the plan below is what docs/CERTIFICATION.md records).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections import Counter

import numpy as np

EOS_ID = 0  # the zoo pair's eos_token_id


def greedy_identity(tokens_a, tokens_b) -> dict:
    """Token-by-token comparison of two lists of generated sequences."""
    diffs = [i for i, (a, b) in enumerate(zip(tokens_a, tokens_b)) if list(a) != list(b)]
    first = None
    if diffs:
        i = diffs[0]
        a, b = list(tokens_a[i]), list(tokens_b[i])
        pos = next((j for j, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        first = {"prompt": i, "position": pos, "a": a[pos:pos + 4], "b": b[pos:pos + 4]}
    return {"identical": not diffs and len(tokens_a) == len(tokens_b), "prompts": len(tokens_a),
            "tokens": int(sum(len(t) for t in tokens_a)), "differing_prompts": len(diffs), "first": first}


OTHER = (-1,)  # the cell of a stratified law that pools every first token outside the strata (sorts with ids)


def stratified_pair_law(target, prompt, warping, strata: int = 16):
    """The exact law of the first TWO tokens over the full vocabulary (no top-k needed):
    cells ``(a, b)`` for the ``strata`` most likely first tokens a (probability p(a) p(b | a)),
    ``(EOS,)`` if EOS is among them, and :data:`OTHER` for every other first token (its
    probability 1 - sum p(a)). A sample is mapped to its cell with :func:`stratum_cell`.
    In vLLM the first token comes from the prefill step and the second from the first
    speculative step, so this law sees the rejection sampler at full support. Returns
    ``(law, inf)`` (the margin slot of exact_prefix_law's return, unused here)."""
    import torch

    from specoracle.fastpath.models.llm.processing import warp

    with torch.inference_mode():
        logits = target(input_ids=torch.tensor([list(prompt)])).logits[:, -1].float()
        p1 = warp(logits, warping).numpy()[0]
        top = [int(a) for a in np.argsort(-p1, kind="stable")[:strata] if p1[a] > 0]
        live = [a for a in top if a != EOS_ID]
        ids = torch.tensor([list(prompt) + [a] for a in live])
        p2 = warp(target(input_ids=ids).logits[:, -1].float(), warping).numpy()
    law = {(EOS_ID,): float(p1[EOS_ID])} if EOS_ID in top else {}
    for a, row in zip(live, p2):
        for b in np.flatnonzero(row > 0):
            law[(a, int(b))] = float(p1[a] * row[b])
    law[OTHER] = max(0.0, 1.0 - float(sum(p1[a] for a in top)))
    return law, float("inf")


def stratum_cell(toks, firsts):
    """The cell of a sampled sequence in a :func:`stratified_pair_law` law whose strata (first
    tokens) are ``firsts``: the sequence itself (an impossible one stays itself: p = 0), or
    :data:`OTHER`."""
    t = tuple(toks)
    return t if t and t[0] in firsts else OTHER


def law_check(engine, target, prompts, *, n: int, per_prompt: int, temperature: float = 1.0,
              top_k=None, top_p=None, alpha: float = 1e-3, seed: int = 0, batch=None, laws=None,
              strata: int | None = None) -> dict:
    """Sample ``per_prompt`` requests per prompt from ``engine`` and test the law of their first
    ``n`` tokens against the exact law of each prompt (module doc); ``strata`` (n = 2 only):
    the full-vocabulary law of :func:`stratified_pair_law` instead. Returns a JSON-able dict."""
    from specoracle.fastpath.models.llm.processing import Warp
    from specoracle.proofs.stats import holm

    from ..lossless import exact_prefix_law, prefix_law_gof

    warping = Warp(temperature, top_k, top_p)
    if laws is None and strata:
        laws = [stratified_pair_law(target, p, warping, strata) for p in prompts]
    elif laws is None:
        laws = [exact_prefix_law(target, p, warping, n, eos_id=EOS_ID, return_margin=True) for p in prompts]
    P = len(prompts)
    total = per_prompt * P
    which = [j % P for j in range(total)]
    seeds = [seed + j for j in range(total)]
    step = total if batch is None else int(batch)
    counts = [Counter() for _ in prompts]
    firsts = [{c[0] for c in law if c != OTHER} if OTHER in law else None for law, _ in laws]
    t0 = time.perf_counter()
    for s in range(0, total, step):
        idx = range(s, min(total, s + step))
        out = engine.generate([prompts[which[j]] for j in idx], n=n, seeds=[seeds[j] for j in idx],
                              temperature=temperature, top_k=top_k, top_p=top_p)
        for j, toks in zip(idx, out):
            f = firsts[which[j]]
            counts[which[j]][tuple(toks) if f is None else stratum_cell(toks, f)] += 1
    seconds = time.perf_counter() - t0
    tests = [prefix_law_gof(counts[i], laws[i][0], alpha=alpha / P,
                            name=f"prompt {i}") for i in range(P)]
    reject = holm([t.p_value for t in tests], alpha)
    return {"temperature": temperature, "top_k": top_k, "top_p": top_p, "n": n, "prompts": P,
            "strata": strata,
            "per_prompt": per_prompt, "requests": total, "batch": "all" if batch is None else int(batch),
            "alpha": alpha, "seed": seed, "verdict": "not exact" if reject.any() else "exact",
            "p_values": [float(t.p_value) for t in tests], "rejected": [bool(r) for r in reject],
            "impossible": [int(t.impossible) for t in tests],
            "cells": [len(laws[i][0]) for i in range(P)],
            "detectable_tv": float(max(t.detectable for t in tests)),
            "min_topk_margin": _finite(min(m for _, m in laws)), "seconds": round(seconds, 1)}


def _finite(x):
    return float(x) if np.isfinite(x) else None


# ---------------------------------------------------------------- the recorded plan

# (method, k): each is one engine start
METHODS = (("none", 0), ("draft_model", 3), ("ngram", 3), ("suffix", 3))
# T > 0 law configurations: (label, temperature, top_k, top_p, n, per_prompt, batch, strata).
# Configurations that crash the engine (vLLM 0.32.0 CPU: top-k, see docs) come last.
LAW_FULL = (("T=1", 1.0, None, None, 2, 500, None, 16),
            ("T=1 top-p 0.6", 1.0, None, 0.6, 2, 500, None, None),
            ("T=1, batch 1", 1.0, None, None, 2, 100, 1, 16),
            ("T=1 top-k 3", 1.0, 3, None, 3, 500, None, None))
LAW_SHORT = LAW_FULL[:1]


def run_plan(methods=METHODS, *, quick: bool = False, alpha: float = 1e-3, log=print, max_batch=None,
             labels=None) -> dict:
    """Every check of the plan; one engine start per method. Returns the JSON record."""
    import torch

    from specoracle.fastpath.models.zoo.prompts import bench_prompts
    from specoracle.fastpath.models.llm.engine import autoregressive_generate
    from specoracle.fastpath.models.llm.hf import load_pair
    from specoracle.fastpath.models.llm.processing import Warp

    from ..lossless import exact_prefix_law
    from .vllm import WorkerError, make_engine

    torch.manual_seed(0)
    target, _, tok = load_pair("zoo:code-target", "zoo:code-draft")
    greedy_prompts = bench_prompts(tok, 2 if quick else 8, 32)
    greedy_n = 16 if quick else 32
    law_prompts = bench_prompts(tok, 4, 24)[:2 if quick else 4]
    hf = autoregressive_generate(target, greedy_prompts, warping=Warp(0.0), max_new_tokens=greedy_n,
                                 eos_id=EOS_ID, seeds=0).tokens
    laws = {}
    record = {"date": dt.date.today().isoformat(), "alpha": alpha, "methods": {}}
    reference = None
    for method, k in methods:
        log(f"[vllm] starting engine method={method} k={k}")
        t0 = time.perf_counter()
        try:
            eng = make_engine(target="zoo:code-target", draft="zoo:code-draft" if method == "draft_model" else None,
                              method=method, k=k or 1)
        except WorkerError as e:  # e.g. suffix decoding without arctic-inference: does not run here
            record["methods"][method] = {"k": k, "not_available": str(e).splitlines()[0][:300]}
            log(f"[vllm] {method}: not available: {str(e).splitlines()[0][:300]}")
            continue
        rec = {"k": k, "start_s": round(time.perf_counter() - t0, 1), "version": eng.version, "checks": []}
        record["vllm_version"] = eng.version
        try:
            toks = eng.generate(greedy_prompts, n=greedy_n, seeds=list(range(len(greedy_prompts))),
                                temperature=0.0)
            if method == "none":
                reference = toks
            elif reference is not None:
                rec["greedy_vs_no_spec"] = greedy_identity(toks, reference)
            rec["greedy_vs_transformers"] = greedy_identity(toks, hf)
            log(f"[vllm] {method}: T=0 {json.dumps({x: rec[x] for x in rec if x.startswith('greedy')})}")
            plan = () if method == "none" else (LAW_FULL if method == "draft_model" and not quick else LAW_SHORT)
            for label, T, top_k, top_p, n, per, batch, strata in plan:
                if labels and label not in labels:
                    continue
                batch = max_batch if batch is None else batch
                key = (T, top_k, top_p, n, strata)
                if key not in laws:
                    w = Warp(T, top_k, top_p)
                    laws[key] = [stratified_pair_law(target, p, w, strata) if strata else
                                 exact_prefix_law(target, p, w, n, eos_id=EOS_ID, return_margin=True)
                                 for p in law_prompts]
                per = min(per, 60) if quick else per
                try:
                    res = law_check(eng, target, law_prompts, n=n, per_prompt=per, temperature=T, top_k=top_k,
                                    top_p=top_p, alpha=alpha, seed=1000, batch=batch, laws=laws[key],
                                    strata=strata)
                except WorkerError as e:  # the engine died: a verdict too (not exact), stop this engine
                    rec["checks"].append({"label": label, "temperature": T, "top_k": top_k, "top_p": top_p,
                                          "n": n, "verdict": "not exact: engine crashed",
                                          "error": str(e).splitlines()[0][:300]})
                    log(f"[vllm] {method}: {label}: engine crashed: {str(e).splitlines()[0][:200]}")
                    break
                res["label"] = label
                rec["checks"].append(res)
                log(f"[vllm] {method}: {label}: {res['verdict']} p={min(res['p_values']):.3g} "
                    f"TV>={res['detectable_tv']:.3f} ({res['seconds']} s)")
        finally:
            eng.close()
        record["methods"][method] = rec
        log(f"[vllm] {method} done: {json.dumps(rec)[:2000]}")
    return record


def write_record(record: dict, path: str, module: str, argv=None) -> None:
    """Write a run's ``record`` as JSON to ``path``, with the command line that made it
    (``python -m specoracle.proofs.certify.engines.<module>`` and ``argv`` or sys.argv[1:])."""
    record["command"] = f"python -m specoracle.proofs.certify.engines.{module} " + " ".join(argv or sys.argv[1:])
    with open(path, "w") as fh:
        json.dump(record, fh, indent=1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", metavar="FILE", required=True, help="write the record here")
    ap.add_argument("--methods", default=",".join(m for m, _ in METHODS),
                    help="comma-separated subset of none,draft_model,ngram,suffix")
    ap.add_argument("--quick", action="store_true", help="small samples (a smoke run, not a verdict)")
    ap.add_argument("--max-batch", type=int, default=None,
                    help="requests per generate call for the 'all in one call' checks (default: all)")
    ap.add_argument("--checks", default=None, help="semicolon-separated subset of the check labels")
    args = ap.parse_args(argv)
    chosen = [m for m in METHODS if m[0] in args.methods.split(",")]
    record = run_plan(chosen, quick=args.quick, log=lambda s: print(s, file=sys.stderr, flush=True),
                      max_batch=args.max_batch, labels=args.checks.split(";") if args.checks else None)
    write_record(record, args.json, "vllm_verdicts", argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
