"""The mutant zoo: known-wrong samplers modelled on real bug classes (negative controls).

Each mutant is a deliberately wrong COPY of the logic of a verifier (never a
monkeypatch of the reference), registered as ``mutant.<name>`` with a one-line
description, the issue it imitates, the adapter protocol it speaks (see
:mod:`specoracle.proofs.certify`), the algorithm it claims to implement (``law``) and
the scenarios that expose it (``focus``; the quick tests run only those, the full
battery runs everything). ``specoracle certify mutant.<name>`` must say "not exact"
for every one of them at the default settings (DESIGN.md principle 5).

Noise: every mutant draws its own noise from the rng it is given, like a black box.
Notation: p target, q draft; rows p [K+1, V], q [K, V]; draft [K].
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import special

from specoracle.reference.categorical import sample_categorical_rows
from specoracle.reference.processing import process_logits

from .impl import Impl


@dataclass(frozen=True)
class Mutant:
    name: str
    description: str
    imitates: str
    protocol: str
    fn: Callable
    law: str | None = "chain"
    focus: tuple = ()


# every mutant, by name; the batched ones (protocol "batch") are defined in mutants_batch.py,
# which adds them here when it is imported: the package (registry.py) imports it, so MUTANTS
# is complete whenever specoracle.proofs.certify is imported (any of its modules imports it)
MUTANTS: dict[str, Mutant] = {}


def mutant(name, description, imitates, protocol="probs", law="chain", focus=()):
    def deco(fn):
        MUTANTS[name] = Mutant(name, description, imitates, protocol, fn, law, tuple(focus))
        return fn
    return deco


# ---------------------------------------------------------------- shared pieces (correct)


def _draw(w, u):
    """The reference's inverse-CDF draw from non-negative weights w [V] with one uniform;
    a wrong sampler's weights of zero mass give the last id (nothing to draw from)."""
    w = np.asarray(w)
    if not w.sum() > 0:
        return len(w) - 1
    return int(sample_categorical_rows(w, u)[0])


def _chain(p, q, draft, rng, *, accept=None, residual=None, bonus_row=None, u=None):
    """Token-level verification with pluggable (wrong) pieces.

    accept(p_i, q_i, x, u) -> bool; residual(p, q, i) -> weights; bonus_row(p, K) -> row.
    """
    p, q = np.asarray(p, float), np.asarray(q, float)
    k = len(draft)
    u = rng.random(k + 1) if u is None else u
    accept = accept or (lambda pi, qi, x, ui: ui * qi[x] < pi[x])
    residual = residual or (lambda p, q, i: np.maximum(p[i] - q[i], 0))
    for i in range(k):
        x = int(draft[i])
        if not accept(p[i], q[i], x, u[i]):
            w = residual(p, q, i)
            return [int(t) for t in draft[:i]] + [_draw(w, u[k])]
    row = p[k] if bonus_row is None else bonus_row(p, k)
    return [int(t) for t in draft] + [_draw(row, u[k])]


