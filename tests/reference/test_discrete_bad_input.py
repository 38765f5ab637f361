"""Every bad input of the discrete oracle raises InvalidInput (a ValueError) that names
the argument (and the offending index where there is one): never a wrong sample.
Covers verify_chain/block/greedy, process_logits, maximal_coupling, the tree
verifiers, K-SEQ, the decoding loop and the targets."""
from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pytest

from specoracle.reference import decoding, targets, tree
from specoracle.reference.categorical import (maximal_coupling, sample_categorical, verify_block,
                                              verify_chain, verify_greedy)
from specoracle.reference.processing import process_logits
from specoracle.reference.types import InvalidInput

P = np.array([0.5, 0.3, 0.2])
Q = np.array([0.2, 0.2, 0.6])
P2 = np.stack([P, P])
Q1 = Q[None, :]
NAN = float("nan")
INF = float("inf")


def with_value(arr, idx, value):
    out = np.array(arr, dtype=float)
    out[idx] = value
    return out


def raises(argument, fn, index=None):
    with pytest.raises(InvalidInput) as info:
        fn()
    assert isinstance(info.value, ValueError)
    assert info.value.argument == argument, str(info.value)
    if index is not None:
        got = info.value.index if isinstance(info.value.index, tuple) else (info.value.index,)
        assert tuple(int(i) for i in got) == tuple(index), str(info.value)
    return info.value


# ---------------------------------------------------------------- chain / block (same validation)

CHAIN_CASES = {
    "nan_p": ("p", (1, 0), lambda: (with_value(P2, (1, 0), NAN), Q1, [2], [0.1, 0.2])),
    "inf_p": ("p", (0, 2), lambda: (with_value(P2, (0, 2), INF), Q1, [2], [0.1, 0.2])),
    "negative_q": ("q", (0, 1), lambda: (P2, with_value(Q1, (0, 1), -0.1), [2], [0.1, 0.2])),
    "p_row_not_1": ("p", (1,), lambda: (with_value(P2, (1, 0), 0.6), Q1, [2], [0.1, 0.2])),
    "q_row_not_1": ("q", (0,), lambda: (P2, with_value(Q1, (0, 0), 0.1), [2], [0.1, 0.2])),
    "q_rows_mismatch": ("q", None, lambda: (P2, np.stack([Q, Q]), [2], [0.1, 0.2])),
    "vocab_mismatch": ("q", None, lambda: (P2, np.array([[0.5, 0.5]]), [1], [0.1, 0.2])),
    "draft_oov": ("draft", (0,), lambda: (P2, Q1, [3], [0.1, 0.2])),
    "draft_negative": ("draft", (0,), lambda: (P2, Q1, [-1], [0.1, 0.2])),
    "draft_length": ("draft", None, lambda: (P2, Q1, [2, 2], [0.1, 0.2])),
    "draft_q_zero": ("draft", (0,), lambda: (P2, np.array([[0.5, 0.5, 0.0]]), [2], [0.1, 0.2])),
    "u_length": ("u", None, lambda: (P2, Q1, [2], [0.1])),
    "u_out_of_range": ("u", (1,), lambda: (P2, Q1, [2], [0.1, 1.0])),
    "u_nan": ("u", (0,), lambda: (P2, Q1, [2], [NAN, 0.1])),
    "p_1d": ("p", None, lambda: (P, Q1, [2], [0.1, 0.2])),
    "fraction_row_not_1": ("p", (0,), lambda: (np.array([[F(1, 2), F(1, 3)], [F(1, 2), F(1, 2)]], dtype=object),
                                               np.array([[F(1, 2), F(1, 2)]], dtype=object), [0], [0.1, 0.2])),
}


@pytest.mark.parametrize("verifier", [verify_chain, verify_block])
@pytest.mark.parametrize("case", sorted(CHAIN_CASES))
def test_chain_and_block_bad_input(verifier, case):
    argument, index, make = CHAIN_CASES[case]
    raises(argument, lambda: verifier(*make()), index)


@pytest.mark.parametrize("verifier", [verify_chain, verify_block])
@pytest.mark.parametrize("q", [None, [], np.zeros((0, 3))])
def test_k0_round_is_the_bonus_from_p0(verifier, q):
    """K = 0 (no draft): the round is one bonus token drawn from p[0] with u[0]; the
    absent draft rows may be None or empty (docs/DECISIONS.md)."""
    p0 = np.array([[0.2, 0.5, 0.3]])
    for u, token in [(0.1, 0), (0.2, 1), (0.69, 1), (0.7, 2), (0.99, 2)]:
        v = verifier(p0, q, [], [u])
        assert (v.n_accepted, v.tokens, v.bonus) == (0, (token,), True)
    raises("u", lambda: verifier(p0, q, [], [0.1, 0.2]))


