"""The batched protocol of ``certify``: B requests per call, the way engines
run them, with per-request checks, batch invariance and determinism.

Call signature (protocol ``"batch"``; modelled on vLLM V1's rejection sampler, which
takes flattened ragged drafts with ``cu_num_draft_tokens``, target logits
[sum(K_i + 1), V] and per-request generators)::

    fn(target_probs [N + B, V], draft_probs [N, V], draft_token_ids [N],
       cu_num_draft_tokens [B], temperature [B], generators) -> output_token_ids

* request i has K_i = cu[i] - cu[i-1] drafted tokens (cu[-1] := 0; K_i = 0 is legal and
  means "bonus token only"); N = sum K_i;
* its draft ids and draft rows are ``draft_token_ids[cu[i-1]:cu[i]]`` and
  ``draft_probs[cu[i-1]:cu[i]]``; its K_i + 1 target rows are
  ``target_probs[cu[i-1] + i : cu[i] + i + 1]`` (one extra row per request for the bonus
  token): :func:`request_slices` computes both;
* ``temperature[i] == 0.0``: a greedy request (accept the longest prefix of the draft that
  matches the argmax of the target rows, then emit the argmax of the next row; no noise);
  ``1.0``: a sampled request whose rows are the laws to use as they are (any temperature,
  top-k or top-p is already applied to them);
* ``generators`` is a list of B ``numpy.random.Generator``: request i's noise must come
  from ``generators[i]`` alone (per-request seeds, as vLLM's ``SamplingMetadata.generators``);
* the output is ``[B, max_i K_i + 1]`` ids padded with -1 (vLLM's placeholder), or a list
  of B emitted sequences (each ids, a ``Verdict``, or ``(ids, n_accepted)``).
  :func:`pad_outputs` turns a list into the padded array.

What is checked (module doc of :mod:`specoracle.proofs.certify` for the statistics):

* **per request**, in two placements, ``solo`` (B = 1) and ``batch`` (the chosen request
  kinds cycled to at least ``MIN_BATCH`` = 4 requests per call, ragged K including 0,
  greedy and sampled rows mixed): ``<kind>@<placement>/joint`` (the emitted block completed
  by target sampling follows the target's joint law: lossless) and, for impls that
  declare ``law="chain"``/``"block"``, ``<kind>@<placement>/emitted|tau`` (the law of
  (tau, tokens) is the algorithm's);
* **batch invariance**, ``<kind>/invariance``: a two-sample chi-square homogeneity test
  (:func:`~specoracle.proofs.stats.chisquare_homogeneity`) between the emitted blocks
  (tau, tokens) of the same request kind alone and inside the batch: a request's law
  must not depend on the other requests of its batch, even when it stays lossless;
* **determinism** (exact, no alpha share): ``DETERMINISM_ROUNDS`` rounds of requests
  (same drafts, same per-request seeds) are run in the batch order, in the reversed
  batch order and each alone; the tokens must be identical;
* **greedy rows** (exact, no alpha share): every greedy request's tokens equal
  :func:`specoracle.reference.categorical.verify_greedy` on its rows.

Power and sizes: every calibrated check must detect ``target_tv`` with ``power`` at its
Bonferroni share alpha/m (Holm over the m checks); ``samples=None`` picks the number of
rounds per placement that achieves it for every check, including the homogeneity test,
whose effective sample size is n_solo n_batch / (n_solo + n_batch).

The battery (:func:`request_kinds`, all V = 3 so that one batch shares a vocabulary):
``t1`` (K = 1), ``scaled`` (K = 2), ``markov`` (K = 3, context-dependent rows with
zeros), ``markov_k0`` (the same rows, K = 0: bonus only) and ``greedy`` (the soft
``markov`` rows at temperature 0: the law is that of their argmax).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from specoracle.reference import categorical as cat
from specoracle.reference.types import InvalidInput, InvalidTest

from specoracle.fastpath import registry

from .. import stats as st
from . import scenarios as scn
from .decision import CheckRow, Report, cell_counts, decide, gof, verdict_of
from .impl import Impl, tokens_and_tau

MIN_BATCH = 4              # requests per call in the "batch" placement (> 2: cf. 1Cat-vLLM#656)
DETERMINISM_ROUNDS = 200   # rounds of the exact determinism check
DEFAULT_KINDS = ("t1", "scaled", "markov", "markov_k0", "greedy")
PLACEMENTS = ("solo", "batch")


# ---------------------------------------------------------------- the call layout (public helpers)


def request_slices(cu_num_draft_tokens):
    """Per-request ``(draft_slice, target_slice)`` from ``cu_num_draft_tokens`` [B]
    (inclusive cumulative sums of K_i): drafts ``cu[i-1]:cu[i]``, target rows
    ``cu[i-1] + i : cu[i] + i + 1``. Raises :class:`InvalidInput` if ``cu`` decreases."""
    cu = np.asarray(cu_num_draft_tokens, dtype=np.int64).reshape(-1)
    out, start = [], 0
    for i, end in enumerate(cu):
        if end < start:
            raise InvalidInput("cu_num_draft_tokens", f"decreases ({end} < {start})", index=i)
        out.append((slice(start, int(end)), slice(start + i, int(end) + i + 1)))
        start = int(end)
    return out


def pad_outputs(sequences, width=None) -> np.ndarray:
    """B emitted sequences -> ids [B, width] padded with -1 (width: the longest)."""
    seqs = [list(s) for s in sequences]
    width = max((len(s) for s in seqs), default=0) if width is None else width
    out = np.full((len(seqs), width), -1, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out


def assemble(requests):
    """Flatten requests ``(p [K_i+1, V], q [K_i, V], draft [K_i], temperature)`` into the
    call layout: ``(target_probs [N+B, V], draft_probs [N, V], draft_token_ids [N],
    cu_num_draft_tokens [B], temperature [B])``."""
    V = requests[0][0].shape[1]
    ks = [len(r[2]) for r in requests]
    target = np.concatenate([r[0] for r in requests])
    qs = [r[1] for r in requests if len(r[2])]
    draft_probs = np.concatenate(qs) if qs else np.zeros((0, V))
    ids = np.concatenate([np.asarray(r[2], dtype=np.int64) for r in requests]) if sum(ks) else np.zeros(0, np.int64)
    return (target, draft_probs, ids, np.cumsum(ks).astype(np.int64),
            np.array([float(r[3]) for r in requests]))


def split_outputs(out, B):
    """The sampler's output -> B tuples of (tokens, tau or None); malformed -> None."""
    if hasattr(out, "detach"):  # a torch tensor
        out = out.detach().cpu().numpy()
    if isinstance(out, np.ndarray) and out.ndim == 2:
        if out.shape[0] != B:
            raise ValueError(f"the sampler returned {out.shape[0]} rows for {B} requests")
        rows = []
        for r in out:
            r = [int(t) for t in r]
            n = next((j for j, t in enumerate(r) if t < 0), len(r))
            rows.append(None if any(t >= 0 for t in r[n:]) else (tuple(r[:n]), None))
        return rows
    seqs = list(out)
    if len(seqs) != B:
        raise ValueError(f"the sampler returned {len(seqs)} outputs for {B} requests")
    return [tokens_and_tau(s) for s in seqs]


