"""Exact output laws of the reference verifiers, in rational arithmetic.

The engine drives the reference's OWN code (reference/categorical.py,
reference/tree.py): it never re-implements an accept rule, so a bug in the
reference shows up as a failed proof (ALGORITHMS.md §8, recipes 1-3; §7 T1-T5).

How the noise is integrated out exactly
---------------------------------------
Every verifier is a deterministic function of its probabilities (here Fractions)
and of uniforms u[0..n-1] in [0, 1). The reference only ever multiplies a uniform
by a rational number, adds a rational to it, and compares the result with a
rational (division-free tests, ALGORITHMS.md §0.3; the inverse-CDF draw
``u * total < running`` of ``sample_categorical``). So each decision is a step
function of one uniform with a rational breakpoint.

The engine passes, in the object array ``u``, :class:`TracedUniform` values. Each
one remembers the interval ``[lo, hi)`` its uniform is currently known to lie in.
A comparison whose threshold lies outside the interval has a definite answer; one
whose threshold ``t`` splits it FORKS: this run continues with ``[lo, t)`` (the
comparison is true) and the engine later re-executes the verifier from scratch
with the same earlier decisions and ``[t, hi)`` (depth-first, with replay). Each
finished run is a leaf: a box of uniforms (a product of intervals) on which the
output is constant; its probability is the product of the interval lengths. The
leaves partition [0,1)^n up to null sets (ties ``u == t`` have probability 0, so
``<`` and ``<=`` are treated alike), hence summing leaf probabilities gives the
exact law.

Anything else done with a traced uniform (float(), bool(), a product of two
uniforms, a comparison of two different uniforms) raises :class:`NotExact`: the
reference would then be doing something the proof cannot follow, which is itself
a finding.

Models and whole sequences
--------------------------
A model is a function ``prefix (tuple of token ids) -> row`` of Fractions summing
to 1: context-free (:func:`iid_model`), Markov (:func:`markov_model`) or fully
context-dependent (:func:`random_model`, a different random row for every prefix).
The drivers enumerate the drafts with their q-probabilities, integrate out the
verifier's noise, and complete every emitted output with target samples up to a
fixed length, so that the law of whole sequences can be compared with
``p(x^{K+1})`` (ALGORITHMS.md §7 T3, "the exactness test").
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from fractions import Fraction
from numbers import Rational
from typing import Callable, Dict, Iterator, Sequence, Tuple

import numpy as np

Row = Tuple[Fraction, ...]
Model = Callable[[tuple], Row]


class NotExact(TypeError):
    """The reference did something with a traced uniform that the engine cannot integrate."""


# ---------------------------------------------------------------- the traced noise


class _Trace:
    """State of one run of the verifier: the intervals of the uniforms and the
    decisions taken at forks (``choices`` prescribes the first ones: the replay)."""

    def __init__(self, n: int, choices: Sequence[int]):
        self.lo = [Fraction(0)] * n
        self.hi = [Fraction(1)] * n
        self.choices = list(choices)
        self.taken: list = []
        self.comparisons = 0

    def below(self, idx: int, t: Fraction) -> bool:
        """Is uniform ``idx`` < t? Decided by the interval, or by forking."""
        self.comparisons += 1
        lo, hi = self.lo[idx], self.hi[idx]
        if t >= hi:
            return True
        if t <= lo:
            return False
        k = len(self.taken)
        side = self.choices[k] if k < len(self.choices) else 0
        self.taken.append(side)
        if side == 0:
            self.hi[idx] = t
            return True
        self.lo[idx] = t
        return False

    def probability(self) -> Fraction:
        prob = Fraction(1)
        for lo, hi in zip(self.lo, self.hi):
            prob *= hi - lo
        return prob


def _rational(x) -> bool:
    return isinstance(x, Rational) and not isinstance(x, bool)


class TracedUniform:
    """``coef * u_idx + offset`` for a uniform u_idx ~ U[0,1) under trace.

    Supports exactly what the division-free reference needs: products and sums with
    rationals, and comparisons with rationals (either side). Comparisons fork the
    trace (see the module docstring).
    """

    __slots__ = ("_trace", "_idx", "_coef", "_offset")

    def __init__(self, trace: _Trace, idx: int, coef=Fraction(1), offset=Fraction(0)):
        self._trace, self._idx = trace, idx
        self._coef, self._offset = Fraction(coef), Fraction(offset)

    # -- arithmetic (affine in u only)
    def _affine(self, coef, offset):
        if coef == 0:
            return Fraction(offset)  # 0 * u + b is the constant b
        return TracedUniform(self._trace, self._idx, coef, offset)

    def __mul__(self, other):
        if _rational(other):
            return self._affine(self._coef * other, self._offset * other)
        if isinstance(other, TracedUniform):
            raise NotExact("product of two uniforms: the decision region is not a box")
        return NotImplemented

    __rmul__ = __mul__

    def __add__(self, other):
        if _rational(other):
            return self._affine(self._coef, self._offset + other)
        if isinstance(other, TracedUniform):
            raise NotExact("sum of two uniforms: the decision region is not a box")
        return NotImplemented

    __radd__ = __add__

    def __neg__(self):
        return self._affine(-self._coef, -self._offset)

    def __sub__(self, other):
        return self + (-other) if _rational(other) else self.__add__(-other)

    def __rsub__(self, other):
        return (-self) + other

    # -- comparisons (ties have probability 0: < and <= coincide)
    def _less_than(self, c) -> bool:
        """coef * u + offset < c."""
        if isinstance(c, TracedUniform):
            if c._trace is not self._trace or c._idx != self._idx:
                raise NotExact("comparison of two different uniforms")
            diff = self._affine(self._coef - c._coef, self._offset - c._offset)
            return diff < 0 if isinstance(diff, Fraction) else diff._lt_const(0)
        if not _rational(c):
            raise NotExact(f"comparison of a traced uniform with {type(c).__name__} "
                           "(the proof needs exact rationals)")
        return self._lt_const(c)

    def _lt_const(self, c) -> bool:
        t = (Fraction(c) - self._offset) / self._coef
        if self._coef > 0:
            return self._trace.below(self._idx, t)
        return not self._trace.below(self._idx, t)  # u > t, a.e. = not (u < t)

    def _cmp_other(self, other):
        if isinstance(other, (np.floating, float)):
            raise NotExact("comparison of a traced uniform with a float")
        return other

    def __lt__(self, other):
        return self._less_than(self._cmp_other(other))

    __le__ = __lt__

    def __gt__(self, other):
        return not self._less_than(self._cmp_other(other))

    __ge__ = __gt__

    def __eq__(self, other):  # a continuous uniform equals a constant with probability 0
        return other is self

    def __ne__(self, other):
        return other is not self

    __hash__ = object.__hash__

    # -- anything that would leave exact arithmetic
    def __bool__(self):
        raise NotExact("truth value of a traced uniform")

    def __float__(self):
        raise NotExact("float() of a traced uniform: the reference left exact arithmetic")

    def __index__(self):
        raise NotExact("a traced uniform used as an index")

    def __repr__(self):
        return (f"TracedUniform(u{self._idx} in [{self._trace.lo[self._idx]}, "
                f"{self._trace.hi[self._idx]}), {self._coef}*u+{self._offset})")


@dataclass(frozen=True)
class Leaf:
    """One box of the noise space: its probability and the verifier's output there."""

    probability: Fraction
    result: object
    comparisons: int


