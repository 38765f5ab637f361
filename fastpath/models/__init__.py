"""specoracle.fastpath.models."""
