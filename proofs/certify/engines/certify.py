"""Engine-level certification: a whole engine, black box, against the target's exact law
(DESIGN.md "Certifying other implementations", level "engine").

``certify_engine(engine, target_model, prompts, *, n, temperature, top_k, top_p, samples,
batch, alpha, power, tv, seed, progress, baseline, eos_id, min_prob, reproduce) -> EngineReport``

What is checked
  * T = 0: every request's first n tokens equal the target's greedy continuation (computed
    from ``target_model``, cache-free, :func:`~specoracle.proofs.certify.lossless.prefix_law`)
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

At scale: with an :class:`~specoracle.proofs.certify.engines.EngineFactory` and
``executor="ray"`` (or ``ray://HOST:PORT``, ``auto``) the requests are cut into shards of
whole engine calls and run on ``actors`` Ray actors, one engine each
(proofs/certify/executors.py ``map_actors``); each shard returns exact per-prompt counts, which are
summed. Request r keeps its prompt and seed and every engine call holds the same requests,
so the counts and the verdict equal the in-process run's (:func:`request_counts`).

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

from ... import stats as st
from ..decision import CheckRow, Report, decide, verdict_of

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
        if s.get("executor", "inprocess") == "inprocess":
            tail.append("executor: inprocess (one engine)")
        else:
            tail.append(f"executor: {s['executor']}, {s.get('actors')} actors (one engine each), "
                        f"{s.get('workers')} served requests")
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
    from specoracle.fastpath.models.llm.processing import Warp
    return Warp(float(temperature), top_k, top_p)  # validates temperature, top_k, top_p


def _laws(target_model, prompts, w, n, eos_id, min_prob):
    """One PrefixLaw per prompt; exact when enumerable, else coarsened (module doc)."""
    from ..lossless import MAX_CELLS, prefix_law
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


@dataclass(frozen=True)
class _Job:
    """What every shard of one engine's run shares (picklable: it travels to Ray actors)."""

    prompts: tuple          # P tuples of token ids; request r has prompt r mod P
    n: int
    temperature: float
    top_k: int | None
    top_p: float | None
    batch: int              # requests per engine call
    keep: bool              # also return the per-request tuples (T = 0 agreement rows)


def _describe(engine) -> dict:
    """The engine's identity and the attributes the certification reads (module doc)."""
    return dict(name=engine.name, version=engine.version, method=engine.method, note=getattr(engine, "note", None),
                eos_id=getattr(engine, "eos_id", None), k=getattr(engine, "k", None))


def _meta_call(engine, _arg) -> dict:
    return _describe(engine)


def sample_shard(engine, arg) -> dict:
    """Run requests ``first .. first + len(seeds) - 1`` of a job through ``engine`` in calls of
    ``job.batch`` (``arg = (job, first, seeds)``; ``first`` a multiple of the batch, so every
    call holds the same requests however the run is sharded). Returns ``counts`` (one Counter
    of raw token tuples per prompt), ``outs`` (the tuples in request order, if ``job.keep``),
    ``first`` and ``meta`` (:func:`_describe`)."""
    job, first, seeds = arg
    P = len(job.prompts)
    counts = [Counter() for _ in range(P)]
    outs = [] if job.keep else None
    for start in range(0, len(seeds), job.batch):
        idx = list(range(first + start, first + min(start + job.batch, len(seeds))))
        toks = engine.generate([list(job.prompts[r % P]) for r in idx], n=job.n,
                               seeds=[int(seeds[r - first]) for r in idx], temperature=job.temperature,
                               top_k=job.top_k, top_p=job.top_p)
        if len(toks) != len(idx):
            raise RuntimeError(f"{engine.name} {engine.method}: engine returned {len(toks)} sequences for "
                               f"{len(idx)} requests")
        for r, t in zip(idx, toks):
            t = tuple(int(x) for x in t)
            counts[r % P][t] += 1
            if outs is not None:
                outs.append(t)
    return dict(first=first, counts=counts, outs=outs, meta=_describe(engine))


def _classify(t: tuple, n: int, eos_id) -> tuple:
    """A well-formed emission is n tokens or a shorter EOS-terminated one; anything else (wrong
    length, tokens after EOS) is prefixed with MALFORMED: never in the law."""
    short_ok = len(t) == n or (0 < len(t) < n and eos_id is not None and t[-1] == eos_id)
    if not short_ok or (eos_id is not None and eos_id in t[:-1]):
        return (MALFORMED,) + t
    return t


