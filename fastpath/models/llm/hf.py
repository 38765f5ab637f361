"""Hugging Face causal LMs from local folders, with the hub offline.

``load_model(name_or_path)`` takes a zoo name (``zoo:code-target``) or a local folder and
returns ``(model, tokenizer)`` in eval mode; ``load_pair(target, draft)`` loads both and
checks that they share a tokenizer (same vocabulary, same special tokens), raising
``InvalidInput`` naming the first difference otherwise: speculative decoding compares
p and q token id by token id, so a different tokenizer silently breaks it.

Nothing here touches the network: ``HF_HUB_OFFLINE=1`` is set (if unset) and every
``from_pretrained`` call passes ``local_files_only=True``.

``zoo:smollm2-135m`` is converted on first use by :mod:`specoracle.fastpath.models.zoo.smollm2`.
"""
from __future__ import annotations


from specoracle.reference.types import InvalidInput

from specoracle.fastpath.models._transformers import quiet_transformers
from specoracle.fastpath.models.zoo.registry import resolve

def load_tokenizer(name_or_path):
    from transformers import AutoTokenizer
    quiet_transformers()
    return AutoTokenizer.from_pretrained(str(resolve(name_or_path)), local_files_only=True)


def load_model(name_or_path, dtype="float32", device="cpu"):
    """``(model, tokenizer)`` for a zoo name or a local folder, eval mode, on ``device``."""
    import torch
    from transformers import AutoModelForCausalLM
    quiet_transformers()
    path = resolve(name_or_path)
    torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype, local_files_only=True)
    model.eval().to(device)
    return model, load_tokenizer(path)


def check_same_tokenizer(tok_p, tok_q, p_name="target", q_name="draft") -> None:
    """Raise InvalidInput unless the two tokenizers map every string to the same ids."""
    vp, vq = tok_p.get_vocab(), tok_q.get_vocab()
    if len(vp) != len(vq):
        raise InvalidInput("draft", f"tokenizer mismatch: the {p_name} has {len(vp)} tokens, "
                           f"the {q_name} {len(vq)}; target and draft must share a tokenizer")
    for token, idx in vp.items():
        if vq.get(token) != idx:
            raise InvalidInput("draft", f"tokenizer mismatch: token {token!r} is id {idx} in the "
                               f"{p_name} but {vq.get(token)} in the {q_name}; target and draft "
                               "must share a tokenizer")
    for attr in ("eos_token_id", "bos_token_id"):
        if getattr(tok_p, attr, None) != getattr(tok_q, attr, None):
            raise InvalidInput("draft", f"tokenizer mismatch: {attr} is {getattr(tok_p, attr, None)} "
                               f"in the {p_name} but {getattr(tok_q, attr, None)} in the {q_name}")


def load_pair(target, draft, dtype="float32", device="cpu"):
    """``(target_model, draft_model, tokenizer)``; checks the shared tokenizer first."""
    tok_p, tok_q = load_tokenizer(target), load_tokenizer(draft)
    check_same_tokenizer(tok_p, tok_q)
    p_model, _ = load_model(target, dtype, device)
    q_model, _ = load_model(draft, dtype, device)
    if p_model.config.vocab_size != q_model.config.vocab_size:
        raise InvalidInput("draft", f"vocabulary size {q_model.config.vocab_size} differs from the "
                           f"target's {p_model.config.vocab_size}")
    return p_model, q_model, tok_p


def hf_speculative_sampling():
    """transformers' ``_speculative_sampling``, callable the same way on every supported
    release: older ones (5.0 among them) take a required ``is_done_candidate`` flag (EOS
    handling), which is passed as False."""
    import functools
    import inspect

    from transformers.generation.utils import _speculative_sampling
    if "is_done_candidate" in inspect.signature(_speculative_sampling).parameters:
        return functools.partial(_speculative_sampling, is_done_candidate=False)
    return _speculative_sampling
