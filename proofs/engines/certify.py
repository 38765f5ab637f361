"""Engine-level certification: a whole engine, black box, against the target's exact law
(issue 17; DESIGN.md "Certifying other implementations", level "engine").

``certify_engine(engine, target_model, prompts, *, n, temperature, top_k, top_p, samples,
batch, alpha, power, tv, seed, progress, baseline, eos_id, min_prob, reproduce) -> EngineReport``

What is checked
  * T = 0: every request's first n tokens equal the target's greedy continuation (computed
    from ``target_model``, cache-free, :func:`~specoracle.fastpath.models.lossless.prefix_law`)
    and, when a ``baseline`` engine is given (the same engine with method "none"), the
    baseline's tokens for the same request. Exact comparisons (no alpha).
  * T > 0: per prompt, the law of the first n generated tokens (EOS-terminated shorter
    sequences are cells of their own) against the target's warped law (ALGORITHMS.md §1.2),
    computed exactly by enumeration: with top-k the support has at most top_k**n sequences;
    with top-p the nucleus sizes multiplied; otherwise (or beyond MAX_CELLS cells) the law is
    coarsened exactly: sequences below ``min_prob`` (default 1e-3) are pooled into one cell.
    Pearson chi-square GOF per prompt (cells with expected count < 5 merged; an outcome of
    probability 0 gives p = 0). With a ``baseline``, its law is checked the same way: if the
    baseline fails too, the difference is in the engine's sampling (e.g. its warp
    definition), not in speculation.

Batches: the requests interleave the prompts (request r has prompt r mod P) and every engine
call gets ``batch`` of them, so with batch > 1 and P > 1 each call mixes different prompts,
and each prompt's law is checked separately (batch invariance and ragged rows are exercised
inside the engine). Seeds: one per request, ``SeedSequence(seed).generate_state``.

Error rates: the false-positive budget ``alpha`` is split over the m law checks by Holm's
step-down (family-wise error <= alpha); power: each check detects TV ``tv`` with probability
>= ``power`` at the Bonferroni level alpha/m (noncentral chi-square, worst case over
alternatives; proofs/stats.py). ``samples=None`` picks the smallest number of requests per
prompt that reaches it on the merged partition; fewer samples give "underpowered".
Verdict and exit status as :func:`specoracle.proofs.certify.certify`: exact (0), not exact (1),
underpowered (2).
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from specoracle.reference.types import InvalidInput

from ..certify import CheckRow, Report, _decide, _verdict
from .. import stats as st

DEFAULT_ALPHA = 1e-3
DEFAULT_POWER = 0.9
DEFAULT_TV = 0.1
DEFAULT_MIN_PROB = 1e-3
GREEDY_SAMPLES = 2         # requests per prompt at T = 0 (two seeds: seeds must not matter)
NEAR_TIE_LOGITS = 1e-4     # top-k / greedy boundary gaps below this are reported (rounding)
NEAR_TIE_PROB = 1e-5       # top-p boundary distance below this is reported
MALFORMED = "<malformed>"


@dataclass
class EngineReport(Report):
    """:class:`~specoracle.proofs.certify.Report` plus the engine run's settings."""

    engine: str = ""
    version: str = ""
    method: str = ""
    settings: dict = field(default_factory=dict)
    n: int = 0
    detectable_tv: float = float("nan")
    reproduce: str = ""

    def as_json(self) -> dict:
        d = super().as_json()
        d.update(engine=self.engine, version=self.version, method=self.method, settings=self.settings,
                 n=self.n, detectable_tv=None if not math.isfinite(self.detectable_tv) else self.detectable_tv,
                 reproduce=self.reproduce)
        return d

    def format(self) -> str:
        s = self.settings
        head = (f"engine {self.engine} {self.version}, method {self.method}: T = {s.get('temperature')}, "
                f"top-k = {s.get('top_k')}, top-p = {s.get('top_p')}, batch = {s.get('batch')}, n = {self.n}, "
                f"{s.get('samples_per_prompt')} requests x {s.get('prompts')} prompts")
        tail = []
        if math.isfinite(self.detectable_tv):
            tail.append(f"detectable TV (power {self.power:g}): {self.detectable_tv:.4f}")
        if self.reproduce:
            tail.append(f"reproduce: {self.reproduce}")
        return "\n".join([head, super().format()] + tail)


