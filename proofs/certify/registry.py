"""The built-in names of ``specoracle certify``: reference.*, fast paths, third-party
adapters (adapters.py), the mutant zoo (mutants.py, mutants_batch.py) and the batch
protocol (batch.py), each a lazy factory; :func:`resolve_impl` turns a name,
``module:function``, a callable or an :class:`~.impl.Impl` into an Impl.

The registering modules are imported here (they only define factories: nothing heavy is
imported until a factory runs); they import nothing from this module, so the import graph
has no cycle (tests/test_import_graph.py).
"""
from __future__ import annotations

import importlib
from typing import Callable

from specoracle.reference.types import InvalidInput

from . import adapters, batch, mutants
from . import mutants_batch  # noqa: F401  (adds the protocol-"batch" mutants to mutants.MUTANTS)
from .impl import Impl, adapter_attributes, first_sentence

_FACTORIES: dict[str, Callable[[], Impl]] = {}
_DISCOVERED = False


def register_impl(name: str, factory: Callable[[], Impl]) -> None:
    """Register a built-in name. ``factory()`` builds the :class:`Impl` lazily (it may
    import heavy packages and raise ``ImportError``, reported as 'not available')."""
    _FACTORIES[name] = factory


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    adapters.register_all(register_impl)
    mutants.register_all(register_impl)
    batch.register_all(register_impl)


def list_impls() -> list[str]:
    """Every built-in name (reference, adapters, fast paths, mutants), sorted."""
    _discover()
    return sorted(_FACTORIES)


def resolve_impl(impl) -> Impl:
    """An :class:`Impl` from a name, ``module:function``, a callable, or an Impl.

    ``module:function`` imports the module (``ImportError`` if it is missing, or
    ``AttributeError`` if it has no such function: the CLI reports both as "not
    loadable"); the function's ``specoracle_protocol`` / ``specoracle_law`` attributes
    are validated (:func:`adapter_attributes`)."""
    if isinstance(impl, Impl):
        return impl
    if callable(impl):
        proto, law = adapter_attributes(impl, getattr(impl, "__name__", "callable"))
        return Impl(getattr(impl, "__name__", "callable"), proto, impl, law, first_sentence(impl.__doc__))
    _discover()
    if impl in _FACTORIES:
        return _FACTORIES[impl]()
    if ":" in impl:
        mod, _, fname = impl.partition(":")
        module = importlib.import_module(mod)
        if not hasattr(module, fname):
            raise AttributeError(f"module {mod!r} ({getattr(module, '__file__', '?')}) has no attribute {fname!r}")
        fn = getattr(module, fname)
        proto, law = adapter_attributes(fn, impl)
        return Impl(impl, proto, fn, law, first_sentence(getattr(fn, "__doc__", "")))
    raise InvalidInput("impl", f"unknown sampler {impl!r}: see `specoracle certify --list` or use module:function")


