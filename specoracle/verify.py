"""`specoracle verify`: the main job, on embedded defaults.

Runs, in order, and collects one row per check:
1. every registered theorem (exact, symbolic and numeric proofs; proofs/theorems.py);
2. statistical + coupled certification of the reference samplers and of every fast-path
   twin with a certify name (proofs/certify/; the names come from fastpath/registry.py);
3. parity of every available fast-path backend against the oracle under the same
   noise (fastpath/ops/parity.py), op by op from the registry.

Rows name backends in the registry's vocabulary (reference, numpy_batch, numba, torch).

A row is ``Row(section, name, method, n, status, seconds, detail)`` with status
``pass`` / ``fail`` / ``skip`` (skip only for a backend that cannot run here, with the
reason). The run fails (exit 1) if any row fails.
"""
from __future__ import annotations

import importlib.util
import json
import platform
import time
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Row:
    section: str
    name: str
    method: str
    n: int
    status: str  # pass | fail | skip
    seconds: float
    detail: str


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def proof_rows(quick: bool, progress: bool) -> list[Row]:
    from specoracle.proofs.theorems import run_theorems

    rows = []
    for r in run_theorems(quick=quick, progress=progress):
        rows.append(Row("proofs", r.id, r.method, r.cases,
                        "pass" if r.status == "proved" else "fail", r.seconds, r.detail))
    return rows


def certify_names() -> list[str]:
    """The oracle's certify names, then every fast-path twin's (``<backend>.<op>``, certified
    statistically on top of its parity rows), all from fastpath/registry.py."""
    from specoracle.fastpath import registry

    return registry.reference_certify_names() + list(registry.certify_names())


def certify_rows(names, seed: int, progress: bool) -> list[Row]:
    from specoracle.proofs import certify as cert

    known = set(cert.list_impls())
    rows = []
    for name in names:
        if name not in known:
            continue
        t0 = time.perf_counter()
        report = cert.certify(name, seed=seed, progress=progress)
        n = sum(int(c.n) for c in report.checks if c.metric != "agreement")
        rows.append(Row("certify", name, "statistical", n, "pass" if report.exact else "fail",
                        time.perf_counter() - t0, report.verdict))
    return rows


TORCH_PATH_NOTE = ("ran the torch path: the Triton kernels of these ops run with "
                   "TRITON_INTERPRET=1 (CPU) or SPECORACLE_PARITY_DEVICE=cuda (GPU)")


def _triton_impl() -> str:
    from specoracle.fastpath.ops.torch_only import parity_impl

    return parity_impl()


def parity_rows(quick: bool) -> list[Row]:
    """Each fast-path backend against the oracle under the same noise, op by op
    (fastpath/ops/parity.py); an op a backend has no twin of is listed as skipped."""
    from specoracle.fastpath import registry
    from specoracle.fastpath.ops import parity

    rows = []
    for backend in registry.available_backends():
        for op, r in parity.run_parity(backend, quick=quick).items():
            if r.status == "missing":
                rows.append(Row("parity", f"{backend}.{op}", r.rule, 0, "skip", r.seconds,
                                f"no {backend} twin of {op}"))
                continue
            detail = r.detail or (f"{r.mismatches} mismatches, excluded {r.excluded_fraction:.2%}"
                                  if r.excluded else f"{r.mismatches} mismatches")
            if registry.get(op).backends is not None and _triton_impl() == "torch":
                detail += f"; {TORCH_PATH_NOTE}"
            rows.append(Row("parity", f"{backend}.{op}", r.rule, int(r.rows),
                            "pass" if r.status == "pass" else "fail", r.seconds, detail))
    return rows


def run_verify(quick: bool = True, seed: int = 0, progress: bool = False) -> list[Row]:
    rows: list[Row] = []
    rows += proof_rows(quick, progress)
    if _available("specoracle.proofs.certify"):
        rows += certify_rows(certify_names(), seed, progress)
    if _available("specoracle.fastpath.ops.parity"):
        rows += parity_rows(quick)
    return rows


def format_table(rows: list[Row]) -> str:
    head = ("section", "check", "method", "n", "status", "seconds")
    body = [(r.section, r.name, r.method, str(r.n), r.status.upper(), f"{r.seconds:.2f}") for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)] if body else [len(h) for h in head]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    out = [line(head), line(["-" * w for w in widths])] + [line(b) for b in body]
    torch_path = [r.name for r in rows if TORCH_PATH_NOTE in r.detail]
    if torch_path:
        out.append(f"note: {len(torch_path)} Triton-kernel parity rows {TORCH_PATH_NOTE}")
    for r in rows:
        if r.status == "fail":
            out.append(f"FAILED {r.section}/{r.name}: {r.detail}")
    return "\n".join(out)


def certificate(rows: list[Row]) -> dict:
    from specoracle import __version__

    failed = [r for r in rows if r.status == "fail"]
    return {
        "specoracle_version": __version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "verdict": "pass" if not failed else "fail",
        "failed": [f"{r.section}/{r.name}" for r in failed],
        "checks": [asdict(r) for r in rows],
    }


def write_certificate(rows: list[Row], path: str) -> None:
    with open(path, "w") as fh:
        json.dump(certificate(rows), fh, indent=2)
