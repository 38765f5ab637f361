"""The on-device speculative round: warps, draft draws and verification as torch tensors
on the models' device (engine.py, ``Runtime(round_impl="device")``).

Same round as the host round of engine.py (Leviathan et al. arXiv 2211.17192; Chen et al.
arXiv 2302.01318; block verification Sun et al. arXiv 2403.10444; ALGORITHMS.md §1.2-1.3),
with the host round's numpy work moved to torch on the device:

1. draft k tokens: ``warp`` (processing.py, the one definition) of each draft step's last
   row, then one inverse-CDF draw per row (the reference's rule: the smallest
   i with ``u * total < w_0 + ... + w_i``, cumulative sum left to right, lowest id on ties;
   argmax at temperature 0; :func:`draw`); the drafted ids [B] are fed back as a device tensor;
2. one target call over pending tokens + drafts [B, k+1]; ``warp`` of the k+1 rows;
3. verify with the torch twins of fastpath/torch_cuda/categorical.py (``verify_chain``,
   ``verify_block``, ``verify_greedy`` on the warped probabilities; ``validate=False``,
   ``raise_on_error=False``: no sync inside the verifier);
4. ONE device -> host copy per round: n_accepted, status and tokens [B, K+3] (the committed
   lengths), read by the engine's commit / rollback code (unchanged, on the host).

Noise: the engine's layout and source, unchanged: per request b its own
``numpy.random.Generator``; per round ``u_draft = rng.random(k)`` then
``u_verify = rng.random(k + 1)``; the [B, k] and [B, k+1] float64 arrays travel to the
device in one host -> device copy each (no sync). So for ``dtype=torch.float64`` on the CPU
the device round sees the same float64 probabilities (same warp function), makes the same
draws (the same left-to-right cumulative sums and threshold ``u * total`` as numpy) and the
same accept tests as the host round: identical tokens and acceptance counts under the same
seeds (tests/fastpath/models/llm/test_llm_device_round.py). On CUDA, float64 cumulative sums are parallel scans
(a different summation order), so a draw whose threshold lies within ~V * 2^-53 of a
cumulative sum could differ: the ``decisions_with_margin`` rule of tests/TOLERANCES.md with
tolerance 1e-12.

``dtype=torch.float32`` (the fast GPU setting) warps and verifies in float32 (uniforms stay
float64). It is NOT bit-identical to the float64 host round: probabilities carry ~2^-24
relative rounding and the sums over V drift by ~sqrt(V) * 2^-24, so an accept test
``u q(x) < p(x)`` or a draw threshold within that margin of its boundary may flip. The rule
is ``decisions_with_margin`` with tolerance 32 * 2^-23 (tests/TOLERANCES.md): every decision
whose float64 margin exceeds it is the same;
the output then follows the float32-rounded warped target (within float32 rounding,
~sqrt(V) * 2^-24 relative, of the float64 one), not the host round bit for bit.

Host syncs per round on CUDA: with ``cache="static"`` only the one read of step 4 (the
pending tokens and cache counts are host bookkeeping; drafted ids are fed as device tensors
by :func:`feed_ids`, which mirrors ``StaticKVState.feed`` with a device id tensor). With the
dynamic cache, ``KVState.feed`` / ``rollback`` sync on their own (``int(lens.max())``,
``bool(mask.all())``, the crop), as they do in the host round.

Shapes: logits [B, T, V] float32, q [B, K, V] and p [B, K+1, V] in ``dtype``, drafts [B, K]
int64, u_draft [B, K], u_verify [B, K+1] float64.
"""
from __future__ import annotations

import numpy as np
import torch

from specoracle.reference.types import InvalidInput

from specoracle.fastpath.torch_cuda import categorical as tcat
from specoracle.fastpath.torch_cuda._common import sample_rows
from specoracle.fastpath.models.llm.processing import Warp, warp
from specoracle.fastpath.models.llm.runtime import ROUND_DTYPES

DTYPES = {name: getattr(torch, name) for name in ROUND_DTYPES}   # Runtime.round_dtype -> torch


