"""Known-wrong variants of the decoding engine: the negative controls of the end-to-end
certification (proofs/certify/lossless.py, proofs/certify/engines/specoracle_engine.py,
tests/proofs/certify/test_llm_lossless.py). Each replaces ONE step of the engine's round through
:class:`~specoracle.fastpath.models.llm.engine.Hooks`; the engine's public functions take no fault.

- ``"rollback_off_by_one"``: the target cache keeps one rejected draft after every round
  (its next rows are conditioned on a token that was never emitted);
- ``"q_before_warp"``: the verifier is given softmax(draft logits) instead of the warped q the
  drafts were drawn from (a wrong acceptance ratio whenever the warp is not the identity).
"""
from __future__ import annotations

import inspect

import torch

from specoracle.reference.types import InvalidInput

from specoracle.fastpath.models.llm.engine import Hooks, _speculative, speculative_generate


class RollbackOffByOne(Hooks):
    def target_keep(self, n_old: int, n_accepted: int) -> int:
        return n_old + n_accepted + 1


class QBeforeWarp(Hooks):
    def verifier_q(self, last_logits: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return torch.softmax(last_logits.to(q.dtype), dim=-1)


FAULTS = {"rollback_off_by_one": RollbackOffByOne, "q_before_warp": QBeforeWarp}


def faulty_generate(fault: str, target, draft, prompts, **kw):
    """``engine.speculative_generate(target, draft, prompts, **kw)`` (same keywords, same
    defaults) with the step ``fault`` (a key of :data:`FAULTS`) replaced."""
    if fault not in FAULTS:
        raise InvalidInput("fault", f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    call = inspect.signature(speculative_generate).bind(target, draft, prompts, **kw)
    call.apply_defaults()
    return _speculative(**call.arguments, hooks=FAULTS[fault]())
