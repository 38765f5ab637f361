"""`specoracle bench --device cuda`: the CUDA kernel suite.

Times, in one run on one device, specoracle's torch_cuda verifiers against a plain
batched torch baseline (what a user would write: full-tensor softmax / clamp /
multinomial, every row read) and Hugging Face transformers' ``_speculative_sampling``
(B = 1 only, it is written for one sequence), at the issue's shapes, and prints the
memory floor beside each figure:

    chain   floor = 2 B V s / bw       (ONE residual row pair per sequence; the
                                         drafted entries are negligible)
    block   floor = 2 B K V s / bw     (every row of p and q)
    logits  floor = (2K+1) B V s / bw  (every logit row once; s = 2 bytes for bf16);
                                        chain_logits_bf16 = temperature 0.8 + top-p 0.95,
                                        _temp = temperature only (both: the fused Triton
                                        kernel of torch_cuda/triton_logits.py on CUDA)
    gauss   floor = 3 B L d 4 / bw     (target means, draft means and noise once; the fused
                                        pass of torch_cuda/triton_gaussian.py on CUDA)
    tree    floor = B V 4 / bw (sample-and-match: the final draw's target row) and
            2 B V 4 / bw (MSS: the final residual's row pair), a lower bound only: the walk
            reads one row per level it descends (triton_tree.py vs the batched torch walk,
            backend ``torch_walk``, ratio ``vs_torch_walk``; rows carry ``N`` = nodes)

Backends: ``torch`` (the torch_cuda verifier as a user calls it), ``torch_graph`` (B = 1
chain only: the call captured once in a CUDA graph, torch_cuda/graphs.py, and replayed
with the inputs already in its static buffers, as an engine writes them; in eager
mode on the CPU plumbing run), ``torch_plain``, ``hf``.

with s the element size and bw the device copy bandwidth measured in the same run
(a device-to-device copy of a 1 GiB buffer counts read + write). The issue's own
floors use the same formulas (e.g. 26 us for chain at (64, 8, 151936) at 2959 GB/s).

Timing: median wall time per call over ``reps`` calls after ``warmup`` calls, each
call followed by ``torch.cuda.synchronize()``, so the Python-side launch is
included (as in the issue's table). specoracle runs with ``raise_on_error=False,
validate=False`` (the engine mode: statuses stay on the device; the default mode adds
device-to-host syncs per call for the u range check and the status check).

JSON (``--json FILE``), the schema of docs/PERFORMANCE.md: ``{"device", "date", "command",
"copy_bandwidth_GBps", "rows": [{"op", "backend", "B", "K", "V" (or "L", "d"),
"median_us", "floor_us", "vs_torch_plain", "vs_hf"}]}``, one row per op x backend x
shape; the ratios are speed-ups of the row over the named baseline at the same
shape in the same run (null where that baseline was not run).

``run_suite(device="cpu", shapes=TINY)`` runs the same plumbing on CPU tensors at
tiny shapes (the tests do this); the real suite refuses to run without CUDA.
"""
from __future__ import annotations

import datetime
import statistics
import sys
import time
from dataclasses import asdict, dataclass

#: the issue's shapes (op, B, K, V) / (op, B, L, d)
CUDA_SHAPES = [("chain", 1, 8, 32000), ("chain", 64, 8, 32000), ("chain", 64, 8, 151936),
               ("chain", 256, 4, 32000), ("block", 64, 8, 151936),
               ("chain_logits_bf16", 64, 8, 151936), ("chain_logits_bf16_temp", 64, 8, 151936),
               ("gaussian_block", 256, 8, 3 * 64 * 64),
               ("tree_deterministic", 64, 64, 32000), ("tree_mss", 64, 64, 32000)]
#: tiny shapes for the CPU plumbing test
TINY_SHAPES = [("chain", 1, 3, 50), ("chain", 4, 3, 97), ("block", 4, 3, 97),
               ("chain_logits_bf16", 2, 2, 64), ("chain_logits_bf16_temp", 2, 2, 64),
               ("gaussian_block", 4, 3, 16), ("tree_deterministic", 2, 6, 50), ("tree_mss", 2, 6, 50)]

TARGETS = {  # ratio to the floor that applies (None: absolute target)
    ("chain", 64, 8, 151936): 2.0, ("chain", 256, 4, 32000): 2.0, ("block", 64, 8, 151936): 1.5,
    ("chain_logits_bf16", 64, 8, 151936): 1.5, ("chain_logits_bf16_temp", 64, 8, 151936): 1.5,
    ("gaussian_block", 256, 8, 3 * 64 * 64): 1.5,
}
B1_TARGET_US = 20.0


