"""Diagnosis of a DFlash drafter on fixed held-out blocks ("diagnose before spending
compute").

Every proposer is scored on the SAME blocks: ``n_windows`` corpus windows of the held-out
documents (the split of :func:`dflash_data.split_documents`, never trained on), each with the
fixed anchor positions ``ANCHORS``. For a block with anchor ``a`` (the last committed token
x_a; the context is x_0..x_a) a proposer drafts d_1..d_{G-1} for positions a+1..a+G-1 and is
scored against

* the target's GREEDY continuation g_1..g_{G-1} of x_0..x_a: ``accepted`` = length of the common
  prefix of d and g, exactly the drafts T = 0 verification accepts in that block (tau at T = 0 of
  one block is 1 + accepted), ``acc[k]`` = P(d_k = g_k) per position;
* the held-out TEXT x_{a+1}..x_{a+G-1} (what the training metrics report, teacher-forced).

Proposers: n-gram tables of the training documents (bigram, trigram with bigram back-off,
chained greedily on their own drafts), the AR zoo draft (greedy chain), the DFlash drafter
(one block pass, argmax; :func:`dflash_drafts`) with its target features as trained, zeroed
(``features="zero"``: must be clearly worse, else the features do not reach the drafter) or
taken from another window (``"shuffled"``). :func:`probes` adds the checks of the frozen head
(norm scales) and an off-by-one probe (first-position accuracy against the text shifted by -1,
0, +1: a label misalignment shows up as a shifted peak).

Shapes: S windows, L window length, A anchors, G block size.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from specoracle.reference.types import InvalidInput

from specoracle.fastpath.models.dflash.model import DFlashDrafter, block_embeddings, lm_head

ANCHORS = (31, 55, 79, 103)  # fixed anchor positions of a 128-token held-out window


@dataclass
class HeldOut:
    """Fixed held-out blocks. windows [S, L]; greedy [S, A, Gmax-1] target greedy continuations;
    hidden: the target's hidden-state tuple of the windows (embeddings first), [S, L, D] each."""

    windows: torch.Tensor
    anchors: tuple
    greedy: torch.Tensor
    hidden: tuple
    block: int

    def text(self, g: int, shift: int = 0) -> torch.Tensor:
        """Text tokens x_{a+k+shift}, k = 1..g-1 -> [S, A, g-1] (shift in {-1, 0, 1})."""
        idx = torch.tensor([[a + k + shift for k in range(1, g)] for a in self.anchors],
                           device=self.windows.device)                  # [A, g-1]
        return self.windows[:, idx]


def heldout_blocks(target, tokenizer, *, n_windows: int = 64, anchors=ANCHORS, block: int = 16,
                   seq_len: int = 128, corpus=None) -> HeldOut:
    """The held-out blocks (module docstring); the target's greedy continuations are generated
    with a KV cache, one batch per anchor position."""
    from specoracle.fastpath.models.dflash.data import corpus_windows, doc_tokens, regenerate, split_documents
    from specoracle.fastpath.models.dflash.train import read_corpus

    anchors = tuple(int(a) for a in anchors)
    if block < 2:
        raise InvalidInput("block", f"must be >= 2, got {block}")
    for i, a in enumerate(anchors):
        if not 1 <= a <= seq_len - block:
            raise InvalidInput("anchors", f"anchor {a} outside [1, {seq_len - block}]", index=i)
    _, eval_docs = split_documents(read_corpus(corpus))
    sep = _sep_id(tokenizer)
    windows = corpus_windows(doc_tokens(tokenizer, eval_docs, sep), seq_len)[:n_windows]
    dev = next(target.parameters()).device
    windows = windows.to(dev)
    greedy = torch.stack([regenerate(target, windows[:, : a + 1], block - 1, (0.0,),
                                     batch=len(windows))[0][:, a + 1:] for a in anchors], 1)
    with torch.no_grad():
        hidden = target(input_ids=windows, output_hidden_states=True).hidden_states
    return HeldOut(windows, anchors, greedy.to(dev), tuple(h.detach() for h in hidden), block)


