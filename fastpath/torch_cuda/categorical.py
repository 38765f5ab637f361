"""Batched chain, greedy and block verification in torch: the CUDA twins of
reference/categorical.py (same names, same positional parameters, batched API of
fastpath/types.py). Runs on any torch device; on the CPU it is the "torch twin"
that CI checks against the oracle.

Algorithms (ALGORITHMS.md):
    verify_chain  token-level speculative sampling, Leviathan et al. arXiv 2211.17192
                  Alg. 1 / Chen et al. arXiv 2302.01318; §1.2, division-free test §0.3
    verify_greedy temperature 0: longest prefix matching the target argmax (lowest id on ties)
    verify_block  block verification, Sun et al. arXiv 2403.10444; §1.3 Algorithm 2 in
                  the division-free form of §0.3

Shapes: p [B, K+1, V], q [B, K, V], draft [B, K] (PAD_ID = -1 after num_draft[b]),
u [B, K+1], num_draft [B]. Noise layout per row b with n = num_draft[b]: u[b, :n] for
the n accept tests (eta_i for block), u[b, n] for the final inverse-CDF draw
(residual or bonus); u[b, n+1:] is never read.

What is read (the memory floor of the issue):
    chain  the drafted entries p[b, i, x_i], q[b, i, x_i] for i < n, plus ONE row pair
           (p[b, tau], q[b, tau]) -- or the single row p[b, n] on a bonus;
    block  every row p[b, :n+1], q[b, :n] (each row's residual mass is needed);
    greedy every row p[b, :n+1] (argmax).

Per-row status instead of exceptions inside the computation (STATUS_* of
fastpath/types.py): a bad num_draft, a draft id outside [0, V) (the gather uses a
clamped id, never an out-of-bounds read), a NaN/inf among the values read, q(x) = 0
for a drafted x. With ``raise_on_error=True`` (default) the wrapper raises
InvalidInput naming the first bad row, like the reference; with False the status
comes back and the row's outputs are PAD.

Entry points from logits (``verify_chain_logits``, ``verify_block_logits``) apply
temperature / top-k / top-p / min-p with the reference's exact rules
(processing.py) row chunk by row chunk: the full probability tensor is never held.

Keyword knobs (keyword-only, fast-path additions): num_draft, raise_on_error,
impl ("auto" | "torch" | "triton": Triton kernels of triton_kernels.py; "auto" picks
Triton for CUDA tensors when triton is importable), validate (False skips the range
check of u, the wrapper's only device -> host sync besides raise_on_error: engine
mode, with ``raise_on_error=False``).
"""
from __future__ import annotations

import numpy as np
import torch

from ..types import FALLBACK_RESIDUAL_ZERO_MASS, STATUS_DRAFT_ZERO_Q, STATUS_NONFINITE
from ._common import (assemble, compute_dtype, finish, length_and_range_status, prepare,
                      rounding_bits, sample_rows, set_status)
from .processing import _per_row, check_knobs, probs_rows
from .rng import counter_uniforms

# ---------------------------------------------------------------- shared pieces


def _use_triton(impl: str, p: torch.Tensor) -> bool:
    if impl == "torch":
        return False
    if impl == "triton":
        return True
    if impl != "auto":
        raise ValueError(f"impl must be 'auto', 'torch' or 'triton', got {impl!r}")
    if p.device.type != "cuda":
        return False
    import importlib.util
    return importlib.util.find_spec("triton") is not None


def _drafted(p, q, safe, k, cd):
    """Drafted entries pd[b, i] = p[b, i, x_i], qd[b, i] = q[b, i, x_i]: [B, K] each."""
    if k == 0:
        z = torch.zeros(p.shape[0], 0, dtype=cd, device=p.device)
        return z, z
    pd = p[:, :k].gather(2, safe[:, :, None])[:, :, 0].to(cd)
    qd = q.gather(2, safe[:, :, None])[:, :, 0].to(cd)
    return pd, qd


def _entry_status(status, inside, pd, qd):
    nonfin = (inside & ~(torch.isfinite(pd) & torch.isfinite(qd))).any(dim=1)
    status = set_status(status, nonfin, STATUS_NONFINITE)
    zero_q = (inside & ~(qd > 0) & torch.isfinite(qd)).any(dim=1)
    return set_status(status, zero_q, STATUS_DRAFT_ZERO_Q)


