"""Hypothesis strategies of the test suite: the ONE place where property tests get
their inputs. Test helper, not a test module.

Every strategy draws small objects so that exact arithmetic (Fractions, the
interval-uniform integrator of tests/_discrete_exact.py) stays cheap, and forces the
edge cases in: zero weights, p == q, disjoint supports, one-hot rows, ties, K = 0.

Discrete:
    :func:`weight_rows`, :func:`weight_pair`, :func:`weight_pairs`  integer weights
    :func:`prob_vectors`          float64 probability vectors (zeros included)
    :func:`logits`, :func:`warps` logits rows and (temperature, top_k, top_p, min_p)
    :func:`small_round`           (p, q, draft, u) of one float64 verification round
    :func:`markov_pair`           exact Markov (target, draft) models
    :func:`tree_parents`          parent lists of small draft trees
Continuous:
    :func:`gaussian_step`         (m_p, m_q, s, z, u) of one Gaussian speculative step
    :func:`residual_params`       (u, c, delta) of the 1-D Gaussian residual (§2.4)
Settings:
    :func:`examples`              an example count scaled with the active profile

Profiles (tests/conftest.py): ``dev`` locally, ``ci`` derandomized in CI, ``thorough``.
"""
from __future__ import annotations

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st

from specoracle.reference import targets

# ---------------------------------------------------------------- settings

# Per-test example counts are written for the default profiles (60 examples) and scale
# with the active profile (HYPOTHESIS_PROFILE=thorough runs ~33x more).
_DEFAULT_EXAMPLES = 60


def examples(n: int) -> settings:
    """``settings(max_examples=n)`` scaled by the active profile's max_examples / 60."""
    scale = max(settings.default.max_examples / _DEFAULT_EXAMPLES, 1 / _DEFAULT_EXAMPLES)
    return settings(max_examples=max(1, int(n * scale)))


# ---------------------------------------------------------------- discrete distributions

#: Edge-case modes of :func:`weight_pair`.
MODES = ("random", "equal", "disjoint", "onehot_p", "onehot_q", "sparse_q")

seeds = st.integers(0, 2 ** 32 - 1)
"""A NumPy seed (for tests that draw a round's noise from a Generator)."""


def weight_rows(v: int, max_weight: int = 5) -> st.SearchStrategy[list[int]]:
    """Integer weights [v] in 0..max_weight with a positive sum (zeros are frequent)."""
    return st.lists(st.integers(0, max_weight), min_size=v, max_size=v).filter(lambda w: sum(w) > 0)


@st.composite
def weight_pair(draw, v: int):
    """Integer weights (wp, wq) [v] with an edge-case ``mode`` of :data:`MODES` applied:
    p == q, disjoint supports, one-hot p or q, q zero on every odd token. v >= 2."""
    mode = draw(st.sampled_from(MODES))
    row = weight_rows(v)
    wp, wq = draw(row), draw(row)
    if mode == "equal":
        wq = list(wp)
    elif mode == "disjoint":
        cut = draw(st.integers(1, v - 1))
        wp = [w if i < cut else 0 for i, w in enumerate(wp)]
        wq = [w if i >= cut else 0 for i, w in enumerate(wq)]
        wp[0] = wp[0] or 1
        wq[-1] = wq[-1] or 1
    elif mode in ("onehot_p", "onehot_q"):
        hot = draw(st.integers(0, v - 1))
        onehot = [int(i == hot) for i in range(v)]
        wp, wq = (onehot, wq) if mode == "onehot_p" else (wp, onehot)
    elif mode == "sparse_q":
        wq = [w if i % 2 == 0 else 0 for i, w in enumerate(wq)]
        wq[0] = wq[0] or 1
    return wp, wq


def weight_pairs(min_vocab: int = 2, max_vocab: int = 4):
    """:func:`weight_pair` over a vocabulary size drawn in [min_vocab, max_vocab]."""
    return st.integers(min_vocab, max_vocab).flatmap(weight_pair)


@st.composite
def prob_vectors(draw, v: int | None = None, max_vocab: int = 8):
    """A float64 probability vector [v] (v drawn in 1..max_vocab if None): normalised
    integer weights in 0..8, so exact zeros and ties are frequent; sums to 1 within
    rounding."""
    v = draw(st.integers(1, max_vocab)) if v is None else v
    w = np.array(draw(weight_rows(v, 8)), dtype=np.float64)
    return w / w.sum()


