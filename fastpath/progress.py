"""Progress display for the callers of the oracle's loops (DESIGN.md: reference/ draws no
progress; the CLI and the fast path do, from the loops' ``on_round`` callbacks)."""
from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def progress_bar(total: int, desc: str, enabled: bool, unit: str = "step"):
    """A tqdm bar on stderr; yields its ``update(n)`` as the loop's ``on_round`` callback
    (None when disabled). close() redraws the bar at its final count: with leave=False the
    last redraw was rate-limited to an earlier count (e.g. 255956/256000) and that stale
    line is what a terminal or a log kept."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit)
    try:
        yield bar.update
    finally:
        bar.close()
