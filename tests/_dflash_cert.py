"""Certification helper for the DFlash / D2SD tests: sample the first n tokens many times
(shared prompt pass) and run the chi-square GOF against the target's exact law."""
from __future__ import annotations

from collections import Counter


def certify(target, run_one, prompt, warping, n: int, n_samples: int, alpha: float, seed0: int = 0,
            law=None):
    """run_one(seed, prefilled) -> list of tokens; returns (TestResult, counts)."""
    from specoracle.fastpath.models.dflash.generate import prefill_state
    from specoracle.proofs.certify.lossless import exact_prefix_law, prefix_law_gof

    law = law or exact_prefix_law(target, prompt, warping, n)
    st = prefill_state(target, prompt)
    counts = Counter(tuple(run_one(seed0 + s, st)) for s in range(n_samples))
    return prefix_law_gof(counts, law, alpha=alpha, name="gof"), counts


def assert_verdict(res, fault, alpha: float, max_detectable: float) -> None:
    """The certification's verdict on a pipeline: the exact one (``fault`` None) is not
    rejected at ``alpha`` and the run had the power to see TV >= ``max_detectable``; a
    pipeline with an injected fault is rejected at ``alpha``."""
    if fault is None:
        assert res.p_value > alpha, res
        assert res.detectable < max_detectable
    else:
        assert res.p_value < alpha, res

