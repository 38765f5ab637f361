"""Execute the jupytext notebooks of ``notebooks/`` (smoke mode for CI, full for rendering).

Each notebook is a percent-format ``.py`` file whose cell tagged ``parameters``
defines ``SMOKE = False`` (and ``SEED``). The runner converts it with jupytext,
injects a cell right after the parameters cell that sets the overrides (papermill's
convention), executes it with nbclient in a fresh kernel, and checks that no cell
errored and that at least one figure (``image/png`` output) was produced.

A notebook that needs something this machine lacks (a GPU, the zoo weights) says so
in its first code cell after the parameters by printing ``SKIP: <reason>``; the
runner stops there and reports it as skipped with that reason instead of failing.
"""
from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"


@dataclass(frozen=True)
class NotebookRun:
    name: str
    status: str  # "ok" | "skipped" | "error"
    seconds: float
    figures: int
    detail: str


def notebook_paths(directory: Path | None = None) -> list[Path]:
    d = Path(directory) if directory else NOTEBOOK_DIR
    if not d.is_dir():
        raise FileNotFoundError(
            f"notebooks folder not found at {d}: the notebooks ship with the source tree "
            "(install specoracle from a clone with `pip install -e .`)")
    return sorted(p for p in d.glob("[0-9]*.py"))


def _inject(nb, overrides: dict):
    import nbformat

    src = "\n".join(f"{k} = {v!r}" for k, v in overrides.items())
    cell = nbformat.v4.new_code_cell(src, metadata={"tags": ["injected-parameters"]})
    for i, c in enumerate(nb.cells):
        if "parameters" in c.get("metadata", {}).get("tags", []):
            nb.cells.insert(i + 1, cell)
            return nb
    raise ValueError("notebook has no cell tagged 'parameters'")


def _count_figures(nb) -> int:
    n = 0
    for c in nb.cells:
        for out in c.get("outputs", []):
            if "image/png" in out.get("data", {}):
                n += 1
    return n


def _cell_skip_reason(cell):
    for out in cell.get("outputs", []):
        text = out.get("text", "")
        if isinstance(text, str) and text.startswith("SKIP:"):
            return text.strip()[5:].strip()
    return None


def execute(path: Path, smoke: bool, timeout: int = 600, seed: int = 0):
    """Execute one notebook cell by cell; returns ``(NotebookRun, executed_notebook)``.

    Stops early, with status "skipped", after a cell that prints ``SKIP: <reason>``.
    """
    import jupytext
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = jupytext.read(path)
    _inject(nb, {"SMOKE": bool(smoke), "SEED": int(seed)})
    env_backend = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    t0 = time.perf_counter()
    reason = None
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        with client.setup_kernel():
            for i, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                client.execute_cell(cell, i)
                reason = _cell_skip_reason(cell)
                if reason:
                    break
    except CellExecutionError as exc:
        return NotebookRun(path.stem, "error", time.perf_counter() - t0, 0,
                           str(exc).strip().splitlines()[-1]), nb
    finally:
        if env_backend is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = env_backend
    seconds = time.perf_counter() - t0
    if reason:
        return NotebookRun(path.stem, "skipped", seconds, 0, reason), nb
    figs = _count_figures(nb)
    if figs == 0:
        return NotebookRun(path.stem, "error", seconds, 0, "no figure was produced"), nb
    return NotebookRun(path.stem, "ok", seconds, figs, ""), nb


def render(out_dir: Path, smoke: bool = False, names=None, progress: bool = True) -> list[NotebookRun]:
    """Execute every notebook and write ``<name>.html`` plus its figures as PNG files."""
    from nbconvert import HTMLExporter

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [p for p in notebook_paths() if names is None or p.stem in names]
    if progress:
        from tqdm import tqdm
        paths = tqdm(paths, desc="notebooks", unit="nb")
    runs = []
    for path in paths:
        run, nb = execute(path, smoke=smoke)
        runs.append(run)
        html, _ = HTMLExporter().from_notebook_node(nb)
        (out_dir / f"{path.stem}.html").write_text(html)
        k = 0
        for c in nb.cells:
            for o in c.get("outputs", []):
                png = o.get("data", {}).get("image/png")
                if png:
                    k += 1
                    (out_dir / f"{path.stem}-fig{k}.png").write_bytes(base64.b64decode(png))
    return runs
