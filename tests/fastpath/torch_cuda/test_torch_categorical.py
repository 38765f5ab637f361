"""The torch twins of reference/categorical.py (fastpath/torch_cuda/categorical.py),
on the CPU: exact parity in float64, decisions_with_margin in float32 / bf16 /
fp16, per-row status codes, real vocabulary sizes, logits entry points.

Rules: tests/TOLERANCES.md, section "torch / Triton fast path".
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from specoracle.fastpath.torch_cuda import categorical as tc
from specoracle.fastpath.types import (FALLBACK_RESIDUAL_ZERO_MASS, PAD_ID, STATUS_BAD_LENGTH,
                                       STATUS_DRAFT_OUT_OF_RANGE, STATUS_DRAFT_ZERO_Q,
                                       STATUS_NONFINITE, STATUS_OK)
from specoracle.reference import categorical as ref
from specoracle.reference.types import InvalidInput

from _torch_helpers import compare_batch, random_batch, row

SIZES = [(1, 1), (2, 1), (3, 0), (3, 4), (97, 4), (1025, 3)]


@pytest.mark.parametrize("kind", ["chain", "block"])
@pytest.mark.parametrize("v,k", SIZES)
def test_float64_exact(kind, v, k):
    rng = np.random.default_rng(1000 * v + k)
    p, q, draft, u, n = random_batch(rng, 24, k, v)
    fn = getattr(tc, f"verify_{kind}")
    out = fn(p, q, draft, u, num_draft=n)                 # numpy in -> numpy out
    compare_batch(out, p, q, draft, u, n, kind)
    t = fn(torch.tensor(p), torch.tensor(q), torch.tensor(draft), torch.tensor(u),
           num_draft=torch.tensor(n))                       # torch in -> torch out
    assert isinstance(t.n_accepted, torch.Tensor)
    compare_batch(t, p, q, draft, u, n, kind)


@pytest.mark.parametrize("kind", ["chain", "block"])
def test_p_equals_q_accepts_everything(kind):
    rng = np.random.default_rng(7)
    p, q, draft, u, n = random_batch(rng, 16, 5, 50, ragged=False, mix=0.0)
    out = getattr(tc, f"verify_{kind}")(p, q, draft, u)
    assert (out.n_accepted == 5).all() and out.bonus.all()


def test_greedy_exact_and_ties():
    rng = np.random.default_rng(3)
    b, k, v = 32, 4, 6
    p = rng.integers(0, 3, size=(b, k + 1, v)).astype(np.float64)   # many ties
    am = np.stack([[ref.argmax_first(r) for r in pr] for pr in p])
    draft = np.where(rng.random((b, k)) < 0.8, am[:, :k], (am[:, :k] + 1) % v)
    n = rng.integers(0, k + 1, size=b)
    out = tc.verify_greedy(p, draft, num_draft=n)
    for i in range(b):
        assert out.verdict(i) == ref.verify_greedy(p[i, : n[i] + 1], draft[i, : n[i]])


def _bad_batch():
    rng = np.random.default_rng(11)
    p, q, draft, u, n = random_batch(rng, 8, 3, 13, ragged=False)
    draft[1, 0] = 13                          # out of range
    draft[2, 2] = -(2 ** 40)                  # far out of range: must not be read
    d = int(draft[3, 1])
    q[3, 1, d] = 0.0                          # drafted token with q = 0
    q[3, 1, (d + 1) % 13] += 1.0
    q[3, 1] /= q[3, 1].sum()
    p[4, 0, draft[4, 0]] = np.nan             # NaN in an entry that is read
    n[5] = 7                                  # bad length
    return p, q, draft, u, n


@pytest.mark.parametrize("kind", ["chain", "block"])
def test_status_codes(kind):
    p, q, draft, u, n = _bad_batch()
    fn = getattr(tc, f"verify_{kind}")
    out = fn(p, q, draft, u, num_draft=n, raise_on_error=False)
    want = [STATUS_OK, STATUS_DRAFT_OUT_OF_RANGE, STATUS_DRAFT_OUT_OF_RANGE, STATUS_DRAFT_ZERO_Q,
            STATUS_NONFINITE, STATUS_BAD_LENGTH, STATUS_OK, STATUS_OK]
    assert list(out.status) == want
    for b in (1, 2, 3, 4, 5):
        assert out.n_accepted[b] == 0 and (out.tokens[b] == PAD_ID).all() and not out.bonus[b]
    with pytest.raises(InvalidInput, match=r"draft\[1\]"):
        fn(p, q, draft, u, num_draft=n)
    # good rows are unaffected by their bad neighbours
    n_ok = np.where(n > 3, 3, n)
    for b in (0, 6, 7):
        assert out.verdict(b) == getattr(ref, f"verify_{kind}")(*row(p, q, draft, u, n_ok, b))


def test_nan_in_unread_row_is_not_flagged_by_chain():
    """Chain reads the drafted entries and one row pair only: NaN elsewhere is not seen."""
    rng = np.random.default_rng(5)
    p, q, draft, u, n = random_batch(rng, 4, 3, 9, ragged=False, mix=0.0)
    u[:] = 0.0                                 # accept all -> bonus row p[:, 3] is read
    p[np.arange(4), 1, (draft[:, 1] + 1) % 9] = np.nan   # not a drafted entry, not the row pair
    out = tc.verify_chain(p, q, draft, u, raise_on_error=False)
    assert (out.status == STATUS_OK).all() and (out.n_accepted == 3).all()
    out = tc.verify_block(p, q, draft, u, raise_on_error=False)   # block reads every row
    assert (out.status == STATUS_NONFINITE).all()


def test_zero_mass_fallback_counted():
    p = np.full((1, 2, 4), 0.25)
    q = np.full((1, 1, 4), 0.25)
    q[0, 0, 1] += 4 * 2.0 ** -54
    u = np.array([[1 - 2.0 ** -53, 0.6]])
    out = tc.verify_chain(p, q, np.array([[1]]), u)
    want = ref.verify_chain(p[0], q[0], [1], u[0])
    assert want.fallbacks == ("residual_zero_mass",)
    assert out.verdict(0) == want and out.fallbacks[0] & FALLBACK_RESIDUAL_ZERO_MASS


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 32 * 2.0 ** -23), (torch.bfloat16, 32 * 2.0 ** -7),
                                       (torch.float16, 32 * 2.0 ** -10)])
@pytest.mark.parametrize("kind", ["chain", "block"])
def test_low_precision_decisions_with_margin(kind, dtype, tol):
    rng = np.random.default_rng(17)
    p, q, draft, u, n = random_batch(rng, 64, 4, 211, alpha=1.0)
    pt, qt = torch.tensor(p).to(dtype), torch.tensor(q).to(dtype)
    # the oracle sees the dtype's values (upcast, renormalised in float64)
    p_dt = pt.double().numpy()
    q_dt = qt.double().numpy()
    p_dt /= p_dt.sum(-1, keepdims=True)
    q_dt /= q_dt.sum(-1, keepdims=True)
    draft = np.where((np.take_along_axis(q_dt, np.clip(draft, 0, None)[..., None], -1)[..., 0] > 0)
                     | (draft == PAD_ID), draft, PAD_ID)
    n = np.minimum(n, np.argmax(np.concatenate([draft, np.full((64, 1), PAD_ID)], 1) == PAD_ID, 1))
    out = getattr(tc, f"verify_{kind}")(torch.tensor(p_dt).to(dtype), torch.tensor(q_dt).to(dtype),
                                        torch.tensor(draft), torch.tensor(u), num_draft=torch.tensor(n))
    compare_batch(out, p_dt, q_dt, draft, u, n, kind, tol=tol)


@pytest.mark.parametrize("v", [151936, 32000, 50257, pytest.param(128256, marks=pytest.mark.slow),
                               pytest.param(65521, marks=pytest.mark.slow)])
def test_real_vocab_sizes(v):
    """Real vocabularies (and a prime), float32, B = 3, K = 2, ragged."""
    rng = np.random.default_rng(v)
    p, q, draft, u, n = random_batch(rng, 3, 2, v, alpha=0.05)
    p32, q32 = p.astype(np.float32), q.astype(np.float32)
    for kind in ("chain", "block"):
        out = getattr(tc, f"verify_{kind}")(p32, q32, draft, u, num_draft=n)
        compare_batch(out, p32.astype(np.float64), q32.astype(np.float64), draft, u, n, kind,
                      tol=32 * 2.0 ** -23)


def test_rng_wrappers_match_reference_draws():
    rng = np.random.default_rng(21)
    p, q, draft, _, _ = random_batch(rng, 5, 3, 17, ragged=False)
    out = tc.verify_chain_rng(p, q, draft, np.random.default_rng(99))
    u = np.random.default_rng(99).random((5, 4))
    assert [out.verdict(b) for b in range(5)] == [ref.verify_chain(p[b], q[b], draft[b], u[b]) for b in range(5)]
    out = tc.verify_block_rng(p, q, draft, np.random.default_rng(99))
    assert [out.verdict(b) for b in range(5)] == [ref.verify_block(p[b], q[b], draft[b], u[b]) for b in range(5)]
    g = torch.Generator().manual_seed(3)
    res = tc.verify_chain_rng(torch.tensor(p), torch.tensor(q), torch.tensor(draft), g)
    assert res.n_accepted.shape == (5,)


def test_input_errors():
    p = np.full((2, 3, 4), 0.25)
    q = np.full((2, 2, 4), 0.25)
    d = np.zeros((2, 2), np.int64)
    with pytest.raises(InvalidInput, match="q"):
        tc.verify_chain(p, q[:, :1], d, np.zeros((2, 3)))
    with pytest.raises(InvalidInput, match=r"u\[0, 1\]"):
        tc.verify_chain(p, q, d, np.array([[0.0, 1.0, 0.0], [0, 0, 0]]))
    with pytest.raises(InvalidInput, match="draft"):
        tc.verify_chain(p, q, d.astype(np.float64), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="impl"):
        tc.verify_chain(p, q, d, np.zeros((2, 3)), impl="cuda-magic")