@st.composite
def logits(draw, v: int | None = None, max_vocab: int = 8):
    """A logits row [v] float64: finite values on a coarse grid (ties are frequent) and
    some -inf entries (masked tokens), never all -inf."""
    v = draw(st.integers(1, max_vocab)) if v is None else v
    grid = st.integers(-12, 12).map(lambda i: i / 4)
    row = draw(st.lists(st.one_of(grid, grid, st.just(-np.inf)), min_size=v, max_size=v))
    if all(x == -np.inf for x in row):
        row[draw(st.integers(0, v - 1))] = 0.0
    return np.array(row, dtype=np.float64)


@st.composite
def warps(draw, max_top_k: int = 10):
    """Keyword arguments of ``process_logits``: temperature (0 = greedy included),
    top_k, top_p, min_p, each possibly None (off)."""
    return dict(
        temperature=draw(st.sampled_from([0.0, 0.5, 1.0, 2.0]) | st.floats(0.05, 4.0)),
        top_k=draw(st.none() | st.integers(1, max_top_k)),
        top_p=draw(st.none() | st.floats(0.05, 1.0)),
        min_p=draw(st.none() | st.floats(0.0, 1.0)),
    )


@st.composite
def small_round(draw, max_vocab: int = 5, max_k: int = 3):
    """One float64 verification round (p [K+1, V], q [K, V], draft [K] int64, u [K+1]):
    integer weights 0..4 (ties and exact boundaries u q = p are frequent), each draft
    token in the support of its q row, K in 0..max_k."""
    v = draw(st.integers(1, max_vocab))
    k = draw(st.integers(0, max_k))
    rows = weight_rows(v, 4)
    p = np.array([draw(rows) for _ in range(k + 1)], float)
    q = np.array([draw(rows) for _ in range(k)], float).reshape(k, v)
    p /= p.sum(1, keepdims=True)
    q /= np.where(q.sum(1, keepdims=True) > 0, q.sum(1, keepdims=True), 1)
    draft = [draw(st.sampled_from([i for i in range(v) if q[j, i] > 0])) for j in range(k)]
    u = draw(st.lists(st.floats(0, 1, exclude_max=True), min_size=k + 1, max_size=k + 1))
    return p, q, np.array(draft, np.int64), np.array(u)


@st.composite
def markov_pair(draw, max_vocab: int = 3, order_max: int = 1):
    """Exact (Fraction) Markov models (target, draft) of vocabulary 2..max_vocab and
    order 0..order_max; half the time the draft is forced equal to the target."""
    v = draw(st.integers(2, max_vocab))
    order = draw(st.integers(0, order_max))
    rng = np.random.default_rng(draw(seeds))
    target = targets.MarkovModel.random(rng, v, order=order, exact=True, max_weight=4)
    draft = targets.MarkovModel.random(rng, v, order=order, exact=True, max_weight=4)
    if draw(st.booleans()):  # force an edge case: the draft equals the target
        draft = target if draw(st.booleans()) else draft
    return target, draft


@st.composite
def tree_parents(draw, max_nodes: int = 4):
    """Parent list of a draft tree with 0..max_nodes nodes in topological order
    (parents[i] in -1..i-1, -1 = the root): chains, stars and duplicates of depth."""
    n = draw(st.integers(0, max_nodes))
    return [draw(st.integers(-1, i - 1)) for i in range(n)]


# ---------------------------------------------------------------- Gaussian parameters


def _vectors(d: int, bound: float):
    return st.lists(st.floats(-bound, bound, allow_nan=False), min_size=d, max_size=d).map(np.array)


@st.composite
def gaussian_step(draw, max_dim: int = 4):
    """(m_p [d], m_q [d], s, z [d], u) of one step N(m_p, s^2 I) vs N(m_q, s^2 I):
    means in [-3, 3], s in [0.05, 3], noise z in [-4, 4]^d, u in [0, 1); a quarter of
    the draws have m_q == m_p (delta = 0, every draft accepted)."""
    d = draw(st.integers(1, max_dim))
    m_p = draw(_vectors(d, 3.0))
    m_q = m_p.copy() if draw(st.integers(0, 3)) == 0 else draw(_vectors(d, 3.0))
    s = draw(st.floats(0.05, 3.0))
    z = draw(_vectors(d, 4.0))
    u = draw(st.floats(0.0, 1.0, exclude_max=True))
    return m_p, m_q, s, z, u


@st.composite
def residual_params(draw):
    """(u, c, delta) of the 1-D Gaussian residual (c phi(s - delta) - phi(s))_+ / R:
    u in [0, 0.999], c in [0.05, 1] (c = 1: the maximal coupling's residual; c < 1: the
    block verifier's scaled residual), delta in [0.05, 6]."""
    u = draw(st.floats(0.0, 0.999))
    c = draw(st.just(1.0) | st.floats(0.05, 1.0))
    delta = draw(st.floats(0.05, 6.0))
    return u, c, delta