@pytest.mark.parametrize("verifier", [verify_chain, verify_block])
def test_wrong_row_count_blames_the_odd_argument(verifier):
    """p, q and draft each imply K; the one that disagrees with the other two is named."""
    e = raises("p", lambda: verifier(P[None, :], Q1, [2], [0.1, 0.2]))   # p has K rows
    assert "K+1 = 2 target rows" in str(e) and "(1, 3)" in str(e)
    raises("p", lambda: verifier(P2, None, [], [0.1]))                    # K = 0 needs one p row
    raises("q", lambda: verifier(P2, None, [2], [0.1, 0.2]))              # q missing for K = 1
    raises("draft", lambda: verifier(np.stack([P] * 3), np.stack([Q] * 2), [2], [0.1, 0.2, 0.3]))


def test_row_sum_error_names_dtype_and_tolerance():
    p16 = np.array([[0.5, 0.5], [0.5, 0.5]], dtype=np.float16) * np.float16(1.001)
    e = raises("p", lambda: verify_chain(p16, [[0.5, 0.5]], [0], [0.1, 0.2]), (0,))
    assert "float16" in str(e) and "tolerance 1e-05" in str(e)
    e = raises("q", lambda: verify_chain(P2, [[0.5, 0.6, 0.0]], [0], [0.1, 0.2]), (0,))
    assert "float64" in str(e) and "tolerance 1e-05" in str(e)


@pytest.mark.parametrize("weights, u, argument, index", [
    ([0, 0], 0.5, "weights", None),           # zero total mass: nothing to draw (was -1)
    ([0.0, 0.0, 0.0], 0.0, "weights", None),
    ([0.5, -0.1, 0.6], 0.5, "weights", (1,)),
    ([0.5, NAN], 0.5, "weights", (1,)),
    ([0.5, 0.5], 1.0, "u", None),
    ([0.5, 0.5], -0.1, "u", None),
    ([0.5, 0.5], NAN, "u", None),
    ([0.5, 0.5], F(1), "u", None),
])
def test_sample_categorical_bad_input(weights, u, argument, index):
    raises(argument, lambda: sample_categorical(weights, u), index)


def test_sample_categorical_good_input_edges():
    assert sample_categorical([0, 0.5, 0.5], 0.0) == (1, None)
    assert sample_categorical([F(1, 3), F(2, 3)], F(1, 3)) == (1, None)
    assert sample_categorical([1, 0], 1 - 2.0 ** -53) == (0, None)


@pytest.mark.parametrize("case, argument, index, p, draft", [
    ("nan", "p", (0, 1), [[0.5, NAN]], []),
    ("shape", "p", None, [0.5, 0.5], []),
    ("oov", "draft", (0,), [[0.5, 0.5], [0.5, 0.5]], [2]),
    ("negative", "draft", (0,), [[0.5, 0.5], [0.5, 0.5]], [-3]),
    ("length", "draft", None, [[0.5, 0.5], [0.5, 0.5]], [0, 1]),
])
def test_greedy_bad_input(case, argument, index, p, draft):
    raises(argument, lambda: verify_greedy(np.array(p), draft), index)


def test_rng_wrappers_reject_non_generators():
    raises("rng", lambda: tree.verify_mss_rng(P, Q1, [2], 3))
    raises("rng", lambda: tree.verify_kseq_rng(P, Q, [2], np.random.RandomState(0)))
    raises("rng", lambda: decoding.speculative_decode(
        targets.MarkovModel.context_free(P), targets.MarkovModel.context_free(Q), [], 2, 1, "chain", 5))


def test_maximal_coupling_bad_input():
    raises("x", lambda: maximal_coupling(P, [0.5, 0.5, 0.0], 2, 0.1, 0.1))
    raises("x", lambda: maximal_coupling(P, Q, 7, 0.1, 0.1), (0,))
    raises("q", lambda: maximal_coupling(P, [0.5, 0.5], 0, 0.1, 0.1))
    raises("u_accept", lambda: maximal_coupling(P, Q, 2, 1.0, 0.1))
    raises("u_accept", lambda: maximal_coupling(P, Q, 2, NAN, 0.1))
    raises("u_residual", lambda: maximal_coupling(P, Q, 2, 0.1, -0.5))


# ---------------------------------------------------------------- process_logits

