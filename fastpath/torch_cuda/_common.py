"""Shared plumbing of the torch twins: input conversion, row status, the batched
inverse-CDF draw, and the result type.

Conventions (fastpath/types.py): p [B, K+1, V], q [B, K, V], draft [B, K],
u [B, K+1], num_draft [B], PAD_ID = -1; row b equals the reference on the row
slice (p[b, :n+1], q[b, :n], draft[b, :n], u[b, :n+1]) with n = num_draft[b].

Arrays may be torch tensors (any device) or numpy arrays. Results come back as a
:class:`~specoracle.fastpath.types.BatchVerdict` whose fields are numpy arrays when
the inputs were numpy, and torch tensors (on the input device) otherwise;
``verdict(b)`` works in both cases (:class:`TorchBatchVerdict` moves a tensor row to
the host first).

Compute dtype: float64 inputs are computed in float64 (bit-identical decisions to
the reference on the CPU, where torch's cumsum accumulates left to right);
float32 / bfloat16 / float16 inputs are upcast to float32 on load (never computed
in 16-bit).
"""
from __future__ import annotations

import numpy as np
import torch

from specoracle.reference.types import InvalidInput

from ..types import (FALLBACK_CDF_ROUNDING, PAD_ID, STATUS_BAD_LENGTH, STATUS_DRAFT_OUT_OF_RANGE,
                     STATUS_DRAFT_ZERO_Q, STATUS_NONFINITE, STATUS_OK, BatchVerdict)

FLOAT_DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)


class TorchBatchVerdict(BatchVerdict):
    """A BatchVerdict whose fields may be torch tensors on any device."""

    def to_numpy(self) -> BatchVerdict:
        conv = {k: _np(getattr(self, k)) for k in ("n_accepted", "tokens", "bonus", "status",
                                                   "fallbacks", "paths")}
        return BatchVerdict(**conv)

    def verdict(self, b: int):
        return self.to_numpy().verdict(b)

    def raise_on_error(self, argument: str = "draft"):
        self.to_numpy().raise_on_error(argument)
        return self


def _np(x):
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def as_tensor(x, name: str, device=None) -> torch.Tensor:
    """``x`` as a torch tensor (numpy arrays are wrapped without a copy where possible)."""
    if isinstance(x, torch.Tensor):
        return x if device is None else x.to(device)
    arr = np.asarray(x)
    if arr.dtype == object:
        raise InvalidInput(name, "object (exact Fraction) arrays are for the reference only")
    t = torch.from_numpy(np.ascontiguousarray(arr))
    return t if device is None else t.to(device)


def row_counts(x, name: str, b: int, full: int, device, what: str) -> torch.Tensor:
    """Per-row counts [B] int64 (ragged draft lengths, tree node counts): ``full`` for
    every row when ``x`` is None, else ``x`` flattened, which must hold B entries."""
    if x is None:
        return torch.full((b,), full, dtype=torch.int64, device=device)
    n = as_tensor(x, name, device).to(torch.int64).reshape(-1)
    if n.shape[0] != b:
        raise InvalidInput(name, f"expected {b} {what}, got {n.shape[0]}")
    return n


