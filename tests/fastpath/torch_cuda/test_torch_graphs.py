"""The CUDA-graph path (fastpath/torch_cuda/graphs.py): the static-buffer logic in
eager mode on the CPU (the same code as a capture, without the capture), and a real
capture / replay on a GPU (@pytest.mark.cuda, skipped without CUDA). Rule: a replay
equals a direct call of the verifier on the same inputs, field for field (exact: the
same code on the same device)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from specoracle.fastpath.torch_cuda import categorical as tc
from specoracle.fastpath.torch_cuda import gaussian as tg
from specoracle.fastpath.torch_cuda.graphs import GraphedVerifier, graphed
from specoracle.reference.types import InvalidInput

from _torch_helpers import random_batch


def _batch(seed, b=1, k=8, v=61, device="cpu"):
    p, q, draft, u, n = random_batch(np.random.default_rng(seed), b, k, v, ragged=True)
    draft = np.where(draft < 0, 0, draft)
    return [torch.tensor(x, device=device) for x in (p.astype(np.float32), q.astype(np.float32), draft, u, n)]


def _same(a, b):
    for name in ("n_accepted", "tokens", "bonus", "status", "fallbacks"):
        assert torch.equal(getattr(a, name).cpu(), getattr(b, name).cpu()), name


@pytest.mark.parametrize("fn", [tc.verify_chain, tc.verify_block], ids=["chain", "block"])
def test_eager_replay_equals_direct_calls(fn):
    p, q, d, u, n = _batch(0)
    g = GraphedVerifier(fn, (p, q, d, u), {"num_draft": n}, mode="eager")
    assert g.mode == "eager" and set(g.inputs) == {"p", "q", "draft", "u", "num_draft"}
    out0 = g.out
    for seed in range(1, 6):
        x = _batch(seed)
        got = g(*x[:4], num_draft=x[4])
        assert got is out0                                     # static output, overwritten in place
        _same(got, fn(*x[:4], num_draft=x[4], raise_on_error=False))
    assert g.replays == 5


def test_static_inputs_are_copies_and_shapes_are_fixed():
    p, q, d, u, n = _batch(0)
    g = graphed(tc.verify_chain, p, q, d, u, num_draft=n, mode="eager")
    want = tc.verify_chain(p, q, d, u, num_draft=n, raise_on_error=False)
    p.mul_(0).add_(1.0 / p.shape[-1])                           # the caller's tensor changes afterwards
    _same(g.replay(), want)                                     # ... the static buffer does not
    with pytest.raises(InvalidInput, match="captured shape"):
        g(*_batch(1, b=2)[:4], num_draft=n)
    with pytest.raises(InvalidInput, match="captured shape"):
        g(p.double(), q, d, u)
    with pytest.raises(InvalidInput, match="fixed at capture"):
        g(p, q, d, u, temperature=torch.tensor(1.0))


def test_engine_style_in_place_and_status_on_device():
    """Write the next round's inputs into g.inputs and replay: no copies, and a bad row
    comes back as a status (the capture cannot raise)."""
    p, q, d, u, n = _batch(0)
    g = graphed(tc.verify_chain, p, q, d, u, num_draft=n, mode="eager")
    x = _batch(3)
    for name, t in zip(("p", "q", "draft", "u", "num_draft"), x):
        g.inputs[name].copy_(t)
    g.inputs["draft"][0, 0] = 10 ** 6
    g.inputs["num_draft"][0] = 8
    out = g.replay()
    assert int(out.status[0]) != 0
    with pytest.raises(InvalidInput):
        out.raise_on_error()


def test_gaussian_block_eager():
    rng = np.random.default_rng(4)
    b, big_l, d = 1, 4, 32
    m_q = torch.tensor(rng.standard_normal((b, big_l, d)))
    args = (m_q + 0.3, m_q, torch.tensor(1.0, dtype=torch.float64), torch.tensor(rng.standard_normal((b, big_l, d))),
            torch.tensor(rng.random((b, big_l))), torch.tensor(rng.random(b)), torch.tensor(rng.standard_normal((b, d))))
    g = GraphedVerifier(tg.verify_gaussian_block, args, mode="eager")
    z2 = torch.tensor(rng.standard_normal((b, big_l, d)))
    new = (args[0], args[1], args[2], z2) + args[4:]
    got, want = g(*new), tg.verify_gaussian_block(*new)
    assert torch.equal(got.n_accepted, want.n_accepted)
    assert torch.allclose(got.states, want.states, equal_nan=True)


@pytest.mark.cuda
@pytest.mark.parametrize("impl", ["torch", "triton"])
def test_cuda_capture_and_replay(impl):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the capture needs a GPU (the eager tests above cover the buffer logic)")
    if impl == "triton":
        pytest.importorskip("triton")
    x = _batch(0, k=8, v=32000, device="cuda")
    g = GraphedVerifier(tc.verify_chain, tuple(x[:4]), {"num_draft": x[4], "impl": impl})
    assert g.mode == "cuda" and g.graph is not None
    for seed in range(1, 4):
        y = _batch(seed, k=8, v=32000, device="cuda")
        got = g(*y[:4], num_draft=y[4])
        torch.cuda.synchronize()
        _same(got, tc.verify_chain(*y[:4], num_draft=y[4], raise_on_error=False, impl=impl))
