"""vLLM V1 engine plumbing (proofs/certify/engines/vllm.py, vllm_worker.py): the JSON-lines worker
protocol, the worker process with a fake backend (default suite, no vLLM), and, marked slow,
the real engine in the vLLM venv (skipped cleanly without it: scripts/setup-vllm-env.sh)."""
from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest

from specoracle.proofs.certify.engines import vllm as V
from specoracle.proofs.certify.engines import vllm_worker as W
from specoracle.reference.types import InvalidInput

TESTS = Path(__file__).resolve().parents[2]   # tests/: the fake backend lives there
FAKE = "_fake_vllm:FakeBackend"


def fake_env():
    env = V.worker_env()
    env["PYTHONPATH"] = str(TESTS)  # the fake backend lives in tests/
    return env


def fake_engine(**engine):
    cfg = {"backend": FAKE, "engine": {"target": "t", "method": "ngram", "k": 2, **engine}}
    return V.VllmEngine(cfg, python=sys.executable, env=fake_env(), start_timeout=120)


def test_speculative_config_per_method():
    assert W.speculative_config("none", None, 3) is None
    assert W.speculative_config("draft_model", "/d", 3) == {"model": "/d", "method": "draft_model",
                                                          "num_speculative_tokens": 3}
    assert W.speculative_config("ngram", None, 2)["method"] == "ngram"
    assert W.speculative_config("suffix", None, 5) == {"method": "suffix", "num_speculative_tokens": 5}
    assert W.speculative_config("dflash", "/x", 7) == {"method": "dflash", "model": "/x", "num_speculative_tokens": 7}
    with pytest.raises(ValueError, match="method"):
        W.speculative_config("eagle9", None, 2)


def test_spec_counters_and_tau():
    class M:
        def __init__(self, name, value):
            self.name, self.value = name, value

    got = W.spec_counters([M("vllm:spec_decode_num_drafts", 4), M("vllm:spec_decode_num_drafts", 6),
                           M("vllm:spec_decode_num_accepted_tokens", 15), M("vllm:num_requests", 99)])
    assert got == {"drafts": 10, "draft_tokens": 0, "accepted": 15}
    assert V.tau_from_counters({"drafts": 2, "accepted": 1}, {"drafts": 12, "accepted": 16}) == 2.5
    assert V.tau_from_counters(got, got) != V.tau_from_counters(got, got)  # nan without drafts


def test_metrics_op_round_trip():
    with fake_engine(k=3) as eng:
        m0 = eng.metrics()
        eng.generate([[1, 2]], n=4, seeds=[10], temperature=0.0, ignore_eos=True)
        m1 = eng.metrics()
    assert m0 == {"drafts": 0, "draft_tokens": 0, "accepted": 0}
    assert m1 == {"drafts": 3, "draft_tokens": 9, "accepted": 9} and V.tau_from_counters(m0, m1) == 4.0


def test_dflash_draft_folder_checks(tmp_path):
    """An exported vLLM folder is used as is; k must fit in its block; other folders are refused."""
    out = tmp_path / "exported"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"architectures": ["DFlashDraftModel"], "block_size": 8}))
    cfg = V.engine_config(target=str(tmp_path), draft=str(out), method="dflash", k=7)
    assert cfg["engine"]["draft"] == str(out) and cfg["engine"]["method"] == "dflash"
    with pytest.raises(InvalidInput, match="k"):
        V.engine_config(target=str(tmp_path), draft=str(out), method="dflash", k=8)
    other = tmp_path / "llama"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    with pytest.raises(InvalidInput, match="draft"):
        V.engine_config(target=str(tmp_path), draft=str(other), method="dflash", k=3)
    with pytest.raises(InvalidInput, match="draft"):
        V.engine_config(target=str(tmp_path), draft=str(tmp_path / "nothing"), method="dflash", k=3)


