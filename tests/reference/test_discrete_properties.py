"""Property-based tests (hypothesis) of the discrete oracle, in exact arithmetic.

Probability vectors are integer weights normalised to Fractions. Every pair strategy
forces the edge cases in: p == q, disjoint supports, one-hot rows, q(x) = 0 on some
tokens (``mode``), plus K = 0 and K = 1. Exact output laws come from integrating over
the uniforms (tests/_discrete_exact.py) and over the drafts' own law. Strategies:
tests/strategies.py.
"""
from __future__ import annotations

from fractions import Fraction as F
from itertools import product

import numpy as np
from hypothesis import assume, example, given
from hypothesis import strategies as st

from _discrete_exact import exact_law, normalise_weights
from strategies import examples, markov_pair, seeds, small_round, tree_parents, weight_pair, weight_pairs
from specoracle.reference import targets, tree
from specoracle.reference.categorical import verify_block, verify_chain, verify_greedy
from specoracle.reference.decoding import sample_autoregressive, speculative_decode


def as_dict(row):
    return {i: x for i, x in enumerate(row) if x}


def nonzero(law):
    return {k: v for k, v in law.items() if v}


# ---------------------------------------------------------------- K = 0 and K = 1 chain / block


@given(weight_pairs(2, 4), st.sampled_from(["chain", "block"]))
@example(([1, 0], [0, 1]), "chain")     # disjoint supports
@example(([2, 3], [2, 3]), "block")     # p == q
def test_k1_output_law_is_p(pair, which):
    wp, wq = pair
    p, q = normalise_weights(wp), normalise_weights(wq)
    verifier = verify_chain if which == "chain" else verify_block
    p_rows, q_rows = np.stack([p, p]), np.stack([q])
    law: dict = {}
    for x in range(len(p)):
        if q[x] == 0:
            continue
        for v, pr in exact_law(lambda u: verifier(p_rows, q_rows, [x], u), 2).items():
            assert len(v.tokens) == v.n_accepted + 1 and v.bonus == (v.n_accepted == 1)
            assert v.fallbacks == ()
            law[v.tokens[0]] = law.get(v.tokens[0], 0) + q[x] * pr
    assert nonzero(law) == as_dict(p)
    # acceptance is beta(p, q) = 1 - TV
    acc = sum(q[x] * pr for x in range(len(p)) if q[x]
              for v, pr in exact_law(lambda u: verifier(p_rows, q_rows, [x], u), 2).items()
              if v.n_accepted == 1)
    assert acc == targets.beta(p, q)


@given(weight_pairs(2, 4))
def test_k0_is_a_target_draw(pair):
    p = normalise_weights(pair[0])
    for fn in (verify_chain, verify_block):
        law = exact_law(lambda u: fn(p[None, :], np.zeros((0, len(p))), [], u), 1,
                        key=lambda v: (v.n_accepted, v.bonus, v.tokens))
        assert nonzero({t[0]: pr for (_, _, t), pr in law.items()}) == as_dict(p)
        assert all(n == 0 and b for n, b, _ in law)


# ---------------------------------------------------------------- Markov models: chain vs block


def round_law(target, draft, prefix, gamma, verifier):
    """Exact law of (completed sequence of length gamma+1, tau) for one verification
    round: drafts from the draft model, target rows from the target model, emitted
    tokens completed by target sampling."""
    v = target.vocab_size
    law: dict = {}
    taus: dict = {}
    for x in product(range(v), repeat=gamma):
        qx = draft.sequence_prob(prefix, x)
        if qx == 0:
            continue
        p_rows = target.next_probs_block(prefix, x)
        q_rows = np.stack([draft.next_probs(list(prefix) + list(x[:i])) for i in range(gamma)])
        for out, pr in exact_law(lambda u: verifier(p_rows, q_rows, list(x), u), gamma + 1).items():
            taus[out.n_accepted] = taus.get(out.n_accepted, 0) + qx * pr
            head = out.tokens
            for rest in product(range(v), repeat=gamma + 1 - len(head)):
                w = qx * pr * target.sequence_prob(list(prefix) + list(head), rest)
                law[head + rest] = law.get(head + rest, 0) + w
    return law, taus


