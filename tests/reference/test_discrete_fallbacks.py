"""The numerical fallbacks of the tree verifiers fire only in float arithmetic, are
counted in the Verdict, and give a sensible token (DESIGN.md principle 3).

A draft row may sum to 1 within validation.ROW_SUM_ATOL (1e-5), so q_j(c) can exceed
the residual target P(c) while P <= q_j everywhere: a rejection whose residual
(P - q_j)_+ has zero mass. Impossible in exact arithmetic (rows sum to exactly 1).
"""
from __future__ import annotations

import numpy as np

from specoracle.reference import tree

P = np.array([0.5, 0.5])
Q_OVER = np.array([0.500001, 0.5])   # sums to 1 + 1e-6: accepted by validation


def test_mss_zero_mass_residual_keeps_p_and_is_counted():
    v = tree.verify_mss(P, Q_OVER[None, :], [0], [0.9999999, 0.75])
    assert v.n_accepted == 0 and v.fallbacks == ("residual_zero_mass",)
    assert v.tokens == (1,)                     # drawn from the unchanged P with u = 0.75
    ok = tree.verify_mss(P, Q_OVER[None, :], [0], [0.5, 0.75])
    assert ok.n_accepted == 1 and ok.fallbacks == ()


def test_mss_tree_zero_mass_residual_is_counted():
    p = np.stack([P, P, P])
    q = np.stack([Q_OVER, P, P])
    v = tree.verify_mss_tree(p, q, [0, 0], [-1, -1], [0.9999999, 0.9999999, 0.25])
    assert v.fallbacks == ("residual_zero_mass", "residual_zero_mass")
    assert v.n_accepted == 0 and v.tokens == (0,) and not v.bonus


def test_kseq_zero_mass_residual_draws_from_p():
    v = tree.verify_kseq(P, Q_OVER, [0], [0.9999999, 0.75])
    assert v.fallbacks == ("residual_zero_mass",) and v.tokens == (1,)
    assert tree.verify_kseq(P, Q_OVER, [0], [0.1, 0.75]).fallbacks == ()


def test_exact_inputs_never_fall_back():
    from fractions import Fraction as F
    p = np.array([F(1, 2), F(1, 2)], dtype=object)
    for u0 in (F(0), F(1, 2), F(999999, 1000000)):
        assert tree.verify_mss(p, p[None, :], [0], [u0, F(3, 4)]).fallbacks == ()
