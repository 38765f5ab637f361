"""``specoracle bench``: kernel benchmarks with memory floors and ratios (DESIGN.md principle 8)."""
from __future__ import annotations

import argparse
import functools
import sys

from specoracle.cli import _args, _deps

EPILOG = """examples:
  specoracle bench --device cpu                    # reference vs numba vs torch-CPU, issue-6 shapes
  specoracle bench --device cpu --quick            # small shapes, a few seconds
  specoracle bench --device cpu --json bench.json  # ... and write the JSON rows
  specoracle bench --device cpu --threads 1 --clock cpu   # on a shared, busy machine
  specoracle bench --suite llm-tau --threads 1     # paired block-vs-chain tau on the zoo pair
  specoracle bench --suite dflash --quick          # DFlash / D2SD vs the AR draft (zoo pair)
  specoracle bench --device cuda --json cuda.json  # torch_cuda / Triton kernels vs plain torch and HF

The suites llm, llm-tau, llm-cuda and dflash need the 'models' extra
(pip install 'specoracle[models]'); --device cuda needs a CUDA device.
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="kernel and end-to-end benchmarks with memory floors and ratios",
        description="Time the reference, the fast-path kernels and plain-framework baselines in "
                    "one run; print each median beside its memory floor (bytes that must be read "
                    "once / copy bandwidth measured in the same run) and the speed-up ratios.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="cpu (default) or cuda: runs that device's suites")
    p.add_argument("--suite", action="append", default=None,
                   help="run only this suite (repeatable; default: every suite of the device)")
    p.add_argument("--json", metavar="FILE", type=_args.output_file, help="write the results as JSON")
    p.add_argument("--quick", action="store_true", help="small shapes (a smoke run)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="probability dtype of the categorical inputs (default float32)")
    p.add_argument("--threads", type=_args.positive_int, default=None,
                   help="threads for numba and torch (default: all cores)")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="wall time (default) or this process's CPU time (for shared machines; "
                        "use with --threads 1)")
    p.add_argument("--list", action="store_true", help="list the registered suites and exit")
    p.set_defaults(func=run, check=functools.partial(check, p))


LIST_UNUSED = ("device", "suite", "json", "quick", "dtype", "threads", "clock")

# suites that load the zoo LLMs (transformers); the others need only the core dependencies
NEEDS_MODELS = {"llm", "llm-tau", "llm-cuda", "dflash"}


def check(parser, args) -> None:
    """Before any timing: the suite names, their extra, the device; --list runs nothing, so
    the options of a run are rejected with it."""
    if args.list:
        _args.reject_unused(args, parser, LIST_UNUSED, "with --list (it lists every suite and runs none)")
        return
    _args.check_device("--device", args.device)
    _require_models(args.suite or (), True)    # before importing the suites (seconds)
    from specoracle.fastpath import bench

    available = bench.suites(args.device)
    names = args.suite or list(available)
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        have = ", ".join(sorted(available)) or "none"
        raise _args.UsageError("--suite", f"no suite {', '.join(unknown)} for device "
                                          f"{args.device!r}; available: {have}")
    _require_models(names, bool(args.suite))


def _require_models(names, chosen: bool) -> None:
    wanted = sorted(NEEDS_MODELS & set(names))
    if wanted:
        what = f"--suite {wanted[0]}" if chosen else f"--suite (default: all, {wanted[0]} included)"
        _deps.require("models", *_deps.LLM, what=what)


def run(args) -> int:
    from tqdm import tqdm

    from specoracle.fastpath import bench

    available = bench.suites(args.device)
    if args.list:
        for name, s in bench.suites().items():
            print(f"{name:12s} {s.device:5s} {s.description}")
        return 0
    names = args.suite or list(available)
    if args.threads:
        import numba
        import torch

        numba.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    bar = tqdm(desc="bench", unit="case", file=sys.stderr, disable=not sys.stderr.isatty())

    def progress(msg: str) -> None:
        bar.set_postfix_str(msg)
        bar.update(1)

    ctx = bench.BenchContext(quick=args.quick, dtype=args.dtype, clock=args.clock, progress=progress)
    doc = bench.run_suites(names, ctx, args.device)
    bar.close()
    print(f"device: {doc['device']}    date: {doc['date']}    "
          f"copy bandwidth: {doc['copy_bandwidth_GBps']} GB/s (read + write, "
          f"{doc.get('copy_threads', 1)} thread(s))    clock: {args.clock}    "
          f"load average: {doc.get('load_average_1min')}")
    for key, val in ctx.extra.items():
        print(f"{key}: {val}")
    print(bench.format_table(doc))
    for line in ctx.notes:
        print(f"note: {line}")
    if args.json:
        bench.write_json(doc, args.json)
        print(f"wrote {args.json}")
    return 0