def _final_draw(p_row, res, bonus, u_last, status, check_rows):
    """The one inverse-CDF draw per row: bonus rows from p_row, the others from the
    residual ``res`` (or from p_row when its mass is 0: fallback, counted)."""
    nonfin = ~torch.isfinite(check_rows).all(dim=-1)
    status = set_status(status, nonfin, STATUS_NONFINITE)
    zero_mass = ~bonus & ~(res > 0).any(dim=-1)
    w = torch.where((bonus | zero_mass)[:, None], p_row, res)
    idx, rounding = sample_rows(w, u_last)
    fb = torch.where(zero_mass, FALLBACK_RESIDUAL_ZERO_MASS, 0).to(torch.int32) | rounding_bits(rounding)
    return idx, fb, status


def _chain_decide(pd, qd, u, inside, n_clamped, k):
    """tau = first rejected position (u * q(x) < p(x) fails), else n."""
    if k == 0:
        return torch.zeros_like(n_clamped)
    pos = torch.arange(k, device=pd.device)
    rej = inside & ~(u[:, :k] * qd < pd)
    first = torch.where(rej, pos, k + 1).amin(dim=1)
    return torch.minimum(first, n_clamped)


def _chain_finish(p_row, q_row, tau, n, u, status, draft, numpy_in, raise_on_error):
    bonus = tau == n
    b = p_row.shape[0]
    res = torch.clamp(p_row - q_row, min=0)
    check = torch.where(bonus[:, None], p_row, p_row + q_row)
    u_last = u[torch.arange(b, device=u.device), n]
    idx, fb, status = _final_draw(p_row, res, bonus, u_last, status, check)
    return finish(assemble(draft, tau, idx, bonus, status, fb, numpy_in), raise_on_error)


# ---------------------------------------------------------------- chain


class _Rows:
    """What chain and block verification share after the input checks: the checked
    tensors, the per-row status, the in-draft mask, the clamped lengths, and the
    drafted entries pd, qd [B, K] (computed by ``drafted``)."""

    def __init__(self, p, q, draft, u, num_draft, validate):
        self.p, self.q, self.draft, self.u, self.n, self.numpy_in = prepare(p, q, draft, u, num_draft,
                                                                            check_u=validate)
        b, k1, v = self.p.shape
        self.b, self.k, self.v, self.cd = b, k1 - 1, v, compute_dtype(self.p)
        self.status, self.inside, self.safe = length_and_range_status(self.draft, self.n, v)
        self.nc = self.n.clamp(0, self.k)
        self.bi = torch.arange(b, device=self.p.device)

    def entries(self, pd, qd):
        self.pd, self.qd = pd, qd
        self.status = _entry_status(self.status, self.inside, pd, qd)
        return self


def _tau_row_pair(ctx: _Rows, tau, rows_of):
    """(p row, q row) at tau per sequence [B, V] each; q is 0 on a bonus row / K = 0.
    ``rows_of(side, b_index, row_index)`` returns the rows in the compute dtype."""
    p_row = rows_of("p", ctx.bi, tau)
    if ctx.k:
        q_row = rows_of("q", ctx.bi, tau.clamp(max=ctx.k - 1))
        q_row = torch.where((tau == ctx.nc)[:, None], torch.zeros_like(q_row), q_row)
    else:
        q_row = torch.zeros_like(p_row)
    return p_row, q_row


def _prob_rows(ctx: _Rows):
    return lambda side, bi, ii: getattr(ctx, side)[bi, ii].to(ctx.cd)


