"""Parity ops that only the torch backend (fastpath/torch_cuda/) has (registered in
fastpath/registry.py with ``backends=("torch",)``; the numba backend reports them
missing): verification from logits with the warps inside, and the Triton-kernel
variants of tree and Gaussian verification.

    chain_logits, block_logits            float64 logits, rule decisions_with_margin, tol 1e-12
    chain_logits.bf16, block_logits.bf16   bf16 logits (computed in float32), tol 32 * 2^-23
    tree_deterministic.triton             sample-and-match kernel (triton_tree.py), tol 1e-12
    tree_mss.triton                       SpecInfer MSS kernel (triton_tree.py), tol 1e-12
    gaussian_chain.fused, gaussian_block.fused, gaussian_step.fused
                                          fused (B, L, d) pass (triton_gaussian.py),
                                          rule allclose_vs_naive as the torch twin

Which implementation runs: ``parity_impl()`` -- "triton" where a Triton kernel can run
(TRITON_INTERPRET=1, or SPECORACLE_PARITY_DEVICE=cuda which also moves the inputs to
the GPU), else "torch" (the twins' torch paths: the same ops then check those). So
the default CPU run checks the torch paths; tests/fastpath/torch_cuda/test_torch_triton_interp.py runs the
same ops in Triton's interpreter, and a GPU run with SPECORACLE_PARITY_DEVICE=cuda
checks the compiled kernels.

Logits rule: the oracle is reference/processing.process_logits on the row's values
(in float64) followed by the reference verifier; a row whose decisions differ is
excluded only if its smallest margin is <= tol, where the margin is the smaller of
the decision margin (parity.chain_margin / block_margin on the warped rows) and the
warp margin of every row of the slice (:func:`warp_margin`: the distance of top_p
from the cumulative masses around the top-p cut, and of every probability from the
min-p threshold). Top-k and the greedy argmax are exact (ordering and ties by id).
"""
from __future__ import annotations

import os

import numpy as np

from specoracle.reference.categorical import sample_categorical_rows

from ..registry import Case, Op, register
from ..types import PAD_ID, STATUS_OK
from . import gaussian as pg
from . import tree as pt
from .categorical import case_rng
from .parity import block_margin, chain_margin, draw_margin

LOGITS_TOL = {"float64": 1e-12, "bfloat16": 32 * 2.0 ** -23, "float32": 32 * 2.0 ** -23}


def parity_device() -> str:
    return os.environ.get("SPECORACLE_PARITY_DEVICE", "cpu")


def parity_impl() -> str:
    """"triton" where a Triton kernel can run here, else "torch"."""
    if os.environ.get("TRITON_INTERPRET") == "1" or parity_device().startswith("cuda"):
        return "triton"
    return "torch"


def _t(x, dtype=None):
    import torch
    t = torch.as_tensor(np.ascontiguousarray(x)).to(parity_device())
    return t.to(dtype) if dtype is not None else t


def _host(out):
    return out.to_numpy() if hasattr(out, "to_numpy") else out


# ---------------------------------------------------------------- logits: cases


def _round_bf16(x):
    import torch
    return torch.as_tensor(x, dtype=torch.float32).to(torch.bfloat16).to(torch.float64).numpy()


def _knob(row_knobs, b):
    t, k, p, m = (row_knobs[name][b] for name in ("temperature", "top_k", "top_p", "min_p"))
    return dict(temperature=float(t), top_k=int(k), top_p=float(p), min_p=float(m))


def warp_rows(x, kn):
    """Reference process_logits of rows x [R, V] with one row's knobs."""
    from specoracle.reference.processing import process_logits
    return process_logits(np.asarray(x, np.float64), **kn)


