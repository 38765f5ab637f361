"""Token-level (chain), greedy and block verification: the discrete oracle.

p is the target, q the draft (DESIGN.md, principle 2). One sequence at a time,
float64 (or exact ``Fraction``) arithmetic, short linear code that can be checked
line by line against ../shared/ALGORITHMS.md.

Shapes (one sequence, K drafted tokens, vocabulary V):
    p      [K+1, V]  target rows p(. | c, x_1..x_{i-1}) for i = 1..K+1
    q      [K,   V]  draft rows  q(. | c, x_1..x_{i-1}) for i = 1..K
    draft  [K]       drafted token ids x_1..x_K (each with q_i(x_i) > 0)
    u      [K+1]     uniform noise in [0, 1): u[0..K-1] for the K accept tests
                     (eta_i for block verification), u[K] for the final draw
                     (residual or bonus), by :func:`sample_categorical`.
K = 0 is legal: the round is the bonus token drawn from p[0] with u[0]; q may then
be ``None`` or any empty array (the numba and torch twins do the same, parity-tested).

The categorical sampling primitive everywhere in specoracle is the inverse CDF
with one uniform per draw (:func:`sample_categorical`), accumulating weights
left to right in index order. Every verifier consumes exactly the noise above,
so a fast kernel fed the same ``u`` must emit the same tokens.
"""
from __future__ import annotations

from numbers import Real

import numpy as np

from .block import block_tau
from .types import InvalidInput, Verdict
from .validation import (as_probs, as_tokens, as_uniforms, check_generator,
                         check_same_vocab, check_uniform)

# ---------------------------------------------------------------- primitives


def sample_categorical(weights, u):
    """Inverse-CDF draw from unnormalised non-negative ``weights`` [V] with one uniform.

    Returns ``(index, fallback)``: the smallest i with ``u * total < w_0 + ... + w_i``,
    accumulated left to right, where ``total = w_0 + ... + w_{V-1}`` is accumulated
    in the same order. A category of weight 0 is never returned. If rounding makes
    ``u * total`` reach the total (u is within ~1e-16 of 1) no index qualifies; the
    last index of positive weight is returned and ``fallback`` is ``"cdf_rounding"``
    (never in exact arithmetic).

    Raises InvalidInput for a negative or NaN weight (``weights[i]``), a total mass
    that is not positive (nothing to draw), and a numeric ``u`` outside [0, 1) or NaN.
    A non-numeric ``u`` (the proofs' traced uniforms) is not range-checked: comparing
    it would fork the proof.
    """
    check_uniform(u, "u")
    total = 0
    for i, w in enumerate(weights):
        if isinstance(w, Real) and not w >= 0:
            raise InvalidInput("weights", f"weights must be >= 0, got {w!r}", index=i)
        total = total + w
    if isinstance(total, Real) and not total > 0:
        raise InvalidInput("weights", f"total mass is {total!r}: no category can be drawn")
    threshold = u * total
    running = 0
    last_positive = -1
    for i, w in enumerate(weights):
        running = running + w
        if w > 0:
            last_positive = i
            if threshold < running:
                return i, None
    return last_positive, "cdf_rounding"


def sample_categorical_rows(weights, u):
    """:func:`sample_categorical` on every row at once (float arrays only): weights
    [..., V] non-negative with a positive total, u [...] in [0, 1) -> ``(ids [...] int64,
    rounding [...] bool)``.

    The same float operations in the same order as the one-row primitive: the running sums
    are ``np.cumsum`` (left to right, in the weights' dtype), the total is the last of them,
    the threshold is ``u * total``, the id is the smallest i with ``threshold < running_i``
    (that i always has w_i > 0, since running_i > threshold >= running_{i-1}); where no i
    qualifies (``rounding``, the ``cdf_rounding`` fallback) the last id of positive weight.
    Row by row equal to :func:`sample_categorical` (tests/reference/test_discrete_fallbacks.py); the
    proofs and the parity input factories draw many samples through it.

    Raises InvalidInput for a negative or NaN weight, a row whose total is not positive,
    and a uniform outside [0, 1) (``u``); shapes must match (weights.shape[:-1] == u.shape).
    """
    w = np.asarray(weights)
    uu = np.asarray(u, dtype=np.float64)
    if w.ndim < 1 or w.shape[:-1] != uu.shape:
        raise InvalidInput("u", f"expected shape {w.shape[:-1]} (one uniform per row of weights "
                           f"{w.shape}), got {uu.shape}")
    if not np.all(w >= 0):
        raise InvalidInput("weights", "weights must be >= 0", index=tuple(np.argwhere(~(w >= 0))[0]))
    if not np.all((uu >= 0) & (uu < 1)):
        raise InvalidInput("u", "uniforms must lie in [0, 1)", index=tuple(np.argwhere(~((uu >= 0) & (uu < 1)))[0]))
    running = np.cumsum(w, axis=-1)                                     # [..., V]
    total = running[..., -1]                                            # [...]
    if not np.all(total > 0):
        raise InvalidInput("weights", "total mass is not positive: no category can be drawn",
                           index=tuple(np.argwhere(~(total > 0))[0]))
    hit = (uu * total)[..., None] < running                             # [..., V]
    ids = np.argmax(hit, axis=-1).astype(np.int64)
    rounding = ~hit[..., -1]       # running is non-decreasing: no hit iff the last fails
    if rounding.any():
        v = w.shape[-1]
        last_positive = v - 1 - np.argmax((w > 0)[..., ::-1], axis=-1)
        ids = np.where(rounding, last_positive, ids)
    return ids, rounding


