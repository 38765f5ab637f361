"""The one registry (fastpath/registry.py; DESIGN.md principle 8).

* walks reference/: every public function of every module is a registered subject (a
  sampler / verifier, whose twins the registry lists, or a documented exemption), a
  function listed as not a sampler, or the ``_rng`` wrapper of one of those; a new public
  verifier with neither twins nor an exemption fails here;
* every op, theorem and certify name points at a registered subject / a buildable adapter;
* one backend vocabulary; one suite registry (no shims), the suite names other code uses.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

from specoracle.fastpath import registry

HOW_TO = ("add it to fastpath/registry.py: SUBJECTS (a sampler / verifier: register twins as ops in "
          "fastpath/ops/, or give no_twin=<reason>) or NOT_SAMPLERS (closed forms, helpers)")


def _reference_modules():
    import specoracle.reference as ref

    return sorted(m.name for m in pkgutil.iter_modules(ref.__path__))


def _public_functions(module: str) -> list[str]:
    mod = importlib.import_module(f"specoracle.reference.{module}")
    return [n for n, f in vars(mod).items()
            if inspect.isfunction(f) and f.__module__ == mod.__name__ and not n.startswith("_")]


def _classify(module: str, name: str, names: list[str]) -> str:
    """"subject", "not a sampler", "rng wrapper" or "" (unclassified)."""
    if f"{module}.{name}" in registry.SUBJECTS:
        return "subject"
    if name in registry.NOT_SAMPLERS.get(module, ()):
        return "not a sampler"
    core = name[: -len("_rng")] if name.endswith("_rng") else None
    if core in names and _classify(module, core, names):
        return "rng wrapper"
    return ""


def test_every_public_reference_function_is_classified():
    unclassified = []
    for module in _reference_modules():
        if module in registry.NO_SAMPLER_MODULES:
            continue
        names = _public_functions(module)
        unclassified += [f"{module}.{n}" for n in names if not _classify(module, n, names)]
    assert not unclassified, f"public reference functions the registry does not know: {unclassified}; {HOW_TO}"


def test_no_sampler_modules_hold_no_sampler():
    """A module listed as holding no sampler must not grow one (verify_* / sample_* / *_coupling)."""
    for module in registry.NO_SAMPLER_MODULES:
        if module not in _reference_modules():
            continue  # checked by the staleness test below
        bad = [n for n in _public_functions(module)
               if n.startswith(("verify_", "sample_")) or n.endswith("_coupling")]
        assert not bad, f"reference/{module}.py is listed in NO_SAMPLER_MODULES but defines {bad}; {HOW_TO}"


def test_registry_tables_are_not_stale():
    modules = _reference_modules()
    stale = [m for m in registry.NO_SAMPLER_MODULES if m not in modules]
    for name in registry.SUBJECTS:
        module, _, fn = name.partition(".")
        if module not in modules or fn not in _public_functions(module):
            stale.append(name)
    for module, fns in registry.NOT_SAMPLERS.items():
        stale += [f"{module}.{f}" for f in fns if module not in modules or f not in _public_functions(module)]
    assert not stale, f"fastpath/registry.py names reference code that no longer exists: {stale}"


@pytest.mark.parametrize("subject", list(registry.SUBJECTS))
def test_each_subject_has_twins_or_a_documented_exemption(subject):
    """The table a newcomer reads: subject -> twins per backend (or why none), certify names,
    theorems. A subject with twins must not keep an exemption, and vice versa."""
    from specoracle.proofs.theorems import all_theorems

    entry = registry.SUBJECTS[subject]
    twins = registry.twins(subject)
    theorems = [t.id for t in all_theorems() if t.subject == subject]
    print(f"{subject}: twins {twins or '-'}; certify {list(entry.certify) or '-'}; theorems {theorems or '-'}"
          + (f"; no twin: {entry.no_twin}" if entry.no_twin else ""))
    if entry.no_twin:
        assert not twins, f"{subject} has twins {twins}: drop its no_twin exemption"
        assert len(entry.no_twin) > 20, f"{subject}: the exemption needs a reason"
    else:
        assert twins, f"{subject} has no twin on any backend and no exemption; {HOW_TO}"


def test_every_op_checks_registered_subjects():
    for name, op in registry.ops().items():
        for subject in op.subject_names():
            assert subject in registry.SUBJECTS, f"op {name}: its oracle {subject} is not a registered subject"
            module, _, fn = subject.partition(".")
            assert hasattr(importlib.import_module(f"specoracle.reference.{module}"), fn), (name, subject)


def test_every_theorem_has_a_registered_subject():
    from specoracle.proofs.theorems import all_theorems

    for t in all_theorems():
        assert t.subject in registry.SUBJECTS, (t.id, t.subject)


def test_certify_names_come_from_the_registry_and_build():
    """Every fast-path certify name (``<backend>.<op certify name>``) builds an adapter with a
    protocol; the oracle's names are certify built-ins; ``certify --list`` shows them all."""
    from specoracle.proofs import certify

    known = set(certify.list_impls())
    fast = registry.certify_names()
    assert {f"{b}.{n}" for b in ("numba", "torch") for n in (
        "chain", "block", "greedy", "tree_deterministic", "mss", "gaussian_gamma", "gaussian_reflection",
        "gaussian_block", "gaussian_chain")} <= set(fast)
    for name, (backend, op_name) in fast.items():
        assert name in known and backend in registry.FASTPATH_BACKENDS
        impl = certify.resolve_impl(name)
        assert impl.name == name and impl.protocol in certify.PROTOCOLS, name
    for name in registry.reference_certify_names():
        assert name in known and name.startswith("reference.")
    # the batched protocol exists for exactly the backends with chain and greedy twins
    assert {n for n in known if n.endswith(".batch")} == (
        {"reference.batch"} | {f"{b}.batch" for b in registry.available_backends() if f"{b}.greedy" in fast})


