"""The adapter protocol of :mod:`specoracle.proofs.certify`: the protocols and laws, the
:class:`Impl` record of a sampler to certify, the validation of a third-party adapter's
attributes, and the normalisation of a sampler's output into (tokens, tau) with an
:class:`OutputFormatError` naming what breaks the protocol (the package doc: Outputs).

Lowest module of the package: the adapters, mutants and the batch protocol build
:class:`Impl` records from here, the registry (registry.py) collects them.
"""
from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np

from specoracle.reference.types import InvalidInput

PROTOCOLS = ("probs", "logits", "mss", "kseq", "tree", "gauss_step", "gauss_residual", "gauss_block", "batch")
LAWS = ("chain", "block")   # values of Impl.law / fn.specoracle_law (None: algorithm-agnostic)
ADAPTER_ATTRIBUTES = ("specoracle_protocol", "specoracle_law")

DEFAULT_SCENARIOS = {
    "probs": ("t1", "zeros", "scaled", "markov", "spread", "rounds"),
    "logits": ("warped", "topk", "minp", "offsets"),
    "mss": ("mss",),
    "kseq": ("kseq",),
    "tree": ("tree",),
    "gauss_step": ("gstep", "gstep_far"),
    "gauss_residual": ("gres", "gres_tail"),
    "gauss_block": ("gblock",),
}


class OutputFormatError(Exception):
    """A sampler's output breaks the adapter protocol (module doc: Outputs)."""


@dataclass(frozen=True)
class Impl:
    """A sampler to certify. ``fn`` follows ``protocol`` (module doc); ``law`` names the
    algorithm whose closed-form tau law applies ("chain", "block", or None);
    ``scenarios`` overrides the protocol's default battery; ``core``/``oracle`` (both
    ``(p, q, draft, u) -> Verdict``) enable the coupled check; ``batch`` (batched fast
    paths) lets the statistical runs call the kernel once per scenario: protocol "probs"
    ``(p [n,K+1,V], q [n,K,V], draft [n,K], u [n,K+1])``, "mss" ``(p [V], q [k,V],
    children [n,k], rng)``, "gauss_step" ``(m_p [n,d], m_q [n,d], s [n], z [n,d], rng)``,
    "gauss_block" ``(m_p [n,L+1,d], m_q [n,L,d], s [n,L+1], z [n,L,d], rng)``, each
    returning a batched result whose ``verdict(j)`` is what ``fn`` returns for row j (the
    batch draws from ``rng`` the noise ``fn`` would draw, for all n rows at once).
    ``exempt``: ``((scenario, reason), ...)`` of the protocol's scenarios this sampler
    cannot be fed (e.g. the tree twins' one draft row per parent): left out of its default
    battery, and asking for one is bad input naming the reason."""

    name: str
    protocol: str
    fn: Callable
    law: str | None = None
    description: str = ""
    issue: str = ""
    scenarios: tuple | None = None
    core: Callable | None = None
    oracle: Callable | None = None
    batch: Callable | None = None   # the protocol's inputs for n rows at once (above)
    exempt: tuple = ()              # ((scenario, reason), ...)



def adapter_attributes(fn, name: str = "impl"):
    """``(protocol, law)`` from ``fn.specoracle_protocol`` (default "probs") and
    ``fn.specoracle_law`` (default None), validated: an unknown value, or an attribute
    that looks like a misspelling of one of them, raises :class:`InvalidInput`."""
    attrs = [a for a in getattr(fn, "__dict__", {}) if a not in ADAPTER_ATTRIBUTES]
    for a in attrs:
        close = difflib.get_close_matches(a.lower(), ADAPTER_ATTRIBUTES, n=1, cutoff=0.75)
        if close or a.lower().startswith("specoracle"):
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise InvalidInput("impl", f"{name}: unknown attribute {a!r}; {hint}the adapter attributes are "
                                       f"{', '.join(ADAPTER_ATTRIBUTES)}")
    proto = getattr(fn, "specoracle_protocol", "probs")
    if proto not in PROTOCOLS:
        raise InvalidInput("impl", f"{name}: specoracle_protocol = {proto!r} is not a protocol "
                                   f"(one of {', '.join(PROTOCOLS)})")
    law = getattr(fn, "specoracle_law", None)
    if law is not None and law not in LAWS:
        raise InvalidInput("impl", f"{name}: specoracle_law = {law!r} is not a known law "
                                   f"(one of {', '.join(LAWS)}, or None for the algorithm-agnostic checks)")
    return proto, law


