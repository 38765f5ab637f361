"""Parity of every fast-path backend with the oracle, op by op and row by row.

``run_parity(backend, quick=True)`` runs each registered op (fastpath/registry.py)
of one backend on the op's input cases, calls the oracle on every row, and
applies the op's comparison rule (DESIGN.md principle 4; reasons and constants
in tests/TOLERANCES.md, section "Fast path parity"):

``exact``
    float64 kernels: the row's :class:`Verdict` (accepted count, tokens, bonus,
    fallbacks, tree path) equals the oracle's, and a row the oracle rejects
    (InvalidInput) has a non-OK status in the batch.
``decisions_with_margin``
    float32 / bf16 inputs: the decisions must match wherever every decision the
    oracle made on that row (in float64, on the upcast inputs) has a margin above
    ``MARGIN_MULTIPLE * eps(dtype)``; rows with a smaller margin are *excluded*
    (not compared). The excluded fraction must stay <= ``MAX_EXCLUDED_FRACTION``
    and is reported. Margins (all in float64): accept test |u q(x) - p(x)|; block
    test |eta (R + 1 - p_i) - R| (index < K) and |eta - p_K| (index K); a draw's
    distance from u * total to the two cumulative sums around the drawn token,
    divided by the total; a residual's mass (zero-mass fallback or not).
``allclose_vs_naive``
    continuous outputs: accept decisions compared with margin as above, and the
    output vectors compared with ``numpy.allclose`` against the oracle's.

Per-op results (:class:`OpResult`) feed the parity test and ``specoracle verify``.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from . import registry

#: decisions closer than this many epsilons of the input dtype are not compared
MARGIN_MULTIPLE = 32
#: at most this fraction of rows may be excluded by ``decisions_with_margin``
MAX_EXCLUDED_FRACTION = 0.02


@dataclass
class OpResult:
    op: str
    backend: str
    rule: str
    status: str              # "pass" | "fail" | "missing"
    rows: int = 0            # rows compared (excluded rows not counted)
    mismatches: int = 0
    excluded: int = 0
    excluded_fraction: float = 0.0
    cases: int = 0
    seconds: float = 0.0
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict:
        return asdict(self)


def margin_tolerance(dtype) -> float:
    """``MARGIN_MULTIPLE * eps(dtype)`` (0 for float64: every decision is compared)."""
    dt = np.dtype(dtype) if not isinstance(dtype, str) or dtype != "bfloat16" else None
    if dt is None:
        eps = 2.0 ** -7  # bfloat16: 8 significant bits
    elif dt == np.float64:
        return 0.0
    else:
        eps = float(np.finfo(dt).eps)
    return MARGIN_MULTIPLE * eps


def run_op(backend: str, op: registry.Op, quick: bool = True, cases=None,
           function=None) -> OpResult:
    """Run one op of one backend over its cases (or the given ``cases``); ``function``
    overrides the backend's twin (negative controls in the tests)."""
    res = OpResult(op=op.name, backend=backend, rule=op.rule, status="pass")
    t0 = time.perf_counter()
    try:
        fn = function if function is not None else registry.resolve(backend, op)
    except registry.MissingOp as exc:
        res.status = "missing"
        res.detail = str(exc)
        return res
    cases = op.cases(quick) if cases is None else cases
    first_bad = ""
    for case in cases:
        res.cases += 1
        try:
            out = op.call(fn, case)
        except Exception as exc:  # noqa: BLE001 - a crash is a parity failure, reported
            res.mismatches += case.batch
            first_bad = first_bad or f"{case.name}: backend raised {type(exc).__name__}: {exc}"
            continue
        for b in range(case.batch):
            try:
                ref = op.reference_row(case, b)
            except ValueError as exc:  # InvalidInput: the backend must flag the row
                ref = exc
            verdict, detail = op.compare_row(case, b, out, ref)
            if verdict == "excluded":
                res.excluded += 1
            elif verdict == "match":
                res.rows += 1
            else:
                res.rows += 1
                res.mismatches += 1
                first_bad = first_bad or f"{case.name} row {b}: {detail}"
    total = res.rows + res.excluded
    res.excluded_fraction = res.excluded / total if total else 0.0
    res.seconds = time.perf_counter() - t0
    if res.mismatches:
        res.status = "fail"
        res.detail = f"{res.mismatches} mismatching rows; first: {first_bad}"
    elif res.excluded_fraction > MAX_EXCLUDED_FRACTION:
        res.status = "fail"
        res.detail = (f"excluded fraction {res.excluded_fraction:.4f} > cap {MAX_EXCLUDED_FRACTION} "
                      "(margins too small to compare: the cases or the kernel's precision are off)")
    else:
        res.detail = (f"{res.rows} rows match over {res.cases} cases"
                      + (f"; {res.excluded} excluded by margin ({res.excluded_fraction:.2%})"
                         if res.excluded else ""))
    return res


