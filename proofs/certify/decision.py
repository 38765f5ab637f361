"""Planning and decision of a certification run (:mod:`specoracle.proofs.certify`, the
package doc: Error rates): the calibrated checks each scenario contributes and the
sample size that gives them the stated power (:func:`plan`, :func:`needed_n`), the
chi-square goodness of fit of observed cells with a simulated null (:func:`gof`), Holm's
step-down over the run's checks (:func:`decide`) and the run's verdict (:func:`verdict`).

Shared by the one-process run (core.py), the batch protocol (batch.py), sweeps
(sweep/, which merge exact counts from many workers and decide once) and engine-level
certification (engines/certify.py): every path decides with the same code.
"""
from __future__ import annotations

import dataclasses
import json
import math
import zlib
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

from specoracle.reference.types import InvalidInput

from .. import stats as st
from . import scenarios as scn
from .impl import LAWS, Impl

DEFAULT_ALPHA = 1e-3
DEFAULT_POWER = 0.9
DEFAULT_TARGET_TV = 0.05
NOT_CALIBRATED = ("agreement", "error", "format")  # CheckRow metrics outside the Holm family
GOF_NULL = "simulated"   # categorical checks: Monte-Carlo null (proofs/stats.py)


@dataclass
class CheckRow:
    name: str
    statistic: float
    p_value: float
    n: int
    metric: str
    detectable: float
    alpha_share: float = float("nan")
    verdict: str = ""
    detail: str = ""
    impossible: int = 0   # observations in cells of null probability 0 (each one alone gives p = 0)

    def as_json(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in self.__dict__.items()}


@dataclass
class Report:
    impl: str
    description: str
    verdict: str
    alpha: float
    power: float
    target_tv: float
    seed: int
    checks: list
    seconds: float
    notes: list = field(default_factory=list)
    planned: int = 0      # calibrated checks planned (the Holm family of a complete run)

    @property
    def exact(self) -> bool:
        return self.verdict == "exact"

    @property
    def calibrated(self) -> list:
        """The rows of the Holm family (statistical checks that ran)."""
        return [c for c in self.checks if c.metric not in NOT_CALIBRATED]

    def sensitivity(self) -> dict:
        """Per effect metric: the smallest effect EVERY check of that metric detects with
        the stated power (the run's figure: the largest per-check detectable effect), the
        most sensitive check and its figure."""
        out = {}
        for c in self.calibrated:
            if not math.isfinite(c.detectable):
                continue
            d = out.setdefault(c.metric, {"every_check": 0.0, "best": float("inf"), "best_check": ""})
            d["every_check"] = max(d["every_check"], c.detectable)
            if c.detectable < d["best"]:
                d["best"], d["best_check"] = c.detectable, c.name
        return out

    def as_json(self) -> dict:
        return {"impl": self.impl, "description": self.description, "verdict": self.verdict,
                "alpha": self.alpha, "power": self.power, "target_tv": self.target_tv, "seed": self.seed,
                "multiplicity": f"Holm step-down over the {len(self.calibrated)} calibrated checks that ran "
                                f"({self.planned} planned; FWER <= alpha)",
                "checks_ran": len(self.calibrated), "checks_planned": self.planned,
                "smallest_detectable": self.sensitivity(),
                "seconds": round(self.seconds, 3), "notes": self.notes,
                "checks": [c.as_json() for c in self.checks]}

    def to_json(self, path) -> None:
        with open(path, "w") as fh:
            json.dump(self.as_json(), fh, indent=2)

    def format(self) -> str:
        ran = len(self.calibrated)
        family = f"Holm over {ran} checks" + (f" of {self.planned} planned" if self.planned > ran else "")
        lines = [f"certify {self.impl}" + (f": {self.description}" if self.description else ""),
                 f"alpha = {self.alpha:g} per run ({family}), power = {self.power:g} at effect "
                 f"{self.target_tv:g}, seed = {self.seed}",
                 f"{'check':34s} {'statistic':>11s} {'p-value':>10s} {'alpha_i':>9s} {'n':>7s} "
                 f"{'detectable':>16s}  verdict"]
        for c in self.checks:
            det = "-" if not math.isfinite(c.detectable) else f"{c.detectable:.4f} {c.metric}"
            a = "-" if not math.isfinite(c.alpha_share) else f"{c.alpha_share:.2g}"
            stat = "impossible" if c.impossible else f"{c.statistic:.4g}"
            lines.append(f"{c.name:34s} {stat:>11s} {c.p_value:10.3g} {a:>9s} {c.n:7d} {det:>16s}  {c.verdict}")
        for c in self.checks:
            if c.verdict in ("REJECT", "DISAGREE", "FORMAT") and c.detail:
                lines.append(f"  {c.name}: {c.detail}")
        sens = self.sensitivity()
        if sens:
            lines.append("smallest effect seen with power {:g}: ".format(self.power) + "; ".join(
                f"{m} {d['every_check']:.4g} by every check (best {d['best']:.4g}, {d['best_check']})"
                for m, d in sens.items()))
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"verdict: {self.verdict}   ({self.seconds:.1f} s)")
        return "\n".join(lines)


