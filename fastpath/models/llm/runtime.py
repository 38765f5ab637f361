"""How the decoding engine runs (:class:`Runtime`): the settings that change speed, never tokens.

:func:`~specoracle.fastpath.models.llm.engine.speculative_generate` and
``autoregressive_generate`` take what is generated (k, method, warping, max_new_tokens,
eos_id, seeds) as keywords and how it runs as ONE ``runtime=Runtime(...)``. Every field and
every constraint between fields is checked on construction (``InvalidInput`` naming the
field), before any model call:

* ``backend``: the host round's verifiers and draft draws, "numba" (the batched numba twins)
  or "reference" (the float64 oracle, row by row); identical tokens (verify.py). The device
  round verifies with the torch twins, so ``backend="reference"`` with it is rejected.
* ``cache``: "dynamic" (a growing / cropped ``DynamicCache``, kv.py) or "static"
  (preallocated position-indexed buffers and fixed-shape calls, static.py).
* ``cuda_graphs``: capture each fixed-shape call as a CUDA graph (needs ``cache="static"``
  and, when the states are built, CUDA models).
* ``compile_mode``: ``torch.compile`` mode of the fixed-shape step, None (eager) or one of
  :data:`COMPILE_MODES` (needs ``cache="static"``).
* ``round_impl``: "host" (logits to the host, numpy draws, ``backend`` verifiers) or
  "device" (warps, draws and verifiers as torch tensors on the models' device,
  device_round.py).
* ``round_dtype``: compute dtype of the device round's warps and verifiers, "float64" (the
  host round's tokens) or "float32" (the fast GPU setting; needs ``round_impl="device"``).

The equalities behind "same tokens" are tested, not assumed: static vs dynamic cache
(tests/fastpath/models/llm/test_llm_static.py), device vs host round in float64 and the
float32 margins (test_llm_device_round.py, tests/TOLERANCES.md), numba vs reference
(test_llm_engine.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from specoracle.reference.types import InvalidInput

from specoracle.fastpath.models.llm.verify import BACKENDS

CACHES = ("dynamic", "static")
ROUND_IMPLS = ("host", "device")
ROUND_DTYPES = ("float64", "float32")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def _one_of(field: str, value, allowed: tuple) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidInput(field, f"expected one of {allowed}, got {value!r}")


@dataclass(frozen=True)
class Runtime:
    """How a generation runs (module doc); every combination accepted here gives the tokens
    of ``Runtime()`` (float32 device rounds: up to the margins of tests/TOLERANCES.md)."""

    backend: str = "numba"
    cache: str = "dynamic"
    cuda_graphs: bool = False
    compile_mode: str | None = None
    round_impl: str = "host"
    round_dtype: str = "float64"

    def __post_init__(self):
        _one_of("backend", self.backend, BACKENDS)
        _one_of("cache", self.cache, CACHES)
        if not isinstance(self.cuda_graphs, bool):
            raise InvalidInput("cuda_graphs", f"expected True or False, got {self.cuda_graphs!r}")
        if self.compile_mode is not None:
            _one_of("compile_mode", self.compile_mode, COMPILE_MODES)
        _one_of("round_impl", self.round_impl, ROUND_IMPLS)
        _one_of("round_dtype", self.round_dtype, ROUND_DTYPES)
        if self.cache != "static":
            for name in ("cuda_graphs", "compile_mode"):
                if getattr(self, name) not in (False, None):
                    raise InvalidInput(name, f"needs cache='static' (got cache={self.cache!r})")
        if self.round_impl == "host":
            if self.round_dtype != "float64":
                raise InvalidInput("round_dtype", "the host round computes in float64 only "
                                                  "(float32 needs round_impl='device')")
        elif self.backend != "numba":
            raise InvalidInput("backend", f"backend={self.backend!r} is the host round's; the device "
                                          "round verifies with the torch twins")