@pytest.mark.zoo
def test_dflash_drafter_is_exported_once_into_the_cache(tmp_path, monkeypatch):
    """A specoracle drafter folder (default: the shipped one) is exported on the first use and
    the export is reused (same folder, not rewritten) on the next."""
    from specoracle.fastpath.models.dflash.export import SHIPPED_DFLASH
    from specoracle.fastpath.models.zoo.registry import zoo_dir, zoo_reason
    if zoo_reason("zoo:code-target"):
        pytest.skip(zoo_reason("zoo:code-target"))
    monkeypatch.setenv("SPECORACLE_ZOO", str(zoo_dir()))  # the zoo stays where it is
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    a = Path(V.engine_config(target="zoo:code-target", draft=None, method="dflash", k=15)["engine"]["draft"])
    assert a.parent == tmp_path / "specoracle" / "vllm-dflash" and (a / "model.safetensors").is_file()
    stamp = (a / "model.safetensors").stat().st_mtime_ns
    b = V.engine_config(target="zoo:code-target", draft=str(SHIPPED_DFLASH), method="dflash", k=7)["engine"]["draft"]
    assert Path(b) == a and (a / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(InvalidInput, match="k"):
        V.engine_config(target="zoo:code-target", draft=None, method="dflash", k=16)


def test_sampling_kwargs_only_set_what_is_asked():
    kw = W.sampling_kwargs(n=3, seed=7, temperature=1.0, top_k=None, top_p=None)
    assert kw == {"max_tokens": 3, "seed": 7, "temperature": 1.0, "detokenize": False, "ignore_eos": False}
    kw = W.sampling_kwargs(n=2, seed=1, temperature=0.5, top_k=4, top_p=0.9, ignore_eos=True)
    assert (kw["top_k"], kw["top_p"], kw["ignore_eos"]) == (4, 0.9, True)


def test_serve_answers_each_request_and_reports_errors():
    from _fake_vllm import FakeBackend  # noqa: PLC0415  (tests/ is on sys.path under pytest)

    be = FakeBackend("t")
    lines = [{"op": "generate", "prompts": [[5], [9]], "n": 3, "seeds": [1, 2], "temperature": 1.0},
             {"op": "generate", "prompts": [[5]], "n": 3, "seeds": [1, 2], "temperature": 1.0},
             {"op": "bogus"}, {"op": "close"},
             {"op": "generate", "prompts": [[5]], "n": 1, "seeds": [0], "temperature": 0.0}]
    out = io.StringIO()
    W.serve(be, io.StringIO("\n".join(json.dumps(x) for x in lines) + "\n"), out)
    replies = [json.loads(x) for x in out.getvalue().splitlines()]
    assert len(replies) == 3  # nothing after "close"
    assert replies[0] == {"ok": True, "tokens": [[6, 7, 8], [11, 12, 13]]}
    assert not replies[1]["ok"] and "1 prompts but 2 seeds" in replies[1]["error"]
    assert not replies[2]["ok"] and "unknown op" in replies[2]["error"]


def test_worker_process_round_trips_and_keeps_stdout_clean():
    """The real worker module in a subprocess (fake backend that prints to stdout): many
    generate calls on one start; EOS (token 0) cuts a request unless ignore_eos."""
    with fake_engine() as eng:
        assert (eng.name, eng.version, eng.method, eng.eos_id, eng.k) == ("vllm", "fake-0", "ngram", 0, 2)
        assert eng.generate([[1, 2], [3]], n=2, seeds=[10, 20], temperature=1.0) == [[12, 13], [23, 24]]
        assert eng.generate([[96]], n=3, seeds=[0], temperature=0.0) == [[96, 0]]
        assert eng.generate([[96]], n=3, seeds=[0], temperature=0.0, ignore_eos=True) == [[96, 0, 1]]
        with pytest.raises(InvalidInput, match="seeds"):
            eng.generate([[1]], n=2, seeds=[1, 2], temperature=1.0)
        with pytest.raises(InvalidInput, match="n"):
            eng.generate([[1]], n=0, seeds=[1], temperature=1.0)
    assert eng._proc is None


def test_worker_errors_are_raised_with_the_message():
    with fake_engine(fail_on_generate=True) as eng:
        with pytest.raises(V.WorkerError, match="fake generate failure"):
            eng.generate([[1]], n=1, seeds=[0], temperature=1.0)
    with pytest.raises(V.WorkerError, match="fake start failure"):
        fake_engine(fail_on_start=True)


def test_dead_worker_is_reported_with_its_stderr(tmp_path):
    cfg = {"backend": "no_such_module_xyz:Backend", "engine": {}}
    with pytest.raises(V.WorkerError, match="no_such_module_xyz"):
        V.VllmEngine(cfg, python=sys.executable, env=fake_env(), start_timeout=120)


def test_engine_config_validates_and_resolves(tmp_path, monkeypatch):
    model = tmp_path / "m"
    model.mkdir()
    cfg = V.engine_config(target=str(model), draft=None, method="ngram", k=2, dtype="float32")
    assert cfg == {"engine": {"target": str(model), "draft": None, "method": "ngram", "k": 2, "dtype": "float32"}}
    with pytest.raises(InvalidInput, match="method"):
        V.engine_config(target=str(model), draft=None, method="medusa", k=2)
    with pytest.raises(InvalidInput, match="draft"):
        V.engine_config(target=str(model), draft=None, method="draft_model", k=2)
    with pytest.raises(InvalidInput, match="k"):
        V.engine_config(target=str(model), draft=None, method="ngram", k=0)


def test_missing_venv_gives_the_setup_command(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECORACLE_VLLM_VENV", str(tmp_path / "nothing"))
    assert "setup-vllm-env.sh" in V.vllm_reason()
    with pytest.raises(RuntimeError, match="setup-vllm-env.sh"):
        V.make_engine(target=str(tmp_path), draft=None, method="none", k=1)
    (tmp_path / "nothing" / "bin").mkdir(parents=True)
    (tmp_path / "nothing" / "bin" / "python").touch()
    assert V.vllm_reason() is not None  # no marker: an unfinished setup is not a venv
    (tmp_path / "nothing" / V.MARKER).write_text("0.32.0\n")
    assert V.vllm_reason() is None


def test_worker_env_sets_the_cpu_defaults(monkeypatch):
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    env = V.worker_env()
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1" and "PYTHONPATH" not in env


# ---------------------------------------------------------------- the real engine (slow)

needs_vllm = pytest.mark.skipif(V.vllm_reason() is not None, reason=str(V.vllm_reason()))


@pytest.mark.slow
@pytest.mark.zoo
@needs_vllm
def test_vllm_greedy_speculation_matches_plain_decoding():
    """T = 0: vLLM with the draft model emits exactly the tokens of vLLM without speculation
    (two engine starts: minutes)."""
    from specoracle.fastpath.models.zoo.registry import zoo_reason
    if zoo_reason("zoo:code-target", "zoo:code-draft"):
        pytest.skip(zoo_reason("zoo:code-target", "zoo:code-draft"))
    prompts = [[5, 17, 301, 44, 9], [120, 7, 7, 81]]
    out = {}
    for method in ("none", "draft_model"):
        with V.make_engine(target="zoo:code-target", draft="zoo:code-draft", method=method, k=3) as eng:
            out[method] = eng.generate(prompts, n=12, seeds=[0, 1], temperature=0.0)
    assert out["draft_model"] == out["none"]


@pytest.mark.slow
@pytest.mark.zoo
@needs_vllm
def test_vllm_serves_the_exported_dflash_drafter():
    """vLLM's DFlash proposer on the exported shipped drafter (one engine start: minutes): at
    T = 0 the tokens equal specoracle's own DFlash generation (= the target's greedy
    continuation) AND vLLM's spec-decode counters give the same number of drafting steps and
    accepted drafts as specoracle's cycles, so vLLM drafts what our drafter drafts."""
    import torch

    from specoracle.fastpath.models.dflash.model import DFlashDrafter
    from specoracle.fastpath.models.dflash.export import SHIPPED_DFLASH
    from specoracle.fastpath.models.dflash.generate import generate_dflash
    from specoracle.fastpath.models.llm.hf import load_model
    from specoracle.fastpath.models.zoo.registry import zoo_reason
    if zoo_reason("zoo:code-target"):
        pytest.skip(zoo_reason("zoo:code-target"))
    prompts, k, n = [[1, 2, 3, 4, 5], [120, 7, 7, 81, 9, 33]], 7, 24
    target, _ = load_model("zoo:code-target")
    drafter = DFlashDrafter.load(SHIPPED_DFLASH, dtype=torch.float32)
    own = [generate_dflash(target, drafter, p, n, 0.0, "greedy", 0, block_size=k + 1) for p in prompts]
    with V.make_engine(target="zoo:code-target", draft=None, method="dflash", k=k) as eng:
        m0 = eng.metrics()
        toks = eng.generate(prompts, n=n, seeds=[0, 1], temperature=0.0, ignore_eos=True)
        m1 = eng.metrics()
    assert toks == [r.tokens for r in own]
    assert m1["drafts"] - m0["drafts"] == sum(len(r.accepted) for r in own)
    assert m1["accepted"] - m0["accepted"] == sum(sum(r.accepted) for r in own)


def test_bench_vllm_rows_with_a_fake_engine(monkeypatch):
    """The llm bench's vLLM rows: skipped with a note without the venv; with an engine, one
    row per (engine, T); an engine that fails at T = 1 leaves a note, not a crash."""
    from specoracle.fastpath.bench import BenchContext
    from specoracle.fastpath.bench import llm as bench_llm

    ars = {0.0: {"median_us": 100.0}, 1.0: {"median_us": 100.0}}
    monkeypatch.setattr(V, "vllm_reason", lambda: "no venv here")
    ctx = BenchContext()
    assert bench_llm._vllm_rows(ctx, [[1, 2]], 4, ars) == [] and "no venv here" in ctx.notes[0]

    class Eng:
        version = "fake"

        def __init__(self, method, **kw):
            self.method = method

        def generate(self, prompts, *, n, seeds, temperature, ignore_eos=False, **kw):
            if self.method == "draft_model" and temperature > 0:
                raise V.WorkerError("vLLM generate failed: EngineDeadError")
            return [[7] * n for _ in prompts]

        def close(self):
            pass

    monkeypatch.setattr(V, "vllm_reason", lambda: None)
    monkeypatch.setattr(V, "make_engine", lambda **kw: Eng(**kw))
    ctx = BenchContext()
    rows = bench_llm._vllm_rows(ctx, [[1, 2], [3]], 4, ars)
    assert [(r["backend"], r["T"]) for r in rows] == [("vllm", 0.0), ("vllm", 1.0), ("vllm-draft", 0.0)]
    assert all(r["tokens"] == 8 and r["clock"] == "wall" and r["vs_ar"] > 0 for r in rows)
    assert any("vllm-draft" in n and "EngineDeadError" in n for n in ctx.notes)
