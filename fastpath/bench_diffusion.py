"""Registers the ``diffusion`` bench suite (end-to-end speculative diffusion sampling); the suite
itself lives in fastpath/models/diffusion_bench.py (issue 9)."""
from .models import diffusion_bench  # noqa: F401  (registers on import)
