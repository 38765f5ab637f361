"""The mutant zoo: >= 20 known-wrong samplers, each rejected by the certification.

Quick runs (default): each mutant on the scenarios that expose its bug ("focus"),
alpha = 1e-3 per run (Holm), power 0.9 at TV 0.1, seed 0. Full runs (slow): the whole
battery at the default settings (power 0.9 at TV 0.05), as `specoracle certify` does."""
from __future__ import annotations

import time

import pytest

from specoracle.proofs import certify as C
from specoracle.proofs.mutants import MUTANTS

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
def test_mutant_is_rejected_quick(name):
    """alpha 1e-3 per run; power 0.9 at TV 0.1 on the mutant's focus scenarios."""
    m = MUTANTS[name]
    report = C.certify(f"mutant.{name}", scenarios=m.focus, target_tv=0.1, seed=0)
    assert report.verdict.startswith("not exact"), report.format()


@pytest.mark.slow
@pytest.mark.statistical
@pytest.mark.parametrize("name", _params(sorted(MUTANTS)))
def test_mutant_is_rejected_at_default_settings(name):
    """The issue's done-criterion: default settings (alpha 1e-3, power 0.9 at TV 0.05), < 60 s."""
    t0 = time.process_time()  # CPU time: wall time depends on what else shares the machine
    report = C.certify(f"mutant.{name}")
    assert report.verdict.startswith("not exact"), report.format()
    assert time.process_time() - t0 < 60
