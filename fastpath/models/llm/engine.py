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

``warp`` is ONE definition (:mod:`specoracle.fastpath.models.llm.processing`, the twin of
reference/processing.py) applied to target and draft logits alike; q given to the verifier
is the warped draft row that x_j was drawn from.

Noise layout (per request b, its own ``numpy.random.Generator(seed_b)``; per round):
``u_draft = rng.random(k)`` then ``u_verify = rng.random(k + 1)`` (the verifier's layout,
reference/categorical.py). Greedy (temperature 0) draws nothing. Plain autoregressive
decoding draws ``rng.random(1)`` per token. The output is deterministic given the seeds
and the batch composition.

``cache="static"`` runs the same rounds over preallocated, position-indexed buffers with
fixed-shape calls (fastpath/models/llm/static.py): the prompt minus its last token is prefilled
once, then every target call has width k+1, the first draft call of a round width 2 and the
others width 1 (AR: width 1), ready for CUDA graphs (``cuda_graphs=True``, CUDA only) or
``torch.compile`` (``compile_mode``). Same noise, same warps, same verifier: the tokens equal
the dynamic path's (tests/test_llm_static.py) up to float rounding of the logits (a draw
within ~1e-6 of a CDF boundary could differ; none did in the tests).

``round_impl="device"`` runs steps 1-3 as torch tensors on the models' device
(fastpath/models/llm/device_round.py: the same warp, the reference's inverse-CDF draw in torch,
the torch_cuda verifiers; one device -> host read per round) instead of the host round
(``"host"``, default: logits copied to the host once per call, numpy draws, ``backend``
verifiers). Same noise source and layout, so with ``round_dtype="float64"`` on the CPU both
give identical tokens and acceptance counts (tests/test_llm_device_round.py);
``round_dtype="float32"`` is the fast GPU setting (decisions agree up to float32 margins).

``fault=`` injects a known bug, for the negative controls of the end-to-end
certification only: ``"rollback_off_by_one"`` (the target cache keeps one rejected draft),
``"q_before_warp"`` (the verifier is given softmax(draft logits) instead of the warped q
the drafts were drawn from). Never set it outside tests.
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
from specoracle.fastpath.models.llm.verify import METHODS, sample_rows, verify

FAULTS = (None, "rollback_off_by_one", "q_before_warp")
CACHES = ("dynamic", "static")
ROUND_IMPLS = ("host", "device")


def _check_round(round_impl: str, round_dtype):
    if round_impl not in ROUND_IMPLS:
        raise InvalidInput("round_impl", f"expected one of {ROUND_IMPLS}, got {round_impl!r}")
    dt = device_round.round_dtype(round_dtype)
    if round_impl == "host" and dt != torch.float64:
        raise InvalidInput("round_dtype", "the host round computes in float64 only")
    return dt


def _states(models, bsz: int, prompts, cache: str, max_len: int, k: int, cuda_graphs: bool,
            compile_mode):
    """One cache state per model; the static path prefills prompt[:-1] of every row."""
    if cache not in CACHES:
        raise InvalidInput("cache", f"expected one of {CACHES}, got {cache!r}")
    if cache == "dynamic":
        if cuda_graphs or compile_mode:
            raise InvalidInput("cache", "cuda_graphs / compile_mode need cache='static'")
        return [KVState(m, bsz) for m in models]
    from specoracle.fastpath.models.llm.static import StaticKVState, pooled_state

    widths = {"target": (k + 1,), "draft": (1, 2)}
    states = []
    for role, m in zip(("target", "draft"), models):
        graphs = widths[role] if cuda_graphs else ()
        if cuda_graphs or compile_mode:  # reuse captured graphs / compiled steps across calls
            st = pooled_state(m, bsz, max_len, graphs, compile_mode)
        else:
            st = StaticKVState(m, bsz, max_len, graph_widths=graphs)
        head = [list(p[:-1]) for p in prompts]
        if any(head):
            st.feed(head)
        states.append(st)
    return states