# ---------------------------------------------------------------- planning


@dataclass
class Planned:
    name: str
    kind: str      # "gof" | "binom" | "ks" | "energy"
    df: int = 0
    p0: float = 0.5


def gof_df(law) -> int:
    return int((np.asarray(law) > 0).sum()) - 1


def plan_checks(impl: Impl, sc) -> list:
    """The calibrated checks one scenario contributes (before sampling)."""
    if isinstance(sc, scn.MarkovScenario):
        out = [Planned(f"{sc.name}/joint", "gof", gof_df(sc.joint_law()))]
        if impl.law in LAWS:
            em = sc.chain_law() if impl.law == "chain" else sc.block_law()
            ln = sc.length_law(em)
            out += [Planned(f"{sc.name}/emitted|tau", "gof", gof_df(em)),
                    Planned(f"{sc.name}/tau", "gof", gof_df(ln)),
                    Planned(f"{sc.name}/accept1", "binom", 1, float(1 - ln[0]))]
        return out
    if isinstance(sc, scn.RoundsScenario):
        out = [Planned(f"{sc.name}/stream", "gof", gof_df(sc.stream_law()))]
        if impl.law in LAWS:
            out.append(Planned(f"{sc.name}/taus", "gof", gof_df(sc.taus_law(impl.law))))
        return out
    if isinstance(sc, scn.MultiScenario):
        law = sc.law()
        return [Planned(f"{sc.name}/token", "gof", gof_df(law[:sc.V] + law[sc.V:])),
                Planned(f"{sc.name}/accepted,token", "gof", gof_df(law)),
                Planned(f"{sc.name}/accept", "binom", 1, float(law[sc.V:].sum()))]
    if isinstance(sc, scn.TreeScenario):
        return [Planned(f"{sc.name}/joint", "gof", gof_df(sc.joint_law())),
                Planned(f"{sc.name}/tau", "gof", gof_df(sc.length_law()))]
    if isinstance(sc, scn.GaussResidualScenario):
        d = len(sc.m_p)
        return ([Planned(f"{sc.name}/S ks", "ks"), Planned(f"{sc.name}/S ad", "ks")]
                + [Planned(f"{sc.name}/W{j} ad", "ks") for j in range(1, d)])
    if isinstance(sc, scn.GaussStepScenario):
        d = len(sc.m_p)
        return ([Planned(f"{sc.name}/e ks", "ks"), Planned(f"{sc.name}/e ad", "ks")]
                + [Planned(f"{sc.name}/orth{j} ad", "ks") for j in range(1, d)]
                + [Planned(f"{sc.name}/energy", "energy"),
                   Planned(f"{sc.name}/accept", "binom", 1, float(2 * sps.norm.cdf(-sc.delta / 2)))])
    if isinstance(sc, scn.GaussBlockScenario):
        d = len(sc.x0)
        return ([Planned(f"{sc.name}/xi{i}[{j}] ad", "ks") for i in range(1, sc.L + 2) for j in range(d)]
                + [Planned(f"{sc.name}/energy", "energy"),
                   Planned(f"{sc.name}/accept1", "binom", 1, float(2 * sps.norm.cdf(-sc.delta1 / 2)))])
    raise TypeError(type(sc))


def needed_n(p: Planned, alpha_i, power, tv) -> int:
    if p.kind == "gof":
        return st.gof_sample_size(tv, p.df, alpha_i, power, null=GOF_NULL) if p.df > 0 else 1
    if p.kind == "binom":
        return st.binomial_sample_size(tv, p.p0, alpha_i, power)
    if p.kind == "ks":
        a = math.sqrt(math.log(2 / alpha_i)) + math.sqrt(math.log(2 / (1 - power)))
        return int(math.ceil(a * a / (2 * tv * tv)))
    return 1


