"""specoracle.fastpath.torch_cuda: the torch / Triton twins of the oracle.

Same module and function names as reference/ (DESIGN.md principle 4), batched API of
fastpath/types.py; runs on any torch device (the CPU is how CI checks it).

    categorical  verify_chain, verify_block, verify_greedy (+ _rng, _seeded, _logits)
    tree         verify_mss_tree, verify_tree_deterministic (+ _rng)
    gaussian     verify_gaussian_chain, verify_gaussian_block, gamma_coupling,
                 reflection_coupling (+ _rng)
    processing   process_logits (torch twin of reference/processing.py)
    rng          counter_uniforms: Philox4x32-10 per-request (seed, position, slot) noise
    graphs       GraphedVerifier: capture a verifier call in a CUDA graph (B = 1), replay

Triton kernels (imported lazily; TRITON_INTERPRET=1 runs them on CPU tensors):
    triton_kernels   chain / block from probabilities (+ launch helpers)
    triton_logits    chain / block from logits, warps inside (triton_warp: the device
                     functions of temperature / top-k / top-p / min-p without a sort)
    triton_draw      shared device functions: row-pair tiles, residual mass, the draw
    triton_tree      sample-and-match over deterministic trees
    triton_gaussian  the fused (B, L, d) pass of Gaussian verification

Backend name in the registry: ``torch``. Its parity ops, those only this backend has
included (logits, Triton kernels), are in fastpath/ops/ (torch_only.py).

User guide: docs/TORCH_CUDA.md.
"""
