"""Helpers shared by tests/test_sweep*.py."""
from __future__ import annotations


class StopAfter:
    """``on_task`` hook of a sweep that simulates a kill (KeyboardInterrupt) after ``n``
    completed tasks have been saved; ``seen`` holds their records."""

    def __init__(self, n: int):
        self.n, self.seen = n, []

    def __call__(self, rec):
        self.seen.append(rec)
        if len(self.seen) == self.n:
            raise KeyboardInterrupt
