"""Parity ops and input factories for tree verification (MSS and deterministic trees).

Registers ``tree_mss`` (``tree.verify_mss_tree``) and ``tree_deterministic``
(``tree.verify_tree_deterministic``), float64, rule ``exact``.

Cases (fixed seeds): random trees (parents[i] uniform in -1..i-1) with N in
{0, 1, 5, 12} nodes and V in {1, 2, 3, 97, 1025}; chain-shaped and star-shaped
trees; ragged batches (``num_nodes``); p == q; one-hot rows; duplicated siblings
(deterministic trees); bad rows (a parent that is not earlier, a token outside
the vocabulary, MSS tokens with q = 0 in their parent's draft row) that the oracle
rejects and the kernel must flag. MSS children are drawn from their parent's draft
row (the algorithm's precondition); deterministic tokens are the argmax of the
parent's target row half of the time (so long matches happen) and uniform ids
otherwise.
"""
from __future__ import annotations

import numpy as np

from ..registry import Case, Op, register
from ..types import PAD_ID
from .categorical import _dirichlet, case_rng, compare_exact, draw_from


def random_parents(rng, n, shape="random"):
    if shape == "chain":
        return np.arange(-1, n - 1)
    if shape == "star":
        return np.full(n, -1)
    return np.array([rng.integers(-1, i) if i else -1 for i in range(n)], np.int64)


def tree_batch(rng, bsz, n, v, kind, shape="random", ragged=False):
    alpha = rng.choice([0.05, 0.5, 1.0], size=bsz)
    lam = rng.choice([0.05, 0.3, 1.0], size=(bsz, 1, 1))
    p = np.stack([_dirichlet(rng, float(a), (n + 1,), v) for a in alpha])
    q = (1 - lam) * p + lam * np.stack([_dirichlet(rng, float(a), (n + 1,), v) for a in alpha])
    q /= q.sum(-1, keepdims=True)
    parents = np.stack([random_parents(rng, n, shape) for _ in range(bsz)]).reshape(bsz, n)
    num = rng.integers(0, n + 1, size=bsz) if ragged else np.full(bsz, n)
    tokens = np.zeros((bsz, n), np.int64)
    for b in range(bsz):
        for i in range(n):
            row = parents[b, i] + 1
            if kind == "mss":
                tokens[b, i] = draw_from(rng, q[b, row])
            elif rng.random() < 0.5:
                tokens[b, i] = int(np.argmax(p[b, row]))
            else:
                tokens[b, i] = rng.integers(0, v)
        tokens[b, num[b]:] = PAD_ID
        parents[b, num[b]:] = PAD_ID
    width = n + 1
    inputs = dict(p=p, tokens=tokens, parents=parents, u=rng.random((bsz, width)),
                  num_nodes=num.astype(np.int64))
    if kind == "mss":
        inputs["q"] = q
    return inputs


def tree_cases(kind):
    def cases(quick: bool) -> list[Case]:
        bsz = 12 if quick else 96
        out = []
        for v, n in [(1, 1), (2, 1), (3, 5), (97, 0), (97, 5), (97, 12), (1025, 5)]:
            name = f"{kind} V={v} N={n}"
            out.append(Case(name, tree_batch(case_rng(name), bsz, n, v, kind)))
        for shape in ("chain", "star"):
            name = f"{kind} {shape} V=13 N=6"
            out.append(Case(name, tree_batch(case_rng(name), bsz, 6, 13, kind, shape)))
        name = f"{kind} ragged V=31 N=9"
        out.append(Case(name, tree_batch(case_rng(name), 4 * bsz, 9, 31, kind, ragged=True)))
        # p == q and one-hot rows
        name = f"{kind} p==q V=11 N=6"
        x = tree_batch(case_rng(name), bsz, 6, 11, kind)
        if kind == "mss":
            x["q"] = x["p"].copy()
            rng = case_rng(name + "tokens")
            for b in range(bsz):
                for i in range(6):
                    x["tokens"][b, i] = draw_from(rng, x["q"][b, x["parents"][b, i] + 1])
        out.append(Case(name, x))
        name = f"{kind} one-hot rows V=5 N=6"
        rng = case_rng(name)
        x = tree_batch(rng, bsz, 6, 5, kind)
        x["p"] = np.eye(5)[rng.integers(0, 2, size=x["p"].shape[:2])]
        if kind == "mss":
            x["q"] = np.eye(5)[rng.integers(0, 2, size=x["p"].shape[:2])]
            for b in range(bsz):
                for i in range(6):
                    x["tokens"][b, i] = int(np.argmax(x["q"][b, x["parents"][b, i] + 1]))
        else:
            x["tokens"] = rng.integers(0, 2, size=x["tokens"].shape)  # duplicated siblings
        out.append(Case(name, x))
        out.append(_bad_rows(kind))
        return out
    return cases


