"""pytest plugin: certify samplers from any test suite under ONE false-positive budget
(registered as the ``pytest11`` entry point ``specoracle.pytest_plugin``).

Set the suite's budget once::

    pytest --specoracle-alpha 1e-3          # command line, or in the ini file:
    [pytest]                                # (pyproject: [tool.pytest.ini_options])
    specoracle_alpha = 1e-3                 # default 0.01

Fixtures:

``lossless``          ``lossless(sampler, protocol=None, **kw)`` calls
                      :func:`specoracle.testing.assert_lossless` with this test's share
                      of the budget (``alpha`` may not be passed) and returns the report;
                      it raises ``AssertionError`` with the report when the sampler is not
                      exact or the run is underpowered.
``specoracle_alpha``  this test's share, for tests that run their own calibrated check.

Split: Bonferroni over the collected tests that request either fixture (counted after
deselection, when collection ends): each gets budget / m, so the probability that ANY of
them fails on an exact sampler is <= the budget. The share depends on how many such tests
a run selects; the end-of-run summary prints the budget, m, the share and each verdict.

Allocation table (a suite whose tests plan fixed sample sizes at a fixed level): call
:func:`allocate` from the suite's conftest (``pytest_configure``, ``trylast=True``) with
the budget and a table ``{"test_file.py::test_name": Share(alpha, cases) | Designed(...) |
Control(of)}``. A listed test gets its own fixed share whatever the selection (every case
runs at ``alpha``; ``alpha * cases`` is spent); a negative control runs at the level of the
test it controls and spends nothing (it asserts a rejection); unlisted fixture users split
the unallocated remainder (Bonferroni). :func:`allocate` refuses a table that spends more
than the budget; collection refuses a test that carries ``marker`` without an entry and a
test with more collected cases than its entry declares. :func:`read_table` reads the budget
and the table from a TOML file (this project's own: tests/alpha_budget.toml).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Union

import pytest

FIXTURES = ("lossless", "specoracle_alpha")
DEFAULT_BUDGET = 0.01


@dataclass(frozen=True)
class Share:
    """A test's fixed share: each of its ``cases`` (parametrized cases) runs at level
    ``alpha``; ``controls`` of them are negative controls (they assert a rejection, so they
    cannot fail on an exact sampler); it spends ``alpha * (cases - controls)``."""

    alpha: float
    cases: int = 1
    controls: int = 0

    @property
    def spent(self) -> float:
        return self.alpha * (self.cases - self.controls)


@dataclass(frozen=True)
class Designed(Share):
    """A share whose false-positive rate follows from the test's own design (a band over
    replicates, an SE rule, a sub-run under its own budget), stated in ``why``; the test
    does not read the fixture."""

    why: str = ""


@dataclass(frozen=True)
class Control:
    """A negative control: asserts a REJECTION, so it cannot fail on an exact sampler and
    spends nothing. It runs at the level of the test ``of`` (a Share key); ``of=None``: a
    control whose level is set inside it (stated in ``why``; it does not read the fixture)."""

    of: str | None = None
    why: str = ""


Entry = Union[Share, Control]


_ENTRY_FIELDS = {"alpha": {"alpha", "cases", "controls"}, "designed": {"designed", "cases", "why"},
                 "control": {"control", "why"}}


def _entry(key: str, spec: Mapping) -> Entry:
    """One TOML entry: ``{alpha, cases?, controls?}``, ``{designed, cases?, why}`` or
    ``{control = KEY | true, why?}``."""
    kinds = [k for k in _ENTRY_FIELDS if k in spec]
    if len(kinds) != 1 or set(spec) - _ENTRY_FIELDS[kinds[0]]:
        raise ValueError(f"budget entry {key!r}: expected one of {{alpha, cases, controls}}, "
                         f"{{designed, cases, why}} or {{control, why}}, got {sorted(spec)}")
    if kinds[0] == "alpha":
        return Share(float(spec["alpha"]), int(spec.get("cases", 1)), int(spec.get("controls", 0)))
    if kinds[0] == "designed":
        if not spec.get("why"):
            raise ValueError(f"budget entry {key!r}: a designed rate needs its reason (why)")
        return Designed(float(spec["designed"]), int(spec.get("cases", 1)), why=str(spec["why"]))
    of = spec["control"]
    if of is True:
        if not spec.get("why"):
            raise ValueError(f"budget entry {key!r}: a control without a test to follow needs why")
        return Control(why=str(spec["why"]))
    if not isinstance(of, str):
        raise ValueError(f"budget entry {key!r}: control must name a test key or be true")
    return Control(of, why=str(spec.get("why", "")))


def read_table(path) -> tuple[float, dict]:
    """``(suite_alpha, table)`` from a TOML file: a top-level ``suite_alpha`` and a ``[tests]``
    table of entries keyed ``"file name::function"`` (see :func:`_entry` for the three
    forms), in file order, ready for :func:`allocate`. Bad entries raise ``ValueError``
    naming the key."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    with open(path, encoding="utf-8") as fh:
        data = tomllib.loads(fh.read())
    if "suite_alpha" not in data or "tests" not in data:
        raise ValueError(f"{path}: expected a top-level suite_alpha and a [tests] table")
    return float(data["suite_alpha"]), {key: _entry(key, spec) for key, spec in data["tests"].items()}


