"""Logits -> probabilities: temperature, top-k, top-p, min-p. One definition, used
for target and draft alike (ALGORITHMS.md §1.2: losslessness holds with respect to
the *warped* target, so both sides must be warped identically).

Order of application (the order of Hugging Face's default warpers): temperature,
then top-k, then top-p, then min-p, then renormalisation.

Tie rules (documented, tested):
- temperature 0 means greedy: a one-hot row on the argmax, lowest index on ties.
- top-k keeps exactly k tokens: sort by logit descending, ties broken by the lower
  token id (a stable sort), keep the first k.
- top-p keeps the smallest prefix of that same order whose probability mass is
  >= top_p (at least one token).
- min-p keeps the tokens with probability >= min_p * (largest probability).

Shapes: ``logits`` [..., V] -> probabilities [..., V] float64.
"""
from __future__ import annotations

import numpy as np

from .types import InvalidInput


def _check(logits, temperature, top_k, top_p, min_p):
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim < 1 or x.shape[-1] == 0:
        raise InvalidInput("logits", f"expected [..., V] with V >= 1, got shape {x.shape}")
    nan = np.isnan(x)
    if nan.any():
        raise InvalidInput("logits", "NaN value", index=tuple(np.argwhere(nan)[0]))
    if np.isposinf(x).any():
        raise InvalidInput("logits", "+inf logit", index=tuple(np.argwhere(np.isposinf(x))[0]))
    allneg = np.all(np.isneginf(x), axis=-1)
    if np.any(allneg):
        raise InvalidInput("logits", "every logit of the row is -inf",
                           index=tuple(np.argwhere(np.atleast_1d(allneg))[0]) if x.ndim > 1 else None)
    if not np.isfinite(temperature) or temperature < 0:
        raise InvalidInput("temperature", f"must be finite and >= 0, got {temperature}")
    if top_k is not None and (int(top_k) != top_k or top_k < 1):
        raise InvalidInput("top_k", f"must be a positive integer or None, got {top_k}")
    if top_p is not None and not (0 < top_p <= 1):
        raise InvalidInput("top_p", f"must lie in (0, 1], got {top_p}")
    if min_p is not None and not (0 <= min_p <= 1):
        raise InvalidInput("min_p", f"must lie in [0, 1], got {min_p}")
    return x


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (max-subtracted, -inf -> 0)."""
    m = np.max(x, axis=-1, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=-1, keepdims=True)


def _process_row(row: np.ndarray, temperature, top_k, top_p, min_p) -> np.ndarray:
    v = row.shape[0]
    if temperature == 0:
        out = np.zeros(v)
        out[int(np.argmax(row))] = 1.0  # np.argmax returns the first maximum
        return out
    z = row / temperature
    order = np.argsort(-z, kind="stable")  # descending, lower id first on ties
    keep = np.zeros(v, dtype=bool)
    keep[order[: (v if top_k is None else min(int(top_k), v))]] = True
    z = np.where(keep, z, -np.inf)
    probs = softmax(z)
    if top_p is not None and top_p < 1:
        sorted_p = probs[order]
        csum = np.cumsum(sorted_p)
        n_keep = int(np.searchsorted(csum, top_p, side="left")) + 1
        n_keep = min(max(n_keep, 1), v)
        keep_p = np.zeros(v, dtype=bool)
        keep_p[order[:n_keep]] = True
        probs = np.where(keep_p, probs, 0.0)
        probs = probs / probs.sum()
    if min_p is not None and min_p > 0:
        probs = np.where(probs >= min_p * probs.max(), probs, 0.0)
        probs = probs / probs.sum()
    return probs


def process_logits(logits, temperature: float = 1.0, top_k=None, top_p=None, min_p=None) -> np.ndarray:
    """Warp ``logits`` [..., V] into probabilities [..., V] (float64).

    ``temperature == 0`` gives a one-hot argmax row; see the module docstring for
    the order of the warps and the tie rules.
    """
    x = _check(logits, temperature, top_k, top_p, min_p)
    flat = x.reshape(-1, x.shape[-1])
    out = np.stack([_process_row(r, temperature, top_k, top_p, min_p) for r in flat])
    return out.reshape(x.shape)
