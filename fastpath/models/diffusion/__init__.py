"""specoracle.fastpath.models.diffusion."""
