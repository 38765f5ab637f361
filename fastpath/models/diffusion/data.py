"""Training data for the diffusion zoo, built from data that ships in scikit-learn.

* ``moons``: ``sklearn.datasets.make_moons(n, noise=0.05)``, standardised per coordinate
  with the affine map stored in :data:`MOONS_AFFINE` (so samples can be mapped back).
* ``digits``: ``sklearn.datasets.load_digits()`` (1797 images of 8x8 pixels, values
  0..16), scaled to [-1, 1] by x / 8 - 1 and flattened to 64 coordinates.

Both return float32 arrays [N, D]. Deterministic given ``seed``.
"""
from __future__ import annotations

import numpy as np

from specoracle.reference.types import InvalidInput

DATASETS = ("moons", "digits")

# Per-coordinate mean and std of make_moons(noise=0.05) (population values estimated once
# from 10^6 points; fixed so that every run uses the same map).
MOONS_AFFINE = {"mean": [0.5, 0.25], "std": [0.8674, 0.4966]}


def load_dataset(name: str, n: int | None = None, seed: int = 0) -> np.ndarray:
    """The dataset ``name`` as float32 [N, D] (``n`` points for moons; all 1797 digits)."""
    try:
        from sklearn import datasets
    except ImportError as exc:  # pragma: no cover - scikit-learn is a test/models dependency
        raise InvalidInput("dataset", "scikit-learn is needed for the diffusion zoo data "
                                      "(pip install scikit-learn)") from exc
    if name == "moons":
        x, _ = datasets.make_moons(n_samples=int(n or 20000), noise=0.05, random_state=seed)
        x = (x - np.array(MOONS_AFFINE["mean"])) / np.array(MOONS_AFFINE["std"])
        return x.astype(np.float32)
    if name == "digits":
        x = datasets.load_digits().data.astype(np.float64) / 8.0 - 1.0
        return x.astype(np.float32)
    raise InvalidInput("dataset", f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


def to_images(x: np.ndarray) -> np.ndarray:
    """Digits samples [N, 64] in [-1, 1] -> images [N, 8, 8] in [0, 16] (clipped)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 64:
        raise InvalidInput("x", f"expected digits samples [N, 64], got shape {x.shape}")
    return np.clip((x + 1.0) * 8.0, 0.0, 16.0).reshape(-1, 8, 8)
