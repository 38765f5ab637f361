"""specoracle.fastpath.models.dflash."""
