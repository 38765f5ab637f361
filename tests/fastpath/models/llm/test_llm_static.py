"""The static-cache decoding path (fastpath/models/llm/static.py; ``Runtime(cache="static")``):
position-indexed buffers with dummy-padded fixed-width calls give the logits of a fresh
forward, and decoding through them emits the SAME tokens as the dynamic path under the same
seeds (autoregressive; speculative chain, block, greedy; batch 1 and a ragged batch), with
only the fixed call shapes a CUDA graph needs. Tiny Llama models built from configs (no zoo);
one zoo check; the CUDA-graph capture test skips without CUDA."""
from __future__ import annotations

import pytest
import torch

from specoracle.fastpath.models.llm.engine import Runtime, autoregressive_generate, speculative_generate
from specoracle.fastpath.models.llm.processing import Warp
from specoracle.fastpath.models.llm.static import StaticKVState, StaticStep
from specoracle.reference.types import InvalidInput

from _llm_tiny import VOCAB, tiny_llama, tiny_pair_one_thread

LOGIT_ATOL = 1e-4  # tests/TOLERANCES.md, "LLM end to end" (same rule as the dynamic cache)


def _tiny(seed, hidden, layers, heads, kv_heads, attn="sdpa"):
    return tiny_llama(seed, hidden, layers, heads, kv_heads, attn)


@pytest.fixture(scope="module")
def models():
    yield from tiny_pair_one_thread()


PROMPTS = [[1, 5, 9, 2], [3], [7, 8, 9, 10, 11, 12, 4]]   # ragged, one of length 1


def _fresh(model, ids):
    with torch.inference_mode():
        return model(torch.tensor([ids])).logits[0].float()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_static_cache_logits_equal_fresh_forward(attn):
    model = _tiny(3, 64, 2, 4, 2, attn)
    st = StaticKVState(model, 3, max_len=32)
    a, b, c = [4, 5, 6], [7], [8, 9]
    lg, lens = st.feed([a, b, c])                            # prefill, width 3, dummies padded
    assert lens.tolist() == [3, 1, 2] and lg.shape == (3, 3, VOCAB)
    assert (lg[1, 0] - _fresh(model, b)[-1]).abs().max() < LOGIT_ATOL
    lg, _ = st.feed([[10, 11], [12, 13], []], width=4)      # row 2 idle: all dummies
    assert (lg[0, :2] - _fresh(model, a + [10, 11])[-2:]).abs().max() < LOGIT_ATOL
    assert (lg[1, :2] - _fresh(model, b + [12, 13])[-2:]).abs().max() < LOGIT_ATOL
    st.rollback([4, 1, 2])                                   # row 0 drops 11, row 1 drops 12, 13
    lg, _ = st.feed([[20], [21, 22], [23]], width=2)         # overwrite stale slots
    assert st.count.tolist() == [5, 3, 3]
    assert (lg[0, 0] - _fresh(model, a + [10, 20])[-1]).abs().max() < LOGIT_ATOL
    assert (lg[1, 1] - _fresh(model, b + [21, 22])[-1]).abs().max() < LOGIT_ATOL
    assert (lg[2, 0] - _fresh(model, c + [23])[-1]).abs().max() < LOGIT_ATOL


def test_static_tokens_equal_dynamic(models):
    target, draft = models
    for w in (Warp(0.0), Warp(1.0), Warp(0.8, top_p=0.95)):
        kw = dict(warping=w, max_new_tokens=12, seeds=[11, 12, 13])
        a = autoregressive_generate(target, PROMPTS, **kw)
        b = autoregressive_generate(target, PROMPTS, runtime=Runtime(cache="static"), **kw)
        assert a.tokens == b.tokens, w
        methods = ("chain", "block", "greedy") if w.greedy else ("chain", "block")
        for method in methods:
            for prompts in (PROMPTS, PROMPTS[:1]):            # ragged batch 3 and batch 1
                kw["seeds"] = [11, 12, 13][: len(prompts)]
                a = speculative_generate(target, draft, prompts, k=3, method=method, **kw)
                b = speculative_generate(target, draft, prompts, k=3, method=method,
                                         runtime=Runtime(cache="static"), **kw)
                assert a.tokens == b.tokens and a.accepted == b.accepted, (w, method, len(prompts))
                assert (a.target_calls, a.draft_calls) == (b.target_calls - 1, b.draft_calls - 1)
    flat = [n for row in a.accepted for n in row]
    assert len(set(flat)) > 1  # acceptance was ragged: rollbacks of different lengths happened


def test_static_calls_have_fixed_shapes(models, monkeypatch):
    target, draft = models
    shapes = {id(target): [], id(draft): []}
    orig = StaticStep.__call__

    def spy(self, ids, pos, slot):
        shapes[id(self.model)].append(tuple(ids.shape))
        return orig(self, ids, pos, slot)

    monkeypatch.setattr(StaticStep, "__call__", spy)
    k = 4
    speculative_generate(target, draft, PROMPTS, k=k, method="block", warping=Warp(1.0),
                         max_new_tokens=20, seeds=[1, 2, 3], runtime=Runtime(cache="static"))
    t_shapes, d_shapes = shapes[id(target)], shapes[id(draft)]
    assert t_shapes[0] == d_shapes[0] == (3, 6)              # the prefill: longest prompt - 1
    assert set(t_shapes[1:]) == {(3, k + 1)}
    assert set(d_shapes[1:]) == {(3, 2), (3, 1)}
    assert d_shapes[1::k] == [(3, 2)] * len(t_shapes[1:])    # width 2 opens every round
    shapes[id(target)].clear()
    autoregressive_generate(target, PROMPTS, warping=Warp(1.0), max_new_tokens=5,
                            runtime=Runtime(cache="static"))
    assert set(shapes[id(target)][1:]) == {(3, 1)}


