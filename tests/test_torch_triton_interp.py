"""The Triton kernels (fastpath/torch_cuda/triton_kernels.py) in Triton's interpreter.

Runs only with TRITON_INTERPRET=1 set before triton is imported: tests/test_torch_triton.py
launches this file in a subprocess with that variable (a plain run skips it). The
kernels sum tiles with parallel scans, so float64 uses decisions_with_margin with
tol 1e-12 and float32/bf16 tol 32 eps (tests/TOLERANCES.md).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1",
                                reason="run by tests/test_torch_triton.py with TRITON_INTERPRET=1")

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from specoracle.fastpath.torch_cuda import categorical as tc  # noqa: E402
from specoracle.fastpath.torch_cuda._common import prepare  # noqa: E402
from specoracle.fastpath.types import (PAD_ID, STATUS_BAD_LENGTH, STATUS_DRAFT_OUT_OF_RANGE,  # noqa: E402
                                       STATUS_DRAFT_ZERO_Q, STATUS_NONFINITE, STATUS_OK)

from _torch_helpers import compare_batch, random_batch  # noqa: E402


def run(kind, p, q, draft, u, n, block_v=16):
    from specoracle.fastpath.torch_cuda import triton_kernels as tk
    args = prepare(torch.as_tensor(p), torch.as_tensor(q), torch.as_tensor(draft), torch.as_tensor(u),
                   torch.as_tensor(n))
    return getattr(tk, kind)(*args, block_v=block_v)


@pytest.mark.parametrize("kind", ["chain", "block"])
@pytest.mark.parametrize("v,k,block_v", [(1, 1, 16), (97, 4, 16), (1031, 3, 256)])
def test_float64(kind, v, k, block_v):
    rng = np.random.default_rng(v * 10 + k)
    p, q, draft, u, n = random_batch(rng, 8, k, v)
    out = run(kind, p, q, draft, u, n, block_v)
    compare_batch(out, p, q, draft, u, n, kind, tol=1e-12)


@pytest.mark.parametrize("kind", ["chain", "block"])
def test_impl_keyword_and_real_vocab(kind):
    """impl='triton' through the public function, V = 50257 (not a multiple of 1024)."""
    rng = np.random.default_rng(3)
    p, q, draft, u, n = random_batch(rng, 2, 2, 50257, alpha=0.05)
    p32, q32 = p.astype(np.float32), q.astype(np.float32)
    out = getattr(tc, f"verify_{kind}")(torch.tensor(p32), torch.tensor(q32), torch.tensor(draft),
                                        torch.tensor(u), num_draft=torch.tensor(n), impl="triton")
    compare_batch(out, p32.astype(np.float64), q32.astype(np.float64), draft, u, n, kind, tol=32 * 2.0 ** -23)


@pytest.mark.parametrize("dtype", ["bfloat16", pytest.param("float16", marks=pytest.mark.slow)])
def test_low_precision(dtype):
    rng = np.random.default_rng(5)
    p, q, draft, u, n = random_batch(rng, 6, 3, 61, alpha=1.0, ragged=False)
    dt = getattr(torch, dtype)
    pt, qt = torch.tensor(p).to(dt), torch.tensor(q).to(dt)
    p_dt, q_dt = pt.double().numpy(), qt.double().numpy()
    p_dt /= p_dt.sum(-1, keepdims=True)
    q_dt /= q_dt.sum(-1, keepdims=True)
    for kind in ("chain", "block"):
        out = run(kind, torch.tensor(p_dt).to(dt), torch.tensor(q_dt).to(dt), draft, u, n, block_v=32)
        tol = 32 * (2.0 ** -7 if dtype == "bfloat16" else 2.0 ** -10)
        compare_batch(out, p_dt, q_dt, draft, u, n, kind, tol=tol)


@pytest.mark.parametrize("kind", ["chain", "block"])
def test_status(kind):
    rng = np.random.default_rng(11)
    p, q, draft, u, n = random_batch(rng, 6, 3, 13, ragged=False)
    draft[1, 0] = 10 ** 12
    d = int(draft[2, 1])
    q[2, 1, d] = 0.0
    q[2, 1, (d + 1) % 13] += 1.0
    q[2, 1] /= q[2, 1].sum()
    p[3, 0, draft[3, 0]] = np.nan
    n[4] = -1
    out = run(kind, p, q, draft, u, n)
    assert list(out.status) == [STATUS_OK, STATUS_DRAFT_OUT_OF_RANGE, STATUS_DRAFT_ZERO_Q,
                                STATUS_NONFINITE, STATUS_BAD_LENGTH, STATUS_OK]
    assert (out.tokens[1] == PAD_ID).all()


def test_philox_matches_triton_randint4x():
    """rng.philox4x32 == Triton's tl.randint4x (Philox4x32-10, counter (offset, 0, 0, 0),
    key (seed_lo, seed_hi))."""
    import triton
    import triton.language as tl

    from specoracle.fastpath.torch_cuda.rng import philox4x32

    @triton.jit
    def kern(out_ptr, seed, BLOCK: tl.constexpr):
        offs = tl.arange(0, BLOCK)
        a, b, c, d = tl.randint4x(seed, offs)
        tl.store(out_ptr + offs * 4 + 0, a)
        tl.store(out_ptr + offs * 4 + 1, b)
        tl.store(out_ptr + offs * 4 + 2, c)
        tl.store(out_ptr + offs * 4 + 3, d)

    seed = 0x1234_5678_9ABC
    out = torch.zeros(16 * 4, dtype=torch.int32)
    kern[(1,)](out, seed, BLOCK=16)
    got = (out.to(torch.int64) & 0xFFFFFFFF).reshape(16, 4)
    offs = torch.arange(16, dtype=torch.int64)
    z = torch.zeros_like(offs)
    want = philox4x32(offs, z, z, z, z + (seed & 0xFFFFFFFF), z + (seed >> 32))
    assert torch.equal(got, torch.stack(want, dim=1))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_chain_from_logits(dtype):
    """Streaming log-sum-exp kernel vs the oracle on process_logits rows (per-row T > 0),
    V = 97 over tiles of 16, ragged drafts, -inf logits."""
    from specoracle.fastpath.torch_cuda import triton_kernels as tk
    from specoracle.reference.processing import process_logits as ref_process
    rng = np.random.default_rng(23)
    b, k, v = 6, 3, 97
    pl = rng.normal(size=(b, k + 1, v)) * 3
    ql = pl[:, :k] + rng.normal(size=(b, k, v))
    pl[:, :, 90:] = -np.inf
    ql[:, :, 95:] = -np.inf
    temps = np.array([1.0, 0.7, 1.3, 0.5, 2.0, 1.0])
    p = np.stack([ref_process(pl[i], temperature=temps[i]) for i in range(b)])
    q = np.stack([ref_process(ql[i], temperature=temps[i]) for i in range(b)])
    n = rng.integers(0, k + 1, size=b)
    c = np.cumsum(q, -1)
    draft = np.argmax(c > rng.random((b, k))[..., None] * c[..., -1:], -1)
    for i in range(b):
        draft[i, n[i]:] = PAD_ID
    u = rng.random((b, k + 1))
    dt = getattr(torch, dtype)
    args = prepare(torch.tensor(pl).to(dt), torch.tensor(ql).to(dt), torch.tensor(draft), torch.tensor(u),
                   torch.tensor(n))
    out = tk.chain_logits(*args[:5], torch.tensor(temps), False, block_v=16)
    p_dt, q_dt = p, q
    if dtype == "float32":
        p_dt = ref_process(torch.tensor(pl).float().double().numpy() / temps[:, None, None], temperature=1.0)
        q_dt = ref_process(torch.tensor(ql).float().double().numpy() / temps[:, None, None], temperature=1.0)
    compare_batch(out, p_dt, q_dt, draft, u, n, "chain", tol=1e-12 if dtype == "float64" else 32 * 2.0 ** -23)
    # the public entry point routes here with impl="triton" (float64), and refuses top-p
    res = tc.verify_chain_logits(torch.tensor(pl), torch.tensor(ql), torch.tensor(draft), torch.tensor(u),
                                 temperature=torch.tensor(temps), num_draft=torch.tensor(n), impl="triton")
    compare_batch(res, p, q, draft, u, n, "chain", tol=1e-12)
    with pytest.raises(ValueError, match="top-k"):
        tc.verify_chain_logits(torch.tensor(pl), torch.tensor(ql), torch.tensor(draft), torch.tensor(u),
                               top_p=0.9, num_draft=torch.tensor(n), impl="triton")
