"""Speculative decoding with real KV caches, and plain autoregressive decoding on the same path.

One round (Leviathan et al. 2023, arXiv 2211.17192; Chen et al. 2023, arXiv 2302.01318;
block verification: Sun et al., arXiv 2403.10444; ALGORITHMS.md §1.2-1.3), for every
unfinished row b of the batch:

1. draft k tokens x_1..x_k with the draft model, x_j ~ q_j = warp(draft logits) by the
   inverse CDF (one uniform each); the draft cache advances by one token per call;
2. one target call scores the k+1 positions: p_1..p_{k+1} = warp(target logits);
3. verify (chain / block / greedy) -> n_b accepted drafts and one correction or bonus token;
4. commit those n_b + 1 tokens (cut at EOS and at ``max_new_tokens``) and roll both caches
   back to the accepted prefix (:class:`~specoracle.fastpath.models.llm.kv.KVState`).

``warp`` (:mod:`specoracle.fastpath.models.llm.processing`) calls the ONE torch warp,
``torch_cuda.processing.process_logits`` (the twin of reference/processing.py), on target and
draft logits alike; q given to the verifier is the warped draft row that x_j was drawn from.
Draft draws use the backend's one home of the inverse-CDF draw (``verify.sample_rows``).

Noise layout (per request b, its own ``numpy.random.Generator(seed_b)``; per round):
``u_draft = rng.random(k)`` then ``u_verify = rng.random(k + 1)`` (the verifier's layout,
reference/categorical.py). Greedy (temperature 0) draws nothing. Plain autoregressive
decoding draws ``rng.random(1)`` per token. The output is deterministic given the seeds
and the batch composition.

How a generation runs is one :class:`~specoracle.fastpath.models.llm.runtime.Runtime` (checked on
construction; the fields below are its fields); none of its settings changes the tokens.

``cache="static"`` runs the same rounds over preallocated, position-indexed buffers with
fixed-shape calls (fastpath/models/llm/static.py): the prompt minus its last token is prefilled
once, then every target call has width k+1, the first draft call of a round width 2 and the
others width 1 (AR: width 1), ready for CUDA graphs (``cuda_graphs=True``, CUDA only) or
``torch.compile`` (``compile_mode``). Same noise, same warps, same verifier: the tokens equal
the dynamic path's (tests/fastpath/models/llm/test_llm_static.py) up to float rounding of the logits (a draw
within ~1e-6 of a CDF boundary could differ; none did in the tests).

``round_impl="device"`` runs steps 1-3 as torch tensors on the models' device
(fastpath/models/llm/device_round.py: the same warp, the reference's inverse-CDF draw in torch,
the torch_cuda verifiers; one device -> host read per round) instead of the host round
(``"host"``, default: logits copied to the host once per call, ``backend`` draws and
verifiers). Same noise source and layout, so with ``round_dtype="float64"`` on the CPU both
give identical tokens and acceptance counts (tests/fastpath/models/llm/test_llm_device_round.py);
``round_dtype="float32"`` is the fast GPU setting (decisions agree up to float32 margins).

Token ids have one representation from the prompt to the result: the committed ids of all
rows live in one int64 buffer [B, prompt + max_new_tokens] (:class:`_Rows`); drafts are an int64
array [B, k], the verifier returns int64 arrays (n_accepted [B], tokens [B, k+1]) and the commit
copies slices of them into the buffer. ``GenerationResult.tokens`` converts to lists once, at the end.

Twin of the oracle: for one row, the rounds are those of
:func:`specoracle.reference.decoding.speculative_decode` (same draft draws, same verifier, same
noise: the request's uniforms rng.random(k), rng.random(k+1) per round are one row of the
reference's noise u [rounds, 2k+1]); tests/fastpath/models/llm/test_llm_engine_parity.py checks it decision by decision.

The negative controls of the end-to-end certification (a target cache that keeps one rejected
draft; a verifier given softmax(draft logits) instead of the warped q) replace one step of the
loop through :class:`Hooks` (fastpath/models/llm/faults.py); the public functions take no fault.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from specoracle.reference.types import InvalidInput

from specoracle.fastpath.models.llm import device_round
from specoracle.fastpath.models.llm.kv import KVState
from specoracle.fastpath.models.llm.processing import Warp, warp
from specoracle.fastpath.models.llm.runtime import Runtime
from specoracle.fastpath.models.llm.verify import METHODS, sample_rows, verify

_EMPTY = np.zeros(0, np.int64)


def _states(models, bsz: int, prompts, runtime: Runtime, max_len: int, k: int):
    """One cache state per model; the static path prefills prompt[:-1] of every row."""
    if runtime.cache == "dynamic":
        return [KVState(m, bsz) for m in models]
    from specoracle.fastpath.models.llm.static import StaticKVState, pooled_state

    widths = {"target": (k + 1,), "draft": (1, 2)}
    states = []
    for role, m in zip(("target", "draft"), models):
        graphs = widths[role] if runtime.cuda_graphs else ()
        if runtime.cuda_graphs or runtime.compile_mode:  # reuse captured graphs / compiled steps
            st = pooled_state(m, bsz, max_len, graphs, runtime.compile_mode)
        else:
            st = StaticKVState(m, bsz, max_len, graph_widths=graphs)
        head = [p[:-1] for p in prompts]
        if any(len(h) for h in head):
            st.feed(head)
        states.append(st)
    return states


@dataclass
class GenerationResult:
    """Output of one batched generation.

    tokens:     generated ids per row (prompt excluded), list of B lists of ints
    rounds:     target calls after the prefill (speculative rounds, or AR steps)
    accepted:   per row, the list of n_accepted per round (speculative only)
    k:          drafts per round (0 for autoregressive)
    seconds:    wall-clock time of the whole generation (prefill included)
    target_calls / draft_calls: model forward calls (prefill included)
    """

    tokens: list
    k: int = 0
    accepted: list = field(default_factory=list)
    seconds: float = 0.0
    target_calls: int = 0
    draft_calls: int = 0

    @property
    def n_tokens(self) -> int:
        return sum(len(t) for t in self.tokens)

    @property
    def tokens_per_second(self) -> float:
        return self.n_tokens / self.seconds if self.seconds > 0 else float("nan")

    def tau(self) -> float:
        """Mean tokens per round per row, bonus/correction included (n_accepted + 1)."""
        flat = [a for row in self.accepted for a in row]
        return float(np.mean(flat) + 1) if flat else float("nan")

    def position_acceptance(self) -> list:
        """For i = 1..k: the fraction of rounds in which draft position i was accepted
        (P(n_accepted >= i))."""
        flat = np.array([a for row in self.accepted for a in row])
        if flat.size == 0:
            return []
        return [float(np.mean(flat >= i)) for i in range(1, self.k + 1)]


def _check_prompts(prompts, vocab: int):
    if not prompts:
        raise InvalidInput("prompts", "needs at least one prompt")
    out = []
    for b, pr in enumerate(prompts):
        pr = np.asarray(pr, dtype=np.int64).reshape(-1)
        if not pr.size:
            raise InvalidInput("prompts", "empty prompt (prepend a BOS token)", index=b)
        bad = np.flatnonzero((pr < 0) | (pr >= vocab))
        if bad.size:
            raise InvalidInput("prompts", f"token id {int(pr[bad[0]])} outside the vocabulary [0, {vocab})",
                               index=b)
        out.append(pr)
    return out


def _rngs(seeds, batch: int):
    if seeds is None:
        seeds = 0
    if np.isscalar(seeds):
        seeds = [int(seeds) + b for b in range(batch)]
    if len(seeds) != batch:
        raise InvalidInput("seeds", f"expected {batch} seeds (one per request), got {len(seeds)}")
    return [np.random.default_rng(int(s)) for s in seeds]


class _Rows:
    """The committed ids of B rows (prompt + generated) in one int64 buffer ``ids`` [B, cap];
    row b holds ``ids[b, :n[b]]``, its generated part starts at ``start[b]``."""

    def __init__(self, prompts: list, max_new_tokens: int):
        self.start = np.array([len(p) for p in prompts], dtype=np.int64)
        self.n = self.start.copy()
        self.max_new = max(max_new_tokens, 0)
        self.ids = np.zeros((len(prompts), int(self.start.max()) + self.max_new), dtype=np.int64)
        for b, pr in enumerate(prompts):
            self.ids[b, :len(pr)] = pr
        self.done = np.full(len(prompts), max_new_tokens <= 0)

    def active(self) -> np.ndarray:
        return np.flatnonzero(~self.done)

    def pending(self, state) -> list:
        """Per row, the committed ids not yet in ``state``'s cache (empty for finished rows)."""
        counts = state.count.tolist()
        return [_EMPTY if self.done[b] else self.ids[b, counts[b]:self.n[b]] for b in range(len(self.n))]

    def committed(self) -> list:
        return [self.ids[b, :self.n[b]] for b in range(len(self.n))]

    def generated(self) -> list:
        return [self.ids[b, self.start[b]:self.n[b]] for b in range(len(self.n))]

    def commit(self, b: int, toks: np.ndarray, eos_id) -> None:
        """Append ``toks`` to row b up to ``max_new_tokens``, stopping after EOS."""
        room = self.max_new - int(self.n[b] - self.start[b])
        take = toks[:room]
        hit = np.flatnonzero(take == eos_id) if eos_id is not None else _EMPTY
        if hit.size:
            take = take[:hit[0] + 1]
        self.ids[b, self.n[b]:self.n[b] + len(take)] = take
        self.n[b] += len(take)
        self.done[b] = bool(hit.size) or len(toks) >= room


