"""Parity ops and their input factories (was fastpath/parity*.py).

Each module registers its ops in :mod:`specoracle.fastpath.registry` on import:

    categorical  chain, block, greedy (float64, rule exact) and chain.float32, block.float32
    tree         tree_mss, tree_deterministic
    gaussian     gaussian_chain, gaussian_block, gaussian_step, gaussian_reflection
    torch_only   ops only the torch backend has: chain_logits, block_logits (+ .bf16), the
                 Triton tree kernels (.triton) and the fused Gaussian pass (.fused)
    parity       the driver: ``run_parity(backend)``, ``run_op``, the float64 decision margins

``registry.ops()`` imports them in that order (``registry.OP_MODULES``).
"""
