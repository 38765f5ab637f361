"""Paired block-vs-chain tau (fastpath/models/llm/tau_paired.py): the closed forms of the
conditional expected tokens per round given the drafts are proven against the reference
verifiers' EXACT laws (proofs/exact.py integrates the verifier's noise out in rational
arithmetic), their averages over drafts against the closed forms of ALGORITHMS.md §1.2-1.3,
and on real zoo rows against a Monte Carlo of the verifier (stated alpha and power)."""
from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from specoracle.fastpath.models.llm import tau_paired as tp
from specoracle.proofs import exact as ex
from specoracle.reference import categorical as ref
from specoracle.reference.types import InvalidInput

EXACT_ATOL = 1e-12  # tests/TOLERANCES.md, "LLM end to end": float64 closed forms vs Fractions


def _rows(pm, qm, draft, k, vocab):
    p = ex.rows(pm, (), draft, k + 1)
    q = ex.rows(qm, (), draft, k).reshape(k, vocab)
    return p, q


def _f(a):
    return np.asarray(a, dtype=np.float64)


def test_t3a_worked_example_per_draft_and_on_average():
    """ALGORITHMS.md §7 T3(a): p = (1/3, 2/3), q = (2/3, 1/3), k = 2."""
    p1, q1 = (1 / 3, 2 / 3), (2 / 3, 1 / 3)
    drafts = np.array(list(itertools.product(range(2), repeat=2)))        # aa ab ba bb
    p = np.tile(np.array([p1, p1, p1]), (4, 1, 1))
    q = np.tile(np.array([q1, q1]), (4, 1, 1))
    chain = tp.chain_expected_tokens(p, q, drafts) - 1
    block = tp.block_expected_tokens(p, q, drafts) - 1
    np.testing.assert_allclose(chain, [3 / 4, 1, 3 / 2, 2], atol=EXACT_ATOL)
    np.testing.assert_allclose(block, [1 / 2, 2, 3 / 2, 2], atol=EXACT_ATOL)
    np.testing.assert_allclose(tp.block_tau_law(p, q, drafts),
                               [[3 / 4, 0, 1 / 4], [0, 0, 1], [0, 1 / 2, 1 / 2], [0, 0, 1]],
                               atol=EXACT_ATOL)
    w = np.array([4, 2, 2, 1]) / 9                                          # q(x^2)
    assert w @ chain == pytest.approx(10 / 9, abs=EXACT_ATOL)
    assert w @ block == pytest.approx(11 / 9, abs=EXACT_ATOL)
    assert w @ (tp.block_survival_tokens(p, q, drafts) - 1) == pytest.approx(11 / 9, abs=EXACT_ATOL)
    assert w @ (tp.chain_rb_tokens(p, q, drafts) - 1) == pytest.approx(10 / 9, abs=EXACT_ATOL)
    assert w @ (tp.block_rb_tokens(p, q, drafts) - 1) == pytest.approx(11 / 9, abs=EXACT_ATOL)
    # block >= chain holds on average, NOT per draft: the draft (a, a) is a counterexample
    assert block[0] < chain[0]


