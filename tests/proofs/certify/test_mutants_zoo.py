"""The mutant zoo: >= 20 known-wrong samplers, each rejected by the certification.

Quick runs (default): each mutant on the scenarios that expose its bug ("focus"),
alpha = 1e-3 per run (Holm), power 0.9 at TV 0.1, seed 0. Full runs (slow): the whole
battery at the default settings (power 0.9 at TV 0.05), as `specoracle certify` does."""
from __future__ import annotations

import time

import numpy as np
import pytest

from specoracle.proofs import certify as C
from specoracle.proofs.certify.mutants import MUTANTS

# Mutants the harness is known not to detect at this budget (none today). Reusing the
# rejected draft's orthogonal noise inside Gaussian block verification was listed as a
# bug by ALGORITHMS.md §2.4, but it is exact (proof in docs/CONTINUOUS.md), so it is not
# in the zoo (docs/CERTIFICATION.md).
WEAK: dict = {}


def _params(names):
    return [pytest.param(n, marks=pytest.mark.xfail(reason=WEAK[n], strict=True)) if n in WEAK else n
            for n in names]


def test_zoo_size_and_metadata():
    assert len(MUTANTS) >= 20
    detected = [m for m in MUTANTS if m not in WEAK]
    assert len(detected) >= 20
    for m in MUTANTS.values():
        assert m.description and m.imitates and m.focus
        assert m.protocol in C.PROTOCOLS


@pytest.mark.statistical
@pytest.mark.parametrize("name", _params(sorted(MUTANTS)))
def test_mutant_is_rejected_quick(name, specoracle_alpha):
    """alpha: the level of test_reference_is_exact (the suite budget's table, 1e-3 per run);
    power 0.9 at TV 0.1 on the mutant's focus scenarios."""
    m = MUTANTS[name]
    report = C.certify(f"mutant.{name}", scenarios=m.focus, alpha=specoracle_alpha, target_tv=0.1, seed=0)
    assert report.verdict.startswith("not exact"), report.format()


@pytest.mark.slow
@pytest.mark.statistical
@pytest.mark.parametrize("name", _params(sorted(MUTANTS)))
def test_mutant_is_rejected_at_default_settings(name, specoracle_alpha):
    """The issue's done-criterion: default settings (alpha: the level of
    test_reference_is_exact_at_default_settings, 1e-3 = the default; power 0.9 at TV 0.05),
    < 60 s."""
    t0 = time.process_time()  # CPU time: wall time depends on what else shares the machine
    report = C.certify(f"mutant.{name}", alpha=specoracle_alpha)
    assert report.verdict.startswith("not exact"), report.format()
    assert time.process_time() - t0 < 60


def _chain_law_with_acceptance(sc, accept):
    """Exact law of (tau, emitted tokens) of chain verification on MarkovScenario ``sc``
    when a drafted x at position t after ``prev`` is accepted with probability
    ``accept(t, prev)[x]`` (residual and bonus as in §1.2): enumeration, no sampling."""
    from specoracle.proofs.certify.scenarios import seq_index

    V, K = sc.V, sc.K
    off = sc.emitted_offsets()
    out = np.zeros(off[-1])

    def walk(t, prev, pre, pr):
        if t == K:
            for y in range(V):
                out[off[t] + seq_index(pre + (y,), V)] += pr * sc.P[t, prev, y]
            return
        p, q, a = sc.P[t, prev], sc.Q[t, prev], accept(t, prev)
        rejected = float((q * (1 - a)).sum())
        if rejected > 0:
            w = np.maximum(p - q, 0)
            for y in range(V):
                out[off[t] + seq_index(pre + (y,), V)] += pr * rejected * w[y] / w.sum()
        for x in range(V):
            if q[x] * a[x] > 0:
                walk(t + 1, x, pre + (x,), pr * q[x] * a[x])

    walk(0, V, (), 1.0)
    return out


def test_unnormalised_logit_mutant_effect_sizes():
    """Exact (no sampling): the ratio of warped logits never log-softmaxed has TV 0.0052 on
    `warped` (rows sharing a normaliser: below the default TV 0.05 by design) and a large
    TV on the scenarios whose rows carry a model's arbitrary offsets (docs/CERTIFICATION.md)."""
    from specoracle.proofs.certify.scenarios import logits_scenarios

    tv = {}
    for name, sc in logits_scenarios().items():
        if name not in ("warped", "topk", "minp", "offsets"):
            continue   # the vLLM adapter's scenarios (T = 0 rows, one-hot q) are not this mutant's subject
        LP, LQ = sc.logits
        T = sc.warp.get("temperature", 1.0)

        def exact(t, prev):
            p, q = sc.P[t, prev], sc.Q[t, prev]
            return np.minimum(1.0, np.divide(p, q, out=np.zeros_like(p), where=q > 0))

        def raw(t, prev):
            p, q = sc.P[t, prev], sc.Q[t, prev]
            d = np.where((p > 0) & (q > 0), (LP[t, prev] - LQ[t, prev]) / T, -np.inf)
            return np.where(q > 0, np.minimum(1.0, np.exp(d)), 0.0)

        good = _chain_law_with_acceptance(sc, exact)
        assert np.abs(good - sc.chain_law()).max() < 1e-12
        tv[name] = 0.5 * np.abs(good - _chain_law_with_acceptance(sc, raw)).sum()
    assert 0.004 < tv["warped"] < 0.006
    assert min(tv["topk"], tv["minp"], tv["offsets"]) > 0.2
