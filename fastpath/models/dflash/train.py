"""Training recipe of the DFlash drafter and of D2SD's VP drafter (ALGORITHMS.md §5.4, §6.2).

Data (``data=``; fastpath/models/dflash/data.py): the corpus (the zoo's, or any text file, ``.xz``
read transparently) is split by DOCUMENT into train / held-out (the bench prompts' documents are
held out). ``"corpus"``: non-overlapping ``seq_len`` windows of the training documents.
``"regenerated"`` (the paper): ``regen_windows`` random ``prompt_len``-token prompts of the
training documents continued by the target (half greedy, half T = 1; cached on disk in
``<out>/regenerated.pt``); anchors then lie in the continuation (``a >= prompt_len - 1``).
Held-out evaluation always uses corpus windows of the held-out documents. The frozen target
runs one clean forward per window (features, ``output_hidden_states=True``); with
``cache_features`` the selected layers' states are kept in memory (bf16) after a window's first
use, so later epochs skip the target.

Objective, per window: ``anchors`` random anchor positions a (without replacement, 1 <= a <=
L - G). Block j is ``[x_a, MASK x (G-1)]`` at positions a..a+G-1; all blocks of a window are
trained jointly with a block-sparse mask (block j attends bidirectionally to itself and to the
injected context features at positions < a, never to another block; the paper does this with
FlexAttention, here it is a bool mask for ``scaled_dot_product_attention``).

* ``objective="dflash"``: positions k = 1..G-1 are masked, loss = sum_k w_k CE_k / sum_k w_k with
  w_k = exp(-(k-1)/gamma_decay) (§5.4; k = 1 the first masked position, normalised: §9).
* ``objective="vp"`` (D2SD Eq. (6)-(7)): a prefix length l ~ Pr(l = j) ∝ beta^j on 0..G-2 is drawn
  per block; positions 1..l keep their ground-truth tokens, l+1..G-1 are masked; the loss is
  sum_{k>l} w_k CE_k / sum_{k>l} w_k with w_k = exp(-(k-l-1)/tau). ``prefix_beta`` and
  ``prefix_tau`` are REQUIRED (the paper gives no values, §9).

Blocks are averaged with equal weight. AdamW, cosine schedule with 4% warm-up, grad-clip 1.0
(§5.4). Only the drafter trains; the embedding and LM head are the target's, used detached.
Randomness: one ``numpy.random.Generator(seed)`` draws windows, anchors and prefix lengths;
torch's initialisation uses ``torch.Generator`` seeded with ``seed`` via ``torch.random.fork_rng``.
"""
from __future__ import annotations

import lzma
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from specoracle.reference.types import InvalidInput

from specoracle.fastpath.models.dflash.model import DFlashConfig, DFlashDrafter, lm_head

