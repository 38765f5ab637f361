"""`specoracle prove`: the exact and symbolic proofs only (proofs/theorems.py registry)."""
from __future__ import annotations

import json
import sys

from specoracle.cli import _args

EPILOG = """examples:
  specoracle prove --quick                         # every theorem, quick sizes
  specoracle prove --json proofs.json              # full sizes, write the JSON certificate
  specoracle prove --only block.lossless block.paper_example
  specoracle prove --list                          # the theorem ids, nothing run
"""


HELP = "run the exact and symbolic proofs (exit 1 if any fails)"
DESCRIPTION = ("Runs every registered theorem of ALGORITHMS.md (exact enumeration with fractions, "
               "sympy case splits, numeric quadrature for the Gaussian ones), prints a table (id, "
               "method, cases, status, seconds) and exits 1 if any proof fails.")


def add_parser(sub):
    p = _args.command(sub, "prove", HELP, DESCRIPTION, EPILOG)
    _args.add_json(p, "write the certificate (JSON) to FILE (checked before the run)")
    p.add_argument("--quick", action="store_true",
                   help="quick sizes (small V and K; what CI runs) instead of the thorough ones")
    p.add_argument("--only", nargs="+", metavar="ID", help="run only these theorem ids")
    p.add_argument("--list", action="store_true", help="list the theorem ids and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def format_table(results) -> str:
    """Plain-text table: id, method, cases, status, seconds (and the detail of failures)."""
    header = ("id", "method", "cases", "status", "seconds")
    rows = [(r.id, r.method, str(r.cases), r.status, f"{r.seconds:.2f}") for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:{'>' if i in (2, 4) else '<'}{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in rows]
    for r in results:
        if r.status != "proved":
            lines.append(f"FAILED {r.id}: {r.detail}")
    return "\n".join(lines)


def certificate(results) -> dict:
    from specoracle import __version__

    return {"specoracle_version": __version__,
            "theorems": [{"id": r.id, "statement": r.statement, "paper": r.paper,
                          "method": r.method, "cases": r.cases, "status": r.status,
                          "seconds": round(r.seconds, 3), "detail": r.detail}
                         for r in results]}


def run(args) -> int:
    from specoracle.proofs.theorems import all_theorems, run_theorems

    known = [t.id for t in all_theorems()]
    if args.list:
        print("\n".join(known))
        return 0
    if args.only:
        unknown = [i for i in args.only if i not in known]
        if unknown:
            raise _args.UsageError("--only", f"unknown theorem id(s): {', '.join(unknown)} (see --list)")
    results = run_theorems(quick=args.quick, ids=args.only,
                           progress=not args.no_progress and sys.stderr.isatty())
    if not results:
        print("no theorem ran: failing", file=sys.stderr)
        return 1
    print(format_table(results))
    failed = [r for r in results if r.status != "proved"]
    total = sum(r.seconds for r in results)
    print(f"\n{len(results)} theorems: {len(results) - len(failed)} proved, {len(failed)} failed "
          f"({total:.1f} s, {'quick' if args.quick else 'thorough'} sizes)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(certificate(results), fh, indent=2)
            fh.write("\n")
        print(f"certificate written to {args.json}")
    return 1 if failed else 0
