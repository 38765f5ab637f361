"""specoracle's pytest plugin and specoracle.testing: the example test file
that lives outside the package's tests (examples/test_my_sampler.py) is run by pytest in
a subprocess: the exact samplers pass, the wrong one fails with the report, the summary
prints the suite budget. Statistical runs inside: fixed seeds, power 0.9 at TV 0.1."""
from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from specoracle.testing import NotLossless, assert_lossless

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "test_my_sampler.py"
# Once specoracle is installed the entry point loads the plugin; a source checkout whose
# metadata predates it needs -p (same name: never registered twice).
INSTALLED = any(e.name == "specoracle.pytest_plugin" for e in entry_points(group="pytest11"))
PLUGIN = [] if INSTALLED else ["-p", "specoracle.pytest_plugin"]


def test_entry_point_is_declared():
    import tomllib
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["pytest11"]
    assert eps == {"specoracle.pytest_plugin": "specoracle.pytest_plugin"}


@pytest.mark.statistical
def test_example_file_runs_under_the_suite_budget(pytester):
    """alpha: a 1e-3 budget split over the example's 3 tests."""
    pytester.makepyfile(test_my_sampler=EXAMPLE.read_text())
    res = pytester.runpytest_subprocess(*PLUGIN, "-W", "error", "--specoracle-alpha", "1e-3", "-p",
                                        "no:cacheprovider")
    res.assert_outcomes(passed=2, xfailed=1)
    res.stdout.fnmatch_lines([
        "*specoracle false-positive budget*",
        "budget alpha = 0.001 over 3 statistical tests (Bonferroni): alpha = 0.000333 each*",
        "*exact*alpha=0.000333*test_my_sampler_is_lossless",
        "*not exact: *alpha=0.000333*test_my_wrong_sampler_is_caught",
        "*exact*alpha=0.000333*test_my_batched_sampler_is_lossless_and_batch_invariant",
    ])


@pytest.mark.statistical
def test_wrong_sampler_fails_with_the_report(pytester):
    """Without its xfail mark the wrong sampler's test fails, and the failure is the report."""
    pytester.makepyfile(test_my_sampler=EXAMPLE.read_text())
    res = pytester.runpytest_subprocess(*PLUGIN, "--runxfail", "-k", "wrong", "-p", "no:cacheprovider")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*my_wrong_verify is not lossless (not exact: *",
                              "*check*statistic*p-value*alpha_i*",
                              "*verdict: not exact*",
                              "budget alpha = 0.01 over 1 statistical tests*"])


def test_ini_budget_and_fixture_share(pytester):
    pytester.makeini("[pytest]\nspecoracle_alpha = 0.02\n")
    pytester.makepyfile("""
        def test_a(specoracle_alpha):
            assert specoracle_alpha == 0.02 / 3
        def test_b(specoracle_alpha):
            assert specoracle_alpha == 0.02 / 3
        def test_c(lossless):
            import pytest
            with pytest.raises(TypeError, match="alpha is set by the suite budget"):
                lossless("reference.chain", alpha=0.5)
        def test_not_statistical():
            pass
    """)
    res = pytester.runpytest(*PLUGIN)
    res.assert_outcomes(passed=4)
    res.stdout.fnmatch_lines(["budget alpha = 0.02 over 3 statistical tests*",
                              "*3 more used the budget without a recorded verdict*"])
    res = pytester.runpytest(*PLUGIN, "-k", "test_a")  # deselected tests take no share
    res.stdout.fnmatch_lines(["budget alpha = 0.02 over 1 statistical tests*"])


def test_bad_budget_is_a_usage_error(pytester):
    pytester.makepyfile("def test_x():\n    pass\n")
    res = pytester.runpytest(*PLUGIN, "--specoracle-alpha", "2")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*--specoracle-alpha: must lie in (0, 1), got 2*"])


def test_silent_in_suites_that_do_not_use_it(pytester):
    pytester.makepyfile("def test_x():\n    pass\n")
    res = pytester.runpytest(*PLUGIN)
    res.assert_outcomes(passed=1)
    assert "false-positive budget" not in res.stdout.str()


@pytest.mark.statistical
def test_assert_lossless_underpowered_and_not_exact(specoracle_alpha):
    """The exact run: alpha = the suite budget's share (1e-3), power 0.9 at TV 0.2."""
    with pytest.raises(NotLossless, match="underpowered: with samples=50") as err:
        assert_lossless("reference.chain", scenarios=("t1",), samples=50)
    assert err.value.report.verdict == "underpowered" and isinstance(err.value, AssertionError)
    with pytest.raises(NotLossless, match=r"(?s)mutant.accept_always is not lossless.*verdict: not exact"):
        assert_lossless("mutant.accept_always", scenarios=("t1",), tv=0.2, alpha=specoracle_alpha)
    from specoracle.reference.categorical import verify_chain_rng
    report = assert_lossless(verify_chain_rng, "probs", law="chain", scenarios=("t1",), tv=0.2, seed=1,
                             alpha=specoracle_alpha)
    assert report.exact and report.impl == "verify_chain_rng" and len(report.checks) == 4
    with pytest.raises(ValueError, match="protocol: unknown protocol 'nope'"):
        assert_lossless(verify_chain_rng, "nope")
    with pytest.raises(ValueError, match="speaks 'probs', not 'batch'"):
        assert_lossless("reference.chain", "batch")


