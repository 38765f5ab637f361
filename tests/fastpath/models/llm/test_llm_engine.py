"""The decoding engine on the zoo pair: KV-cache bookkeeping, greedy = autoregressive
greedy, determinism, backends agree, ragged batches, EOS and max length."""
from __future__ import annotations

import pytest
import torch

from specoracle.fastpath.models.llm.engine import Runtime, autoregressive_generate, speculative_generate
from specoracle.fastpath.models.llm.kv import KVState
from specoracle.fastpath.models.llm.processing import Warp
from specoracle.reference.types import InvalidInput

from _llm_zoo import zoo_pair

pytestmark = pytest.mark.zoo

LOGIT_ATOL = 1e-4  # tests/TOLERANCES.md, "LLM end-to-end"


@pytest.fixture(scope="module")
def pair():
    got = zoo_pair()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls: one thread is faster and immune to oversubscription
    yield got
    torch.set_num_threads(threads)


def _fresh_logits(model, ids):
    with torch.inference_mode():
        return model(torch.tensor([ids])).logits[0, -1].float()


def test_kv_rollback_with_holes_equals_fresh_forward(pair):
    target, _, tok = pair
    a, b = tok("def foo(x):\n    return").input_ids, tok("import os\n").input_ids
    st = KVState(target, 2)
    st.feed([a, b])
    st.feed([[5, 6, 7], [8]])
    st.rollback([len(a) + 1, len(b) + 1])   # row 0 keeps 5 (6, 7 become holes), row 1 keeps 8
    logits, lens = st.feed([[9, 10], [11, 12, 13]])
    assert lens.tolist() == [2, 3]
    assert st.count.tolist() == [len(a) + 3, len(b) + 4]
    assert (logits[0, 1] - _fresh_logits(target, a + [5, 9, 10])).abs().max() < LOGIT_ATOL
    assert (logits[1, 2] - _fresh_logits(target, b + [8, 11, 12, 13])).abs().max() < LOGIT_ATOL
    st.rollback([len(a), len(b)])  # batch-wide crop: trailing slots unused by every row go
    assert st.count.tolist() == [len(a), len(b)] and st.slots == max(len(a), len(b))


def test_greedy_speculative_equals_greedy_autoregressive(pair):
    target, draft, tok = pair
    prompts = [tok("def ").input_ids, tok("class Foo:\n").input_ids, tok("import").input_ids]
    ar = autoregressive_generate(target, prompts, warping=Warp(0.0), max_new_tokens=24)
    for method, k in (("greedy", 4), ("chain", 3), ("block", 2)):
        sp = speculative_generate(target, draft, prompts, k=k, method=method, warping=Warp(0.0),
                                  max_new_tokens=24)
        assert sp.tokens == ar.tokens, method
        assert all(len(t) == 24 for t in sp.tokens)
        assert sp.target_calls < ar.target_calls  # speculation saved target calls


def test_deterministic_under_seed_and_backends_agree(pair):
    target, draft, tok = pair
    prompts = [tok("def ").input_ids] * 2
    kw = dict(k=3, warping=Warp(1.0, top_p=0.95), max_new_tokens=12, seeds=[7, 8])
    for method in ("chain", "block"):
        a = speculative_generate(target, draft, prompts, method=method, runtime=Runtime(backend="numba"), **kw)
        b = speculative_generate(target, draft, prompts, method=method, runtime=Runtime(backend="numba"), **kw)
        c = speculative_generate(target, draft, prompts, method=method, runtime=Runtime(backend="reference"),
                                 **kw)
        assert a.tokens == b.tokens == c.tokens and a.accepted == c.accepted
        d = speculative_generate(target, draft, prompts, method=method, **{**kw, "seeds": [1, 2]})
        assert d.tokens != a.tokens  # the seed matters


def test_ragged_batch_rows_equal_their_solo_runs_greedy(pair):
    target, draft, tok = pair
    prompts = [tok("def f(").input_ids, tok("KING HENRY").input_ids, tok("x = [").input_ids]
    batch = speculative_generate(target, draft, prompts, k=4, method="greedy", warping=Warp(0.0),
                                 max_new_tokens=16)
    flat = [a for row in batch.accepted for a in row]
    assert len(set(flat)) > 1  # acceptance was ragged across rows and rounds
    for b, pr in enumerate(prompts):
        solo = speculative_generate(target, draft, [pr], k=4, method="greedy", warping=Warp(0.0),
                                    max_new_tokens=16)
        assert solo.tokens[0] == batch.tokens[b]


def test_eos_and_max_length(pair):
    target, draft, tok = pair
    prompts = [tok("def ").input_ids]
    ref = speculative_generate(target, draft, prompts, k=4, method="chain", warping=Warp(1.0),
                               max_new_tokens=7, seeds=3)
    assert len(ref.tokens[0]) == 7
    eos = ref.tokens[0][2]  # pretend the third token is the end of sequence
    cut = speculative_generate(target, draft, prompts, k=4, method="chain", warping=Warp(1.0),
                               max_new_tokens=7, seeds=3, eos_id=eos)
    first = ref.tokens[0].index(eos)
    assert cut.tokens[0] == ref.tokens[0][: first + 1]
    none = speculative_generate(target, draft, prompts, max_new_tokens=0)
    assert none.tokens == [[]]


def test_statistics(pair):
    target, draft, tok = pair
    r = speculative_generate(target, draft, [tok("def ").input_ids] * 2, k=4, method="chain",
                             warping=Warp(1.0), max_new_tokens=30, seeds=0)
    acc = r.position_acceptance()
    assert len(acc) == 4 and all(a >= b for a, b in zip(acc, acc[1:]))
    assert 1.0 <= r.tau() <= 5.0
    rounds = max(len(a) for a in r.accepted)
    assert r.target_calls == rounds and r.draft_calls == 4 * rounds  # one target call per round
    for row, toks in zip(r.accepted, r.tokens):
        assert sum(a + 1 for a in row) >= len(toks) == 30


def test_bad_input(pair):
    target, draft, tok = pair
    with pytest.raises(InvalidInput, match="prompts"):
        speculative_generate(target, draft, [[]])
    with pytest.raises(InvalidInput, match="prompts"):
        speculative_generate(target, draft, [[10 ** 6]])
    with pytest.raises(InvalidInput, match="greedy"):
        speculative_generate(target, draft, [[1]], method="greedy", warping=Warp(1.0))
    with pytest.raises(InvalidInput, match="seeds"):
        speculative_generate(target, draft, [[1], [2]], seeds=[1])


def test_generate_cli_streams_and_reports(pair, capsys):
    from specoracle.cli import main
    assert main(["generate", "--target", "zoo:code-target", "--draft", "zoo:code-draft",
                 "--prompt", "def ", "--max-new-tokens", "12", "--k", "3", "--verify", "block",
                 "--temperature", "1", "--top-p", "0.9", "--seed", "5", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("def ")
    for needle in ("tau (mean tokens per target call", "per-position acceptance", "speed-up:"):
        assert needle in out
    assert main(["generate", "--target", "zoo:code-target", "--draft", "/nonexistent",
                 "--prompt", "x"]) == 2
