"""The Triton kernels compiled and run on a GPU (@pytest.mark.cuda: skipped without CUDA).
docs/PERFORMANCE.md (CUDA section, row 10) lists this file among the GPU runs that remain.

Rules as the interpreter suite (tests/TOLERANCES.md): decisions_with_margin, 1e-12 for
float64, 32 * eps(float32) for float32-computed kernels (bf16 / fp16 inputs)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from specoracle.fastpath.torch_cuda import categorical as tc

from _torch_helpers import compare_batch, random_batch

pytestmark = pytest.mark.cuda


def _needs_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("triton")


@pytest.mark.parametrize("v", [151936, 128256, 32000, 50257, 65521])
@pytest.mark.parametrize("kind", ["chain", "block"])
def test_logits_kernel_real_vocab(kind, v):
    """bf16 logits, temperature 0.8 + top-p 0.95 (+ top-k 50 on odd V), 8 sequences, K = 4."""
    _needs_cuda()
    from specoracle.reference.processing import process_logits as ref_process
    rng = np.random.default_rng(v)
    b, k = 8, 4
    pl = torch.tensor(rng.normal(size=(b, k + 1, v)) * 3).bfloat16()
    ql = (pl[:, :k].float() + torch.tensor(rng.normal(size=(b, k, v))).float()).bfloat16()
    top_k = 50 if v % 2 else None
    kn = dict(temperature=0.8, top_p=0.95, top_k=top_k)
    p = np.stack([ref_process(pl[i].double().numpy(), **kn) for i in range(b)])
    q = np.stack([ref_process(ql[i].double().numpy(), **kn) for i in range(b)])
    c = np.cumsum(q, -1)
    draft = np.argmax(c > rng.random((b, k))[..., None] * c[..., -1:], -1)
    u = rng.random((b, k + 1))
    n = np.full(b, k)
    out = getattr(tc, f"verify_{kind}_logits")(pl.cuda(), ql.cuda(), torch.tensor(draft).cuda(),
                                               torch.tensor(u).cuda(), impl="triton", **kn)
    compare_batch(out, p, q, draft, u, n, kind, tol=32 * 2.0 ** -23)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("kind", ["chain", "block"])
def test_probability_kernels_low_precision(kind, dtype):
    _needs_cuda()
    rng = np.random.default_rng(5)
    p, q, draft, u, n = random_batch(rng, 64, 4, 32000, alpha=1.0)
    dt = getattr(torch, dtype)
    pt, qt = torch.tensor(p).to(dt), torch.tensor(q).to(dt)
    p_dt, q_dt = pt.double().numpy(), qt.double().numpy()
    p_dt /= p_dt.sum(-1, keepdims=True)
    q_dt /= q_dt.sum(-1, keepdims=True)
    out = getattr(tc, f"verify_{kind}")(torch.tensor(p_dt).to(dt).cuda(), torch.tensor(q_dt).to(dt).cuda(),
                                        torch.tensor(draft).cuda(), torch.tensor(u).cuda(),
                                        num_draft=torch.tensor(n).cuda(), impl="triton", raise_on_error=False)
    eps = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7, "float32": 2.0 ** -23}[dtype]
    compare_batch(out, p_dt, q_dt, draft, u, n, kind, tol=32 * eps)
