"""Speculative sampling of whole batches of diffusion chains over torch denoisers (issue 9).

Runs the continuous oracle's algorithms (ALGORITHMS.md §3.2 loop, §3.3 / §4.4 drafters,
§2.3-§2.5 verification; De Bortoli et al., arXiv 2501.05370; Soen et al., arXiv
2606.13426) on B chains at once. Each chain keeps its own position n_b and restarts its
window independently after a rejection (ragged windows); in every round

  1. drafting: each active chain drafts L_b = min(L, K_g - n_b) states
        X~_j = m^q_{n+j-1}(X~_{j-1}) + s_{n+j-1} z_j  (vectorised over chains);
  2. verification pass: ONE batched target call on the states X~_0..X~_{L_b-1} of all
     active chains (flattened to [sum_b L_b, D], each row with its own time);
  3. verification: :func:`~.diffusion_verify.verify_windows` (block, token with the
     Gamma-maximal coupling, or token with the reflection coupling), bonus off (§9).

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
    z [A, lmax, D], eta [A, lmax], u_res [A], z_orth [A, D] — the layout of the
    reference loop ``specoracle.reference.diffusion.speculative_sample``, so the two
    take identical decisions on the same generator (tested).
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

from specoracle.reference.types import InvalidInput
from specoracle.reference.validation import check_generator

from specoracle.fastpath.models.diffusion.chains import GaussianChain
from specoracle.fastpath.models.diffusion.verify import METHODS, verify_windows

DRAFTERS = ("free", "frozen", "independent")
FREEZE = ("output", "drift")


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


def _finish_zero_noise(target, chain, x, stats):
    """Apply trailing zero-noise steps with the target mean (§2.1): one call each."""
    for k in range(chain.n_gaussian, chain.n_steps):
        kk = np.full(x.shape[0], k)
        x = _means(chain, kk, x, target(x, chain.net_time[kk]))
        stats["seq_target_calls"] += 1
        stats["target_evals"] += x.shape[0]
    return x


def sample_plain(target, chain: GaussianChain, x_init, z) -> SampleResult:
    """The plain target chain (ancestral / Euler-Maruyama): x_{k+1} = mean_k(x_k) + s_k z_k.

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
    for k in range(Kg):
        kk = np.full(B, k)
        out = target(x, chain.net_time[kk])
        x = _means(chain, kk, x, out) + chain.std[k] * z[k]
        stats["seq_target_calls"] += 1
        stats["target_evals"] += B
    x = _finish_zero_noise(target, chain, x, stats)
    return SampleResult(x, _close_stats(stats, t0, target, None, sec0))


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
            "rounds": 0, "windows": 0, "accepted_drafts": 0, "scalar_residual_fallbacks": 0,
            "residual_zero_mass": 0}


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


class _Frozen:
    """Per-chain frozen target information for the FD-a / FD-b drafts."""

    def __init__(self, B, D):
        self.out = np.zeros((B, D))     # frozen network output
        self.drift = np.zeros((B, D))   # frozen drift mean_k(x, out) - x
        self.have = np.zeros(B, bool)

    def set(self, rows, chain, k, x, out):
        self.out[rows] = out
        self.drift[rows] = _means(chain, k, x, out) - x
        self.have[rows] = True


def _draft_means(cfg, chain, k, x, frozen_rows, frozen, draft, stats):
    """Draft means m^q_k(x) [N, D] for the rows ``frozen_rows`` of the batch."""
    if cfg.drafter == "independent":
        out = draft(x, chain.net_time[k])
        stats["seq_draft_calls"] += 1
        stats["draft_evals"] += x.shape[0]
        return _means(chain, k, x, out)
    if cfg.freeze == "output":
        return _means(chain, k, x, frozen.out[frozen_rows])
    return x + frozen.drift[frozen_rows]


def window_lengths(chain: GaussianChain, window: int, pos: np.ndarray):
    """Active chains (ascending) and their window lengths L_b = min(L, K_g - n_b) this round."""
    act = np.flatnonzero(pos < chain.n_gaussian)
    return act, np.minimum(window, chain.n_gaussian - pos[act])


