"""Function-level adapter for vLLM V1's rejection sampler, called the way the engine calls it
``vllm.v1.sample.rejection_sampler.RejectionSampler(Sampler()).forward(metadata,
draft_probs, logits, sampling_metadata)``.

What goes in, as in vLLM's model runner (vllm/v1/worker/gpu_model_runner.py):
  * ``metadata`` (``SpecDecodeMetadata``): the drafts of all requests flattened
    (``draft_token_ids`` [T] int32), ``num_draft_tokens`` (ragged, 0 allowed),
    ``cu_num_draft_tokens`` / ``cu_num_sampled_tokens`` (int32 cumulative sums), and the row
    indices of the target logits of draft positions and of the bonus position;
  * ``logits`` [T + B, V] float32: per request its n_i draft-position rows then its bonus row;
  * ``draft_probs`` [T, V] float32 (the distribution the drafts were drawn from) or ``None``
    (ngram / suffix drafters: vLLM then treats q as one-hot at the draft token);
  * ``sampling_metadata`` (``SamplingMetadata``): per-request temperature (0 = greedy row),
    top-k (vocab size = off) / top-p (1 = off), and a ``torch.Generator`` per seeded request.
vLLM warps the target logits itself (temperature, top-k, top-p; ``apply_sampling_constraints``)
and samples the bonus token with its own ``Sampler``.

The certified request is embedded in a RAGGED BATCH: ``FILLERS`` other requests with random
logits, 0..K+1 drafts, mixed greedy / sampled rows and settings, seeded or not, placed before
and after it; only the certified row is returned. A kernel that mixes up rows, offsets or
per-request settings shows as a wrong law of the certified row.

Kernels: on a CPU build of vLLM without Triton-CPU, ``register_triton_kernel_overrides`` routes
the four rejection kernels to vLLM's C++ fallbacks (vllm/utils/cpu_triton_utils.py); this is
what the engine runs here. ``triton=True`` instead runs vLLM's Triton kernel SOURCES through
Triton's interpreter on CPU tensors; it needs TRITON_INTERPRET=1 in the environment
(without it Triton's language builtins are not patched and raise).
"""
from __future__ import annotations

import os

import numpy as np

FILLERS = 3  # other requests in the certified request's batch

KERNELS = ("rejection_greedy_sample_kernel", "rejection_random_sample_kernel", "expand_kernel",
           "sample_recovered_tokens_kernel")


def filler_requests(rng, V: int, K: int, n: int, no_draft_probs: bool) -> list:
    """``n`` random requests (module doc): dicts as taken by :func:`build_batch`."""
    out = []
    for _ in range(n):
        k = int(rng.integers(0, K + 2))
        T = float(rng.choice([0.0, 0.7, 1.0]))
        q = rng.dirichlet(np.ones(V), size=k) if k else np.zeros((0, V))
        draft = [int(rng.choice(V, p=row)) for row in q]
        out.append({"draft": draft, "target_logits": rng.normal(0.0, 1.5, size=(k + 1, V)),
                    "draft_probs": None if no_draft_probs else q, "temperature": T,
                    "top_k": int(rng.integers(1, V + 1)) if rng.random() < 0.5 else None,
                    "top_p": float(rng.uniform(0.5, 1.0)) if rng.random() < 0.5 else None,
                    "seed": int(rng.integers(0, 2 ** 62)) if rng.random() < 0.7 else None})
    return out


