"""Random scenarios for certification sweeps: context-independent target and
draft rows with exact zeros, ties and near-ties, V up to 32768, K up to 8, warps for the
logits protocol; and the pre-registered cell partition that makes their laws testable.

Rows. A :class:`RowScenario` has target rows p [K+1, V] and draft rows q [K, V] that
depend on the position only (no context: a 32k x 32k context table would not fit). The
sampler gets the same rows every round; drafts are x_i ~ q_i independently.

Cells (the reduction of a 32k-token law to a manageable, data-independent partition).
Before any sampling, every position i gets a partition of the vocabulary into at most
``BINS`` bins computed from p_i and q_i alone (:func:`partition`):
    bin 0          the tokens with p_i(x) = 0 (impossible under any lossless verifier;
                   kept apart so that a single such emission still gives p = 0),
    then           {p_i > q_i} (where a chain verifier's residual lives) and {p_i <= q_i}
                   (for the bonus row i = K: all of {p_K > 0}), each cut into chunks of
                   equal target mass in order of decreasing p_i.
Every check tests the exact law of a function of the output (the bins), so it stays an
exact test of losslessness - coarser, never wrong. The checks (chain law, ALGORITHMS.md
§1.2; with m_i = min(p_i, q_i), beta_i = sum m_i, w_t = (p_t - q_t)+ for t < K and
w_K = p_K):
    joint     bins of the block completed by target sampling, first ``JOINT_DEPTH``
              positions: P(b_0..b_{J-1}) = prod_i p_i(bin b_i)          (any lossless verifier)
    emitted   (tau = t, bin of the first accepted token if t >= 1, bin of the final token):
              m_0(b_0) * prod_{0<i<t} beta_i * w_t(b_t)                 (law="chain")
    tau       P(tau = t) = prod_{i<t} beta_i * sum w_t                   (law="chain")
Block verification's law is not a product over positions; random scenarios give it (and
algorithm-agnostic samplers) the joint check only, the fixed battery checks the rest.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from specoracle.reference.categorical import sample_categorical_rows
from specoracle.reference.processing import process_logits

BINS = 5            # bins per position: the p = 0 bin + 2 chunks of {p > q} + 2 of {p <= q}
JOINT_DEPTH = 3     # positions of the completed block whose bins form the joint cells
MAX_V = 32768       # largest vocabulary drawn (probs protocol)
MAX_V_LOGITS = 1024  # logits protocol: warping costs O(V log V) per row per call (~2-25 ms per round here)
MAX_K = 8


def partition(p_row, q_row=None, bins: int = BINS) -> np.ndarray:
    """Bin labels [V] (0..n-1, consecutive) for one position (module doc)."""
    p_row = np.asarray(p_row, dtype=np.float64)
    labels = np.zeros(p_row.shape[0], dtype=np.int64)
    live = p_row > 0
    groups = [live] if q_row is None else [live & (p_row > q_row), live & (p_row <= q_row)]
    chunks = max((bins - 1) // len(groups), 1)
    nxt = 1 if (~live).any() else 0   # label 0 = {p = 0} when that set is not empty
    for g in groups:
        idx = np.flatnonzero(g)
        if idx.size == 0:
            continue
        order = idx[np.argsort(-p_row[idx], kind="stable")]
        c = np.cumsum(p_row[order])
        cut = np.minimum((c / c[-1] * chunks).astype(np.int64), chunks - 1)  # chunk of each token
        used = np.unique(cut)
        labels[order] = nxt + np.searchsorted(used, cut)
        nxt += len(used)
    return labels


@dataclass
class RowScenario:
    """Context-independent rows (module doc). ``logits`` = (LP [K+1, V], LQ [K, V]) and
    ``warp`` (temperature, top_p) for the logits protocol (p, q are then the warped rows)."""

    name: str
    description: str
    p: np.ndarray   # [K+1, V]
    q: np.ndarray   # [K, V]
    logits: tuple | None = None
    warp: dict = field(default_factory=dict)

    def __post_init__(self):
        K = self.K
        self.labels = [partition(self.p[i], self.q[i] if i < K else None) for i in range(K + 1)]
        self.nbins = [int(lab.max()) + 1 for lab in self.labels]

    @property
    def V(self) -> int:
        return self.p.shape[1]

    @property
    def K(self) -> int:
        return self.q.shape[0]

    @property
    def depth(self) -> int:
        return min(self.K + 1, JOINT_DEPTH)

    # ---- exact laws over the cells
    def _mass(self, rows, i):
        return np.bincount(self.labels[i], weights=rows, minlength=self.nbins[i])

    def joint_law(self) -> np.ndarray:
        """[prod nbins[:depth]]: bins of the completed block's first ``depth`` tokens."""
        out = np.ones(1)
        for i in range(self.depth):
            out = np.outer(out, self._mass(self.p[i], i)).ravel()
        return out

    def joint_cell(self, tokens) -> int:
        c = 0
        for i in range(self.depth):
            c = c * self.nbins[i] + int(self.labels[i][tokens[i]])
        return c

    def _emitted_shapes(self):
        """Per tau = t: the bin counts of the kept positions ([first accepted], final)."""
        return [([self.nbins[0]] if t >= 1 else []) + [self.nbins[t]] for t in range(self.K + 1)]

    def emitted_offsets(self):
        sizes = [math.prod(s) for s in self._emitted_shapes()]
        return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def chain_emitted_law(self) -> np.ndarray:
        K = self.K
        m = np.minimum(self.p[:K], self.q)
        beta = m.sum(axis=1)
        w = [np.maximum(self.p[t] - self.q[t], 0) for t in range(K)] + [self.p[K]]
        parts = []
        for t in range(K + 1):
            wt = self._mass(w[t], t)
            if t == 0:
                parts.append(wt)
            else:
                between = float(np.prod(beta[1:t]))
                parts.append(np.outer(self._mass(m[0], 0), wt).ravel() * between)
        return np.concatenate(parts)

    def emitted_cell(self, tokens) -> int:
        t = len(tokens) - 1
        off = self.emitted_offsets()
        last = int(self.labels[t][tokens[t]])
        if t == 0:
            return int(off[0]) + last
        return int(off[t]) + int(self.labels[0][tokens[0]]) * self.nbins[t] + last

    def chain_tau_law(self) -> np.ndarray:
        """P(tau = t), t = 0..K, from P(tau >= t) = prod_{i<t} beta_i."""
        beta = np.minimum(self.p[:self.K], self.q).sum(axis=1)
        reach = np.concatenate([[1.0], np.cumprod(beta)])
        return np.concatenate([reach[:-1] - reach[1:], reach[-1:]])

    # ---- sampling
    def draw_drafts(self, n, rng) -> np.ndarray:
        """Drafts [n, K], x_i ~ q_i (the reference's inverse-CDF draw, one uniform each)."""
        out = np.empty((n, self.K), dtype=np.int64)
        for i in range(self.K):
            out[:, i] = sample_categorical_rows(np.broadcast_to(self.q[i], (n, self.V)), rng.random(n))[0]
        return out

    def complete(self, tokens, rng):
        """Complete an emitted block to ``depth`` tokens by target sampling."""
        seq = list(tokens[:self.depth])
        while len(seq) < self.depth:
            seq.append(int(sample_categorical_rows(self.p[len(seq)], rng.random())[0]))
        return seq