def test_plugin_module_is_light():
    """Loading the plugin (every pytest run where specoracle is installed) imports no
    statistics machinery until a fixture is used."""
    import subprocess
    code = ("import sys, specoracle.pytest_plugin; "
            "print(any(m.startswith(('specoracle.proofs', 'scipy')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


ALLOCATING_CONFTEST = """
import pytest
from specoracle.pytest_plugin import Control, Designed, Share, allocate

@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    allocate(config, 0.01, {
        "test_suite.py::test_share": Share(1e-3, 2, controls=1),
        "test_suite.py::test_control": Control("test_suite.py::test_share"),
        "test_suite.py::test_designed": Designed(1e-4, why="replicate band"),
    }, marker="statistical")
"""


def test_allocation_table_fixed_shares_controls_and_remainder(pytester):
    """A table entry's level does not depend on the selection; a control runs at the level
    of the test it controls; an unlisted fixture user splits what the table leaves."""
    pytester.makeini("[pytest]\nmarkers =\n    statistical: x\n")
    pytester.makeconftest(ALLOCATING_CONFTEST)
    pytester.makepyfile(test_suite="""
        import pytest
        @pytest.mark.statistical
        @pytest.mark.parametrize("case", ["exact", "mutant"])
        def test_share(case, specoracle_alpha):
            assert specoracle_alpha == 1e-3
        @pytest.mark.statistical
        def test_control(specoracle_alpha):
            assert specoracle_alpha == 1e-3
        @pytest.mark.statistical
        def test_designed():
            pass
        def test_unlisted(specoracle_alpha):
            assert specoracle_alpha == pytest.approx((0.01 - 1e-3 - 1e-4) / 2)
        def test_unlisted_too(specoracle_alpha):
            pass
    """)
    res = pytester.runpytest(*PLUGIN)
    res.assert_outcomes(passed=6)
    res.stdout.fnmatch_lines([
        "*specoracle false-positive budget*",
        "budget alpha = 0.01; allocation table: 3 tests spend 0.0011 in all; this run: 3 of them (3 cases) "
        "spend 0.0011; P(any exact sampler fails) <= 0.01",
        "  control at alpha=0.001 (level of test_suite.py::test_share)  test_suite.py::test_control",
        "  alpha=0.0001 x 1 of 1 cases (designed)  test_suite.py::test_designed",
        "  alpha=0.001 x 2 of 2 cases (1 controls)  test_suite.py::test_share",
        "  remainder 0.0089 split over 2 test(s) without an entry: alpha = 0.00445 each",
    ])
    res = pytester.runpytest(*PLUGIN, "-k", "test_share and exact")   # the level does not follow the selection
    res.assert_outcomes(passed=1)
    res.stdout.fnmatch_lines(["*this run: 1 of them (1 cases) spend 0.001*"])


def test_allocation_table_refusals(pytester):
    """A table over the budget, a statistical test without an entry, more cases than
    declared, a control of nothing: usage errors that name the test."""
    pytester.makeini("[pytest]\nmarkers =\n    statistical: x\n")
    pytester.makeconftest(ALLOCATING_CONFTEST.replace("0.01, {", "1e-4, {"))
    pytester.makepyfile("def test_x():\n    pass\n")
    res = pytester.runpytest(*PLUGIN)
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*the table spends 0.0011, more than the budget 0.0001*"])
    pytester.makeconftest(ALLOCATING_CONFTEST)
    pytester.makepyfile(test_suite="""
        import pytest
        @pytest.mark.statistical
        @pytest.mark.parametrize("case", [1, 2, 3])
        def test_share(case):
            pass
        @pytest.mark.statistical
        def test_forgotten():
            pass
    """)
    res = pytester.runpytest(*PLUGIN)
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*marked 'statistical' have no entry in the allocation table: "
                              "test_suite.py::test_forgotten*"])
    res = pytester.runpytest(*PLUGIN, "-k", "share")
    res.stderr.fnmatch_lines(["*more collected cases than the table declares: test_suite.py::test_share (3 > 2)*"])
    pytester.makeconftest(ALLOCATING_CONFTEST.replace('Control("test_suite.py::test_share")', 'Control("nope")'))
    res = pytester.runpytest(*PLUGIN)
    res.stderr.fnmatch_lines(["*control test_suite.py::test_control names 'nope', which has no Share*"])


def test_read_table_forms_and_refusals(tmp_path):
    """read_table: the three entry forms in file order, and a bad entry named by its key."""
    from specoracle.pytest_plugin import Control, Designed, Share, read_table

    good = tmp_path / "budget.toml"
    good.write_text('suite_alpha = 0.05\n[tests]\n'
                    '"a.py::t" = {alpha = 1e-3, cases = 3, controls = 1}\n'
                    '"a.py::c" = {control = "a.py::t"}\n'
                    '"b.py::d" = {designed = 2e-3, why = "band over 400 replicates"}\n'
                    '"b.py::n" = {control = true, why = "asserts its own rejection"}\n')
    total, table = read_table(good)
    assert total == 0.05 and list(table) == ["a.py::t", "a.py::c", "b.py::d", "b.py::n"]
    assert table["a.py::t"] == Share(1e-3, 3, 1) and table["a.py::c"] == Control("a.py::t")
    assert table["b.py::d"] == Designed(2e-3, why="band over 400 replicates")
    assert table["b.py::n"] == Control(why="asserts its own rejection")
    for body, says in [('"x.py::t" = {alpha = 1e-3, why = "no"}', "x.py::t"),
                       ('"x.py::t" = {designed = 1e-3}', "needs its reason"),
                       ('"x.py::t" = {control = 3}', "control must name"),
                       ('"x.py::t" = {alpha = 1e-3, control = "y"}', "expected one of")]:
        bad = tmp_path / "bad.toml"
        bad.write_text(f"suite_alpha = 0.05\n[tests]\n{body}\n")
        with pytest.raises(ValueError, match=says):
            read_table(bad)
    (tmp_path / "empty.toml").write_text("[tests]\n")
    with pytest.raises(ValueError, match="suite_alpha"):
        read_table(tmp_path / "empty.toml")
