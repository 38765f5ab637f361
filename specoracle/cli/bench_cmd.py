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
  specoracle bench --suite device-round --threads 1  # device round vs host round (zoo pair)
  specoracle bench --device cuda --json cuda.json  # torch / Triton kernels vs plain torch and HF
  specoracle bench --list                          # every suite (fastpath/registry.py)
  specoracle bench --device cuda --all --json all.json    # EVERY remaining GPU measurement, one JSON
                                                          # (<= 9 min; docs/PERFORMANCE.md "Prepared GPU session")
  specoracle bench --device cuda --all --only llm-cuda --only dflash-cuda --json again.json
  specoracle bench --device cpu --all --tiny --json t.json  # the same plan at plumbing size on the CPU
  specoracle bench --all --list                    # the stages of --all, their caps and what they cover

The suites llm, llm-tau, llm-cuda, dflash, dflash-cuda, device-round(-cuda) need the 'models' extra
(pip install 'specoracle[models]'); --device cuda needs a CUDA device.
"""


HELP = "kernel and end-to-end benchmarks with memory floors and ratios"
DESCRIPTION = ("Time the reference, the fast-path kernels and plain-framework baselines in one "
               "run; print each median beside its memory floor (bytes that must be read once / "
               "copy bandwidth measured in the same run) and the speed-up ratios.")


def add_parser(subparsers) -> None:
    p = _args.command(subparsers, "bench", HELP, DESCRIPTION, EPILOG)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="cpu (default) or cuda: runs that device's suites")
    p.add_argument("--suite", action="append", default=None,
                   help="run only this suite (repeatable; default: every suite of the device)")
    _args.add_json(p, "write the results as JSON")
    p.add_argument("--quick", action="store_true", help="small shapes (a smoke run)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="probability dtype of the categorical inputs (default float32)")
    p.add_argument("--threads", type=_args.positive_int, default=None,
                   help="threads for numba and torch (default: all cores)")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="wall time (default) or this process's CPU time (for shared machines; "
                        "use with --threads 1)")
    p.add_argument("--list", action="store_true", help="list the registered suites and exit")
    g = p.add_argument_group("--all: the prepared GPU session (fastpath/bench/session.py)")
    g.add_argument("--all", action="store_true",
                   help="run every stage of the session plan (suites, CUDA tests) into ONE JSON "
                        "(--json required)")
    g.add_argument("--tiny", action="store_true",
                   help="with --all: plumbing sizes, the CUDA suites on CPU tensors (--device cpu)")
    g.add_argument("--budget", type=_args.positive_float, default=None, metavar="SECONDS",
                   help="with --all: total time budget; each stage gets min(its cap, what is left) "
                        "(default 540)")
    g.add_argument("--only", action="append", default=None, metavar="STAGE",
                   help="with --all: run only this stage (repeatable; the others are listed as "
                        "not selected)")
    g.add_argument("--with-dflash-train", action="store_true",
                   help="with --all --device cuda: add the time-capped DFlash GPU-recipe training "
                        "stage (last; cap 240 s)")
    g.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                   help="with --all: each suite stage in its own process, killed at its cap "
                        "(default: on with --device cuda, off on the CPU)")
    p.set_defaults(func=run, check=functools.partial(check, p))


LIST_UNUSED = ("device", "suite", "json", "quick", "dtype", "threads", "clock")

# suites that load the zoo LLMs (transformers); the others need only the core dependencies
NEEDS_MODELS = {"llm", "llm-tau", "llm-cuda", "dflash", "dflash-cuda", "device-round", "device-round-cuda"}


SESSION_ONLY = ("tiny", "budget", "only", "with_dflash_train", "isolate")


def check(parser, args) -> None:
    """Before any timing: the suite names, their extra, the device; the --all combinations;
    --list runs nothing, so the options of a run are rejected with it."""
    if args.all:
        return check_all(parser, args)
    _args.reject_unused(args, parser, SESSION_ONLY, "without --all")
    if args.list:
        _args.reject_unused(args, parser, LIST_UNUSED, "with --list (it lists every suite and runs none)")
        return
    _args.check_device("--device", args.device)
    _require_models(args.suite or (), True)    # before importing the suites (seconds)
    from specoracle.fastpath import registry

    available = registry.suites(args.device)
    names = args.suite or list(available)
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        have = ", ".join(sorted(available)) or "none"
        raise _args.UsageError("--suite", f"no suite {', '.join(unknown)} for device "
                                          f"{args.device!r}; available: {have}")
    _require_models(names, bool(args.suite))


def check_all(parser, args) -> None:
    """``--all``: options that the session ignores are rejected; the sizes and the device agree."""
    from specoracle.fastpath.bench import session as bench_session

    _args.reject_unused(args, parser, ("suite", "dtype", "clock", "threads"), "with --all")
    if args.list:
        return
    if args.json is None:
        raise _args.UsageError("--json", "--all writes one JSON: name its file")
    if args.tiny and args.quick:
        raise _args.UsageError("--tiny", "choose one size: --tiny or --quick")
    if args.device == "cpu" and not args.tiny:
        raise _args.UsageError("--device", "--all on the CPU runs only at the plumbing size: add --tiny")
    if args.with_dflash_train and args.device == "cpu":
        raise _args.UsageError("--with-dflash-train", "trains the GPU recipe: needs --device cuda")
    names = bench_session.stage_names()
    for name in args.only or ():
        if name not in names:
            raise _args.UsageError("--only", f"no stage {name!r}; stages: {', '.join(names)}")
    if args.only and "dflash-train" in args.only and not args.with_dflash_train:
        raise _args.UsageError("--only", "stage 'dflash-train' runs only with --with-dflash-train")
    _args.check_device("--device", args.device)


def run_all(args) -> int:
    from specoracle.fastpath.bench import session as bench_session

    if args.list:
        for s in bench_session.PLAN:
            cap = f"{s.cap_s:4.0f} s" if s.cap_s else "   - "
            flag = " (--with-dflash-train)" if s.optional else " (always skipped)" if s.skip else ""
            print(f"{s.name:15s} {s.kind:7s} {cap}  {s.what}{flag}")
        return 0
    size = "tiny" if args.tiny else "quick" if args.quick else "session"
    budget = args.budget or bench_session.DEFAULT_BUDGET_S
    print(f"bench --all: device {args.device}, size {size}, budget {budget:.0f} s", file=sys.stderr)
    doc = bench_session.run_session(
        args.json, device=args.device, size=size, budget_s=budget,
        with_dflash_train=args.with_dflash_train, only=args.only, isolate=args.isolate,
        command=" ".join(["specoracle", *sys.argv[1:]]),
        progress=lambda msg: print(f"[bench --all] {msg}", file=sys.stderr, flush=True))
    print(f"device: {doc['device']} ({(doc.get('gpu') or {}).get('name', doc['host'])})    "
          f"date: {doc['date']}    wall: {doc['wall_s']:.0f} s of {budget:.0f} s")
    for line in bench_session.summary_lines(doc):
        print(line)
    print(f"wrote {args.json}")
    return 0


def _require_models(names, chosen: bool) -> None:
    wanted = sorted(NEEDS_MODELS & set(names))
    if wanted:
        what = f"--suite {wanted[0]}" if chosen else f"--suite (default: all, {wanted[0]} included)"
        _deps.require("models", *_deps.LLM, what=what)


def run(args) -> int:
    if args.all:
        return run_all(args)
    from tqdm import tqdm

    from specoracle.fastpath import bench, registry

    available = registry.suites(args.device)
    if args.list:
        for name, s in registry.suites().items():
            print(f"{name:17s} {s.device:5s} {s.description}")
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