# ---------------------------------------------------------------- random rows


def _row(rng, V, alpha):
    r = rng.dirichlet(np.full(V, alpha))
    r = np.maximum(r, 0.0)
    return r / r.sum()


def _features(rng, row, keep):
    """Exact zeros, exact ties and ratio near-ties (module doc); ``keep`` stays positive."""
    V = row.shape[0]
    r = row.copy()
    if V > 2 and rng.random() < 0.6:  # exact zeros
        z = rng.random(V) < rng.choice([0.2, 0.5, 0.9])
        z[keep] = False
        r[z] = 0.0
    if V > 3 and rng.random() < 0.5:  # exact ties
        s = rng.choice(V, size=int(rng.integers(2, max(3, min(V, 64)))), replace=False)
        s = s[r[s] > 0]
        if s.size:
            r[s] = r[s].mean()
    return r / r.sum()


def random_rows(rng, V, K):
    """(p [K+1, V], q [K, V]) with zeros, ties and near-ties (q = p(1 +- 1e-12) on a subset)."""
    alpha = float(rng.choice([0.05, 0.3, 1.0]))
    keep = int(rng.integers(V))
    p = np.stack([_features(rng, _row(rng, V, alpha), keep) for _ in range(K + 1)])
    q = np.empty((K, V))
    for i in range(K):
        lam = float(rng.choice([0.1, 0.5, 1.0]))
        qi = _features(rng, (1 - lam) * p[i] + lam * _row(rng, V, alpha), keep)
        if rng.random() < 0.5:  # near-ties of the acceptance ratio p/q
            s = rng.random(V) < 0.3
            qi[s] = p[i, s] * (1 + 1e-12 * rng.choice([-1.0, 1.0], size=int(s.sum())))
            qi = qi / qi.sum()
        q[i] = qi
    return p, q


def random_logits(rng, V, K):
    """(LP [K+1, V], LQ [K, V], warp) with masked (-inf) logits, exact ties and a warp."""
    LP = rng.normal(0, rng.choice([1.0, 3.0]), size=(K + 1, V))
    LQ = LP[:K] + rng.normal(0, rng.choice([0.3, 1.0]), size=(K, V))
    if V > 2 and rng.random() < 0.5:
        LP[:, rng.random(V) < 0.3] = -np.inf
        LP[:, int(rng.integers(V))] = 0.0  # one token alive in every row
    if V > 3 and rng.random() < 0.5:
        s = rng.choice(V, size=min(V, 8), replace=False)
        LP[:, s] = LP[:, s[:1]]  # exact ties (top-p boundary ties included)
    warp = {"temperature": float(rng.choice([0.3, 0.7, 1.0, 1.5])),
            "top_p": [None, 0.5, 0.8, 0.95][int(rng.integers(4))]}
    return LP, LQ, warp


def random_scenario(seed: int, key: int, protocol: str, name: str | None = None) -> RowScenario:
    """A random scenario whose parameters are drawn from ``SeedSequence(seed, spawn_key=(key,))``
    (= ``SeedSequence(seed).spawn(N)[key]``); in a sweep ``key`` is the scenario's index."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(key,)))
    vmax = MAX_V if protocol == "probs" else MAX_V_LOGITS
    V = int(min(vmax, max(2, round(math.exp(rng.uniform(math.log(2), math.log(vmax + 1)))))))
    K = int(rng.integers(1, MAX_K + 1))
    name = name or f"r{key}"
    if protocol == "logits":
        LP, LQ, warp = random_logits(rng, V, K)
        P = process_logits(LP, **warp)
        Q = process_logits(LQ, **warp)
        return RowScenario(name, f"random V={V}, K={K}, logits, T={warp['temperature']}, top-p={warp['top_p']}",
                           P, Q, logits=(LP, LQ), warp=warp)
    p, q = random_rows(rng, V, K)
    return RowScenario(name, f"random V={V}, K={K}, rows with zeros/ties/near-ties", p, q)