def logits_batch(rng, bsz, k, v, *, bf16=False, ragged=True, scale=3.0):
    """p_logits [B, K+1, V], q_logits [B, K, V] (rounded to bf16 values if ``bf16``),
    drafts drawn from the warped q, per-row knobs mixing greedy rows, top-k (1, 5,
    20, off), top-p (0.8, 0.95, off), min-p (0.05, 0.2, off); ties at the top of some
    rows and -inf logits in others."""
    pl = rng.normal(size=(bsz, k + 1, v)) * scale
    ql = pl[:, :k] + rng.normal(size=(bsz, k, v))
    for b in range(0, bsz, 3):                       # ties at the top: lower id first
        j = int(rng.integers(0, v))
        pl[b, :, j] = pl[b].max(-1)
        if k:
            ql[b, :, j] = ql[b].max(-1)
    for b in range(1, bsz if v > 4 else 0, 4):       # -inf logits
        pl[b, :, -3:] = -np.inf
        if k:
            ql[b, :, -2:] = -np.inf
    if bf16:
        pl, ql = _round_bf16(pl), _round_bf16(ql)
    knobs = dict(temperature=rng.choice([0.0, 0.7, 1.0, 1.3], size=bsz, p=[0.15, 0.3, 0.3, 0.25]),
                 top_k=rng.choice([1, 5, 20, v + 3], size=bsz),
                 top_p=rng.choice([0.8, 0.95, 1.0], size=bsz),
                 min_p=rng.choice([0.0, 0.05, 0.2], size=bsz))
    num = rng.integers(0, k + 1, size=bsz) if ragged else np.full(bsz, k)
    draft = np.full((bsz, k), PAD_ID, np.int64)
    for b in range(bsz):
        if num[b]:
            qw = warp_rows(ql[b, : num[b]], _knob(knobs, b))
            draft[b, : num[b]] = sample_categorical_rows(qw, rng.random(num[b]))[0]
    return dict(p_logits=pl, q_logits=ql, draft=draft, u=rng.random((bsz, k + 1)),
                num_draft=num.astype(np.int64), **knobs)


def logits_cases(quick: bool, bf16: bool = False) -> list[Case]:
    bsz = 8 if quick else 64
    out = []
    for v, k in ((1, 1), (37, 3), (97, 2)) if quick else ((1, 1), (37, 3), (97, 4), (1031, 3)):
        name = f"logits V={v} K={k}" + (" bf16" if bf16 else "")
        out.append(Case(name, logits_batch(case_rng(name), bsz, k, v, bf16=bf16)))
    name = "logits bad rows" + (" bf16" if bf16 else "")
    x = logits_batch(case_rng(name), 6, 2, 29, bf16=bf16, ragged=False)
    x["temperature"][:] = 1.0
    x["top_k"][:] = 29
    x["p_logits"][1, 0, 3] = np.nan                  # NaN logit in a row that is read
    x["draft"][2, 0] = 29                             # out of range
    x["top_k"][3] = 1                                 # the drafted token cut by top-k (q = 0)
    x["draft"][3, 0] = (int(np.argmax(x["q_logits"][3, 0])) + 1) % 29
    x["q_logits"][4, 1, :] = -np.inf                  # a row of -inf logits
    out.append(Case(name, x))
    return out


# ---------------------------------------------------------------- logits: oracle, margins


def _slice(case, b):
    x = case.inputs
    n = int(x["num_draft"][b])
    return x["p_logits"][b, : n + 1], x["q_logits"][b, :n], x["draft"][b, :n], x["u"][b, : n + 1]


def logits_reference(kind):
    def reference_row(case, b):
        from specoracle.reference import categorical
        pl, ql, draft, u = _slice(case, b)
        kn = _knob(case.inputs, b)
        p = warp_rows(pl, kn)
        q = warp_rows(ql, kn) if len(draft) else np.zeros((0, p.shape[1]))
        return getattr(categorical, f"verify_{kind}")(p, q, draft, u)
    return reference_row


def warp_margin(x, temperature, top_k, top_p, min_p) -> float:
    """Smallest float64 margin of the warp decisions the reference makes on row x."""
    if temperature == 0:
        return np.inf
    z = np.asarray(x, np.float64) / temperature
    v = z.shape[0]
    order = np.argsort(-z, kind="stable")
    keep = np.zeros(v, bool)
    keep[order[: min(int(top_k), v)]] = True
    e = np.where(keep, np.exp(z - z.max()), 0.0)
    probs = e / e.sum()
    m = np.inf
    if top_p < 1:
        csum = np.cumsum(probs[order])
        nk = min(max(int(np.searchsorted(csum, top_p, side="left")) + 1, 1), v)
        m = min(m, abs(csum[nk - 1] - top_p), abs(csum[nk - 2] - top_p) if nk >= 2 else np.inf)
        kp = np.zeros(v, bool)
        kp[order[:nk]] = True
        probs = np.where(kp, probs, 0.0)
        probs = probs / probs.sum()
    if min_p > 0:
        m = min(m, float(np.min(np.abs(probs - min_p * probs.max()))))
    return float(m)