@examples(25)
@given(markov_pair(), st.integers(1, 3))
def test_block_and_chain_exact_and_block_dominates(models, gamma):
    """§8 item 1: exact target law for chain and block verification on context-dependent
    models; Pr(tau >= i) matches the closed forms; E[tau_block] >= E[tau_token]."""
    target, draft = models
    prefix = [0]
    want = nonzero(target.sequence_law(prefix, gamma + 1))
    law_c, tau_c = round_law(target, draft, prefix, gamma, verify_chain)
    law_b, tau_b = round_law(target, draft, prefix, gamma, verify_block)
    assert nonzero(law_c) == want
    assert nonzero(law_b) == want
    surv_c = [sum(p for t, p in tau_c.items() if t >= i) for i in range(1, gamma + 1)]
    surv_b = [sum(p for t, p in tau_b.items() if t >= i) for i in range(1, gamma + 1)]
    assert surv_c == targets.token_survival(target, draft, prefix, gamma)
    assert surv_b == targets.block_survival(target, draft, prefix, gamma)
    assert all(b >= c for b, c in zip(surv_b, surv_c))
    assert sum(surv_b) >= sum(surv_c)


# ---------------------------------------------------------------- MSS at one node


@examples(30)
@given(st.integers(2, 3).flatmap(lambda v: st.tuples(weight_pair(v), weight_pair(v), weight_pair(v))),
       st.integers(1, 3))
def test_mss_node_output_law_is_p(pairs, k):
    """k children drawn independently from DIFFERENT draft rows q_j: law == p, and
    Pr(some child accepted) == 1 - prod(1 - beta_j) (mss_acceptance)."""
    p = normalise_weights(pairs[0][0])
    qs = np.stack([normalise_weights(pairs[j][1]) for j in range(k)])
    law: dict = {}
    acc = F(0)
    for kids in product(range(len(p)), repeat=k):
        w = F(1)
        for j, c in enumerate(kids):
            w *= qs[j][c]
        if w == 0:
            continue
        for v, pr in exact_law(lambda u: tree.verify_mss(p, qs, list(kids), u), k + 1).items():
            law[v.tokens[0]] = law.get(v.tokens[0], 0) + w * pr
            if v.n_accepted:
                acc += w * pr
                assert kids[v.path[0]] == v.tokens[0]
            assert v.fallbacks == ()
    assert nonzero(law) == as_dict(p)
    assert acc == tree.mss_acceptance(p, qs)[0]


# ---------------------------------------------------------------- trees

def node_prefix(prefix, tokens, parents, n):
    return list(prefix) + [tokens[i] for i in tree.path_to(n, parents)]


def tree_rows(model, prefix, tokens, parents):
    rows = [model.next_probs(prefix)]
    rows += [model.next_probs(node_prefix(prefix, tokens, parents, n)) for n in range(len(tokens))]
    return np.stack(rows)


def completed(target, prefix, head, length):
    out = {}
    for rest in product(range(target.vocab_size), repeat=length - len(head)):
        out[head + rest] = target.sequence_prob(list(prefix) + list(head), rest)
    return out


