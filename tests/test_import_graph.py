"""The import graph of the installed ``specoracle`` package (DESIGN.md principle 8:
the folder order is the import order, no import cycles).

The graph is read from the source with :mod:`ast`, nothing is imported: every ``.py`` file
of the four package roots (``specoracle``, ``specoracle.reference`` -> reference/,
``specoracle.fastpath`` -> fastpath/, ``specoracle.proofs`` -> proofs/, located through the
installed package, i.e. ``[tool.setuptools.package-dir]``) is a module; an edge A -> B is an
``import`` / ``from ... import`` in A of a project module B (relative imports resolved;
``from P import x`` is an edge to ``P.x`` when that is a module, else to ``P``).
An import is MODULE-LEVEL when it runs at import time: in the module body, also under
``if`` / ``try`` / ``with`` and in class bodies, but not in a function body and not under
``if TYPE_CHECKING:`` (never executed). Implicit imports of parent packages are not edges.

Layers, lowest first (a module's layer: the first rule that matches its dotted name)::

    reference   specoracle.reference.*                  the oracle
    fastpath    specoracle.fastpath.* (kernels numba_cpu/, torch_cuda/, ops, registry, types)
    models      specoracle.fastpath.models.*            real models, engines, training, zoo
    proofs      specoracle.proofs.*                     proofs, statistics, certification
    bench       a module named bench* or *_bench, or inside such a package, under fastpath/
    cli         specoracle, specoracle.cli.*, every other module of specoracle/ (front door)

Allowed-edges rule: A -> B (ANY import, function-level included) only if layer(B) <=
layer(A). So reference imports nothing of the project but reference; kernels import no
model, proof, bench or CLI module; proofs may import fastpath and models (certifying the
fast paths and real engines is their job); benchmarks time everything, so they sit above
proofs (the LLM suite drives the vLLM engine of proofs/certify/engines as a speed anchor),
and nothing below the CLI imports a benchmark; only the CLI / front door imports the CLI.
This places bench above models, not beside the kernels as the first sketch of the layout had
it: the model suites (LLM, DFlash, diffusion) must import the models they time.

Checks:
  (a) no cycle among MODULE-LEVEL imports (each cycle is printed with its import lines);
  (b) no layer violation among ALL imports (a function-level import that reaches up is as
      much a dependency as a module-level one);
  (c) no cycle among ALL imports: a function-level import that closes a cycle only hides it
      (the old cycles were of this kind); the shared piece belongs in the lower
      module.
Exemptions are listed below, each with its reason; an exemption that no longer occurs fails
the test (it must be deleted), so the lists only shrink.
"""
from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path

ROOTS = ("specoracle", "specoracle.reference", "specoracle.fastpath", "specoracle.proofs")
LAYERS = ("reference", "fastpath", "models", "proofs", "bench", "cli")

# justified for good: (importer, imported) -> reason
EXEMPT_EDGES = {
    ("specoracle.proofs.certify.engines.specoracle_engine", "specoracle"):
        "reads specoracle.__version__ for the engine report; the root package is the parent of every module, "
        "so it is always initialised before any of them (no cycle possible)",
}

# violations still to remove (whose files they are in brackets): (importer, imported) -> how
PENDING_EDGES = {
}
# cycles of the all-imports graph still to remove: frozenset of modules -> how
PENDING_CYCLES = {
}


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    line: int
    module_level: bool


def _root_dirs() -> dict:
    """Package -> its folder, from the INSTALLED package (package-dir mapping)."""
    out = {}
    for pkg in ROOTS:
        spec = importlib.util.find_spec(pkg)
        assert spec is not None and spec.submodule_search_locations, pkg
        out[pkg] = Path(list(spec.submodule_search_locations)[0])
    return out


def _modules() -> dict:
    """Dotted name -> source file of every module of the four roots."""
    mods = {}
    for pkg, folder in _root_dirs().items():
        for f in sorted(folder.rglob("*.py")):
            parts = list(f.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([pkg] + parts)] = f
    return mods


def _is_type_checking(test) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _deepest(name: str, mods) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _targets(module: str, node, mods) -> list:
    """Project modules imported by one import statement of ``module``."""
    if isinstance(node, ast.Import):
        return [t for t in (_deepest(a.name, mods) for a in node.names) if t]
    if node.level:
        base = module.split(".")
        if mods[module].name != "__init__.py":
            base = base[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module
    out = []
    for a in node.names:
        sub = f"{target}.{a.name}"
        t = sub if sub in mods else _deepest(target, mods)
        if t:
            out.append(t)
    return out


def _walk(module, body, module_level, mods, out) -> None:
    for st in body:
        if isinstance(st, (ast.Import, ast.ImportFrom)):
            out += [Edge(module, t, st.lineno, module_level) for t in _targets(module, st, mods) if t != module]
        elif isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)):
            _walk(module, st.body, False, mods, out)
        elif isinstance(st, ast.If) and _is_type_checking(st.test):
            _walk(module, st.orelse, module_level, mods, out)   # the TYPE_CHECKING body never runs
        else:
            for name in ("body", "orelse", "finalbody", "handlers", "cases"):
                sub = getattr(st, name, None)
                if isinstance(sub, list):
                    _walk(module, [s for s in sub if isinstance(s, (ast.stmt, ast.excepthandler,
                                                                     ast.match_case))], module_level, mods, out)


