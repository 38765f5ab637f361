"""One parity test over every (op, backend): each fast-path twin against the oracle.

The ops, their input cases and comparison rules live in fastpath/registry.py
(built-in ops: fastpath/ops/*.py); the rules are in tests/TOLERANCES.md
("Fast path parity"). A backend that lacks an op is a strict xfail naming the op,
so a missing twin is visible; the mark is only applied while the twin is absent.
Ops that declare ``backends`` (e.g. the Triton kernels of the torch backend) are only
parametrized over those backends. Backends: every fast-path backend present
(``registry.available_backends()``: numba, torch, and numpy_batch once it exists).

Default: the quick case set (every size and edge case, 16 rows per random case).
HYPOTHESIS_PROFILE=thorough: the full case set. The >= 10^5-sequence random
sweeps are @slow.
"""
from __future__ import annotations

import os

import pytest

from specoracle.fastpath import registry
from specoracle.fastpath.ops import parity

THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"
SWEEP_SEQUENCES = 100_000


def _params(with_sweep=False):
    out = []
    for name, op in sorted(registry.ops().items()):
        if with_sweep and op.sweep is None:
            continue
        for backend in registry.available_backends():
            if not registry.applies(backend, op):
                continue  # by design another backend's op (a Triton kernel), not a missing twin
            marks = []
            if not registry.has_op(backend, op):
                marks.append(pytest.mark.xfail(strict=True, raises=registry.MissingOp,
                                               reason=f"{backend} lacks op {name}"))
            out.append(pytest.param(name, backend, marks=marks, id=f"{backend}-{name}"))
    return out


@pytest.mark.parametrize("op_name, backend", _params())
def test_parity(op_name, backend):
    op = registry.get(op_name)
    registry.resolve(backend, op)  # MissingOp -> the strict xfail above
    res = parity.run_op(backend, op, quick=not THOROUGH)
    assert res.status == "pass", res.detail
    assert res.rows > 0
    assert res.excluded_fraction <= parity.MAX_EXCLUDED_FRACTION


@pytest.mark.slow
@pytest.mark.parametrize("op_name, backend", _params(with_sweep=True))
def test_parity_sweep(op_name, backend):
    """>= 10^5 random ragged sequences per op (fixed seed), rule of the op."""
    op = registry.get(op_name)
    registry.resolve(backend, op)
    cases = op.sweep(SWEEP_SEQUENCES, 20261122)
    assert sum(c.batch for c in cases) >= SWEEP_SEQUENCES
    res = parity.run_op(backend, op, cases=cases)
    assert res.status == "pass", res.detail


def test_run_parity_reports_every_op():
    """run_parity returns one result per registered op, and a missing op as 'missing'."""
    res = parity.run_parity("numba", quick=True, ops=["greedy"])
    assert list(res) == ["greedy"] and res["greedy"].passed
    missing = parity.run_op("numba", registry.get("chain_logits"))   # a torch-only op
    assert missing.status == "missing" and "chain_logits" in missing.detail
    row = parity.summary_row("numba", res)
    assert row["ok"] and row["passed"] == ["greedy"]


@pytest.mark.parametrize("old, new", [("numba_cpu", "numba"), ("torch_cuda", "torch")])
def test_retired_backend_spellings_are_rejected_with_the_new_name(old, new):
    """One vocabulary: the package names are not backend names; the error says
    which name replaced them, everywhere a backend is named (parity, resolve)."""
    with pytest.raises(registry.UnknownBackend, match=f"now spelled '{new}'"):
        parity.run_parity(old, ops=["greedy"])
    with pytest.raises(registry.UnknownBackend, match=f"now spelled '{new}'"):
        registry.resolve(old, "greedy")
    with pytest.raises(registry.UnknownBackend, match="known: reference, numpy_batch, numba, torch"):
        registry.backend_name("cuda")


def _shift_final_token(fn):
    """A plausible bug: the final (residual / bonus) draw is off by one token id."""
    import numpy as np

    def wrong(p, q, draft, u, *, num_draft=None, raise_on_error=True):
        out = fn(p, q, draft, u, num_draft=num_draft, raise_on_error=False)
        tokens = out.tokens.copy()
        rows = np.flatnonzero(out.status == 0)
        last = out.n_accepted[rows]
        tokens[rows, last] = (tokens[rows, last] + 1) % np.shape(p)[2]
        return type(out)(out.n_accepted, tokens, out.bonus, out.status, out.fallbacks)
    return wrong


def _flip_decisions(fn):
    """A plausible bug: accept iff u * q(x) <= 1.5 p(x) (too lenient)."""
    import numpy as np

    def wrong(p, q, draft, u, *, num_draft=None, raise_on_error=True):
        return fn(np.asarray(p), q, draft, np.asarray(u) / 1.5, num_draft=num_draft,
                  raise_on_error=False)
    return wrong


@pytest.mark.parametrize("op_name", ["chain", "block", "chain.float32", "block.float32"])
@pytest.mark.parametrize("mutate", [_shift_final_token, _flip_decisions])
def test_parity_rejects_wrong_kernels(op_name, mutate):
    """Negative controls: both rules (exact, decisions_with_margin) must fail a wrong kernel."""
    from specoracle.fastpath.numba_cpu import categorical

    op = registry.get(op_name)
    wrong = mutate(getattr(categorical, op.function))
    res = parity.run_op("numba", op, function=wrong)
    assert res.status == "fail" and res.mismatches > 0, res.detail


def _gauss_wrong_residual(fn):
    """A plausible bug: the residual uniform is reused as 1 - u_res (a different quantile)."""
    def wrong(m_p, m_q, s, z, eta, u_res, z_orth, **kw):
        import numpy as np

        return fn(m_p, m_q, s, z, eta, np.nextafter(1.0, 0.0) - np.asarray(u_res), z_orth, **kw)
    return wrong


def _gauss_lenient(fn):
    """A plausible bug: accept with eta / 2 (too lenient)."""
    def wrong(m_p, m_q, s, z, eta, u_res, z_orth, **kw):
        import numpy as np

        return fn(m_p, m_q, s, z, np.asarray(eta) / 2, u_res, z_orth, **kw)
    return wrong


@pytest.mark.parametrize("backend", ["numba", "numpy_batch"])
@pytest.mark.parametrize("op_name", ["gaussian_chain", "gaussian_block"])
@pytest.mark.parametrize("mutate", [_gauss_wrong_residual, _gauss_lenient])
def test_gaussian_parity_rejects_wrong_kernels(op_name, mutate, backend):
    """Negative controls for rule allclose_vs_naive (states and decisions)."""
    op = registry.get(op_name)
    res = parity.run_op(backend, op, function=mutate(registry.resolve(backend, op)))
    assert res.status == "fail" and res.mismatches > 0, res.detail


def test_tree_parity_rejects_a_wrong_kernel():
    """Negative control for the tree ops: MSS accepting with u / 1.5."""
    import numpy as np

    from specoracle.fastpath.numba_cpu import tree

    def wrong(p, q, tokens, parents, u, **kw):
        return tree.verify_mss_tree(p, q, tokens, parents, np.asarray(u) / 1.5, **kw)

    res = parity.run_op("numba", registry.get("tree_mss"), function=wrong)
    assert res.status == "fail" and res.mismatches > 0, res.detail
