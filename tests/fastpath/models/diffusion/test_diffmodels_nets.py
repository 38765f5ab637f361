"""Zoo diffusion networks: architecture, chains, training recipe, shipped weights, CLIs."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from specoracle.fastpath.models.zoo import diffusion as zoo
from specoracle.fastpath.models.diffusion.chains import VPSchedule, ddpm_chain, euler_maruyama_chain
from specoracle.fastpath.models.diffusion.data import load_dataset, to_images
from specoracle.fastpath.models.diffusion.nets import EpsMLP, EpsMLPConfig, load_net, save_net
from specoracle.fastpath.models.diffusion.train import TrainConfig, train_eps_net
from specoracle.reference.types import InvalidInput

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


pytest.importorskip("sklearn", reason="scikit-learn provides the zoo's training data")


def test_epsmlp_shapes_and_roundtrip(tmp_path):
    net = EpsMLP(EpsMLPConfig(dim=5, hidden=16, depth=2, time_features=8))
    x, t = torch.randn(7, 5), torch.rand(7)
    out = net(x, t)
    assert out.shape == (7, 5)
    assert torch.equal(net(x, t[0]), net(x, t[0].expand(7)))      # scalar time broadcasts
    save_net(net, tmp_path / "n", extra={"note": "x"})
    back = load_net(tmp_path / "n")
    assert torch.equal(back(x, t), net(x, t).detach())
    meta = json.loads((tmp_path / "n.json").read_text())
    assert meta["config"]["hidden"] == 16 and meta["note"] == "x"
    with pytest.raises(InvalidInput, match="time_features"):
        EpsMLPConfig(dim=2, time_features=3)
    with pytest.raises(InvalidInput, match="path"):
        load_net(tmp_path / "missing")


def test_ddpm_chain_matches_ho_schedule():
    """1000 steps on the VP grid reproduce Ho et al.'s linear betas 1e-4..0.02."""
    ch = ddpm_chain(1000)
    beta = ch.std ** 2
    assert beta[-1] == pytest.approx(1e-4 + 0.5 * 19.9e-6, rel=1e-3)   # beta at t = 1/1000
    assert beta[0] == pytest.approx(0.02, rel=2e-2)
    ch_post = ddpm_chain(50, variance="posterior")
    assert ch_post.std[-1] == 0 and ch_post.n_gaussian == 49
    em = euler_maruyama_chain(100)
    assert em.n_gaussian == 100 and np.all(em.std > 0)
    with pytest.raises(InvalidInput, match="variance"):
        ddpm_chain(10, variance="learned")
    with pytest.raises(InvalidInput, match="schedule"):
        VPSchedule(beta_min=-1)
    with pytest.raises(InvalidInput, match="t_min"):
        euler_maruyama_chain(10, t_min=0)


def test_ddpm_chain_is_exact_for_gaussian_data_eps():
    """With the exact eps of N(0, I) data (eps = sqrt(1 - abar) x) the DDPM mean keeps the
    law N(0, I) up to discretisation: a sanity check of the coefficients."""
    ch = ddpm_chain(200)
    sched = VPSchedule()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20000, 2))
    for k in range(ch.n_steps):
        kk = np.full(x.shape[0], k)
        eps = np.sqrt(1 - sched.alpha_bar(ch.net_time[k])) * x
        x = ch.mean(kk, x, eps) + ch.std[k] * rng.standard_normal(x.shape)
    assert abs(x.std() - 1.0) < 0.02


def test_training_is_deterministic_and_learns():
    data = load_dataset("moons", n=2000, seed=0)
    cfg = EpsMLPConfig(dim=2, hidden=16, depth=1)
    tc = TrainConfig(steps=40, batch=128, lr=1e-2, ema=0.5, seed=3)
    a, ma = train_eps_net(data, cfg, tc)
    b, mb = train_eps_net(data, cfg, tc)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    _, m0 = train_eps_net(data, cfg, TrainConfig(steps=1, batch=128, lr=1e-12, ema=0.0, seed=3))
    assert ma["eval_loss_ema"] == mb["eval_loss_ema"] < 0.8 * m0["eval_loss_ema"]
    with pytest.raises(InvalidInput, match="data"):
        train_eps_net(data[:, :1], cfg, tc)


def test_datasets():
    d = load_dataset("digits")
    assert d.shape == (1797, 64) and d.min() >= -1 and d.max() <= 1
    assert to_images(d[:3]).shape == (3, 8, 8)
    m = load_dataset("moons", n=5000, seed=1)
    assert abs(m.mean()) < 0.05 and abs(m.std() - 1) < 0.05
    with pytest.raises(InvalidInput, match="dataset"):
        load_dataset("cifar")


@pytest.mark.parametrize("name", ["moons", "digits"])
def test_shipped_weights_load(name):
    folder = zoo.SHIPPED_DIR / name
    if not (folder / "target.safetensors").exists():
        pytest.skip(f"zoo:{name} weights not shipped in this checkout")
    t, d, e = zoo.load_pair(name, folder=folder)
    assert t.n_params() > 5 * d.n_params()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["target"]["n_params"] == t.n_params()
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 4_000_000                                          # small enough to ship
    x = torch.zeros(3, e.dim)
    assert torch.isfinite(t(x, torch.full((3,), 0.5))).all()


def test_zoo_errors():
    with pytest.raises(InvalidInput, match="unknown"):
        zoo.entry("zoo:cats")


def test_train_diffusion_cli_smoke(tmp_path, monkeypatch):
    from specoracle.cli import zoo_diffusion

    sub = argparse.ArgumentParser().add_subparsers()
    p = zoo_diffusion.add_parser(sub)
    args = p.parse_args(["moons", "--out", str(tmp_path / "m"), "--scale-steps", "0.005", "--no-quality"])
    assert args.func(args) == 0
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["target"]["train_config"]["steps"] == 20
    t, d, _ = zoo.load_pair("moons", folder=tmp_path / "m")
    assert t.config.hidden == 128 and d.config.hidden == 32
    # $SPECORACLE_ZOO/diffusion-NAME is preferred over the shipped copy
    monkeypatch.setenv("SPECORACLE_ZOO", str(tmp_path))
    (tmp_path / "m").rename(tmp_path / "diffusion-moons")
    assert zoo.find_pair("moons") == tmp_path / "diffusion-moons"
    bad = p.parse_args(["nope"])
    assert bad.func(bad) == 2