def build_batch(requests: list, V: int) -> dict:
    """The arrays of one rejection-sampler call for ``requests`` (module doc), as numpy:
    ``draft_token_ids`` [T], ``num_draft_tokens`` [B], ``cu_num_draft_tokens`` [B],
    ``cu_num_sampled_tokens`` [B], ``target_logits_indices`` [T], ``bonus_logits_indices`` [B],
    ``logits_indices`` [T + B], ``logits`` [T + B, V], ``draft_probs`` [T, V] or None,
    ``temperature`` / ``top_k`` / ``top_p`` [B] (None when no request uses them; top-k off =
    V, top-p off = 1), ``all_greedy`` / ``all_random``, ``seeds`` {row: seed}."""
    n = [len(r["draft"]) for r in requests]
    B, T = len(requests), sum(n)
    starts = np.concatenate([[0], np.cumsum(np.array(n) + 1)])[:-1]  # first logits row of each
    tgt = np.concatenate([s + np.arange(k) for s, k in zip(starts, n)]).astype(np.int32) if T else \
        np.zeros(0, np.int32)
    bonus = (starts + np.array(n)).astype(np.int32)
    none_q = any(r["draft_probs"] is None for r in requests)
    temps = np.array([r["temperature"] for r in requests], dtype=np.float32)
    greedy = temps == 0
    top_k = np.array([r["top_k"] or V for r in requests], dtype=np.int32)
    top_p = np.array([1.0 if r["top_p"] is None else r["top_p"] for r in requests], dtype=np.float32)
    return {
        "draft_token_ids": np.array([t for r in requests for t in r["draft"]], dtype=np.int32),
        "num_draft_tokens": n,
        "cu_num_draft_tokens": np.cumsum(n).astype(np.int32),
        "cu_num_sampled_tokens": np.cumsum(np.array(n) + 1).astype(np.int32),
        "target_logits_indices": tgt, "bonus_logits_indices": bonus,
        "logits_indices": np.arange(T + B, dtype=np.int32),
        "logits": np.concatenate([np.asarray(r["target_logits"], np.float32) for r in requests]),
        "draft_probs": None if none_q else (
            np.concatenate([np.asarray(r["draft_probs"], np.float32).reshape(-1, V) for r in requests])),
        "temperature": None if greedy.all() else temps,
        "top_k": None if (top_k >= V).all() else top_k,
        "top_p": None if (top_p >= 1).all() else top_p,
        "all_greedy": bool(greedy.all()), "all_random": bool((~greedy).all()),
        "seeds": {i: r["seed"] for i, r in enumerate(requests) if r["seed"] is not None},
    }


def _interpreted_kernels(rs):
    """The four rejection kernels of module ``rs`` as Triton-interpreter launchers (the
    dispatcher's override hook passes the kernel's keyword arguments, not the grid)."""
    import inspect

    import triton
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction

    rs.tl, rs.triton = tl, triton  # the kernels' globals: the real triton, not vLLM's placeholder

    def launcher(name):
        raw = getattr(rs, name)
        raw = getattr(raw, "kernel", raw)
        fn = InterpretedFunction(raw)
        names = list(inspect.signature(raw).parameters)

        def launch(*args, **kw):
            kw.update(zip(names, args))  # the dispatcher passes them in the kernel's order
            batch = kw["cu_num_draft_tokens_ptr" if "cu_num_draft_tokens_ptr" in kw else "cu_num_tokens_ptr"]
            grid = (batch.shape[0],)
            if name == "sample_recovered_tokens_kernel":
                grid = (batch.shape[0], max(1, kw["draft_token_ids_ptr"].shape[0]))
            return fn[grid](**kw)
        return launch

    return {f"vllm.v1.sample.rejection_sampler.{k}": launcher(k) for k in KERNELS}


def expand_torch(output, input_val, cu_num_tokens, replace_from, replace_to, MAX_NUM_TOKENS=None):
    """A correct ``expand_kernel`` (per-request value -> its draft positions, ``replace_from``
    -> ``replace_to``), written in place into ``output`` whatever its dtype. Used only to
    localise a fault: vLLM 0.32.0's CPU fallback ``_expand_kernel_impl`` converts ``output``
    to int64 with ``_ensure_int64`` and writes the converted COPY, so ``output`` keeps
    uninitialised memory (docs/CERTIFICATION.md, "vLLM V1")."""
    import torch

    cu = cu_num_tokens.to(torch.int64)
    counts = torch.diff(cu, prepend=torch.zeros(1, dtype=torch.int64))
    vals = torch.where(input_val == replace_from, torch.full_like(input_val, replace_to), input_val)
    n = int(cu[-1]) if len(cu) else 0
    output[:n] = torch.repeat_interleave(vals, counts).to(output.dtype)


