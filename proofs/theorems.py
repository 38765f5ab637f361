"""The theorem registry: every theorem of ../shared/ALGORITHMS.md that specoracle
proves, with its statement, paper, method and checker.

A checker is ``check(quick: bool) -> (cases, detail)``: it returns the number of
cases it checked and a one-line detail, and raises :class:`ProofFailure` (or any
exception) when the statement does not hold. ``run_theorems`` turns each into a
:class:`TheoremResult` for the table and the JSON certificate.

Theorems register themselves with :func:`register` from the modules listed in
``THEOREM_MODULES`` (imported lazily, in order). A theorem's *subject* (the reference
function it is about) is looked up in the one registry, fastpath/registry.py
(``THEOREM_SUBJECTS``), where the twins and certify names of that function are listed too.
"""
from __future__ import annotations

import importlib
import importlib.util
import time
from dataclasses import asdict, dataclass
from typing import Callable

THEOREM_MODULES = [
    "specoracle.proofs.discrete_theorems",
    "specoracle.proofs.gaussian_theorems",
]


class ProofFailure(AssertionError):
    """The checked statement is false for at least one case (the message says which)."""


@dataclass(frozen=True)
class Theorem:
    id: str
    statement: str
    paper: str
    method: str  # "exact" | "symbolic" | "numeric"
    check: Callable[[bool], tuple]

    @property
    def subject(self) -> str:
        """The reference function this theorem is about (``"categorical.verify_chain"``)."""
        from specoracle.fastpath.registry import theorem_subject

        return theorem_subject(self.id)


@dataclass(frozen=True)
class TheoremResult:
    id: str
    statement: str
    paper: str
    method: str
    cases: int
    status: str  # "proved" | "failed"
    seconds: float
    detail: str

    def as_json(self) -> dict:
        return asdict(self)


_REGISTRY: dict[str, Theorem] = {}


def register(theorem: Theorem) -> Theorem:
    if theorem.id in _REGISTRY and _REGISTRY[theorem.id] is not theorem:
        raise ValueError(f"theorem id {theorem.id!r} registered twice")
    _REGISTRY[theorem.id] = theorem
    return theorem


def all_theorems() -> list[Theorem]:
    """Every registered theorem, importing the theorem modules that exist."""
    for name in THEOREM_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
    return list(_REGISTRY.values())


def run_theorem(theorem: Theorem, quick: bool = True) -> TheoremResult:
    t0 = time.perf_counter()
    try:
        cases, detail = theorem.check(quick)
        status = "proved"
    except Exception as exc:  # a failed proof is a result, not a crash
        cases, detail, status = 0, f"{type(exc).__name__}: {exc}", "failed"
    return TheoremResult(theorem.id, theorem.statement, theorem.paper, theorem.method,
                         int(cases), status, time.perf_counter() - t0, detail)


def run_theorems(quick: bool = True, ids=None, progress: bool = False) -> list[TheoremResult]:
    """Run every registered theorem (or those in ``ids``) and return their results."""
    theorems = [t for t in all_theorems() if ids is None or t.id in ids]
    if progress:
        from tqdm import tqdm
        theorems = tqdm(theorems, desc="proving", unit="theorem", leave=False)
    return [run_theorem(t, quick) for t in theorems]
