"""The torch-CPU baseline of the bench: chain and block verification as a user would
write them with plain batched torch ops (no custom kernels, no Python loop over the
batch). Same inputs and noise layout as the fast path (fastpath/types.py, all rows
full: num_draft = K); returns ``(n_accepted [B], last_token [B])``.

It is a speed anchor, not an exact twin: the residual draw uses ``torch.cumsum`` +
``torch.searchsorted`` in the input dtype, so near-ties can resolve differently from
the oracle (the parity registry's ``decisions_with_margin`` tests quantify that, see
tests/fastpath/test_parity_ops.py).
"""
from __future__ import annotations

import torch


def _draw(weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw per row of ``weights`` [B, V] with ``u`` [B]: cumsum + searchsorted."""
    cdf = torch.cumsum(weights, dim=-1)                      # [B, V]
    thr = (u.to(cdf.dtype) * cdf[:, -1]).unsqueeze(-1)       # [B, 1]
    idx = torch.searchsorted(cdf, thr, right=True).squeeze(-1)
    return idx.clamp_(max=weights.shape[-1] - 1)


def chain(p: torch.Tensor, q: torch.Tensor, draft: torch.Tensor, u: torch.Tensor):
    """Token-level verification: p [B, K+1, V], q [B, K, V], draft [B, K], u [B, K+1]."""
    bsz, k1, _ = p.shape
    k = k1 - 1
    rows = torch.arange(bsz)
    px = torch.gather(p[:, :k], 2, draft.unsqueeze(-1)).squeeze(-1)     # [B, K]
    qx = torch.gather(q, 2, draft.unsqueeze(-1)).squeeze(-1)            # [B, K]
    accept = u[:, :k].to(p.dtype) * qx < px                             # [B, K]
    n_acc = torch.cumprod(accept.to(torch.int64), dim=1).sum(1)         # [B]
    p_row = p[rows, n_acc]                                              # [B, V]
    q_row = q[rows, n_acc.clamp(max=max(k - 1, 0))] if k else torch.zeros_like(p_row)
    bonus = (n_acc == k).unsqueeze(-1)
    w = torch.where(bonus, p_row, (p_row - q_row).clamp_(min=0))
    w = torch.where(w.sum(-1, keepdim=True) > 0, w, p_row)
    return n_acc, _draw(w, u[:, k])


def block(p: torch.Tensor, q: torch.Tensor, draft: torch.Tensor, u: torch.Tensor):
    """Block verification (Sun et al., arXiv 2403.10444): every residual mass R_i [B, K]."""
    bsz, k1, _ = p.shape
    k = k1 - 1
    rows = torch.arange(bsz)
    if k == 0:
        return torch.zeros(bsz, dtype=torch.int64), _draw(p[:, 0], u[:, 0])
    px = torch.gather(p[:, :k], 2, draft.unsqueeze(-1)).squeeze(-1)
    qx = torch.gather(q, 2, draft.unsqueeze(-1)).squeeze(-1)
    ratio = px / qx
    surv = [torch.ones(bsz, dtype=p.dtype)]
    for i in range(k):
        surv.append(torch.clamp(surv[-1] * ratio[:, i], max=1.0))
    surv = torch.stack(surv, 1)                                         # [B, K+1]
    mass = (surv[:, :k, None] * p[:, :k] - q).clamp_(min=0).sum(-1)     # [B, K]
    eta = u[:, :k].to(p.dtype)
    passed = torch.empty(bsz, k, dtype=torch.bool)
    passed[:, : k - 1] = eta[:, : k - 1] * (mass[:, 1:] + 1 - surv[:, 1:k]) < mass[:, 1:]
    passed[:, k - 1] = eta[:, k - 1] < surv[:, k]
    idx = torch.arange(1, k + 1).expand(bsz, k)
    tau = torch.where(passed, idx, torch.zeros_like(idx)).max(1).values  # [B]
    p_row = p[rows, tau]
    q_row = q[rows, tau.clamp(max=k - 1)]
    bonus = (tau == k).unsqueeze(-1)
    w = torch.where(bonus, p_row, (surv[rows, tau].unsqueeze(-1) * p_row - q_row).clamp_(min=0))
    w = torch.where(w.sum(-1, keepdim=True) > 0, w, p_row)
    return tau, _draw(w, u[:, k])
