"""Per-request counter-based noise (fastpath/torch_cuda/rng.py) and the seeded verifiers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from specoracle.fastpath.torch_cuda import categorical as tc
from specoracle.fastpath.torch_cuda.rng import counter_uniforms, philox4x32
from specoracle.reference import categorical as ref

from _torch_helpers import random_batch, row

# Known-answer vectors of Philox4x32-10 (Random123's kat_vectors).
KAT = [((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
       ((0xffffffff,) * 4, (0xffffffff,) * 2, (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
       ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
        (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1))]


@pytest.mark.parametrize("ctr,key,want", KAT)
def test_philox_known_answers(ctr, key, want):
    words = [torch.tensor([w], dtype=torch.int64) for w in ctr + key]
    assert tuple(int(w) for w in philox4x32(*words)) == want


def test_uniforms_depend_only_on_seed_position_slot():
    a = counter_uniforms([7, 8, 9], [100, 0, 5], 6)
    b = counter_uniforms([9], [5], 4)
    assert torch.equal(a[2, :4], b[0])                       # batch- and K-independent
    assert not torch.equal(a[0], counter_uniforms([7], [101], 6)[0])
    # round r+1 starts at a later position: its slots never reuse round r's uniforms
    r0 = counter_uniforms([7], [100], 5)[0]
    r1 = counter_uniforms([7], [102], 5)[0]
    assert not set(r0.tolist()) & set(r1.tolist())
    assert ((a >= 0) & (a < 1)).all() and a.dtype == torch.float64


@pytest.mark.statistical
def test_uniforms_are_uniform(specoracle_alpha):
    """KS test of 5*10^4 uniforms (seeds 0..249 x positions 0..39 x 5 slots) against U[0,1),
    and of the lag-1 pairs' product moment. alpha = half the budget's share (2e-3), 1e-3, for
    each of the two checks (fixed inputs: the test is deterministic); power: a cdf deviation of 0.015 is detected with
    probability > 0.99 at n = 5*10^4 (critical D = 1.95/sqrt(n) = 0.0087); the correlation
    check detects |rho| >= 0.02 (critical z(1 - alpha/2)/sqrt(n) = 3.29/sqrt(n) = 0.0147). Negative control: a 2 %
    fraction of uniforms squeezed towards 0 is rejected."""
    seeds = torch.arange(250).repeat_interleave(40)
    pos = torch.arange(40).repeat(250) * 9
    u = counter_uniforms(seeds, pos, 5).reshape(-1).numpy()
    alpha = specoracle_alpha / 2
    assert stats.kstest(u, "uniform").pvalue > alpha
    x = (u - 0.5) * np.sqrt(12)
    rho = float(np.mean(x[:-1] * x[1:]))
    assert abs(rho) < stats.norm.isf(alpha / 2) / np.sqrt(u.size)
    # negative control: the same test rejects 2 % of the uniforms squeezed towards 0
    biased = np.where(np.arange(u.size) % 50 == 0, u * 0.01, u)
    assert stats.kstest(biased, "uniform").pvalue < alpha


def test_seeded_verifiers_are_batch_composition_independent():
    rng = np.random.default_rng(9)
    p, q, draft, _, n = random_batch(rng, 6, 4, 23)
    seed = np.array([11, 12, 13, 14, 15, 16])
    pos = np.array([0, 40, 7, 7, 1000, 3])
    for kind in ("chain", "block"):
        fn = getattr(tc, f"verify_{kind}_seeded")
        full = fn(p, q, draft, seed=seed, position=pos, num_draft=n)
        for b in (0, 3, 5):
            m = int(n[b])  # alone, with its own K = n_b (no padding)
            alone = fn(p[b:b + 1, : m + 1], q[b:b + 1, :m], draft[b:b + 1, :m], seed=seed[b:b + 1],
                       position=pos[b:b + 1])
            assert alone.verdict(0) == full.verdict(b)
            u = counter_uniforms(seed[b:b + 1], pos[b:b + 1], m + 1)[0].numpy()
            args = row(p, q, draft, np.zeros((6, 5)), n, b)[:3]
            assert full.verdict(b) == getattr(ref, f"verify_{kind}")(*args, u)
