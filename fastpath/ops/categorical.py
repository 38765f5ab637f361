"""Parity ops and input factories for the discrete verifiers (chain, greedy, block).

Registers ``chain``, ``greedy``, ``block`` (float64, rule ``exact``) and
``chain.float32``, ``block.float32`` (float32 inputs, rule
``decisions_with_margin``) in :mod:`specoracle.fastpath.registry`.

Cases (fixed seeds, one ``numpy.random.Generator`` per case name):
    singletons V = 1 and V = 2 with K = 1; V = 3, 97, 1023, 1025 (primes and odd
    sizes) with K = 0, 1, 4; K = 0 (bonus only); ragged batches (num_draft in 0..K,
    PAD_ID padding); p == q; disjoint supports; one-hot rows; q(x) = 0 off the
    drafted tokens (sparse q); uniforms at 0 and at 1 - 2^-53; the two float64
    fallbacks (a residual whose mass is 0 after a rejection; u * total rounding
    up to the total with a subnormal residual); bad rows (draft out of range, a
    drafted token with q = 0, NaN in a row that is read) that the oracle rejects
    and the kernel must flag with a status.
Row weights: target rows Dirichlet(alpha) with alpha in {0.05, 0.5, 1}; draft
rows the mixture (1 - lam) p + lam Dirichlet(alpha) with lam in {0.05, 0.3, 1},
so that long accepted runs (and the block verifier's later indices) are covered.
"""
from __future__ import annotations

import zlib

import numpy as np

from specoracle.reference.categorical import sample_categorical_rows

from ..registry import Case, Op, register
from ..types import PAD_ID, STATUS_OK
from .parity import block_margin, chain_margin, margin_tolerance

U_MAX = 1.0 - 2.0 ** -53  # the largest double below 1


def case_rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


# ---------------------------------------------------------------- random rows


def _dirichlet(rng, alpha, shape, v):
    g = rng.gamma(alpha, size=shape + (v,))
    g[..., 0] += (g.sum(-1) == 0)  # tiny alpha can underflow a whole row
    return g / g.sum(-1, keepdims=True)


def draw_from(rng, rows):
    """One id per row of ``rows`` [..., V] by the reference's inverse-CDF draw (one uniform
    per row from ``rng``; only positive-weight ids)."""
    return sample_categorical_rows(rows, rng.random(rows.shape[:-1]))[0]


def random_batch(rng, bsz, k, v, ragged=False):
    """p [B, K+1, V], q [B, K, V], draft [B, K] (PAD_ID beyond num_draft), u, num_draft."""
    alpha = rng.choice([0.05, 0.5, 1.0], size=(bsz, 1, 1))
    lam = rng.choice([0.05, 0.3, 1.0], size=(bsz, 1, 1))
    p = np.stack([_dirichlet(rng, float(a), (k + 1,), v) for a in alpha[:, 0, 0]])
    noise = np.stack([_dirichlet(rng, float(a), (k,), v) for a in alpha[:, 0, 0]]) if k else \
        np.zeros((bsz, 0, v))
    q = (1 - lam) * p[:, :k] + lam * noise
    q /= np.where(q.sum(-1, keepdims=True) > 0, q.sum(-1, keepdims=True), 1)
    draft = draw_from(rng, q) if k else np.zeros((bsz, 0), np.int64)
    u = rng.random((bsz, k + 1))
    num = rng.integers(0, k + 1, size=bsz) if ragged else np.full(bsz, k)
    for b in range(bsz):
        draft[b, num[b]:] = PAD_ID
    return dict(p=p, q=q, draft=draft, u=u, num_draft=num.astype(np.int64))


def _one(p, q, draft, u):
    """A batch of one row from per-sequence arrays."""
    p = np.asarray(p, np.float64)[None]
    q = np.asarray(q, np.float64).reshape(1, p.shape[1] - 1, p.shape[2])
    draft = np.asarray(draft, np.int64).reshape(1, -1)
    u = np.asarray(u, np.float64)[None]
    return dict(p=p, q=q, draft=draft, u=u, num_draft=np.array([draft.shape[1]], np.int64))


def _stack(rows):
    """Stack same-shape single-row batches."""
    return {key: np.concatenate([r[key] for r in rows]) for key in rows[0]}


# ---------------------------------------------------------------- cases


