"""Sweeps and engine runs on a local Ray: exact merging across workers, resume,
and identical verdicts and counts in-process and on Ray for the reference and every
sweepable mutant. Skipped only when Ray is not installed (it is in the `test` extra).

One local Ray for the module (tests/_ray_helpers.py: tiny size, shut down at the end); the
tests' own helpers (tests/_llm_tiny.py) reach the workers through the job's PYTHONPATH.
Not statistical: the assertions are equalities of integer counts and of verdicts computed
from equal counts.
"""
from __future__ import annotations

from collections import Counter

import pytest

ray = pytest.importorskip("ray")

from specoracle.proofs import certify as cf  # noqa: E402
from specoracle.proofs.certify import executors as ex  # noqa: E402
from specoracle.proofs.certify.mutants import MUTANTS  # noqa: E402
from specoracle.proofs.certify.sweep import sweep  # noqa: E402
from specoracle.proofs.certify.sweep.counts import SWEPT_PROTOCOLS  # noqa: E402

from _ray_helpers import local_ray  # noqa: E402,F401 - the module's local Ray (a fixture)
from _sweep_helpers import StopAfter  # noqa: E402

SMALL = dict(samples=1200, seed=5, scenarios=("t1", "markov"))


def test_ray_sweep_counts_equal_inprocess_for_1_and_2_workers(local_ray):
    base = sweep("reference.chain", 1, chunk=1, **SMALL)
    one = sweep("reference.chain", 1, chunk=2, executor="ray", workers=1, **SMALL)
    two = sweep("reference.chain", 1, chunk=1, executor="ray", workers=2, **SMALL)
    assert one.counts == base.counts == two.counts
    assert one.verdict == base.verdict == two.verdict
    assert one.workers_used == 1 and two.workers_used >= 1


def test_ray_sweep_resumes(local_ray, tmp_path):
    path = str(tmp_path / "ray.jsonl")
    whole = sweep("reference.chain", 1, chunk=1, **SMALL)
    with pytest.raises(KeyboardInterrupt):
        sweep("reference.chain", 1, chunk=1, executor="ray", workers=2, results=path, on_task=StopAfter(2),
              **SMALL)
    rep = sweep("reference.chain", 1, chunk=1, executor="ray", workers=2, results=path, **SMALL)
    assert rep.resumed == 2 and rep.tasks == whole.tasks - 2
    assert rep.counts == whole.counts


def _flaky_once(task, _seen=set()):
    """Fails the first attempt of scenario 0's tasks in each worker process."""
    from specoracle.proofs.certify.sweep import run_task
    if task.s == 0 and task.blocks not in _seen:
        _seen.add(task.blocks)
        raise OSError("transient")
    return run_task(task)


def test_ray_retries_failed_tasks(local_ray):
    base = sweep("reference.chain", 0, chunk=1, **SMALL)
    rep = sweep("reference.chain", 0, chunk=1, executor="ray", workers=1, retries=3, task_fn=_flaky_once, **SMALL)
    assert not rep.failed and rep.counts == base.counts


REFERENCES = ["reference.chain", "reference.block", "reference.chain_logits", "reference.mss", "reference.kseq",
              "reference.tree_deterministic", "reference.gaussian_gamma", "reference.gaussian_residual",
              "reference.gaussian_block"]


def _swept_mutants() -> list:
    """Every mutant a sweep can count. Sweeps count single rounds: the batch protocol's
    mutants (B requests per call) stay with certify, and stale_buffer keeps state across
    calls (its bug), so its counts depend on which process served which call. Both
    exclusions are listed here, not silent."""
    unswept = sorted(k for k, m in MUTANTS.items() if m.protocol not in SWEPT_PROTOCOLS)
    assert all(MUTANTS[k].protocol == "batch" for k in unswept)
    return sorted(f"mutant.{m}" for m in MUTANTS if m not in unswept and m != "stale_buffer")


def _agree_inprocess_and_on_ray(names) -> None:
    """Each sampler on its focus scenarios (plus one random scenario for probs/logits) at 600
    rounds per scenario: identical counts and verdicts on both executors."""
    for name in names:
        spec = cf.resolve_impl(name)
        m = MUTANTS.get(name.partition(".")[2])
        focus = tuple(s for s in m.focus if s != "rounds") or ("t1",) if m else None
        kw = dict(samples=600, seed=1, scenarios=focus,
                  n_random=1 if spec.protocol in ("probs", "logits") else 0)
        a = sweep(name, **kw)
        b = sweep(name, executor="ray", workers=2, **kw)
        assert a.counts == b.counts, name
        assert a.verdict == b.verdict, name


def test_reference_and_a_mutant_per_protocol_agree_inprocess_and_on_ray(local_ray):
    """Default suite: every reference sampler and the first mutant of each swept protocol."""
    firsts = {}
    for name in _swept_mutants():
        firsts.setdefault(MUTANTS[name.partition(".")[2]].protocol, name)
    _agree_inprocess_and_on_ray(REFERENCES + sorted(firsts.values()))


@pytest.mark.slow
def test_reference_and_every_mutant_agree_inprocess_and_on_ray(local_ray):
    """The reference samplers and every swept mutant (27 of 35)."""
    _agree_inprocess_and_on_ray(REFERENCES + _swept_mutants())


def test_engine_shards_on_two_actors_equal_inprocess(local_ray):
    """specoracle's own engine (tiny Llama pair, chain speculative decoding): requests
    sharded over 2 actors give the same merged Counter of token tuples as in-process."""
    from _llm_tiny import TinyPairFactory, sample_tiny_prefixes
    kw = dict(shard=8, seed=100)
    local, failed_l, _ = ex.engine_counts(TinyPairFactory(), sample_tiny_prefixes, 32, **kw)
    remote, failed_r, outs = ex.engine_counts(TinyPairFactory(), sample_tiny_prefixes, 32, executor="ray",
                                              actors=2, **kw)
    assert not failed_l and not failed_r
    assert isinstance(remote, Counter) and sum(remote.values()) == 32
    assert remote == local and len(local) > 1
    assert len({o.worker for o in outs}) == 2   # both actors served shards


def test_missing_ray_names_the_extra(monkeypatch):
    import builtins
    real = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ex.MissingExtra, match=r'specoracle\[ray\]'):
        ex.require_ray()
