"""Adapters: diffusers ``UNet2DModel`` (or any ``(x, t) -> eps`` module) + ``DDPMScheduler``
as the target chain of the speculative sampler.

* :func:`diffusers_ddpm_chain` turns a diffusers ``DDPMScheduler`` into a
  :class:`~.diffusion_chains.GaussianChain` whose mean replicates ``scheduler.step``
  line by line (x0 from the model output for prediction types epsilon / sample /
  v_prediction, optional clipping of x0, the posterior-mean coefficients of Ho et al.
  arXiv 2006.11239 Eq. 7), and whose std is the scheduler's ``fixed_small`` or
  ``fixed_large`` variance. The step at timestep 0 adds no noise in diffusers, so it is a
  trailing zero-noise step, applied with the target mean outside the speculative loop
  (ALGORITHMS.md §2.1). Clipping makes the mean non-linear in the output: the coupling
  only needs the mean, so it stays exact.
* :func:`diffusers_euler_maruyama_chain`: Euler-Maruyama of the reverse VP SDE on the
  scheduler's (respaced) timesteps, with beta integrated over each stride:
  x' = x + (beta/2) x + beta score + sqrt(beta) z, score = -eps / sqrt(1 - alpha_bar_t).
* :func:`unet_denoiser` wraps a ``UNet2DModel`` (``[N, C, H, W]`` samples, integer
  timesteps, ``.sample`` output) as a flat ``(x [N, D], t [N]) -> eps [N, D]`` denoiser.

diffusers is imported lazily; nothing here downloads anything (no hub access).
"""
from __future__ import annotations

import numpy as np
import torch

from specoracle.reference.types import InvalidInput

from specoracle.fastpath.models.diffusion.chains import GaussianChain
from specoracle.fastpath.models.diffusion.spec import TorchDenoiser


def _scheduler_arrays(scheduler, steps):
    cfg = scheduler.config
    if getattr(cfg, "thresholding", False):
        raise InvalidInput("scheduler", "dynamic thresholding is not supported (mean must be per-sample)")
    if cfg.prediction_type not in ("epsilon", "sample", "v_prediction"):
        raise InvalidInput("scheduler", f"unsupported prediction_type {cfg.prediction_type!r}")
    scheduler.set_timesteps(int(steps))
    ts = scheduler.timesteps.cpu().numpy().astype(np.int64)            # descending, [K]
    ab_all = scheduler.alphas_cumprod.cpu().numpy().astype(np.float64)
    prev = np.append(ts[1:], -1)
    ab = ab_all[ts]
    ab_prev = np.where(prev >= 0, ab_all[np.maximum(prev, 0)], 1.0)
    return cfg, ts, prev, ab, ab_prev


def diffusers_ddpm_chain(scheduler, steps: int, sample_shape: tuple) -> GaussianChain:
    """The chain of ``scheduler.step`` after ``scheduler.set_timesteps(steps)`` (module docstring)."""
    cfg, ts, prev, ab, ab_prev = _scheduler_arrays(scheduler, steps)
    if cfg.variance_type not in ("fixed_small", "fixed_large"):
        raise InvalidInput("scheduler", f"unsupported variance_type {cfg.variance_type!r} "
                                        "(fixed_small or fixed_large)")
    cur_alpha = ab / ab_prev
    cur_beta = 1.0 - cur_alpha
    if cfg.variance_type == "fixed_small":
        var = np.maximum((1 - ab_prev) / (1 - ab) * cur_beta, 1e-20)
    else:
        var = cur_beta.copy()
    var = np.where(ts > 0, var, 0.0)                                   # diffusers adds no noise at t = 0
    c_x0 = np.sqrt(ab_prev) * cur_beta / (1 - ab)
    c_x = np.sqrt(cur_alpha) * (1 - ab_prev) / (1 - ab)
    pred, clip, rng_ = cfg.prediction_type, bool(cfg.clip_sample), float(cfg.clip_sample_range)

    def mean_fn(k, x, out):
        a = ab[k][:, None]
        if pred == "epsilon":
            x0 = (x - np.sqrt(1 - a) * out) / np.sqrt(a)
        elif pred == "sample":
            x0 = out
        else:
            x0 = np.sqrt(a) * x - np.sqrt(1 - a) * out
        if clip:
            x0 = np.clip(x0, -rng_, rng_)
        return c_x0[k][:, None] * x0 + c_x[k][:, None] * x

    return GaussianChain(net_time=ts.astype(np.float64), std=np.sqrt(var), mean_fn=mean_fn,
                         sample_shape=tuple(sample_shape),
                         name=f"diffusers_ddpm(steps={len(ts)}, variance={cfg.variance_type}, clip={clip})")


