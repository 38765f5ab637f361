"""The warnings policy: no module of the project triggers a deprecation.

pyproject.toml turns every warning into an error except the deprecation family
(DeprecationWarning, PendingDeprecationWarning, FutureWarning) when it is attributed outside
the project: the attribution of those is unreliable (transformers 5.24 warns about
``past_key_values`` with ``stacklevel=2``, which lands in torch/nn/modules/module.py when a
model is called), so a module filter can neither catch our own deprecated calls nor spare
third-party internals reliably. This file is where deprecations ARE errors, whatever their
attribution: a fresh interpreter imports every specoracle module and runs a few tiny,
representative code paths (a random Llama through the KV-cache engine, the static cache, the
paired-tau drafter, DFlash; a diffusers UNet through speculative diffusion; a numba kernel;
a matplotlib figure) under ``warnings.simplefilter("error")`` for the three categories, and
with transformers' logger collected, since transformers also reports some deprecations
(``past_key_values`` on an output) through ``logger.warning_once`` rather than ``warnings``.

A deprecation raised inside a third-party package that our call does not cause goes into
THIRD_PARTY (a message regex and the reason), never into a wider filter. Empty today.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import os
import pkgutil
import re
import subprocess
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

import pytest

DEPRECATIONS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("specoracle", "specoracle.reference", "specoracle.fastpath", "specoracle.proofs")
SKIP_MODULES = ("specoracle.__main__",)   # runs the CLI when imported
# (message regex, why it is not ours); checked against str(warning)
THIRD_PARTY: tuple = ()
DEPRECATION_LOG = re.compile(r"deprecat", re.IGNORECASE)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        msg = record.getMessage()
        if DEPRECATION_LOG.search(msg):
            self.messages.append(f"transformers logger ({record.name}): {msg}")


@contextlib.contextmanager
def strict():
    """Deprecation-family warnings raise (whatever module they are attributed to), other
    warnings keep their filters; yields a list that collects transformers' logged
    deprecation messages (its verbosity is raised to WARNING for the duration)."""
    handler = _Collect()
    tlog = logging.getLogger("transformers")
    old_level, old_propagate = tlog.level, tlog.propagate
    tlog.addHandler(handler)
    tlog.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for category in DEPRECATIONS:
                warnings.simplefilter("error", category)
            for pattern, _why in THIRD_PARTY:
                warnings.filterwarnings("ignore", message=pattern)
            yield handler.messages
    finally:
        tlog.removeHandler(handler)
        tlog.setLevel(old_level)
        tlog.propagate = old_propagate


def _where(exc: BaseException) -> str:
    """The innermost project frame of the traceback (who made the call)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if str(ROOT) in f.filename
              and "/tests/test_warnings_policy.py" not in f.filename]
    f = frames[-1] if frames else None
    return f"{os.path.relpath(f.filename, ROOT)}:{f.lineno}" if f else "?"


def run_checked(name: str, fn, failures: list) -> None:
    """Run ``fn()`` under :func:`strict`; append 'name: what, where' for each deprecation."""
    try:
        with strict() as logged:
            fn()
    except DEPRECATIONS as w:
        failures.append(f"{name}: {type(w).__name__}: {w} (called from {_where(w)})")
        return
    failures.extend(f"{name}: {m}" for m in logged)


def project_modules() -> list:
    names = []
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        names.append(pkg_name)
        for info in pkgutil.walk_packages(pkg.__path__, pkg_name + "."):
            if info.name not in SKIP_MODULES and ".__" not in info.name:
                names.append(info.name)
    return sorted(set(names))


# ---- tiny representative code paths (each a few seconds at most) -------------------------