EVAL_WINDOWS = 256  # held-out windows evaluated at the end of training (the first ones, fixed)
DEFAULT_CORPUS = Path("/work/shared/zoo/corpus/heldout.txt.xz")


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (CPU small defaults; GPU_RECIPE scales them)."""

    objective: str = "dflash"
    block_size: int = 8
    num_layers: int = 1
    n_features: int = 2
    intermediate_size: int = 1024
    seq_len: int = 128
    windows_per_step: int = 4
    anchors: int = 12
    steps: int = 300
    lr: float = 6e-4
    weight_decay: float = 0.0
    warmup: float = 0.04
    grad_clip: float = 1.0
    gamma_decay: float | None = None    # dflash; default 4 (block 8), 5 (block 10), 7 (block 16)
    prefix_beta: float | None = None    # vp: required
    prefix_tau: float | None = None     # vp: required
    max_chars: int | None = None        # use only the first characters of the training documents
    max_seconds: float | None = None    # stop early after this wall-clock time
    seed: int = 0
    data: str = "corpus"                 # "corpus" or "regenerated"
    prompt_len: int = 32                 # regenerated: corpus prompt tokens per window
    regen_windows: int = 2560            # regenerated: number of target continuations
    regen_temperatures: tuple = (0.0, 1.0)
    regen_batch: int = 128
    cache_features: bool = True
    layer_ids: tuple | None = None      # target layers of the features; None: the paper's formula
    norm_init: str = "ones"             # drafter's final RMSNorm weight: "ones" or "target" (copy)
    init_from: str | None = None        # continue from a saved drafter folder (same architecture)
    extra: dict = field(default_factory=dict)

    def decay(self) -> float:
        if self.gamma_decay is not None:
            return float(self.gamma_decay)
        return {16: 7.0, 10: 5.0, 8: 4.0}.get(self.block_size, max(1.0, (self.block_size - 1) / 2))

    def anchor_min(self) -> int:
        return max(1, self.prompt_len - 1) if self.data == "regenerated" else 1

    def validate(self):
        if self.norm_init not in ("ones", "target"):
            raise InvalidInput("norm_init", f"must be 'ones' or 'target', got {self.norm_init!r}")
        if self.data not in ("corpus", "regenerated"):
            raise InvalidInput("data", f"must be 'corpus' or 'regenerated', got {self.data!r}")
        if self.objective not in ("dflash", "vp"):
            raise InvalidInput("objective", f"must be 'dflash' or 'vp', got {self.objective!r}")
        if self.objective == "vp":
            if self.prefix_beta is None or not 0 < self.prefix_beta < 1:
                raise InvalidInput("prefix_beta", "the VP objective needs beta in (0, 1) "
                                   f"(D2SD Eq. (6); no default), got {self.prefix_beta}")
            if self.prefix_tau is None or not self.prefix_tau > 0:
                raise InvalidInput("prefix_tau", "the VP objective needs tau > 0 (D2SD Eq. (7); "
                                   f"no default), got {self.prefix_tau}")
        if self.seq_len < self.block_size + 2:
            raise InvalidInput("seq_len", f"must exceed block_size + 1, got {self.seq_len}")
        room = self.seq_len - self.block_size + 1 - self.anchor_min()
        if self.anchors > room:
            raise InvalidInput("anchors", f"at most {room} anchor positions per window "
                               f"(seq_len, block_size, data={self.data!r}), got {self.anchors}")
        return self


# The GPU recipe: the same code with bigger numbers (untested at scale in this project so far).
GPU_RECIPE = dict(block_size=16, num_layers=5, n_features=5, intermediate_size=1376, seq_len=512,
                  windows_per_step=32, anchors=64, steps=20000, lr=6e-4, data="regenerated",
                  prompt_len=64, regen_windows=32768, regen_batch=256, cache_features=False)
# The CPU configuration of the brief: < 10 minutes on 2 cores.
CPU_RECIPE = dict(block_size=8, num_layers=1, n_features=2, intermediate_size=1024, seq_len=128,
                  windows_per_step=4, anchors=12, steps=400, max_seconds=540.0)


# The shipped drafters (fastpath/models/zoo/weights/dflash/cpu-*): 1 layer, block 16 (served at 8 and
# 16), target-regenerated data; `specoracle zoo train-dflash --recipe shipped-dflash|shipped-vp
# --threads 1` reproduces them (fixed steps; the cap only guards a slow machine).
_SHIPPED_BASE = dict(block_size=16, num_layers=1, n_features=2, intermediate_size=1024, seq_len=128,
                     windows_per_step=4, anchors=8, lr=1e-3, data="regenerated", prompt_len=32,
                     regen_windows=2560, steps=1000, max_seconds=2700.0, seed=0)
SHIPPED_RECIPES = {
    "shipped-dflash": dict(_SHIPPED_BASE, objective="dflash"),
    "shipped-vp": dict(_SHIPPED_BASE, objective="vp", prefix_beta=0.7, prefix_tau=4.0),
    # the shipped cpu-dflash is "shipped-dflash" continued by this recipe (init_from =
    # the first stage's output folder; corpus windows, 300-step cosine from lr 5e-4)
    "shipped-dflash-continue": dict(_SHIPPED_BASE, objective="dflash", data="corpus", lr=5e-4,
                                    steps=300, max_seconds=2900.0),
}


def read_corpus(path=None, max_chars=None) -> str:
    path = Path(path or DEFAULT_CORPUS)
    if not path.is_file():
        raise InvalidInput("corpus", f"{path} is not a file")
    opener = lzma.open if path.suffix == ".xz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        return fh.read(max_chars) if max_chars else fh.read()


def corpus_windows(tokenizer, text: str, seq_len: int) -> torch.Tensor:
    """Token windows [N, seq_len] (non-overlapping) of the tokenised text."""
    from specoracle.fastpath.models.dflash.data import corpus_windows as windows
    return windows(tokenizer(text).input_ids, seq_len)


def truncated_geometric(rng: np.random.Generator, beta: float, n: int, size) -> np.ndarray:
    """Pr(l = j) ∝ beta^j, j = 0..n-1 (D2SD Eq. (6)); inverse CDF with one uniform each."""
    w = beta ** np.arange(n)
    cdf = np.cumsum(w / w.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), n - 1)


def block_batch(windows, rng, cfg: TrainConfig):
    """Anchors [S, A] and visible lengths [S, A] (1 = anchor only; 1 + l for VP)."""
    s, length = windows.shape
    g = cfg.block_size
    anchors = np.stack([np.sort(rng.choice(np.arange(cfg.anchor_min(), length - g + 1), cfg.anchors,
                                           replace=False))
                        for _ in range(s)])
    if cfg.objective == "vp":
        visible = 1 + truncated_geometric(rng, cfg.prefix_beta, g - 1, (s, cfg.anchors))
    else:
        visible = np.ones((s, cfg.anchors), dtype=np.int64)
    return torch.as_tensor(anchors), torch.as_tensor(visible)


def block_sparse_mask(anchors: torch.Tensor, g: int, length: int) -> torch.Tensor:
    """Bool mask [S, 1, A*G, L + A*G]: block j sees context positions < a_j and its own block."""
    s, a = anchors.shape
    dev = anchors.device
    q_anchor = anchors.repeat_interleave(g, dim=1)                       # [S, A*G]
    ctx = torch.arange(length, device=dev)[None, None, :] < q_anchor[:, :, None]  # [S, A*G, L]
    blk = torch.arange(a, device=dev).repeat_interleave(g)
    own = (blk[:, None] == blk[None, :])[None].expand(s, -1, -1)         # [S, A*G, A*G]
    return torch.cat([ctx, own], dim=2)[:, None]


def block_loss(target, drafter: DFlashDrafter, windows, anchors, visible, cfg: TrainConfig,
               hidden=None):
    """Weighted masked CE of one batch of windows [S, L] (module docstring). Returns (loss,
    mean accepted-prefix length of the argmax drafts against the text, per block)."""
    s, length = windows.shape
    g = cfg.block_size
    dev = windows.device
    anchors, visible = anchors.to(dev), visible.to(dev)
    if hidden is None:
        with torch.no_grad():
            hidden = target(input_ids=windows, output_hidden_states=True).hidden_states
    ctx = drafter.fuse(hidden)                                           # [S, L, D]
    kv = drafter.context_kv(ctx, torch.arange(length, device=dev)[None].expand(s, -1))
    offs = torch.arange(g, device=dev)
    qpos = (anchors[:, :, None] + offs).reshape(s, -1)                   # [S, A*G]
    tokens = torch.gather(windows, 1, qpos)                              # [S, A*G]
    vis = visible.repeat_interleave(g, dim=1).reshape(s, -1)             # [S, A*G]
    pos_in_block = offs.repeat(anchors.shape[1])[None].expand(s, -1)     # [S, A*G]
    with torch.no_grad():
        emb = target.get_input_embeddings()(tokens).to(drafter.mask_embedding.dtype)  # [S, A*G, D]
    x = torch.where((pos_in_block < vis)[..., None], emb, drafter.mask_embedding)
    h = drafter(x, qpos, kv, block_sparse_mask(anchors, g, length))      # [S, A*G, D]
    masked = pos_in_block >= vis
    # w_k = exp(-(k - visible) / decay) on masked positions (k = visible is the first masked one)
    w = torch.where(masked, torch.exp(-(pos_in_block - vis).clamp(min=0).float() / _decay(cfg)), 0.0)
    head = lm_head(target).weight.detach()
    logits = F.linear(h[masked], head)                                   # [M, V]
    ce = F.cross_entropy(logits.float(), tokens[masked], reduction="none")
    wm = w[masked]
    nb = s * anchors.shape[1]
    block_id = torch.arange(nb, device=dev).repeat_interleave(g).view(s, -1)[masked]
    num = torch.zeros(nb, device=dev).index_add(0, block_id, wm * ce)
    den = torch.zeros(nb, device=dev).index_add(0, block_id, wm)
    loss = (num / den).mean()
    with torch.no_grad():
        hit_flat = torch.zeros(s * anchors.shape[1] * g, dtype=torch.bool, device=dev)
        hit_flat[masked.reshape(-1)] = logits.argmax(-1) == tokens[masked]
        hit = hit_flat.view(nb, g) | ~masked.reshape(nb, g)
        accepted = torch.cumprod(hit.long(), dim=1).sum(1) - visible.reshape(-1)
    return loss, float(accepted.float().mean())


def _decay(cfg: TrainConfig) -> float:
    return float(cfg.prefix_tau) if cfg.objective == "vp" else cfg.decay()


def _lr(step: int, total: int, cfg: TrainConfig) -> float:
    warm = max(1, int(round(cfg.warmup * total)))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    frac = (step - warm) / max(1, total - warm)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))


def train_dflash(target, tokenizer, cfg: TrainConfig | None = None, *, corpus=None, out=None,
                 progress: bool = False, log=None, checkpoint_every: int = 500, callback=None,
                 callback_every: int = 0, feature_cache=None, resume: bool = False, **overrides):
    """Train a DFlash (``objective="dflash"``) or VP (``objective="vp"``) drafter for ``target``.

    Returns ``(drafter, metrics)``; metrics holds the loss curve, the held-out loss and the
    held-out mean accepted prefix of argmax drafts against the text (teacher-forced), the
    wall-clock time and the config. With ``out``, saves the drafter and ``metrics.json`` there.
    ``callback(step, drafter, losses)`` runs before step 0, every ``callback_every`` steps and
    after the last one (in eval mode, under no_grad; e.g. the held-out curves of
    dflash_diagnose). ``feature_cache``: a :class:`FeatureCache` over the same training windows
    shared between runs (its layers must include the drafter's). Every ``checkpoint_every``
    steps ``<out>/checkpoint`` receives the drafter and ``state.pt`` (optimizer, step, losses,
    the data generator's state, the config); ``resume=True`` continues from it (same config,
    same data: the run then equals an uninterrupted one up to the feature cache, which is
    rebuilt).
    """
    cfg = TrainConfig(**{**(cfg.__dict__ if cfg else {}), **overrides}).validate()
    cfg.regen_temperatures = tuple(float(t) for t in cfg.regen_temperatures)
    rng = np.random.default_rng(cfg.seed)
    train_w, eval_w, data_info = training_windows(target, tokenizer, cfg, corpus, out, progress, log)
    dcfg = DFlashConfig.for_target(target.config, num_layers=cfg.num_layers, n_features=cfg.n_features,
                                   block_size=cfg.block_size, intermediate_size=cfg.intermediate_size,
                                   objective=cfg.objective, layer_ids=cfg.layer_ids)
    drafter = init_drafter(target, dcfg, cfg)
    dev = next(target.parameters()).device
    drafter.to(dev).train()
    opt = torch.optim.AdamW(drafter.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    losses, accs = [], []
    feats = feature_cache
    if feats is not None and not set(dcfg.layer_ids) <= set(feats.layer_ids):
        raise InvalidInput("feature_cache", f"holds layers {feats.layer_ids}, the drafter needs "
                           f"{dcfg.layer_ids}")
    if feats is None and cfg.cache_features:
        feats = FeatureCache(target, dcfg.layer_ids, len(train_w))

    def call(step):
        if callback is not None:
            drafter.eval()
            with torch.no_grad():
                callback(step, drafter, losses)
            drafter.train()
    start = 0
    ckpt = Path(out) / "checkpoint" if out is not None else None
    if resume:
        start = _resume(ckpt, cfg, drafter, opt, rng, losses, accs)
        if log is not None:
            log(f"resumed at step {start} from {ckpt}")
    if start == 0:
        call(0)
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, desc=f"train-{cfg.objective}", unit="step")
    if bar is not None:
        bar.update(start)
    for step in range(start, cfg.steps):
        if cfg.max_seconds is not None and time.perf_counter() - t0 > cfg.max_seconds:
            break
        for group in opt.param_groups:
            group["lr"] = _lr(step, cfg.steps, cfg)
        idx = torch.as_tensor(rng.choice(len(train_w), min(cfg.windows_per_step, len(train_w)),
                                         replace=False))
        batch = train_w[idx].to(dev)
        anchors, visible = block_batch(batch, rng, cfg)
        hidden = feats.get(idx, batch) if feats is not None else None
        loss, acc = block_loss(target, drafter, batch, anchors, visible, cfg, hidden=hidden)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(drafter.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(float(loss.detach()))
        accs.append(acc)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if log is not None and (step % 50 == 0 or step == cfg.steps - 1):
            log(f"step {step} loss {np.mean(losses[-50:]):.4f} prefix {np.mean(accs[-50:]):.3f} "
                f"{time.perf_counter() - t0:.0f}s")
        if out is not None and checkpoint_every and (step + 1) % checkpoint_every == 0:
            drafter.save(ckpt)
            torch.save(dict(step=step + 1, opt=opt.state_dict(), losses=losses, accs=accs,
                            rng=rng.bit_generator.state, config=_config_dict(cfg)),
                       ckpt / "state.pt")
        if callback_every and (step + 1) % callback_every == 0 and step + 1 < cfg.steps:
            call(step + 1)
    if losses and not (callback_every and len(losses) % callback_every == 0 and len(losses) < cfg.steps):
        call(len(losses))
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    drafter.eval()
    eval_loss, eval_acc = evaluate(target, drafter, eval_w, cfg)
    metrics = dict(objective=cfg.objective, steps=len(losses), seconds=seconds, data=data_info,
                   train_windows=len(train_w), eval_windows=len(eval_w),
                   train_loss_first=losses[0] if losses else None,
                   train_loss_last=float(np.mean(losses[-10:])) if losses else None,
                   eval_loss=eval_loss, eval_accepted_prefix=eval_acc,
                   losses=losses, config=_config_dict(cfg),
                   layer_ids=list(dcfg.layer_ids))
    if out is not None:
        import json
        drafter.save(out)
        (Path(out) / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return drafter, metrics


def _config_dict(cfg: TrainConfig) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()
            if k != "extra"}


def _resume(ckpt, cfg, drafter, opt, rng, losses, accs) -> int:
    """Load ``ckpt`` (drafter, optimizer, losses, generator state) -> the next step."""
    if ckpt is None or not (ckpt / "state.pt").is_file():
        raise InvalidInput("resume", f"no checkpoint state at {ckpt} (train with out= first)")
    state = torch.load(ckpt / "state.pt", weights_only=False)
    mine = {k: v for k, v in _config_dict(cfg).items() if k not in ("max_seconds", "init_from")}
    theirs = {k: v for k, v in state["config"].items() if k not in ("max_seconds", "init_from")}
    if mine != theirs:
        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        raise InvalidInput("resume", f"the checkpoint was trained with another config ({diff})")
    drafter.load_state_dict(DFlashDrafter.load(ckpt).state_dict())
    opt.load_state_dict(state["opt"])
    rng.bit_generator.state = state["rng"]
    losses.extend(state["losses"])
    accs.extend(state["accs"])
    return int(state["step"])


def init_drafter(target, dcfg: DFlashConfig, cfg: TrainConfig) -> DFlashDrafter:
    """A fresh drafter (torch seeded with ``cfg.seed``), or ``cfg.init_from``'s weights (the
    architecture must match); ``norm_init="target"`` copies the target's final-norm weight into
    the drafter's final RMSNorm, so the shared frozen head starts at the target's logit scale
    (the zoo target's weight averages 1.93; a fresh RMSNorm has 1)."""
    from dataclasses import asdict
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        drafter = DFlashDrafter(dcfg)
    if cfg.init_from is not None:
        old = DFlashDrafter.load(cfg.init_from)
        mine, theirs = asdict(dcfg), asdict(old.cfg)
        diff = [k for k in mine if k not in ("objective", "extra") and mine[k] != theirs[k]
                and not (k == "layer_ids" and tuple(mine[k]) == tuple(theirs[k]))]
        if diff:
            raise InvalidInput("init_from", f"{cfg.init_from} has another architecture ({diff})")
        drafter.load_state_dict(old.state_dict())
    if cfg.norm_init == "target":
        final = getattr(getattr(target, "model", None), "norm", None)
        if final is None or tuple(final.weight.shape) != tuple(drafter.norm.weight.shape):
            raise InvalidInput("norm_init", "the target has no final norm of the drafter's width")
        with torch.no_grad():
            drafter.norm.weight.copy_(final.weight.float())
    return drafter


def training_windows(target, tokenizer, cfg: TrainConfig, corpus=None, out=None, progress=False,
                     log=None):
    """(train windows [N, L], held-out corpus windows [M, L], info) for ``cfg.data``."""
    from specoracle.fastpath.models.dflash.data import corpus_windows as windows
    from specoracle.fastpath.models.dflash.data import doc_tokens, regenerated_windows, split_documents

    train_docs, eval_docs = split_documents(read_corpus(corpus))
    train_docs = _first_chars(train_docs, cfg.max_chars)       # max_chars: of the TRAINING docs
    eval_docs = _first_chars(eval_docs, 8 * EVAL_WINDOWS * cfg.seq_len)
    sep = tokenizer.convert_tokens_to_ids("<|endoftext|>") if hasattr(tokenizer, "convert_tokens_to_ids") else None
    sep = sep if isinstance(sep, int) and sep >= 0 else None
    train_ids = doc_tokens(tokenizer, train_docs, sep)
    eval_w = windows(doc_tokens(tokenizer, eval_docs, sep), cfg.seq_len)[:EVAL_WINDOWS]
    if cfg.data == "corpus":
        return windows(train_ids, cfg.seq_len), eval_w, dict(kind="corpus", train_tokens=len(train_ids))
    path = Path(out) / "regenerated.pt" if out is not None else None
    toks, info = regenerated_windows(target, tokenizer, train_ids, n=cfg.regen_windows,
                                     seq_len=cfg.seq_len, prompt_len=cfg.prompt_len,
                                     temperatures=cfg.regen_temperatures, seed=cfg.seed,
                                     batch=cfg.regen_batch, path=path, progress=progress, log=log)
    return toks, eval_w, dict(kind="regenerated", **info)


def _first_chars(docs, n):
    """The documents cut to their first n characters in total (None: all)."""
    if n is None:
        return docs
    out, left = [], int(n)
    for d in docs:
        if left <= 0:
            break
        out.append(d[:left])
        left -= len(out[-1])
    return out


class FeatureCache:
    """The target's hidden states of the drafter's feature layers, per training window, kept in
    memory (bf16) after the first use: {layer + 1: [S, L, D]} as :meth:`DFlashDrafter.fuse` reads
    them. A window's features depend only on its tokens (the target is frozen), so re-use is exact
    up to the bf16 rounding of the stored features."""

    def __init__(self, target, layer_ids, n_windows: int):
        self.target, self.layer_ids = target, tuple(layer_ids)
        self.store = {}

    @torch.no_grad()
    def get(self, idx: torch.Tensor, batch: torch.Tensor) -> dict:
        missing = [j for j, i in enumerate(idx.tolist()) if i not in self.store]
        if missing:
            hs = self.target(input_ids=batch[missing], output_hidden_states=True).hidden_states
            for r, j in enumerate(missing):
                self.store[int(idx[j])] = torch.stack([hs[l + 1][r] for l in self.layer_ids]).to(torch.bfloat16)
        stacked = torch.stack([self.store[int(i)] for i in idx.tolist()])  # [S, n, L, D]
        return {l + 1: stacked[:, j].float() for j, l in enumerate(self.layer_ids)}


@torch.no_grad()
def evaluate(target, drafter, windows, cfg: TrainConfig, seed: int = 1234):
    """Held-out weighted loss and mean accepted prefix (fixed anchors from ``seed``)."""
    rng = np.random.default_rng(seed)
    losses, accs = [], []
    for i in range(0, len(windows), cfg.windows_per_step):
        batch = windows[i: i + cfg.windows_per_step].to(next(target.parameters()).device)
        anchors, visible = block_batch(batch, rng, cfg)
        loss, acc = block_loss(target, drafter, batch, anchors, visible, cfg)
        losses.append(float(loss.detach()))
        accs.append(acc)
    return float(np.mean(losses)), float(np.mean(accs))