@examples(20)
@given(markov_pair(max_vocab=2, order_max=2), tree_parents(max_nodes=4))
@example(None, [-1, -1, -1])  # three i.i.d. children of the root (k = 3)
def test_mss_tree_output_law(models, parents):
    """SpecInfer MSS on a stochastic tree: every node's token drawn from the draft row
    at its parent (children i.i.d.), law of the emitted round (completed by target
    sampling to depth+1) == the target's sequence law."""
    if models is None:
        rng = np.random.default_rng(7)
        models = (targets.MarkovModel.random(rng, 3, exact=True), targets.MarkovModel.random(rng, 3, exact=True))
    target, draft = models
    prefix = [1]
    n = len(parents)
    length = tree.tree_depth(parents) + 1
    law: dict = {}
    for toks in product(range(target.vocab_size), repeat=n):
        w = F(1)
        for i in range(n):
            par_prefix = node_prefix(prefix, toks, parents, parents[i]) if parents[i] >= 0 else prefix
            w *= draft.next_probs(par_prefix)[toks[i]]
        if w == 0:
            continue
        p_rows = tree_rows(target, prefix, toks, parents)
        q_rows = tree_rows(draft, prefix, toks, parents)
        for v, pr in exact_law(lambda u: tree.verify_mss_tree(p_rows, q_rows, list(toks), parents, u),
                               n + 1).items():
            check_tree_verdict(v, toks, parents)
            for seq, pw in completed(target, prefix, v.tokens, length).items():
                law[seq] = law.get(seq, 0) + w * pr * pw
    assert nonzero(law) == nonzero(target.sequence_law(prefix, length))


def check_tree_verdict(v, toks, parents):
    assert len(v.tokens) == v.n_accepted + 1 == len(v.path) + 1
    assert tuple(toks[i] for i in v.path) == v.tokens[:-1]
    for a, b in zip((-1,) + v.path, v.path):
        assert parents[b] == a
    children = [i for i in range(len(toks)) if parents[i] == (v.path[-1] if v.path else -1)]
    assert v.bonus == (not children)
    assert v.fallbacks == ()


@examples(40)
@given(markov_pair(max_vocab=3, order_max=2), tree_parents(max_nodes=6), st.data())
@example(None, [-1, -1, 0, 1], None)  # duplicated sibling tokens with different subtrees
def test_deterministic_tree_output_law(models, parents, data):
    """Sample-and-match on a fixed (deterministic) tree of any tokens, duplicates
    included: the emitted round completed by target sampling has the target law, and
    E[tau + 1] == tree_expected_length."""
    if models is None:
        rng = np.random.default_rng(11)
        models = (targets.MarkovModel.random(rng, 3, exact=True), None)
        toks = [2, 2, 0, 1]
    else:
        toks = [data.draw(st.integers(0, models[0].vocab_size - 1)) for _ in parents]
    target = models[0]
    prefix = [0]
    length = tree.tree_depth(parents) + 1
    p_rows = tree_rows(target, prefix, toks, parents)
    law: dict = {}
    mean = F(0)
    for v, pr in exact_law(lambda u: tree.verify_tree_deterministic(p_rows, toks, parents, u),
                           length).items():
        assert len(v.tokens) == v.n_accepted + 1 == len(v.path) + 1
        assert tuple(toks[i] for i in v.path) == v.tokens[:-1]
        mean += pr * v.n_emitted
        for seq, pw in completed(target, prefix, v.tokens, length).items():
            law[seq] = law.get(seq, 0) + pr * pw
    assert nonzero(law) == nonzero(target.sequence_law(prefix, length))
    assert mean == tree.tree_expected_length(p_rows, toks, parents)


def test_duplicated_siblings_act_as_a_trie():
    """Two root children with the same token and different subtrees: both subtrees stay
    reachable (the D2SD code keeps every valid row), so the tree equals its trie."""
    rng = np.random.default_rng(3)
    target = targets.MarkovModel.random(rng, 3, exact=True)
    toks, parents = [2, 2, 1, 2], [-1, -1, 0, 1]   # p(1 | 2), p(2 | 2) > 0 for this seed
    p_rows = tree_rows(target, [0], toks, parents)
    t_toks, t_par, _ = tree.trie_from_sequences([[2, 1], [2, 2]])
    t_rows = tree_rows(target, [0], list(t_toks), list(t_par))
    assert tree.tree_expected_length(p_rows, toks, parents) == tree.tree_expected_length(t_rows, t_toks, t_par)
    reached = {v.path for v in exact_law(lambda u: tree.verify_tree_deterministic(p_rows, toks, parents, u), 3)}
    assert (0, 2) in reached and (1, 3) in reached


# ---------------------------------------------------------------- K-SEQ