def compute_dtype(t: torch.Tensor) -> torch.dtype:
    """float64 stays float64; every other float dtype computes in float32."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def check_float(t: torch.Tensor, name: str) -> None:
    if t.dtype not in FLOAT_DTYPES:
        if t.dtype.is_floating_point or t.dtype in (torch.int64, torch.int32):
            return
        raise InvalidInput(name, f"expected a float tensor, got dtype {t.dtype}")


def prepare(p, q, draft, u, num_draft, *, need_q=True, need_u=True, check_u=True):
    """Convert and shape-check the batched inputs; return tensors on p's device.

    Returns ``(p, q, draft, u, n, numpy_in)`` with draft/n as int64 and u in float64
    (the accept tests and the draw threshold are formed in float64, so a uniform
    just below 1 is not rounded up to 1 by a float32 cast). Shape errors and uniforms outside [0, 1) raise InvalidInput
    (the Python side can raise); per-row problems become status codes later.
    ``check_u=False`` skips the range check of u (it costs a device -> host sync).
    """
    numpy_in = not isinstance(p, torch.Tensor)
    p = as_tensor(p, "p")
    dev = p.device
    check_float(p, "p")
    if p.ndim != 3 or p.shape[1] < 1 or p.shape[2] < 1:
        raise InvalidInput("p", f"expected [B, K+1, V] with K+1 >= 1 and V >= 1, got shape {tuple(p.shape)}")
    b, k1, v = p.shape
    k = k1 - 1
    if need_q:
        q = as_tensor(q, "q", dev)
        check_float(q, "q")
        if tuple(q.shape) != (b, k, v):
            raise InvalidInput("q", f"expected shape {(b, k, v)} (one fewer row than p), got {tuple(q.shape)}")
    draft = as_tensor(draft, "draft", dev)
    if draft.dtype.is_floating_point or draft.dtype == torch.bool:
        raise InvalidInput("draft", f"token ids must be integers, got dtype {draft.dtype}")
    draft = draft.to(torch.int64).reshape(b, k) if draft.numel() == b * k else draft
    if tuple(draft.shape) != (b, k):
        raise InvalidInput("draft", f"expected shape {(b, k)}, got {tuple(draft.shape)}")
    n = row_counts(num_draft, "num_draft", b, k, dev, "lengths")
    if need_u:
        u = as_tensor(u, "u", dev).to(torch.float64)  # never rounded: 1 - 2^-53 stays < 1
        if tuple(u.shape) != (b, k1):
            raise InvalidInput("u", f"expected shape {(b, k1)}, got {tuple(u.shape)}")
        bad = ~((u >= 0) & (u < 1)) if check_u else None
        if check_u and bool(bad.any()):  # the one device -> host sync of the wrapper
            idx = tuple(int(i) for i in torch.nonzero(bad)[0])
            raise InvalidInput("u", "uniforms must lie in [0, 1)", index=idx)
    return p, q, draft, u, n, numpy_in


def length_and_range_status(draft: torch.Tensor, n: torch.Tensor, vocab: int):
    """Status [B] int32 for BAD_LENGTH / DRAFT_OUT_OF_RANGE, the in-draft mask [B, K]
    and the clamped ids [B, K] (safe to gather: never an out-of-bounds read)."""
    b, k = draft.shape
    status = torch.zeros(b, dtype=torch.int32, device=draft.device)
    bad_len = (n < 0) | (n > k)
    pos = torch.arange(k, device=draft.device)
    inside = pos[None, :] < n.clamp(0, k)[:, None]                     # [B, K]
    out = inside & ((draft < 0) | (draft >= vocab))
    status = torch.where(out.any(dim=1), STATUS_DRAFT_OUT_OF_RANGE, status)
    status = torch.where(bad_len, STATUS_BAD_LENGTH, status).to(torch.int32)
    safe = torch.where(inside & (draft >= 0) & (draft < vocab), draft, torch.zeros_like(draft))
    return status, inside, safe


def set_status(status, cond, code):
    """Set ``code`` where ``cond`` and no earlier status is set."""
    return torch.where((status == STATUS_OK) & cond, torch.full_like(status, code), status)


def sample_rows(w: torch.Tensor, u: torch.Tensor):
    """Batched inverse-CDF draw (reference ``sample_categorical``), one uniform per row: the
    torch home of the draw (the verifiers' final draws, the engine's device round).

    w [R, V] non-negative weights, u [R]. Returns ``(index [R], rounding [R] bool)``:
    the smallest i with ``u * total < w_0 + ... + w_i`` (cumulative sum left to right in
    w's dtype, total = its last entry, compared in the promoted dtype of w and u, as the
    reference compares a float32 sum with a float64 threshold); that i has ``w_i > 0``
    (the sums are non-decreasing). One cumulative sum and a binary search per row
    (``searchsorted(right=True)`` = the first sum above the threshold). If none qualifies
    (rounding, or a NaN threshold on a bad row), the last index of positive weight and
    ``rounding = True``; that pass is skipped on the CPU when no row needs it (on CUDA it
    always runs: a data-dependent branch would sync).
    """
    c = torch.cumsum(w, dim=-1)                                        # [R, V]
    ct = c.to(torch.promote_types(c.dtype, u.dtype))
    thr = (u * ct[:, -1])[:, None].contiguous()                        # [R, 1]
    idx = torch.searchsorted(ct, thr, right=True)[:, 0]                # [R]
    v = w.shape[-1]
    rounding = (idx >= v) | torch.isnan(thr[:, 0])
    if w.device.type == "cpu" and not bool(rounding.any()):
        return idx, rounding
    ar = torch.arange(v, device=w.device)
    last_pos = torch.where(w > 0, ar, -1).amax(dim=-1)
    return torch.where(rounding, last_pos, idx), rounding


def assemble(draft, tau, last, bonus, status, fallbacks, numpy_in):
    """Build the padded token matrix [B, K+1] and the verdict; rows with a bad status
    get n_accepted 0, tokens all PAD_ID, bonus False, fallbacks 0."""
    b, k = draft.shape
    dev = draft.device
    ok = status == STATUS_OK
    pos = torch.arange(k + 1, device=dev)
    padded = torch.cat([draft, torch.full((b, 1), PAD_ID, dtype=torch.int64, device=dev)], dim=1)
    tokens = torch.where(pos[None, :] < tau[:, None], padded, PAD_ID)
    tokens = torch.where(pos[None, :] == tau[:, None], last[:, None], tokens)
    tokens = torch.where(ok[:, None], tokens, PAD_ID)
    n_acc = torch.where(ok, tau, 0).to(torch.int64)
    bonus = bonus & ok
    fallbacks = torch.where(ok, fallbacks, 0).to(torch.int32)
    fields = (n_acc, tokens.to(torch.int64), bonus, status.to(torch.int32), fallbacks)
    if numpy_in:
        return BatchVerdict(*(_np(f) for f in fields))
    return TorchBatchVerdict(*fields)


def finish(result, raise_on_error: bool, argument: str = "draft"):
    if raise_on_error:
        result.raise_on_error(argument)
    return result


def rounding_bits(rounding: torch.Tensor) -> torch.Tensor:
    return torch.where(rounding, FALLBACK_CDF_ROUNDING, 0).to(torch.int32)


__all__ = ["TorchBatchVerdict", "prepare", "sample_rows", "assemble", "finish", "set_status",
           "length_and_range_status", "compute_dtype", "as_tensor", "STATUS_NONFINITE",
           "STATUS_DRAFT_ZERO_Q", "rounding_bits"]

