"""The speculative decoding loop over a small model protocol (ALGORITHMS.md §1.2
Algorithm 1 ``SpecStep``, iterated; block verification §1.3; greedy T = 0).

Used by the closed-form chains of :mod:`.targets` and (later) by real models: any
object with ``vocab_size`` and ``next_probs(prefix) -> [V]`` is a :class:`Model`; a
model may also offer the batched target pass ``next_probs_block(prefix, continuation)
-> [L+1, V]`` (the rows after prefix + continuation[:i], i = 0..L), which the loop uses
for the target when present. p is the target, q the draft.

Noise layout of :func:`speculative_decode` (u [n_tokens, 2k+1], one row per round;
every round emits >= 1 token, so n_tokens rows always suffice):
    round r drafts k_r = min(k, tokens still needed - 1) tokens (the last round never
    drafts past n_tokens): draft token i (i = 0..k_r-1) is
    ``sample_categorical(q_i, u[r, i])``; the verifier then gets
    ``u[r, k : k + k_r + 1]`` (its own layout: k_r accept tests + the final draw).
    Rows after the last round are unused. Greedy (T = 0) drafting and verification
    use no noise (argmax, lowest id on ties).
:func:`sample_autoregressive`: u [n_tokens], token t is sample_categorical(p_t, u[t]).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from .categorical import argmax_first, sample_categorical, verify_block, verify_chain, verify_greedy
from .types import InvalidInput
from .validation import check_generator

VERIFIERS = ("chain", "block", "greedy")


@runtime_checkable
class Model(Protocol):
    """A next-token model: ``vocab_size`` and ``next_probs(prefix) -> [V]`` probabilities.
    Optional: ``next_probs_block(prefix, continuation) -> [L+1, V]`` (batched pass)."""

    vocab_size: int

    def next_probs(self, prefix) -> np.ndarray: ...


def block_rows(model, prefix, continuation) -> np.ndarray:
    """Rows [L+1, V] after prefix + continuation[:i], i = 0..L: the model's batched pass
    ``next_probs_block`` if it has one, else L+1 calls of ``next_probs``."""
    if hasattr(model, "next_probs_block"):
        return np.asarray(model.next_probs_block(list(prefix), list(continuation)))
    seq = list(prefix) + list(continuation)
    n0 = len(prefix)
    return np.stack([np.asarray(model.next_probs(seq[:n0 + i])) for i in range(len(continuation) + 1)])


@dataclass(frozen=True)
class DecodeResult:
    """Output of :func:`speculative_decode`.

    tokens: the n_tokens generated tokens (prompt excluded).
    taus: accepted drafts per round; drafted: drafted tokens per round (k_r).
    target_calls: batched target passes (one per round); draft_calls: sequential draft
    calls (one per drafted token). fallbacks: Counter of the verifiers' fallback names.
    """

    tokens: tuple
    taus: tuple
    drafted: tuple
    target_calls: int
    draft_calls: int
    fallbacks: dict = field(default_factory=dict)

    @property
    def n_rounds(self) -> int:
        return len(self.taus)

    @property
    def tokens_per_call(self) -> float:
        """Generated tokens per target call (the last round may be shortened)."""
        return len(self.tokens) / self.target_calls if self.target_calls else 0.0


def _check_common(target, draft, prompt, n_tokens, k):
    for name, m in (("target", target), ("draft", draft)):
        if m is not None and not isinstance(m, Model):
            raise InvalidInput(name, "must have vocab_size and next_probs(prefix)")
    if draft is not None and draft.vocab_size != target.vocab_size:
        raise InvalidInput("draft", f"vocabulary size {draft.vocab_size} differs from the target's "
                           f"{target.vocab_size}")
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, (int, np.integer)) or n_tokens < 0:
        raise InvalidInput("n_tokens", f"must be an integer >= 0, got {n_tokens!r}")
    if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0):
        raise InvalidInput("k", f"number of drafted tokens must be an integer >= 0, got {k!r}")
    prompt = list(prompt)
    for i, t in enumerate(prompt):
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < target.vocab_size:
            raise InvalidInput("prompt", f"token {t!r} outside the vocabulary [0, {target.vocab_size})",
                               index=i)
    return [int(t) for t in prompt]


def _noise(u, rng, shape):
    if (u is None) == (rng is None):
        raise InvalidInput("u", "pass exactly one of rng (a numpy Generator) or u (the noise array)")
    if rng is not None:
        check_generator(rng)
        return rng.random(shape)
    arr = np.asarray(u)
    if arr.dtype != object:
        arr = arr.astype(np.float64)
        if arr.size and not np.all((arr >= 0) & (arr < 1)):
            raise InvalidInput("u", "uniforms must lie in [0, 1)")
    if arr.shape != shape:
        raise InvalidInput("u", f"expected noise of shape {shape}, got {arr.shape}")
    return arr


def speculative_decode(target, draft, prompt, n_tokens: int, k: int, verifier: str = "chain",
                       rng=None, *, u=None) -> DecodeResult:
    """Generate ``n_tokens`` tokens after ``prompt`` by speculative decoding.

    Each round: the draft proposes k_r tokens autoregressively (drawn from its rows
    with sample_categorical, or argmax for ``"greedy"``); one batched target pass gives
    the k_r + 1 target rows; the verifier (``"chain"``: Leviathan/Chen token-level,
    ``"block"``: Sun et al. block verification, ``"greedy"``: longest argmax-matching
    prefix) emits tau accepted drafts + 1 correction/bonus token. Output law: exactly
    the target's (sequences of the target model; greedy: the target's argmax path).

    Noise: exactly one of ``rng`` (draws ``u = rng.random((n_tokens, 2k+1))``) or ``u``
    [n_tokens, 2k+1] (layout in the module docstring).
    """
    prompt = _check_common(target, draft, prompt, n_tokens, k)
    if verifier not in VERIFIERS:
        raise InvalidInput("verifier", f"must be one of {VERIFIERS}, got {verifier!r}")
    width = 2 * k + 1
    noise = _noise(u, rng, (n_tokens, width))
    out: list = []
    taus, drafted = [], []
    fallbacks: Counter = Counter()
    r = 0
    while len(out) < n_tokens:
        kr = min(k, n_tokens - len(out) - 1)
        prefix = prompt + out
        q_rows, xs = [], []
        for i in range(kr):
            row = np.asarray(draft.next_probs(prefix + xs))
            q_rows.append(row)
            if verifier == "greedy":
                xs.append(argmax_first(row))
            else:
                tok, fb = sample_categorical(row, noise[r, i])
                if fb:
                    fallbacks[fb] += 1
                xs.append(int(tok))
        p_rows = block_rows(target, prefix, xs)
        q_arr = np.stack(q_rows) if kr else np.zeros((0, p_rows.shape[1]), dtype=p_rows.dtype)
        uv = noise[r, k:k + kr + 1]
        if verifier == "chain":
            verdict = verify_chain(p_rows, q_arr, xs, uv)
        elif verifier == "block":
            verdict = verify_block(p_rows, q_arr, xs, uv)
        else:
            verdict = verify_greedy(p_rows, xs)
        fallbacks.update(verdict.fallbacks)
        out.extend(int(t) for t in verdict.tokens)
        taus.append(verdict.n_accepted)
        drafted.append(kr)
        r += 1
    return DecodeResult(tuple(out), tuple(taus), tuple(drafted), target_calls=len(taus),
                        draft_calls=sum(drafted), fallbacks=dict(fallbacks))


def sample_autoregressive(target, prompt, n_tokens: int, rng=None, *, u=None) -> tuple:
    """Plain autoregressive sampling of ``n_tokens`` tokens from the target with the same
    primitive: token t is ``sample_categorical(p(. | prompt, x^{t-1}), u[t])``.
    Noise: exactly one of ``rng`` (``u = rng.random(n_tokens)``) or ``u`` [n_tokens].
    Returns the generated tokens (prompt excluded)."""
    prompt = _check_common(target, None, prompt, n_tokens, None)
    noise = _noise(u, rng, (n_tokens,))
    out: list = []
    for t in range(n_tokens):
        tok, _ = sample_categorical(np.asarray(target.next_probs(prompt + out)), noise[t])
        out.append(int(tok))
    return tuple(out)