@examples(30)
@given(weight_pairs(2, 3), st.integers(1, 3), st.booleans())
def test_kseq_output_law_is_p(pair, k, at_k):
    """Any valid exact rho (rho = k, or a rational just above rho*) gives law == p and
    acceptance 1 - (1 - beta(rho))^k; rho* itself is never beaten by the upper bound."""
    p, q = normalise_weights(pair[0]), normalise_weights(pair[1])
    rho = F(k)
    if not at_k:
        rho = F(tree.kseq_rho(p, q, k)).limit_denominator(10 ** 6) + F(1, 10 ** 6)
        assume(tree.kseq_valid(p, q, k, rho))
    assert tree.kseq_acceptance(p, q, k) <= float(tree.kseq_upper_bound(p, q, k)) + 1e-12
    law: dict = {}
    acc = F(0)
    for c in product(range(len(p)), repeat=k):
        w = F(1)
        for x in c:
            w *= q[x]
        if w == 0:
            continue
        for v, pr in exact_law(lambda u: tree.verify_kseq(p, q, list(c), u, rho=rho), k + 1).items():
            law[v.tokens[0]] = law.get(v.tokens[0], 0) + w * pr
            acc += w * pr * v.n_accepted
    assert nonzero(law) == as_dict(p)
    assert acc == tree.kseq_acceptance(p, q, k, rho=rho)


# ---------------------------------------------------------------- the decoding loop


@examples(15)
@given(markov_pair(max_vocab=2, order_max=1), st.integers(0, 2), st.sampled_from(["chain", "block"]))
def test_speculative_decode_exact_law(models, k, verifier):
    """The whole loop (drafting noise + verifier noise, several rounds) generates exactly
    the target's law of sequences; autoregressive sampling too."""
    target, draft = models
    n = 3
    law = exact_law(lambda u: speculative_decode(target, draft, [1], n, k, verifier,
                                                 u=u.reshape(n, 2 * k + 1)).tokens, n * (2 * k + 1))
    want = nonzero(target.sequence_law([1], n))
    assert law == want
    assert exact_law(lambda u: sample_autoregressive(target, [1], n, u=u), n) == want


@given(markov_pair(max_vocab=3, order_max=1), st.integers(0, 3), st.integers(1, 6))
def test_greedy_decode_is_the_target_argmax_path(models, k, n):
    target, draft = models
    res = speculative_decode(target, draft, [0], n, k, "greedy", u=np.zeros((n, 2 * k + 1)))
    seq = [0]
    for _ in range(n):
        row = target.next_probs(seq)
        seq.append(max(range(len(row)), key=lambda i: (row[i], -i)))
    assert res.tokens == tuple(seq[1:])
    assert res.target_calls == res.n_rounds and sum(t + 1 for t in res.taus) == n
    assert all(t <= d for t, d in zip(res.taus, res.drafted))


def test_rng_wrappers_consume_the_documented_noise():
    p, q = targets.t1_pair()
    p_rows = np.stack([p] * 4)
    for seed in range(5):
        u = np.random.default_rng(seed).random(4)
        rng = np.random.default_rng(seed)
        assert tree.verify_mss_rng(p, np.stack([q] * 3), [2, 2, 0], rng) == \
            tree.verify_mss(p, np.stack([q] * 3), [2, 2, 0], u)
        rng = np.random.default_rng(seed)
        assert tree.verify_kseq_rng(p, q, [2, 1, 2], rng) == tree.verify_kseq(p, q, [2, 1, 2], u)
        rng = np.random.default_rng(seed)
        assert tree.verify_mss_tree_rng(p_rows, np.stack([q] * 4), [2, 0, 1], [-1, -1, 0], rng) == \
            tree.verify_mss_tree(p_rows, np.stack([q] * 4), [2, 0, 1], [-1, -1, 0], u)
        rng = np.random.default_rng(seed)
        assert tree.verify_tree_deterministic_rng(p_rows, [2, 0, 1], [-1, 0, 1], rng) == \
            tree.verify_tree_deterministic(p_rows, [2, 0, 1], [-1, 0, 1], u)
    model = targets.MarkovModel.context_free(p)
    draft = targets.MarkovModel.context_free(q)
    res_a = speculative_decode(model, draft, [], 7, 2, "block", np.random.default_rng(1))
    res_b = speculative_decode(model, draft, [], 7, 2, "block", u=np.random.default_rng(1).random((7, 5)))
    assert res_a == res_b and len(res_a.tokens) == 7


