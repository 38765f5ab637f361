"""ALGORITHMS.md §7 worked examples T1-T5, reproduced exactly (Fractions) where the
document gives exact numbers, and to the printed digits where it rounds.

Exact laws are computed by integrating each verifier over its uniforms
(tests/_discrete_exact.py) and over the drafts' own law (enumeration weighted by q).
"""
from __future__ import annotations

from fractions import Fraction as F
from itertools import product

import numpy as np
import pytest

from _discrete_exact import exact_law, frac_array
from specoracle.reference import targets, tree
from specoracle.reference.categorical import block_quantities, verify_block, verify_chain
from specoracle.reference.processing import process_logits

P1 = frac_array([F(1, 2), F(3, 10), F(1, 5)])   # T1 target
Q1 = frac_array([F(1, 5), F(1, 5), F(3, 5)])    # T1 draft


def chain_round_law(verifier, p_rows, q_rows, key=lambda v: v):
    """Exact law of key(verdict) over drafts x ~ q (context-free rows) and the noise."""
    k = len(q_rows)
    law: dict = {}
    for x in product(range(p_rows.shape[1]), repeat=k):
        w = F(1)
        for i, t in enumerate(x):
            w *= q_rows[i][t]
        if w == 0:
            continue
        for out, pr in exact_law(lambda u: verifier(p_rows, q_rows, list(x), u), k + 1, key).items():
            law[out] = law.get(out, 0) + w * pr
    return law


# ---------------------------------------------------------------- T1


def test_t1_token_level_one_step():
    assert targets.beta(P1, Q1) == F(3, 5)
    assert targets.total_variation(P1, Q1) == F(2, 5)
    law = chain_round_law(verify_chain, np.stack([P1, P1]), np.stack([Q1]),
                          key=lambda v: (v.tokens[0], v.n_accepted))
    accepted = {x: law.get((x, 1), 0) for x in range(3)}
    assert accepted == {0: F(1, 5), 1: F(1, 5), 2: F(1, 5)}          # min(p, q)
    rejected = {x: law.get((x, 0), 0) / F(2, 5) for x in range(3)}
    assert rejected == {0: F(3, 4), 1: F(1, 4), 2: 0}                # residual (p - q)+ / TV
    first = {x: accepted[x] + law.get((x, 0), 0) for x in range(3)}
    assert first == {0: P1[0], 1: P1[1], 2: P1[2]}                   # output law exactly p


# ---------------------------------------------------------------- T2


def test_t2_iid_formulas_and_enumeration():
    T, D = targets.MarkovModel.context_free(P1), targets.MarkovModel.context_free(Q1)
    want = [F(3, 5), F(9, 25), F(27, 125), F(81, 625)]
    assert targets.token_survival(T, D, [], 4) == want
    assert targets.expected_tokens_per_call(want) == F("2.3056")
    assert targets.iid_survival(F(3, 5), 4) == want
    assert targets.iid_expected_accepted(F(3, 5), 4) == F("1.3056")
    assert targets.iid_tokens_per_call(F(3, 5), 4) == F("2.3056")
    assert targets.walltime_factor(F(3, 5), 4, 0) == F("2.3056")
    assert targets.walltime_factor(F(3, 5), 4, F(1, 10)) == F("2.3056") / F("1.4")
    # Leviathan's closed form (1 - a^(g+1)) / ((1 - a)(g c + 1))
    a, g, c = 0.6, 4, 0.1
    assert targets.walltime_factor(a, g, c) == pytest.approx((1 - a ** (g + 1)) / ((1 - a) * (g * c + 1)))
    # the verifier itself, gamma = 4, enumerated: Pr(tau >= i) = 0.6^i
    law = chain_round_law(verify_chain, np.stack([P1] * 5), np.stack([Q1] * 4), key=lambda v: v.n_accepted)
    assert [sum(pr for t, pr in law.items() if t >= i) for i in range(1, 5)] == want


# ---------------------------------------------------------------- T3


PB = frac_array([F(1, 3), F(2, 3)])
QB = frac_array([F(2, 3), F(1, 3)])


