"""``Runtime`` (fastpath/models/llm/runtime.py): every bad field, and every combination the
engine cannot run, is an ``InvalidInput`` naming the field, raised on construction (before
any model call); the engine takes nothing but a Runtime as ``runtime``. The token equalities
of the accepted combinations are the engine tests' (test_llm_static.py,
test_llm_device_round.py, test_llm_engine.py, test_llm_engine_parity.py)."""
from __future__ import annotations

import dataclasses

import pytest

from specoracle.fastpath.models.llm.runtime import COMPILE_MODES, Runtime
from specoracle.reference.types import InvalidInput

BAD_FIELDS = [
    ("backend", dict(backend="torch")),
    ("backend", dict(backend=None)),
    ("cache", dict(cache="paged")),
    ("cache", dict(cache=None)),
    ("cuda_graphs", dict(cache="static", cuda_graphs=1)),
    ("cuda_graphs", dict(cache="static", cuda_graphs="yes")),
    ("compile_mode", dict(cache="static", compile_mode="fast")),
    ("compile_mode", dict(cache="static", compile_mode=True)),
    ("round_impl", dict(round_impl="gpu")),
    ("round_dtype", dict(round_impl="device", round_dtype="bfloat16")),
    ("round_dtype", dict(round_impl="device", round_dtype=64)),
]

BAD_COMBINATIONS = [
    ("cuda_graphs", dict(cuda_graphs=True), "static"),                      # dynamic cache
    ("compile_mode", dict(compile_mode="default"), "static"),
    ("round_dtype", dict(round_dtype="float32"), "float64 only"),           # host round
    ("backend", dict(round_impl="device", backend="reference"), "host round"),
]


@pytest.mark.parametrize("field,kw", BAD_FIELDS, ids=lambda x: str(x))
def test_each_bad_field_is_named(field, kw):
    with pytest.raises(InvalidInput) as e:
        Runtime(**kw)
    assert e.value.argument == field and str(e.value).startswith(f"{field}: ")


@pytest.mark.parametrize("field,kw,why", BAD_COMBINATIONS, ids=lambda x: str(x))
def test_each_bad_combination_is_named(field, kw, why):
    with pytest.raises(InvalidInput, match=why) as e:
        Runtime(**kw)
    assert e.value.argument == field


def test_every_supported_combination_is_accepted():
    ok = [Runtime(backend=b, cache=c, round_impl=r)
          for b in ("numba", "reference") for c in ("dynamic", "static") for r in ("host", "device")
          if not (r == "device" and b == "reference")]
    ok += [Runtime(cache="static", cuda_graphs=True, compile_mode=m) for m in COMPILE_MODES]
    ok += [Runtime(round_impl="device", round_dtype=d) for d in ("float64", "float32")]
    assert len(ok) == 6 + len(COMPILE_MODES) + 2                        # none of them raised
    with pytest.raises(dataclasses.FrozenInstanceError):
        ok[0].cache = "static"                                            # frozen: checked once, stays valid
    with pytest.raises(InvalidInput, match="cache"):
        dataclasses.replace(Runtime(cache="static", cuda_graphs=True), cache="dynamic")  # replace re-checks


def test_engine_takes_only_a_runtime():
    from specoracle.fastpath.models.llm.engine import autoregressive_generate, speculative_generate
    from _llm_tiny import tiny_llama

    target = tiny_llama(1, 32, 1, 2, 1)
    for bad in ("static", {"cache": "static"}, None):
        with pytest.raises(InvalidInput, match="runtime"):
            speculative_generate(target, target, [[1]], max_new_tokens=1, runtime=bad)
        with pytest.raises(InvalidInput, match="runtime"):
            autoregressive_generate(target, [[1]], max_new_tokens=1, runtime=bad)
    with pytest.raises(TypeError):        # the knobs are Runtime's fields, not keywords of the engine
        speculative_generate(target, target, [[1]], max_new_tokens=1, cache="static")
