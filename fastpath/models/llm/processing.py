"""The engine's sampling settings (:class:`Warp`) and its warp: logits -> probabilities.

The warp itself has ONE torch definition, :func:`specoracle.fastpath.torch_cuda.processing.
process_logits` (the twin of reference/processing.py: temperature, top-k, top-p, min-p,
renormalise; same tie rules; parity in tests/fastpath/models/llm/test_llm_processing.py and
tests/fastpath/torch_cuda/test_torch_logits.py). This module only binds it to the settings the engines carry:
target and draft are warped by the same call (ALGORITHMS.md §1.2), in float64 from the
model's logits by default (the host round), or in float32 (the device round's fast setting).

Shapes: logits [..., V] (any float dtype) -> probabilities [..., V] in ``dtype``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from specoracle.fastpath.torch_cuda.processing import check_knobs, process_logits


@dataclass(frozen=True)
class Warp:
    """Sampling settings applied identically to target and draft (validated on construction
    by the torch warp's range checks: ``InvalidInput`` naming the knob)."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None

    def __post_init__(self):
        check_knobs(self.temperature, self.top_k, self.top_p, self.min_p)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def warp(logits: torch.Tensor, w: Warp, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Probabilities [..., V] in ``dtype`` of ``logits`` [..., V] under the settings ``w``;
    stays on the logits' device."""
    return process_logits(logits, w.temperature, w.top_k, w.top_p, w.min_p, dtype=dtype)
