"""Hugging Face transformers' ``generate`` as an engine ("transformers end to end").

Methods (``make_engine(method=...)``):
    "assisted"       ``generate(assistant_model=draft)``: the draft model proposes up to k
                     tokens per round (``num_assistant_tokens = k``, schedule "constant", the
                     assistant's confidence threshold left at transformers' default); at T > 0
                     transformers verifies with ``_speculative_sampling`` (Leviathan et al.
                     2023, Algorithm 1), at T = 0 by matching the target's argmax.
    "prompt-lookup"  ``generate(prompt_lookup_num_tokens=k)``: candidates copied from n-gram
                     matches in the context (no draft model); at T > 0 transformers samples one
                     token from the target per position and keeps candidates while they match.
    "none"           plain ``generate`` (multinomial sampling or greedy).

Warps go through ``generate``'s own ``temperature`` / ``top_k`` / ``top_p`` (a missing top-k is
passed as ``top_k=0``: transformers' default would otherwise be 50). Greedy (T = 0) passes
``do_sample=False`` and no warp.

Per-request seeds: transformers draws from torch's global generator (``torch.multinomial``,
``torch.rand_like``), and assisted generation runs one sequence per call (``batch_size > 1``
raises), so requests run one at a time, each inside ``torch.random.fork_rng`` after
``torch.manual_seed(seed)``: a request's tokens depend on its prompt and seed only, and the
caller's global torch state is restored. The "heuristic" schedule's state is reset before each
request for the same reason.
"""
from __future__ import annotations

from specoracle.reference.types import InvalidInput

from . import EngineUnavailable, check_request

METHODS = ("assisted", "prompt-lookup", "none")


class HFEngine:
    """transformers ``generate`` (module doc)."""

    name = "transformers"
    note = "transformers runs one request per generate call (assisted generation supports batch 1 only)"

    def __init__(self, target, draft, method: str, k: int, threads: int | None = None,
                 schedule: str = "constant", eos_id: int | None = None):
        import torch
        import transformers

        from specoracle.fastpath.models.llm.hf import load_model, load_tokenizer
        if method not in METHODS:
            raise InvalidInput("method", f"transformers methods are {', '.join(METHODS)}, got {method!r}")
        if int(k) != k or k < 1:
            raise InvalidInput("k", f"must be a positive integer, got {k}")
        if method == "assisted" and not draft:
            raise InvalidInput("draft", "method 'assisted' needs a draft model")
        self.version = transformers.__version__
        self.method, self.k, self.threads = method, int(k), threads
        self._torch = torch
        self.model, tok = load_model(target) if isinstance(target, str) else (target, None)
        self.draft = None
        if method == "assisted":
            self.draft = load_model(draft)[0] if isinstance(draft, str) else draft
            if isinstance(target, str) and isinstance(draft, str):
                from specoracle.fastpath.models.llm.hf import check_same_tokenizer
                check_same_tokenizer(tok, load_tokenizer(draft))
            self.schedule = schedule
        eos = self.model.generation_config.eos_token_id if eos_id is None else eos_id
        if isinstance(eos, list):
            eos = eos[0]
        self.eos_id = eos if eos is not None else (tok.eos_token_id if tok is not None else None)

    def _config(self, n: int, temperature: float, top_k, top_p):
        from transformers import GenerationConfig
        # min_length=0, min_new_tokens unset: EOS may come at any step (the law under test). An
        # explicit min_new_tokens=0 makes transformers 5.0 derive min_length = prompt length and
        # add a MinLengthLogitsProcessor, which its assisted generation refuses.
        kw = dict(max_new_tokens=int(n), min_length=0, num_beams=1, eos_token_id=self.eos_id,
                  pad_token_id=self.eos_id)
        if temperature > 0:
            kw.update(do_sample=True, temperature=float(temperature), top_k=int(top_k or 0),
                      top_p=float(top_p if top_p is not None else 1.0))
        else:
            kw.update(do_sample=False)
        if self.method == "prompt-lookup":
            kw["prompt_lookup_num_tokens"] = self.k
        return GenerationConfig(**kw)

    def generate(self, prompts, *, n, seeds, temperature, top_k=None, top_p=None):
        check_request(prompts, seeds, n, temperature)
        torch = self._torch
        cfg = self._config(n, temperature, top_k, top_p)
        extra = {}
        if self.draft is not None:
            gc = self.draft.generation_config
            gc.num_assistant_tokens = self.k
            gc.num_assistant_tokens_schedule = self.schedule
            extra["assistant_model"] = self.draft
        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(int(self.threads))
        out = []
        try:
            for prompt, seed in zip(prompts, seeds):
                ids = torch.tensor([list(prompt)], dtype=torch.long)
                if self.draft is not None:
                    self.draft.generation_config.num_assistant_tokens = self.k  # heuristic: reset
                with torch.random.fork_rng(devices=[]), torch.inference_mode():
                    torch.manual_seed(int(seed))
                    seq = self.model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=cfg,
                                              **extra)
                out.append([int(t) for t in seq[0, ids.shape[1]:].tolist()][:n])
        finally:
            torch.set_num_threads(threads)
        return out

    def close(self) -> None:
        self.model = self.draft = None


def make_engine(*, target: str, draft: str | None = None, method: str = "assisted", k: int = 4, **kw):
    """The transformers engine (module doc); ``threads`` (torch intra-op threads while it
    runs), ``schedule`` ("constant" or "heuristic") and ``eos_id`` (default: the target's
    generation config) are optional; ``target``/``draft`` may also be loaded models."""
    try:
        import transformers  # noqa: F401
    except ImportError as exc:
        raise EngineUnavailable("the transformers engine needs transformers: "
                                "pip install 'specoracle[models]'") from exc
    return HFEngine(target, draft, method, k, **kw)
