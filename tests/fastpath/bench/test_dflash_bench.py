"""Plumbing of the ``dflash`` bench suite (fastpath/bench/dflash.py) at tiny size: every
method runs on the same prompts at T = 0 and T = 1, rows carry tau / tok/s / speed-up over
target-only, T = 0 tau of the AR draft is consistent with its tokens, the tree-pass rows time SDPA
vs cascade, and the suite is registered for ``specoracle bench --device cpu --suite dflash``."""
from __future__ import annotations

import pytest

from specoracle.fastpath.bench.dflash import (decode_rows, tau_table, tree_pass_rows)

from _dflash_zoo import tiny_drafter, tiny_target

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def test_decode_rows_tiny():
    t, d = tiny_target(), tiny_drafter()
    draft = tiny_target(seed=5)
    prompts = [[1, 2, 3]]
    rows = decode_rows(t, draft, d, d, prompts, 4, blocks=(2, 4), k_ar=2, branches=2)
    names = [r["backend"] for r in rows]
    assert names == ["target", "ar-draft", "dflash-b2", "dflash-b4", "d2sd"] * 2
    assert [r["T"] for r in rows] == [0.0] * 5 + [1.0] * 5
    for r in rows:
        assert r["tokens"] == 4 and r["tok_per_s"] > 0 and 1.0 <= r["tau"] <= r["K"] + 1
        assert r["vs_target"] > 0
    assert rows[0]["vs_target"] == 1.0 and rows[0]["tau"] == 1.0
    assert [r["K"] for r in rows[:5]] == [0, 2, 2, 4, 4] and "tree_nodes" in rows[4]
    lines = tau_table(rows)
    assert len(lines) == 12 and "dflash-b4" in lines[5]


def test_tree_pass_rows_tiny():
    rows = tree_pass_rows(tiny_target(), prefix_lens=(8,), n_nodes=9, reps=2)
    assert [r["backend"] for r in rows] == ["sdpa", "cascade"]
    assert all(r["median_us"] > 0 and r["L"] == 8 and r["K"] == 9 for r in rows)
    assert tiny_target().config._attn_implementation == "sdpa"   # restored


def test_suite_registered():
    from specoracle.fastpath import bench
    assert "dflash" in bench.suites("cpu")
