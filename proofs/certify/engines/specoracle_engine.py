"""specoracle's own decoding engine (fastpath/models/llm/engine.py) as an :class:`Engine`, so the
engine-level certification treats it exactly like any other engine: only token ids come out.

Methods: "chain" | "block" | "greedy" (speculative_generate's verifiers; "greedy" needs T = 0)
and "none" (autoregressive_generate through the same cache and warp code). Requests run as one
batch per call (ragged rows, per-request ``numpy.random.Generator(seed)``), so batch
invariance is part of what a batched certification tests. ``backend`` ("numba" or
"reference") becomes the engine's ``Runtime(backend=...)`` (checked at construction);
``fault`` runs a negative control of fastpath/models/llm/faults.py.
"""
from __future__ import annotations

import functools

from specoracle.reference.types import InvalidInput

from . import EngineUnavailable, check_request


class SpecoracleEngine:
    """speculative_generate / autoregressive_generate (module doc)."""

    name = "specoracle"
    note = "all requests of a call run as one ragged batch"

    def __init__(self, target, draft, method: str, k: int, backend: str = "numba", fault=None,
                 threads: int | None = None):
        import torch

        import specoracle
        from specoracle.fastpath.models.llm.engine import Runtime
        from specoracle.fastpath.models.llm.faults import FAULTS
        from specoracle.fastpath.models.llm.hf import load_model, load_pair
        from specoracle.fastpath.models.llm.verify import METHODS
        if method not in METHODS + ("none",):
            raise InvalidInput("method", f"specoracle methods are {', '.join(METHODS + ('none',))}, got {method!r}")
        if int(k) != k or k < 1:
            raise InvalidInput("k", f"must be a positive integer, got {k}")
        if fault is not None and fault not in FAULTS:
            raise InvalidInput("fault", f"unknown fault {fault!r}")
        self.version = specoracle.__version__
        self.method, self.k, self.fault, self.threads = method, int(k), fault, threads
        self.runtime = Runtime(backend=backend)
        self._torch = torch
        tok = None
        if method != "none" and not draft:
            raise InvalidInput("draft", f"method {method!r} needs a draft model")
        if isinstance(target, str):
            if method != "none":
                self.model, self.draft, tok = load_pair(target, draft)
            else:
                self.model, tok = load_model(target)
                self.draft = None
        else:
            self.model, self.draft = target, draft
        self.eos_id = tok.eos_token_id if tok is not None else None

    def generate(self, prompts, *, n, seeds, temperature, top_k=None, top_p=None):
        from specoracle.fastpath.models.llm.engine import autoregressive_generate, speculative_generate
        from specoracle.fastpath.models.llm.processing import Warp
        check_request(prompts, seeds, n, temperature)
        w = Warp(float(temperature), top_k, top_p)
        torch = self._torch
        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(int(self.threads))
        try:
            if self.method == "none":
                res = autoregressive_generate(self.model, prompts, warping=w, max_new_tokens=int(n),
                                              eos_id=self.eos_id, seeds=[int(s) for s in seeds],
                                              runtime=self.runtime)
            else:
                run = speculative_generate
                if self.fault is not None:
                    from specoracle.fastpath.models.llm.faults import faulty_generate
                    run = functools.partial(faulty_generate, self.fault)
                res = run(self.model, self.draft, prompts, k=self.k, method=self.method, warping=w,
                          max_new_tokens=int(n), eos_id=self.eos_id, seeds=[int(s) for s in seeds],
                          runtime=self.runtime)
        finally:
            torch.set_num_threads(threads)
        return [list(t) for t in res.tokens]

    def close(self) -> None:
        self.model = self.draft = None


def make_engine(*, target, draft=None, method: str = "chain", k: int = 4, **kw):
    """specoracle's engine (module doc); ``target``/``draft`` may also be loaded models
    (then ``eos_id=`` can be given as a keyword). Extra keywords: backend, fault, threads."""
    try:
        import transformers  # noqa: F401
    except ImportError as exc:
        raise EngineUnavailable("the specoracle engine loads models with transformers: "
                                "pip install 'specoracle[models]'") from exc
    eos = kw.pop("eos_id", None)
    eng = SpecoracleEngine(target, draft, method, k, **kw)
    if eos is not None:
        eng.eos_id = int(eos)
    return eng
