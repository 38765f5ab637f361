"""Tiny random Llama models built from configs (no zoo, no download) for tests/test_llm_*.py."""
from __future__ import annotations

import torch

VOCAB = 96


def tiny_llama(seed: int, hidden: int, layers: int, heads: int, kv_heads: int, attn: str = "sdpa",
               sharpen: float = 8.0):
    """A random LlamaForCausalLM (eval mode); ``sharpen`` scales the output head so that the
    next-token distributions are far from uniform (drafts get accepted sometimes)."""
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=kv_heads, max_position_embeddings=256,
                      tie_word_embeddings=True, attn_implementation=attn)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # fixture weights; the global generator is restored below
    model = LlamaForCausalLM(cfg).eval()
    torch.random.set_rng_state(state)
    with torch.no_grad():
        model.lm_head.weight.mul_(sharpen)
    return model


def tiny_pair_one_thread(sharpen: float = 8.0):
    """Generator for a module fixture: the (target, draft) pair of tiny models used by the
    engine tests, with torch on one thread while they run (the thread count is restored).
    ``sharpen`` 8 gives near-deterministic rows; 2 gives laws spread enough for GOF tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield tiny_llama(1, 64, 2, 4, 2, sharpen=sharpen), tiny_llama(2, 32, 1, 2, 1, sharpen=sharpen)
    finally:
        torch.set_num_threads(threads)
