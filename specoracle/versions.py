"""The resolved versions of Python and of every declared dependency, one sorted line each.

``python -m specoracle.versions`` prints them; CI prints them at the top of every run
(.ci/run, .ci/run-versions), so a failure can be tied to the releases that produced it.
The list is read from specoracle's own installed metadata (core requirements and every
extra), so a dependency added to pyproject.toml shows up here without an edit.
"""
from __future__ import annotations

import importlib.metadata as md
import platform
import re

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
# not declared by specoracle, but they decide what numba / transformers / diffusers can do
ALSO = ("huggingface-hub", "llvmlite")


def declared() -> list:
    """Distribution names that specoracle requires (core and extras), lower-cased, sorted."""
    try:
        reqs = md.requires("specoracle") or []
    except md.PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
        reqs = []
    names = {m.group(1).lower().replace("_", "-") for r in reqs if (m := _NAME.match(r))}
    return sorted(names)


def resolved() -> list:
    """[(name, version or "-" when not installed)]: python, then :func:`declared` and ALSO."""
    rows = [("python", platform.python_version())]
    for name in sorted(set(declared()) | set(ALSO)):
        try:
            rows.append((name, md.version(name)))
        except md.PackageNotFoundError:
            rows.append((name, "-"))
    return rows


def main() -> None:
    rows = resolved()
    width = max(len(n) for n, _ in rows)
    print("resolved versions (- = not installed):")
    for name, version in rows:
        print(f"  {name:<{width}}  {version}")


if __name__ == "__main__":
    main()