# ---------------------------------------------------------------- the battery


@dataclass(frozen=True)
class RequestKind:
    """One kind of request: ``feed`` holds the rows handed to the sampler, ``law`` the
    rows whose laws the output must follow (the same, except for greedy requests, whose
    law is that of the argmax rows); ``temperature`` 0.0 (greedy) or 1.0 (sampled)."""

    name: str
    description: str
    feed: scn.MarkovScenario
    law: scn.MarkovScenario
    temperature: float

    @property
    def K(self) -> int:
        return self.feed.K


def _truncated(sc: scn.MarkovScenario, k: int, name: str) -> scn.MarkovScenario:
    return scn.MarkovScenario(name, f"{sc.description}, truncated to K={k}", sc.P[:k + 1], sc.Q[:k])


def _onehot(sc: scn.MarkovScenario) -> scn.MarkovScenario:
    am = sc.P.argmax(axis=-1)
    hot = np.zeros_like(sc.P)
    np.put_along_axis(hot, am[..., None], 1.0, axis=-1)
    return scn.MarkovScenario(sc.name, "argmax rows of " + sc.name, hot, sc.Q)


def request_kinds() -> dict:
    """The batch battery (name -> RequestKind), all over V = 3 (module doc)."""
    pool = scn.markov_scenarios()
    soft = scn.MarkovScenario("greedy", "markov rows", *scn._random_markov(11, 3, 3, zero_frac=0.0))
    k0 = _truncated(pool["markov"], 0, "markov_k0")
    return {
        "t1": RequestKind("t1", "T1's pair, K=1, sampled", pool["t1"], pool["t1"], 1.0),
        "scaled": RequestKind("scaled", "V=3, K=2, sampled", pool["scaled"], pool["scaled"], 1.0),
        "markov": RequestKind("markov", "V=3, K=3 context-dependent rows with zeros, sampled",
                              pool["markov"], pool["markov"], 1.0),
        "markov_k0": RequestKind("markov_k0", "the markov rows with K=0 (bonus token only), sampled", k0, k0, 1.0),
        "greedy": RequestKind("greedy", "soft context-dependent V=3, K=3 rows at temperature 0", soft,
                              _onehot(soft), 0.0),
    }


