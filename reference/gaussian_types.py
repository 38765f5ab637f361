"""Result dataclasses of the continuous (Gaussian) oracle.

Kept apart from reference/types.py (the discrete ``Verdict``) because a Gaussian
verifier emits real vectors, not token ids. The fast-path twins return the same
classes row by row (or batched arrays with the same field names).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GaussianStep:
    """One speculative step for N(m_p, s^2 I) (target) against N(m_q, s^2 I) (draft).

    Attributes
    ----------
    x:          [d] the output state Y (exactly N(m_p, s^2 I)).
    accepted:   True iff Y is the draft (Y == draft).
    draft:      [d] the draft X~ = m_q + s z.
    log_ratio:  l = log p(X~) - log q(X~) = -z.D - |D|^2/2, D = (m_q - m_p)/s.
    fallbacks:  names of numerical fallbacks that fired (empty in exact arithmetic):
                ``"residual_zero_mass"`` (a residual of mass 0 was requested: Y is
                drawn from the target instead, see ``residual_gauss``).
    """

    x: np.ndarray
    accepted: bool
    draft: np.ndarray
    log_ratio: float
    fallbacks: tuple = ()


@dataclass(frozen=True)
class GaussianBlockVerdict:
    """One verification round over a window of L Gaussian steps (token or block).

    Attributes
    ----------
    n_accepted:    tau in 0..L, the number of accepted draft states.
    states:        [n_emitted, d]: the tau accepted drafts X~_1..X~_tau, then the
                   correction (tau < L: residual or reflected draw), or the bonus draw
                   (tau = L with a bonus row), or nothing (tau = L without bonus).
    bonus:         True iff the last state is a bonus draw from the target kernel.
    corrected:     True iff tau < L (the last state is a residual / reflection draw).
    log_ratio:     [L] log r_i = log p_i(X~_i)/q_i(X~_i) for every drafted step.
    log_survival:  [L+1] log p_0..log p_L of block verification (p_0 = 1);
                   for token verification the running sum of min(log r_i, 0).
    residual_mass: [L] R_0..R_{L-1}: R_i = R(p_i, delta_{i+1}) (block) or
                   R(1, delta_{i+1}) = TV (token), the mass of the residual a
                   rejection after i accepted steps would draw from.
    fallbacks:     names of numerical fallbacks that fired (see GaussianStep).
    """

    n_accepted: int
    states: np.ndarray
    bonus: bool
    corrected: bool
    log_ratio: np.ndarray
    log_survival: np.ndarray
    residual_mass: np.ndarray
    fallbacks: tuple = ()

    @property
    def n_emitted(self) -> int:
        """States committed this round: tau + 1 (correction or bonus) or tau = L."""
        return int(self.states.shape[0])
