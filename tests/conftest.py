"""pytest configuration: hypothesis profiles and shared fixtures.

Profiles: ``dev`` (default locally), ``ci`` (derandomized, no example database,
selected automatically when CI=true), ``thorough`` (many more examples; select
with HYPOTHESIS_PROFILE=thorough). Every hypothesis test draws its inputs from
tests/strategies.py. Statistical tests use fixed seeds: never re-roll a seed to turn
a test green.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from specoracle.pytest_plugin import Control, Designed, Share, allocate

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
# ONE false-positive budget for the whole suite (default and slow tests together): the
# probability that any test fails on exact samplers, had its fixed seeds been drawn at
# random, is <= SUITE_ALPHA (Bonferroni over the table below). Every test marked
# `statistical` has an entry (collection refuses one without); a test reads its level with
# the `specoracle_alpha` fixture (or `lossless`), so the table is the only place a level is
# set. Share(alpha, cases, controls): each parametrized case runs at `alpha`; `controls` of
# them assert a rejection (mutant cases); `alpha * (cases - controls)` is spent;
# Control(of): a negative control, run at the level of the test it controls, spends
# nothing; Designed(alpha, why=...): a rate that follows from the test's own design (it
# does not read the fixture). Shares, power and the cost of shrinking them:
# tests/TOLERANCES.md, "The suite's false-positive budget". tests/test_suite_budget.py
# checks the table against the suite.
SUITE_ALPHA = 0.15
_REF = "test_certify_core.py::test_reference_is_exact"
ALPHA_TABLE = {
    # certification (samples planned from alpha and tv: power is kept by sample size)
    _REF: Share(1e-3, 12),
    "test_certify_core.py::test_reference_is_exact_at_default_settings": Share(1e-3, 3),
    "test_certify_core.py::test_numba_twin_is_coupled_to_the_oracle": Share(1e-3),
    "test_certify_core.py::test_transformers_adapter_for_real": Share(1e-3),
    "test_certify_core.py::test_report_table_and_json": Share(1e-3),
    "test_certify_core.py::test_module_function_adapter": Share(1e-3),
    "test_certify_adapters.py::test_missing_law_is_said": Share(1e-3),
    "test_certify_adapters.py::test_logits_adapter_without_the_new_keywords_skips_with_a_note": Share(1e-3),
    "test_certify_fastpath.py::test_fastpath_twin_certifies_exact": Share(2e-4, 15),
    "test_certify_fastpath.py::test_wrong_twin_is_rejected_through_the_adapter":
        Control("test_certify_fastpath.py::test_fastpath_twin_certifies_exact"),
    "test_certify_fastpath.py::test_mss_mutants_are_rejected_on_the_twins_scenario":
        Control("test_certify_fastpath.py::test_fastpath_twin_certifies_exact"),
    "test_certify_batch.py::test_reference_batch_is_exact": Share(1e-3),
    "test_certify_batch.py::test_fastpath_batch_is_exact": Share(1e-3, 2),
    "test_certify_batch.py::test_batch_only_bugs_pass_alone_and_fail_in_a_batch": Share(1e-3),
    "test_certify_batch.py::test_determinism_catches_a_shared_generator": Share(1e-3),
    "test_certify_batch.py::test_invariance_catches_a_lossless_batch_dependent_law": Share(1e-3),
    "test_mutants_zoo.py::test_mutant_is_rejected_quick": Control(_REF),
    "test_mutants_zoo.py::test_mutant_is_rejected_at_default_settings":
        Control("test_certify_core.py::test_reference_is_exact_at_default_settings"),
    "test_sweep.py::test_random_scenarios_pass_the_reference_and_kill_mutants": Share(1e-3, 5, controls=4),
    "test_sweep.py::test_gaussian_sweep_bins_pass_the_reference_and_kill_the_mutant": Share(1e-3),
    "test_sweep.py::test_every_mutant_is_rejected_by_a_sweep_of_its_focus_scenarios": Share(1e-3),
    "test_vllm_adapter.py::test_reference_on_the_new_logits_scenarios_and_a_negative_control": Share(1e-3),
    "test_vllm_adapter.py::test_vllm_v1_rejection_sampler_verdicts": Share(1e-3),
    "test_pytest_plugin.py::test_assert_lossless_underpowered_and_not_exact": Share(1e-3),
    "test_pytest_plugin.py::test_example_file_runs_under_the_suite_budget":
        Designed(1e-3, why="a pytest sub-run under its own budget --specoracle-alpha 1e-3"),
    "test_pytest_plugin.py::test_wrong_sampler_fails_with_the_report":
        Control(why="runs only the example's wrong sampler and asserts that it fails"),
    # engines (certify_engine plans samples from alpha and tv)
    "test_engines.py::test_specoracle_engine_is_exact": Share(1e-3, 2),
    "test_engines.py::test_argmax_engine_is_rejected": Control("test_engines.py::test_specoracle_engine_is_exact"),
    "test_engines.py::test_batch_dependent_corruption_needs_batches": Share(1e-3),
    "test_engines.py::test_broken_rollback_is_rejected": Control("test_engines.py::test_specoracle_engine_is_exact"),
    "test_engines.py::test_transformers_law": Share(1e-3, 2),
    "test_engines.py::test_transformers_law_on_the_zoo": Share(1e-3, 2),
    # LLM pipelines, DFlash / D2SD (fixed sample sizes; power asserted at run time)
    "test_llm_lossless.py::test_speculative_law_equals_target_law": Share(2.5e-3, 4),
    "test_llm_lossless.py::test_broken_pipelines_are_rejected":
        Control("test_llm_lossless.py::test_speculative_law_equals_target_law"),
    "test_llm_tau_paired.py::test_real_rows_monte_carlo_and_greedy_identity":
        Designed(3.4e-6, why="|mean - closed form| > 5 SE flags, 6 comparisons (CLT)"),
    "test_d2sd_tree.py::test_first_tokens_law_equals_target": Share(1e-3, 2, controls=1),
    "test_dflash_generate.py::test_first_tokens_law_equals_target": Share(1e-3, 5, controls=2),
    "test_dflash_units.py::test_truncated_geometric_prior": Share(1e-3),
    "test_dflash_zoo.py::test_first_tokens_law_equals_target": Share(1e-3, 4),
    # Gaussian steps and speculative diffusion (fixed sample sizes)
    "test_gaussian_step_stats.py::test_step_law_and_acceptance_t6": Share(1e-3, 3),
    "test_gaussian_step_stats.py::test_reflection_wrong_sign_is_rejected": Share(1e-3),
    "test_gaussian_step_stats.py::test_gamma_residual_mean_matches_closed_form": Share(1e-3),
    "test_gaussian_step_stats.py::test_naive_cdf_residual_is_biased_survival_is_not": Share(1e-3),
    "test_gaussian_step_stats.py::test_scaled_residual_samplers_agree": Share(3e-3, 3),
    "test_diffusion_targets.py::test_linear_recursion_matches_plain_chain": Share(1e-3, 2),
    "test_diffusion_targets.py::test_grid_reference_matches_plain_chain": Share(1e-3),
    "test_diffusion_loop_stats.py::test_gaussian_data_chain_law": Share(2e-4, 15),
    "test_diffusion_loop_stats.py::test_gaussian_data_chain_law_em_sampler": Share(2e-4),
    "test_diffusion_loop_stats.py::test_mixture_chain_law_against_grid": Share(2e-4, 12),
    "test_diffusion_loop_stats.py::test_t7_acceptance_closed_forms": Share(2e-3, 4),
    "test_diffusion_loop_stats.py::test_block_residual_needs_the_scale": Share(1e-3, 2, controls=1),
    "test_diffusion_loop_stats.py::test_orthogonal_part_is_independent_of_tau_in_block_verification": Share(1e-3),
    "test_diffusion_loop_stats.py::test_langevin_chain_law": Share(2e-4, 2),
    "test_diffusion_slow.py::test_t8_linear_chain_400k": Share(1e-3, 6),
    "test_diffmodels_exact.py::test_moons_speculative_equals_plain": Share(1e-3, 8),
    "test_diffmodels_exact.py::test_moons_negative_controls_rejected":
        Control("test_diffmodels_exact.py::test_moons_speculative_equals_plain"),
    "test_diffmodels_exact.py::test_digits_speculative_equals_plain": Share(1e-3, 2),
    # RNG and the statistics themselves
    "test_torch_rng.py::test_uniforms_are_uniform": Share(2e-3),
    "test_stats_core.py::test_chisquare_calibrated_under_the_null":
        Designed(1.9e-3, why="null rate at 0.05 over 2000 replicates outside [0.035, 0.065]: 1.8e-3 (binomial)"),
    "test_stats_core.py::test_chisquare_power_at_the_stated_tv":
        Designed(7e-4, why="P(rate < 0.85 | power 0.9) over 400 replicates: 6.3e-4 (binomial)"),
    "test_stats_core.py::test_binomial_exact_and_power":
        Designed(7e-4, why="null rate > 0.02 at 0.01 over 2000 (2.3e-5) + rate < 0.85 at power 0.9 over 400 (6.3e-4)"),
    "test_stats_core.py::test_continuous_tests_calibrated_and_powerful":
        Designed(1e-2, why="null-rate bands: KS, AD over 1000 (3.0e-3 each), energy over 300 (3.6e-3)"),
    "test_stats_core.py::test_simulated_null_is_calibrated_on_thin_merged_cells":
        Designed(5e-5, why="rate <= 0.01 + 4 binomial sd over 4000 replicates of a valid p-value"),
    "test_stats_core.py::test_simulated_null_power_at_the_stated_tv":
        Designed(2.5e-3, why="P(rate < 0.85 | power 0.9) over 300 replicates: 2.4e-3 (binomial)"),
}


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
