"""The engine's warp (fastpath/models/llm/processing.py: Warp + the one torch warp of
fastpath/torch_cuda/processing.py) is the reference's one definition
(reference/processing.py): same order, same tie rules, same probabilities."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from specoracle.fastpath.models.llm.processing import Warp, warp
from specoracle.reference.processing import process_logits as ref_process
from specoracle.reference.types import InvalidInput

SETTINGS = [
    dict(temperature=1.0), dict(temperature=0.7), dict(temperature=0.0),
    dict(temperature=1.0, top_k=1), dict(temperature=1.0, top_k=5), dict(temperature=1.3, top_k=50),
    dict(temperature=1.0, top_p=0.9), dict(temperature=0.5, top_p=0.3), dict(temperature=1.0, top_p=1e-9),
    dict(temperature=1.0, top_k=20, top_p=0.8, min_p=0.05), dict(temperature=2.0, min_p=0.2),
]


@pytest.mark.parametrize("kw", SETTINGS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_matches_reference_on_random_logits(kw, rng):
    logits = rng.normal(size=(4, 3, 300)) * 3
    logits[0, 0, :7] = 2.5  # ties at the top: the lower id wins
    logits[1, 1, 10:40] = -np.inf
    got = warp(torch.tensor(logits, dtype=torch.float32), Warp(**kw)).numpy()  # float64 warp
    want = ref_process(logits.astype(np.float32).astype(np.float64), **kw)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.array_equal(got > 0, want > 0)  # same support, exactly


def test_ties_keep_lower_ids():
    logits = torch.zeros(1, 10)
    got = warp(logits, Warp(1.0, top_k=3)).numpy()[0]
    assert list(np.flatnonzero(got)) == [0, 1, 2]
    assert warp(logits, Warp(0.0)).numpy()[0, 0] == 1.0


def test_bad_settings_raise():
    with pytest.raises(InvalidInput, match="temperature"):
        Warp(-1.0)
    with pytest.raises(InvalidInput, match="top_k"):
        Warp(1.0, top_k=0)
    with pytest.raises(InvalidInput, match="top_p"):
        Warp(1.0, top_p=0.0)