def status_verdict(status: int, ref):
    """The status half of a row comparison: ``None`` when the oracle and the kernel both
    accept the row (compare the decisions next), else the row's verdict."""
    if isinstance(ref, Exception):
        return ("match", "") if status != STATUS_OK else ("mismatch", f"oracle rejects ({ref}), status OK")
    if status != STATUS_OK:
        return "mismatch", f"status {status} on a row the oracle accepts"
    return None


def row_verdict(out, b, ref):
    """(status verdict, decoded row): the verdict of :func:`status_verdict` for row ``b`` of
    ``out`` (None when both sides accept the row; the row is then ``out.verdict(b)``)."""
    verdict = status_verdict(int(out.status[b]), ref)
    return verdict, (out.verdict(b) if verdict is None else None)


def make_compare_logits(kind, dtype):
    tol = LOGITS_TOL[dtype]
    margin_fn = chain_margin if kind == "chain" else block_margin

    def compare(case, b, out, ref):
        verdict, got = row_verdict(out, b, ref)
        if verdict is not None:
            return verdict
        if (got.n_accepted, got.tokens, got.bonus) == (ref.n_accepted, ref.tokens, ref.bonus):
            return "match", ""
        pl, ql, draft, u = _slice(case, b)
        kn = _knob(case.inputs, b)
        p = warp_rows(pl, kn)
        q = warp_rows(ql, kn) if len(draft) else np.zeros((0, p.shape[1]))
        m = min([margin_fn(p, q, draft, u, ref)] + [warp_margin(r, **kn) for r in list(pl) + list(ql)])
        if m <= tol:
            return "excluded", f"margin {m:.3g} <= {tol:.3g}"
        return "mismatch", f"got {got}, oracle {ref} (margin {m:.3g} > {tol:.3g})"
    return compare


def call_logits(dtype):
    def call(fn, case):
        import torch
        x = case.inputs
        dt = torch.bfloat16 if dtype == "bfloat16" else torch.float64
        kn = {name: _t(x[name]) for name in ("temperature", "top_k", "top_p", "min_p")}
        return _host(fn(_t(x["p_logits"], dt), _t(x["q_logits"], dt), _t(x["draft"]), _t(x["u"]),
                        num_draft=_t(x["num_draft"]), raise_on_error=False, impl=parity_impl(), **kn))
    return call


def _register_logits():
    for kind in ("chain", "block"):
        for dtype, suffix in (("float64", ""), ("bfloat16", ".bf16")):
            bf16 = dtype == "bfloat16"
            register(Op(name=f"{kind}_logits{suffix}", module="categorical", function=f"verify_{kind}_logits",
                        rule="decisions_with_margin", dtype=dtype,
                        cases=lambda quick, bf16=bf16: logits_cases(quick, bf16),
                        call=call_logits(dtype), reference_row=logits_reference(kind),
                        compare_row=make_compare_logits(kind, dtype), backends=("torch",),
                        subjects=("processing.process_logits", f"categorical.verify_{kind}"),
                        notes="verification from logits, warps inside (reference process_logits)"))


_register_logits()


# ---------------------------------------------------------------- tree (sample-and-match kernel)


def tree_margin(p, tokens, parents, u, verdict) -> float:
    """Smallest draw margin of the oracle's sample-and-match walk on one tree: the
    d-th emitted token was drawn from the target row after the (d-1)-th path node."""
    rows = [0] + [int(m) + 1 for m in verdict.path]
    m = np.inf
    for d, tok in enumerate(verdict.tokens):
        m = min(m, draw_margin(np.asarray(p[rows[min(d, len(rows) - 1)]], np.float64), float(u[d]), int(tok)))
    return m


