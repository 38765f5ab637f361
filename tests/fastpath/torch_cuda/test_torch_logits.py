"""Logits entry points and the torch twin of reference/processing.py
(fastpath/torch_cuda/processing.py, categorical.verify_*_logits).

Rules: tests/TOLERANCES.md, section "torch / Triton fast path".
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from specoracle.fastpath.torch_cuda import categorical as tc
from specoracle.fastpath.torch_cuda.processing import process_logits
from specoracle.fastpath.types import STATUS_DRAFT_ZERO_Q, STATUS_NONFINITE, STATUS_OK
from specoracle.reference import categorical as ref
from specoracle.reference.processing import process_logits as ref_process
from specoracle.reference.types import InvalidInput

from _torch_helpers import compare_batch

KNOBS = [dict(temperature=1.0), dict(temperature=0.7, top_k=5), dict(temperature=1.3, top_p=0.8),
         dict(temperature=0.9, top_k=20, top_p=0.9, min_p=0.05), dict(temperature=0.0),
         dict(temperature=2.0, min_p=0.2), dict(temperature=0.5, top_k=1), dict(top_p=1.0)]


@pytest.mark.parametrize("knobs", KNOBS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_processing_matches_reference(knobs):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 37)) * 2
    x[:, 5] = x[:, 9] = x.max() + 1          # ties at the top: lower id first
    x[2, :] = 0.0                            # a fully tied row
    x[3, 30:] = -np.inf                      # -inf logits
    got = process_logits(torch.tensor(x), **knobs).numpy()
    want = ref_process(x, **knobs)
    assert np.array_equal(got > 0, want > 0)  # the same kept tokens (tie rules)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_processing_per_row_knobs_and_bad_rows():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(3, 11))
    got = process_logits(torch.tensor(x), temperature=torch.tensor([0.0, 1.0, 0.5]),
                         top_k=torch.tensor([1, 3, 11])).numpy()
    for i, (t, k) in enumerate([(0.0, 1), (1.0, 3), (0.5, 11)]):
        np.testing.assert_allclose(got[i], ref_process(x[i], temperature=t, top_k=k), atol=1e-15)
    x[1, 4] = np.nan
    assert torch.isnan(process_logits(torch.tensor(x))[1]).all()
    with pytest.raises(InvalidInput, match="top_p"):
        process_logits(torch.tensor(x), top_p=0.0)


def _logit_batch(rng, b, k, v, scale=3.0):
    pl = rng.normal(size=(b, k + 1, v)) * scale
    ql = pl[:, :k] + rng.normal(size=(b, k, v))
    return pl, ql


def _drafts(rng, q_probs, n):
    b, k, v = q_probs.shape
    c = np.cumsum(q_probs, -1)
    d = np.argmax(c > rng.random((b, k))[..., None] * c[..., -1:], -1)
    for i in range(b):
        d[i, n[i]:] = -1
    return d


@pytest.mark.parametrize("kind", ["chain", "block"])
@pytest.mark.parametrize("knobs", KNOBS[:5] + [dict(temperature=np.array([0.0, 1.0, 0.7, 0.0, 1.2, 0.9]))],
                         ids=["T1", "topk", "topp", "all", "greedy", "mixed-T"])
def test_logits_entry_points_match_reference(kind, knobs):
    """verify_*_logits == reference verify_* on reference process_logits rows (float64)."""
    rng = np.random.default_rng(31)
    b, k, v = 6, 3, 41
    pl, ql = _logit_batch(rng, b, k, v)
    temps = np.broadcast_to(np.asarray(knobs.get("temperature", 1.0)), (b,))
    other = {a: c for a, c in knobs.items() if a != "temperature"}
    p = np.stack([ref_process(pl[i], temperature=float(temps[i]), **other) for i in range(b)])
    q = np.stack([ref_process(ql[i], temperature=float(temps[i]), **other) for i in range(b)])
    n = rng.integers(0, k + 1, size=b)
    draft = _drafts(rng, q, n)
    u = rng.random((b, k + 1))
    out = getattr(tc, f"verify_{kind}_logits")(torch.tensor(pl), torch.tensor(ql), torch.tensor(draft),
                                               torch.tensor(u), num_draft=torch.tensor(n), row_chunk=4,
                                               **knobs)
    # float64 softmax sums in a different order than numpy: decisions within 1e-12 excluded
    compare_batch(out, p, q, draft, u, n, kind, tol=1e-12)


def test_logits_bf16_and_status():
    rng = np.random.default_rng(2)
    b, k, v = 8, 3, 1000
    pl, ql = _logit_batch(rng, b, k, v)
    plb, qlb = torch.tensor(pl).bfloat16(), torch.tensor(ql).bfloat16()
    p = ref_process(plb.double().numpy(), temperature=0.8, top_p=0.95)
    q = ref_process(qlb.double().numpy(), temperature=0.8, top_p=0.95)
    n = np.full(b, k)
    draft = _drafts(rng, q, n)
    u = rng.random((b, k + 1))
    out = tc.verify_chain_logits(plb, qlb, torch.tensor(draft), torch.tensor(u), temperature=0.8, top_p=0.95)
    compare_batch(out, p, q, draft, u, n, "chain", tol=32 * 2.0 ** -23)
    # a NaN logit in a read row, and a greedy row whose draft is not the draft argmax
    plb[1, 0, 3] = float("nan")
    temp = torch.full((b,), 0.8)
    temp[2] = 0.0
    draft[2, 0] = (int(qlb[2, 0].float().argmax()) + 1) % v
    out = tc.verify_chain_logits(plb, qlb, torch.tensor(draft), torch.tensor(u), temperature=temp,
                                 top_p=0.95, raise_on_error=False)
    assert int(out.status[1]) == STATUS_NONFINITE and int(out.status[2]) == STATUS_DRAFT_ZERO_Q
    assert int(out.status[0]) == STATUS_OK


def test_greedy_rows_mixed_with_random_rows():
    """A T = 0 row whose draft is the draft model's argmax: verify_chain_logits equals
    greedy verification on that row, whatever its neighbours' temperatures."""
    rng = np.random.default_rng(12)
    b, k, v = 4, 4, 30
    pl, ql = _logit_batch(rng, b, k, v, scale=1.0)
    ql[0] = pl[0, :k]                                   # draft agrees with target on row 0
    ql[0, 2, 7] = ql[0, 2].max() + 5                    # ... except at position 2
    draft = ql.argmax(-1)
    temp = np.array([0.0, 1.0, 0.0, 0.6])
    out = tc.verify_chain_logits(torch.tensor(pl), torch.tensor(ql), torch.tensor(draft),
                                 torch.tensor(rng.random((b, k + 1))), temperature=torch.tensor(temp))
    for i in (0, 2):
        assert out.verdict(i) == ref.verify_greedy(pl[i], draft[i])
    assert int(out.n_accepted[0]) == 2