def test_fastpath_certify_names_share_their_oracles_protocol():
    """Every op with a certify name has an adapter, and ``reference.<certify>`` is a certify
    name of the oracle with the same protocol (its subject's, or for tree_mss that of
    verify_mss, the node step verify_mss_tree repeats); an exemption (``certify_exempt``)
    names a scenario of that protocol's battery and says why."""
    from specoracle.proofs import certify
    from specoracle.proofs.certify.adapters import FASTPATH_ADAPTERS

    for name, op in registry.ops().items():
        if not op.certify:
            assert not op.certify_exempt, name
            continue
        assert name in FASTPATH_ADAPTERS, f"op {name} has a certify name but no adapter"
        oracle = f"reference.{op.certify}"
        assert oracle in registry.reference_certify_names(), (name, oracle)
        ref = certify.resolve_impl(oracle)
        battery = ref.scenarios or certify.DEFAULT_SCENARIOS[ref.protocol]
        for scenario, why in op.certify_exempt.items():
            assert scenario in battery and why, (name, scenario)
        for backend in registry.certify_names():
            if backend.endswith(f".{op.certify}"):
                assert certify.resolve_impl(backend).protocol == ref.protocol, backend


def test_one_backend_vocabulary():
    assert registry.BACKENDS == ("reference", "numpy_batch", "numba", "torch")
    assert set(registry.PACKAGES) == set(registry.BACKENDS)
    for old, new in registry.RETIRED_SPELLINGS.items():
        with pytest.raises(registry.UnknownBackend, match=f"now spelled '{new}'"):
            registry.backend_name(old)
    for op in registry.ops().values():
        assert set(op.backends or ()) <= set(registry.FASTPATH_BACKENDS), op.name
    for name in list(registry.certify_names()) + registry.reference_certify_names():
        assert name.split(".")[0] in registry.BACKENDS, name


#: suite names other code and docs use (h/gpu's `bench --device cuda --all`, docs/PERFORMANCE.md)
STABLE_SUITES = {"kernels": "cpu", "cuda-kernels": "cuda", "llm": "cpu", "llm-tau": "cpu", "llm-cuda": "cuda",
                 "dflash": "cpu", "diffusion": "cpu", "device-round": "cpu", "device-round-cuda": "cuda"}


def test_one_suite_registry_without_shims():
    from specoracle.fastpath import bench

    suites = registry.suites()
    assert {n: s.device for n, s in suites.items() if n in STABLE_SUITES} == STABLE_SUITES
    assert bench.suites is registry.suites and bench.register_suite is registry.register_suite
    import specoracle.fastpath as fp

    shims = [m.name for m in pkgutil.iter_modules(fp.__path__) if m.name.startswith(("bench_", "parity"))]
    assert not shims, f"bench suites and parity ops live in fastpath/bench/ and fastpath/ops/: {shims}"


def test_no_fastpath_module_imports_the_cli():
    """Folder order = import order (reference <- fastpath <- cli): nothing under fastpath/ imports
    specoracle.cli (the dflash suite once did, for the shipped weights' paths)."""
    root = Path(registry.__file__).resolve().parent
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if "specoracle.cli" in p.read_text() or "from ...cli" in p.read_text()]
    assert not offenders, offenders


def test_the_walk_flags_a_new_unregistered_verifier(monkeypatch):
    """Negative control of the walk: a new public verifier (and its _rng wrapper) that is in
    no table is unclassified; registering it as a subject with an exemption classifies it."""
    import specoracle.reference.tree as tree

    def verify_new(p, u):
        return p, u

    def verify_new_rng(p, rng):
        return verify_new(p, rng.random())

    for fn in (verify_new, verify_new_rng):
        fn.__module__ = tree.__name__
        monkeypatch.setattr(tree, fn.__name__, fn, raising=False)
    names = _public_functions("tree")
    assert _classify("tree", "verify_new", names) == "" and _classify("tree", "verify_new_rng", names) == ""
    monkeypatch.setitem(registry.SUBJECTS, "tree.verify_new",
                        registry.Subject("tree.verify_new", no_twin="a test's stand-in for a new verifier"))
    assert _classify("tree", "verify_new_rng", names) == "rng wrapper"
