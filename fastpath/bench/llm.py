"""`specoracle bench --suite llm` / `llm-tau` / `llm-cuda`: end-to-end decoding on the zoo pair.

In one run, on the same pair, prompts and settings (batch 1, each prompt decoded in turn):
  * ar          target-only autoregressive decoding with specoracle's own loop (engine.py)
  * spec-chain / spec-block   specoracle speculative decoding, k in {2, 4, 8}, T in {0, 1}
  * hf          Hugging Face ``generate`` of the target alone
  * hf-assisted Hugging Face assisted generation (``assistant_model=draft``, k drafts)
  * vllm / vllm-draft   vLLM V1 on the CPU without speculation / with the draft model (k = 4),
              when the vLLM venv exists (scripts/setup-vllm-env.sh; else a note says why not)
Rows: ``median_us`` = microseconds per generated token (total time / total tokens, the
whole prompt set), ``tok_per_s``, ``tau`` (speculative: mean tokens per target call,
bonus included), ``vs_ar`` (speed-up over ``ar`` at the same temperature).

Prompts: the first 8 (quick: 2) held-out documents of the zoo corpus
($SPECORACLE_ZOO/corpus/heldout.txt.xz, installed by ``zoo install`` with the models), 64
tokens each (quick: 32), 200 new tokens (quick: 32); without the corpus, fixed snippets.
T = 1 means plain sampling (no top-k/top-p); T = 0 greedy. Seeds fixed per prompt.
Rows ``ar-static`` and ``spec-*-static`` (k = 4) decode the same prompts through the
static-cache path (fastpath/models/llm/static.py, ``cache="static"``); ``vs_dynamic`` = the
dynamic row's time / the static row's time (> 1: static is faster).

Suite ``llm-cuda`` (``specoracle bench --device cuda --suite llm-cuda``): the same rows with
both models on the GPU (fp32), the static rows as CUDA graphs (``-static-graphs``) at every
k, batch 8 and 64 rows (T = 1, AR and block k = 4), and ``llm-step`` rows: one captured draft
step vs one captured target step of k+1 = 5 positions, whose ratio is the draft/target cost
ratio c of the speed-up model (the CPU suite has them too, for the dynamic and the static
path). Not run yet: no GPU was available when it was written.

Suite ``llm-tau`` (:func:`run_llm_tau`): the PAIRED block-vs-chain comparison of
fastpath/models/llm/tau_paired.py: per context, one drafted block and one target call, and for
both verifiers the exact conditional expected tokens per round; rows per (setting, k,
source) with the paired difference, its cluster standard error, a paired t test and a
sign test.
"""
from __future__ import annotations

from ..registry import register_suite
from specoracle.fastpath.models.zoo.prompts import bench_prompts

from . import BenchContext

def zoo_pair(ctx: BenchContext, suite: str, device: str = "cpu"):
    """The zoo pair ``(target, draft, tokenizer)`` for a bench suite, or ``None`` after adding a
    note that says why the suite was skipped (a CUDA ``device`` without a CUDA device, or no
    zoo installed)."""
    import torch

    from specoracle.fastpath.models.llm.hf import load_pair
    from specoracle.fastpath.models.zoo.registry import zoo_reason

    if device.startswith("cuda") and not torch.cuda.is_available():
        ctx.notes.append(f"{suite} suite skipped: no CUDA device")
        return None
    reason = zoo_reason("zoo:code-target", "zoo:code-draft")
    if reason:
        ctx.notes.append(f"{suite} suite skipped: {reason}")
        return None
    return load_pair("zoo:code-target", "zoo:code-draft", device=device)


def _row(backend, temperature, k, tokens, seconds, tau=None, B=1, **extra):
    row = {"op": "llm-decode", "backend": backend, "B": B, "K": k, "T": temperature,
           "median_us": seconds / max(tokens, 1) * 1e6, "tok_per_s": tokens / seconds,
           "tokens": tokens, "tau": tau}
    row.update(extra)
    return row


