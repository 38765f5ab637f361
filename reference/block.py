"""The selection rule of block verification, shared by the token and the Gaussian oracle.

Sun et al., "Block Verification Accelerates Speculative Decoding" (arXiv 2403.10444,
ICLR 2025), Algorithm 2; ALGORITHMS.md §1.3 (tokens) and §2.5 (Gaussian windows), in the
division-free form of §0.3. Both oracles compute their own prefix survivals p_i and residual
masses R_i; what index is kept from them is the same rule, written once here.
"""
from __future__ import annotations


def block_tau(survival, mass, eta) -> int:
    """The accepted length tau of one block of K drafts (Algorithm 2, the loop over i).

    survival: K+1 prefix survivals p_0..p_K (p_0 = 1); mass: the residual masses R_0..R_{K-1}
    (an entry at K, if there is one, is not read); eta: K uniforms, eta_i = eta[i-1]. Index i < K passes iff
    ``eta_i * (R_i + 1 - p_i) < R_i`` (division-free form of eta_i < R_i / (R_i + 1 - p_i))
    and index K passes iff ``eta_K < p_K``. tau is the LARGEST passing index, 0 if none.
    Exact with Fractions or floats alike: only products and comparisons.
    """
    k = len(survival) - 1
    for i in range(k, 0, -1):  # scan from the end: the first passing index is the largest
        if i < k:
            passed = eta[i - 1] * (mass[i] + 1 - survival[i]) < mass[i]
        else:
            passed = eta[i - 1] < survival[i]
        if passed:
            return i
    return 0
