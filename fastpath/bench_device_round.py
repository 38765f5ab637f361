"""Registers the ``device-round`` bench suite (the on-device speculative round vs the host round);
the suite itself lives in fastpath/models/bench_device_round.py (issue 8)."""
from .models import bench_device_round  # noqa: F401  (registers on import)
