"""The discrete theorems of ALGORITHMS.md (§1, §7 T1-T5, §8), proved by exact
enumeration (proofs/exact.py) and sympy (proofs/symbolic.py), and registered in
proofs/theorems.py.

Every exact checker drives the reference's own verifier (looked up at CALL time as
an attribute of its module, so a monkeypatched reference is what gets proved) or a
verifier passed in explicitly (the negative controls of the tests). Each returns
``(cases, detail)`` where ``cases`` counts the (model pair, draft, noise box) leaves
enumerated, and raises :class:`ProofFailure` naming the first failing case.

Model pairs (``_pairs``): T1's pair (p=(.5,.3,.2), q=(.2,.2,.6)) context-free with
K = 0..4, random context-dependent models (a fresh random row for every prefix,
entries with small denominators and some exact zeros) and random Markov models,
after a non-empty context so that conditioning on the context is exercised. Quick:
V in {2, 3}, K <= 4, 3 seeds (ALGORITHMS.md §8 recipe 1: |V| <= 3, gamma <= 4).
Thorough: 8 seeds, V = 2 up to K = 5, V = 3 up to K = 4, V = 4 up to K = 3.
"""
from __future__ import annotations

from fractions import Fraction as F

import numpy as np

from . import exact
from . import symbolic
from .theorems import ProofFailure, Theorem, register
from ..reference import categorical, targets, tree

LEVIATHAN = "arXiv 2211.17192 (Leviathan et al.); arXiv 2302.01318 (Chen et al.)"
BLOCK = "arXiv 2403.10444 (Sun et al., block verification)"
SPECINFER = "arXiv 2305.09781 (Miao et al., SpecInfer)"
SPECTR = "arXiv 2310.15141 (Sun et al., SpecTr)"
SAMPLE_MATCH = "arXiv 2602.06036 (DFlash); arXiv 2606.04446 (D2SD)"

T1_P = (F(5, 10), F(3, 10), F(2, 10))
T1_Q = (F(2, 10), F(2, 10), F(6, 10))


def _fail(what: str, case: str, detail: str = "") -> None:
    raise ProofFailure(f"{what} fails for {case}" + (f": {detail}" if detail else ""))


# ---------------------------------------------------------------- model pairs


def _pairs(quick: bool, max_k: int | None = None):
    """Yield ``(name, p_model, q_model, V, K, context)`` (see the module docstring)."""
    kmax_by_v = {2: 4, 3: 4} if quick else {2: 5, 3: 4, 4: 3}
    seeds = range(3) if quick else range(8)
    out = []
    for k in range(0, 5):
        out.append(("T1 iid", exact.iid_model(T1_P), exact.iid_model(T1_Q), 3, k, ()))
    for v, kmax in kmax_by_v.items():
        for seed in seeds:
            pm = exact.random_model(v, seed=100 * v + seed)
            qm = exact.random_model(v, seed=100 * v + seed + 50)
            for k in range(1, kmax + 1):
                out.append((f"random V={v} seed={seed}", pm, qm, v, k, (v - 1,)))
            mp = exact.random_markov_model(v, seed=200 * v + seed)
            mq = exact.random_markov_model(v, seed=200 * v + seed + 50)
            out.append((f"Markov V={v} seed={seed}", mp, mq, v, kmax, (0,)))
            # order-2 n-gram models of reference/targets.py (exact Fraction tables)
            rng = np.random.default_rng(500 * v + seed)
            np2 = exact.as_model(targets.MarkovModel.random(rng, v, order=2, exact=True))
            nq2 = exact.as_model(targets.MarkovModel.random(rng, v, order=2, exact=True))
            out.append((f"targets.MarkovModel order 2, V={v} seed={seed}", np2, nq2, v, kmax - 1, (1,)))
    for name, pm, qm, v, k, ctx in out:
        if max_k is None or k <= max_k:
            yield name, pm, qm, v, k, ctx


class _NextProbs:
    """A model function seen through the ``next_probs`` / ``sequence_prob`` protocol of
    reference/targets.py, so that its closed forms can be checked against the engine."""

    def __init__(self, model, vocab):
        self.model, self.vocab_size = model, vocab

    def next_probs(self, prefix):
        return np.array(self.model(tuple(int(t) for t in prefix)), dtype=object)

    def sequence_prob(self, prefix, continuation):
        return exact.prefix_probability(self.model, tuple(continuation), tuple(prefix))