def test_t3a_expected_tau_10_9_vs_11_9():
    p_rows, q_rows = np.stack([PB] * 3), np.stack([QB] * 2)
    tok = chain_round_law(verify_chain, p_rows, q_rows, key=lambda v: v.n_accepted)
    blk = chain_round_law(verify_block, p_rows, q_rows, key=lambda v: v.n_accepted)
    assert tok == {0: F(3, 9), 1: F(2, 9), 2: F(4, 9)}
    assert blk == {0: F(3, 9), 1: F(1, 9), 2: F(5, 9)}
    assert sum(t * pr for t, pr in tok.items()) == F(10, 9)
    assert sum(t * pr for t, pr in blk.items()) == F(11, 9)
    T, D = targets.MarkovModel.context_free(PB), targets.MarkovModel.context_free(QB)
    assert targets.expected_accepted(targets.token_survival(T, D, [], 2)) == F(10, 9)
    assert targets.expected_accepted(targets.block_survival(T, D, [], 2)) == F(11, 9)


# draft -> (q(X), p_1, p_2, R_1, h_1, h_2, law of tau given X, residual token on tau < 2)
T3A_TABLE = {
    (0, 0): (F(4, 9), F(1, 2), F(1, 4), 0, 0, F(1, 4), {2: F(1, 4), 0: F(3, 4)}, 1),
    (0, 1): (F(2, 9), F(1, 2), 1, 0, 0, 1, {2: 1}, None),
    (1, 0): (F(2, 9), 1, F(1, 2), F(1, 3), 1, F(1, 2), {2: F(1, 2), 1: F(1, 2)}, 1),
    (1, 1): (F(1, 9), 1, 1, F(1, 3), 1, 1, {2: 1}, None),
}


@pytest.mark.parametrize("draft", sorted(T3A_TABLE))
def test_t3a_per_draft_table(draft):
    qx, p1, p2, r1, h1, h2, tau_law, res_tok = T3A_TABLE[draft]
    p_rows, q_rows = np.stack([PB] * 3), np.stack([QB] * 2)
    assert QB[draft[0]] * QB[draft[1]] == qx
    survival, mass = block_quantities(p_rows, q_rows, np.array(draft))
    assert survival == [1, p1, p2]
    assert mass[1] == r1 and mass[2] is None
    h_1 = mass[1] / (mass[1] + 1 - survival[1]) if mass[1] + 1 - survival[1] else 1
    assert h_1 == h1 and survival[2] == h2
    law = exact_law(lambda u: verify_block(p_rows, q_rows, list(draft), u), 3)
    got_tau: dict = {}
    for v, pr in law.items():
        got_tau[v.n_accepted] = got_tau.get(v.n_accepted, 0) + pr
        if v.n_accepted < 2:
            assert not v.bonus and v.tokens[-1] == res_tok     # the residual is a point mass on b
        else:
            assert v.bonus
    assert got_tau == tau_law


@pytest.mark.parametrize("gamma, block, block_e, token_e", [
    (2, ["0.6", "0.44"], "1.04", "0.96"),
    (3, ["0.6", "0.44", "0.338"], "1.378", "1.176"),
    (4, ["0.6", "0.44", "0.338", "0.2636"], "1.6416", "1.3056"),
])
def test_t3b_ternary_pair(gamma, block, block_e, token_e):
    T, D = targets.MarkovModel.context_free(P1), targets.MarkovModel.context_free(Q1)
    surv = targets.block_survival(T, D, [], gamma)
    assert surv == [F(s) for s in block]
    assert targets.expected_accepted(surv) == F(block_e)
    assert targets.expected_accepted(targets.token_survival(T, D, [], gamma)) == F(token_e)
    if gamma == 3:  # the verifier itself agrees with the closed form
        law = chain_round_law(verify_block, np.stack([P1] * 4), np.stack([Q1] * 3),
                              key=lambda v: v.n_accepted)
        assert [sum(pr for t, pr in law.items() if t >= i) for i in range(1, 4)] == surv


# ---------------------------------------------------------------- T4


