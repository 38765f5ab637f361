"""Certification sweeps: many scenarios (the fixed battery plus random ones with
V up to 32k and K up to 8), split into tasks that return exact count tables, run by an
executor (in-process, local Ray, a Ray cluster: :mod:`specoracle.proofs.certify.executors`),
merged exactly, decided with Holm over the whole sweep; resumable through a results file.

    from specoracle.proofs.certify.sweep import sweep
    rep = sweep("reference.chain", 20, executor="ray", workers=2, results="sweep.jsonl")
    print(rep.format()); rep.verdict
"""
from .run import BLOCK_ROUNDS, ResultsFile, SweepReport, Task, plan, run_task, sweep  # noqa: F401
from .scenarios import RowScenario, partition, random_scenario  # noqa: F401