def enumerate_noise(fn: Callable[[np.ndarray], object], n: int) -> Iterator[Leaf]:
    """Yield the leaves of ``fn(u)`` over u ~ U[0,1)^n, depth-first with replay.

    ``fn`` receives an object array of :class:`TracedUniform` of length ``n`` and
    must be deterministic given its decisions. The probabilities of the leaves
    sum to exactly 1 (checked by :func:`noise_law`).
    """
    choices: list = []
    while True:
        trace = _Trace(n, choices)
        u = np.empty(n, dtype=object)
        for i in range(n):
            u[i] = TracedUniform(trace, i)
        result = fn(u)
        yield Leaf(trace.probability(), result, trace.comparisons)
        taken = trace.taken
        j = len(taken) - 1
        while j >= 0 and taken[j] == 1:
            j -= 1
        if j < 0:
            return
        choices = taken[:j] + [1]


def noise_law(fn: Callable[[np.ndarray], object], n: int,
              key: Callable[[object], object] = lambda r: r) -> Tuple[Dict[object, Fraction], int]:
    """Exact law of ``key(fn(u))`` over u ~ U[0,1)^n: ``({value: probability}, leaves)``."""
    law: Dict[object, Fraction] = {}
    leaves = 0
    total = Fraction(0)
    for leaf in enumerate_noise(fn, n):
        k = key(leaf.result)
        law[k] = law.get(k, Fraction(0)) + leaf.probability
        total += leaf.probability
        leaves += 1
    if total != 1:  # the engine's own invariant: the boxes partition the cube
        raise AssertionError(f"noise boxes sum to {total}, not 1")
    return law, leaves