class CudaUnavailable(RuntimeError):
    pass


@dataclass
class Row:
    op: str
    backend: str
    B: int
    K: int
    V: int
    median_us: float
    floor_us: float
    vs_torch_plain: float | None = None
    vs_hf: float | None = None
    vs_torch_walk: float | None = None      # tree ops: over the batched torch walk (impl="torch")

    def to_dict(self) -> dict:
        d = asdict(self)
        if not self.op.startswith("tree"):
            d.pop("vs_torch_walk")
        else:
            d["N"] = d.pop("K")               # tree rows: N drafted nodes
        if self.op.startswith("gaussian"):
            d["L"], d["d"] = d.pop("K"), d.pop("V")
        return d


# ---------------------------------------------------------------- baselines


def plain_chain(p, q, draft, u):
    """Plain batched torch chain verification (a user's version: every row read)."""
    import torch
    b, k1, v = p.shape
    k = k1 - 1
    pd = p[:, :k].gather(2, draft[..., None])[..., 0]
    qd = q.gather(2, draft[..., None])[..., 0]
    acc = u[:, :k] * qd < pd
    tau = torch.cumprod(acc.to(torch.int64), dim=1).sum(dim=1)
    res = torch.clamp(p[:, :k] - q, min=0)                                   # [B, K, V]: all rows
    res = torch.cat([res, p[:, k:]], dim=1)
    w = res[torch.arange(b, device=p.device), tau]
    w = torch.where((tau == k)[:, None], p[torch.arange(b, device=p.device), tau], w)
    tok = torch.multinomial(w / w.sum(-1, keepdim=True), 1)[:, 0]
    return tau, tok


def plain_block(p, q, draft, u):
    """Plain batched torch block verification (every row, full [B, K, V] temporaries)."""
    import torch
    b, k1, v = p.shape
    k = k1 - 1
    pd = p[:, :k].gather(2, draft[..., None])[..., 0]
    qd = q.gather(2, draft[..., None])[..., 0]
    surv = [torch.ones(b, device=p.device, dtype=p.dtype)]
    for i in range(k):
        surv.append(torch.clamp(surv[-1] * pd[:, i] / qd[:, i], max=1))
    surv = torch.stack(surv, 1)                                              # [B, K+1]
    mass = torch.clamp(surv[:, :k, None] * p[:, :k] - q, min=0).sum(-1)     # [B, K]: all rows
    passed = torch.zeros(b, k, dtype=torch.bool, device=p.device)
    passed[:, : k - 1] = u[:, : k - 1] * (mass[:, 1:] + 1 - surv[:, 1:k]) < mass[:, 1:]
    passed[:, k - 1] = u[:, k - 1] < surv[:, k]
    idx = torch.arange(1, k + 1, device=p.device)
    tau = torch.where(passed, idx, 0).amax(1)
    bi = torch.arange(b, device=p.device)
    tq = tau.clamp(max=k - 1)
    w = torch.clamp(surv[bi, tau, None] * p[bi, tau] - q[bi, tq], min=0)
    w = torch.where((tau == k)[:, None], p[bi, tau], w)
    tok = torch.multinomial(w / w.sum(-1, keepdim=True), 1)[:, 0]
    return tau, tok


def plain_chain_logits(pl, ql, draft, u, temperature=0.8, top_p=0.95):
    """Plain torch from logits: full softmax / sort / top-p on every row, then plain_chain
    (``top_p=None``: temperature only, no sort)."""
    import torch

    def warp(x):
        z = x.float() / temperature
        probs = torch.softmax(z, -1)
        if top_p is None:
            return probs
        sp, order = torch.sort(probs, -1, descending=True)
        keep = torch.cumsum(sp, -1) - sp < top_p
        sp = torch.where(keep, sp, 0)
        out = torch.zeros_like(probs).scatter(-1, order, sp)
        return out / out.sum(-1, keepdim=True)
    return plain_chain(warp(pl), warp(ql), draft, u)


