"""Statistical certification of the fast-path twins of the Gaussian samplers and of the
MSS tree verifier (certify names ``<backend>.gaussian_gamma``, ``.gaussian_reflection``,
``.gaussian_block``, ``.gaussian_chain``, ``.mss``; fastpath/registry.py): each certifies
exact through the protocol and scenarios of its oracle name, and a known-wrong variant fed
through the same adapter (proofs/certify/adapters.py ``FASTPATH_ADAPTERS``) is rejected.

Runs use fixed seeds and the reduced effect target_tv = 0.1 (power 0.9 at KS / TV 0.1,
samples planned by certify), at the level this file's entries in tests/alpha_budget.toml give.
"""
from __future__ import annotations

import numpy as np
import pytest

from specoracle.cli import main as cli_main
from specoracle.fastpath import registry
from specoracle.fastpath.ops.gaussian import GAUSS_RTOL
from specoracle.proofs import certify as C
from specoracle.proofs.certify.adapters import FASTPATH_ADAPTERS
from specoracle.reference.types import InvalidInput, Verdict

QUICK = {"target_tv": 0.1, "seed": 0}
NEW = ("mss", "gaussian_gamma", "gaussian_reflection", "gaussian_block", "gaussian_chain")
#: the oracle's certify name whose protocol and scenarios each new name shares
ORACLE = {"mss": "reference.mss", "gaussian_gamma": "reference.gaussian_gamma",
          "gaussian_reflection": "reference.gaussian_reflection", "gaussian_block": "reference.gaussian_block",
          "gaussian_chain": "reference.gaussian_chain"}


def _names():
    fast = registry.certify_names()
    return [n for n in fast if n.split(".", 1)[1] in NEW]


def test_names_are_listed_and_share_the_oracle_protocol():
    """Every new name is in ``certify --list``, on numba and torch at least, with its
    oracle's protocol and scenarios (minus the registry's visible exemptions)."""
    names = _names()
    assert {f"{b}.{n}" for b in ("numba", "torch") for n in NEW} <= set(names)
    listed = set(C.list_impls())
    for name in names:
        assert name in listed, name
        impl, ref = C.resolve_impl(name), C.resolve_impl(ORACLE[name.split(".", 1)[1]])
        assert impl.protocol == ref.protocol and impl.batch is not None, name
        mine = set(impl.scenarios or C.DEFAULT_SCENARIOS[impl.protocol])
        exempt = dict(impl.exempt)
        assert set(ref.scenarios or C.DEFAULT_SCENARIOS[ref.protocol]) - set(exempt) <= mine, name
    assert "mss" in dict(C.resolve_impl("numba.mss").exempt)


@pytest.mark.statistical
@pytest.mark.parametrize("name", sorted(_names()) + ["reference.mss@mss_shared"])
def test_fastpath_twin_certifies_exact(name, specoracle_alpha):
    """alpha: this test's share of the suite budget per case (tests/alpha_budget.toml; Holm over
    the run's checks); power 0.9 at KS / TV 0.1 (samples planned by certify). The batched
    twin is called once per scenario. ``reference.mss@mss_shared``: the oracle passes the
    scenario its twins run instead of mss."""
    name, _, scenario = name.partition("@")
    report = C.certify(name, alpha=specoracle_alpha, scenarios=(scenario,) if scenario else None, **QUICK)
    assert report.verdict == "exact", report.format()
    assert report.planned >= 3


def test_batch_of_one_reads_the_stream_as_the_oracle():
    """A batch of one draws its noise as the oracle's certify adapter does: same generator
    state in, same decision and the same output (to the parity rule's GAUSS_RTOL,
    tests/TOLERANCES.md "Fast path parity")."""
    for name in ("numba.gaussian_gamma", "numba.gaussian_reflection", "numba.gaussian_block",
                 "numba.gaussian_chain"):
        impl, ref = C.resolve_impl(name), C.resolve_impl(ORACLE[name.split(".", 1)[1]])
        args = ((np.array([0.3, -0.2, 0.5]), np.zeros(3), 0.7, np.array([0.1, 0.4, -1.2]))
                if impl.protocol == "gauss_step" else
                (np.array([[0.9, 0.0], [0.6, 0.2], [1.1, -0.3]]), np.array([[0.3, 0.0], [0.2, 0.1]]),
                 np.full(3, 0.7), np.array([[0.5, -0.4], [1.3, 0.2]])))
        for seed in range(8):
            got = impl.fn(*args, np.random.default_rng(seed))
            want = ref.fn(*args, np.random.default_rng(seed))
            if impl.protocol == "gauss_step":
                assert got.accepted == want.accepted, name
                assert np.allclose(got.x, want.x, rtol=GAUSS_RTOL, atol=GAUSS_RTOL), name
            else:
                assert got.n_accepted == want.n_accepted, name
                assert np.allclose(got.states, want.states, rtol=GAUSS_RTOL, atol=GAUSS_RTOL), name
    impl, ref = C.resolve_impl("numba.mss"), C.resolve_impl("reference.mss")
    p, q = np.array([0.5, 0.3, 0.2]), np.tile([0.2, 0.2, 0.6], (3, 1))
    for seed in range(40):
        kids = np.random.default_rng(1000 + seed).integers(0, 3, size=3)
        assert impl.fn(p, q, kids, np.random.default_rng(seed)) == ref.fn(p, q, kids, np.random.default_rng(seed))


