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
    One round is :func:`speculative_round`, a sequence of short steps that follow the
    pseudo-code of ALGORITHMS.md §3.2 (open the window, FD-a/FD-b start call, drafting,
    the one batched verification pass, REJECTION, advance, FD-b's frozen output).

NOISE LAYOUT (randomness is an input: :func:`sample_with_noise` takes a noise source,
:func:`speculative_sample` is its thin ``rng`` wrapper drawing with :class:`RngNoise`):
  per round, for the n active chains in ascending chain order, lmax = the round's
  longest window (:class:`RoundNoise`):
      z      [n, lmax, d]  draft noise: X~_j = m^q(X~_{j-1}) + s z_j
      eta    [n, lmax]     accept uniforms (token: u of step j; block: eta_j)
      u_res  [n]           residual uniform (used once, at the correction)
      z_orth [n, d]        fresh orthogonal noise of the residual, or the bonus noise
  drawn from ``rng`` in that order; the plain chain ("none") draws z [B, d] per step.
Row b of a round is the one-window oracle (reference/gaussian.py ``verify_gaussian_block``
/ ``verify_gaussian_chain``) on row b of that noise. The loop verifies with that oracle
window by window, or with a batched twin passed as ``verifier`` (e.g.
``specoracle.fastpath.numpy_batch.gaussian``, parity-checked against the oracle), which
is what callers running 10^4 chains use. No progress display here: callers pass
``on_round`` (the CLI draws its bar from it).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import gaussian
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
    judged_per_step: np.ndarray | None = None  # [K] drafts up to the first rejected one (tau + 1 per window)
    target_calls: int = 0          # batched target calls of the whole run (all chains in lockstep)
    draft_calls: int = 0           # batched draft-network calls (independent drafter)

    @property
    def acceptance_per_step(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.accepted_per_step / self.drafted_per_step


@dataclass(frozen=True)
class RoundNoise:
    """The noise of one round (NOISE LAYOUT in the module docstring), for the n active
    chains in ascending order and the round's longest window lmax:
    z [n, lmax, d] draft noise, eta [n, lmax] accept uniforms, u_res [n] residual
    uniform, z_orth [n, d] fresh orthogonal noise of the residual or the bonus noise."""

    z: np.ndarray
    eta: np.ndarray
    u_res: np.ndarray
    z_orth: np.ndarray


class RngNoise:
    """The loop's noise drawn from a ``numpy.random.Generator``: per round z, eta, u_res,
    z_orth (in that order, shapes of :class:`RoundNoise`); per plain-chain step z [B, d]."""

    def __init__(self, rng):
        check_generator(rng)
        self.rng = rng

    def round(self, n, lmax, d) -> RoundNoise:
        r = self.rng
        return RoundNoise(r.standard_normal((n, lmax, d)), r.random((n, lmax)), r.random(n),
                          r.standard_normal((n, d)))

    def step(self, n, d) -> np.ndarray:
        return self.rng.standard_normal((n, d))


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
                       bonus=False, reuse_orth=False, verifier=None, on_round=None) -> DiffusionResult:
    """Run B chains of the target sampler speculatively (SpecDiffusion, ALGORITHMS.md §3.2,
    with the verification of §2.5 / §2.3 / §4.2) from x0 [B, d] (the state at t = T).

    Thin ``rng`` wrapper of :func:`sample_with_noise` (noise drawn by :class:`RngNoise`).
    Every round, each unfinished chain drafts min(L, K_spec - n) states, evaluates the
    target on them in ONE batched call (plus the window start for FD-a, plus X~_L for
    the bonus), verifies, and advances tau + 1 (correction or bonus) or L. Output law:
    exactly the target chain's, for any drafter (tested against T9 / T10).
    ``verifier``: None (the oracle, reference/gaussian.py, window by window) or a module of
    batched twins with numpy results (``specoracle.fastpath.numpy_batch.gaussian``; parity-
    checked against the oracle). ``on_round(steps)``: called after every round with the
    chain steps it advanced (summed over chains): the caller's progress display.
    """
    return sample_with_noise(target, drafter, x0, RngNoise(rng), window=window, verify=verify,
                             bonus=bonus, reuse_orth=reuse_orth, verifier=verifier, on_round=on_round)


def sample_with_noise(target: TargetModel, drafter, x0, noise, *, window=4, verify="block",
                      bonus=False, reuse_orth=False, verifier=None, on_round=None) -> DiffusionResult:
    """:func:`speculative_sample` with its noise from ``noise`` (``noise.round(n, lmax, d)
    -> RoundNoise`` per round, ``noise.step(B, d) -> z`` per plain-chain step, module
    docstring's layout), e.g. :class:`RngNoise` or recorded arrays."""
    x0 = _validate_loop(target, x0, window, verify, reuse_orth)
    sampler = target.sampler
    big_b, d = x0.shape
    k_spec, k_all, big_l = sampler.n_speculative, sampler.n_steps, int(window)
    res = DiffusionResult(x0.copy(), np.zeros(k_all, np.int64), np.zeros(k_all, np.int64),
                          np.zeros(big_l + 1, np.int64), np.zeros(big_b, np.int64),
                          np.zeros(big_b, np.int64), np.zeros(big_b, np.int64), 0,
                          np.full(big_b, -1, np.int64), {"residual_zero_mass": 0},
                          np.zeros(k_all, np.int64))
    x = res.samples
    if verify == "none":
        for k in range(k_spec):
            plain_step(target, x, k, noise.step(big_b, d), res)
            if on_round is not None:
                on_round(big_b)
    else:
        pos = np.zeros(big_b, np.int64)
        drafter.reset(big_b)
        while np.any(pos < k_spec):
            rows, lengths = window_lengths(pos, k_spec, big_l)
            round_noise = noise.round(rows.size, int(lengths.max()), d)
            advanced = speculative_round(target, drafter, x, pos, round_noise, res, window=big_l,
                                         verify=verify, bonus=bonus, reuse_orth=reuse_orth,
                                         verifier=verifier)
            if on_round is not None:
                on_round(advanced)
    for k in range(k_spec, k_all):  # zero-noise final steps: the target mean (§2.1)
        x[:] = target.mean_and_score(np.full(big_b, k), x)[0]
        _count_target_call(res, np.arange(big_b), 1)
    res.rounds += k_all - k_spec
    return res


def plain_step(target, x, k, z, res):
    """One step of the plain target chain, in place: x <- m^p_k(x) + s_k z, z [B, d]."""
    x[:] = target.mean_and_score(np.full(x.shape[0], k), x)[0] + target.sampler.sigma[k] * z
    _count_target_call(res, np.arange(x.shape[0]), 1)
    res.rounds += 1


def _count_target_call(res, chains, evals):
    """One batched target call (§3.7: counts once per chain it serves); ``evals`` states
    per chain (scalar or per ``chains`` entry)."""
    res.target_calls += 1
    res.sequential_calls[chains] += 1
    res.target_evals[chains] += evals


def window_lengths(pos, k_spec, big_l):
    """Active chains (ascending) and their windows min(L, K - n) (§3.2: near the end of
    the chain the window shrinks)."""
    rows = np.flatnonzero(pos < k_spec)
    return rows, np.minimum(big_l, k_spec - pos[rows])


@dataclass
class _Window:
    """One round's window for the n active chains: chain indices ``rows`` [n], start step
    ``p0`` [n], ``lengths`` [n], chain step of every window position ``kk`` [n, lmax+1],
    the states X~_0..X~_lmax ``xs`` [n, lmax+1, d], draft means ``mq`` [n, lmax, d], target
    means ``mp`` and network outputs ``scores`` [n, lmax+1, d], ``has_bonus`` [n], and the
    sampler's standard deviations ``sigma`` [K]."""

    rows: np.ndarray
    p0: np.ndarray
    lengths: np.ndarray
    kk: np.ndarray
    xs: np.ndarray
    mq: np.ndarray
    mp: np.ndarray
    scores: np.ndarray
    has_bonus: np.ndarray
    sigma: np.ndarray

    @property
    def live(self) -> np.ndarray:
        """[n, lmax] positions inside each chain's window."""
        return np.arange(self.mq.shape[1])[None, :] < self.lengths[:, None]

    @property
    def std(self) -> np.ndarray:
        """s_{n+j-1} of each live position [n, lmax] (1 at padding: never decided on)."""
        return np.where(self.live, self.sigma[self.kk[:, :-1]], 1.0)


def speculative_round(target, drafter, x, pos, noise: RoundNoise, res, *, window, verify="block",
                      bonus=False, reuse_orth=False, verifier=None) -> int:
    """One round of SpecDiffusion (ALGORITHMS.md §3.2) for the unfinished chains, in place on
    x [B, d] and the chain positions pos [B]; noise for the n active chains as
    :class:`RoundNoise`. Returns the chain steps advanced (summed over chains)."""
    w = _open_window(target.sampler, x, pos, window, bonus)
    _check_round_noise(noise, *w.mq.shape)
    mp_start = _start_call(target, drafter, w, res)
    _draft(drafter, w, noise.z, res)
    _verification_pass(target, w, mp_start, res)
    tau, y, zero = _verify(verifier, verify, reuse_orth, w, noise)
    res.fallbacks["residual_zero_mass"] += int(zero.sum())
    advance = _advance(w, tau, y, noise.z_orth, x, pos)
    _remember_newest_output(drafter, w, tau)
    _record(res, w, tau)
    return int(advance.sum())


def _check_round_noise(noise, n, lmax, d):
    """InvalidInput naming the field of a :class:`RoundNoise` whose shape does not fit the round."""
    shapes = {"z": (n, lmax, d), "eta": (n, lmax), "u_res": (n,), "z_orth": (n, d)}
    for name, shape in shapes.items():
        got = np.shape(getattr(noise, name))
        if got != shape:
            raise InvalidInput(f"noise.{name}", f"expected shape {shape} for {n} active chains and "
                               f"window {lmax}, got {got}")


def _open_window(sampler, x, pos, big_l, bonus) -> _Window:
    """X~_0 = y_n for every unfinished chain; window min(L, K - n) (§3.2); the bonus state
    X~_L is evaluated only where a chain step follows the window."""
    k_spec = sampler.n_speculative
    rows, lengths = window_lengths(pos, k_spec, big_l)
    n, lmax, d = rows.size, int(lengths.max()), x.shape[1]
    p0 = pos[rows]
    kk = np.minimum(p0[:, None] + np.arange(lmax + 1)[None, :], sampler.n_steps - 1)  # padding clipped
    xs = np.zeros((n, lmax + 1, d))
    xs[:, 0] = x[rows]
    return _Window(rows, p0, lengths, kk, xs, np.zeros((n, lmax, d)), np.zeros((n, lmax + 1, d)),
                   np.zeros((n, lmax + 1, d)), bonus & (p0 + lengths < k_spec), sampler.sigma)


def _start_call(target, drafter, w, res):
    """The window-start target call at y_n: FD-a always (paper 2's Eq. 7, §3.3), FD-b only
    before its first verification pass (§4.4). Returns m^p(y_n) [n, d] for FD-a (step 1's
    target mean, reused by the verification pass), else None."""
    known = getattr(drafter, "known", None)
    if not drafter.start_call and (known is None or known[w.rows].all()):
        return None
    srow = np.arange(w.rows.size) if drafter.start_call else np.flatnonzero(~known[w.rows])
    m0, sc0 = target.mean_and_score(w.kk[srow, 0], w.xs[srow, 0])
    drafter.remember(w.rows[srow], w.xs[srow, 0], m0, sc0)
    _count_target_call(res, w.rows[srow], 1)
    return m0 if drafter.start_call else None


def _draft(drafter, w, z, res):
    """Drafting, sequential but cheap (§3.2): X~_j = m^q_{n+j-1}(X~_{j-1}) + s_{n+j-1} z_j
    for the positions j inside each window (padding is never drafted)."""
    live = w.live
    for j in range(w.mq.shape[1]):
        at = np.flatnonzero(live[:, j])
        k = w.kk[at, j]
        w.mq[at, j] = drafter.draft_mean(w.rows[at], k, w.xs[at, j])
        w.xs[at, j + 1] = w.mq[at, j] + w.sigma[k][:, None] * z[at, j]
    if isinstance(drafter, IndependentDrafter):
        res.draft_calls += w.mq.shape[1]
        res.draft_evals[w.rows] += w.lengths


def _verification_pass(target, w, mp_start, res):
    """ONE batched target call on X~_0..X~_{len-1} of every active chain (+ X~_len for the
    bonus; FD-a's X~_0 is already known), §3.2 and §3.7: m^p_{n+j-1}(X~_{j-1})."""
    n_eval = w.lengths + w.has_bonus
    evalmask = np.arange(w.xs.shape[1])[None, :] < n_eval[:, None]     # [n, lmax+1]
    if mp_start is not None:
        evalmask[:, 0] = False
        w.mp[:, 0] = mp_start
    if evalmask.any():
        m_all, s_all = target.mean_and_score(w.kk[evalmask], w.xs[evalmask])
        w.mp[evalmask], w.scores[evalmask] = m_all, s_all
        served = evalmask.any(axis=1)
        _count_target_call(res, w.rows[served], evalmask.sum(axis=1)[served])


def _verify(verifier, verify, reuse_orth, w, noise):
    """REJECTION of §3.2 over the windows: block (§2.5, §4.3), token with the Gamma-maximal
    coupling (§4.2, §2.4) or with the reflection (§2.3). Returns tau [n], the window's last
    emitted state y [n, d] (the correction if tau < len, else X~_len) and the zero-mass
    fallback flags [n]. ``verifier`` None: the oracle window by window; else a module of
    batched twins (same function names and positional parameters, keyword ``lengths``)."""
    lmax = w.mq.shape[1]
    m_p, s = w.mp[:, :lmax], w.std
    args = (m_p, w.mq, s, noise.z, noise.eta, noise.u_res, noise.z_orth)
    coupling = {"token": {"coupling": "gamma", "reuse_orth": reuse_orth},
                "reflection": {"coupling": "reflection"}}.get(verify)
    if verifier is not None:
        if verify == "block":
            out = verifier.verify_gaussian_block(*args, lengths=w.lengths)
        else:
            out = verifier.verify_gaussian_chain(*args, lengths=w.lengths, **coupling)
        tau = np.asarray(out.n_accepted)
        y = np.asarray(out.states)[np.arange(tau.size), np.asarray(out.n_emitted) - 1]
        return tau, y, np.asarray(out.fallbacks) != 0
    n, d = w.rows.size, w.xs.shape[2]
    tau, y, zero = np.zeros(n, np.int64), np.zeros((n, d)), np.zeros(n, bool)
    for b in range(n):
        k = int(w.lengths[b])
        row = (m_p[b, :k], w.mq[b, :k], s[b, :k], noise.z[b, :k], noise.eta[b, :k],
               float(noise.u_res[b]), noise.z_orth[b])
        v = (gaussian.verify_gaussian_block(*row) if verify == "block"
             else gaussian.verify_gaussian_chain(*row, **coupling))
        tau[b], y[b], zero[b] = v.n_accepted, v.states[-1], bool(v.fallbacks)
    return tau, y, zero


def _advance(w, tau, y, z_orth, x, pos):
    """y_{n+1..n+tau} = the accepted drafts, then the correction (n += tau + 1), or, after
    a fully accepted window, the bonus draw m^p(X~_len) + s z_orth where a step follows
    (n += len + 1) or nothing (n += len) (§3.2). Returns the steps advanced [n]."""
    corrected = tau < w.lengths
    bon = np.flatnonzero(~corrected & w.has_bonus)
    new_x = y.copy()
    lb = w.lengths[bon]
    new_x[bon] = w.mp[bon, lb] + w.sigma[w.kk[bon, lb]][:, None] * z_orth[bon]
    advance = np.where(corrected, tau + 1, w.lengths + w.has_bonus)
    x[w.rows] = new_x
    pos[w.rows] = w.p0 + advance
    return advance


def _remember_newest_output(drafter, w, tau):
    """FD-b (§4.4): freeze the newest target output of this pass, the one at X~_tau after a
    rejection, at the bonus state X~_len, or at X~_{len-1}."""
    if isinstance(drafter, FreeDrafter):
        corrected = tau < w.lengths
        src = np.where(corrected, tau, np.where(w.has_bonus, w.lengths, w.lengths - 1))
        at = np.arange(w.rows.size)
        drafter.remember(w.rows, w.xs[at, src], w.mp[at, src], w.scores[at, src])


def _record(res, w, tau):
    """Acceptance statistics: tau histogram, first-round tau, drafted / judged / accepted
    drafts per chain step (judged: up to and including the first rejected draft)."""
    res.rounds += 1
    res.tau_hist += np.bincount(tau, minlength=res.tau_hist.size)[: res.tau_hist.size]
    if res.rounds == 1:
        res.tau_first[w.rows] = tau
    live = w.live
    for j in range(w.mq.shape[1]):
        at = live[:, j]
        np.add.at(res.drafted_per_step, w.kk[at, j], 1)
        np.add.at(res.judged_per_step, w.kk[at & (j <= tau), j], 1)
        np.add.at(res.accepted_per_step, w.kk[at & (j < tau), j], 1)


def speculative_sample_chain(m_p_fn, m_q_fn, sigmas, x0, rng, *, window=4, verify="block",
                             bonus=False, drafter="independent", reuse_orth=False, verifier=None):
    """Speculative sampling of a generic Gaussian Markov chain (A15, §3.2; T7, T8, T11).

    ``m_p_fn(k [N], x [N, d]) -> [N, d]`` and ``m_q_fn(k, x)`` are the target and draft
    means of step k = 0..K-1, ``sigmas`` [K] > 0 the common standard deviations.
    ``drafter``: "independent" (m_q_fn), or "frozen" / "free" (FD-a / FD-b freezing the
    target's drift m^p(y) - y; m_q_fn is then ignored and may be None). Returns the
    :class:`DiffusionResult` of the chains from x0 [B, d]. ``verifier``: as for
    :func:`speculative_sample`.
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
                              reuse_orth=reuse_orth, verifier=verifier)


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