def _shard_size(total: int, batch: int, kind: str, actors: int) -> int:
    """Requests per shard: a multiple of ``batch`` (identical engine calls for any split); one
    call in-process (progress per call), about 4 shards per actor on Ray (load balance)."""
    if kind == "inprocess":
        return batch
    calls = -(-total // batch)
    return batch * max(1, -(-calls // (4 * actors)))


def request_counts(engine, prompts, seeds, *, n: int, w, batch: int, keep: bool = False,
                   executor: str = "inprocess", actors: int = 1, retries: int = 2, bar=None):
    """Per-prompt Counters of the raw token tuples of requests ``0..len(seeds)-1`` (request r:
    prompt r mod P, seed ``seeds[r]``), the tuples in request order if ``keep`` (else None),
    the engine's :func:`_describe` and the set of workers that ran shards.

    ``engine`` is an Engine (in-process only) or a picklable factory (an
    :class:`~specoracle.proofs.certify.engines.EngineFactory`). In-process the requests run here, one
    engine call after the other; on Ray (``executor`` as in proofs/certify/executors.py) the shards go
    to ``actors`` actors holding one engine each (``executors.map_actors``) and their Counters
    are summed. The engine calls, their requests and seeds do not depend on the split, so the
    counts are identical for every executor and number of actors. A shard that still fails
    after ``retries`` raises RuntimeError (never dropped)."""
    from ..executors import map_actors, parse_executor

    kind, _ = parse_executor(executor)
    P, total = len(prompts), len(seeds)
    job = _Job(tuple(tuple(int(t) for t in pr) for pr in prompts), int(n), w.temperature, w.top_k, w.top_p,
               int(batch), bool(keep))
    size = _shard_size(total, int(batch), kind, int(actors))
    items = [(s, (job, s, [int(x) for x in seeds[s:s + size]])) for s in range(0, total, size)]
    parts = []
    if kind == "inprocess":
        if not hasattr(engine, "generate"):
            raise InvalidInput("engine", "in-process runs take a built engine (certify_engine builds factories)")
        for _, arg in items:
            parts.append(sample_shard(engine, arg))
            if bar is not None:
                bar.update(len(arg[2]))
        workers = {"in-process"}
    else:
        if hasattr(engine, "generate"):
            raise InvalidInput("engine", "the Ray executor needs a picklable factory (EngineFactory), not a built "
                                         "engine")
        workers = set()
        for o in map_actors(engine, sample_shard, items, executor, int(actors), retries):
            if not o.ok:
                raise RuntimeError(f"requests {o.key}..: shard failed after {o.attempts} attempts: {o.error}")
            parts.append(o.value)
            workers.add(o.worker)
            if bar is not None:
                bar.update(sum(o.value["counts"][i].total() for i in range(P)))
    parts.sort(key=lambda d: d["first"])
    counts = [Counter() for _ in range(P)]
    for d in parts:
        for i in range(P):
            counts[i].update(d["counts"][i])
    outs = [t for d in parts for t in d["outs"]] if keep else None
    return counts, outs, parts[0]["meta"], workers


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
                   baseline=None, eos_id=None, min_prob: float | None = None, reproduce: str = "",
                   executor: str = "inprocess", actors: int = 1) -> EngineReport:
    """Certify ``engine`` (an :class:`~specoracle.proofs.certify.engines.Engine`, or an
    :class:`~specoracle.proofs.certify.engines.EngineFactory`) on ``prompts`` (token-id lists) against
    ``target_model`` (a Hugging Face causal LM: the exact law's source); see the module doc.
    ``eos_id`` defaults to the engine's ``eos_id``; ``baseline`` is the same engine with
    method "none" (optional, same kind as ``engine``).

    ``executor`` "inprocess" (default) runs here; "ray", "ray://HOST:PORT" or "auto" shards
    the requests over ``actors`` Ray actors, one engine each (factories only; see
    :func:`request_counts`): same seeds, same engine calls, so the counts and the verdict are
    identical to in-process. Without ``eos_id`` a Ray run first builds the engine on one actor
    to read it (the law depends on it)."""
    from ..executors import parse_executor, session

    kind, _ = parse_executor(executor)
    if int(actors) != actors or actors < 1:
        raise InvalidInput("actors", f"must be a positive integer, got {actors}")
    if kind != "inprocess" and any(hasattr(e, "generate") for e in (engine, baseline)):
        raise InvalidInput("engine", "the Ray executor needs a picklable factory (EngineFactory), not a built engine")
    built = []
    try:
        if kind == "inprocess":
            if not hasattr(engine, "generate"):
                engine = engine()
                built.append(engine)
            if baseline is not None and not hasattr(baseline, "generate"):
                baseline = baseline()
                built.append(baseline)
        with session(executor, int(actors)):
            return _certify(engine, target_model, prompts, n=n, temperature=temperature, top_k=top_k, top_p=top_p,
                            samples=samples, batch=batch, alpha=alpha, power=power, tv=tv, seed=seed,
                            progress=progress, baseline=baseline, eos_id=eos_id, min_prob=min_prob,
                            reproduce=reproduce, executor=executor, kind=kind, actors=int(actors) if kind != "inprocess"
                            else 1)
    finally:
        for e in built:
            e.close()


def _engine_meta(engine, kind, executor):
    """:func:`_describe` of a built engine; on Ray, of an engine built on one actor."""
    if kind == "inprocess":
        return _describe(engine)
    from ..executors import map_actors
    (o,) = list(map_actors(engine, _meta_call, [(0, None)], executor, 1))
    if not o.ok:
        raise RuntimeError(f"building the engine on a Ray actor failed: {o.error}")
    return o.value


def _certify(engine, target_model, prompts, *, n, temperature, top_k, top_p, samples, batch, alpha, power, tv,
             seed, progress, baseline, eos_id, min_prob, reproduce, executor, kind, actors):
    t0 = time.perf_counter()
    w = _check_args(prompts, n, temperature, top_k, top_p, samples, batch, alpha, power, tv)
    prompts = [[int(t) for t in pr] for pr in prompts]
    if eos_id is None:
        eos_id = _engine_meta(engine, kind, executor)["eos_id"]
    P = len(prompts)
    laws = _laws(target_model, prompts, w, n, eos_id, min_prob)
    notes = []
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
        name = getattr(engine, "name", "")
        bar = tqdm(total=per * P * len(engines), desc=f"certify-engine {name}", unit="request", leave=False)
    counts, outs, meta, workers = {}, {}, {}, set()
    try:
        for tag, e in engines:
            raw, o, meta[tag], who = request_counts(e, prompts, seeds, n=n, w=w, batch=int(batch), keep=w.greedy,
                                                    executor=executor, actors=actors, bar=bar)
            workers |= who
            counts[tag] = [_reclassify(c, n, eos_id) for c in raw]
            outs[tag] = None if o is None else [_classify(t, n, eos_id) for t in o]
    finally:
        if bar is not None:
            bar.close()
    notes[:0] = [f"{d['name']} {d['method']}: {d['note']}" for d in meta.values() if d.get("note")]
    me = meta[""]
    if w.greedy:
        rows = _greedy_rows(outs[""], outs.get("none/"), laws, P)
        det = float("nan")
    else:
        from ..lossless import prefix_law_gof
        m = P * len(engines)
        results = [_blind_if_one_cell(prefix_law_gof(counts[tag][i], laws[i].cells, alpha=alpha / m, power=power,
                                                     name=f"{tag}p{i}/law of {n} tokens"), laws[i])
                   for tag, _ in engines for i in range(P)]
        rows = decide(results, alpha, power, tv, m)
        det = max(r.detectable for r in rows)
        if any(law.coarsened for law in laws):
            notes.append(f"law coarsened: sequences with probability < {min_prob or DEFAULT_MIN_PROB:g} pooled into "
                         "one cell (exact probabilities; the detectable TV is on that partition)")
    settings = dict(temperature=w.temperature, top_k=w.top_k, top_p=w.top_p, batch=int(batch), k=me["k"],
                    samples_per_prompt=per, prompts=P, prompt_ids=prompts, eos_id=eos_id,
                    baseline=baseline is not None, cells=[len(law.cells) for law in laws],
                    executor=executor if kind != "inprocess" else "inprocess", actors=actors, workers=len(workers))
    desc = f"{me['name']} {me['version']} method={me['method']}, black box, law of the first {n} tokens"
    return EngineReport(f"{me['name']}:{me['method']}", desc, verdict_of(rows), alpha, power, tv, int(seed), rows,
                        time.perf_counter() - t0, notes, engine=me["name"], version=me["version"],
                        method=me["method"], settings=settings, n=int(n), detectable_tv=det, reproduce=reproduce)


def _reclassify(c: Counter, n: int, eos_id) -> Counter:
    out = Counter()
    for t, k in c.items():
        out[_classify(t, n, eos_id)] += k
    return out


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
