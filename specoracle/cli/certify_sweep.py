"""The sweep flags of ``specoracle certify``: ``--sweep N`` runs the battery plus
N random scenarios as tasks on an executor (in-process, local Ray, a Ray cluster), merges
their exact counts and decides once (docs/CERTIFICATION.md, "Sweeps and Ray").

Kept apart from certify_cmd.py: ``add_arguments(parser)`` adds the flags, ``wanted(args)``
says whether a sweep was asked for, ``run(args)`` runs it (exit status as certify's, plus
2 for an incomplete sweep)."""
from __future__ import annotations

import importlib.util
import sys

from specoracle.cli import _args

EPILOG = """
sweeps (battery + N random scenarios; tasks merged exactly; resumable):
  specoracle certify reference.chain --sweep 20 --samples 4000
  specoracle certify reference.chain --sweep 100 --executor ray --workers 2 --results sweep.jsonl
  specoracle certify mutant.shared_noise --sweep 10 --executor ray://head:10001 --json s.json
"""


def add_arguments(p) -> None:
    g = p.add_argument_group("sweeps (Ray is optional: pip install \"specoracle[ray]\")")
    g.add_argument("--sweep", type=_args.nonneg_int, default=None, metavar="N",
                   help="run the battery plus N random scenarios as a sweep (N >= 0)")
    g.add_argument("--executor", default="inprocess",
                   help="inprocess (default) | ray (local Ray started here) | ray://HOST:PORT | auto")
    g.add_argument("--workers", type=_args.positive_int, default=None, help="tasks in flight (local Ray: its CPUs)")
    g.add_argument("--results", metavar="FILE", default=None,
                   help="JSON-lines results file: completed tasks are appended; re-run to resume")
    g.add_argument("--retries", type=_args.nonneg_int, default=2, help="extra attempts of a failing task (default 2)")
    g.add_argument("--chunk", type=_args.positive_int, default=None, help="blocks of 500 rounds per task (default: auto)")


def wanted(args) -> bool:
    return getattr(args, "sweep", None) is not None


def check(args) -> None:
    """Before any heavy work: a sweep's executor (the values are checked by argparse)."""
    if wanted(args) and (bad := check_executor(args.executor)):
        raise _args.UsageError("", bad)


def check_executor(spec: str) -> str | None:
    """``--executor``'s problem as one line (bad spelling; Ray asked for but not installed,
    naming the extra), or None. Shared with ``certify-engine``."""
    from specoracle.proofs.certify.executors import RAY_EXTRA, parse_executor
    from specoracle.reference.types import InvalidInput

    try:
        kind, _ = parse_executor(spec)
    except InvalidInput as exc:
        return f"--executor: {exc.reason}"
    if kind == "ray" and importlib.util.find_spec("ray") is None:
        return f"--executor {spec}: Ray is not installed; {RAY_EXTRA}"
    return None


def run(args, scenarios) -> int:
    from specoracle.proofs.certify.sweep import sweep
    from specoracle.reference.types import InvalidInput

    try:
        rep = sweep(args.impl, args.sweep,
                    samples=args.samples, alpha=args.alpha, power=args.power, target_tv=args.target_tv,
                    seed=args.seed, scenarios=scenarios, executor=args.executor, workers=args.workers,
                    results=args.results, retries=args.retries, chunk=args.chunk,
                    progress=not args.no_progress and sys.stderr.isatty())
    except InvalidInput as exc:
        print(f"specoracle certify: --{exc.argument.replace('_', '-')}: {exc.reason}", file=sys.stderr)
        return 2
    except ConnectionError as exc:
        print(f"specoracle certify: --executor {args.executor}: cannot connect: {exc}", file=sys.stderr)
        return 2
    from ._report import finish
    return finish(rep, args.json)
