"""The diffusion zoo: small epsilon networks that specoracle trains itself.

Each entry is a *pair*: a target network and its own independent, smaller draft
network, trained on the same data with the same recipe and different seeds/sizes.

| name   | data                         | target            | draft            |
|--------|------------------------------|-------------------|------------------|
| moons  | two moons, 2-D, standardised | EpsMLP 128 x 3    | EpsMLP 32 x 1    |
| digits | 8x8 digits, 64-D in [-1, 1]  | EpsMLP 256 x 4    | EpsMLP 128 x 2 + linear skip |

Shipped weights live in ``specoracle/fastpath/models/zoo/weights/diffusion/<name>/``
(``target.safetensors``, ``target.json``, ``draft.safetensors``, ``draft.json``,
``metrics.json``); ``specoracle zoo train-diffusion NAME`` reproduces them.
:func:`find_pair` looks in ``$SPECORACLE_ZOO/diffusion-<name>/`` first (a retrained
copy), then in the shipped folder.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from specoracle.reference.types import InvalidInput

from specoracle.fastpath.models.diffusion.chains import VPSchedule
from specoracle.fastpath.models.diffusion.data import load_dataset
from specoracle.fastpath.models.diffusion.nets import EpsMLPConfig, load_net, save_net
from specoracle.fastpath.models.diffusion.train import TrainConfig, train_eps_net
from specoracle.fastpath.models.zoo import DIFFUSION_WEIGHTS_DIR

SHIPPED_DIR = DIFFUSION_WEIGHTS_DIR


@dataclass(frozen=True)
class ZooDiffusionEntry:
    name: str
    dataset: str
    dim: int
    target: EpsMLPConfig
    draft: EpsMLPConfig
    target_train: TrainConfig
    draft_train: TrainConfig
    n_data: int | None = None           # points drawn for synthetic data (moons)
    sample_shape: tuple = ()            # e.g. (8, 8) for image grids
    description: str = ""


ZOO = {
    "moons": ZooDiffusionEntry(
        name="moons", dataset="moons", dim=2, n_data=20000,
        target=EpsMLPConfig(dim=2, hidden=128, depth=3),
        draft=EpsMLPConfig(dim=2, hidden=32, depth=1),
        target_train=TrainConfig(steps=4000, batch=512, lr=2e-3, seed=0),
        draft_train=TrainConfig(steps=3000, batch=512, lr=2e-3, seed=1),
        description="two moons (scikit-learn, noise 0.05), trains in seconds on a CPU"),
    "digits": ZooDiffusionEntry(
        name="digits", dataset="digits", dim=64, sample_shape=(8, 8),
        target=EpsMLPConfig(dim=64, hidden=256, depth=4),
        draft=EpsMLPConfig(dim=64, hidden=128, depth=2, skip=True),
        target_train=TrainConfig(steps=10000, batch=256, lr=1e-3, ema=0.999, seed=0),
        draft_train=TrainConfig(steps=6000, batch=256, lr=2e-3, ema=0.999, seed=1),
        description="scikit-learn 8x8 digits, about two minutes on a CPU"),
}


def entry(name: str) -> ZooDiffusionEntry:
    name = name[4:] if name.startswith("zoo:") else name
    if name not in ZOO:
        raise InvalidInput("model", f"unknown diffusion zoo model {name!r}; known: {', '.join(ZOO)}")
    return ZOO[name]


def zoo_root() -> Path:
    return Path(os.environ.get("SPECORACLE_ZOO") or Path.home() / ".cache" / "specoracle" / "zoo")


def find_pair(name: str) -> Path:
    """Folder holding ``target.*`` and ``draft.*`` for zoo model ``name`` (module docstring)."""
    e = entry(name)
    for folder in (zoo_root() / f"diffusion-{e.name}", SHIPPED_DIR / e.name):
        if (folder / "target.safetensors").exists() and (folder / "draft.safetensors").exists():
            return folder
    raise InvalidInput("model", f"no weights for zoo:{e.name}: run `specoracle zoo train-diffusion "
                                f"{e.name}` (looked in {zoo_root() / f'diffusion-{e.name}'} and {SHIPPED_DIR / e.name})")


def load_pair(name: str, dtype=None, folder: str | Path | None = None):
    """Load ``(target_net, draft_net, entry)`` of zoo model ``name`` (eval mode)."""
    import torch

    e = entry(name)
    folder = Path(folder) if folder is not None else find_pair(e.name)
    dtype = dtype or torch.float32
    return load_net(folder / "target", dtype), load_net(folder / "draft", dtype), e


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| (V-statistic, Euclidean) of two samples."""
    from scipy.spatial.distance import cdist

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return float(2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean())


def sample_quality(net, e: ZooDiffusionEntry, n: int = 1000, steps: int = 100, seed: int = 0) -> dict:
    """Energy distance between ``n`` plain DDPM samples of ``net`` and ``n`` data points."""
    from specoracle.fastpath.models.diffusion.chains import ddpm_chain
    from specoracle.fastpath.models.diffusion.spec import TorchDenoiser, sample_plain_rng

    chain = ddpm_chain(steps)
    res = sample_plain_rng(TorchDenoiser(net), chain, n, np.random.default_rng(seed))
    data = load_dataset(e.dataset, n=e.n_data, seed=0)
    pick = np.random.default_rng(seed + 1).choice(data.shape[0], size=min(n, data.shape[0]), replace=False)
    return {"energy_distance_to_data": energy_distance(res.samples, data[pick]),
            "quality_samples": n, "quality_steps": steps, "quality_seed": seed}


def train_pair(name: str, out_dir: str | Path, progress: bool = False, quality: bool = True,
               scale_steps: float = 1.0, roles=("target", "draft")) -> dict:
    """Train zoo model ``name`` (target and draft), write it to ``out_dir``, return the metrics.

    ``scale_steps`` < 1 shortens both trainings (tests use it); the shipped weights use 1.
    ``roles`` retrains only some of the two nets (metrics of the others are kept).
    """
    e = entry(name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset(e.dataset, n=e.n_data, seed=0)
    old = out / "metrics.json"
    kept = json.loads(old.read_text()) if old.exists() else {}
    metrics = {"name": e.name, "dataset": e.dataset, "n_data": int(data.shape[0]), "dim": e.dim,
               "schedule": asdict(VPSchedule()), "scale_steps": scale_steps,
               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for role, ncfg, tcfg in (("target", e.target, e.target_train), ("draft", e.draft, e.draft_train)):
        if role not in roles:
            if role in kept:
                metrics[role] = kept[role]
            continue
        if scale_steps != 1.0:
            tcfg = TrainConfig(**{**asdict(tcfg), "steps": max(1, int(round(tcfg.steps * scale_steps)))})
        net, m = train_eps_net(data, ncfg, tcfg, progress=progress, desc=f"{e.name}/{role}")
        if quality:
            m.update(sample_quality(net, e))
        save_net(net, out / role, extra={"zoo": e.name, "role": role, "dataset": e.dataset,
                                         "sample_shape": list(e.sample_shape)})
        m["file_bytes"] = (out / f"{role}.safetensors").stat().st_size
        metrics[role] = m
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics
