"""Engine-level certification sharded on Ray actors ("Engines at scale"):
specoracle's own engine on the tiny random pair (tests/_llm_tiny.py), one engine per actor,
requests sharded across actors, counts merged. Skipped only when Ray is not installed.

Not statistical: the assertions are equalities of integer counts, of the rows computed from
them and of the verdict, in-process against Ray with 1 and 2 actors, for the same seed (the
noise is per request: request r has prompt r mod P and seed r of the run's SeedSequence,
whatever the split). Sizes are tiny (2 prompts x 12 requests, n = 2, top-k 3): the run is
underpowered on purpose; equality is the subject.
"""
from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")

from specoracle.proofs.certify.engines import EngineFactory  # noqa: E402
from specoracle.proofs.certify.engines.certify import certify_engine, request_counts  # noqa: E402
from specoracle.fastpath.models.llm.processing import Warp  # noqa: E402
from specoracle.reference.types import InvalidInput  # noqa: E402

from _llm_tiny import tiny_pair_one_thread  # noqa: E402
from _ray_helpers import local_ray  # noqa: E402,F401 - the module's local Ray (a fixture)

# transformers deprecates `past_key_values=` (fastpath/models/llm/kv.py, as in tests/proofs/certify/test_engines.py)
pytestmark = pytest.mark.filterwarnings("ignore:.*past_key_values.*:FutureWarning")

EOS = 2
PROMPTS = [[5, 7, 5, 7, 5], [11, 3, 11, 3]]
RUN = dict(n=2, temperature=1.0, top_k=3, samples=12, batch=2, alpha=1e-3, tv=0.2, seed=7)


@pytest.fixture(scope="module")
def pair():
    yield from tiny_pair_one_thread(sharpen=2.0)


def _factory(pair, method="chain"):
    target, draft = pair   # loaded models pickle by value to the actors
    return EngineFactory("specoracle", target=target, draft=draft, method=method, k=2, eos_id=EOS, threads=1)


def test_counts_identical_inprocess_and_on_2_actors(local_ray, pair):
    """request_counts: the same Counters per prompt (and per-request tuples, kept at T = 0 for
    the agreement rows) in-process and on 2 Ray actors; both actors serve shards."""
    seeds = list(range(100, 124))
    w = Warp(1.0, top_k=3)
    kw = dict(n=2, w=w, batch=2, keep=True)
    eng = _factory(pair)()
    try:
        local, outs, meta, _ = request_counts(eng, PROMPTS, seeds, **kw)
    finally:
        eng.close()
    two, outs2, meta2, who2 = request_counts(_factory(pair), PROMPTS, seeds, executor="ray", actors=2, **kw)
    assert local == two and outs == outs2
    assert sum(c.total() for c in local) == 24 and all(len(c) > 1 for c in local)
    assert meta == meta2 and meta["eos_id"] == EOS
    assert len(who2) == 2


def test_certify_engine_report_identical_inprocess_and_on_ray(local_ray, pair):
    """certify_engine: rows (statistics, p-values from equal counts) and verdict equal
    in-process and on 2 actors (the EOS id read from an engine built on one actor first);
    the report names the executor and actors."""
    a = certify_engine(_factory(pair), pair[0], PROMPTS, **RUN)
    b = certify_engine(_factory(pair), pair[0], PROMPTS, executor="ray", actors=2, **RUN)
    assert [r.as_json() for r in a.checks] == [r.as_json() for r in b.checks] and len(a.checks) == 2
    assert a.verdict == b.verdict and a.detectable_tv == b.detectable_tv
    assert a.settings["executor"] == "inprocess" and a.settings["actors"] == 1
    assert b.settings["executor"] == "ray" and b.settings["actors"] == 2
    assert "executor: ray, 2 actors" in b.format() and "executor: inprocess" in a.format()


def test_ray_needs_a_factory_and_positive_actors(pair):
    eng = _factory(pair)()
    try:
        with pytest.raises(InvalidInput, match="engine"):
            certify_engine(eng, pair[0], PROMPTS, executor="ray", **RUN)
        with pytest.raises(InvalidInput, match="actors"):
            certify_engine(eng, pair[0], PROMPTS, executor="ray", actors=0, **RUN)
    finally:
        eng.close()


def test_cli_executor_ray_without_ray_names_the_extra(monkeypatch, capsys):
    """One line naming the extra, exit 2, before any model loads (a bad --target is not reached)."""
    from specoracle.cli import certify_sweep, main
    real = certify_sweep.importlib.util.find_spec
    monkeypatch.setattr(certify_sweep.importlib.util, "find_spec", lambda n, *a: None if n == "ray" else real(n, *a))
    code = main(["certify-engine", "specoracle", "--target", "zoo:no-such-model", "--executor", "ray",
                 "--no-progress"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 2
    assert len(err) == 1 and 'pip install "specoracle[ray]"' in err[0] and "--executor" in err[0]
