"""The numba CPU twins beyond the parity registry: the pairwise-sum primitive, the rng
wrappers' noise layout, statuses and errors, fallbacks, float32 promotion, serial vs
threaded kernels, and a hypothesis property test of exact parity on small inputs."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from strategies import small_round
from specoracle.fastpath.numba_cpu import _primitives, categorical as nc, gaussian as ng, tree as nt
from specoracle.fastpath.types import (FALLBACK_CDF_ROUNDING, FALLBACK_RESIDUAL_ZERO_MASS,
                                       STATUS_BAD_LENGTH, STATUS_BAD_TREE, STATUS_DRAFT_OUT_OF_RANGE,
                                       STATUS_DRAFT_ZERO_Q, STATUS_NONFINITE, STATUS_OK)
from specoracle.reference import categorical as rc, gaussian as rg, tree as rt
from specoracle.reference.types import InvalidInput


@pytest.mark.parametrize("v", [1, 2, 7, 8, 9, 16, 127, 128, 129, 255, 1000, 1025, 4099, 8192, 8193, 32000])
def test_residual_mass_is_numpy_pairwise_sum(v, rng):
    """residual_mass == np.maximum(s p - q, 0).sum() bit for bit (NumPy's pairwise order)."""
    for _ in range(5):
        p = rng.random(v) * 10.0 ** rng.integers(-8, 1, v)
        q = rng.random(v) * 10.0 ** rng.integers(-8, 1, v)
        s = float(rng.random())
        assert _primitives.residual_mass(p, q, s) == np.maximum(s * p - q, 0).sum()
        assert _primitives.residual_mass(p, q, 1.0) == np.maximum(p - q, 0).sum()


def _batch(rng, bsz, k, v):
    p = rng.dirichlet(np.ones(v), size=(bsz, k + 1))
    q = 0.5 * p[:, :k] + 0.5 * rng.dirichlet(np.ones(v), size=(bsz, k))
    draft = np.array([[rng.choice(v, p=q[b, i]) for i in range(k)] for b in range(bsz)]).reshape(bsz, k)
    return p, q, draft


@pytest.mark.parametrize("name", ["chain", "block"])
def test_rng_wrapper_draws_the_reference_stream(name, rng):
    """u = rng.random((B, K+1)): the same stream as B reference *_rng calls in order."""
    p, q, draft = _batch(rng, 6, 3, 11)
    fast = getattr(nc, f"verify_{name}_rng")(p, q, draft, np.random.default_rng(7))
    g = np.random.default_rng(7)
    ref = [getattr(rc, f"verify_{name}_rng")(p[b], q[b], draft[b], g) for b in range(6)]
    assert [fast.verdict(b) for b in range(6)] == ref


def test_tree_rng_wrappers(rng):
    v, n = 7, 5
    p = rng.dirichlet(np.ones(v), size=(1, n + 1))
    q = rng.dirichlet(np.ones(v), size=(1, n + 1))
    parents = np.array([[-1, 0, 0, 1, -1]])
    tokens = np.array([[int(np.argmax(q[0, par + 1])) for par in parents[0]]])
    a = nt.verify_mss_tree_rng(p, q, tokens, parents, np.random.default_rng(3)).verdict(0)
    assert a == rt.verify_mss_tree_rng(p[0], q[0], tokens[0], parents[0], np.random.default_rng(3))
    a = nt.verify_tree_deterministic_rng(p, tokens, parents, np.random.default_rng(4)).verdict(0)
    assert a == rt.verify_tree_deterministic_rng(p[0], tokens[0], parents[0], np.random.default_rng(4))


def test_gaussian_rng_wrappers(rng):
    m_p, m_q, z = rng.standard_normal((1, 4, 3)), rng.standard_normal((1, 3, 3)), rng.standard_normal((1, 3, 3))
    for name in ("verify_gaussian_block_rng", "verify_gaussian_chain_rng"):
        got = getattr(ng, name)(m_p, m_q, 0.7, z, np.random.default_rng(5)).verdict(0)
        ref = getattr(rg, name)(m_p[0], m_q[0], 0.7, z[0], np.random.default_rng(5))
        assert got.n_accepted == ref.n_accepted and np.allclose(got.states, ref.states, rtol=1e-9, atol=1e-9)
    got = ng.gamma_coupling_rng(m_p[:, 0], m_q[:, 0], 0.7, np.random.default_rng(6)).verdict(0)
    ref = rg.gamma_coupling_rng(m_p[0, 0], m_q[0, 0], 0.7, np.random.default_rng(6))
    assert got.accepted == ref.accepted and np.allclose(got.x, ref.x, rtol=1e-9, atol=1e-9)


def test_statuses_and_wrapper_errors(rng):
    p, q, draft = _batch(rng, 5, 2, 6)
    u = rng.random((5, 3))
    draft[1, 0] = 6
    q[2, 1, draft[2, 1]] = 0.0
    p[3, 0, draft[3, 0]] = np.nan
    nd = np.array([2, 2, 2, 2, 3])
    for fn in (nc.verify_chain, nc.verify_block):
        out = fn(p, q, draft, u, num_draft=nd, raise_on_error=False)
        assert list(out.status) == [STATUS_OK, STATUS_DRAFT_OUT_OF_RANGE, STATUS_DRAFT_ZERO_Q,
                                    STATUS_NONFINITE, STATUS_BAD_LENGTH]
        with pytest.raises(InvalidInput) as exc:
            fn(p, q, draft, u, num_draft=nd)
        assert exc.value.argument == "draft" and exc.value.index == 1
    with pytest.raises(InvalidInput, match="u"):
        nc.verify_chain(p, q, draft, np.ones((5, 3)))
    with pytest.raises(InvalidInput, match="q"):
        nc.verify_chain(p, q[:, :1], draft, u)
    with pytest.raises(InvalidInput, match="draft"):
        nc.verify_chain(p, q, draft[:, :1], u)
    with pytest.raises(InvalidInput, match="draft"):
        nc.verify_greedy(p, draft + 0.5)


def test_tree_statuses(rng):
    p = rng.dirichlet(np.ones(4), size=(3, 4))
    tokens = np.array([[0, 1, 2], [0, 1, 2], [0, 9, 2]])
    parents = np.array([[-1, 0, 0], [-1, 1, 0], [-1, 0, 0]])
    out = nt.verify_tree_deterministic(p, tokens, parents, rng.random((3, 4)), raise_on_error=False)
    assert list(out.status) == [STATUS_OK, STATUS_BAD_TREE, STATUS_DRAFT_OUT_OF_RANGE]
    with pytest.raises(InvalidInput, match="parent"):
        nt.verify_tree_deterministic(p, tokens, parents, rng.random((3, 4)))


def test_fallbacks_are_counted():
    """The two float64 fallbacks of the oracle fire in the kernel too (and are reported)."""
    u_max = 1.0 - 2.0 ** -53
    p = np.full((1, 2, 4), 0.25)
    q = np.full((1, 1, 4), 0.25)
    q[0, 0, 1] += 4 * 2.0 ** -54
    out = nc.verify_chain(p, q, [[1]], [[u_max, 0.6]])
    assert out.fallbacks[0] == FALLBACK_RESIDUAL_ZERO_MASS and out.n_accepted[0] == 0
    assert out.verdict(0) == rc.verify_chain(p[0], q[0], [1], [u_max, 0.6])
    p = np.array([[[5e-324, 0.5, 0.5], [0.2, 0.3, 0.5]]])
    q = np.array([[[0.0, 0.5 + 2.0 ** -53, 0.5]]])
    out = nc.verify_chain(p, q, [[1]], [[u_max, 0.75]])
    assert out.fallbacks[0] == FALLBACK_CDF_ROUNDING and out.tokens[0, 0] == 0
    assert out.verdict(0) == rc.verify_chain(p[0], q[0], [1], [u_max, 0.75])


@pytest.mark.parametrize("name", ["verify_chain", "verify_block"])
def test_float32_inputs_equal_the_float64_upcast_and_threads_agree(name, rng):
    """float32 rows are promoted on read: the result equals the float64 run on the upcast
    rows exactly; serial and threaded kernels agree."""
    p, q, draft = _batch(rng, 32, 4, 50)
    p32, q32 = p.astype(np.float32), q.astype(np.float32)
    u = rng.random((32, 5))
    fn = getattr(nc, name)
    a = fn(p32, q32, draft, u, raise_on_error=False)
    b = fn(p32.astype(np.float64), q32.astype(np.float64), draft, u, raise_on_error=False)
    c = fn(p32, q32, draft, u, raise_on_error=False, parallel=False)
    for x, y in ((a, b), (a, c)):
        assert np.array_equal(x.tokens, y.tokens) and np.array_equal(x.n_accepted, y.n_accepted)


@given(small_round())
def test_exact_parity_on_small_rounds(case):
    """Hypothesis: chain, block and greedy equal the oracle on small integer-weight rounds
    (ties and exact boundaries u q = p are frequent with such weights)."""
    p, q, draft, u = case
    k = len(draft)
    args = (p[None], q.reshape(1, k, p.shape[1]), draft[None], u[None])
    assert nc.verify_chain(*args).verdict(0) == rc.verify_chain(p, q, draft, u)
    assert nc.verify_block(*args).verdict(0) == rc.verify_block(p, q, draft, u)
    assert nc.verify_greedy(p[None], draft[None]).verdict(0) == rc.verify_greedy(p, draft)
