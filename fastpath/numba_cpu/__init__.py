"""specoracle.fastpath.numba_cpu."""
