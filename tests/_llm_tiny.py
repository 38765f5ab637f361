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


PROMPT = [3, 17, 42]


class TinyPairFactory:
    """Picklable engine factory for proofs.certify.executors.map_actors / engine_counts: builds the
    tiny (target, draft) pair of :func:`tiny_pair_one_thread` (one engine per actor)."""

    def __call__(self):
        return tiny_llama(1, 64, 2, 4, 2), tiny_llama(2, 32, 1, 2, 1)


def sample_tiny_prefixes(engine, first: int, count: int, seed: int):
    """Counter of the first 2 tokens of requests first..first+count-1 (request r has seed
    seed + r) under chain speculative decoding (k = 2, T = 8, top-k 3, reference verifier),
    with torch on one thread (restored). T = 8 undoes most of the head sharpening: the law
    has 9 cells, the largest 0.32."""
    from specoracle.proofs.certify.lossless import sample_prefixes
    from specoracle.fastpath.models.llm.engine import Runtime
    from specoracle.fastpath.models.llm.processing import Warp

    target, draft = engine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return sample_prefixes(target, draft, PROMPT, n=2, n_samples=count, batch=count, method="chain", k=2,
                               warping=Warp(8.0, top_k=3), seed=seed + first,
                               runtime=Runtime(backend="reference"))
    finally:
        torch.set_num_threads(threads)
