"""The on-device speculative round (fastpath/models/llm/device_round.py;
``Runtime(round_impl="device")``): warps, draft draws and verification as torch tensors, fed by the
engine's numpy noise, give IDENTICAL tokens and acceptance counts to the host round in
float64 (chain, block, greedy; T = 0, T = 1, top-p; batch 1 and a ragged batch; dynamic and
static cache; tiny models and, marked zoo, the zoo pair), read the device once per round,
and never touch the host round's numpy draws or numba verifiers."""
from __future__ import annotations

import sys

import pytest
import torch

import specoracle.fastpath.models.llm.engine as engine
from specoracle.fastpath.models.llm.engine import Runtime, autoregressive_generate, speculative_generate
from specoracle.fastpath.models.llm.faults import faulty_generate
from specoracle.fastpath.models.llm.processing import Warp

from _llm_tiny import VOCAB, tiny_pair_one_thread
from _llm_zoo import zoo_pair_one_thread

PROMPTS = [[1, 5, 9, 2], [3], [7, 8, 9, 10, 11, 12, 4]]   # ragged, one of length 1
SEEDS = [11, 12, 13]
WARPS = (Warp(0.0), Warp(1.0), Warp(0.8, top_p=0.95))
DEVICE = Runtime(round_impl="device")


@pytest.fixture(scope="module")
def models():
    yield from tiny_pair_one_thread()


def _methods(w):
    return ("chain", "block", "greedy") if w.greedy else ("chain", "block")


def _same(a, b):
    return (a.tokens == b.tokens and a.accepted == b.accepted
            and (a.target_calls, a.draft_calls) == (b.target_calls, b.draft_calls))


@pytest.mark.parametrize("cache", ["dynamic", "static"])
def test_device_round_equals_host_round(models, cache):
    target, draft = models
    flat = []
    for w in WARPS:
        for method in _methods(w):
            for prompts in (PROMPTS, PROMPTS[:1]):              # ragged batch 3 and batch 1
                kw = dict(k=3, method=method, warping=w, max_new_tokens=14, seeds=SEEDS[: len(prompts)])
                host = speculative_generate(target, draft, prompts, runtime=Runtime(cache=cache), **kw)
                dev = speculative_generate(target, draft, prompts,
                                           runtime=Runtime(cache=cache, round_impl="device"), **kw)
                assert _same(host, dev), (w, method, len(prompts))
                flat += [n for row in dev.accepted for n in row]
    assert len(set(flat)) > 2  # ragged acceptance: rollbacks of several lengths were exercised


@pytest.mark.parametrize("cache", ["dynamic", "static"])
def test_device_autoregressive_equals_host(models, cache):
    target, _ = models
    for w in WARPS:
        kw = dict(warping=w, max_new_tokens=10, seeds=SEEDS)
        dev = Runtime(cache=cache, round_impl="device")
        assert (autoregressive_generate(target, PROMPTS, runtime=Runtime(cache=cache), **kw).tokens
                == autoregressive_generate(target, PROMPTS, runtime=dev, **kw).tokens), w


def test_device_round_eos_and_fault_parity(models):
    """EOS cuts and the q_before_warp negative control behave the same on both rounds."""
    target, draft = models
    kw = dict(k=3, warping=Warp(1.0), max_new_tokens=20, seeds=SEEDS)
    host = speculative_generate(target, draft, PROMPTS, **kw)
    eos = host.tokens[0][3]                                     # a token that occurs: cuts row 0 early
    a = speculative_generate(target, draft, PROMPTS, eos_id=eos, **kw)
    b = speculative_generate(target, draft, PROMPTS, eos_id=eos, runtime=DEVICE, **kw)
    assert _same(a, b) and len(a.tokens[0]) <= 4 and a.tokens[0][-1] == eos
    hot = dict(kw, warping=Warp(2.0))                           # T != 1: warped q != softmax
    a = faulty_generate("q_before_warp", target, draft, PROMPTS, **hot)
    b = faulty_generate("q_before_warp", target, draft, PROMPTS, runtime=DEVICE, **hot)
    assert _same(a, b)
    assert a.tokens != speculative_generate(target, draft, PROMPTS, **hot).tokens  # the fault bites


