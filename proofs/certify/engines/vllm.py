"""vLLM V1 as a black-box engine: ``make_engine(target=..., draft=..., method=..., k=...)``.

vLLM runs in its own venv (``scripts/setup-vllm-env.sh``; location ``$SPECORACLE_VLLM_VENV``,
else ``~/.cache/specoracle/venvs/vllm``). :class:`VllmEngine` starts ONE long-lived worker
(:mod:`.vllm_worker`) with that venv's python and talks JSON lines to it, so many
``generate`` calls reuse one engine start (70-90 s on 2 cores, more on a shared machine).

Methods: ``none`` (no speculation), ``draft_model`` (the draft model drafts k tokens),
``ngram`` (prompt lookup, k tokens), ``suffix`` (suffix decoding, k tokens), ``dflash``
(vLLM's DFlash proposer, k = block size - 1 masks after the anchor; ``draft`` is a specoracle
DFlash drafter folder, exported on the fly by fastpath/models/dflash/export.py into a cache
folder, or an exported vLLM folder; default: the shipped CPU drafter). Models may be zoo
names (``zoo:code-target``); they are resolved here to folders. The target runs in float32 (as
specoracle's own engine and :func:`~specoracle.proofs.certify.lossless.exact_prefix_law` do),
with ``VLLM_CPU_KVCACHE_SPACE=1`` (GiB) unless set.
"""
from __future__ import annotations

import json
import os
import selectors
import subprocess
import tempfile
import time
from pathlib import Path

from specoracle.reference.types import InvalidInput

from .vllm_worker import METHODS

WORKER_MODULE = "specoracle.proofs.certify.engines.vllm_worker"
START_TIMEOUT_S = 1800.0  # an engine start takes minutes on a shared 2-core machine


def vllm_venv() -> Path:
    """The vLLM venv's folder: ``$SPECORACLE_VLLM_VENV`` or ``~/.cache/specoracle/venvs/vllm``."""
    env = os.environ.get("SPECORACLE_VLLM_VENV")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "specoracle" / "venvs" / "vllm"


def vllm_python() -> Path:
    return vllm_venv() / "bin" / "python"


MARKER = "specoracle-vllm-env.txt"  # written by scripts/setup-vllm-env.sh when the venv works


def vllm_reason() -> str | None:
    """None if a complete vLLM venv exists (the setup script's marker file), else why not and
    the command that creates it."""
    if (vllm_venv() / MARKER).is_file() and vllm_python().exists():
        return None
    return (f"no vLLM venv at {vllm_venv()}: create it with scripts/setup-vllm-env.sh "
            "(or set $SPECORACLE_VLLM_VENV)")


def worker_env(base=None) -> dict:
    """Environment of the worker: the vLLM defaults this project needs on the CPU."""
    env = dict(os.environ if base is None else base)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.pop("PYTHONPATH", None)  # the vLLM venv imports its own packages, not the caller's
    return env


class WorkerError(RuntimeError):
    """The worker died or answered an error; the message ends with its stderr's tail."""