def item_key(item) -> str:
    """Table key of a collected test: ``file name::[Class.]function`` (folders and
    parameters left out, so moving a file between folders keeps its key)."""
    cls = getattr(item, "cls", None)
    name = getattr(item, "originalname", None) or item.name.split("[")[0]
    return f"{item.path.name}::{cls.__name__ + '.' if cls else ''}{name}"


class _Budget:
    def __init__(self, total: float, explicit: bool = False):
        self.total = total
        self.explicit = explicit        # --specoracle-alpha given: it overrides allocate()'s total
        self.table: dict[str, Entry] = {}
        self.marker: str | None = None
        self.tests: list[str] = []      # collected tests that request a fixture
        self.rest: list[str] = []       # ... of them, those without an entry in the table
        self.collected: Counter = Counter()   # cases collected per table key
        self.records: list[tuple[str, float, str]] = []

    @property
    def allocated(self) -> float:
        return sum(e.spent for e in self.table.values() if isinstance(e, Share))

    @property
    def share(self) -> float:
        """Bonferroni share of a fixture user without an entry."""
        if not self.table:
            return self.total / max(len(self.tests), 1)
        return (self.total - self.allocated) / max(len(self.rest), 1)

    def alpha_of(self, key: str) -> float:
        entry = self.table.get(key)
        if isinstance(entry, Control):
            if entry.of is None:
                raise LookupError(f"{key} is a control without a level in the allocation table")
            entry = self.table[entry.of]
        return entry.alpha if entry is not None else self.share


def alpha_of(config, key: str) -> float:
    """The level of the test ``key`` (``file name::function``) under this run's budget: for
    a test that states another test's power (the fixture gives a test its own level)."""
    return config.stash[_KEY].alpha_of(key)


def allocate(config, total: float, table: Mapping[str, Entry], marker: str | None = None) -> None:
    """Declare the suite's budget ``total`` and its allocation ``table`` (see the module
    docstring). ``--specoracle-alpha``, if given, replaces ``total``. ``marker``: tests
    carrying it must have an entry."""
    budget = config.stash[_KEY]
    if not budget.explicit:
        budget.total = float(total)
    for key, e in table.items():
        if isinstance(e, Control):
            if e.of is not None and not isinstance(table.get(e.of), Share):
                raise pytest.UsageError(f"specoracle budget: control {key} names {e.of!r}, which has no Share")
        elif not (0 < e.alpha < 1 and int(e.cases) == e.cases > e.controls >= 0):
            raise pytest.UsageError(f"specoracle budget: {key}: alpha must lie in (0, 1) and "
                                    f"cases > controls >= 0, got {e}")
    budget.table, budget.marker = dict(table), marker
    if budget.allocated > budget.total * (1 + 1e-12):
        raise pytest.UsageError(f"specoracle budget: the table spends {budget.allocated:.4g}, more than the "
                                f"budget {budget.total:g}")


_KEY = pytest.StashKey[_Budget]()


def pytest_addoption(parser):
    group = parser.getgroup("specoracle", "specoracle: certification of speculative samplers")
    group.addoption("--specoracle-alpha", dest="specoracle_alpha", default=None, metavar="ALPHA",
                    help="suite-wide false-positive budget split over the tests that use the `lossless` / "
                         f"`specoracle_alpha` fixtures (default: ini specoracle_alpha, else {DEFAULT_BUDGET:g})")
    parser.addini("specoracle_alpha", f"suite-wide false-positive budget of specoracle's fixtures "
                                      f"(default {DEFAULT_BUDGET:g})", default=str(DEFAULT_BUDGET))


