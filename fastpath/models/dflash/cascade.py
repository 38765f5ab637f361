"""Cascade attention for the D²SD tree pass (ALGORITHMS.md §6.3; D²SD, arXiv 2606.04446, "the
shared prefix computed once"; the cascade / shared-prefix decomposition of FlashInfer and Hydragen).

The tree pass has Nq = 1 + N queries (the anchor and the N trie nodes). Every query attends to
ALL P cached prefix positions, and to the tree-local keys (the anchor and the nodes) under the tree
mask. Attention over a union of key sets splits exactly into per-set softmaxes merged by their
log-sum-exps:

    o = (e^{lse_1} o_1 + e^{lse_2} o_2) / (e^{lse_1} + e^{lse_2}),
    o_s = softmax(S_s) V_s,  lse_s = logsumexp(S_s)  over key set s (S = scale q k^T, masked -inf),

so the prefix part is a DENSE (maskless) attention of all Nq queries against the prefix K/V, read
once for the whole tree, and only the small tree-local part needs the mask. A query with no
allowed key in a set has lse_s = -inf and weight 0 (never NaN).

* :func:`masked_attention` - the plain reference: one softmax over [prefix ; tree] under the full mask;
* :func:`cascade_attention` - the two-part version (prefix dense + tree masked, merged by LSE);
* :func:`hf_cascade_attention` - the same behind the Hugging Face ``AttentionInterface`` signature;
  :func:`use_cascade` registers it on a model (a tree pass is recognised by an additive mask whose
  first S - Nq columns are all 0; anything else falls back to plain SDPA).

Shapes: q [B, H, Nq, hd], prefix k/v [B, H, P, hd], tree k/v [B, H, Nq, hd], allow bool [Nq, Nq]
(True = attend) or [B, 1|H, Nq, Nq].
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

NAME = "specoracle_cascade"


def _part(q, k, v, allow, scale):
    """Attention of q over one key set -> (o [B, H, Nq, hd], lse [B, H, Nq]); rows with no
    allowed key give o = 0, lse = -inf."""
    s = torch.matmul(q, k.transpose(-1, -2)) * scale                   # [B, H, Nq, K]
    if allow is not None:
        s = s.masked_fill(~allow, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)                                   # [B, H, Nq]
    finite = torch.isfinite(lse)
    w = torch.exp(s - torch.where(finite, lse, 0.0)[..., None])
    return torch.matmul(w, v), lse


def masked_attention(q, k, v, allow, scale=None):
    """Plain attention of q [B, H, Nq, hd] over k/v [B, H, S, hd] under allow [.., Nq, S]."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    return _part(q, k, v, allow, scale)[0]


def cascade_attention(q, k_prefix, v_prefix, k_tree, v_tree, tree_allow, scale=None):
    """Dense attention to the shared prefix + masked attention to the tree, merged by LSE
    (module docstring). Equal to ``masked_attention(q, [k_prefix; k_tree], [v_prefix; v_tree],
    [all True | tree_allow])`` up to float rounding (tests/TOLERANCES.md, "cascade attention")."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    o1, l1 = _part(q, k_prefix, v_prefix, None, scale) if k_prefix.shape[-2] else (None, None)
    o2, l2 = _part(q, k_tree, v_tree, tree_allow, scale)
    if o1 is None:
        return o2
    lse = torch.logaddexp(l1, l2)
    safe = torch.where(torch.isfinite(lse), lse, 0.0)
    return torch.exp(l1 - safe)[..., None] * o1 + torch.exp(l2 - safe)[..., None] * o2


def _repeat_kv(x, groups: int):
    return x if groups == 1 else x.repeat_interleave(groups, dim=1)


def hf_cascade_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                         **kwargs):
    """Hugging Face attention function (``AttentionInterface``): query [B, H, Nq, hd], key/value
    [B, Hkv, S, hd] (cache included), attention_mask additive [B, 1, Nq, S] or None.
    Returns (out [B, Nq, H, hd], None)."""
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = _repeat_kv(key, groups), _repeat_kv(value, groups)
    nq, s = query.shape[-2], key.shape[-2]
    p = s - nq
    mask = attention_mask[..., :s] if attention_mask is not None else None
    allow = None
    if mask is not None:
        allow = mask if mask.dtype == torch.bool else mask > torch.finfo(mask.dtype).min / 2
    tree = allow is not None and p >= 0 and nq > 1 and bool(allow[..., :p].all())
    if tree:
        out = cascade_attention(query, key[..., :p, :], value[..., :p, :], key[..., p:, :],
                                value[..., p:, :], allow[..., p:], scaling)
    else:
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask,
                                             is_causal=mask is None and nq > 1, scale=scaling)
    return out.transpose(1, 2).contiguous(), None


def use_cascade(model, enable: bool = True):
    """Switch ``model`` (a transformers model) to the cascade attention function, or back to
    SDPA. Returns the previous implementation name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask
    AttentionInterface.register(NAME, hf_cascade_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    prev = model.config._attn_implementation
    model.set_attn_implementation(NAME if enable else "sdpa")
    return prev
