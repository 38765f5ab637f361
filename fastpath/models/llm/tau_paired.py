"""Paired block-vs-chain tau: exact conditional expected tokens per round, same drafts.

Why paired. Measuring tau by decoding (bench suite ``llm``) lets every verifier produce its
own text, so chain and block are compared on different contexts and the gap drowns in
noise. Here both verifiers are scored on the SAME context, the SAME drafted block x_1..x_k
and the SAME k+1 target rows, and the verifier's own noise is integrated out exactly:

Chain (Leviathan et al., arXiv 2211.17192; ALGORITHMS.md §1.2). Given the drafts, position i
is accepted iff u_i q_i(x_i) < p_i(x_i) for it and all earlier positions, so

    E[tokens | x] = 1 + sum_{i=1..k} prod_{j<=i} min(1, p_j(x_j) / q_j(x_j)).

Block (Sun et al., arXiv 2403.10444; ALGORITHMS.md §1.3, Algorithm 2). With the prefix
survivals s_0 = 1, s_i = min(s_{i-1} p_i(x_i)/q_i(x_i), 1), the scaled residual masses
R_i = sum_v (s_i p_{i+1}(v) - q_{i+1}(v))_+ and the pass probabilities

    h_i = R_i / (R_i + 1 - s_i)  (i < k; 0 if the denominator is 0, as the reference's
          division-free test  eta (R_i + 1 - s_i) < R_i  gives),      h_k = s_k,

tau = the LARGEST i with eta_i <= h_i (independent eta_i), so P(tau >= i | x) =
1 - prod_{j=i..k} (1 - h_j) and

    E[tokens | x] = 1 + sum_{i=1..k} (1 - prod_{j>=i} (1 - h_j)).

A second unbiased estimator of block's mean over drafts is the survival form
1 + sum_i s_i (s_i = P(tau_block >= i | x^i), so E_x[s_i] = P(tau_block >= i), ALGORITHMS.md
§1.3); it is NOT the conditional expectation given the whole block x^k.

Rao-Blackwellised estimators (derived here): integrate out the LAST drafted token of every
prefix exactly, with the full rows the target call already produced.
    chain:  E[prod_{j<=i} a_j | x^{i-1}] = prod_{j<i} a_j * beta_i,
            a_j = min(1, p_j(x_j)/q_j(x_j)),  beta_i = sum_v min(p_i(v), q_i(v)) = 1 - TV(p_i, q_i);
    block:  E[s_i | x^{i-1}] = s_{i-1} - R_{i-1}   (the key identity of §1.3; R_0 = TV(p_1, q_1)).
So 1 + sum_i prod_{j<i} a_j beta_i and 1 + sum_i (s_{i-1} - R_{i-1}) are unbiased for the
two verifiers' mean tokens over drafts, with less variance; their i = 1 terms are equal,
so the paired difference starts at position 2 (k = 1: block = chain exactly).

Per drafted BLOCK, block is NOT always >= chain: in T3(a) (ALGORITHMS.md §7) the draft (a, a)
gives chain 1 + 3/4 and block 1 + 1/2; block >= chain holds for the expectation over drafts
(Sun et al.'s optimality theorem). Per draft PREFIX it does hold (derived here, proven by
enumeration in the tests): with A_i = prod_{j<=i} a_j,

    P(tau_block >= i | x^i) = s_i  >=  A_i = P(tau_chain >= i | x^i)        for every x^i,

(the first equality by backward induction with Q_i = h_i + (1 - h_i) Q_{i+1} and
E[s_{i+1} | x^i] = s_i - R_i; the inequality because min(s t, 1) >= s min(t, 1) for s <= 1),
and likewise P(tau_block >= i | x^{i-1}) = s_{i-1} - R_{i-1} >= A_{i-1} beta_i (below).
What the later drafts x_{i+1..k} add is information that can lower block's
P(tau >= i | x^k) below chain's. tests/fastpath/models/llm/test_llm_tau_paired.py proves the closed forms
against the reference verifiers' exact laws (proofs/exact.py) and the averages against
the closed forms of §1.2-1.3.

Shapes: p [N, K+1, V] and q [N, K, V] float64 warped rows, draft [N, K] int64 ->
expected tokens [N] float64. No noise is drawn by these functions; the measurement
(:func:`paired_tau`) draws the drafts with uniforms ``u_draft [N, K]`` from a
``numpy.random.Generator`` it is given (inverse CDF, the engine's sampling primitive).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from specoracle.reference.types import InvalidInput


def _drafted(rows: np.ndarray, draft: np.ndarray) -> np.ndarray:
    """rows [N, K, V], draft [N, K] -> rows[n, i, draft[n, i]]  [N, K]."""
    return np.take_along_axis(rows, draft[:, :, None], axis=2)[:, :, 0]


def _check(p, q, draft):
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    draft = np.asarray(draft, dtype=np.int64)
    if p.ndim != 3 or q.ndim != 3 or draft.ndim != 2:
        raise InvalidInput("p", f"expected p [N, K+1, V], q [N, K, V], draft [N, K]; got "
                           f"{p.shape}, {q.shape}, {draft.shape}")
    n, k1, v = p.shape
    if q.shape != (n, k1 - 1, v) or draft.shape != (n, k1 - 1):
        raise InvalidInput("q", f"shapes disagree: p {p.shape}, q {q.shape}, draft {draft.shape}")
    if draft.size and (draft.min() < 0 or draft.max() >= v):
        raise InvalidInput("draft", f"token id outside [0, {v})")
    qx = _drafted(q, draft)
    bad = np.argwhere(~(qx > 0))
    if bad.size:
        raise InvalidInput("draft", "drafted token has q = 0: the draft could not have produced it",
                           index=tuple(int(i) for i in bad[0]))
    return p, q, draft, qx


def chain_expected_tokens(p, q, draft) -> np.ndarray:
    """E[tokens per round | drafts, rows] of chain (token-level) verification  [N]."""
    p, q, draft, qx = _check(p, q, draft)
    k = draft.shape[1]
    px = _drafted(p[:, :k], draft)
    accept = np.minimum(1.0, px / qx)              # [N, K]
    return 1.0 + np.cumprod(accept, axis=1).sum(axis=1)


def block_survival(p, q, draft) -> np.ndarray:
    """Prefix survivals s_0..s_K of Algorithm 2  [N, K+1] (s_0 = 1)."""
    p, q, draft, qx = _check(p, q, draft)
    n, k = draft.shape
    px = _drafted(p[:, :k], draft)
    s = np.ones((n, k + 1))
    for i in range(1, k + 1):
        s[:, i] = np.minimum(s[:, i - 1] * px[:, i - 1] / qx[:, i - 1], 1.0)
    return s


def block_pass_probabilities(p, q, draft) -> np.ndarray:
    """h_1..h_K of Algorithm 2 (probability that index i passes its test)  [N, K]."""
    p, q, draft, _ = _check(p, q, draft)
    n, k = draft.shape
    s = block_survival(p, q, draft)                                     # [N, K+1]
    h = np.empty((n, k))
    masses = _residual_masses(p, q, s)                                  # R_0..R_{K-1} [N, K]
    for i in range(1, k):
        r = masses[:, i]
        den = r + 1.0 - s[:, i]
        with np.errstate(invalid="ignore", divide="ignore"):
            h[:, i - 1] = np.where(den > 0, r / np.where(den > 0, den, 1.0), 0.0)
    if k:
        h[:, k - 1] = s[:, k]
    return np.clip(h, 0.0, 1.0)


def block_tau_law(p, q, draft) -> np.ndarray:
    """P(tau = t | drafts, rows) for t = 0..K under block verification  [N, K+1]."""
    h = block_pass_probabilities(p, q, draft)
    n, k = h.shape
    law = np.zeros((n, k + 1))
    none_after = np.ones(n)                       # prod_{j > i} (1 - h_j)
    for i in range(k, 0, -1):
        law[:, i] = h[:, i - 1] * none_after
        none_after = none_after * (1.0 - h[:, i - 1])
    law[:, 0] = none_after
    return law


def block_expected_tokens(p, q, draft) -> np.ndarray:
    """E[tokens per round | drafts, rows] of block verification  [N]."""
    law = block_tau_law(p, q, draft)
    return 1.0 + law @ np.arange(law.shape[1])


def block_survival_tokens(p, q, draft) -> np.ndarray:
    """1 + sum_i s_i: unbiased for block's mean tokens over drafts (not conditional)  [N]."""
    return 1.0 + block_survival(p, q, draft)[:, 1:].sum(axis=1)


