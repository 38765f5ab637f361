"""specoracle.proofs."""
