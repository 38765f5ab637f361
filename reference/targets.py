"""Closed-form discrete test targets (ALGORITHMS.md §7, T1-T5; §1.2-§1.3 closed forms).

* Context-free categorical pairs (p target, q draft): :func:`random_pair` (float64),
  :func:`integer_pair` / :func:`fraction_probs` (exact Fractions), :func:`t1_pair`.
* :class:`MarkovModel`: an order-n Markov (n-gram) model over a vocabulary V whose
  law over sequences is computable (:meth:`MarkovModel.sequence_law`). It satisfies the
  :class:`~specoracle.reference.decoding.Model` protocol, so the speculative decoding
  loop runs on it. Order 0 is a context-free model.
* Closed forms of the acceptance of token-level and block verification, the i.i.d.
  formulas of T2 and Leviathan's walltime factor.

Everything works in float64 or in exact ``Fraction`` arithmetic (object arrays).
"""
from __future__ import annotations

from fractions import Fraction
from itertools import product

import numpy as np

from .types import InvalidInput
from .validation import as_probs, check_generator

# ---------------------------------------------------------------- categorical pairs


def t1_pair(exact: bool = False):
    """T1's pair: p = (0.5, 0.3, 0.2), q = (0.2, 0.2, 0.6) (Fractions if ``exact``)."""
    if exact:
        return fraction_probs([5, 3, 2]), fraction_probs([1, 1, 3])
    return np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.2, 0.6])


def fraction_probs(weights) -> np.ndarray:
    """Non-negative integer weights [..., V] -> exact rows of Fractions [..., V] (each
    row normalised by its sum; a row must have a positive sum)."""
    w = np.asarray(weights, dtype=object)
    if w.ndim == 0 or w.shape[-1] == 0:
        raise InvalidInput("weights", f"expected [..., V] with V >= 1, got shape {w.shape}")
    out = np.empty(w.shape, dtype=object)
    for idx in np.ndindex(w.shape[:-1]):
        row = [int(x) for x in w[idx]]
        if any(x < 0 for x in row) or sum(row) <= 0:
            raise InvalidInput("weights", "weights must be >= 0 with a positive sum", index=idx or None)
        s = sum(row)
        for j, x in enumerate(row):
            out[idx + (j,)] = Fraction(x, s)
    return out


def random_pair(rng, vocab: int, concentration: float = 1.0, support: float = 1.0):
    """A random float64 pair (p, q) [V] each, Dirichlet(concentration) rows; with
    ``support < 1`` each entry is zeroed with probability 1 - support (at least one
    entry of each row is kept)."""
    check_generator(rng)
    return (_random_row(rng, vocab, concentration, support),
            _random_row(rng, vocab, concentration, support))


def _random_row(rng, vocab, concentration, support):
    if vocab < 1:
        raise InvalidInput("vocab", f"must be >= 1, got {vocab}")
    row = rng.dirichlet(np.full(vocab, float(concentration)))
    if support < 1:
        keep = rng.random(vocab) < support
        keep[rng.integers(vocab)] = True
        row = np.where(keep, row, 0.0)
    return row / row.sum()


def integer_pair(rng, vocab: int, max_weight: int = 6):
    """A random exact pair (p, q) of Fraction rows from integer weights in
    0..max_weight (rows with all-zero weights are redrawn)."""
    check_generator(rng)
    return _integer_row(rng, vocab, max_weight), _integer_row(rng, vocab, max_weight)


def _integer_row(rng, vocab, max_weight):
    while True:
        w = rng.integers(0, max_weight + 1, size=vocab)
        if w.sum() > 0:
            return fraction_probs(w)


def beta(p, q):
    """sum_x min(p(x), q(x)) = 1 - TV(p, q) (ALGORITHMS.md §0.2)."""
    return np.minimum(as_probs(p, "p", 1), as_probs(q, "q", 1)).sum()


def total_variation(p, q):
    """TV(p, q) = sum_x (p(x) - q(x))_+."""
    return np.maximum(as_probs(p, "p", 1) - as_probs(q, "q", 1), 0).sum()


# ---------------------------------------------------------------- Markov models


