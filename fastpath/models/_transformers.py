"""transformers, offline and quiet: the one place that sets both for the model code.

Importing this module sets ``HF_HUB_OFFLINE=1`` (if unset): nothing in specoracle downloads from
a model hub; every ``from_pretrained`` call also passes ``local_files_only=True``.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def quiet_transformers() -> None:
    """Silence transformers' info logging and progress bars (the CLI shows its own)."""
    import transformers
    transformers.logging.set_verbosity_error()
    try:
        transformers.utils.logging.disable_progress_bar()
    except AttributeError:  # pragma: no cover - older transformers
        pass
