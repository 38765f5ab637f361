"""``specoracle diffuse``: speculative diffusion sampling on analytic targets.

Targets (``--data``): Gaussian data or a Gaussian mixture with exact denoisers
(reference/targets_continuous.py); the sampler (``--sampler``) turns them into a
Gaussian Markov chain; the loop is reference/diffusion.py's ``speculative_sample``.
The module is split so that another source of targets (``--model``, trained zoo
models) is one more branch of :func:`build_problem`.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

from specoracle.cli import _args, _deps

EPILOG = """examples:
  specoracle diffuse --data gmm --weights 0.3,0.7 --means=-2,1.5 --stds 0.5,0.3 --dim 1 \\
      --steps 50 --schedule linear:1e-3:0.2 --sampler ddpm --drafter free --window 4 \\
      --verify block --chains 100000 --seed 0 --out samples.npy --json stats.json
  specoracle diffuse --data gmm --weights 0.3,0.7 --means=-2,1.5 --stds 0.5,0.3 --verify none
  specoracle diffuse --data gaussian --means 0.7 --stds 0.4 --dim 3 --drafter frozen --verify token
  specoracle diffuse --data gaussian --means 0.7 --stds 0.4 --drafter independent \\
      --draft-std-scale 1.25 --verify reflection --bonus

names: --drafter free = FD-b (newest target output of the last verification pass,
one batched target call per window; the default), frozen = FD-a (paper 2's frozen
target, one extra sequential call per window), independent = a separate draft
denoiser (the data law with stds scaled by --draft-std-scale), target = the target
itself (every draft accepted). --verify block = Gaussian block verification, token =
Gamma coupling with the exact residual, reflection = reflection maximal coupling,
none = the plain target chain (K sequential calls). Sequential target calls are the
NFE of ALGORITHMS.md §3.7: one batched call over a window counts once.

