"""`specoracle bench --all` (fastpath/bench/session.py), the prepared GPU session.

The whole plan runs here at the tiny plumbing size on the CPU (the CUDA suites on CPU tensors),
so that the GPU session cannot rot between the sessions that are lent a GPU: every stage of the
plan must appear in the ONE JSON with figures or an explicit skip reason, and the suites that
exercise the GPU code paths (graphs path, batch rows, device round, tree kernels, host-side
time split) must produce their rows. Then the robustness of the runner: a stage killed at its
cap, a failing stage and a stage in its own process do not stop the run.
"""
from __future__ import annotations

import json
import sys
import time

import pytest

from specoracle.cli import main
from specoracle.fastpath.bench import session as bs

ZOO_STAGES = ("llm-cuda", "device-round", "dflash-cuda")


def _zoo_installed() -> bool:
    from specoracle.fastpath.models.zoo.registry import zoo_reason

    return not zoo_reason("zoo:code-target", "zoo:code-draft")


@pytest.fixture(scope="module")
def tiny_doc(tmp_path_factory):
    path = tmp_path_factory.mktemp("all") / "all.json"
    t0 = time.perf_counter()
    assert main(["bench", "--device", "cpu", "--all", "--tiny", "--json", str(path)]) == 0
    doc = json.loads(path.read_text())
    doc["_test_seconds"] = time.perf_counter() - t0
    return doc


def test_every_stage_has_figures_or_a_skip_reason(tiny_doc):
    assert tiny_doc["schema"] == bs.SCHEMA and tiny_doc["size"] == "tiny"
    assert list(tiny_doc["stages"]) == [s.name for s in bs.plan()]
    assert {"python", "torch", "numba", "transformers"} <= set(tiny_doc["versions"])
    for name, r in tiny_doc["stages"].items():
        assert r["status"] in ("ok", "skipped"), (name, r.get("error"), r.get("traceback"))
        if r["status"] == "ok":
            assert r["rows"], name
            assert all(row.get("median_us") is not None or row.get("tokens_equal") is not None
                       for row in r["rows"]), name
        else:
            assert r["skip_reason"], name
    summary = tiny_doc["summary"]
    assert sorted(sum(summary.values(), [])) == sorted(tiny_doc["stages"])


def test_the_cuda_suites_ran_their_plumbing_on_cpu_tensors(tiny_doc):
    st = tiny_doc["stages"]
    for name in ("cuda-kernels", "diffusion-cuda", "kernels"):
        assert st[name]["status"] == "ok", (name, st[name].get("error"))
    assert st["cuda-kernels"]["extra"]["torch_device"] == "cpu"
    ops = {(r["op"], r["backend"]) for r in st["cuda-kernels"]["rows"]}
    assert {("tree_deterministic", "torch"), ("tree_mss", "torch_walk"),
            ("chain", "torch_graph"), ("gaussian_block", "torch")} <= ops
    for row in st["diffusion-cuda"]["rows"]:
        assert row["host_ms_per_call"] >= 0 and row["net_ms_per_call"] > 0
    # the CUDA-only checks say why they did not run
    for name in ("cuda-tests", "parity-cuda"):
        assert st[name]["skip_reason"].startswith("needs CUDA")
    assert "dflash-train" not in st          # optional: only with --with-dflash-train


def test_the_zoo_stages(tiny_doc):
    st = tiny_doc["stages"]
    if not _zoo_installed():
        for name in ZOO_STAGES:
            assert st[name]["status"] == "skipped" and "zoo" in st[name]["skip_reason"]
        return
    for name in ZOO_STAGES:
        assert st[name]["status"] == "ok", (name, st[name].get("error"), st[name].get("traceback"))
    llm = {(r["backend"], r["B"]) for r in st["llm-cuda"]["rows"]}
    assert {("ar-static", 2), ("spec-block-static", 2), ("draft-step-static", 1)} <= llm
    rnd = st["device-round"]["rows"]
    assert [r["tokens_equal"] for r in rnd if r["backend"] == "parity-float64"] == [True]
    assert {r["backend"] for r in rnd if r["op"] == "generate"} == {"host-round", "device-float32-round"}
    assert {r["op"] for r in st["dflash-cuda"]["rows"]} == {"dflash-decode", "tree-pass"}


def _cmd(code: str) -> tuple:
    return (sys.executable, "-c", code)