def _block(p, q, draft, rng, *, scale_residual=True, first_failure=False):
    """Block verification (Alg. 2, §1.3) with two switchable bugs."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    k = len(draft)
    u = rng.random(k + 1)
    surv = [1.0]
    for i in range(k):
        x = int(draft[i])
        surv.append(min(surv[-1] * p[i, x] / q[i, x], 1.0))
    mass = [np.maximum(surv[i] * p[i] - q[i], 0).sum() for i in range(k)]

    def passes(i):
        if i < k:
            return u[i - 1] * (mass[i] + 1 - surv[i]) < mass[i]
        return u[i - 1] < surv[i]

    tau = 0
    if first_failure:  # BUG: stop at the first failing index instead of taking the largest passing one
        for i in range(1, k + 1):
            if not passes(i):
                break
            tau = i
    else:
        for i in range(k, 0, -1):
            if passes(i):
                tau = i
                break
    if tau == k:
        return [int(t) for t in draft] + [_draw(p[k], u[k])]
    c = surv[tau] if scale_residual else 1.0
    w = np.maximum(c * p[tau] - q[tau], 0)
    if not w.sum() > 0:
        w = p[tau]
    return [int(t) for t in draft[:tau]] + [_draw(w, u[k])]


# ---------------------------------------------------------------- chain-verification bugs


@mutant("residual_abs", "residual |p - q| instead of (p - q)+", "a classic slip in hand-written samplers",
        focus=("t1",))
def residual_abs(p, q, draft, rng):
    return _chain(p, q, draft, rng, residual=lambda p, q, i: np.abs(p[i] - q[i]))


@mutant("resample_from_p", "after a rejection, resample from p instead of the residual",
        "naive 'fallback to the target' implementations", focus=("t1",))
def resample_from_p(p, q, draft, rng):
    return _chain(p, q, draft, rng, residual=lambda p, q, i: p[i])


@mutant("le_with_zero_u", "accept iff u q(x) <= p(x) with 8-bit uniforms: u = 0 accepts p(x) = 0 tokens",
        "`<=` vs `<` with u that can be 0 (low-precision uniforms)", focus=("zeros",))
def le_with_zero_u(p, q, draft, rng):
    u = rng.integers(0, 256, size=len(draft) + 1) / 256.0
    return _chain(p, q, draft, rng, u=u, accept=lambda pi, qi, x, ui: ui * qi[x] <= pi[x])


@mutant("shared_noise", "draft and recovered token drawn with the SAME exponential race noise",
        "vLLM #54282 (shared draft/resample noise)", focus=("scaled",))
def shared_noise(p, q, draft, rng):
    # The engine drafts x_i = argmax q_i / E_i itself and, after a rejection, takes the
    # recovered token argmax (p_i - q_i)+ / E_i with the same E_i: correct marginals of
    # the draft, wrong law of the correction (it is conditioned on x_i having won the race).
    p, q = np.asarray(p, float), np.asarray(q, float)
    k, v = q.shape
    out = []
    for i in range(k):
        e = rng.exponential(size=v)
        with np.errstate(divide="ignore"):
            x = int(np.argmax(q[i] / e))
        if rng.random() * q[i, x] < p[i, x]:
            out.append(x)
            continue
        with np.errstate(divide="ignore"):
            out.append(int(np.argmax(np.maximum(p[i] - q[i], 0) / e)))
        return out
    return out + [_draw(p[k], rng.random())]


@mutant("greedy_draft_soft_q", "drafts greedily (argmax q) but verifies with the soft q",
        "transformers #32867 (forced-greedy assistant with soft q); alibaba/rtp-llm #1311 is the same bug",
        focus=("t1",))
def greedy_draft_soft_q(p, q, draft, rng):
    greedy = np.argmax(np.asarray(q), axis=1)
    return _chain(p, q, greedy, rng)


@mutant("accept_always", "u = 0: every draft accepted", "vllm-ascend #13730", focus=("t1",))
def accept_always(p, q, draft, rng):
    return _chain(p, q, draft, rng, accept=lambda pi, qi, x, ui: True)


@mutant("bonus_off_by_one", "bonus token drawn from p[K-1] instead of p[K]", "off-by-one bonus row",
        focus=("t1",))
def bonus_off_by_one(p, q, draft, rng):
    return _chain(p, q, draft, rng, bonus_row=lambda p, k: p[k - 1])


@mutant("bonus_after_reject", "a bonus token is appended even after a rejection",
        "bonus sampled unconditionally", focus=("t1",))
def bonus_after_reject(p, q, draft, rng):
    p = np.asarray(p, float)
    out = _chain(p, q, draft, rng)
    if len(out) <= len(draft):  # a rejection happened at position len(out) - 1
        out.append(_draw(p[len(out)], rng.random()))
    return out


@mutant("ratio_swapped", "accept with min(1, q/p): Chen et al.'s letters read the wrong way round",
        "p/q notation clash (ALGORITHMS.md §0.2)", focus=("t1",))
def ratio_swapped(p, q, draft, rng):
    return _chain(p, q, draft, rng, accept=lambda pi, qi, x, ui: ui * pi[x] < qi[x])


@mutant("residual_next_row", "after a rejection at i, the residual uses the target row i+1",
        "off-by-one target row at the correction", focus=("markov",))
def residual_next_row(p, q, draft, rng):
    return _chain(p, q, draft, rng, residual=lambda p, q, i: np.maximum(p[i + 1] - q[i], 0))


@mutant("token0_fallback", "residual entries below 0.06 are zeroed; an all-zero residual falls back to token 0",
        "vllm #41834 (fallback to token 0 on an all-zero residual)", focus=("spread",))
def token0_fallback(p, q, draft, rng):
    def res(p, q, i):
        w = np.maximum(p[i] - q[i], 0)
        w = np.where(w < 0.06, 0.0, w)
        if not w.sum() > 0:
            w = np.zeros_like(w)
            w[0] = 1.0
        return w
    return _chain(p, q, draft, rng, residual=res)


# ---------------------------------------------------------------- noise reused across rounds
# Exact in every single round; the rounds of one request are dependent. Only the
# multi-round scenario (`rounds`: requests of R calls, each request with its own
# generator) sees them.


class _StaleBuffer:
    """A preallocated buffer of acceptance uniforms refreshed on every OTHER call (a
    kernel that fills its noise buffer once per two decoding steps)."""

    def __init__(self):
        self.calls = 0
        self.u = np.zeros(0)

    def __call__(self, p, q, draft, rng):
        need = len(draft) + 1
        if self.calls % 2 == 0 or len(self.u) < need:
            self.u = rng.random(need)
        self.calls += 1
        # the acceptance tests reuse the buffer; the corrected / bonus token draws fresh noise
        u = np.concatenate([self.u[:len(draft)], [rng.random()]])
        return _chain(p, q, draft, rng, u=u)


stale_buffer = mutant("stale_buffer", "acceptance uniforms refreshed only every other call (a stale noise buffer)",
                      "noise buffer reused across decoding steps (exact per round, rounds dependent)",
                      focus=("rounds",))(_StaleBuffer())


@mutant("rng_keyed_on_position", "noise keyed on (request seed, position in the draft block), reused every round",
        "counter-based RNG keyed on the block position instead of the absolute position", focus=("rounds",))
def rng_keyed_on_position(p, q, draft, rng):
    # The request's seed is read (not advanced) from its generator, and uniform i comes
    # from the key (seed, i): a fresh request gets fresh noise, but every round of one
    # request reuses the same uniforms.
    ss = rng.bit_generator.seed_seq
    k = len(draft)
    u = np.array([np.random.default_rng(np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (i,)))
                  .random() for i in range(k + 1)])
    return _chain(p, q, draft, rng, u=u)


# ---------------------------------------------------------------- block-verification bugs


@mutant("block_token_rule", "claims block verification, applies the token-level rule",
        "vllm-ascend #7807", law="block", focus=("markov",))
def block_token_rule(p, q, draft, rng):
    return _chain(p, q, draft, rng)


@mutant("block_residual_no_ptau", "block verification drawing from (p - q)+ instead of (p_tau p - q)+",
        "block residual without the survival factor p_tau", law="block", focus=("scaled",))
def block_residual_no_ptau(p, q, draft, rng):
    return _block(p, q, draft, rng, scale_residual=False)


@mutant("block_first_failure", "block verification stopping at the first failing index (not the largest passing)",
        "sequential scan of Algorithm 2 in the wrong direction", law="block", focus=("markov",))
def block_first_failure(p, q, draft, rng):
    return _block(p, q, draft, rng, first_failure=True)


# ---------------------------------------------------------------- logit-processor bugs
# The logits protocol: fn(lp [K+1,V], lq [K,V], draft [K], rng, temperature, top_p,
# top_k=None, min_p=None); every warp is reference/processing.py's, on both sides.


def _warp(t, top_p, top_k, min_p, **override):
    """process_logits keywords of the scenario's warp, with ``override`` replacing some."""
    return {**dict(temperature=t, top_k=top_k, top_p=top_p, min_p=min_p), **override}


