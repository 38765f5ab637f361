"""Adapters: the built-in names of ``specoracle certify`` (reference.*, fast paths,
third-party samplers), each a factory registered lazily with
:func:`specoracle.proofs.certify.register_impl` (registry.py).

Protocols are documented in :mod:`specoracle.proofs.certify`. Third-party adapters
import their package only when built (``certify`` then reports "not available:
<reason>" if it is missing):

``transformers.speculative_sampling``  Hugging Face transformers'
    ``transformers.generation.utils._speculative_sampling(candidate_input_ids,
    candidate_logits, candidate_length, new_logits, assistant_ensemble_weight=None)``
    (the function ``generate()`` uses for assisted decoding with do_sample=True). It is
    fed float32 logits ``log p`` / ``log q`` (softmax recovers p and q; zeros become
    -inf), batch 1, and draws its noise from torch's global generator, which the adapter
    seeds from the certifier's rng inside ``torch.random.fork_rng`` (the caller's
    global torch state is restored).
``flashinfer.chain_speculative_sampling``  ``flashinfer.sampling.chain_speculative_sampling
    (draft_probs [B,K,V], draft_token_ids [B,K], target_probs [B,K+1,V], ...)`` on CUDA;
    output ids padded with -1.
``vllm.v1.rejection_sampler`` (``.ngram``: draft_probs=None; ``.triton``: the Triton kernel
    sources in Triton's interpreter)  vLLM V1's ``RejectionSampler.forward`` as the engine
    calls it, the certified request inside a ragged batch (see proofs/certify/vllm_v1.py); run
    ``certify`` with the vLLM venv's python (scripts/setup-vllm-env.sh). The former v0
    adapter (``vllm.model_executor.layers.rejection_sampler``) targeted an API that vLLM V1
    removed; it is gone.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from specoracle.fastpath import registry

from .impl import DEFAULT_SCENARIOS, Impl


# ---------------------------------------------------------------- reference


def _reference_impls():
    from specoracle.reference import categorical as cat
    from specoracle.reference.processing import process_logits

    def chain_logits(lp, lq, draft, rng, temperature, top_p, top_k=None, min_p=None):
        warp = dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
        return cat.verify_chain_rng(process_logits(lp, **warp), process_logits(lq, **warp), draft, rng)

    return {
        "reference.chain": lambda: Impl("reference.chain", "probs", cat.verify_chain_rng, "chain",
                                        "token-level speculative sampling (Leviathan/Chen), §1.2"),
        "reference.block": lambda: Impl("reference.block", "probs", cat.verify_block_rng, "block",
                                        "block verification (Sun et al.), §1.3"),
        "reference.greedy": lambda: Impl("reference.greedy", "probs",
                                         lambda p, q, d, rng: cat.verify_greedy(p, d), "chain",
                                         "greedy verification on one-hot (temperature 0) targets",
                                         scenarios=("greedy",)),
        "reference.chain_logits": lambda: Impl("reference.chain_logits", "logits", chain_logits, "chain",
                                               "process_logits on both sides, then verify_chain"),
    }


def _tree_impls():
    def mss():
        from specoracle.reference import tree
        return Impl("reference.mss", "mss", tree.verify_mss_rng, None, "SpecInfer MSS at one node, §1.4.1")

    def kseq():
        from specoracle.reference import tree
        return Impl("reference.kseq", "kseq", tree.verify_kseq_rng, None, "SpecTr K-SEQ, §1.4.2")

    def det():
        from specoracle.reference import tree
        return Impl("reference.tree_deterministic", "tree", tree.verify_tree_deterministic_rng, None,
                    "sample-and-match over deterministic candidates, §1.4.3")

    return {"reference.mss": mss, "reference.kseq": kseq, "reference.tree_deterministic": det}


def _gaussian_impls():
    def refl():
        from specoracle.reference import gaussian as g
        return Impl("reference.gaussian_reflection", "gauss_step",
                    lambda mp, mq, s, z, rng: g.reflection_coupling(mp, mq, s, z, rng.random()), None,
                    "reflection maximal coupling, §2.3")

    def gamma():
        from specoracle.reference import gaussian as g
        return Impl("reference.gaussian_gamma", "gauss_step",
                    lambda mp, mq, s, z, rng: g.gamma_coupling(mp, mq, s, z, rng.random(), rng.random(),
                                                                rng.standard_normal(len(mp))), None,
                    "gamma-maximal coupling with ResidualGauss, §2.4 / §4.2")

    def residual():
        from specoracle.reference import gaussian as g
        def call(mp, mq, s, c, rng):
            out = g.residual_gauss_rng(mp, mq, s, c, rng)
            return out[0] if isinstance(out, tuple) else out  # (x, fallbacks)

        return Impl("reference.gaussian_residual", "gauss_residual", call, None,
                    "ResidualGauss: exact sampler of (c p - q)+, §2.4")

    def block():
        from specoracle.reference import gaussian as g
        return Impl("reference.gaussian_block", "gauss_block", g.verify_gaussian_block_rng, None,
                    "Gaussian block verification, §2.5")

    def chain():
        from specoracle.reference import gaussian as g
        return Impl("reference.gaussian_chain", "gauss_block", g.verify_gaussian_chain_rng, None,
                    "token-level verification of a Gaussian window (gamma coupling), §3.2")

    return {"reference.gaussian_reflection": refl, "reference.gaussian_gamma": gamma,
            "reference.gaussian_residual": residual, "reference.gaussian_block": block,
            "reference.gaussian_chain": chain}


# ---------------------------------------------------------------- fast paths (from the registry)
#
# The names are ``<backend>.<certify>`` for every op of fastpath/registry.py that has a certify
# name, on every fast-path backend present (``registry.certify_names()``); the adapters below wrap
# the batched twin (a batch of one) into the op's protocol. chain / block also expose the
# noise-injected core and its oracle, for the coupled check.


def _host(out):
    """A backend's batched result on the host (results with ``to_numpy``: torch, Gaussian)."""
    return out.to_numpy() if hasattr(out, "to_numpy") else out