def _case(name, v, k, ctx):
    return f"{name}, V={v}, K={k}, context={ctx}"


def _check_lossless(theorem: str, verifier, quick: bool):
    """Fail ``theorem`` unless ``verifier``'s output law, completed with target samples to
    K+1 tokens, equals p(x^{K+1}) exactly for every pair, K, draft and noise box of
    :func:`_pairs`; returns (cases, summary)."""
    cases = 0
    for name, pm, qm, v, k, ctx in _pairs(quick):
        law = exact.draft_round_law(verifier, pm, qm, v, k, ctx)
        diff = exact.law_difference(law.sequences, exact.sequence_law(pm, v, k + 1, ctx))
        if diff:
            _fail(theorem, _case(name, v, k, ctx), exact.describe_difference(diff))
        cases += law.leaves
    return cases, "output law == target law for every pair, K, draft and noise box"


def _check_tails(theorem: str, verifier, pair, closed_form, survival):
    """Fail ``theorem`` unless the tails P(tau >= i), i = 1..K, of ``verifier``'s exact round
    law equal both ``closed_form(pm, qm, v, i, ctx)`` (proofs/exact.py) and the reference's
    own ``survival(p, q, ctx, K)`` (reference/targets.py); returns the law. ``pair`` is one
    row of :func:`_pairs`."""
    name, pm, qm, v, k, ctx = pair
    law = exact.draft_round_law(verifier, pm, qm, v, k, ctx)
    for i in range(1, k + 1):
        want = closed_form(pm, qm, v, i, ctx)
        if law.tail(i) != want:
            _fail(theorem, _case(name, v, k, ctx), f"P(tau >= {i}) = {law.tail(i)}, closed form {want}")
    ref = survival(_NextProbs(pm, v), _NextProbs(qm, v), list(ctx), k)
    if [law.tail(i) for i in range(1, k + 1)] != list(ref):
        _fail(theorem, _case(name, v, k, ctx), f"targets.{survival.__name__} = {list(map(str, ref))}")
    return law


# ---------------------------------------------------------------- token (chain) verification


def check_token_lossless(quick: bool = True, verifier=None):
    """Law of the output, completed with target samples to K+1 tokens, == p(x^{K+1})."""
    verifier = verifier or categorical.verify_chain
    return _check_lossless("token.lossless", verifier, quick)


def check_token_acceptance(quick: bool = True, verifier=None):
    """P(tau >= i) == sum_{x^i} prod_k min(p, q) (== sum min(p, q) for i = 1), and
    P(X_1 = x, accepted) == min(p(x), q(x)) (T1)."""
    verifier = verifier or categorical.verify_chain
    cases = 0
    for name, pm, qm, v, k, ctx in _pairs(quick):
        law = _check_tails("token.acceptance_equals_overlap", verifier, (name, pm, qm, v, k, ctx),
                           exact.token_tail_closed_form, targets.token_survival)
        if k >= 1:
            for x in range(v):
                got = sum((pr for toks, pr in law.emitted.items() if len(toks) >= 2 and toks[0] == x),
                          F(0))
                want = min(pm(ctx)[x], qm(ctx)[x])
                if got != want:
                    _fail("token.acceptance_equals_overlap", _case(name, v, k, ctx),
                          f"P(X_1={x}, accepted) = {got}, min(p, q) = {want}")
        cases += law.leaves
    return cases, "P(tau>=i) == sum prod min(p,q); P(x, accepted) == min(p(x), q(x))"


