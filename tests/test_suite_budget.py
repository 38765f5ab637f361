"""The suite's ONE false-positive budget (tests/alpha_budget.toml, read by tests/conftest.py): every test marked
``statistical`` has an entry in the allocation table, no entry is stale, the table spends
at most the budget, and every test that runs at a level reads it from the budget (the
``specoracle_alpha`` / ``lossless`` fixtures) instead of a constant of its own. The
mechanism itself (specoracle/pytest_plugin.py) is tested in tests/front/test_pytest_plugin.py.
Not statistical: static checks of the test sources (AST) and of the table."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import ALPHA_TABLE, SUITE_ALPHA
from specoracle.pytest_plugin import Control, Designed, Share

TESTS = Path(__file__).resolve().parent
READERS = {"specoracle_alpha", "lossless"}


def _is_statistical(node: ast.expr) -> bool:
    return "mark.statistical" in ast.unparse(node)


def _statistical_tests() -> dict[str, ast.FunctionDef]:
    """{"file.py::function": its AST} for every test function marked ``statistical`` (by a
    decorator or by the module's ``pytestmark``)."""
    found = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        tree = ast.parse(path.read_text())
        module_mark = any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in n.targets)
                          and _is_statistical(n.value) for n in tree.body)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_") and (
                    module_mark or any(_is_statistical(d) for d in node.decorator_list)):
                found[f"{path.name}::{node.name}"] = node
    return found


def test_the_table_spends_at_most_the_budget():
    spent = sum(e.spent for e in ALPHA_TABLE.values() if isinstance(e, Share))
    assert 0 < spent <= SUITE_ALPHA, spent
    for key, e in ALPHA_TABLE.items():
        if isinstance(e, Control) and e.of is not None:
            assert isinstance(ALPHA_TABLE[e.of], Share) and not isinstance(ALPHA_TABLE[e.of], Designed), key
        if isinstance(e, (Designed, Control)) and not (isinstance(e, Control) and e.of):
            assert e.why, f"{key}: say why its rate follows from its design"


def test_every_statistical_test_has_an_entry_and_no_entry_is_stale():
    found = set(_statistical_tests())
    assert sorted(found - set(ALPHA_TABLE)) == [], "statistical tests without a share"
    assert sorted(set(ALPHA_TABLE) - found) == [], "entries that name no statistical test"


def test_levels_are_read_from_the_budget():
    """A Share or a Control with a level reads it (fixture argument); a Designed share or a
    control without a level does not (its rate is its design's, stated in ``why``)."""
    for key, node in _statistical_tests().items():
        entry = ALPHA_TABLE[key]
        reads = bool(READERS & {a.arg for a in node.args.args})
        designed = isinstance(entry, Designed) or (isinstance(entry, Control) and entry.of is None)
        assert reads != designed, f"{key}: {'reads' if reads else 'does not read'} its level, entry {entry}"


def test_no_statistical_module_keeps_its_own_alpha_constant():
    """The levels live in the table only: no module-level ALPHA* constant in a module with
    statistical tests (a constant would silently diverge from the table)."""
    modules = {key.split("::")[0] for key in _statistical_tests()}
    constant = re.compile(r"^ALPHA\w*\s*=", re.M)
    paths = {p.name: p for p in TESTS.rglob("test_*.py")}   # keys are file names; files live in subfolders
    offenders = [m for m in sorted(modules) if constant.search(paths[m].read_text())]
    assert offenders == []


@pytest.mark.slow
def test_collected_cases_equal_the_table():
    """Collects every statistical test (slow tests included: the table covers them) and
    compares the number of parametrized cases with each entry's ``cases`` (collection
    itself refuses more cases than declared; this also catches fewer)."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "statistical",
                          "-p", "no:cacheprovider", str(TESTS)], capture_output=True, text=True, timeout=600,
                         cwd=TESTS.parent)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    counts = Counter()
    for line in out.stdout.splitlines():
        if "::" in line:
            path, name = line.split("::", 1)
            counts[f"{Path(path).name}::{name.split('[')[0]}"] += 1
    for key, e in ALPHA_TABLE.items():
        if isinstance(e, Share):
            assert counts[key] == e.cases, (key, counts[key], e.cases)
        else:
            assert counts[key] >= 1, key