@mutant("temperature_target_only", "temperature applied to the target rows only (q left at T = 1)",
        "temperature not applied to the draft", protocol="logits", focus=("warped",))
def temperature_target_only(lp, lq, draft, rng, temperature, top_p, top_k=None, min_p=None):
    p = process_logits(lp, **_warp(temperature, top_p, top_k, min_p))
    q = process_logits(lq, **_warp(temperature, top_p, top_k, min_p, temperature=1.0))
    return _chain(p, q, draft, rng)


@mutant("q_before_processors", "q taken from the raw draft logits, before the logit processors",
        "transformers #47932", protocol="logits", focus=("warped",))
def q_before_processors(lp, lq, draft, rng, temperature, top_p, top_k=None, min_p=None):
    p = process_logits(lp, **_warp(temperature, top_p, top_k, min_p))
    q = process_logits(lq, temperature=1.0)
    return _chain(p, q, draft, rng)


@mutant("top_p_after_verification", "verification on temperature-only rows; top-p applied to the final draw only",
        "top-p applied after verification", protocol="logits", focus=("warped",))
def top_p_after_verification(lp, lq, draft, rng, temperature, top_p, top_k=None, min_p=None):
    p = process_logits(lp, **_warp(temperature, None, top_k, min_p))
    q = process_logits(lq, **_warp(temperature, None, top_k, min_p))

    def top(w):
        w = w / w.sum()
        return process_logits(np.log(np.maximum(w, 1e-300)), temperature=1.0, top_p=top_p)

    return _chain(p, q, draft, rng, residual=lambda p, q, i: top(np.maximum(p[i] - q[i], 0)),
                  bonus_row=lambda p, k: top(p[k]))


