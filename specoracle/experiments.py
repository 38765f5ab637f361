"""Simulation helpers behind the notebooks and docs: run the oracle many times on
closed-form targets and summarise what comes out. No algorithm lives here: every
draw goes through the reference verifiers and their sampling primitive.

Shapes: p, q [V] context-free rows unless stated; ``k`` drafted tokens / children.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from specoracle.reference import categorical, tree
from specoracle.reference.categorical import sample_categorical

VERIFIERS = ("chain", "block", "mss")


def draw_from(row, rng) -> int:
    """One token from ``row`` [V] with the oracle's primitive (one uniform)."""
    return int(sample_categorical(row, rng.random())[0])


def accepted_lengths(verifier: str, p, q, k: int, n: int, rng) -> np.ndarray:
    """tau for ``n`` independent rounds with context-free rows: drafts x_i ~ q drawn
    with the oracle's primitive, then ``verifier`` in {"chain", "block", "mss"}. For
    "mss" the k children of the root are i.i.d. from q and tau in {0, 1}.
    Returns an int array [n]."""
    if verifier not in VERIFIERS:
        raise ValueError(f"verifier must be one of {VERIFIERS}, got {verifier!r}")
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    out = np.empty(n, dtype=np.int64)
    if verifier == "mss":
        qs = np.tile(q, (k, 1))
        for t in range(n):
            children = [draw_from(q, rng) for _ in range(k)]
            out[t] = tree.verify_mss_rng(p, qs, children, rng).n_accepted
        return out
    P, Q = np.tile(p, (k + 1, 1)), np.tile(q, (k, 1))
    fn = categorical.verify_chain_rng if verifier == "chain" else categorical.verify_block_rng
    for t in range(n):
        draft = [draw_from(q, rng) for _ in range(k)]
        out[t] = fn(P, Q, draft, rng).n_accepted
    return out


def binomial_band(prob, n: int, level: float = 0.95):
    """Central ``level`` band of an empirical frequency over ``n`` Bernoulli(prob) trials:
    returns (low, high) arrays of frequencies (exact binomial quantiles)."""
    prob = np.asarray(prob, dtype=float)
    a = (1 - level) / 2
    return stats.binom.ppf(a, n, prob) / n, stats.binom.ppf(1 - a, n, prob) / n


def survival_from_lengths(taus: np.ndarray, k: int) -> np.ndarray:
    """Empirical Pr(tau >= i) for i = 1..k from an array of accepted lengths."""
    taus = np.asarray(taus)
    return np.array([(taus >= i).mean() for i in range(1, k + 1)])


def markov_accepted_lengths(verifier: str, target, draft, prefix, k: int, n: int, rng) -> np.ndarray:
    """tau for ``n`` rounds of ``verifier`` ("chain" or "block") after ``prefix`` with
    context-dependent models (``next_probs``): drafts drawn from the draft model with
    the oracle's primitive, target rows from one batched pass."""
    from specoracle.reference.decoding import block_rows

    fn = categorical.verify_chain_rng if verifier == "chain" else categorical.verify_block_rng
    out = np.empty(n, dtype=np.int64)
    for t in range(n):
        xs, q_rows = [], []
        for _ in range(k):
            row = np.asarray(draft.next_probs(list(prefix) + xs), dtype=float)
            q_rows.append(row)
            xs.append(draw_from(row, rng))
        p_rows = np.asarray(block_rows(target, prefix, xs), dtype=float)
        out[t] = fn(p_rows, np.stack(q_rows), xs, rng).n_accepted
    return out
