"""Logits -> probabilities in torch: the twin of reference/processing.py.

Same order (temperature, top-k, top-p, min-p, renormalise) and the same tie rules:
temperature 0 is a one-hot row on the first maximum of the raw logits; top-k keeps
the first k of a stable descending sort (lower id first on ties); top-p keeps the
smallest prefix of that order whose cumulative mass is >= top_p (searchsorted
'left' + 1, at least one token); min-p keeps probabilities >= min_p * max.

Unlike the reference, every knob may be a scalar or a per-row tensor [R] (or
broadcastable to the leading shape), so one batch can mix greedy and random rows
and per-request top-k / top-p. ``None`` switches a warp off.

Rows are processed in chunks of ``row_chunk`` rows, so the peak extra memory is
``row_chunk * V`` floats whatever the batch (the logits entry points of
categorical.py never hold the full [B, K+1, V] probability tensor).

Invalid logits (NaN, +inf, a row that is all -inf) give a row of NaN here; the
verifiers turn that into STATUS_NONFINITE for the row.
"""
from __future__ import annotations

import torch

from specoracle.reference.types import InvalidInput


def _per_row(x, rows: int, device, dtype, name: str):
    """A knob as a tensor [R] (or None)."""
    if x is None:
        return None
    t = torch.as_tensor(x, device=device, dtype=dtype)
    if t.ndim == 0:
        return t.expand(rows)
    t = t.reshape(-1)
    if t.shape[0] == rows:
        return t
    raise InvalidInput(name, f"expected a scalar or {rows} per-row values, got {t.shape[0]}")


def check_knobs(temperature, top_k, top_p, min_p) -> None:
    """The reference's range checks, for scalars and tensors alike."""
    def vals(x):
        return torch.as_tensor(x, dtype=torch.float64).reshape(-1)
    t = vals(temperature)
    if bool((~torch.isfinite(t) | (t < 0)).any()):
        raise InvalidInput("temperature", "must be finite and >= 0")
    if top_k is not None:
        k = vals(top_k)
        if bool(((k != torch.round(k)) | (k < 1)).any()):
            raise InvalidInput("top_k", "must be a positive integer or None")
    if top_p is not None:
        tp = vals(top_p)
        if bool(((tp <= 0) | (tp > 1)).any()):
            raise InvalidInput("top_p", "must lie in (0, 1]")
    if min_p is not None:
        mp = vals(min_p)
        if bool(((mp < 0) | (mp > 1)).any()):
            raise InvalidInput("min_p", "must lie in [0, 1]")


def probs_rows(z: torch.Tensor, temperature, top_k=None, top_p=None, min_p=None) -> torch.Tensor:
    """Warp logits rows z [R, V] (already in the compute dtype) -> probabilities [R, V].

    temperature/top_k/top_p/min_p: tensors [R] or None (see :func:`_per_row`).
    """
    r, v = z.shape
    dev, dt = z.device, z.dtype
    ar = torch.arange(v, device=dev)
    greedy = temperature == 0                                           # [R]
    zt = z / torch.where(greedy, torch.ones_like(temperature), temperature)[:, None]
    need_order = top_k is not None or top_p is not None
    if need_order:
        order = torch.sort(zt, dim=-1, descending=True, stable=True).indices  # [R, V]
    if top_k is not None:
        keep_sorted = ar[None, :] < top_k.to(torch.int64)[:, None]
        keep = torch.zeros_like(keep_sorted).scatter(1, order, keep_sorted)
        zt = torch.where(keep, zt, torch.tensor(-torch.inf, dtype=dt, device=dev))
    m = zt.amax(dim=-1, keepdim=True)
    e = torch.exp(zt - m)
    probs = e / e.sum(dim=-1, keepdim=True)
    if top_p is not None:
        sorted_p = probs.gather(1, order)
        csum = torch.cumsum(sorted_p, dim=-1)
        n_keep = torch.searchsorted(csum, top_p.to(dt)[:, None].contiguous(), side="left")[:, 0] + 1
        n_keep = n_keep.clamp(1, v)
        n_keep = torch.where(top_p >= 1, v, n_keep)
        keep_p = torch.zeros(r, v, dtype=torch.bool, device=dev).scatter(
            1, order, ar[None, :] < n_keep[:, None])
        probs = torch.where(keep_p, probs, 0.0)
        probs = torch.where((top_p < 1)[:, None], probs / probs.sum(dim=-1, keepdim=True), probs)
    if min_p is not None:
        mp = min_p.to(dt)[:, None]
        kept = torch.where(probs >= mp * probs.amax(dim=-1, keepdim=True), probs, 0.0)
        probs = torch.where(mp > 0, kept / kept.sum(dim=-1, keepdim=True), probs)
    onehot = (ar[None, :] == z.argmax(dim=-1, keepdim=True)).to(dt)
    probs = torch.where(greedy[:, None], onehot, probs)
    bad = torch.isnan(z).any(dim=-1) | torch.isposinf(z).any(dim=-1) | torch.isneginf(z).all(dim=-1)
    return torch.where(bad[:, None], torch.full_like(probs, float("nan")), probs)


def process_logits(logits, temperature=1.0, top_k=None, top_p=None, min_p=None, *,
                   row_chunk: int = 256, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Warp ``logits`` [..., V] into probabilities [..., V] (torch twin of the
    reference's ``process_logits``). Computed in float64 for float64 input, else in
    float32 (or ``dtype``). Knobs may be per-row tensors shaped like ``logits.shape[:-1]``.
    """
    x = logits if isinstance(logits, torch.Tensor) else torch.as_tensor(logits)
    if x.ndim < 1 or x.shape[-1] == 0:
        raise InvalidInput("logits", f"expected [..., V] with V >= 1, got shape {tuple(x.shape)}")
    check_knobs(temperature, top_k, top_p, min_p)
    cd = dtype or (torch.float64 if x.dtype == torch.float64 else torch.float32)
    flat = x.reshape(-1, x.shape[-1])
    rows = flat.shape[0]
    knobs = [_per_row(temperature, rows, x.device, cd, "temperature"),
             _per_row(top_k, rows, x.device, torch.int64, "top_k"),
             _per_row(top_p, rows, x.device, cd, "top_p"),
             _per_row(min_p, rows, x.device, cd, "min_p")]
    out = torch.empty(flat.shape, dtype=cd, device=x.device)
    for s in range(0, rows, row_chunk):
        sl = slice(s, s + row_chunk)
        out[sl] = probs_rows(flat[sl].to(cd), *[None if k is None else k[sl] for k in knobs])
    return out.reshape(x.shape)