def residual_weights(p_row, q_row, scale=1):
    """Unnormalised residual ``(scale * p - q)_+`` [V] (ALGORITHMS.md §1.1, §1.3 line 12)."""
    return np.maximum(scale * p_row - q_row, 0)


def _draw_residual(p_row, q_row, scale, u, fallbacks):
    """Draw from normalise((scale * p - q)_+); if its mass is 0, from p (counted)."""
    w = residual_weights(p_row, q_row, scale)
    if not w.sum() > 0:
        # The rejection that led here had probability ~0: draw from the target row
        # rather than a fixed token (cf. vllm #41834). Counted in the verdict.
        fallbacks.append("residual_zero_mass")
        w = p_row
    token, fb = sample_categorical(w, u)
    if fb:
        fallbacks.append(fb)
    return token


def _draw_target(p_row, u, fallbacks):
    token, fb = sample_categorical(p_row, u)
    if fb:
        fallbacks.append(fb)
    return token


def _draft_rows(q, v, dtype):
    """q [K, V]; ``None`` (or any empty array) is the absent draft of a K = 0 round."""
    if q is None or np.size(q) == 0:
        return np.zeros((0, v), dtype=dtype)
    return as_probs(q, "q", ndim=2)


def _validate(p, q, draft, u=None):
    """Validate one round's inputs; K is the number of drafted tokens (module docstring).

    When the three sizes disagree, the argument that disagrees with the other two is
    blamed: p must have K+1 rows, q K rows and draft K ids.
    """
    p = as_probs(p, "p", ndim=2)
    v = p.shape[1]
    draft = as_tokens(draft, "draft", vocab=v)
    kd = draft.shape[0]
    q = _draft_rows(q, v, p.dtype)
    kp, kq = p.shape[0] - 1, q.shape[0]
    if kq == kd != kp:
        raise InvalidInput("p", f"expected K+1 = {kd + 1} target rows (K = {kd} drafted tokens "
                           f"and draft rows), got shape {p.shape}")
    if kp == kq != kd:
        raise InvalidInput("draft", f"expected K = {kp} token ids (p has K+1 = {kp + 1} rows), "
                           f"got {kd}")
    if kq != kp:
        raise InvalidInput("q", f"expected K = {kp} draft rows (one fewer than p's {kp + 1}), "
                           f"got shape {q.shape}")
    check_same_vocab(p, q)
    for i, x in enumerate(draft):
        if not q[i, x] > 0:
            raise InvalidInput("draft", f"token {int(x)} has q = 0 at position {i}: the draft "
                               "could not have produced it", index=i)
    if u is not None:
        u = as_uniforms(u, "u", length=kp + 1)
    return p, q, draft, u


# ---------------------------------------------------------------- chain (token-level)


def verify_chain(p, q, draft, u) -> Verdict:
    """Token-level speculative sampling (Leviathan et al. 2023, arXiv 2211.17192,
    Algorithm 1; Chen et al. 2023, arXiv 2302.01318). ALGORITHMS.md §1.2.

    For i = 1..K accept x_i iff ``u[i-1] * q_i(x_i) < p_i(x_i)`` (division-free form
    of u <= min(1, p/q), §0.3); at the first rejection emit a token drawn from
    normalise((p_i - q_i)_+) with u[K]; if all K are accepted emit the bonus token
    from p_{K+1} with u[K]. Output law: exactly the target's (Theorem, §1.2).
    """
    p, q, draft, u = _validate(p, q, draft, u)
    k = len(draft)
    fallbacks: list = []
    for i in range(k):
        x = draft[i]
        if not u[i] * q[i, x] < p[i, x]:
            y = _draw_residual(p[i], q[i], 1, u[k], fallbacks)
            return Verdict(i, tuple(int(t) for t in draft[:i]) + (int(y),), False, tuple(fallbacks))
    y = _draw_target(p[k], u[k], fallbacks)
    return Verdict(k, tuple(int(t) for t in draft) + (int(y),), True, tuple(fallbacks))


def verify_chain_rng(p, q, draft, rng) -> Verdict:
    """:func:`verify_chain` with noise ``u = rng.random(K + 1)``."""
    check_generator(rng)
    return verify_chain(p, q, draft, rng.random(_k_of(p) + 1))


def _k_of(p) -> int:
    return int(np.shape(p)[0]) - 1


# ---------------------------------------------------------------- greedy


def argmax_first(row) -> int:
    """Index of the largest entry, the lowest index on ties (the tie rule everywhere)."""
    best = 0
    for i in range(1, len(row)):
        if row[i] > row[best]:
            best = i
    return best