class MarkovModel:
    """An order-n Markov (n-gram) model over a vocabulary of V tokens.

    ``tables[m]`` for m = 0..n holds the rows used with a context of m tokens, shape
    [V]*m + [V]: the next-token row after a prefix x^t is ``tables[m][x_{t-m+1..t}]``
    with m = min(t, n). So tables[0] is the law of the first token, and a prefix longer
    than n only sees its last n tokens. Rows are float64 or exact Fractions.
    Satisfies the decoding ``Model`` protocol (:meth:`next_probs`,
    :meth:`next_probs_block`).
    """

    def __init__(self, tables):
        tables = list(tables)
        if not tables:
            raise InvalidInput("tables", "need at least tables[0] (the first-token row)")
        v = np.asarray(tables[0], dtype=object).shape[-1]
        self.tables = []
        for m, t in enumerate(tables):
            arr = as_probs(t, f"tables[{m}]", ndim=m + 1)
            if arr.shape != (v,) * (m + 1):
                raise InvalidInput(f"tables[{m}]", f"expected shape {(v,) * (m + 1)}, got {arr.shape}")
            self.tables.append(arr)
        self.order = len(self.tables) - 1
        self.vocab_size = v

    @classmethod
    def context_free(cls, row) -> "MarkovModel":
        """The order-0 model whose every row is ``row`` [V]."""
        return cls([row])

    @classmethod
    def random(cls, rng, vocab: int, order: int = 1, exact: bool = False, max_weight: int = 6,
               concentration: float = 1.0) -> "MarkovModel":
        """Random rows: Dirichlet(concentration) floats, or integer weights in
        0..max_weight as Fractions if ``exact``."""
        check_generator(rng)
        tables = []
        for m in range(order + 1):
            shape = (vocab,) * m
            rows = [(_integer_row(rng, vocab, max_weight) if exact
                     else _random_row(rng, vocab, concentration, 1.0)) for _ in np.ndindex(shape)]
            arr = np.array(rows, dtype=object if exact else np.float64)
            tables.append(arr.reshape(shape + (vocab,)))
        return cls(tables)

    def _check_prefix(self, prefix):
        out = []
        for i, t in enumerate(prefix):
            if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < self.vocab_size:
                raise InvalidInput("prefix", f"token {t!r} outside the vocabulary [0, {self.vocab_size})",
                                   index=i)
            out.append(int(t))
        return out

    def next_probs(self, prefix) -> np.ndarray:
        """The row [V] after ``prefix`` (a sequence of token ids)."""
        prefix = self._check_prefix(prefix)
        m = min(len(prefix), self.order)
        return self.tables[m][tuple(prefix[len(prefix) - m:])]

    def next_probs_block(self, prefix, continuation) -> np.ndarray:
        """The batched target pass: rows [L+1, V] after prefix + continuation[:i],
        i = 0..L (L = len(continuation))."""
        seq = self._check_prefix(list(prefix) + list(continuation))
        n0 = len(seq) - len(continuation)
        return np.stack([self.next_probs(seq[:n0 + i]) for i in range(len(continuation) + 1)])

    def sequence_prob(self, prefix, continuation):
        """p(continuation | prefix) = product of the conditionals."""
        seq = list(prefix) + list(continuation)
        prob = 1 + 0 * self.tables[0][0]
        for i in range(len(prefix), len(seq)):
            prob = prob * self.next_probs(seq[:i])[seq[i]]
        return prob

    def sequence_law(self, prefix, length: int) -> dict:
        """The exact law {continuation tuple: probability} of the next ``length`` tokens
        (V^length entries; the zero-probability ones included)."""
        return {x: self.sequence_prob(prefix, x) for x in product(range(self.vocab_size), repeat=length)}


# ---------------------------------------------------------------- acceptance closed forms


def _models_agree(target, draft):
    if target.vocab_size != draft.vocab_size:
        raise InvalidInput("draft", f"vocabulary size {draft.vocab_size} differs from the target's "
                           f"{target.vocab_size}")


def token_survival(target, draft, prefix, gamma: int) -> list:
    """Token-level verification: [Pr(tau >= i) for i = 1..gamma] =
    sum_{x^i} prod_{k<=i} min(p(x_k|x^{k-1}), q(x_k|x^{k-1})) (ALGORITHMS.md §1.2, T2).
    ``target`` / ``draft`` are models with ``next_probs``. Enumerates V^gamma prefixes."""
    _models_agree(target, draft)
    out = []
    level = {(): 1}
    for _ in range(gamma):
        nxt = {}
        for x, w in level.items():
            pr = target.next_probs(list(prefix) + list(x))
            qr = draft.next_probs(list(prefix) + list(x))
            for t in range(target.vocab_size):
                nxt[x + (t,)] = w * min(pr[t], qr[t])
        level = nxt
        out.append(sum(level.values()))
    return out


def block_survival(target, draft, prefix, gamma: int) -> list:
    """Block verification: [Pr(tau >= i) for i = 1..gamma] =
    sum_{x^i} min_{0<=j<=i} q(x^j) p(x_{j+1..i} | x^j) (ALGORITHMS.md §1.3, T3(c))."""
    _models_agree(target, draft)
    out = []
    v = target.vocab_size
    for i in range(1, gamma + 1):
        total = 0
        for x in product(range(v), repeat=i):
            terms = []
            for j in range(i + 1):
                qj = draft.sequence_prob(prefix, x[:j])
                terms.append(qj * target.sequence_prob(list(prefix) + list(x[:j]), x[j:]))
            total = total + min(terms)
        out.append(total)
    return out


def expected_accepted(survival) -> object:
    """E[tau] = sum_i Pr(tau >= i)."""
    return sum(survival, 0 * survival[0] if len(survival) else 0)


def expected_tokens_per_call(survival):
    """E[tokens per target call] = E[tau] + 1 (tau accepted drafts + the correction or
    bonus token), for any model pair: 1 + sum_i Pr(tau >= i)."""
    return 1 + expected_accepted(survival)


def iid_survival(alpha, gamma: int) -> list:
    """T2: Pr(tau >= i) = alpha^i, i = 1..gamma (context-independent models)."""
    return [alpha ** i for i in range(1, gamma + 1)]


def iid_expected_accepted(alpha, gamma: int):
    """T2: E[tau] = alpha (1 - alpha^gamma) / (1 - alpha) (= gamma if alpha = 1)."""
    return sum(alpha ** i for i in range(1, gamma + 1))


def iid_tokens_per_call(alpha, gamma: int):
    """T2 / Leviathan: E[tokens per target call] = (1 - alpha^(gamma+1)) / (1 - alpha)."""
    return sum(alpha ** i for i in range(gamma + 1))


def walltime_factor(alpha, gamma: int, cost_ratio):
    """Leviathan et al. (arXiv 2211.17192) walltime-improvement factor
    (1 - alpha^(gamma+1)) / ((1 - alpha)(gamma c + 1)), c = draft/target cost ratio."""
    return iid_tokens_per_call(alpha, gamma) / (gamma * cost_ratio + 1)
