"""The decoding engine (fastpath/models/llm/engine.py) is the batched twin of the oracle's loop
(reference/decoding.py ``speculative_decode``): under the same noise it makes the same
decisions, round by round and token by token.

Noise: request b's engine rng draws rng.random(k), rng.random(k+1) per round; the same
Generator's rng.random((rounds, 2k+1)) is the reference's noise u (row r: k draft uniforms,
then the verifier's k+1). The reference decodes n + k tokens so that none of the rounds the
engine runs is shortened (the engine always drafts k and cuts at max_new_tokens).

The reference model wraps the same HF model cache-free: a full forward over prefix +
continuation, the reference warp (reference/processing.py) in float64 on the float32
logits. The engine's logits come from KV-cached calls, equal to rounding (~1e-6): the
comparison is exact, as in tests/fastpath/models/llm/test_llm_static.py (a decision within ~1e-6 of its
boundary could differ; tests/TOLERANCES.md "LLM end-to-end"), on fixed seeds.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from specoracle.fastpath.models.llm.engine import Runtime, speculative_generate
from specoracle.fastpath.models.llm.processing import Warp
from specoracle.reference.decoding import speculative_decode
from specoracle.reference.processing import process_logits

from _llm_tiny import tiny_pair_one_thread

PROMPTS = [[1, 5, 9, 2], [3], [7, 8, 9, 10, 11, 12, 4]]   # ragged, one of length 1
SEEDS = [21, 22, 23]
N, K = 12, 3
CASES = [("chain", Warp(1.0, top_k=20)), ("block", Warp(0.8, top_p=0.9)), ("chain", Warp(1.5, min_p=0.02)),
         ("block", Warp(1.0)), ("greedy", Warp(0.0)), ("chain", Warp(0.0))]


@pytest.fixture(scope="module")
def models():
    yield from tiny_pair_one_thread(sharpen=2.0)   # spread laws: accepts and rejections


class CacheFree:
    """The reference's Model protocol over an HF causal LM: next_probs / next_probs_block
    by one full forward, warped by reference/processing.py."""

    def __init__(self, model, w: Warp):
        self.model, self.w = model, w
        self.vocab_size = int(model.config.vocab_size)

    def next_probs_block(self, prefix, continuation):
        ids = list(prefix) + list(continuation)
        with torch.inference_mode():
            logits = self.model(torch.tensor([ids])).logits[0].float()        # [T, V]
        rows = logits[len(prefix) - 1:len(ids)].double().numpy()              # [L+1, V]
        w = self.w
        return process_logits(rows, w.temperature, w.top_k, w.top_p, w.min_p)

    def next_probs(self, prefix):
        return self.next_probs_block(prefix, [])[0]


def _reference_rows(target, draft, w, method):
    out = []
    for prompt, seed in zip(PROMPTS, SEEDS):
        u = np.random.default_rng(seed).random((N + K, 2 * K + 1))
        out.append(speculative_decode(CacheFree(target, w), CacheFree(draft, w), prompt, N + K, K,
                                      verifier=method, u=u))
    return out


@pytest.mark.parametrize("method,w", CASES, ids=lambda x: str(x))
def test_engine_makes_the_oracles_decisions(models, method, w):
    target, draft = models
    want = _reference_rows(target, draft, w, method)
    for path in (Runtime(backend="numba"), Runtime(backend="reference"), Runtime(round_impl="device")):
        got = speculative_generate(target, draft, PROMPTS, k=K, method=method, warping=w,
                                   max_new_tokens=N, seeds=SEEDS, runtime=path)
        for b, ref in enumerate(want):
            rounds = len(got.accepted[b])
            assert list(ref.taus[:rounds]) == got.accepted[b], (path, b)   # every accept/reject decision
            assert list(ref.tokens[:N]) == got.tokens[b], (path, b)        # every drawn token
            assert set(ref.drafted[:rounds]) == {K}


def test_a_wrong_noise_layout_is_caught(models):
    """Negative control: the reference fed the verifier's uniforms first (u rows rolled by
    k + 1) disagrees with the engine, so the parity above is a real check of the layout."""
    target, draft = models
    w = Warp(1.0, top_k=20)
    got = speculative_generate(target, draft, PROMPTS, k=K, method="chain", warping=w,
                               max_new_tokens=N, seeds=SEEDS)
    bad = []
    for prompt, seed in zip(PROMPTS, SEEDS):
        u = np.roll(np.random.default_rng(seed).random((N + K, 2 * K + 1)), K + 1, axis=1)
        bad.append(list(speculative_decode(CacheFree(target, w), CacheFree(draft, w), prompt, N + K, K,
                                           verifier="chain", u=u).tokens[:N]))
    assert bad != got.tokens
