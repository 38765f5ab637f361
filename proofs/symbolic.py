"""Symbolic proofs (sympy) with symbolic target p and draft q on small vocabularies.

ALGORITHMS.md §1.1-§1.3, §7 T1-T3. The exact engine (proofs/exact.py) proves the
reference CODE on many rational cases; the proofs here prove the ALGORITHMS for all
p and q at once (V = 2 and 3, K = 1 and 2), so together they cover "the code is the
algorithm" and "the algorithm is right".

Piecewise functions (min, max, (.)_+, |.|, the fallback guards) are not assumed
away: they are evaluated on :class:`Sym` values (elements of the rational function
field QQ(symbols)) whose comparisons split the parameter space into cases, exactly
as the exact engine splits the noise space. Comparing two expressions asks for the
sign of their difference; its numerator and denominator are factored, and the sign
of each irreducible factor is
  * read from the conditions already assumed in this case (conditions are kept per
    irreducible factor and propagated), or obvious (all coefficients of one sign,
    every symbol being positive);
  * otherwise the case FORKS three ways: factor > 0, factor < 0, factor = 0. The
    tie branch solves the factor for a variable it is linear in and substitutes it,
    so boundary cases (p(x) = q(x), p_tau p(x) = q(x), ...) are proved too.
Forks are enumerated depth-first with replay (re-running the computation with the
earlier decisions prescribed). In every leaf (a conjunction of strict sign
conditions and substitutions) the claimed identity must be exactly 0 in the field;
a leaf where it is not is accepted only if its conditions are provably
contradictory: two opposite conditions, a condition that became a constant of the
wrong sign, or a Positivstellensatz certificate up to degree 3 (non-negative
rational multipliers making a positive combination of the conditions, of their
pairwise and linear-times-quadratic products, plus multiples of the equalities,
identically <= 0), found by a float LP and CHECKED in exact arithmetic.
Otherwise the proof fails and names the leaf. A tie on a factor linear in no symbol
(no rational substitution) is accepted only if a certificate shows it empty.

Symbols: p1..p{V-1}, q1..q{V-1} (and s for a prefix survival) are positive; the
last entries are 1 - sum of the others, with p_V > 0, q_V > 0 as initial
conditions. Probabilities strictly inside (0, 1) are the symbolic cases; zero
entries are covered by the exact engine.

The reference's primitives are used on symbolic values where they accept them
(``categorical.residual_weights``, ``categorical.block_quantities``); the accept
probabilities of each algorithm are written here from ALGORITHMS.md (§1.2
Algorithm 1, §1.3 Algorithm 2), because those formulas are what is being proved.
"""
from __future__ import annotations

import itertools
from fractions import Fraction
from typing import Callable, Sequence

import numpy as np
import sympy as sp
from sympy import QQ
from sympy.polys.fields import field as sp_field

from ..reference import categorical
from .theorems import ProofFailure

LEVIATHAN = "arXiv 2211.17192 (Leviathan et al.); arXiv 2302.01318 (Chen et al.)"
BLOCK = "arXiv 2403.10444 (Sun et al., block verification)"


class _Infeasible(Exception):
    """The current case's conditions contradict each other (pruned)."""


def _subst(poly, idx: int, a, b):
    """Homogenised substitution x_idx = a / b in a polynomial: returns (N, d) with
    poly(x_idx = a/b) = N / b**d (a, b polynomials of the same ring)."""
    ring = poly.ring
    d = poly.degree(idx)
    if d <= 0:
        return poly, 0
    out = ring.zero
    for monom, coeff in poly.terms():
        k = monom[idx]
        rest = monom[:idx] + (0,) + monom[idx + 1:]
        out += ring({rest: coeff}) * a ** k * b ** (d - k)
    return out, d


_FACTOR_CACHE: dict = {}


def _factor_list(poly):
    """poly.factor_list(), memoised (the replays factor the same polynomials again)."""
    key = (poly.ring, poly)
    out = _FACTOR_CACHE.get(key)
    if out is None:
        if len(_FACTOR_CACHE) > 200000:
            _FACTOR_CACHE.clear()
        out = _FACTOR_CACHE[key] = poly.factor_list()
    return out


