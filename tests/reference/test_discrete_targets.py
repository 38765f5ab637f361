"""reference/targets.py: the closed-form targets are well-formed probability models."""
from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pytest

from specoracle.reference import targets


def test_random_pairs_are_distributions(rng):
    for v in (1, 2, 7):
        p, q = targets.random_pair(rng, v)
        assert p.shape == q.shape == (v,)
        assert p.sum() == pytest.approx(1, abs=1e-12) and q.sum() == pytest.approx(1, abs=1e-12)
    sparse = [targets.random_pair(rng, 8, support=0.3)[0] for _ in range(20)]
    assert all((row > 0).any() for row in sparse) and any((row == 0).any() for row in sparse)
    p, q = targets.integer_pair(rng, 4, max_weight=3)
    assert sum(p) == 1 and sum(q) == 1 and all(isinstance(x, F) for x in p)
    assert list(targets.fraction_probs([1, 0, 3])) == [F(1, 4), 0, F(3, 4)]


def test_markov_model_rows_and_laws(rng):
    m = targets.MarkovModel.random(rng, 3, order=2)
    assert m.order == 2 and m.vocab_size == 3
    assert np.array_equal(m.next_probs([]), m.tables[0])
    assert np.array_equal(m.next_probs([2]), m.tables[1][2])
    assert np.array_equal(m.next_probs([0, 1, 2, 1]), m.tables[2][2, 1])   # only the last 2 tokens
    block = m.next_probs_block([0, 1], [2, 0])
    assert block.shape == (3, 3)
    for i, row in enumerate(block):
        assert np.array_equal(row, m.next_probs([0, 1, 2, 0][:2 + i]))
    law = m.sequence_law([1], 3)
    assert len(law) == 27 and sum(law.values()) == pytest.approx(1, abs=1e-12)
    assert m.sequence_prob([1], (0, 2)) == pytest.approx(m.next_probs([1])[0] * m.next_probs([1, 0])[2])
    exact = targets.MarkovModel.random(rng, 2, order=1, exact=True)
    assert sum(exact.sequence_law([0], 4).values()) == 1
    cf = targets.MarkovModel.context_free([F(1, 3), F(2, 3)])
    assert cf.sequence_prob([1, 1], (0, 1)) == F(2, 9)


def test_closed_forms_agree_on_equal_models(rng):
    """p == q: every draft is accepted, Pr(tau >= i) = 1 under both verifiers."""
    m = targets.MarkovModel.random(rng, 2, order=1, exact=True)
    assert targets.token_survival(m, m, [0], 3) == [1, 1, 1]
    assert targets.block_survival(m, m, [0], 3) == [1, 1, 1]
    assert targets.expected_tokens_per_call([1, 1, 1]) == 4
    assert targets.iid_tokens_per_call(1, 3) == 4 and targets.iid_expected_accepted(1, 3) == 3
