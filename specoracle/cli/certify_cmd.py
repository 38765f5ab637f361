"""``specoracle certify IMPL``: calibrated statistical (and, where the noise can be
injected, coupled) certification of a speculative sampler. See docs/CERTIFICATION.md."""
from __future__ import annotations

import argparse
import sys

EPILOG = """examples:
  specoracle certify reference.chain                  # the oracle itself: expect "exact"
  specoracle certify mutant.shared_noise              # a known-wrong sampler: expect "not exact"
  specoracle certify transformers.speculative_sampling --json hf.json
  specoracle certify mypkg.sampler:verify --samples 20000 --alpha 1e-4 --seed 3
  specoracle certify --list                           # every built-in name, one per line

module:function adapters take (p [K+1,V], q [K,V], draft [K], rng) and return the
emitted tokens (see `python -c "import specoracle.proofs.certify as c; help(c)"`).
exit status: 0 exact, 1 not exact, 2 underpowered or not available.
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "certify", help="certify a sampler statistically against the exact laws (alpha, power, verdict)",
        description="Certify a speculative sampler: joint law of the emitted block, law given the accepted "
                    "length, acceptance counts, with a stated false-positive rate (Holm over all checks) "
                    "and power (the smallest TV distance detected).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("impl", nargs="?", help="built-in name (see --list) or module:function")
    p.add_argument("--list", action="store_true", help="print every built-in name, one per line, and exit")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    p.add_argument("--seed", type=int, default=0, help="seed of the run (default 0)")
    p.add_argument("--samples", type=int, default=None,
                   help="rounds per scenario (default: the smallest number reaching the stated power)")
    p.add_argument("--alpha", type=float, default=1e-3, help="false-positive budget of the run (default 1e-3)")
    p.add_argument("--power", type=float, default=0.9, help="stated power (default 0.9)")
    p.add_argument("--tv", type=float, default=0.05, dest="target_tv",
                   help="smallest effect (TV distance) to detect at that power (default 0.05)")
    p.add_argument("--scenarios", default=None, help="comma-separated subset of the battery")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from specoracle.proofs import certify as c

    if args.list:
        for name in c.list_impls():
            print(name)
        return 0
    if not args.impl:
        print("specoracle certify: give IMPL (or --list)", file=sys.stderr)
        return 2
    try:
        spec = c.resolve_impl(args.impl)
    except (ImportError, AttributeError, OSError, RuntimeError) as exc:
        print(f"{args.impl}: not available: {type(exc).__name__}: {exc}")
        return 2
    scen = tuple(s for s in args.scenarios.split(",") if s) if args.scenarios else None
    report = c.certify(spec, samples=args.samples, alpha=args.alpha, power=args.power, target_tv=args.target_tv,
                       seed=args.seed, scenarios=scen, progress=not args.no_progress and sys.stderr.isatty())
    return emit_report(report, args.json)


def emit_report(report, json_path=None) -> int:
    """Print ``report``, write its JSON to ``json_path`` (if given) and return the exit status:
    0 exact, 1 not exact, 2 underpowered (shared with ``certify-engine``)."""
    print(report.format())
    if json_path:
        report.to_json(json_path)
        print(f"wrote {json_path}")
    if report.verdict == "exact":
        return 0
    return 1 if report.verdict.startswith("not exact") else 2
