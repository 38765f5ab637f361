"""End-to-end certification: speculative decoding of a real model pair is lossless.

The whole pipeline (drafter, warps, verifier, KV-cache rollback, ragged batches, EOS and
length cuts) is treated as a black box that emits token sequences. For a fixed prompt and a
warp, the law of the first n generated tokens under speculative decoding must equal the
target's autoregressive law

    P(y_1..y_n) = prod_j p_warped(y_j | prompt, y_1..y_{j-1})        (ALGORITHMS.md §1.2)

which :func:`prefix_law` computes from the target model itself by enumerating the support
(batched, cache-free forwards per depth; probabilities in float64 from the model's float32
logits). A sequence that emits EOS before n tokens is a cell of its own.

Enumerable: with top-k, ``top_k ** n`` sequences at most (MAX_CELLS); with top-p, the nucleus
sizes multiplied along the tree. When the support is too large (T > 0 without truncation),
``min_prob`` coarsens the law EXACTLY: a sequence whose probability falls below ``min_prob`` at
some depth is not expanded and its mass goes to one pooled cell :data:`REST`; every other cell
keeps its exact probability. A test of that partition is a valid (less powerful) test of the
full law: TV on the partition is a lower bound of the TV of the laws.

:func:`prefix_law_gof` runs the chi-square goodness of fit of observed sequence counts
against such a law (:mod:`specoracle.proofs.stats`, stated alpha, TV detected at power 0.9);
it is the one GOF used by :func:`certify_prefix_law` (specoracle's own engine, white box)
and by the engine-level certification of any engine (:mod:`specoracle.proofs.certify.engines`).
For greedy decoding the law is a point mass: every sample must equal the greedy sequence
(any other outcome is impossible under the null and gives p = 0).
"""
from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from specoracle.fastpath.models.llm.engine import Runtime, speculative_generate
from specoracle.fastpath.models.llm.faults import faulty_generate
from specoracle.fastpath.models.llm.processing import Warp, warp

from ..stats import chisquare_gof

MAX_CELLS = 20000
FORWARD_CHUNK = 256   # rows per cache-free forward while enumerating
REST = ("<rest>",)    # the pooled cell of a coarsened law (never a token sequence)


@dataclass
class PrefixLaw:
    """Law of the first n generated tokens (see the module doc).

    cells:        {tuple of up to n token ids: probability}; with coarsening, also REST
    topk_margin:  smallest logit gap between the top_k-th and the next logit over the
                  enumerated contexts (inf without top-k): a near-tie there makes the support
                  depend on float rounding (engines and this enumeration round differently)
    topp_margin:  smallest distance of a nucleus boundary's cumulative probability to top_p
                  (inf without top-p), same reason
    greedy_margin: at T = 0, the smallest top-1 minus top-2 logit gap along the path
    rows:         contexts evaluated (cost)
    """

    cells: dict
    topk_margin: float = float("inf")
    topp_margin: float = float("inf")
    greedy_margin: float = float("inf")
    rows: int = 0

    @property
    def coarsened(self) -> bool:
        return REST in self.cells

    def greedy_sequence(self) -> tuple:
        """The point mass's sequence (T = 0 only)."""
        (seq,) = [c for c, p in self.cells.items() if p > 0]
        return seq


def _logits(target, contexts: list) -> torch.Tensor:
    """Last-position float32 logits [L, V] of each context (equal lengths), in chunks."""
    out = []
    for i in range(0, len(contexts), FORWARD_CHUNK):
        ids = torch.tensor(contexts[i:i + FORWARD_CHUNK], dtype=torch.long)
        out.append(target(input_ids=ids).logits[:, -1].float())
    return torch.cat(out)


def _topp_margin(logits: torch.Tensor, w: Warp) -> float:
    """min over rows of |cumulative probability at the nucleus boundary - top_p|."""
    probs = warp(logits, Warp(w.temperature, w.top_k)).double()  # before top-p
    srt = torch.sort(probs, dim=-1, descending=True).values
    csum = torch.cumsum(srt, dim=-1)
    return float((csum - w.top_p).abs().min())


