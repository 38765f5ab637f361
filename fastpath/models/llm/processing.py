"""Torch twin of reference/processing.py: logits -> warped probabilities, batched.

Same definition, same order (temperature, top-k, top-p, min-p, renormalise) and same tie
rules as :func:`specoracle.reference.processing.process_logits` (ALGORITHMS.md §1.2: the
target and the draft must be warped identically, so the engine warps both through this
one function). Computed in float64 from the model's logits, so it agrees with the
reference to rounding (tests/test_llm_processing.py checks it on real logits and ties).

Shapes: logits [..., V] (any float dtype) -> probabilities [..., V] float64 (or ``dtype``:
the device round of engine.py may warp in float32; the host round always uses float64).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from specoracle.reference.types import InvalidInput


@dataclass(frozen=True)
class Warp:
    """Sampling settings applied identically to target and draft."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None

    def __post_init__(self):
        t = self.temperature
        if not (t == t and t >= 0 and t != float("inf")):
            raise InvalidInput("temperature", f"must be finite and >= 0, got {t}")
        if self.top_k is not None and (int(self.top_k) != self.top_k or self.top_k < 1):
            raise InvalidInput("top_k", f"must be a positive integer or None, got {self.top_k}")
        if self.top_p is not None and not (0 < self.top_p <= 1):
            raise InvalidInput("top_p", f"must lie in (0, 1], got {self.top_p}")
        if self.min_p is not None and not (0 <= self.min_p <= 1):
            raise InvalidInput("min_p", f"must lie in [0, 1], got {self.min_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def process_logits(logits: torch.Tensor, temperature: float = 1.0, top_k=None, top_p=None,
                   min_p=None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Warp ``logits`` [..., V] into probabilities [..., V] (reference semantics), computed
    in ``dtype`` (float64 by default)."""
    Warp(temperature, top_k, top_p, min_p)  # validates
    x = logits.to(dtype)
    v = x.shape[-1]
    if temperature == 0:
        idx = torch.argmax(x, dim=-1, keepdim=True)  # first maximum, like np.argmax
        return torch.zeros_like(x).scatter_(-1, idx, 1.0)
    z = x / temperature
    need_k = top_k is not None and top_k < v
    need_p = top_p is not None and top_p < 1
    if need_k or need_p:  # descending, lower id first on ties (stable sort of -z, as the reference)
        order = torch.sort(-z, dim=-1, stable=True).indices
    if need_k:
        drop = order[..., int(top_k):]
        z = z.scatter(-1, drop, float("-inf"))
    probs = torch.softmax(z, dim=-1)
    if need_p:
        sorted_p = torch.gather(probs, -1, order)
        csum = torch.cumsum(sorted_p, dim=-1)
        # n_keep = (number of prefix sums < top_p) + 1, as searchsorted(side="left") + 1
        n_keep = (csum < top_p).sum(dim=-1, keepdim=True) + 1
        n_keep = n_keep.clamp(1, v)
        rank_keep = torch.arange(v, device=x.device).expand_as(z) < n_keep
        keep = torch.zeros_like(rank_keep).scatter(-1, order, rank_keep)
        probs = torch.where(keep, probs, 0.0)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    if min_p is not None and min_p > 0:
        top = probs.max(dim=-1, keepdim=True).values
        probs = torch.where(probs >= min_p * top, probs, 0.0)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def warp(logits: torch.Tensor, w: Warp, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``process_logits`` with the settings of ``w``; stays on the logits' device."""
    return process_logits(logits, w.temperature, w.top_k, w.top_p, w.min_p, dtype)