def run_llm(ctx: BenchContext, device: str = "cpu", suite: str = "llm") -> list:
    """The ``llm`` suite (``device="cpu"``) and the ``llm-cuda`` suite (``suite="llm-cuda"``:
    the static rows at every k, as CUDA graphs on a CUDA device, plus batch 8 / 64 rows; on the
    CPU, at ``ctx.tiny``, the same rows as plumbing with the static path eager).

    Sizes (``ctx.sizes``): ``prompts``, ``prompt_tokens``, ``new_tokens``, ``ks``, ``batches``
    (the llm-cuda batch rows), ``temperatures``, ``methods``, ``hf`` (the HF rows), ``vllm`` (the CPU suite's
    vLLM rows)."""
    import torch

    from specoracle.fastpath.models.llm.engine import Runtime, autoregressive_generate, speculative_generate
    from specoracle.fastpath.models.llm.processing import Warp

    pair = zoo_pair(ctx, suite, device=device)
    if pair is None:
        return []
    target, draft, tok = pair
    sz = ctx.sizes(full=dict(prompts=8, prompt_tokens=64, new_tokens=200, ks=(2, 4, 8), batches=(8, 64),
                             temperatures=(0.0, 1.0), methods=("chain", "block"), hf=True, vllm=True),
                   quick=dict(prompts=2, prompt_tokens=32, new_tokens=32, ks=(4,)),
                   tiny=dict(prompts=1, prompt_tokens=8, new_tokens=3, ks=(2,), batches=(2,),
                             temperatures=(1.0,), methods=("block",), hf=False, vllm=False))
    cuda = device.startswith("cuda")
    gpu_suite = suite == "llm-cuda"
    prompts = bench_prompts(tok, sz["prompts"], sz["prompt_tokens"])
    new = sz["new_tokens"]
    ks = tuple(sz["ks"])
    ref_k = 4 if 4 in ks else ks[0]     # the CPU suite's static rows: the issue's reference k
    temps = tuple(sz["temperatures"])
    static_name = "-static-graphs" if cuda else "-static"
    ctx.extra[suite.replace("-", "_")] = {
        "prompts": len(prompts), "prompt_tokens": len(prompts[0]), "new_tokens": new,
        "torch_threads": torch.get_num_threads(), "device": device}
    clock = ctx.timer()
    rows = []

    def decode(name, T, k, method, cache, batch=1):
        """One row: the prompts decoded in batches of ``batch`` (cycled to fill a batch)."""
        w = Warp(T)
        ctx.progress(f"{suite}: {name} k={k} T={T} B={batch}")
        toks = secs = 0
        taus = []
        rt = Runtime(cache=cache, cuda_graphs=cuda and cache == "static")
        for i in range(0, len(prompts), batch) if batch <= len(prompts) else [0]:
            group = [prompts[(i + j) % len(prompts)] for j in range(batch)]
            seeds = [i + j for j in range(batch)]
            t0 = clock()
            if method is None:
                r = autoregressive_generate(target, group, warping=w, max_new_tokens=new,
                                            seeds=seeds, runtime=rt)
            else:
                r = speculative_generate(target, draft, group, k=k, method=method, warping=w,
                                         max_new_tokens=new, seeds=seeds, runtime=rt)
                taus.extend(a + 1 for row in r.accepted for a in row)
            if cuda:
                torch.cuda.synchronize()
            toks, secs = toks + r.n_tokens, secs + clock() - t0
        return _row(name, T, k, toks, secs, tau=sum(taus) / len(taus) if taus else None, B=batch)

    ars = {}
    for T in temps:
        ar = ars[T] = decode("ar", T, 0, None, "dynamic")
        rows.append(ar)
        st = decode("ar" + static_name, T, 0, None, "static")
        st["vs_ar"], st["vs_dynamic"] = ar["median_us"] / st["median_us"], ar["median_us"] / st["median_us"]
        rows.append(st)
        for method in sz["methods"]:
            verifier = "greedy" if T == 0 and method == "chain" else method
            label = f"spec-{method}" + ("(greedy)" if verifier == "greedy" else "")
            for k in ks:
                row = decode(label, T, k, verifier, "dynamic")
                row["vs_ar"] = ar["median_us"] / row["median_us"]
                rows.append(row)
                if k == ref_k or gpu_suite:  # CPU: the static path at the reference k only
                    srow = decode(label + static_name, T, k, verifier, "static")
                    srow["vs_ar"] = ar["median_us"] / srow["median_us"]
                    srow["vs_dynamic"] = row["median_us"] / srow["median_us"]
                    rows.append(srow)
        if sz["hf"]:
            rows.extend(_hf_rows(ctx, target, draft, prompts, new, T, ks, ar))
    if gpu_suite:
        for b in sz["batches"]:
            ar_b = decode("ar" + static_name, 1.0, 0, None, "static", batch=b)
            rows.append(ar_b)
            sp = decode("spec-block" + static_name, 1.0, ref_k, "block", "static", batch=b)
            sp["vs_ar"] = ar_b["median_us"] / sp["median_us"]
            rows.append(sp)
    context = 16 if ctx.tiny else 128
    if cuda:
        rows.extend(_step_cost_rows(ctx, target, draft, k=ref_k, paths=("static-graphs",), context=context))
    else:
        rows.extend(_step_cost_rows(ctx, target, draft, k=ref_k, paths=("dynamic", "static"),
                                    context=context))
    if not gpu_suite and sz["vllm"]:
        rows.extend(_vllm_rows(ctx, prompts, new, ars, k=4))
    return rows


