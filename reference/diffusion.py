"""Speculative sampling of Gaussian Markov chains and of diffusion samplers.

ALGORITHMS.md §3 (paper 2: De Bortoli et al. 2025, arXiv 2501.05370), §4 (paper 1:
Soen et al. 2026, arXiv 2606.13426), §2.5, T9-T11. p is the target, q the draft.

Pieces:
  - ``DiffusionSampler``: DDPM ancestral or Euler-Maruyama of the reverse VP-SDE as
    Gaussian kernels x_{t-1} ~ N(a_t x + b_t score_t(x), sigma_t^2 I) for a beta schedule;
    chain step k = 0..T-1 goes from t = T - k to t - 1. Zero-noise steps (sigma = 0,
    only at the end) are applied with the target mean outside the speculative loop (§2.1).
  - ``TargetModel``: a denoiser (protocol in reference/targets_continuous.py: eps-, x0-
    or score-prediction, batched (x, t) -> out) turned into target means m^p_k(x).
  - drafters (§3.3, §4.4): ``IndependentDrafter`` (a separate draft denoiser; the target
    itself gives the exact draft used by the NFE identities), ``FrozenDrafter`` (FD-a,
    paper 2's frozen target, frozen at the window start: one extra sequential call per
    window) and ``FreeDrafter`` (FD-b, the default: reuses the newest target output of
    the previous verification pass, no extra sequential call). Freezing keeps either
    the whole drift m^p(y) - y (``freeze="drift"``, the default of §9) or the network
    output (``freeze="output"``: the score, with the step's coefficients recomputed).
  - ``speculative_sample``: the SpecDiffusion loop (A15) over B chains at once with
    verification "block" (A13), "token" (Gamma coupling + ResidualGauss), "reflection"
    (A10) or "none" (the plain target chain), with or without the bonus step, and NFE
    accounting (A17, T11): sequential target calls and, separately, total target
    network evaluations (states evaluated) and draft evaluations, per chain.

Noise of the loop (per round, for the n active chains, window L): z [n, L, d] draft
noise, eta [n, L], u_res [n], z_orth [n, d], drawn from ``rng`` in that order; the plain
chain draws z [B, d] per step. Each round's decisions equal the one-row reference
(reference/gaussian.py) on the same noise (tested).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import gaussian_batch as gb
from .targets_continuous import PARAMETERIZATIONS, Schedule, score_from_output
from .types import InvalidInput
from .validation import check_generator

VERIFY_MODES = ("block", "token", "reflection", "none")

# ---------------------------------------------------------------- samplers as Gaussian kernels


class DiffusionSampler:
    """A diffusion sampler as a chain of Gaussian kernels (§2.1, §3.1, T9).

    kind "ddpm": ancestral, mean (x + beta_t score) / sqrt(alpha_t), sigma_t^2 = beta_t.
    kind "em": Euler-Maruyama of the reverse VP-SDE dx = [-beta x/2 - beta score] dt +
    sqrt(beta) dB with unit steps, mean x (1 + beta_t / 2) + beta_t score, sigma_t^2 = beta_t.
    ``final_noise=False`` sets sigma_1 = 0 (T9: the last step is the deterministic
    target mean, applied outside the speculative loop); True keeps sigma_1^2 = beta_1
    (T10: every step Gaussian).
    """

    def __init__(self, schedule: Schedule, kind: str = "ddpm", final_noise: bool = False):
        if not isinstance(schedule, Schedule):
            raise InvalidInput("schedule", "expected a targets_continuous.Schedule")
        if kind not in ("ddpm", "em"):
            raise InvalidInput("kind", f"expected 'ddpm' or 'em', got {kind!r}")
        self.schedule, self.kind, self.final_noise = schedule, kind, bool(final_noise)
        big_t = schedule.n_steps
        t = big_t - np.arange(big_t)                       # time of step k
        beta = schedule.betas[t - 1]
        if kind == "ddpm":
            self.a = 1.0 / np.sqrt(1.0 - beta)
            self.b = beta / np.sqrt(1.0 - beta)
        else:
            self.a = 1.0 + beta / 2
            self.b = beta.copy()
        self.sigma = np.sqrt(beta)
        if not final_noise:
            self.sigma[-1] = 0.0

    @property
    def n_steps(self) -> int:
        """K, all chain steps (T)."""
        return self.schedule.n_steps

    @property
    def n_speculative(self) -> int:
        """Steps with sigma > 0 (run speculatively); the rest are zero-noise final steps."""
        return int(np.sum(self.sigma > 0))

    def time_of(self, k):
        return self.schedule.n_steps - np.asarray(k)

    def coefficients(self, k):
        """(a_t, b_t, sigma_t) of chain step k."""
        return float(self.a[k]), float(self.b[k]), float(self.sigma[k])

    def mean(self, k, x, score):
        """a_t x + b_t score [N, d] for steps k [N]."""
        return self.a[k][:, None] * x + self.b[k][:, None] * score

    def target_mean_exact(self, data, k, x):
        """m^p_k(x) [N, d] from a data law's exact score (grid references)."""
        kk = np.full(x.shape[0], int(k))
        return self.mean(kk, x, data.score(x, self.time_of(kk), self.schedule))