@dataclass
class GenerationResult:
    """Output of one batched generation.

    tokens:     generated ids per row (prompt excluded), list of B lists
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
        pr = [int(t) for t in pr]
        if not pr:
            raise InvalidInput("prompts", "empty prompt (prepend a BOS token)", index=b)
        for t in pr:
            if not 0 <= t < vocab:
                raise InvalidInput("prompts", f"token id {t} outside the vocabulary [0, {vocab})", index=b)
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


def _commit(seq_new: list, toks, eos_id, room: int):
    """Append ``toks`` to ``seq_new`` up to ``room`` tokens, stopping after EOS; returns done."""
    for t in toks[:room]:
        seq_new.append(int(t))
        if eos_id is not None and int(t) == eos_id:
            return True
    return len(toks) >= room


def _host(logits: torch.Tensor, lens: torch.Tensor) -> tuple:
    """Model outputs to the host (no-op on the CPU): warps, draws and verifiers run there."""
    return logits.cpu(), lens.cpu()


def _last_rows(logits: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """logits [B, T, V] -> the row after each row's last fed token [B, V] (garbage if lens 0)."""
    idx = (lens - 1).clamp(min=0)
    return logits[torch.arange(logits.shape[0]), idx]


def _host_round(tgt, dft, seqs, done, active, u_draft, u_ver, *, k, method, warping, backend,
                fault, vocab) -> list:
    """Steps 1-3 of one round on the host (numpy draws, ``backend`` verifier); returns
    ``(n_accepted, tokens)`` per active row."""
    bsz = len(seqs)
    greedy = warping.greedy
    drafts = np.zeros((bsz, k), dtype=np.int64)
    q = np.zeros((bsz, k, vocab))
    q_raw = np.zeros((bsz, k, vocab)) if fault == "q_before_warp" else None
    # 1. draft k tokens
    feed = [seqs[b][int(dft.count[b]):] if not done[b] else [] for b in range(bsz)]
    for j in range(k):
        logits, lens = _host(*dft.feed(feed, width=2 if j == 0 else 1))
        last = _last_rows(logits, lens)
        qj = warp(last, warping).numpy()  # [B, V] float64
        if q_raw is not None:
            q_raw[:, j] = torch.softmax(last.double(), dim=-1).numpy()
        xj = np.argmax(qj, axis=-1) if greedy else sample_rows(qj, u_draft[:, j])
        q[:, j], drafts[:, j] = qj, xj
        feed = [[int(xj[b])] if not done[b] else [] for b in range(bsz)]
    # 2. score k + 1 positions with one target call
    pend = [seqs[b][int(tgt.count[b]):] if not done[b] else [] for b in range(bsz)]
    logits, lens = _host(*tgt.feed([pend[b] + (list(drafts[b]) if not done[b] else [])
                                     for b in range(bsz)], width=k + 1))
    idx = (lens[:, None] - (k + 1) + torch.arange(k + 1)[None, :]).clamp(min=0)  # [B, K+1]
    rows = torch.gather(logits, 1, idx[:, :, None].expand(-1, -1, vocab))
    p = warp(rows, warping).numpy()  # [B, K+1, V]
    # 3. verify the active rows
    act = np.array(active)
    qv = q_raw if q_raw is not None else q
    verdicts = verify(method, p[act], qv[act], drafts[act], u_ver[act], backend=backend)
    return [(v.n_accepted, list(v.tokens)) for v in verdicts]


