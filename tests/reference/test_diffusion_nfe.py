"""NFE accounting (ALGORITHMS.md §3.7, T11): sequential target calls and network
evaluations are exact identities in the limiting cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from specoracle.reference import diffusion as df
from specoracle.reference import targets_continuous as tc
from specoracle.reference.types import InvalidInput

B_OFF = np.array([0.3, -0.1])


def _m_p(k, x):
    return 0.9 * x + B_OFF


def _exact(k, x):
    return 0.9 * x + B_OFF


def _useless(k, x):
    return 0.9 * x + B_OFF + 1e3


CASES = [(7, 3), (6, 3), (5, 1), (4, 8), (9, 4)]


def _chains(draft, verify, big_k, big_l, rng, **kw):
    """64 chains of K steps (2-D, from 0) of the target ``_m_p`` drafted by ``draft``, window L."""
    return df.speculative_sample_chain(_m_p, draft, np.full(big_k, 0.5), np.zeros((64, 2)), rng,
                                       window=big_l, verify=verify, **kw)


@pytest.mark.parametrize("verify", ["block", "token", "reflection"])
@pytest.mark.parametrize("big_k,big_l", CASES)
def test_exact_draft_uses_ceil_k_over_l_calls(verify, big_k, big_l):
    rng = np.random.default_rng(big_k * 10 + big_l)
    res = _chains(_exact, verify, big_k, big_l, rng)
    assert np.all(res.sequential_calls == math.ceil(big_k / big_l))
    assert np.all(res.target_evals == big_k)
    assert np.all(res.draft_evals == big_k)
    assert res.accepted_per_step.sum() == res.drafted_per_step.sum() == 64 * big_k
    with_bonus = _chains(_exact, verify, big_k, big_l, rng, bonus=True)
    assert np.all(with_bonus.sequential_calls == math.ceil(big_k / (big_l + 1)))


@pytest.mark.parametrize("verify", ["block", "token", "reflection"])
@pytest.mark.parametrize("big_k,big_l", CASES)
def test_useless_draft_uses_k_calls(verify, big_k, big_l):
    rng = np.random.default_rng(big_k * 10 + big_l)
    res = _chains(_useless, verify, big_k, big_l, rng)
    assert np.all(res.sequential_calls == big_k)
    assert res.accepted_per_step.sum() == 0
    assert np.all(res.tau_first == 0)


def _windows(big_k, big_l):
    return [min(big_l, big_k - n) for n in range(0, big_k, big_l)]


@pytest.mark.parametrize("big_k,big_l", CASES)
def test_frozen_and_free_drafters_on_a_constant_drift_chain(big_k, big_l):
    """x' = x + b + s xi: the frozen drift b is exact, every draft is accepted. FD-a pays
    one start call per window plus a verification call for windows longer than 1 (step 1
    is the target kernel itself); FD-b pays one call per window plus one start call."""
    def m_p(k, x):
        return x + B_OFF
    rng = np.random.default_rng(3)
    fa = df.speculative_sample_chain(m_p, None, np.full(big_k, 0.5), np.zeros((32, 2)), rng,
                                     window=big_l, drafter="frozen")
    want = sum(1 + (w >= 2) for w in _windows(big_k, big_l))
    assert np.all(fa.sequential_calls == want)
    assert np.all(fa.target_evals == big_k)
    fb = df.speculative_sample_chain(m_p, None, np.full(big_k, 0.5), np.zeros((32, 2)), rng,
                                     window=big_l, drafter="free")
    assert np.all(fb.sequential_calls == 1 + math.ceil(big_k / big_l))
    assert fa.accepted_per_step.sum() == fb.accepted_per_step.sum() == 32 * big_k


def test_diffusion_zero_noise_step_is_one_extra_call():
    """DDPM with sigma_1 = 0: T - 1 speculative steps, then the deterministic mean (1 call)."""
    sched = tc.linear_schedule(10, 1e-3, 0.2)
    data = tc.GaussianData([0.5], 0.4)
    sampler = df.DiffusionSampler(sched, "ddpm")
    assert sampler.n_speculative == 9
    target = df.TargetModel(sampler, tc.ExactDenoiser(data, sched, "eps"))
    rng = np.random.default_rng(0)
    res = df.speculative_sample(target, df.make_drafter("target", target), np.zeros((16, 1)), rng,
                                window=4, verify="block")
    assert np.all(res.sequential_calls == math.ceil(9 / 4) + 1)
    plain = df.speculative_sample(target, None, np.zeros((16, 1)), rng, verify="none")
    assert np.all(plain.sequential_calls == 10)


def test_loop_bad_inputs():
    sched = tc.linear_schedule(5, 1e-3, 0.2)
    data = tc.GaussianData([0.5], 0.4)
    target = df.TargetModel(df.DiffusionSampler(sched), tc.ExactDenoiser(data, sched))
    dr = df.make_drafter("free", target)
    rng = np.random.default_rng(0)
    for kwargs, arg in [({"window": 0}, "window"), ({"verify": "greedy"}, "verify"),
                        ({"verify": "block", "reuse_orth": True}, "reuse_orth")]:
        with pytest.raises(InvalidInput) as e:
            df.speculative_sample(target, dr, np.zeros((2, 1)), rng, **kwargs)
        assert e.value.argument == arg
    with pytest.raises(InvalidInput) as e:
        df.speculative_sample(target, dr, np.zeros((2, 3)), rng)
    assert e.value.argument == "x0"
    with pytest.raises(InvalidInput) as e:
        df.speculative_sample(target, dr, np.full((2, 1), np.nan), rng)
    assert e.value.argument == "x0"
    with pytest.raises(InvalidInput) as e:
        df.make_drafter("independent", target)
    assert e.value.argument == "draft_denoiser"
    with pytest.raises(InvalidInput) as e:
        df.speculative_sample_chain(_m_p, _exact, [0.5, 0.0], np.zeros((2, 2)), rng)
    assert e.value.argument == "sigmas"
