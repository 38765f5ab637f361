"""A static-shape KV cache and fixed-shape model steps, ready for CUDA graphs.

The dynamic path (:mod:`~specoracle.fastpath.models.llm.kv`) grows and crops a ``DynamicCache``
and feeds each call the tokens it has, so every call has a new shape: nothing can be
captured. Here every buffer is preallocated and every steady-state call has a fixed shape:

* **Position-indexed buffers.** Per layer, keys and values [B, H_kv, S + 1, D]: the token at
  position t of row b lives in slot t (``S`` = the longest sequence the generation can
  reach); slot S is a TRASH slot. A rollback only lowers ``count[b]`` (no copy, no crop):
  slots >= count are stale and are overwritten before any query can see them, because a
  query at position t attends to slots 0..t only (mask below) and the writes of a call
  happen before its attention (``Cache.update`` is called before attention in each layer).
* **Fixed-width calls with dummy tokens.** ``feed(rows, width)`` left-aligns row b's real
  tokens in a [B, width] call and fills the rest with dummies whose keys/values go to the
  trash slot and whose queries see only the trash slot (their outputs are ignored). Finished
  rows are all dummies. So ragged batches need no special case.
* **The mask** is built inside the step from (pos, slot) alone: a real query at position t
  attends to slots s <= t, s < S; a dummy query to slot S only. 4D masks are passed to the
  model as is (transformers' ``create_causal_mask`` returns a prepared 4D mask unchanged):
  boolean for ``sdpa``, additive (0 / dtype min) for ``eager``.

The steady-state shapes of speculative decoding (engine.py, ``cache="static"``): target
[B, k+1] (pending token + k drafts), draft [B, 2] for the first draft step of a round (after
a fully accepted round the draft has two tokens pending: x_k and the bonus) and [B, 1] for
the others, plain autoregressive decoding [B, 1]. The prompt minus its last token is a
variable-width prefill call, once per generation.

``StaticStep`` is the pure tensor function (ids, pos, slot) [B, T] -> logits [B, T, V] over
fixed buffers; on CUDA :func:`capture_cuda_graph` records it per width (warm-up on a side
stream with every write sent to the trash slot, then ``torch.cuda.graph``), and replays
copy the inputs into the captured buffers. ``torch.compile(mode="reduce-overhead")`` can
wrap the same function. Graph outputs are overwritten by the next replay of that width;
``feed`` returns a copy. With graphs or compilation the engine takes its states from
:func:`pooled_state` (kept on the model object), so capture and compilation happen once per
(model, batch, length bucket), not once per generation.
"""
from __future__ import annotations

import torch

from specoracle.reference.types import InvalidInput

from specoracle.fastpath.models.llm.kv import cache_kwarg


def _kv_shape(config):
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    return int(config.num_hidden_layers), kv_heads, head_dim


def slot_cache(model, batch: int, max_len: int):
    """A transformers ``Cache`` of position-indexed layers [B, H_kv, max_len + 1, D]."""
    from transformers.cache_utils import Cache, CacheLayerMixin

    class SlotLayer(CacheLayerMixin):
        """Writes new keys/values at the owner's ``slots`` [B, T] (scatter along slots)."""

        is_compileable = True

        def __init__(self, owner, keys, values):
            super().__init__()
            self.owner, self.keys, self.values = owner, keys, values
            self.dtype, self.device = keys.dtype, keys.device
            self.is_initialized = True

        def lazy_initialization(self, key_states, value_states):  # pragma: no cover - eager
            pass

        def update(self, key_states, value_states, *args, **kwargs):
            b, h, t, d = key_states.shape
            idx = self.owner.slots[:, None, :, None].expand(b, h, t, d)
            self.keys.scatter_(2, idx, key_states.to(self.keys.dtype))
            self.values.scatter_(2, idx, value_states.to(self.values.dtype))
            return self.keys, self.values

        def get_mask_sizes(self, query_length: int):
            return self.keys.shape[2], 0

        def get_seq_length(self):
            return 0

        def get_max_length(self):
            return self.keys.shape[2] - 1

        # the same under its older name (abstract, so required, in transformers 5.0)
        get_max_cache_shape = get_max_length

    class SlotCache(Cache):
        def __init__(self):
            n_layers, kv_heads, head_dim = _kv_shape(model.config)
            p = next(model.parameters())
            shape = (batch, kv_heads, max_len + 1, head_dim)
            self.slots = torch.full((batch, 1), max_len, dtype=torch.long, device=p.device)
            layers = [SlotLayer(self, torch.zeros(shape, dtype=p.dtype, device=p.device),
                                torch.zeros(shape, dtype=p.dtype, device=p.device))
                      for _ in range(n_layers)]
            super().__init__(layers=layers)

    return SlotCache()