def test_logits_never_materialise_full_probabilities(monkeypatch):
    """The chain entry point warps at most row_chunk rows at a time."""
    from specoracle.fastpath.torch_cuda import processing
    seen = []
    real = processing.probs_rows

    def spy(z, *a, **kw):
        seen.append(z.shape[0])
        return real(z, *a, **kw)
    monkeypatch.setattr(tc, "probs_rows", spy)
    rng = np.random.default_rng(0)
    pl, ql = _logit_batch(rng, 16, 4, 50)
    tc.verify_chain_logits(torch.tensor(pl), torch.tensor(ql), torch.tensor(ql.argmax(-1)),
                           torch.tensor(rng.random((16, 5))), row_chunk=8)
    assert seen and max(seen) <= 8
    # drafted entries: 16*4 rows of each side, then one row pair per sequence (2 * 16 rows)
    assert sum(seen) == 2 * 16 * 4 + 2 * 16


@pytest.mark.parametrize("wrong", ["top_k+1", "top_p+0.05", "ignore_min_p", "temperature*1.1"])
def test_logits_rule_rejects_wrong_warps(wrong):
    """Negative controls for the registry's logits rule (fastpath/ops/torch_only.py,
    the rule the Triton kernel is held to): the verifier run with a warp off by one token
    (top-k), by 5 % of mass (top-p), without min-p, or at a 10 % higher temperature must
    fail it on 256 rows (V = 37, K = 3), while the right warp passes."""
    import dataclasses

    from specoracle.fastpath import registry
    from specoracle.fastpath.ops import parity
    from specoracle.fastpath.registry import Case
    from specoracle.fastpath.ops import torch_only as po
    op = registry.get("chain_logits")
    x = po.logits_batch(np.random.default_rng(99), 256, 3, 37, ragged=False)
    x["temperature"] = np.full(256, 1.0)
    x["top_k"], x["top_p"], x["min_p"] = np.full(256, 6), np.full(256, 0.9), np.full(256, 0.3)
    x["draft"] = _drafts(np.random.default_rng(1), ref_process(x["q_logits"], temperature=1.0, top_k=6, top_p=0.9,
                                                               min_p=0.3), np.full(256, 3))
    case = Case("negative control", x)
    assert parity.run_op("torch", op, cases=[case]).status == "pass"

    def call(fn, c):
        y = dict(c.inputs)
        if wrong == "top_k+1":
            y["top_k"] = y["top_k"] + 1
        elif wrong == "top_p+0.05":
            y["top_p"] = y["top_p"] + 0.05
        elif wrong == "ignore_min_p":
            y["min_p"] = np.zeros(256)
        else:
            y["temperature"] = y["temperature"] * 1.1
        return op.call(fn, Case(c.name, y))
    res = parity.run_op("torch", dataclasses.replace(op, call=call), cases=[case])
    assert res.status == "fail", res.detail