def _vllm_rows(ctx, prompts, new: int, ars: dict, k: int = 4) -> list:
    """vLLM V1 on the CPU (its own venv, proofs/certify/engines/vllm.py) as a speed anchor: the same
    prompts, one request at a time, ``new`` tokens each (EOS ignored, as ``min_new_tokens``
    does for the HF rows), T in ``ars``; rows ``vllm`` (no speculation) and ``vllm-draft``
    (draft_model, k drafts). One engine start per row group (reported as ``engine_start_s``,
    not in the timings); time per request includes the worker's JSON round trip (~1 ms).
    Always wall clock: vLLM works in other processes, which ``--clock cpu`` would not see."""
    import time

    from specoracle.proofs.certify.engines.vllm import WorkerError, make_engine, vllm_reason

    reason = vllm_reason()
    if reason:
        ctx.notes.append(f"llm vllm rows skipped: {reason}")
        return []
    clock = time.perf_counter
    rows = []
    for label, method, kk in (("vllm", "none", 0), ("vllm-draft", "draft_model", k)):
        ctx.progress(f"llm: {label} engine start")
        t0 = clock()
        try:
            eng = make_engine(target="zoo:code-target", draft="zoo:code-draft", method=method, k=kk or 1)
        except Exception as e:  # a broken vLLM venv must not crash the suite
            ctx.notes.append(f"llm {label} rows skipped: {type(e).__name__}: {e}"[:400])
            continue
        start = clock() - t0
        try:
            for T in sorted(ars):
                ctx.progress(f"llm: {label} k={kk} T={T}")
                toks = secs = 0
                try:
                    eng.generate([prompts[0]], n=8, seeds=[0], temperature=T)  # warm-up
                    for i, pr in enumerate(prompts):
                        t0 = clock()
                        out = eng.generate([pr], n=new, seeds=[i], temperature=T, ignore_eos=True)
                        secs += clock() - t0
                        toks += len(out[0])
                except WorkerError as e:  # vLLM 0.32.0 CPU crashes at T > 0 with speculation (docs)
                    ctx.notes.append(f"llm {label} k={kk} T={T}: vLLM failed: {str(e).splitlines()[0][:200]}")
                    break
                row = _row(label, T, kk, toks, secs, engine_start_s=round(start, 1), vllm_version=eng.version,
                           clock="wall")
                row["vs_ar"] = ars[T]["median_us"] / row["median_us"]
                rows.append(row)
        finally:
            eng.close()
    return rows


def _step_cost_rows(ctx, target, draft, k: int, paths=("static-graphs",), context: int = 128) -> list:
    """Median time of one draft step (width 1) and one target step (width k+1) after a
    ``context``-token prefill, batch 1, per cache path ("dynamic", "static", "static-graphs"):
    the draft/target cost ratio c of Leviathan et al.'s speed-up model (ALGORITHMS.md §1.2)
    and the per-call price of the static path."""
    import torch

    from specoracle.fastpath.models.llm.kv import KVState
    from specoracle.fastpath.models.llm.static import StaticKVState

    out = []
    cuda = next(target.parameters()).device.type == "cuda"
    for path in paths:
        pair = []
        for name, model, width in (("draft-step", draft, 1), ("target-step", target, k + 1)):
            if path == "dynamic":
                st = KVState(model, 1)
            else:
                st = StaticKVState(model, 1, context + 200 + k + 2,
                                   graph_widths=(width,) if path == "static-graphs" else ())
            st.feed([list(range(1, context + 1))])
            toks = [[5] * width]

            def one():
                st.feed(toks, width=width)
                st.rollback(st.count - width)
                if cuda:
                    torch.cuda.synchronize()

            us = ctx.time_us(one)
            pair.append({"op": "llm-step", "backend": f"{name}-{path}", "B": 1, "K": width, "T": None,
                         "median_us": us, "tok_per_s": None, "tokens": None, "tau": None,
                         "context": context})
        pair[0]["draft_target_cost_ratio"] = pair[0]["median_us"] / pair[1]["median_us"]
        ctx.extra[f"llm_draft_target_cost_ratio_{path}"] = round(pair[0]["draft_target_cost_ratio"], 3)
        out.extend(pair)
    return out