def mss_margin(p, q, tokens, parents, u) -> float:
    """Smallest float64 margin of the decisions of SpecInfer's MSS walk on one tree (the
    reference's algorithm replayed): every accept test |u q(t) - P(t)|, every residual
    mass after a rejection, and the final draw's margin."""
    n = len(tokens)
    row, last, P, m = 0, -1, np.asarray(p[0], np.float64), np.inf
    while True:
        kids = [c for c in range(n) if parents[c] + 1 == row]
        nxt = [c for c in kids if c > last]
        if not kids or not nxt:
            w = np.asarray(p[row], np.float64) if not kids else P
            break
        c = nxt[0]
        t = int(tokens[c])
        m = min(m, abs(u[c] * q[row][t] - P[t]))
        if u[c] * q[row][t] < P[t]:
            row, last, P = c + 1, -1, np.asarray(p[c + 1], np.float64)
            continue
        last = c
        w = np.maximum(P - q[row], 0.0)
        m = min(m, float(w.sum()))
        if w.sum() > 0:
            P = w / w.sum()
    c = np.cumsum(w)
    y = int(np.argmax(u[n] * c[-1] < c)) if c[-1] > 0 else 0
    return min(m, draw_margin(w, float(u[n]), y))


def compare_tree(case, b, out, ref):
    verdict, got = row_verdict(out, b, ref)
    if verdict is not None:
        return verdict
    if got == ref:
        return "match", ""
    x = case.inputs
    n = int(x["num_nodes"][b])
    par = x["parents"][b, :n]
    if "q" in x:
        m = mss_margin(x["p"][b, : n + 1], x["q"][b, : n + 1], x["tokens"][b, :n], par, x["u"][b, : n + 1])
    else:
        m = tree_margin(x["p"][b, : n + 1], x["tokens"][b, :n], par, x["u"][b, : pt._depth(par) + 1], ref)
    if m <= LOGITS_TOL["float64"]:
        return "excluded", f"margin {m:.3g}"
    return "mismatch", f"got {got}, oracle {ref} (margin {m:.3g})"


def call_tree(fn, case):
    x = case.inputs
    head = [_t(x["p"])] + ([_t(x["q"])] if "q" in x else [])
    return _host(fn(*head, _t(x["tokens"]), _t(x["parents"]), _t(x["u"]), num_nodes=_t(x["num_nodes"]),
                    raise_on_error=False, impl=parity_impl()))


def _register_tree():
    register(Op(name="tree_deterministic.triton", module="tree", function="verify_tree_deterministic",
                rule="decisions_with_margin", cases=pt.tree_cases("det"), call=call_tree,
                reference_row=pt.reference_row("det"), compare_row=compare_tree, backends=("torch",),
                notes="sample-and-match, one Triton program per tree (triton_tree.py); tol 1e-12"))
    register(Op(name="tree_mss.triton", module="tree", function="verify_mss_tree",
                rule="decisions_with_margin", cases=pt.tree_cases("mss"), call=call_tree,
                reference_row=pt.reference_row("mss"), compare_row=compare_tree, backends=("torch",),
                notes="SpecInfer MSS, one Triton program per tree (triton_tree.py); tol 1e-12"))


# ---------------------------------------------------------------- Gaussian (fused (B, L, d) pass)


def call_window_fused(fn, case):
    x = case.inputs
    return _host(fn(*(_t(x[k]) for k in ("m_p", "m_q", "s", "z", "eta", "u_res", "z_orth")),
                    lengths=_t(x["lengths"]), impl=parity_impl()))


def call_step_fused(function_name):
    def run(fn, case):
        x = case.inputs
        args = [_t(x[k]) for k in ("m_p", "m_q", "s", "z", "u")]
        if function_name == "gamma_coupling":
            args += [_t(x["u_res"]), _t(x["z_orth"])]
        return _host(fn(*args, impl=parity_impl()))
    return run


def _register_gaussian():
    for name, fname, margin in (("gaussian_chain", "verify_gaussian_chain", pg.chain_margin),
                                ("gaussian_block", "verify_gaussian_block", pg.block_margin)):
        register(Op(name=f"{name}.fused", module="gaussian", function=fname, rule="allclose_vs_naive",
                    cases=pg.window_cases, call=call_window_fused, reference_row=pg.window_reference(fname),
                    compare_row=pg.compare_window(margin), backends=("torch",),
                    notes="fused Triton pass over (B, L, d) (triton_gaussian.py)"))
    register(Op(name="gaussian_step.fused", module="gaussian", function="gamma_coupling",
                rule="allclose_vs_naive", cases=pg.step_cases, call=call_step_fused("gamma_coupling"),
                reference_row=pg.step_reference("gamma_coupling"), compare_row=pg.compare_step,
                backends=("torch",), notes="fused Triton pass, L = 1"))


_register_tree()
_register_gaussian()