def save_heldout(ho: HeldOut, path) -> None:
    """Cache the blocks (windows, anchors, greedy continuations; the hidden states are recomputed)."""
    torch.save(dict(windows=ho.windows.cpu(), anchors=list(ho.anchors), greedy=ho.greedy.cpu(),
                    block=ho.block), path)


@torch.no_grad()
def load_heldout(target, path) -> HeldOut:
    blob = torch.load(path, weights_only=True)
    dev = next(target.parameters()).device
    w = blob["windows"].to(dev)
    hidden = target(input_ids=w, output_hidden_states=True).hidden_states
    return HeldOut(w, tuple(blob["anchors"]), blob["greedy"].to(dev), tuple(hidden), int(blob["block"]))


def _sep_id(tokenizer):
    sep = tokenizer.convert_tokens_to_ids("<|endoftext|>") if hasattr(tokenizer, "convert_tokens_to_ids") else None
    return sep if isinstance(sep, int) and sep >= 0 else None


def score(drafts: torch.Tensor, ho: HeldOut) -> dict:
    """drafts [S, A, g-1] -> acceptance against the target's greedy continuation and the text."""
    g = drafts.shape[-1] + 1
    out = {}
    for name, ref in (("greedy", ho.greedy[..., : g - 1]), ("text", ho.text(g))):
        hit = (drafts.to(ref.device) == ref)                                   # [S, A, g-1]
        acc = hit.float().mean((0, 1))
        accepted = torch.cumprod(hit.long(), -1).sum(-1).float().mean()
        out[name] = dict(acc=[round(float(x), 4) for x in acc], accepted=float(accepted),
                         first=float(acc[0]))
    out["tau0"] = 1.0 + out["greedy"]["accepted"]
    return out


# ---------------------------------------------------------------- n-gram tables
class NGram:
    """Greedy n-gram drafter (n = 2 or 3) of a token list: argmax next token given the previous
    n-1 tokens; a trigram context never seen backs off to the bigram, an unseen bigram context to
    the most frequent token. Ties: the smallest token id."""

    def __init__(self, ids, vocab: int, n: int = 2):
        if n not in (2, 3):
            raise InvalidInput("n", f"must be 2 or 3, got {n}")
        ids = np.asarray(ids, dtype=np.int64)
        self.n, self.vocab = n, int(vocab)
        self.unigram = int(np.bincount(ids, minlength=vocab).argmax())
        self.big_keys, self.big_next = self._table(ids[:-1], ids[1:])
        if n == 3:
            self.tri_keys, self.tri_next = self._table(ids[:-2] * vocab + ids[1:-1], ids[2:])

    def _table(self, ctx, nxt):
        """Sorted context keys and their most frequent next token."""
        code = ctx * self.vocab + nxt
        uniq, counts = np.unique(code, return_counts=True)
        c_ctx, c_nxt = uniq // self.vocab, uniq % self.vocab
        # per context: the max count, smallest id among ties (lexsort: last key primary)
        order = np.lexsort((c_nxt, -counts, c_ctx))
        c_ctx, c_nxt = c_ctx[order], c_nxt[order]
        first = np.ones(len(c_ctx), dtype=bool)
        first[1:] = c_ctx[1:] != c_ctx[:-1]
        return c_ctx[first], c_nxt[first]

    @staticmethod
    def _lookup(keys, vals, q):
        i = np.clip(np.searchsorted(keys, q), 0, len(keys) - 1)
        found = keys[i] == q
        return np.where(found, vals[i], -1)

    def next(self, prev2: np.ndarray, prev1: np.ndarray) -> np.ndarray:
        out = self._lookup(self.big_keys, self.big_next, prev1)
        out = np.where(out < 0, self.unigram, out)
        if self.n == 3:
            tri = self._lookup(self.tri_keys, self.tri_next, prev2 * self.vocab + prev1)
            out = np.where(tri >= 0, tri, out)
        return out

    def drafts(self, ho: HeldOut, g: int) -> torch.Tensor:
        w = ho.windows.cpu().numpy()
        out = np.zeros((w.shape[0], len(ho.anchors), g - 1), dtype=np.int64)
        for j, a in enumerate(ho.anchors):
            p2, p1 = w[:, a - 1], w[:, a]
            for k in range(g - 1):
                nxt = self.next(p2, p1)
                out[:, j, k] = nxt
                p2, p1 = p1, nxt
        return torch.as_tensor(out)