def test_static_bad_input(models):
    target, _ = models
    st = StaticKVState(target, 1, max_len=4)
    with pytest.raises(InvalidInput, match="width"):
        st.feed([[1, 2, 3]], width=2)
    st.feed([[1, 2, 3]])
    with pytest.raises(InvalidInput, match="static cache holds 4"):
        st.feed([[4, 5]])
    with pytest.raises(InvalidInput, match="CUDA"):
        StaticKVState(target, 1, max_len=8, graph_widths=(1,))


def test_pooled_states_are_reused_and_reset(models):
    from specoracle.fastpath.models.llm.static import POOL_ATTR, pooled_state
    target, _ = models
    a = pooled_state(target, 2, 100)
    a.feed([[1, 2], [3]])
    b = pooled_state(target, 2, 200)            # same 256-token bucket: the same state, emptied
    assert b is a and b.max_len == 256 and b.count.tolist() == [0, 0]
    assert pooled_state(target, 3, 100) is not a
    lg, _ = b.feed([[4], []])                   # stale slots from the earlier use are invisible
    assert (lg[0, 0] - _fresh(target, [4])[-1]).abs().max() < LOGIT_ATOL
    target.__dict__.pop(POOL_ATTR)


@pytest.mark.zoo
def test_static_zoo_pair_equals_dynamic():
    from _llm_zoo import zoo_pair
    target, draft, tok = zoo_pair()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        prompts = [tok("def f(").input_ids, tok("KING HENRY").input_ids]
        for method, w in (("block", Warp(1.0, top_p=0.95)), ("greedy", Warp(0.0))):
            kw = dict(k=4, method=method, warping=w, max_new_tokens=24, seeds=[5, 6])
            a = speculative_generate(target, draft, prompts, **kw)
            b = speculative_generate(target, draft, prompts, runtime=Runtime(cache="static"), **kw)
            assert a.tokens == b.tokens and a.accepted == b.accepted, method
    finally:
        torch.set_num_threads(threads)


@pytest.mark.cuda
def test_cuda_graphs_replay_equals_eager_static():
    """On CUDA: graphs captured for the target (width k+1) and the draft (widths 1, 2) replay to
    the same tokens as the uncaptured static path and the dynamic path (greedy, and sampling
    with seeds; fp32)."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)")
    target, draft = (_tiny(s, h, l, n, kv).cuda() for s, h, l, n, kv in ((1, 64, 2, 4, 2), (2, 32, 1, 2, 1)))
    for method, w in (("greedy", Warp(0.0)), ("block", Warp(1.0)), ("chain", Warp(1.0, top_p=0.95))):
        kw = dict(k=3, method=method, warping=w, max_new_tokens=16, seeds=[1, 2, 3])
        dyn = speculative_generate(target, draft, PROMPTS, **kw)
        eager = speculative_generate(target, draft, PROMPTS, runtime=Runtime(cache="static"), **kw)
        graphs = Runtime(cache="static", cuda_graphs=True)
        graph = speculative_generate(target, draft, PROMPTS, runtime=graphs, **kw)
        again = speculative_generate(target, draft, PROMPTS, runtime=graphs, **kw)
        assert graph.tokens == eager.tokens == dyn.tokens == again.tokens, method  # pooled replay
    ar = autoregressive_generate(target, PROMPTS, warping=Warp(0.0), max_new_tokens=16,
                                 runtime=Runtime(cache="static", cuda_graphs=True))
    assert ar.tokens == autoregressive_generate(target, PROMPTS, warping=Warp(0.0),
                                                max_new_tokens=16).tokens


@pytest.mark.zoo
def test_generate_cli_static_cache(capsys):
    from _llm_zoo import require_zoo
    require_zoo("zoo:code-target", "zoo:code-draft")
    from specoracle.cli import main
    args = ["generate", "--target", "zoo:code-target", "--draft", "zoo:code-draft", "--prompt",
            "def ", "--max-new-tokens", "10", "--k", "3", "--verify", "chain", "--seed", "2",
            "--threads", "1"]
    assert main(args + ["--static-cache"]) == 0
    static = capsys.readouterr().out
    assert "static cache" in static and "speed-up:" in static
    assert main(args + ["--no-baseline"]) == 0
    dynamic = capsys.readouterr().out
    assert static.split("-" * 60)[0] == dynamic.split("-" * 60)[0]  # the same streamed text
    assert main(args + ["--cuda-graphs"]) == 2                      # needs --static-cache


@pytest.mark.slow
def test_torch_compile_static_step_same_tokens(models):
    """torch.compile of the fixed-shape step (CPU inductor: needs a C++ compiler; ~3 min of
    compilation on the 2-core machine) emits the same tokens as the uncompiled static path."""
    import shutil
    if shutil.which("g++") is None and shutil.which("cc") is None:
        pytest.skip("torch.compile on the CPU needs a C++ compiler")
    target, draft = models
    kw = dict(k=3, method="block", warping=Warp(1.0), max_new_tokens=12, seeds=[1, 2, 3])
    a = speculative_generate(target, draft, PROMPTS, runtime=Runtime(cache="static"), **kw)
    b = speculative_generate(target, draft, PROMPTS, runtime=Runtime(cache="static", compile_mode="default"),
                             **kw)
    assert a.tokens == b.tokens and a.accepted == b.accepted
