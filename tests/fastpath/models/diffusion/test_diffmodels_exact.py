"""Certified exact on the trained nets: speculative samples vs plain-chain samples.

The law of the speculative sampler's output must equal the plain target chain's. On the
zoo's trained networks there is no closed form, so this is a TWO-SAMPLE test between
N = 6000 speculative and N_PLAIN = 12000 plain-chain samples (independent seeds; the
negative controls draw N_PLAIN speculative samples), a chi-square test of
homogeneity on a fixed 6 x 6 grid of cells (quantiles of the training data along two
fixed directions: data coordinates for moons, the data's first two principal axes for
digits; cells with < 10 pooled counts dropped).

Error rates (stated, fixed seeds, never re-rolled):
* alpha = the test's share of the suite budget per case (``specoracle_alpha``,
  tests/alpha_budget.toml: 1e-3; the default suite runs 2 such cases, the slow suite 8 more).
* power: with n1 and n2 samples the noncentrality is >= 4 n_eff eps^2 for binned TV eps,
  n_eff = n1 n2 / (n1 + n2), i.e. the one-sample rule of proofs.stats with n_eff samples:
  the binned TV detected with power 0.9 is ``detectable_tv(n_eff, df, alpha)`` (0.057 at
  n_eff = 4000, df = 35; computed and asserted in ``test_power_statement``).
* Negative controls (known-wrong samplers) that the same test must reject: "accept_all"
  (every draft accepted: the free-drafted chain) and "target_resample" (on a rejection,
  a fresh draw from the target kernel instead of the residual: the classic bug).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats

from specoracle.fastpath.models.diffusion import spec as ds
from specoracle.fastpath.models.zoo import diffusion as zoo
from specoracle.fastpath.models.diffusion.chains import ddpm_chain
from specoracle.fastpath.models.diffusion.data import load_dataset
from specoracle.fastpath.numpy_batch import gaussian as nbg
from specoracle.proofs.stats import detectable_tv
from specoracle.pytest_plugin import alpha_of

N = 6000
N_PLAIN = 12000
STEPS = 20
BINS = 6


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _pair(name):
    folder = zoo.SHIPPED_DIR / name
    if not (folder / "target.safetensors").exists():
        pytest.skip(f"zoo:{name} weights not shipped")
    t, d, _ = zoo.load_pair(name, folder=folder)
    return ds.TorchDenoiser(t), ds.TorchDenoiser(d)


def _cells(name):
    """(projection [D, 2], inner quantile edges per axis) from the training data (fixed)."""
    data = load_dataset(name, n=20000, seed=0).astype(np.float64)
    if name == "moons":
        proj = np.eye(2)
    else:
        centred = data - data.mean(0)
        proj = np.linalg.svd(centred, full_matrices=False)[2][:2].T
    y = data @ proj
    qs = np.linspace(0, 1, BINS + 1)[1:-1]
    return proj, [np.quantile(y[:, i], qs) for i in range(2)]


def homogeneity(a, b, cells):
    """Chi-square test of homogeneity of two samples on the fixed cells: (p, df)."""
    proj, edges = cells

    def counts(x):
        y = x @ proj
        return np.bincount(np.digitize(y[:, 0], edges[0]) * BINS + np.digitize(y[:, 1], edges[1]),
                           minlength=BINS * BINS)

    tab = np.array([counts(a), counts(b)])
    tab = tab[:, tab.sum(0) >= 10]
    chi2, p, df, _ = stats.chi2_contingency(tab, correction=False)
    return p, df


class _Mutant:
    """A known-wrong window verifier in the place of ``ds.VERIFIER`` (same API: the twins'
    ``verify_gaussian_block`` / ``verify_gaussian_chain`` with keyword ``lengths``)."""

    def __init__(self, mutate):
        self.mutate = mutate

    def verify_gaussian_block(self, *args, **kw):
        return self.mutate(args, nbg.verify_gaussian_block(*args, **kw))

    def verify_gaussian_chain(self, *args, **kw):
        return self.mutate(args, nbg.verify_gaussian_chain(*args, **kw))


def _accept_all(args, r):
    """Every draft accepted: the free-drafted chain."""
    m_p, m_q, s, z = args[:4]
    n = np.asarray(r.lengths)
    states = np.concatenate([m_q + s[:, :, None] * z, np.full_like(z[:, :1], np.nan)], axis=1)
    return dataclasses.replace(r, n_accepted=n.copy(), n_emitted=n.copy(), states=states,
                               corrected=np.zeros_like(r.corrected), fallbacks=np.zeros_like(r.fallbacks))


def _target_resample(args, r):
    """On a rejection, a fresh draw from the target kernel instead of the residual."""
    m_p, s, z_orth = args[0], args[2], args[6]
    st = r.states.copy()
    c = np.flatnonzero(r.corrected)
    j = r.n_accepted[c]
    st[c, j] = m_p[c, j] + s[c, j][:, None] * z_orth[c]
    return dataclasses.replace(r, states=st)


MUTANTS = {"accept_all": _Mutant(_accept_all), "target_resample": _Mutant(_target_resample)}


@pytest.fixture(scope="module")
def moons_plain():
    torch.set_num_threads(1)
    target, _ = _pair("moons")
    return ds.sample_plain_rng(target, ddpm_chain(STEPS), N_PLAIN, np.random.default_rng(101)).samples


def _spec(name, drafter, verify, window=4, seed=202, steps=STEPS, n=N):
    target, draft = _pair(name)
    cfg = ds.SpecConfig(window=window, drafter=drafter, verify=verify)
    return ds.sample_speculative_rng(target, ddpm_chain(steps), n, np.random.default_rng(seed), cfg,
                                     draft=draft)


def test_power_statement(request):
    df = (BINS * BINS) - 1
    alpha = alpha_of(request.config, "test_diffmodels_exact.py::test_moons_speculative_equals_plain")
    assert detectable_tv(N * N_PLAIN // (N + N_PLAIN), df, alpha, 0.9) < 0.06


@pytest.mark.statistical
@pytest.mark.parametrize("drafter,verify", [
    ("free", "block"), ("independent", "token"),
    pytest.param("free", "token", marks=pytest.mark.slow),
    pytest.param("free", "reflection", marks=pytest.mark.slow),
    pytest.param("frozen", "block", marks=pytest.mark.slow),
    pytest.param("frozen", "token", marks=pytest.mark.slow),
    pytest.param("independent", "block", marks=pytest.mark.slow),
    pytest.param("independent", "reflection", marks=pytest.mark.slow)])
def test_moons_speculative_equals_plain(moons_plain, drafter, verify, specoracle_alpha):
    """alpha = the suite budget's share (1e-3), power 0.9 at binned TV 0.057 (module docstring)."""
    res = _spec("moons", drafter, verify)
    p, df = homogeneity(res.samples, moons_plain, _cells("moons"))
    assert df >= 20
    assert p > specoracle_alpha, f"{drafter}/{verify}: p = {p:.2e}"
    assert res.stats["mean_accepted_length"] > 1.0          # the test ran a real speculative sampler


