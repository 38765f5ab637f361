"""The DFlash block-diffusion drafter (Chen, Liang, Liu, arXiv 2602.06036; ALGORITHMS.md §5.2).

A few Llama/Qwen3-style decoder layers that draft a whole block ``[anchor, MASK x (gamma-1)]``
in ONE forward pass, conditioned on the target's hidden states:

* context feature: the hidden states of ``n`` target layers, chosen by the paper's formula
  ``l_i = round(1 + i (N_t - 4) / (n - 1))`` (i = 0..n-1; hidden-state index l_i + 1, i.e. the
  OUTPUT of decoder layer l_i), concatenated and projected once,
  ``H_t = RMSNorm(W_c [H^(l_1); ...; H^(l_n)])`` with ``W_c`` [D, n D] without bias;
* KV injection: in every draft layer the keys/values are ``[W_K H_t ; W_K H_d]`` and
  ``[W_V H_t ; W_V H_d]`` (same projections for both streams, concatenated along the sequence);
  queries come from the block only; QK-RMSNorm (Qwen3) and RoPE at absolute positions (context
  features keep their token positions, the block takes the next ones);
* attention is NON-causal: bidirectional inside the block, full to every cached context feature;
* the token embedding and the LM head are the target's, shared and frozen (they are not
  parameters of this module: :func:`draft_logits` takes the target);
* ``[MASK]`` is a learned embedding vector (the zoo tokenizer has no mask token; the paper's code
  adds one to the vocabulary; a vector outside the vocabulary is the same thing without touching
  the frozen embedding table).

The context K/V of every layer are cached across drafting iterations (:class:`DraftCache`): each
cycle appends the features of the newly committed positions once; the block's own K/V are never
cached (the paper's code crops them after each draft).

The same module is D²SD's VP drafter (arXiv 2606.04446, ALGORITHMS.md §6.2): only the training
objective (prefix masking) differs; at inference a VP row simply has real tokens instead of MASK
at its first ``i`` block positions (:func:`block_embeddings` takes per-row visible lengths).

Shapes: B rows, G = block size (gamma), C cached context positions, D hidden, H heads, hd head dim.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from specoracle.reference.types import InvalidInput


def target_layer_ids(n_target_layers: int, n_features: int) -> tuple:
    """The paper's layer selection (``build_target_layer_ids``, §5.2):
    ``round(1 + i (N_t - 4) / (n - 1))`` for i = 0..n-1 (n = 1: the middle layer).
    Qwen3-8B (36 layers), n = 5 -> (1, 9, 17, 25, 33). Use hidden_states[l + 1]."""
    if n_features < 1:
        raise InvalidInput("n_features", f"must be >= 1, got {n_features}")
    if n_target_layers < 1:
        raise InvalidInput("n_target_layers", f"must be >= 1, got {n_target_layers}")
    if n_features == 1:
        return (n_target_layers // 2,)
    span = max(n_target_layers - 4, 0)
    ids = tuple(int(round(1 + i * span / (n_features - 1))) for i in range(n_features))
    return tuple(min(max(i, 0), n_target_layers - 1) for i in ids)


@dataclass
class DFlashConfig:
    """Architecture of a drafter (hidden size, head layout and vocabulary follow the target)."""

    hidden_size: int
    num_layers: int
    num_heads: int
    head_dim: int
    intermediate_size: int
    block_size: int
    layer_ids: tuple
    vocab_size: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    objective: str = "dflash"          # "dflash" or "vp" (D2SD variable-prefix); informational
    extra: dict = field(default_factory=dict)

    @classmethod
    def for_target(cls, target_config, *, num_layers=2, n_features=None, block_size=8,
                   intermediate_size=None, objective="dflash", layer_ids=None):
        """A config matching the target's width, heads and RoPE; ``n_features`` defaults to
        the number of draft layers (the paper's code); ``layer_ids`` (target layer indices)
        overrides the paper's formula."""
        n_features = num_layers if n_features is None else n_features
        n_target = int(target_config.num_hidden_layers)
        if layer_ids is None:
            layer_ids = target_layer_ids(n_target, n_features)
        else:
            layer_ids = tuple(int(i) for i in layer_ids)
            for j, i in enumerate(layer_ids):
                if not 0 <= i < n_target:
                    raise InvalidInput("layer_ids", f"target layer {i} outside [0, {n_target})",
                                       index=j)
        rope = getattr(target_config, "rope_parameters", None) or {}
        theta = rope.get("rope_theta", getattr(target_config, "rope_theta", 10000.0))
        d = int(target_config.hidden_size)
        heads = int(target_config.num_attention_heads)
        return cls(hidden_size=d, num_layers=num_layers, num_heads=heads,
                   head_dim=int(getattr(target_config, "head_dim", None) or d // heads),
                   intermediate_size=int(intermediate_size or target_config.intermediate_size),
                   block_size=int(block_size),
                   layer_ids=layer_ids,
                   vocab_size=int(target_config.vocab_size),
                   rms_norm_eps=float(getattr(target_config, "rms_norm_eps", 1e-6)),
                   rope_theta=float(theta), objective=objective)

    def validate(self):
        if self.block_size < 2:
            raise InvalidInput("block_size", f"must be >= 2 (anchor + one mask), got {self.block_size}")
        if self.num_layers < 1:
            raise InvalidInput("num_layers", f"must be >= 1, got {self.num_layers}")
        return self


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def rope(x: torch.Tensor, pos: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotary embedding, Llama's half-split convention. x [B, H, T, hd], pos [B, T]."""
    hd = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, device=x.device, dtype=torch.float32) / hd))
    ang = pos.to(torch.float32)[:, None, :, None] * inv  # [B, 1, T, hd/2]
    cos, sin = torch.cat([ang, ang], -1).cos().to(x.dtype), torch.cat([ang, ang], -1).sin().to(x.dtype)
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class DraftLayer(nn.Module):
    """One Qwen3-style decoder layer with KV injection of the context features."""

    def __init__(self, cfg: DFlashConfig):
        super().__init__()
        d, h, hd = cfg.hidden_size, cfg.num_heads, cfg.head_dim
        self.h, self.hd, self.theta = h, hd, cfg.rope_theta
        self.input_norm = RMSNorm(d, cfg.rms_norm_eps)
        self.q_proj = nn.Linear(d, h * hd, bias=False)
        self.k_proj = nn.Linear(d, h * hd, bias=False)
        self.v_proj = nn.Linear(d, h * hd, bias=False)
        self.o_proj = nn.Linear(h * hd, d, bias=False)
        self.q_norm = RMSNorm(hd, cfg.rms_norm_eps)
        self.k_norm = RMSNorm(hd, cfg.rms_norm_eps)
        self.post_norm = RMSNorm(d, cfg.rms_norm_eps)
        self.gate = nn.Linear(d, cfg.intermediate_size, bias=False)
        self.up = nn.Linear(d, cfg.intermediate_size, bias=False)
        self.down = nn.Linear(cfg.intermediate_size, d, bias=False)

    def _heads(self, x):  # [B, T, H*hd] -> [B, H, T, hd]
        b, t, _ = x.shape
        return x.view(b, t, self.h, self.hd).transpose(1, 2)

    def context_kv(self, ctx: torch.Tensor, pos: torch.Tensor):
        """Projected context K/V (what the cache stores). ctx [B, C, D] (fused, normed), pos [B, C]
        -> k, v [B, H, C, hd]. The features bypass Q, O and the MLP."""
        k = rope(self.k_norm(self._heads(self.k_proj(ctx))), pos, self.theta)
        v = self._heads(self.v_proj(ctx))
        return k, v

    def forward(self, x, pos, ctx_k, ctx_v, mask=None):
        """x [B, G, D] block stream, pos [B, G], ctx_k/v [B, H, C, hd]; mask None (all visible)
        or bool [B or 1, 1, G, C + G] (True = attend)."""
        hx = self.input_norm(x)
        q = rope(self.q_norm(self._heads(self.q_proj(hx))), pos, self.theta)
        k = rope(self.k_norm(self._heads(self.k_proj(hx))), pos, self.theta)
        v = self._heads(self.v_proj(hx))
        k = torch.cat([ctx_k.expand(x.shape[0], -1, -1, -1), k], dim=2)
        v = torch.cat([ctx_v.expand(x.shape[0], -1, -1, -1), v], dim=2)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # non-causal
        b, _, g, _ = att.shape
        x = x + self.o_proj(att.transpose(1, 2).reshape(b, g, self.h * self.hd))
        hx = self.post_norm(x)
        return x + self.down(F.silu(self.gate(hx)) * self.up(hx))


