"""specoracle: an oracle for speculative sampling.

The front door. ``specoracle.reference`` is the oracle (float64, obviously
correct), ``specoracle.proofs`` proves and certifies, ``specoracle.fastpath`` runs
the same algorithms fast. p is always the target, q the draft.

>>> import numpy as np, specoracle as so
>>> p = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]); q = np.array([[0.2, 0.2, 0.6]])
>>> so.verify_chain(p, q, draft=[2], u=[0.5, 0.1]).tokens
(0,)
"""
from importlib.metadata import PackageNotFoundError, version as _version

from .reference.categorical import (maximal_coupling, sample_categorical,  # noqa: F401
                                    verify_block, verify_block_rng, verify_chain,
                                    verify_chain_rng, verify_greedy)
from .reference.processing import process_logits  # noqa: F401
from .reference.tree import (verify_kseq, verify_kseq_rng, verify_mss, verify_mss_rng,  # noqa: F401
                             verify_mss_tree, verify_mss_tree_rng, verify_tree_deterministic,
                             verify_tree_deterministic_rng)
from .reference.types import InvalidInput, InvalidTest, SpecOracleError, Verdict  # noqa: F401

try:
    __version__ = _version("specoracle")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"
