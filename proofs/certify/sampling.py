"""Running a certification scenario (:mod:`specoracle.proofs.certify`): feed the
sampler the scenario's inputs n times through its protocol, normalise and check each
output (impl.py), and reduce the outputs to what the decision needs: cell indices of
the exact categorical laws, whitened coordinates of the Gaussian outputs, acceptance
counts. ``RUNNERS[type(scenario)]`` returns the scenario's test results.

The ``run_*`` / ``sample_*`` functions return the raw reductions (no test): sweeps
(sweep/counts.py) run them in workers and merge the counts before deciding.
"""
from __future__ import annotations

import dataclasses
import inspect

import numpy as np
from scipy import stats as sps

from .. import stats as st
from . import scenarios as scn
from .decision import gof, keyed
from .impl import LAWS, OutputFormatError, block_output, check_ids, short_output, split_output

ENERGY_MAX_N = 250       # the energy test uses the first 250 samples (O(n^2) cost)


def all_scenarios():
    out = {}
    for f in (scn.markov_scenarios, scn.greedy_scenarios, scn.logits_scenarios, scn.rounds_scenarios,
              scn.multi_scenarios, scn.tree_scenarios, scn.gauss_scenarios):
        out.update(f())
    return out


_LOGIT_KEYWORDS = ("top_k", "min_p")


def logit_keywords(sc) -> dict:
    """The keyword warps (top_k, min_p) a logits scenario passes to the sampler."""
    return {k: sc.warp[k] for k in _LOGIT_KEYWORDS if sc.warp.get(k) is not None}