# ---------------------------------------------------------------- model proposers
def ar_drafts(draft, ho: HeldOut, g: int) -> torch.Tensor:
    """The AR draft's greedy chain of g-1 tokens after each anchor -> [S, A, g-1]."""
    from specoracle.fastpath.models.dflash.data import regenerate
    return torch.stack([regenerate(draft, ho.windows[:, : a + 1], g - 1, (0.0,),
                                   batch=len(ho.windows))[0][:, a + 1:] for a in ho.anchors], 1)


FEATURES = ("target", "zero", "shuffled")


@torch.no_grad()
def dflash_logits(target, drafter: DFlashDrafter, ho: HeldOut, g: int, features: str = "target"):
    """One block pass per anchor: rows [x_a, MASK x (g-1)] at positions a..a+g-1, context = the
    fused target features of positions < a (``features``: as is, zeroed, or those of the next
    window) -> logits [S, A, g, V] (block position k predicts x_{a+k})."""
    if features not in FEATURES:
        raise InvalidInput("features", f"must be one of {FEATURES}, got {features!r}")
    hidden = ho.hidden
    if features == "zero":
        hidden = tuple(torch.zeros_like(h) for h in hidden)
    elif features == "shuffled":
        hidden = tuple(torch.roll(h, 1, 0) for h in hidden)
    s, _ = ho.windows.shape
    dev = ho.windows.device
    ctx = drafter.fuse(hidden)                                            # [S, L, D]
    head = lm_head(target)
    out = []
    for a in ho.anchors:
        kv = drafter.context_kv(ctx[:, :a], torch.arange(a, device=dev)[None].expand(s, -1))
        rows = torch.zeros(s, g, dtype=torch.long, device=dev)
        rows[:, 0] = ho.windows[:, a]
        x = block_embeddings(target, drafter, rows, torch.ones(s, dtype=torch.long, device=dev))
        pos = torch.arange(a, a + g, device=dev)[None].expand(s, -1)
        h = drafter(x, pos, kv)
        out.append(head(h.to(head.weight.dtype)).float())
    return torch.stack(out, 1)


def dflash_drafts(target, drafter, ho: HeldOut, g: int, features: str = "target") -> torch.Tensor:
    return dflash_logits(target, drafter, ho, g, features)[:, :, 1:].argmax(-1)


# ---------------------------------------------------------------- probes
@torch.no_grad()
def probes(target, drafter: DFlashDrafter, ho: HeldOut) -> dict:
    """Scales of the frozen shared head and the drafter's norms, and the off-by-one probe."""
    emb = target.get_input_embeddings().weight
    final = getattr(getattr(target, "model", None), "norm", None)
    d = dflash_drafts(target, drafter, ho, ho.block)[..., 0]             # first drafts [S, A]
    shift = {}
    for s_ in (-1, 0, 1):
        ref = ho.text(ho.block, s_)[..., 0]
        shift[str(s_)] = float((d == ref).float().mean())
    return dict(
        layer_ids=list(drafter.cfg.layer_ids),
        tied_head=bool(lm_head(target).weight.data_ptr() == emb.data_ptr()),
        embedding_row_norm=float(emb.norm(dim=1).mean()),
        target_final_norm_weight=float(final.weight.mean()) if final is not None else None,
        drafter_final_norm_weight=float(drafter.norm.weight.mean()),
        drafter_context_norm_weight=float(drafter.hidden_norm.weight.mean()),
        mask_embedding_norm=float(drafter.mask_embedding.norm()),
        first_vs_text_shift=shift,
    )


