"""Engine-level certification: whole decoding engines as black boxes that return token ids
(DESIGN.md "Certifying other implementations", level "engine").

An :class:`Engine` is built by name from :data:`ENGINES` (``get_engine(name, **kw)``; the
factory module is imported only then, so a missing optional package costs nothing until it
is asked for) with

    make_engine(*, target: str, draft: str | None, method: str, k: int, **kw) -> Engine

``target`` / ``draft`` are model folders or zoo names (``zoo:code-target``); ``method`` is the
engine's own speculation method, and ``"none"`` always means the same engine without
speculation. ``k`` is the number of drafted tokens per round.

    engine.generate(prompts: list[list[int]], *, n, seeds, temperature, top_k=None,
                    top_p=None) -> list[list[int]]

runs one request per prompt with its own seed and returns the first <= n generated ids of
each (shorter only after EOS). ``close()`` frees the engine. Optional attributes the
certification reads when present: ``eos_id`` (the EOS id the engine stops at) and ``note``
(one line on how requests are run, e.g. "one request at a time").

:func:`specoracle.proofs.certify.engines.certify.certify_engine` certifies any engine against the
target model's exact law (docs/CERTIFICATION.md, "Engines"); given an :class:`EngineFactory`
(picklable: engine name + ``make_engine`` keywords) it can shard the requests over Ray actors.
"""
from __future__ import annotations

import importlib
from typing import Protocol, runtime_checkable

from specoracle.reference.types import InvalidInput

ENGINES = {
    "specoracle": "specoracle.proofs.certify.engines.specoracle_engine:make_engine",
    "transformers": "specoracle.proofs.certify.engines.hf:make_engine",
    "vllm": "specoracle.proofs.certify.engines.vllm:make_engine",
}

# the optional extra each engine needs, named in the one-line "not available" message
EXTRAS = {
    "specoracle": "pip install 'specoracle[models]'",
    "transformers": "pip install 'specoracle[models]'",
    "vllm": "a vLLM environment (docs/CERTIFICATION.md, Engines)",
}


@runtime_checkable
class Engine(Protocol):
    """A decoding engine as a black box (module doc)."""

    name: str
    version: str
    method: str

    def generate(self, prompts: list, *, n: int, seeds: list, temperature: float,
                 top_k: int | None = None, top_p: float | None = None) -> list:
        ...

    def close(self) -> None:
        ...


class EngineUnavailable(RuntimeError):
    """The engine's package (or a model it needs) is not installed; the message names the fix."""


def get_engine(name: str, **kw) -> Engine:
    """Build the engine registered as ``name`` (``make_engine(**kw)``).

    Raises InvalidInput for an unknown name and EngineUnavailable (naming the extra to
    install) when the engine's module cannot be imported."""
    if name not in ENGINES:
        raise InvalidInput("engine", f"unknown engine {name!r} (one of {', '.join(sorted(ENGINES))})")
    modname, _, fn = ENGINES[name].partition(":")
    try:
        mod = importlib.import_module(modname)
    except ImportError as exc:
        raise EngineUnavailable(f"engine {name!r} is not available ({exc}); install: {EXTRAS[name]}") from exc
    return getattr(mod, fn)(**kw)


class EngineFactory:
    """Picklable recipe for an engine: ``EngineFactory(name, **kw)()`` is ``get_engine(name, **kw)``.
    What the Ray executor ships to each actor (one engine per actor); ``kw`` must pickle
    (model folders or zoo names; loaded models pickle too, by value)."""

    def __init__(self, name: str, **kw):
        if name not in ENGINES:
            raise InvalidInput("engine", f"unknown engine {name!r} (one of {', '.join(sorted(ENGINES))})")
        self.name, self.kwargs = name, dict(kw)

    def __call__(self) -> Engine:
        return get_engine(self.name, **self.kwargs)

    def replace(self, **kw) -> "EngineFactory":
        """The same recipe with some keywords changed (e.g. ``method="none"`` for the baseline)."""
        return EngineFactory(self.name, **{**self.kwargs, **kw})

    def __repr__(self) -> str:
        return f"EngineFactory({self.name!r}, method={self.kwargs.get('method')!r})"


def check_request(prompts, seeds, n: int, temperature: float) -> None:
    """Argument checks every engine's ``generate`` shares (InvalidInput naming the argument)."""
    if not prompts:
        raise InvalidInput("prompts", "needs at least one prompt")
    for b, pr in enumerate(prompts):
        if len(pr) == 0:
            raise InvalidInput("prompts", "empty prompt", index=b)
    if len(seeds) != len(prompts):
        raise InvalidInput("seeds", f"expected {len(prompts)} seeds (one per prompt), got {len(seeds)}")
    if int(n) != n or n < 1:
        raise InvalidInput("n", f"must be a positive integer, got {n}")
    if not (temperature == temperature and 0 <= temperature < float("inf")):
        raise InvalidInput("temperature", f"must be finite and >= 0, got {temperature}")
