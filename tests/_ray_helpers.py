"""The local Ray of the Ray tests (tests/proofs/certify/test_sweep_ray.py, tests/proofs/certify/test_engines_ray.py): import
the fixture (``from _ray_helpers import local_ray``) in a module that has already done
``pytest.importorskip("ray")``.

One local Ray per module, started at tiny size (2 CPUs, no dashboard, 100 MB object store,
worker logs not forwarded) and shut down at the end; the tests' own helpers (tests/*.py) and
the requesting test module's folder (functions defined there are pickled by reference) reach
the workers through the job's PYTHONPATH (a Ray runtime_env)."""
from __future__ import annotations

import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def local_ray(request):
    import ray

    from specoracle.proofs.certify.executors import LOCAL_OBJECT_STORE

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    module_dir = os.path.dirname(os.path.abspath(request.module.__file__))
    path = os.pathsep.join(p for p in (HERE, module_dir, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=LOCAL_OBJECT_STORE, runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()
