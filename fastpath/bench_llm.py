"""Registers the ``llm`` bench suite (end-to-end decoding on the zoo pair); the suite itself
lives in fastpath/models/bench_llm.py (issue 8)."""
from .models import bench_llm  # noqa: F401  (registers on import)
