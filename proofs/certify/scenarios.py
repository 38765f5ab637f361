"""The certification battery: fixed scenarios, how to feed them to a sampler, and the
exact laws the outputs must follow (ALGORITHMS.md §1.2-§1.4, §2.3-§2.5, §7).

Each scenario is small enough that its laws are computed exactly (float64
enumeration of every drafted block), yet chosen so that a known bug shows
(see ``proofs/certify/mutants.py``): context-dependent rows (off-by-one rows, joint-law bugs),
``p(x) = 0`` cells drafted with ``q(x) > 0`` (`<=` vs `<`), disjoint supports, K >= 2
(shared-noise bugs invisible to marginals), temperature / top-p warps.

Discrete laws
-------------
A *Markov scenario* has target rows ``P[i, prev]`` and draft rows ``Q[i, prev]``
([K+1, V+1, V] and [K, V+1, V]; ``prev = V`` means "no previous token"): the row at
position i (0-based) depends on the position and the previous token. The certifier
drafts x_1..x_K from Q, hands the sampler the K+1 target rows and K draft rows along
the draft, and reads back the emitted tokens (tau accepted + 1). Cells:

``joint``   the emitted block completed to K+1 tokens by target sampling; under any
            lossless verifier its law is prod_i P[i, x_{i-1}](x_i) (T3's exactness test).
``emitted`` the pair (tau, emitted tokens) - the law conditional on the accepted
            length, algorithm-specific:
            chain  P(tau=t, x^t, y) = prod_{i<=t} min(p_i, q_i)(x_i) * w(y), with
                   w = (p_{t+1} - q_{t+1})_+ for t < K and p_{K+1} for t = K (§1.2);
            block  by enumerating drafts and Algorithm 2's h_i (§1.3).
``length``  the law of tau alone (a marginal of ``emitted``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special

from specoracle.reference.categorical import sample_categorical_rows
from specoracle.reference.processing import process_logits


# ---------------------------------------------------------------- helpers


def seq_index(tokens, V):
    """Base-V index of a token tuple (first token most significant)."""
    i = 0
    for t in tokens:
        i = i * V + int(t)
    return i


# ---------------------------------------------------------------- discrete Markov scenarios


@dataclass
class MarkovScenario:
    """A chain-verification scenario (module doc). ``logits`` (LP, LQ) and ``warp``
    (temperature, top_p) are set for logits-level scenarios: P and Q are then the
    warped rows of the same logits."""

    name: str
    description: str
    P: np.ndarray  # [K+1, V+1, V]
    Q: np.ndarray  # [K, V+1, V]
    logits: tuple | None = None
    warp: dict = field(default_factory=dict)
    context_independent: bool = False

    @property
    def V(self) -> int:
        return self.P.shape[2]

    @property
    def K(self) -> int:
        return self.Q.shape[0]

    def rows_along(self, seq):
        """Target rows [len(seq)+1, V] and draft rows along ``seq`` (prefix conditioning)."""
        prev = [self.V] + [int(t) for t in seq]
        p = np.stack([self.P[i, prev[i]] for i in range(len(seq) + 1)])
        q = np.stack([self.Q[i, prev[i]] for i in range(min(len(seq) + 1, self.K))])
        return p, q

    # ---- exact laws
    def joint_law(self) -> np.ndarray:
        V, K = self.V, self.K
        out = np.zeros(V ** (K + 1))
        for idx, seq in enumerate(np.ndindex(*(V,) * (K + 1))):
            pr, prev = 1.0, V
            for i, x in enumerate(seq):
                pr *= self.P[i, prev, x]
                prev = x
            out[idx] = pr
        return out

    def emitted_offsets(self):
        V, K = self.V, self.K
        return np.concatenate([[0], np.cumsum([V ** (t + 1) for t in range(K + 1)])])

    def emitted_index(self, tokens) -> int:
        return int(self.emitted_offsets()[len(tokens) - 1]) + seq_index(tokens, self.V)

    def chain_law(self) -> np.ndarray:
        V, K = self.V, self.K
        off = self.emitted_offsets()
        out = np.zeros(off[-1])
        for t in range(K + 1):
            for pre in np.ndindex(*(V,) * t):
                pr, prev = 1.0, V
                for i, x in enumerate(pre):
                    pr *= min(self.P[i, prev, x], self.Q[i, prev, x])
                    prev = x
                if pr == 0:
                    continue
                w = self.P[t, prev] if t == K else np.maximum(self.P[t, prev] - self.Q[t, prev], 0)
                for y in range(V):
                    out[off[t] + seq_index(pre + (y,), V)] += pr * w[y]
        return out

    def block_law(self) -> np.ndarray:
        V, K = self.V, self.K
        off = self.emitted_offsets()
        out = np.zeros(off[-1])
        for draft in np.ndindex(*(V,) * K):
            p, q = self.rows_along(draft)
            qx = np.prod([q[i, draft[i]] for i in range(K)])
            if qx == 0:
                continue
            surv = [1.0]
            for i in range(K):
                surv.append(min(surv[-1] * p[i, draft[i]] / q[i, draft[i]], 1.0))
            mass = [np.maximum(surv[i] * p[i] - q[i], 0).sum() for i in range(K)]
            h = [0.0] * (K + 1)
            for i in range(1, K):
                den = mass[i] + 1 - surv[i]
                h[i] = mass[i] / den if den > 0 else 0.0
            h[K] = surv[K]
            for tau in range(K + 1):
                pt = np.prod([1 - h[j] for j in range(tau + 1, K + 1)]) * (h[tau] if tau > 0 else 1.0)
                if pt <= 0:
                    continue
                if tau == K:
                    w = p[K]
                else:
                    w = np.maximum(surv[tau] * p[tau] - q[tau], 0)
                    w = w / w.sum()
                for y in range(V):
                    out[off[tau] + seq_index(draft[:tau] + (y,), V)] += qx * pt * w[y]
        return out

    def length_law(self, emitted_law) -> np.ndarray:
        off = self.emitted_offsets()
        return np.array([emitted_law[off[t]:off[t + 1]].sum() for t in range(self.K + 1)])

    # ---- sampling
    def draw_drafts(self, n, rng):
        """Drafts [n, K] from Q, and the rows along them: p [n, K+1, V], q [n, K, V]."""
        V, K = self.V, self.K
        draft = np.zeros((n, K), dtype=np.int64)
        prev = np.full(n, V)
        for i in range(K):
            draft[:, i] = sample_categorical_rows(self.Q[i, prev], rng.random(n))[0]
            prev = draft[:, i]
        prevs = np.concatenate([np.full((n, 1), V), draft], axis=1)
        p = self.P[np.arange(K + 1)[None, :], prevs]       # [n, K+1, V]
        q = self.Q[np.arange(K)[None, :], prevs[:, :K]]    # [n, K, V]
        return draft, p, q

    def logits_along(self, prevs_row):
        LP, LQ = self.logits
        K = self.K
        return LP[np.arange(K + 1), prevs_row], LQ[np.arange(K), prevs_row[:K]]

    def complete(self, emitted, rng):
        """Complete an emitted block to K+1 tokens by target sampling."""
        seq = list(emitted)
        while len(seq) < self.K + 1:
            prev = seq[-1] if seq else self.V
            seq.append(int(sample_categorical_rows(self.P[len(seq), prev], rng.random())[0]))
        return seq


def _markov(name, description, P, Q, **kw) -> MarkovScenario:
    P = np.asarray(P, dtype=np.float64)
    Q = np.asarray(Q, dtype=np.float64)
    return MarkovScenario(name, description, P, Q, **kw)


def _independent(prows, qrows):
    """Context-independent tables: the rows depend on the position only."""
    prows = np.asarray(prows, dtype=np.float64)
    qrows = np.asarray(qrows, dtype=np.float64)
    V = prows.shape[1]
    return np.repeat(prows[:, None, :], V + 1, axis=1), np.repeat(qrows[:, None, :], V + 1, axis=1)


def _random_markov(seed, V, K, zero_frac=0.25):
    rng = np.random.default_rng(seed)

    def table(n):
        t = rng.dirichlet(np.ones(V) * 0.8, size=(n, V + 1))
        mask = rng.random(t.shape) < zero_frac
        mask[..., 0] &= False  # keep at least token 0 alive in every row
        t = np.where(mask, 0.0, t)
        return t / t.sum(axis=-1, keepdims=True)

    return table(K + 1), table(K)


def markov_scenarios() -> dict:
    """The probability-level chain battery (name -> MarkovScenario)."""
    out = {}
    # T1's pair at position 1, a different bonus row (off-by-one rows show), K = 1.
    P, Q = _independent([[0.5, 0.3, 0.2], [0.15, 0.25, 0.6]], [[0.2, 0.2, 0.6]])
    out["t1"] = _markov("t1", "T1's pair p=(.5,.3,.2), q=(.2,.2,.6), K=1, a distinct bonus row", P, Q,
                        context_independent=True)
    # context-independent K = 2 with a p(x)=0 token drafted often and disjoint supports.
    P, Q = _independent([[0.45, 0.35, 0.2, 0.0], [0.5, 0.5, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4]],
                        [[0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 0.5, 0.5]])
    out["zeros"] = _markov("zeros", "V=4, K=2: p(x)=0 where q(x)=0.4, disjoint supports at position 2",
                           P, Q, context_independent=True)
    # block verification: after drafting token 2 (survival p_1 = 1/3) the scaled residual
    # (p_1 p_2 - q_2)+ differs from (p_2 - q_2)+ (exposes a missing factor p_tau).
    P, Q = _independent([[0.5, 0.3, 0.2], [0.5, 0.4, 0.1], [0.3, 0.3, 0.4]],
                        [[0.2, 0.2, 0.6], [0.05, 0.25, 0.7]])
    out["scaled"] = _markov("scaled", "V=3, K=2: the block residual's scale p_tau matters", P, Q,
                            context_independent=True)
    # context-dependent random rows with zeros (joint-law and row-indexing bugs).
    P, Q = _random_markov(13, 3, 3, zero_frac=0.15)
    out["markov"] = _markov("markov", "V=3, K=3, context-dependent random rows with zero cells", P, Q)
    # many small residual entries (0.05 each) with a large TV (0.3): the residual is spread out.
    V = 12
    p = np.full(V, 1 / 12)
    q = np.concatenate([np.full(6, 1 / 30), np.full(6, 4 / 30)])
    P, Q = _independent([p, p], [q])
    out["spread"] = _markov("spread", "V=12, K=1: residual spread over 6 tokens of 0.05 each (TV 0.3)",
                            P, Q, context_independent=True)
    return out


def greedy_scenarios() -> dict:
    """One-hot (temperature-0) target rows: chain verification must act greedily."""
    P, Q = _random_markov(11, 3, 3, zero_frac=0.0)
    am = P.argmax(axis=-1)
    onehot = np.zeros_like(P)
    np.put_along_axis(onehot, am[..., None], 1.0, axis=-1)
    return {"greedy": _markov("greedy", "V=3, K=3, one-hot (argmax) target rows, soft context-dependent q",
                              onehot, Q)}


def _logits_scenario(name, description, seed, V, K, warp, offset_sd=0.0) -> MarkovScenario:
    """Context-dependent target logits LP [K+1, V+1, V] ~ N(0, 1.5^2) and draft logits
    LQ = LP[:K] + N(0, 1) noise, warped by ``warp`` on both sides. ``offset_sd`` adds a
    random constant to every row of LP and LQ (N(0, offset_sd^2), drawn independently
    per row): the warped laws do not change (softmax is shift-invariant), but the raw
    logits look like a model's, whose rows are never normalised (a sampler that takes
    a ratio of raw logits is then far off; ``mutant.logits_not_normalised``)."""
    rng = np.random.default_rng(seed)
    LP = rng.normal(0, 1.5, size=(K + 1, V + 1, V))
    LQ = LP[:K] + rng.normal(0, 1.0, size=(K, V + 1, V))
    if offset_sd:
        LP = LP + rng.normal(0, offset_sd, size=(K + 1, V + 1, 1))
        LQ = LQ + rng.normal(0, offset_sd, size=(K, V + 1, 1))
    P = process_logits(LP, **warp)
    Q = process_logits(LQ, **warp)
    return MarkovScenario(name, description, P, Q, logits=(LP, LQ), warp=dict(warp))


def logits_scenarios() -> dict:
    """Logits-level scenarios: the law is that of the warped rows (temperature, top-k,
    top-p, min-p; reference/processing.py), over several vocabularies and temperatures."""
    out = {}
    out["warped"] = _logits_scenario("warped", "V=5, K=2, logits with temperature 0.6 and top-p 0.8", 5, 5, 2,
                                     {"temperature": 0.6, "top_p": 0.8})
    out["topk"] = _logits_scenario("topk", "V=6, K=2, temperature 1.3 and top-k 3, raw row offsets", 6, 6, 2,
                                   {"temperature": 1.3, "top_k": 3}, offset_sd=2.0)
    out["minp"] = _logits_scenario("minp", "V=8, K=1, temperature 0.9 and min-p 0.1, raw row offsets", 7, 8, 1,
                                   {"temperature": 0.9, "min_p": 0.1}, offset_sd=2.0)
    out["offsets"] = _logits_scenario("offsets", "V=4, K=2, temperature 1, no truncation, raw row offsets "
                                      "(sd 2): a ratio of unnormalised logits is far off", 8, 4, 2,
                                      {"temperature": 1.0}, offset_sd=2.0)
    # vLLM V1's adapter scenarios (same logits as "warped"): temperature 1 with and without
    # top-k / top-p, and rows that are NOT the warp of LQ (an impl must not recompute q from
    # the draft logits): greedy target rows with drafts sampled from softmax(LQ); soft target
    # rows with a deterministic drafter (q one-hot at argmax LQ, as ngram / suffix drafters are).
    LP, LQ = out["warped"].logits
    for name, desc, w in (("logits_t1", "V=5, K=2, logits at temperature 1, no top-k / top-p",
                           {"temperature": 1.0}),
                          ("logits_topk", "V=5, K=2, logits at temperature 1 with top-k 3 and top-p 0.9",
                           {"temperature": 1.0, "top_k": 3, "top_p": 0.9})):
        out[name] = MarkovScenario(name, desc, process_logits(LP, **w), process_logits(LQ, **w),
                                   logits=(LP, LQ), warp=w)
    out["logits_greedy"] = MarkovScenario(
        "logits_greedy", "V=5, K=2, temperature 0 (argmax target), drafts sampled from softmax(LQ)",
        process_logits(LP, temperature=0.0), process_logits(LQ), logits=(LP, LQ), warp={"temperature": 0.0})
    out["logits_onehot_q"] = MarkovScenario(
        "logits_onehot_q", "V=5, K=2, temperature 1, deterministic drafts (q one-hot at argmax LQ)",
        process_logits(LP), process_logits(LQ, temperature=0.0), logits=(LP, LQ), warp={"temperature": 1.0})
    return out


# ---------------------------------------------------------------- multi-round requests


@dataclass
class RoundsScenario:
    """The multi-round protocol: a request advances through positions over
    ``R`` consecutive rounds, every round verified by a call of the sampler with the
    request's OWN generator (the same Generator object for all rounds of a request).

    The target is a stationary Markov chain ``T[prev]`` [V+1, V] (row V: no previous
    token), the draft ``D[prev]`` [V+1, V]. A round drafts K tokens from D after the
    request's last token c, hands the sampler the rows along the draft (as
    :class:`MarkovScenario` from context c, :meth:`round`) and the request continues
    after the last emitted token. A correct sampler uses fresh noise every round, so
    given its context each round follows its exact law independently of the earlier
    rounds:

    ``stream``  the first ``M`` tokens of the request (M <= R, so always emitted): under
                any lossless sampler they follow the target chain, prod T[x_{i-1}](x_i);
    ``taus``    (chain / block law) the joint law of (tau_1, ..., tau_R), by a forward
                recursion over the context with each round's exact law (the product of
                the per-round laws along the request): noise reused across rounds
                (a stale buffer, an RNG keyed on the position in the block) shows here.
    """

    name: str
    description: str
    T: np.ndarray  # [V+1, V]
    D: np.ndarray  # [V+1, V]
    K: int
    R: int
    M: int

    @property
    def V(self) -> int:
        return self.T.shape[1]

    def round(self, c: int) -> MarkovScenario:
        """The round from context c as a MarkovScenario (P [K+1, V+1, V], its row V = T[c])."""
        V, K = self.V, self.K
        T = self.T.copy()
        D = self.D.copy()
        T[V], D[V] = self.T[c], self.D[c]
        return MarkovScenario(f"{self.name}@{c}", "", np.repeat(T[None], K + 1, 0), np.repeat(D[None], K, 0))

    def rounds(self) -> list:
        """One MarkovScenario per context c = 0..V (c = V: the request's first round)."""
        return [self.round(c) for c in range(self.V + 1)]

    def stream_law(self) -> np.ndarray:
        """Law of the first M tokens [V^M] (base-V index, first token most significant)."""
        out = np.zeros(self.V ** self.M)
        for idx, seq in enumerate(np.ndindex(*(self.V,) * self.M)):
            pr, prev = 1.0, self.V
            for x in seq:
                pr *= self.T[prev, x]
                prev = x
            out[idx] = pr
        return out

    def taus_law(self, law: str) -> np.ndarray:
        """Law of (tau_1..tau_R) [(K+1)^R] (base-(K+1) index, round 1 most significant)."""
        V, K = self.V, self.K
        # per context c: P(tau = t, last emitted token = y) [K+1, V]
        per = []
        for sc in self.rounds():
            em = sc.chain_law() if law == "chain" else sc.block_law()
            off = sc.emitted_offsets()
            m = np.zeros((K + 1, V))
            for t in range(K + 1):
                m[t] = em[off[t]:off[t + 1]].reshape(-1, V).sum(axis=0)
            per.append(m)
        state = np.zeros((1, V + 1))  # [histories, context]
        state[0, V] = 1.0
        for _ in range(self.R):
            nxt = np.zeros((state.shape[0] * (K + 1), V + 1))
            for h in range(state.shape[0]):
                for c in range(V + 1):
                    if state[h, c] > 0:
                        nxt[h * (K + 1):(h + 1) * (K + 1), :V] += state[h, c] * per[c]
            state = nxt
        return state.sum(axis=1)


def rounds_scenarios() -> dict:
    """The multi-round battery (probs protocol). Rows are permutations (one per context)
    of p = (.25, .25, .5), q = (.45, .45, .1): p/q = 0.56 on the tokens q drafts 90% of
    the time, so a round's acceptance depends little on which tokens were drafted and
    noise shared by two rounds shows as strongly correlated acceptances."""
    perms = [(0, 1, 2), (1, 2, 0), (2, 0, 1), (0, 2, 1)]  # contexts 0, 1, 2 and the start (3)
    p, q = np.array([0.25, 0.25, 0.5]), np.array([0.45, 0.45, 0.1])
    T = np.stack([p[list(pm)] for pm in perms])
    D = np.stack([q[list(pm)] for pm in perms])
    return {"rounds": RoundsScenario("rounds", "requests of R=3 rounds (K=2, V=3, stationary Markov target), "
                                     "each request with its own generator", T, D, K=2, R=3, M=3)}


# ---------------------------------------------------------------- multi-draft (one node)


@dataclass
class MultiScenario:
    """One tree node: target row p [V], k children drawn c_j ~ q_j (rows q [k, V]).
    ``kind`` "mss" (independent rows q_j) or "kseq" (k i.i.d. draws of one row q[0])."""

    name: str
    description: str
    kind: str
    p: np.ndarray
    q: np.ndarray

    @property
    def V(self):
        return self.p.shape[0]

    @property
    def k(self):
        return self.q.shape[0]

    def law(self) -> np.ndarray:
        """P(accepted, token) over cells [2V]: index accepted * V + token."""
        V = self.V
        out = np.zeros(2 * V)
        if self.kind == "mss":
            P = self.p.copy()
            reach = 1.0
            for j in range(self.k):
                m = np.minimum(P, self.q[j])
                out[V:] += reach * m
                beta = m.sum()
                reach *= 1 - beta
                if beta < 1:
                    w = np.maximum(P - self.q[j], 0)
                    P = w / w.sum()
            out[:V] += reach * P
        else:
            rho = kseq_rho(self.p, self.q[0], self.k)
            m = np.minimum(self.q[0], self.p / rho)
            beta = m.sum()
            pacc = 1 - (1 - beta) ** self.k
            out[V:] = m * pacc / beta
            out[:V] = np.maximum(self.p - out[V:], 0)
        return out

    def draw_children(self, n, rng):
        rows = self.q if self.kind == "mss" else np.repeat(self.q[:1], self.k, axis=0)
        return np.stack([sample_categorical_rows(np.broadcast_to(rows[j], (n, rows.shape[1])), rng.random(n))[0]
                         for j in range(self.k)], 1)


def kseq_rho(p, q, k, tol=1e-13):
    """SpecTr's rho* (ALGORITHMS.md §1.4.2): the smallest rho >= 1 with
    p_acc(rho)/beta(rho) <= rho, by bisection (the certifier's own copy)."""
    def excess(rho):
        beta = np.minimum(q, p / rho).sum()
        return (1 - (1 - beta) ** k) / beta - rho
    if excess(1.0) <= 0:
        return 1.0
    hi = float(k)
    return float(optimize.brentq(excess, 1.0, hi, xtol=tol)) if excess(hi) < 0 else hi


def multi_scenarios() -> dict:
    p = np.array([0.5, 0.3, 0.2])
    q = np.array([0.2, 0.2, 0.6])
    return {
        "mss": MultiScenario("mss", "T4: p=(.5,.3,.2), children from q1=(.2,.2,.6), q2, q3", "mss", p,
                             np.array([q, [0.1, 0.6, 0.3], [0.6, 0.3, 0.1]])),
        # one draft row for every child (SpecInfer with one drafter, the tree twins' layout: one
        # draft row per parent); the residual update still changes P after each rejection
        "mss_shared": MultiScenario("mss_shared", "T4: p=(.5,.3,.2), 3 children from one row q=(.2,.2,.6)", "mss",
                                    p, np.array([q, q, q])),
        "kseq": MultiScenario("kseq", "T4: p=(.5,.3,.2), k=2 i.i.d. candidates from q=(.2,.2,.6)", "kseq", p,
                              np.array([q, q])),
    }


# ---------------------------------------------------------------- deterministic trees


@dataclass
class TreeScenario:
    """A fixed candidate tree (tokens [N], parents [N]) over a Markov target (P as in
    MarkovScenario, depth-indexed). Lossless: completed output law = target joint law."""

    name: str
    description: str
    tokens: np.ndarray
    parents: np.ndarray
    P: np.ndarray  # [D+1, V+1, V]

    @property
    def V(self):
        return self.P.shape[2]

    @property
    def D(self):
        return self.P.shape[0] - 1

    def depth(self, n):
        d = 0
        while n >= 0:
            d += 1
            n = int(self.parents[n])
        return d

    def path(self, n):
        out = []
        while n >= 0:
            out.append(int(self.tokens[n]))
            n = int(self.parents[n])
        return tuple(reversed(out))

    def rows(self) -> np.ndarray:
        """Target rows [N+1, V]: row 0 at the root, row n+1 after node n."""
        V = self.V
        rows = [self.P[0, V]]
        for n in range(len(self.tokens)):
            rows.append(self.P[self.depth(n), int(self.tokens[n])])
        return np.stack(rows)

    def joint_law(self):
        return MarkovScenario("", "", self.P, self.P[:-1]).joint_law()

    def length_law(self) -> np.ndarray:
        """P(tau = t), t = 0..D, from distinct tree paths: P(tau >= d) = sum p(path)."""
        paths = {self.path(n) for n in range(len(self.tokens))}
        ge = np.zeros(self.D + 2)
        ge[0] = 1.0
        for path in paths:
            pr, prev = 1.0, self.V
            for i, x in enumerate(path):
                pr *= self.P[i, prev, x]
                prev = x
            ge[len(path)] += pr
        return ge[:-1] - ge[1:]

    def complete(self, emitted, rng):
        return MarkovScenario("", "", self.P, self.P[:-1]).complete(emitted, rng)


def tree_scenarios() -> dict:
    P, _ = _random_markov(13, 3, 3, zero_frac=0.2)
    # root -> {0, 1, 0 (duplicate)}; 0 -> {2, 1}; 1 -> {1}; 0/2 -> {0}
    tokens = np.array([0, 1, 0, 2, 1, 1, 0])
    parents = np.array([-1, -1, -1, 0, 0, 1, 3])
    return {"tree": TreeScenario("tree", "7-node candidate tree (a duplicated sibling) over V=3, depth 3",
                                 tokens, parents, P)}


# ---------------------------------------------------------------- Gaussian scenarios


@dataclass
class GaussStepScenario:
    """One step: target N(m_p, s^2 I), draft N(m_q, s^2 I) (T6)."""

    name: str
    description: str
    m_p: np.ndarray
    m_q: np.ndarray
    s: float

    @property
    def delta(self):
        return float(np.linalg.norm(self.m_p - self.m_q) / self.s)

    def basis(self):
        """Orthonormal basis [d, d] whose first row is e = (m_p - m_q)/|m_p - m_q|."""
        e = (self.m_p - self.m_q) / np.linalg.norm(self.m_p - self.m_q)
        m = np.eye(len(e))
        m[:, 0] = e
        qm, _ = np.linalg.qr(m)
        qm[:, 0] *= np.sign(qm[:, 0] @ e)
        return qm.T


@dataclass
class GaussResidualScenario(GaussStepScenario):
    """The residual (c p - q)_+ alone: S = e.(Y - m_q)/s has the 1-D law of §2.4."""

    c: float = 1.0

    def s_star(self):
        d = self.delta
        return d / 2 - math.log(self.c) / d

    def log_tail(self, S):
        """log P(S' > S) for the residual law, cancellation-free:
        tail(S) = c Phi_bar(S - delta) - Phi_bar(S) = c Phi_bar(S - delta) (1 - r),
        r = Phi_bar(S) / (c Phi_bar(S - delta)), divided by the mass (tail at s*)."""
        d, lc = self.delta, math.log(self.c)

        def lt(x):
            x = np.maximum(x, self.s_star())
            a = lc + special.log_ndtr(-(x - d))
            b = special.log_ndtr(-x)
            return a + np.log(-np.expm1(np.minimum(b - a, -1e-300)))
        return lt(np.asarray(S, dtype=np.float64)) - lt(np.array(self.s_star()))


@dataclass
class GaussBlockScenario:
    """Linear Gaussian chain, window L: m(x) = A x + b per kernel, std s per step, x0.
    The completed trajectory's innovations (x_i - m_p(x_{i-1}))/s are i.i.d. N(0, I)."""

    name: str
    description: str
    A_p: np.ndarray
    b_p: np.ndarray
    A_q: np.ndarray
    b_q: np.ndarray
    s: float
    x0: np.ndarray
    L: int

    def m_p(self, x):
        return self.A_p @ x + self.b_p

    def m_q(self, x):
        return self.A_q @ x + self.b_q

    @property
    def delta1(self):
        return float(np.linalg.norm(self.m_p(self.x0) - self.m_q(self.x0)) / self.s)


def gauss_scenarios() -> dict:
    out = {}
    out["gstep"] = GaussStepScenario("gstep", "T6: m_p=(0.3,-0.2,0.5), m_q=0, s=0.7 (delta 0.88)",
                                     np.array([0.3, -0.2, 0.5]), np.zeros(3), 0.7)
    out["gstep_far"] = GaussStepScenario("gstep_far", "m_p=(1.5,0.5,0), m_q=0, s=0.8 (delta 1.98)",
                                         np.array([1.5, 0.5, 0.0]), np.zeros(3), 0.8)
    out["gres"] = GaussResidualScenario("gres", "residual (c p - q)+, c=1, delta 1 (T6 table)",
                                        np.array([0.7, 0.0]), np.zeros(2), 0.7, c=1.0)
    out["gres_tail"] = GaussResidualScenario("gres_tail", "scaled residual c=0.5, delta 0.09: s* = 7.7 (far tail)",
                                             np.array([0.063, 0.0]), np.zeros(2), 0.7, c=0.5)
    # 2-D chain: the drift gap depends strongly on the orthogonal coordinate.
    out["gblock"] = GaussBlockScenario(
        "gblock", "2-D linear chain, L=3, drift gap (0.6 + 0.9 x[1], 0): tau depends on orthogonal noise",
        A_p=np.array([[0.9, 0.9], [0.0, 0.9]]), b_p=np.array([0.9, 0.0]),
        A_q=np.array([[0.9, 0.0], [0.0, 0.9]]), b_q=np.array([0.3, 0.0]), s=0.7, x0=np.zeros(2), L=3)
    return out