def _residual_masses(p, q, s) -> np.ndarray:
    """R_0..R_{K-1}: R_i = sum_v (s_i p_{i+1}(v) - q_{i+1}(v))_+  [N, K]."""
    k = q.shape[1]
    return np.stack([np.maximum(s[:, i, None] * p[:, i] - q[:, i], 0.0).sum(axis=1)
                     for i in range(k)], axis=1) if k else np.zeros((p.shape[0], 0))


def chain_rb_tokens(p, q, draft) -> np.ndarray:
    """Rao-Blackwellised chain estimator 1 + sum_i prod_{j<i} a_j (1 - TV(p_i, q_i))  [N]."""
    p, q, draft, qx = _check(p, q, draft)
    k = draft.shape[1]
    a = np.minimum(1.0, _drafted(p[:, :k], draft) / qx)                     # [N, K]
    beta = np.minimum(p[:, :k], q).sum(axis=2)                              # [N, K]
    before = np.cumprod(np.concatenate([np.ones((a.shape[0], 1)), a[:, :-1]], axis=1), axis=1)
    return 1.0 + (before * beta).sum(axis=1)


def block_rb_tokens(p, q, draft) -> np.ndarray:
    """Rao-Blackwellised block estimator 1 + sum_i (s_{i-1} - R_{i-1})  [N]."""
    p, q, draft, _ = _check(p, q, draft)
    s = block_survival(p, q, draft)
    r = _residual_masses(p, q, s)
    return 1.0 + (s[:, :-1] - r).sum(axis=1)