def first_sentence(doc) -> str:
    """The first sentence of a docstring's first paragraph, on one line ("" if none)."""
    para = inspect.cleandoc(doc or "").split("\n\n")[0]
    text = " ".join(para.split())
    for end in (". ", ".\n"):
        i = text.find(end)
        if i >= 0:
            return text[:i + 1]
    return text


# ---------------------------------------------------------------- output normalisation


def tokens_and_tau(out):
    """(tokens tuple, tau or None) from a Verdict, a sequence, or (sequence, tau)."""
    raw, tau = split_output(out)
    return tuple(int(t) for t in np.asarray(raw).ravel()), (None if tau is None else int(tau))


def split_output(out):
    """(ids, n_accepted or None) of an output (module doc: Outputs), unchecked."""
    if hasattr(out, "tokens") and hasattr(out, "n_accepted"):
        return out.tokens, out.n_accepted
    if isinstance(out, tuple) and len(out) == 2 and np.ndim(out[0]) == 1 and np.ndim(out[1]) == 0:
        return out
    return out, None


def short_output(out) -> str:
    text = repr(out)
    return text if len(text) <= 120 else text[:117] + "..."


def check_ids(raw, V: int, max_len: int, out) -> tuple:
    """Token ids from ``raw``, or :class:`OutputFormatError` naming what is wrong."""
    arr = np.asarray(raw)
    if arr.ndim != 1:
        raise OutputFormatError(f"expected a 1-D sequence of token ids, got shape {arr.shape}: {short_output(out)}")
    if arr.size == 0:
        raise OutputFormatError(f"no token emitted (a round emits n_accepted + 1 >= 1 tokens): {short_output(out)}")
    if arr.dtype.kind not in "iu":
        raise OutputFormatError(f"token ids have dtype {arr.dtype}, expected integers: {short_output(out)}")
    if np.any(arr < 0):
        i = int(np.flatnonzero(arr < 0)[0])
        what = "-1 padding" if arr[i] == -1 else f"a negative id {int(arr[i])}"
        raise OutputFormatError(f"{what} at index {i}: return only the emitted tokens: {short_output(out)}")
    if np.any(arr >= V):
        i = int(np.flatnonzero(arr >= V)[0])
        raise OutputFormatError(f"token id {int(arr[i])} at index {i} is out of range [0, {V}): {short_output(out)}")
    if arr.size > max_len:
        raise OutputFormatError(f"{arr.size} tokens emitted, at most {max_len} (K + 1) per round: "
                                f"{short_output(out)}")
    return tuple(int(t) for t in arr)


def block_output(out, V: int, K: int):
    """(tokens, tau) of one round with K drafted tokens; OutputFormatError if malformed."""
    raw, tau = split_output(out)
    toks = check_ids(raw, V, K + 1, out)
    if tau is None:
        return toks, len(toks) - 1
    if np.asarray(tau).dtype.kind not in "iu":
        raise OutputFormatError(f"n_accepted has dtype {np.asarray(tau).dtype}, expected an integer: "
                                f"{short_output(out)}")
    tau = int(tau)
    if tau == len(toks):
        raise OutputFormatError(f"n_accepted = {tau} with {len(toks)} tokens counts the bonus/corrected token: "
                                f"n_accepted is the number of accepted DRAFT tokens, len(tokens) == n_accepted + 1: "
                                f"{short_output(out)}")
    if tau != len(toks) - 1:
        raise OutputFormatError(f"n_accepted = {tau} but {len(toks)} tokens emitted (expected len(tokens) == "
                                f"n_accepted + 1): {short_output(out)}")
    return toks, tau