def speculative_generate(target, draft, prompts, *, k: int = 4, method: str = "chain",
                         warping: Warp = Warp(), max_new_tokens: int = 64, eos_id=None,
                         seeds=0, backend: str = "numba", fault=None, progress=None,
                         cache: str = "dynamic", cuda_graphs: bool = False,
                         compile_mode=None, round_impl: str = "host",
                         round_dtype="float64") -> GenerationResult:
    """Speculative decoding of a batch of prompts (list of B token-id lists); see the module doc.

    round_impl: "host" (numpy warps/draws, ``backend`` verifier) or "device" (torch on the
    models' device, device_round.py); round_dtype: "float64" or, device only, "float32"."""
    if method not in METHODS:
        raise InvalidInput("method", f"expected one of {METHODS}, got {method!r}")
    if method == "greedy" and not warping.greedy:
        raise InvalidInput("method", "greedy verification needs temperature 0")
    if k < 1:
        raise InvalidInput("k", f"must be >= 1, got {k}")
    if fault not in FAULTS:
        raise InvalidInput("fault", f"unknown fault {fault!r}")
    dtype = _check_round(round_impl, round_dtype)
    vocab = int(target.config.vocab_size)
    if int(draft.config.vocab_size) != vocab:
        raise InvalidInput("draft", f"vocabulary {draft.config.vocab_size} differs from the target's {vocab}")
    prompts = _check_prompts(prompts, vocab)
    bsz = len(prompts)
    rngs = _rngs(seeds, bsz)
    greedy = warping.greedy
    t0 = time.perf_counter()
    max_len = max(len(p) for p in prompts) + max(max_new_tokens, 0) + k + 2
    tgt, dft = _states((target, draft), bsz, prompts, cache, max_len, k, cuda_graphs, compile_mode)
    seqs = [list(p) for p in prompts]
    gen = [[] for _ in range(bsz)]
    done = [max_new_tokens <= 0] * bsz
    accepted = [[] for _ in range(bsz)]
    while not all(done):
        active = [b for b in range(bsz) if not done[b]]
        u_draft = np.zeros((bsz, k))
        u_ver = np.zeros((bsz, k + 1))
        if not greedy:
            for b in active:
                u_draft[b] = rngs[b].random(k)
                u_ver[b] = rngs[b].random(k + 1)
        # 1-3. draft k tokens, score k + 1 positions, verify
        if round_impl == "device":
            out = device_round.speculative_round(tgt, dft, seqs, done, u_draft, u_ver, k=k, method=method,
                                                 warping=warping, dtype=dtype,
                                                 q_before_warp=fault == "q_before_warp")
            verdicts = [out[b] for b in active]
        else:
            verdicts = _host_round(tgt, dft, seqs, done, active, u_draft, u_ver, k=k, method=method,
                                   warping=warping, backend=backend, fault=fault, vocab=vocab)
        # 4. commit and roll back
        keep_t = tgt.count.clone()
        keep_d = dft.count.clone()
        for b, (n_acc, toks) in zip(active, verdicts):
            n_old = len(seqs[b])
            accepted[b].append(n_acc)
            new = []
            done[b] = _commit(new, toks, eos_id, max_new_tokens - len(gen[b]))
            gen[b].extend(new)
            seqs[b].extend(new)
            kt = n_old + n_acc + (1 if fault == "rollback_off_by_one" else 0)
            keep_t[b] = kt
            keep_d[b] = min(int(dft.count[b]), n_old + n_acc)
        tgt.rollback(keep_t)
        dft.rollback(keep_d)
        if progress is not None:
            progress(gen)
    return GenerationResult(gen, k, accepted, time.perf_counter() - t0, tgt.calls, dft.calls)


def autoregressive_generate(target, prompts, *, warping: Warp = Warp(), max_new_tokens: int = 64,
                            eos_id=None, seeds=0, progress=None, cache: str = "dynamic",
                            cuda_graphs: bool = False, compile_mode=None, round_impl: str = "host",
                            round_dtype="float64") -> GenerationResult:
    """Plain autoregressive decoding of the target through the same cache and warp code
    (``cache="static"``: prefill prompt[:-1], then width-1 calls; see the module doc).

    Each step feeds the pending tokens, warps the last row and draws one token by the
    inverse CDF with ``rng.random(1)`` (argmax at temperature 0); ``round_impl="device"``
    does the warp and the draw in torch on the model's device (device_round.py)."""
    dtype = _check_round(round_impl, round_dtype)
    vocab = int(target.config.vocab_size)
    prompts = _check_prompts(prompts, vocab)
    bsz = len(prompts)
    rngs = _rngs(seeds, bsz)
    t0 = time.perf_counter()
    max_len = max(len(p) for p in prompts) + max(max_new_tokens, 0) + 2
    (tgt,) = _states((target,), bsz, prompts, cache, max_len, 0, cuda_graphs, compile_mode)
    seqs = [list(p) for p in prompts]
    gen = [[] for _ in range(bsz)]
    done = [max_new_tokens <= 0] * bsz
    while not all(done):
        u = np.array([rngs[b].random() if not (done[b] or warping.greedy) else 0.0 for b in range(bsz)])
        if round_impl == "device":
            toks = device_round.autoregressive_step(tgt, seqs, done, u, warping=warping, dtype=dtype)
        else:
            pend = [seqs[b][int(tgt.count[b]):] if not done[b] else [] for b in range(bsz)]
            logits, lens = _host(*tgt.feed(pend, width=1))
            probs = warp(_last_rows(logits, lens), warping).numpy()
            toks = np.argmax(probs, axis=-1) if warping.greedy else sample_rows(probs, u)
        for b in range(bsz):
            if done[b]:
                continue
            new = []
            done[b] = _commit(new, [toks[b]], eos_id, max_new_tokens - len(gen[b]))
            gen[b].extend(new)
            seqs[b].extend(new)
        if progress is not None:
            progress(gen)
    return GenerationResult(gen, 0, [], time.perf_counter() - t0, tgt.calls, 0)
