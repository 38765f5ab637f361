"""Shared models for tests/test_dflash_*.py and tests/test_d2sd_*.py.

* :func:`tiny_target` - a random 4-layer Llama (vocab 12, d 32), no zoo needed: exact laws are
  cheap, so most certification runs here;
* :func:`zoo_target` / :func:`shipped_drafter` - the zoo target and the CPU drafters shipped in
  fastpath/models/zoo/weights/dflash/cpu-{dflash,vp} (1 layer, block 16, trained once on CPU on
  target-regenerated data, bf16, < 10 MB); skip with the install command when the zoo is absent.
"""
from __future__ import annotations

from functools import lru_cache

import pytest

from specoracle.fastpath.models.zoo import DFLASH_WEIGHTS_DIR

SHIPPED = DFLASH_WEIGHTS_DIR


@lru_cache(maxsize=None)
def tiny_target(vocab: int = 12, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                      tie_word_embeddings=True, bos_token_id=0, eos_token_id=0)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
        # sharpen the law so that some drafts get accepted (scaled tied embedding)
        model.model.embed_tokens.weight.data *= 6.0
    return model.eval()


@lru_cache(maxsize=None)
def tiny_drafter(vocab: int = 12, block: int = 4, seed: int = 1):
    import torch
    from specoracle.fastpath.models.dflash.model import DFlashConfig, DFlashDrafter
    t = tiny_target(vocab)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        d = DFlashDrafter(DFlashConfig.for_target(t.config, num_layers=2, block_size=block))
    return d.eval()


def zoo_target():
    from specoracle.fastpath.models.zoo.registry import zoo_reason
    reason = zoo_reason("zoo:code-target")
    if reason:
        pytest.skip(reason)
    return _zoo_target()


@lru_cache(maxsize=None)
def _zoo_target():
    from specoracle.fastpath.models.llm.hf import load_model
    return load_model("zoo:code-target")


def shipped_drafter(kind: str):
    from specoracle.fastpath.models.dflash.model import DFlashDrafter
    folder = SHIPPED / f"cpu-{kind}"
    if not (folder / "dflash.safetensors").is_file():
        pytest.skip(f"shipped drafter {folder} missing")
    return DFlashDrafter.load(folder)


class CharTokenizer:
    """Token id = character code mod 11 + 1 (ids 1..11 of the tiny vocabulary of 12)."""

    def __call__(self, text):
        class _Out:
            pass
        out = _Out()
        out.input_ids = [ord(c) % 11 + 1 for c in text]
        return out