Options of the other mode are rejected: --n, --png, --compare-plain, --variance, --threads,
--device need --model; --data, --weights, --means, --stds, --dim, --schedule, --final-noise,
--parameterization, --draft-std-scale, --bonus, --chains, --reference are the analytic
targets' (not with --model). --model needs the 'models' extra: pip install 'specoracle[models]'.
"""


HELP = "speculative diffusion sampling on analytic targets (stats as JSON)"
DESCRIPTION = ("Run B chains of a diffusion sampler speculatively (exactly the target chain's "
               "law) and report acceptance, accepted lengths and NFE.")


def add_parser(subparsers):
    p = _args.command(subparsers, "diffuse", HELP, DESCRIPTION, EPILOG)
    p.add_argument("--data", choices=["gmm", "gaussian"], default="gmm",
                   help="analytic data law (default gmm)")
    p.add_argument("--weights", default="0.3,0.7", type=_args.float_list(_args.positive_float),
                   help="mixture weights, comma separated (gmm)")
    p.add_argument("--means", default="-2,1.5", type=_args.float_list(_args.any_float),
                   help="component means: one value per component (broadcast over --dim) or "
                        "components x dim values row-major; gaussian: 1 or dim values")
    p.add_argument("--stds", default="0.5,0.3", type=_args.float_list(_args.positive_float),
                   help="component standard deviations (gaussian: one)")
    p.add_argument("--dim", type=_args.positive_int, default=1, help="data dimension d (default 1)")
    p.add_argument("--steps", type=_args.positive_int, default=50, help="diffusion steps T (default 50)")
    p.add_argument("--schedule", default="linear:1e-3:0.2", type=schedule,
                   help="beta schedule: linear:START:END or const:BETA, betas in (0, 1) "
                        "(default linear:1e-3:0.2)")
    p.add_argument("--sampler", choices=["ddpm", "em"], default="ddpm",
                   help="ddpm ancestral or em (Euler-Maruyama of the reverse VP-SDE)")
    p.add_argument("--final-noise", action="store_true",
                   help="keep sigma_1^2 = beta_1 (default: the last step is the deterministic mean)")
    p.add_argument("--parameterization", choices=["eps", "x0", "score"], default="eps",
                   help="what the (exact) denoiser predicts (default eps)")
    p.add_argument("--drafter", choices=["free", "frozen", "independent", "target"], default="free",
                   help="drafter (default free = FD-b); see below")
    p.add_argument("--freeze", choices=["drift", "output"], default="drift",
                   help="free/frozen drafters freeze the whole drift (default) or the network output")
    p.add_argument("--draft-std-scale", type=_args.positive_float, default=1.25,
                   help="independent drafter: its data stds are the target's times this (default 1.25)")
    p.add_argument("--window", type=_args.positive_int, default=4, help="window (block) length L (default 4)")
    p.add_argument("--verify", choices=["block", "token", "reflection", "none"], default="block",
                   help="verification (default block); none = plain target chain")
    p.add_argument("--bonus", action="store_true",
                   help="draw the bonus step when a whole window is accepted (default off, §9)")
    p.add_argument("--chains", type=_args.positive_int, default=100000,
                   help="number of chains B (default 1e5)")
    p.add_argument("--seed", type=_args.seed, default=0, help="seed of numpy.random.default_rng")
    p.add_argument("--out", type=_args.output_file, help="write the final samples [B, d] to this .npy file")
    p.add_argument("--json", type=_args.output_file, help="write the statistics to this JSON file")
    p.add_argument("--reference", action="store_true",
                   help="also compute the target chain's exact moments (closed form for "
                        "gaussian data, a 2001-point grid for 1-D gmm)")
    # Trained denoisers: --model zoo:digits | zoo:moons | diffusers:DIR and its options.
    from specoracle.cli.diffuse_model import MODEL_EXAMPLES, add_model_arguments
    add_model_arguments(p)
    _args.retype(p, n=_args.positive_int, png=_args.output_file, threads=_args.positive_int,
                 device=_args.device)
    p.epilog = (p.epilog or "") + "\n" + MODEL_EXAMPLES
    p.set_defaults(func=run, check=functools.partial(check, p))


SCHEDULE_FORMAT = "expected 'linear:START:END' or 'const:BETA'"
ANALYTIC_ONLY = ("data", "weights", "means", "stds", "dim", "schedule", "final_noise",
                 "parameterization", "draft_std_scale", "bonus", "chains", "reference")
MODEL_ONLY = ("n", "png", "compare_plain", "variance", "threads", "device")


def schedule(text: str) -> str:
    """``type=`` of --schedule: the format, then each beta in (0, 1)."""
    kind, *values = str(text).split(":")
    if (kind, len(values)) not in (("linear", 2), ("const", 1)):
        raise argparse.ArgumentTypeError(f"{SCHEDULE_FORMAT}, got {text!r}")
    try:
        betas = [float(v) for v in values]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{SCHEDULE_FORMAT} with numbers, got {text!r}") from None
    bad = [b for b in betas if not 0 < b < 1]
    if bad:
        raise argparse.ArgumentTypeError(f"beta {bad[0]:g} is out of range: every beta must lie "
                                         f"in (0, 1) (got {text!r})")
    return text


def check(parser, args) -> None:
    """Before any work: the options of the other mode, the model and its extra, the device."""
    if not args.model:
        _args.reject_unused(args, parser, MODEL_ONLY, "without --model (analytic targets)")
        return
    _args.reject_unused(args, parser, ANALYTIC_ONLY, "with --model")
    spec = args.model
    if spec.startswith("zoo:"):
        _deps.require("models", "safetensors", what="--model")
        from specoracle.fastpath.models.zoo.diffusion import ZOO

        entry = ZOO.get(spec[len("zoo:"):])
        if entry is None:
            raise _args.UsageError("--model", f"unknown model {spec!r}; known: "
                                   + ", ".join(f"zoo:{n}" for n in ZOO) + " (or diffusers:DIR)")
        if args.png and entry.dataset == "moons":  # the scatter plot draws the data (scikit-learn)
            _deps.require("models", "sklearn", what="--png")
    elif spec.startswith("diffusers:"):
        _deps.require("models", "diffusers", "safetensors", what="--model")
        folder = spec[len("diffusers:"):]
        if not Path(folder).expanduser().is_dir():
            raise _args.UsageError("--model", f"{folder}: no such directory (diffusers:DIR)")
    else:
        raise _args.UsageError("--model", f"expected zoo:NAME or diffusers:DIR, got {spec!r}")
    _args.check_device("--device", args.device)


def _floats(text, name):
    from specoracle.reference.types import InvalidInput

    try:
        return [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise InvalidInput(name, f"expected comma-separated numbers, got {text!r}") from None


def build_problem(args):
    """(target model, drafter, data law, sampler) for the analytic targets."""
    import numpy as np

    from specoracle.reference import diffusion as df
    from specoracle.reference import targets_continuous as tc
    from specoracle.reference.types import InvalidInput

    if args.dim < 1:
        raise InvalidInput("dim", f"dimension must be >= 1, got {args.dim}")
    schedule = tc.parse_schedule(args.schedule, args.steps)
    sampler = df.DiffusionSampler(schedule, args.sampler, final_noise=args.final_noise)
    means = np.array(_floats(args.means, "means"))
    stds = np.array(_floats(args.stds, "stds"))
    if args.data == "gaussian":
        mu = means if means.size == args.dim else (np.full(args.dim, means[0]) if means.size == 1 else None)
        if mu is None:
            raise InvalidInput("means", f"gaussian data needs 1 or {args.dim} means, got {means.size}")
        if stds.size < 1:
            raise InvalidInput("stds", "gaussian data needs a standard deviation")
        data = tc.GaussianData(mu, stds[0])
        draft_data = tc.GaussianData(mu, stds[0] * args.draft_std_scale)
    else:
        w = np.array(_floats(args.weights, "weights"))
        m = w.size
        if means.size == m:
            mu = np.repeat(means[:, None], args.dim, axis=1)
        elif means.size == m * args.dim:
            mu = means.reshape(m, args.dim)
        else:
            raise InvalidInput("means", f"expected {m} or {m * args.dim} values, got {means.size}")
        if stds.size != m:
            raise InvalidInput("stds", f"expected {m} standard deviations, got {stds.size}")
        data = tc.GaussianMixtureData(w, mu, stds)
        draft_data = tc.GaussianMixtureData(w, mu, stds * args.draft_std_scale)
    target = df.TargetModel(sampler, tc.ExactDenoiser(data, schedule, args.parameterization))
    drafter = df.make_drafter(args.drafter, target, freeze=args.freeze,
                              draft_denoiser=tc.ExactDenoiser(draft_data, schedule, args.parameterization))
    return target, drafter, data, sampler


def reference_moments(data, sampler):
    """Exact moments of the target chain's final state, or None where not available."""
    from specoracle.reference import targets_continuous as tc

    if isinstance(data, tc.GaussianData):
        m, v = tc.linear_chain_law(data, sampler)
        return {"method": "linear recursion (T9)", "mean": m[-1].tolist(),
                "var": [float(v[-1])] * data.dim}
    if data.dim == 1:
        # 2001 points: the moments agree with 8001 points to ~1e-11 (docs/CONTINUOUS.md)
        mean, var, neg = tc.grid_moments_1d(data, sampler, n=2001)
        return {"method": "grid propagation, 2001 points on [-8, 8] (T10)", "mean": [mean],
                "var": [var], "p_negative": neg}
    return None