def hf_chain(p, q, draft, u):
    """transformers' _speculative_sampling (B = 1), fed log-probabilities as logits."""
    from specoracle.fastpath.models.llm.hf import hf_speculative_sampling
    _speculative_sampling = hf_speculative_sampling()
    k = q.shape[1]
    ids = draft  # [1, K]: the candidate tokens are the last K ids
    return _speculative_sampling(ids, q.clamp_min(1e-30).log(), k, p.clamp_min(1e-30).log())


# ---------------------------------------------------------------- inputs


def _tree_inputs(op, b, n, v, device, g):
    """B copies of one D2SD-like tree (a root, then 4 chains under it) over N nodes; target
    rows softmax(2 z), draft rows near them; deterministic trees draft the parent row's argmax
    (70 %) or a random id, MSS trees draw each token from the parent's draft row."""
    import torch
    parents = [-1] + [0 if i <= 4 else i - 4 for i in range(1, n)]        # [N]: root, 4 chains
    par = torch.tensor(parents).expand(b, n).clone()
    p = torch.softmax(2 * torch.randn(b, n + 1, v, generator=g), -1)
    q = torch.softmax(torch.log(p) + 0.5 * torch.randn(b, n + 1, v, generator=g), -1)
    rows = (par + 1)[..., None].expand(b, n, v)                            # [B, N, V]: parent row
    if op == "tree_mss":
        qr = q.gather(1, rows)
        tokens = torch.multinomial(qr.reshape(-1, v), 1, generator=g).reshape(b, n)
    else:
        best = p.gather(1, rows).argmax(-1)
        rnd = torch.randint(0, v, (b, n), generator=g)
        tokens = torch.where(torch.rand(b, n, generator=g) < 0.7, best, rnd)
    u = torch.rand(b, n + 1, generator=g, dtype=torch.float64)
    out = [p, q, tokens, par, u] if op == "tree_mss" else [p, tokens, par, u]
    return [t.to(device) for t in out]


def _inputs(op, b, k, v, device, seed=0):
    import torch
    g = torch.Generator(device="cpu").manual_seed(seed)
    if op.startswith("tree"):
        return _tree_inputs(op, b, k, v, device, g)
    if op == "gaussian_block":
        m_q = torch.randn(b, k, v, generator=g)
        m_p = m_q + 0.05 * torch.randn(b, k + 1, v, generator=g)[:, :k]
        m_p = torch.cat([m_p, torch.randn(b, 1, v, generator=g)], 1)
        z = torch.randn(b, k, v, generator=g)
        eta = torch.rand(b, k, generator=g, dtype=torch.float64)
        u_res = torch.rand(b, generator=g, dtype=torch.float64)
        z_orth = torch.randn(b, v, generator=g, dtype=torch.float64)
        s = torch.ones(b, dtype=torch.float64)
        return [t.to(device) for t in (m_p, m_q, s, z, eta, u_res, z_orth)]
    if op.startswith("chain_logits_bf16"):
        pl = (3 * torch.randn(b, k + 1, v, generator=g)).to(torch.bfloat16)
        ql = (pl[:, :k].float() + torch.randn(b, k, v, generator=g)).to(torch.bfloat16)
        draft = torch.randint(0, v, (b, k), generator=g)
        u = torch.rand(b, k + 1, generator=g, dtype=torch.float64)
        return [t.to(device) for t in (pl, ql, draft, u)]
    p = torch.softmax(2 * torch.randn(b, k + 1, v, generator=g), -1)
    q = torch.softmax(torch.log(p[:, :k]) + 0.5 * torch.randn(b, k, v, generator=g), -1)
    draft = torch.multinomial(q.reshape(-1, v), 1).reshape(b, k)
    u = torch.rand(b, k + 1, generator=g, dtype=torch.float64)
    return [t.to(device) for t in (p, q, draft, u)]


def _floor_bytes(op, b, k, v):
    if op == "chain":
        return 2 * b * v * 4
    if op == "block":
        return 2 * b * k * v * 4
    if op.startswith("chain_logits_bf16"):
        return (2 * k + 1) * b * v * 2
    if op == "gaussian_block":
        return 3 * b * k * v * 4
    if op == "tree_deterministic":   # the one target row of the final draw per tree
        return b * v * 4
    if op == "tree_mss":             # one row pair (the final residual) per tree
        return 2 * b * v * 4
    raise KeyError(op)


# ---------------------------------------------------------------- timing


def _sync(device):
    import torch
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_us(fn, device, warmup=3, reps=20):
    for _ in range(warmup):
        fn()
    _sync(device)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        ts.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(ts)