# ---------------------------------------------------------------- paired statistics


@dataclass(frozen=True)
class PairedSummary:
    """Block minus chain over N contexts in C clusters of equal size (a cluster = one
    document: its windows or its generated continuation share text, so they are not
    independent; the standard error is computed from the C cluster means)."""

    n: int
    clusters: int
    chain: float            # mean expected tokens per round (bonus included)
    block: float
    diff: float             # block - chain
    se: float               # cluster standard error of diff
    t: float
    p_t: float              # two-sided, Student t with C - 1 degrees of freedom
    n_pos: int              # contexts where block > chain (|diff| > 1e-12)
    n_neg: int              # contexts where block < chain
    p_sign: float           # two-sided exact sign test on n_pos vs n_neg
    min_diff: float         # the most negative per-draft difference


def paired_summary(chain, block, clusters, tol: float = 1e-12) -> PairedSummary:
    """Paired comparison of per-context values ``chain`` [N], ``block`` [N]."""
    from scipy import stats

    chain = np.asarray(chain, dtype=np.float64)
    block = np.asarray(block, dtype=np.float64)
    clusters = np.asarray(clusters)
    d = block - chain
    ids = np.unique(clusters)
    means = np.array([d[clusters == c].mean() for c in ids])
    c = len(ids)
    se = float(means.std(ddof=1) / np.sqrt(c)) if c > 1 else float("nan")
    mean = float(d.mean())
    if se > 0:
        t = mean / se
        p_t = float(2 * stats.t.sf(abs(t), df=c - 1))
    else:  # identical on every context (e.g. T = 0, where block = chain exactly)
        t, p_t = (0.0, 1.0) if abs(mean) <= tol else (float("inf"), 0.0)
    n_pos = int((d > tol).sum())
    n_neg = int((d < -tol).sum())
    p_sign = float(stats.binomtest(n_pos, n_pos + n_neg, 0.5).pvalue) if n_pos + n_neg else 1.0
    return PairedSummary(len(d), c, float(chain.mean()), float(block.mean()), mean, se, float(t),
                         p_t, n_pos, n_neg, p_sign, float(d.min()) if d.size else float("nan"))


# ---------------------------------------------------------------- the measurement on real models


def draft_and_score(target, draft, contexts, warping, k: int, u_draft: np.ndarray):
    """Draft k tokens after each context and score them with one target forward.

    contexts: [N, L] int64 tensor (equal lengths, no padding); u_draft [N, k] uniforms.
    Returns (p [N, k+1, V], q [N, k, V], drafts [N, k]) as float64 / int64 numpy arrays:
    q_j is the warped draft row x_j was drawn from (inverse CDF; argmax at T = 0), p_i the
    warped target row after context + x_1..x_{i-1} (ALGORITHMS.md §1.2, Algorithm 1 lines 1-3).
    """
    import torch

    from specoracle.fastpath.models.llm.kv import forward_cached, new_cache
    from specoracle.fastpath.models.llm.processing import warp
    from specoracle.fastpath.models.llm.verify import sample_rows

    n, length = contexts.shape
    vocab = int(target.config.vocab_size)
    q = np.zeros((n, k, vocab))
    drafts = np.zeros((n, k), dtype=np.int64)
    with torch.inference_mode():
        cache = new_cache(draft)
        feed = contexts
        pos = torch.arange(length)[None, :].expand(n, -1)
        for j in range(k):
            out = forward_cached(draft, cache, input_ids=feed, position_ids=pos)
            qj = warp(out.logits[:, -1].float(), warping).numpy()            # [N, V]
            xj = np.argmax(qj, axis=-1) if warping.greedy else sample_rows(qj, u_draft[:, j])
            q[:, j], drafts[:, j] = qj, xj
            feed = torch.as_tensor(xj, dtype=torch.long)[:, None]
            pos = torch.full((n, 1), length + j, dtype=torch.long)
        full = torch.cat([contexts, torch.as_tensor(drafts)], dim=1)        # [N, L+k]
        logits = target(input_ids=full).logits[:, length - 1:].float()       # [N, k+1, V]
        p = warp(logits, warping).numpy()
    return p, q, drafts


