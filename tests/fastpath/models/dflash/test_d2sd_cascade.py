"""Cascade attention for the D2SD tree pass (fastpath/models/dflash/cascade.py): dense attention to the
shared prefix + masked attention to the tree, merged by log-sum-exp, equals plain masked attention
(float64: 1e-12; float32: 1e-5, tests/TOLERANCES.md "cascade attention"), also with an empty
prefix and for a query row that sees no tree key; plugged into a Hugging Face Llama it gives the
same tree-pass logits and the same D2SD output as SDPA."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from specoracle.fastpath.models.dflash.cascade import (cascade_attention, hf_cascade_attention,
                                                masked_attention, use_cascade)
from specoracle.fastpath.models.dflash.d2sd import generate_d2sd, node_depths, tree_attention
from specoracle.fastpath.models.llm.kv import forward_cached, new_cache

from _dflash_zoo import tiny_drafter, tiny_target

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py
PARENTS = [-1, 0, 1, -1, 3, 0, 5, 6]


def _tree_allow(parents):
    """bool [N+1, N+1]: query j sees the anchor (column 0), its ancestors and itself."""
    n = len(parents)
    allow = torch.zeros(n + 1, n + 1, dtype=torch.bool)
    allow[:, 0] = True
    for j in range(n):
        node = j
        while node >= 0:
            allow[j + 1, node + 1] = True
            node = parents[node]
    return allow


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("prefix", [0, 1, 37])
def test_cascade_equals_masked_attention(dtype, tol, prefix):
    g = torch.Generator().manual_seed(prefix)
    nq = len(PARENTS) + 1
    q = torch.randn(2, 3, nq, 16, generator=g, dtype=dtype) * 2
    kp, vp = (torch.randn(2, 3, prefix, 16, generator=g, dtype=dtype) for _ in range(2))
    kt, vt = (torch.randn(2, 3, nq, 16, generator=g, dtype=dtype) for _ in range(2))
    tree = _tree_allow(PARENTS)
    full = torch.cat([torch.ones(nq, prefix, dtype=torch.bool), tree], 1)
    want = masked_attention(q, torch.cat([kp, kt], 2), torch.cat([vp, vt], 2), full)
    got = cascade_attention(q, kp, vp, kt, vt, tree)
    assert (got - want).abs().max() < tol
    # the same as torch's own SDPA
    sdpa = torch.nn.functional.scaled_dot_product_attention(q, torch.cat([kp, kt], 2),
                                                            torch.cat([vp, vt], 2), attn_mask=full)
    assert (got - sdpa).abs().max() < tol * 10


def test_row_without_tree_keys_is_not_nan():
    g = torch.Generator().manual_seed(0)
    q, kp, vp, kt, vt = (torch.randn(1, 1, 3, 8, generator=g, dtype=torch.float64) for _ in range(5))
    tree = torch.tensor([[True, False, False], [False, False, False], [True, True, True]])
    got = cascade_attention(q, kp, vp, kt, vt, tree)
    want = masked_attention(q, torch.cat([kp, kt], 2), torch.cat([vp, vt], 2),
                            torch.cat([torch.ones(3, 3, dtype=torch.bool), tree], 1))
    assert torch.isfinite(got).all() and (got - want).abs().max() < 1e-12


@torch.no_grad()
def test_hf_tree_pass_and_d2sd_equal_sdpa(monkeypatch):
    import specoracle.fastpath.models.dflash.cascade as cascade
    calls = []
    real = cascade.cascade_attention
    monkeypatch.setattr(cascade, "cascade_attention", lambda *a: calls.append(1) or real(*a))
    t, d = tiny_target(), tiny_drafter()
    ids = torch.tensor([[1, 5, 2, 7, 3, 3, 9, 4, 4, 2]])
    start = ids.shape[1]
    depth = node_depths(PARENTS)
    pos = torch.tensor([[start] + [start + x for x in depth]])
    x = torch.tensor([[3, 5, 6, 7, 8, 9, 10, 11, 1]])

    def tree_pass():
        c = new_cache(t)
        forward_cached(t, c, input_ids=ids)
        return forward_cached(t, c, input_ids=x, position_ids=pos,
                              attention_mask=tree_attention(PARENTS, start)).logits

    plain = tree_pass()
    runs = {}
    prev = use_cascade(t, True)
    try:
        casc = tree_pass()
        runs["cascade"] = [generate_d2sd(t, d, None, [1, 2, 3], 6, T, 7).tokens for T in (0.0, 1.0)]
    finally:
        t.set_attn_implementation(prev)
    runs["sdpa"] = [generate_d2sd(t, d, None, [1, 2, 3], 6, T, 7).tokens for T in (0.0, 1.0)]
    assert (casc - plain).abs().max() < 1e-5
    assert runs["cascade"] == runs["sdpa"]
    assert len(calls) >= 4          # 4 layers of the tree pass went through the cascade path


def test_hf_function_falls_back_without_a_tree_mask():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 4, 8, generator=g) for _ in range(3))

    class _M:
        num_key_value_groups = 1

    out, _ = hf_cascade_attention(_M(), q, k, v, None)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert (out.transpose(1, 2) - want).abs().max() < 1e-6
    assert np.isfinite(out.numpy()).all()
