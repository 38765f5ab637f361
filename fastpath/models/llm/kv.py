"""A batched KV cache with per-row rollback, over any Hugging Face causal LM.

Rows of a batch accept different numbers of drafted tokens (ragged acceptance), so one
shared ``DynamicCache`` cannot simply be cropped per row. ``KVState`` keeps the cache's
slots in feed order and a 0/1 mask [B, S] of the slots that are valid for each row:

* ``feed(rows)`` appends the new tokens of every row, right-padded to the longest row
  (padding slots are masked out), with explicit ``position_ids`` = number of valid tokens
  before each token, so positions (RoPE) skip the holes;
* ``rollback(keep)`` masks every valid slot of row b after its first ``keep[b]`` valid
  ones, then crops trailing slots that no row uses (``DynamicCache.crop``). With batch 1 a
  rollback is exactly a crop and the cache has no holes.

The model sees, for each row, exactly its own valid tokens at positions 0..n-1, which is
what a fresh forward over the committed sequence sees (up to float rounding from a
different reduction shape: tests/fastpath/models/llm/test_llm_engine.py checks the logits agree to 1e-4).

Shapes: mask [B, S] int64 (S cache slots), count [B] valid tokens per row.
"""
from __future__ import annotations

import torch


_CACHE_KWARG: dict = {}


def cache_kwarg(model) -> str:
    """The keyword under which ``model``'s forward takes its KV cache: ``"cache"``
    (transformers >= 5.24, where ``past_key_values`` is a deprecated alias that warns) or
    ``"past_key_values"`` (older releases). Read from the forward signature once per
    model class and remembered, so the per-call cost is one dict lookup."""
    cls = type(model)
    kw = _CACHE_KWARG.get(cls)
    if kw is None:
        import inspect
        params = inspect.signature(cls.forward).parameters
        kw = "cache" if "cache" in params else "past_key_values"
        _CACHE_KWARG[cls] = kw
    return kw


def forward_cached(model, cache, **kwargs):
    """``model(**kwargs)`` with ``cache`` passed under :func:`cache_kwarg` and
    ``use_cache=True``; the cache object is updated in place (read it, not the output's
    cache attribute, whose name also changed in transformers 5.24)."""
    kwargs[cache_kwarg(model)] = cache
    return model(use_cache=True, **kwargs)


def new_cache(model):
    from transformers import DynamicCache
    try:
        return DynamicCache(config=model.config)
    except TypeError:  # pragma: no cover - older transformers
        return DynamicCache()


class KVState:
    """One model's cache over a batch of B rows (see the module docstring)."""

    def __init__(self, model, batch: int):
        self.model = model
        self.batch = batch
        self.cache = new_cache(model)
        dev = next(model.parameters()).device
        self.device = dev
        self.mask = torch.zeros(batch, 0, dtype=torch.long, device=dev)
        self.count = torch.zeros(batch, dtype=torch.long, device=dev)
        self.calls = 0

    @property
    def slots(self) -> int:
        return int(self.mask.shape[1])

    @torch.inference_mode()
    def feed(self, rows: list, width=None) -> tuple:
        """Append ``rows[b]`` (token ids) to row b; returns (logits [B, T, V] float32, lens [B]).
        ``width`` is accepted for the static twin's signature and ignored: T = the longest row.

        logits[b, j] is the next-token logits after rows[b][j]; entries j >= lens[b] are
        padding. A row may be empty (a finished sequence): its slots are all padding.
        """
        lens = torch.tensor([len(r) for r in rows], dtype=torch.long, device=self.device)
        t = max(1, int(lens.max()))
        ids = torch.zeros(self.batch, t, dtype=torch.long, device=self.device)
        for b, r in enumerate(rows):
            if len(r):
                ids[b, : len(r)] = torch.as_tensor(r, dtype=torch.long)
        ar = torch.arange(t, device=self.device)
        new_mask = (ar[None, :] < lens[:, None]).long()
        pos = self.count[:, None] + ar[None, :]
        attn = torch.cat([self.mask, new_mask], dim=1)
        # no hole and no padding (always so at batch 1): let the model take its causal fast path
        dense = bool(attn.all())
        out = forward_cached(self.model, self.cache, input_ids=ids,
                             attention_mask=None if dense else attn, position_ids=pos)
        self.calls += 1
        self.mask = attn
        self.count = self.count + lens
        return out.logits.float(), lens

    def rollback(self, keep) -> None:
        """Keep only the first ``keep[b]`` valid tokens of each row b (keep [B])."""
        keep = torch.as_tensor(keep, dtype=torch.long, device=self.device)
        keep = torch.minimum(keep, self.count)
        rank = torch.cumsum(self.mask, dim=1)
        self.mask = self.mask * (rank <= keep[:, None]).long()
        self.count = keep
        used = torch.nonzero(self.mask.any(dim=0))
        last = int(used.max()) + 1 if used.numel() else 0
        drop = self.slots - last
        if drop > 0:
            self.cache.crop(-drop)
            self.mask = self.mask[:, :last]
