"""Sufficient statistics of a certification sweep: per scenario, count TABLES (exact
integer counts per cell, the last cell holding malformed outputs) and the CHECKS that
read them.

A table is filled by rounds of the sampler; two tables of the same scenario merge by
integer addition, so a check's verdict does not depend on how the rounds were split into
tasks. A check is either a chi-square goodness of fit of (a projection of) a table
against its exact law, or an exact binomial test of a set of cells.

Scenario types supported by sweeps: the fixed battery's Markov scenarios (probs and
logits protocols), one-node multi-draft scenarios (mss, kseq), deterministic trees, the
random :class:`~specoracle.proofs.certify.sweep.scenarios.RowScenario`, and the Gaussian
scenarios. Continuous outputs are made countable the same way certify whitens them
(projections that are N(0, 1) under the null), then binned into ``GAUSS_BINS``
equiprobable bins of N(0, 1) (cell = floor(Phi(w) * GAUSS_BINS)): a chi-square test
against the uniform law per projection replaces KS / AD (whose statistics do not merge
exactly), and the energy test is not run. Malformed outputs (certify marks them with the
value 1e6) go to the malformed cell.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from ... import stats as st
from .. import scenarios as scn
from ..decision import Planned, needed_n
from ..impl import tokens_and_tau
from ..sampling import run_markov, sample_gauss_block, sample_gauss_residual, sample_gauss_step
from .scenarios import RowScenario

SWEPT_PROTOCOLS = ("probs", "logits", "mss", "kseq", "tree", "gauss_step", "gauss_residual", "gauss_block")
GAUSS_BINS = 20
_MALFORMED = 1e4   # |whitened value| beyond this is certify's malformed marker (1e6), never N(0, 1)


@dataclass(frozen=True)
class Check:
    """One calibrated check of a scenario: ``kind`` "gof" (``law`` over the cells of
    ``proj[table cell]``; ``proj`` None = identity) or "binom" (success cells ``success``
    of the table, probability ``p0``)."""

    name: str
    table: str
    kind: str
    law: np.ndarray | None = None
    proj: np.ndarray | None = None
    success: np.ndarray | None = None
    p0: float = 0.5

    @property
    def df(self) -> int:
        return int((self.law > 0).sum()) - 1 if self.kind == "gof" else 1

    def planned(self):
        return Planned(self.name, self.kind, self.df, self.p0)

    def test(self, tables: dict, alpha_i: float, power: float) -> st.TestResult:
        c = np.asarray(tables[self.table], dtype=np.float64)
        body, bad = c[:-1], c[-1]
        if self.kind == "binom":
            k = int(body[self.success].sum())
            return st.binomial_test(k, max(int(body.sum()), 1), self.p0, alpha=alpha_i, power=power, name=self.name)
        obs = body if self.proj is None else np.bincount(self.proj, weights=body, minlength=len(self.law))
        probs = np.concatenate([self.law / self.law.sum(), [0.0]])
        return st.chisquare_gof(np.concatenate([obs, [bad]]), probs, alpha=alpha_i, power=power, name=self.name)


def checks(impl, sc) -> list:
    """The calibrated checks ``sc`` contributes for ``impl`` (before sampling)."""
    chain_or_block = impl.law in ("chain", "block")
    if isinstance(sc, RowScenario):
        out = [Check(f"{sc.name}/joint", "joint", "gof", sc.joint_law())]
        if impl.law == "chain":
            out += [Check(f"{sc.name}/emitted|tau", "emitted", "gof", sc.chain_emitted_law()),
                    Check(f"{sc.name}/tau", "tau", "gof", sc.chain_tau_law())]
        return out
    if isinstance(sc, scn.MarkovScenario):
        out = [Check(f"{sc.name}/joint", "joint", "gof", sc.joint_law())]
        if chain_or_block:
            em = sc.chain_law() if impl.law == "chain" else sc.block_law()
            ln = sc.length_law(em)
            out += [Check(f"{sc.name}/emitted|tau", "emitted", "gof", em),
                    Check(f"{sc.name}/tau", "tau", "gof", ln),
                    Check(f"{sc.name}/accept1", "tau", "binom", success=np.arange(len(ln)) >= 1,
                          p0=float(1 - ln[0]))]
        return out
    if isinstance(sc, scn.MultiScenario):
        law, V = sc.law(), sc.V
        return [Check(f"{sc.name}/token", "cells", "gof", law[:V] + law[V:], proj=np.arange(2 * V) % V),
                Check(f"{sc.name}/accepted,token", "cells", "gof", law),
                Check(f"{sc.name}/accept", "cells", "binom", success=np.arange(2 * V) >= V, p0=float(law[V:].sum()))]
    if isinstance(sc, scn.TreeScenario):
        return [Check(f"{sc.name}/joint", "joint", "gof", sc.joint_law()),
                Check(f"{sc.name}/tau", "tau", "gof", sc.length_law())]
    uniform = np.full(GAUSS_BINS, 1.0 / GAUSS_BINS)
    names = _gauss_tables(sc)
    out = [Check(f"{sc.name}/{t} bins", t, "gof", uniform) for t in names]
    if isinstance(sc, scn.GaussBlockScenario):
        p0 = float(2 * sps.norm.cdf(-sc.delta1 / 2))
        return out + [Check(f"{sc.name}/accept1", "accept", "binom", success=np.array([False, True]), p0=p0)]
    if isinstance(sc, scn.GaussResidualScenario):
        return out
    p0 = float(2 * sps.norm.cdf(-sc.delta / 2))
    return out + [Check(f"{sc.name}/accept", "accept", "binom", success=np.array([False, True]), p0=p0)]


def _gauss_tables(sc) -> list:
    """Names of the binned projections of a Gaussian scenario (certify's whitening)."""
    if isinstance(sc, scn.GaussBlockScenario):
        return [f"xi{i}[{j}]" for i in range(1, sc.L + 2) for j in range(len(sc.x0))]
    if isinstance(sc, scn.GaussResidualScenario):
        return ["S"] + [f"W{j}" for j in range(1, len(sc.m_p))]
    if isinstance(sc, scn.GaussStepScenario):
        return ["e"] + [f"orth{j}" for j in range(1, len(sc.m_p))]
    raise TypeError(f"scenario type {type(sc).__name__} is not swept")


def gauss_cells(w) -> np.ndarray:
    """Equiprobable N(0, 1) bin of each value (-1: non-finite or certify's malformed marker)."""
    w = np.asarray(w, dtype=np.float64)
    ok = np.isfinite(w) & (np.abs(w) < _MALFORMED)
    cells = np.minimum((sps.norm.cdf(np.where(ok, w, 0.0)) * GAUSS_BINS).astype(np.int64), GAUSS_BINS - 1)
    return np.where(ok, cells, -1)


def sweepable(sc) -> bool:
    """Whether sweeps count ``sc`` (the multi-round ``rounds`` scenario runs in certify only)."""
    return isinstance(sc, (RowScenario, scn.MarkovScenario, scn.MultiScenario, scn.TreeScenario,
                           scn.GaussStepScenario, scn.GaussResidualScenario, scn.GaussBlockScenario))


def table_sizes(sc) -> dict:
    """Cells per count table of ``sc`` (without the malformed-output cell)."""
    if isinstance(sc, (RowScenario, scn.MarkovScenario)):
        return {"joint": len(sc.joint_law()), "emitted": int(sc.emitted_offsets()[-1]), "tau": sc.K + 1}
    if isinstance(sc, scn.MultiScenario):
        return {"cells": 2 * sc.V}
    if isinstance(sc, scn.TreeScenario):
        return {"joint": sc.V ** (sc.D + 1), "tau": sc.D + 1}
    sizes = {t: GAUSS_BINS for t in _gauss_tables(sc)}
    if not isinstance(sc, scn.GaussResidualScenario):
        sizes["accept"] = 2
    return sizes


def _table(idx, size) -> list:
    """Counts [size + 1] of cell indices (-1 -> the malformed cell), as Python ints."""
    idx = np.asarray(idx)
    return [int(v) for v in np.bincount(idx[idx >= 0], minlength=size)] + [int(np.sum(idx < 0))]


# ---------------------------------------------------------------- sampling rounds


def count_rounds(impl, sc, n: int, rng, sizes: dict) -> dict:
    """Run ``n`` rounds of ``impl`` on ``sc`` and return its count tables."""
    if isinstance(sc, RowScenario):
        joint, emitted, taus = _run_rows(impl, sc, n, rng)
        idx = {"joint": joint, "emitted": emitted, "tau": taus}
    elif isinstance(sc, scn.MarkovScenario):
        joint, emitted, taus = run_markov(impl, sc, n, rng, None)  # OutputFormatError: the task fails
        idx = {"joint": joint, "emitted": emitted, "tau": taus}
    elif isinstance(sc, scn.MultiScenario):
        idx = {"cells": _run_multi(impl, sc, n, rng)}
    elif isinstance(sc, scn.TreeScenario):
        joint, taus = _run_tree(impl, sc, n, rng)
        idx = {"joint": joint, "tau": taus}
    else:
        idx = _run_gauss(impl, sc, n, rng)
    return {name: _table(idx[name], size) for name, size in sizes.items()}


def _run_gauss(impl, sc, n, rng) -> dict:
    """Cell indices per table of n Gaussian rounds (certify's samplers, then binned)."""
    names = _gauss_tables(sc)
    if isinstance(sc, scn.GaussBlockScenario):
        xi, taus = sample_gauss_block(impl, sc, n, rng, None)
        cols = xi.reshape(n, -1)
        acc = np.where(taus >= 0, (taus >= 1).astype(np.int64), -1)
    elif isinstance(sc, scn.GaussResidualScenario):
        zS, W = sample_gauss_residual(impl, sc, n, rng, None)
        cols, acc = np.column_stack([zS, W]), None
    else:
        cols, accepted, _ = sample_gauss_step(impl, sc, n, rng, None)
        acc = np.where(np.all(np.abs(cols) < _MALFORMED, axis=1), accepted.astype(np.int64), -1)
    out = {t: gauss_cells(cols[:, j]) for j, t in enumerate(names)}
    if acc is not None:
        out["accept"] = acc
    return out


def _batch_rows(sc: RowScenario) -> int:
    """Rounds per batched call: copies of the rows stay under 64 MB."""
    return max(1, (8 << 20) // ((sc.K + 1) * sc.V))


def _run_rows(impl, sc: RowScenario, n, rng):
    V, K = sc.V, sc.K
    draft = sc.draw_drafts(n, rng)
    outs = []
    if impl.batch is not None and impl.protocol == "probs":
        for a in range(0, n, _batch_rows(sc)):
            b = min(_batch_rows(sc), n - a)
            bv = impl.batch(np.repeat(sc.p[None], b, 0), np.repeat(sc.q[None], b, 0),
                            np.ascontiguousarray(draft[a:a + b]), rng.random((b, K + 1)))
            outs += [bv.verdict(j) for j in range(b)]
    joint = np.full(n, -1, dtype=np.int64)
    emitted, taus = joint.copy(), joint.copy()
    for j in range(n):
        if outs:
            out = outs[j]
        elif impl.protocol == "logits":
            out = impl.fn(sc.logits[0], sc.logits[1], draft[j], rng, sc.warp.get("temperature", 1.0),
                          sc.warp.get("top_p"))
        else:
            out = impl.fn(sc.p, sc.q, draft[j], rng)
        toks, tau = tokens_and_tau(out)
        tau = len(toks) - 1 if tau is None else tau
        if 1 <= len(toks) <= K + 1 and all(0 <= t < V for t in toks) and tau == len(toks) - 1:
            joint[j] = sc.joint_cell(sc.complete(toks, rng))
            emitted[j] = sc.emitted_cell(toks)
            taus[j] = tau
    return joint, emitted, taus


def _run_multi(impl, sc, n, rng):
    children = sc.draw_children(n, rng)
    V = sc.V
    cells = np.full(n, -1, dtype=np.int64)
    for j in range(n):
        q = sc.q if sc.kind == "mss" else sc.q[0]
        toks, tau = tokens_and_tau(impl.fn(sc.p, q, children[j], rng))
        if len(toks) == 1 and tau in (0, 1) and 0 <= toks[0] < V:
            cells[j] = tau * V + toks[0]
    return cells


def _run_tree(impl, sc, n, rng):
    rows = sc.rows()
    joint = np.full(n, -1, dtype=np.int64)
    taus = joint.copy()
    for j in range(n):
        toks, tau = tokens_and_tau(impl.fn(rows, sc.tokens, sc.parents, rng))
        tau = len(toks) - 1 if tau is None else tau
        if 1 <= len(toks) <= sc.D + 1 and all(0 <= t < sc.V for t in toks) and tau == len(toks) - 1:
            joint[j] = scn.seq_index(sc.complete(toks, rng), sc.V)
            taus[j] = tau
    return joint, taus


def needed_rounds(impl, sc, alpha_i, power, tv) -> int:
    """Smallest rounds reaching ``power`` at ``tv`` for every check of ``sc`` (certify's rule)."""
    return max(max(needed_n(c.planned(), alpha_i, power, tv) for c in checks(impl, sc)), 200)


def add_tables(a: dict, b: dict) -> dict:
    """Exact merge: cell-wise integer sums."""
    out = {k: list(v) for k, v in a.items()}
    for k, v in b.items():
        if k in out:
            out[k] = [x + y for x, y in zip(out[k], v)]
        else:
            out[k] = list(v)
    return out


def total_rounds(tables: dict) -> int:
    return int(sum(next(iter(tables.values())))) if tables else 0