def test_greedy_verifier_ties_and_k0():
    rows = np.array([[0.4, 0.4, 0.2], [0.1, 0.2, 0.7]])
    assert verify_greedy(rows, [0]).tokens == (0, 2)      # tie: lowest id
    assert verify_greedy(rows, [1]).tokens == (0,)        # mismatch: the target's token
    assert verify_greedy(rows[:1], []).tokens == (0,)     # K = 0


# ---------------------------------------------------------------- float64 == exact decisions


def _floats(a):
    return np.array(a, dtype=np.float64)


@examples(30)
@given(weight_pairs(2, 4), seeds)
def test_float64_and_exact_runs_agree(pair, seed):
    """The same code in float64 and in Fractions makes the same decisions on the same
    uniforms (float u converted exactly to Fractions). The two runs could differ only if
    a uniform fell within ~1e-16 (the float64 rounding of p, q and the residuals) of a
    rational breakpoint: probability ~1e-15 per comparison, so a difference is a real
    divergence of the two code paths."""
    p, q = normalise_weights(pair[0]), normalise_weights(pair[1])
    pf, qf = _floats(p), _floats(q)
    rng = np.random.default_rng(seed)
    support_q = [x for x in range(len(p)) if q[x] > 0]
    kids = [int(rng.choice(support_q)) for _ in range(3)]
    u = rng.random(4)
    ue = np.array([F(x) for x in u], dtype=object)
    pairs = [
        (lambda uu, P_, Q_: tree.verify_mss(P_, np.stack([Q_] * 3), kids, uu)),
        (lambda uu, P_, Q_: tree.verify_kseq(P_, Q_, kids, uu, rho=3 if P_.dtype == object else 3.0)),
        (lambda uu, P_, Q_: tree.verify_mss_tree(np.stack([P_] * 4), np.stack([Q_] * 4), kids, [-1, 0, 0], uu)),
        (lambda uu, P_, Q_: tree.verify_tree_deterministic(np.stack([P_] * 4), kids, [-1, 0, 1], uu)),
        (lambda uu, P_, Q_: verify_chain(np.stack([P_] * 4), np.stack([Q_] * 3), kids, uu)),
        (lambda uu, P_, Q_: verify_block(np.stack([P_] * 4), np.stack([Q_] * 3), kids, uu)),
    ]
    for fn in pairs:
        a, b = fn(u, pf, qf), fn(ue, p, q)
        assert (a.n_accepted, a.tokens, a.bonus, a.path) == (b.n_accepted, b.tokens, b.bonus, b.path)


@given(small_round())
@example((np.array([[0.5, 0.5], [1.0, 0.0]]), np.array([[1.0, 0.0]]), np.array([0]), np.array([0.0, 0.5])))
def test_float_rounds_emit_accepted_drafts_then_a_token_of_the_target_support(case):
    """Chain, block and greedy on any float64 round: the emitted tokens are the first
    n_accepted drafts, then one token with p[n_accepted] > 0 (a residual or bonus draw
    never leaves the target's support, fallbacks included); p == q rows accept."""
    p, q, draft, u = case
    k = len(draft)
    for fn in (verify_chain, verify_block):
        v = fn(p, q, draft, u)
        n = v.n_accepted
        assert 0 <= n <= k and v.tokens[:n] == tuple(int(t) for t in draft[:n]), (fn.__name__, v)
        assert p[n, v.tokens[n]] > 0 and v.bonus == (n == k), (fn.__name__, v)
    g = verify_greedy(p, draft)
    assert g.tokens[-1] == int(np.argmax(p[g.n_accepted]))
    if k and np.array_equal(p[:k], q):
        assert verify_chain(p, q, draft, u).n_accepted == k


