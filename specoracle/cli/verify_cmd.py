"""`specoracle verify`: proofs + certification + fast-path parity, one table."""
from __future__ import annotations

import sys

from specoracle.cli import _args

EPILOG = """examples:
  specoracle verify                       # everything, on the embedded defaults
  specoracle verify --json cert.json      # ... and write the certificate (JSON)
  specoracle verify --thorough            # larger proof sizes (slower)
"""


HELP = "run every proof, certify the reference and each fast-path backend"
DESCRIPTION = ("The main job: runs every theorem (exact, symbolic, numeric), certifies the "
               "reference samplers statistically, and checks every available fast-path backend "
               "against the oracle under the same noise. Prints one table; exits 1 on any "
               "failure.")


def add_parser(sub):
    p = _args.command(sub, "verify", HELP, DESCRIPTION, EPILOG)
    _args.add_json(p, "write the certificate to FILE (checked before the run)")
    p.add_argument("--thorough", action="store_true", help="full proof sizes instead of the quick ones")
    p.add_argument("--seed", type=_args.seed, default=0,
                   help="seed of the statistical checks (default 0; an integer >= 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from specoracle.verify import format_table, run_verify, write_certificate

    rows = run_verify(quick=not args.thorough, seed=args.seed,
                      progress=not args.no_progress and sys.stderr.isatty())
    print(format_table(rows))
    failed = [r for r in rows if r.status == "fail"]
    if not rows:
        print("no check ran: failing")
        return 1
    print(f"\n{len(rows)} checks: {len(rows) - len(failed)} passed, {len(failed)} failed")
    if args.json:
        write_certificate(rows, args.json)
        print(f"certificate written to {args.json}")
    return 1 if failed else 0
