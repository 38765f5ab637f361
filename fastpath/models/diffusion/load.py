"""Load a diffusion model for speculative sampling: a zoo pair or a local diffusers folder.

``zoo:NAME`` gives the target eps-net and its own draft (:mod:`..zoo.diffusion`) on a DDPM or
Euler-Maruyama chain; ``diffusers:DIR`` a ``UNet2DModel`` + ``DDPMScheduler`` from a local
folder (no hub access), with no draft (the frozen-target / Free Drafter drafters apply).
"""
from __future__ import annotations

from pathlib import Path


def load_model(spec: str, steps: int, sampler: str = "ddpm", variance: str = "beta", device="cpu"):
    """``(target denoiser, draft denoiser or None, chain, info dict)`` for a model spec."""
    from specoracle.reference.types import InvalidInput

    from specoracle.fastpath.models.diffusion.chains import ddpm_chain, euler_maruyama_chain
    from specoracle.fastpath.models.diffusion.spec import TorchDenoiser

    if spec.startswith("zoo:"):
        from specoracle.fastpath.models.zoo.diffusion import find_pair, load_pair

        tnet, dnet, e = load_pair(spec)
        if sampler == "ddpm":
            chain = ddpm_chain(steps, variance=variance)
        elif sampler == "em":
            chain = euler_maruyama_chain(steps)
        else:
            raise InvalidInput("sampler", f"expected ddpm or em, got {sampler!r}")
        info = {"model": spec, "dataset": e.dataset, "folder": str(find_pair(spec)),
                "target_params": tnet.n_params(), "draft_params": dnet.n_params()}
        return (TorchDenoiser(tnet, device=device), TorchDenoiser(dnet, device=device), chain,
                info)
    if spec.startswith("diffusers:"):
        from diffusers import DDPMScheduler, UNet2DModel

        from specoracle.fastpath.models.diffusion.adapter import diffusers_ddpm_chain, diffusers_euler_maruyama_chain, unet_denoiser

        root = Path(spec[len("diffusers:"):])
        unet_dir = root / "unet" if (root / "unet").exists() else root
        sch_dir = root / "scheduler" if (root / "scheduler").exists() else root
        unet = UNet2DModel.from_pretrained(str(unet_dir), local_files_only=True)
        sch = DDPMScheduler.from_pretrained(str(sch_dir), local_files_only=True)
        den = unet_denoiser(unet, device=device)
        make = diffusers_ddpm_chain if sampler == "ddpm" else diffusers_euler_maruyama_chain
        chain = make(sch, steps, den.sample_shape)
        return den, None, chain, {"model": spec, "dataset": "diffusers",
                                  "target_params": sum(p.numel() for p in unet.parameters())}
    raise InvalidInput("model", f"expected zoo:NAME or diffusers:DIR, got {spec!r}")
