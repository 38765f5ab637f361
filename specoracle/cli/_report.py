"""How the certification commands end: print the report, write its JSON, map the verdict to
the exit status (``certify``, its sweeps and ``certify-engine`` share it).

Exit status: 0 exact, 1 not exact, 2 underpowered (or a usage error), 3 the sampler could not be
loaded, 4 format error (the sampler returned something that is not a sample).
"""
from __future__ import annotations

EXIT_EXACT, EXIT_NOT_EXACT, EXIT_UNDERPOWERED, EXIT_NOT_LOADABLE, EXIT_FORMAT = 0, 1, 2, 3, 4


def finish(report, json_path) -> int:
    """Print ``report`` (certify's, a sweep's or certify-engine's), write it as JSON if asked; the exit status."""
    print(report.format())
    if json_path:
        report.to_json(json_path)
        print(f"wrote {json_path}")
    if report.verdict == "exact":
        return EXIT_EXACT
    if report.verdict.startswith("format error"):
        return EXIT_FORMAT
    return EXIT_NOT_EXACT if report.verdict.startswith("not exact") else EXIT_UNDERPOWERED
