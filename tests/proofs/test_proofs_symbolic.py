"""The symbolic case-splitting engine (proofs/symbolic.py): forks, ties, contradiction
certificates, and that a false identity fails."""
import pytest
from sympy import QQ
from sympy.polys.fields import field

from specoracle.proofs import symbolic as S
from specoracle.proofs.theorems import ProofFailure


def test_min_plus_max_in_three_cases():
    def build(case):
        a, b = case.var["a"], case.var["b"]
        return [min(a, b) + max(a, b) - a - b, abs(a - b) - (max(a, b) - min(a, b))]

    proved, contra = S.prove_cases(build, ["a", "b"])
    assert (proved, contra) == (3, 0)  # a > b, a < b, a = b


def test_a_false_identity_fails_and_names_the_case():
    def build(case):
        a, b = case.var["a"], case.var["b"]
        return [min(a, b) - a]

    with pytest.raises(ProofFailure, match="identity fails in case"):
        S.prove_cases(build, ["a", "b"])


def test_tie_branch_substitutes():
    """In the tie branch a = b the identity min(a, b) = a holds, and max(a,b)-b = 0."""
    seen = []

    def build(case):
        a, b = case.var["a"], case.var["b"]
        if a == b:
            seen.append(case.describe())
            return [min(a, b) - a, max(a, b) - b]
        return []

    S.prove_cases(build, ["a", "b"])
    assert len(seen) == 1 and "=" in seen[0]


def test_contradictory_cases_are_pruned_with_a_checked_certificate():
    """x < y, y < z, z < x is empty (level 1, linear)."""
    def build(case):
        x, y, z = case.var["x"], case.var["y"], case.var["z"]
        if x < y and y < z and z < x:
            return [x - y]  # would fail if this case were not recognised as empty
        return []

    proved, contra = S.prove_cases(build, ["x", "y", "z"])
    assert contra >= 1


def test_degree_two_certificate():
    """A case that is empty only by a product argument (the one met in the V=3 block proof)."""
    K, p1, p2, q1, q2 = field("p1,p2,q1,q2", QQ)
    case = S._Case(K, [], [])
    case.base_facts = [(p1 + p2 - 1, -1), (q1 + q2 - 1, -1), (p1 - q1, 1), (p2 - q2, 1),
                       (p1 + p2 - q1 - q2, 1),
                       (p1 ** 2 + p1 * p2 - p1 - q1 ** 2 - q1 * q2 + q1, -1),
                       (p1 * p2 + p2 ** 2 - p2 - q1 * q2 - q2 ** 2 + q2, -1),
                       (p1 + p2 + q1 + q2 - 1, 1)]
    case._rebuild()
    assert case.contradictory()
    # ... while a feasible case is not declared empty
    feasible = S._Case(K, [], [])
    feasible.base_facts = [(p1 - q1, 1), (p2 - q2, 1), (p1 + p2 - 1, -1), (q1 + q2 - 1, -1)]
    feasible._rebuild()
    assert not feasible.contradictory()


def test_nonlinear_tie_is_accepted_only_when_provably_empty():
    """x, y > 0 and x^2 + y^2 = 0 is empty (certificate with an equality); x^2 - y = 0 with
    x, y > 0 is not, and its tie is linear in y, so it is substituted (y = x^2)."""
    K, x, y = field("x,y", QQ)
    empty = S._Case(K, [], [])
    empty.equalities.append((x ** 2 + y ** 2).numer)
    assert empty.contradictory()
    seen = []

    def build(case):
        a, b = case.var["a"], case.var["b"]
        if a * a == b:
            seen.append(case.describe())
        return []

    S.prove_cases(build, ["a", "b"])
    assert any("b = a**2" in d for d in seen)


@pytest.mark.slow
def test_block_lossless_symbolic_v3_k2():
    """The largest symbolic block case (V = 3, K = 2): 611 sign cases, ~3 CPU minutes."""
    cases, _ = S.check_block_lossless_symbolic(False, sizes=[(3, 2)])
    assert cases > 0