def build_mask(pos: torch.Tensor, slot: torch.Tensor, trash: int, dtype, boolean: bool):
    """[B, T] positions and write slots -> the 4D mask [B, 1, T, trash + 1] (module doc)."""
    s = torch.arange(trash + 1, device=pos.device)
    real = (slot < trash)[:, :, None]                                   # [B, T, 1]
    causal = (s[None, None, :] <= pos[:, :, None]) & (s < trash)        # [B, T, S+1]
    allowed = torch.where(real, causal, s == trash)[:, None]            # [B, 1, T, S+1]
    if boolean:
        return allowed
    zero = torch.zeros((), dtype=dtype, device=pos.device)
    return torch.where(allowed, zero, torch.finfo(dtype).min)


class StaticStep:
    """The fixed-shape forward: ``(ids, pos, slot) [B, T] -> logits [B, T, V]`` over a
    :func:`slot_cache`. Pure tensor code (no host sync), so it can be captured."""

    def __init__(self, model, batch: int, max_len: int):
        impl = getattr(model.config, "_attn_implementation", "sdpa")
        if impl not in ("sdpa", "eager"):
            raise InvalidInput("model", f"static cache supports sdpa or eager attention, got {impl!r}")
        self.model, self.max_len = model, max_len
        self.boolean = impl == "sdpa"
        self.dtype = next(model.parameters()).dtype
        self.cache = slot_cache(model, batch, max_len)
        self.cache_kw = cache_kwarg(model)   # resolved here, outside any compiled region

    def __call__(self, ids, pos, slot):
        self.cache.slots = slot
        mask = build_mask(pos, slot, self.max_len, self.dtype, self.boolean)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos,
                         use_cache=True, **{self.cache_kw: self.cache})
        return out.logits


class CudaGraphStep:
    """One captured CUDA graph of ``step`` for inputs of shape [B, width] (CUDA only).

    Capture: the static input buffers hold dummies (every write goes to the trash slot),
    three warm-up calls run on a side stream, then ``torch.cuda.graph`` records one call.
    ``__call__`` copies the inputs into the buffers, replays, and returns the output buffer
    (overwritten by the next replay: callers copy it)."""

    def __init__(self, step: StaticStep, batch: int, width: int, device):
        self.ids = torch.zeros(batch, width, dtype=torch.long, device=device)
        self.pos = torch.zeros(batch, width, dtype=torch.long, device=device)
        self.slot = torch.full((batch, width), step.max_len, dtype=torch.long, device=device)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.inference_mode(), torch.cuda.stream(side):
            for _ in range(3):
                step(self.ids, self.pos, self.slot)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(self.graph):
            self.out = step(self.ids, self.pos, self.slot)

    def __call__(self, ids, pos, slot):
        self.ids.copy_(ids)
        self.pos.copy_(pos)
        self.slot.copy_(slot)
        self.graph.replay()
        return self.out


def capture_cuda_graph(step: StaticStep, batch: int, width: int) -> CudaGraphStep:
    """Record ``step`` for [batch, width] inputs as a CUDA graph (raises without CUDA)."""
    device = next(step.model.parameters()).device
    if device.type != "cuda":
        raise InvalidInput("model", f"CUDA graphs need the model on a CUDA device, not {device}")
    return CudaGraphStep(step, batch, width, device)