def _farkas_empty(polys, equalities=()) -> bool:
    """Exact check that {g > 0 for g in polys, h = 0 for h in equalities} is empty:
    find lambda >= 0 with sum lambda = 1 and free mu such that
    sum lambda_i g_i + sum mu_j h_j is identically a constant <= 0 (see
    ``_Case.contradictory``)."""
    from scipy.optimize import linprog

    polys, equalities = list(polys), list(equalities)
    if not polys:
        return False
    cols = polys + equalities
    monoms = sorted({m for g in cols for m in g.monoms() if sum(m) > 0})
    index = {m: i for i, m in enumerate(monoms)}
    n = len(cols)
    a_eq = np.zeros((len(monoms) + 1, n))
    const = np.zeros(n)
    for j, g in enumerate(cols):
        for m, c in g.terms():
            if sum(m) == 0:
                const[j] = float(c)
            else:
                a_eq[index[m], j] = float(c)
    a_eq[-1, :len(polys)] = 1.0
    b_eq = np.zeros(len(monoms) + 1)
    b_eq[-1] = 1.0
    bounds = [(0, None)] * len(polys) + [(None, None)] * len(equalities)
    res = linprog(const, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    if res.status != 0 or res.fun > 1e-9:
        return False
    support = [j for j in range(n) if abs(res.x[j]) > 1e-12]
    # exact re-solve on the support, then an exact check of the identity
    rows = [[g_coeff(cols[j], m) for j in support] for m in monoms]
    rows.append([sp.Integer(1) if j < len(polys) else sp.Integer(0) for j in support])
    rhs = [sp.Integer(0)] * len(monoms) + [sp.Integer(1)]
    try:
        sol, params = sp.Matrix(rows).gauss_jordan_solve(sp.Matrix(rhs))
    except ValueError:
        return False
    sol = sol.subs({t: 0 for t in params})
    lam = [sol[i] for i in range(len(support))]
    if any(x < 0 for x, j in zip(lam, support) if j < len(polys)):
        return False
    total = polys[0].ring.zero
    for x, j in zip(lam, support):
        total += cols[j] * QQ(int(x.p), int(x.q))
    return total.is_ground and (total.LC if total else 0) <= 0


def g_coeff(poly, monom):
    """The rational coefficient of ``monom`` in ``poly`` (a sympy Rational)."""
    c = dict(poly).get(monom, 0)
    return sp.Rational(int(c.numerator), int(c.denominator)) if c else sp.Integer(0)


def _obvious_sign(poly):
    """+1 / -1 if every coefficient has that sign (all symbols are positive), else None."""
    coeffs = poly.coeffs()
    if all(c > 0 for c in coeffs):
        return 1
    if all(c < 0 for c in coeffs):
        return -1
    return None


class _Case:
    """One run under a partial list of prescribed fork decisions (depth-first replay).

    Values are elements of the rational function field QQ(symbols) (sympy's sparse
    ``FracElement``: canonical, so a zero test is exact and cheap). ``subs`` is the
    ordered list of tie substitutions x = a/b; ``facts`` maps monic irreducible
    polynomials to their assumed sign.
    """

    def __init__(self, field_, facts: list, choices: Sequence[int]):
        self.field = field_
        self.ring = field_.ring
        self.subs: list = []                # (index, a, b)
        self.base_facts = list(facts)       # (field element, sign +1/-1)
        self.equalities: list = []          # polynomials assumed = 0 (non-linear ties)
        self.facts: dict = {}
        self.choices = list(choices)
        self.taken: list = []
        self.forks = 0
        self._rebuild()

    # -- substitutions
    def apply(self, f):
        """The field element f under the tie substitutions."""
        f = self.field.convert(f) if not hasattr(f, "numer") else f
        num, den = f.numer, f.denom
        for idx, a, b in self.subs:
            n1, d1 = _subst(num, idx, a, b)
            n2, d2 = _subst(den, idx, a, b)
            # num/den = (n1 / b^d1) / (n2 / b^d2)
            if d1 >= d2:
                num, den = n1, n2 * b ** (d1 - d2)
            else:
                num, den = n1 * b ** (d2 - d1), n2
        return self.field.new(num, den) if self.subs else f

    # -- facts
    def _canonical(self, poly):
        """(key, sign multiplier) of a polynomial, or (None, sign) if it is a constant."""
        if poly.is_ground:
            c = poly.LC if poly else 0
            return None, (c > 0) - (c < 0)
        lc = poly.LC
        return poly.monic(), (1 if lc > 0 else -1)

    def _known_sign(self, factor):
        key, mult = self._canonical(factor)
        if key is None:
            return mult
        if key in self.facts:
            return self.facts[key] * mult
        obvious = _obvious_sign(key)
        return None if obvious is None else obvious * mult

    def _add_fact(self, key, sign):
        if key is None:
            if sign != 1:
                raise _Infeasible()
            return
        if key in self.facts and self.facts[key] != sign:
            raise _Infeasible()
        self.facts[key] = sign

    def _learn(self, poly, sign) -> bool:
        """Record sign(poly) = sign; True once it is reduced to single-factor facts."""
        if poly.is_ground:
            c = poly.LC if poly else 0
            if ((c > 0) - (c < 0)) != sign:
                raise _Infeasible()
            return True
        coeff, factors = _factor_list(poly)
        rest = 1 if coeff > 0 else -1
        unknown = []
        for f, m in factors:
            s = self._known_sign(f)
            if s is None:
                unknown.append((f, m))
            elif s == 0:
                raise _Infeasible()  # a strict condition with a vanishing factor
            else:
                rest *= s ** m
        if not unknown:
            if rest != sign:
                raise _Infeasible()
            return True
        if len(unknown) == 1 and unknown[0][1] % 2 == 1:
            key, mult = self._canonical(unknown[0][0])
            self._add_fact(key, sign * rest * mult)
            return True
        return False

    def _rebuild(self):
        """Re-derive the facts under the current substitutions, factor by factor.

        A condition sign(f) = s is stored per irreducible factor of f once the signs of
        all its other factors are known (from other facts or because every coefficient
        has one sign); a factor that became a constant of the wrong sign, or two
        opposite facts, make the case contradictory (pruned)."""
        self.facts = {}
        pending = []
        for f, sign in self.base_facts:
            g = self.apply(f)
            pending.append((g.numer * g.denom, sign))  # sign(n/d) == sign(n d)
        for _ in range(6):  # propagate until nothing new is learnt
            left = [(poly, sign) for poly, sign in pending if not self._learn(poly, sign)]
            if len(left) == len(pending):
                break
            pending = left
        for poly, sign in pending:  # compound conditions: keep whole
            key, mult = self._canonical(poly)
            self._add_fact(key, sign * mult)

    def _fork(self, n: int) -> int:
        k = len(self.taken)
        side = self.choices[k] if k < len(self.choices) else 0
        self.taken.append((side, n))
        self.forks += 1
        return side

    def _factor_sign(self, factor) -> int:
        known = self._known_sign(factor)
        if known is not None:
            return known
        key, mult = self._canonical(factor)
        side = self._fork(3)
        if side in (0, 1):
            sign = 1 if side == 0 else -1
            self.base_facts.append((self.field.new(key), sign))
            self._rebuild()  # may learn more (or find the case contradictory)
            return sign * mult
        self._tie(key)
        return 0

    def _tie(self, key):
        """Assume key == 0: solve it for a variable it is linear in (the last such
        symbol), substitute, and keep that variable's positivity as a condition."""
        for idx in reversed(range(self.ring.ngens)):
            if key.degree(idx) != 1:
                continue
            x = self.ring.gens[idx]
            a1 = key.coeff_wrt(x, 1)
            a0 = key.coeff_wrt(x, 0)
            # x = -a0 / a1; the variable was positive: sign(-a0 * a1) > 0
            self.subs.append((idx, -a0, a1))
            self.base_facts.append((self.field.new(-a0 * a1), 1))
            self._rebuild()
            return
        # Not linear in any symbol: this tie case is accepted only if it is provably
        # empty (a certificate with the equality); otherwise the proof cannot decide it.
        self.equalities.append(key)
        if self.contradictory():
            raise _Infeasible()
        raise ProofFailure(f"cannot decide the case {self.describe()} with {key.as_expr()} = 0 "
                           "(a tie that is not linear in any symbol)")

    def sign(self, f) -> int:
        g = self.apply(f)
        total = 1
        for part in (g.numer, g.denom):
            if part.is_ground:
                c = part.LC if part else 0
                if c == 0:
                    return 0
                total *= 1 if c > 0 else -1
                continue
            coeff, factors = _factor_list(part)
            total *= 1 if coeff > 0 else -1
            for fac, m in factors:
                s = self._factor_sign(fac)
                if s == 0:
                    return 0
                total *= s ** m
        return total

    # -- leaf checks
    def contradictory(self) -> bool:
        """True if the case's strict conditions provably have no common solution.

        Certificate (Farkas / Positivstellensatz up to degree 3): non-negative
        rationals lambda_i, not all 0, with sum_i lambda_i g_i identically equal to a
        constant <= 0, where every g_i is > 0 in the case: the free symbols and the
        conditions oriented to be positive (level 1), the products of every pair of
        positive linear ones (level 2, Sherali-Adams), and the products of a linear one
        with a quadratic one (level 3). At any point of the case the sum would be > 0, so
        the case is empty. The multipliers are found by a float LP (scipy HiGHS) and
        then re-solved and CHECKED in exact rational arithmetic: the float LP only
        suggests, the exact identity proves."""
        free = [i for i in range(self.ring.ngens) if i not in {idx for idx, _a, _b in self.subs}]
        atoms = [self.ring.gens[i] for i in free]
        by_degree: dict = {}
        for key, sign in self.facts.items():
            deg = max(sum(m) for m in key.monoms())
            if deg <= 1:
                atoms.append(key * sign)
            else:
                by_degree.setdefault(deg, []).append(key * sign)
        eqs = list(self.equalities)
        if _farkas_empty(atoms, eqs):
            return True
        pairs = [a * b for i, a in enumerate(atoms) for b in atoms[i:]]
        quadratic = by_degree.get(2, [])
        eqs1 = eqs + [h * a for h in self.equalities for a in atoms]
        if _farkas_empty(atoms + pairs + quadratic, eqs1):
            return True
        # level 3: atoms times (pairs and quadratic conditions), and cubic conditions
        triples = [a * b for a in atoms for b in pairs + quadratic]
        eqs2 = eqs1 + [h * a for h in self.equalities for a in pairs]
        return _farkas_empty(atoms + pairs + quadratic + triples + by_degree.get(3, []), eqs2)

    def division_by_zero(self):
        """A division by an expression that is 0 in this case: fine (pruned) only if the
        case is provably empty; otherwise the computation being proved divides by 0."""
        if self.contradictory():
            raise _Infeasible()
        raise ProofFailure(f"division by zero in case {self.describe()}")

    def describe(self) -> str:
        facts = ", ".join(f"{k.as_expr()} {'>' if s > 0 else '<'} 0" for k, s in self.facts.items())
        subs = ", ".join(f"{self.ring.gens[i].as_expr()} = {sp.cancel(a.as_expr() / b.as_expr())}"
                         for i, a, b in self.subs)
        return f"[{facts}] with [{subs}]"


class Sym:
    """A rational function of the symbols whose comparisons are decided (or forked)
    by the current case. Supports + - * / with Sym, int and Fraction, comparisons,
    abs(), and min/max/np.maximum through comparisons."""

    __slots__ = ("e", "case")

    def __init__(self, e, case: _Case):
        self.e = e
        self.case = case

    def _v(self, other):
        if isinstance(other, Sym):
            return other.e
        if isinstance(other, (bool, np.bool_)):
            return NotImplemented
        if isinstance(other, (int, np.integer)):
            return self.case.field(int(other))
        if isinstance(other, Fraction):
            return self.case.field(QQ(other.numerator, other.denominator))
        return NotImplemented

    def _wrap(self, e):
        return Sym(e, self.case)

    def __add__(self, o):
        v = self._v(o)
        return NotImplemented if v is NotImplemented else self._wrap(self.e + v)

    __radd__ = __add__

    def __sub__(self, o):
        v = self._v(o)
        return NotImplemented if v is NotImplemented else self._wrap(self.e - v)

    def __rsub__(self, o):
        v = self._v(o)
        return NotImplemented if v is NotImplemented else self._wrap(v - self.e)

    def __mul__(self, o):
        v = self._v(o)
        return NotImplemented if v is NotImplemented else self._wrap(self.e * v)

    __rmul__ = __mul__

    def __truediv__(self, o):
        v = self._v(o)
        if v is NotImplemented:
            return NotImplemented
        if self.case.sign(v) == 0:
            self.case.division_by_zero()
        return self._wrap(self.e / v)

    def __rtruediv__(self, o):
        v = self._v(o)
        if v is NotImplemented:
            return NotImplemented
        if self.case.sign(self.e) == 0:
            self.case.division_by_zero()
        return self._wrap(v / self.e)

    def __pow__(self, n):
        return self._wrap(self.e ** n)

    def __neg__(self):
        return self._wrap(-self.e)

    def __abs__(self):
        return self if self.case.sign(self.e) >= 0 else -self

    def _cmp(self, o) -> int:
        v = self._v(o)
        if v is NotImplemented:
            raise TypeError(f"cannot compare Sym with {type(o).__name__}")
        return self.case.sign(self.e - v)

    def __lt__(self, o):
        return self._cmp(o) < 0

    def __le__(self, o):
        return self._cmp(o) <= 0

    def __gt__(self, o):
        return self._cmp(o) > 0

    def __ge__(self, o):
        return self._cmp(o) >= 0

    def __eq__(self, o):
        return self._cmp(o) == 0

    def __ne__(self, o):
        return self._cmp(o) != 0

    __hash__ = object.__hash__

    def __bool__(self):
        return self.case.sign(self.e) != 0

    def __repr__(self):
        return f"Sym({self.e.as_expr()})"


# ---------------------------------------------------------------- the case engine


def _is_zero(case: _Case, r) -> bool:
    if isinstance(r, Sym):
        return case.apply(r.e) == 0
    return r == 0


def prove_cases(build: Callable[[_Case], Sequence], names: Sequence[str], facts=None,
                max_leaves: int = 20000):
    """Prove ``build(case) == 0`` (every entry) in every case of the sign split.

    ``names`` are the positive symbols; the field QQ(names) is built once and its
    generators are ``case.gens`` (by name: ``case.var[name]``). ``facts(case)`` returns
    the initial conditions [(Sym, +1 / -1)]. ``build`` returns the Sym values that must
    vanish. Returns ``(proved, contradictory)`` leaf counts; raises
    :class:`ProofFailure` on a consistent leaf where an entry does not vanish.
    """
    field_, *_gens = sp_field(",".join(names), QQ)
    choices: list = []
    proved = contradictory = 0
    while True:
        case = _Case(field_, [], choices)
        case.var = {n: Sym(field_.gens[i], case) for i, n in enumerate(names)}
        infeasible = False
        try:
            for sym, sign in (facts(case) if facts else []):
                case.base_facts.append((sym.e, sign))
            case._rebuild()
            residuals = build(case)
        except _Infeasible:
            infeasible = True
        if infeasible:
            contradictory += 1
        else:
            bad = [r for r in residuals if not _is_zero(case, r)]
            if not bad:
                proved += 1
            elif case.contradictory():
                contradictory += 1
            else:
                raise ProofFailure(f"identity fails in case {case.describe()}: residual "
                                   f"{case.apply(bad[0].e).as_expr()}")
        if proved + contradictory > max_leaves:
            raise ProofFailure(f"more than {max_leaves} cases")
        taken = case.taken
        j = len(taken) - 1
        while j >= 0 and taken[j][0] == taken[j][1] - 1:
            j -= 1
        if j < 0:
            return proved, contradictory
        choices = [side for side, _ in taken[:j]] + [taken[j][0] + 1]


def simplex_names(name: str, v: int) -> list:
    """Names of the free entries name1..name{V-1} of a row (the last is 1 - their sum)."""
    return [f"{name}{i}" for i in range(1, v)]


def simplex_row(case: _Case, name: str, v: int):
    """Object array [V] of Sym: (name1, ..., name{V-1}, 1 - sum)."""
    free = [case.var[n] for n in simplex_names(name, v)]
    last = 1 - sum(free, Sym(case.field(0), case))
    return np.array(free + [last], dtype=object)


def _rows(case: _Case, v: int):
    return simplex_row(case, "p", v), simplex_row(case, "q", v)


def _row_facts(*names_v):
    """Initial conditions: the eliminated last entries are positive."""
    def facts(case):
        return [(simplex_row(case, name, v)[-1], 1) for name, v in names_v]
    return facts


# ---------------------------------------------------------------- token verification


def _normalised_residual(p, q, scale=1):
    """normalise((scale p - q)_+) via the reference's residual_weights, with the
    reference's fallback (the target row) when its mass is 0."""
    w = categorical.residual_weights(p, q, scale)
    total = w.sum()
    if not total > 0:
        return p
    return np.array([x / total for x in w], dtype=object)


def token_round_law(p, q, k: int):
    """Law of token verification's output completed to K+1 tokens, context-free rows
    p, q [V] (Sym): ALGORITHMS.md §1.2 Algorithm 1. A draft x ~ q is accepted with
    probability min(1, p(x)/q(x)), so P(draft x, accepted) = q(x) min(1, p(x)/q(x))
    and P(draft x, rejected) = q(x) - P(draft x, accepted); at the first rejection the
    token is drawn from the normalised residual (reference residual_weights), then
    the output is completed with target samples."""
    v = len(p)
    law: dict = {}
    res = _normalised_residual(p, q)
    accepted = [q[x] * min(1, p[x] / q[x]) for x in range(v)]
    rejected = [q[x] - accepted[x] for x in range(v)]
    tails = {(): 1}
    for m in range(1, k + 1):
        for rest in itertools.product(range(v), repeat=m):
            tails[rest] = tails[rest[:-1]] * p[rest[-1]]
    # prefix: accepted drafts so far, with probability prob
    frontier = {(): 1}
    for i in range(k):
        nxt = {}
        for prefix, prob in frontier.items():
            rej = sum((rejected[x] for x in range(v)), 0) * prob
            for y in range(v):
                emit = rej * res[y]
                for rest in itertools.product(range(v), repeat=k - i):
                    seq = prefix + (y,) + rest
                    law[seq] = law.get(seq, 0) + emit * tails[rest]
            for x in range(v):
                nxt[prefix + (x,)] = prob * accepted[x]
        frontier = nxt
    for prefix, prob in frontier.items():
        for y in range(v):
            seq = prefix + (y,)
            law[seq] = law.get(seq, 0) + prob * p[y]
    return law


def _product_law(p, length):
    v = len(p)
    out = {}
    for seq in itertools.product(range(v), repeat=length):
        prob = 1
        for t in seq:
            prob = prob * p[t]
        out[seq] = prob
    return out


def _names(v: int, *rows: str) -> list:
    return [n for r in rows for n in simplex_names(r, v)]


def _prove_product_law(round_law, sizes) -> int:
    """Prove, in every sign case of symbolic context-free rows p, q (V tokens), that
    ``round_law(p, q, K)`` (the verifier's output law completed to K+1 tokens) equals
    p^{(x)(K+1)}, for each (V, K) of ``sizes``; returns the number of sign cases."""
    cases = 0
    for v, k in sizes:
        def build(case, v=v, k=k):
            p, q = _rows(case, v)
            law = round_law(p, q, k)
            want = _product_law(p, k + 1)
            return [law[s] - want[s] for s in want]

        proved, contra = prove_cases(build, _names(v, "p", "q"), _row_facts(("p", v), ("q", v)))
        cases += proved + contra
    return cases


def check_token_lossless_symbolic(quick: bool = True):
    """V = 2, 3 and K = 1, 2 (context-free symbolic rows): the law of token verification's
    output, completed to K+1 tokens, is p^{(x)(K+1)} in every sign case."""
    cases = _prove_product_law(token_round_law, [(2, 1), (3, 1), (2, 2), (3, 2)])
    return cases, "output law == p^(K+1) in every sign case of p - q (V=2,3; K=1,2), ties included"


def check_token_acceptance_symbolic(quick: bool = True):
    """V = 2, 3: P(accept) = sum_x q(x) min(1, p(x)/q(x)) = sum_x min(p, q) = 1 - TV with
    TV = (1/2) sum |p - q| = sum (p - q)_+ (the reference's residual mass)."""
    cases = 0
    for v in (2, 3):
        def build(case, v=v):
            p, q = _rows(case, v)
            accept = sum((q[x] * min(1, p[x] / q[x]) for x in range(v)), 0)
            overlap = sum((min(p[x], q[x]) for x in range(v)), 0)
            tv_abs = sum((abs(p[x] - q[x]) for x in range(v)), 0) * Fraction(1, 2)
            tv_res = categorical.residual_weights(p, q).sum()
            return [accept - overlap, accept - (1 - tv_abs), accept - (1 - tv_res)]

        proved, contra = prove_cases(build, _names(v, "p", "q"), _row_facts(("p", v), ("q", v)))
        cases += proved + contra
    return cases, "sum q min(1, p/q) == sum min(p,q) == 1 - TV in every sign case (V=2,3)"


# ---------------------------------------------------------------- block verification


def check_block_identity_symbolic(quick: bool = True):
    """ALGORITHMS.md §1.3: with prefix survival s in (0, 1], rows p, q [V] at position
    i+1, p_{i+1}(x) = min(s p(x)/q(x), 1) and R_i = sum_x (s p(x) - q(x))_+ (the
    reference's residual_weights): E_{x~q}[p_{i+1}] = s - R_i, and with
    h_i = R_i/(R_i + 1 - s): E[p_{i+1} + (1 - p_{i+1}) h_i] = s (where R_i + 1 - s > 0).
    Then the same identity through the reference's block_quantities on a 2-token block
    (s = p_1 computed by the reference), V = 2."""
    cases = 0
    for v in (2, 3):
        for s_is_one in (False, True):
            def build(case, v=v, s_is_one=s_is_one):
                p, q = _rows(case, v)
                surv = Sym(case.field(1), case) if s_is_one else case.var["s"]
                nxt = [min(surv * p[x] / q[x], 1) for x in range(v)]
                mass = categorical.residual_weights(p, q, surv).sum()
                expect = sum((q[x] * nxt[x] for x in range(v)), 0)
                out = [expect - (surv - mass)]
                denom = mass + 1 - surv
                if denom > 0:
                    h = mass / denom
                    out.append(sum((q[x] * (nxt[x] + (1 - nxt[x]) * h) for x in range(v)), 0) - surv)
                return out

            names = _names(v, "p", "q") + ([] if s_is_one else ["s"])
            base = _row_facts(("p", v), ("q", v))

            def facts(case, base=base, s_is_one=s_is_one):
                return base(case) + ([] if s_is_one else [(1 - case.var["s"], 1)])

            proved, contra = prove_cases(build, names, facts)
            cases += proved + contra
    v = 2

    def build2(case):
        a, b = simplex_row(case, "a", v), simplex_row(case, "b", v)
        p, q = _rows(case, v)
        P = np.array([a, p, p], dtype=object)
        Q = np.array([b, q], dtype=object)
        out = []
        for x1 in range(v):
            expect = 0
            for x in range(v):
                surv, mass = categorical.block_quantities(P, Q, np.array([x1, x]))
                expect = expect + Q[1, x] * surv[2]
            out.append(expect - (surv[1] - mass[1]))
        return out

    proved, contra = prove_cases(build2, _names(v, "a", "b", "p", "q"),
                                 _row_facts(("a", v), ("b", v), ("p", v), ("q", v)))
    cases += proved + contra
    return cases, "E[p_{i+1} | X^i] == p_i - R_i and E[p_{i+1} + (1-p_{i+1}) h_i] == p_i in every case"


def block_round_law(p, q, k: int):
    """Law of block verification's output completed to K+1 tokens, context-free rows
    p, q [V] (Sym), ALGORITHMS.md §1.3 Algorithm 2: the reference's block_quantities
    give p_i and R_i; index i < K passes with probability h_i = R_i/(R_i + 1 - p_i)
    (0 when the denominator is 0, the division-free convention of §0.3), index K with
    p_K; tau is the largest passing index; the scaled residual uses the reference's
    residual_weights with scale p_tau."""
    v = len(p)
    P = np.array([p] * (k + 1), dtype=object)
    Q = np.array([q] * k, dtype=object).reshape(k, v)
    law: dict = {}
    for draft in itertools.product(range(v), repeat=k):
        prob = 1
        for x in draft:
            prob = prob * q[x]
        surv, mass = categorical.block_quantities(P, Q, np.array(draft, dtype=np.int64))
        h = []
        for i in range(1, k):
            denom = mass[i] + 1 - surv[i]
            h.append(mass[i] / denom if denom > 0 else 0)
        h.append(surv[k] if k else 1)
        # P(tau = i) = h_i prod_{j > i} (1 - h_j), with h_0 = 1
        for tau in range(k + 1):
            pt = h[tau - 1] if tau > 0 else 1
            for j in range(tau + 1, k + 1):
                pt = pt * (1 - h[j - 1])
            if tau == k:
                ys = {y: p[y] for y in range(v)}
            else:
                res = _normalised_residual(p, q, surv[tau])
                ys = {y: res[y] for y in range(v)}
            for y, py in ys.items():
                for rest in itertools.product(range(v), repeat=k - tau):
                    tail = 1
                    for t in rest:
                        tail = tail * p[t]
                    seq = draft[:tau] + (y,) + rest
                    law[seq] = law.get(seq, 0) + prob * pt * py * tail
    return law


def check_block_lossless_symbolic(quick: bool = True, sizes=None):
    """Block verification's output law, completed to K+1 tokens, is p^{(x)(K+1)} for
    symbolic context-free rows: V = 2, 3 with K = 1, and V = 2 with K = 2. ``sizes``
    [(V, K)] overrides; V = 3, K = 2 (611 sign cases, ~3 CPU minutes) runs in the
    slow test suite: tests/proofs/test_proofs_symbolic.py."""
    sizes = sizes or [(2, 1), (3, 1), (2, 2)]
    cases = _prove_product_law(block_round_law, sizes)
    return cases, "block output law == p^(K+1) in every sign case, (V, K) in " + \
        ", ".join(f"({v},{k})" for v, k in sizes)


THEOREMS = [
    ("token.lossless.symbolic",
     "For all p, q (symbolic, V = 2, 3; K = 1, 2; context-free), token verification's output law, "
     "completed to K+1 tokens, is p^(K+1), in every sign case of the piecewise terms.",
     LEVIATHAN, check_token_lossless_symbolic),
    ("token.acceptance_equals_overlap.symbolic",
     "For all p, q (V = 2, 3): P(accept) = sum q min(1, p/q) = sum min(p, q) = 1 - TV(p, q).",
     LEVIATHAN, check_token_acceptance_symbolic),
    ("block.residual_identity.symbolic",
     "For all p, q and prefix survival s in (0, 1] (V = 2, 3): E[p_{i+1} | X^i] = p_i - R_i and "
     "E[p_{i+1} + (1 - p_{i+1}) h_i | X^i] = p_i.",
     BLOCK, check_block_identity_symbolic),
    ("block.lossless.symbolic",
     "For all p, q (symbolic, context-free; V = 2, 3 with K = 1, V = 2 with K = 2): block "
     "verification's output law is p^(K+1).",
     BLOCK, check_block_lossless_symbolic),
]