@pytest.mark.parametrize("kwargs, argument", [
    (dict(logits=[0.0, NAN]), "logits"),
    (dict(logits=[0.0, INF]), "logits"),
    (dict(logits=[-INF, -INF]), "logits"),
    (dict(logits=np.zeros((2, 0))), "logits"),
    (dict(logits=[0.0, 1.0], temperature=-0.5), "temperature"),
    (dict(logits=[0.0, 1.0], temperature=NAN), "temperature"),
    (dict(logits=[0.0, 1.0], top_p=0.0), "top_p"),
    (dict(logits=[0.0, 1.0], top_p=1.5), "top_p"),
    (dict(logits=[0.0, 1.0], top_p=-0.1), "top_p"),
    (dict(logits=[0.0, 1.0], top_k=0), "top_k"),
    (dict(logits=[0.0, 1.0], top_k=1.5), "top_k"),
    (dict(logits=[0.0, 1.0], min_p=1.5), "min_p"),
])
def test_process_logits_bad_input(kwargs, argument):
    raises(argument, lambda: process_logits(**kwargs))


def test_process_logits_all_neg_inf_row_index():
    logits = np.array([[0.0, 1.0], [-INF, -INF]])
    raises("logits", lambda: process_logits(logits), (1,))


# ---------------------------------------------------------------- MSS

MSS_CASES = {
    "nan_p": ("p", lambda: (with_value(P, 1, NAN), Q1, [2], [0.1, 0.2])),
    "p_not_1": ("p", lambda: (with_value(P, 1, 0.5), Q1, [2], [0.1, 0.2])),
    "q_rows": ("q", lambda: (P, np.stack([Q, Q]), [2], [0.1, 0.2])),
    "q_vocab": ("q", lambda: (P, np.array([[0.5, 0.5]]), [1], [0.1, 0.2])),
    "q_negative": ("q", lambda: (P, with_value(Q1, (0, 0), -0.2), [2], [0.1, 0.2])),
    "child_oov": ("children", lambda: (P, Q1, [3], [0.1, 0.2])),
    "child_negative": ("children", lambda: (P, Q1, [-1], [0.1, 0.2])),
    "child_q_zero": ("children", lambda: (P, np.array([[0.5, 0.5, 0.0]]), [2], [0.1, 0.2])),
    "u_length": ("u", lambda: (P, Q1, [2], [0.1, 0.2, 0.3])),
    "u_range": ("u", lambda: (P, Q1, [2], [0.1, -0.2])),
    "q_given_for_k0": ("q", lambda: (P, Q1, [], [0.1])),
}


@pytest.mark.parametrize("case", sorted(MSS_CASES))
def test_mss_bad_input(case):
    argument, make = MSS_CASES[case]
    raises(argument, lambda: tree.verify_mss(*make()))


P4 = np.stack([P] * 4)
Q4 = np.stack([Q] * 4)
TREE_CASES = {
    "parent_not_earlier": ("parents", (1,), lambda: (P4, Q4, [2, 2, 1], [-1, 1, 0], [0.1] * 4)),
    "parent_below_root": ("parents", (0,), lambda: (P4, Q4, [2, 2, 1], [-2, 0, 0], [0.1] * 4)),
    "parents_length": ("parents", None, lambda: (P4, Q4, [2, 2, 1], [-1, 0], [0.1] * 4)),
    "parents_float": ("parents", None, lambda: (P4, Q4, [2, 2, 1], [-1.0, 0.0, 0.0], [0.1] * 4)),
    "p_rows": ("p", None, lambda: (P4[:3], Q4, [2, 2, 1], [-1, 0, 0], [0.1] * 4)),
    "q_rows": ("q", None, lambda: (P4, Q4[:3], [2, 2, 1], [-1, 0, 0], [0.1] * 4)),
    "q_vocab": ("q", None, lambda: (P4, np.full((4, 2), 0.5), [1, 1, 1], [-1, 0, 0], [0.1] * 4)),
    "token_oov": ("tokens", (1,), lambda: (P4, Q4, [2, 5, 1], [-1, 0, 0], [0.1] * 4)),
    "token_negative": ("tokens", (2,), lambda: (P4, Q4, [2, 2, -1], [-1, 0, 0], [0.1] * 4)),
    "token_q_zero": ("tokens", (1,), lambda: (
        P4, np.stack([Q, [0.5, 0.5, 0.0], Q, Q]), [2, 2, 2], [-1, 0, 0], [0.1] * 4)),
    "u_length": ("u", None, lambda: (P4, Q4, [2, 2, 1], [-1, 0, 0], [0.1] * 3)),
    "nan_p": ("p", (3, 0), lambda: (with_value(P4, (3, 0), NAN), Q4, [2, 2, 1], [-1, 0, 0], [0.1] * 4)),
}


@pytest.mark.parametrize("case", sorted(TREE_CASES))
def test_mss_tree_bad_input(case):
    argument, index, make = TREE_CASES[case]
    raises(argument, lambda: tree.verify_mss_tree(*make()), index)


