"""The Triton kernels (fastpath/torch_cuda/triton_*.py) in Triton's interpreter.

Runs only with TRITON_INTERPRET=1 set before triton is imported: tests/fastpath/torch_cuda/test_torch_triton.py
launches this file in a subprocess with that variable (a plain run skips it). The
kernels sum tiles with parallel scans, so float64 uses decisions_with_margin with
tol 1e-12 and float32/bf16 tol 32 eps (tests/TOLERANCES.md).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1",
                                reason="run by tests/fastpath/torch_cuda/test_torch_triton.py with TRITON_INTERPRET=1")

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


@pytest.mark.parametrize("dtype", ["float32", pytest.param("float64", marks=pytest.mark.slow)])
def test_chain_from_logits(dtype):
    """Streaming log-sum-exp kernel vs the oracle on process_logits rows (per-row T > 0),
    V = 97 over tiles of 16, ragged drafts, -inf logits."""
    from specoracle.fastpath.torch_cuda import triton_logits
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
    out = triton_logits.verify(*args[:5], torch.tensor(temps), False, False, block_v=16)
    p_dt, q_dt = p, q
    if dtype == "float32":
        p_dt = ref_process(torch.tensor(pl).float().double().numpy() / temps[:, None, None], temperature=1.0)
        q_dt = ref_process(torch.tensor(ql).float().double().numpy() / temps[:, None, None], temperature=1.0)
    compare_batch(out, p_dt, q_dt, draft, u, n, "chain", tol=1e-12 if dtype == "float64" else 32 * 2.0 ** -23)
    # the public entry point routes here with impl="triton" (float64)
    res = tc.verify_chain_logits(torch.tensor(pl), torch.tensor(ql), torch.tensor(draft), torch.tensor(u),
                                 temperature=torch.tensor(temps), num_draft=torch.tensor(n), impl="triton")
    compare_batch(res, p, q, draft, u, n, "chain", tol=1e-12)


# ---------------------------------------------------------------- warps inside the kernel


import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from specoracle.fastpath.torch_cuda.triton_warp import warp_state, warped  # noqa: E402


@triton.jit
def _warp_kernel(x_ptr, out_ptr, st_ptr, t_ptr, k_ptr, tp_ptr, mp_ptr, bad_ptr, V, NT, CD: tl.constexpr,
                 BLOCK_V: tl.constexpr, HK: tl.constexpr, HP: tl.constexpr, HM: tl.constexpr):
    """Test kernel: one row per program, its warp record, then the warped row."""
    r = tl.program_id(0).to(tl.int64)
    row = x_ptr + r * V
    st = st_ptr + r * 16
    bad = warp_state(row, V, NT, tl.load(t_ptr + r).to(CD), tl.load(k_ptr + r), tl.load(tp_ptr + r).to(CD),
                     tl.load(mp_ptr + r).to(CD), st, CD, BLOCK_V, HK, HP, HM)
    tl.store(bad_ptr + r, bad.to(tl.int32))
    for t in range(0, NT):
        offs = t * BLOCK_V + tl.arange(0, BLOCK_V)
        m = offs < V
        tl.store(out_ptr + r * V + offs, warped(row, offs, m, st, CD, HK, HP, HM), mask=m)


def warp_rows(x, temperature, top_k, top_p, min_p, block_v=16):
    """Warped probabilities [R, V] of logits rows x (a torch tensor) by the Triton device
    functions (triton_warp.warp_state + warped), and the bad-row flags."""
    r, v = x.shape
    cd = tl.float64 if x.dtype == torch.float64 else tl.float32
    odt = torch.float64 if x.dtype == torch.float64 else torch.float32
    out = torch.zeros(r, v, dtype=odt)
    st = torch.zeros(r, 16, dtype=torch.float64)
    bad = torch.zeros(r, dtype=torch.int32)
    bv = min(block_v, triton.next_power_of_2(v))
    kn = [torch.as_tensor(np.broadcast_to(np.asarray(a), (r,)).copy()).to(dt)
          for a, dt in ((temperature, odt), (top_k, torch.int64), (top_p, odt), (min_p, odt))]
    _warp_kernel[(r,)](x.contiguous(), out, st, *kn, bad, v, triton.cdiv(v, bv), CD=cd, BLOCK_V=bv,
                         HK=True, HP=True, HM=True)
    return out.double().numpy(), bad.numpy()


WARP_CASES = [dict(temperature=1.0, top_k=1, top_p=1.0, min_p=0.0),
              dict(temperature=0.7, top_k=5, top_p=1.0, min_p=0.0),
              dict(temperature=1.3, top_k=10 ** 6, top_p=0.8, min_p=0.0),
              dict(temperature=0.9, top_k=20, top_p=0.9, min_p=0.05),
              dict(temperature=0.0, top_k=3, top_p=0.5, min_p=0.2),
              dict(temperature=2.0, top_k=10 ** 6, top_p=1.0, min_p=0.2)]


@pytest.mark.parametrize("kn,dtype", [(k, "float64") for k in WARP_CASES] + [(WARP_CASES[3], "float32")]
                         + [pytest.param(k, "float32", marks=pytest.mark.slow) for k in WARP_CASES[:3] + WARP_CASES[4:]],
                         ids=lambda k: "-".join(f"{a}{b}" for a, b in k.items()) if isinstance(k, dict) else k)
def test_warp_matches_reference_processing(kn, dtype):
    """The in-kernel warp (no sort: key bisection + tie cut by id) keeps exactly the
    reference's tokens and matches its probabilities, with ties at the top (lower id
    first), a fully tied row, -inf logits and V = 37 over tiles of 16."""
    from specoracle.reference.processing import process_logits as ref_process
    rng = np.random.default_rng(7)
    x = rng.normal(size=(5, 37)) * 2
    x[0, [4, 9, 30]] = x[0].max() + 1          # a three-way tie at the top
    x[1, :] = 0.5                               # a fully tied row: top-k / top-p cut inside the ties
    x[2, 25:] = -np.inf
    x[3, ::3] = np.round(x[3, ::3])             # ties in the middle of the order
    xt = torch.tensor(x).to(getattr(torch, dtype))
    got, bad = warp_rows(xt, **kn)
    want = ref_process(xt.double().numpy(), **kn)
    assert not bad.any()
    assert np.array_equal(got > 0, want > 0), np.argwhere((got > 0) != (want > 0))
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_warp_bad_rows_and_one_token():
    x = torch.tensor([[0.0, float("nan"), 1.0], [float("inf"), 0.0, 1.0], [-float("inf")] * 3, [1.0, 2.0, 3.0]],
                     dtype=torch.float64)
    _, bad = warp_rows(x, 1.0, 2, 0.9, 0.1)
    assert list(bad) == [1, 1, 1, 0]
    got, bad = warp_rows(torch.tensor([[0.3]], dtype=torch.float64), 0.8, 1, 0.5, 0.5)
    assert not bad.any() and got.tolist() == [[1.0]]


def _op_subset(name, n_cases):
    from specoracle.fastpath import registry
    from specoracle.fastpath.ops import parity
    op = registry.get(name)
    res = parity.run_op("torch", op, cases=op.cases(True)[:n_cases])
    assert res.status == "pass", res.detail
    assert res.rows > 0 and res.excluded_fraction <= parity.MAX_EXCLUDED_FRACTION
    return res


@pytest.mark.parametrize("name,n_cases", [("chain_logits", 2), ("block_logits.bf16", 2),
                                          ("tree_deterministic.triton", 4), ("tree_mss.triton", 4),
                                          ("gaussian_block.fused", 3),
                                          ("gaussian_chain.fused", 2), ("gaussian_step.fused", 2)])
def test_registry_ops_quick(name, n_cases):
    """The registry's Triton-only ops (fastpath/ops/torch_only.py) on their first
    cases, in the interpreter (parity_impl() is "triton" here)."""
    from specoracle.fastpath.ops.torch_only import parity_impl
    assert parity_impl() == "triton"
    _op_subset(name, n_cases)


def test_logits_bad_rows_flagged():
    """NaN logit, out-of-range id, a drafted token cut by top-k, an all -inf row: each
    row gets a status, the good rows match the oracle (chain; block in the slow run)."""
    from specoracle.fastpath import registry
    from specoracle.fastpath.ops import parity
    for name in ("chain_logits",):  # block_logits' bad rows: test_registry_ops_full (slow)
        op = registry.get(name)
        bad = [c for c in op.cases(True) if "bad rows" in c.name]
        res = parity.run_op("torch", op, cases=bad)
        assert res.status == "pass", res.detail


@pytest.mark.slow
@pytest.mark.parametrize("name", ["chain_logits", "chain_logits.bf16", "block_logits", "block_logits.bf16",
                                  "tree_deterministic.triton", "tree_mss.triton", "gaussian_chain.fused",
                                  "gaussian_block.fused",
                                  "gaussian_step.fused"])
def test_registry_ops_full(name):
    _op_subset(name, None)


@pytest.mark.slow
@pytest.mark.parametrize("v", [151936, 128256, 32000, 50257, 65521])
def test_logits_real_vocab(v):
    """bf16 logits, temperature 0.8 + top-p 0.95 (+ top-k 50 on odd rows), one sequence
    per vocabulary size (not multiples of the tile), block_v 1024."""
    from specoracle.fastpath.torch_cuda import triton_logits
    from specoracle.reference.processing import process_logits as ref_process
    rng = np.random.default_rng(v)
    k = 1
    pl = torch.tensor(rng.normal(size=(1, k + 1, v)) * 3).bfloat16()
    ql = (pl[:, :k].float() + torch.tensor(rng.normal(size=(1, k, v))).float()).bfloat16()
    top_k = 50 if v % 2 else v
    p = ref_process(pl[0].double().numpy(), temperature=0.8, top_p=0.95, top_k=top_k)[None]
    q = ref_process(ql[0].double().numpy(), temperature=0.8, top_p=0.95, top_k=top_k)[None]
    c = np.cumsum(q[0, 0])
    draft = np.array([[int(np.argmax(c > rng.random() * c[-1]))]])
    u = rng.random((1, k + 1))
    n = np.array([k])
    args = prepare(pl, ql, torch.tensor(draft), torch.tensor(u), torch.tensor(n))
    out = triton_logits.verify(*args[:5], torch.tensor([0.8]), False, False, top_p=torch.tensor([0.95]),
                               top_k=torch.tensor([top_k]))
    compare_batch(out, p, q, draft, u, n, "chain", tol=32 * 2.0 ** -23)


def test_logits_fp16_inputs():
    """fp16 logits (computed in float32) through the registry's logits rule: the oracle
    runs on the fp16 values; tolerance 32 * 2^-23 as for bf16."""
    import dataclasses

    from specoracle.fastpath import registry
    from specoracle.fastpath.ops import parity
    from specoracle.fastpath.registry import Case
    from specoracle.fastpath.ops import torch_only as po
    x = po.logits_batch(np.random.default_rng(16), 6, 2, 37)
    for key in ("p_logits", "q_logits"):
        x[key] = torch.tensor(x[key]).half().double().numpy()

    def call(fn, case):
        y = case.inputs
        kn = {k: torch.tensor(y[k]) for k in ("temperature", "top_k", "top_p", "min_p")}
        return fn(torch.tensor(y["p_logits"]).half(), torch.tensor(y["q_logits"]).half(), torch.tensor(y["draft"]),
                  torch.tensor(y["u"]), num_draft=torch.tensor(y["num_draft"]), raise_on_error=False, impl="triton",
                  **kn).to_numpy()
    op = dataclasses.replace(registry.get("chain_logits.bf16"), name="chain_logits.fp16", call=call)
    res = parity.run_op("torch", op, cases=[Case("fp16 logits V=37 K=2", x)])
    assert res.status == "pass" and res.rows == 6, res.detail

