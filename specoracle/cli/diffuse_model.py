"""``specoracle diffuse --model ...``: speculative sampling of a trained denoiser.

The ``diffuse`` command (specoracle/cli/diffuse_cmd.py) runs the analytic targets; the lead
wires this module in: :func:`add_model_arguments` adds the model options to its parser
(only those it does not define already) and :func:`run_model_diffuse` runs when
``--model`` is given. Models: ``zoo:moons``, ``zoo:digits`` (the zoo pairs, shipped), or
``diffusers:DIR`` (a local folder with a diffusers ``UNet2DModel`` in ``DIR/unet`` or
``DIR`` and a ``DDPMScheduler`` config in ``DIR/scheduler``; no hub access).

Outputs: a sample grid (``--png``; digits: 8x8 images, moons: a scatter over the data),
``--json`` statistics (NFE accounting, accepted lengths, per-step acceptance, sample
moments, and with ``--compare-plain`` the plain chain's figures and the speed-ups), and
``--out`` the samples as .npy.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from specoracle.fastpath.models.diffusion.load import load_model

MODEL_EXAMPLES = """model examples:
  specoracle diffuse --model zoo:digits --steps 1000 --window 8 --drafter free --verify block \\
      --n 256 --seed 0 --png samples.png --json stats.json
  specoracle diffuse --model zoo:moons --steps 100 --window 4 --verify token --compare-plain
  specoracle diffuse --model zoo:digits --steps 100 --drafter independent --verify reflection --n 64
"""

# option -> (kwargs); added only where the parser does not have the option yet
_OPTIONS = [
    ("--model", dict(default=None, help="zoo:moons | zoo:digits | diffusers:DIR (a trained denoiser)")),
    ("--n", dict(type=int, default=None, help="number of samples / chains (model mode; default 256)")),
    ("--steps", dict(type=int, default=100, help="sampling steps K")),
    ("--window", dict(type=int, default=8, help="speculative window L")),
    ("--drafter", dict(default="free", help="free (FD-b, default) | frozen (FD-a) | independent "
                                            "(the zoo pair's draft net) | target (exact draft)")),
    ("--verify", dict(default="block", help="block | token | reflection | none (plain chain)")),
    ("--sampler", dict(default="ddpm", help="ddpm (ancestral) | em (Euler-Maruyama)")),
    ("--seed", dict(type=int, default=0, help="seed of the numpy Generator")),
    ("--json", dict(default=None, help="write the statistics to this JSON file")),
    ("--out", dict(default=None, help="write the samples [n, D] to this .npy file")),
    ("--png", dict(default=None, help="write a sample grid / scatter plot (matplotlib) to this PNG")),
    ("--freeze", dict(default="drift", choices=["drift", "output"],
                      help="what the frozen / free drafter freezes (default drift)")),
    ("--compare-plain", dict(action="store_true", help="also run the plain target chain, report speed-ups")),
    ("--threads", dict(type=int, default=None, help="torch CPU threads (default: torch's)")),
    ("--device", dict(default="cpu", help="cpu | cuda")),
    ("--variance", dict(default="beta", choices=["beta", "posterior"],
                        help="DDPM variance of the zoo chains (default beta: every step Gaussian)")),
]


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the model options to ``parser``, skipping any option string it already has."""
    have = set(parser._option_string_actions)
    for opt, kw in _OPTIONS:
        if opt not in have:
            parser.add_argument(opt, **kw)


def build_parser() -> argparse.ArgumentParser:
    """A standalone parser (tests; ``python -m specoracle.cli.diffuse_model``)."""
    p = argparse.ArgumentParser(prog="specoracle diffuse", description=__doc__.split("\n\n")[0],
                                epilog=MODEL_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p)
    return p


def _arg(args, name, default=None):
    v = getattr(args, name, None)
    return default if v is None else v


def moments(x: np.ndarray) -> dict:
    x = np.asarray(x, np.float64)
    return {"mean": x.mean(axis=0).tolist() if x.shape[1] <= 8 else float(x.mean()),
            "std": x.std(axis=0).tolist() if x.shape[1] <= 8 else float(x.std()),
            "min": float(x.min()), "max": float(x.max())}


