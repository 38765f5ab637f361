"""Test helper (not a test module): the exact law of a verifier's output, by
integrating over its uniforms with Fractions.

Every verifier of the discrete oracle uses its noise only as ``u * x < y`` (or
``u < y``), so its output is a step function of u on a product of intervals. We run
the verifier on *interval-valued* uniforms: a comparison whose threshold falls
strictly inside the current interval of a coordinate raises :class:`_Split`, and the
driver re-runs the verifier on the two halves. Every leaf box gives a deterministic
output, weighted by its volume. Boundaries are null sets, so strict/non-strict
comparisons do not matter. (The proofs helper builds the general engine; this small
one serves the issue-2 unit and property tests.)
"""
from __future__ import annotations

from collections import defaultdict
from fractions import Fraction
from itertools import product

import numpy as np


class _Split(Exception):
    def __init__(self, coord, t):
        super().__init__(coord, t)
        self.coord = coord
        self.t = t


class IntervalUniform:
    """``scale * U_coord`` with U_coord uniform on the box's interval for ``coord``."""

    __slots__ = ("box", "coord", "scale")

    def __init__(self, box, coord, scale=Fraction(1)):
        self.box = box
        self.coord = coord
        self.scale = scale

    def __mul__(self, x):
        return IntervalUniform(self.box, self.coord, self.scale * Fraction(x))

    __rmul__ = __mul__

    def _below(self, y) -> bool:
        """Is scale * u < y (a.e. on the interval)? Splits if undecided."""
        y = Fraction(y)
        if self.scale == 0:
            return 0 < y
        if self.scale < 0:
            raise TypeError("negative scale not supported")
        t = y / self.scale
        lo, hi = self.box[self.coord]
        if t <= lo:
            return False
        if t >= hi:
            return True
        raise _Split(self.coord, t)

    def __lt__(self, y):
        return self._below(y)

    def __le__(self, y):
        return self._below(y)

    def __gt__(self, y):
        return not self._below(y)

    def __ge__(self, y):
        return not self._below(y)

    def __float__(self):  # the oracle must never do this
        raise TypeError("float() called on noise")


def exact_law(fn, n_uniforms: int, key=lambda out: out) -> dict:
    """Law of ``key(fn(u))`` for u ~ U[0,1)^n_uniforms, as {outcome: Fraction}."""
    law: dict = defaultdict(Fraction)
    stack = [[(Fraction(0), Fraction(1))] * n_uniforms]
    while stack:
        box = stack.pop()
        u = np.empty(n_uniforms, dtype=object)
        for i in range(n_uniforms):
            u[i] = IntervalUniform(box, i)
        try:
            out = fn(u)
        except _Split as s:
            lo, hi = box[s.coord]
            left, right = list(box), list(box)
            left[s.coord] = (lo, s.t)
            right[s.coord] = (s.t, hi)
            stack.extend([left, right])
            continue
        vol = Fraction(1)
        for lo, hi in box:
            vol *= hi - lo
        law[key(out)] += vol
    return dict(law)


def frac_array(values) -> np.ndarray:
    """Object array of Fractions (nested lists allowed)."""
    arr = np.array(values, dtype=object)
    out = np.empty(arr.shape, dtype=object)
    for idx in np.ndindex(arr.shape):
        out[idx] = Fraction(arr[idx])
    return out


def normalise_weights(weights) -> np.ndarray:
    """Integer weights [..., V] -> exact probability rows (Fractions)."""
    w = np.array(weights, dtype=object)
    out = np.empty(w.shape, dtype=object)
    for idx in np.ndindex(w.shape[:-1]):
        s = sum(int(x) for x in w[idx])
        for j in range(w.shape[-1]):
            out[idx + (j,)] = Fraction(int(w[idx + (j,)]), s)
    return out


def all_sequences(vocab: int, length: int):
    return product(range(vocab), repeat=length)
