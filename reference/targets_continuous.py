"""Closed-form continuous targets: Gaussian and Gaussian-mixture data with exact
denoisers, the linear recursion of the target chain, and grid density propagation.

ALGORITHMS.md §7 T9 (DDPM with Gaussian data: the target CHAIN is linear, its law is a
closed-form recursion) and T10 (Gaussian-mixture data: exact score, grid reference).
Correct speculative samplers reproduce the law of the discretised target chain, not
the data law: every reference here is the chain's.

Forward process (per coordinate): x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps,
abar_t = prod_{s <= t} (1 - beta_s), t = 1..T. Arrays are indexed by t - 1.

Shapes: x [B, d] states, t [B] integer times in 1..T (or one int), outputs [B, d].
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from .types import InvalidInput

PARAMETERIZATIONS = ("eps", "x0", "score")

# ---------------------------------------------------------------- schedules


@dataclass(frozen=True)
class Schedule:
    """A variance schedule beta_1..beta_T (each in (0, 1)); derived alphas and abar."""

    betas: np.ndarray  # [T]

    def __post_init__(self):
        b = np.asarray(self.betas, dtype=np.float64)
        if b.ndim != 1 or b.shape[0] < 1:
            raise InvalidInput("betas", f"expected a non-empty 1-D schedule, got shape {b.shape}")
        bad = ~(np.isfinite(b) & (b > 0) & (b < 1))
        if bad.any():
            raise InvalidInput("betas", f"beta must lie in (0, 1), got {b[np.argmax(bad)]!r}",
                               index=int(np.argmax(bad)))
        object.__setattr__(self, "betas", b)

    @property
    def n_steps(self) -> int:
        return int(self.betas.shape[0])

    @property
    def alphas(self) -> np.ndarray:
        return 1.0 - self.betas

    @property
    def alpha_bars(self) -> np.ndarray:
        return np.cumprod(1.0 - self.betas)


def linear_schedule(n_steps: int, beta_start: float, beta_end: float) -> Schedule:
    """beta_t linearly spaced from beta_start (t = 1) to beta_end (t = T) (T9)."""
    if int(n_steps) < 1:
        raise InvalidInput("n_steps", f"need at least one step, got {n_steps}")
    return Schedule(np.linspace(float(beta_start), float(beta_end), int(n_steps)))


def parse_schedule(spec: str, n_steps: int) -> Schedule:
    """``"linear:START:END"`` -> :func:`linear_schedule`; ``"const:BETA"`` -> constant."""
    parts = str(spec).split(":")
    shapes = {"linear": 3, "const": 2}
    try:
        values = [float(v) for v in parts[1:]]
    except ValueError:
        values = None
    if values is None or shapes.get(parts[0]) != len(parts):
        raise InvalidInput("schedule", f"expected 'linear:START:END' or 'const:BETA', got {spec!r}")
    # a value out of range is reported as such (Schedule: "beta must lie in (0, 1)")
    if parts[0] == "linear":
        return linear_schedule(n_steps, values[0], values[1])
    if int(n_steps) < 1:
        raise InvalidInput("n_steps", f"need at least one step, got {n_steps}")
    return Schedule(np.full(int(n_steps), values[0]))


def _times(t, batch, n_steps):
    t = np.asarray(t)
    if t.ndim == 0:
        t = np.full(batch, int(t))
    if t.shape != (batch,):
        raise InvalidInput("t", f"expected {batch} times, got shape {t.shape}")
    t = t.astype(np.int64)
    if np.any((t < 1) | (t > n_steps)):
        raise InvalidInput("t", f"times must lie in 1..{n_steps}", index=int(np.argmax((t < 1) | (t > n_steps))))
    return t


def _states(x, d):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != d:
        raise InvalidInput("x", f"expected states [B, {d}], got shape {x.shape}")
    return x


# ---------------------------------------------------------------- data laws


@dataclass(frozen=True)
class GaussianData:
    """Data N(mu, sigma0^2 I) in d = len(mu) dimensions (T9)."""

    mu: np.ndarray  # [d]
    sigma0: float

    def __post_init__(self):
        mu = np.atleast_1d(np.asarray(self.mu, dtype=np.float64))
        if mu.ndim != 1 or not np.all(np.isfinite(mu)):
            raise InvalidInput("mu", "expected a finite 1-D mean")
        s = float(self.sigma0)
        if not (math.isfinite(s) and s > 0):
            raise InvalidInput("sigma0", f"standard deviation must be finite and > 0, got {s!r}")
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "sigma0", s)

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])

    def score(self, x, t, schedule: Schedule):
        """grad log p_t(x) = (sqrt(abar_t) mu - x) / v_t, v_t = abar_t sigma0^2 + 1 - abar_t [B, d]."""
        x = _states(x, self.dim)
        t = _times(t, x.shape[0], schedule.n_steps)
        ab = schedule.alpha_bars[t - 1][:, None]
        v = ab * self.sigma0 ** 2 + 1 - ab
        return (np.sqrt(ab) * self.mu - x) / v

    def sample(self, n, rng):
        return self.mu + self.sigma0 * rng.standard_normal((int(n), self.dim))


@dataclass(frozen=True)
class GaussianMixtureData:
    """Data sum_m w_m N(mu_m, sigma_m^2 I) (T10); weights [M], means [M, d], stds [M]."""

    weights: np.ndarray
    means: np.ndarray
    stds: np.ndarray

    def __post_init__(self):
        w = np.atleast_1d(np.asarray(self.weights, dtype=np.float64))
        mu = np.asarray(self.means, dtype=np.float64)
        if mu.ndim == 1:
            mu = mu[:, None]
        sd = np.atleast_1d(np.asarray(self.stds, dtype=np.float64))
        if w.ndim != 1 or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise InvalidInput("weights", "expected finite non-negative mixture weights")
        if abs(w.sum() - 1.0) > 1e-9:
            raise InvalidInput("weights", f"mixture weights sum to {w.sum():.12g}, not 1 (tolerance 1e-9)")
        if mu.ndim != 2 or mu.shape[0] != w.shape[0] or not np.all(np.isfinite(mu)):
            raise InvalidInput("means", f"expected finite means [{w.shape[0]}, d], got shape {mu.shape}")
        if sd.shape != w.shape or not np.all(np.isfinite(sd) & (sd > 0)):
            raise InvalidInput("stds", f"expected {w.shape[0]} finite standard deviations > 0")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "means", mu)
        object.__setattr__(self, "stds", sd)

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def _components(self, t, schedule, batch):
        t = _times(t, batch, schedule.n_steps)
        ab = schedule.alpha_bars[t - 1]                              # [B]
        centers = np.sqrt(ab)[:, None, None] * self.means[None]      # [B, M, d]
        var = ab[:, None] * self.stds[None] ** 2 + 1 - ab[:, None]   # [B, M]
        return centers, var

    def _log_joint(self, x, centers, var):
        """log w_m N(x; center_m, var_m I) [B, M]."""
        d = self.dim
        sq = np.sum((x[:, None, :] - centers) ** 2, axis=-1)
        return np.log(self.weights)[None] - 0.5 * sq / var - 0.5 * d * np.log(2 * np.pi * var)

    def log_density(self, x, t, schedule: Schedule):
        """log p_t(x) [B]."""
        x = _states(x, self.dim)
        centers, var = self._components(t, schedule, x.shape[0])
        return special.logsumexp(self._log_joint(x, centers, var), axis=1)

    def score(self, x, t, schedule: Schedule):
        """grad log p_t(x) = sum_m pi_m(x) (sqrt(abar_t) mu_m - x) / v_{m,t} [B, d];
        responsibilities pi_m computed in log space (T10)."""
        x = _states(x, self.dim)
        centers, var = self._components(t, schedule, x.shape[0])
        lj = self._log_joint(x, centers, var)
        resp = np.exp(lj - special.logsumexp(lj, axis=1, keepdims=True))  # [B, M]
        return np.einsum("bm,bmd->bd", resp / var, centers - x[:, None, :])

    def sample(self, n, rng):
        comp = rng.choice(self.weights.shape[0], size=int(n), p=self.weights)
        return self.means[comp] + self.stds[comp][:, None] * rng.standard_normal((int(n), self.dim))


# ---------------------------------------------------------------- exact denoisers


class ExactDenoiser:
    """The denoiser protocol, implemented exactly from a data law's score.

    A denoiser is a callable ``(x [B, d], t [B] ints in 1..T) -> out [B, d]`` with an
    attribute ``parameterization`` in {"eps", "x0", "score"} and ``dim``. From the
    score: eps = -sqrt(1 - abar_t) score, x0 = (x + (1 - abar_t) score) / sqrt(abar_t).
    """

    def __init__(self, data, schedule: Schedule, parameterization: str = "score"):
        if parameterization not in PARAMETERIZATIONS:
            raise InvalidInput("parameterization", f"expected one of {PARAMETERIZATIONS}, got {parameterization!r}")
        self.data, self.schedule, self.parameterization = data, schedule, parameterization
        self.dim = data.dim

    def __call__(self, x, t):
        x = _states(x, self.dim)
        t = _times(t, x.shape[0], self.schedule.n_steps)
        score = self.data.score(x, t, self.schedule)
        ab = self.schedule.alpha_bars[t - 1][:, None]
        if self.parameterization == "score":
            return score
        if self.parameterization == "eps":
            return -np.sqrt(1 - ab) * score
        return (x + (1 - ab) * score) / np.sqrt(ab)


def score_from_output(out, x, t, schedule: Schedule, parameterization: str):
    """Convert a denoiser output [B, d] at (x [B, d], t [B]) to the score [B, d]."""
    ab = schedule.alpha_bars[np.asarray(t) - 1][:, None]
    if parameterization == "score":
        return out
    if parameterization == "eps":
        return -out / np.sqrt(1 - ab)
    if parameterization == "x0":
        return (np.sqrt(ab) * out - x) / (1 - ab)
    raise InvalidInput("parameterization", f"expected one of {PARAMETERIZATIONS}, got {parameterization!r}")


# ---------------------------------------------------------------- the law of the target chain (T9)


def linear_chain_law(data: GaussianData, sampler, start_mean=0.0, start_var=1.0):
    """Law of the target chain for Gaussian data: per-coordinate means [K+1, d] and
    variances [K+1] after each chain step (row 0 is the start N(0, 1) at t = T).

    Each step of the sampler (``reference.diffusion.DiffusionSampler``) has mean
    a_t x + b_t score_t(x) and std sigma_t; with the Gaussian score the chain is linear,
    x_{t-1} = A_t x_t + c_t + sigma_t z with A_t = a_t - b_t / v_t and
    c_t = b_t sqrt(abar_t) mu / v_t, so m <- A m + c and V <- A^2 V + sigma^2 (T9).
    """
    sch = sampler.schedule
    ab = sch.alpha_bars
    means = [np.full(data.dim, float(start_mean))]
    varis = [float(start_var)]
    for k in range(sampler.n_steps):
        t = sampler.time_of(k)
        a, b, sig = sampler.coefficients(k)
        v = ab[t - 1] * data.sigma0 ** 2 + 1 - ab[t - 1]
        big_a = a - b / v
        c = b * np.sqrt(ab[t - 1]) * data.mu / v
        means.append(big_a * means[-1] + c)
        varis.append(big_a ** 2 * varis[-1] + sig ** 2)
    return np.array(means), np.array(varis)


# ---------------------------------------------------------------- grid density propagation (T10)


@dataclass(frozen=True)
class GridLaw:
    """A density on a regular grid (1-D: ``grid`` [n], ``density`` [n]; 2-D: grid [n],
    density [n, n] on grid x grid). Riemann sums with spacing ``h``."""

    grid: np.ndarray
    density: np.ndarray
    h: float

    def cdf(self, y):
        """1-D only: P(X <= y) by the trapezoid-free cumulative sum (cell midpoints)."""
        cum = np.cumsum(self.density) * self.h
        return np.interp(y, self.grid + self.h / 2, cum, left=0.0, right=cum[-1])

    def moments(self):
        """(mean, variance, P(X < 0)) for 1-D laws."""
        w = self.density * self.h
        mean = float(np.sum(w * self.grid))
        var = float(np.sum(w * (self.grid - mean) ** 2))
        return mean, var, float(np.sum(w[self.grid < 0]) + 0.5 * np.sum(w[self.grid == 0]))


def _check_all_gaussian(sampler):
    sig = np.array([sampler.coefficients(k)[2] for k in range(sampler.n_steps)])
    if np.any(sig <= 0):
        raise InvalidInput("sampler", "grid propagation needs sigma_t > 0 at every step "
                           "(use final_noise=True, as in T10)")
    return sig


def grid_reference_1d(mixture: GaussianMixtureData, sampler, lo=-8.0, hi=8.0, n=8001,
                      chunk=512) -> GridLaw:
    """Propagate the density of the 1-D target chain on a grid (T10):
    p_{t-1}(x') = int N(x'; m_t(x), sigma_t^2) p_t(x) dx (Riemann sum), from N(0, 1).

    Needs sigma_t > 0 at every step. Cost O(K n^2) (chunked, memory O(chunk n)).
    """
    if mixture.dim != 1:
        raise InvalidInput("mixture", "grid_reference_1d needs 1-D data")
    sig = _check_all_gaussian(sampler)
    x = np.linspace(lo, hi, int(n))
    h = float(x[1] - x[0])
    dens = np.exp(-0.5 * x ** 2) / math.sqrt(2 * math.pi)
    for k in range(sampler.n_steps):
        m = sampler.target_mean_exact(mixture, k, x[:, None])[:, 0]   # [n]
        w = dens * h
        new = np.zeros_like(dens)
        for j in range(0, x.shape[0], chunk):
            xp = x[j:j + chunk]                                       # [c]
            kern = np.exp(-0.5 * ((xp[:, None] - m[None, :]) / sig[k]) ** 2)
            new[j:j + chunk] = kern @ w
        dens = new / (math.sqrt(2 * math.pi) * sig[k])
    return GridLaw(x, dens, h)


def grid_reference_2d(mixture: GaussianMixtureData, sampler, lo=-6.0, hi=6.0, n=161) -> GridLaw:
    """2-D grid propagation (T10): the Gaussian kernel factorises over the two output
    coordinates, so each step is the matrix product K1^T diag(p h^2) K2 [n, n]."""
    if mixture.dim != 2:
        raise InvalidInput("mixture", "grid_reference_2d needs 2-D data")
    sig = _check_all_gaussian(sampler)
    g = np.linspace(lo, hi, int(n))
    h = float(g[1] - g[0])
    gx, gy = np.meshgrid(g, g, indexing="ij")
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)                 # [n^2, 2]
    dens = np.exp(-0.5 * np.sum(pts ** 2, axis=1)) / (2 * math.pi)  # [n^2]
    for k in range(sampler.n_steps):
        m = sampler.target_mean_exact(mixture, k, pts)                # [n^2, 2]
        k1 = np.exp(-0.5 * ((g[None, :] - m[:, :1]) / sig[k]) ** 2)  # [n^2, n]
        k2 = np.exp(-0.5 * ((g[None, :] - m[:, 1:]) / sig[k]) ** 2)  # [n^2, n]
        new = k1.T @ (k2 * (dens * h * h)[:, None])                   # [n, n]
        dens = (new / (2 * math.pi * sig[k] ** 2)).ravel()
    return GridLaw(g, dens.reshape(int(n), int(n)), h)


# ---------------------------------------------------------------- constant-offset chain (T7)


def _block_g(log_a, delta):
    """G(a) = E[min(a r, 1)] = a - R(a, delta) (§4.3) for a = exp(log_a) in (0, 1], vectorised."""
    from .gaussian import residual_log_mass_from_log_c as residual_log_mass

    log_a = np.asarray(log_a, dtype=np.float64)
    flat = log_a.ravel()
    out = np.exp(flat) - np.exp(residual_log_mass(flat, np.full(flat.shape, float(delta))))
    return out.reshape(log_a.shape)


def constant_offset_tau_survival(delta, verifier="block", grid=4001):
    """P(tau >= i) for i = 1, 2, 3 on the constant-offset Gaussian chain of T7.

    token: a^i with a = 2 Phi(-delta/2). block: P(tau >= 1) = G(1) = a;
    P(tau >= 2) = int phi(z) G(min(e^{delta z - delta^2/2}, 1)) dz by adaptive quadrature
    (scipy quad on [-12, 12]); P(tau >= 3) = the double integral of §4.3 by the
    trapezoid rule on a ``grid`` x ``grid`` lattice over [-8, 8]^2 (T7: 4001^2).
    """
    from scipy import integrate

    delta = float(delta)
    if not (math.isfinite(delta) and delta > 0):
        raise InvalidInput("delta", f"expected a finite delta > 0, got {delta!r}")
    a = float(special.erfc(delta / (2 * math.sqrt(2))))
    if verifier == "token":
        return np.array([a, a ** 2, a ** 3])
    if verifier != "block":
        raise InvalidInput("verifier", f"expected 'block' or 'token', got {verifier!r}")

    def log_a(z):
        return np.minimum(delta * z - delta ** 2 / 2, 0.0)

    def f2(z):
        return math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi) * float(_block_g(log_a(z), delta))

    p2, _ = integrate.quad(f2, -12.0, 12.0, epsabs=1e-12, epsrel=1e-10, limit=400,
                           points=[delta / 2])
    z = np.linspace(-8.0, 8.0, int(grid))
    wz = np.exp(-0.5 * z ** 2) / math.sqrt(2 * math.pi)
    wz = wz * (z[1] - z[0])
    wz[[0, -1]] *= 0.5                                               # trapezoid weights
    la2 = np.minimum(log_a(z)[:, None] + delta * z[None, :] - delta ** 2 / 2, 0.0)
    p3 = float(wz @ _block_g(la2, delta) @ wz)
    return np.array([a, p2, p3])


def grid_moments_1d(mixture: GaussianMixtureData, sampler, lo=-8.0, hi=8.0, n=8001):
    """(mean, variance, P(x < 0)) of the 1-D target chain's final state, from the grid
    reference (T10). Zero-noise final steps (sigma = 0, e.g. DDPM's t = 1 in T9) are
    pushed forward exactly: the moments of m(X) are Riemann sums over the grid law of X.
    """
    sig = np.array([sampler.coefficients(k)[2] for k in range(sampler.n_steps)])
    n_gauss = int(np.sum(sig > 0))
    if np.any(sig[:n_gauss] <= 0):
        raise InvalidInput("sampler", "zero-noise steps must come last")
    law = grid_reference_1d(mixture, _Prefix(sampler, n_gauss), lo, hi, n)
    y = law.grid[:, None]
    for k in range(n_gauss, sampler.n_steps):
        y = sampler.target_mean_exact(mixture, k, y)
    w = law.density * law.h
    y = y[:, 0]
    mean = float(np.sum(w * y))
    return mean, float(np.sum(w * (y - mean) ** 2)), float(np.sum(w[y < 0]))


class _Prefix:
    """The first ``n`` steps of a sampler (for grid propagation)."""

    def __init__(self, sampler, n):
        self.sampler, self.n_steps = sampler, int(n)

    def coefficients(self, k):
        return self.sampler.coefficients(k)

    def target_mean_exact(self, data, k, x):
        return self.sampler.target_mean_exact(data, k, x)