@pytest.mark.parametrize("case", sorted(c for c in TREE_CASES if not c.startswith(("q_", "token_q"))))
def test_deterministic_tree_bad_input(case):
    argument, index, make = TREE_CASES[case]
    p, _, tokens, parents, u = make()
    if case == "u_length":
        u = [0.1] * 4   # depth 2 -> needs 3 uniforms
    raises(argument, lambda: tree.verify_tree_deterministic(p, tokens, parents, u), index)
    if argument != "u":
        raises(argument, lambda: tree.tree_expected_length(p, tokens, parents), index)


# ---------------------------------------------------------------- K-SEQ


def test_kseq_bad_input():
    raises("candidates", lambda: tree.verify_kseq(P, Q, [3], [0.1, 0.2]), (0,))
    raises("candidates", lambda: tree.verify_kseq(P, [0.5, 0.5, 0.0], [2], [0.1, 0.2]), (0,))
    raises("q", lambda: tree.verify_kseq(P, [0.5, 0.5], [1], [0.1, 0.2]))
    raises("q", lambda: tree.verify_kseq(P, [0.5, 0.6, -0.1], [1], [0.1, 0.2]))
    raises("u", lambda: tree.verify_kseq(P, Q, [1, 2], [0.1, 0.2]))
    raises("rho", lambda: tree.verify_kseq(P, Q, [1, 2], [0.1, 0.2, 0.3], rho=1.0))      # < rho*
    raises("rho", lambda: tree.verify_kseq(P, Q, [1, 2], [0.1, 0.2, 0.3], rho=0.5))      # < 1
    pf = np.array([F(1, 2), F(3, 10), F(1, 5)], dtype=object)
    qf = np.array([F(1, 5), F(1, 5), F(3, 5)], dtype=object)
    raises("rho", lambda: tree.verify_kseq(pf, qf, [1, 2], [0.1, 0.2, 0.3]))            # exact needs rho
    raises("rho", lambda: tree.verify_kseq(pf, qf, [1, 2], [0.1, 0.2, 0.3], rho=F(14632, 10000)))
    raises("k", lambda: tree.kseq_rho(P, Q, -1))
    raises("k", lambda: tree.kseq_acceptance(P, Q, 1.5))


def test_d2sd_bad_input():
    raises("confidences", lambda: tree.d2sd_boundary_posterior([0.5, 1.2]), (1,))
    raises("confidences", lambda: tree.d2sd_boundary_posterior([NAN]), (0,))
    raises("k", lambda: tree.d2sd_branch_set([0.5, 0.5], -1))
    raises("sequences", lambda: tree.trie_from_sequences([[1, 2.5]]), (0, 1))


# ---------------------------------------------------------------- decoding and targets


def test_decoding_bad_input():
    T = targets.MarkovModel.context_free(P)
    D = targets.MarkovModel.context_free(Q)
    rng = np.random.default_rng(0)
    raises("verifier", lambda: decoding.speculative_decode(T, D, [], 3, 1, "tree", rng))
    raises("n_tokens", lambda: decoding.speculative_decode(T, D, [], -1, 1, "chain", rng))
    raises("k", lambda: decoding.speculative_decode(T, D, [], 3, -1, "chain", rng))
    raises("prompt", lambda: decoding.speculative_decode(T, D, [0, 9], 3, 1, "chain", rng), (1,))
    raises("draft", lambda: decoding.speculative_decode(T, targets.MarkovModel.context_free([0.5, 0.5]),
                                                         [], 3, 1, "chain", rng))
    raises("draft", lambda: decoding.speculative_decode(T, object(), [], 3, 1, "chain", rng))
    raises("u", lambda: decoding.speculative_decode(T, D, [], 3, 1, "chain"))
    raises("u", lambda: decoding.speculative_decode(T, D, [], 3, 1, "chain", rng, u=np.zeros((3, 3))))
    raises("u", lambda: decoding.speculative_decode(T, D, [], 3, 1, "chain", u=np.zeros((3, 2))))
    raises("u", lambda: decoding.speculative_decode(T, D, [], 3, 1, "chain", u=np.ones((3, 3))))
    raises("u", lambda: decoding.sample_autoregressive(T, [], 2, u=[0.5]))


def test_targets_bad_input():
    raises("weights", lambda: targets.fraction_probs([1, -1, 2]))
    raises("weights", lambda: targets.fraction_probs([0, 0]))
    raises("tables[1]", lambda: targets.MarkovModel([P, np.stack([P, P])]))
    raises("tables[0]", lambda: targets.MarkovModel([[0.5, 0.6]]))
    raises("prefix", lambda: targets.MarkovModel.context_free(P).next_probs([0, 3]), (1,))
    raises("draft", lambda: targets.token_survival(targets.MarkovModel.context_free(P),
                                                   targets.MarkovModel.context_free([1.0]), [], 2))