class TargetModel:
    """m^p_k(x) from a denoiser (x [N, d], t [N]) -> out [N, d] with a ``parameterization``."""

    def __init__(self, sampler: DiffusionSampler, denoiser, parameterization=None):
        self.sampler, self.denoiser = sampler, denoiser
        self.parameterization = parameterization or getattr(denoiser, "parameterization", "score")
        if self.parameterization not in PARAMETERIZATIONS:
            raise InvalidInput("parameterization", f"expected one of {PARAMETERIZATIONS}")

    def score(self, k, x):
        t = self.sampler.time_of(k)
        out = np.asarray(self.denoiser(x, t), dtype=np.float64)
        return score_from_output(out, x, t, self.sampler.schedule, self.parameterization)

    def mean_and_score(self, k, x):
        """(m^p_k(x) [N, d], score [N, d]) for steps k [N]: one batched network evaluation."""
        sc = self.score(k, x)
        return self.sampler.mean(k, x, sc), sc


# ---------------------------------------------------------------- drafters (§3.3, §4.4)


class IndependentDrafter:
    """A separate draft denoiser (§3.3): m^q_k(x) = a_t x + b_t score_draft_t(x).
    With the target's own denoiser it is the exact draft (delta = 0) of T11."""

    name = "independent"
    start_call = False

    def __init__(self, draft_model: TargetModel):
        self.model = draft_model

    def reset(self, n_chains):
        pass

    def draft_mean(self, rows, k, x):
        return self.model.mean_and_score(k, x)[0]


class _Frozen:
    """Shared freezing rule: keep m^p(y) - y (drift) or the score (output) per chain."""

    def __init__(self, freeze: str = "drift"):
        if freeze not in ("drift", "output"):
            raise InvalidInput("freeze", f"expected 'drift' or 'output', got {freeze!r}")
        self.freeze = freeze
        self.sampler = None

    def reset(self, n_chains, d=None):
        self.frozen = None  # [B, d] once known
        self.known = np.zeros(n_chains, dtype=bool)

    def remember(self, rows, x, mean, score):
        val = mean - x if self.freeze == "drift" else score
        if self.frozen is None:
            self.frozen = np.zeros((self.known.shape[0], x.shape[1]))
        self.frozen[rows] = val
        self.known[rows] = True

    def draft_mean(self, rows, k, x):
        if self.freeze == "drift":
            return x + self.frozen[rows]
        return self.sampler.mean(k, x, self.frozen[rows])


