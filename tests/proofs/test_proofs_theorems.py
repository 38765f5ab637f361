"""Every discrete theorem is PROVED (quick sizes by default, thorough sizes marked slow),
and the registry holds the ids the issue requires."""
import pytest

from specoracle.proofs.theorems import all_theorems, run_theorem

REQUIRED = ["token.lossless", "token.acceptance_equals_overlap", "token.expected_length_iid",
            "greedy.lossless", "block.lossless", "block.dominates_token",
            "block.acceptance_closed_form", "block.paper_example", "mss.lossless", "kseq.lossless",
            "tree_deterministic.lossless", "tree_deterministic.expected_length"]
SYMBOLIC = ["token.lossless.symbolic", "token.acceptance_equals_overlap.symbolic",
            "block.residual_identity.symbolic", "block.lossless.symbolic"]


def _theorem(tid):
    return {t.id: t for t in all_theorems()}[tid]


def test_registry_has_every_required_id():
    ids = {t.id for t in all_theorems()}
    assert set(REQUIRED + SYMBOLIC) <= ids
    for tid in REQUIRED:
        assert _theorem(tid).method == "exact"
        assert _theorem(tid).paper.startswith("arXiv")
    for tid in SYMBOLIC:
        assert _theorem(tid).method == "symbolic"


@pytest.mark.parametrize("tid", REQUIRED + SYMBOLIC)
def test_theorem_is_proved_quick(tid):
    result = run_theorem(_theorem(tid), quick=True)
    assert result.status == "proved", result.detail
    assert result.cases > 0


@pytest.mark.slow
@pytest.mark.parametrize("tid", REQUIRED + SYMBOLIC)
def test_theorem_is_proved_thorough(tid):
    result = run_theorem(_theorem(tid), quick=False)
    assert result.status == "proved", result.detail