# ---------------------------------------------------------------- running a placement


class _Tally:
    """Outcome indices of one (kind, placement): completed joint, emitted, tau."""

    def __init__(self):
        self.joint, self.emitted, self.tau = [], [], []

    def add(self, kind: RequestKind, out, rng):
        sc = kind.law
        toks, tau = out if out is not None else ((), None)
        tau = len(toks) - 1 if tau is None else tau
        if not (1 <= len(toks) <= kind.K + 1) or any(t < 0 or t >= sc.V for t in toks) or tau != len(toks) - 1:
            self.joint.append(-1)
            self.emitted.append(-1)
            self.tau.append(-1)
        else:
            self.joint.append(scn.seq_index(sc.complete(toks, rng), sc.V))
            self.emitted.append(sc.emitted_index(toks))
            self.tau.append(tau)


def _draw_requests(kinds, rng):
    """One request per kind: (p, q, draft, temperature), drafts from the kind's q."""
    out = []
    for k in kinds:
        draft, p, q = k.feed.draw_drafts(1, rng)
        out.append((p[0], q[0], draft[0], k.temperature))
    return out


def _call(fn, requests, seeds):
    target, qs, ids, cu, temp = assemble(requests)
    gens = [np.random.default_rng(int(s)) for s in seeds]
    return split_outputs(fn(target, qs, ids, cu, temp, gens), len(requests))


class _GreedyCheck:
    def __init__(self):
        self.n, self.bad, self.first = 0, 0, None

    def add(self, req, out):
        p, _, draft, temp = req
        if temp != 0.0:
            return
        want = cat.verify_greedy(p, draft).tokens
        got = None if out is None else out[0]
        self.n += 1
        if got != want:
            self.bad += 1
            if self.first is None:
                self.first = f"greedy rows {np.round(p, 4).tolist()}, draft {list(map(int, draft))}: " \
                             f"expected {want}, got {got}"


def _run_solo(fn, kinds, n, rng, greedy, bar):
    tallies = {k.name: _Tally() for k in kinds}
    for _ in range(n):
        for k in kinds:
            req = _draw_requests([k], rng)
            out = _call(fn, req, rng.integers(0, 2 ** 63, size=1))[0]
            greedy.add(req[0], out)
            tallies[k.name].add(k, out, rng)
        if bar is not None:
            bar.update(len(kinds))
    return tallies


def batch_layout(kinds) -> list:
    """The kinds of the "batch" placement: the chosen kinds cycled to >= MIN_BATCH."""
    return [kinds[i % len(kinds)] for i in range(max(MIN_BATCH, len(kinds)))]