def diffusers_euler_maruyama_chain(scheduler, steps: int, sample_shape: tuple) -> GaussianChain:
    """Euler-Maruyama of the reverse VP SDE on the scheduler's timesteps (module docstring).

    Needs an epsilon-prediction model. beta over a stride is 1 - alpha_bar_t / alpha_bar_prev
    (the respaced DDPM beta), so EM and DDPM share the same noise levels.
    """
    cfg, ts, prev, ab, ab_prev = _scheduler_arrays(scheduler, steps)
    if cfg.prediction_type != "epsilon":
        raise InvalidInput("scheduler", "Euler-Maruyama here needs an epsilon-prediction model")
    beta = 1.0 - ab / ab_prev
    x_coef = 1.0 + 0.5 * beta
    out_coef = -beta / np.sqrt(1.0 - ab)
    return GaussianChain(net_time=ts.astype(np.float64), std=np.sqrt(beta), x_coef=x_coef,
                         out_coef=out_coef, sample_shape=tuple(sample_shape),
                         name=f"diffusers_euler_maruyama(steps={len(ts)})")


def unet_denoiser(unet, dtype=torch.float32, device="cpu", max_batch=None) -> TorchDenoiser:
    """A diffusers ``UNet2DModel`` as a flat denoiser (module docstring)."""
    cfg = unet.config
    size = cfg.sample_size if isinstance(cfg.sample_size, (tuple, list)) else (cfg.sample_size,) * 2
    shape = (int(cfg.in_channels), int(size[0]), int(size[1]))
    return TorchDenoiser(unet, sample_shape=shape, dtype=dtype, device=device, output_attr="sample",
                         time_dtype=torch.long, max_batch=max_batch)


def tiny_unet(seed: int = 0, sample_size: int = 8, channels: int = 1):
    """A small randomly initialised ``UNet2DModel`` built from a config (no hub): for tests
    and for the GPU recipe's shape checks."""
    from diffusers import UNet2DModel

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return UNet2DModel(sample_size=sample_size, in_channels=channels, out_channels=channels,
                           layers_per_block=1, block_out_channels=(16, 32), norm_num_groups=8,
                           down_block_types=("DownBlock2D", "DownBlock2D"),
                           up_block_types=("UpBlock2D", "UpBlock2D")).eval()


def chain_from_reference(sampler, parameterization: str = "score") -> GaussianChain:
    """The oracle's ``reference.diffusion.DiffusionSampler`` (ddpm / em over a discrete
    ``Schedule``) as a :class:`GaussianChain` for a denoiser with ``parameterization``
    ("eps", "x0" or "score"; reference/targets_continuous.py). Network time of step k is the
    reference's integer t = T - k. Used to check this fast loop against the reference loop
    decision by decision, and to run the analytic mixture through the fast path."""
    from specoracle.reference.targets_continuous import score_from_output

    K = sampler.n_steps
    t = np.asarray(sampler.time_of(np.arange(K)), dtype=np.int64)

    def mean_fn(k, x, out):
        tk = t[k]
        return sampler.mean(k, x, score_from_output(out, x, tk, sampler.schedule, parameterization))

    return GaussianChain(net_time=t.astype(np.float64), std=np.asarray(sampler.sigma, np.float64),
                         mean_fn=mean_fn, name=f"reference_{getattr(sampler, 'kind', 'chain')}(steps={K})")


class NumpyDenoiser:
    """A NumPy denoiser ``(x [N, D], t [N] ints) -> out`` (e.g. the oracle's exact
    ``ExactDenoiser``) with the call/evaluation counters of :class:`TorchDenoiser`."""

    def __init__(self, fn, dim: int):
        self.fn, self.dim = fn, int(dim)
        self.calls = self.evals = 0
        self.seconds = 0.0

    def reset_counters(self):
        self.calls, self.evals, self.seconds = 0, 0, 0.0

    def __call__(self, x, t):
        import time

        t0 = time.perf_counter()
        out = np.asarray(self.fn(np.asarray(x, np.float64), np.rint(np.asarray(t)).astype(np.int64)),
                         np.float64)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        self.evals += x.shape[0]
        return out
