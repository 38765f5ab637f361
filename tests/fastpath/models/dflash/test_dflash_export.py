"""The vLLM export of a DFlash drafter (fastpath/models/dflash/export.py), without vLLM.

Checked against the format written down from vLLM 0.32.0's loader (the module doc cites the
lines): config keys, tensor names and shapes, the MASK row, and, the real check of the name
mapping, the drafter's logits recomputed from the EXPORTED checkpoint alone with vLLM's
semantics (checkpoint names, ``mask_token_id`` looked up in ``embed_tokens``, aux hidden
state i + 1 for target layer id i, ``fc`` then ``hidden_norm`` before the context K/V, a
residual stream with pre-norms, neox RoPE, non-causal attention, the target's LM head) equal
specoracle's own ``draft_logits``. Every parameter is randomised first, so that swapping two
names (q_norm / k_norm, input / post-attention norm, gate / up) changes the logits."""
from __future__ import annotations

import json

import pytest
import torch

from specoracle.fastpath.models.dflash import export as X
from specoracle.fastpath.models.dflash.model import DFlashConfig, DFlashDrafter, DraftCache, draft_logits
from specoracle.reference.types import InvalidInput

from _dflash_zoo import tiny_target

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

VOCAB, BLOCK = 12, 4


def drafter_for(target, seed=3):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        d = DFlashDrafter(DFlashConfig.for_target(target.config, num_layers=2, n_features=2, block_size=BLOCK))
        for p in d.parameters():  # norms too: a swapped name must change the logits
            p.data += 0.3 * torch.randn_like(p)
    return d.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    target = tiny_target(VOCAB).double()
    drafter = drafter_for(target).double()
    out = X.write_vllm(drafter, target, tmp_path_factory.mktemp("vllm") / "d", source={"drafter": "tiny"})
    from safetensors.torch import load_file
    return target, drafter, json.loads((out / "config.json").read_text()), load_file(str(out / "model.safetensors"))


def test_config_has_the_keys_vllm_reads(exported):
    target, drafter, cfg, _ = exported
    assert cfg["architectures"] == ["DFlashDraftModel"] and cfg["model_type"] == "qwen3"
    assert cfg["dflash_config"] == {"mask_token_id": VOCAB, "target_layer_ids": list(drafter.cfg.layer_ids)}
    assert cfg["vocab_size"] == VOCAB + 1 and cfg["draft_vocab_size"] == VOCAB
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"],
            cfg["head_dim"], cfg["intermediate_size"]) == (32, 2, 4, 4, 8, drafter.cfg.intermediate_size)
    assert cfg["rope_parameters"]["rope_theta"] == cfg["rope_theta"] == drafter.cfg.rope_theta
    assert cfg["layer_types"] == ["full_attention"] * 2 and "is_causal" not in cfg  # non-causal
    assert cfg["block_size"] == BLOCK and cfg["tie_word_embeddings"] is False
    assert cfg["max_position_embeddings"] == target.config.max_position_embeddings


def test_weights_names_shapes_and_mask_row(exported):
    target, drafter, cfg, state = exported
    want = X.vllm_shapes(drafter.cfg, VOCAB)
    assert {k: tuple(v.shape) for k, v in state.items()} == want
    assert all(v.dtype == torch.float32 for v in state.values())
    emb = state["embed_tokens.weight"]
    assert torch.equal(emb[:VOCAB], target.get_input_embeddings().weight.float())
    assert torch.equal(emb[VOCAB], drafter.mask_embedding.float())
    assert not any(k.startswith("model.") or "lm_head" in k for k in state)  # vLLM adds model.; head shared


