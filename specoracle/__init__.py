"""specoracle: an oracle for speculative sampling.

The front door. ``specoracle.reference`` is the oracle (float64, obviously
correct), ``specoracle.proofs`` proves and certifies, ``specoracle.fastpath`` runs
the same algorithms fast. p is always the target, q the draft.

>>> import numpy as np, specoracle as so
>>> p = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]); q = np.array([[0.2, 0.2, 0.6]])
>>> so.verify_chain(p, q, draft=[2], u=[0.5, 0.1]).tokens
(0,)

The continuous (Gaussian) oracle is ``specoracle.gaussian`` (the module
``specoracle.reference.gaussian``, imported on first use: it needs SciPy), with its
window verifiers also re-exported here; every residual function takes (c, delta):

>>> round(so.gaussian.residual_mass(0.5, 1.0), 6), so.gaussian.residual_log_mass(1e-3, 0.01) < -2e5
(0.095305, True)
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

# name -> (module, attribute or None for the module itself), imported on first access
# (PEP 562) so that `import specoracle` and `specoracle --help` do not pay for SciPy.
_LAZY = {
    "gaussian": ("specoracle.reference.gaussian", None),
    "verify_gaussian_chain": ("specoracle.reference.gaussian", "verify_gaussian_chain"),
    "verify_gaussian_chain_rng": ("specoracle.reference.gaussian", "verify_gaussian_chain_rng"),
    "verify_gaussian_block": ("specoracle.reference.gaussian", "verify_gaussian_block"),
    "verify_gaussian_block_rng": ("specoracle.reference.gaussian", "verify_gaussian_block_rng"),
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'specoracle' has no attribute {name!r}")
    from importlib import import_module

    module, attr = _LAZY[name]
    value = import_module(module) if attr is None else getattr(import_module(module), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


try:
    __version__ = _version("specoracle")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"