def copy_bandwidth_GBps(device, nbytes=1 << 30, reps=10):
    """Device copy bandwidth (read + write bytes / time), median of ``reps`` copies."""
    import torch
    n = nbytes // 4
    src = torch.empty(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    us = time_us(lambda: dst.copy_(src), device, warmup=2, reps=reps)
    return 2 * n * 4 / (us * 1e-6) / 1e9


def graphed_chain():
    """The B = 1 chain call captured once (torch_cuda/graphs.py) on the first inputs;
    each timed call replays it with the inputs in place (an engine writes its logits /
    probabilities into the static buffers; copying them in would add one copy per
    tensor). Eager mode (no capture) off CUDA."""
    from specoracle.fastpath.torch_cuda import categorical as tc
    from specoracle.fastpath.torch_cuda.graphs import GraphedVerifier
    state = {}

    def run(p, q, d, u):
        g = state.get("g")
        if g is None:
            g = state["g"] = GraphedVerifier(tc.verify_chain, (p, q, d, u))
        return g.replay()
    return run


def _candidates(op, device, b=None):
    """{backend: callable(*inputs)} for one op."""
    from specoracle.fastpath.torch_cuda import categorical as tc
    if op == "chain":
        out = {"torch": lambda p, q, d, u: tc.verify_chain(p, q, d, u, raise_on_error=False, validate=False),
               "torch_plain": plain_chain, "hf": hf_chain}
        if b == 1:
            out["torch_graph"] = graphed_chain()
        return out
    if op == "block":
        return {"torch": lambda p, q, d, u: tc.verify_block(p, q, d, u, raise_on_error=False, validate=False),
                "torch_plain": plain_block}
    if op == "chain_logits_bf16":
        return {"torch": lambda pl, ql, d, u: tc.verify_chain_logits(
                    pl, ql, d, u, temperature=0.8, top_p=0.95, raise_on_error=False, validate=False),
                "torch_plain": plain_chain_logits}
    if op == "chain_logits_bf16_temp":  # temperature only
        return {"torch": lambda pl, ql, d, u: tc.verify_chain_logits(
                    pl, ql, d, u, temperature=0.8, raise_on_error=False, validate=False),
                "torch_plain": lambda pl, ql, d, u: plain_chain_logits(pl, ql, d, u, 0.8, None)}
    if op == "gaussian_block":
        from specoracle.fastpath.torch_cuda import gaussian as tg
        return {"torch": tg.verify_gaussian_block, "torch_plain": plain_gaussian_block}
    if op in ("tree_deterministic", "tree_mss"):
        from specoracle.fastpath.torch_cuda import tree as tt
        fn = tt.verify_tree_deterministic if op == "tree_deterministic" else tt.verify_mss_tree
        return {"torch": lambda *a: fn(*a, raise_on_error=False),
                "torch_walk": lambda *a: fn(*a, raise_on_error=False, impl="torch")}
    raise KeyError(op)


def plain_gaussian_block(m_p, m_q, s, z, eta, u_res, z_orth):
    """Plain torch: the per-step log-ratios a user computes first (full-tensor
    temporaries D = (m_q - m_p) / s, the drafts), then the log-space acceptance of a
    token-level chain; the reference point for the fused pass's data movement."""
    import torch
    big_l = m_q.shape[1]
    big_d = (m_q - m_p[:, :big_l]) / s[:, None, None]
    ell = -(z * big_d).sum(-1) - 0.5 * (big_d * big_d).sum(-1)
    drafts = m_q + s[:, None, None] * z
    acc = torch.log(eta) < ell
    tau = torch.cumprod(acc.to(torch.int64), dim=1).sum(dim=1)
    return tau, drafts


def measure(device, shapes, bw_GBps, reps=20, warmup=3, progress=None) -> list:
    """Time every backend at every shape; rows as dicts (issue-6 schema)."""
    rows = []
    for op, b, k, v in shapes:
        if progress:
            progress(f"{op} ({b}, {k}, {v})")
        inputs = _inputs(op, b, k, v, device)
        floor = _floor_bytes(op, b, k, v) / (bw_GBps * 1e9) * 1e6
        times = {}
        for backend, fn in _candidates(op, device, b).items():
            if backend == "hf" and b != 1:
                continue
            times[backend] = time_us(lambda fn=fn, args=inputs: fn(*args), device, warmup, reps)
        for backend, us in times.items():
            rows.append(Row(op, backend, b, k, v, us, floor,
                            times["torch_plain"] / us if "torch_plain" in times else None,
                            times["hf"] / us if "hf" in times else None,
                            times["torch_walk"] / us if "torch_walk" in times else None).to_dict())
        del inputs
    return rows


def _require_cuda(device):
    import torch
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise CudaUnavailable("`specoracle bench --device cuda` needs a CUDA GPU and none is available "
                              "(torch.cuda.is_available() is False); run `--device cpu` instead, and see "
                              "docs/PERFORMANCE.md (CUDA section) for the GPU measurements that remain")


def run_suite(device="cuda", shapes=None, reps=20, warmup=3, progress=None, bandwidth_bytes=1 << 30):
    """Standalone run; returns the JSON-able report dict. Raises CudaUnavailable for
    ``device="cuda"`` without a GPU."""
    import torch
    _require_cuda(device)
    shapes = CUDA_SHAPES if shapes is None else shapes
    bw = copy_bandwidth_GBps(device, nbytes=bandwidth_bytes)
    rows = measure(device, shapes, bw, reps, warmup, progress)
    name = torch.cuda.get_device_name() if str(device).startswith("cuda") else "cpu"
    return {"device": name, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(["specoracle"] + sys.argv[1:]) if sys.argv else "specoracle bench",
            "torch": torch.__version__, "copy_bandwidth_GBps": bw, "rows": rows}


def target_notes(rows) -> list:
    """One line per issue-7 target: met or missed, with the ratio."""
    out = []
    for r in rows:
        if r["backend"] not in ("torch", "torch_graph"):
            continue
        if r["backend"] == "torch_graph" and not (r["op"] == "chain" and r["B"] == 1):
            continue
        k, v = r.get("K", r.get("L")), r.get("V", r.get("d"))
        ratio = r["median_us"] / r["floor_us"]
        t = TARGETS.get((r["op"], r["B"], k, v))
        if t is not None:
            out.append(f"target {r['op']} ({r['B']}, {k}, {v}): <= {t}x floor, measured {ratio:.2f}x: "
                       f"{'met' if ratio <= t else 'MISSED'}")
        elif r["op"] == "chain" and r["B"] == 1:
            out.append(f"target chain B=1 ({r['backend']}): <= {B1_TARGET_US:.0f} us, measured {r['median_us']:.1f} us: "
                       f"{'met' if r['median_us'] <= B1_TARGET_US else 'MISSED'}")
    return out


def run_cuda_kernels(ctx) -> list:
    """The registered ``cuda-kernels`` suite (fastpath/bench.py BenchContext): measures the
    GPU copy bandwidth (replacing the host figure in the report), then every shape.
    ``ctx.device = "cpu"`` with ``ctx.tiny``: the same plumbing on CPU tensors at TINY_SHAPES
    (the CPU check of ``bench --all``); without either, no GPU exits 2 with one line."""
    import torch
    device = ctx.device or "cuda"
    cuda = device.startswith("cuda")
    try:
        _require_cuda(device)
    except CudaUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if not cuda and not ctx.tiny:
        raise ValueError("cuda-kernels runs on the CPU only at the tiny plumbing size (ctx.tiny)")
    bw = copy_bandwidth_GBps(device, nbytes=(1 << 22) if ctx.tiny else (1 << 30))
    ctx.copy_bandwidth_GBps = bw
    ctx.extra["gpu"] = torch.cuda.get_device_name() if cuda else "none (CPU plumbing run)"
    ctx.extra["torch"] = torch.__version__
    shapes = TINY_SHAPES if ctx.tiny else CUDA_SHAPES
    reps = 2 if ctx.tiny else 5 if ctx.quick else 20
    rows = measure(device, shapes, bw, reps=reps, warmup=1 if ctx.tiny else 3, progress=ctx.progress)
    ctx.notes.extend(target_notes(rows))
    ctx.notes.append("specoracle rows run with raise_on_error=False; HF runs at B = 1 only; floors: "
                     "chain 2BVs, block 2BKVs, logits (2K+1)BVs, gaussian 3BLd*4 bytes / GPU copy bandwidth")
    return rows


def _register():
    from ..registry import register_suite
    register_suite("cuda-kernels", "cuda", run_cuda_kernels,
                   "the torch backend's chain / block / logits / Gaussian kernels vs plain torch and HF, GPU floors")


_register()