def _llm_paths():
    import numpy as np
    import torch

    from _dflash_zoo import tiny_drafter, tiny_target
    from _llm_tiny import tiny_llama
    from specoracle.fastpath.models.dflash.generate import generate_dflash
    from specoracle.fastpath.models.llm.engine import Runtime, autoregressive_generate, speculative_generate
    from specoracle.fastpath.models.llm.processing import Warp
    from specoracle.fastpath.models.llm.tau_paired import draft_and_score

    torch.set_num_threads(1)
    target, draft = tiny_llama(1, 32, 1, 2, 1), tiny_llama(2, 16, 1, 2, 1)
    prompts = [[1, 2, 3], [4, 5]]
    return {
        "llm: speculative_generate (dynamic KV cache)": lambda: speculative_generate(
            target, draft, prompts, k=2, max_new_tokens=4),
        "llm: speculative_generate (static cache)": lambda: speculative_generate(
            target, draft, prompts, k=2, max_new_tokens=4, runtime=Runtime(cache="static")),
        "llm: autoregressive_generate": lambda: autoregressive_generate(
            target, prompts, max_new_tokens=3),
        "llm: paired-tau draft_and_score": lambda: draft_and_score(
            target, draft, torch.tensor([[1, 2, 3]]), Warp(), 2, np.full((1, 2), 0.5)),
        "llm: generate_dflash": lambda: generate_dflash(
            tiny_target(), tiny_drafter(), [1, 2, 3], max_new_tokens=4),
    }


def _other_paths():
    import numpy as np

    def diffusion():
        import torch
        from diffusers import DDPMScheduler

        from specoracle.fastpath.models.diffusion.adapter import (diffusers_ddpm_chain, tiny_unet,
                                                                  unet_denoiser)
        from specoracle.fastpath.models.diffusion.spec import SpecConfig, sample_speculative_rng
        torch.set_num_threads(1)
        den = unet_denoiser(tiny_unet(seed=0))
        chain = diffusers_ddpm_chain(DDPMScheduler(num_train_timesteps=1000), 4, den.sample_shape)
        sample_speculative_rng(den, chain, 2, np.random.default_rng(0), SpecConfig(window=2))

    def numba_kernel():
        from specoracle.fastpath.numba_cpu.categorical import verify_chain
        p = np.array([[[0.5, 0.5], [0.5, 0.5]]])
        verify_chain(p, p[:, :1], np.array([[0]]), np.full((1, 2), 0.25))

    def figure():
        from specoracle.cli.diffuse_model import write_png
        with tempfile.TemporaryDirectory() as d:
            write_png(os.path.join(d, "x.png"), np.zeros((4, 2)), "gaussian", "t")

    return {"diffusion: diffusers UNet speculative sampling": diffusion,
            "numba: verify_chain kernel": numba_kernel,
            "matplotlib: diffuse --png figure": figure}


def check_all() -> list:
    """Import every project module, then run the code paths; the list of deprecations."""
    # third-party packages imported first, outside the strict block: their own import-time
    # internals are not the project's (lazily loaded submodules still count below)
    import matplotlib
    matplotlib.use("Agg")
    for name in ("numpy", "scipy.stats", "torch", "numba", "sympy", "matplotlib.pyplot",
                 "hypothesis", "transformers", "diffusers"):
        importlib.import_module(name)
    failures: list = []
    for mod in project_modules():
        run_checked(f"import {mod}", lambda mod=mod: importlib.import_module(mod), failures)
    paths = {}
    run_checked("building the tiny models", lambda: paths.update(_llm_paths()), failures)
    paths.update(_other_paths())
    for name, fn in paths.items():
        run_checked(name, fn, failures)
    return failures