def _run_batch(fn, kinds, n, rng, greedy, bar):
    layout = batch_layout(kinds)
    tallies = {k.name: _Tally() for k in kinds}
    for _ in range(n):
        reqs = _draw_requests(layout, rng)
        outs = _call(fn, reqs, rng.integers(0, 2 ** 63, size=len(reqs)))
        for k, req, out in zip(layout, reqs, outs):
            greedy.add(req, out)
            tallies[k.name].add(k, out, rng)
        if bar is not None:
            bar.update(len(layout))
    return tallies


def _determinism(fn, kinds, rounds, rng, bar):
    """The same requests and seeds in the batch order, reversed, and alone: equal tokens."""
    layout = batch_layout(kinds)
    first, same, total = None, 0, 0
    for r in range(rounds):
        reqs = _draw_requests(layout, rng)
        seeds = rng.integers(0, 2 ** 63, size=len(reqs))
        fwd = _call(fn, reqs, seeds)
        rev = _call(fn, reqs[::-1], seeds[::-1])[::-1]
        solo = [_call(fn, [q], [s])[0] for q, s in zip(reqs, seeds)]
        for i in range(len(reqs)):
            total += 1
            a, b, c = (None if o is None else o[0] for o in (fwd[i], rev[i], solo[i]))
            if a == b == c:
                same += 1
            elif first is None:
                first = (f"round {r}, request {i} ({layout[i].name}, seed {int(seeds[i])}): batch {a}, "
                         f"reversed batch {b}, alone {c}")
        if bar is not None:
            bar.update(3 * len(reqs))
    return same, total, first


# ---------------------------------------------------------------- planning and certification


def _law_of(kind: RequestKind, law: str | None):
    """The emitted (tau, tokens) law of the claimed algorithm (K = 0: both are the bonus draw)."""
    return kind.law.chain_law() if law == "chain" or kind.K == 0 else kind.law.block_law()


def _plan(kind: RequestKind, law: str | None) -> dict:
    """Degrees of freedom of the calibrated checks of one kind (before sampling)."""
    sc = kind.law
    out = {"joint": int((sc.joint_law() > 0).sum()) - 1}
    if law in ("chain", "block"):
        out["emitted|tau"] = int((_law_of(kind, law) > 0).sum()) - 1
    # homogeneity over emitted cells: size it for any exact chain or block sampler
    out["invariance"] = int(((_law_of(kind, "chain") + _law_of(kind, "block")) > 0).sum()) - 1
    return out


def check_names(kinds, law) -> list:
    """The calibrated checks of a run, in report order."""
    names = []
    for k in kinds:
        plan = _plan(k, law)
        for pl in PLACEMENTS:
            names.append(f"{k.name}@{pl}/joint")
            if "emitted|tau" in plan:
                names.append(f"{k.name}@{pl}/emitted|tau")
        names.append(f"{k.name}/invariance")
    return names


def rounds_needed(kinds, law, alpha_i, power, tv) -> int:
    """Rounds per placement so that every check detects ``tv`` with ``power`` at alpha_i."""
    layout = batch_layout(kinds)
    n = 200
    for k in kinds:
        plan = _plan(k, law)
        for key, df in plan.items():
            need = st.gof_sample_size(tv, df, alpha_i, power) if df > 0 else 1
            if key == "invariance":  # n_eff = n_solo n_batch / (n_solo + n_batch), n_batch = c n
                c = layout.count(k)
                need = int(math.ceil(need * (1 + c) / c))
            n = max(n, need)
    return n


