"""The ``diffusion`` bench suite: plain ancestral sampling vs speculative sampling
of whole batches, on the zoo's digits net and on the analytic Gaussian mixture.

For each model, K in {100, 1000} steps and window L in {4, 8, 16}: the plain chain, then
the Free Drafter (FD-b, drift frozen) with token verification (Gamma-maximal coupling) and
with block verification, all on the same batch size and seed. Each row reports
``seq_target_calls`` (sequential batched target calls, the NFE of ALGORITHMS.md §3.7),
``target_evals_per_chain`` (total network evaluations), ``mean_accepted_length`` (mean tau
per window), the time of one whole run on the bench's clock (``median_us``: a single run,
not a median of repetitions — runs last seconds; ``--clock cpu --threads 1`` on a shared
machine) and the ratios over the plain chain of the same
(model, K): ``vs_plain`` (wall clock) and ``vs_plain_seq_calls``.

Models: ``digits`` = zoo:digits target (EpsMLP 256 x 4) with the VP DDPM chain of
diffusion_chains.ddpm_chain; ``mixture`` = the oracle's exact denoiser of the 1-D
two-component mixture of ALGORITHMS.md T10 (weights 0.3/0.7, means -2/1.5, stds 0.5/0.3),
DDPM on the same VP grid as the zoo chains (beta_i = 1 - abar(i/K)/abar((i-1)/K): Ho et al.'s
1e-4..0.02 at K = 1000), every step Gaussian.
``--quick``: K = 100 and L = 4 only, batch 16.

Every row also splits its time: ``target_net_s`` (the target network's calls, synchronised on
a GPU), ``host_s`` (the rest: drafting bookkeeping and the float64 NumPy verification) and, per
sequential target call, ``net_ms_per_call`` / ``host_ms_per_call`` (docs: whether a torch twin
of ``verify_windows`` is needed).

Suite ``diffusion-cuda`` (``specoracle bench --device cuda --suite diffusion-cuda``): the digits
rows with the network on the GPU (``TorchDenoiser(device="cuda")``); the mixture's exact
denoiser is NumPy, so it has no GPU rows.
"""
from __future__ import annotations

import numpy as np

from ..registry import register_suite
from . import BenchContext

FULL = {"steps": (100, 1000), "windows": (4, 8, 16), "batch": 64}
QUICK = {"steps": (100,), "windows": (4,), "batch": 16}
TINY = {"steps": (12,), "windows": (2,), "batch": 4}


def _digits(steps, device="cpu"):
    from specoracle.fastpath.models.diffusion.chains import ddpm_chain
    from specoracle.fastpath.models.diffusion.spec import TorchDenoiser
    from specoracle.fastpath.models.zoo.diffusion import load_pair

    tnet, _, _ = load_pair("digits")
    return TorchDenoiser(tnet, device=device), ddpm_chain(steps), 64


def _mixture(steps, device="cpu"):
    from specoracle.reference import diffusion as rd
    from specoracle.reference import targets_continuous as tc

    from specoracle.fastpath.models.diffusion.adapter import NumpyDenoiser, chain_from_reference

    from specoracle.fastpath.models.diffusion.chains import VPSchedule

    ab = VPSchedule().alpha_bar(np.arange(steps + 1) / steps)          # the zoo chains' VP grid
    sched = tc.Schedule(1.0 - ab[1:] / ab[:-1])
    data = tc.GaussianMixtureData(weights=np.array([0.3, 0.7]), means=np.array([[-2.0], [1.5]]),
                                  stds=np.array([0.5, 0.3]))
    sampler = rd.DiffusionSampler(sched, "ddpm", final_noise=True)
    return NumpyDenoiser(tc.ExactDenoiser(data, sched, "eps"), 1), chain_from_reference(sampler, "eps"), 1


MODELS = {"digits": _digits, "mixture": _mixture}


def _times(st: dict) -> dict:
    """The row's split of its time (module docstring)."""
    net = st["target_net_s"] + st.get("draft_net_s", 0.0)
    host = st["wall_clock_s"] - net
    calls = max(st["seq_target_calls"], 1)
    return {"target_net_s": st["target_net_s"], "host_s": host,
            "net_ms_per_call": st["target_net_s"] / calls * 1e3, "host_ms_per_call": host / calls * 1e3}


def run_diffusion(ctx: BenchContext, models=("digits", "mixture"), grid=None, seed=0,
                  device: str = "cpu") -> list:
    """Rows of the suite (module docstring)."""
    import torch

    from specoracle.fastpath.models.diffusion.spec import SpecConfig, sample_plain_rng, sample_speculative_rng

    grid = grid or (TINY if ctx.tiny else QUICK if ctx.quick else FULL)
    B = grid["batch"]
    rows = []
    for model in models:
        for K in grid["steps"]:
            target, chain, dim = MODELS[model](K, device)
            now = ctx.timer()
            t0 = now()
            plain = sample_plain_rng(target, chain, B, np.random.default_rng(seed), dim=dim).stats
            plain["wall_clock_s"] = now() - t0        # on the bench's clock (wall or cpu)
            base = {"op": f"diffusion-{model}", "B": B, "K": K, "d": dim}
            rows.append({**base, "backend": "plain", "L": 1, **_times(plain),
                         "median_us": plain["wall_clock_s"] * 1e6,
                         "seq_target_calls": plain["seq_target_calls"],
                         "target_evals_per_chain": plain["target_evals_per_chain"],
                         "mean_accepted_length": None, "vs_plain": 1.0, "vs_plain_seq_calls": 1.0})
            ctx.progress(f"{model} K={K} plain")
            for L in grid["windows"]:
                for verify in ("token", "block"):
                    cfg = SpecConfig(window=L, drafter="free", verify=verify)
                    t0 = now()
                    st = sample_speculative_rng(target, chain, B, np.random.default_rng(seed), cfg,
                                                dim=dim).stats
                    st["wall_clock_s"] = now() - t0
                    rows.append({**base, "backend": f"spec-{verify}", "L": L, **_times(st),
                                 "median_us": st["wall_clock_s"] * 1e6,
                                 "seq_target_calls": st["seq_target_calls"],
                                 "target_evals_per_chain": st["target_evals_per_chain"],
                                 "mean_accepted_length": st["mean_accepted_length"],
                                 "seq_calls_per_chain": st["seq_target_calls_per_chain"]["mean"],
                                 "vs_plain": plain["wall_clock_s"] / st["wall_clock_s"],
                                 "vs_plain_seq_calls": plain["seq_target_calls"] / st["seq_target_calls"]})
                    ctx.progress(f"{model} K={K} L={L} {verify}")
    ctx.notes.append(f"diffusion: median_us is ONE whole sampling run ({ctx.clock} clock); vs_plain = time "
                     "speed-up, vs_plain_seq_calls = fewer sequential target calls, both against the plain "
                     f"chain of the same model and K; drafter free (FD-b); torch threads {torch.get_num_threads()}")
    return rows


register_suite("diffusion", "cpu", run_diffusion,
               "plain vs speculative (token / block, L 4-16, K 100/1000) on zoo:digits and the T10 mixture")
register_suite("diffusion-cuda", "cuda",
               lambda ctx: run_diffusion(ctx, models=("digits",), device=ctx.device or "cuda"),
               "the diffusion suite's digits rows with the network on the GPU (wall clock vs plain, "
               "host-side time per call)")
