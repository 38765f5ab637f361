"""Batched results and per-row status codes shared by every fast-path backend.

A fast kernel verifies B sequences at once. Its result, :class:`BatchVerdict`,
converts row by row into the oracle's :class:`~specoracle.reference.types.Verdict`
(``batch.verdict(b)``), which is how the parity registry compares backends with
the reference decision for decision.

Batched shapes (B sequences, K = max drafted tokens, V vocabulary):
    p         [B, K+1, V]  target rows
    q         [B, K,   V]  draft rows
    draft     [B, K]       drafted ids; entries at positions >= num_draft[b] are
                           padding and never read (PAD_ID = -1 by convention)
    num_draft [B]          ragged draft lengths n_b in 0..K (default: all K)
    u         [B, K+1]     uniforms; row b uses u[b, :n_b] for the accept tests and
                           u[b, n_b] for the final draw, so row b equals the
                           reference on (p[b, :n_b+1], q[b, :n_b], draft[b, :n_b],
                           u[b, :n_b+1]).
Outputs:
    n_accepted [B] int64; tokens [B, K+1] int64 padded with PAD_ID after
    n_accepted[b] + 1 entries; bonus [B] bool; status [B] int32 (STATUS_*);
    fallbacks [B] int32 bit mask (FALLBACK_*).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from specoracle.reference.types import InvalidInput, Verdict

PAD_ID = -1

STATUS_OK = 0
STATUS_DRAFT_OUT_OF_RANGE = 1   # a draft id < 0 or >= V inside num_draft[b]
STATUS_DRAFT_ZERO_Q = 2         # q(x) = 0 for a drafted token x
STATUS_NONFINITE = 3            # NaN / inf in a row that was read
STATUS_BAD_LENGTH = 4           # num_draft[b] outside 0..K
STATUS_BAD_TREE = 5             # tree verifiers: parents[b, i] not in -1..i-1
STATUS_MESSAGES = {
    STATUS_DRAFT_OUT_OF_RANGE: "draft id outside the vocabulary",
    STATUS_DRAFT_ZERO_Q: "drafted token has q = 0: the draft could not have produced it",
    STATUS_NONFINITE: "NaN or infinite probability in a row that was read",
    STATUS_BAD_LENGTH: "num_draft outside 0..K",
    STATUS_BAD_TREE: "parent index not -1 (root) or an earlier node",
}

FALLBACK_RESIDUAL_ZERO_MASS = 1
FALLBACK_CDF_ROUNDING = 2
FALLBACK_NAMES = {FALLBACK_RESIDUAL_ZERO_MASS: "residual_zero_mass",
                  FALLBACK_CDF_ROUNDING: "cdf_rounding"}


def fallback_names(bits) -> tuple:
    """The fallback names of a per-row bit mask (FALLBACK_*), in bit order."""
    return tuple(name for bit, name in FALLBACK_NAMES.items() if int(bits) & bit)


@dataclass(frozen=True)
class BatchVerdict:
    n_accepted: np.ndarray  # [B] int64
    tokens: np.ndarray      # [B, K+1] int64, PAD_ID-padded
    bonus: np.ndarray       # [B] bool
    status: np.ndarray      # [B] int32
    fallbacks: np.ndarray   # [B] int32 bit mask
    paths: np.ndarray | None = None  # tree verifiers: [B, depth] node ids, PAD_ID-padded

    def __len__(self) -> int:
        return int(self.n_accepted.shape[0])

    def verdict(self, b: int) -> Verdict:
        """Row ``b`` as the oracle's Verdict (fallback names in bit order)."""
        n = int(self.n_accepted[b])
        toks = tuple(int(t) for t in np.asarray(self.tokens[b])[: n + 1])
        fb = fallback_names(self.fallbacks[b])
        path = ()
        if self.paths is not None:
            path = tuple(int(x) for x in np.asarray(self.paths[b]) if x != PAD_ID)
        return Verdict(n, toks, bool(self.bonus[b]), fb, path)

    def raise_on_error(self, argument: str = "draft") -> "BatchVerdict":
        """Raise InvalidInput naming the first row whose status is not OK."""
        bad = np.flatnonzero(np.asarray(self.status) != STATUS_OK)
        if bad.size:
            b = int(bad[0])
            code = int(self.status[b])
            raise InvalidInput(argument, STATUS_MESSAGES.get(code, f"status {code}"), index=b)
        return self
