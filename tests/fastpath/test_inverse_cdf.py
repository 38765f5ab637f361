"""The inverse-CDF draw has one home per backend, each equal to the oracle's one-row
primitive ``reference.categorical.sample_categorical`` draw by draw on the same uniforms:
reference ``sample_categorical_rows`` (the proofs' and parity factories' draws), numba
``sample_categorical_rows`` (the engine's host round), torch ``_common.sample_rows`` (the
torch verifiers' final draws and the engine's device round). Exact rule (float64 and float32
weights, zero weights, uniforms at 0 and at 1 - 2^-53)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from specoracle.fastpath.numba_cpu.categorical import sample_categorical_rows as numba_rows
from specoracle.fastpath.torch_cuda._common import sample_rows as torch_rows
from specoracle.reference.categorical import sample_categorical, sample_categorical_rows
from specoracle.reference.types import InvalidInput


def _rows(rng, n, v, dtype):
    w = rng.random((n, v)) ** 3
    w[rng.random((n, v)) < 0.4] = 0.0                 # zero weights: never drawn
    w[np.arange(n), rng.integers(0, v, n)] += 1e-3     # every row has mass
    u = rng.random(n)
    u[:3] = [0.0, 1 - 2.0 ** -53, 0.5]
    return w.astype(dtype), u


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("v", [1, 7, 300])
def test_every_home_equals_the_one_row_oracle(dtype, v):
    rng = np.random.default_rng(v)
    w, u = _rows(rng, 200, v, dtype)
    want = np.array([sample_categorical(w[b], u[b])[0] for b in range(len(u))])
    ids, rounding = sample_categorical_rows(w, u)
    assert np.array_equal(ids, want) and not rounding.any()
    assert (w[np.arange(len(u)), ids] > 0).all()
    tid, trnd = torch_rows(torch.from_numpy(w), torch.from_numpy(u))
    assert np.array_equal(tid.numpy(), want) and not trnd.any()
    if dtype == np.float64:  # numba promotes float32 weights on read (its documented rule)
        nid, nrnd = numba_rows(w, u)
        assert np.array_equal(nid, want) and not nrnd.any()


def test_rows_accept_any_leading_shape_and_one_row():
    rng = np.random.default_rng(1)
    w, u = _rows(rng, 12, 5, np.float64)
    ids, _ = sample_categorical_rows(w.reshape(3, 4, 5), u.reshape(3, 4))
    assert np.array_equal(ids.reshape(-1), sample_categorical_rows(w, u)[0])
    assert int(sample_categorical_rows(w[0], u[0])[0]) == sample_categorical(w[0], u[0])[0]


@pytest.mark.parametrize("bad, name", [
    (dict(w=[[0.5, -0.1]]), "weights"), (dict(w=[[0.0, 0.0]]), "weights"),
    (dict(w=[[np.nan, 1.0]]), "weights"), (dict(u=[1.0]), "u"), (dict(u=[0.1, 0.2]), "u"),
])
def test_reference_rows_reject_bad_input(bad, name):
    w = np.asarray(bad.get("w", [[0.5, 0.5]]))
    u = np.asarray(bad.get("u", [0.3]))
    with pytest.raises(InvalidInput, match=name):
        sample_categorical_rows(w, u)


def test_numba_rows_name_the_bad_row():
    with pytest.raises(InvalidInput, match="index 1|weights"):
        numba_rows(np.array([[0.5, 0.5], [0.0, 0.0]]), np.array([0.3, 0.3]))
