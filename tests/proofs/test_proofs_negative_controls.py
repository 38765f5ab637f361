"""Negative controls: deliberately wrong verifiers must make the corresponding proof FAIL.

Each mutant is built by monkeypatching a reference primitive (so the SAME engine, driving
the same reference code path, catches it) or by passing a wrong verifier into the same
checker. A control that "passes" would mean the proof cannot see that bug.
"""
from fractions import Fraction as F

import numpy as np
import pytest

from specoracle.proofs import discrete_theorems as D
from specoracle.proofs import symbolic as S
from specoracle.proofs.theorems import ProofFailure
from specoracle.reference import categorical, tree
from specoracle.reference.types import Verdict


def _abs_residual(p_row, q_row, scale=1):
    """Mutant: residual |scale p - q| instead of (scale p - q)_+."""
    return abs(scale * p_row - q_row)


def test_abs_residual_breaks_token_lossless(monkeypatch):
    monkeypatch.setattr(categorical, "residual_weights", _abs_residual)
    with pytest.raises(ProofFailure, match="token.lossless"):
        D.check_token_lossless(True)


def test_abs_residual_breaks_block_lossless(monkeypatch):
    monkeypatch.setattr(categorical, "residual_weights", _abs_residual)
    with pytest.raises(ProofFailure, match="block.lossless"):
        D.check_block_lossless(True)


def test_abs_residual_breaks_the_symbolic_proofs(monkeypatch):
    monkeypatch.setattr(categorical, "residual_weights", _abs_residual)
    with pytest.raises(ProofFailure, match="identity fails"):
        S.check_token_lossless_symbolic(True)
    with pytest.raises(ProofFailure, match="identity fails"):
        S.check_block_identity_symbolic(True)


def test_scaled_residual_without_p_tau_breaks_block_lossless(monkeypatch):
    original = categorical._draw_residual

    def no_scale(p_row, q_row, scale, u, fallbacks):  # mutant: (p - q)_+ instead of (p_tau p - q)_+
        return original(p_row, q_row, 1, u, fallbacks)

    monkeypatch.setattr(categorical, "_draw_residual", no_scale)
    with pytest.raises(ProofFailure, match="block.lossless"):
        D.check_block_lossless(True)
    # ... while token verification (which never scales) is still proved: the control is specific
    assert D.check_token_lossless(True)[0] > 0


def test_scaled_residual_without_p_tau_breaks_symbolic_block_law(monkeypatch):
    original = S._normalised_residual
    monkeypatch.setattr(S, "_normalised_residual", lambda p, q, scale=1: original(p, q, 1))
    # V = 3, K = 2 is the smallest size where it shows: with V = 2 the residual has a
    # single token whether it is scaled or not.
    with pytest.raises(ProofFailure, match="identity fails"):
        S.check_block_lossless_symbolic(True, sizes=[(3, 2)])


def _block_with_token_rule(p, q, draft, u):
    """Mutant: block verification whose acceptance is the token rule (stop at the first
    failing u q < p), followed by block verification's scaled residual."""
    p, q, draft, u = categorical._validate(p, q, draft, u)
    k = len(draft)
    survival, _mass = categorical.block_quantities(p, q, draft)
    tau = k
    for i in range(k):
        if not u[i] * q[i, draft[i]] < p[i, draft[i]]:
            tau = i
            break
    fallbacks: list = []
    if tau == k:
        y = categorical._draw_target(p[k], u[k], fallbacks)
        return Verdict(k, tuple(int(t) for t in draft) + (int(y),), True)
    y = categorical._draw_residual(p[tau], q[tau], survival[tau], u[k], fallbacks)
    return Verdict(tau, tuple(int(t) for t in draft[:tau]) + (int(y),), False)


def test_block_with_token_rule_breaks_block_lossless():
    with pytest.raises(ProofFailure, match="block.lossless"):
        D.check_block_lossless(True, verifier=_block_with_token_rule)


def test_token_verifier_posing_as_block_fails_the_block_acceptance_proofs():
    with pytest.raises(ProofFailure, match="block.acceptance_closed_form"):
        D.check_block_acceptance_closed_form(True, verifier=categorical.verify_chain)
    with pytest.raises(ProofFailure, match="block.paper_example"):
        D.check_block_paper_example(True, verifier=categorical.verify_chain)