def check_token_expected_length_iid(quick: bool = True, verifier=None):
    """Context-free pairs: P(tau >= i) = beta^i, E[tau] = beta (1 - beta^K)/(1 - beta),
    E[tokens per call] = (1 - beta^{K+1})/(1 - beta); T2's figures for T1's pair."""
    verifier = verifier or categorical.verify_chain
    pairs = [(T1_P, T1_Q)]
    rng = np.random.default_rng(7)
    for v in (2, 3):
        for _ in range(3 if quick else 10):
            pairs.append((exact.random_row(rng, v), exact.random_row(rng, v)))
    pairs.append((T1_P, T1_P))  # beta = 1
    cases = 0
    for p_row, q_row in pairs:
        v = len(p_row)
        beta = sum((min(a, b) for a, b in zip(p_row, q_row)), F(0))
        for k in range(1, 5 if quick else 6):
            law = exact.draft_round_law(verifier, exact.iid_model(p_row), exact.iid_model(q_row), v, k)
            tails = [law.tail(i) for i in range(1, k + 1)]
            if tails != [beta ** i for i in range(1, k + 1)]:
                _fail("token.expected_length_iid", f"p={p_row}, q={q_row}, K={k}",
                      f"P(tau>=i) = {tails}, beta^i with beta = {beta}")
            mean = law.mean_tau()
            want = F(k) if beta == 1 else beta * (1 - beta ** k) / (1 - beta)
            per_call = F(k + 1) if beta == 1 else (1 - beta ** (k + 1)) / (1 - beta)
            if mean != want or mean + 1 != per_call:
                _fail("token.expected_length_iid", f"p={p_row}, q={q_row}, K={k}",
                      f"E[tau] = {mean}, closed form {want}")
            cases += law.leaves
    law = exact.draft_round_law(verifier, exact.iid_model(T1_P), exact.iid_model(T1_Q), 3, 4)
    t2 = [F("0.6"), F("0.36"), F("0.216"), F("0.1296")]
    if [law.tail(i) for i in range(1, 5)] != t2 or law.mean_tau() != F("1.3056") \
            or law.mean_tau() + 1 != F("2.3056"):
        _fail("token.expected_length_iid", "T2 (T1's pair, K=4)",
              f"tails {[str(law.tail(i)) for i in range(1, 5)]}, E[tau] {law.mean_tau()}")
    return cases + law.leaves, "beta^i tails and E[tau] closed forms; T2: E[tau]=1.3056, 2.3056 tokens/call"


# ---------------------------------------------------------------- greedy


def check_greedy_lossless(quick: bool = True, verifier=None):
    """For EVERY draft in V^K, the output of greedy verification, completed with the
    target's argmax, is the target's greedy decode of K+1 tokens, and tau is the length
    of the longest drafted prefix that matches it (random models with many ties)."""
    verifier = verifier or categorical.verify_greedy
    cases = 0
    for name, pm, _qm, v, k, ctx in _pairs(quick):
        want = exact.greedy_decode(pm, v, k + 1, ctx)
        for draft, verdict in exact.greedy_round_outputs(verifier, pm, v, k, ctx):
            toks = tuple(int(t) for t in verdict.tokens)
            full = toks + exact.greedy_decode(pm, v, k + 1 - len(toks), ctx + toks)
            match = 0
            while match < k and draft[match] == want[match]:
                match += 1
            if full != want or verdict.n_accepted != match:
                _fail("greedy.lossless", _case(name, v, k, ctx),
                      f"draft {draft}: emitted {toks}, greedy decode {want}")
            cases += 1
    return cases, "output == target greedy decode for every draft; tau == longest matching prefix"


# ---------------------------------------------------------------- block verification


def check_block_lossless(quick: bool = True, verifier=None):
    """ALGORITHMS.md §1.3 validity theorem / §8 recipe 1: the block verifier's output,
    completed with target samples to K+1 tokens, has exactly the law p(x^{K+1})."""
    verifier = verifier or categorical.verify_block
    return _check_lossless("block.lossless", verifier, quick)


def check_block_dominates_token(quick: bool = True, verifier=None, token_verifier=None):
    """P(tau_block >= i) >= P(tau_tok >= i) for every i, hence E[tau_block] >= E[tau_tok]."""
    verifier = verifier or categorical.verify_block
    token_verifier = token_verifier or categorical.verify_chain
    cases = 0
    strict = 0
    for name, pm, qm, v, k, ctx in _pairs(quick):
        blk = exact.draft_round_law(verifier, pm, qm, v, k, ctx)
        tok = exact.draft_round_law(token_verifier, pm, qm, v, k, ctx)
        for i in range(1, k + 1):
            if blk.tail(i) < tok.tail(i):
                _fail("block.dominates_token", _case(name, v, k, ctx),
                      f"P(tau_block >= {i}) = {blk.tail(i)} < token's {tok.tail(i)}")
        strict += blk.mean_tau() > tok.mean_tau()
        cases += blk.leaves + tok.leaves
    return cases, f"tails dominate in every case (E[tau] strictly larger in {strict} pairs)"