def edge_cases(rng) -> list[Case]:
    out = []
    # p == q: every draft accepted (u q < p iff u < 1)
    b = random_batch(rng, 16, 4, 97)
    b["q"] = b["p"][:, :4].copy()
    b["draft"] = draw_from(rng, b["q"])
    out.append(Case("p==q V=97 K=4", b))
    # disjoint supports: q on odd ids, p on even ids -> the first draft is always rejected
    v, k, bsz = 10, 3, 16
    p = np.zeros((bsz, k + 1, v))
    q = np.zeros((bsz, k, v))
    p[..., 0::2] = rng.random((bsz, k + 1, 5)) + 0.01
    q[..., 1::2] = rng.random((bsz, k, 5)) + 0.01
    p /= p.sum(-1, keepdims=True)
    q /= q.sum(-1, keepdims=True)
    out.append(Case("disjoint supports V=10 K=3",
                    dict(p=p, q=q, draft=draw_from(rng, q), u=rng.random((bsz, k + 1)),
                         num_draft=np.full(bsz, k))))
    # one-hot rows: p and q one-hot (same or different hot ids)
    v, k, bsz = 7, 3, 24
    hot_p = rng.integers(0, 3, size=(bsz, k + 1))
    hot_q = rng.integers(0, 3, size=(bsz, k))
    p = np.eye(v)[hot_p]
    q = np.eye(v)[hot_q]
    out.append(Case("one-hot rows V=7 K=3",
                    dict(p=p, q=q, draft=hot_q.astype(np.int64), u=rng.random((bsz, k + 1)),
                         num_draft=np.full(bsz, k))))
    # sparse q: q(x) = 0 off a few ids, the draft is one of them
    b = random_batch(rng, 16, 4, 97)
    mask = rng.random(b["q"].shape) < 0.05
    mask[..., 0] = True
    q = np.where(mask, b["q"] + 1e-3, 0.0)
    q /= q.sum(-1, keepdims=True)
    b["q"] = q
    b["draft"] = draw_from(rng, q)
    out.append(Case("sparse q (q(x) = 0 off the draft) V=97 K=4", b))
    # extreme uniforms
    b = random_batch(rng, 16, 4, 33)
    b["u"] = np.where(rng.random(b["u"].shape) < 0.5, 0.0, U_MAX)
    out.append(Case("u in {0, 1 - 2^-53} V=33 K=4", b))
    # residual of zero mass after a rejection (fallback residual_zero_mass)
    p = np.full((2, 4), 0.25)
    q = np.full((1, 4), 0.25)
    q[0, 1] = 0.25 + 4 * 2.0 ** -54
    out.append(Case("residual zero mass (fallback)", _one(p, q, [1], [U_MAX, 0.6]),
                    float64_only=True))
    # u * total rounds up to a subnormal total (fallback cdf_rounding)
    p = np.array([[5e-324, 0.5, 0.5], [0.2, 0.3, 0.5]])
    q = np.array([[0.0, 0.5 + 2.0 ** -53, 0.5]])
    out.append(Case("u * total rounds to the total (fallback)", _one(p, q, [1], [U_MAX, 0.75]),
                    float64_only=True))
    return out


def bad_rows(rng) -> Case:
    """Rows the oracle rejects, mixed with good rows: the kernel must flag exactly those."""
    b = random_batch(rng, 8, 3, 13)
    b["draft"][1, 0] = 13                 # out of range
    b["draft"][2, 2] = -5                 # negative id
    d = int(b["draft"][3, 1])             # a drafted token with q = 0
    b["q"][3, 1, d] = 0.0
    b["q"][3, 1, (d + 1) % 13] += 1.0
    b["q"][3, 1] /= b["q"][3, 1].sum()
    b["p"][4, 0, b["draft"][4, 0]] = np.nan  # NaN in an entry that is read
    return Case("bad rows (status flags)", b, float64_only=True)


def categorical_cases(quick: bool, with_bad_rows: bool = True) -> list[Case]:
    bsz = 16 if quick else 128
    cases = []
    for v, k in [(1, 1), (2, 1)]:
        name = f"singleton V={v} K={k}"
        rng = case_rng(name)
        cases.append(Case(name, random_batch(rng, bsz, k, v)))
    for v in (3, 97, 1023, 1025):
        for k in (0, 1, 4):
            name = f"V={v} K={k}"
            cases.append(Case(name, random_batch(case_rng(name), bsz, k, v)))
    cases.append(Case("ragged V=97 K=6", random_batch(case_rng("ragged"), 4 * bsz, 6, 97, ragged=True)))
    cases.append(Case("ragged V=2 K=8", random_batch(case_rng("ragged2"), 4 * bsz, 8, 2, ragged=True)))
    cases.extend(edge_cases(case_rng("edge")))
    if with_bad_rows:
        cases.append(bad_rows(case_rng("bad")))
    return cases


def sweep_cases(n_sequences: int, seed: int, chunk: int = 4096) -> list[Case]:
    """Large random sweep: ``n_sequences`` ragged rows over V in {2, 5, 16, 97}, K <= 6."""
    rng = np.random.default_rng(seed)
    cases, done, i = [], 0, 0
    while done < n_sequences:
        v = int(rng.choice([2, 5, 16, 97]))
        k = int(rng.integers(0, 7))
        bsz = min(chunk, n_sequences - done)
        cases.append(Case(f"sweep#{i} V={v} K={k}", random_batch(rng, bsz, k, v, ragged=True)))
        done += bsz
        i += 1
    return cases