def _hf_rows(ctx, target, draft, prompts, new, T, ks, ar) -> list:
    import torch

    clock = ctx.timer()
    rows = []
    cfgs = [("hf", None)] + [("hf-assisted", k) for k in ks]
    for name, k in cfgs:
        ctx.progress(f"llm: {name} k={k} T={T}")
        toks = secs = 0
        try:
            for i, pr in enumerate(prompts):
                torch.manual_seed(i)
                kw = dict(max_new_tokens=new, min_new_tokens=new, do_sample=T > 0, pad_token_id=0)
                if T > 0:
                    kw.update(temperature=T, top_k=0, top_p=1.0)
                if k is not None:
                    kw.update(assistant_model=draft, num_assistant_tokens=k,
                              num_assistant_tokens_schedule="constant", assistant_confidence_threshold=0)
                ids = torch.tensor([pr], device=target.device)
                t0 = clock()
                with torch.inference_mode():
                    out = target.generate(ids, **kw)
                secs += clock() - t0
                toks += out.shape[1] - ids.shape[1]
        except Exception as e:  # HF API drift: record, do not crash the suite
            ctx.notes.append(f"llm {name} k={k} T={T} failed: {type(e).__name__}: {e}"[:300])
            continue
        row = _row(name, T, k or 0, toks, secs)
        row["vs_ar"] = ar["median_us"] / row["median_us"]
        rows.append(row)
    return rows


register_suite("llm", "cpu", run_llm,
               "end-to-end decoding on the zoo pair: own AR loop, speculative chain/block, HF generate "
               "and HF assisted generation (tokens/s, tau, speed-ups), static-cache rows")
register_suite("llm-cuda", "cuda", lambda ctx: run_llm(ctx, ctx.device or "cuda", "llm-cuda"),
               "the llm suite on a CUDA GPU: static-cache rows as CUDA graphs at every k, batch 8 "
               "and 64 rows, the draft/target step-cost ratio")


# ---------------------------------------------------------------- suite llm-tau (paired)

TAU_SETTINGS = (("T=0", dict(temperature=0.0)), ("T=1", dict(temperature=1.0)),
                ("T=1 top-p 0.95", dict(temperature=1.0, top_p=0.95)))


def heldout_docs(tok, n_docs: int, min_chars: int = 2000) -> list:
    """Token ids of the first ``n_docs`` held-out documents (> ``min_chars`` characters) of
    the zoo corpus ($SPECORACLE_ZOO/corpus/heldout.txt.xz); [] without the corpus."""
    import lzma

    from specoracle.fastpath.models.zoo.registry import zoo_dir
    path = zoo_dir() / "corpus" / "heldout.txt.xz"
    if not path.is_file():
        return []
    with lzma.open(path, "rt", encoding="utf-8") as fh:
        raw = fh.read(4_000_000)
    texts = [d for d in raw.split("<|endoftext|>") if len(d) > min_chars][:n_docs]
    return [tok(t).input_ids for t in texts]