def paired_tau(target, draft, groups, warping, ks=(2, 4, 8), *, rng: np.random.Generator,
               chunk: int = 16, progress=None) -> dict:
    """Per-context expected tokens for every k in ``ks``, paired.

    groups: list of (cluster ids [N_g], contexts [N_g, L_g] tensor); one drafted block of
    max(ks) tokens per context serves every k (its first k tokens are a k-token draft with
    the right law; the target rows after them are the same).
    Returns {k: {"chain", "block", "block_sv", "chain_rb", "block_rb", "cluster": [N]}}
    (conditional expected tokens, survival form, Rao-Blackwellised forms, cluster ids).
    """
    kmax = max(ks)
    names = ("chain", "block", "block_sv", "chain_rb", "block_rb", "cluster")
    out = {k: {name: [] for name in names} for k in ks}
    for cl, ctx in groups:
        for a in range(0, ctx.shape[0], chunk):
            c = ctx[a:a + chunk]
            u = rng.random((c.shape[0], kmax))
            p, q, x = draft_and_score(target, draft, c, warping, kmax, u)
            for k in ks:
                pk, qk, xk = p[:, :k + 1], q[:, :k], x[:, :k]
                out[k]["chain"].append(chain_expected_tokens(pk, qk, xk))
                out[k]["block"].append(block_expected_tokens(pk, qk, xk))
                out[k]["block_sv"].append(block_survival_tokens(pk, qk, xk))
                out[k]["chain_rb"].append(chain_rb_tokens(pk, qk, xk))
                out[k]["block_rb"].append(block_rb_tokens(pk, qk, xk))
                out[k]["cluster"].append(np.asarray(cl[a:a + chunk]))
            if progress is not None:
                progress(c.shape[0])
    return {k: {name: np.concatenate(v) for name, v in d.items()} for k, d in out.items()}


def heldout_windows(docs_ids: list, per_doc: int, length: int, rng: np.random.Generator,
                    cluster_base: int = 0):
    """``per_doc`` windows of ``length`` tokens at random offsets of each tokenised document
    (documents shorter than ``length`` + 1 are skipped). Returns (clusters [N], [N, L] tensor)."""
    import torch

    rows, cl = [], []
    for d, ids in enumerate(docs_ids):
        if len(ids) <= length:
            continue
        for _ in range(per_doc):
            a = int(rng.integers(0, len(ids) - length + 1))
            rows.append(ids[a:a + length])
            cl.append(cluster_base + d)
    if not rows:
        raise InvalidInput("docs_ids", f"no document longer than {length} tokens")
    return np.array(cl), torch.tensor(rows, dtype=torch.long)


def target_contexts(target, prompts: list, warping, cuts: list, seed: int, cluster_base: int = 0):
    """Contexts generated by the target itself at ``warping``: each (equal-length) prompt is
    continued by ``max(cuts)`` tokens of plain autoregressive decoding (engine.py, request
    seeds seed + b); the context at cut c is prompt + the first c generated tokens.
    Returns a list of (clusters [N], [N, L] tensor), one group per cut (equal lengths)."""
    import torch

    from specoracle.fastpath.models.llm.engine import autoregressive_generate

    res = autoregressive_generate(target, prompts, warping=warping, max_new_tokens=max(cuts),
                                  seeds=seed)
    groups = []
    for c in cuts:
        rows = [list(p) + list(g[:c]) for p, g in zip(prompts, res.tokens)]
        groups.append((np.arange(len(prompts)) + cluster_base, torch.tensor(rows, dtype=torch.long)))
    return groups
