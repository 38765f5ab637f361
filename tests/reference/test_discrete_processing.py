"""processing.py's documented tie rules and warp order (temperature -> top-k -> top-p
-> min-p -> renormalise), on hand-computed rows, and its invariants on any row
(hypothesis, tests/strategies.py)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from strategies import logits, warps
from specoracle.reference.processing import process_logits, softmax


def test_temperature_zero_is_one_hot_on_the_first_maximum():
    assert process_logits([1.0, 3.0, 3.0, 0.0], temperature=0).tolist() == [0, 1, 0, 0]
    rows = process_logits([[5.0, 5.0], [-1.0, 2.0]], temperature=0)
    assert rows.tolist() == [[1, 0], [0, 1]]


def test_temperature_scales_logits():
    x = np.array([0.0, 1.0, 3.0])
    assert process_logits(x, temperature=0.5) == pytest.approx(softmax(x / 0.5), abs=1e-15)
    assert process_logits(x) == pytest.approx(softmax(x), abs=1e-15)


def test_top_k_ties_keep_the_lower_ids():
    out = process_logits([2.0, 1.0, 1.0, 1.0], top_k=2)
    e = np.exp([2.0, 1.0])
    assert out == pytest.approx([e[0] / e.sum(), e[1] / e.sum(), 0, 0], abs=1e-15)
    assert process_logits([1.0, 1.0, 1.0], top_k=1).tolist() == [1, 0, 0]
    assert process_logits([0.0, 0.5, 0.5], top_k=1).tolist() == [0, 1, 0]
    assert process_logits([0.0, 1.0], top_k=5) == pytest.approx(softmax(np.array([0.0, 1.0])))


def test_top_p_keeps_the_smallest_prefix_reaching_top_p():
    logits = np.log([0.5, 0.3, 0.2])
    assert process_logits(logits, top_p=0.4) == pytest.approx([1, 0, 0])
    assert process_logits(logits, top_p=0.75) == pytest.approx([0.625, 0.375, 0])
    assert process_logits(logits, top_p=1.0) == pytest.approx([0.5, 0.3, 0.2])
    # ties in probability: the lower token id comes first in the order
    assert process_logits(np.zeros(4), top_p=0.5) == pytest.approx([0.5, 0.5, 0, 0])
    assert process_logits(np.zeros(4), top_p=0.25) == pytest.approx([1, 0, 0, 0])   # mass == top_p
    assert process_logits(np.zeros(4), top_p=0.3) == pytest.approx([0.5, 0.5, 0, 0])


def test_min_p_and_warp_order():
    logits = np.log([0.5, 0.3, 0.15, 0.05])
    assert process_logits(logits, min_p=0.5) == pytest.approx([0.625, 0.375, 0, 0])
    # top-k before top-p: top_k=3 renormalises to (0.5, 0.3, 0.15)/0.95, then top_p=0.8
    # needs 0.5/0.95 + 0.3/0.95 = 0.842 >= 0.8 -> two tokens kept
    assert process_logits(logits, top_k=3, top_p=0.8) == pytest.approx([0.625, 0.375, 0, 0])
    # temperature before top-k: a high temperature does not change which tokens survive
    out = process_logits(logits, temperature=10.0, top_k=2)
    assert (out > 0).tolist() == [True, True, False, False]
    assert out.sum() == pytest.approx(1.0, abs=1e-15)


def test_rows_sum_to_one_and_neg_inf_is_zero():
    out = process_logits([[0.0, -np.inf, 1.0], [3.0, 2.0, 1.0]], top_p=0.9)
    assert out.sum(axis=1) == pytest.approx([1, 1], abs=1e-15)
    assert out[0, 1] == 0


# ---------------------------------------------------------------- properties (hypothesis)


@given(logits(), warps())
def test_warped_row_is_a_distribution_on_a_prefix_of_the_logit_order(row, kw):
    """Any warp maps a logits row to a probability vector (>= 0, sums to 1 within 1e-12,
    0 on -inf logits) whose support is a prefix of the documented order (logit
    descending, lower id first on ties) of at most top_k tokens; on the support the
    ratios are those of exp(logit / T) (the renormalisations rescale, never reshape)."""
    out = process_logits(row, **kw)
    assert np.all(out >= 0) and out.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(out[np.isneginf(row)] == 0)
    order = np.argsort(-row, kind="stable")
    size = int(np.count_nonzero(out))
    assert set(np.flatnonzero(out)) == set(order[:size].tolist())
    if kw["top_k"] is not None:
        assert size <= kw["top_k"]
    if kw["temperature"] == 0:
        assert size == 1 and out[int(np.argmax(row))] == 1.0
    else:
        kept = np.flatnonzero(out)
        expected = softmax(row[kept] / kw["temperature"])
        assert out[kept] == pytest.approx(expected, rel=1e-9, abs=1e-300)
