"""specoracle.fastpath.torch_cuda: the torch / Triton twins of the oracle (issue 7).

Same module and function names as reference/ (DESIGN.md principle 4), batched API of
fastpath/types.py; runs on any torch device (the CPU is how CI checks it).

    categorical  verify_chain, verify_block, verify_greedy (+ _rng, _seeded, _logits)
    tree         verify_mss_tree, verify_tree_deterministic (+ _rng)
    gaussian     verify_gaussian_chain, verify_gaussian_block (+ _rng)
    processing   process_logits (torch twin of reference/processing.py)
    rng          counter_uniforms: Philox4x32-10 per-request (seed, position, slot) noise
    triton_kernels  fused chain / block kernels (imported lazily; TRITON_INTERPRET=1 on CPU)

User guide: docs/TORCH_CUDA.md.
"""