def takes_keywords(fn, names) -> bool:
    """Whether ``fn`` accepts the keyword arguments ``names`` (True if it cannot be inspected)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return True
    have = {p.name for p in params if p.kind in (inspect.Parameter.KEYWORD_ONLY,
                                                  inspect.Parameter.POSITIONAL_OR_KEYWORD)}
    return set(names) <= have


# ---------------------------------------------------------------- sampling per scenario type

def _tick(bar, j: int) -> None:
    """Progress: one update per 256 rounds (call with the 0-based round index)."""
    if bar is not None and j % 256 == 255:
        bar.update(256)


def _tick_end(bar, n: int) -> None:
    if bar is not None:
        bar.update(n % 256)


def run_markov(impl, sc, n, rng, bar):
    """Emitted blocks of n rounds: completed-block indices, emitted-cell indices, taus."""
    draft, p, q = sc.draw_drafts(n, rng)
    joint = np.empty(n, dtype=np.int64)
    emitted = np.empty(n, dtype=np.int64)
    taus = np.empty(n, dtype=np.int64)
    V, K = sc.V, sc.K
    prevs = np.concatenate([np.full((n, 1), V), draft], axis=1)
    extra = logit_keywords(sc)
    batched = None
    if impl.batch is not None and impl.protocol == "probs":
        bv = impl.batch(p, q, draft, rng.random((n, K + 1)))
        batched = [bv.verdict(j) for j in range(n)]
    for j in range(n):
        if batched is not None:
            out = batched[j]
        elif impl.protocol == "logits":
            lp, lq = sc.logits_along(prevs[j])
            out = impl.fn(lp, lq, draft[j], rng, sc.warp.get("temperature", 1.0), sc.warp.get("top_p"), **extra)
        else:
            out = impl.fn(p[j], q[j], draft[j], rng)
        try:
            toks, taus[j] = block_output(out, V, K)
        except OutputFormatError as exc:
            raise OutputFormatError(f"round {j}: {exc}") from None
        joint[j] = scn.seq_index(sc.complete(toks, rng), V)
        emitted[j] = sc.emitted_index(toks)
        _tick(bar, j)
    _tick_end(bar, n)
    return joint, emitted, taus


def _tokens_of(index: int, V: int, length: int) -> tuple:
    out = []
    for _ in range(length):
        out.append(index % V)
        index //= V
    return tuple(reversed(out))


def _describe_emitted(sc):
    off = sc.emitted_offsets()

    def describe(cell):
        t = int(np.searchsorted(off, cell, side="right")) - 1
        return f"tau = {t}, tokens {_tokens_of(cell - int(off[t]), sc.V, t + 1)}"
    return describe


def _check_markov(impl, sc, n, rng, alpha_i, power, bar):
    joint, emitted, taus = run_markov(impl, sc, n, rng, bar)
    res = [gof(f"{sc.name}/joint", joint, sc.joint_law(), alpha_i, power, rng,
                lambda c: f"completed block {_tokens_of(c, sc.V, sc.K + 1)}")]
    if impl.law in LAWS:
        em = sc.chain_law() if impl.law == "chain" else sc.block_law()
        ln = sc.length_law(em)
        res.append(gof(f"{sc.name}/emitted|tau", emitted, em, alpha_i, power, rng, _describe_emitted(sc)))
        res.append(gof(f"{sc.name}/tau", taus, ln, alpha_i, power, rng, lambda c: f"tau = {c}"))
        res.append(st.binomial_test(int(np.sum(taus >= 1)), n, float(1 - ln[0]),
                                    alpha=alpha_i, power=power, name=f"{sc.name}/accept1"))
    return res


def _check_rounds(impl, sc, n, rng, alpha_i, power, bar):
    """n requests of R rounds each, every request with its own generator (module doc).
    A batched kernel (``Impl.batch``: its noise comes from the certifier, there is no
    sampler RNG to reuse) is called once per round for all requests instead."""
    V, K, R = sc.V, sc.K, sc.R
    rounds = sc.rounds()
    run = _rounds_batched if impl.batch is not None and impl.protocol == "probs" else _rounds_per_request
    toks, taus = run(impl, sc, rounds, n, rng, bar)          # emitted tokens per request, [n, R] taus
    stream = np.array([scn.seq_index(t[:sc.M], V) for t in toks], dtype=np.int64)
    hist = np.zeros(n, dtype=np.int64)
    for r in range(R):
        hist = hist * (K + 1) + taus[:, r]
    res = [gof(f"{sc.name}/stream", stream, sc.stream_law(), alpha_i, power, rng,
                lambda c: f"first tokens {_tokens_of(c, V, sc.M)}")]
    if impl.law in LAWS:
        res.append(gof(f"{sc.name}/taus", hist, sc.taus_law(impl.law), alpha_i, power, rng,
                        lambda c: f"taus {_tokens_of(c, K + 1, R)}"))
    return res


def _round_output(out, V, K, j, r):
    try:
        return block_output(out, V, K)
    except OutputFormatError as exc:
        raise OutputFormatError(f"request {j}, round {r}: {exc}") from None


def _rounds_per_request(impl, sc, rounds, n, rng, bar):
    requests = keyed(rng, 0x7275, sc.name).spawn(n)   # one generator per request
    toks_all = [[] for _ in range(n)]
    taus = np.empty((n, sc.R), dtype=np.int64)
    for j in range(n):
        own = np.random.default_rng(requests[j])
        c = sc.V
        for r in range(sc.R):
            draft, p, q = rounds[c].draw_drafts(1, rng)
            toks, taus[j, r] = _round_output(impl.fn(p[0], q[0], draft[0], own), sc.V, sc.K, j, r)
            toks_all[j] += toks
            c = toks[-1]
        _tick(bar, j)
    _tick_end(bar, n)
    return toks_all, taus


def _rounds_batched(impl, sc, rounds, n, rng, bar):
    V, K = sc.V, sc.K
    toks_all = [[] for _ in range(n)]
    taus = np.empty((n, sc.R), dtype=np.int64)
    ctx = np.full(n, V)
    for r in range(sc.R):
        draft = np.empty((n, K), dtype=np.int64)
        p, q = np.empty((n, K + 1, V)), np.empty((n, K, V))
        for c in np.unique(ctx):
            idx = np.flatnonzero(ctx == c)
            draft[idx], p[idx], q[idx] = rounds[c].draw_drafts(len(idx), rng)
        bv = impl.batch(p, q, draft, rng.random((n, K + 1)))
        for j in range(n):
            toks, taus[j, r] = _round_output(bv.verdict(j), V, K, j, r)
            toks_all[j] += toks
            ctx[j] = toks[-1]
    if bar is not None:
        bar.update(n)
    return toks_all, taus


def _check_multi(impl, sc, n, rng, alpha_i, power, bar):
    children = sc.draw_children(n, rng)
    V = sc.V
    cells = np.empty(n, dtype=np.int64)
    batched = impl.batch(sc.p, sc.q, children, rng) if _batched(impl, "mss") and sc.kind == "mss" else None
    for j in range(n):
        if batched is not None:
            out = batched.verdict(j)
        elif sc.kind == "mss":
            out = impl.fn(sc.p, sc.q, children[j], rng)
        else:
            out = impl.fn(sc.p, sc.q[0], children[j], rng)
        raw, tau = split_output(out)
        try:
            toks = check_ids(raw, V, 1, out)
        except OutputFormatError as exc:
            raise OutputFormatError(f"round {j}: {exc}") from None
        if tau is None or int(tau) not in (0, 1):
            raise OutputFormatError(f"round {j}: n_accepted must be 0 (the token is a correction) or 1 (a child "
                                    f"was accepted), got {tau!r}: {short_output(out)}")
        cells[j] = int(tau) * V + toks[0]
        _tick(bar, j)
    _tick_end(bar, n)
    law = sc.law()

    def describe(c):
        return f"{'accepted child' if c >= V else 'corrected token'} {c % V}"
    return [gof(f"{sc.name}/token", cells % V, law[:V] + law[V:], alpha_i, power, rng, lambda c: f"token {c}"),
            gof(f"{sc.name}/accepted,token", cells, law, alpha_i, power, rng, describe),
            st.binomial_test(int(np.sum(cells >= V)), n, float(law[V:].sum()),
                             alpha=alpha_i, power=power, name=f"{sc.name}/accept")]


def _check_tree(impl, sc, n, rng, alpha_i, power, bar):
    rows = sc.rows()
    joint, taus = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    for j in range(n):
        out = impl.fn(rows, sc.tokens, sc.parents, rng)
        try:
            toks, taus[j] = block_output(out, sc.V, sc.D)
        except OutputFormatError as exc:
            raise OutputFormatError(f"round {j}: {exc}") from None
        joint[j] = scn.seq_index(sc.complete(toks, rng), sc.V)
        _tick(bar, j)
    _tick_end(bar, n)
    return [gof(f"{sc.name}/joint", joint, sc.joint_law(), alpha_i, power, rng,
                 lambda c: f"completed path {_tokens_of(c, sc.V, sc.D + 1)}"),
            gof(f"{sc.name}/tau", taus, sc.length_law(), alpha_i, power, rng, lambda c: f"tau = {c}")]


def _finite_rows(y, d):
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    return y if y.shape == (d,) and np.all(np.isfinite(y)) else None


def _batched(impl, protocol: str) -> bool:
    """Whether the statistical run calls ``impl.batch`` once for all n rounds (batched fast
    paths, :class:`~.impl.Impl`) instead of ``impl.fn`` once per round."""
    return impl.batch is not None and impl.protocol == protocol


def sample_gauss_step(impl, sc, n, rng, bar):
    """Whitened outputs w [n, d] (basis coordinates; 1e6 for malformed ones), accepted [n], bad."""
    d = len(sc.m_p)
    basis = sc.basis()
    w = np.empty((n, d))
    acc = np.zeros(n, dtype=bool)
    bad = 0
    batched = None
    if _batched(impl, "gauss_step"):
        zs = rng.standard_normal((n, d))
        batched = impl.batch(np.tile(sc.m_p, (n, 1)), np.tile(sc.m_q, (n, 1)), np.full(n, float(sc.s)), zs, rng)
    for j in range(n):
        if batched is not None:
            z, out = zs[j], batched.verdict(j)
        else:
            z = rng.standard_normal(d)
            out = impl.fn(sc.m_p, sc.m_q, sc.s, z, rng)
        y, a = (out.x, out.accepted) if hasattr(out, "accepted") else out
        y = _finite_rows(y, d)
        draft = sc.m_q + sc.s * z
        if y is None or (bool(a) and not np.allclose(y, draft, rtol=0, atol=1e-12)):
            bad += 1
            y = np.full(d, 1e6)  # an impossible value: rejected by every test
        w[j] = basis @ ((y - sc.m_p) / sc.s)
        acc[j] = bool(a)
        _tick(bar, j)
    _tick_end(bar, n)
    return w, acc, bad


def _check_gauss_step(impl, sc, n, rng, alpha_i, power, bar):
    d = len(sc.m_p)
    w, acc, bad = sample_gauss_step(impl, sc, n, rng, bar)
    res = [_named(st.ks_normal(w[:, 0], alpha=alpha_i, power=power), f"{sc.name}/e ks"),
           _named(st.anderson_normal(w[:, 0], alpha=alpha_i, power=power), f"{sc.name}/e ad")]
    res += [_named(st.anderson_normal(w[:, j], alpha=alpha_i, power=power), f"{sc.name}/orth{j} ad")
            for j in range(1, d)]
    res.append(_named(st.energy_normal(w[:ENERGY_MAX_N], alpha=alpha_i, power=power), f"{sc.name}/energy"))
    res.append(st.binomial_test(int(acc.sum()), n, float(2 * sps.norm.cdf(-sc.delta / 2)), alpha=alpha_i,
                                power=power, name=f"{sc.name}/accept"))
    if bad:
        res.append(st.TestResult(f"{sc.name}/wellformed", float(bad), 0.0, n, 0, alpha_i, power, 0.0,
                                 "count", bad, "non-finite output, or 'accepted' output != draft"))
    return res


def _named(r: st.TestResult, name: str) -> st.TestResult:
    return dataclasses.replace(r, name=name)


def sample_gauss_residual(impl, sc, n, rng, bar):
    """zS [n] (S through the exact residual law, then to N(0, 1)) and W [n, d-1]; 1e6 if malformed."""
    d = len(sc.m_p)
    basis = sc.basis()
    S = np.empty(n)
    W = np.empty((n, d - 1))
    for j in range(n):
        y = _finite_rows(impl.fn(sc.m_p, sc.m_q, sc.s, sc.c, rng), d)
        if y is None:
            y = np.full(d, np.nan)
        v = basis @ ((y - sc.m_q) / sc.s)
        S[j], W[j] = v[0], v[1:]
        _tick(bar, j)
    _tick_end(bar, n)
    # probability integral transform through the exact residual law, then to N(0, 1)
    with np.errstate(all="ignore"):
        lt = sc.log_tail(S)
        zS = -sps.norm.ppf(np.exp(lt))  # S has tail exp(lt) = Phi_bar(zS)
    bad = ~np.isfinite(S) | (S < sc.s_star())
    zS = np.where(bad | ~np.isfinite(zS), 1e6, zS)
    W = np.where(np.isfinite(W), W, 1e6)
    return zS, W


def _check_gauss_residual(impl, sc, n, rng, alpha_i, power, bar):
    d = len(sc.m_p)
    zS, W = sample_gauss_residual(impl, sc, n, rng, bar)
    res = [_named(st.ks_normal(zS, alpha=alpha_i, power=power), f"{sc.name}/S ks"),
           _named(st.anderson_normal(zS, alpha=alpha_i, power=power), f"{sc.name}/S ad")]
    res += [_named(st.anderson_normal(W[:, j - 1], alpha=alpha_i, power=power), f"{sc.name}/W{j} ad")
            for j in range(1, d)]
    return res


def sample_gauss_block(impl, sc, n, rng, bar):
    """Innovations xi [n, L+1, d] of the completed trajectories (1e6 if malformed), tau [n] (-1)."""
    d, L = len(sc.x0), sc.L
    xi = np.empty((n, L + 1, d))
    taus = np.empty(n, dtype=np.int64)
    s = np.full(L + 1, sc.s)
    batched = None
    if _batched(impl, "gauss_block"):
        zs = rng.standard_normal((n, L, d))
        means = [_draft_means(sc, z) for z in zs]
        batched = impl.batch(np.stack([m[0] for m in means]), np.stack([m[1] for m in means]),
                             np.tile(s, (n, 1)), zs, rng)
    for j in range(n):
        if batched is not None:
            out = batched.verdict(j)
        else:
            z = rng.standard_normal((L, d))
            m_p, m_q = _draft_means(sc, z)
            out = impl.fn(m_p, m_q, s, z, rng)
        states = np.asarray(out.states if hasattr(out, "states") else out, dtype=np.float64)
        ok = states.ndim == 2 and states.shape[1] == d and 1 <= states.shape[0] <= L + 1 and np.all(np.isfinite(states))
        if not ok:
            xi[j] = 1e6
            taus[j] = -1
            continue
        taus[j] = states.shape[0] - 1
        traj = [sc.x0] + list(states)
        while len(traj) < L + 2:
            traj.append(sc.m_p(traj[-1]) + sc.s * rng.standard_normal(d))
        for i in range(1, L + 2):
            xi[j, i - 1] = (traj[i] - sc.m_p(traj[i - 1])) / sc.s
        _tick(bar, j)
    _tick_end(bar, n)
    return xi, taus


def _draft_means(sc, z):
    """(m_p [L+1, d], m_q [L, d]) along the draft trajectory x_i = m_q(x_{i-1}) + s z_i from x0."""
    xs = [sc.x0]
    for zi in z:
        xs.append(sc.m_q(xs[-1]) + sc.s * zi)
    return np.stack([sc.m_p(x) for x in xs]), np.stack([sc.m_q(x) for x in xs[:-1]])


def _check_gauss_block(impl, sc, n, rng, alpha_i, power, bar):
    d, L = len(sc.x0), sc.L
    xi, taus = sample_gauss_block(impl, sc, n, rng, bar)
    res = [_named(st.anderson_normal(xi[:, i - 1, jj], alpha=alpha_i, power=power), f"{sc.name}/xi{i}[{jj}] ad")
           for i in range(1, L + 2) for jj in range(d)]
    res.append(_named(st.energy_normal(xi[:ENERGY_MAX_N].reshape(min(n, ENERGY_MAX_N), -1), alpha=alpha_i,
                                       power=power), f"{sc.name}/energy"))
    ok = taus >= 0
    res.append(st.binomial_test(int(np.sum(taus[ok] >= 1)), max(int(ok.sum()), 1),
                                float(2 * sps.norm.cdf(-sc.delta1 / 2)), alpha=alpha_i, power=power,
                                name=f"{sc.name}/accept1"))
    return res


RUNNERS = {
    scn.MarkovScenario: _check_markov,
    scn.RoundsScenario: _check_rounds,
    scn.MultiScenario: _check_multi,
    scn.TreeScenario: _check_tree,
    scn.GaussResidualScenario: _check_gauss_residual,
    scn.GaussStepScenario: _check_gauss_step,
    scn.GaussBlockScenario: _check_gauss_block,
}


