"""The diffusers adapter: a small randomly initialised UNet2DModel built from a config (no
hub) with a DDPMScheduler as the target chain. Skipped cleanly without diffusers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

diffusers = pytest.importorskip("diffusers", reason="diffusers is not installed (pip install diffusers)")

from specoracle.fastpath.models.diffusion.adapter import (  # noqa: E402
    diffusers_ddpm_chain, diffusers_euler_maruyama_chain, tiny_unet, unet_denoiser)
from specoracle.fastpath.models.diffusion.spec import SpecConfig, sample_speculative_rng  # noqa: E402
from specoracle.reference.types import InvalidInput  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


STEP_ATOL = 1e-5   # diffusers computes scheduler.step in float32; the chain mean is float64
STEP_RTOL = 1e-6   # (relative float32 rounding; unclipped random UNets reach |x| ~ 100)


@pytest.fixture(scope="module")
def unet():
    return tiny_unet(seed=0)


@pytest.mark.parametrize("variance_type,clip", [("fixed_small", True), ("fixed_large", False)])
def test_chain_mean_equals_scheduler_step(unet, variance_type, clip):
    """mean + std * noise reproduces scheduler.step(...).prev_sample with the same noise."""
    sch = diffusers.DDPMScheduler(num_train_timesteps=1000, variance_type=variance_type, clip_sample=clip)
    chain = diffusers_ddpm_chain(sch, 12, (1, 8, 8))
    assert chain.n_gaussian == 11 and chain.std[-1] == 0          # diffusers adds no noise at t = 0
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for i, t in enumerate(sch.timesteps):
            eps = unet(x, t).sample
            prev = sch.step(eps, t, x, generator=torch.Generator().manual_seed(i)).prev_sample
            noise = torch.randn(eps.shape, generator=torch.Generator().manual_seed(i))
            mean = chain.mean(np.full(3, i), x.reshape(3, -1).double().numpy(), eps.reshape(3, -1).double().numpy())
            want = (prev - (float(chain.std[i]) * noise if int(t) > 0 else 0.0)).reshape(3, -1).double().numpy()
            np.testing.assert_allclose(mean, want, rtol=STEP_RTOL, atol=STEP_ATOL)
            x = prev


@pytest.mark.parametrize("make", [diffusers_ddpm_chain, diffusers_euler_maruyama_chain])
@pytest.mark.parametrize("verify", ["block", "token"])
def test_speculative_unet_batch(unet, make, verify):
    """Whole batch through the UNet: one batched call per round, ragged windows, finite
    samples; draft = target accepts everything (ceil(K/L) calls, T11)."""
    sch = diffusers.DDPMScheduler(num_train_timesteps=1000)
    den = unet_denoiser(unet)
    chain = make(sch, 10, den.sample_shape)
    res = sample_speculative_rng(den, chain, 5, np.random.default_rng(0),
                                 SpecConfig(window=4, drafter="free", verify=verify))
    assert res.samples.shape == (5, 64) and np.all(np.isfinite(res.samples))
    assert den.calls == res.stats["seq_target_calls"]
    den.reset_counters()
    exact = sample_speculative_rng(den, chain, 5, np.random.default_rng(0),
                                   SpecConfig(window=4, drafter="independent", verify=verify), draft=den)
    kg = chain.n_gaussian
    assert exact.stats["accepted_drafts"] == 5 * kg
    assert exact.stats["seq_target_calls"] == math.ceil(kg / 4) + (chain.n_steps - kg)


def test_unsupported_scheduler_options():
    sch = diffusers.DDPMScheduler(num_train_timesteps=100, variance_type="learned_range")
    with pytest.raises(InvalidInput, match="variance_type"):
        diffusers_ddpm_chain(sch, 5, (1, 8, 8))
    sch = diffusers.DDPMScheduler(num_train_timesteps=100, thresholding=True)
    with pytest.raises(InvalidInput, match="thresholding"):
        diffusers_ddpm_chain(sch, 5, (1, 8, 8))
    sch = diffusers.DDPMScheduler(num_train_timesteps=100, prediction_type="sample")
    with pytest.raises(InvalidInput, match="epsilon"):
        diffusers_euler_maruyama_chain(sch, 5, (1, 8, 8))


def test_diffuse_cli_with_local_diffusers_folder(unet, tmp_path):
    """`specoracle diffuse --model diffusers:DIR` loads a local UNet2DModel + DDPMScheduler
    (local_files_only: no hub) and writes the grid and the statistics."""
    import json

    from specoracle.cli import diffuse_model as cli

    unet.save_pretrained(tmp_path / "m" / "unet")
    diffusers.DDPMScheduler(num_train_timesteps=1000).save_pretrained(tmp_path / "m" / "scheduler")
    args = cli.build_parser().parse_args([
        "--model", f"diffusers:{tmp_path / 'm'}", "--steps", "6", "--n", "4", "--window", "3",
        "--png", str(tmp_path / "g.png"), "--json", str(tmp_path / "s.json")])
    assert cli.run_model_diffuse(args) == 0
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["steps"] == 6 and stats["gaussian_steps"] == 5 and (tmp_path / "g.png").exists()