# ---------------------------------------------------------------- models


def fraction_row(weights) -> Row:
    """Normalise non-negative integer/Fraction weights to a row of Fractions summing to 1."""
    w = [Fraction(x) for x in weights]
    total = sum(w, Fraction(0))
    if total <= 0 or any(x < 0 for x in w):
        raise ValueError(f"weights must be non-negative with a positive sum, got {weights}")
    return tuple(x / total for x in w)


def iid_model(row) -> Model:
    """Context-free model: the same row after every prefix."""
    r = fraction_row(row)
    return lambda prefix: r


def markov_model(initial, transition) -> Model:
    """First-order Markov model: ``initial`` after the empty prefix, else ``transition[last]``."""
    init = fraction_row(initial)
    trans = [fraction_row(t) for t in transition]
    return lambda prefix: trans[prefix[-1]] if prefix else init


def random_row(rng: np.random.Generator, vocab: int, denominator: int = 6,
               zero_prob: float = 0.2) -> Row:
    """A random row of Fractions with small denominators; entries are 0 with
    probability ``zero_prob`` (edge cases p(x) = 0, q(x) = 0), never all zero."""
    while True:
        w = rng.integers(1, denominator + 1, size=vocab)
        w[rng.random(vocab) < zero_prob] = 0
        if w.sum() > 0:
            return fraction_row(w.tolist())


def random_model(vocab: int, seed: int, denominator: int = 6, zero_prob: float = 0.2) -> Model:
    """Fully context-dependent model: an independent random row for every prefix,
    derived deterministically from ``(seed, prefix)`` (so enumeration order does not matter)."""
    cache: dict = {}

    def model(prefix: tuple) -> Row:
        prefix = tuple(int(t) for t in prefix)
        if prefix not in cache:
            rng = np.random.default_rng([seed, len(prefix), *prefix])
            cache[prefix] = random_row(rng, vocab, denominator, zero_prob)
        return cache[prefix]

    return model


def random_markov_model(vocab: int, seed: int, denominator: int = 6, zero_prob: float = 0.2) -> Model:
    rng = np.random.default_rng(seed)
    init = random_row(rng, vocab, denominator, zero_prob)
    trans = [random_row(rng, vocab, denominator, zero_prob) for _ in range(vocab)]
    return markov_model(init, trans)


def as_model(obj) -> Model:
    """A :data:`Model` from a callable, or from any object with ``next_probs(prefix)``
    (e.g. ``reference.targets.MarkovModel`` with exact Fraction tables)."""
    if hasattr(obj, "next_probs"):
        cache: dict = {}

        def model(prefix: tuple) -> Row:
            prefix = tuple(int(t) for t in prefix)
            if prefix not in cache:
                cache[prefix] = tuple(obj.next_probs(list(prefix)))
            return cache[prefix]

        return model
    if callable(obj):
        return obj
    raise TypeError(f"not a model: {type(obj).__name__}")


def rows(model: Model, context: tuple, tokens: Sequence[int], count: int) -> np.ndarray:
    """Object array [count, V]: model rows after context + tokens[:i], i = 0..count-1."""
    out = [model(tuple(context) + tuple(int(t) for t in tokens[:i])) for i in range(count)]
    return np.array(out, dtype=object)


# ---------------------------------------------------------------- sequence laws


def sequence_law(model: Model, vocab: int, length: int, context: tuple = ()) -> Dict[tuple, Fraction]:
    """Exact law of the next ``length`` tokens of ``model`` after ``context``."""
    return completion_law(model, vocab, (), length, context)


