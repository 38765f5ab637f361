"""Plumbing of the CUDA bench suite (fastpath/bench/kernels_cuda.py) on CPU tensors at tiny shapes:
the schema of docs/PERFORMANCE.md, the baselines' decisions, the clear error without a GPU."""
from __future__ import annotations

import json
import pytest
import torch

from specoracle.fastpath.bench import kernels_cuda as bc
from specoracle.fastpath.torch_cuda import categorical as tc


def test_suite_plumbing_on_cpu():
    rep = bc.run_suite(device="cpu", shapes=bc.TINY_SHAPES, reps=2, warmup=1, bandwidth_bytes=1 << 22)
    json.dumps(rep)
    assert rep["copy_bandwidth_GBps"] > 0 and rep["rows"]
    seen = {(r["op"], r["backend"]) for r in rep["rows"]}
    assert {("chain", "torch"), ("chain", "torch_plain"), ("chain", "hf"), ("block", "torch"),
            ("block", "torch_plain"), ("chain_logits_bf16", "torch"),
            ("gaussian_block", "torch"), ("gaussian_block", "torch_plain"),
            ("chain", "torch_graph")} <= seen
    assert not any(r["backend"] == "torch_graph" and r["B"] != 1 for r in rep["rows"])
    for r in rep["rows"]:
        assert r["median_us"] > 0 and r["floor_us"] > 0
        if r["backend"] in ("torch", "torch_graph") and r["op"] in ("chain", "block"):
            assert r["vs_torch_plain"] > 0
        if r["op"] == "chain" and r["B"] == 1:
            assert r["vs_hf"] > 0
        else:
            assert r["vs_hf"] is None
        if r["op"] == "gaussian_block":
            assert {"L", "d"} <= set(r) and "K" not in r
    assert bc.target_notes(rep["rows"]) == [] or all("target" in s for s in bc.target_notes(rep["rows"]))


def test_floors_reproduce_the_issue_table():
    """At 2959 GB/s the floors are the issue's: 26 us (chain 64x8x151936), 210 us (all rows)."""
    bw = 2959e9
    assert bc._floor_bytes("chain", 64, 8, 151936) / bw * 1e6 == pytest.approx(26.3, abs=0.1)
    assert bc._floor_bytes("block", 64, 8, 151936) / bw * 1e6 == pytest.approx(210, abs=1)
    assert bc._floor_bytes("chain", 1, 8, 32000) / bw * 1e6 == pytest.approx(0.09, abs=0.01)


@pytest.mark.parametrize("kind", ["chain", "block"])
def test_plain_baselines_decide_like_specoracle(kind):
    p, q, draft, u = bc._inputs(kind, 16, 4, 300, "cpu")
    ours = getattr(tc, f"verify_{kind}")(p, q, draft, u)
    tau, tok = getattr(bc, f"plain_{kind}")(p, q, draft, u)
    assert torch.equal(tau, ours.n_accepted)
    assert ((tok >= 0) & (tok < 300)).all()


def test_hf_baseline_runs_at_batch_one():
    p, q, draft, u = bc._inputs("chain", 1, 3, 50, "cpu")
    tokens, n_matches = bc.hf_chain(p, q, draft, u)
    assert 1 <= tokens.shape[-1] <= 4 and 0 <= int(n_matches) <= 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_bench_fails_clearly_without_gpu(capsys):
    """`specoracle bench --device cuda` runs the registered suite, which exits 2 with one
    clear line on stderr (no traceback) when there is no GPU."""
    from specoracle.fastpath import bench
    assert "cuda-kernels" in bench.suites("cuda")
    with pytest.raises(SystemExit) as exc:
        bc.run_cuda_kernels(bench.BenchContext())
    assert exc.value.code == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
    with pytest.raises(bc.CudaUnavailable):
        bc.run_suite(device="cuda")
