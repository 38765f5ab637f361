"""Reverse-diffusion samplers as Gaussian Markov chains over a denoising network.

A :class:`GaussianChain` describes K sampling steps k = 0..K-1 (from noise to data).
Step k calls the network at time ``net_time[k]`` and has the Gaussian kernel

    x_{k+1} ~ N( mean_k(x_k, out_k), std[k]^2 I ),   out_k = net(x_k, net_time[k])

whose standard deviation does not depend on the network (ALGORITHMS.md §2.1, §3.1).
That is all the speculative sampler needs: a drafter supplies a different ``out``
(or a different mean), and the verification compares two Gaussians with the same
covariance.

Chains provided (all for an epsilon-prediction network, time in the VP convention):

* :func:`ddpm_chain` — DDPM ancestral sampling (Ho et al., arXiv 2006.11239, Alg. 2),
  respaced to K steps on the grid t_i = i/K of a continuous VP schedule
  (Song et al., arXiv 2011.13456, App. B): alpha_bar_i = alpha_bar(t_i),
  beta_i = 1 - alpha_bar_i / alpha_bar_{i-1},
  mean = (x - beta_i / sqrt(1 - alpha_bar_i) * eps) / sqrt(1 - beta_i);
  variance ``"beta"`` (sigma_i^2 = beta_i, every step Gaussian; ALGORITHMS.md T10) or
  ``"posterior"`` (beta_tilde_i; the last step has zero noise and is applied with the
  target mean outside the speculative loop, §2.1).
* :func:`euler_maruyama_chain` — Euler-Maruyama of the reverse VP SDE
  dx = [-1/2 beta(t) x - beta(t) score] dt + sqrt(beta(t)) dW (backwards in time),
  score = -eps / sqrt(1 - alpha_bar(t)), on a uniform grid from t = 1 to t_min (§3.1).
* :func:`diffusers_ddpm_chain` (in ``diffusion_adapter``) — a diffusers
  ``DDPMScheduler`` after ``set_timesteps(K)``, replicating ``scheduler.step``.

Means are computed in float64 whatever the network's dtype.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from specoracle.reference.types import InvalidInput


@dataclass(frozen=True)
class VPSchedule:
    """Continuous variance-preserving schedule, beta(t) = beta_min + t (beta_max - beta_min).

    alpha_bar(t) = exp(-(beta_min t + (beta_max - beta_min) t^2 / 2)); with the defaults a
    1000-step DDPM grid has betas 1e-4 .. 2e-2 (Ho et al.'s linear schedule).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self):
        if not (0 < self.beta_min <= self.beta_max) or not math.isfinite(self.beta_max):
            raise InvalidInput("schedule", f"need 0 < beta_min <= beta_max < inf, got "
                                           f"({self.beta_min}, {self.beta_max})")

    def beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def log_alpha_bar(self, t):
        return -(self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t)

    def alpha_bar(self, t):
        return np.exp(self.log_alpha_bar(np.asarray(t, dtype=np.float64)))


@dataclass(frozen=True)
class GaussianChain:
    """K Gaussian steps over an epsilon network (see the module docstring).

    net_time [K] float64: the time passed to the network at step k.
    std      [K] float64: kernel standard deviation s_k (>= 0; zero only on trailing steps).
    x_coef, out_coef [K] float64 (linear chains): mean_k = x_coef[k] x + out_coef[k] out.
    mean_fn: optional non-linear mean ``(k [N] int, x [N, D] f64, out [N, D] f64) -> [N, D]``
             (NumPy float64 arrays)
             overriding the linear form (e.g. a scheduler that clips x0).
    sample_shape: shape of one sample (D = prod(sample_shape)); the network sees
             ``[N, *sample_shape]`` when ``len(sample_shape) > 1``.
    name: a short description for the statistics.
    """

    net_time: np.ndarray
    std: np.ndarray
    x_coef: np.ndarray | None = None
    out_coef: np.ndarray | None = None
    mean_fn: Callable | None = None
    sample_shape: tuple = ()
    name: str = "chain"

    def __post_init__(self):
        K = len(self.std)
        if K < 1:
            raise InvalidInput("steps", "a chain needs at least one step")
        std = np.asarray(self.std, dtype=np.float64)
        if not np.all(np.isfinite(std)) or np.any(std < 0):
            bad = int(np.argmax(~np.isfinite(std) | (std < 0)))
            raise InvalidInput("std", "kernel std must be finite and >= 0", index=bad)
        zero = np.flatnonzero(std == 0)
        if zero.size and zero[0] != K - zero.size:
            raise InvalidInput("std", "zero-noise steps are only supported at the end of the chain",
                               index=int(zero[0]))
        if self.mean_fn is None and (self.x_coef is None or self.out_coef is None):
            raise InvalidInput("mean_fn", "give either mean_fn or both x_coef and out_coef")

    @property
    def n_steps(self) -> int:
        return len(self.std)

    @property
    def n_gaussian(self) -> int:
        """Number of leading steps with std > 0 (the speculative part of the chain)."""
        return int(np.count_nonzero(np.asarray(self.std) > 0))

    def mean(self, k: np.ndarray, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Kernel mean at steps ``k`` [N] for states ``x`` [N, D] and network outputs ``out`` [N, D]."""
        if self.mean_fn is not None:
            return self.mean_fn(k, x, out)
        return self.x_coef[k][:, None] * x + self.out_coef[k][:, None] * out


def _check_steps(steps) -> int:
    if int(steps) != steps or steps < 1:
        raise InvalidInput("steps", f"must be a positive integer, got {steps}")
    return int(steps)


def ddpm_chain(steps: int, schedule: VPSchedule = VPSchedule(), variance: str = "beta") -> GaussianChain:
    """DDPM ancestral sampling respaced to ``steps`` (module docstring)."""
    K = _check_steps(steps)
    if variance not in ("beta", "posterior"):
        raise InvalidInput("variance", f"expected 'beta' or 'posterior', got {variance!r}")
    i = np.arange(K, 0, -1, dtype=np.float64)               # sampling order: i = K..1
    t = i / K
    ab = schedule.alpha_bar(t)                               # alpha_bar_i
    ab_prev = schedule.alpha_bar((i - 1) / K)                # alpha_bar_{i-1} (= 1 at i = 1)
    beta = 1.0 - ab / ab_prev
    if np.any(beta <= 0) or np.any(beta >= 1):
        raise InvalidInput("steps", f"respaced betas must lie in (0, 1); got [{beta.min()}, {beta.max()}]")
    x_coef = 1.0 / np.sqrt(1.0 - beta)
    out_coef = -beta / np.sqrt(1.0 - ab) / np.sqrt(1.0 - beta)
    var = beta if variance == "beta" else (1.0 - ab_prev) / (1.0 - ab) * beta
    return GaussianChain(net_time=t, std=np.sqrt(var), x_coef=x_coef, out_coef=out_coef,
                         name=f"ddpm(steps={K}, variance={variance})")


def euler_maruyama_chain(steps: int, schedule: VPSchedule = VPSchedule(), t_min: float = 1e-3) -> GaussianChain:
    """Euler-Maruyama of the reverse VP SDE from t = 1 to ``t_min`` (module docstring)."""
    K = _check_steps(steps)
    if not (0 < t_min < 1):
        raise InvalidInput("t_min", f"must lie in (0, 1), got {t_min}")
    grid = np.linspace(1.0, t_min, K + 1)
    t, h = grid[:-1], grid[:-1] - grid[1:]
    b = schedule.beta(t)
    x_coef = 1.0 + 0.5 * b * h
    out_coef = -b * h / np.sqrt(1.0 - schedule.alpha_bar(t))
    return GaussianChain(net_time=t, std=np.sqrt(b * h), x_coef=x_coef, out_coef=out_coef,
                         name=f"euler_maruyama(steps={K}, t_min={t_min})")