class StaticKVState:
    """Drop-in for :class:`~specoracle.fastpath.models.llm.kv.KVState` over static buffers.

    ``feed(rows, width)`` -> (logits [B, width, V] float32, lens [B]) with row b's real tokens
    left-aligned (logits[b, j] for j < lens[b] follow rows[b][j], as KVState's); ``rollback``
    only lowers the counts. ``graph_widths``: widths to run as CUDA graphs (captured on first
    use; CUDA only); ``compile``: wrap the step in ``torch.compile(mode=...)`` instead.
    """

    def __init__(self, model, batch: int, max_len: int, graph_widths=(), compile_mode=None):
        self.model, self.batch, self.max_len = model, batch, int(max_len)
        self.device = next(model.parameters()).device
        self.step = StaticStep(model, batch, self.max_len)
        self.run = torch.compile(self.step, mode=compile_mode) if compile_mode else self.step
        self.graph_widths = set(graph_widths)
        if self.graph_widths and self.device.type != "cuda":
            raise InvalidInput("graph_widths", "CUDA graphs need a CUDA model")
        self.graphs: dict = {}
        self.count = torch.zeros(batch, dtype=torch.long)     # host-side bookkeeping
        self.calls = 0

    @torch.inference_mode()
    def feed(self, rows: list, width: int | None = None) -> tuple:
        if len(rows) != self.batch:
            raise InvalidInput("rows", f"expected {self.batch} rows (one per batch row), got {len(rows)}")
        lens = torch.tensor([len(r) for r in rows], dtype=torch.long)
        width = max(1, int(lens.max())) if width is None else int(width)
        ids = torch.zeros(self.batch, max(width, int(lens.max())), dtype=torch.long)
        for b, r in enumerate(rows):
            if len(r):
                ids[b, : len(r)] = torch.as_tensor(r, dtype=torch.long)
        return self.feed_tensor(ids, lens, width)

    @torch.inference_mode()
    def feed_tensor(self, ids: torch.Tensor, lens: torch.Tensor, width: int) -> tuple:
        """Feed row b the tokens ``ids[b, :lens[b]]``; ``ids`` [B, W] int64 on any device (the
        on-device round passes device ids: no copy to the host), ``lens`` [B] host int64.
        -> (logits [B, width, V] float32, lens on the model's device)."""
        need = int(lens.max())
        if need > width:
            raise InvalidInput("rows", f"a row feeds {need} tokens into a call of width {width}")
        if int((self.count + lens).max()) > self.max_len:
            raise InvalidInput("rows", f"the static cache holds {self.max_len} positions; "
                               f"a row would reach {int((self.count + lens).max())}")
        ids = ids.to(self.device)
        ids = ids[:, :width] if ids.shape[1] >= width else torch.nn.functional.pad(ids, (0, width - ids.shape[1]))
        ar = torch.arange(width)
        real = ar[None, :] < lens[:, None]
        pos = torch.where(real, self.count[:, None] + ar[None, :], 0)
        slot = torch.where(real, pos, self.max_len)
        pos, slot = pos.to(self.device), slot.to(self.device)
        ids = torch.where(real.to(self.device), ids, 0)
        if width in self.graph_widths:
            if width not in self.graphs:
                self.graphs[width] = capture_cuda_graph(self.step, self.batch, width)
            logits = self.graphs[width](ids, pos, slot).float().clone()
        else:
            logits = self.run(ids, pos, slot).float()
        self.calls += 1
        self.count = self.count + lens
        return logits, lens.to(self.device)

    def rollback(self, keep) -> None:
        """Keep only the first ``keep[b]`` tokens of each row b (the buffers are untouched)."""
        keep = torch.as_tensor(keep, dtype=torch.long).cpu()
        self.count = torch.minimum(keep, self.count)

    def reset(self) -> None:
        """Empty every row (for reuse by the next generation: buffers and graphs are kept)."""
        self.count = torch.zeros(self.batch, dtype=torch.long)
        self.calls = 0


POOL_ATTR = "_specoracle_static_pool"
POOL_ROUND = 256


def pooled_state(model, batch: int, max_len: int, graph_widths=(), compile_mode=None) -> StaticKVState:
    """A reset :class:`StaticKVState` reused across generations (stored on the model object,
    so it lives as long as the model): captured CUDA graphs and compiled steps are built once,
    not once per generation. ``max_len`` is rounded up to a multiple of 256 so that prompts of
    similar lengths share one state. Not for two concurrent generations on one model."""
    max_len = -(-int(max_len) // POOL_ROUND) * POOL_ROUND
    pool = model.__dict__.setdefault(POOL_ATTR, {})
    key = (batch, max_len, tuple(sorted(graph_widths)), compile_mode)
    st = pool.get(key)
    if st is None:
        st = pool[key] = StaticKVState(model, batch, max_len, graph_widths, compile_mode)
    st.reset()
    return st
