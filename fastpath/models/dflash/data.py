"""Training data of the DFlash / VP drafters (ALGORITHMS.md §5.4; DFlash, arXiv 2602.06036, §4:
the drafter is trained on the TARGET's own responses).

* :func:`split_documents` - the zoo corpus is split by DOCUMENT (``<|endoftext|>``): the first
  ``n_bench`` documents longer than 2000 characters (exactly the prompts of ``specoracle bench
  --suite llm`` / ``dflash``) and every ``every``-th other document are held out; the drafter never
  trains on a document it is benchmarked or evaluated on.
* :func:`corpus_windows` - non-overlapping token windows [N, L] of a list of documents.
* :func:`regenerate` - target-regenerated data: prompts [N, P] (random ``P``-token windows of the
  training documents) continued by the target for ``L - P`` tokens, batched with a KV cache.
  Each batch uses one temperature of ``temperatures`` in turn (default (0, 1): half greedy
  continuations, which are what T = 0 verification accepts, half exact T = 1 samples of p, which
  are what the drafter must imitate at T = 1). Randomness: ``torch.Generator`` seeded with
  ``seed`` (multinomial draws); none at T = 0.
* :func:`regenerated_windows` - the same, cached on disk (``torch.save`` of the tokens and the
  recipe); a cache whose recipe differs is regenerated, never silently re-used.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from specoracle.reference.types import InvalidInput

SEP = "<|endoftext|>"


def split_documents(text: str, n_bench: int = 8, every: int = 10, min_bench_chars: int = 2000):
    """(train_docs, eval_docs): bench documents and every ``every``-th other one are held out.
    A text without separators is one document: its last 5 % (at least one line) is held out."""
    docs = [d for d in text.split(SEP) if d.strip()]
    if len(docs) < 2:
        cut = int(len(text) * 0.95)
        return [text[:cut]], [text[cut:]]
    bench = {i for i in [j for j, d in enumerate(docs) if len(d) > min_bench_chars][:n_bench]}
    held = {i for i in range(len(docs)) if i in bench or (i % every == every - 1)}
    train = [d for i, d in enumerate(docs) if i not in held]
    evl = [d for i, d in enumerate(docs) if i in held]
    if not train:
        raise InvalidInput("corpus", "no training documents left after the held-out split")
    return train, evl


def doc_tokens(tokenizer, docs, sep_id=None) -> list:
    """Token ids of the documents joined by the separator id (when given)."""
    ids = []
    for d in docs:
        ids += tokenizer(d).input_ids
        if sep_id is not None:
            ids.append(int(sep_id))
    return ids


def corpus_windows(ids, seq_len: int) -> torch.Tensor:
    """Non-overlapping windows [N, seq_len] of a token list."""
    n = len(ids) // seq_len
    if n < 1:
        raise InvalidInput("corpus", f"too short: {len(ids)} tokens for windows of {seq_len}")
    return torch.tensor(ids[: n * seq_len], dtype=torch.long).view(n, seq_len)


def random_prompts(ids, n: int, prompt_len: int, rng: np.random.Generator) -> torch.Tensor:
    """n prompts [n, P] at uniform random offsets of the token list (one ``rng.integers`` call)."""
    if len(ids) <= prompt_len:
        raise InvalidInput("corpus", f"too short for prompts of {prompt_len} tokens")
    starts = rng.integers(0, len(ids) - prompt_len, size=n)
    arr = np.asarray(ids, dtype=np.int64)
    return torch.as_tensor(np.stack([arr[s: s + prompt_len] for s in starts]))


def _pick(logits: torch.Tensor, temperature: float, gen: torch.Generator) -> torch.Tensor:
    """logits [B, V] -> next ids [B]: argmax at T = 0, else a multinomial draw of softmax(l / T)."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.double() / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=gen)[:, 0]


@torch.no_grad()
def regenerate(target, prompts: torch.Tensor, new_tokens: int, temperatures=(0.0, 1.0),
               seed: int = 0, batch: int = 64, progress: bool = False) -> tuple:
    """Continue each prompt [N, P] by ``new_tokens`` target tokens (KV cache, batches of
    ``batch`` rows, batch b at temperature ``temperatures[b % len]``).
    Returns (tokens [N, P + new_tokens], temperature per row [N])."""
    from specoracle.fastpath.models.llm.kv import forward_cached, new_cache

    if new_tokens < 1:
        raise InvalidInput("new_tokens", f"must be >= 1, got {new_tokens}")
    dev = next(target.parameters()).device
    gen = torch.Generator().manual_seed(int(seed))
    outs, temps = [], []
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(prompts), desc="regenerate", unit="seq")
    for b, i in enumerate(range(0, len(prompts), batch)):
        temp = float(temperatures[b % len(temperatures)])
        x = prompts[i: i + batch].to(dev)
        cache = new_cache(target)
        logits = forward_cached(target, cache, input_ids=x).logits[:, -1].float()
        rows = [x]
        for s in range(new_tokens):
            nxt = _pick(logits.cpu(), temp, gen).to(dev)
            rows.append(nxt[:, None])
            if s + 1 < new_tokens:
                logits = forward_cached(target, cache, input_ids=nxt[:, None]).logits[:, -1].float()
        outs.append(torch.cat(rows, 1).cpu())
        temps += [temp] * len(x)
        if bar is not None:
            bar.update(len(x))
    if bar is not None:
        bar.close()
    return torch.cat(outs, 0), torch.tensor(temps)


def regenerated_windows(target, tokenizer, train_ids, *, n: int, seq_len: int, prompt_len: int,
                        temperatures=(0.0, 1.0), seed: int = 0, batch: int = 64, path=None,
                        progress: bool = False, log=None) -> tuple:
    """Target-regenerated windows [n, seq_len] (prompt of ``prompt_len`` corpus tokens + the
    target's continuation), loaded from ``path`` when it holds the same recipe, else generated
    (and saved there). Returns (windows, info dict)."""
    if not 1 <= prompt_len < seq_len:
        raise InvalidInput("prompt_len", f"must be in [1, seq_len), got {prompt_len}")
    recipe = dict(n=int(n), seq_len=int(seq_len), prompt_len=int(prompt_len),
                  temperatures=[float(t) for t in temperatures], seed=int(seed),
                  n_train_tokens=len(train_ids), vocab=int(target.config.vocab_size))
    if path is not None and Path(path).is_file():
        blob = torch.load(path, weights_only=True)
        if blob.get("recipe") == recipe:
            if log:
                log(f"regenerated data: reusing {path}")
            return blob["tokens"], dict(recipe, seconds=float(blob.get("seconds", 0.0)), reused=True)
        if log:
            log(f"regenerated data: {path} holds another recipe; regenerating")
    rng = np.random.default_rng(seed)
    prompts = random_prompts(train_ids, n, prompt_len, rng)
    t0 = time.perf_counter()
    tokens, temps = regenerate(target, prompts, seq_len - prompt_len, temperatures, seed, batch,
                               progress)
    seconds = time.perf_counter() - t0
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"recipe": recipe, "tokens": tokens, "temperature": temps, "seconds": seconds},
                   path)
    return tokens, dict(recipe, seconds=seconds, reused=False)
