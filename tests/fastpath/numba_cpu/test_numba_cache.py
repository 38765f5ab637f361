"""The numba cache of fastpath/numba_cpu is dropped when any of the package's sources change
(numba itself only watches the kernel's own file, not the helpers it inlines)."""
from specoracle.fastpath.numba_cpu import _invalidate_stale_cache


def test_stale_cache_deleted_when_a_helper_changes(tmp_path):
    (tmp_path / "kernels.py").write_text("x = 1\n")
    (tmp_path / "_helpers.py").write_text("y = 1\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    (cache / "kernels.f-1.py311.nbi").write_bytes(b"index")
    (cache / "kernels.f-1.py311.1.nbc").write_bytes(b"code")
    (cache / "kernels.cpython-311.pyc").write_bytes(b"pyc")
    # first import: no stamp yet, so whatever is cached may be stale -> deleted, stamp written
    assert _invalidate_stale_cache(tmp_path)
    assert not list(cache.glob("*.nb[ic]")) and (cache / "kernels.cpython-311.pyc").exists()
    # unchanged sources: a freshly written cache survives
    (cache / "kernels.f-1.py311.nbi").write_bytes(b"index")
    assert not _invalidate_stale_cache(tmp_path)
    assert (cache / "kernels.f-1.py311.nbi").exists()
    # an inlined helper changes: the kernel's cache goes
    (tmp_path / "_helpers.py").write_text("y = 2\n")
    assert _invalidate_stale_cache(tmp_path)
    assert not (cache / "kernels.f-1.py311.nbi").exists()


def test_stale_cache_deleted_when_numpy_changes(tmp_path, monkeypatch):
    """REDUCE_CHUNK (NumPy's summation order: chunks of 8192 before 2.3, whole vector since)
    is baked into the cached kernels, so a NumPy upgrade must drop them too."""
    import numpy

    (tmp_path / "kernels.py").write_text("x = 1\n")
    cache = tmp_path / "__pycache__"
    _invalidate_stale_cache(tmp_path)                     # stamp the current NumPy
    (cache / "kernels.f-1.py311.nbi").write_bytes(b"index")
    assert not _invalidate_stale_cache(tmp_path)
    monkeypatch.setattr(numpy, "__version__", numpy.__version__ + ".other")  # NumPy changed in place
    assert _invalidate_stale_cache(tmp_path)
    assert not (cache / "kernels.f-1.py311.nbi").exists()