class FrozenDrafter(_Frozen):
    """FD-a, paper 2's frozen-target draft (§3.3, §4.4): the target output at the window
    start y_n, frozen over the window. One extra sequential target call per window;
    step 1 of every window is then exactly the target kernel (always accepted)."""

    name = "frozen"
    start_call = True


class FreeDrafter(_Frozen):
    """FD-b, the Free Drafter (§4.4, the default, §9): the newest target output of the
    previous verification pass (at X~_tau, or X~_{L-1} / the bonus state), frozen over
    the next window. One batched target call per window; only the very first window
    needs a start call (no previous pass)."""

    name = "free"
    start_call = False


def make_drafter(name: str, target: TargetModel, *, draft_denoiser=None, freeze: str = "drift"):
    """'free' (FD-b, default) | 'frozen' (FD-a) | 'independent' (needs draft_denoiser) |
    'target' (draft = target, the exact draft of T11)."""
    if name == "free":
        d = FreeDrafter(freeze)
    elif name == "frozen":
        d = FrozenDrafter(freeze)
    elif name == "independent":
        if draft_denoiser is None:
            raise InvalidInput("draft_denoiser", "the independent drafter needs a draft denoiser")
        return IndependentDrafter(TargetModel(target.sampler, draft_denoiser))
    elif name == "target":
        return IndependentDrafter(target)
    else:
        raise InvalidInput("drafter", f"expected free|frozen|independent|target, got {name!r}")
    d.sampler = target.sampler
    return d


# ---------------------------------------------------------------- the loop (A15, A17)