def verify_greedy(p, draft) -> Verdict:
    """Greedy verification (temperature 0): accept the longest prefix of ``draft``
    that matches the target argmax row by row, then emit the target argmax of the
    next row (correction or bonus). Needs no noise and no draft rows. ALGORITHMS.md §1.2
    with T = 0; ties resolve to the lowest token id (:func:`argmax_first`).

    Shapes: p [K+1, V] (probabilities or logits: only the argmax is used), draft [K].
    """
    p = np.asarray(p)
    if p.ndim != 2 or p.shape[0] < 1:
        raise InvalidInput("p", f"expected [K+1, V] target rows, got shape {p.shape}")
    if p.dtype != object:
        p = p.astype(np.float64)
        bad = np.isnan(p)
        if bad.any():
            raise InvalidInput("p", "NaN value", index=tuple(np.argwhere(bad)[0]))
    k = p.shape[0] - 1
    draft = as_tokens(draft, "draft", vocab=p.shape[1], length=k)
    for i in range(k):
        best = argmax_first(p[i])
        if draft[i] != best:
            return Verdict(i, tuple(int(t) for t in draft[:i]) + (best,), False)
    return Verdict(k, tuple(int(t) for t in draft) + (argmax_first(p[k]),), True)


# ---------------------------------------------------------------- block verification


def block_quantities(p, q, draft):
    """The scalars of Algorithm 2 (ALGORITHMS.md §1.3) for one drafted block.

    Returns lists ``(survival, residual_mass)`` of length K+1 and K+1: ``survival[i]``
    is the prefix survival p_i = min(p_{i-1} p(X_i|X^{i-1}) / q(X_i|X^{i-1}), 1) with
    p_0 = 1, and ``residual_mass[i]`` is R_i = sum_x (p_i p(x|X^i) - q(x|X^i))_+ for
    i < K (``residual_mass[K]`` is None). Inputs are validated arrays.
    """
    k = len(draft)
    survival = [1]
    mass = []
    for i in range(1, k + 1):
        x = draft[i - 1]
        survival.append(min(survival[i - 1] * p[i - 1, x] / q[i - 1, x], 1))
    for i in range(k):
        mass.append(residual_weights(p[i], q[i], survival[i]).sum())
    mass.append(None)
    return survival, mass


def verify_block(p, q, draft, u) -> Verdict:
    """Block verification (Sun et al., arXiv 2403.10444, ICLR 2025), Algorithm 2 of
    ALGORITHMS.md §1.3, in the division-free form of §0.3.

    With p_i and R_i from :func:`block_quantities`: index i < K passes iff
    ``eta_i * (R_i + 1 - p_i) < R_i`` and index K passes iff ``eta_K < p_K``, where
    eta_i = u[i-1]. tau is the LARGEST passing index (0 if none). If tau = K the bonus
    token is drawn from p[K]; otherwise the scaled residual
    normalise((p_tau * p(.|X^tau) - q(.|X^tau))_+) is drawn (note the factor p_tau),
    both with u[K]. Output law: exactly the target's (validity theorem, §1.3).
    """
    p, q, draft, u = _validate(p, q, draft, u)
    k = len(draft)
    survival, mass = block_quantities(p, q, draft)
    tau = block_tau(survival, mass, u[:k])
    fallbacks: list = []
    if tau == k:
        y = _draw_target(p[k], u[k], fallbacks)
        return Verdict(k, tuple(int(t) for t in draft) + (int(y),), True, tuple(fallbacks))
    y = _draw_residual(p[tau], q[tau], survival[tau], u[k], fallbacks)
    return Verdict(tau, tuple(int(t) for t in draft[:tau]) + (int(y),), False, tuple(fallbacks))


def verify_block_rng(p, q, draft, rng) -> Verdict:
    """:func:`verify_block` with noise ``u = rng.random(K + 1)``."""
    check_generator(rng)
    return verify_block(p, q, draft, rng.random(_k_of(p) + 1))


# ---------------------------------------------------------------- the gamma-coupling (A1)


def maximal_coupling(p, q, x, u_accept, u_residual):
    """One maximal (gamma-) coupling step (ALGORITHMS.md §1.1): accept the draft
    token x ~ q iff ``u_accept * q(x) < p(x)``, else draw from normalise((p - q)_+)
    with ``u_residual``. Returns ``(token, accepted)``.
    """
    p = as_probs(p, "p", ndim=1)
    q = as_probs(q, "q", ndim=1)
    check_same_vocab(p, q)
    x = int(as_tokens([x], "x", vocab=p.shape[0])[0])
    if not q[x] > 0:
        raise InvalidInput("x", f"token {x} has q = 0: the draft could not have produced it")
    check_uniform(u_accept, "u_accept")
    check_uniform(u_residual, "u_residual")
    if u_accept * q[x] < p[x]:
        return x, True
    fallbacks: list = []
    return int(_draw_residual(p, q, 1, u_residual, fallbacks)), False
