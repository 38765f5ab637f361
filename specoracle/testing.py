"""Certification from a test suite: :func:`assert_lossless`.

>>> from specoracle.testing import assert_lossless
>>> from specoracle.reference.categorical import verify_chain_rng
>>> report = assert_lossless(verify_chain_rng, protocol="probs", law="chain", scenarios=("t1",),
...                          alpha=1e-3, tv=0.2, seed=0)
>>> report.verdict
'exact'

The pytest plugin (:mod:`specoracle.pytest_plugin`, fixtures ``lossless`` and
``specoracle_alpha``) splits one suite-wide false-positive budget over the tests that
call it. docs/CERTIFICATION.md, "From your pytest suite".
"""
from __future__ import annotations

from specoracle.reference.types import InvalidInput


class NotLossless(AssertionError):
    """Raised by :func:`assert_lossless`; ``report`` is the certification report."""

    def __init__(self, message: str, report):
        super().__init__(message)
        self.report = report


def as_impl(sampler, protocol=None, law=None, name=None):
    """An :class:`~specoracle.proofs.certify.Impl` from a built-in name, ``module:function``,
    an ``Impl``, or a callable (with ``protocol``/``law`` given here or as the callable's
    ``specoracle_protocol``/``specoracle_law`` attributes; protocol default "probs")."""
    from specoracle.proofs import certify as C
    if isinstance(sampler, (str, C.Impl)):
        spec = C.resolve_impl(sampler)
        if protocol is not None and protocol != spec.protocol:
            raise InvalidInput("protocol", f"{spec.name} speaks {spec.protocol!r}, not {protocol!r}")
        return spec
    if not callable(sampler):
        raise InvalidInput("sampler", f"expected a callable, a name or an Impl, got {type(sampler).__name__}")
    proto = protocol or getattr(sampler, "specoracle_protocol", "probs")
    if proto not in C.PROTOCOLS:
        raise InvalidInput("protocol", f"unknown protocol {proto!r} (one of {', '.join(C.PROTOCOLS)})")
    return C.Impl(name or getattr(sampler, "__qualname__", None) or "sampler", proto, sampler,
                  law if law is not None else getattr(sampler, "specoracle_law", None),
                  (getattr(sampler, "__doc__", "") or "").strip().split("\n")[0])


def assert_lossless(sampler, protocol=None, *, alpha: float = 1e-3, tv: float = 0.05, seed: int = 0,
                    samples: int | None = None, power: float = 0.9, law: str | None = None, scenarios=None,
                    name: str | None = None):
    """Certify ``sampler`` (see :func:`as_impl`) with :func:`specoracle.proofs.certify.certify`
    and return the report if its verdict is ``exact``.

    Raises :class:`NotLossless` (an ``AssertionError`` carrying ``.report``, whose
    message is the full report) when the sampler is not exact, AND when the run is
    underpowered (``samples`` too small to detect ``tv`` with ``power`` at level
    ``alpha``): a test that could not have failed does not pass. ``alpha`` is this
    call's false-positive budget (Holm over its checks); ``law`` ("chain", "block" or
    None) adds the checks of the claimed algorithm's acceptance law.
    """
    from specoracle.proofs.certify import certify
    spec = as_impl(sampler, protocol, law, name)
    report = certify(spec, samples=samples, alpha=alpha, power=power, target_tv=tv, seed=seed, scenarios=scenarios)
    if report.verdict == "exact":
        return report
    if report.verdict == "underpowered":
        head = (f"{spec.name}: underpowered: with samples={samples} the run cannot detect TV {tv:g} with power "
                f"{power:g} at alpha {alpha:g}; use samples=None (sized automatically) or more samples")
    else:
        head = f"{spec.name} is not lossless ({report.verdict})"
    raise NotLossless(head + "\n" + report.format(), report)