def last_rows(logits: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """logits [B, T, V] -> the row after each row's last fed token [B, V] (garbage if lens 0)."""
    idx = (lens - 1).clamp(min=0)
    return logits[torch.arange(logits.shape[0], device=logits.device), idx]


def draw(probs: torch.Tensor, u: torch.Tensor, greedy: bool) -> torch.Tensor:
    """One token per row of ``probs`` [B, V] -> [B] int64 on the device: argmax (first maximum)
    at temperature 0, else the torch home of the inverse-CDF draw
    (``torch_cuda._common.sample_rows``, the reference's ``sample_categorical`` batched) with
    uniforms ``u`` [B] float64."""
    if greedy:
        return probs.argmax(dim=-1)
    return sample_rows(probs, u)[0]


def feed_ids(state, ids: torch.Tensor, lens: list, width: int):
    """Feed row b the tokens ``ids[b, :lens[b]]`` (``ids`` [B, W] int64 on the device,
    ``lens`` host ints) -> (logits [B, width or T, V] float32, lens [B] on the device)."""
    from specoracle.fastpath.models.llm.static import StaticKVState

    if isinstance(state, StaticKVState):
        return state.feed_tensor(ids, torch.tensor(lens, dtype=torch.long), width)
    return state.feed([ids[b, :n] for b, n in enumerate(lens)], width=width)


def _pending(state, seqs, done) -> list:
    """Committed tokens not yet in ``state``'s cache, per row ([] for finished rows)."""
    counts = state.count.tolist()
    return [seqs[b][counts[b]:] if not done[b] else [] for b in range(len(seqs))]


def _verify(method: str, p, q, drafts, u):
    kw = dict(raise_on_error=False)
    if method == "greedy":
        return tcat.verify_greedy(p, drafts, **kw)
    fn = tcat.verify_chain if method == "chain" else tcat.verify_block
    return fn(p, q, drafts, u, validate=False, **kw)


def speculative_round(tgt, dft, seqs, done, u_draft, u_verify, *, k: int, method: str,
                      warping: Warp, dtype=torch.float64, verifier_q=None) -> tuple:
    """One speculative round of every unfinished row on the device (see the module doc).

    tgt, dft: the target's and the draft's cache states (KVState or StaticKVState);
    seqs: committed int64 ids per row (prompt included); done: finished flags [B];
    u_draft [B, k], u_verify [B, k+1]: numpy float64 noise (rows of finished requests unused);
    verifier_q(last_logits, q): the row the verifier is given (default q; engine.Hooks).
    Returns host int64 arrays ``(n_accepted [B], tokens [B, k+1])`` (PAD_ID-padded; rows of
    finished requests are meaningless)."""
    dev = tgt.device
    bsz = len(seqs)
    greedy = warping.greedy
    ud = torch.from_numpy(u_draft).to(dev)                               # [B, K] float64
    uv = torch.from_numpy(u_verify).to(dev)                              # [B, K+1] float64
    one = [0 if d else 1 for d in done]
    # 1. draft k tokens; the first call feeds the pending committed tokens (host lists)
    logits, lens = dft.feed(_pending(dft, seqs, done), width=2)
    xs, qs = [], []
    for j in range(k):
        if j:
            logits, lens = feed_ids(dft, xs[-1][:, None], one, 1)
        last = last_rows(logits, lens)                                   # [B, V]
        qj = warp(last, warping, dtype)                                  # [B, V]
        xs.append(draw(qj, ud[:, j], greedy))                            # [B]
        qs.append(qj if verifier_q is None else verifier_q(last, qj).to(dtype))
    drafts = torch.stack(xs, dim=1)                                      # [B, K]
    q = torch.stack(qs, dim=1)                                           # [B, K, V]
    # 2. score pending + k drafts with one target call
    pend = _pending(tgt, seqs, done)
    lp = [len(r) for r in pend]
    host = torch.zeros(bsz, max(lp) + k, dtype=torch.long)
    for b, r in enumerate(pend):
        host[b, :lp[b]] = torch.as_tensor(r, dtype=torch.long)
    ids = host.to(dev)
    at = (torch.tensor(lp)[:, None] + torch.arange(k)[None, :]).to(dev)  # [B, K]
    ids.scatter_(1, at, drafts)
    logits, lens = feed_ids(tgt, ids, [lp[b] + k * one[b] for b in range(bsz)], k + 1)
    vocab = logits.shape[-1]
    idx = (lens[:, None] - (k + 1) + torch.arange(k + 1, device=dev)[None, :]).clamp(min=0)
    rows = torch.gather(logits, 1, idx[:, :, None].expand(-1, -1, vocab))  # [B, K+1, V]
    p = warp(rows, warping, dtype)
    # 3. verify every row (finished rows too: fixed shapes; their verdicts are ignored)
    bv = _verify(method, p, q, drafts, uv)
    # 4. the one device -> host read of the round
    out = torch.cat([bv.n_accepted[:, None], bv.status[:, None].long(), bv.tokens], dim=1).cpu().numpy()
    bad = np.flatnonzero((out[:, 1] != 0) & ~np.asarray(done, dtype=bool))
    if bad.size:
        b = int(bad[0])
        raise InvalidInput("draft", f"device verification failed with status {int(out[b, 1])}", index=b)
    return out[:, 0], out[:, 2:]


def autoregressive_step(tgt, seqs, done, u, *, warping: Warp, dtype=torch.float64) -> list:
    """One plain decoding step on the device: feed the pending tokens, warp the last row, draw
    (inverse CDF with ``u`` [B] numpy float64, argmax at temperature 0); one device -> host
    read of the B tokens. Returns the ids [B] int64 (meaningless for finished rows)."""
    logits, lens = tgt.feed(_pending(tgt, seqs, done), width=1)
    probs = warp(last_rows(logits, lens), warping, dtype)               # [B, V]
    return draw(probs, torch.from_numpy(u).to(probs.device), warping.greedy).cpu().numpy()