@dataclass
class DiffusionResult:
    """Output of :func:`speculative_sample` (B chains, K chain steps, window L)."""

    samples: np.ndarray            # [B, d] final states
    drafted_per_step: np.ndarray   # [K] drafted states per chain step (over all chains)
    accepted_per_step: np.ndarray  # [K] accepted drafted states per chain step
    tau_hist: np.ndarray           # [L+1] accepted-length histogram over rounds
    sequential_calls: np.ndarray   # [B] sequential target calls per chain (NFE, §3.7)
    target_evals: np.ndarray       # [B] target network evaluations (states) per chain
    draft_evals: np.ndarray        # [B] draft network evaluations per chain
    rounds: int                    # lockstep rounds over all chains (max sequential calls)
    tau_first: np.ndarray          # [B] tau of each chain's first round (-1 for 'none')
    fallbacks: dict = field(default_factory=dict)

    @property
    def acceptance_per_step(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.accepted_per_step / self.drafted_per_step


def _validate_loop(target, x0, window, verify, reuse_orth):
    x0 = np.asarray(x0, dtype=np.float64)
    if x0.ndim != 2 or x0.shape[0] < 1:
        raise InvalidInput("x0", f"expected initial states [B, d], got shape {x0.shape}")
    if not np.all(np.isfinite(x0)):
        raise InvalidInput("x0", "NaN or infinite value", index=tuple(np.argwhere(~np.isfinite(x0))[0]))
    if int(window) != window or window < 1:
        raise InvalidInput("window", f"window must be an integer >= 1, got {window!r}")
    if verify not in VERIFY_MODES:
        raise InvalidInput("verify", f"expected one of {VERIFY_MODES}, got {verify!r}")
    if reuse_orth and verify != "token":
        raise InvalidInput("reuse_orth", "re-using the rejected draft's orthogonal noise is valid "
                           "for token verification only (ALGORITHMS.md §2.4)")
    dim = getattr(target.denoiser, "dim", x0.shape[1])
    if dim != x0.shape[1]:
        raise InvalidInput("x0", f"dimension {x0.shape[1]} differs from the denoiser's {dim}")
    return x0


def speculative_sample(target: TargetModel, drafter, x0, rng, *, window=4, verify="block",
                       bonus=False, reuse_orth=False, progress=False) -> DiffusionResult:
    """Run B chains of the target sampler speculatively (SpecDiffusion, §3.2, with the
    verification of §2.5 / §2.3 / §4.2) from x0 [B, d] (the state at t = T).

    Every round, each unfinished chain drafts min(L, K_spec - n) states, evaluates the
    target on them in ONE batched call (plus the window start for FD-a, plus X~_L for
    the bonus), verifies, and advances tau + 1 (correction or bonus) or L. Output law:
    exactly the target chain's, for any drafter (tested against T9 / T10).
    """
    check_generator(rng)
    x0 = _validate_loop(target, x0, window, verify, reuse_orth)
    sampler = target.sampler
    big_b, d = x0.shape
    k_spec, k_all, big_l = sampler.n_speculative, sampler.n_steps, int(window)
    res = DiffusionResult(x0.copy(), np.zeros(k_all, np.int64), np.zeros(k_all, np.int64),
                          np.zeros(big_l + 1, np.int64), np.zeros(big_b, np.int64),
                          np.zeros(big_b, np.int64), np.zeros(big_b, np.int64), 0,
                          np.full(big_b, -1, np.int64), {"residual_zero_mass": 0})
    x = res.samples
    if verify == "none":
        _plain_chain(target, x, rng, res, k_spec, progress)
    else:
        _speculative_rounds(target, drafter, x, rng, res, big_l, verify, bonus, reuse_orth, progress)
    for k in range(k_spec, k_all):  # zero-noise final steps: the target mean (§2.1)
        x[:] = target.mean_and_score(np.full(big_b, k), x)[0]
        res.sequential_calls += 1
        res.target_evals += 1
    res.rounds += k_all - k_spec
    return res


def _plain_chain(target, x, rng, res, k_spec, progress):
    big_b, d = x.shape
    steps = range(k_spec)
    if progress:
        from tqdm import tqdm
        steps = tqdm(steps, desc="target chain", unit="step")  # close() redraws the final count
    for k in steps:
        kk = np.full(big_b, k)
        z = rng.standard_normal((big_b, d))
        x[:] = target.mean_and_score(kk, x)[0] + target.sampler.sigma[k] * z
    res.sequential_calls += k_spec
    res.target_evals += k_spec
    res.rounds += k_spec


def _speculative_rounds(target, drafter, x, rng, res, big_l, verify, bonus, reuse_orth, progress):
    sampler = target.sampler
    sig = sampler.sigma
    big_b, d = x.shape
    k_spec = sampler.n_speculative
    pos = np.zeros(big_b, np.int64)
    drafter.reset(big_b)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=big_b * k_spec, desc=f"speculative ({verify})", unit="step")  # as above
    while True:
        rows = np.flatnonzero(pos < k_spec)
        if rows.size == 0:
            break
        n = rows.size
        res.rounds += 1
        p0 = pos[rows]
        lengths = np.minimum(big_l, k_spec - p0)                 # [n]
        lmax = int(lengths.max())
        xs = np.zeros((n, lmax + 1, d))                          # X~_0..X~_lmax
        xs[:, 0] = x[rows]
        live = np.arange(lmax)[None, :] < lengths[:, None]       # [n, lmax]
        kk = np.minimum(p0[:, None] + np.arange(lmax + 1)[None, :], _last_step(sampler))
        # window start: FD-a always, FD-b only before its first pass
        mp_start = None
        need_start = drafter.start_call or (hasattr(drafter, "known") and not drafter.known[rows].all())
        if need_start:
            srow = np.arange(n) if drafter.start_call else np.flatnonzero(~drafter.known[rows])
            m0, sc0 = target.mean_and_score(kk[srow, 0], xs[srow, 0])
            drafter.remember(rows[srow], xs[srow, 0], m0, sc0)
            res.sequential_calls[rows[srow]] += 1
            res.target_evals[rows[srow]] += 1
            if drafter.start_call:
                mp_start = m0
        # drafting (sequential, cheap): X~_j = m^q(X~_{j-1}) + s z_j
        z = rng.standard_normal((n, lmax, d))
        mq = np.zeros((n, lmax, d))
        for j in range(lmax):
            mq[:, j] = drafter.draft_mean(rows, kk[:, j], xs[:, j])
            xs[:, j + 1] = mq[:, j] + sig[kk[:, j]][:, None] * z[:, j]
        if isinstance(drafter, IndependentDrafter):
            res.draft_evals[rows] += lengths
        # ONE batched target call on X~_0..X~_{len-1} (+ X~_len for the bonus)
        has_bonus = bonus & (p0 + lengths < k_spec)              # [n]
        n_eval = lengths + has_bonus
        evalmask = np.arange(lmax + 1)[None, :] < n_eval[:, None]
        if mp_start is not None:
            evalmask[:, 0] = False
        mp = np.zeros((n, lmax + 1, d))
        scores = np.zeros((n, lmax + 1, d))
        if evalmask.any():
            m_all, s_all = target.mean_and_score(kk[evalmask], xs[evalmask])
            mp[evalmask], scores[evalmask] = m_all, s_all
            counted = evalmask.any(axis=1)
            res.sequential_calls[rows[counted]] += 1
            res.target_evals[rows] += evalmask.sum(axis=1)
        if mp_start is not None:
            mp[:, 0] = mp_start
        # verification
        s_win = np.where(live, sig[kk[:, :lmax]], 1.0)           # [n, lmax] (padding: 1)
        ell, delta = gb.log_ratios(mp[:, :lmax], mq, s_win, z)
        eta = rng.random((n, lmax))
        u_res = rng.random(n)
        z_orth = rng.standard_normal((n, d))
        if verify == "block":
            tau, log_p, _ = gb.block_tau(ell, delta, lengths, eta)
            log_c = log_p[np.arange(n), tau]
        else:
            tau = gb.token_tau(ell, lengths, eta)
            log_c = np.zeros(n)
        res.tau_hist += np.bincount(tau, minlength=big_l + 1)[: big_l + 1]
        if res.rounds == 1:
            res.tau_first[rows] = tau
        for j in range(lmax):
            at = live[:, j]
            np.add.at(res.drafted_per_step, kk[at, j], 1)
            acc = at & (j < tau)
            np.add.at(res.accepted_per_step, kk[acc, j], 1)
        # corrections and new states
        new_x = xs[np.arange(n), np.minimum(tau, lengths)].copy()  # tau = len: X~_len
        adv = lengths.copy()
        corr = tau < lengths
        if corr.any():
            ci = np.flatnonzero(corr)
            tj = tau[ci]
            y, zero = _correction(verify, mp[ci, tj], mq[ci, tj], s_win[ci, tj], z[ci, tj],
                                  log_c[ci], u_res[ci], z_orth[ci], reuse_orth)
            res.fallbacks["residual_zero_mass"] += int(zero.sum())
            new_x[ci] = y
            adv[ci] = tj + 1
        bon = ~corr & has_bonus
        if bon.any():
            bi = np.flatnonzero(bon)
            kb = kk[bi, lengths[bi]]
            new_x[bi] = mp[bi, lengths[bi]] + sig[kb][:, None] * z_orth[bi]
            adv[bi] = lengths[bi] + 1
        # FD-b: the newest target output of this pass (at X~_tau, the bonus state or X~_{len-1})
        if isinstance(drafter, FreeDrafter):
            src = np.where(corr, tau, np.where(has_bonus, lengths, lengths - 1))
            drafter.remember(rows, xs[np.arange(n), src], mp[np.arange(n), src],
                             scores[np.arange(n), src])
        x[rows] = new_x
        pos[rows] = p0 + adv
        if bar is not None:
            bar.update(int(adv.sum()))
    if bar is not None:
        bar.close()