def tau_rows(per_k: dict, setting: str, warping, source: str, us_per_context: float) -> list:
    """Bench rows (one per k) of a paired-tau result for one setting and context source.

    ``tau_chain`` / ``tau_block`` / ``diff`` / ``se`` / ``t`` / ``p_t``: the Rao-Blackwellised
    estimators (lowest variance; the expectation over drafts); ``cond_*``: the exact
    conditional expectations given each drafted block (the per-draft comparison: ``n_pos`` /
    ``n_neg`` drafts where block > / < chain, sign test ``p_sign``, ``min_diff``)."""
    from specoracle.fastpath.models.llm.tau_paired import paired_summary

    rows = []
    for k, d in per_k.items():
        rb = paired_summary(d["chain_rb"], d["block_rb"], d["cluster"])
        c = paired_summary(d["chain"], d["block"], d["cluster"])
        sv = paired_summary(d["chain"], d["block_sv"], d["cluster"])
        rows.append({"op": "llm-tau", "backend": f"paired/{source}", "B": 1, "K": k,
                     "T": warping.temperature, "top_p": warping.top_p, "setting": setting,
                     "median_us": us_per_context, "n": rb.n, "clusters": rb.clusters,
                     "tau_chain": rb.chain, "tau_block": rb.block, "diff": rb.diff, "se": rb.se,
                     "t": rb.t, "p_t": rb.p_t,
                     "cond_tau_chain": c.chain, "cond_tau_block": c.block, "cond_diff": c.diff,
                     "cond_se": c.se, "cond_t": c.t, "cond_p_t": c.p_t, "n_pos": c.n_pos,
                     "n_neg": c.n_neg, "p_sign": c.p_sign, "min_diff": c.min_diff,
                     "rb_n_neg": rb.n_neg, "rb_min_diff": rb.min_diff,
                     "tau_block_survival": sv.block, "diff_survival": sv.diff, "se_survival": sv.se})
    return rows


def run_llm_tau(ctx: BenchContext) -> list:
    """Paired block-vs-chain tau on held-out windows and on target-generated contexts."""
    import numpy as np
    import torch

    from specoracle.fastpath.models.llm.processing import Warp
    from specoracle.fastpath.models.llm.tau_paired import heldout_windows, paired_tau, target_contexts

    pair = zoo_pair(ctx, "llm-tau")
    if pair is None:
        return []
    target, draft, tok = pair
    quick = ctx.quick
    n_docs, per_doc = (4, 2) if quick else (64, 4)
    win, prompt_len = (48, 24) if quick else (64, 32)
    cuts = [8, 24] if quick else [16, 48, 80, 112]
    per_doc = len(cuts) if not quick else per_doc
    ks = (2, 4, 8)
    docs = heldout_docs(tok, n_docs)
    if len(docs) < 2:
        ctx.notes.append("llm-tau suite skipped: needs the zoo corpus (specoracle zoo install)")
        return []
    prompts = [d[:prompt_len] for d in docs if len(d) >= prompt_len]
    ctx.extra["llm_tau"] = {"documents": len(docs), "windows_per_doc": per_doc, "window_tokens": win,
                            "generated_prompts": len(prompts), "prompt_tokens": prompt_len,
                            "cuts": cuts, "ks": list(ks), "torch_threads": torch.get_num_threads(),
                            "seed": 0}
    clock = ctx.timer()
    rows = []
    lines = ["| setting | source | k | n (docs) | chain tau | block tau | block - chain (SE) | t (p) "
             "| per draft: block - chain (SE) | block > / < chain (sign p) | min diff |",
             "|" + "---|" * 11]
    for si, (setting, kw) in enumerate(TAU_SETTINGS):
        w = Warp(**kw)
        rng = np.random.default_rng([0, si])
        cl, win_ctx = heldout_windows(docs, per_doc, win, rng)
        sources = {"heldout": [(cl, win_ctx)],
                   "generated": target_contexts(target, prompts, w, cuts, seed=1000 * si)}
        for source, groups in sources.items():
            ctx.progress(f"llm-tau: {setting} {source}")
            t0 = clock()
            res = paired_tau(target, draft, groups, w, ks, rng=rng)
            n = len(res[ks[0]]["chain"])
            new = tau_rows(res, setting, w, source, (clock() - t0) / n * 1e6)
            rows.extend(new)
            for r in new:
                lines.append(f"| {setting} | {source} | {r['K']} | {r['n']} ({r['clusters']}) | "
                             f"{r['tau_chain']:.3f} | {r['tau_block']:.3f} | {r['diff']:+.4f} "
                             f"({r['se']:.4f}) | {r['t']:.1f} ({r['p_t']:.2g}) | "
                             f"{r['cond_diff']:+.4f} ({r['cond_se']:.4f}) | {r['n_pos']} / "
                             f"{r['n_neg']} ({r['p_sign']:.2g}) | {r['min_diff']:+.3f} |")
    ctx.notes.append("paired tau (expected tokens per round, bonus included; tau and block - chain: "
                     "Rao-Blackwellised estimators; per draft: exact conditional expectations):\n"
                     + "\n".join(lines))
    return rows


register_suite("llm-tau", "cpu", run_llm_tau,
               "paired block-vs-chain tau on the zoo pair: same contexts, same drafts, exact "
               "conditional expected tokens per round (held-out and target-generated contexts)")