@pytest.mark.parametrize("seed,vocab,k", [(1, 3, 2), (2, 3, 3), (3, 2, 4), (4, 2, 3)])
def test_conditional_closed_forms_equal_the_exact_laws(seed, vocab, k):
    """For EVERY draft of random context-dependent models (zeros included): the closed-form
    E[tau | x] and block's law of tau given x equal the reference verifiers' exact laws;
    averaged over x ~ q they equal the tail closed forms of §1.2 / §1.3 (and so does the
    survival form for block)."""
    pm, qm = ex.random_model(vocab, seed), ex.random_model(vocab, seed + 1000)
    tail_given = {}  # (prefix x^i) -> sum over continuations of q(cont | x^i) P(tau_block >= i | x^k)
    mean = {"chain": 0.0, "block": 0.0, "block_sv": 0.0, "chain_rb": 0.0, "block_rb": 0.0}
    n_drafts = 0
    for draft in itertools.product(range(vocab), repeat=k):
        w = ex.prefix_probability(qm, draft)
        if w == 0:
            continue
        n_drafts += 1
        p, q = _rows(pm, qm, draft, k, vocab)
        d = np.array(draft, dtype=np.int64)
        law_c, _ = ex.noise_law(lambda u: ref.verify_chain(p, q, d, u), k + 1, key=lambda v: v.n_accepted)
        law_b, _ = ex.noise_law(lambda u: ref.verify_block(p, q, d, u), k + 1, key=lambda v: v.n_accepted)
        pf, qf, df = _f(p)[None], _f(q)[None], d[None]
        got_c = tp.chain_expected_tokens(pf, qf, df)[0]
        got_b = tp.block_expected_tokens(pf, qf, df)[0]
        assert got_c == pytest.approx(1 + float(sum(t * v for t, v in law_c.items())), abs=EXACT_ATOL)
        assert got_b == pytest.approx(1 + float(sum(t * v for t, v in law_b.items())), abs=EXACT_ATOL)
        want_law = [float(law_b.get(t, Fraction(0))) for t in range(k + 1)]
        np.testing.assert_allclose(tp.block_tau_law(pf, qf, df)[0], want_law, atol=EXACT_ATOL)
        for i in range(1, k + 1):
            cont = w / ex.prefix_probability(qm, draft[:i])
            tail = sum((v for t, v in law_b.items() if t >= i), Fraction(0))
            tail_given[draft[:i]] = tail_given.get(draft[:i], Fraction(0)) + cont * tail
        # per prefix, block dominates chain: s_i >= A_i, and so do the Rao-Blackwellised forms
        s = tp.block_survival(pf, qf, df)[0, 1:]
        a = np.cumprod(np.minimum(1, _f(p)[np.arange(k), d] / _f(q)[np.arange(k), d]))
        assert np.all(s >= a - EXACT_ATOL)
        assert tp.block_rb_tokens(pf, qf, df)[0] >= tp.chain_rb_tokens(pf, qf, df)[0] - EXACT_ATOL
        mean["chain"] += float(w) * got_c
        mean["block"] += float(w) * got_b
        mean["block_sv"] += float(w) * tp.block_survival_tokens(pf, qf, df)[0]
        mean["chain_rb"] += float(w) * tp.chain_rb_tokens(pf, qf, df)[0]
        mean["block_rb"] += float(w) * tp.block_rb_tokens(pf, qf, df)[0]
    assert n_drafts > 1
    for prefix, tail in tail_given.items():  # P(tau_block >= i | x^i) = s_i, exactly
        p, q = _rows(pm, qm, prefix, len(prefix), vocab)
        s_i = tp.block_survival(_f(p)[None], _f(q)[None], np.array([prefix]))[0, -1]
        assert float(tail) == pytest.approx(s_i, abs=EXACT_ATOL), prefix
    tok = 1 + sum(float(ex.token_tail_closed_form(pm, qm, vocab, i)) for i in range(1, k + 1))
    blk = 1 + sum(float(ex.block_tail_closed_form(pm, qm, vocab, i)) for i in range(1, k + 1))
    assert mean["chain"] == pytest.approx(tok, abs=EXACT_ATOL)
    assert mean["block"] == pytest.approx(blk, abs=EXACT_ATOL)
    assert mean["block_sv"] == pytest.approx(blk, abs=EXACT_ATOL)
    assert mean["chain_rb"] == pytest.approx(tok, abs=EXACT_ATOL)   # Rao-Blackwellised forms
    assert mean["block_rb"] == pytest.approx(blk, abs=EXACT_ATOL)
    assert mean["block"] >= mean["chain"] - EXACT_ATOL  # Sun et al.'s theorem, on average


