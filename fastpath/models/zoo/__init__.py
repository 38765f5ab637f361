"""specoracle.fastpath.models.zoo: the project's own small models and their recipes.

- registry.py: where zoo models live and how they are named (``zoo:NAME``);
- lm_train.py: the `specoracle zoo train-lm` recipe (target/draft Llama pair);
- diffusion.py: the diffusion zoo pairs (eps-nets) and their recipe;
- weights/: the weights that ship in the package: ``weights/diffusion/<name>/`` and the
  DFlash / D2SD drafters ``weights/dflash/cpu-{dflash,vp}/``.
"""
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DFLASH_WEIGHTS_DIR = WEIGHTS_DIR / "dflash"
DIFFUSION_WEIGHTS_DIR = WEIGHTS_DIR / "diffusion"
SHIPPED_DFLASH = DFLASH_WEIGHTS_DIR / "cpu-dflash"   # block 16, serves blocks 8 and 16
SHIPPED_VP = DFLASH_WEIGHTS_DIR / "cpu-vp"           # the D2SD VP drafter, same shape