def _probs_adapter(name, fn, op, where):
    from specoracle.reference import categorical as cat
    oracle = getattr(cat, op.function)

    def core(p, q, d, u):
        return _host(fn(np.asarray(p)[None], np.asarray(q)[None], np.asarray(d)[None], np.asarray(u)[None])).verdict(0)

    def call(p, q, d, rng):
        return core(p, q, d, rng.random(np.shape(p)[0]))

    def batch(p, q, d, u):
        return fn(np.ascontiguousarray(p), np.ascontiguousarray(q), np.ascontiguousarray(d),
                  np.ascontiguousarray(u))

    law = {"verify_chain": "chain", "verify_block": "block"}[op.function]
    return Impl(name, "probs", call, law, f"{where}, batched, coupled to the oracle",
                 core=core, oracle=oracle, batch=batch)


def _greedy_adapter(name, fn, op, where):
    def call(p, q, d, rng):
        return _host(fn(p[None], np.asarray(d)[None])).verdict(0)
    return Impl(name, "probs", call, "chain", f"{where} (batch of 1)", scenarios=("greedy",))


def _tree_adapter(name, fn, op, where):
    def call(p, tokens, parents, rng):
        n = len(tokens)
        return _host(fn(np.asarray(p)[None], np.asarray(tokens, dtype=np.int64)[None],
                        np.asarray(parents, dtype=np.int64)[None], rng.random(n + 1)[None],
                        num_nodes=np.array([n], dtype=np.int64))).verdict(0)
    return Impl(name, "tree", call, None, f"{where} (batch of 1)")


def _star_tree(p, q, children, n):
    """n copies of one MSS node as the twins' whole tree: a star of k leaves (the children,
    drawn from the root's draft row q[0]); the leaves' rows are never read before the
    result is cut back to the node's (p and q stand in). Shapes: p [n, k+1, V] (q the
    same), tokens [n, k], parents [n, k]."""
    k = np.shape(children)[1]
    rows = (k + 1, np.shape(p)[0])
    return (np.ascontiguousarray(np.broadcast_to(p, (n,) + rows), dtype=np.float64),
            np.ascontiguousarray(np.broadcast_to(q[0], (n,) + rows), dtype=np.float64),
            np.ascontiguousarray(children, dtype=np.int64), np.full((n, k), -1, dtype=np.int64))


class _NodeVerdicts:
    """The whole-tree twin's verdicts on star trees read as one-node MSS verdicts
    (``verify_mss``): an accepted child is the node's output (n_accepted 1, its token, its
    index as the path); the bonus drawn after that leaf belongs to the next node, dropped."""

    def __init__(self, out):
        self.out = _host(out)

    def verdict(self, j):
        v = self.out.verdict(j)
        if v.n_accepted == 0:
            return v
        return dataclasses.replace(v, n_accepted=1, tokens=v.tokens[:1], bonus=False, path=v.path[:1])