def verify_chain(p, q, draft, u, *, num_draft=None, raise_on_error: bool = True, impl: str = "auto",
                 validate: bool = True):
    """Batched token-level speculative sampling (see the module docstring).

    Row b: accept x_i iff ``u[b, i] * q[b, i, x_i] < p[b, i, x_i]`` for i < n; at the
    first rejection tau draw from normalise((p[b, tau] - q[b, tau])_+), else the bonus
    from p[b, n]; both with u[b, n]. Returns a BatchVerdict.
    """
    ctx = _Rows(p, q, draft, u, num_draft, validate)
    if _use_triton(impl, ctx.p):
        from . import triton_kernels
        return finish(triton_kernels.chain(ctx.p, ctx.q, ctx.draft, ctx.u, ctx.n, ctx.numpy_in), raise_on_error)
    ctx.entries(*_drafted(ctx.p, ctx.q, ctx.safe, ctx.k, ctx.cd))
    tau = _chain_decide(ctx.pd, ctx.qd, ctx.u, ctx.inside, ctx.nc, ctx.k)
    p_row, q_row = _tau_row_pair(ctx, tau, _prob_rows(ctx))               # [B, V]: the one row pair
    return _chain_finish(p_row, q_row, tau, ctx.nc, ctx.u, ctx.status, ctx.draft, ctx.numpy_in, raise_on_error)


# ---------------------------------------------------------------- greedy


def verify_greedy(p, draft, *, num_draft=None, raise_on_error: bool = True):
    """Batched greedy verification: tau = first i < n with draft[b, i] != argmax p[b, i]
    (first maximum on ties, as torch.argmax and the reference's argmax_first), else n;
    emits argmax p[b, tau]. p may be probabilities or logits; NaN in p[b, :n+1] gives
    STATUS_NONFINITE (inf is allowed: logits may be -inf)."""
    p, _, draft, _, n, numpy_in = prepare(p, None, draft, None, num_draft, need_q=False, need_u=False)
    b, k1, v = p.shape
    k = k1 - 1
    status, inside, safe = length_and_range_status(draft, n, v)
    nc = n.clamp(0, k)
    am = p.argmax(dim=-1)                                              # [B, K+1]
    rows = torch.arange(k1, device=p.device)[None, :] <= nc[:, None]
    nan = (torch.isnan(p).any(dim=-1) & rows).any(dim=1)
    status = set_status(status, nan, STATUS_NONFINITE)
    if k:
        mism = inside & (draft != am[:, :k])
        first = torch.where(mism, torch.arange(k, device=p.device), k + 1).amin(dim=1)
        tau = torch.minimum(first, nc)
    else:
        tau = torch.zeros_like(nc)
    last = am[torch.arange(b, device=p.device), tau]
    fb = torch.zeros(b, dtype=torch.int32, device=p.device)
    return finish(assemble(draft, tau, last, tau == nc, status, fb, numpy_in), raise_on_error)


# ---------------------------------------------------------------- block


def _survival(pd, qd, k, cd):
    """Prefix survival [B, K+1]: s_0 = 1, s_i = min(s_{i-1} * p(x_i) / q(x_i), 1)."""
    s = [torch.ones(pd.shape[0], dtype=cd, device=pd.device)]
    for i in range(k):
        s.append(torch.clamp(s[-1] * pd[:, i] / qd[:, i], max=1))
    return torch.stack(s, dim=1)


def _block_decide(surv, mass, u, nc, k):
    """tau = the LARGEST i in 1..n that passes (0 if none): i < n passes iff
    eta_i (R_i + 1 - s_i) < R_i, i = n passes iff eta_n < s_n (eta_i = u[i-1])."""
    tau = torch.zeros_like(nc)
    for i in range(1, k + 1):
        eta = u[:, i - 1]
        if i < k:
            mid = eta * (mass[:, i] + 1 - surv[:, i]) < mass[:, i]
        else:
            mid = torch.zeros_like(nc, dtype=torch.bool)
        last = eta < surv[:, i]
        passed = torch.where(nc == i, last, mid) & (i <= nc)
        tau = torch.where(passed, i, tau)
    return tau


def _block_finish(p_row, q_row, scale, tau, nc, u, status, draft, numpy_in, raise_on_error):
    bonus = tau == nc
    res = torch.clamp(scale[:, None] * p_row - q_row, min=0)
    u_last = u[torch.arange(p_row.shape[0], device=u.device), nc]
    idx, fb, status = _final_draw(p_row, res, bonus, u_last, status, p_row)
    return finish(assemble(draft, tau, idx, bonus, status, fb, numpy_in), raise_on_error)