def speculative_round(target, chain, cfg, x, n, frozen, z, eta, u_res, z_orth, stats, draft=None,
                      accept_counts=None, seq_chain=None, evals_chain=None):
    """One round over the active chains (module docstring); updates x [B, D] and n [B] in place.

    Noise for the A active chains (ascending index; lmax = max L_b, see :func:`window_lengths`):
    z [A, lmax, D], eta [A, lmax], u_res [A], z_orth [A, D].
    """
    B, D = x.shape
    act, lens = window_lengths(chain, cfg.window, n)
    A = act.size
    if A == 0:
        return
    L = int(lens.max())
    if z.shape != (A, L, D) or eta.shape != (A, L) or u_res.shape != (A,) or z_orth.shape != (A, D):
        raise InvalidInput("z", f"round noise must be z [{A}, {L}, {D}], eta [{A}, {L}], u_res [{A}], "
                                f"z_orth [{A}, {D}]")
    seq_chain = np.zeros(B, np.int64) if seq_chain is None else seq_chain
    evals_chain = np.zeros(B, np.int64) if evals_chain is None else evals_chain
    # FD-a (and FD-b's first window): one sequential target call at the window start
    need_start = np.zeros(A, bool)
    if cfg.drafter == "frozen":
        need_start[:] = True
    elif cfg.drafter == "free":
        need_start = ~frozen.have[act]
    start_out = None
    if need_start.any():
        rows = act[need_start]
        k0 = n[rows]
        start_out = target(x[rows], chain.net_time[k0])
        stats["seq_target_calls"] += 1
        stats["target_evals"] += rows.size
        seq_chain[rows] += 1
        evals_chain[rows] += 1
        frozen.set(rows, chain, k0, x[rows], start_out)
    # drafting, vectorised over chains, sequential over the window
    states = np.zeros((A, L + 1, D))                                    # X~_0..X~_L
    m_q = np.zeros((A, L, D))
    s = np.ones((A, L))
    states[:, 0] = x[act]
    for j in range(L):
        live = np.flatnonzero(j < lens)
        k = n[act[live]] + j
        m_q[live, j] = _draft_means(cfg, chain, k, states[live, j], act[live], frozen, draft, stats)
        s[live, j] = chain.std[k]
        states[live, j + 1] = m_q[live, j] + s[live, j][:, None] * z[live, j]
    # the verification pass: ONE batched target call over every (chain, position) needed
    m_p = np.zeros((A, L, D))
    out_p = np.zeros((A, L, D))
    pos = np.arange(L)[None, :]
    need = pos < lens[:, None]                                          # [A, L]
    if cfg.drafter == "frozen":                                         # X~_0 already evaluated
        out_p[:, 0] = start_out
        need[:, 0] = False
    ai, jj = np.nonzero(need)
    if ai.size:
        k = n[act[ai]] + jj
        out_p[ai, jj] = target(states[ai, jj], chain.net_time[k])
        stats["seq_target_calls"] += 1
        stats["target_evals"] += ai.size
        seq_chain[act[np.unique(ai)]] += 1
        np.add.at(evals_chain, act[ai], 1)
    ai, jj = np.nonzero(pos < lens[:, None])
    m_p[ai, jj] = _means(chain, n[act[ai]] + jj, states[ai, jj], out_p[ai, jj])
    res = verify_windows(m_p, m_q, s, z, eta, u_res, z_orth, lens,
                         method=cfg.verify, reuse_orth=cfg.reuse_orth)
    tau, emit = res.n_accepted, res.n_emitted
    # FD-b: the newest target output is the one at X~_min(tau, L_b - 1)
    if cfg.drafter == "free":
        last = np.minimum(tau, lens - 1)
        frozen.set(act, chain, n[act] + last, states[np.arange(A), last], out_p[np.arange(A), last])
    x[act] = res.states[np.arange(A), emit - 1]
    if accept_counts is not None:
        decided = np.minimum(tau + 1, lens)                             # steps whose draft was judged
        start = n[act]                                                  # range-add via differences
        np.add.at(accept_counts[0], start, 1)
        np.add.at(accept_counts[0], start + tau, -1)
        np.add.at(accept_counts[1], start, 1)
        np.add.at(accept_counts[1], start + decided, -1)
    n[act] += emit
    stats["rounds"] += 1
    stats["windows"] += A
    stats["accepted_drafts"] += int(tau.sum())
    stats["scalar_residual_fallbacks"] += res.n_scalar_fallback
    stats["residual_zero_mass"] += int((res.fallbacks != 0).sum())
    hist = stats.setdefault("tau_histogram", [0] * (cfg.window + 1))
    for v, c in zip(*np.unique(tau, return_counts=True)):
        hist[int(v)] += int(c)


def sample_speculative_rng(target, chain: GaussianChain, n: int, rng, cfg: SpecConfig = SpecConfig(),
                           draft=None, x_init=None, dim=None, progress: bool = False) -> SampleResult:
    """Speculative sampling of ``n`` chains (module docstring; noise layout there).

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
    pos = np.zeros(B, np.int64)
    frozen = _Frozen(B, D)
    stats = _new_stats(cfg.drafter, cfg.verify, cfg.window, chain, B)
    stats["freeze"] = cfg.freeze
    Kg = chain.n_gaussian
    counts = (np.zeros(Kg + 1), np.zeros(Kg + 1))                     # difference arrays
    seq_chain, evals_chain = np.zeros(B, np.int64), np.zeros(B, np.int64)
    bar = None
    if progress:
        from tqdm import tqdm
        # leave=True: close() redraws the bar at its final count (total = B * K_g steps). With
        # leave=False the last redraw was rate-limited to an earlier count (e.g. 255956/256000)
        # and that stale line is what a terminal or a log kept.
        bar = tqdm(total=B * Kg, desc=f"speculative {cfg.verify} L={cfg.window}", unit="step")
    sec0 = (_net_seconds(target), _net_seconds(draft))
    t0 = time.perf_counter()
    while np.any(pos < Kg):
        act, lens = window_lengths(chain, cfg.window, pos)
        A, L = act.size, int(lens.max())
        z = rng.standard_normal((A, L, D))
        eta = rng.random((A, L))
        u_res = rng.random(A)
        z_orth = rng.standard_normal((A, D))
        before = int(pos.sum())
        speculative_round(target, chain, cfg, x, pos, frozen, z, eta, u_res, z_orth, stats,
                          draft=draft, accept_counts=counts, seq_chain=seq_chain, evals_chain=evals_chain)
        if bar is not None:
            bar.update(int(pos.sum()) - before)
    if bar is not None:
        bar.close()
    tail = chain.n_steps - Kg
    x = _finish_zero_noise(target, chain, x, stats)
    seq_chain += tail
    evals_chain += tail
    acc, judged = np.cumsum(counts[0])[:Kg], np.cumsum(counts[1])[:Kg]
    per_step = np.where(judged > 0, acc / np.maximum(judged, 1), np.nan)
    stats["acceptance_per_step"] = [None if not np.isfinite(v) else float(v) for v in per_step]
    stats["seq_target_calls_per_chain"] = _summary(seq_chain)
    stats["target_evals_per_chain_summary"] = _summary(evals_chain)
    return SampleResult(x, _close_stats(stats, t0, target, draft, sec0))


def _summary(a):
    return {"mean": float(np.mean(a)), "min": int(np.min(a)), "max": int(np.max(a))}