def import_edges() -> list:
    mods = _modules()
    out: list = []
    for name, path in mods.items():
        _walk(name, ast.parse(path.read_text(encoding="utf-8"), str(path)).body, True, mods, out)
    return out


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[:2] == ["specoracle", "reference"]:
        return "reference"
    if parts[:2] == ["specoracle", "fastpath"]:
        if any(p.startswith("bench") or p.endswith("_bench") for p in parts[2:]):
            return "bench"
        return "models" if parts[2:3] == ["models"] else "fastpath"
    if parts[:2] == ["specoracle", "proofs"]:
        return "proofs"
    return "cli"


def _cycles(edges) -> list:
    """One cycle (a list of Edges) per strongly connected component with more than one module."""
    graph: dict = {}
    for e in edges:
        graph.setdefault(e.src, {}).setdefault(e.dst, e)
    index, low, stack, on, comps = {}, {}, [], set(), []

    def strong(v):   # Tarjan; the graph is small (depth < 200)
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    for v in sorted(graph):
        if v not in index:
            strong(v)
    out = []
    for comp in comps:   # a shortest cycle through the component's first module (BFS)
        start = min(comp)
        prev, frontier = {start: None}, [start]
        while frontier and start not in [w for v in frontier for w in graph.get(v, {}) if w in comp]:
            nxt = []
            for v in frontier:
                for w in graph.get(v, {}):
                    if w in comp and w not in prev:
                        prev[w] = v
                        nxt.append(w)
            frontier = nxt
        last = next(v for v in frontier if start in graph.get(v, {}))
        path = [graph[last][start]]
        while prev[path[-1].src] is not None:
            path.append(graph[prev[path[-1].src]][path[-1].src])
        out.append((frozenset(comp), path[::-1]))
    return out


def _show(cycle) -> str:
    kinds = {True: "module level", False: "in a function"}
    return "\n    ".join(f"{e.src}:{e.line} imports {e.dst} ({kinds[e.module_level]})" for e in cycle)


def test_the_graph_is_read():
    """The walk sees the package (guards every check below against reading nothing)."""
    edges = import_edges()
    mods = _modules()
    assert {"specoracle.reference.categorical", "specoracle.proofs.certify", "specoracle.cli"} <= set(mods)
    assert len(mods) > 100 and len(edges) > 200
    assert {layer(m) for m in mods} == set(LAYERS)
    assert "specoracle.proofs.certify.registry" in {e.dst for e in edges
                                                    if e.src == "specoracle.proofs.certify.core" and e.module_level}


def test_no_module_level_import_cycle():
    found = _cycles([e for e in import_edges() if e.module_level])
    assert not found, "module-level import cycles:\n  " + "\n  ".join(_show(c) for _, c in found)


def test_imports_follow_the_layers():
    edges = import_edges()
    bad = {(e.src, e.dst): e for e in edges if LAYERS.index(layer(e.dst)) > LAYERS.index(layer(e.src))}
    allowed = {**EXEMPT_EDGES, **PENDING_EDGES}
    new = [e for k, e in sorted(bad.items()) if k not in allowed]
    assert not new, "imports against the layer order (" + " <- ".join(LAYERS) + "):\n  " + "\n  ".join(
        f"{e.src}:{e.line} ({layer(e.src)}) imports {e.dst} ({layer(e.dst)})" for e in new)
    stale = sorted(set(allowed) - set(bad))
    assert not stale, f"exemptions that no longer occur (delete them): {stale}"


def test_no_import_cycle_hidden_in_functions():
    found = _cycles(import_edges())
    new = [c for comp, c in found if comp not in PENDING_CYCLES]
    assert not new, ("import cycles closed by function-level imports (move the shared piece to the lower "
                     "module):\n  " + "\n  ".join(_show(c) for c in new))
    stale = sorted(sorted(c) for c in set(PENDING_CYCLES) - {comp for comp, _ in found})
    assert not stale, f"pending cycles that no longer occur (delete them): {stale}"


def test_the_checks_see_a_cycle_and_a_violation():
    """Negative control: the cycle finder and the layer rule on a made-up graph."""
    e = [Edge("specoracle.fastpath.a", "specoracle.fastpath.b", 1, True),
         Edge("specoracle.fastpath.b", "specoracle.fastpath.c", 2, False),
         Edge("specoracle.fastpath.c", "specoracle.fastpath.a", 3, True),
         Edge("specoracle.reference.x", "specoracle.cli.y", 4, False)]
    assert [sorted(comp) for comp, _ in _cycles(e)] == [["specoracle.fastpath.a", "specoracle.fastpath.b",
                                                          "specoracle.fastpath.c"]]
    assert _cycles([x for x in e if x.module_level]) == []
    assert [c for _, c in _cycles(e)][0][0].src == "specoracle.fastpath.a"
    assert LAYERS.index(layer("specoracle.cli.y")) > LAYERS.index(layer("specoracle.reference.x"))
    assert layer("specoracle.fastpath.bench.cpu") == layer("specoracle.fastpath.models.dflash_bench") == "bench"
    assert layer("specoracle.fastpath.models.llm.engine") == "models"
    assert layer("specoracle.testing") == "cli"


def test_every_package_is_in_the_distribution():
    """Every folder of the graph with an ``__init__.py`` is listed in pyproject.toml's
    ``[tool.setuptools] packages`` (an editable install finds an unlisted one, a wheel
    silently leaves it out); and every listed one exists."""
    import tomllib

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    listed = set(tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    packages = {name for name, path in _modules().items() if path.name == "__init__.py"}
    assert packages == listed, (f"missing from pyproject.toml: {sorted(packages - listed)}; "
                                f"listed but absent: {sorted(listed - packages)}")