def make_sampler(triton: bool = False, patch_expand: bool = False):
    """``(RejectionSampler, run)``: ``run(requests, V, torch_seed)`` -> output rows (lists of
    token ids, placeholders removed), one per request, from one ``forward`` call."""
    import torch
    from vllm.platforms import current_platform
    from vllm.triton_utils.dispatcher import register_kernels
    from vllm.v1.sample import rejection_sampler as rs
    from vllm.v1.sample.logits_processor import LogitsProcessors
    from vllm.v1.sample.metadata import SamplingMetadata
    from vllm.v1.sample.sampler import Sampler
    from vllm.v1.spec_decode.metadata import SpecDecodeMetadata

    if triton:
        if os.environ.get("TRITON_INTERPRET") != "1":
            raise ImportError("the Triton-kernel variant needs TRITON_INTERPRET=1 (Triton's interpreter)")
        register_kernels(_interpreted_kernels(rs))
    else:
        current_platform.register_triton_kernel_overrides()  # the engine's CPU kernels
    if patch_expand:
        register_kernels({"vllm.v1.sample.rejection_sampler.expand_kernel": expand_torch})
    sampler = rs.RejectionSampler(Sampler())
    # rows of a few entries: intra-op threads only spin (vLLM's CPU build sets many OpenMP
    # threads; on a shared 2-core machine every op then costs ~30 ms instead of ~30 us)
    torch.set_num_threads(1)

    def run(requests, V: int, torch_seed: int):
        a = build_batch(requests, V)
        t = {k: (torch.from_numpy(v) if isinstance(v, np.ndarray) else v) for k, v in a.items()}
        B = len(requests)
        meta = SpecDecodeMetadata(draft_token_ids=t["draft_token_ids"], num_draft_tokens=a["num_draft_tokens"],
                                  cu_num_draft_tokens=t["cu_num_draft_tokens"],
                                  cu_num_sampled_tokens=t["cu_num_sampled_tokens"],
                                  target_logits_indices=t["target_logits_indices"],
                                  bonus_logits_indices=t["bonus_logits_indices"],
                                  logits_indices=t["logits_indices"])
        gens = {}
        for i, s in a["seeds"].items():
            gens[i] = torch.Generator().manual_seed(s)
        sm = SamplingMetadata(temperature=t["temperature"], all_greedy=a["all_greedy"],
                              all_random=a["all_random"], top_p=t["top_p"], top_k=t["top_k"],
                              generators=gens, max_num_logprobs=None, no_penalties=True,
                              prompt_token_ids=None, frequency_penalties=torch.zeros(B),
                              presence_penalties=torch.zeros(B), repetition_penalties=torch.ones(B),
                              output_token_ids=[[] for _ in range(B)], allowed_token_ids_mask=None,
                              bad_words_token_ids={}, logitsprocs=LogitsProcessors(),
                              spec_token_ids=[list(r["draft"]) for r in requests])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(torch_seed)  # unseeded requests draw from the global generator
            out = sampler(meta, t["draft_probs"], t["logits"], sm)
        ids = out.sampled_token_ids.tolist()
        return [[x for x in row if 0 <= x < V] for row in ids]

    return sampler, run


def rejection_sampler_call(no_draft_probs: bool = False, triton: bool = False, patch_expand: bool = False,
                           fillers: int = FILLERS):
    """A "logits"-protocol callable (proofs/certify/core.py): the certified request at a random
    position among ``fillers`` random requests, its own seeded generator. ``patch_expand``
    replaces only the expand kernel by :func:`expand_torch` (fault localisation)."""
    from specoracle.reference.processing import process_logits

    _, run = make_sampler(triton=triton, patch_expand=patch_expand)

    def call(lp, lq, draft, rng, temperature, top_p, top_k=None):
        lp = np.asarray(lp, dtype=np.float64)
        V, K = lp.shape[1], lp.shape[0] - 1
        q = None if no_draft_probs else process_logits(np.asarray(lq), temperature=temperature, top_k=top_k,
                                                       top_p=top_p)
        me = {"draft": [int(x) for x in draft], "target_logits": lp, "draft_probs": q,
              "temperature": float(temperature), "top_k": top_k, "top_p": top_p,
              "seed": int(rng.integers(0, 2 ** 62))}
        others = filler_requests(rng, V, K, fillers, no_draft_probs)
        at = int(rng.integers(0, len(others) + 1))
        rows = run(others[:at] + [me] + others[at:], V, int(rng.integers(0, 2 ** 62)))
        return rows[at]

    return call
