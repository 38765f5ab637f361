"""Smoke test of `specoracle bench` (framework, JSON schema) on tiny shapes."""
from __future__ import annotations

import json

from specoracle.cli import main
from specoracle.fastpath import bench
from specoracle.fastpath.bench import gaussian_cpu, kernels_cpu


def test_bench_quick_json_schema(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(kernels_cpu, "CAT_SHAPES_QUICK", [(4, 2, 50)])
    monkeypatch.setattr(gaussian_cpu, "GAUSS_SHAPES_QUICK", [(4, 2, 3)])
    monkeypatch.setattr(bench, "copy_bandwidth_GBps", lambda clock="wall", threads=1: 10.0)
    out = tmp_path / "b.json"
    assert main(["bench", "--device", "cpu", "--suite", "kernels", "--quick", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert {"device", "date", "copy_bandwidth_GBps", "copy_threads", "rows"} <= set(doc)
    ops = {(r["op"], r["backend"]) for r in doc["rows"]}
    for op in ("chain", "block", "gaussian_block", "gaussian_step"):
        assert (op, "reference") in ops and (op, "numba") in ops
    for r in doc["rows"]:
        assert r["median_us"] > 0 and r["floor_us"] > 0 and r["vs_reference"] > 0
    chain = next(r for r in doc["rows"] if r["op"] == "chain" and r["backend"] == "numba")
    assert {"B", "K", "V", "vs_torch_plain"} <= set(chain)
    # floor: drafted entries + one row pair per sequence, float32, at 10 GB/s
    assert abs(chain["floor_us"] - 4 * (2 * 4 * 2 + 2 * 4 * 50) / 10e9 * 1e6) < 1e-9
    assert "| chain | numba |" in capsys.readouterr().out


def test_bench_unknown_suite_fails():
    assert main(["bench", "--device", "cpu", "--suite", "nope"]) == 2


def test_copy_bandwidth_threads_paths():
    """Both copy paths (numpy, one core; torch with two threads) measure a finite, positive
    bandwidth; the CPU clock falls back to one thread (it sums the threads' time)."""
    from specoracle.fastpath.bench import copy_bandwidth_GBps

    for kw in ({}, {"threads": 2}, {"threads": 2, "clock": "cpu"}):
        bw = copy_bandwidth_GBps(nbytes=8 * 2 ** 20, reps=2, **kw)
        assert 0.1 < bw < 1e4, (kw, bw)