def run_parity(backend: str, quick: bool = True, ops=None) -> dict[str, OpResult]:
    """Per-op parity results of ``backend`` (``"numba_cpu"``, ``"torch_cuda"``), keyed by op
    name; ops the backend lacks come back with status ``"missing"`` (ops declared for other
    backends only are left out). ``quick`` selects
    the small case set (seconds); ``quick=False`` adds more rows per case."""
    if ops is not None:
        names = ops
    else:  # ops that name their backends (Triton kernels) only for those backends
        names = [n for n, op in sorted(registry.ops().items()) if registry.applies(backend, op)]
    return {name: run_op(backend, registry.get(name), quick=quick) for name in names}


def summary_row(backend: str, results: dict[str, OpResult]) -> dict:
    """One line for ``specoracle verify``: passed / failed / missing op names."""
    passed = [n for n, r in results.items() if r.status == "pass"]
    failed = [n for n, r in results.items() if r.status == "fail"]
    missing = [n for n, r in results.items() if r.status == "missing"]
    return {"backend": backend, "ok": not failed, "passed": passed, "failed": failed,
            "missing": missing,
            "max_excluded_fraction": max((r.excluded_fraction for r in results.values()), default=0.0)}


# ---------------------------------------------------------------- margins (float64, the oracle's decisions)


def draw_margin(weights: np.ndarray, u: float, token: int) -> float:
    """Distance of ``u * total`` from the cumulative sums bracketing ``token``, over the total.

    ``weights`` [V] are the unnormalised weights the oracle drew from (accumulated
    left to right as in ``sample_categorical``)."""
    c = np.cumsum(weights)
    total = float(c[-1])
    if not total > 0:
        return 0.0
    t = u * total
    lo = float(c[token - 1]) if token > 0 else 0.0
    hi = float(c[token])
    return min(abs(t - lo), abs(hi - t)) / total


def chain_margin(p, q, draft, u, verdict) -> float:
    """Smallest margin of the decisions ``reference.verify_chain`` made on one row."""
    k = len(draft)
    tau = verdict.n_accepted
    m = np.inf
    for i in range(min(tau + 1, k)):
        x = draft[i]
        m = min(m, abs(u[i] * q[i, x] - p[i, x]))
    y = verdict.tokens[-1]
    if verdict.bonus:
        m = min(m, draw_margin(p[k], u[k], y))
    else:
        w = np.maximum(p[tau] - q[tau], 0)
        m = min(m, float(w.sum()))
        m = min(m, draw_margin(w if w.sum() > 0 else p[tau], u[k], y))
    return m


def block_margin(p, q, draft, u, verdict) -> float:
    """Smallest margin of the decisions ``reference.verify_block`` made on one row."""
    from specoracle.reference.categorical import block_quantities

    k = len(draft)
    survival, mass = block_quantities(p, q, draft)
    tau = verdict.n_accepted
    m = np.inf
    for i in range(k, max(tau, 1) - 1, -1):
        if i < k:
            m = min(m, abs(u[i - 1] * (mass[i] + 1 - survival[i]) - mass[i]))
        else:
            m = min(m, abs(u[i - 1] - survival[i]))
    y = verdict.tokens[-1]
    if verdict.bonus:
        m = min(m, draw_margin(p[k], u[k], y))
    else:
        w = np.maximum(survival[tau] * p[tau] - q[tau], 0)
        m = min(m, float(w.sum()))
        m = min(m, draw_margin(w if w.sum() > 0 else p[tau], u[k], y))
    return float(m)