def as_dtype(cases: list[Case], dtype) -> list[Case]:
    """The float64 cases cast to ``dtype`` (rows renormalised in that dtype)."""
    out = []
    for c in cases:
        if c.float64_only:
            continue
        inp = dict(c.inputs)
        for key in ("p", "q"):
            a = inp[key].astype(dtype)
            s = a.sum(-1, keepdims=True)
            inp[key] = np.where(s > 0, a / np.where(s > 0, s, 1), a).astype(dtype)
        # a draft whose q rounded to 0 in the narrow dtype is redrawn from the narrow row
        q = inp["q"]
        if q.shape[1]:
            d = inp["draft"]
            idx = np.clip(d, 0, q.shape[2] - 1)
            zero = (np.take_along_axis(q, idx[..., None], -1)[..., 0] == 0) & (d != PAD_ID)
            if zero.any():
                d = d.copy()
                d[zero] = draw_from(case_rng(c.name), q.astype(np.float64))[zero]
                inp["draft"] = d
        out.append(Case(f"{c.name} [{np.dtype(dtype).name}]", inp))
    return out


# ---------------------------------------------------------------- calling and comparing


def _host(out):
    return out.to_numpy() if hasattr(out, "to_numpy") else out


def call_pq(fn, case):
    x = case.inputs
    return _host(fn(x["p"], x["q"], x["draft"], x["u"], num_draft=x["num_draft"], raise_on_error=False))


def call_greedy(fn, case):
    x = case.inputs
    return _host(fn(x["p"], x["draft"], num_draft=x["num_draft"], raise_on_error=False))


def row_slice(case, b):
    x = case.inputs
    n = int(x["num_draft"][b])
    return (x["p"][b, : n + 1].astype(np.float64), x["q"][b, :n].astype(np.float64),
            x["draft"][b, :n], x["u"][b, : n + 1])


def make_reference_row(function_name):
    def reference_row(case, b):
        from specoracle.reference import categorical

        fn = getattr(categorical, function_name)
        if function_name == "verify_greedy":
            p, _, draft, _ = row_slice(case, b)
            return fn(p, draft)
        return fn(*row_slice(case, b))
    return reference_row


def compare_exact(case, b, out, ref):
    status = int(out.status[b])
    if isinstance(ref, Exception):
        if status != STATUS_OK:
            return "match", ""
        return "mismatch", f"oracle rejects the row ({ref}) but status is OK"
    if status != STATUS_OK:
        return "mismatch", f"status {status} on a row the oracle accepts"
    got = out.verdict(b)
    if got != ref:
        return "mismatch", f"got {got}, oracle {ref}"
    return "match", ""


def make_compare_margin(margin_fn, dtype):
    tol = margin_tolerance(dtype)

    def compare(case, b, out, ref):
        if isinstance(ref, Exception):
            return compare_exact(case, b, out, ref)
        if int(out.status[b]) != STATUS_OK:
            return "mismatch", f"status {int(out.status[b])} on a row the oracle accepts"
        got = out.verdict(b)
        same = (got.n_accepted, got.tokens, got.bonus) == (ref.n_accepted, ref.tokens, ref.bonus)
        if same:
            return "match", ""
        m = margin_fn(*row_slice(case, b), ref)
        if m <= tol:
            return "excluded", f"margin {m:.3g} <= {tol:.3g}"
        return "mismatch", f"got {got}, oracle {ref} (margin {m:.3g} > {tol:.3g})"
    return compare


def _register():
    for name, fname, margin in (("chain", "verify_chain", chain_margin),
                                ("block", "verify_block", block_margin)):
        register(Op(name=name, module="categorical", function=fname, rule="exact",
                    cases=categorical_cases, call=call_pq, reference_row=make_reference_row(fname),
                    compare_row=compare_exact, sweep=sweep_cases, certify=name))
        register(Op(name=f"{name}.float32", module="categorical", function=fname,
                    rule="decisions_with_margin", dtype="float32",
                    cases=lambda quick: as_dtype(categorical_cases(quick), np.float32),
                    call=call_pq, reference_row=make_reference_row(fname),
                    compare_row=make_compare_margin(margin, np.float32),
                    sweep=lambda n, seed: as_dtype(sweep_cases(n, seed), np.float32)))
    register(Op(name="greedy", module="categorical", function="verify_greedy", rule="exact",
                cases=categorical_cases, call=call_greedy,
                reference_row=make_reference_row("verify_greedy"), compare_row=compare_exact,
                sweep=sweep_cases, certify="greedy"))


_register()