def _correction(verify, m_p, m_q, s, z, log_c, u_res, z_orth, reuse_orth):
    """The state emitted after a rejection at one step, for n rows [n, d] (and the
    zero-mass fallback mask [n]): the reflection of the rejected draft noise z (§2.3),
    or ResidualGauss with c = exp(log_c) (c = p_tau for block, 1 for token) and the
    fresh orthogonal noise z_orth, or (token mode only, ``reuse_orth``) the rejected
    draft's own orthogonal part (§2.4)."""
    if verify == "reflection":
        return gb.reflect(m_p, m_q, s, z), np.zeros(len(s), dtype=bool)
    if reuse_orth:
        diff = m_p - m_q
        e = diff / np.linalg.norm(diff, axis=1, keepdims=True)
        z_orth = z - np.sum(e * z, axis=1, keepdims=True) * e
    return gb.residual_draw(m_p, m_q, s, log_c, u_res, z_orth)


def _last_step(sampler):
    """Largest valid chain-step index (padding rows of a window are clipped to it)."""
    return sampler.n_steps - 1


def speculative_sample_chain(m_p_fn, m_q_fn, sigmas, x0, rng, *, window=4, verify="block",
                             bonus=False, drafter="independent", reuse_orth=False):
    """Speculative sampling of a generic Gaussian Markov chain (A15, §3.2; T7, T8, T11).

    ``m_p_fn(k [N], x [N, d]) -> [N, d]`` and ``m_q_fn(k, x)`` are the target and draft
    means of step k = 0..K-1, ``sigmas`` [K] > 0 the common standard deviations.
    ``drafter``: "independent" (m_q_fn), or "frozen" / "free" (FD-a / FD-b freezing the
    target's drift m^p(y) - y; m_q_fn is then ignored and may be None). Returns the
    :class:`DiffusionResult` of the chains from x0 [B, d].
    """
    sig = np.asarray(sigmas, dtype=np.float64)
    if sig.ndim != 1 or sig.size < 1 or not np.all(np.isfinite(sig) & (sig > 0)):
        raise InvalidInput("sigmas", "expected K >= 1 finite standard deviations > 0")
    chain = _FunctionChain(sig)
    target = TargetModel(chain, _FunctionDenoiser(m_p_fn, chain, x0), "score")
    if drafter == "independent":
        draft = IndependentDrafter(TargetModel(chain, _FunctionDenoiser(m_q_fn, chain, x0), "score"))
    else:
        draft = make_drafter(drafter, target, freeze="drift")
    return speculative_sample(target, draft, x0, rng, window=window, verify=verify, bonus=bonus,
                              reuse_orth=reuse_orth)