class VllmEngine:
    """A running vLLM worker (see the module doc). Use as a context manager or ``close()``."""

    name = "vllm"

    def __init__(self, config: dict, *, python=None, env=None, start_timeout: float = START_TIMEOUT_S):
        self.method = config.get("engine", {}).get("method", "none")
        self._log = tempfile.NamedTemporaryFile("w+", prefix="specoracle-vllm-", suffix=".log", delete=False)
        self.log_path = self._log.name
        self._proc = subprocess.Popen(
            [str(python or vllm_python()), "-m", WORKER_MODULE, json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
            env=worker_env() if env is None else env)
        hello = self._read(start_timeout)
        if not hello.get("ready"):
            self.close()
            raise WorkerError(f"vLLM worker failed to start: {hello.get('error')}{self._tail()}")
        self.version = str(hello.get("version"))
        self.method = str(hello.get("method", self.method))
        self.k = config.get("engine", {}).get("k")
        self.eos_id = hello.get("eos_id")  # the certification's law needs where requests stop

    def _tail(self, n: int = 3000) -> str:
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""
        return f"\n--- worker stderr ({self.log_path}), last {n} chars ---\n{text[-n:]}" if text else ""

    def _read(self, timeout: float | None) -> dict:
        deadline = None if timeout is None else time.monotonic() + timeout
        sel = selectors.DefaultSelector()
        sel.register(self._proc.stdout, selectors.EVENT_READ)
        try:
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if sel.select(timeout=None if left is None else min(left, 5.0)):
                    line = self._proc.stdout.readline()
                    if not line:
                        raise WorkerError(f"vLLM worker exited (status {self._proc.wait()}){self._tail()}")
                    return json.loads(line)
                if self._proc.poll() is not None:
                    raise WorkerError(f"vLLM worker exited (status {self._proc.returncode}){self._tail()}")
                if deadline is not None and time.monotonic() >= deadline:
                    raise WorkerError(f"vLLM worker silent for {timeout:.0f} s{self._tail()}")
        finally:
            sel.close()

    def generate(self, prompts, *, n: int, seeds, temperature: float, top_k=None, top_p=None,
                 ignore_eos: bool = False, timeout: float | None = None) -> list:
        """The first <= ``n`` generated token ids of each prompt, all in ONE ``LLM.generate``
        (``ignore_eos``: exactly ``n`` tokens, for timings)."""
        prompts = [[int(t) for t in p] for p in prompts]
        seeds = [int(s) for s in seeds]
        if len(seeds) != len(prompts):
            raise InvalidInput("seeds", f"{len(seeds)} seeds for {len(prompts)} prompts")
        if int(n) < 1:
            raise InvalidInput("n", f"must be >= 1, got {n}")
        if self._proc.poll() is not None:
            raise WorkerError(f"vLLM worker is not running (status {self._proc.returncode}){self._tail()}")
        req = {"op": "generate", "prompts": prompts, "n": int(n), "seeds": seeds,
               "temperature": float(temperature), "top_k": top_k, "top_p": top_p,
               "ignore_eos": bool(ignore_eos)}
        self._proc.stdin.write(json.dumps(req) + "\n")
        self._proc.stdin.flush()
        reply = self._read(timeout)
        if not reply.get("ok"):
            self._failed = True  # keep the worker's log (vLLM's traceback) after close
            raise WorkerError(f"vLLM generate failed: {reply.get('error')} (worker log: {self.log_path})")
        return reply["tokens"]

    def metrics(self, timeout: float | None = 600.0) -> dict:
        """vLLM's spec-decode counters since the engine started (``{"drafts", "draft_tokens",
        "accepted"}``); tau = 1 + accepted / drafts (:func:`tau_from_counters`)."""
        self._proc.stdin.write(json.dumps({"op": "metrics"}) + "\n")
        self._proc.stdin.flush()
        reply = self._read(timeout)
        if not reply.get("ok"):
            raise WorkerError(f"vLLM metrics failed: {reply.get('error')}")
        return reply["metrics"]

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.stdin.write(json.dumps({"op": "close"}) + "\n")
                proc.stdin.flush()
                proc.stdin.close()
                proc.wait(timeout=120)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        for f in (proc.stdout, self._log):
            f.close()
        if proc.returncode == 0 and not getattr(self, "_failed", False):  # a failed one is kept (path in the error)
            Path(self.log_path).unlink(missing_ok=True)
        self._proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):  # a forgotten engine must not leave a vLLM process behind
        if getattr(self, "_proc", None) is not None and self._proc.poll() is None:
            self._proc.kill()


def tau_from_counters(before: dict, after: dict) -> float:
    """Mean tokens committed per target step with drafts (accepted + 1) between two
    :meth:`VllmEngine.metrics` readings; nan when no step drafted."""
    drafts = after["drafts"] - before["drafts"]
    return 1.0 + (after["accepted"] - before["accepted"]) / drafts if drafts > 0 else float("nan")


