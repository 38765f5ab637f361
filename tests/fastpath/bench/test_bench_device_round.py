"""Plumbing of the ``device-round`` bench suites (fastpath/bench/device_round.py) on the tiny
models of tests/_llm_tiny.py: the suites are reachable from ``specoracle bench`` (``device-round``
on the cpu, ``device-round-cuda`` on cuda), the CPU suite runs paired host / device generations, and reports one row per round and
setting with the paired ratios; float64 runs emit identical tokens (checked inside)."""
from __future__ import annotations

import pytest

from specoracle.fastpath import registry
from specoracle.fastpath.bench import BenchContext, device_round
from specoracle.fastpath.bench import llm as bench_llm

from _llm_tiny import tiny_llama

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


class _Ids:
    def __init__(self, ids):
        self.input_ids = ids


def _tokenizer(text):
    return _Ids([3 + (ord(c) % 40) for c in text[:5]])


def test_device_round_suite_rows(monkeypatch):
    pair = (tiny_llama(1, 64, 2, 4, 2), tiny_llama(2, 32, 1, 2, 1), _tokenizer)
    monkeypatch.setattr(bench_llm, "zoo_pair", lambda ctx, suite, device="cpu": pair)
    ctx = BenchContext(quick=True)
    rows = device_round.run_device_round(ctx)
    assert [(r["backend"], r["cache"], r["B"]) for r in rows] == [("host-round", "dynamic", 1),
                                                                  ("device-round", "dynamic", 1)]
    host, dev = rows
    assert host["vs_host"] == 1.0 and dev["vs_host"] > 0 and host["tokens"] == dev["tokens"] > 0
    assert host["median_us"] > 0 and len(dev["ratio_wall"]) == 3 and dev["round_dtype"] == "float64"
    assert any("device-round" in n for n in ctx.notes)


def test_device_round_is_a_registered_suite_on_both_devices():
    suites = registry.suites()
    assert suites["device-round"].device == "cpu" and suites["device-round-cuda"].device == "cuda"
    assert device_round.settings(quick=False) == [("dynamic", 1), ("dynamic", 8), ("static", 1), ("static", 8)]