def certify_batch(spec, *, samples=None, alpha, power, target_tv, seed, scenarios=None, progress=False):
    """Certify an impl of protocol "batch" (module doc); returns a certify ``Report``."""
    t0 = time.perf_counter()
    pool = request_kinds()
    names = tuple(scenarios or spec.scenarios or DEFAULT_KINDS)
    for nm in names:
        if nm not in pool:
            raise InvalidInput("scenarios", f"unknown request kind {nm!r} of the batch protocol "
                                            f"(one of {', '.join(sorted(pool))})")
    kinds = [pool[nm] for nm in names]
    checks = check_names(kinds, spec.law)
    m = len(checks)
    alpha_i = alpha / m
    n = int(samples) if samples is not None else rounds_needed(kinds, spec.law, alpha_i, power, target_tv)
    rng = np.random.default_rng(seed)
    layout = batch_layout(kinds)
    bar = None
    if progress:
        from tqdm import tqdm
        total = n * (len(kinds) + len(layout)) + DETERMINISM_ROUNDS * 3 * len(layout)
        bar = tqdm(total=total, desc=f"certify {spec.name}", unit="request", leave=False)
    greedy = _GreedyCheck()
    notes, crashed, det = [], None, None
    tallies = {}
    try:
        tallies["solo"] = _run_solo(spec.fn, kinds, n, rng, greedy, bar)
        tallies["batch"] = _run_batch(spec.fn, kinds, n, rng, greedy, bar)
        det = _determinism(spec.fn, kinds, DETERMINISM_ROUNDS, rng, bar)
    except InvalidTest:
        raise
    except Exception as exc:  # a sampler that crashes on valid input is not exact
        where = "solo" if "solo" not in tallies else ("batch" if "batch" not in tallies else "determinism")
        crashed = CheckRow(f"{where}/run", float("nan"), 0.0, 0, "error", float("nan"), verdict="REJECT",
                           detail=f"{type(exc).__name__}: {exc}")
        notes.append(f"{where}: the sampler raised {type(exc).__name__}: {exc}")
    finally:
        if bar is not None:
            bar.close()
    results = []
    for k in kinds:
        if len(tallies) < 2:
            break
        for pl in PLACEMENTS:
            t = tallies[pl][k.name]
            results.append(gof(f"{k.name}@{pl}/joint", np.array(t.joint), k.law.joint_law(), alpha_i, power))
            if spec.law in ("chain", "block"):
                results.append(gof(f"{k.name}@{pl}/emitted|tau", np.array(t.emitted), _law_of(k, spec.law),
                                    alpha_i, power))
        size = int(k.law.emitted_offsets()[-1])
        results.append(st.chisquare_homogeneity(cell_counts(tallies["solo"][k.name].emitted, size),
                                                cell_counts(tallies["batch"][k.name].emitted, size),
                                                alpha=alpha_i, power=power, name=f"{k.name}/invariance"))
    rows = decide(results, alpha, power, target_tv, m)
    if crashed is not None:
        rows.append(crashed)
    if det is not None:
        same, total, first = det
        rows.append(CheckRow("determinism", same / total, 1.0 if first is None else 0.0, total, "agreement",
                             float("nan"), verdict="agree" if first is None else "DISAGREE",
                             detail="same seeds in the batch, reversed and alone" if first is None
                             else "first difference: " + first))
    if greedy.n:
        rows.append(CheckRow("greedy/oracle", 1 - greedy.bad / greedy.n, 1.0 if greedy.bad == 0 else 0.0, greedy.n,
                             "agreement", float("nan"), verdict="agree" if greedy.bad == 0 else "DISAGREE",
                             detail="tokens == verify_greedy(rows, draft)" if greedy.bad == 0
                             else "first difference: " + greedy.first))
    notes.append(f"batch placement: {len(layout)} requests per call ({', '.join(k.name for k in layout)}); "
                 f"{n} rounds per placement; determinism over {DETERMINISM_ROUNDS} rounds")
    return Report(spec.name, spec.description, verdict_of(rows), alpha, power, target_tv, seed, rows,
                  time.perf_counter() - t0, notes)


# ---------------------------------------------------------------- the reference (exact)