@torch.inference_mode()
def prefix_law(target, prompt, warping: Warp, n: int, eos_id=None, min_prob: float = 0.0) -> PrefixLaw:
    """The target's warped law of the first ``n`` tokens after ``prompt`` (module doc).

    ``min_prob`` > 0 coarsens: sequences below it are pooled into :data:`REST`.
    Raises ValueError when more than MAX_CELLS cells would be enumerated."""
    law = {(): 1.0}
    rest = 0.0
    out = PrefixLaw({})
    for _ in range(n):
        live = [s for s in law if not (s and eos_id is not None and s[-1] == eos_id)]
        nxt = {s: law[s] for s in law if s not in live}
        if live:
            logits = _logits(target, [list(prompt) + list(s) for s in live])  # [L, V]
            out.rows += len(live)
            probs = warp(logits, warping).numpy()
            if warping.greedy:
                top2 = torch.topk(logits, 2, dim=-1).values
                out.greedy_margin = min(out.greedy_margin, float((top2[:, 0] - top2[:, 1]).min()))
            if warping.top_k is not None and not warping.greedy and warping.top_k < logits.shape[-1]:
                top = torch.topk(logits, warping.top_k + 1, dim=-1).values
                out.topk_margin = min(out.topk_margin, float((top[:, -2] - top[:, -1]).min()))
            if warping.top_p is not None and not warping.greedy and warping.top_p < 1:
                out.topp_margin = min(out.topp_margin, _topp_margin(logits, warping))
            for s, row in zip(live, probs):
                ts = np.flatnonzero(row > 0)
                mass = law[s] * row[ts]
                keep = mass >= min_prob
                rest += float(mass[~keep].sum())
                for t, m in zip(ts[keep], mass[keep]):
                    nxt[s + (int(t),)] = float(m)
        if len(nxt) > MAX_CELLS:
            raise ValueError(f"support of the first {n} tokens exceeds {MAX_CELLS} cells: lower n or "
                             "top_k, or coarsen with a larger min_prob")
        law = nxt
    if rest > 0:
        law[REST] = rest
    out.cells = law
    return out


def exact_prefix_law(target, prompt, warping: Warp, n: int, eos_id=None, return_margin=False):
    """{tuple of up to n tokens: probability} under the target's warped autoregressive law
    (:func:`prefix_law` without coarsening); with ``return_margin`` also its top-k margin."""
    law = prefix_law(target, prompt, warping, n, eos_id)
    return (law.cells, law.topk_margin) if return_margin else law.cells


def prefix_law_gof(counts, law: dict, *, alpha: float, power: float = 0.9, name: str = "prefix law"):
    """Pearson chi-square GOF of ``counts`` {sequence: count} against ``law`` {cell: prob}.

    A sequence of token ids absent from ``law`` falls into :data:`REST` if the law has it
    (coarsened), else it is an impossible outcome (p = 0); so is any key that is not a tuple of
    ids (e.g. a malformed output marked by the caller). Probabilities are renormalised: float32 logits
    -> float64 leaves a rounding of ~1e-7 in the total. Returns a
    :class:`~specoracle.proofs.stats.TestResult`."""
    cells = sorted(c for c in law if c != REST)
    obs = Counter()
    for seq, c in counts.items():
        pooled = REST in law and seq not in law and all(isinstance(t, (int, np.integer)) for t in seq)
        obs[REST if pooled else seq] += c
    extra = sorted((s for s in obs if s not in law), key=repr)  # outcomes the target cannot produce
    keys = cells + ([REST] if REST in law else []) + extra
    probs = np.array([law.get(c, 0.0) for c in keys])
    probs = probs / probs.sum()
    o = np.array([obs.get(c, 0) for c in keys], dtype=np.float64)
    return chisquare_gof(o, probs, alpha=alpha, power=power, method="pearson", name=name)


def sample_prefixes(target, draft, prompt, *, n: int, n_samples: int, batch: int, method: str,
                    k: int, warping: Warp, seed: int, eos_id=None, runtime: Runtime = Runtime(),
                    fault=None) -> Counter:
    """Counts of the first n generated tokens over ``n_samples`` speculative runs;
    ``fault`` (a negative control, fastpath/models/llm/faults.py) runs the broken engine."""
    counts: Counter = Counter()
    s = 0
    while s < n_samples:
        b = min(batch, n_samples - s)
        run = speculative_generate if fault is None else functools.partial(faulty_generate, fault)
        res = run(target, draft, [list(prompt)] * b, k=k, method=method, warping=warping,
                  max_new_tokens=n, eos_id=eos_id, seeds=[seed + s + i for i in range(b)],
                  runtime=runtime)
        for toks in res.tokens:
            counts[tuple(toks)] += 1
        s += b
    return counts


def certify_prefix_law(target, draft, prompt, *, n: int, n_samples: int, batch: int, method: str,
                       k: int, warping: Warp, seed: int, alpha: float, eos_id=None,
                       runtime: Runtime = Runtime(), fault=None, law=None):
    """Chi-square GOF of the sampled law against the exact one; returns (TestResult, counts, law)."""
    if law is None:
        law = exact_prefix_law(target, prompt, warping, n, eos_id)
    counts = sample_prefixes(target, draft, prompt, n=n, n_samples=n_samples, batch=batch,
                             method=method, k=k, warping=warping, seed=seed, eos_id=eos_id,
                             runtime=runtime, fault=fault)
    res = prefix_law_gof(counts, law, alpha=alpha, name=f"llm-e2e {method} B={batch} k={k} n={n}")
    return res, counts, law
