"""The exact enumeration engine itself (proofs/exact.py): traced uniforms, forking,
leaf probabilities, the sequence-law drivers, and that it catches a skewed verifier."""
from fractions import Fraction as F

import numpy as np
import pytest

from specoracle.proofs import exact
from specoracle.reference import categorical, tree

T1_P = (F(5, 10), F(3, 10), F(2, 10))
T1_Q = (F(2, 10), F(2, 10), F(6, 10))


def test_single_threshold_law():
    law, leaves = exact.noise_law(lambda u: bool(u[0] < F(1, 3)), 1)
    assert law == {True: F(1, 3), False: F(2, 3)} and leaves == 2


def test_products_sums_and_reflected_comparisons():
    # 3u < 2  <=>  u < 2/3 ; 1/4 > v  <=>  v < 1/4 ; (1 - w) < 1/5 <=> w > 4/5
    def fn(u):
        return (bool(u[0] * 3 < 2), bool(F(1, 4) > u[1]), bool(1 - u[2] < F(1, 5)))

    law, leaves = exact.noise_law(fn, 3)
    assert leaves == 8
    assert law[(True, True, True)] == F(2, 3) * F(1, 4) * F(1, 5)
    assert law[(False, False, False)] == F(1, 3) * F(3, 4) * F(4, 5)
    assert sum(law.values()) == 1


def test_repeated_comparisons_narrow_the_interval():
    # u < 1/2, then u < 1/4 (only reachable in the first branch), then u < 3/4 (decided)
    def fn(u):
        if u[0] < F(1, 2):
            return "a" if u[0] < F(1, 4) else "b"
        return "c" if u[0] < F(3, 4) else "d"

    law, leaves = exact.noise_law(fn, 1)
    assert law == {"a": F(1, 4), "b": F(1, 4), "c": F(1, 4), "d": F(1, 4)} and leaves == 4


def test_zero_coefficient_is_a_constant():
    law, leaves = exact.noise_law(lambda u: u[0] * 0 < F(1, 2), 1)
    assert law == {True: F(1)} and leaves == 1


@pytest.mark.parametrize("op", [
    lambda u: float(u[0]),
    lambda u: bool(u[0]),
    lambda u: u[0] * u[1],
    lambda u: u[0] + u[1],
    lambda u: u[0] < u[1],
    lambda u: u[0] < 0.5,
    lambda u: u[0] < np.float64(0.5),
])
def test_leaving_exact_arithmetic_is_refused(op):
    with pytest.raises(exact.NotExact):
        exact.noise_law(op, 2)


def test_t1_one_step_law_acceptance_and_overlap():
    """T1: output law p, acceptance 0.6, P(Y=x, accepted) = min(p, q) = (0.2, 0.2, 0.2)."""
    law = exact.draft_round_law(categorical.verify_chain, exact.iid_model(T1_P),
                                exact.iid_model(T1_Q), 3, 1, length=1)
    assert law.sequences == {(0,): F(1, 2), (1,): F(3, 10), (2,): F(1, 5)}
    assert law.tau[1] == F(3, 5)
    accepted = {x: sum(pr for toks, pr in law.emitted.items() if len(toks) == 2 and toks[0] == x)
                for x in range(3)}
    assert accepted == {0: F(1, 5), 1: F(1, 5), 2: F(1, 5)}
    assert law.fallbacks == 0


def test_sequence_law_of_a_markov_model():
    m = exact.markov_model([1, 1], [[3, 1], [1, 3]])
    law = exact.sequence_law(m, 2, 2)
    assert law == {(0, 0): F(3, 8), (0, 1): F(1, 8), (1, 0): F(1, 8), (1, 1): F(3, 8)}
    # completion of an emitted prefix
    assert exact.completion_law(m, 2, (1,), 2) == {(1, 0): F(1, 4), (1, 1): F(3, 4)}


def test_random_models_are_deterministic_and_normalised():
    m1, m2 = exact.random_model(3, seed=5), exact.random_model(3, seed=5)
    for prefix in [(), (0,), (2, 1)]:
        assert m1(prefix) == m2(prefix) and sum(m1(prefix)) == 1


def test_block_quantities_match_the_closed_form_survival():
    """p_i from the reference == min_j prod_{k>j} p/q (ALGORITHMS.md §1.3 closed form)."""
    pm, qm = exact.random_model(3, 1), exact.random_model(3, 2)
    for draft in [(0, 1, 2), (2, 2, 0), (1, 0, 1)]:
        p = exact.rows(pm, (), draft, 4)
        q = exact.rows(qm, (), draft, 3)
        if any(q[i][x] == 0 for i, x in enumerate(draft)):
            continue
        survival, _ = categorical.block_quantities(p, q, np.array(draft))
        for i in range(4):
            best = min(np.prod([p[k][draft[k]] / q[k][draft[k]] for k in range(j, i)], initial=F(1))
                       for j in range(i + 1))
            assert survival[i] == best


def _skewed_chain(p, q, draft, u):
    """Accept iff (11/10) u q(x) < p(x): a verifier whose threshold is 10% too strict."""
    return categorical.verify_chain(p, q, draft, np.array([x * F(11, 10) for x in u[:-1]] + [u[-1]],
                                                          dtype=object))


def test_engine_catches_a_skewed_threshold():
    pm, qm = exact.iid_model(T1_P), exact.iid_model(T1_Q)
    good = exact.draft_round_law(categorical.verify_chain, pm, qm, 3, 2)
    bad = exact.draft_round_law(_skewed_chain, pm, qm, 3, 2)
    target = exact.sequence_law(pm, 3, 3)
    assert not exact.law_difference(good.sequences, target)
    assert exact.law_difference(bad.sequences, target)


def test_tree_drivers_on_t5_examples():
    chain = [F(9, 10), F(8, 10), F(7, 10), F(6, 10), F(1, 2)]
    model = lambda prefix: (chain[len(prefix)], 1 - chain[len(prefix)])  # noqa: E731
    law = exact.deterministic_tree_round_law(tree.verify_tree_deterministic, model, 2,
                                             [0, 0, 0, 0], [-1, 0, 1, 2])
    assert law.mean_tau() + 1 == F("3.4264")
    assert exact.trie_path_mass(model, [0, 0, 0, 0], [-1, 0, 1, 2]) == F("3.4264")


def test_mss_node_law_t4():
    law, _ = exact.node_law(tree.verify_mss, T1_P, [T1_Q, T1_Q], 2, 3)
    assert law.tau[1] == F("0.76")
    assert {k[0]: v for k, v in law.sequences.items()} == {0: F(1, 2), 1: F(3, 10), 2: F(1, 5)}