def reference_batch(target_probs, draft_probs, draft_token_ids, cu_num_draft_tokens, temperature, generators):
    """The oracle, batched: for each request, :func:`~specoracle.reference.categorical.verify_greedy`
    if its temperature is 0, else :func:`~specoracle.reference.categorical.verify_chain_rng`
    with its own generator (module doc for the layout). Returns ids [B, max K_i + 1], -1 padded."""
    slices = request_slices(cu_num_draft_tokens)
    temperature = np.asarray(temperature, dtype=np.float64).reshape(-1)
    if len(temperature) != len(slices) or len(generators) != len(slices):
        raise InvalidInput("temperature" if len(temperature) != len(slices) else "generators",
                           f"expected one per request ({len(slices)})")
    outs = []
    for i, (ds, ts) in enumerate(slices):
        p, q, d = target_probs[ts], draft_probs[ds], draft_token_ids[ds]
        if temperature[i] == 0.0:
            v = cat.verify_greedy(p, d)
        else:
            v = cat.verify_chain_rng(p, q, d, generators[i])
        outs.append(v.tokens)
    return pad_outputs(outs, max(ds.stop - ds.start for ds, _ in slices) + 1 if slices else 0)


reference_batch.specoracle_protocol = "batch"   # `specoracle certify specoracle.proofs.certify.batch:reference_batch`
reference_batch.specoracle_law = "chain"


# ---------------------------------------------------------------- padded batched kernels (fast paths)


def padded_adapter(verify_chain, verify_greedy):
    """A "batch" sampler over a PADDED batched kernel pair, the fast paths' layout
    ``verify_chain(p [B, Kmax+1, V], q [B, Kmax, V], draft [B, Kmax], u [B, Kmax+1],
    num_draft=[B]) -> BatchVerdict`` and ``verify_greedy(p, draft, num_draft=)``: the
    flattened requests are scattered into padded arrays (draft padding -1, padding rows
    uniform and never read), request b's noise is ``generators[b].random(K_b + 1)`` (the
    oracle's layout, so the tokens equal :func:`reference_batch`'s), greedy and sampled
    requests go to their own kernel call."""
    def fn(target_probs, draft_probs, draft_token_ids, cu_num_draft_tokens, temperature, generators):
        slices = request_slices(cu_num_draft_tokens)
        B, V = len(slices), target_probs.shape[1]
        n = np.array([ds.stop - ds.start for ds, _ in slices], dtype=np.int64)
        kmax = int(n.max()) if B else 0
        p, q = np.full((B, kmax + 1, V), 1.0 / V), np.full((B, kmax, V), 1.0 / V)
        d, u = np.full((B, kmax), -1, dtype=np.int64), np.zeros((B, kmax + 1))
        greedy = np.asarray(temperature, dtype=np.float64) == 0.0
        for b, (ds, ts) in enumerate(slices):
            p[b, :n[b] + 1], q[b, :n[b]], d[b, :n[b]] = target_probs[ts], draft_probs[ds], draft_token_ids[ds]
            if not greedy[b]:
                u[b, :n[b] + 1] = generators[b].random(n[b] + 1)
        out = np.full((B, kmax + 1), -1, dtype=np.int64)
        for rows, run in ((np.flatnonzero(~greedy), lambda r: verify_chain(p[r], q[r], d[r], u[r], num_draft=n[r])),
                          (np.flatnonzero(greedy), lambda r: verify_greedy(p[r], d[r], num_draft=n[r]))):
            if rows.size:
                bv = run(rows)
                for j, b in enumerate(rows):
                    toks = bv.verdict(j).tokens
                    out[b, :len(toks)] = toks
        return out
    return fn


def _fastpath_factory(backend):
    def factory():
        chain, greedy = registry.resolve(backend, "chain"), registry.resolve(backend, "greedy")
        return Impl(f"{backend}.batch", "batch", padded_adapter(chain, greedy), "chain",
                    f"{registry.PACKAGES[backend]}.categorical.verify_chain / verify_greedy with num_draft "
                    "(ragged, padded)")
    return factory


def register_all(register) -> None:
    """``reference.batch`` and ``<backend>.batch`` for every fast-path backend of the registry
    that has certified chain and greedy twins."""
    register("reference.batch", lambda: Impl("reference.batch", "batch", reference_batch, "chain",
                                             "the oracle batched: ragged drafts, greedy and sampled rows, "
                                             "per-request generators"))
    names = registry.certify_names()
    for backend in registry.available_backends():
        if f"{backend}.chain" in names and f"{backend}.greedy" in names:
            register(f"{backend}.batch", _fastpath_factory(backend))