def test_device_round_stays_off_the_host(models, monkeypatch):
    """No numpy draw, no host verifier, no logits copy; static cache: exactly one tensor
    -> host copy (.cpu()) per round."""
    target, draft = models

    def boom(*a, **k):
        raise AssertionError("host-round code called by the device round")

    for name in ("_host", "verify", "sample_rows", "_host_round"):
        monkeypatch.setattr(engine, name, boom)
    calls = []
    real_cpu = torch.Tensor.cpu

    def counting_cpu(self, *a, **k):  # the round's copies (the static cache's own counts are host-side)
        if "static.py" not in sys._getframe(1).f_code.co_filename:
            calls.append(tuple(self.shape))
        return real_cpu(self, *a, **k)

    monkeypatch.setattr(torch.Tensor, "cpu", counting_cpu)
    static_device = Runtime(cache="static", round_impl="device")
    res = speculative_generate(target, draft, PROMPTS, k=3, method="block", warping=Warp(1.0),
                               max_new_tokens=12, seeds=SEEDS, runtime=static_device)
    rounds = res.target_calls - 1                               # minus the prefill
    assert len(calls) == rounds and all(s == (3, 3 + 3) for s in calls)
    calls.clear()
    res = autoregressive_generate(target, PROMPTS, warping=Warp(1.0), max_new_tokens=6, seeds=SEEDS,
                                  runtime=static_device)
    assert len(calls) == res.target_calls - 1 and all(s == (3,) for s in calls)


def test_float32_device_round(models):
    """float32 warps/verifier: greedy is identical (argmax of the same float32 logits); at T = 1
    the run is deterministic and, with these seeds, every decision agrees with the float64 host
    round (a flip is allowed only within 32 * 2^-23 of a boundary: decisions_with_margin)."""
    target, draft = models
    cases = ((Warp(0.0), "greedy"), (Warp(0.0), "chain"), (Warp(1.0), "chain"), (Warp(1.0), "block"))
    float32 = Runtime(round_impl="device", round_dtype="float32")
    for w, method in cases:
        kw = dict(k=3, method=method, warping=w, max_new_tokens=12, seeds=SEEDS)
        host = speculative_generate(target, draft, PROMPTS, **kw)
        f32 = speculative_generate(target, draft, PROMPTS, runtime=float32, **kw)
        again = speculative_generate(target, draft, PROMPTS, runtime=float32, **kw)
        assert _same(f32, again)
        assert _same(host, f32), (w, method)
        assert all(0 <= t < VOCAB for row in f32.tokens for t in row)


def test_draw_is_the_reference_inverse_cdf():
    """device_round.draw (the torch home of the draw) == the host round's draw (float64) and
    the one-row oracle on float32 weights, on rows with zero weights (top-k style), ties and
    u near 0 / 1."""
    import numpy as np

    from specoracle.fastpath.models.llm.device_round import draw
    from specoracle.fastpath.models.llm.verify import sample_rows
    from specoracle.reference.categorical import sample_categorical
    rng = np.random.default_rng(7)
    w = rng.random((64, 50)) * (rng.random((64, 50)) < 0.3)           # ~70 % zeros
    w[:, 0] = 0.0
    w[::4, 10:20] = 0.05                                               # ties
    w /= w.sum(axis=1, keepdims=True)
    u = rng.random(64)
    u[:3] = [0.0, 1 - 2**-53, 0.5]
    got = draw(torch.from_numpy(w), torch.from_numpy(u), greedy=False).numpy()
    assert (got == sample_rows(w, u)).all()
    assert (w[np.arange(64), got] > 0).all()
    w32 = torch.from_numpy(w).float()                                  # the oracle on float32 weights
    want32 = [sample_categorical(w32[b].numpy(), u[b])[0] for b in range(64)]
    assert draw(w32, torch.from_numpy(u), False).tolist() == want32
    assert torch.equal(draw(torch.from_numpy(w), torch.from_numpy(u), True), torch.from_numpy(w).argmax(-1))


@pytest.fixture(scope="module")
def zoo():
    yield from zoo_pair_one_thread()


@pytest.mark.zoo
def test_zoo_device_round_equals_host_round(zoo):
    target, draft, tok = zoo
    prompts = [tok("def f(x):").input_ids[:6], tok("import os").input_ids[:3]]
    for w in WARPS:
        for method in _methods(w):
            for ps in (prompts, prompts[:1]):
                kw = dict(k=4, method=method, warping=w, max_new_tokens=16, seeds=[5, 6][: len(ps)])
                host = speculative_generate(target, draft, ps, **kw)
                dev = speculative_generate(target, draft, ps, runtime=DEVICE, **kw)
                assert _same(host, dev), (w, method, len(ps))
    kw = dict(k=4, method="block", warping=Warp(1.0), max_new_tokens=16, seeds=[5, 6])
    assert _same(speculative_generate(target, draft, prompts, runtime=Runtime(cache="static"), **kw),
                 speculative_generate(target, draft, prompts,
                                      runtime=Runtime(cache="static", round_impl="device"), **kw))


@pytest.mark.zoo
def test_generate_cli_device_round(zoo, capsys):
    from specoracle.cli import main
    assert main(["generate", "--target", "zoo:code-target", "--draft", "zoo:code-draft",
                 "--prompt", "def ", "--max-new-tokens", "10", "--k", "3", "--verify", "chain",
                 "--seed", "3", "--threads", "1", "--round", "device", "--static-cache",
                 "--no-baseline"]) == 0
    assert "device round" in capsys.readouterr().out
