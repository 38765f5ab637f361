"""Batched results of the Gaussian verifiers, shared by every fast-path backend.

The numba twin fills them with numpy arrays, the torch twin with tensors (on any device);
``verdict(b)`` converts row b into the oracle's result type
(:mod:`specoracle.reference.gaussian_types`) as host numpy copies, which is how the parity
registry compares backends with the reference.

Shapes: B windows, L window length (ragged: ``lengths[b]`` <= L), d dimension.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from specoracle.reference.gaussian_types import GaussianBlockVerdict, GaussianStep

from .types import fallback_names


def host(x) -> np.ndarray:
    """A host numpy copy of a numpy array or a torch tensor (any device)."""
    if isinstance(x, np.ndarray):
        return x.copy()
    return x.detach().cpu().numpy().copy()


class _HostCopy:
    """``to_numpy()``: the same batched result with every field a host numpy copy (one copy
    per field, not one per row: what a caller reading many rows of a torch result wants)."""

    def to_numpy(self):
        return dataclasses.replace(self, **{f.name: host(getattr(self, f.name))
                                            for f in dataclasses.fields(self)})


@dataclass(frozen=True)
class GaussianBatchVerdict(_HostCopy):
    """Batched :class:`GaussianBlockVerdict`: n_accepted [B], states [B, L+1, d] (NaN after
    n_emitted[b] rows), n_emitted [B], bonus [B], corrected [B], log_ratio [B, L],
    log_survival [B, L+1], residual_mass [B, L], fallbacks [B] (bit 1: residual_zero_mass),
    lengths [B]. Fields are numpy arrays (numba_cpu) or tensors (torch_cuda)."""

    n_accepted: Any
    states: Any
    n_emitted: Any
    bonus: Any
    corrected: Any
    log_ratio: Any
    log_survival: Any
    residual_mass: Any
    fallbacks: Any
    lengths: Any

    def __len__(self) -> int:
        return int(self.n_accepted.shape[0])

    def verdict(self, b: int) -> GaussianBlockVerdict:
        n = int(self.lengths[b])
        ne = int(self.n_emitted[b])
        return GaussianBlockVerdict(int(self.n_accepted[b]), host(self.states[b, :ne]),
                                    bool(self.bonus[b]), bool(self.corrected[b]),
                                    host(self.log_ratio[b, :n]), host(self.log_survival[b, : n + 1]),
                                    host(self.residual_mass[b, :n]), fallback_names(self.fallbacks[b]))


@dataclass(frozen=True)
class GaussianStepBatch(_HostCopy):
    """Batched :class:`GaussianStep`: x [B, d], accepted [B], draft [B, d], log_ratio [B],
    fallbacks [B] (bit 1: residual_zero_mass). numpy arrays or tensors."""

    x: Any
    accepted: Any
    draft: Any
    log_ratio: Any
    fallbacks: Any

    def __len__(self) -> int:
        return int(self.accepted.shape[0])

    def verdict(self, b: int) -> GaussianStep:
        return GaussianStep(host(self.x[b]), bool(self.accepted[b]), host(self.draft[b]),
                            float(self.log_ratio[b]), fallback_names(self.fallbacks[b]))