def test_project_triggers_no_deprecation():
    """A fresh interpreter (import-time warnings and transformers' warn-once state are new)
    runs :func:`check_all`; it prints one line per deprecation and exits 1 if any."""
    pytest.importorskip("transformers")
    pytest.importorskip("diffusers")
    proc = subprocess.run([sys.executable, __file__], capture_output=True, text=True, timeout=600,
                          cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": ""})
    assert proc.returncode == 0, (
        "a project code path triggered a deprecation (call the API the way the installed "
        "release wants; a third-party-internal one goes into THIRD_PARTY with its reason):\n"
        + proc.stdout[-4000:] + proc.stderr[-4000:])
    assert "checked" in proc.stdout, proc.stdout + proc.stderr


def test_strict_catches_the_old_cache_keyword():
    """Negative control: on a transformers that takes ``cache=``, calling a model with the
    deprecated ``past_key_values=`` (what the project did before) is reported."""
    pytest.importorskip("transformers")
    import torch

    from _llm_tiny import tiny_llama
    from specoracle.fastpath.models.llm.kv import cache_kwarg, new_cache

    model = tiny_llama(1, 16, 1, 2, 1)
    if cache_kwarg(model) != "cache":
        pytest.skip("this transformers takes past_key_values= (older than 5.24): nothing to catch")
    failures: list = []
    with torch.inference_mode():
        run_checked("old keyword", lambda: model(input_ids=torch.tensor([[1, 2]]),
                                                 past_key_values=new_cache(model), use_cache=True),
                    failures)
        ok: list = []
        run_checked("new keyword", lambda: model(input_ids=torch.tensor([[1, 2]]),
                                                 cache=new_cache(model), use_cache=True), ok)
    assert len(failures) == 1 and "past_key_values" in failures[0], failures
    assert ok == []


@pytest.mark.parametrize("category", DEPRECATIONS + (UserWarning, RuntimeWarning))
@pytest.mark.parametrize("module", ["torch.nn.modules.module", "transformers.utils.deprecation",
                                    "specoracle.fastpath.models.llm.kv", "test_something"])
def test_pyproject_filters(category, module):
    """The filters pyproject.toml gives this very test: a deprecation attributed to a
    third-party module is recorded (shown), not raised; one attributed to the project, and
    any other warning from anywhere, raises."""
    ours = module.startswith(("specoracle", "test_"))
    with warnings.catch_warnings(record=True) as shown:   # keeps the filters, records "default"
        if ours or category not in DEPRECATIONS:
            with pytest.raises(category):
                warnings.warn_explicit("probe", category, "x.py", 1, module=module)
        else:
            warnings.warn_explicit("probe", category, "x.py", 1, module=module)
            assert len(shown) == 1 and shown[0].category is category


def test_strict_catches_a_logged_deprecation():
    """Negative control for the logger half: a deprecation that transformers only logs
    (``output.past_key_values`` in 5.24) is collected."""
    failures: list = []
    run_checked("logged", lambda: logging.getLogger("transformers.x").warning(
        "`past_key_values` is deprecated. Use `cache` instead."), failures)
    assert len(failures) == 1 and "transformers logger" in failures[0], failures


def _lower_bounds() -> dict:
    """{name: lower bound} of every requirement in pyproject.toml (core and extras)."""
    tomllib = pytest.importorskip("tomllib")   # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    bounds = {}
    for r in reqs:
        m = re.match(r"\s*([A-Za-z0-9._-]+)\s*>=\s*([0-9][^,;\s]*)", r)
        assert m, f"{r!r}: every dependency states a lower bound (>=)"
        name, low = m.group(1).lower(), m.group(2)
        assert bounds.setdefault(name, low) == low, f"{name}: two different lower bounds"
    return bounds


def test_oldest_constraints_pin_the_declared_lower_bounds():
    """.ci/oldest-constraints.txt pins every dependency to its pyproject.toml bound, so
    `.ci/run-versions oldest` tests the range that is declared (torch excepted: the only CPU
    wheel here is 2.13.0, said in both files)."""
    pins = {}
    for line in (ROOT / ".ci" / "oldest-constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    bounds = _lower_bounds()
    assert set(pins) == set(bounds)
    for name, low in bounds.items():
        if name != "torch":
            assert pins[name].split(".")[:len(low.split("."))] == low.split(".") and \
                all(x == "0" for x in pins[name].split(".")[len(low.split(".")):]), (name, low, pins[name])
    assert pins["torch"] == "2.13.0"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    found = check_all()
    for line in found:
        print(line)
    print(f"checked {len(project_modules())} modules and the code paths: {len(found)} deprecation(s)")
    sys.exit(1 if found else 0)