def _mss_adapter(name, fn, op, where):
    """Protocol "mss" (one node, child j drawn from q_j) from the twin of verify_mss_tree,
    which takes whole trees with ONE draft row per parent: the node is a star tree, served
    when every q_j is the same row (scenario ``mss_shared``). Noise u [k+1] as verify_mss:
    u[j] tests child j, u[k] the final draw (a batch of one reads the stream as
    reference.mss does)."""
    from specoracle.reference.types import InvalidInput

    def batch(p, q, children, rng):
        q = np.asarray(q, dtype=np.float64)
        differs = [j for j in range(1, q.shape[0]) if not np.array_equal(q[j], q[0])]
        if differs:
            raise InvalidInput("q", f"row {differs[0]} differs from row 0: {op.name} twins draw every child "
                                    f"of a node from one draft row")
        n, k = np.shape(children)
        ps, qs, toks, parents = _star_tree(np.asarray(p, dtype=np.float64), q, children, n)
        return _NodeVerdicts(fn(ps, qs, toks, parents, rng.random((n, k + 1))))

    def call(p, q, children, rng):
        return batch(p, q, np.asarray(children)[None], rng).verdict(0)

    scenarios = tuple(s for s in DEFAULT_SCENARIOS["mss"] if s not in op.certify_exempt) + ("mss_shared",)
    return Impl(name, "mss", call, None, f"{where}, one node as a star tree, batched",
                scenarios=scenarios, batch=batch, exempt=tuple(op.certify_exempt.items()))


def _gauss_step_adapter(name, fn, op, where):
    """Protocol "gauss_step" from the twin of gamma_coupling / reflection_coupling [B, d]:
    the noise is drawn as reference.gaussian_gamma / _reflection draw it, u then (gamma)
    u_res and z_orth, for all n rows at once (a batch of one reads the stream as they do)."""
    gamma = op.function == "gamma_coupling"

    def batch(m_p, m_q, s, z, rng):
        n, d = np.shape(z)
        noise = (rng.random(n),) + ((rng.random(n), rng.standard_normal((n, d))) if gamma else ())
        return _host(fn(*(np.ascontiguousarray(a, dtype=np.float64) for a in (m_p, m_q, s, z) + noise)))

    def call(m_p, m_q, s, z, rng):
        return batch(np.asarray(m_p)[None], np.asarray(m_q)[None], np.array([float(s)]), np.asarray(z)[None],
                     rng).verdict(0)

    return Impl(name, "gauss_step", call, None, f"{where}, batched", batch=batch)


def _gauss_window_adapter(name, fn, op, where):
    """Protocol "gauss_block" from the twin of verify_gaussian_block / _chain [B, L, d]:
    eta [n, L], u_res [n], z_orth [n, d] drawn as the reference's ``_rng`` wrappers draw
    them, for all n windows at once."""
    def batch(m_p, m_q, s, z, rng):
        n, big_l, d = np.shape(z)
        noise = (rng.random((n, big_l)), rng.random(n), rng.standard_normal((n, d)))
        return _host(fn(*(np.ascontiguousarray(a, dtype=np.float64) for a in (m_p, m_q, s, z) + noise)))

    def call(m_p, m_q, s, z, rng):
        s = np.broadcast_to(np.asarray(s, dtype=np.float64), (np.shape(m_p)[0],))
        return batch(*(np.asarray(a)[None] for a in (m_p, m_q, s, z)), rng).verdict(0)

    return Impl(name, "gauss_block", call, None, f"{where}, batched", batch=batch)


#: registry op name -> the adapter of its twins (every op with a certify name has one)
FASTPATH_ADAPTERS = {"chain": _probs_adapter, "block": _probs_adapter, "greedy": _greedy_adapter,
                     "tree_deterministic": _tree_adapter, "tree_mss": _mss_adapter,
                     "gaussian_step": _gauss_step_adapter, "gaussian_reflection": _gauss_step_adapter,
                     "gaussian_block": _gauss_window_adapter, "gaussian_chain": _gauss_window_adapter}


def _fastpath_factory(name, backend, op_name):
    def factory():
        op = registry.get(op_name)
        try:
            fn = registry.resolve(backend, op)
        except registry.MissingOp as exc:  # reported by certify as "not available"
            raise ImportError(str(exc)) from None
        where = f"{registry.PACKAGES[backend]}.{op.module}.{op.function}"
        return FASTPATH_ADAPTERS[op_name](name, fn, op, where)
    return factory


def fastpath_impls():
    return {name: _fastpath_factory(name, backend, op_name)
            for name, (backend, op_name) in registry.certify_names().items()}


# ---------------------------------------------------------------- third party


