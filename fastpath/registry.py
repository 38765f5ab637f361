"""THE registry (DESIGN.md principle 8): what `verify`, parity, `certify` and `bench` all read.

It holds, under one spelling of the backend names (:data:`BACKENDS`):

* **backends** -- ``"reference"`` (the oracle, specoracle.reference), ``"numpy_batch"``,
  ``"numba"``, ``"torch"``; the fast-path twins live in the packages of :data:`PACKAGES`
  (the folder names numba_cpu/ and torch_cuda/ stay; users, JSON and the CLI say numba / torch);
* **subjects** -- every public sampler / verifier of reference/ (:data:`SUBJECTS`), with the
  certify names of the oracle itself and, where no fast path has a twin, the reason (a
  visible exemption); the public reference functions that are not samplers (closed forms,
  validation helpers) are listed in :data:`NOT_SAMPLERS`, so tests/fastpath/test_registry.py can walk
  reference/ and fail on a function that is in neither table;
* **ops** -- every parity op (:class:`Op`): its oracle subject(s), its input factory and
  comparison rule (tests/TOLERANCES.md), and its certify name (``<backend>.<certify>``, the
  adapter that wraps the batched twin is built in proofs/certify/adapters.py);
* **theorems' subjects** -- :data:`THEOREM_SUBJECTS` maps a theorem id (proofs/theorems.py)
  to the reference function it is about;
* **bench suites** -- :func:`register_suite` / :func:`suites` (the framework that runs them
  is fastpath/bench/).

Backends are discovered by module path: the twin of op ``chain`` on ``numba`` is
``specoracle.fastpath.numba_cpu.categorical.verify_chain``; a backend without it has a
*missing* op (parity turns that into a strict xfail / a ``skip`` row of `verify` that names
the op). Adding an op (e.g. a bf16 variant of the torch kernels)::

    from specoracle.fastpath import registry
    registry.register(registry.Op(name="chain.bf16", module="categorical",
                                  function="verify_chain", ...))

The parity driver is :mod:`specoracle.fastpath.ops.parity` (``run_parity(backend)``).
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any, Callable

# ---------------------------------------------------------------- backends

#: the backend vocabulary, in display order (registry keys, JSON keys, CLI choices, verify table)
BACKENDS = ("reference", "numpy_batch", "numba", "torch")
#: the package of each backend's twins
PACKAGES = {"reference": "specoracle.reference", "numpy_batch": "specoracle.fastpath.numpy_batch",
            "numba": "specoracle.fastpath.numba_cpu", "torch": "specoracle.fastpath.torch_cuda"}
#: the fast-path backends (parity and the fast-path certify names are about these)
FASTPATH_BACKENDS = BACKENDS[1:]
#: old spellings (the package names); rejected with a hint, not aliased
RETIRED_SPELLINGS = {"numba_cpu": "numba", "torch_cuda": "torch"}
#: backends that by design twin only some reference modules: the batched NumPy twins exist
#: where the oracle's own loops need speed (reference/diffusion.py's verifier), so their absence
#: for the other modules is not a missing twin
MODULES_OF = {"numpy_batch": ("gaussian",)}

RULES = ("exact", "decisions_with_margin", "allclose_vs_naive")


class UnknownBackend(ValueError):
    """A backend name outside :data:`BACKENDS` (a retired spelling says which name replaced it)."""


def backend_name(name: str) -> str:
    """``name`` if it is one of :data:`BACKENDS`; else :class:`UnknownBackend` with a hint."""
    if name in BACKENDS:
        return name
    if name in RETIRED_SPELLINGS:
        raise UnknownBackend(f"backend {name!r} is now spelled {RETIRED_SPELLINGS[name]!r} "
                             f"(one vocabulary: {', '.join(BACKENDS)})")
    raise UnknownBackend(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")


def _present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def available_backends() -> tuple:
    """The fast-path backends whose package exists in this installation, in display order
    (``numpy_batch`` appears once fastpath/numpy_batch/ exists)."""
    return tuple(b for b in FASTPATH_BACKENDS if _present(PACKAGES[b]))


# ---------------------------------------------------------------- subjects (the oracle's samplers)


@dataclass(frozen=True)
class Subject:
    """A public sampler / verifier of reference/, ``"<module>.<function>"`` (its ``_rng``
    wrapper, if any, is covered by it). ``certify``: the certify names of the oracle itself;
    ``no_twin``: why no fast-path backend has a twin (empty when ops check twins of it)."""

    name: str
    certify: tuple = ()
    no_twin: str = ""


SUBJECTS = {s.name: s for s in (
    Subject("categorical.sample_categorical", no_twin=(
        "the inverse-CDF draw inside every verifier: each backend's draws are compared through "
        "the verifier ops (draw margins in fastpath/ops/parity.py), not as a standalone op")),
    Subject("categorical.sample_categorical_rows", no_twin=(
        "sample_categorical over rows; its numba and torch homes (numba_cpu.categorical."
        "sample_categorical_rows, torch_cuda._common.sample_rows) are checked draw by draw "
        "against it in tests/fastpath/test_inverse_cdf.py, not as a parity op")),
    Subject("categorical.verify_chain", certify=("reference.chain",)),
    Subject("processing.process_logits", certify=("reference.chain_logits",)),
    Subject("categorical.verify_block", certify=("reference.block",)),
    Subject("categorical.verify_greedy", certify=("reference.greedy",)),
    Subject("categorical.maximal_coupling", no_twin=(
        "the one-position maximal coupling of a worked example and the proofs; verification "
        "uses it inside verify_chain, whose twins are checked")),
    Subject("tree.verify_mss", certify=("reference.mss",), no_twin=(
        "one node with one draft row per child (SpecInfer with several drafters); the twins "
        "implement whole trees with one draft row per parent (tree.verify_mss_tree, op tree_mss), "
        "certified through this protocol as <backend>.mss on nodes whose children share one row "
        "(scenario mss_shared; scenario mss is exempt, see tree_mss's certify_exempt)")),
    Subject("tree.verify_mss_tree"),
    Subject("tree.verify_kseq", certify=("reference.kseq",), no_twin=(
        "SpecTr K-SEQ: no engine of this project runs it, so no twin was written; the oracle is "
        "proved (kseq.lossless) and certified (reference.kseq)")),
    Subject("tree.verify_tree_deterministic", certify=("reference.tree_deterministic",)),
    Subject("gaussian.reflection_coupling", certify=("reference.gaussian_reflection",)),
    Subject("gaussian.gamma_coupling", certify=("reference.gaussian_gamma",)),
    Subject("gaussian.residual_gauss", certify=("reference.gaussian_residual",), no_twin=(
        "drawn inside the twins of gamma_coupling and verify_gaussian_* (ops gaussian_step, "
        "gaussian_chain, gaussian_block compare the residual draws), not as a standalone op; so "
        "no twin is fed protocol gauss_residual (c and the residual alone): the twins' residual "
        "law is certified inside their outputs (<backend>.gaussian_gamma: c = 1; "
        "<backend>.gaussian_block: c = p_tau)")),
    Subject("gaussian.residual_gauss_rejection_rng", no_twin=(
        "a slow rejection sampler of residual_gauss's law: a cross-check in the tests")),
    Subject("gaussian.residual_gauss_1d_rejection_rng", no_twin=(
        "a slow 1-D rejection sampler of residual_gauss's law: a cross-check in the tests")),
    Subject("gaussian.verify_gaussian_chain", certify=("reference.gaussian_chain",)),
    Subject("gaussian.verify_gaussian_block", certify=("reference.gaussian_block",)),
    Subject("decoding.speculative_decode", no_twin=(
        "the decoding loop over a model protocol: its fast counterpart is the engine "
        "(fastpath/models/llm/engine.py), checked end to end (certify-engine, lossless tests), "
        "not row by row")),
    Subject("decoding.sample_autoregressive", no_twin=(
        "plain target sampling, the baseline the loop is compared with")),
    Subject("diffusion.speculative_sample", no_twin=(
        "the speculative diffusion loop: fastpath/models/diffusion/spec.py runs it on torch "
        "denoisers and is checked against it in the diffusion-model tests, not by parity")),
    Subject("diffusion.speculative_sample_chain", no_twin=(
        "speculative_sample on a closed-form Gaussian chain (same loop)")),
    Subject("diffusion.sample_with_noise", no_twin=(
        "the noise-in core of speculative_sample (same loop; the model loop runs this code)")),
    Subject("diffusion.speculative_round", no_twin=(
        "one round of that loop (its window verifications are the registered gaussian_* ops)")),
    Subject("diffusion.plain_step", no_twin=(
        "one step of the target chain itself (the plain baseline; no speculation to twin)")),
)}

#: public functions of reference/ that are not samplers or verifiers, by module
NOT_SAMPLERS = {
    "categorical": ("residual_weights", "argmax_first", "block_quantities"),
    "tree": ("validate_tree", "path_to", "tree_depth", "mss_acceptance", "kseq_rho", "kseq_acceptance",
             "kseq_upper_bound", "kseq_residual_weights", "kseq_valid", "tree_expected_length",
             "trie_from_sequences", "d2sd_boundary_posterior", "d2sd_branch_set"),
    "gaussian": ("acceptance_rate", "total_variation", "standardized_distance", "mahalanobis",
                 "residual_threshold", "log_tail", "residual_mass", "residual_log_mass", "residual_cdf",
                 "residual_mean", "residual_quantile", "gaussian_block_quantities",
                 "residual_log_mass_from_log_c"),
    "block": ("block_tau",),
    "processing": ("softmax",),
    "decoding": ("block_rows",),
    "diffusion": ("make_drafter", "nfe_summary", "window_lengths"),
}

#: modules of reference/ that hold no sampler or verifier, and what they hold
NO_SAMPLER_MODULES = {
    "types": "result dataclasses and error types",
    "gaussian_types": "Gaussian result dataclasses",
    "validation": "input checks that raise InvalidInput",
    "targets": "closed-form categorical targets and their exact laws",
    "targets_continuous": "closed-form Gaussian targets, schedules and their exact laws",
}

#: theorem id (its first dotted part, or the whole id) -> the reference function it is about
THEOREM_SUBJECTS = {
    "token": "categorical.verify_chain",
    "greedy": "categorical.verify_greedy",
    "block": "categorical.verify_block",
    "mss": "tree.verify_mss",
    "kseq": "tree.verify_kseq",
    "tree_deterministic": "tree.verify_tree_deterministic",
    "gaussian.reflection_exact": "gaussian.reflection_coupling",
    "gaussian.gamma_residual_exact": "gaussian.residual_gauss",
    "gaussian.acceptance_closed_form": "gaussian.gamma_coupling",
    "gaussian.block_lossless": "gaussian.verify_gaussian_block",
}


def theorem_subject(theorem_id: str) -> str:
    """The subject of a theorem: the longest dotted prefix of its id in :data:`THEOREM_SUBJECTS`
    (``KeyError`` naming the id when there is none)."""
    parts = theorem_id.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in THEOREM_SUBJECTS:
            return THEOREM_SUBJECTS[key]
    raise KeyError(f"theorem {theorem_id!r} has no subject in fastpath/registry.py THEOREM_SUBJECTS")


# ---------------------------------------------------------------- ops (parity)


class MissingOp(LookupError):
    """A backend has no twin for an op (module or function absent)."""


@dataclass(frozen=True)
class Case:
    """One batched input of an op: arrays by parameter name (e.g. p, q, draft, u,
    num_draft). ``float64_only`` marks cases whose point is a float64 rounding
    corner (subnormal masses, u = 1 - 2^-53) that a cast to float32 destroys."""

    name: str
    inputs: dict
    float64_only: bool = False

    @property
    def batch(self) -> int:
        first = next(iter(self.inputs.values()))
        return int(first.shape[0])


@dataclass(frozen=True)
class Op:
    """A fast-path op paired with its oracle.

    name:        registry key, e.g. ``"chain"`` or ``"chain.float32"``
    module, function: where the twins live (``<PACKAGES[backend]>.<module>.<function>``)
    rule:        one of :data:`RULES`
    cases:       ``cases(quick: bool) -> list[Case]`` (fixed seeds)
    call:        ``call(backend_function, case) -> batched result``
    reference_row: ``reference_row(case, b) -> result`` (the oracle on row b's slice; may
                 raise InvalidInput, which the backend must mirror with a non-OK status)
    compare_row: ``compare_row(case, b, batched_result, reference_result_or_exception)``
                 -> ``(verdict, detail)`` with verdict in {"match", "mismatch", "excluded"}
    sweep:       optional ``sweep(n_sequences, seed) -> list[Case]`` (large random sweeps)
    dtype:       the input dtype the op is exercised in
    backends:    optional tuple of the only backends that have this op (e.g. a Triton
                 kernel of the torch backend); the others report it missing
    subjects:    the reference functions the oracle rows come from (default
                 ``("<module>.<function>",)``; the logits ops: process_logits + the verifier)
    certify:     the certify name of this op's twins, ``"<backend>.<certify>"`` (empty: the
                 op is checked by parity only); proofs/certify/adapters.py wraps the batched twin
                 into the protocol of the oracle's certify name (same scenarios)
    certify_exempt: ``{scenario: reason}``: the scenarios of that protocol the twins cannot
                 be fed (a visible exemption, like :attr:`Subject.no_twin`); certify leaves
                 them out of the twins' battery and refuses them by name
    """

    name: str
    module: str
    function: str
    rule: str
    cases: Callable[[bool], list]
    call: Callable[[Callable, Case], Any]
    reference_row: Callable[[Case, int], Any]
    compare_row: Callable[..., tuple]
    sweep: Callable[[int, int], list] | None = None
    dtype: str = "float64"
    notes: str = ""
    extra: dict = field(default_factory=dict)
    backends: tuple | None = None
    subjects: tuple = ()
    certify: str = ""
    certify_exempt: dict = field(default_factory=dict)

    def subject_names(self) -> tuple:
        return self.subjects or (f"{self.module}.{self.function}",)

    def reference_function(self) -> Callable:
        mod = importlib.import_module(f"specoracle.reference.{self.module}")
        return getattr(mod, self.function)


_OPS: dict[str, Op] = {}
_LOADED = False
#: the modules that register the built-in ops on import (fastpath/ops/)
OP_MODULES = ("categorical", "tree", "gaussian", "torch_only")


def register(op: Op, replace: bool = False) -> Op:
    if op.rule not in RULES:
        raise ValueError(f"op {op.name}: unknown rule {op.rule!r} (one of {RULES})")
    for b in op.backends or ():
        if b not in FASTPATH_BACKENDS:
            raise ValueError(f"op {op.name}: {backend_name(b)!r} is not a fast-path backend")
    if op.name in _OPS and not replace:
        raise ValueError(f"op {op.name} is already registered")
    _OPS[op.name] = op
    return op


def _load_builtin() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for mod in OP_MODULES:
        importlib.import_module(f"specoracle.fastpath.ops.{mod}")


def ops() -> dict[str, Op]:
    """Every registered op by name (built-in ops are loaded on first use)."""
    _load_builtin()
    return dict(_OPS)


def get(name: str) -> Op:
    all_ops = ops()
    if name not in all_ops:
        raise KeyError(f"no op {name!r}; known: {sorted(all_ops)}")
    return all_ops[name]


def applies(backend: str, op: Op | str) -> bool:
    """Whether ``backend`` is meant to have ``op`` (``Op.backends``, :data:`MODULES_OF`);
    an op that applies but is absent is a missing twin."""
    op = get(op) if isinstance(op, str) else op
    if op.backends is not None and backend not in op.backends:
        return False
    return backend not in MODULES_OF or op.module in MODULES_OF[backend]


def ops_of(backend: str) -> list[str]:
    """The op names parity runs for ``backend``: every op meant for it (:func:`applies`)."""
    backend = backend_name(backend)
    return [n for n, op in sorted(ops().items()) if applies(backend, op)]


def resolve(backend: str, op: Op | str) -> Callable:
    """The backend's twin of ``op``: ``<PACKAGES[backend]>.<module>.<function>``.

    Raises :class:`MissingOp` (naming the op) if the module or function is absent, and
    :class:`UnknownBackend` for a name outside :data:`FASTPATH_BACKENDS`.
    """
    op = get(op) if isinstance(op, str) else op
    if backend_name(backend) == "reference":
        raise UnknownBackend("the reference is the oracle of every op, not a backend of one")
    if op.backends is not None and backend not in op.backends:
        raise MissingOp(f"{backend} lacks op {op.name}: only {', '.join(op.backends)} has it")
    modname = f"{PACKAGES[backend]}.{op.module}"
    try:
        mod = importlib.import_module(modname)
    except ModuleNotFoundError as exc:
        if exc.name and modname.startswith(exc.name):
            raise MissingOp(f"{backend} lacks op {op.name}: no module {modname}") from None
        raise
    fn = getattr(mod, op.function, None)
    if fn is None:
        raise MissingOp(f"{backend} lacks op {op.name}: {modname} has no {op.function}")
    return fn


def has_op(backend: str, op: Op | str) -> bool:
    try:
        resolve(backend, op)
        return True
    except MissingOp:
        return False


def twins(subject: str) -> dict[str, list[str]]:
    """``{backend: [op names]}``: the fast-path ops whose oracle is ``subject`` and that the
    backend has (only backends present here; a backend without any is left out)."""
    out: dict[str, list[str]] = {}
    for name, op in sorted(ops().items()):
        if subject not in op.subject_names():
            continue
        for b in available_backends():
            if has_op(b, op):
                out.setdefault(b, []).append(name)
    return out


# ---------------------------------------------------------------- certify names


def certify_names(backends=None) -> dict[str, tuple]:
    """``{"<backend>.<certify>": (backend, op name)}`` for every op with a certify name, on
    every present fast-path backend (or those in ``backends``) whose twin module exists
    (found without importing it: listing the names stays cheap). Ordered by backend, then by
    registration."""
    out = {}
    chosen = available_backends() if backends is None else tuple(backend_name(b) for b in backends)
    certified = [op for op in ops().values() if op.certify]   # registration order
    for b in chosen:
        for op in certified:
            if not applies(b, op):
                continue
            if _present(f"{PACKAGES[b]}.{op.module}"):
                out[f"{b}.{op.certify}"] = (b, op.name)
    return out


def reference_certify_names() -> list[str]:
    """The certify names of the oracle itself, in :data:`SUBJECTS` order."""
    return [name for s in SUBJECTS.values() for name in s.certify]


# ---------------------------------------------------------------- bench suites


@dataclass
class Suite:
    name: str
    device: str
    run: Callable
    description: str = ""


_SUITES: dict[str, Suite] = {}
_SUITES_LOADED = False
#: the modules of fastpath/bench/ that register the built-in suites on import
SUITE_MODULES = ("kernels_cpu", "kernels_cuda", "llm", "dflash", "diffusion", "device_round")


def register_suite(name: str, device: str, run: Callable, description: str = "") -> None:
    """Register a bench suite: ``run(ctx: fastpath.bench.BenchContext) -> list[dict]`` rows."""
    _SUITES[name] = Suite(name, device, run, description)


def suites(device: str | None = None) -> dict[str, Suite]:
    """Every registered suite (of ``device``), built-in suites loaded on first use."""
    global _SUITES_LOADED
    if not _SUITES_LOADED:
        _SUITES_LOADED = True
        for mod in SUITE_MODULES:
            importlib.import_module(f"specoracle.fastpath.bench.{mod}")
    return {n: s for n, s in _SUITES.items() if device is None or s.device == device}