def table(rows: dict) -> str:
    """Markdown table of {name: score(...)}."""
    lines = ["| proposer | tau T=0 (1 + accepted vs target greedy) | first-pos acc vs greedy | "
             "accepted vs text | first-pos acc vs text |", "|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['tau0']:.3f} | {r['greedy']['first']:.3f} | "
                     f"{r['text']['accepted']:.3f} | {r['text']['first']:.3f} |")
    return "\n".join(lines)


def train_ids(tokenizer, corpus=None) -> list:
    """Token ids of the TRAINING documents (the n-gram tables' data)."""
    from specoracle.fastpath.models.dflash.data import doc_tokens, split_documents
    from specoracle.fastpath.models.dflash.train import read_corpus
    train_docs, _ = split_documents(read_corpus(corpus))
    return doc_tokens(tokenizer, train_docs, _sep_id(tokenizer))


def baselines(target, tokenizer, ho: HeldOut, g: int, draft=None, corpus=None) -> dict:
    """Scores of the n-gram tables and (given ``draft``) the AR draft at block g."""
    ids = train_ids(tokenizer, corpus)
    vocab = int(target.config.vocab_size)
    rows = {"bigram (train docs)": score(NGram(ids, vocab, 2).drafts(ho, g), ho),
            "trigram (train docs)": score(NGram(ids, vocab, 3).drafts(ho, g), ho)}
    if draft is not None:
        rows["AR draft (greedy chain)"] = score(ar_drafts(draft, ho, g), ho)
    return rows


def drafter_rows(target, drafter, ho: HeldOut, g: int, name: str = "DFlash") -> dict:
    return {f"{name}{'' if f == 'target' else f' (features {f})'}":
            score(dflash_drafts(target, drafter, ho, g, f), ho) for f in FEATURES}


# ---------------------------------------------------------------- short-run variants
# Base of the short diagnosis runs: the shipped recipe (dflash_train.SHIPPED_RECIPES) on corpus
# windows of the training documents (no regeneration cost; every variant sees the same windows
# and anchors: same seed), evaluated on the held-out blocks.
DIAG_BASE = dict(block_size=16, num_layers=1, n_features=2, intermediate_size=1024, seq_len=128,
                 windows_per_step=4, anchors=8, lr=1e-3, data="corpus", seed=0, max_seconds=None)
VARIANTS = {
    "shipped recipe": {},
    "decay 2": dict(gamma_decay=2.0),
    "lr 3e-3": dict(lr=3e-3),
    "norm from target": dict(norm_init="target"),
    "layers (1,3,5)": dict(layer_ids=(1, 3, 5)),
    "anchors 24": dict(anchors=24),
    "decay 2 + anchors 24": dict(gamma_decay=2.0, anchors=24),
}


def curve(target, tokenizer, ho: HeldOut, steps: int, every: int, overrides: dict,
          feature_cache=None, blocks=(16, 8), corpus=None, log=None, out=None,
          checkpoint_every: int = 0, resume: bool = False) -> dict:
    """Train one short variant (DIAG_BASE + overrides) and record, every ``every`` steps, the
    mean training loss since the last point and the held-out tau at T = 0 (1 + accepted drafts
    vs the target's greedy continuation) at each block of ``blocks``. Training tokens = steps x
    windows x anchors x block (block positions trained); a continued run (``init_from`` in the
    overrides) counts from 0. ``out``: where train_dflash saves the drafter (and checkpoints)."""
    from specoracle.fastpath.models.dflash.train import train_dflash
    cfg = dict(DIAG_BASE, **overrides, steps=steps)
    per_step = cfg["windows_per_step"] * cfg["anchors"] * cfg["block_size"]
    points = []

    def cb(step, drafter, losses):
        recent = losses[-every:] if losses else []
        pt = dict(step=step, tokens=step * per_step,
                  train_loss=float(np.mean(recent)) if recent else None)
        for g in blocks:
            s = score(dflash_drafts(target, drafter, ho, g), ho)
            pt[f"tau0_b{g}"] = s["tau0"]
            pt[f"first_b{g}"] = s["greedy"]["first"]
        pt["first_zero_features"] = score(dflash_drafts(target, drafter, ho, blocks[0], "zero"),
                                          ho)["greedy"]["first"]
        points.append(pt)
        if log:
            log(f"  step {step} {pt}")

    _, metrics = train_dflash(target, tokenizer, corpus=corpus, callback=cb, callback_every=every,
                              feature_cache=feature_cache, out=out, resume=resume,
                              checkpoint_every=checkpoint_every, **cfg)
    return dict(overrides={k: (list(v) if isinstance(v, tuple) else v) for k, v in overrides.items()},
                steps=steps, seconds=metrics["seconds"], points=points,
                eval_loss=metrics["eval_loss"], layer_ids=metrics["layer_ids"])