def completion_law(model: Model, vocab: int, emitted: tuple, length: int,
                   context: tuple = ()) -> Dict[tuple, Fraction]:
    """Law of ``emitted`` completed with target samples to ``length`` tokens:
    ``{emitted + rest: p(rest | context, emitted)}`` (emitted longer than length is cut)."""
    emitted = tuple(int(t) for t in emitted)
    if len(emitted) >= length:
        return {emitted[:length]: Fraction(1)}
    law: Dict[tuple, Fraction] = {}
    for rest in itertools.product(range(vocab), repeat=length - len(emitted)):
        prob = Fraction(1)
        seq = emitted
        for t in rest:
            prob *= model(tuple(context) + seq)[t]
            if prob == 0:
                break
            seq = seq + (t,)
        if prob:
            law[emitted + rest] = prob
    return law


def prefix_probability(model: Model, tokens: Sequence[int], context: tuple = ()) -> Fraction:
    """model(x^i | context) = prod_k model(x_k | context, x^{k-1})."""
    prob = Fraction(1)
    for i, t in enumerate(tokens):
        prob *= model(tuple(context) + tuple(tokens[:i]))[int(t)]
    return prob


@dataclass
class RoundLaw:
    """Exact law of one verification round (drafts and noise integrated out).

    sequences: law of the emitted tokens completed with target samples to ``length``.
    tau:       law of the number of accepted drafts.
    emitted:   law of the emitted tuple itself (tau accepted + 1 correction/bonus).
    leaves:    number of (draft, noise box) cases enumerated.
    fallbacks: probability mass on which the verdict reported a numerical fallback.
    """

    sequences: Dict[tuple, Fraction] = field(default_factory=dict)
    tau: Dict[int, Fraction] = field(default_factory=dict)
    emitted: Dict[tuple, Fraction] = field(default_factory=dict)
    leaves: int = 0
    fallbacks: Fraction = Fraction(0)

    def add(self, prob: Fraction, verdict, completion: Dict[tuple, Fraction]) -> None:
        self.leaves += 1
        tau = int(verdict.n_accepted)
        tokens = tuple(int(t) for t in verdict.tokens)
        self.tau[tau] = self.tau.get(tau, Fraction(0)) + prob
        self.emitted[tokens] = self.emitted.get(tokens, Fraction(0)) + prob
        if verdict.fallbacks:
            self.fallbacks += prob
        for seq, c in completion.items():
            self.sequences[seq] = self.sequences.get(seq, Fraction(0)) + prob * c

    def tail(self, i: int) -> Fraction:
        """P(tau >= i)."""
        return sum((v for t, v in self.tau.items() if t >= i), Fraction(0))

    def mean_tau(self) -> Fraction:
        return sum((t * v for t, v in self.tau.items()), Fraction(0))


def draft_round_law(verifier, p_model: Model, q_model: Model, vocab: int, k: int,
                    context: tuple = (), length: int | None = None) -> RoundLaw:
    """Exact law of one round of a chain verifier ``verifier(p, q, draft, u) -> Verdict``
    (token, block, or any verifier with that signature and noise layout u [K+1]).

    Drafts x^K are enumerated with probability q(x^K | context); p rows [K+1, V] and
    q rows [K, V] are the models' rows after context + x^{i-1}; the K+1 uniforms are
    integrated out by :func:`enumerate_noise`; each output is completed with target
    samples to ``length`` (default K+1) tokens.
    """
    length = k + 1 if length is None else length
    law = RoundLaw()
    for draft in itertools.product(range(vocab), repeat=k):
        qd = prefix_probability(q_model, draft, context)
        if qd == 0:
            continue
        p = rows(p_model, context, draft, k + 1)
        q = rows(q_model, context, draft, k).reshape(k, vocab)
        for leaf in enumerate_noise(lambda u: verifier(p, q, np.array(draft, dtype=np.int64), u), k + 1):
            verdict = leaf.result
            law.add(qd * leaf.probability, verdict,
                    completion_law(p_model, vocab, verdict.tokens, length, context))
    return law


