"""`specoracle bench --suite llm`: end-to-end decoding speed on the zoo pair.

In one run, on the same pair, prompts and settings (batch 1, each prompt decoded in turn):
  * ar          target-only autoregressive decoding with specoracle's own loop (engine.py)
  * spec-chain / spec-block   specoracle speculative decoding, k in {2, 4, 8}, T in {0, 1}
  * hf          Hugging Face ``generate`` of the target alone
  * hf-assisted Hugging Face assisted generation (``assistant_model=draft``, k drafts)
Rows: ``median_us`` = microseconds per generated token (total time / total tokens, the
whole prompt set), ``tok_per_s``, ``tau`` (speculative: mean tokens per target call,
bonus included), ``vs_ar`` (speed-up over ``ar`` at the same temperature).

Prompts: the first 8 (quick: 2) held-out documents of the zoo corpus
($SPECORACLE_ZOO/corpus/heldout.txt.xz, installed by ``zoo install`` with the models), 64
tokens each (quick: 32), 200 new tokens (quick: 32); without the corpus, fixed snippets.
T = 1 means plain sampling (no top-k/top-p); T = 0 greedy. Seeds fixed per prompt.
"""
from __future__ import annotations

from specoracle.fastpath.bench import BenchContext, register_suite

FALLBACK_PROMPTS = [
    "import os\nimport sys\n\n\ndef main(argv=None):\n    parser = argparse.ArgumentParser(",
    "class Matrix:\n    \"\"\"A dense matrix of floats.\"\"\"\n\n    def __init__(self, rows, cols):\n",
    "KING HENRY.\nOnce more unto the breach, dear friends, once more;\n",
    "    def test_roundtrip(self):\n        data = {'a': 1, 'b': [1, 2, 3]}\n        s = json.dumps(",
    "def _check(x, name):\n    if not isinstance(x, np.ndarray):\n        raise TypeError(",
    "ROMEO.\nBut soft, what light through yonder window breaks?\n",
    "    for i, (key, value) in enumerate(sorted(items.items())):\n        if value is None:\n",
    "from __future__ import annotations\n\nfrom dataclasses import dataclass\n\n\n@dataclass\nclass ",
]


def bench_prompts(tok, n_prompts: int, n_tokens: int) -> list:
    """Token-id prompts: held-out documents of the zoo corpus, else the fixed snippets."""
    import lzma

    from .zoo import zoo_dir
    path = zoo_dir() / "corpus" / "heldout.txt.xz"
    texts = []
    if path.is_file():
        with lzma.open(path, "rt", encoding="utf-8") as fh:
            raw = fh.read(4_000_000)
        texts = [d for d in raw.split("<|endoftext|>") if len(d) > 2000][:n_prompts]
    if len(texts) < n_prompts:
        texts += FALLBACK_PROMPTS[: n_prompts - len(texts)]
    out = []
    for t in texts:
        ids = tok(t).input_ids
        out.append(ids[:n_tokens] if len(ids) >= n_tokens else (ids * (n_tokens // max(1, len(ids)) + 1))[:n_tokens])
    return out


def _row(backend, temperature, k, tokens, seconds, tau=None, **extra):
    row = {"op": "llm-decode", "backend": backend, "B": 1, "K": k, "T": temperature,
           "median_us": seconds / max(tokens, 1) * 1e6, "tok_per_s": tokens / seconds,
           "tokens": tokens, "tau": tau}
    row.update(extra)
    return row


def run_llm(ctx: BenchContext) -> list:
    import torch

    from .engine import autoregressive_generate, speculative_generate
    from .hf import load_pair
    from .processing import Warp
    from .zoo import zoo_reason

    reason = zoo_reason("zoo:code-target", "zoo:code-draft")
    if reason:
        ctx.notes.append(f"llm suite skipped: {reason}")
        return []
    target, draft, tok = load_pair("zoo:code-target", "zoo:code-draft")
    quick = ctx.quick
    prompts = bench_prompts(tok, 2 if quick else 8, 32 if quick else 64)
    new = 32 if quick else 200
    ks = (4,) if quick else (2, 4, 8)
    temps = (0.0, 1.0)
    ctx.extra["llm"] = {"prompts": len(prompts), "prompt_tokens": len(prompts[0]), "new_tokens": new,
                        "torch_threads": torch.get_num_threads()}
    clock = ctx.timer()
    rows = []
    for T in temps:
        w = Warp(T)
        ctx.progress(f"llm: ar T={T}")
        toks = secs = 0
        for i, pr in enumerate(prompts):
            t0 = clock()
            r = autoregressive_generate(target, [pr], warping=w, max_new_tokens=new, seeds=i)
            toks, secs = toks + r.n_tokens, secs + clock() - t0
        ar = _row("ar", T, 0, toks, secs)
        rows.append(ar)
        for method in ("chain", "block"):
            for k in ks:
                ctx.progress(f"llm: spec-{method} k={k} T={T}")
                toks = secs = 0
                taus = []
                for i, pr in enumerate(prompts):
                    t0 = clock()
                    r = speculative_generate(target, draft, [pr], k=k, method="greedy" if T == 0 and
                                             method == "chain" else method, warping=w,
                                             max_new_tokens=new, seeds=i)
                    toks, secs = toks + r.n_tokens, secs + clock() - t0
                    taus.extend(a + 1 for a in r.accepted[0])
                row = _row(f"spec-{method}" + ("(greedy)" if T == 0 and method == "chain" else ""),
                           T, k, toks, secs, tau=sum(taus) / len(taus))
                row["vs_ar"] = ar["median_us"] / row["median_us"]
                rows.append(row)
        rows.extend(_hf_rows(ctx, target, draft, prompts, new, T, ks, ar))
    return rows


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
                ids = torch.tensor([pr])
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
               "and HF assisted generation (tokens/s, tau, speed-ups)")
