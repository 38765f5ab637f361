"""Empirical false-positive rate of ``certify`` on exact samplers (not run in CI).

Runs ``certify(impl, seed=s)`` for many seeds and counts the runs whose verdict is
"not exact". With the run-level budget alpha, the count must be consistent with
Binomial(seeds, <= alpha) (Holm controls the family-wise error at alpha, usually
conservatively). Results are recorded in docs/CERTIFICATION.md.

    python -m specoracle.proofs.fp_rate --impl reference.chain --seeds 100 --alpha 0.05 --tv 0.1
"""
from __future__ import annotations

import argparse
import json
import time

from scipy import stats

from .certify import certify


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impl", action="append", default=None)
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--tv", type=float, default=0.1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    out = {}
    for impl in args.impl or ["reference.chain"]:
        t0 = time.perf_counter()
        bad = []
        for seed in range(args.seeds):
            r = certify(impl, alpha=args.alpha, target_tv=args.tv, seed=seed)
            if r.verdict != "exact":
                bad.append((seed, r.verdict))
        k = len(bad)
        ci = stats.binomtest(k, args.seeds).proportion_ci(0.95, method="exact")
        out[impl] = {"seeds": args.seeds, "alpha": args.alpha, "target_tv": args.tv, "false_positives": k,
                     "rate": k / args.seeds, "ci95": [ci.low, ci.high], "failures": bad,
                     "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{impl}: {k}/{args.seeds} false positives at alpha={args.alpha} "
              f"(rate {k / args.seeds:.3f}, 95% CI [{ci.low:.3f}, {ci.high:.3f}]) {bad}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
