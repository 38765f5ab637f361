"""Speculative sampling of whole batches of diffusion chains over torch denoisers.

The oracle's own loop (``specoracle.reference.diffusion.speculative_sample``: ALGORITHMS.md
§3.2 loop, §3.3 / §4.4 drafters, §2.3-§2.5 verification; De Bortoli et al., arXiv
2501.05370; Soen et al., arXiv 2606.13426) run over real denoisers: this module adapts a
:class:`~.diffusion_chains.GaussianChain` and a network ``(x, t) -> out`` to the loop's
sampler / target-model protocol, verifies with the batched NumPy twin
(fastpath/numpy_batch/gaussian.py, parity-checked against the oracle), and turns the
loop's counters into the run statistics. There is no second copy of the round logic.
B chains at once; each chain keeps its own position n_b and restarts its window
independently after a rejection (ragged windows); in every round

  1. drafting: each active chain drafts L_b = min(L, K_g - n_b) states
        X~_j = m^q_{n+j-1}(X~_{j-1}) + s_{n+j-1} z_j  (vectorised over chains);
  2. verification pass: ONE batched target call on the states X~_0..X~_{L_b-1} of all
     active chains (flattened to [sum_b L_b, D], each row with its own time);
  3. verification: ``VERIFIER.verify_gaussian_block`` / ``verify_gaussian_chain`` (block,
     token with the Gamma-maximal coupling, or token with the reflection coupling), bonus
     off (§9).

Drafters (``drafter``):
  * ``"free"`` (default): the Free Drafter FD-b (§4.4): the draft reuses the newest target
    output of the previous verification pass (the output at X~_tau, or at X~_{L_b-1} when
    every draft was accepted) frozen over the window: no extra sequential call. The first
    window of a run has no previous pass and uses FD-a.
  * ``"frozen"``: FD-a / paper 2's frozen target: one target call at the window start y_n,
    then the window is drafted from that output; step 1 is then exact (draft = target) and
    the verification pass covers X~_1..X~_{L_b-1}: two sequential calls per window.
  * ``"independent"``: an independent draft network, called L times per window (sequential
    draft calls, counted separately).
``freeze``: ``"drift"`` (default, ALGORITHMS.md §3.3 / §9: the whole drift is frozen,
m^q_k(x) = x + (mean_{k0}(x0, out0) - x0)) or ``"output"`` (the network output is frozen
and the step's own coefficients applied, m^q_k(x) = mean_k(x, out_frozen); with an eps
network this freezes eps, not the score). Both are exact; on the zoo nets "drift" accepts
slightly more (docs/DIFFUSION_MODELS.md).

Zero-noise steps (trailing, e.g. DDPM's posterior variance at the last step) are applied
with the target mean after the speculative part (§2.1), one sequential call each.

NOISE LAYOUT of :func:`sample_speculative_rng` (numpy Generator, drawn in this order):
    x_init [B, D] standard normal (the chain's start x_K ~ N(0, I)), then per round, for
    the A active chains in ascending order with lmax = max_b L_b:
    z [A, lmax, D], eta [A, lmax], u_res [A], z_orth [A, D] (the reference loop's
    ``RoundNoise``: this is that loop).
:func:`sample_plain_rng`: x_init [B, D], then per step z [B, D].

NFE accounting (§3.7, T11), in ``SampleResult.stats``:
    seq_target_calls   sequential batched target calls of the whole run (what a GPU waits on)
    target_evals       target network evaluations (states), total and per chain
    seq_draft_calls / draft_evals  the same for an independent draft network
    wall_clock_s, net_time_s; mean accepted length, tau histogram, per-step acceptance.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from specoracle.reference import diffusion as rd
from specoracle.reference.types import InvalidInput
from specoracle.reference.validation import check_generator

from specoracle.fastpath.models.diffusion.chains import GaussianChain
from specoracle.fastpath.numpy_batch import gaussian as numpy_batch_gaussian
from specoracle.fastpath.progress import progress_bar

DRAFTERS = ("free", "frozen", "independent")
FREEZE = ("output", "drift")
METHODS = ("block", "token", "reflection")
#: the batched twins the loop verifies with (fastpath/numpy_batch/gaussian.py, parity-checked
#: against the oracle); tests swap in known-wrong verifiers here
VERIFIER = numpy_batch_gaussian


class TorchDenoiser:
    """Adapter ``(x [N, D] float64, t [N] float64) -> out [N, D] float64`` over a torch module.

    ``module(x, t)`` must return the network output (epsilon prediction) for a batch; with
    ``sample_shape`` (e.g. (C, H, W)) the module sees ``x.view(N, *sample_shape)``.
    ``output_attr``: take this attribute of the module's return value (diffusers models
    return ``UNet2DOutput(sample=...)``: use "sample"). ``time_dtype``: dtype of t passed
    to the module (diffusers UNets take integer timesteps: torch.long).
    ``max_batch`` splits very large calls (still one *sequential* call in the accounting).
    Counts calls and evaluations.
    """

    def __init__(self, module, sample_shape=(), dtype=torch.float32, device="cpu",
                 output_attr=None, time_dtype=None, max_batch=None):
        if isinstance(module, torch.nn.Module):
            params = list(module.parameters())
            if params and (params[0].dtype != dtype or params[0].device != torch.device(device)):
                module = module.to(device=device, dtype=dtype)
            module = module.eval()
        self.module = module
        self.sample_shape = tuple(sample_shape)
        self.dtype, self.device = dtype, torch.device(device)
        self.output_attr, self.time_dtype = output_attr, time_dtype
        self.max_batch = max_batch
        self.calls = 0
        self.evals = 0
        self.seconds = 0.0

    def reset_counters(self):
        self.calls, self.evals, self.seconds = 0, 0, 0.0

    @torch.no_grad()
    def __call__(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        t = np.asarray(t, np.float64)
        n = x.shape[0]
        if n == 0:
            return np.zeros_like(x)
        t0 = time.perf_counter()
        outs = []
        step = self.max_batch or n
        for a in range(0, n, step):
            xb = torch.as_tensor(x[a:a + step], dtype=self.dtype, device=self.device)
            if self.sample_shape:
                xb = xb.view(xb.shape[0], *self.sample_shape)
            tb = torch.as_tensor(t[a:a + step], device=self.device,
                                 dtype=self.time_dtype or self.dtype)
            out = self.module(xb, tb)
            if self.output_attr:
                out = getattr(out, self.output_attr)
            outs.append(out.reshape(out.shape[0], -1).to("cpu", torch.float64).numpy())
        if self.device.type == "cuda":  # pragma: no cover - GPU only
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        self.evals += n
        return np.concatenate(outs, axis=0)


@dataclass
class SampleResult:
    """Samples [B, D] (float64) and the run's statistics (JSON-ready dict)."""

    samples: np.ndarray
    stats: dict = field(default_factory=dict)