class _FunctionChain:
    """A Gaussian chain given by mean functions, dressed as a DiffusionSampler
    (a = 0, b = 1: the 'score' slot carries the mean itself)."""

    def __init__(self, sig):
        big_k = sig.shape[0]
        self.sigma = sig
        self.a = np.zeros(big_k)
        self.b = np.ones(big_k)
        self.schedule = Schedule(np.full(big_k, 0.5))

    n_steps = property(lambda self: int(self.sigma.shape[0]))
    n_speculative = property(lambda self: int(np.sum(self.sigma > 0)))

    def time_of(self, k):
        return self.n_steps - np.asarray(k)

    def mean(self, k, x, score):
        return score


class _FunctionDenoiser:
    parameterization = "score"

    def __init__(self, fn, chain, x0):
        self.fn, self.chain = fn, chain
        self.dim = np.shape(x0)[1]

    def __call__(self, x, t):
        return self.fn(self.chain.n_steps - np.asarray(t), x)


def nfe_summary(res: DiffusionResult) -> dict:
    """Sequential target calls and network evaluations per chain (mean, min, max)."""
    def stats(a):
        return {"mean": float(np.mean(a)), "min": int(np.min(a)), "max": int(np.max(a))}
    return {"sequential_target_calls": stats(res.sequential_calls),
            "target_network_evaluations": stats(res.target_evals),
            "draft_network_evaluations": stats(res.draft_evals),
            "lockstep_rounds": int(res.rounds)}