def test_identical_models_and_greedy_rows():
    """p = q: every draft accepted (tokens = k + 1) by both. One-hot rows (T = 0): both give
    the longest matching prefix + 1, so block = chain per draft, exactly."""
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5), size=(3, 4))                  # [N=3, K+1=4, V=5]
    x = np.array([[0, 1, 2], [4, 4, 4], [2, 0, 1]])
    for fn in (tp.chain_expected_tokens, tp.block_expected_tokens, tp.chain_rb_tokens,
               tp.block_rb_tokens, tp.block_survival_tokens):
        np.testing.assert_allclose(fn(p, p[:, :3], x), 4.0, atol=EXACT_ATOL)
    onehot = np.eye(5)
    q = onehot[[[0, 1, 2], [4, 4, 4], [2, 0, 1]]]               # drafts = argmax q
    pt = onehot[[[0, 1, 3, 0], [4, 0, 0, 0], [1, 0, 1, 1]]]     # matches: 2, 1, 0
    np.testing.assert_array_equal(tp.chain_expected_tokens(pt, q, x), [3, 2, 1])
    np.testing.assert_array_equal(tp.block_expected_tokens(pt, q, x), [3, 2, 1])


def test_bad_input():
    p = np.full((1, 3, 4), 0.25)
    q = np.full((1, 2, 4), 0.25)
    with pytest.raises(InvalidInput, match="draft"):
        tp.chain_expected_tokens(p, q, np.array([[0, 9]]))
    q0 = q.copy()
    q0[0, 1, 3] = 0.0
    with pytest.raises(InvalidInput, match="q = 0"):
        tp.block_expected_tokens(p, q0, np.array([[0, 3]]))
    with pytest.raises(InvalidInput):
        tp.block_expected_tokens(p, q[:, :1], np.array([[0, 1]]))


def test_paired_summary():
    chain = np.array([1.0, 2.0, 1.5, 1.0, 2.0, 3.0])
    block = chain + np.array([0.5, 0.1, -0.2, 0.4, 0.2, 0.0])
    s = tp.paired_summary(chain, block, clusters=[0, 0, 1, 1, 2, 2])
    assert s.n == 6 and s.clusters == 3 and (s.n_pos, s.n_neg) == (4, 1)
    assert s.diff == pytest.approx(1.0 / 6)
    means = np.array([0.3, 0.1, 0.1])
    assert s.se == pytest.approx(means.std(ddof=1) / np.sqrt(3))
    assert s.min_diff == pytest.approx(-0.2) and 0 < s.p_t < 1 and 0 < s.p_sign <= 1
    same = tp.paired_summary(chain, chain, clusters=[0, 0, 1, 1, 2, 2])
    assert (same.diff, same.t, same.p_t, same.p_sign) == (0.0, 0.0, 1.0, 1.0)


def test_paired_tau_pipeline_on_tiny_models():
    """draft_and_score + paired_tau on tiny random models (no zoo): shapes, clusters, T = 0
    equality per context, and the per-prefix dominance of the Rao-Blackwellised forms."""
    from _llm_tiny import tiny_llama
    from specoracle.fastpath.models.llm.processing import Warp

    target, draft = tiny_llama(1, 64, 2, 4, 2), tiny_llama(2, 32, 1, 2, 1)
    rng = np.random.default_rng(5)
    docs = [list(rng.integers(1, 90, size=n)) for n in (40, 12, 30)]
    cl, win = tp.heldout_windows(docs, 2, 16, rng)
    assert win.shape == (4, 16) and cl.tolist() == [0, 0, 2, 2]     # doc 1 is too short
    groups = [(cl, win)] + tp.target_contexts(target, [d[:8] for d in docs], Warp(1.0), [2, 5], seed=3)
    for w in (Warp(0.0), Warp(1.0, top_p=0.9)):
        res = tp.paired_tau(target, draft, groups, w, (1, 3), rng=rng, chunk=3)
        for k, d in res.items():
            assert all(v.shape == (4 + 3 + 3,) for v in d.values())
            assert np.all((d["chain"] >= 1) & (d["block"] <= k + 1))
            assert np.all(d["block_rb"] >= d["chain_rb"] - EXACT_ATOL)
            if w.greedy or k == 1:  # block = chain per draft at T = 0 and for k = 1
                np.testing.assert_allclose(d["block"], d["chain"], atol=EXACT_ATOL)
    with pytest.raises(InvalidInput, match="no document"):
        tp.heldout_windows([[1, 2]], 1, 8, rng)


# ---------------------------------------------------------------- real rows (zoo)


