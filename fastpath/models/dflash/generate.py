"""DFlash inference: one drafter pass per block, one target pass, lossless verification
(ALGORITHMS.md §5.3, §1.4.3; Chen, Liang, Liu, arXiv 2602.06036, code ``dflash_generate``).

Cycle (batch 1; ``start`` = number of tokens in the target cache; the anchor is the last
committed token, not yet in the target cache):

1. drafter on ``[anchor, MASK x (G-1)]`` at positions start..start+G-1 -> draft logits for
   positions 1..G-1 (one forward, cached context K/V);
2. drafts:
   * ``mode="greedy"`` (the paper's code): d_k = argmax of the raw draft logits, verified by
     sample-and-match (reference ``verify_tree_deterministic`` on the chain; ``verify_greedy``
     at T = 0): every emitted token is an exact sample of the warped target given the emitted
     prefix, so the output law is the target's at ANY temperature;
   * ``mode="stochastic"``: d_k ~ q_k = warp(draft logits at position k), the same warp as the
     target; verified with chain (Leviathan) or block (Sun et al.) verification against the q_k
     each d_k was drawn from. The q_k of a block drafted in ONE pass do not depend on
     d_1..d_{k-1} (they are conditionally independent given the anchor and the context), so
     "d_k ~ q_k(. | prefix)" holds with a proposal that happens to ignore the prefix; both
     verifiers only require that each proposal is the distribution the token was drawn from,
     given the accepted prefix: lossless (the q row of a position is never re-used after a
     rejection, because the round ends there);
3. ONE target pass over ``[anchor, d_1..d_{G-1}]`` -> p_0..p_{G-1} = warp(logits) and the hidden
   states; verify -> a accepted drafts + one correction/bonus token; commit a + 1 tokens (cut at
   EOS / ``max_new_tokens``; a cut prefix of a target sample is a target sample);
4. crop the target cache to start + 1 + a (anchor + accepted drafts), append the fused features
   of those 1 + a positions to the drafter's context cache, anchor <- last committed token.

Noise layout (``numpy.random.Generator(seed)``): prefill ``rng.random(1)`` for the first token
(none at T = 0); per cycle, greedy mode: ``rng.random(G)`` (sample-and-match: u[d] draws the d-th
emitted token; none at T = 0); stochastic mode: ``u_draft = rng.random(G-1)`` then
``u_verify = rng.random(G)`` (the verifier layout of reference/categorical.py).

``fault=`` injects a known bug, for the negative controls of the certification only:
``"accept_all"`` (commit every draft without checking), ``"q_before_warp"`` (stochastic mode:
the verifier gets softmax(raw draft logits) instead of the warped q the drafts were drawn from),
``"rollback_off_by_one"`` (the target cache keeps one rejected draft). (A fault in the drafter's
context would NOT be a negative control: drafter quality never affects losslessness.)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from specoracle.reference.types import InvalidInput

from specoracle.fastpath.models.dflash.model import DFlashDrafter, DraftCache, check_compatible, draft_logits
from specoracle.fastpath.models.llm.kv import forward_cached, new_cache
from specoracle.fastpath.models.llm.processing import Warp, warp
from specoracle.fastpath.models.llm.verify import sample_rows

MODES = ("greedy", "stochastic")
FAULTS = (None, "accept_all", "q_before_warp", "rollback_off_by_one")


@dataclass
class DraftRunResult:
    """tokens: generated ids (prompt excluded); accepted: drafts accepted per cycle;
    committed per cycle = accepted + 1 (bonus/correction) before the final cut."""

    tokens: list
    accepted: list = field(default_factory=list)
    block_size: int = 0
    seconds: float = 0.0
    target_calls: int = 0
    draft_calls: int = 0
    nodes: list = field(default_factory=list)  # D2SD: tree nodes verified per cycle

    def tau(self) -> float:
        """Mean committed tokens per cycle, bonus included (the papers' tau / alpha)."""
        return float(np.mean(self.accepted) + 1) if self.accepted else float("nan")

    @property
    def tokens_per_second(self) -> float:
        return len(self.tokens) / self.seconds if self.seconds > 0 else float("nan")


class TargetSession:
    """The target's KV cache for one sequence, with hidden states for the drafters."""

    def __init__(self, target):
        self.target = target
        self.device = next(target.parameters()).device   # inputs go there; logits come back to the host
        self.cache = new_cache(target)
        self.length = 0
        self.calls = 0

    @torch.inference_mode()
    def forward(self, ids, positions=None, mask=None):
        """ids list[int] -> (logits [T, V] float32 on the host, hidden states tuple of [1, T, D]
        on the target's device)."""
        x = torch.tensor([ids], dtype=torch.long, device=self.device)
        kw = {}
        if positions is not None:
            kw["position_ids"] = torch.as_tensor(positions, dtype=torch.long, device=self.device)[None]
        if mask is not None:
            kw["attention_mask"] = mask.to(self.device)
        out = forward_cached(self.target, self.cache, input_ids=x, output_hidden_states=True, **kw)
        self.calls += 1
        return out.logits[0].float().cpu(), out.hidden_states

    def keep(self, n: int) -> None:
        """Keep the first n cached positions."""
        drop = self.cache.get_seq_length() - n
        if drop > 0:
            self.cache.crop(-drop)
        self.length = n

    def keep_indices(self, idx) -> None:
        """Keep the cached positions ``idx`` (ascending), e.g. the accepted path of a tree."""
        sel = torch.as_tensor(idx, dtype=torch.long, device=self.device)
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(2, sel)
            layer.values = layer.values.index_select(2, sel)
        self.length = len(idx)


def check_prompt(prompt_ids, vocab: int) -> list:
    ids = [int(t) for t in prompt_ids]
    if not ids:
        raise InvalidInput("prompt_ids", "needs at least one token (e.g. the BOS/EOS id)")
    for i, t in enumerate(ids):
        if not 0 <= t < vocab:
            raise InvalidInput("prompt_ids", f"token id {t} outside [0, {vocab})", index=i)
    return ids


def select_hidden(hidden, idx):
    """Hidden states tuple restricted to sequence positions idx (list) -> tuple of [1, n, D]."""
    sel = torch.as_tensor(idx, dtype=torch.long, device=hidden[0].device)
    return tuple(h.index_select(1, sel) for h in hidden)


def draw(prob_row: np.ndarray, u: float) -> int:
    return int(sample_rows(prob_row[None], np.array([u]))[0])


def commit(out: list, tokens, eos_id, room: int) -> bool:
    """Append tokens up to EOS / ``room``; True when generation is finished."""
    for t in tokens:
        if room <= 0:
            return True
        out.append(int(t))
        room -= 1
        if eos_id is not None and int(t) == eos_id:
            return True
    return room <= 0


def check_run(target, drafters, prompt_ids, fault, faults, warp_args, block_size):
    """The argument checks shared by :func:`generate_dflash` and ``d2sd.generate_d2sd``: the fault
    name, every drafter's compatibility with the target, the block size (default: the first
    drafter's; >= 2 and at most the trained block of every drafter) and the prompt.
    Returns (Warp, G, prompt list)."""
    if fault not in faults:
        raise InvalidInput("fault", f"must be one of {faults}, got {fault!r}")
    for d in drafters:
        check_compatible(target, d)
    g = int(drafters[0].block_size if block_size is None else block_size)  # 0 is not "default"
    if g < 2:
        raise InvalidInput("block_size", f"must be >= 2, got {g}")
    trained = min(d.block_size for d in drafters)
    if g > trained:
        raise InvalidInput("block_size", f"{g} exceeds the drafter's trained block {trained} "
                           "(a drafter serves blocks up to the size it was trained on)")
    w = Warp(*warp_args)
    prompt = check_prompt(prompt_ids, int(target.config.vocab_size))
    return w, g, prompt


@dataclass
class Prefilled:
    """The target's prompt pass, computed once and re-used by many generations (certification:
    the prompt pass is deterministic, so sharing it changes no law). ``cache`` is copied per use."""

    prompt: list
    logits: torch.Tensor
    hidden: tuple
    cache: object


def prefill_state(target, prompt_ids) -> Prefilled:
    prompt = check_prompt(prompt_ids, int(target.config.vocab_size))
    sess = TargetSession(target)
    logits, hidden = sess.forward(prompt)
    return Prefilled(prompt, logits, hidden, sess.cache)


def prefill(session: TargetSession, caches, prompt, w: Warp, rng, state: Prefilled | None = None):
    """Target over the prompt; first token y_0 ~ p_T; drafter caches get the prompt features."""
    if state is not None:
        import copy
        if list(state.prompt) != list(prompt):
            raise InvalidInput("prefilled", "was computed for another prompt")
        session.cache = copy.deepcopy(state.cache)
        logits, hidden = state.logits, state.hidden
    else:
        logits, hidden = session.forward(prompt)
    session.length = len(prompt)
    p = warp(logits[-1:], w).numpy()[0]
    y0 = int(np.argmax(p)) if w.greedy else draw(p, rng.random())
    for c in caches:
        c.extend(hidden, 0)
    return y0


def generate_dflash(target, drafter: DFlashDrafter, prompt_ids, max_new_tokens: int = 64,
                    temperature: float = 0.0, mode: str = "greedy", seed: int = 0, *,
                    top_k=None, top_p=None, min_p=None, method: str = "chain",
                    block_size: int | None = None, eos_id=None, fault=None,
                    prefilled: Prefilled | None = None) -> DraftRunResult:
    """Speculative decoding of ``target`` with a DFlash drafter (module docstring).

    ``mode`` "greedy" (argmax drafts + sample-and-match) or "stochastic" (sampled drafts +
    ``method`` "chain" or "block" verification). ``block_size`` (default: the drafter's) is G;
    a drafter trained on blocks of G' drafts any G <= G' (the paper: larger training blocks
    generalise down). ``prefilled``: a shared :func:`prefill_state` of this prompt.
    """
    from specoracle.reference.categorical import verify_greedy
    from specoracle.reference.tree import verify_tree_deterministic

    from specoracle.fastpath.models.llm.verify import verify

    if mode not in MODES:
        raise InvalidInput("mode", f"must be one of {MODES}, got {mode!r}")
    if method not in ("chain", "block"):
        raise InvalidInput("method", f"must be 'chain' or 'block', got {method!r}")
    w, g, prompt = check_run(target, [drafter], prompt_ids, fault, FAULTS,
                             (temperature, top_k, top_p, min_p), block_size)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    sess, cache = TargetSession(target), DraftCache(drafter)
    res = DraftRunResult([], block_size=g)
    if max_new_tokens <= 0:
        return res
    anchor = prefill(sess, [cache], prompt, w, rng, prefilled)
    done = commit(res.tokens, [anchor], eos_id, max_new_tokens)
    chain_parents = np.arange(-1, g - 2)  # chain d_1..d_{G-1} as a tree
    while not done:
        start = sess.length
        rows = torch.tensor([[anchor] + [0] * (g - 1)])
        dl = draft_logits(target, drafter, cache, rows, torch.tensor([1]), start)[0, 1:]  # [G-1, V]
        res.draft_calls += 1
        if mode == "greedy" or w.greedy:
            d = torch.argmax(dl, dim=-1).tolist()
        else:
            q = warp(dl, w).numpy()  # [G-1, V]
            u_draft = rng.random(g - 1)
            d = sample_rows(q, u_draft).tolist()
        logits, hidden = sess.forward([anchor] + d)
        p = warp(logits, w).numpy()  # [G, V]
        if fault == "accept_all":
            n_acc = g - 1
            last = int(np.argmax(p[-1])) if w.greedy else draw(p[-1], rng.random())
            emitted = d + [last]
        elif w.greedy:
            v = verify_greedy(p, d)
            n_acc, emitted = v.n_accepted, list(v.tokens)
        elif mode == "greedy":
            v = verify_tree_deterministic(p, d, chain_parents, rng.random(g))
            n_acc, emitted = v.n_accepted, list(v.tokens)
        else:
            qv = q
            if fault == "q_before_warp":
                qv = torch.softmax(dl.double(), dim=-1).numpy()
            n_accs, toks = verify(method, p[None], qv[None], np.array([d]), rng.random(g)[None])
            n_acc = int(n_accs[0])
            emitted = toks[0, :n_acc + 1].tolist()
        res.accepted.append(n_acc)
        done = commit(res.tokens, emitted, eos_id, max_new_tokens - len(res.tokens))
        extra = 1 if fault == "rollback_off_by_one" and n_acc < g - 1 else 0
        sess.keep(start + 1 + n_acc + extra)
        cache.extend(select_hidden(hidden, list(range(1 + n_acc))), start)
        anchor = emitted[-1]
    res.seconds = time.perf_counter() - t0
    res.target_calls = sess.calls
    return res
