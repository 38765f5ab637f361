"""Result dataclasses and error types shared by the whole of specoracle.

Every public function of the oracle returns one of these frozen dataclasses, and
every bad input raises a subclass of :class:`InvalidInput` (itself a ``ValueError``)
that names the argument and, where there is one, the offending index
(DESIGN.md, principle 6).
"""
from __future__ import annotations

from dataclasses import dataclass, field


class SpecOracleError(Exception):
    """Base class of every error raised on purpose by specoracle."""


class InvalidInput(ValueError, SpecOracleError):
    """A bad argument: names the argument and, if known, the offending index.

    >>> raise InvalidInput("q", "row does not sum to 1", index=(2,))
    Traceback (most recent call last):
    ...
    specoracle.reference.types.InvalidInput: q[2]: row does not sum to 1
    """

    def __init__(self, argument: str, message: str, index=None):
        self.argument = argument
        self.index = index
        self.reason = message
        where = argument
        if index is not None:
            idx = index if isinstance(index, tuple) else (index,)
            where += "[" + ", ".join(str(int(i)) for i in idx) + "]"
        super().__init__(f"{where}: {message}")


class InvalidTest(SpecOracleError):
    """A statistical check that would be underpowered (or is otherwise ill-posed)."""


@dataclass(frozen=True)
class Verdict:
    """Outcome of one verification round (or one tree-node step) of one sequence.

    Attributes
    ----------
    n_accepted:
        tau, the number of accepted draft tokens (0..K). For tree verifiers, the
        depth of the accepted path; for the one-node steps (below) 0 or 1.
    tokens:
        The emitted tokens: the ``n_accepted`` accepted drafts, followed by one
        correction (residual) or bonus token when the round ends here.
    bonus:
        True when the last token was drawn from the target row after the last
        draft (every draft accepted), False when it came from a residual.
    fallbacks:
        Names of the numerical fallbacks that fired (empty in exact arithmetic):
        ``"residual_zero_mass"`` (a residual whose mass rounded to 0; the token is
        drawn from the target row instead) and ``"cdf_rounding"`` (``u * total``
        rounded up to the total; the last category with positive weight is taken).
    path:
        Tree verifiers only: the node indices of the accepted path (root excluded).

    Invariant on ``len(tokens)``, by verifier family (tested for every verifier of
    reference/ in tests/reference/test_discrete_properties.py):

    * whole rounds, ``verify_chain``, ``verify_block``, ``verify_greedy``,
      ``verify_mss_tree``, ``verify_tree_deterministic``:
      ``len(tokens) == n_accepted + 1`` always (the round ends with exactly one
      correction or bonus token).
    * one-node steps, ``verify_mss``, ``verify_kseq``: ``n_accepted`` is 0 or 1.
      A child accepted: ``n_accepted == 1``, ``tokens == (child,)``,
      ``len(tokens) == n_accepted``, ``bonus`` False: the round is not over, the
      caller continues into that child (its subtree, or the bonus after a leaf) and
      the final uniform is not consumed. None accepted (or no children):
      ``len(tokens) == n_accepted + 1 == 1``, the round ends with that token.
    """

    n_accepted: int
    tokens: tuple
    bonus: bool
    fallbacks: tuple = ()
    path: tuple = field(default=())

    @property
    def n_emitted(self) -> int:
        """Committed tokens, bonus/correction included: tau + 1 for a whole round, 1 for a
        one-node step (see the class docstring)."""
        return len(self.tokens)
