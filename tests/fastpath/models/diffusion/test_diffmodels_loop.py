"""The batched speculative loop over denoisers (fastpath/models/diffusion/spec.py).

* Decision-identical (states to LOOP_ATOL) to the oracle's loop (reference/diffusion.speculative_sample,
  verifying with the one-window oracle) on the same generator, for every drafter x verification
  pair, on the exact Gaussian-mixture denoiser (whose exactness the oracle's own statistical tests
  certify). The model loop is that loop over a denoiser adapter with the NumPy twin as verifier:
  this checks the adapter (chain means, raw-output freezing, call counting) and the twin.
* NFE identities (ALGORITHMS.md T11) and the ragged one-batched-call-per-round structure.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from specoracle.fastpath.models.diffusion.adapter import NumpyDenoiser, chain_from_reference
from specoracle.fastpath.models.diffusion.chains import GaussianChain, ddpm_chain
from specoracle.fastpath.models.diffusion.spec import (SpecConfig, sample_plain, sample_plain_rng,
                                                       sample_speculative_rng)
from specoracle.fastpath.progress import progress_bar
from specoracle.reference import diffusion as rd
from specoracle.reference import targets_continuous as tc
from specoracle.reference.types import InvalidInput

LOOP_ATOL = 1e-9   # the residual quantile: 80-step bisection (twin) vs brentq (oracle), ulps apart
SCHEDULE = tc.linear_schedule(30, 1e-3, 0.2)
MIX = tc.GaussianMixtureData(weights=np.array([0.3, 0.7]), means=np.array([[-2.0, 0.5], [1.5, -1.0]]),
                             stds=np.array([0.5, 0.3]))
DRAFT_MIX = tc.GaussianMixtureData(weights=np.array([0.5, 0.5]), means=np.array([[-1.5, 0.0], [1.0, -0.5]]),
                                   stds=np.array([0.6, 0.5]))


def _setup(param, final_noise):
    sampler = rd.DiffusionSampler(SCHEDULE, "ddpm", final_noise=final_noise)
    den = tc.ExactDenoiser(MIX, SCHEDULE, param)
    dden = tc.ExactDenoiser(DRAFT_MIX, SCHEDULE, param)
    return sampler, den, dden


@pytest.mark.parametrize("verify", ["block", "token", "reflection"])
@pytest.mark.parametrize("drafter,freeze,param,final_noise", [
    ("free", "drift", "eps", False), ("free", "output", "score", True),
    ("frozen", "drift", "eps", True), ("independent", "drift", "eps", False)])
def test_identical_to_reference_loop(verify, drafter, freeze, param, final_noise):
    sampler, den, dden = _setup(param, final_noise)
    x0 = np.random.default_rng(5).standard_normal((120, 2))
    tm = rd.TargetModel(sampler, den, param)
    dr = rd.make_drafter(drafter, tm, draft_denoiser=dden, freeze=freeze)
    want = rd.speculative_sample(tm, dr, x0, np.random.default_rng(7), window=4, verify=verify)
    got = sample_speculative_rng(NumpyDenoiser(den, 2), chain_from_reference(sampler, param), 120,
                                 np.random.default_rng(7),
                                 SpecConfig(window=4, drafter=drafter, verify=verify, freeze=freeze),
                                 draft=NumpyDenoiser(dden, 2), x_init=x0)
    np.testing.assert_allclose(got.samples, want.samples, rtol=0, atol=LOOP_ATOL)
    assert got.stats["tau_histogram"] == want.tau_hist.tolist()
    assert got.stats["seq_target_calls_per_chain"]["mean"] == pytest.approx(want.sequential_calls.mean())
    assert got.stats["target_evals"] == want.target_evals.sum()


class _Counting:
    """A linear 'network' out = w * x + t / 1000 with call counting (cheap, deterministic)."""

    def __init__(self, w, dim=3):
        self.w, self.dim = w, dim
        self.calls = self.evals = 0
        self.seconds = 0.0
        self.sizes = []

    def __call__(self, x, t):
        self.calls += 1
        self.evals += x.shape[0]
        self.sizes.append(x.shape[0])
        return self.w * x + np.asarray(t)[:, None] / 1000.0


@pytest.mark.parametrize("K,L", [(20, 4), (23, 8), (7, 16), (10, 1)])
@pytest.mark.parametrize("verify", ["block", "token", "reflection"])
def test_nfe_draft_equals_target(K, L, verify):
    """T11: with draft = target every draft is accepted; ceil(K/L) verification calls."""
    net = _Counting(0.3)
    chain = ddpm_chain(K)
    res = sample_speculative_rng(net, chain, 9, np.random.default_rng(1),
                                 SpecConfig(window=L, drafter="independent", verify=verify), draft=net)
    assert res.stats["seq_target_calls"] == math.ceil(K / L)
    assert res.stats["seq_target_calls_per_chain"] == {"mean": math.ceil(K / L), "min": math.ceil(K / L),
                                                       "max": math.ceil(K / L)}
    assert res.stats["accepted_drafts"] == 9 * K
    assert res.stats["target_evals"] == 9 * K


def test_nfe_useless_draft_gives_K_calls():
    """T11: a draft far from the target is (almost) never accepted: calls -> K."""
    K = 15
    target, draft = _Counting(0.0), _Counting(5e4)
    res = sample_speculative_rng(target, ddpm_chain(K), 6, np.random.default_rng(2),
                                 SpecConfig(window=4, drafter="independent", verify="block"), draft=draft)
    assert res.stats["accepted_drafts"] == 0
    assert res.stats["seq_target_calls"] == K
    assert res.stats["tau_histogram"][0] == 6 * K


@pytest.mark.parametrize("drafter", ["free", "frozen", "independent"])
def test_one_batched_call_per_round_ragged(drafter):
    """Each round makes exactly one verification call covering every active chain's window
    (plus the FD-a start call); chains restart independently (ragged)."""
    target, draft = _Counting(0.2), _Counting(0.25)
    K, L, B = 40, 8, 16
    res = sample_speculative_rng(target, ddpm_chain(K), B, np.random.default_rng(3),
                                 SpecConfig(window=L, drafter=drafter, verify="token"), draft=draft)
    st = res.stats
    assert target.calls == st["seq_target_calls"]
    assert target.evals == st["target_evals"]
    per_round = 2 if drafter == "frozen" else 1
    extra_first = 1 if drafter == "free" else 0          # FD-b's first window has no previous pass
    assert st["seq_target_calls"] == per_round * st["rounds"] + extra_first
    assert max(target.sizes) <= B * L
    assert st["seq_target_calls_per_chain"]["min"] < st["seq_target_calls_per_chain"]["max"]  # ragged
    assert sum(st["tau_histogram"]) == st["windows"]
    if drafter == "independent":
        assert draft.calls == st["seq_draft_calls"] and draft.evals == st["draft_evals"]


def test_plain_chain_and_zero_noise_tail():
    net = _Counting(0.1)
    chain = ddpm_chain(12, variance="posterior")          # last step has zero noise
    assert chain.n_gaussian == 11
    x0 = np.random.default_rng(0).standard_normal((5, 3))
    z = np.random.default_rng(1).standard_normal((11, 5, 3))
    res = sample_plain(net, chain, x0, z)
    x = x0.copy()
    for k in range(12):
        kk = np.full(5, k)
        x = chain.mean(kk, x, net.w * x + chain.net_time[kk][:, None] / 1000.0) + (chain.std[k] * z[k] if k < 11 else 0)
    np.testing.assert_allclose(res.samples, x, rtol=1e-13, atol=1e-13)
    assert res.stats["seq_target_calls"] == 12
    spec = sample_speculative_rng(net, chain, 5, np.random.default_rng(4), SpecConfig(window=4, drafter="independent"),
                                  draft=net)
    assert spec.stats["seq_target_calls"] == math.ceil(11 / 4) + 1


def test_bad_input():
    net = _Counting(0.1)
    chain = ddpm_chain(5)
    with pytest.raises(InvalidInput, match="window"):
        SpecConfig(window=0)
    with pytest.raises(InvalidInput, match="drafter"):
        SpecConfig(drafter="medusa")
    with pytest.raises(InvalidInput, match="verify"):
        SpecConfig(verify="greedy")
    with pytest.raises(InvalidInput, match="draft"):
        sample_speculative_rng(net, chain, 2, np.random.default_rng(0), SpecConfig(drafter="independent"))
    with pytest.raises(InvalidInput, match="x_init"):
        sample_speculative_rng(net, chain, 2, np.random.default_rng(0), x_init=np.full((2, 3), np.nan))
    with pytest.raises(InvalidInput, match="rng"):
        sample_plain_rng(net, chain, 2, 0)
    with pytest.raises(InvalidInput, match="std"):
        GaussianChain(net_time=np.ones(3), std=np.array([1.0, 0.0, 1.0]), x_coef=np.ones(3), out_coef=np.ones(3))
    with pytest.raises(InvalidInput, match="steps"):
        ddpm_chain(0)


class _Terminal:
    """A stand-in stderr that says it is a terminal and keeps everything written to it."""

    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s

    def flush(self):
        pass

    def isatty(self):
        return True

    def last_bar(self):
        frames = [f for f in self.text.replace("\n", "\r").split("\r") if "|" in f]
        return frames[-1] if frames else ""


@pytest.mark.parametrize("loop", ["fastpath", "reference"])
def test_progress_bar_ends_at_its_total(loop, monkeypatch):
    """`diffuse --model zoo:digits` showed 255956/256000 at the end. The bar's
    count reaches B * K_g (every chain advances to K_g) and the last frame drawn shows it:
    the bar is redrawn on close instead of keeping its last rate-limited frame (with the
    old leave=False this test saw '3882/5800' as the last frame)."""
    term = _Terminal()
    monkeypatch.setattr("sys.stderr", term)
    sampler, den, dden = _setup("eps", False)
    b = 200
    x0 = np.random.default_rng(5).standard_normal((b, 2))
    if loop == "fastpath":
        chain = chain_from_reference(sampler, "eps")
        sample_speculative_rng(NumpyDenoiser(den, 2), chain, b, np.random.default_rng(7),
                               SpecConfig(window=8), x_init=x0, progress=True)
        total = b * chain.n_gaussian
    else:
        # the oracle's loop draws nothing: its caller (the CLI) draws the bar from on_round
        tm = rd.TargetModel(sampler, den, "eps")
        total = b * sampler.n_speculative
        with progress_bar(total, "speculative block L=8", True) as on_round:
            rd.speculative_sample(tm, rd.make_drafter("free", tm), x0, np.random.default_rng(7),
                                  window=8, verify="block", on_round=on_round)
    assert f" {total}/{total} " in term.last_bar(), term.last_bar()