def check_block_acceptance_closed_form(quick: bool = True, verifier=None):
    """P(tau_block >= i) == sum_{x^i} min_{0<=j<=i} q(x^j) p(x_{j+1}^i | x^j) (§1.3, T3(c)),
    and T3(b)'s table for T1's pair."""
    verifier = verifier or categorical.verify_block
    cases = 0
    for name, pm, qm, v, k, ctx in _pairs(quick):
        law = _check_tails("block.acceptance_closed_form", verifier, (name, pm, qm, v, k, ctx),
                           exact.block_tail_closed_form, targets.block_survival)
        cases += law.leaves
    t3b = {2: ([F("0.6"), F("0.44")], F("1.04")),
           3: ([F("0.6"), F("0.44"), F("0.338")], F("1.378")),
           4: ([F("0.6"), F("0.44"), F("0.338"), F("0.2636")], F("1.6416"))}
    for k, (tails, mean) in t3b.items():
        law = exact.draft_round_law(verifier, exact.iid_model(T1_P), exact.iid_model(T1_Q), 3, k)
        if [law.tail(i) for i in range(1, k + 1)] != tails or law.mean_tau() != mean:
            _fail("block.acceptance_closed_form", f"T3(b), K={k}",
                  f"tails {[str(law.tail(i)) for i in range(1, k + 1)]}, E[tau] {law.mean_tau()}")
        cases += law.leaves
    return cases, "tails == min-over-j closed form; T3(b): E[tau] = 1.04, 1.378, 1.6416"


def check_block_paper_example(quick: bool = True, verifier=None, token_verifier=None):
    """Sun et al.'s binary example (T3(a)): p=(1/3,2/3), q=(2/3,1/3), K=2: block
    E[tau]=11/9 with law (3,1,5)/9, token 10/9 with (3,2,4)/9, joint bound 12/9, the
    per-draft table (p_1, p_2, R_1, law of tau), and output law p^{(x)3}."""
    verifier = verifier or categorical.verify_block
    token_verifier = token_verifier or categorical.verify_chain
    p_row, q_row = (F(1, 3), F(2, 3)), (F(2, 3), F(1, 3))
    pm, qm = exact.iid_model(p_row), exact.iid_model(q_row)
    blk = exact.draft_round_law(verifier, pm, qm, 2, 2)
    tok = exact.draft_round_law(token_verifier, pm, qm, 2, 2)
    law_b = [blk.tau.get(i, F(0)) for i in range(3)]
    law_t = [tok.tau.get(i, F(0)) for i in range(3)]
    joint = sum((exact.joint_coupling_tail(pm, qm, 2, i) for i in (1, 2)), F(0))
    if law_b != [F(3, 9), F(1, 9), F(5, 9)] or blk.mean_tau() != F(11, 9):
        _fail("block.paper_example", "block verification", f"law of tau {law_b}, E {blk.mean_tau()}")
    if law_t != [F(3, 9), F(2, 9), F(4, 9)] or tok.mean_tau() != F(10, 9):
        _fail("block.paper_example", "token verification", f"law of tau {law_t}, E {tok.mean_tau()}")
    if joint != F(12, 9):
        _fail("block.paper_example", "joint coupling bound", str(joint))
    if exact.law_difference(blk.sequences, exact.sequence_law(pm, 2, 3)):
        _fail("block.paper_example", "output law", "!= p^(x)3")
    # The per-draft table of T3(a): (p_1, p_2, R_1, {tau: prob}) for drafts aa, ab, ba, bb.
    table = {(0, 0): (F(1, 2), F(1, 4), F(0), {2: F(1, 4), 0: F(3, 4)}),
             (0, 1): (F(1, 2), F(1), F(0), {2: F(1)}),
             (1, 0): (F(1), F(1, 2), F(1, 3), {2: F(1, 2), 1: F(1, 2)}),
             (1, 1): (F(1), F(1), F(1, 3), {2: F(1)})}
    cases = blk.leaves + tok.leaves
    for draft, (p1, p2, r1, tau_law) in table.items():
        p = exact.rows(pm, (), draft, 3)
        q = exact.rows(qm, (), draft, 2)
        survival, mass = categorical.block_quantities(p, q, np.array(draft))
        got, leaves = exact.noise_law(lambda u: verifier(p, q, np.array(draft), u), 3,
                                      key=lambda verdict: verdict.n_accepted)
        if (survival[1], survival[2], mass[1]) != (p1, p2, r1) or got != tau_law:
            _fail("block.paper_example", f"draft {draft}",
                  f"p_1, p_2, R_1 = {survival[1]}, {survival[2]}, {mass[1]}; tau law {got}")
        cases += leaves
    return cases, "E[tau]: token 10/9 < block 11/9 < joint 12/9; laws (3,2,4)/9 and (3,1,5)/9"


