"""specoracle.fastpath.numpy_batch: batched float64 NumPy twins of the oracle.

Same module and function names as reference/ (DESIGN.md principle 4), batched API of
fastpath/types.py and fastpath/gaussian_types.py. Plain NumPy/SciPy (no compiler): the
twins the oracle's own loops take where one-row calls would be too slow (e.g.
``reference.diffusion.speculative_sample(..., verifier=...)`` over 10^4 chains) and the
scalar parts the numba kernels share. Checked against the oracle by the parity registry
(fastpath/registry.py).
"""
