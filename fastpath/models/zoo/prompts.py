"""The prompts of the LLM and DFlash benches and of the engine checks: held-out documents of
the zoo corpus (``<zoo>/corpus/heldout.txt.xz``, documents longer than 2000 characters, in
corpus order), else fixed code / play snippets when no corpus is installed.
"""
from __future__ import annotations

from specoracle.fastpath.models.zoo.registry import zoo_dir

FALLBACK_PROMPTS = [
    "import os\nimport sys\n\n\ndef main(argv=None):\n    parser = argparse.ArgumentParser(",
    "class Matrix:\n    \"\"\"A dense matrix of floats.\"\"\"\n\n    def __init__(self, rows, cols):\n",
    "KING HENRY.\nOnce more unto the breach, dear friends, once more;\n",
    "    def test_roundtrip(self):\n        data = {'a': 1, 'b': [1, 2, 3]}\n        s = json.dumps(",
    "def _check(x, name):\n    if not isinstance(x, np.ndarray):\n        raise TypeError(",
    "ROMEO.\nBut soft, what light through yonder window breaks?\n",
    "    for i, (key, value) in enumerate(sorted(items.items())):\n        if value is None:\n",
    "from __future__ import annotations\n\nfrom dataclasses import dataclass\n\n\n@dataclass\nclass ",
]


def bench_prompts(tok, n_prompts: int, n_tokens: int) -> list:
    """Token-id prompts: held-out documents of the zoo corpus, else the fixed snippets."""
    import lzma

    path = zoo_dir() / "corpus" / "heldout.txt.xz"
    texts = []
    if path.is_file():
        with lzma.open(path, "rt", encoding="utf-8") as fh:
            raw = fh.read(4_000_000)
        texts = [d for d in raw.split("<|endoftext|>") if len(d) > 2000][:n_prompts]
    if len(texts) < n_prompts:
        texts += FALLBACK_PROMPTS[: n_prompts - len(texts)]
    out = []
    for t in texts:
        ids = tok(t).input_ids
        out.append(ids[:n_tokens] if len(ids) >= n_tokens else (ids * (n_tokens // max(1, len(ids)) + 1))[:n_tokens])
    return out