# ---------------------------------------------------------------- multi-draft and trees


def _mss_trees(quick: bool):
    """Tree shapes (parents arrays) for MSS: chains, bushes and mixed trees."""
    shapes = [[], [-1], [-1, -1], [-1, -1, -1], [-1, 0], [-1, -1, 0], [-1, 0, 0]]
    if not quick:
        shapes += [[-1, -1, 0, 1], [-1, 0, 1], [-1, -1, -1, 0]]
    return shapes


def check_mss_lossless(quick: bool = True, verifier=None, node_verifier=None):
    """SpecInfer MSS (§1.4.1): (a) over whole stochastic trees (every token drawn from the
    draft row after its parent), the output completed to depth+1 tokens has the target
    law; (b) at one node with k=3 children from three different draft rows, the emitted
    token has law p and P(accept) = 1 - prod_j (1 - beta_j); (c) T4's figures."""
    verifier = verifier or tree.verify_mss_tree
    node_verifier = node_verifier or tree.verify_mss
    cases = 0
    models = [("T1 iid", exact.iid_model(T1_P), exact.iid_model(T1_Q), 3, ())]
    for v in (2, 3):
        for seed in range(2 if quick else 5):
            models.append((f"random V={v} seed={seed}", exact.random_model(v, 300 * v + seed),
                           exact.random_model(v, 300 * v + seed + 50), v, (1,)))
    for name, pm, qm, v, ctx in models:
        for parents in _mss_trees(quick):
            if v == 3 and len(parents) > 3 and quick:
                continue
            law = exact.mss_tree_round_law(verifier, pm, qm, v, parents, ctx)
            depth = max(exact.tree_depths(parents), default=0)
            diff = exact.law_difference(law.sequences, exact.sequence_law(pm, v, depth + 1, ctx))
            if diff:
                _fail("mss.lossless", f"{name}, tree parents={parents}", exact.describe_difference(diff))
            cases += law.leaves
    rng = np.random.default_rng(11)
    node_cases = [(T1_P, [T1_Q, T1_Q]), (T1_P, [T1_Q, T1_Q, T1_Q])]
    for _ in range(4 if quick else 12):
        v = int(rng.integers(2, 4))
        node_cases.append((exact.random_row(rng, v), [exact.random_row(rng, v) for _ in range(3)]))
    for p_row, q_rows in node_cases:
        v, k = len(p_row), len(q_rows)
        law, leaves = exact.node_law(node_verifier, p_row, q_rows, k, v)
        first = {key[0]: val for key, val in law.sequences.items()}
        if any(first.get(x, F(0)) != p_row[x] for x in range(v)):
            _fail("mss.lossless", f"one node, p={p_row}, q={q_rows}", f"law of the token {first}")
        P, reject = list(p_row), F(1)
        for qj in q_rows:  # closed form of §1.4.1, computed here independently of the reference
            beta = sum((min(a, b) for a, b in zip(P, qj)), F(0))
            reject *= 1 - beta
            w = [max(a - b, F(0)) for a, b in zip(P, qj)]
            P = [x / sum(w) for x in w] if sum(w) > 0 else P
        if law.tau.get(1, F(0)) != 1 - reject:
            _fail("mss.lossless", f"one node, p={p_row}, q={q_rows}",
                  f"P(accept) = {law.tau.get(1)}, closed form {1 - reject}")
        cases += leaves
    acc, final = tree.mss_acceptance(np.array(T1_P, dtype=object), np.array([T1_Q, T1_Q], dtype=object))
    if acc != F("0.76") or tuple(final) != (F(11, 12), F(1, 12), F(0)):
        _fail("mss.lossless", "T4 (k=2)", f"acceptance {acc}, final residual {tuple(final)}")
    return cases, "tree and one-node output laws == target; P(accept) = 1 - prod(1 - beta_j); T4: 0.76"