def write_png(path, samples: np.ndarray, dataset: str, title: str = "") -> None:
    """Digits: a grid of 8x8 images; 2-D data: a scatter plot over the training data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if dataset == "digits" or samples.shape[1] == 64:
        from specoracle.fastpath.models.diffusion.data import to_images

        imgs = to_images(samples)
        n = imgs.shape[0]
        cols = int(np.ceil(np.sqrt(n)))
        rows = int(np.ceil(n / cols))
        grid = np.full((rows * 9 + 1, cols * 9 + 1), 16.0)
        for i in range(n):
            r, c = divmod(i, cols)
            grid[1 + r * 9:1 + r * 9 + 8, 1 + c * 9:1 + c * 9 + 8] = imgs[i]
        fig, ax = plt.subplots(figsize=(max(3, cols * 0.35), max(3, rows * 0.35) + 0.4))
        ax.imshow(grid, cmap="gray_r", vmin=0, vmax=16, interpolation="nearest")
        ax.axis("off")
    else:
        fig, ax = plt.subplots(figsize=(5, 4))
        if dataset == "moons":
            from specoracle.fastpath.models.diffusion.data import load_dataset

            d = load_dataset("moons", n=2000, seed=1)
            ax.scatter(d[:, 0], d[:, 1], s=2, c="0.75", label="data")
        ax.scatter(samples[:, 0], samples[:, 1], s=3, c="C0", label="samples")
        ax.legend(loc="upper right", fontsize=7)
        ax.set_aspect("equal")
    if title:
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_model_diffuse(args) -> int:
    """Run ``specoracle diffuse --model ...`` (module docstring). Returns the exit status."""
    import torch

    from specoracle.reference.types import InvalidInput

    from specoracle.fastpath.models.diffusion.spec import SpecConfig, sample_plain_rng, sample_speculative_rng

    try:
        if args.threads:
            torch.set_num_threads(int(args.threads))
        n = int(_arg(args, "n", 256))       # --chains (the analytic mode's 10^5 default) is not used here
        steps = int(_arg(args, "steps", 100))
        verify = _arg(args, "verify", "block")
        drafter = _arg(args, "drafter", "free")
        seed = int(_arg(args, "seed", 0))
        target, draft, chain, info = load_model(args.model, steps, _arg(args, "sampler", "ddpm"),
                                                _arg(args, "variance", "beta"), _arg(args, "device", "cpu"))
        if drafter == "target":             # the exact draft: every draft accepted (T11)
            draft, drafter = target, "independent"
        progress = sys.stderr.isatty()
        if verify == "none":
            res = sample_plain_rng(target, chain, n, np.random.default_rng(seed))
        else:
            cfg = SpecConfig(window=int(_arg(args, "window", 8)), drafter=drafter, verify=verify,
                             freeze=_arg(args, "freeze", "drift"))
            res = sample_speculative_rng(target, chain, n, np.random.default_rng(seed), cfg,
                                         draft=draft, progress=progress)
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stats = dict(res.stats)
    stats.update(info)
    stats["seed"] = seed
    stats["n"] = n
    stats["sample_moments"] = moments(res.samples)
    stats["threads"] = torch.get_num_threads()
    stats["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if getattr(args, "compare_plain", False) and verify != "none":
        target.reset_counters()
        plain = sample_plain_rng(target, chain, n, np.random.default_rng(seed + 1))
        ps = plain.stats
        stats["plain"] = {k: ps[k] for k in ("seq_target_calls", "target_evals", "wall_clock_s")}
        stats["speedup_sequential_calls"] = ps["seq_target_calls"] / stats["seq_target_calls"]
        stats["speedup_wall_clock"] = ps["wall_clock_s"] / stats["wall_clock_s"]
    if args.json:
        Path(args.json).write_text(json.dumps(stats, indent=2) + "\n")
    if getattr(args, "out", None):
        np.save(args.out, res.samples)
    if args.png:
        write_png(args.png, res.samples, info.get("dataset", ""),
                  f"{args.model}  {verify}/{drafter}  K={steps}  L={_arg(args, 'window', 8)}  seed={seed}")
    line = (f"{args.model}: {n} samples, {steps} steps, verify={verify}, drafter={drafter}: "
            f"{stats['seq_target_calls']} sequential target calls (plain chain: {chain.n_steps}), "
            f"{stats['target_evals_per_chain']:.1f} target evaluations per chain")
    if "mean_accepted_length" in stats:
        line += f", mean accepted length {stats['mean_accepted_length']:.3f}"
    line += f", {stats['wall_clock_s']:.2f} s"
    print(line)
    if "plain" in stats:
        print(f"plain chain: {stats['plain']['seq_target_calls']} calls, {stats['plain']['wall_clock_s']:.2f} s; "
              f"speed-up {stats['speedup_sequential_calls']:.2f}x in sequential calls, "
              f"{stats['speedup_wall_clock']:.2f}x wall clock")
    return 0


def main(argv=None) -> int:  # pragma: no cover - thin wrapper
    args = build_parser().parse_args(argv)
    if not args.model:
        print("error: --model is required here", file=sys.stderr)
        return 2
    return run_model_diffuse(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