@pytest.fixture(scope="module")
def pair():
    from _llm_zoo import zoo_pair_one_thread
    yield from zoo_pair_one_thread()


def _crop(p, q, x):
    """Drop vocabulary entries that are 0 in every row (exact: they add nothing anywhere)."""
    keep = np.flatnonzero((p > 0).any(axis=(0, 1)) | (q > 0).any(axis=(0, 1)))
    remap = -np.ones(p.shape[2], dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    return p[:, :, keep], q[:, :, keep], remap[x]


@pytest.mark.zoo
@pytest.mark.statistical
def test_real_rows_monte_carlo_and_greedy_identity(pair):
    """Real zoo rows (context "def ...", warp T = 1, top-k 40, k = 4), three drafted blocks:
    the verifiers (numba kernels, the engine's backend) are run on M = 20000 uniform vectors
    each and their mean tokens compared with the closed forms.

    alpha: each of the 6 comparisons flags |mean - closed form| > 5 standard errors
    (empirical SE): two-sided normal tail 5.7e-7 each, 3.4e-6 in all (CLT; the per-round
    tokens are bounded in [1, 5]). Power: a bias of 6 SE (at most 6 * 2 / sqrt(20000) =
    0.085 tokens, since the SD is at most 2) is detected with probability >= 0.84 per case.
    Known-wrong variants that must be rejected on the same samples: block scored with the
    chain formula, and block with h_i = s_i (the residual-mass term R_i dropped).
    At T = 0 (greedy rows) block and chain are checked equal on every draft, exactly."""
    import torch

    from specoracle.fastpath.models.llm.processing import Warp
    from specoracle.fastpath.numba_cpu import categorical as nbc

    target, draft, tok = pair
    ids = tok("def parse_args(argv):\n    parser = argparse.").input_ids
    ctx = torch.tensor([ids] * 3)
    k, m = 4, 20000
    rng = np.random.default_rng(20261123)
    p, q, x = tp.draft_and_score(target, draft, ctx, Warp(1.0, top_k=40), k, rng.random((3, k)))
    p, q, x = _crop(p, q, x)
    chain = tp.chain_expected_tokens(p, q, x)
    block = tp.block_expected_tokens(p, q, x)
    s = tp.block_survival(p, q, x)
    assert np.all(tp.block_survival_tokens(p, q, x) >= chain - EXACT_ATOL)   # prefix dominance
    assert np.all(tp.block_rb_tokens(p, q, x) >= tp.chain_rb_tokens(p, q, x) - EXACT_ATOL)
    wrong_h = 1 + (1 - np.cumprod(1 - s[:, :0:-1], axis=1)[:, ::-1]).sum(axis=1)  # h_i = s_i
    rejected = {"chain-formula": 0, "h=s": 0}
    for n in range(3):
        u = rng.random((m, k + 1))
        P, Q, X = (np.broadcast_to(a[n], (m,) + a[n].shape).copy() for a in (p, q, x))
        for name, fn, want in (("chain", nbc.verify_chain, chain[n]), ("block", nbc.verify_block, block[n])):
            toks = fn(P, Q, X, u).n_accepted.astype(np.float64) + 1
            se = toks.std(ddof=1) / np.sqrt(m)
            assert abs(toks.mean() - want) <= 5 * se + 1e-12, (name, n, toks.mean(), want, se)
            if name == "block":
                rejected["chain-formula"] += abs(toks.mean() - chain[n]) > 5 * se
                rejected["h=s"] += abs(toks.mean() - wrong_h[n]) > 5 * se
    assert all(v >= 1 for v in rejected.values()), rejected
    # T = 0: one-hot rows; block = chain on every draft
    p0, q0, x0 = tp.draft_and_score(target, draft, ctx[:1], Warp(0.0), 8, np.zeros((1, 8)))
    for kk in (2, 4, 8):
        a = tp.chain_expected_tokens(p0[:, :kk + 1], q0[:, :kk], x0[:, :kk])
        b = tp.block_expected_tokens(p0[:, :kk + 1], q0[:, :kk], x0[:, :kk])
        np.testing.assert_array_equal(a, b)