@mutant("top_k_draft_only", "top-k applied to the draft rows only (the target keeps its full row)",
        "a warper list applied to the draft model alone", protocol="logits", focus=("topk",))
def top_k_draft_only(lp, lq, draft, rng, temperature, top_p, top_k=None, min_p=None):
    p = process_logits(lp, **_warp(temperature, top_p, None, min_p))
    q = process_logits(lq, **_warp(temperature, top_p, top_k, min_p))
    return _chain(p, q, draft, rng)


@mutant("min_p_absolute", "min-p as an absolute threshold p(x) >= min_p instead of min_p * max p",
        "min-p threshold not scaled by the top probability", protocol="logits", focus=("minp",))
def min_p_absolute(lp, lq, draft, rng, temperature, top_p, top_k=None, min_p=None):
    def warp(logits):
        p = process_logits(logits, **_warp(temperature, top_p, top_k, None))
        if min_p is not None:
            keep = (p >= min_p) | (p == p.max(axis=-1, keepdims=True))
            p = np.where(keep, p, 0.0)
            p = p / p.sum(axis=-1, keepdims=True)
        return p
    return _chain(warp(lp), warp(lq), draft, rng)


@mutant("logits_not_normalised", "acceptance ratio exp(l_p(x) - l_q(x)) of warped logits never log-softmaxed",
        "a ratio of raw logits (off by the row normalisers Z_p / Z_q)", protocol="logits", focus=("offsets",))
def logits_not_normalised(lp, lq, draft, rng, temperature, top_p, top_k=None, min_p=None):
    # p = exp(l_p / T - log Z_p) on the kept tokens: the ratio of the scaled, masked raw
    # logits is (p / q) * (Z_p / Z_q). Correct whenever the two rows share a normaliser
    # (the `warped` scenario: TV ~0.005), far off when their offsets differ (`offsets`).
    warp = _warp(temperature, top_p, top_k, min_p)
    p, q = process_logits(lp, **warp), process_logits(lq, **warp)
    with np.errstate(divide="ignore", invalid="ignore"):
        sp = np.where(p > 0, np.asarray(lp, float) / temperature, -np.inf)
        sq = np.where(q > 0, np.asarray(lq, float) / temperature, -np.inf)
    k = len(draft)
    u = rng.random(k + 1)
    for i in range(k):
        x = int(draft[i])
        if not u[i] < np.exp(sp[i, x] - sq[i, x]):  # BUG: should be u q(x) < p(x)
            return [int(t) for t in draft[:i]] + [_draw(np.maximum(p[i] - q[i], 0), u[k])]
    return [int(t) for t in draft] + [_draw(p[k], u[k])]


# ---------------------------------------------------------------- multi-draft / tree bugs


@mutant("mss_no_renormalise", "MSS keeps the residual (P - q_j)+ unnormalised after a rejected child",
        "tree verification that does not renormalise after a rejected child", protocol="mss", law=None,
        focus=("mss",))
def mss_no_renormalise(p, q, children, rng):
    from specoracle.reference.types import Verdict
    P = np.asarray(p, float).copy()
    for j, c in enumerate(children):
        if rng.random() * q[j][c] < P[c]:
            return Verdict(1, (int(c),), False, (), (j,))
        P = np.maximum(P - q[j], 0)  # BUG: no renormalisation
    return Verdict(0, (_draw(P, rng.random()),), False)


