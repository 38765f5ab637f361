"""The ops registry: every fast-path op, its oracle, its inputs and its comparison rule.

DESIGN.md principle 4: the reference and the fast path are twins (same module and
function names). An :class:`Op` names the reference function, the batched input
factory, and the rule (tests/TOLERANCES.md) by which a backend's output is compared
with the oracle's, row by row. Backends are discovered by module path:
``specoracle.fastpath.<backend>.<module>.<function>``; a backend that lacks the
function has a *missing* op (the parity test turns it into a strict xfail that
names the op, so a missing twin is visible).

Adding an op (another helper's area, e.g. a bf16 variant of the torch kernels)::

    from specoracle.fastpath import registry
    registry.register(registry.Op(name="chain.bf16", module="categorical",
                                  function="verify_chain", ...))

The parity driver is :mod:`specoracle.fastpath.parity` (``run_parity(backend)``).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

#: backends discovered by module path, in display order
BACKENDS = ("numba_cpu", "torch_cuda", "numpy_batch")

#: backends that by design twin only some reference modules: the batched NumPy twins
#: exist where the oracle's own loops need speed (reference/diffusion.py's verifier),
#: so their absence for the other modules is not a missing twin
MODULES_OF = {"numpy_batch": ("gaussian",)}

RULES = ("exact", "decisions_with_margin", "allclose_vs_naive")


class MissingOp(LookupError):
    """A backend has no twin for an op (module or function absent)."""


@dataclass(frozen=True)
class Case:
    """One batched input of an op: arrays by parameter name (e.g. p, q, draft, u,
    num_draft). ``float64_only`` marks cases whose point is a float64 rounding
    corner (subnormal masses, u = 1 - 2^-53) that a cast to float32 destroys."""

    name: str
    inputs: dict
    float64_only: bool = False

    @property
    def batch(self) -> int:
        first = next(iter(self.inputs.values()))
        return int(first.shape[0])


@dataclass(frozen=True)
class Op:
    """A fast-path op paired with its oracle.

    name:        registry key, e.g. ``"chain"`` or ``"chain.float32"``
    module, function: where both twins live (``specoracle.reference.<module>`` and
                 ``specoracle.fastpath.<backend>.<module>``)
    rule:        one of :data:`RULES`
    cases:       ``cases(quick: bool) -> list[Case]`` (fixed seeds)
    call:        ``call(backend_function, case) -> batched result``
    reference_row: ``reference_row(case, b) -> result`` (the oracle on row b's slice; may
                 raise InvalidInput, which the backend must mirror with a non-OK status)
    compare_row: ``compare_row(case, b, batched_result, reference_result_or_exception)``
                 -> ``(verdict, detail)`` with verdict in {"match", "mismatch", "excluded"}
    sweep:       optional ``sweep(n_sequences, seed) -> list[Case]`` (large random sweeps)
    dtype:       the input dtype the op is exercised in
    backends:    optional tuple of the only backends that have this op (e.g. a Triton
                 kernel of torch_cuda); the others report it missing
    """

    name: str
    module: str
    function: str
    rule: str
    cases: Callable[[bool], list]
    call: Callable[[Callable, Case], Any]
    reference_row: Callable[[Case, int], Any]
    compare_row: Callable[..., tuple]
    sweep: Callable[[int, int], list] | None = None
    dtype: str = "float64"
    notes: str = ""
    extra: dict = field(default_factory=dict)
    backends: tuple | None = None

    def reference_function(self) -> Callable:
        mod = importlib.import_module(f"specoracle.reference.{self.module}")
        return getattr(mod, self.function)


_OPS: dict[str, Op] = {}
_LOADED = False


def register(op: Op, replace: bool = False) -> Op:
    if op.rule not in RULES:
        raise ValueError(f"op {op.name}: unknown rule {op.rule!r} (one of {RULES})")
    if op.name in _OPS and not replace:
        raise ValueError(f"op {op.name} is already registered")
    _OPS[op.name] = op
    return op


def _load_builtin() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    # Each module registers its ops on import; modules whose reference has not
    # landed are skipped (their ops simply do not exist yet).
    for mod in ("parity_categorical", "parity_tree", "parity_gaussian", "torch_cuda.parity_ops"):
        try:
            importlib.import_module(f"specoracle.fastpath.{mod}")
        except ModuleNotFoundError as exc:  # a missing reference module, not a bug in ours
            if not (exc.name or "").startswith("specoracle"):
                raise


def ops() -> dict[str, Op]:
    """Every registered op by name (built-in ops are loaded on first use)."""
    _load_builtin()
    return dict(_OPS)


def get(name: str) -> Op:
    all_ops = ops()
    if name not in all_ops:
        raise KeyError(f"no op {name!r}; known: {sorted(all_ops)}")
    return all_ops[name]


def resolve(backend: str, op: Op | str) -> Callable:
    """The backend's twin of ``op``: ``specoracle.fastpath.<backend>.<module>.<function>``.

    Raises :class:`MissingOp` (naming the op) if the module or function is absent.
    """
    op = get(op) if isinstance(op, str) else op
    if op.backends is not None and backend not in op.backends:
        raise MissingOp(f"{backend} lacks op {op.name}: only {', '.join(op.backends)} has it")
    modname = f"specoracle.fastpath.{backend}.{op.module}"
    try:
        mod = importlib.import_module(modname)
    except ModuleNotFoundError as exc:
        if exc.name and modname.startswith(exc.name):
            raise MissingOp(f"{backend} lacks op {op.name}: no module {modname}") from None
        raise
    fn = getattr(mod, op.function, None)
    if fn is None:
        raise MissingOp(f"{backend} lacks op {op.name}: {modname} has no {op.function}")
    return fn


def applies(backend: str, op: Op | str) -> bool:
    """Whether ``backend`` is meant to have ``op`` (``Op.backends``, :data:`MODULES_OF`);
    an op that applies but is absent is a missing twin."""
    op = get(op) if isinstance(op, str) else op
    if op.backends is not None and backend not in op.backends:
        return False
    return backend not in MODULES_OF or op.module in MODULES_OF[backend]


def has_op(backend: str, op: Op | str) -> bool:
    try:
        resolve(backend, op)
        return True
    except MissingOp:
        return False
