"""Engines certified as black boxes (DESIGN.md, "Certifying other implementations", engine level).

Minimal placeholder so that :mod:`specoracle.proofs.engines.vllm` imports on this branch; the
registry and the full :class:`Engine` protocol live in the engine-level certification's version
of this file (which replaces this one at merge).

An engine built by ``make_engine(*, target, draft, method, k, **kw)`` has ``name``, ``version``,
``method``, ``generate(prompts, *, n, seeds, temperature, top_k=None, top_p=None)`` -> the first
<= n generated token ids of each prompt (one request per entry, its own seed), and ``close()``.
"""
from __future__ import annotations

from typing import Protocol


class Engine(Protocol):
    name: str
    version: str
    method: str

    def generate(self, prompts: list[list[int]], *, n: int, seeds: list[int], temperature: float,
                 top_k: int | None = None, top_p: float | None = None) -> list[list[int]]: ...

    def close(self) -> None: ...