@mutant("mss_no_residual_update", "MSS tests every child against the original p and falls back to p",
        "multi-draft verification without the residual update", protocol="mss", law=None, focus=("mss",))
def mss_no_residual_update(p, q, children, rng):
    from specoracle.reference.types import Verdict
    p = np.asarray(p, float)
    for j, c in enumerate(children):
        if rng.random() * q[j][c] < p[c]:
            return Verdict(1, (int(c),), False, (), (j,))
    return Verdict(0, (_draw(p, rng.random()),), False)


@mutant("kseq_rho_one", "K-SEQ with rho = 1 (accept min(1, p/q) per candidate) and its closed-form residual",
        "SpecTr K-SEQ without the rho* search", protocol="kseq", law=None, focus=("kseq",))
def kseq_rho_one(p, q, candidates, rng):
    from specoracle.reference.types import Verdict
    p, q = np.asarray(p, float), np.asarray(q, float)
    for j, c in enumerate(candidates):
        if rng.random() * q[c] < p[c]:
            return Verdict(1, (int(c),), False, (), (j,))
    m = np.minimum(q, p)
    beta = m.sum()
    pacc = 1 - (1 - beta) ** len(candidates)
    w = np.maximum(p - m * pacc / beta, 0)
    return Verdict(0, (_draw(w, rng.random()),), False)


@mutant("tree_first_child_only", "sample-and-match that follows only the first child of each node",
        "tree verification ignoring sibling branches (lossless, but not the stated acceptance law)",
        protocol="tree", law=None, focus=("tree",))
def tree_first_child_only(p, tokens, parents, rng):
    p = np.asarray(p, float)
    node, out = -1, []
    while True:
        y = _draw(p[node + 1], rng.random())
        out.append(y)
        kids = [n for n in range(len(tokens)) if parents[n] == node]
        if not kids or int(tokens[kids[0]]) != y:
            return out
        node = kids[0]


# ---------------------------------------------------------------- Gaussian bugs


@mutant("gauss_reflection_wrong_sign", "reflection coupling whose log-ratio uses +z.D (wrong sign of D)",
        "Gaussian reflection with the wrong sign", protocol="gauss_step", law=None, focus=("gstep",))
def gauss_reflection_wrong_sign(m_p, m_q, s, z, rng):
    big_d = (m_q - m_p) / s
    ell = +z @ big_d - 0.5 * big_d @ big_d  # BUG: should be -z.D - |D|^2/2
    if math.log(max(rng.random(), 1e-300)) < min(0.0, ell):
        return m_q + s * z, True
    e = big_d / np.linalg.norm(big_d)
    return m_p + s * (z - 2 * (e @ z) * e), False


def _cdf_difference_quantile(u, c, delta):
    """BUG: F(s) from differences of Phi values near 1 (catastrophic cancellation)."""
    Phi = special.ndtr
    s_star = delta / 2 - math.log(c) / delta
    mass = c * (1 - Phi(s_star - delta)) - (1 - Phi(s_star))

    def F(s):
        return (c * (Phi(s - delta) - Phi(s_star - delta)) - (Phi(s) - Phi(s_star))) / mass

    lo, hi = s_star, s_star + 1.0
    for _ in range(60):
        if F(hi) >= u:
            break
        hi = s_star + 2 * (hi - s_star)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if F(mid) < u:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@mutant("gauss_residual_cdf_difference", "ResidualGauss whose inverse CDF uses differences of Phi (not survival functions)",
        "Gaussian residual by CDF differences (catastrophic cancellation, ALGORITHMS.md §2.4)",
        protocol="gauss_residual", law=None, focus=("gres_tail",))
def gauss_residual_cdf_difference(m_p, m_q, s, c, rng):
    diff = m_p - m_q
    norm = float(np.linalg.norm(diff))
    e = diff / norm
    S = _cdf_difference_quantile(rng.random(), c, norm / s)
    z = rng.standard_normal(len(m_p))
    return m_q + s * (S * e + z - (e @ z) * e)


# ---------------------------------------------------------------- registration


def register_all(register) -> None:
    for m in MUTANTS.values():
        register(f"mutant.{m.name}",
                 lambda m=m: Impl(f"mutant.{m.name}", m.protocol, m.fn, m.law,
                                  f"{m.description} [imitates: {m.imitates}]", m.imitates))