def verify_block(p, q, draft, u, *, num_draft=None, raise_on_error: bool = True, impl: str = "auto",
                 validate: bool = True):
    """Batched block verification (see the module docstring): prefix survivals s_i,
    residual masses R_i = sum_x (s_i p[b, i, x] - q[b, i, x])_+ for i < n, tau the
    largest passing index, then the bonus from p[b, n] or the scaled residual
    normalise((s_tau p[b, tau] - q[b, tau])_+), with u[b, n]."""
    ctx = _Rows(p, q, draft, u, num_draft, validate)
    if _use_triton(impl, ctx.p):
        from . import triton_kernels
        return finish(triton_kernels.block(ctx.p, ctx.q, ctx.draft, ctx.u, ctx.n, ctx.numpy_in), raise_on_error)
    ctx.entries(*_drafted(ctx.p, ctx.q, ctx.safe, ctx.k, ctx.cd))
    p, q, k, cd = ctx.p, ctx.q, ctx.k, ctx.cd
    surv = _survival(ctx.pd, ctx.qd, k, cd)
    if k:
        res_all = torch.clamp(surv[:, :k, None] * p[:, :k].to(cd) - q.to(cd), min=0)   # [B, K, V]
        mass = res_all.sum(dim=-1)                                                    # [B, K]
        rows_q = torch.arange(k, device=p.device)[None, :] < ctx.nc[:, None]
        bad_q = (~torch.isfinite(q).all(dim=-1) & rows_q).any(dim=1)
    else:
        mass = torch.zeros(ctx.b, 0, dtype=cd, device=p.device)
        bad_q = torch.zeros(ctx.b, dtype=torch.bool, device=p.device)
    rows_p = torch.arange(k + 1, device=p.device)[None, :] <= ctx.nc[:, None]
    bad_p = (~torch.isfinite(p).all(dim=-1) & rows_p).any(dim=1)
    status = set_status(ctx.status, bad_p | bad_q, STATUS_NONFINITE)
    tau = _block_decide(surv, mass, ctx.u, ctx.nc, k)
    p_row, q_row = _tau_row_pair(ctx, tau, _prob_rows(ctx))
    return _block_finish(p_row, q_row, surv[ctx.bi, tau], tau, ctx.nc, ctx.u, status, ctx.draft, ctx.numpy_in,
                         raise_on_error)


# ---------------------------------------------------------------- noise wrappers


def _draw_u(p, rng):
    """u [B, K+1]: ``rng.random((B, K+1))`` for a numpy Generator (the same draw as
    the reference and numba wrappers), ``torch.rand`` on p's device for a
    torch.Generator."""
    pt = p if isinstance(p, torch.Tensor) else None
    shape = (int(np.shape(p)[0]), int(np.shape(p)[1]))
    if isinstance(rng, np.random.Generator):
        u = rng.random(shape)
        return torch.from_numpy(u).to(pt.device) if pt is not None else u
    if isinstance(rng, torch.Generator):
        dev = pt.device if pt is not None else "cpu"
        u = torch.rand(shape, generator=rng, dtype=torch.float64, device=rng.device)
        return u.to(dev) if pt is not None else u.numpy()
    from specoracle.reference.types import InvalidInput
    raise InvalidInput("rng", f"expected a numpy.random.Generator or torch.Generator, got {type(rng).__name__}")


def verify_chain_rng(p, q, draft, rng, **kw):
    """:func:`verify_chain` with u drawn by :func:`_draw_u`."""
    return verify_chain(p, q, draft, _draw_u(p, rng), **kw)


def verify_block_rng(p, q, draft, rng, **kw):
    """:func:`verify_block` with u drawn by :func:`_draw_u`."""
    return verify_block(p, q, draft, _draw_u(p, rng), **kw)


def verify_chain_seeded(p, q, draft, *, seed, position, **kw):
    """:func:`verify_chain` with per-request counter-based noise:
    u[b, j] = philox(seed[b], position[b], j) (rng.counter_uniforms). A row's result
    depends only on its own data, seed and absolute position, never on the batch."""
    k1 = int(np.shape(p)[1])
    dev = p.device if isinstance(p, torch.Tensor) else "cpu"
    return verify_chain(p, q, draft, counter_uniforms(seed, position, k1, device=dev), **kw)


