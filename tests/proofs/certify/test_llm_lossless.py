"""Certified lossless, end to end: speculative decoding of the zoo pair (drafter + warps +
verifier + KV-cache rollback + ragged batches) emits the target's autoregressive law.

For the prompt "def " and the warp (T = 1, top-k = 3) applied to target and draft alike, the
law of the first n generated tokens is computed EXACTLY from the target model (support
enumerated, conditionals multiplied: proofs/certify/lossless.py). Samples of the whole
pipeline are tested against it with Pearson's chi-square goodness of fit
(specoracle.proofs.stats.chisquare_gof; cells with expected count < 5 merged).

False-positive level: each of the four stochastic checks (chain / block x batch 1 / batch 8;
chain at batch 1 and block at batch 8 in the default run, the other two marked slow)
runs at its share of the suite budget (``specoracle_alpha``, tests/alpha_budget.toml: 0.0025 each,
fixed seeds). Power (stated per test, the
noncentral chi-square worst case over alternatives, proofs/stats.py): batch 1, n = 2,
N = 300: detects TV >= 0.16 with probability 0.9; batch 8, n = 3, N = 800: TV >= 0.12
(upper bounds: df = cells - 1 before merging; merging lowers df and the detectable TV).
Negative controls, which must be rejected at the same sizes: a KV-cache rollback off by one
(the target keeps one rejected draft) and q taken before the warps.
Greedy verification: the law is a point mass, so every sample must equal the target's greedy
continuation (alpha = 0, exact).
"""
from __future__ import annotations

import pytest
import torch

from specoracle.proofs.certify.lossless import certify_prefix_law, exact_prefix_law
from specoracle.fastpath.models.llm.engine import autoregressive_generate, speculative_generate
from specoracle.fastpath.models.llm.faults import faulty_generate
from specoracle.fastpath.models.llm.processing import Warp
from specoracle.proofs.stats import require_power

from _llm_zoo import zoo_pair

pytestmark = [pytest.mark.zoo]

WARP = Warp(1.0, top_k=3)
K = 2  # two drafts per round: three tokens need 1-3 rounds, so rollbacks are exercised
CONFIGS = {1: dict(n=2, n_samples=300, max_tv=0.16), 8: dict(n=3, n_samples=800, max_tv=0.12)}


@pytest.fixture(scope="module")
def setup():
    target, draft, tok = zoo_pair()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls: one thread is faster and immune to oversubscription
    prompt = tok("def ").input_ids
    laws = {}
    for n in (2, 3):
        law, margin = exact_prefix_law(target, prompt, WARP, n, eos_id=tok.eos_token_id,
                                       return_margin=True)
        assert margin > 1e-3  # no near-tie at the top-k boundary: the support is robust to rounding
        assert len(law) == 3 ** n
        laws[n] = law
    yield target, draft, tok, prompt, laws
    torch.set_num_threads(threads)


def _certify(setup, method, batch, alpha, fault=None, seed=1000):
    target, draft, tok, prompt, laws = setup
    cfg = CONFIGS[batch]
    res, counts, _ = certify_prefix_law(target, draft, prompt, n=cfg["n"], n_samples=cfg["n_samples"],
                                        batch=batch, method=method, k=K, warping=WARP, seed=seed,
                                        alpha=alpha, eos_id=tok.eos_token_id, fault=fault,
                                        law=laws[cfg["n"]])
    require_power(res.detectable, cfg["max_tv"], f"{method} batch {batch}")
    return res


@pytest.mark.statistical
@pytest.mark.parametrize("method,batch", [("chain", 1), ("block", 8),  # default run: both methods, both sizes
                                          pytest.param("chain", 8, marks=pytest.mark.slow),
                                          pytest.param("block", 1, marks=pytest.mark.slow)])
def test_speculative_law_equals_target_law(setup, method, batch, specoracle_alpha):
    """alpha = the suite budget's share (0.0025 per test); power 0.9 at TV 0.16 (batch 1) /
    0.12 (batch 8), asserted (require_power)."""
    res = _certify(setup, method, batch, specoracle_alpha)
    assert res.impossible == 0
    assert res.p_value >= specoracle_alpha, res


@pytest.mark.statistical
@pytest.mark.parametrize("fault,method", [("rollback_off_by_one", "chain"), ("q_before_warp", "block")])
def test_broken_pipelines_are_rejected(setup, fault, method, specoracle_alpha):
    """Negative controls at the batch-8 size (power 0.9 at TV 0.12): must give p < alpha, the
    level of test_speculative_law_equals_target_law."""
    res = _certify(setup, method, 8, specoracle_alpha, fault=fault, seed=2000)
    assert res.p_value < specoracle_alpha, res


@pytest.mark.parametrize("batch", [1, 8])
def test_greedy_law_is_the_point_mass(setup, batch):
    target, draft, tok, prompt, _ = setup
    greedy = Warp(0.0)
    want = autoregressive_generate(target, [prompt], warping=greedy, max_new_tokens=3).tokens[0]
    for method in ("greedy", "chain", "block"):
        got = speculative_generate(target, draft, [prompt] * batch, k=K, method=method,
                                   warping=greedy, max_new_tokens=3, seeds=range(batch)).tokens
        assert all(t == want for t in got), method


def test_greedy_rejects_broken_rollback(setup):
    target, draft, tok, prompt, _ = setup
    greedy = Warp(0.0)
    want = autoregressive_generate(target, [prompt], warping=greedy, max_new_tokens=12).tokens[0]
    got = faulty_generate("rollback_off_by_one", target, draft, [prompt], k=K, method="greedy",
                          warping=greedy, max_new_tokens=12).tokens[0]
    assert got != want