# ---------------------------------------------------------------- goodness of fit


def keyed(rng, purpose: int, name: str) -> np.random.SeedSequence:
    """A seed sequence keyed on the run's seed (the entropy of ``rng``, read without
    advancing it), a purpose tag and a name: streams separate from the sampler's."""
    ss = getattr(rng.bit_generator, "seed_seq", None)
    entropy = ss.entropy if isinstance(getattr(ss, "entropy", None), int) else 0
    return np.random.SeedSequence(entropy, spawn_key=(purpose, zlib.crc32(name.encode())))


def mc_rng(rng, name: str) -> np.random.Generator:
    """The null-simulation generator of the check ``name`` (:func:`keyed`)."""
    return np.random.default_rng(keyed(rng, 0x6D63, name))


def cell_counts(idx, size):
    """Counts [size] of the indices idx."""
    return np.bincount(np.asarray(idx), minlength=size).astype(np.float64)


def gof(name, idx, law, alpha_i, power, rng=None, describe=None):
    """Chi-square GOF of the observed cell indices ``idx`` against ``law`` (simulated
    null; ``rng`` keys the simulation, see :func:`mc_rng`). ``describe(cell) -> str``
    names a cell for the report when an impossible outcome is observed."""
    law = np.asarray(law, dtype=np.float64)
    counts = cell_counts(idx, len(law))
    mc = mc_rng(rng if rng is not None else np.random.default_rng(0), name)
    r = st.chisquare_gof(counts, law / law.sum(), alpha=alpha_i, power=power, name=name, null=GOF_NULL, rng=mc)
    if r.impossible:
        r = dataclasses.replace(r, detail=_impossible_detail(counts, law, describe))
    return r


def _impossible_detail(counts, law, describe) -> str:
    bad = np.flatnonzero((law <= 0) & (counts > 0))
    worst = int(bad[np.argmax(counts[bad])])
    what = describe(worst) if describe is not None else f"cell {worst}"
    total = int(counts[bad].sum())
    more = f"; {total} impossible outputs in {len(bad)} cells" if len(bad) > 1 else ""
    return (f"impossible outcome emitted: {what} has probability 0 under the exact law, seen "
            f"{int(counts[worst])} times in {int(counts.sum())} rounds{more}")


# ---------------------------------------------------------------- decision


def check_run_args(alpha, target_tv, samples, *, power=None) -> None:
    """InvalidInput for a bad alpha, power, target TV or sample count (certify and sweeps)."""
    if not (0 < alpha < 1):
        raise InvalidInput("alpha", f"must lie in (0, 1), got {alpha}")
    if power is not None and not (0 < power < 1):
        raise InvalidInput("power", f"must lie in (0, 1), got {power}")
    if not (0 < target_tv <= 1):
        raise InvalidInput("target_tv", f"must lie in (0, 1], got {target_tv}")
    if samples is not None and int(samples) < 10:
        raise InvalidInput("samples", f"needs at least 10 samples per scenario, got {samples}")


def decide(results, alpha, power, target_tv, m) -> list:
    reject = st.holm([r.p_value for r in results], alpha) if results else []
    rows = []
    for r, rej in zip(results, reject):
        under = math.isfinite(r.detectable) and r.metric != "energy" and r.detectable > target_tv
        verdict = "REJECT" if rej else ("underpowered" if under else "pass")
        rows.append(CheckRow(r.name, float(r.statistic), float(r.p_value), int(r.n), r.metric,
                             float(r.detectable), alpha / max(m, 1), verdict, r.detail, int(r.impossible)))
    return rows


def verdict_of(rows) -> str:
    fmt = [r for r in rows if r.verdict == "FORMAT"]
    if fmt:
        return f"format error: {fmt[0].name.split('/')[0]}: {fmt[0].detail}"
    bad = [r for r in rows if r.verdict in ("REJECT", "DISAGREE")]
    if bad:
        worst = min(bad, key=lambda r: (r.p_value, -r.impossible))
        why = f" (impossible outcome emitted {worst.impossible} times)" if worst.impossible else ""
        p = "p<1e-300" if worst.p_value == 0 and not worst.impossible and worst.metric != "error" else \
            f"p={worst.p_value:.3g}"
        return f"not exact: {worst.name} {p}{why}"
    if any(r.verdict == "underpowered" for r in rows):
        return "underpowered"
    return "exact"
