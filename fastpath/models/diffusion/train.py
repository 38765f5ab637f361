"""Training recipe for the diffusion zoo's epsilon networks (denoising score matching).

Loss (Ho et al., arXiv 2006.11239, Eq. 14, in continuous VP time as in Song et al.,
arXiv 2011.13456): t ~ U(t_min, 1), eps ~ N(0, I),
x_t = sqrt(alpha_bar(t)) x_0 + sqrt(1 - alpha_bar(t)) eps, minimise ||eps - net(x_t, t)||^2.
Adam with a cosine learning-rate decay and an exponential moving average (EMA) of the
weights; the EMA weights are the ones saved.

Reproducibility: every random draw (initialisation, minibatches, t, eps) comes from
generators seeded by the recipe (``torch.random.fork_rng`` around initialisation so the
global generator is left untouched). Float32 CPU training is deterministic for a fixed
number of threads; other thread counts or BLAS builds can change the last bits, so the
metrics file (losses, energy distance) is what "reproduces" means here.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from specoracle.reference.types import InvalidInput

from specoracle.fastpath.models.diffusion.chains import VPSchedule
from specoracle.fastpath.models.diffusion.nets import EpsMLP, EpsMLPConfig


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2000
    batch: int = 256
    lr: float = 2e-3
    ema: float = 0.995
    t_min: float = 1e-3
    seed: int = 0
    threads: int = 1          # torch CPU threads during training (recorded; 1 = reproducible and
                              # immune to oversubscription on a shared machine)


def dsm_loss(net, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, schedule: VPSchedule) -> torch.Tensor:
    """Denoising loss for x0 [N, D], t [N], eps [N, D] (module docstring)."""
    ab = torch.exp(schedule.log_alpha_bar(t))[:, None]           # [N, 1]
    xt = ab.sqrt() * x0 + (1.0 - ab).sqrt() * eps                 # [N, D]
    return ((net(xt, t) - eps) ** 2).mean()


def eval_loss(net, data: np.ndarray, schedule: VPSchedule = VPSchedule(), n: int = 4096,
              seed: int = 12345) -> float:
    """Denoising loss on a fixed set of (x0, t, eps) triples (deterministic given ``seed``)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(data)
    idx = torch.randint(0, x.shape[0], (n,), generator=g)
    t = torch.rand(n, generator=g) * (1 - 1e-3) + 1e-3
    eps = torch.randn(n, x.shape[1], generator=g)
    with torch.no_grad():
        return float(dsm_loss(net, x[idx], t, eps, schedule))


def train_eps_net(data: np.ndarray, net_config: EpsMLPConfig, cfg: TrainConfig,
                  schedule: VPSchedule = VPSchedule(), progress: bool = False, desc: str = "train"):
    """Train an :class:`EpsMLP` on ``data`` [N, D]; return ``(ema_net, metrics dict)``."""
    data = np.asarray(data, dtype=np.float32)
    if data.ndim != 2 or data.shape[1] != net_config.dim:
        raise InvalidInput("data", f"expected [N, {net_config.dim}], got shape {data.shape}")
    if cfg.steps < 1 or cfg.batch < 1:
        raise InvalidInput("cfg", "steps and batch must be >= 1")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _train(data, net_config, cfg, schedule, progress, desc)
    finally:
        torch.set_num_threads(old_threads)


def _train(data, net_config, cfg, schedule, progress, desc):
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        net = EpsMLP(net_config)
    ema = copy.deepcopy(net).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    x_all = torch.as_tensor(data)
    losses = []
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, desc=desc, leave=False)
    t0 = time.perf_counter()
    for step in range(cfg.steps):
        lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        for grp in opt.param_groups:
            grp["lr"] = lr
        idx = torch.randint(0, x_all.shape[0], (cfg.batch,), generator=g)
        t = torch.rand(cfg.batch, generator=g) * (1 - cfg.t_min) + cfg.t_min
        eps = torch.randn(cfg.batch, net_config.dim, generator=g)
        loss = dsm_loss(net, x_all[idx], t, eps, schedule)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for pe, pn in zip(ema.parameters(), net.parameters()):
                pe.mul_(cfg.ema).add_(pn, alpha=1 - cfg.ema)
        losses.append(loss.item())
        if bar is not None:
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    metrics = {
        "train_config": asdict(cfg),
        "net_config": asdict(net_config),
        "n_params": net.n_params(),
        "train_seconds": round(seconds, 2),
        "final_train_loss": float(np.mean(losses[-200:])),
        "eval_loss_ema": eval_loss(ema, data, schedule),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    return ema, metrics