def test_mss_exemption_is_refused_by_name(capsys):
    """Scenario mss (three draft rows) cannot be fed to the twins (one draft row per parent):
    certify refuses it naming the reason, the CLI with exit 2 and one line; rows that differ
    are bad input to the adapter."""
    with pytest.raises(InvalidInput, match="one draft row per parent"):
        C.certify("numba.mss", scenarios=("mss",), **QUICK)
    assert cli_main(["certify", "numba.mss", "--scenarios", "mss", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "scenarios" in err[0]
    impl = C.resolve_impl("numba.mss")
    with pytest.raises(InvalidInput, match="row 1 differs"):
        impl.fn(np.array([0.5, 0.5]), np.array([[0.5, 0.5], [0.9, 0.1]]), np.array([0, 1]), np.random.default_rng(0))


# ---------------------------------------------------------------- known-wrong variants, same adapter


def _shared_uniform(fn):
    """Gamma coupling whose residual reuses the accept test's uniform (u_res = u: the noise
    of a rejected step is not uniform given the rejection)."""
    return lambda m_p, m_q, s, z, u, u_res, z_orth: fn(m_p, m_q, s, z, u, u, z_orth)


def _reused_draft_noise(fn):
    """Block verification fed the first draft's noise as the residual's orthogonal noise:
    at tau = 0 the rejected draft's W is reused, invalid outside token mode (ALGORITHMS.md §2.4)."""
    return lambda m_p, m_q, s, z, eta, u_res, z_orth: fn(m_p, m_q, s, z, eta, u_res, np.ascontiguousarray(z[:, 0]))


def _chain_shared_uniform(fn):
    """Token-level window whose residual reuses the first step's accept uniform."""
    return lambda m_p, m_q, s, z, eta, u_res, z_orth: fn(m_p, m_q, s, z, eta, np.ascontiguousarray(eta[:, 0]),
                                                         z_orth)


class _Rows:
    def __init__(self, rows):
        self.rows = rows

    def verdict(self, j):
        return self.rows[j]


def _no_residual_update(fn):
    """MSS without the residual update (mutant.mss_no_residual_update) built from the twin:
    each child is tested alone against the node's original target row (a one-child star),
    and when none is accepted the token is the twin's bonus draw from p (a node with no
    children), not from the residual."""
    def twin(p, q, tokens, parents, u):
        n, k = tokens.shape
        none = fn(p[:, :1].copy(), q[:, :1].copy(), np.zeros((n, 0), np.int64), np.zeros((n, 0), np.int64),
                  u[:, k:].copy())
        each = [fn(p[:, :2].copy(), q[:, :2].copy(), tokens[:, j:j + 1].copy(), parents[:, j:j + 1].copy(),
                   u[:, [j, k]].copy()) for j in range(k)]
        rows = []
        for b in range(n):
            hit = next((j for j in range(k) if each[j].verdict(b).n_accepted), None)
            if hit is None:
                rows.append(none.verdict(b))
            else:
                v = each[hit].verdict(b)
                rows.append(Verdict(1, v.tokens, v.bonus, v.fallbacks, (hit,)))
        return _Rows(rows)
    return twin


WRONG = [("gaussian_step", _shared_uniform), ("gaussian_block", _reused_draft_noise),
         ("gaussian_chain", _chain_shared_uniform), ("tree_mss", _no_residual_update)]


@pytest.mark.statistical
@pytest.mark.parametrize("op_name,corrupt", WRONG, ids=[w[0] for w in WRONG])
def test_wrong_twin_is_rejected_through_the_adapter(op_name, corrupt, specoracle_alpha):
    """Negative control of test_fastpath_twin_certifies_exact (same level, power 0.9 at KS /
    TV 0.1): the numba twin with a known bug wired in, wrapped by the same adapter, is not
    exact on its name's default battery."""
    op = registry.get(op_name)
    fn = registry.resolve("numba", op)
    impl = FASTPATH_ADAPTERS[op_name](f"wrong.{op.certify}", corrupt(fn), op, "test")
    report = C.certify(impl, alpha=specoracle_alpha, **QUICK)
    assert report.verdict.startswith("not exact"), report.format()


@pytest.mark.statistical
@pytest.mark.parametrize("mutant", ["mutant.mss_no_residual_update", "mutant.mss_no_renormalise"])
def test_mss_mutants_are_rejected_on_the_twins_scenario(mutant, specoracle_alpha):
    """Negative control of test_fastpath_twin_certifies_exact: the twins' MSS scenario
    (mss_shared, one draft row) has power against the zoo's MSS bugs (power 0.9 at TV 0.1)."""
    report = C.certify(mutant, scenarios=("mss_shared",), alpha=specoracle_alpha, **QUICK)
    assert report.verdict.startswith("not exact"), report.format()
