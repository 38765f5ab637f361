"""Small epsilon-prediction networks for the diffusion zoo.

An ``EpsMLP`` maps a batch of noisy states and times to the predicted noise,
``(x [N, D], t [N]) -> eps [N, D]``, with ``t`` the continuous VP time in (0, 1]
(see :mod:`specoracle.fastpath.models.diffusion.chains`). The time enters as
sinusoidal features of ``1000 t`` (the DDPM convention of Ho et al., arXiv
2006.11239, §3.2 / App. B), concatenated to the state; the trunk is a stack of
pre-norm residual MLP blocks with SiLU.

Weights are stored as ``NAME.safetensors`` with the architecture in
``NAME.json`` (an :class:`EpsMLPConfig`), so a network loads without pickle.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from specoracle.reference.types import InvalidInput


@dataclass(frozen=True)
class EpsMLPConfig:
    """Architecture of an :class:`EpsMLP`.

    dim: data dimension D; hidden: trunk width; depth: number of residual blocks;
    time_features: number of sinusoidal time features (even); time_scale: t is
    multiplied by this before the sinusoids (1000 = DDPM's integer timesteps); skip: add a
    linear map of x to the output (zero-initialised). The final LayerNorm bounds the MLP's
    output, so a small net without the skip cannot follow states that leave the training
    range and its chain can drift away; the skip lets it extrapolate linearly (eps ~ x at
    large t). The digits draft uses it.
    """

    dim: int
    hidden: int = 128
    depth: int = 3
    time_features: int = 32
    time_scale: float = 1000.0
    skip: bool = False

    def __post_init__(self):
        for name in ("dim", "hidden", "depth", "time_features"):
            if int(getattr(self, name)) < 1:
                raise InvalidInput(name, f"must be >= 1, got {getattr(self, name)}")
        if self.time_features % 2:
            raise InvalidInput("time_features", f"must be even, got {self.time_features}")


def time_features(t: torch.Tensor, n: int, scale: float) -> torch.Tensor:
    """Sinusoidal features of ``scale * t``: [N] -> [N, n] (half sin, half cos)."""
    half = n // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=t.dtype, device=t.device) / half)
    ang = (scale * t)[:, None] * freqs[None, :]                     # [N, half]
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=1)       # [N, n]


class _Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, h):
        return h + self.fc2(nn.functional.silu(self.fc1(nn.functional.silu(self.norm(h)))))


class EpsMLP(nn.Module):
    """Epsilon network ``(x [N, D], t [N]) -> eps [N, D]`` (see the module docstring)."""

    def __init__(self, config: EpsMLPConfig):
        super().__init__()
        self.config = config
        self.inp = nn.Linear(config.dim + config.time_features, config.hidden)
        self.blocks = nn.ModuleList(_Block(config.hidden) for _ in range(config.depth))
        self.out_norm = nn.LayerNorm(config.hidden)
        self.out = nn.Linear(config.hidden, config.dim)
        if config.skip:
            self.skip = nn.Linear(config.dim, config.dim, bias=False)
            nn.init.zeros_(self.skip.weight)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        feats = time_features(t, self.config.time_features, self.config.time_scale)  # [N, F]
        h = self.inp(torch.cat([x, feats], dim=1))                                   # [N, H]
        for blk in self.blocks:
            h = blk(h)
        out = self.out(nn.functional.silu(self.out_norm(h)))                         # [N, D]
        return out + self.skip(x) if self.config.skip else out

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def save_net(net: EpsMLP, path: str | Path, extra: dict | None = None) -> tuple[Path, Path]:
    """Write ``path.safetensors`` (float32 weights) and ``path.json`` (config + ``extra``)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(torch.float32).contiguous().cpu() for k, v in net.state_dict().items()}
    st = path.with_suffix(".safetensors")
    save_file(tensors, str(st))
    meta = {"architecture": "EpsMLP", "config": asdict(net.config), "n_params": net.n_params()}
    meta.update(extra or {})
    js = path.with_suffix(".json")
    js.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return st, js


def load_net(path: str | Path, dtype: torch.dtype = torch.float32) -> EpsMLP:
    """Load a network written by :func:`save_net` (``path`` without suffix)."""
    from safetensors.torch import load_file

    path = Path(path)
    js, st = path.with_suffix(".json"), path.with_suffix(".safetensors")
    if not js.exists() or not st.exists():
        raise InvalidInput("path", f"no network at {path} (need {js.name} and {st.name})")
    meta = json.loads(js.read_text())
    if meta.get("architecture") != "EpsMLP":
        raise InvalidInput("path", f"{js} does not describe an EpsMLP")
    net = EpsMLP(EpsMLPConfig(**meta["config"]))
    net.load_state_dict(load_file(str(st)))
    return net.to(dtype).eval()
