"""Optional dependencies ("extras" of pyproject.toml) and the one-line error when one is missing.

``require("models", "transformers", "safetensors", what="--model")`` raises
:class:`MissingExtra` naming the extra to install, before the command does any work;
:func:`specoracle.cli.main` prints it as one line and exits with status 2. The same
mapping turns a ``ModuleNotFoundError`` that escapes a command into that one line.
"""
from __future__ import annotations

import importlib.util

# import name -> extra of pyproject.toml that installs it (keep in sync with
# [project.optional-dependencies]; tests/front/cli/test_cli_bad_input.py checks that every listed
# module is in that extra)
MODULE_EXTRA = {
    "transformers": "models", "safetensors": "models", "tokenizers": "models",
    "sklearn": "models", "gguf": "models", "accelerate": "models", "diffusers": "models",
    "jupytext": "notebooks", "nbclient": "notebooks", "nbformat": "notebooks",
    "ipykernel": "notebooks", "nbconvert": "notebooks",
    "pytest": "test",
}

# what each command needs (README "Extras")
LLM = ("transformers", "safetensors", "tokenizers")
NOTEBOOKS = ("jupytext", "nbclient", "nbformat", "ipykernel")


class MissingExtra(Exception):
    """An optional dependency is not installed: names the extra and the pip command."""

    def __init__(self, extra: str, modules, what: str | None = None):
        self.extra = extra
        self.modules = tuple(modules)
        need = f"{what} needs" if what else "needs"  # what: e.g. "--model", "--suite llm"
        super().__init__(f"{need} the optional dependencies of the '{extra}' extra "
                         f"(missing: {', '.join(self.modules)}); install them with: "
                         f"pip install 'specoracle[{extra}]'")


def available(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: sys.modules[module] is None (blocked)
        return False


def require(extra: str, *modules: str, what: str | None = None) -> None:
    """Raise :class:`MissingExtra` unless every module of ``modules`` can be imported."""
    missing = [m for m in modules if not available(m)]
    if missing:
        raise MissingExtra(extra, missing, what)


def from_import_error(exc: ModuleNotFoundError) -> MissingExtra | None:
    """The :class:`MissingExtra` behind a ``ModuleNotFoundError``, or None if the module
    is not one of an extra's (a real bug, to be shown as it is)."""
    top = (exc.name or "").split(".")[0]
    extra = MODULE_EXTRA.get(top)
    return MissingExtra(extra, [top]) if extra else None
