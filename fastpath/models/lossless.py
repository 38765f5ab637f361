"""End-to-end certification: speculative decoding of a real model pair is lossless.

The whole pipeline (drafter, warps, verifier, KV-cache rollback, ragged batches, EOS and
length cuts) is treated as a black box that emits token sequences. For a fixed prompt and a
top-k-limited warp (small support), the law of the first n generated tokens under
speculative decoding must equal the target's autoregressive law

    P(y_1..y_n) = prod_j p_warped(y_j | prompt, y_1..y_{j-1})        (ALGORITHMS.md §1.2)

which :func:`exact_prefix_law` computes from the target model itself by enumerating the
support (one batched, cache-free forward per depth; probabilities in float64 from the
model's float32 logits). A sequence that emits EOS before n tokens is a cell of its own.

:func:`certify_prefix_law` draws ``n_samples`` sequences (``batch`` rows per engine call,
request seeds ``seed, seed + 1, ...``) and runs the chi-square goodness-of-fit test of
:mod:`specoracle.proofs.stats` with a stated alpha and the TV it detects at power 0.9.
For greedy decoding the law is a point mass: every sample must equal the greedy sequence
(any other outcome is impossible under the null and gives p = 0).
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from .engine import speculative_generate
from .processing import Warp, warp

MAX_CELLS = 20000


@torch.inference_mode()
def exact_prefix_law(target, prompt, warping: Warp, n: int, eos_id=None, return_margin=False):
    """{tuple of up to n tokens: probability} under the target's warped autoregressive law.

    With ``return_margin``, also the smallest gap (in logits) between the top_k-th and the
    next logit over the enumerated contexts: a near-tie there would make the support depend
    on float rounding (the batched engine and this enumeration round differently).
    """
    law = {(): 1.0}
    margin = float("inf")
    for _ in range(n):
        live = [s for s in law if not (s and eos_id is not None and s[-1] == eos_id)]
        nxt = {s: law[s] for s in law if s not in live}
        if live:
            ids = torch.tensor([list(prompt) + list(s) for s in live], dtype=torch.long)
            logits = target(input_ids=ids).logits[:, -1].float()  # [L, V]
            probs = warp(logits, warping).numpy()
            if warping.top_k is not None:
                top = torch.topk(logits, warping.top_k + 1, dim=-1).values
                margin = min(margin, float((top[:, -2] - top[:, -1]).min()))
            for s, row in zip(live, probs):
                for t in np.flatnonzero(row > 0):
                    nxt[s + (int(t),)] = law[s] * float(row[t])
        if len(nxt) > MAX_CELLS:
            raise ValueError(f"support of the first tokens exceeds {MAX_CELLS} cells: lower top_k")
        law = nxt
    return (law, margin) if return_margin else law


def sample_prefixes(target, draft, prompt, *, n: int, n_samples: int, batch: int, method: str,
                    k: int, warping: Warp, seed: int, eos_id=None, backend: str = "numba",
                    fault=None) -> Counter:
    """Counts of the first n generated tokens over ``n_samples`` speculative runs."""
    counts: Counter = Counter()
    s = 0
    while s < n_samples:
        b = min(batch, n_samples - s)
        res = speculative_generate(target, draft, [list(prompt)] * b, k=k, method=method,
                                   warping=warping, max_new_tokens=n, eos_id=eos_id,
                                   seeds=[seed + s + i for i in range(b)], backend=backend,
                                   fault=fault)
        for toks in res.tokens:
            counts[tuple(toks)] += 1
        s += b
    return counts


def certify_prefix_law(target, draft, prompt, *, n: int, n_samples: int, batch: int, method: str,
                       k: int, warping: Warp, seed: int, alpha: float, eos_id=None,
                       backend: str = "numba", fault=None, law=None):
    """Chi-square GOF of the sampled law against the exact one; returns (TestResult, counts, law)."""
    if law is None:
        law = exact_prefix_law(target, prompt, warping, n, eos_id)
    counts = sample_prefixes(target, draft, prompt, n=n, n_samples=n_samples, batch=batch,
                             method=method, k=k, warping=warping, seed=seed, eos_id=eos_id,
                             backend=backend, fault=fault)
    res = prefix_law_gof(counts, law, alpha=alpha, name=f"llm-e2e {method} B={batch} k={k} n={n}")
    return res, counts, law


def prefix_law_gof(counts, law, *, alpha: float, name: str, power: float = 0.9):
    """Pearson chi-square GOF of sampled prefix ``counts`` {tuple: count} against the exact
    ``law`` {tuple: probability}; an outcome outside the law's support gives p = 0."""
    from specoracle.proofs.stats import chisquare_gof

    cells = sorted(law)
    extra = sorted(set(counts) - set(law))  # outcomes the target cannot produce
    probs = np.array([law[c] for c in cells] + [0.0] * len(extra))
    probs = probs / probs.sum()  # float32 logits -> float64: renormalise rounding (~1e-7)
    obs = np.array([counts.get(c, 0) for c in cells + extra], dtype=np.float64)
    return chisquare_gof(obs, probs, alpha=alpha, power=power, method="pearson", name=name)