def test_t4_mss_two_iid_children():
    q2 = np.stack([Q1, Q1])
    acc, residual = tree.mss_acceptance(P1, q2)
    assert acc == F(19, 25)  # 0.76
    assert list(residual) == [F(11, 12), F(1, 12), 0]
    law: dict = {}
    accepted = F(0)
    for kids in product(range(3), repeat=2):
        w = Q1[kids[0]] * Q1[kids[1]]
        for v, pr in exact_law(lambda u: tree.verify_mss(P1, q2, list(kids), u), 3).items():
            law[v.tokens[0]] = law.get(v.tokens[0], 0) + w * pr
            accepted += w * pr * v.n_accepted
    assert accepted == F(19, 25)
    assert law == {0: P1[0], 1: P1[1], 2: P1[2]}
    # the residual after two rejections, read off the verifier
    rej = exact_law(lambda u: tree.verify_mss(P1, q2, [2, 2], u), 3, key=lambda v: (v.n_accepted, v.tokens))
    no = {t[0]: pr for (n, t), pr in rej.items() if n == 0}
    total = sum(no.values())
    assert {t: pr / total for t, pr in no.items()} == {0: F(11, 12), 1: F(1, 12)}


@pytest.mark.parametrize("k, rho, acc, residual, bound", [
    (2, 1.463325, 0.785330, (0.965831, 0.034169, 0.0), 0.86),
    (3, 1.792593, 0.858519, (1.0, 0.0, 0.0), 0.988),
])
def test_t4_kseq_numbers(k, rho, acc, residual, bound):
    p, q = targets.t1_pair()
    r = tree.kseq_rho(p, q, k)
    assert r == pytest.approx(rho, abs=5e-7)
    assert tree.kseq_acceptance(p, q, k) == pytest.approx(acc, abs=5e-7)
    w = tree.kseq_residual_weights(p, q, k, r)
    assert w / w.sum() == pytest.approx(residual, abs=5e-7)
    assert tree.kseq_upper_bound(p, q, k) == pytest.approx(bound, abs=1e-12)
    assert tree.kseq_valid(p, q, k, r) and not tree.kseq_valid(p, q, k, r - 1e-4)


def test_t4_kseq_exact_law_at_rational_rho():
    """K-SEQ with k = 2 i.i.d. candidates and an exact rho just above rho*: law == p,
    acceptance == 1 - (1 - beta(rho))^2 exactly."""
    rho = F(14634, 10000)
    assert tree.kseq_valid(P1, Q1, 2, rho) and not tree.kseq_valid(P1, Q1, 2, F(14632, 10000))
    law: dict = {}
    acc = F(0)
    for c in product(range(3), repeat=2):
        w = Q1[c[0]] * Q1[c[1]]
        for v, pr in exact_law(lambda u: tree.verify_kseq(P1, Q1, list(c), u, rho=rho), 3).items():
            law[v.tokens[0]] = law.get(v.tokens[0], 0) + w * pr
            acc += w * pr * v.n_accepted
    assert law == {0: P1[0], 1: P1[1], 2: P1[2]}
    assert acc == tree.kseq_acceptance(P1, Q1, 2, rho=rho)


def test_t4_deterministic_candidates():
    """C = {x1, x3}: sample-and-match accepts with probability p(C) = 0.7."""
    p_rows = np.stack([P1, P1, P1])
    law = exact_law(lambda u: tree.verify_tree_deterministic(p_rows, [0, 2], [-1, -1], u), 2,
                    key=lambda v: v.n_accepted)
    assert law[1] == F(7, 10)
    assert tree.tree_expected_length(p_rows, [0, 2], [-1, -1]) == F(17, 10)


# ---------------------------------------------------------------- T5


def _peaked(v, token, prob):
    """Exact row [v] with mass ``prob`` on ``token`` and the rest spread evenly."""
    rest = (1 - F(prob)) / (v - 1)
    return frac_array([F(prob) if i == token else rest for i in range(v)])


def test_t5_deterministic_chain():
    v = 5
    probs = [F("0.9"), F("0.8"), F("0.7"), F("0.6")]
    rows = np.stack([_peaked(v, i, a) for i, a in enumerate(probs)] + [_peaked(v, 4, F(1, 5))])
    toks, parents = [0, 1, 2, 3], [-1, 0, 1, 2]
    assert tree.tree_expected_length(rows, toks, parents) == F("3.4264")
    law = exact_law(lambda u: tree.verify_tree_deterministic(rows, toks, parents, u), 5,
                    key=lambda v: v.n_emitted)
    assert law == {1: F("0.1"), 2: F("0.18"), 3: F("0.216"), 4: F("0.2016"), 5: F("0.3024")}