def _bad_rows(kind) -> Case:
    name = f"{kind} bad rows"
    x = tree_batch(case_rng(name), 6, 4, 9, kind)
    x["parents"][1, 2] = 2        # not an earlier node
    x["tokens"][2, 0] = 9         # outside the vocabulary
    if kind == "mss":
        t = int(x["tokens"][3, 1])
        row = int(x["parents"][3, 1]) + 1
        x["q"][3, row, t] = 0.0   # q = 0 for a drafted child
        x["q"][3, row, (t + 1) % 9] += 1.0
        x["q"][3, row] /= x["q"][3, row].sum()
    x["p"][4, 0, :] = np.nan      # the root row is always read
    return Case(name, x)


def _depth(parents):
    d = []
    for i, par in enumerate(parents):
        d.append(1 if par < 0 else d[int(par)] + 1)
    return max(d, default=0)


def reference_row(kind):
    def ref(case, b):
        from specoracle.reference import tree

        x = case.inputs
        n = int(x["num_nodes"][b])
        p, toks, par = x["p"][b, : n + 1], x["tokens"][b, :n], x["parents"][b, :n]
        if kind == "mss":
            return tree.verify_mss_tree(p, x["q"][b, : n + 1], toks, par, x["u"][b, : n + 1])
        depth = _depth(par) if np.all((par >= -1) & (par < np.arange(n))) else 0
        return tree.verify_tree_deterministic(p, toks, par, x["u"][b, : depth + 1])
    return ref


def call(kind):
    def run(fn, case):
        x = case.inputs
        if kind == "mss":
            out = fn(x["p"], x["q"], x["tokens"], x["parents"], x["u"], num_nodes=x["num_nodes"],
                     raise_on_error=False)
        else:
            out = fn(x["p"], x["tokens"], x["parents"], x["u"], num_nodes=x["num_nodes"],
                     raise_on_error=False)
        return out.to_numpy() if hasattr(out, "to_numpy") else out
    return run


def sweep(kind):
    def cases(n_sequences: int, seed: int, chunk: int = 2048) -> list[Case]:
        rng = np.random.default_rng(seed)
        out, done, i = [], 0, 0
        while done < n_sequences:
            v = int(rng.choice([2, 5, 16]))
            n = int(rng.integers(0, 9))
            bsz = min(chunk, n_sequences - done)
            out.append(Case(f"{kind} sweep#{i} V={v} N={n}",
                            tree_batch(rng, bsz, n, v, kind, ragged=True)))
            done += bsz
            i += 1
        return out
    return cases


# Certified through reference.mss's protocol (one node, child j drawn from q_j): the adapter
# (proofs/certify/adapters.py) feeds the node to the twin as a star tree.
register(Op(name="tree_mss", module="tree", function="verify_mss_tree", rule="exact",
            cases=tree_cases("mss"), call=call("mss"), reference_row=reference_row("mss"),
            compare_row=compare_exact, sweep=sweep("mss"), certify="mss",
            certify_exempt={"mss": (
                "its three children come from three different draft rows (SpecInfer with several "
                "drafters); the twins take one draft row per parent, so they run mss_shared (three "
                "children from one row, the residual update still exercised)")}))
register(Op(name="tree_deterministic", module="tree", function="verify_tree_deterministic",
            rule="exact", cases=tree_cases("det"), call=call("det"),
            reference_row=reference_row("det"), compare_row=compare_exact, sweep=sweep("det"),
            certify="tree_deterministic"))
