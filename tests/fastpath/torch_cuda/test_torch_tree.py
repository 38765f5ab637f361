"""Torch twins of tree verification (fastpath/torch_cuda/tree.py) against reference/tree.py,
rule exact (float64). The registry's parity ops tree_mss / tree_deterministic run the full
case set; this file checks torch tensors in and out, ragged batches and statuses."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from specoracle.fastpath.ops.tree import tree_batch
from specoracle.fastpath.torch_cuda import tree as tt
from specoracle.fastpath.types import (STATUS_BAD_TREE, STATUS_DRAFT_OUT_OF_RANGE, STATUS_DRAFT_ZERO_Q,
                                       STATUS_NONFINITE, STATUS_OK)
from specoracle.reference import tree as ref
from specoracle.reference.types import InvalidInput


def _depth(par):
    d = []
    for i, x in enumerate(par):
        d.append(1 if x < 0 else d[int(x)] + 1)
    return max(d, default=0)


def _ref_row(kind, x, b):
    n = int(x["num_nodes"][b])
    p, toks, par = x["p"][b, : n + 1], x["tokens"][b, :n], x["parents"][b, :n]
    if kind == "mss":
        return ref.verify_mss_tree(p, x["q"][b, : n + 1], toks, par, x["u"][b, : n + 1])
    return ref.verify_tree_deterministic(p, toks, par, x["u"][b, : _depth(par) + 1])


@pytest.mark.parametrize("kind", ["mss", "det"])
@pytest.mark.parametrize("v,n,shape", [(2, 1, "random"), (13, 6, "chain"), (13, 6, "star"), (31, 9, "random")])
def test_matches_reference(kind, v, n, shape):
    rng = np.random.default_rng(v * 100 + n)
    x = tree_batch(rng, 24, n, v, kind, shape, ragged=True)
    fn = tt.verify_mss_tree if kind == "mss" else tt.verify_tree_deterministic
    args = [x["p"], x["q"]] if kind == "mss" else [x["p"]]
    args += [x["tokens"], x["parents"], x["u"]]
    out = fn(*[torch.tensor(a) for a in args], num_nodes=torch.tensor(x["num_nodes"]))
    assert isinstance(out.n_accepted, torch.Tensor)
    for b in range(24):
        assert out.verdict(b) == _ref_row(kind, x, b), b


@pytest.mark.parametrize("kind", ["mss", "det"])
def test_status(kind):
    rng = np.random.default_rng(4)
    x = tree_batch(rng, 6, 4, 9, kind)
    x["parents"][1, 2] = 2
    x["tokens"][2, 0] = 9
    x["p"][4, 0, :] = np.nan
    want = [STATUS_OK, STATUS_BAD_TREE, STATUS_DRAFT_OUT_OF_RANGE, STATUS_OK, STATUS_NONFINITE, STATUS_OK]
    if kind == "mss":
        t, row = int(x["tokens"][3, 1]), int(x["parents"][3, 1]) + 1
        x["q"][3, row, t] = 0.0
        x["q"][3, row, (t + 1) % 9] += 1.0
        x["q"][3, row] /= x["q"][3, row].sum()
        want[3] = STATUS_DRAFT_ZERO_Q
    fn = tt.verify_mss_tree if kind == "mss" else tt.verify_tree_deterministic
    args = ([x["p"], x["q"]] if kind == "mss" else [x["p"]]) + [x["tokens"], x["parents"], x["u"]]
    out = fn(*args, raise_on_error=False)
    assert list(out.status) == want
    with pytest.raises(InvalidInput, match=r"tokens\[1\]"):
        fn(*args)