def dflash_draft(draft, target: str, k: int) -> str:
    """The vLLM DFlash folder for ``draft``: an exported folder (config.json with architecture
    DFlashDraftModel) as is; a specoracle drafter folder (dflash_config.json; None = the shipped
    CPU drafter) exported once into ``$XDG_CACHE_HOME/specoracle/vllm-dflash/<hash>`` (the hash
    covers the drafter's files, the target folder and the export format; written to a temporary
    folder and renamed, so a crash leaves no half export). ``k`` must be < the drafter's block."""
    import hashlib
    import shutil

    from specoracle.fastpath.models.dflash.export import (ARCHITECTURE, EXPORT_FORMAT, SHIPPED_DFLASH,
                                                          export_vllm)
    from specoracle.fastpath.models.zoo.registry import resolve

    folder = Path(SHIPPED_DFLASH if draft is None else draft).expanduser()
    if (folder / "config.json").is_file() and not (folder / "dflash_config.json").is_file():
        cfg = json.loads((folder / "config.json").read_text())
        if ARCHITECTURE not in cfg.get("architectures", []):
            raise InvalidInput("draft", f"{folder} is not a vLLM {ARCHITECTURE} folder nor a specoracle drafter")
        block = cfg.get("block_size")
    elif (folder / "dflash_config.json").is_file():
        block = json.loads((folder / "dflash_config.json").read_text())["block_size"]
        h = hashlib.sha256(f"{resolve(target)}|format {EXPORT_FORMAT}".encode())
        for name in ("dflash_config.json", "dflash.safetensors"):
            h.update((folder / name).read_bytes())
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        out = Path(cache) / "specoracle" / "vllm-dflash" / h.hexdigest()[:16]
        if not out.is_dir():
            tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
            export_vllm(folder, target, tmp)
            try:
                tmp.rename(out)
            except OSError:  # another process finished the same export first
                shutil.rmtree(tmp, ignore_errors=True)
        folder = out
    else:
        raise InvalidInput("draft", f"{draft} holds neither dflash_config.json (specoracle) nor config.json (vLLM)")
    if block is not None and int(k) > int(block) - 1:
        raise InvalidInput("k", f"{k} drafts need a block of {int(k) + 1}; the drafter was trained on {block}")
    return str(folder)


def engine_config(*, target: str, draft: str | None, method: str, k: int, **kw) -> dict:
    """The worker config for ``make_engine``'s arguments (models resolved to folders; a
    ``dflash`` draft exported by :func:`dflash_draft`)."""
    from specoracle.fastpath.models.zoo.registry import resolve

    if method not in METHODS:
        raise InvalidInput("method", f"one of {', '.join(METHODS)}, got {method!r}")
    if method == "draft_model" and not draft:
        raise InvalidInput("draft", "method draft_model needs a draft model")
    if method != "none" and int(k) < 1:
        raise InvalidInput("k", f"must be >= 1, got {k}")
    backend = kw.pop("backend", None)
    if method == "dflash":
        draft_folder = dflash_draft(draft, target, k)
    else:
        draft_folder = str(resolve(draft)) if draft else None
    engine = {"target": str(resolve(target)), "draft": draft_folder, "method": method, "k": int(k), **kw}
    return {"engine": engine, **({"backend": backend} if backend else {})}


def make_engine(*, target: str, draft: str | None, method: str, k: int, threads: int | None = None,
                **kw) -> VllmEngine:
    """Start a vLLM V1 engine on ``target`` (speculation ``method`` with ``k`` drafts).

    ``threads`` (the registry's common keyword: the caller's torch threads) does not reach
    vLLM, whose worker runs in its own process and venv. Extra keywords go to ``vllm.LLM``
    (e.g. ``dtype``, ``max_model_len``, ``max_num_seqs``).
    Raises ``InvalidInput`` on bad arguments, ``RuntimeError`` without the vLLM venv.
    """
    config = engine_config(target=target, draft=draft, method=method, k=k, **kw)
    reason = vllm_reason()
    if reason:
        raise RuntimeError(reason)
    return VllmEngine(config)
