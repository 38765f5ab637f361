"""Unit tests of proofs/stats.py: merging rule, exact p = 0 on impossible outcomes,
calibration on known nulls and power on known alternatives (fixed seeds)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from specoracle.proofs import stats as st
from specoracle.reference.types import InvalidInput, InvalidTest


def test_merge_cells_rule():
    labels = st.merge_cells([1, 2, 3, 10, 0, 0.5])
    assert labels[4] == -1                      # null probability 0: never merged
    assert labels[3] == 0                       # a big cell stays alone
    assert len({labels[i] for i in (0, 1, 2, 5)}) == 1   # 0.5+1+2+3 pooled (>= 5)
    # a remainder below 5 is folded into the smallest group
    labels = st.merge_cells([6, 7, 1])
    assert labels[2] == labels[0]


def test_impossible_outcome_gives_p_zero():
    r = st.chisquare_gof([10, 20, 30, 1], [0.2, 0.3, 0.5, 0.0], alpha=1e-3)
    assert r.p_value == 0.0 and r.impossible == 1
    r = st.chisquare_gof([10, 20, 30, 0], [0.2, 0.3, 0.5, 0.0], alpha=1e-3)
    assert r.p_value > 0.5 and r.impossible == 0


def test_bad_inputs():
    with pytest.raises(InvalidInput):
        st.chisquare_gof([1, 2], [0.5, 0.6])
    with pytest.raises(InvalidInput):
        st.detectable_tv(100, 3, alpha=0.0)
    with pytest.raises(InvalidTest):
        st.require_power(0.2, 0.05, "x")
    st.require_power(0.04, 0.05, "x")


def test_power_formulas_are_consistent():
    for df in (1, 5, 40):
        n = st.gof_sample_size(0.05, df, 1e-3, 0.9)
        assert st.detectable_tv(n, df, 1e-3, 0.9) <= 0.05 < st.detectable_tv(n - 50, df, 1e-3, 0.9)
    n = st.binomial_sample_size(0.03, 0.5, 1e-3, 0.9)
    assert st.binomial_detectable(n, 0.5, 1e-3, 0.9) <= 0.0301
    assert st.ks_detectable(10_000, 1e-3) == pytest.approx(
        np.sqrt(np.log(2 / 1e-3) / 2e4) + np.sqrt(np.log(20) / 2e4))


@pytest.mark.statistical
def test_chisquare_calibrated_under_the_null():
    """alpha: the null rejection rate at 0.05 over 2000 replicates is checked against
    the interval [0.035, 0.065] (a 3.1-sigma band: false-positive rate 1.8e-3, binomial;
    its share of the suite budget: tests/alpha_budget.toml);
    power: a calibration error of 1.5 points (0.065 vs 0.05) is detected."""
    rng = np.random.default_rng(1)
    p = np.array([0.4, 0.3, 0.15, 0.1, 0.04, 0.01])
    pv = np.array([st.chisquare_gof(rng.multinomial(300, p), p).p_value for _ in range(2000)])
    assert 0.035 <= np.mean(pv < 0.05) <= 0.065


@pytest.mark.statistical
def test_chisquare_power_at_the_stated_tv():
    """The stated power holds for the WORST-case alternative at TV eps (|r - p| proportional
    to p, half the cells up, half down). 400 replicates at n = gof_sample_size(eps);
    alpha of this check: P(rate < 0.85 | true power 0.9) < 1e-3 (binomial); power: detects
    a true power below ~0.82."""
    rng = np.random.default_rng(2)
    p = np.array([0.25, 0.25, 0.2, 0.2, 0.05, 0.05])
    eps, df, alpha = 0.05, 5, 0.01
    sign = np.array([1, -1, 1, -1, 1, -1])
    r = p * (1 + 2 * eps * sign)      # sum |r - p| = 2 eps (the up and down halves have mass 1/2)
    assert abs(0.5 * np.abs(r - p).sum() - eps) < 1e-12
    n = st.gof_sample_size(eps, df, alpha, 0.9)
    rej = np.mean([st.chisquare_gof(rng.multinomial(n, r), p).p_value < alpha for _ in range(400)])
    assert rej >= 0.85


@pytest.mark.statistical
def test_binomial_exact_and_power():
    """The exact test never rejects more than alpha under the null (2000 replicates,
    band [0, 0.02] at alpha 0.01: false-positive rate 2.3e-5); at n from
    binomial_sample_size the shift is detected in >= 85% of 400 replicates."""
    rng = np.random.default_rng(3)
    pv = [st.binomial_test(int(k), 500, 0.3).p_value for k in rng.binomial(500, 0.3, size=2000)]
    assert np.mean(np.array(pv) < 0.01) <= 0.02
    n = st.binomial_sample_size(0.05, 0.3, 0.01, 0.9)
    rej = np.mean([st.binomial_test(int(k), n, 0.3).p_value < 0.01 for k in rng.binomial(n, 0.35, size=400)])
    assert rej >= 0.85


@pytest.mark.statistical
def test_continuous_tests_calibrated_and_powerful():
    """KS and Anderson-Darling: null rejection rate at 0.05 over 1000 replicates in
    [0.03, 0.07] (false-positive rate 3.0e-3 each, binomial); both reject a 0.2-sigma shift at n = 2000
    in every one of 50 replicates (their power there is > 0.999). Energy: null rate at 0.05
    within [0.02, 0.09] over 300 replicates (false-positive rate 3.6e-3), and it rejects a
    scale change of 25%."""
    rng = np.random.default_rng(4)
    ks = [st.ks_normal(rng.standard_normal(200)).p_value for _ in range(1000)]
    ad = [st.anderson_normal(rng.standard_normal(200)).p_value for _ in range(1000)]
    assert 0.03 <= np.mean(np.array(ks) < 0.05) <= 0.07
    assert 0.03 <= np.mean(np.array(ad) < 0.05) <= 0.07
    assert all(st.ks_normal(rng.standard_normal(2000) + 0.2).p_value < 1e-3 for _ in range(50))
    assert all(st.anderson_normal(rng.standard_normal(2000) + 0.2).p_value < 1e-3 for _ in range(50))
    en = [st.energy_normal(rng.standard_normal((150, 3))).p_value for _ in range(300)]
    assert 0.02 <= np.mean(np.array(en) < 0.05) <= 0.09
    assert st.energy_normal(1.25 * rng.standard_normal((400, 3))).p_value < 1e-3


def test_anderson_matches_the_null_quantiles():
    # A^2 critical values for case 0 (fully specified null): 2.492 (5%), 3.857 (1%).
    assert st._ad_cdf_inf(2.492) == pytest.approx(0.95, abs=2e-3)
    assert st._ad_cdf_inf(3.857) == pytest.approx(0.99, abs=1e-3)


def test_holm_and_agreement():
    assert list(st.holm([0.001, 0.04, 0.03], 0.05)) == [True, False, False]
    assert list(st.holm([0.01, 0.02, 0.03], 0.1)) == [True, True, True]
    assert st.agreement([1, 2, 3], [1, 2, 4]) == (pytest.approx(2 / 3), 2)
    assert st.agreement([], []) == (1.0, None)


def test_binomial_degenerate_null():
    assert st.binomial_test(0, 10, 0.0).p_value == 1.0
    assert st.binomial_test(1, 10, 0.0).p_value == 0.0
    assert sps.binomtest(3, 10, 0.3).pvalue == pytest.approx(st.binomial_test(3, 10, 0.3).p_value)


@pytest.mark.statistical
def test_simulated_null_is_calibrated_on_thin_merged_cells():
    """The simulated (Besag-Clifford) null holds its level where merged cells sit
    near an expected count of 5 (the markov scenario's emitted|tau law at n = 600: 56 of its 67
    possible cells merge into 6 groups of expected 5.3-9; measured rate 0.0090, the
    chi-square approximation 0.0103 on the same replicates). The level is simulated at alpha = 0.01 (not
    5e-5) so that it runs in seconds. 4000 null replicates; the rejection rate must stay
    <= 0.0157 (= 0.01 + 4 binomial sd: a false-positive rate of this test < 5e-5, since the
    p-value is valid, P(p <= a) <= a); power: a 1.5x over-rejection (rate 0.015, what the
    chi-square approximation gives at 5e-5 on such cells) is flagged with probability ~0.4,
    a 2x over-rejection (0.02) with probability 0.99. Tolerance: tests/TOLERANCES.md."""
    from specoracle.proofs.certify.scenarios import markov_scenarios

    law = markov_scenarios()["markov"].chain_law()
    law = law / law.sum()
    n, alpha, reps = 600, 0.01, 4000
    rng = np.random.default_rng(20)
    mc = np.random.default_rng(21)
    labels = st.merge_cells(n * law)
    sizes = np.bincount(labels[labels >= 0], weights=n * law[labels >= 0])
    assert np.sum(sizes < 10) >= 5   # the thin merged cells this test is about
    rej = sum(st.chisquare_gof(rng.multinomial(n, law), law, alpha=alpha, null="simulated", rng=mc).p_value <= alpha
              for _ in range(reps))
    assert rej / reps <= 0.0157, rej


@pytest.mark.statistical
def test_simulated_null_power_at_the_stated_tv():
    """The simulated test's stated power (planned at alpha / 3 with the Monte-Carlo factor,
    proofs/stats.py) holds for the worst-case alternative at TV eps = 0.05: 300 replicates
    at n = gof_sample_size(eps, null="simulated"), alpha 0.01; this check's alpha: P(rate <
    0.85 | true power 0.9) < 3e-3 (binomial); power: detects a true power below ~0.8."""
    rng = np.random.default_rng(22)
    p = np.array([0.25, 0.25, 0.2, 0.2, 0.05, 0.05])
    eps, alpha = 0.05, 0.01
    r = p * (1 + 2 * eps * np.array([1, -1, 1, -1, 1, -1]))
    n = st.gof_sample_size(eps, 5, alpha, 0.9, null="simulated")
    assert n > st.gof_sample_size(eps, 5, alpha, 0.9)   # the Monte-Carlo test is planned more strictly
    assert st.detectable_tv(n, 5, alpha, 0.9, null="simulated") <= eps
    rej = np.mean([st.chisquare_gof(rng.multinomial(n, r), p, alpha=alpha, null="simulated", rng=rng).p_value
                   <= alpha for _ in range(300)])
    assert rej >= 0.85


def test_simulated_pvalue_rules():
    """Besag-Clifford: stops after h exceedances (p = h / L), else p = (g + 1) / B; the
    smallest p is 1 / B with B = ceil(MC_DRAWS_PER_LEVEL / alpha); bad arguments fail."""
    rng = np.random.default_rng(0)
    p, draws = st.simulated_pvalue(-1.0, lambda g, k: g.random(k), alpha=0.01, rng=rng)
    assert (p, draws) == (1.0, st.MC_EXCEEDANCES)
    p, draws = st.simulated_pvalue(2.0, lambda g, k: g.random(k), alpha=0.01, rng=rng)
    assert p == pytest.approx(1 / 1000) and draws == 999
    assert st.mc_power_factor(5e-5) > 0.997
    with pytest.raises(InvalidInput):
        st.chisquare_gof([10, 20], [0.5, 0.5], null="simulated")   # no alpha: the resolution is unknown
    with pytest.raises(InvalidInput):
        st.chisquare_gof([10, 20], [0.5, 0.5], null="exact")
