"""Certify YOUR speculative sampler from YOUR test suite (specoracle's pytest plugin).

Copy this file into your project's tests and replace ``my_verify`` / ``my_batched_verify``
by adapters around your own code. With specoracle installed, the plugin is active in every
pytest run; set the suite's false-positive budget once::

    pytest examples/test_my_sampler.py --specoracle-alpha 1e-3

Each test that uses the ``lossless`` fixture gets an equal share of that budget
(Bonferroni), so the chance that ANY of them fails on an exact sampler is <= 1e-3; the
end of the run prints the budget, the share and every verdict. ``lossless(...)`` raises
AssertionError with the full report when the sampler is not exact, or when the run was
too small to see an error of size ``tv`` (underpowered).

The statistical runs here use ``tv=0.1`` (detects any error of total-variation size 0.1
with power 0.9) and two scenarios to finish in seconds; drop ``scenarios`` and ``tv`` for
the full default battery (TV 0.05).
"""
import numpy as np
import pytest


# ------------------------------------------------------------ your sampler (one sequence)


def my_verify(p, q, draft, rng):
    """Token-level speculative sampling, written from the paper (Leviathan et al. 2023).

    p [K+1, V] target rows, q [K, V] draft rows, draft [K] ids, rng a numpy Generator;
    returns the emitted ids (accepted drafts + one correction or bonus token)."""
    out = []
    for i, x in enumerate(draft):
        if rng.random() * q[i, x] < p[i, x]:      # accept with probability min(1, p/q)
            out.append(int(x))
            continue
        residual = np.maximum(p[i] - q[i], 0.0)     # correct from (p - q)+, renormalised
        out.append(int(rng.choice(len(residual), p=residual / residual.sum())))
        return out
    out.append(int(rng.choice(p.shape[1], p=p[len(draft)])))   # bonus token
    return out


def my_wrong_verify(p, q, draft, rng):
    """The same, but the correction is drawn from p instead of (p - q)+ (a classic bug)."""
    out = []
    for i, x in enumerate(draft):
        if rng.random() * q[i, x] < p[i, x]:
            out.append(int(x))
            continue
        out.append(int(rng.choice(p.shape[1], p=p[i])))
        return out
    out.append(int(rng.choice(p.shape[1], p=p[len(draft)])))
    return out


def test_my_sampler_is_lossless(lossless):
    report = lossless(my_verify, protocol="probs", law="chain", scenarios=("t1", "markov"), tv=0.1, seed=0)
    assert report.exact


@pytest.mark.xfail(reason="resamples from p after a rejection: not lossless", raises=AssertionError, strict=True)
def test_my_wrong_sampler_is_caught(lossless):
    lossless(my_wrong_verify, protocol="probs", law="chain", scenarios=("t1", "markov"), tv=0.1, seed=0)


# ------------------------------------------------------------ your batched sampler (engine layout)


def my_batched_verify(target_probs, draft_probs, draft_token_ids, cu_num_draft_tokens, temperature, generators):
    """An adapter in the "batch" protocol (vLLM V1's layout): B requests flattened, request
    i has K_i = cu[i] - cu[i-1] drafts and K_i + 1 target rows starting at cu[i-1] + i;
    temperature 0 = greedy; generators[i] is request i's own generator. Returns ids
    [B, max K_i + 1] padded with -1. Here each request goes through ``my_verify``."""
    from specoracle.proofs.certify.batch import pad_outputs, request_slices
    out = []
    for i, (drafts, rows) in enumerate(request_slices(cu_num_draft_tokens)):
        p, q, d = target_probs[rows], draft_probs[drafts], draft_token_ids[drafts]
        if temperature[i] == 0.0:   # greedy: the longest prefix matching the target argmax
            am = p.argmax(axis=1)
            n = next((j for j in range(len(d)) if d[j] != am[j]), len(d))
            out.append([int(t) for t in d[:n]] + [int(am[n])])
        else:
            out.append(my_verify(p, q, d, generators[i]))
    return pad_outputs(out)


def test_my_batched_sampler_is_lossless_and_batch_invariant(lossless):
    report = lossless(my_batched_verify, protocol="batch", law="chain", scenarios=("t1", "markov_k0", "greedy"),
                      tv=0.1, seed=0)
    assert {"determinism", "greedy/oracle", "t1/invariance"} <= {c.name for c in report.checks}