def pytest_configure(config):
    cli = config.getoption("specoracle_alpha")
    raw, where = (cli, "--specoracle-alpha") if cli is not None else (config.getini("specoracle_alpha"),
                                                                       "ini specoracle_alpha")
    try:
        total = float(raw)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"{where}: expected a number in (0, 1), got {raw!r}") from None
    if not 0 < total < 1:
        raise pytest.UsageError(f"{where}: must lie in (0, 1), got {raw}")
    config.stash[_KEY] = _Budget(total, explicit=cli is not None)


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(session, config, items):
    budget = config.stash[_KEY]
    budget.tests = [it.nodeid for it in items if any(f in getattr(it, "fixturenames", ()) for f in FIXTURES)]
    if not budget.table:
        return
    keys = {it.nodeid: item_key(it) for it in items}
    budget.rest = [t for t in budget.tests if keys[t] not in budget.table]
    budget.collected = Counter(k for k in keys.values() if k in budget.table)
    missing = sorted({keys[it.nodeid] for it in items
                      if budget.marker and it.get_closest_marker(budget.marker) and keys[it.nodeid] not in budget.table})
    if missing:
        raise pytest.UsageError(f"specoracle budget: {len(missing)} test(s) marked {budget.marker!r} have no "
                                f"entry in the allocation table: {', '.join(missing)}")
    over = [f"{k} ({n} > {e.cases})" for k, n in budget.collected.items()
            if isinstance(e := budget.table[k], Share) and n > e.cases]
    if over:
        raise pytest.UsageError(f"specoracle budget: more collected cases than the table declares: {', '.join(over)}")
    if budget.rest and budget.share <= 0:
        raise pytest.UsageError(f"specoracle budget: nothing left of {budget.total:g} for {len(budget.rest)} "
                                f"test(s) without an entry: {', '.join(budget.rest)}")


@pytest.fixture
def specoracle_alpha(request) -> float:
    """This test's share of the suite-wide false-positive budget: its entry in the
    allocation table if any (a control: the level of the test it controls), else the
    Bonferroni split of what the table leaves."""
    return request.config.stash[_KEY].alpha_of(item_key(request.node))


@pytest.fixture
def lossless(request, specoracle_alpha):
    """``lossless(sampler, protocol=None, **kw)``: assert_lossless at this test's share."""
    from specoracle.testing import NotLossless, assert_lossless
    budget = request.config.stash[_KEY]

    def check(sampler, protocol=None, **kw):
        if "alpha" in kw:
            raise TypeError("lossless(): alpha is set by the suite budget (--specoracle-alpha); "
                            "call specoracle.testing.assert_lossless for a fixed alpha")
        try:
            report = assert_lossless(sampler, protocol, alpha=specoracle_alpha, **kw)
        except NotLossless as err:
            budget.records.append((request.node.nodeid, specoracle_alpha, err.report.verdict))
            raise
        budget.records.append((request.node.nodeid, specoracle_alpha, report.verdict))
        return report

    return check


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    budget = config.stash.get(_KEY, None)
    if budget is None or not (budget.tests or budget.collected):
        return
    tr = terminalreporter
    tr.write_sep("-", "specoracle false-positive budget")
    if budget.table:
        _table_summary(tr, budget)
    else:
        tr.write_line(f"budget alpha = {budget.total:g} over {len(budget.tests)} statistical tests (Bonferroni): "
                      f"alpha = {budget.share:.3g} each; P(any exact sampler fails) <= {budget.total:g}")
    for nodeid, alpha, verdict in budget.records:
        tr.write_line(f"  {verdict:<40s} alpha={alpha:.3g}  {nodeid}")
    done = {r[0] for r in budget.records}
    rest = [t for t in budget.tests if t not in done]
    if rest:
        tr.write_line(f"  ({len(rest)} more used the budget without a recorded verdict: "
                      f"specoracle_alpha only, skipped, or not run)")


def _table_summary(tr, budget) -> None:
    shares = [k for k in budget.collected if isinstance(budget.table[k], Share)]
    run = sum(min(budget.table[k].spent, budget.table[k].alpha * budget.collected[k]) for k in shares)
    tr.write_line(f"budget alpha = {budget.total:g}; allocation table: {len(budget.table)} tests spend "
                  f"{budget.allocated:.3g} in all; this run: {len(budget.collected)} of them "
                  f"({sum(budget.collected[k] for k in shares)} cases) spend {run:.3g}; "
                  f"P(any exact sampler fails) <= {budget.total:g}")
    for k in sorted(budget.collected):
        e = budget.table[k]
        if isinstance(e, Control):
            level = f"alpha={budget.alpha_of(k):.3g} (level of {e.of})" if e.of else "its own level"
            tr.write_line(f"  control at {level}  {k}")
        else:
            tr.write_line(f"  alpha={e.alpha:.3g} x {budget.collected[k]} of {e.cases} cases"
                          f"{f' ({e.controls} controls)' if e.controls else ''}"
                          f"{' (designed)' if isinstance(e, Designed) else ''}  {k}")
    if budget.rest:
        tr.write_line(f"  remainder {budget.total - budget.allocated:.3g} split over {len(budget.rest)} "
                      f"test(s) without an entry: alpha = {budget.share:.3g} each")
