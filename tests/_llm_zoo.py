"""Shared loader of the zoo pair for tests/test_llm_*.py (loaded once per session)."""
from __future__ import annotations

from functools import lru_cache

import pytest

from specoracle.fastpath.models.zoo.registry import zoo_reason


def require_zoo(*names):
    reason = zoo_reason(*names)
    if reason:
        pytest.skip(reason)


@lru_cache(maxsize=None)
def _pair():
    import torch
    from specoracle.fastpath.models.llm.hf import load_pair
    torch.manual_seed(0)  # nothing random is drawn from torch; fixes any init noise anyway
    return load_pair("zoo:code-target", "zoo:code-draft")


def zoo_pair():
    """(target, draft, tokenizer) of the zoo, or skip with the install command."""
    require_zoo("zoo:code-target", "zoo:code-draft")
    return _pair()


def zoo_pair_one_thread():
    """Body of a module fixture (``yield from zoo_pair_one_thread()``): the zoo pair, with
    torch on one thread while the module runs (tiny matmuls), the thread count restored after."""
    import torch
    got = zoo_pair()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield got
    torch.set_num_threads(threads)