def _t5_tree(v=6):
    # nodes: 0 = A (root child), 1 = B (root child), 2 = C (child of A), 3 = D (child of B)
    toks, parents = [0, 1, 2, 3], [-1, -1, 0, 1]
    root = frac_array([F(1, 2), F(3, 10)] + [F(1, 20)] * 4)
    rows = np.stack([root, _peaked(v, 2, F(3, 5)), _peaked(v, 3, F(9, 10)),
                     _peaked(v, 5, F(1, 2)), _peaked(v, 5, F(1, 2))])
    return rows, toks, parents


def test_t5_deterministic_tree():
    rows, toks, parents = _t5_tree()
    assert tree.tree_expected_length(rows, toks, parents) == F("2.37")
    law = exact_law(lambda u: tree.verify_tree_deterministic(rows, toks, parents, u), 3)
    assert sum(pr * v.n_emitted for v, pr in law.items()) == F("2.37")
    assert sum(pr for v, pr in law.items() if v.n_accepted >= 1) == F("0.8")
    for v in law:  # paths name the accepted nodes
        assert tuple(toks[n] for n in v.path) == v.tokens[:v.n_accepted]


def test_t5_temperature_zero_is_the_argmax_path():
    logits = np.log(np.array([[5, 3, 1, 1], [1, 1, 6, 2], [7, 1, 1, 1], [1, 1, 1, 9]], dtype=float))
    rows = process_logits(logits, temperature=0)
    # tree: 0 -> token 1 (miss), 1 -> token 0 (match), 2 -> token 2 under node 1 (match)
    toks, parents = [1, 0, 2], [-1, -1, 1]
    p_rows = np.stack([rows[0], rows[1], rows[1], rows[3]])
    for u in ([0.0, 0.0, 0.0], [0.999, 0.5, 0.3]):
        v = tree.verify_tree_deterministic(p_rows, toks, parents, u)
        assert v.tokens == (0, 2, 3) and v.path == (1, 2) and v.bonus


def test_t5_d2sd_boundary_posterior():
    c = [0.95, 0.84, 0.62, 0.70, 0.42]
    r = tree.d2sd_boundary_posterior(c)
    assert r == pytest.approx([0.05, 0.152, 0.30324, 0.148428, 0.20087256], abs=1e-12)
    assert tree.d2sd_boundary_posterior([F(x) for x in ("0.95", "0.84", "0.62", "0.70", "0.42")]) == \
        [F("0.05"), F("0.152"), F("0.30324"), F("0.148428"), F("0.20087256")]
    assert sorted(range(5), key=lambda i: -r[i])[:4] == [2, 4, 1, 3]
    assert tree.d2sd_branch_set(c, 4) == [1, 2, 3, 4]


def test_trie_from_d2sd_rows():
    rows = [[5, 1, 2], [5, 1, 3], [5, 4], [5, 1, 2, 7]]
    toks, parents, node_of = tree.trie_from_sequences(rows)
    assert list(toks) == [5, 1, 2, 3, 4, 7]
    assert list(parents) == [-1, 0, 1, 1, 0, 2]
    assert node_of == [[0, 1, 2], [0, 1, 3], [0, 4], [0, 1, 2, 5]]


# ---------------------------------------------------------------- K = 0 (legal: bonus only)


def test_k0_emits_one_token_from_p0():
    p0 = P1[None, :]
    empty_q = np.zeros((0, 3))
    cases = {
        "chain": lambda u: verify_chain(p0, empty_q, [], u),
        "block": lambda u: verify_block(p0, empty_q, [], u),
        "mss": lambda u: tree.verify_mss(P1, empty_q, [], u),
        "mss_tree": lambda u: tree.verify_mss_tree(p0, frac_array([Q1]), [], [], u),
        "kseq": lambda u: tree.verify_kseq(P1, Q1, [], u),
        "deterministic": lambda u: tree.verify_tree_deterministic(p0, [], [], u),
    }
    for name, fn in cases.items():
        law = exact_law(fn, 1)
        assert all(v.n_accepted == 0 and v.bonus and len(v.tokens) == 1 for v in law), name
        assert {v.tokens[0]: pr for v, pr in law.items()} == {0: P1[0], 1: P1[1], 2: P1[2]}, name
