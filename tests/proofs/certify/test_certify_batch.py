"""The batched protocol of certify (proofs/certify/batch.py): the engine layout
(flattened ragged drafts, cu_num_draft_tokens, per-request generators), the exact
reference, and which check catches which batch bug.

Statistical runs: fixed seeds, alpha = the suite budget's share (`lossless` fixture) or
1e-3 per run (Holm over the run's checks), power 0.9 at TV 0.1 (the default settings,
TV 0.05, are run by `specoracle certify reference.batch` and the slow zoo tests)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from specoracle.cli import main as cli_main
from specoracle.proofs.certify import batch as B
from specoracle.proofs import certify as C
from specoracle.proofs import stats as st
from specoracle.reference import categorical as cat
from specoracle.reference.types import InvalidInput


@lru_cache(maxsize=None)
def _report(name, kinds, alpha):
    return C.certify(name, scenarios=kinds, alpha=alpha, target_tv=0.1, seed=0)


def _verdicts(report):
    return {c.name: c.verdict for c in report.checks}


# ---------------------------------------------------------------- layout helpers


def test_request_slices_follow_the_vllm_layout():
    # K = (2, 0, 3): drafts 0:2, 2:2, 2:5; target rows 0:3, 3:4, 4:8 (one bonus row each)
    s = B.request_slices([2, 2, 5])
    assert [(d.start, d.stop) for d, _ in s] == [(0, 2), (2, 2), (2, 5)]
    assert [(t.start, t.stop) for _, t in s] == [(0, 3), (3, 4), (4, 8)]
    with pytest.raises(InvalidInput, match=r"cu_num_draft_tokens\[1\]"):
        B.request_slices([2, 1])


def test_assemble_and_split_round_trip(rng):
    kinds = list(B.request_kinds().values())
    reqs = B._draw_requests(kinds, rng)
    target, qs, ids, cu, temp = B.assemble(reqs)
    assert target.shape == (sum(k.K + 1 for k in kinds), 3) and qs.shape == (sum(k.K for k in kinds), 3)
    assert list(temp) == [k.temperature for k in kinds] and 0.0 in temp and 0 in np.diff(np.r_[0, cu])
    for (ds, ts), (p, q, d, _) in zip(B.request_slices(cu), reqs):
        np.testing.assert_array_equal(target[ts], p)
        np.testing.assert_array_equal(ids[ds], d)
    padded = B.pad_outputs([(1, 2), (0,), (2, 2, 2)])
    assert padded.tolist() == [[1, 2, -1], [0, -1, -1], [2, 2, 2]]
    assert B.split_outputs(padded, 3) == [((1, 2), None), ((0,), None), ((2, 2, 2), None)]
    assert B.split_outputs(np.array([[1, -1, 2]]), 1) == [None]  # a token after the padding: malformed
    with pytest.raises(ValueError, match="2 rows for 3 requests"):
        B.split_outputs(padded[:2], 3)


def test_reference_batch_matches_the_oracle_request_by_request(rng):
    kinds = list(B.request_kinds().values())
    reqs = B._draw_requests(B.batch_layout(kinds), rng)
    seeds = [11, 12, 13, 14, 15]
    out = B._call(B.reference_batch, reqs, seeds)
    for (p, q, d, t), s, o in zip(reqs, seeds, out):
        want = cat.verify_greedy(p, d) if t == 0 else cat.verify_chain_rng(p, q, d, np.random.default_rng(s))
        assert o[0] == want.tokens


# ---------------------------------------------------------------- homogeneity test


def test_homogeneity_calibration_and_power():
    """Same law: the rejection rate at level 0.05 over 400 runs is Binomial(400, 0.05)
    (exact binomial test, alpha 1e-3; detects a rate off by >= 0.076 with power 0.9); a
    0.1-TV difference is rejected; the detectable TV is the GOF power rule at
    n_eff = n_a n_b / (n_a + n_b)."""
    rng = np.random.default_rng(3)
    law = np.array([0.5, 0.3, 0.15, 0.05])
    other = np.array([0.4, 0.3, 0.15, 0.15])  # TV 0.1
    same = [st.chisquare_homogeneity(rng.multinomial(2000, law), rng.multinomial(3000, law)).p_value
            for _ in range(400)]
    assert st.binomial_test(int(np.sum(np.array(same) < 0.05)), 400, 0.05).p_value > 1e-3
    r = st.chisquare_homogeneity(rng.multinomial(2000, law), rng.multinomial(3000, other), alpha=1e-3)
    assert r.p_value < 1e-6 and r.n == 1200 and r.df == 3
    assert r.detectable == pytest.approx(st.detectable_tv(1200, 3, 1e-3))
    with pytest.raises(InvalidInput, match="counts_b"):
        st.chisquare_homogeneity([1, 2], [1, 2, 3])


# ---------------------------------------------------------------- certification


@pytest.mark.statistical
def test_reference_batch_is_exact(lossless):
    """The suite budget's share (1e-3; Holm over the run's checks); power 0.9 at TV 0.1, seed 0.
    Every check ran: per-request laws alone and in a batch, invariance, determinism,
    greedy rows."""
    report = lossless("reference.batch", tv=0.1, seed=0, scenarios=("t1", "markov", "markov_k0", "greedy"))
    v = _verdicts(report)
    assert {"t1@solo/joint", "markov@batch/emitted|tau", "markov/invariance", "greedy@batch/joint"} <= set(v)
    assert v["determinism"] == "agree" and v["greedy/oracle"] == "agree"
    assert all(x in ("pass", "agree") for x in v.values())


@pytest.mark.statistical
def test_batch_only_bugs_pass_alone_and_fail_in_a_batch(specoracle_alpha):
    """wrong_logits_slice reads its neighbour's rows: exact with B = 1, rejected in the
    batch placement and by invariance (alpha: the suite budget's share, 1e-3 per run;
    power 0.9 at TV 0.1)."""
    v = _verdicts(_report("mutant.wrong_logits_slice", ("t1",), specoracle_alpha))
    assert v["t1@solo/joint"] == v["t1@solo/emitted|tau"] == "pass"
    assert v["t1@batch/joint"] == "REJECT" and v["t1/invariance"] == "REJECT"


@pytest.mark.statistical
def test_determinism_catches_a_shared_generator(specoracle_alpha):
    """Per-request seeds ignored: every law is exact, only the exact determinism check fails
    (alpha: the suite budget's share, 1e-3; power 0.9 at TV 0.1)."""
    report = _report("mutant.shared_generator", ("t1",), specoracle_alpha)
    v = _verdicts(report)
    assert v.pop("determinism") == "DISAGREE"
    assert all(x == "pass" for x in v.values()), report.format()
    assert "first difference: round 0" in next(c.detail for c in report.checks if c.name == "determinism")


@pytest.mark.statistical
def test_invariance_catches_a_lossless_batch_dependent_law(specoracle_alpha):
    """Block verification in batches, chain alone: every joint law passes (both are
    lossless, law=None claims no algorithm), the homogeneity test rejects (alpha: the
    suite budget's share, 1e-3; power 0.9 at TV 0.1)."""
    v = _verdicts(_report("mutant.batch_switches_algorithm", ("scaled",), specoracle_alpha))
    assert v["scaled@solo/joint"] == v["scaled@batch/joint"] == "pass"
    assert v["scaled/invariance"] == "REJECT"


def test_greedy_rows_are_checked_exactly():
    def greedy_ignored(target, qs, ids, cu, temp, gens):  # samples greedy requests too
        return B.reference_batch(target, qs, ids, cu, np.ones_like(temp), gens)
    report = C.certify(C.Impl("g", "batch", greedy_ignored), scenarios=("greedy",), samples=50, seed=0)
    row = next(c for c in report.checks if c.name == "greedy/oracle")
    assert row.verdict == "DISAGREE" and "expected" in row.detail
    assert report.verdict.startswith("not exact")


def test_bad_batch_input_and_crashes():
    with pytest.raises(InvalidInput, match="request kind 'nope'"):
        C.certify("reference.batch", scenarios=("nope",))

    def boom(*args):
        raise RuntimeError("kernel failed")
    report = C.certify(C.Impl("boom", "batch", boom), scenarios=("t1",), samples=20)
    assert report.verdict.startswith("not exact: solo/run")
    report = C.certify(C.Impl("short", "batch", lambda t, q, i, cu, temp, g: [[0]] * (len(cu) - 1)),
                       scenarios=("t1",), samples=20)
    assert report.verdict.startswith("not exact: solo/run") and "0 outputs for 1 requests" in report.notes[0]


def test_cli_certifies_reference_batch(capsys):
    rc = cli_main(["certify", "reference.batch", "--scenarios", "markov_k0,greedy", "--tv", "0.2", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "markov_k0/invariance" in out and "determinism" in out and "verdict: exact" in out


# ---------------------------------------------------------------- batched fast paths


FASTPATHS = [n for n in ("numba.batch", "torch.batch") if n in C.list_impls()]


@pytest.mark.parametrize("name", FASTPATHS)
def test_fastpath_batch_equals_the_reference_batch(name, rng):
    """The padded fast-path kernels (num_draft for ragged rows) fed the oracle's noise
    layout emit exactly reference_batch's tokens, batch by batch (exact, no alpha)."""
    fn = C.resolve_impl(name).fn
    kinds = B.batch_layout(list(B.request_kinds().values()))
    for r in range(40):
        reqs = B._draw_requests(kinds if r % 2 else kinds[::-1], rng)
        seeds = rng.integers(0, 2 ** 63, size=len(reqs))
        assert B._call(fn, reqs, seeds) == B._call(B.reference_batch, reqs, seeds)


@pytest.mark.slow
@pytest.mark.statistical
@pytest.mark.parametrize("name", FASTPATHS)
def test_fastpath_batch_is_exact(name, lossless):
    """The suite budget's share (Holm over the run's checks); power 0.9 at TV 0.1, seed 0.
    Slow (a kernel call per tiny batch: ~40-90 s); the default suite has the exact
    equality with reference_batch above, which with reference.batch's certification
    implies the same verdict."""
    report = lossless(name, tv=0.1, seed=0, scenarios=("t1", "markov_k0", "greedy"))
    assert {c.name for c in report.checks} >= {"determinism", "greedy/oracle", "t1/invariance"}
