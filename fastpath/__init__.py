"""specoracle.fastpath."""