def greedy_round_outputs(verifier, p_model: Model, vocab: int, k: int, context: tuple = ()):
    """Yield ``(draft, verdict)`` of a greedy verifier ``verifier(p, draft)`` for EVERY
    draft in V^K (greedy verification must be right whatever was drafted)."""
    for draft in itertools.product(range(vocab), repeat=k):
        p = rows(p_model, context, draft, k + 1)
        yield draft, verifier(p, np.array(draft, dtype=np.int64))


def greedy_decode(p_model: Model, vocab: int, length: int, context: tuple = (), argmax=None) -> tuple:
    """The target's greedy continuation (lowest index on ties unless ``argmax`` is given)."""
    if argmax is None:
        def argmax(row):
            return max(range(len(row)), key=lambda i: (row[i], -i))
    seq: tuple = ()
    for _ in range(length):
        seq = seq + (int(argmax(p_model(tuple(context) + seq))),)
    return seq


def law_difference(a: Dict[tuple, Fraction], b: Dict[tuple, Fraction]) -> Dict[tuple, Tuple[Fraction, Fraction]]:
    """Entries where two exact laws differ: {outcome: (a, b)} (empty iff equal)."""
    out = {}
    for key in set(a) | set(b):
        x, y = a.get(key, Fraction(0)), b.get(key, Fraction(0))
        if x != y:
            out[key] = (x, y)
    return out


def describe_difference(diff, limit: int = 3) -> str:
    items = sorted(diff.items(), key=lambda kv: -abs(kv[1][0] - kv[1][1]))[:limit]
    return "; ".join(f"{k}: got {a}, want {b}" for k, (a, b) in items)


# ---------------------------------------------------------------- closed forms (for comparison)


def token_tail_closed_form(p_model: Model, q_model: Model, vocab: int, i: int, context: tuple = ()) -> Fraction:
    """ALGORITHMS.md §1.2: P(tau_tok >= i) = sum_{x^i} prod_k min(p(x_k|x^{k-1}), q(x_k|x^{k-1}))."""
    total = Fraction(0)
    for xs in itertools.product(range(vocab), repeat=i):
        prob = Fraction(1)
        for k in range(i):
            pre = tuple(context) + xs[:k]
            prob *= min(p_model(pre)[xs[k]], q_model(pre)[xs[k]])
        total += prob
    return total


def block_tail_closed_form(p_model: Model, q_model: Model, vocab: int, i: int, context: tuple = ()) -> Fraction:
    """ALGORITHMS.md §1.3 / T3(c): P(tau_block >= i) = sum_{x^i} min_{0<=j<=i} q(x^j) p(x_{j+1}^i | x^j)."""
    total = Fraction(0)
    for xs in itertools.product(range(vocab), repeat=i):
        best = None
        for j in range(i + 1):
            val = prefix_probability(q_model, xs[:j], context)
            for k in range(j, i):
                val *= p_model(tuple(context) + xs[:k])[xs[k]]
            best = val if best is None else min(best, val)
        total += best
    return total


def joint_coupling_tail(p_model: Model, q_model: Model, vocab: int, i: int, context: tuple = ()) -> Fraction:
    """The idealised joint bound sum_{x^i} min(p(x^i), q(x^i)) (not attainable; §1.3)."""
    return sum((min(prefix_probability(p_model, xs, context), prefix_probability(q_model, xs, context))
                for xs in itertools.product(range(vocab), repeat=i)), Fraction(0))


# ---------------------------------------------------------------- trees (reference/tree.py)


def tree_depths(parents: Sequence[int]) -> list:
    depth: list = []
    for par in parents:
        depth.append(1 if par < 0 else depth[par] + 1)
    return depth


def tree_paths(tokens: Sequence[int], parents: Sequence[int]) -> list:
    """Token path (root excluded) of every node: [N] tuples."""
    paths: list = []
    for t, par in zip(tokens, parents):
        paths.append((paths[par] if par >= 0 else ()) + (int(t),))
    return paths


def tree_rows(model: Model, tokens, parents, context: tuple = ()) -> np.ndarray:
    """Object array [N+1, V]: row 0 after the root prefix, row n+1 after node n's path."""
    paths = tree_paths(tokens, parents)
    return np.array([model(tuple(context))] + [model(tuple(context) + path) for path in paths],
                    dtype=object)