# ---------------------------------------------------------------- the Verdict length invariant

ROUND_VERIFIERS = ("verify_chain", "verify_block", "verify_greedy", "verify_mss_tree",
                   "verify_tree_deterministic")
NODE_STEP_VERIFIERS = ("verify_mss", "verify_kseq")


def test_every_verifier_has_a_documented_length_invariant():
    """Every ``verify_*`` core of reference/ belongs to one family of the Verdict docstring
    (a new verifier must be classified there and in the property test below)."""
    from specoracle.reference import categorical
    found = {name for mod in (categorical, tree) for name in dir(mod)
             if name.startswith("verify_") and not name.endswith("_rng")}
    assert found == set(ROUND_VERIFIERS) | set(NODE_STEP_VERIFIERS)


@examples(60)
@given(weight_pairs(2, 4), st.integers(0, 3), tree_parents(max_nodes=5),
       seeds)
@example(([1, 1], [1, 1]), 2, [-1, 0], 0)      # p == q: everything accepted
@example(([1, 0], [0, 1]), 2, [-1, -1], 0)     # disjoint: nothing accepted
def test_verdict_length_invariant_every_verifier(pair, k, parents, seed):
    """Verdict's documented invariant, per family (reference/types.py): whole rounds end
    with exactly one correction/bonus token, len(tokens) == n_accepted + 1; the one-node
    steps (MSS, K-SEQ) return the accepted child alone (len == n_accepted == 1, the round
    continues) or the round's last token (len == n_accepted + 1 == 1)."""
    p, q = _floats(normalise_weights(pair[0])), _floats(normalise_weights(pair[1]))
    rng = np.random.default_rng(seed)
    support_q = [x for x in range(len(p)) if q[x] > 0]
    draft = [int(rng.choice(support_q)) for _ in range(k)]
    n = len(parents)
    toks = [int(rng.choice(support_q)) for _ in range(n)]
    rows = {name: [] for name in ROUND_VERIFIERS + NODE_STEP_VERIFIERS}
    rows["verify_chain"].append(verify_chain(np.stack([p] * (k + 1)), np.stack([q] * k) if k else None,
                                             draft, rng.random(k + 1)))
    rows["verify_block"].append(verify_block(np.stack([p] * (k + 1)), np.stack([q] * k) if k else None,
                                             draft, rng.random(k + 1)))
    rows["verify_greedy"].append(verify_greedy(np.stack([p] * (k + 1)), draft))
    rows["verify_mss_tree"].append(tree.verify_mss_tree(np.stack([p] * (n + 1)), np.stack([q] * (n + 1)),
                                                        toks, parents, rng.random(n + 1)))
    rows["verify_tree_deterministic"].append(tree.verify_tree_deterministic(
        np.stack([p] * (n + 1)), toks, parents, rng.random(tree.tree_depth(parents) + 1)))
    rows["verify_mss"].append(tree.verify_mss(p, np.stack([q] * k) if k else [], draft, rng.random(k + 1)))
    rows["verify_kseq"].append(tree.verify_kseq(p, q, draft, rng.random(k + 1)))
    for name in ROUND_VERIFIERS:
        for v in rows[name]:
            assert len(v.tokens) == v.n_accepted + 1 == v.n_emitted, (name, v)
            if name in ("verify_mss_tree", "verify_tree_deterministic"):
                assert len(v.path) == v.n_accepted, (name, v)
    for name in NODE_STEP_VERIFIERS:
        for v in rows[name]:
            assert v.n_accepted in (0, 1), (name, v)
            if v.n_accepted:
                assert len(v.tokens) == v.n_accepted == 1 and not v.bonus, (name, v)
                assert v.tokens == (draft[v.path[0]],) and len(v.path) == 1, (name, v)
            else:
                assert len(v.tokens) == 1 and v.path == () and v.bonus == (k == 0), (name, v)
