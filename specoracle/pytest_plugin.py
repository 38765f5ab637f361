"""pytest plugin: certify samplers from any test suite under ONE false-positive budget
(issue 17; registered as the ``pytest11`` entry point ``specoracle.pytest_plugin``).

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
"""
from __future__ import annotations

import pytest

FIXTURES = ("lossless", "specoracle_alpha")
DEFAULT_BUDGET = 0.01


class _Budget:
    def __init__(self, total: float):
        self.total = total
        self.tests: list[str] = []
        self.records: list[tuple[str, float, str]] = []

    @property
    def share(self) -> float:
        return self.total / max(len(self.tests), 1)


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
    config.stash[_KEY] = _Budget(total)


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(session, config, items):
    config.stash[_KEY].tests = [it.nodeid for it in items
                                if any(f in getattr(it, "fixturenames", ()) for f in FIXTURES)]


@pytest.fixture
def specoracle_alpha(request) -> float:
    """This test's share of the suite-wide false-positive budget (Bonferroni)."""
    return request.config.stash[_KEY].share


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
    if budget is None or not budget.tests:
        return
    tr = terminalreporter
    tr.write_sep("-", "specoracle false-positive budget")
    tr.write_line(f"budget alpha = {budget.total:g} over {len(budget.tests)} statistical tests (Bonferroni): "
                  f"alpha = {budget.share:.3g} each; P(any exact sampler fails) <= {budget.total:g}")
    for nodeid, alpha, verdict in budget.records:
        tr.write_line(f"  {verdict:<40s} alpha={alpha:.3g}  {nodeid}")
    done = {r[0] for r in budget.records}
    rest = [t for t in budget.tests if t not in done]
    if rest:
        tr.write_line(f"  ({len(rest)} more used the budget without a recorded verdict: "
                      f"specoracle_alpha only, skipped, or not run)")