def _exact_rho(p_row, q_row, k: int):
    """A rational rho just above rho* (bisection in float64, then rounded up to the next
    rational with denominator 10^6 and checked exactly with the reference's kseq_valid)."""
    p = np.array(p_row, dtype=object)
    q = np.array(q_row, dtype=object)
    rho = F(tree.kseq_rho(np.array(p_row, dtype=float), np.array(q_row, dtype=float), k))
    rho = F(-((-rho.numerator * 10 ** 6) // rho.denominator), 10 ** 6)  # ceil to 1e-6
    while not tree.kseq_valid(p, q, k, rho):
        rho += F(1, 10 ** 6)
    return rho


def check_kseq_lossless(quick: bool = True, verifier=None):
    """SpecTr K-SEQ (§1.4.2): for k i.i.d. candidates from q and any valid rational rho
    (rho = k, and a rational just above rho*), the emitted token has law exactly p, and
    P(some candidate returned) = 1 - (1 - beta(rho))^k with beta(rho) = sum min(q, p/rho)."""
    verifier = verifier or tree.verify_kseq
    rng = np.random.default_rng(13)
    pairs = [(T1_P, T1_Q)]
    for _ in range(4 if quick else 12):
        v = int(rng.integers(2, 4))
        pairs.append((exact.random_row(rng, v), exact.random_row(rng, v)))
    cases = 0
    for p_row, q_row in pairs:
        v = len(p_row)
        for k in (1, 2, 3):
            for rho in sorted({F(k), _exact_rho(p_row, q_row, k)}):
                law, leaves = exact.node_law(verifier, p_row, q_row, k, v, rho=rho)
                first = {key[0]: val for key, val in law.sequences.items()}
                if any(first.get(x, F(0)) != p_row[x] for x in range(v)):
                    _fail("kseq.lossless", f"p={p_row}, q={q_row}, k={k}, rho={rho}",
                          f"law of the token {first}")
                beta = sum((min(b, a / rho) for a, b in zip(p_row, q_row)), F(0))
                if law.tau.get(1, F(0)) != 1 - (1 - beta) ** k:
                    _fail("kseq.lossless", f"p={p_row}, q={q_row}, k={k}, rho={rho}",
                          f"P(accept) = {law.tau.get(1)}, closed form {1 - (1 - beta) ** k}")
                cases += leaves
    return cases, "output law == p for rho = k and rho ~ rho*; P(accept) = 1 - (1 - beta(rho))^k"


def _deterministic_trees(quick: bool, v: int, rng):
    """Candidate trees: T5's chain and tree shapes, duplicated siblings, random tries."""
    trees = [([], []), ([0], [-1]), ([0, 1], [-1, 0]), ([0, 1, 0], [-1, -1, 0]),
             ([1, 1, 0], [-1, -1, 0]),  # duplicated siblings
             ([0, 1, 1, 0], [-1, -1, 0, 1]), ([1, 0, 1, 1], [-1, 0, 1, 2])]
    for _ in range(3 if quick else 15):
        n = int(rng.integers(1, 6))
        parents = [-1] + [int(rng.integers(-1, i)) for i in range(1, n)]
        tokens = [int(rng.integers(0, v)) for _ in range(n)]
        trees.append((tokens, parents))
    return [(t, par) for t, par in trees if all(x < v for x in t)]


def _det_models(quick: bool):
    models = [("T1 iid", exact.iid_model(T1_P), 3, ())]
    for v in (2, 3):
        for seed in range(2 if quick else 6):
            models.append((f"random V={v} seed={seed}", exact.random_model(v, 400 * v + seed), v, (0,)))
    return models


def _det_tree_laws(verifier, quick: bool, seed: int):
    """Yield (name, pm, v, ctx, tokens, parents, law): the exact round law of ``verifier`` on
    every fixed candidate tree of :func:`_deterministic_trees` (drawn with ``seed``) for every
    model of :func:`_det_models`."""
    rng = np.random.default_rng(seed)
    for name, pm, v, ctx in _det_models(quick):
        for tokens, parents in _deterministic_trees(quick, v, rng):
            yield name, pm, v, ctx, tokens, parents, exact.deterministic_tree_round_law(
                verifier, pm, v, tokens, parents, ctx)


def check_tree_deterministic_lossless(quick: bool = True, verifier=None):
    """Sample-and-match (§1.4.3): for every fixed candidate tree (chains, duplicated
    siblings, random tries), the output completed to depth+1 tokens has the target law;
    at temperature 0 (one-hot rows) it is the target's greedy decode."""
    verifier = verifier or tree.verify_tree_deterministic
    cases = 0
    for name, pm, v, ctx, tokens, parents, law in _det_tree_laws(verifier, quick, 17):
        depth = max(exact.tree_depths(parents), default=0)
        diff = exact.law_difference(law.sequences, exact.sequence_law(pm, v, depth + 1, ctx))
        if diff:
            _fail("tree_deterministic.lossless", f"{name}, tokens={tokens}, parents={parents}",
                  exact.describe_difference(diff))
        cases += law.leaves
        # temperature 0: one-hot rows on the (lowest-index) argmax
        onehot = _onehot_model(pm, v)
        law0 = exact.deterministic_tree_round_law(verifier, onehot, v, tokens, parents, ctx)
        want = exact.greedy_decode(pm, v, depth + 1, ctx)
        if law0.sequences != {want: F(1)}:
            _fail("tree_deterministic.lossless", f"T=0, {name}, tokens={tokens}",
                  f"law {law0.sequences}, greedy decode {want}")
        cases += law0.leaves
    return cases, "output law == target law (T>0) and == greedy decode (T=0) for every tree"


def _onehot_model(model, v):
    def onehot(prefix):
        row = model(prefix)
        best = max(range(v), key=lambda i: (row[i], -i))
        return tuple(F(int(i == best)) for i in range(v))
    return onehot


def check_tree_deterministic_expected_length(quick: bool = True, verifier=None):
    """E[tau + 1] of sample-and-match == 1 + sum over the distinct drafted paths of their
    target probability (§1.4.3), == the reference's tree_expected_length; T5's figures."""
    verifier = verifier or tree.verify_tree_deterministic
    cases = 0
    for name, pm, v, ctx, tokens, parents, law in _det_tree_laws(verifier, quick, 19):
        want = exact.trie_path_mass(pm, tokens, parents, ctx)
        ref = tree.tree_expected_length(exact.tree_rows(pm, tokens, parents, ctx),
                                        np.array(tokens, dtype=np.int64),
                                        np.array(parents, dtype=np.int64))
        if law.mean_tau() + 1 != want or ref != want:
            _fail("tree_deterministic.expected_length", f"{name}, tokens={tokens}, parents={parents}",
                  f"E[tau+1] = {law.mean_tau() + 1}, path mass {want}, tree_expected_length {ref}")
        cases += law.leaves
    # T5 chain: drafted-token probabilities (0.9, 0.8, 0.7, 0.6), V = 2, drafted token 0.
    chain = [F(9, 10), F(8, 10), F(7, 10), F(6, 10), F(1, 2)]
    chain_model = lambda prefix: (chain[len(prefix)], 1 - chain[len(prefix)])  # noqa: E731
    law = exact.deterministic_tree_round_law(verifier, chain_model, 2, [0, 0, 0, 0], [-1, 0, 1, 2])
    dist = [law.tau.get(i, F(0)) for i in range(5)]
    if dist != [F("0.1"), F("0.18"), F("0.216"), F("0.2016"), F("0.3024")] or law.mean_tau() + 1 != F("3.4264"):
        _fail("tree_deterministic.expected_length", "T5 chain", f"tau+1 law {dist}, E {law.mean_tau() + 1}")
    cases += law.leaves
    # T5 tree: root -> A (0.5), B (0.3); A -> C (0.6); B -> D (0.9). Tokens A=0, B=1, C=0, D=1, V=3.
    rows = {(): (F(5, 10), F(3, 10), F(2, 10)), (0,): (F(6, 10), F(2, 10), F(2, 10)),
            (1,): (F(5, 100), F(9, 10), F(5, 100))}
    tree_model = lambda prefix: rows.get(tuple(prefix), (F(1, 3),) * 3)  # noqa: E731
    law = exact.deterministic_tree_round_law(verifier, tree_model, 3, [0, 1, 0, 1], [-1, -1, 0, 1])
    first = law.tail(1)
    if law.mean_tau() + 1 != F("2.37") or first != F("0.8"):
        _fail("tree_deterministic.expected_length", "T5 tree", f"E {law.mean_tau() + 1}, P(first in C) {first}")
    return cases + law.leaves, "E[tau+1] == 1 + sum of distinct path masses; T5: 3.4264 and 2.37"


# ---------------------------------------------------------------- registration

_THEOREMS = [
    ("token.lossless",
     "Token-level speculative sampling (accept iff u q(x) < p(x), residual (p-q)+, bonus) emits "
     "sequences with exactly the target law p(x^{K+1}) (context-free and context-dependent models).",
     LEVIATHAN, "exact", check_token_lossless),
    ("token.acceptance_equals_overlap",
     "P(accept at one position) = sum_x min(p, q) = 1 - TV; P(x, accepted) = min(p(x), q(x)); "
     "in general P(tau >= i) = sum_{x^i} prod_k min(p(x_k|x^{k-1}), q(x_k|x^{k-1})).",
     LEVIATHAN, "exact", check_token_acceptance),
    ("token.expected_length_iid",
     "Context-free pairs: P(tau >= i) = beta^i, E[tau] = beta(1-beta^K)/(1-beta), "
     "E[tokens per target call] = (1-beta^{K+1})/(1-beta) (T2).",
     LEVIATHAN, "exact", check_token_expected_length_iid),
    ("greedy.lossless",
     "Greedy verification emits the target's greedy decode for every draft and accepts the "
     "longest matching drafted prefix.",
     LEVIATHAN, "exact", check_greedy_lossless),
    ("block.lossless",
     "Block verification (longest passing sub-block, scaled residual (p_tau p - q)+) emits "
     "sequences with exactly the target law (§1.3 validity theorem, §8 recipe 1).",
     BLOCK, "exact", check_block_lossless),
    ("block.dominates_token",
     "P(tau_block >= i) >= P(tau_token >= i) for every i, so E[tau_block] >= E[tau_token].",
     BLOCK, "exact", check_block_dominates_token),
    ("block.acceptance_closed_form",
     "P(tau_block >= i) = sum_{x^i} min_{0<=j<=i} q(x^j) p(x_{j+1}^i | x^j) (T3(b), T3(c)).",
     BLOCK, "exact", check_block_acceptance_closed_form),
    ("block.paper_example",
     "Sun et al.'s binary example p=(1/3,2/3), q=(2/3,1/3), K=2: E[tau] = 10/9 (token) vs 11/9 "
     "(block) vs 12/9 (joint bound), with the per-draft table of T3(a).",
     BLOCK, "exact", check_block_paper_example),
    ("mss.lossless",
     "SpecInfer multi-step speculative sampling over stochastic trees emits the target law; at one "
     "node P(accept) = 1 - prod_j (1 - beta_j) (T4: 0.76).",
     SPECINFER, "exact", check_mss_lossless),
    ("kseq.lossless",
     "SpecTr K-SEQ with any valid rho (p_acc(rho)/beta(rho) <= rho) emits exactly p; "
     "P(accept) = 1 - (1 - beta(rho))^k.",
     SPECTR, "exact", check_kseq_lossless),
    ("tree_deterministic.lossless",
     "Sample-and-match verification of deterministic candidate trees emits exactly the target law "
     "(any T > 0) and the greedy decode at T = 0.",
     SAMPLE_MATCH, "exact", check_tree_deterministic_lossless),
    ("tree_deterministic.expected_length",
     "E[committed tokens] of sample-and-match = 1 + sum over distinct drafted paths of p(path) "
     "(T5: 3.4264 chain, 2.37 tree).",
     SAMPLE_MATCH, "exact", check_tree_deterministic_expected_length),
]

for _id, _statement, _paper, _method, _check in _THEOREMS:
    register(Theorem(_id, _statement, _paper, _method, _check))

for _id, _statement, _paper, _check in symbolic.THEOREMS:
    register(Theorem(_id, _statement, _paper, "symbolic", _check))
