"""Every notebook executes in smoke mode (as CI runs them), produces a figure, and
stays under 60 s; a notebook that cannot run here (no GPU, no zoo weights) reports
its reason instead of failing."""
from __future__ import annotations

import pytest

from specoracle import notebooks as nbs

PATHS = nbs.notebook_paths()


def test_there_are_six_notebooks():
    assert len(PATHS) == 6, [p.name for p in PATHS]


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_smoke(path):
    run, _ = nbs.execute(path, smoke=True, timeout=120)
    if run.status == "skipped":
        pytest.skip(f"{run.name}: {run.detail}")
    assert run.status == "ok", f"{run.name}: {run.detail}"
    assert run.figures >= 1
    assert run.seconds < 60, f"{run.name} took {run.seconds:.0f} s in smoke mode (budget 60 s)"