def verify_block_seeded(p, q, draft, *, seed, position, **kw):
    """:func:`verify_block` with per-request counter-based noise (see verify_chain_seeded)."""
    k1 = int(np.shape(p)[1])
    dev = p.device if isinstance(p, torch.Tensor) else "cpu"
    return verify_block(p, q, draft, counter_uniforms(seed, position, k1, device=dev), **kw)


# ---------------------------------------------------------------- from logits


def _logit_knobs(p_logits, temperature, top_k, top_p, min_p, cd):
    check_knobs(temperature, top_k, top_p, min_p)
    b = p_logits.shape[0]
    dev = p_logits.device
    return [_per_row(temperature, b, dev, cd, "temperature"),
            _per_row(top_k, b, dev, torch.int64, "top_k"),
            _per_row(top_p, b, dev, cd, "top_p"),
            _per_row(min_p, b, dev, cd, "min_p")]


def _rows_probs(logits, bsel, isel, knobs, cd, row_chunk):
    """Probabilities of the rows logits[bsel[r], isel[r]] -> [R, V], warped with the
    knobs of sequence bsel[r]; processed row_chunk rows at a time."""
    out = []
    for s in range(0, bsel.shape[0], row_chunk):
        bs, is_ = bsel[s:s + row_chunk], isel[s:s + row_chunk]
        z = logits[bs, is_].to(cd)
        out.append(probs_rows(z, *[None if kn is None else kn[bs] for kn in knobs]))
    return torch.cat(out) if out else torch.zeros(0, logits.shape[-1], dtype=cd, device=logits.device)


def _drafted_from_logits(logits, safe, knobs, cd, row_chunk):
    """pd[b, i] = warped prob of draft x_i in row (b, i), computed chunk by chunk
    (only the [chunk, V] slab is ever materialised)."""
    b, k = safe.shape
    if k == 0:
        return torch.zeros(b, 0, dtype=cd, device=logits.device)
    bsel = torch.arange(b, device=logits.device).repeat_interleave(k)
    isel = torch.arange(k, device=logits.device).repeat(b)
    xs = safe.reshape(-1)
    vals = []
    for s in range(0, bsel.shape[0], row_chunk):
        rows = _rows_probs(logits, bsel[s:s + row_chunk], isel[s:s + row_chunk], knobs, cd, row_chunk)
        vals.append(rows.gather(1, xs[s:s + row_chunk, None])[:, 0])
    return torch.cat(vals).reshape(b, k)


def _logits_rows(logits_p, logits_q, knobs, cd, row_chunk):
    src = {"p": logits_p, "q": logits_q}
    return lambda side, bi, ii: _rows_probs(src[side], bi, ii, knobs, cd, row_chunk)


def _logits_triton(kind, ctx, knobs, top_k, top_p, min_p, raise_on_error, validate):
    from . import triton_logits
    warps = dict(top_k=None if top_k is None else knobs[1], top_p=None if top_p is None else knobs[2],
                 min_p=None if min_p is None else knobs[3])
    return finish(triton_logits.verify(ctx.p, ctx.q, ctx.draft, ctx.u, ctx.n, knobs[0], ctx.numpy_in,
                                       kind == "block", full_check=validate, **warps), raise_on_error)


def _logits_head(p_logits, q_logits, draft, u, num_draft, temperature, top_k, top_p, min_p, validate):
    ctx = _Rows(p_logits, q_logits, draft, u, num_draft, validate)
    knobs = _logit_knobs(ctx.p, temperature, top_k, top_p, min_p, ctx.cd)
    return ctx, knobs