class Hooks:
    """The two steps of a round that the certification's negative controls replace
    (fastpath/models/llm/faults.py); the engine's own are these identities."""

    def verifier_q(self, last_logits: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """The draft row [B, V] the verifier is given for a draft drawn from ``q`` (warped)."""
        return q

    def target_keep(self, n_old: int, n_accepted: int) -> int:
        """Target-cache length kept after a round that accepted ``n_accepted`` drafts."""
        return n_old + n_accepted


def _host(logits: torch.Tensor, lens: torch.Tensor) -> tuple:
    """Model outputs to the host (no-op on the CPU): warps, draws and verifiers run there."""
    return logits.cpu(), lens.cpu()


def _last_rows(logits: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """logits [B, T, V] -> the row after each row's last fed token [B, V] (garbage if lens 0)."""
    idx = (lens - 1).clamp(min=0)
    return logits[torch.arange(logits.shape[0]), idx]


def _round_noise(rngs, rows: _Rows, k: int, greedy: bool) -> tuple:
    """u_draft [B, k], u_verify [B, k+1]: per active request rng.random(k), rng.random(k+1)."""
    bsz = len(rngs)
    u_draft, u_ver = np.zeros((bsz, k)), np.zeros((bsz, k + 1))
    if not greedy:
        for b in rows.active():
            u_draft[b] = rngs[b].random(k)
            u_ver[b] = rngs[b].random(k + 1)
    return u_draft, u_ver


def _draft_host(dft, rows: _Rows, u_draft, *, k, warping, backend, hooks) -> tuple:
    """Step 1 on the host: k draft calls -> drafts [B, k] int64, q [B, k, V] (the rows the
    verifier is given; the drafts are drawn from the warped rows)."""
    feed = rows.pending(dft)
    drafts, qs = np.zeros((len(feed), k), dtype=np.int64), []
    for j in range(k):
        logits, lens = _host(*dft.feed(feed, width=2 if j == 0 else 1))
        last = _last_rows(logits, lens)
        qj = warp(last, warping)                                         # [B, V] float64
        qn = qj.numpy()
        drafts[:, j] = np.argmax(qn, axis=-1) if warping.greedy else sample_rows(qn, u_draft[:, j], backend)
        qs.append(hooks.verifier_q(last, qj).numpy())
        feed = [_EMPTY if rows.done[b] else drafts[b, j:j + 1] for b in range(len(feed))]
    return drafts, np.stack(qs, axis=1)


def _score_host(tgt, rows: _Rows, drafts, *, warping) -> np.ndarray:
    """Step 2 on the host: one target call over pending ids + drafts -> p [B, k+1, V]."""
    k = drafts.shape[1]
    pend = rows.pending(tgt)
    feed = [p if rows.done[b] else np.concatenate([p, drafts[b]]) for b, p in enumerate(pend)]
    logits, lens = _host(*tgt.feed(feed, width=k + 1))
    idx = (lens[:, None] - (k + 1) + torch.arange(k + 1)[None, :]).clamp(min=0)  # [B, K+1]
    return warp(torch.gather(logits, 1, idx[:, :, None].expand(-1, -1, logits.shape[-1])), warping).numpy()


def _host_round(tgt, dft, rows: _Rows, u_draft, u_ver, *, k, method, warping, backend, hooks) -> tuple:
    """Steps 1-3 on the host (numpy draws, ``backend`` verifier) -> (n_accepted [A],
    tokens [A, k+1]) of the active rows A."""
    drafts, q = _draft_host(dft, rows, u_draft, k=k, warping=warping, backend=backend, hooks=hooks)
    p = _score_host(tgt, rows, drafts, warping=warping)
    act = rows.active()
    return verify(method, p[act], q[act], drafts[act], u_ver[act], backend=backend)


def _device_round(tgt, dft, rows: _Rows, u_draft, u_ver, *, k, method, warping, dtype, hooks) -> tuple:
    """Steps 1-3 as torch tensors on the models' device (device_round.py) -> (n_accepted [A],
    tokens [A, k+1]) of the active rows A."""
    n_acc, toks = device_round.speculative_round(
        tgt, dft, rows.committed(), rows.done, u_draft, u_ver, k=k, method=method,
        warping=warping, dtype=dtype, verifier_q=hooks.verifier_q)
    act = rows.active()
    return n_acc[act], toks[act]


def _commit_round(tgt, dft, rows: _Rows, n_acc, toks, accepted, *, eos_id, hooks) -> None:
    """Step 4: commit n_accepted + 1 ids per active row, roll both caches back."""
    keep_t, keep_d = tgt.count.clone(), dft.count.clone()
    d_count = dft.count.tolist()
    for i, b in enumerate(rows.active()):
        n_old, n = int(rows.n[b]), int(n_acc[i])
        accepted[b].append(n)
        rows.commit(b, toks[i, :n + 1], eos_id)
        keep_t[b] = hooks.target_keep(n_old, n)
        keep_d[b] = min(d_count[b], n_old + n)
    tgt.rollback(keep_t)
    dft.rollback(keep_d)


def _check_spec(method, warping, k, target, draft) -> int:
    if method not in METHODS:
        raise InvalidInput("method", f"expected one of {METHODS}, got {method!r}")
    if method == "greedy" and not warping.greedy:
        raise InvalidInput("method", "greedy verification needs temperature 0")
    if k < 1:
        raise InvalidInput("k", f"must be >= 1, got {k}")
    vocab = int(target.config.vocab_size)
    if int(draft.config.vocab_size) != vocab:
        raise InvalidInput("draft", f"vocabulary {draft.config.vocab_size} differs from the target's {vocab}")
    return vocab


def _check_runtime(runtime) -> torch.dtype:
    """The torch dtype of the device round; the fields were checked when ``runtime`` was built."""
    if not isinstance(runtime, Runtime):
        raise InvalidInput("runtime", f"expected a Runtime (fastpath/models/llm/runtime.py), "
                                      f"got {type(runtime).__name__}")
    return device_round.DTYPES[runtime.round_dtype]


def speculative_generate(target, draft, prompts, *, k: int = 4, method: str = "chain",
                         warping: Warp = Warp(), max_new_tokens: int = 64, eos_id=None,
                         seeds=0, progress=None, runtime: Runtime = Runtime()) -> GenerationResult:
    """Speculative decoding of a batch of prompts (B token-id sequences); see the module doc.

    What is generated: k, method, warping, max_new_tokens, eos_id, seeds (request b: seed + b,
    or a list). How it runs (same tokens): ``runtime``, a :class:`Runtime` (backend, cache,
    cuda_graphs, compile_mode, round_impl, round_dtype; fastpath/models/llm/runtime.py).
    progress(generated): called after every round with the B generated int64 arrays."""
    return _speculative(target, draft, prompts, k=k, method=method, warping=warping,
                        max_new_tokens=max_new_tokens, eos_id=eos_id, seeds=seeds,
                        progress=progress, runtime=runtime, hooks=Hooks())


def _speculative(target, draft, prompts, *, k, method, warping, max_new_tokens, eos_id, seeds,
                 progress, runtime, hooks: Hooks) -> GenerationResult:
    dtype = _check_runtime(runtime)
    vocab = _check_spec(method, warping, k, target, draft)
    prompts = _check_prompts(prompts, vocab)
    rngs = _rngs(seeds, len(prompts))
    t0 = time.perf_counter()
    max_len = max(len(p) for p in prompts) + max(max_new_tokens, 0) + k + 2
    tgt, dft = _states((target, draft), len(prompts), prompts, runtime, max_len, k)
    rows = _Rows(prompts, max_new_tokens)
    accepted = [[] for _ in prompts]
    while not rows.done.all():
        u_draft, u_ver = _round_noise(rngs, rows, k, warping.greedy)
        if runtime.round_impl == "device":
            n_acc, toks = _device_round(tgt, dft, rows, u_draft, u_ver, k=k, method=method,
                                        warping=warping, dtype=dtype, hooks=hooks)
        else:
            n_acc, toks = _host_round(tgt, dft, rows, u_draft, u_ver, k=k, method=method,
                                      warping=warping, backend=runtime.backend, hooks=hooks)
        _commit_round(tgt, dft, rows, n_acc, toks, accepted, eos_id=eos_id, hooks=hooks)
        if progress is not None:
            progress(rows.generated())
    gen = [g.tolist() for g in rows.generated()]
    return GenerationResult(gen, k, accepted, time.perf_counter() - t0, tgt.calls, dft.calls)


def autoregressive_generate(target, prompts, *, warping: Warp = Warp(), max_new_tokens: int = 64,
                            eos_id=None, seeds=0, progress=None,
                            runtime: Runtime = Runtime()) -> GenerationResult:
    """Plain autoregressive decoding of the target through the same cache and warp code
    (``runtime.cache="static"``: prefill prompt[:-1], then width-1 calls; see the module doc).

    Each step feeds the pending tokens, warps the last row and draws one token by the
    inverse CDF with ``rng.random(1)`` (argmax at temperature 0): on the host with
    ``runtime.backend``'s draw, or in torch on the model's device with
    ``runtime.round_impl="device"`` (device_round.py). Every :class:`Runtime` field applies."""
    dtype = _check_runtime(runtime)
    vocab = int(target.config.vocab_size)
    prompts = _check_prompts(prompts, vocab)
    bsz = len(prompts)
    rngs = _rngs(seeds, bsz)
    t0 = time.perf_counter()
    max_len = max(len(p) for p in prompts) + max(max_new_tokens, 0) + 2
    (tgt,) = _states((target,), bsz, prompts, runtime, max_len, 0)
    rows = _Rows(prompts, max_new_tokens)
    while not rows.done.all():
        u = np.array([rngs[b].random() if not (rows.done[b] or warping.greedy) else 0.0 for b in range(bsz)])
        if runtime.round_impl == "device":
            toks = device_round.autoregressive_step(tgt, rows.committed(), rows.done, u, warping=warping,
                                                    dtype=dtype)
        else:
            logits, lens = _host(*tgt.feed(rows.pending(tgt), width=1))
            probs = warp(_last_rows(logits, lens), warping).numpy()
            toks = np.argmax(probs, axis=-1) if warping.greedy else sample_rows(probs, u, runtime.backend)
        for b in rows.active():
            rows.commit(b, toks[b:b + 1], eos_id)
        if progress is not None:
            progress(rows.generated())
    gen = [g.tolist() for g in rows.generated()]
    return GenerationResult(gen, 0, [], time.perf_counter() - t0, tgt.calls, 0)
