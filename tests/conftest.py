"""pytest configuration: hypothesis profiles and shared fixtures.

Profiles: ``dev`` (default locally), ``ci`` (derandomized, no example database,
selected automatically when CI=true), ``thorough`` (many more examples; select
with HYPOTHESIS_PROFILE=thorough). Every hypothesis test draws its inputs from
tests/strategies.py. Statistical tests use fixed seeds: never re-roll a seed to turn
a test green.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from specoracle.pytest_plugin import allocate, read_table

settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True, database=None,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None, derandomize=True,
                          database=None, suppress_health_check=[HealthCheck.too_slow])

_profile = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev")
settings.load_profile(_profile)

THOROUGH = _profile == "thorough"

# The `lossless` / `specoracle_alpha` fixtures and the suite-wide false-positive budget
# (--specoracle-alpha / ini specoracle_alpha). Installed, the pytest11 entry point of the
# same name loads it already and this line is a no-op; it keeps a stale install working.
pytest_plugins = ["specoracle.pytest_plugin"]

# ---------------------------------------------------------------- the suite's alpha budget
#
# ONE false-positive budget for the whole suite: SUITE_ALPHA and its allocation ALPHA_TABLE
# (Share / Designed / Control per statistical test) live in tests/alpha_budget.toml, whose
# header says what each entry means; tests/test_suite_budget.py checks it against the suite.
SUITE_ALPHA, ALPHA_TABLE = read_table(Path(__file__).with_name("alpha_budget.toml"))


@pytest.hookimpl(trylast=True)  # after the plugin's pytest_configure made the budget
def pytest_configure(config):
    allocate(config, SUITE_ALPHA, ALPHA_TABLE, marker="statistical")


def _has_cuda() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if not _has_cuda():
        skip = pytest.mark.skip(reason="needs a CUDA GPU (none available)")
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def rng():
    """A fixed-seed generator: tests are deterministic."""
    return np.random.default_rng(20261122)


@pytest.fixture
def one_torch_thread():
    """Pin torch to one thread for the test, restoring the setting after it. On a loaded
    2-core machine the default two threads made tiny forward passes 10-100x slower
    (oversubscription); one thread keeps model tests inside their time budgets."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