def plan_samples(probs, alpha: float, power: float, tv: float, lo: int = 20, cap: int = 10 ** 7) -> int:
    """Smallest N whose chi-square GOF on the merged partition (cells with N p < 5 pooled,
    stats.merge_cells) detects ``tv`` with ``power`` at level ``alpha``."""
    p = np.asarray(probs, dtype=np.float64)
    point_mass = int((p > 0).sum()) == 1

    def det(n):
        df = int(st.merge_cells(n * p).max())
        if df == 0 and not point_mass:  # one merged cell: blind to every alternative on the support
            return float("inf")
        return st.detectable_tv(n, df, alpha, power)

    hi = lo
    while det(hi) > tv:
        if hi >= cap:
            raise InvalidInput("tv", f"TV {tv} needs more than {cap} samples per prompt")
        hi *= 2
    low = max(hi // 2, 1)
    while low < hi:  # detectable is not exactly monotone in n (merging); this finds one crossing
        mid = (low + hi) // 2
        if det(mid) <= tv:
            hi = mid
        else:
            low = mid + 1
    return hi


def _check_args(prompts, n, temperature, top_k, top_p, samples, batch, alpha, power, tv):
    if not prompts:
        raise InvalidInput("prompts", "needs at least one prompt")
    if int(n) != n or n < 1:
        raise InvalidInput("n", f"must be a positive integer, got {n}")
    if int(batch) != batch or batch < 1:
        raise InvalidInput("batch", f"must be a positive integer, got {batch}")
    if samples is not None and (int(samples) != samples or samples < 1):
        raise InvalidInput("samples", f"must be a positive integer, got {samples}")
    if not (0 < alpha < 1):
        raise InvalidInput("alpha", f"must lie in (0, 1), got {alpha}")
    if not (0 < power < 1):
        raise InvalidInput("power", f"must lie in (0, 1), got {power}")
    if not (0 < tv <= 1):
        raise InvalidInput("tv", f"must lie in (0, 1], got {tv}")
    from specoracle.fastpath.models.processing import Warp
    return Warp(float(temperature), top_k, top_p)  # validates temperature, top_k, top_p


def _laws(target_model, prompts, w, n, eos_id, min_prob):
    """One PrefixLaw per prompt; exact when enumerable, else coarsened (module doc)."""
    from specoracle.fastpath.models.lossless import MAX_CELLS, prefix_law
    exact_ok = w.greedy or w.top_p is not None or (w.top_k is not None and w.top_k ** n <= MAX_CELLS)
    out = []
    for pr in prompts:
        law = None
        if min_prob is None and exact_ok:
            try:
                law = prefix_law(target_model, pr, w, n, eos_id)
            except ValueError:
                law = None
        if law is None:
            law = prefix_law(target_model, pr, w, n, eos_id, DEFAULT_MIN_PROB if min_prob is None else min_prob)
        out.append(law)
    return out


def _run(engine, prompts, counts_per_prompt, *, n, w, batch, seeds, bar, eos_id, label):
    """Run every request through ``engine`` in calls of ``batch``; fills per-prompt Counters
    of the emitted tuples; returns the per-request token lists (request order)."""
    P = len(prompts)
    total = len(seeds)
    outs = []
    for start in range(0, total, batch):
        idx = list(range(start, min(start + batch, total)))
        toks = engine.generate([list(prompts[r % P]) for r in idx], n=n, seeds=[int(seeds[r]) for r in idx],
                               temperature=w.temperature, top_k=w.top_k, top_p=w.top_p)
        if len(toks) != len(idx):
            raise RuntimeError(f"{label}: engine returned {len(toks)} sequences for {len(idx)} requests")
        for r, t in zip(idx, toks):
            t = tuple(int(x) for x in t)
            short_ok = len(t) == n or (len(t) < n and len(t) > 0 and eos_id is not None and t[-1] == eos_id)
            if not short_ok or (eos_id is not None and eos_id in t[:-1]):
                t = (MALFORMED,) + t  # wrong length, or tokens after EOS: never in the law
            counts_per_prompt[r % P][t] += 1
            outs.append(t)
        if bar is not None:
            bar.update(len(idx))
    return outs


def _greedy_rows(outs, base, laws, P):
    """Agreement rows at T = 0: engine vs the target's greedy sequence (and vs the baseline)."""
    rows = []
    for i in range(P):
        want = laws[i].greedy_sequence()
        mine = outs[i::P]
        pairs = [("target greedy", [want] * len(mine))]
        if base is not None:
            pairs.append(("none", base[i::P]))
        for what, ref in pairs:
            rate, first = st.agreement(ref, mine)
            detail = "" if first is None else (f"request {first * P + i}: {what} {list(ref[first])} vs engine "
                                               f"{list(mine[first])}")
            rows.append(CheckRow(f"p{i}/tokens == {what}", rate, 1.0 if first is None else 0.0, len(mine),
                                 "agreement", float("nan"), verdict="agree" if first is None else "DISAGREE",
                                 detail=detail))
    return rows


def certify_engine(engine, target_model, prompts, *, n: int = 3, temperature: float = 1.0, top_k=None,
                   top_p=None, samples: int | None = None, batch: int = 1, alpha: float = DEFAULT_ALPHA,
                   power: float = DEFAULT_POWER, tv: float = DEFAULT_TV, seed: int = 0, progress: bool = False,
                   baseline=None, eos_id=None, min_prob: float | None = None, reproduce: str = "") -> EngineReport:
    """Certify ``engine`` (an :class:`~specoracle.proofs.engines.Engine`) on ``prompts`` (token-id
    lists) against ``target_model`` (a Hugging Face causal LM: the exact law's source); see the
    module doc. ``eos_id`` defaults to ``engine.eos_id``; ``baseline`` is the same engine with
    method "none" (optional)."""
    t0 = time.perf_counter()
    w = _check_args(prompts, n, temperature, top_k, top_p, samples, batch, alpha, power, tv)
    prompts = [[int(t) for t in pr] for pr in prompts]
    if eos_id is None:
        eos_id = getattr(engine, "eos_id", None)
    P = len(prompts)
    notes = []
    for e in (engine, baseline):
        if e is not None and getattr(e, "note", None):
            notes.append(f"{e.name} {e.method}: {e.note}")
    laws = _laws(target_model, prompts, w, n, eos_id, min_prob)
    _margin_notes(laws, w, notes)
    engines = [("", engine)] + ([("none/", baseline)] if baseline is not None else [])
    if w.greedy:
        per = int(samples) if samples is not None else GREEDY_SAMPLES
    else:
        m = P * len(engines)
        per = int(samples) if samples is not None else max(
            plan_samples([p for p in law.cells.values()], alpha / m, power, tv) for law in laws)
    seeds = np.random.SeedSequence(int(seed)).generate_state(per * P, dtype=np.uint32).astype(np.int64)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=per * P * len(engines), desc=f"certify-engine {engine.name} {engine.method}",
                   unit="request", leave=False)
    counts = {}
    outs = {}
    try:
        for tag, e in engines:
            counts[tag] = [Counter() for _ in range(P)]
            outs[tag] = _run(e, prompts, counts[tag], n=n, w=w, batch=int(batch), seeds=seeds, bar=bar,
                             eos_id=eos_id, label=f"{e.name} {e.method}")
    finally:
        if bar is not None:
            bar.close()
    if w.greedy:
        rows = _greedy_rows(outs[""], outs.get("none/"), laws, P)
        det = float("nan")
    else:
        from specoracle.fastpath.models.lossless import prefix_law_gof
        m = P * len(engines)
        results = [_blind_if_one_cell(prefix_law_gof(counts[tag][i], laws[i].cells, alpha=alpha / m, power=power,
                                                     name=f"{tag}p{i}/law of {n} tokens"), laws[i])
                   for tag, _ in engines for i in range(P)]
        rows = _decide(results, alpha, power, tv, m)
        det = max(r.detectable for r in rows)
        if any(law.coarsened for law in laws):
            notes.append(f"law coarsened: sequences with probability < {min_prob or DEFAULT_MIN_PROB:g} pooled into "
                         "one cell (exact probabilities; the detectable TV is on that partition)")
    settings = dict(temperature=w.temperature, top_k=w.top_k, top_p=w.top_p, batch=int(batch), k=getattr(engine, "k", None),
                    samples_per_prompt=per, prompts=P, prompt_ids=prompts, eos_id=eos_id,
                    baseline=baseline is not None, cells=[len(law.cells) for law in laws])
    desc = f"{engine.name} {engine.version} method={engine.method}, black box, law of the first {n} tokens"
    return EngineReport(f"{engine.name}:{engine.method}", desc, _verdict(rows), alpha, power, tv, int(seed), rows,
                        time.perf_counter() - t0, notes, engine=engine.name, version=engine.version,
                        method=engine.method, settings=settings, n=int(n), detectable_tv=det, reproduce=reproduce)


def _blind_if_one_cell(res, law):
    """A GOF whose cells all merged into one sees only impossible outcomes (disjoint supports,
    TV 1): its detectable TV is 1 (stats.detectable_tv says 0 for df = 0), unless the law is a
    point mass; so the run counts as underpowered for any smaller ``tv``."""
    if res.df == 0 and sum(1 for p in law.cells.values() if p > 0) > 1:
        return dataclasses.replace(res, detectable=1.0)
    return res


def _margin_notes(laws, w, notes):
    if w.greedy:
        g = min(law.greedy_margin for law in laws)
        if g < NEAR_TIE_LOGITS:
            notes.append(f"near-tie: greedy top-1/top-2 logit gap {g:.2g} on the path; a different argmax "
                         "can be float rounding")
        return
    km = min(law.topk_margin for law in laws)
    pm = min(law.topp_margin for law in laws)
    if km < NEAR_TIE_LOGITS:
        notes.append(f"near-tie at the top-k boundary (logit gap {km:.2g}): the support may depend on rounding")
    if pm < NEAR_TIE_PROB:
        notes.append(f"near-tie at the top-p boundary (probability gap {pm:.2g}): the support may depend on rounding")