def tokens_offset(overrides: dict) -> int:
    """Block tokens the ``init_from`` drafter of a continued run was trained on (from its
    metrics.json: steps x windows x anchors x block), 0 for a run from scratch."""
    import json
    from pathlib import Path
    src = overrides.get("init_from")
    if not src or not (Path(src) / "metrics.json").is_file():
        return 0
    m = json.loads((Path(src) / "metrics.json").read_text())
    c = m["config"]
    return int(m["steps"]) * c["windows_per_step"] * c["anchors"] * c["block_size"]


def plot(curves: dict, path, baselines: dict | None = None, block: int = 16,
         fit: dict | None = None) -> None:
    """One figure: training loss (left) and held-out tau at T = 0 at ``block`` (right) against
    training block tokens (log scale; a continued run starts at its initial drafter's tokens),
    one line per variant; baselines as horizontal lines; ``fit`` (an :func:`extrapolate` result)
    adds its power law, dashed, up to the tokens it predicts."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, c in curves.items():
        off = tokens_offset(c.get("overrides", {}))
        pts = [p for p in c["points"] if p["tokens"] + off > 0]
        lp = [p for p in pts if p["train_loss"] is not None]
        ax1.plot([p["tokens"] + off for p in lp], [p["train_loss"] for p in lp], marker=".", label=name)
        ax2.plot([p["tokens"] + off for p in pts], [p[f"tau0_b{block}"] for p in pts],
                 marker=".", label=name)
    if fit and fit.get("power_tokens"):
        t = np.geomspace(1e4, fit["power_tokens"] * 1.5, 50)
        ax2.plot(t, 1 + fit["power_c"] * t ** fit["power_alpha"], ls=":", color="black",
                 label=f"power-law fit (alpha {fit['power_alpha']:.2f})")
    for name, v in (baselines or {}).items():
        ax2.axhline(v, ls="--", lw=0.8, color="gray")
        ax2.text(0.01, v, name, fontsize=7, va="bottom", color="gray",
                 transform=ax2.get_yaxis_transform())
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xlabel("training block tokens (steps x windows x anchors x block)")
        ax.legend(fontsize=7)
    ax1.set_ylabel("weighted CE (train, nats)")
    ax2.set_ylabel(f"held-out tau, T=0, block {block}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def extrapolate(tokens, tau, goal: float) -> dict:
    """Least-squares fits of held-out tau against training tokens and the tokens at which each
    reaches ``goal``: a power law in the accepted drafts, log(tau - 1) = log c + alpha log(t),
    and a log-linear law, tau = a + b log(t) (None where the fitted curve never gets there).
    Two models because a handful of noisy points cannot choose between them."""
    t = np.asarray(tokens, dtype=float)
    y = np.asarray(tau, dtype=float)
    keep = (t > 0) & (y > 1)
    if keep.sum() < 2:
        raise InvalidInput("tokens", "need at least two points with tokens > 0 and tau > 1")
    lt = np.log(t[keep])
    alpha, logc = np.polyfit(lt, np.log(y[keep] - 1), 1)
    b, a = np.polyfit(lt, y[keep], 1)
    power = float(np.exp((np.log(goal - 1) - logc) / alpha)) if alpha > 0 else None
    loglin = float(np.exp((goal - a) / b)) if b > 0 else None
    return dict(power_alpha=float(alpha), power_c=float(np.exp(logc)), power_tokens=power, loglinear_slope=float(b),
                loglinear_tokens=loglin, goal=goal, points=int(keep.sum()))