def mss_tree_round_law(verifier, p_model: Model, q_model: Model, vocab: int, parents: Sequence[int],
                       context: tuple = ()) -> RoundLaw:
    """Exact law of one round of ``verifier(p, q, tokens, parents, u) -> Verdict`` (SpecInfer
    MSS over a stochastic tree of fixed shape ``parents`` [N]). Every node's token is an
    independent draw from the draft row after its parent's path (children drawn with
    replacement), so token assignments are enumerated with probability
    prod_n q(token_n | context, path(parent_n)); the N+1 uniforms are integrated out and
    the output completed with target samples to depth+1 tokens."""
    n = len(parents)
    length = max(tree_depths(parents), default=0) + 1
    law = RoundLaw()
    for tokens in itertools.product(range(vocab), repeat=n):
        paths = tree_paths(tokens, parents)
        prob = Fraction(1)
        for i, par in enumerate(parents):
            prob *= q_model(tuple(context) + (paths[par] if par >= 0 else ()))[tokens[i]]
            if prob == 0:
                break
        if prob == 0:
            continue
        p = tree_rows(p_model, tokens, parents, context)
        q = tree_rows(q_model, tokens, parents, context)
        tok = np.array(tokens, dtype=np.int64)
        par = np.array(parents, dtype=np.int64)
        for leaf in enumerate_noise(lambda u: verifier(p, q, tok, par, u), n + 1):
            verdict = leaf.result
            law.add(prob * leaf.probability, verdict,
                    completion_law(p_model, vocab, verdict.tokens, length, context))
    return law


def deterministic_tree_round_law(verifier, p_model: Model, vocab: int, tokens: Sequence[int],
                                 parents: Sequence[int], context: tuple = ()) -> RoundLaw:
    """Exact law of one round of ``verifier(p, tokens, parents, u)`` (sample-and-match) on a
    FIXED candidate tree; u [D+1] is integrated out and the output completed with target
    samples to D+1 tokens."""
    depth = max(tree_depths(parents), default=0)
    p = tree_rows(p_model, tokens, parents, context)
    tok = np.array(tokens, dtype=np.int64)
    par = np.array(parents, dtype=np.int64)
    law = RoundLaw()
    for leaf in enumerate_noise(lambda u: verifier(p, tok, par, u), depth + 1):
        verdict = leaf.result
        law.add(leaf.probability, verdict,
                completion_law(p_model, vocab, verdict.tokens, depth + 1, context))
    return law


def trie_path_mass(p_model: Model, tokens, parents, context: tuple = ()) -> Fraction:
    """1 + sum over the DISTINCT drafted paths of p(path | context) (ALGORITHMS.md §1.4.3):
    the expected number of committed tokens of sample-and-match, from the model directly."""
    distinct = set(tree_paths(tokens, parents))
    return 1 + sum((prefix_probability(p_model, path, context) for path in distinct), Fraction(0))


def node_law(verifier, p_row, q_rows, k: int, vocab: int, **kwargs) -> Tuple[RoundLaw, int]:
    """Exact law of the FIRST emitted token of a one-node multi-draft verifier
    ``verifier(p, q, children, u, **kwargs)`` (MSS: q [k, V], children j ~ q[j]; K-SEQ:
    q [V], k i.i.d. candidates), candidates enumerated with their draft probabilities.
    Returns (law, leaves); ``law.tau[1]`` is the acceptance probability."""
    law = RoundLaw()
    q_arr = np.array(q_rows, dtype=object)
    per_child = q_arr if q_arr.ndim == 2 else np.array([q_rows] * k, dtype=object).reshape(k, vocab)
    p_arr = np.array(p_row, dtype=object)
    for cands in itertools.product(range(vocab), repeat=k):
        prob = Fraction(1)
        for j, c in enumerate(cands):
            prob *= per_child[j][c]
        if prob == 0:
            continue
        c_arr = np.array(cands, dtype=np.int64)
        for leaf in enumerate_noise(lambda u: verifier(p_arr, q_arr, c_arr, u, **kwargs), k + 1):
            verdict = leaf.result
            first = (int(verdict.tokens[0]),)
            law.add(prob * leaf.probability, verdict, {first: Fraction(1)})
    return law, law.leaves
