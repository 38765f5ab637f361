"""Batched mutants (protocol "batch", :mod:`specoracle.proofs.certify.batch`): known-wrong
samplers modelled on the 2026 engine bugs (docs/CERTIFICATION.md), registered in the same zoo
(:data:`specoracle.proofs.certify.mutants.MUTANTS`, ``mutant.<name>``) and rejected by
``certify`` at the default settings.

Each is a deliberately wrong copy of a batched verifier over the vLLM V1-style layout
(flattened ragged drafts, ``cu_num_draft_tokens``, one generator per request); the
per-request logic reuses the zoo's pluggable chain verifier :func:`mutants._chain`.
"""
from __future__ import annotations

import numpy as np

from specoracle.reference import categorical as cat

from .batch import pad_outputs, request_slices
from .mutants import _chain, mutant


def _each(target, qs, ids, cu, temp, gens, verify, slices=None):
    """Run ``verify(i, p, q, draft, temperature, generator, B) -> tokens`` per request."""
    slices = request_slices(cu) if slices is None else slices
    outs = [verify(i, target[ts], qs[ds], ids[ds], float(temp[i]), gens[i], len(slices))
            for i, (ds, ts) in enumerate(slices)]
    return pad_outputs(outs)


def _correct(i, p, q, d, t, gen, B):
    return cat.verify_greedy(p, d).tokens if t == 0.0 else cat.verify_chain_rng(p, q, d, gen).tokens


@mutant("batch_size_corruption", "with more than 2 requests per batch at T > 0, the recovered token is drawn from "
        "the target row instead of the residual", "1Cat-vLLM #656 (text corrupted only when more than 2 requests "
        "share a batch at T > 0)", protocol="batch", focus=("t1",))
def batch_size_corruption(target, qs, ids, cu, temp, gens):
    """1Cat-vLLM #656: output was corrupted only when more than two requests shared a
    batch at temperature > 0. Modelled as a batched kernel path (taken for B > 2) whose
    correction step forgets to subtract q: alone or in pairs the request is exact, in the
    batch placement its law is wrong (``<kind>@batch/*`` and ``<kind>/invariance``)."""
    def verify(i, p, q, d, t, gen, B):
        if t == 0.0 or B <= 2:
            return _correct(i, p, q, d, t, gen, B)
        return tuple(_chain(p, q, d, gen, residual=lambda p, q, j: p[j]))
    return _each(target, qs, ids, cu, temp, gens, verify)


@mutant("wrong_logits_slice", "request i verified against target rows starting at cu[i-1] (the bonus rows of the "
        "requests before it forgotten): the neighbouring request's / position's rows",
        "TensorRT-LLM #15098 (verification against the wrong logits slice)", protocol="batch",
        focus=("t1",))
def wrong_logits_slice(target, qs, ids, cu, temp, gens):
    """TensorRT-LLM #15098: drafts verified against the logits of the wrong slice. Here
    the target offset of request i is computed as cu[i-1] instead of cu[i-1] + i (the
    flattened target has one bonus row per request), so every request after the first
    reads rows of the request before it: exact alone, wrong in a batch."""
    slices = request_slices(cu)
    shifted = [(ds, slice(ds.start, ds.stop + 1)) for ds, _ in slices]
    return _each(target, qs, ids, cu, temp, gens, _correct, shifted)


@mutant("batch_argmax_draft_soft_q", "sampled requests: the draft is the argmax of q but verification uses the full "
        "softmax q", "alibaba/rtp-llm #1311 (argmax draft verified with the soft q; the probs-protocol twin is "
        "greedy_draft_soft_q)", protocol="batch", focus=("t1",))
def batch_argmax_draft_soft_q(target, qs, ids, cu, temp, gens):
    """alibaba/rtp-llm #1311: the drafter proposed argmax tokens but the verifier used the
    drafter's full softmax as q. A deterministic draft has a one-hot q; verifying it with
    the soft q accepts the argmax token too rarely and corrects towards it too often.
    ``mutant.greedy_draft_soft_q`` (transformers #32867) is the same bug in the "probs"
    protocol; this is its batched form (the engine replaces the drafted ids by argmax q)."""
    def verify(i, p, q, d, t, gen, B):
        if t == 0.0:
            return _correct(i, p, q, d, t, gen, B)
        return tuple(_chain(p, q, np.argmax(q, axis=1) if len(d) else d, gen))
    return _each(target, qs, ids, cu, temp, gens, verify)


@mutant("onehot_q_for_sampled_draft", "a sampled draft verified as if q were one-hot (accept with p(x), correct from "
        "p without x), i.e. the n-gram path used for a draft model", "draft_probs dropped for a sampled draft "
        "(the point-mass verification of n-gram drafts applied to a draft model)", protocol="batch",
        focus=("t1",))
def onehot_q_for_sampled_draft(target, qs, ids, cu, temp, gens):
    """A sampled draft verified as if q were one-hot (an engine that drops ``draft_probs``
    and takes its no-draft-probs path, meant for n-gram / suffix drafts). Accepting x with
    probability p(x) and correcting from p with x removed is still lossless, so the joint
    checks pass; but it is not token-level speculative sampling: the acceptance law
    (``emitted|tau``) is sum q p instead of sum min(p, q). Rejected because it claims
    ``law="chain"``."""
    def verify(i, p, q, d, t, gen, B):
        if t == 0.0:
            return _correct(i, p, q, d, t, gen, B)
        hot = np.zeros_like(q)
        hot[np.arange(len(d)), d] = 1.0
        return tuple(_chain(p, hot, d, gen))
    return _each(target, qs, ids, cu, temp, gens, verify)


@mutant("always_argmax", "every request verified greedily (argmax), whatever its temperature",
        "mistral.rs #2424 (speculative decoding always took the argmax at T > 0)", protocol="batch",
        focus=("t1",))
def always_argmax(target, qs, ids, cu, temp, gens):
    """mistral.rs #2424: the speculative path always took the argmax, ignoring the
    sampling parameters, so T > 0 requests came out greedy."""
    return _each(target, qs, ids, cu, np.zeros_like(np.asarray(temp, float)), gens, _correct)


@mutant("shared_generator", "one batch-wide generator (the first request's) drives every request's noise",
        "per-request seeds ignored: a seeded request's tokens depend on its batch", protocol="batch",
        focus=("t1",))
def shared_generator(target, qs, ids, cu, temp, gens):
    """Per-request seeds ignored: the kernel draws every request's uniforms from one
    batch-wide generator. Each request's law is exact (the statistics pass); the same
    request with the same seed gives other tokens in another batch (``determinism``)."""
    return _each(target, qs, ids, cu, temp, [gens[0]] * len(gens), _correct)


@mutant("batch_switches_algorithm", "token-level verification alone or in pairs, block verification for more than "
        "2 requests: lossless either way, but a request's law depends on its batch",
        "a verification path chosen by batch size (the batch invariance asked for in vllm #52522)",
        protocol="batch", law=None, focus=("scaled",))
def batch_switches_algorithm(target, qs, ids, cu, temp, gens):
    """A verification path chosen by batch size: chain verification for B <= 2, block
    verification (Sun et al.) for larger batches. Both are lossless, so the joint checks
    pass and the impl claims no algorithm (law=None); only batch invariance sees that the
    law of (tau, tokens) of a request changes with its neighbours."""
    def verify(i, p, q, d, t, gen, B):
        if t == 0.0 or B <= 2:
            return _correct(i, p, q, d, t, gen, B)
        return cat.verify_block_rng(p, q, d, gen).tokens
    return _each(target, qs, ids, cu, temp, gens, verify)