def _means(chain: GaussianChain, k: np.ndarray, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    return chain.mean(np.asarray(k, np.int64), x, out)


def _check_x(x_init, chain):
    x = np.asarray(x_init, np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise InvalidInput("x_init", f"expected [B, D] with B >= 1, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise InvalidInput("x_init", "NaN or infinite value", index=tuple(np.argwhere(~np.isfinite(x))[0]))
    return x.copy()


def _dim(target, chain):
    if chain.sample_shape:
        return int(np.prod(chain.sample_shape))
    if hasattr(target, "dim"):
        return int(target.dim)
    module = getattr(target, "module", None)
    cfg = getattr(module, "config", None)
    if cfg is not None and hasattr(cfg, "dim"):
        return int(cfg.dim)
    raise InvalidInput("dim", "cannot infer the data dimension: pass dim= or x_init=")


def _new_stats(drafter, verify, window, chain, B):
    return {"drafter": drafter, "verify": verify, "window": window, "chain": chain.name,
            "steps": chain.n_steps, "gaussian_steps": chain.n_gaussian, "batch": B,
            "seq_target_calls": 0, "target_evals": 0, "seq_draft_calls": 0, "draft_evals": 0,
            "rounds": 0, "windows": 0, "accepted_drafts": 0, "residual_zero_mass": 0}


def _net_seconds(net):
    return float(getattr(net, "seconds", 0.0)) if net is not None else 0.0


def _close_stats(stats, t0, target, draft, sec0=(0.0, 0.0)):
    """Finish the statistics; ``sec0`` are the denoisers' ``seconds`` counters at the start."""
    stats["wall_clock_s"] = time.perf_counter() - t0
    stats["target_net_s"] = _net_seconds(target) - sec0[0]
    stats["draft_net_s"] = (_net_seconds(draft) - sec0[1]) if draft is not None and draft is not target else 0.0
    B = stats["batch"]
    stats["target_evals_per_chain"] = stats["target_evals"] / B
    stats["draft_evals_per_chain"] = stats["draft_evals"] / B
    if stats["windows"]:
        stats["mean_accepted_length"] = stats["accepted_drafts"] / stats["windows"]
    return stats


@dataclass(frozen=True)
class SpecConfig:
    """window L >= 1; drafter in DRAFTERS; verify in METHODS ("block", "token", "reflection");
    freeze in FREEZE; reuse_orth (token only)."""

    window: int = 8
    drafter: str = "free"
    verify: str = "block"
    freeze: str = "drift"
    reuse_orth: bool = False

    def __post_init__(self):
        if int(self.window) != self.window or self.window < 1:
            raise InvalidInput("window", f"must be an integer >= 1, got {self.window}")
        if self.drafter not in DRAFTERS:
            raise InvalidInput("drafter", f"expected one of {DRAFTERS}, got {self.drafter!r}")
        if self.verify not in METHODS:
            raise InvalidInput("verify", f"expected one of {METHODS}, got {self.verify!r}")
        if self.freeze not in FREEZE:
            raise InvalidInput("freeze", f"expected one of {FREEZE}, got {self.freeze!r}")


# ---------------------------------------------------------------- the oracle's loop over denoisers


class _ChainSampler:
    """A :class:`GaussianChain` dressed as the oracle loop's sampler
    (``reference.diffusion.DiffusionSampler``'s protocol): sigma [K] = std, the first
    n_gaussian steps speculative, and mean(k, x, out) = the chain's mean, where the loop's
    'score' slot carries the raw network output (so FD-a/FD-b ``freeze="output"`` freezes
    the network output and re-applies the step's own coefficients)."""

    def __init__(self, chain: GaussianChain):
        self.chain = chain
        self.sigma = np.asarray(chain.std, np.float64)

    n_steps = property(lambda self: self.chain.n_steps)
    n_speculative = property(lambda self: self.chain.n_gaussian)

    def mean(self, k, x, out):
        return _means(self.chain, k, x, out)


class _NetModel:
    """A denoiser ``(x, t) -> out`` over a chain as the oracle loop's ``TargetModel``:
    ``mean_and_score(k, x)`` = (the chain's mean at step k, the network output), one call."""

    def __init__(self, chain: GaussianChain, net):
        self.sampler = _ChainSampler(chain)
        self.denoiser = net

    def mean_and_score(self, k, x):
        out = self.denoiser(x, self.sampler.chain.net_time[k])
        return self.sampler.mean(k, x, out), out


class _RecordedSteps:
    """The plain chain's noise z [K_g, B, D], served step by step to the oracle's loop."""

    def __init__(self, z):
        self.z, self.k = z, 0

    def step(self, n, d):
        self.k += 1
        return self.z[self.k - 1]


def _drafter(cfg, model, chain, draft):
    """The oracle's drafter object for ``cfg.drafter`` (FD-b, FD-a or an independent net)."""
    if cfg.drafter == "independent":
        return rd.IndependentDrafter(_NetModel(chain, draft))
    return rd.make_drafter(cfg.drafter, model, freeze=cfg.freeze)


def _run_stats(stats, res, chain):
    """The run's counters (module docstring) from the oracle loop's :class:`DiffusionResult`."""
    stats["seq_target_calls"] = int(res.target_calls)
    stats["target_evals"] = int(res.target_evals.sum())
    stats["seq_draft_calls"] = int(res.draft_calls)
    stats["draft_evals"] = int(res.draft_evals.sum())
    return stats


def sample_plain(target, chain: GaussianChain, x_init, z) -> SampleResult:
    """The plain target chain (ancestral / Euler-Maruyama): x_{k+1} = mean_k(x_k) + s_k z_k,
    the oracle loop's ``verify="none"`` over the denoiser.

    x_init [B, D]; z [K_g, B, D] standard normal noise of the K_g Gaussian steps.
    One sequential target call per step (the reference point of the speed-ups).
    """
    x = _check_x(x_init, chain)
    B, D = x.shape
    Kg = chain.n_gaussian
    z = np.asarray(z, np.float64)
    if z.shape != (Kg, B, D):
        raise InvalidInput("z", f"expected shape {(Kg, B, D)}, got {z.shape}")
    stats = _new_stats("none", "none", 1, chain, B)
    sec0 = (_net_seconds(target), 0.0)
    t0 = time.perf_counter()
    res = rd.sample_with_noise(_NetModel(chain, target), None, x, _RecordedSteps(z), verify="none")
    return SampleResult(res.samples, _close_stats(_run_stats(stats, res, chain), t0, target, None, sec0))


def sample_plain_rng(target, chain: GaussianChain, n: int, rng, x_init=None, dim=None) -> SampleResult:
    """:func:`sample_plain` with x_init = rng.standard_normal((n, D)) then z per step."""
    check_generator(rng)
    x = rng.standard_normal((n, dim or _dim(target, chain))) if x_init is None else x_init
    x = _check_x(x, chain)
    Kg = chain.n_gaussian
    z = np.empty((Kg, x.shape[0], x.shape[1]))
    for k in range(Kg):
        z[k] = rng.standard_normal((x.shape[0], x.shape[1]))
    return sample_plain(target, chain, x, z)


def sample_speculative_rng(target, chain: GaussianChain, n: int, rng, cfg: SpecConfig = SpecConfig(),
                           draft=None, x_init=None, dim=None, progress: bool = False) -> SampleResult:
    """Speculative sampling of ``n`` chains (module docstring; noise layout there): the
    oracle's loop ``reference.diffusion.speculative_sample`` over the denoisers, verified by
    :data:`VERIFIER`.

    ``target`` and ``draft`` are denoisers ``(x [N, D], t [N]) -> out [N, D]`` (e.g.
    :class:`TorchDenoiser`); ``draft`` is required for ``drafter="independent"``.
    """
    check_generator(rng)
    if not isinstance(cfg, SpecConfig):
        raise InvalidInput("cfg", "expected a SpecConfig")
    if cfg.drafter == "independent" and draft is None:
        raise InvalidInput("draft", "drafter='independent' needs a draft denoiser")
    if x_init is None:
        x_init = rng.standard_normal((n, dim or _dim(target, chain)))
    x = _check_x(x_init, chain)
    B, D = x.shape
    Kg = chain.n_gaussian
    model = _NetModel(chain, target)
    stats = _new_stats(cfg.drafter, cfg.verify, cfg.window, chain, B)
    stats["freeze"] = cfg.freeze
    sec0 = (_net_seconds(target), _net_seconds(draft))
    t0 = time.perf_counter()
    with progress_bar(B * Kg, f"speculative {cfg.verify} L={cfg.window}", progress) as on_round:
        res = rd.speculative_sample(model, _drafter(cfg, model, chain, draft), x, rng, window=cfg.window,
                                    verify=cfg.verify, reuse_orth=cfg.reuse_orth, verifier=VERIFIER,
                                    on_round=on_round)
    _run_stats(stats, res, chain)
    taus = np.arange(cfg.window + 1)
    stats["rounds"] = int(res.rounds - (chain.n_steps - Kg))      # speculative rounds only
    stats["windows"] = int(res.tau_hist.sum())
    stats["accepted_drafts"] = int(taus @ res.tau_hist)
    stats["residual_zero_mass"] = int(res.fallbacks["residual_zero_mass"])
    if stats["windows"]:
        stats["tau_histogram"] = res.tau_hist.tolist()
    acc, judged = res.accepted_per_step[:Kg], res.judged_per_step[:Kg]
    per_step = np.where(judged > 0, acc / np.maximum(judged, 1), np.nan)
    stats["acceptance_per_step"] = [None if not np.isfinite(v) else float(v) for v in per_step]
    stats["seq_target_calls_per_chain"] = _summary(res.sequential_calls)
    stats["target_evals_per_chain_summary"] = _summary(res.target_evals)
    return SampleResult(res.samples, _close_stats(stats, t0, target, draft, sec0))


def _summary(a):
    return {"mean": float(np.mean(a)), "min": int(np.min(a)), "max": int(np.max(a))}