def verify_chain_logits(p_logits, q_logits, draft, u, *, temperature=1.0, top_k=None, top_p=None,
                        min_p=None, num_draft=None, raise_on_error: bool = True, row_chunk: int = 64,
                        impl: str = "auto", validate: bool = True):
    """:func:`verify_chain` on ``process_logits(p_logits)`` and ``process_logits(q_logits)``
    (the same warps on both sides: losslessness is w.r.t. the warped target, §1.2),
    without materialising either probability tensor.

    Knobs: scalars or per-sequence tensors [B]; temperature 0 rows are greedy (one-hot
    rows, so the draft must be the draft model's argmax or the row gets
    STATUS_DRAFT_ZERO_Q, exactly as the reference on one-hot rows). Computed in float64
    for float64 logits, else float32.

    ``impl="torch"``: the drafted entries row chunk by row chunk (``row_chunk`` rows of
    V at a time), then the one residual row pair per sequence. ``impl="triton"`` (or
    "auto" on CUDA tensors): the fused kernel of triton_logits.py (temperature, top-k,
    top-p and min-p inside the kernel, no sort, nothing of size V written).
    ``validate=False`` (engine mode): no range check of u, and the Triton kernel stops
    reading rows at the first rejection (statuses then cover the rows read only).
    """
    ctx, knobs = _logits_head(p_logits, q_logits, draft, u, num_draft, temperature, top_k, top_p, min_p,
                              validate)
    if _use_triton(impl, ctx.p):
        return _logits_triton("chain", ctx, knobs, top_k, top_p, min_p, raise_on_error, validate)
    rows_of = _logits_rows(ctx.p, ctx.q, knobs, ctx.cd, row_chunk)
    pd = _drafted_from_logits(ctx.p, ctx.safe, knobs, ctx.cd, row_chunk)
    ctx.entries(pd, _drafted_from_logits(ctx.q, ctx.safe, knobs, ctx.cd, row_chunk) if ctx.k else pd)
    tau = _chain_decide(ctx.pd, ctx.qd, ctx.u, ctx.inside, ctx.nc, ctx.k)
    p_row, q_row = _tau_row_pair(ctx, tau, rows_of)
    return _chain_finish(p_row, q_row, tau, ctx.nc, ctx.u, ctx.status, ctx.draft, ctx.numpy_in, raise_on_error)


def verify_block_logits(p_logits, q_logits, draft, u, *, temperature=1.0, top_k=None, top_p=None,
                        min_p=None, num_draft=None, raise_on_error: bool = True, row_chunk: int = 64,
                        impl: str = "auto", validate: bool = True):
    """:func:`verify_block` on warped logits (see :func:`verify_chain_logits`). Block
    verification needs every row's residual mass, so every row is warped once (torch:
    chunk by chunk, the residual masses reduced per chunk and the rows dropped; Triton:
    the fused kernel)."""
    ctx, knobs = _logits_head(p_logits, q_logits, draft, u, num_draft, temperature, top_k, top_p, min_p,
                              validate)
    if _use_triton(impl, ctx.p):
        return _logits_triton("block", ctx, knobs, top_k, top_p, min_p, raise_on_error, validate)
    p, q, k, cd, bi = ctx.p, ctx.q, ctx.k, ctx.cd, ctx.bi
    pd = _drafted_from_logits(p, ctx.safe, knobs, cd, row_chunk)
    ctx.entries(pd, _drafted_from_logits(q, ctx.safe, knobs, cd, row_chunk) if k else pd)
    surv = _survival(ctx.pd, ctx.qd, k, cd)
    mass = torch.zeros(ctx.b, k, dtype=cd, device=p.device)
    bad = torch.zeros(ctx.b, dtype=torch.bool, device=p.device)
    for i in range(k):
        ii = torch.full_like(bi, i)
        pr = _rows_probs(p, bi, ii, knobs, cd, row_chunk)
        qr = _rows_probs(q, bi, ii, knobs, cd, row_chunk)
        mass[:, i] = torch.clamp(surv[:, i, None] * pr - qr, min=0).sum(dim=-1)
        bad |= (i < ctx.nc) & ~(torch.isfinite(pr).all(dim=-1) & torch.isfinite(qr).all(dim=-1))
    status = set_status(ctx.status, bad, STATUS_NONFINITE)
    tau = _block_decide(surv, mass, ctx.u, ctx.nc, k)
    p_row, q_row = _tau_row_pair(ctx, tau, _logits_rows(p, q, knobs, cd, row_chunk))
    return _block_finish(p_row, q_row, surv[bi, tau], tau, ctx.nc, ctx.u, status, ctx.draft, ctx.numpy_in,
                         raise_on_error)


verify_greedy_logits = verify_greedy  # the argmax is invariant under every warp with T > 0