def run(args) -> int:
    if getattr(args, "model", None):
        from specoracle.cli.diffuse_model import run_model_diffuse
        return run_model_diffuse(args)
    import numpy as np

    from specoracle.fastpath.progress import progress_bar
    from specoracle.fastpath.numpy_batch import gaussian as numpy_batch_gaussian
    from specoracle.reference import diffusion as df
    from specoracle.reference.types import InvalidInput

    try:
        target, drafter, data, sampler = build_problem(args)
        if args.chains < 1:
            raise InvalidInput("chains", f"need at least one chain, got {args.chains}")
        if args.window < 1:
            raise InvalidInput("window", f"window must be >= 1, got {args.window}")
    except InvalidInput as exc:
        print(f"specoracle diffuse: error: {exc}", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    x0 = rng.standard_normal((args.chains, data.dim))
    t0 = time.perf_counter()
    total = args.chains * sampler.n_speculative
    desc = "target chain" if args.verify == "none" else f"speculative ({args.verify})"
    with progress_bar(total, desc, sys.stderr.isatty()) as on_round:
        res = df.speculative_sample(target, drafter, x0, rng, window=args.window, verify=args.verify,
                                    bonus=args.bonus, verifier=numpy_batch_gaussian, on_round=on_round)
    seconds = time.perf_counter() - t0
    x = res.samples
    acc = res.acceptance_per_step
    stats = {
        "config": {k: v for k, v in vars(args).items() if k not in ("func", "check")},
        "seconds": seconds,
        "chain_steps": sampler.n_steps,
        "speculative_steps": sampler.n_speculative,
        "acceptance_rate_per_step": [None if not np.isfinite(a) else float(a) for a in acc],
        "acceptance_rate_overall": (float(res.accepted_per_step.sum() / res.drafted_per_step.sum())
                                    if res.drafted_per_step.sum() else None),
        "accepted_length_histogram": res.tau_hist.tolist(),
        **df.nfe_summary(res),
        "sequential_target_calls_plain_chain": sampler.n_steps,
        "fallbacks": res.fallbacks,
        "sample_moments": {"mean": x.mean(axis=0).tolist(), "var": x.var(axis=0).tolist(),
                           **({"p_negative": float(np.mean(x[:, 0] < 0))} if data.dim == 1 else {})},
    }
    if args.reference:
        stats["reference_moments"] = reference_moments(data, sampler)
    calls = stats["sequential_target_calls"]["mean"]
    print(f"chains {args.chains}  steps {sampler.n_steps}  drafter {args.drafter}  verify {args.verify}"
          f"  window {args.window}  ({seconds:.1f} s)")
    if stats["acceptance_rate_overall"] is not None:
        print(f"acceptance {stats['acceptance_rate_overall']:.4f}   accepted lengths "
              f"{res.tau_hist.tolist()}")
    print(f"sequential target calls per chain {calls:.3f} (plain chain {sampler.n_steps})   "
          f"target evaluations {stats['target_network_evaluations']['mean']:.2f}   "
          f"draft evaluations {stats['draft_network_evaluations']['mean']:.2f}")
    print("sample mean " + ", ".join(f"{v:.5f}" for v in stats["sample_moments"]["mean"][:4])
          + "   var " + ", ".join(f"{v:.5f}" for v in stats["sample_moments"]["var"][:4]))
    if args.reference and stats["reference_moments"]:
        ref = stats["reference_moments"]
        print("exact mean  " + ", ".join(f"{v:.5f}" for v in ref["mean"][:4])
              + "   var " + ", ".join(f"{v:.5f}" for v in ref["var"][:4]) + f"   ({ref['method']})")
    if args.out:
        np.save(args.out, x)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(stats, fh, indent=2)
    return 0
