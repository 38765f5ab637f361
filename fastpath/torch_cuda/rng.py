"""Per-request counter-based uniforms: Philox4x32-10 in plain torch integer ops.

Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as
1, 2, 3", SC 2011) is a keyed bijection of a 128-bit counter; the same generator
cuRAND, torch's CUDA RNG and Triton's ``tl.rand`` use. Here it is written with
int64 tensors and 16-bit limbs for the 32x32 -> 64-bit products, so it runs
identically on every device (and in a Triton kernel, see triton_kernels.py).

Noise layout used by the ``*_seeded`` verifiers (categorical.py):
    u[b, j] = uniform53(philox(key = (seed_lo, seed_hi),
                               counter = (pos_lo, pos_hi, j, STREAM)))
with seed = seed[b] (a 64-bit request seed), pos = position[b] (the absolute
position of the round's first drafted token in the request's output) and j the
slot 0..K (K accept tests + the final draw). The uniform takes 53 bits from two
output words: ((w0 >> 5) * 2^26 + (w1 >> 6)) / 2^53, in [0, 1).

Why (seed, position, slot): a row's noise depends only on its own request, never
on which other requests share the batch or how long their drafts are; and the
start position of successive rounds of one request strictly increases (every
round emits >= 1 token), so no uniform is ever used twice within a request (using
``position + j`` alone would reuse the final-draw uniform of one round as an accept
test of the next, correlating them).
"""
from __future__ import annotations

import numpy as np
import torch

M32 = 0xFFFFFFFF
PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85
STREAM_VERIFY = 0x5EC0


def _mulhilo(a: torch.Tensor, m: int):
    """(hi, lo) 32-bit halves of a * m for 32-bit a (int64 tensor) and constant m,
    through 16-bit limbs so no intermediate exceeds 2^50."""
    a0 = a & 0xFFFF
    a1 = a >> 16
    t0 = a0 * m                      # < 2^48
    t1 = a1 * m                      # < 2^48
    mid = t0 + ((t1 & 0xFFFF) << 16)  # < 2^49
    lo = mid & M32
    hi = ((t1 >> 16) + (mid >> 32)) & M32
    return hi, lo


def philox4x32(c0, c1, c2, c3, k0, k1, rounds: int = 10):
    """Philox4x32 on int64 tensors holding 32-bit words; returns the four output words."""
    for r in range(rounds):
        hi0, lo0 = _mulhilo(c0, PHILOX_M0)
        hi1, lo1 = _mulhilo(c2, PHILOX_M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        if r < rounds - 1:
            k0 = (k0 + PHILOX_W0) & M32
            k1 = (k1 + PHILOX_W1) & M32
    return c0, c1, c2, c3


def _split64(x: torch.Tensor):
    return x & M32, (x >> 32) & M32


def counter_uniforms(seed, position, n: int, *, device=None, stream: int = STREAM_VERIFY,
                     dtype=torch.float64) -> torch.Tensor:
    """u [B, n]: u[b, j] = philox((seed[b]), (position[b], j, stream)) as 53-bit uniforms.

    seed, position: ints or int tensors/arrays [B] (non-negative, < 2^63).
    """
    seed = torch.as_tensor(np.asarray(seed) if not isinstance(seed, torch.Tensor) else seed,
                           dtype=torch.int64, device=device).reshape(-1)
    position = torch.as_tensor(np.asarray(position) if not isinstance(position, torch.Tensor) else position,
                               dtype=torch.int64, device=seed.device).reshape(-1)
    if position.shape[0] == 1 and seed.shape[0] > 1:
        position = position.expand(seed.shape[0])
    if seed.shape[0] == 1 and position.shape[0] > 1:
        seed = seed.expand(position.shape[0])
    if seed.shape != position.shape:
        from specoracle.reference.types import InvalidInput
        raise InvalidInput("position", f"expected {seed.shape[0]} positions, got {position.shape[0]}")
    if bool((seed < 0).any()) or bool((position < 0).any()):
        from specoracle.reference.types import InvalidInput
        raise InvalidInput("seed", "seeds and positions must be non-negative")
    b = seed.shape[0]
    k0, k1 = _split64(seed[:, None].expand(b, n))
    p0, p1 = _split64(position[:, None].expand(b, n))
    j = torch.arange(n, dtype=torch.int64, device=seed.device)[None, :].expand(b, n)
    st = torch.full_like(j, stream & M32)
    w0, w1, _, _ = philox4x32(p0, p1, j, st, k0, k1)
    bits = (w0 >> 5) * (1 << 26) + (w1 >> 6)
    return (bits.to(torch.float64) / float(1 << 53)).to(dtype)