class DFlashDrafter(nn.Module):
    """W_c + RMSNorm (context fusion), the draft layers, a final RMSNorm and the MASK vector."""

    def __init__(self, cfg: DFlashConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        d, n = cfg.hidden_size, len(cfg.layer_ids)
        self.fc = nn.Linear(n * d, d, bias=False)  # W_c [D, n D]
        self.hidden_norm = RMSNorm(d, cfg.rms_norm_eps)
        self.layers = nn.ModuleList(DraftLayer(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(d, cfg.rms_norm_eps)
        self.mask_embedding = nn.Parameter(torch.randn(d) * 0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)

    @property
    def block_size(self) -> int:
        return self.cfg.block_size

    def fuse(self, hidden_states) -> torch.Tensor:
        """Target hidden states (the HF tuple, embeddings first) -> H_t [B, T, D]."""
        feats = torch.cat([hidden_states[i + 1] for i in self.cfg.layer_ids], dim=-1)
        return self.hidden_norm(self.fc(feats.to(self.fc.weight.dtype)))

    def context_kv(self, ctx, pos):
        """Per layer (k, v) [B, H, C, hd] of the fused context ctx [B, C, D] at pos [B, C]."""
        return [layer.context_kv(ctx, pos) for layer in self.layers]

    def forward(self, x, pos, kv, mask=None):
        """x [B, G, D] block embeddings, pos [B, G], kv per-layer context (k, v) -> hidden [B, G, D]."""
        for layer, (k, v) in zip(self.layers, kv):
            x = layer(x, pos, k, v, mask)
        return self.norm(x)

    # ------------------------------------------------------------------ persistence
    def save(self, folder, dtype=None) -> Path:
        """Write ``dflash_config.json`` and ``dflash.safetensors`` (in ``dtype`` if given, e.g.
        torch.bfloat16 to halve the file; :meth:`load` casts back)."""
        from safetensors.torch import save_file
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        cfg = asdict(self.cfg)
        cfg["layer_ids"] = list(cfg["layer_ids"])
        (folder / "dflash_config.json").write_text(json.dumps(cfg, indent=2))
        save_file({k: v.detach().to(dtype or v.dtype).contiguous() for k, v in self.state_dict().items()},
                  str(folder / "dflash.safetensors"))
        return folder

    @classmethod
    def load(cls, folder, dtype=torch.float32):
        from safetensors.torch import load_file
        folder = Path(folder)
        if not (folder / "dflash_config.json").is_file():
            raise InvalidInput("drafter", f"{folder} holds no dflash_config.json (train one with "
                               "`specoracle zoo train-dflash`)")
        cfg = json.loads((folder / "dflash_config.json").read_text())
        cfg["layer_ids"] = tuple(cfg["layer_ids"])
        model = cls(DFlashConfig(**cfg))
        state = {k: v.to(torch.float32) for k, v in load_file(str(folder / "dflash.safetensors")).items()}
        model.load_state_dict(state)
        return model.to(dtype).eval()


def check_compatible(target, drafter: DFlashDrafter) -> None:
    """The drafter must match the target's width, vocabulary and depth."""
    tc = target.config
    cfg = drafter.cfg
    if int(tc.hidden_size) != cfg.hidden_size or int(tc.vocab_size) != cfg.vocab_size:
        raise InvalidInput("drafter", f"drafter (D={cfg.hidden_size}, V={cfg.vocab_size}) does not "
                           f"match the target (D={tc.hidden_size}, V={tc.vocab_size})")
    if max(cfg.layer_ids) >= int(tc.num_hidden_layers):
        raise InvalidInput("drafter", f"feature layers {cfg.layer_ids} exceed the target's "
                           f"{tc.num_hidden_layers} layers")


def block_embeddings(target, drafter: DFlashDrafter, rows: torch.Tensor, visible: torch.Tensor):
    """Block inputs: rows [R, G] token ids (anchor first), visible [R] = number of leading real
    tokens (1 for DFlash: the anchor only; 1 + i for a D2SD VP row) -> [R, G, D] with the
    MASK vector at positions >= visible."""
    emb = target.get_input_embeddings()(rows).to(drafter.mask_embedding.dtype)
    g = rows.shape[1]
    keep = torch.arange(g, device=rows.device)[None, :] < visible[:, None]  # [R, G]
    return torch.where(keep[..., None], emb, drafter.mask_embedding)


def lm_head(target):
    return target.get_output_embeddings()


class DraftCache:
    """Cached context K/V of one drafter (batch 1 rows; broadcast over block rows).

    ``extend(hidden_states, start)`` fuses the target hidden states of newly committed positions
    (starting at absolute position ``start``) and appends their projected K/V in every layer."""

    def __init__(self, drafter: DFlashDrafter):
        self.drafter = drafter
        self.kv = None
        self.length = 0

    @torch.no_grad()
    def extend(self, hidden_states, start: int) -> None:
        d = self.drafter
        ctx = d.fuse(hidden_states)  # [1, T, D]
        t = ctx.shape[1]
        pos = torch.arange(start, start + t, device=ctx.device)[None]
        new = d.context_kv(ctx, pos)
        if self.kv is None:
            self.kv = new
        else:
            self.kv = [(torch.cat([k0, k1], 2), torch.cat([v0, v1], 2))
                       for (k0, v0), (k1, v1) in zip(self.kv, new)]
        self.length = start + t


@torch.no_grad()
def draft_logits(target, drafter: DFlashDrafter, cache: DraftCache, rows, visible, start: int):
    """One batched drafter pass. rows [R, G] (anchor at position ``start``), visible [R]
    -> logits [R, G, V] float32 on the host, from the target's frozen LM head (row j predicts
    position j); rows and visible may live anywhere (they are moved to the drafter's device)."""
    dev = drafter.mask_embedding.device
    rows, visible = rows.to(dev), visible.to(dev)
    g = rows.shape[1]
    x = block_embeddings(target, drafter, rows, visible)
    pos = torch.arange(start, start + g, device=rows.device)[None].expand(rows.shape[0], -1)
    h = drafter(x, pos, cache.kv)
    return lm_head(target)(h.to(lm_head(target).weight.dtype)).float().cpu()


def decay_weights(n: int, decay: float, dtype=torch.float32) -> torch.Tensor:
    """w_k = exp(-(k-1)/decay), k = 1..n (ALGORITHMS.md §5.4, §9: k = 1 is the first masked
    position), unnormalised. T5: block 16, decay 7 -> w_1 = 1, w_8 = e^-1, w_15 = e^-2."""
    if not (decay > 0 and math.isfinite(decay)):
        raise InvalidInput("decay", f"must be a positive finite number, got {decay}")
    return torch.exp(-torch.arange(n, dtype=dtype) / decay)