@pytest.mark.statistical
@pytest.mark.parametrize("mutant,drafter", [("accept_all", "free"), ("target_resample", "free")])
def test_moons_negative_controls_rejected(moons_plain, mutant, drafter, monkeypatch, specoracle_alpha):
    """The same test (alpha: the level of test_moons_speculative_equals_plain) rejects the
    known-wrong samplers (N_PLAIN per arm)."""
    monkeypatch.setattr(ds, "VERIFIER", MUTANTS[mutant])
    res = _spec("moons", drafter, "block", n=N_PLAIN)
    p, _ = homogeneity(res.samples, moons_plain, _cells("moons"))
    assert p < specoracle_alpha, f"mutant {mutant} not rejected: p = {p:.2e}"


@pytest.mark.slow
@pytest.mark.statistical
@pytest.mark.parametrize("drafter,verify", [("free", "block"), ("independent", "token")])
def test_digits_speculative_equals_plain(drafter, verify, specoracle_alpha):
    """Digits (64-D), 50 steps, N = 3000 per arm, first two principal axes; alpha = the suite
    budget's share (1e-3), power 0.9 at binned TV detectable_tv(1500, 35, 1e-3) = 0.094."""
    target, _ = _pair("digits")
    plain = ds.sample_plain_rng(target, ddpm_chain(50), 3000, np.random.default_rng(303)).samples
    res = _spec("digits", drafter, verify, window=8, seed=404, steps=50, n=3000)
    p, df = homogeneity(res.samples, plain, _cells("digits"))
    assert p > specoracle_alpha, f"{drafter}/{verify}: p = {p:.2e}"
