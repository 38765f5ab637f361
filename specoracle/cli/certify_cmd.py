"""``specoracle certify IMPL``: calibrated statistical (and, where the noise can be
injected, coupled) certification of a speculative sampler. See docs/CERTIFICATION.md."""
from __future__ import annotations

import sys

from specoracle.cli import _args
from . import certify_sweep
from ._report import EXIT_NOT_LOADABLE, EXIT_UNDERPOWERED, finish

EPILOG = """examples:
  specoracle certify reference.chain                  # the oracle itself: expect "exact"
  specoracle certify mutant.shared_noise              # a known-wrong sampler: expect "not exact"
  specoracle certify reference.batch                  # B ragged requests per call (vLLM V1 layout)
  specoracle certify transformers.speculative_sampling --json hf.json
  specoracle certify mypkg.sampler:verify --samples 20000 --alpha 1e-4 --seed 3
  specoracle certify --list                           # every built-in name, one per line

module:function adapters take (p [K+1,V] float64, q [K,V] float64, draft [K] int64, rng)
and return the emitted token ids (n_accepted + 1 integers; see docs/CERTIFICATION.md or
`python -c "import specoracle.proofs.certify as c; help(c)"`). The current directory is
on the import path, as with `python -m`.
exit status: 0 exact, 1 not exact, 2 underpowered, incomplete (sweep) or bad usage, 3 IMPL not loadable
(missing module, function or package), 4 output format error (the adapter's output
breaks the protocol).
"""


HELP = "certify a sampler statistically against the exact laws (alpha, power, verdict)"
DESCRIPTION = ("Certify a speculative sampler: joint law of the emitted block, law given the "
               "accepted length, acceptance counts, with a stated false-positive rate (Holm over "
               "all checks) and power (the smallest TV distance detected).")


def add_parser(subparsers) -> None:
    p = _args.command(subparsers, "certify", HELP, DESCRIPTION, EPILOG + certify_sweep.EPILOG)
    p.add_argument("impl", nargs="?", help="built-in name (see --list) or module:function")
    p.add_argument("--list", action="store_true", help="print every built-in name, one per line, and exit")
    _args.add_json(p, "write the report as JSON")
    p.add_argument("--seed", type=_args.seed, default=0, help="seed of the run (default 0)")
    p.add_argument("--samples", type=_args.int_at_least(10), default=None,  # certify's minimum
                   help="rounds per scenario (default: the smallest number reaching the stated power)")
    p.add_argument("--alpha", type=_args.unit_open, default=1e-3,
                   help="false-positive budget of the run (default 1e-3)")
    p.add_argument("--power", type=_args.unit_open, default=0.9, help="stated power (default 0.9)")
    p.add_argument("--tv", type=_args.unit_open_closed, default=0.05, dest="target_tv",
                   help="smallest effect (TV distance) to detect at that power (default 0.05)")
    p.add_argument("--scenarios", default=None, help="comma-separated subset of the battery")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress (default: a bar on a terminal, plain lines on stderr otherwise)")
    p.add_argument("--no-early-stop", action="store_true",
                   help="run the whole battery even after a decisive rejection")
    certify_sweep.add_arguments(p)   # --sweep, --executor, --workers, --results, ...
    p.set_defaults(func=run, check=_check)


def _check(args) -> None:
    """Before any work: IMPL (unless --list) and the sweep flags."""
    _args.required("impl", "IMPL", unless="list")(args)
    certify_sweep.check(args)


def _not_loadable(impl: str, exc: Exception) -> str:
    """One line saying why IMPL cannot be loaded."""
    if isinstance(exc, ModuleNotFoundError) and ":" in impl and exc.name == impl.partition(":")[0]:
        return (f"specoracle certify: {impl}: not loadable: no module named {exc.name!r} "
                f"(searched the current directory and sys.path)")
    return f"specoracle certify: {impl}: not loadable: {type(exc).__name__}: {exc}"


def run(args) -> int:
    import os

    from specoracle.proofs import certify as c
    from specoracle.reference.types import InvalidInput

    if args.list:
        for name in c.list_impls():
            print(name)
        return 0
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: a module:function in the current directory loads
    try:
        spec = c.resolve_impl(args.impl)
    except InvalidInput as exc:
        print(f"specoracle certify: {exc}", file=sys.stderr)
        return EXIT_UNDERPOWERED
    except (ImportError, AttributeError, OSError, RuntimeError) as exc:
        print(_not_loadable(args.impl, exc), file=sys.stderr)
        return EXIT_NOT_LOADABLE
    scen = tuple(s for s in args.scenarios.split(",") if s) if args.scenarios else None
    if certify_sweep.wanted(args):
        return certify_sweep.run(args, scen)
    try:
        report = c.certify(spec, samples=args.samples, alpha=args.alpha, power=args.power,
                           target_tv=args.target_tv, seed=args.seed, scenarios=scen,
                           progress=not args.no_progress, stop_early=not args.no_early_stop)
    except InvalidInput as exc:
        print(f"specoracle certify: {exc}", file=sys.stderr)
        return EXIT_UNDERPOWERED
    return finish(report, args.json)
