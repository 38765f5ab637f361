"""specoracle.reference: the oracle. Float64 NumPy, one sequence at a time, short
linear functions that follow ../shared/ALGORITHMS.md line by line."""
from .types import InvalidInput, InvalidTest, SpecOracleError, Verdict  # noqa: F401