def test_a_stage_past_its_cap_or_failing_does_not_stop_the_run(tmp_path):
    """Caps kill the stage's process group; failures are recorded; later stages run; the JSON is
    written after each stage. A suite stage in its own process (isolate) returns its rows."""
    stages = [
        bs.Stage("sleeper", "sleeps past its cap", 2, command=_cmd("import time; time.sleep(60)"),
                 needs_cuda=False),
        bs.Stage("boom", "fails", 30, command=_cmd("raise SystemExit(3)"), needs_cuda=False),
        bs.Stage("talker", "prints its result", 30,
                 command=_cmd("import json; print('log'); print(json.dumps({'x': 1}))"), needs_cuda=False),
        bs.Stage("kernels", "an isolated suite stage", 120, suite="kernels", needs_cuda=False),
        bs.Stage("never", "never listed", 30, command=_cmd("print(1)"), needs_cuda=False),
    ]
    path = tmp_path / "s.json"
    doc = bs.run_session(path, device="cpu", size="quick", budget_s=600, stages=stages,
                         only=["sleeper", "boom", "talker", "kernels"], isolate=True)
    st = json.loads(path.read_text())["stages"]
    assert st == doc["stages"]
    assert st["sleeper"]["status"] == "timed_out" and st["sleeper"]["wall_s"] < 20
    assert st["boom"]["status"] == "failed" and st["boom"]["returncode"] == 3
    assert st["talker"]["status"] == "ok" and st["talker"]["result"] == {"x": 1}
    assert st["kernels"]["status"] == "ok" and st["kernels"]["rows"], st["kernels"].get("error")
    assert (st["never"]["status"], st["never"]["skip_reason"]) == ("skipped", "not selected (--only)")
    assert doc["summary"]["timed_out"] == ["sleeper"] and doc["summary"]["failed"] == ["boom"]


def test_budget_exhausted_skips_the_rest(tmp_path):
    stages = [bs.Stage("first", "takes the budget", 30, command=_cmd("import time; time.sleep(1.5)"),
                       needs_cuda=False),
              bs.Stage("second", "no time left", 30, command=_cmd("print(1)"), needs_cuda=False)]
    doc = bs.run_session(tmp_path / "b.json", device="cpu", size="quick", budget_s=bs.MIN_STAGE_S + 1,
                         stages=stages)
    assert doc["stages"]["first"]["status"] == "ok"
    assert doc["stages"]["second"]["status"] == "skipped"
    assert "budget exhausted" in doc["stages"]["second"]["skip_reason"]


def test_sizes_and_unknown_options():
    from specoracle.fastpath.bench import BenchContext

    full, quick, tiny = dict(a=1, b=2), dict(a=3), dict(b=4)
    assert BenchContext().sizes(full, quick, tiny) == {"a": 1, "b": 2}
    assert BenchContext(quick=True).sizes(full, quick, tiny) == {"a": 3, "b": 2}
    assert BenchContext(tiny=True).sizes(full, quick, tiny) == {"a": 3, "b": 4}
    assert BenchContext(options={"b": 9}).sizes(full, quick, tiny) == {"a": 1, "b": 9}
    with pytest.raises(KeyError, match="nosuch"):
        BenchContext(options={"nosuch": 1}).sizes(full, quick, tiny)
    # every suite stage names a registered suite (its session overrides are checked when it runs)
    from specoracle.fastpath import bench
    for stage in bs.PLAN:
        if stage.suite:
            assert stage.suite in bench.suites(), stage.name


def test_list_prints_the_plan(capsys):
    assert main(["bench", "--all", "--list"]) == 0
    out = capsys.readouterr().out
    for s in bs.PLAN:
        assert s.name in out


def test_sigterm_takes_the_stage_process_down_and_keeps_the_json(tmp_path):
    """The outer `timeout` of scripts/gpu-session.sh sends SIGTERM: the session must kill the
    stage process (its own process group: it would go on holding the GPU), record that it was
    terminated, keep the stages done, and exit 143."""
    import os
    import signal
    import subprocess

    pid_file, out = tmp_path / "pid", tmp_path / "t.json"
    sleeper = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    code = (
        "from specoracle.fastpath.bench import session as bs\n"
        f"quick = bs.Stage('quick', 'done first', 30, command={_cmd('print(1)')!r}, needs_cuda=False)\n"
        f"slow = bs.Stage('slow', 'sleeps', 100, command={_cmd(sleeper)!r}, needs_cuda=False)\n"
        f"bs.run_session({str(out)!r}, device='cpu', size='quick', stages=[quick, slow])\n")
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 120
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.2)
    child = int(pid_file.read_text())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    doc = json.loads(out.read_text())
    assert doc["stages"]["quick"]["status"] == "ok" and "slow" not in doc["stages"]
    assert "SIGTERM" in doc["terminated"]
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
