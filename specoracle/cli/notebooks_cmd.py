"""`specoracle notebooks`: execute the acceptance notebooks (smoke or full) and render HTML."""
from __future__ import annotations

import functools

from specoracle.cli import _args, _deps

EPILOG = """examples:
  specoracle notebooks --list                    # the notebooks
  specoracle notebooks --smoke                   # execute all in smoke mode (what CI does)
  specoracle notebooks --render out/             # execute fully, write HTML + PNG figures
  specoracle notebooks --render out/ --only 02_block_vs_token

Needs the 'notebooks' extra (pip install 'specoracle[notebooks]'); notebook 05 uses the
zoo LLMs (the 'models' extra and `specoracle zoo install`) and is skipped without them.
"""


HELP = "execute the notebooks; render them to HTML with figures"
DESCRIPTION = ("Executes the jupytext notebooks of notebooks/ in a fresh kernel (full size, or "
               "smoke mode as in CI) and writes HTML with figures.")


def add_parser(sub):
    p = _args.command(sub, "notebooks", HELP, DESCRIPTION, EPILOG)
    p.add_argument("--list", action="store_true", help="list the notebooks and exit")
    p.add_argument("--render", metavar="DIR", type=_args.output_dir,
                   help="execute fully and write DIR/<name>.html and figures")
    p.add_argument("--smoke", action="store_true", help="smoke mode (small sizes, as in CI)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="only these notebooks (file stems)")
    p.set_defaults(func=run, check=functools.partial(check, p))
    return p


def check(parser, args) -> None:
    """Before any notebook runs: the notebook names and the extra."""
    from specoracle import notebooks as nbs

    try:
        known = [p.stem for p in nbs.notebook_paths()]
    except FileNotFoundError as exc:
        raise _args.UsageError("", str(exc)) from None
    unknown = [n for n in args.only or () if n not in known]
    if unknown:
        raise _args.UsageError("--only", f"unknown notebook(s) {', '.join(unknown)}; known: "
                                         + ", ".join(known))
    if args.list:
        return
    _deps.require("notebooks", *_deps.NOTEBOOKS, *(("nbconvert",) if args.render else ()))


def run(args) -> int:
    from specoracle import notebooks as nbs

    paths = nbs.notebook_paths()
    if args.list:
        for p in paths:
            print(p.stem)
        return 0
    if args.render:
        runs = nbs.render(args.render, smoke=args.smoke, names=args.only)
    else:
        runs = [nbs.execute(p, smoke=args.smoke)[0] for p in paths
                if args.only is None or p.stem in args.only]
    bad = 0
    for r in runs:
        print(f"{r.name:32s} {r.status:8s} {r.seconds:7.1f} s  figures={r.figures}  {r.detail}")
        bad += r.status == "error"
    if args.render:
        print(f"rendered into {args.render}")
    return 1 if bad else 0