def test_block_verifier_posing_as_token_fails_the_token_acceptance_proof():
    with pytest.raises(ProofFailure, match="token.acceptance_equals_overlap"):
        D.check_token_acceptance(True, verifier=categorical.verify_block)


def test_first_passing_index_instead_of_largest_breaks_block(monkeypatch):
    """Mutant: scan i = 1..K upward (first passing index, not the largest)."""
    def first_pass(p, q, draft, u):
        p, q, draft, u = categorical._validate(p, q, draft, u)
        k = len(draft)
        survival, mass = categorical.block_quantities(p, q, draft)
        tau = 0
        for i in range(1, k + 1):
            passed = (u[i - 1] * (mass[i] + 1 - survival[i]) < mass[i]) if i < k else u[i - 1] < survival[i]
            if passed:
                tau = i
                break
        fb: list = []
        if tau == k:
            return Verdict(k, tuple(int(t) for t in draft) + (categorical._draw_target(p[k], u[k], fb),), True)
        y = categorical._draw_residual(p[tau], q[tau], survival[tau], u[k], fb)
        return Verdict(tau, tuple(int(t) for t in draft[:tau]) + (int(y),), False)

    with pytest.raises(ProofFailure, match="block.lossless"):
        D.check_block_lossless(True, verifier=first_pass)


def test_greedy_emitting_the_draft_at_the_mismatch_is_caught():
    def wrong(p, draft):
        v = categorical.verify_greedy(p, draft)
        if not v.bonus:  # emit the drafted token instead of the target argmax
            return Verdict(v.n_accepted, v.tokens[:-1] + (int(draft[v.n_accepted]),), False)
        return v

    with pytest.raises(ProofFailure, match="greedy.lossless"):
        D.check_greedy_lossless(True, verifier=wrong)


def test_mss_with_wrong_residual_weights_is_caught(monkeypatch):
    """Mutant: the running residual keeps the support of (P - q_j)_+ but spreads its mass
    uniformly over it."""
    def uniform_on_support(w):
        support = [1 if x > 0 else 0 for x in w]
        return np.array([F(s, sum(support)) for s in support], dtype=object)

    monkeypatch.setattr(tree, "_normalise", uniform_on_support)
    with pytest.raises(ProofFailure, match="mss.lossless"):
        D.check_mss_lossless(True)


def test_kseq_with_an_invalid_rho_is_caught(monkeypatch):
    """Mutant: K-SEQ run with rho = 1 (invalid when rho* > 1) and its validity check disabled."""
    monkeypatch.setattr(tree, "kseq_valid", lambda *a, **k: True)

    def rho_one(p, q, candidates, u, rho=None):
        return tree.verify_kseq(p, q, candidates, u, rho=F(1))

    with pytest.raises(ProofFailure, match="kseq.lossless"):
        D.check_kseq_lossless(True, verifier=rho_one)


def test_sample_and_match_ignoring_the_prefix_is_caught():
    """Mutant: every draw uses the root's target row (the context is ignored)."""
    def root_row_only(p, tokens, parents, u):
        p = np.asarray(p, dtype=object)
        return tree.verify_tree_deterministic(np.array([p[0]] * len(p), dtype=object), tokens, parents, u)

    with pytest.raises(ProofFailure, match="tree_deterministic.lossless"):
        D.check_tree_deterministic_lossless(True, verifier=root_row_only)
    with pytest.raises(ProofFailure, match="tree_deterministic.expected_length"):
        D.check_tree_deterministic_expected_length(True, verifier=root_row_only)


def test_skewed_acceptance_is_caught_by_the_iid_closed_forms():
    def skewed(p, q, draft, u):
        return categorical.verify_chain(p, q, draft,
                                        np.array([x * F(11, 10) for x in u[:-1]] + [u[-1]], dtype=object))

    with pytest.raises(ProofFailure, match="token.expected_length_iid"):
        D.check_token_expected_length_iid(True, verifier=skewed)
