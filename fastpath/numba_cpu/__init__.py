"""specoracle.fastpath.numba_cpu: numba twins of the oracle (docs/FASTPATH_CPU.md).

Every kernel is compiled with ``cache=True``. Numba invalidates a cached kernel only when
the source file of *that kernel* changes, not when an inlined helper from another module
(``_primitives.py``, ``_batch.py``) does. On import, this package therefore hashes all of its
own sources and, when the hash differs from the one stamped beside the cache, deletes the
cached kernels (``__pycache__/*.nbi``, ``*.nbc``) so that they are recompiled. The NumPy
version is hashed too: ``_primitives.REDUCE_CHUNK`` (NumPy's summation order, which changed
in 2.3) is a compile-time constant of the cached kernels. Best effort: a read-only install
(numba then caches elsewhere) is left alone.
"""
from __future__ import annotations

import hashlib
from pathlib import Path


def _sources_digest(folder: Path) -> str:
    import numpy

    h = hashlib.sha256(f"numpy {numpy.__version__}".encode())
    for src in sorted(folder.glob("*.py")):
        h.update(src.name.encode())
        h.update(src.read_bytes())
    return h.hexdigest()


def _invalidate_stale_cache(folder: Path) -> bool:
    """Delete the numba cache of this package if its sources changed; True if deleted."""
    cache = folder / "__pycache__"
    stamp = cache / "numba_sources.sha256"
    try:
        digest = _sources_digest(folder)
        if stamp.is_file() and stamp.read_text().strip() == digest:
            return False
        stale = list(cache.glob("*.nbi")) + list(cache.glob("*.nbc")) if cache.is_dir() else []
        for f in stale:
            f.unlink(missing_ok=True)
        cache.mkdir(exist_ok=True)
        stamp.write_text(digest + "\n")
        return bool(stale)
    except OSError:
        return False


_invalidate_stale_cache(Path(__file__).resolve().parent)
