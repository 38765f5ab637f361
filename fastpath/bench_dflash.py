"""Registers the ``dflash`` bench suite (DFlash / D2SD on the zoo pair); the suite itself lives in
fastpath/models/dflash_bench.py (issue 10)."""
from .models import dflash_bench  # noqa: F401  (registers on import)