def _rms(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _neox(x, pos, theta):  # x [T, H, hd]
    hd = x.shape[-1]
    inv = theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = pos[:, None].double() * inv[None]  # [T, hd/2]
    cos, sin = ang.cos()[:, None], ang.sin()[:, None]
    a, b = x[..., : hd // 2], x[..., hd // 2:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], -1)


def vllm_semantics_logits(cfg, state, target, hidden, anchor):
    """Draft logits [1 + k, V] for the block [anchor, MASK x k] after a context of C tokens,
    from the exported checkpoint only, the way vLLM's DFlashQwen3ForCausalLM computes them."""
    s = {k: v.double() for k, v in state.items()}
    eps, theta, H, hd = cfg["rms_norm_eps"], cfg["rope_theta"], cfg["num_attention_heads"], cfg["head_dim"]
    aux = [hidden[i + 1][0] for i in cfg["dflash_config"]["target_layer_ids"]]  # aux state i + 1
    ctx = torch.cat(aux, -1).double() @ s["fc.weight"].T                        # combine_hidden_states
    ctx = _rms(ctx, s["hidden_norm.weight"], eps)                                # _project_context_kv
    C, k = ctx.shape[0], BLOCK - 1
    ids = torch.tensor([anchor] + [cfg["dflash_config"]["mask_token_id"]] * k)
    x = s["embed_tokens.weight"][ids]
    qpos, cpos = torch.arange(C, C + 1 + k), torch.arange(C)
    for i in range(cfg["num_hidden_layers"]):
        w = {n[len(f"layers.{i}."):]: v for n, v in s.items() if n.startswith(f"layers.{i}.")}
        h = _rms(x, w["input_layernorm.weight"], eps)

        def proj(inp, name, norm=None):
            out = (inp @ w[f"self_attn.{name}.weight"].T).view(inp.shape[0], H, hd)
            return out if norm is None else _rms(out, w[f"self_attn.{norm}.weight"], eps)

        q = _neox(proj(h, "q_proj", "q_norm"), qpos, theta)
        keys = torch.cat([_neox(proj(ctx, "k_proj", "k_norm"), cpos, theta),
                          _neox(proj(h, "k_proj", "k_norm"), qpos, theta)])
        vals = torch.cat([proj(ctx, "v_proj"), proj(h, "v_proj")])
        att = torch.softmax(torch.einsum("qhd,khd->hqk", q, keys) / hd ** 0.5, -1)  # non-causal
        x = x + torch.einsum("hqk,khd->qhd", att, vals).reshape(x.shape[0], H * hd) @ w["self_attn.o_proj.weight"].T
        h = _rms(x, w["post_attention_layernorm.weight"], eps)
        gate, up = h @ w["mlp.gate_proj.weight"].T, h @ w["mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(gate) * up) @ w["mlp.down_proj.weight"].T
    x = _rms(x, s["norm.weight"], eps)
    return x @ target.get_output_embeddings().weight.T.double()


def test_exported_checkpoint_computes_the_same_draft_logits(exported):
    target, drafter, cfg, state = exported
    prompt = torch.tensor([[3, 7, 1, 9, 4, 4, 2]])
    with torch.inference_mode():
        hidden = target(input_ids=prompt, output_hidden_states=True).hidden_states
    cache = DraftCache(drafter)
    cache.extend(hidden, 0)
    for anchor in (5, 0, VOCAB - 1):
        ours = draft_logits(target, drafter, cache, torch.tensor([[anchor] + [0] * (BLOCK - 1)]),
                            torch.tensor([1]), prompt.shape[1])[0].double()
        theirs = vllm_semantics_logits(cfg, state, target, hidden, anchor)
        assert torch.allclose(ours, theirs, atol=1e-5, rtol=1e-5), (ours - theirs).abs().max()


def test_a_wrong_mapping_is_caught_by_the_logits_check(exported):
    """Negative control: the same check rejects an export with q_norm and k_norm swapped."""
    target, drafter, cfg, state = exported
    bad = dict(state)
    for i in range(cfg["num_hidden_layers"]):
        a, b = f"layers.{i}.self_attn.q_norm.weight", f"layers.{i}.self_attn.k_norm.weight"
        bad[a], bad[b] = state[b], state[a]
    prompt = torch.tensor([[3, 7, 1, 9]])
    with torch.inference_mode():
        hidden = target(input_ids=prompt, output_hidden_states=True).hidden_states
    cache = DraftCache(drafter)
    cache.extend(hidden, 0)
    ours = draft_logits(target, drafter, cache, torch.tensor([[5] + [0] * (BLOCK - 1)]), torch.tensor([1]), 4)[0]
    assert not torch.allclose(ours.double(), vllm_semantics_logits(cfg, bad, target, hidden, 5), atol=1e-3)


def test_last_target_layer_is_refused():
    """vLLM's aux state after the last layer is pre-norm, transformers' is post-norm."""
    target = tiny_target(VOCAB)
    cfg = DFlashConfig.for_target(target.config, num_layers=1, block_size=BLOCK)
    cfg.layer_ids = (1, target.config.num_hidden_layers - 1)
    with pytest.raises(InvalidInput, match="drafter"):
        X.vllm_config(cfg, target.config)


@pytest.mark.zoo
def test_export_from_folders(tmp_path):
    """export_vllm reads a saved drafter and a HF folder (with a tokenizer: load_model needs it)."""
    from specoracle.fastpath.models.zoo.registry import zoo_reason
    if zoo_reason("zoo:code-target"):
        pytest.skip(zoo_reason("zoo:code-target"))
    if not (X.SHIPPED_DFLASH / "dflash_config.json").is_file():
        pytest.skip("no shipped drafter")
    out = X.export_vllm(X.SHIPPED_DFLASH, "zoo:code-target", tmp_path / "v")
    cfg = json.loads((out / "config.json").read_text())
    drafter = DFlashDrafter.load(X.SHIPPED_DFLASH)
    assert cfg["dflash_config"]["target_layer_ids"] == list(drafter.cfg.layer_ids)
    assert json.loads((out / "specoracle_export.json").read_text())["num_speculative_tokens_max"] == drafter.block_size - 1