def transformers_speculative_sampling():
    """transformers' ``_speculative_sampling`` through the "probs" protocol (module doc)."""
    import torch

    from specoracle.fastpath.models.llm.hf import hf_speculative_sampling
    _speculative_sampling = hf_speculative_sampling()

    def call(p, q, draft, rng):
        k = len(draft)
        with np.errstate(divide="ignore"):
            lp = torch.from_numpy(np.log(np.asarray(p, dtype=np.float64))).to(torch.float32)[None]
            lq = torch.from_numpy(np.log(np.asarray(q, dtype=np.float64))).to(torch.float32)[None]
        ids = torch.as_tensor(np.asarray(draft, dtype=np.int64))[None]
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # rows of a few entries: intra-op threads only spin (restored below)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(rng.integers(0, 2 ** 62)))
                tokens, n_matches = _speculative_sampling(ids, lq, k, lp)
        finally:
            torch.set_num_threads(threads)
        return [int(t) for t in tokens[0].tolist()], int(n_matches)

    return Impl("transformers.speculative_sampling", "probs", call, "chain",
                "transformers.generation.utils._speculative_sampling (float32 logits = log p, log q)")


def flashinfer_chain_speculative_sampling():
    import torch
    from flashinfer.sampling import chain_speculative_sampling
    if not torch.cuda.is_available():
        raise ImportError("flashinfer needs a CUDA device")

    def call(p, q, draft, rng):
        dev = "cuda"
        gen = torch.Generator(device=dev)
        gen.manual_seed(int(rng.integers(0, 2 ** 62)))
        out = chain_speculative_sampling(
            torch.as_tensor(np.asarray(q), dtype=torch.float32, device=dev)[None],
            torch.as_tensor(np.asarray(draft), dtype=torch.int32, device=dev)[None],
            torch.as_tensor(np.asarray(p), dtype=torch.float32, device=dev)[None], generator=gen)
        ids = (out[0] if isinstance(out, tuple) else out)[0].tolist()
        return [int(t) for t in ids if t >= 0]

    return Impl("flashinfer.chain_speculative_sampling", "probs", call, "chain",
                "flashinfer.sampling.chain_speculative_sampling (CUDA, float32)")


def vllm_v1_rejection_sampler(no_draft_probs: bool = False, triton: bool = False, patch_expand: bool = False):
    """vLLM V1's rejection sampler through the "logits" protocol (proofs/certify/vllm_v1.py)."""
    from .vllm_v1 import rejection_sampler_call
    call = rejection_sampler_call(no_draft_probs=no_draft_probs, triton=triton, patch_expand=patch_expand)
    where = "Triton kernels in Triton's interpreter" if triton else "the engine's kernels (CPU: C++ fallbacks)"
    name = "vllm.v1.rejection_sampler" + (".ngram" if no_draft_probs else "") + (".triton" if triton else "")
    if patch_expand:
        name, where = name + ".patched_expand", where + ", expand kernel replaced by a torch one"
    if no_draft_probs:
        return Impl(name, "logits", call, "chain",
                    f"vllm.v1 RejectionSampler, draft_probs=None (q one-hot, ngram/suffix), ragged batch, {where}",
                    scenarios=("logits_onehot_q", "logits_greedy"))
    return Impl(name, "logits", call, "chain",
                f"vllm.v1 RejectionSampler.forward with draft_probs, ragged batch of 4 requests, {where}",
                scenarios=("logits_t1", "logits_topk", "warped", "logits_greedy"))


def _vllm_v1_variants():
    """``vllm.v1.rejection_sampler[.ngram][.triton][.patched_expand]``."""
    out = {}
    for ngram in (False, True):
        for triton in (False, True):
            for patch in (False, True):
                if triton and patch:
                    continue  # the interpreted Triton expand needs no patch
                name = ("vllm.v1.rejection_sampler" + (".ngram" if ngram else "") + (".triton" if triton else "")
                        + (".patched_expand" if patch else ""))
                out[name] = (lambda a, b, c: lambda: vllm_v1_rejection_sampler(a, b, c))(ngram, triton, patch)
    return out


THIRD_PARTY = {
    "transformers.speculative_sampling": transformers_speculative_sampling,
    "flashinfer.chain_speculative_sampling": flashinfer_chain_speculative_sampling,
    **_vllm_v1_variants(),
}


def register_all(register) -> None:
    """Register every adapter name with ``register(name, factory)``."""
    for group in (_reference_impls(), _tree_impls(), _gaussian_impls(), fastpath_impls(), THIRD_PARTY):
        for name, factory in group.items():
            register(name, factory)
