"""Multi-draft and tree verification: the discrete oracle, second half.

ALGORITHMS.md §1.4. p is the target, q the draft. One sequence at a time,
float64 or exact ``Fraction`` arithmetic (noise may be the proofs' traced
uniforms: it is only ever used as ``u * x < y``, in plain Python loops).

Three verifiers, by how the candidates were produced:

* :func:`verify_mss` / :func:`verify_mss_tree`: SpecInfer multi-step speculative
  sampling (Miao et al., arXiv 2305.09781), §1.4.1. Children are RANDOM draws from
  known draft rows q; each child is a gamma-coupling of the running residual target.
* :func:`verify_kseq`: SpecTr K-SEQ (Sun et al., arXiv 2310.15141), §1.4.2, for k
  i.i.d. candidates from one q at one node.
* :func:`verify_tree_deterministic`: sample-and-match (DFlash arXiv 2602.06036,
  D2SD arXiv 2606.04446), §1.4.3 and §6.4, for DETERMINISTIC candidates (argmax,
  top-k, any rule blind to the verifier's noise).

Trees are parent arrays (shapes for N drafted nodes, vocabulary V):
    tokens   [N]       token id of each node
    parents  [N]       parent node index, -1 for children of the root (the anchor);
                       parents[n] < n (parents come before children)
    p        [N+1, V]  target rows: p[0] after the root prefix, p[n+1] after node n
    q        [N+1, V]  draft rows (MSS only): q[0] the row the root's children were
                       drawn from, q[n+1] the row node n's children were drawn from
Children of a node are taken in node-index order. Every row is validated as a
probability row (a leaf's q row is never read, but must still be a distribution:
pass the draft's row or any valid row).

The categorical primitive is :func:`categorical.sample_categorical` (inverse CDF,
one uniform per draw) everywhere, so a fast kernel fed the same ``u`` emits the
same tokens.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from .categorical import sample_categorical
from .types import InvalidInput, Verdict
from .validation import (as_probs, as_tokens, as_uniforms, check_generator, check_same_vocab,
                         is_exact)

# ---------------------------------------------------------------- helpers


def _draw(weights, u, fallbacks):
    token, fb = sample_categorical(weights, u)
    if fb:
        fallbacks.append(fb)
    return int(token)


def _draft_rows(q, k, v, name="q"):
    """q [k, V] (k may be 0: any empty input is accepted)."""
    if k == 0:
        arr = np.asarray(q)
        if arr.size:
            raise InvalidInput(name, f"expected 0 draft rows for 0 candidates, got shape {arr.shape}")
        return np.zeros((0, v))
    q = as_probs(q, name, ndim=2)
    if q.shape[0] != k:
        raise InvalidInput(name, f"expected {k} draft rows (one per candidate), got {q.shape[0]}")
    return q


def _normalise(w):
    return w / w.sum()


def _check_drafted(q_row, token, name, index, row_label):
    if not q_row[token] > 0:
        raise InvalidInput(name, f"token {int(token)} has q = 0 in {row_label}: the draft could "
                           "not have produced it", index=index)


def validate_tree(tokens, parents, vocab: int):
    """Validate a parent-array tree; return ``(tokens, parents, children, depth)``.

    ``children[n + 1]`` lists the children of node n in index order (``children[0]``
    those of the root); ``depth[n]`` is node n's depth (1 for the root's children).
    """
    parents_arr = np.asarray(parents)
    tokens = as_tokens(tokens, "tokens", vocab=vocab)
    n = tokens.shape[0]
    if parents_arr.ndim != 1 or parents_arr.shape[0] != n:
        raise InvalidInput("parents", f"expected {n} parent indices (one per token), got shape "
                           f"{parents_arr.shape}")
    if n and parents_arr.dtype.kind not in "iu":
        raise InvalidInput("parents", f"parent indices must be integers, got dtype {parents_arr.dtype}")
    children = [[] for _ in range(n + 1)]
    depth = []
    for i in range(n):
        par = int(parents_arr[i])
        if par < -1 or par >= i:
            raise InvalidInput("parents", f"parent {par} of node {i} must be -1 (root) or an "
                               f"earlier node in 0..{i - 1}", index=i)
        children[par + 1].append(i)
        depth.append(1 if par < 0 else depth[par] + 1)
    return tokens, parents_arr.astype(np.int64), children, depth


def _tree_rows(x, name, n, vocab=None):
    arr = as_probs(x, name, ndim=2)
    if arr.shape[0] != n + 1:
        raise InvalidInput(name, f"expected N+1 = {n + 1} rows (root + one per node), got {arr.shape[0]}")
    if vocab is not None and arr.shape[1] != vocab:
        raise InvalidInput(name, f"vocabulary size {arr.shape[1]} differs from p's {vocab}")
    return arr


def path_to(node: int, parents) -> tuple:
    """Node indices from the root's child down to ``node`` (inclusive)."""
    out = []
    while node >= 0:
        out.append(int(node))
        node = int(parents[node])
    return tuple(reversed(out))


# ---------------------------------------------------------------- SpecInfer MSS, one node


def _mss_node(P, q_rows, children, u_tests, fallbacks):
    """The MSS scan at one node (validated inputs). Returns ``(j, P)``: j is the index
    of the accepted child (or -1) and P the running residual target after the scan."""
    for j, c in enumerate(children):
        if u_tests[j] * q_rows[j][c] < P[c]:
            return j, P
        w = np.maximum(P - q_rows[j], 0)
        if w.sum() > 0:
            P = _normalise(w)
        else:
            # P == q_j up to rounding: the rejection had probability ~0 (exactly 0 in
            # exact arithmetic). Keep P unchanged (counted) rather than divide by 0.
            fallbacks.append("residual_zero_mass")
    return -1, P


def verify_mss(p, q, children, u) -> Verdict:
    """SpecInfer multi-step speculative sampling at ONE tree node (ALGORITHMS.md §1.4.1;
    Miao et al., ASPLOS 2024, arXiv 2305.09781).

    Shapes: p [V] target row at the node; q [k, V] the draft rows q_j child j was drawn
    from (independently, with replacement); children [k] ids; u [k+1] uniforms.

    With P = p: for j = 0..k-1 accept child j iff ``u[j] * q_j(c_j) < P(c_j)``
    (division-free gamma-coupling of P and q_j, §0.3), else P <- normalise((P - q_j)_+).
    If no child is accepted, y is drawn from the final P with u[k].

    Returned Verdict (a single-node step, not a whole round):
    * a child accepted: ``n_accepted=1, tokens=(c_j,), path=(j,), bonus=False``. The
      emitted token is the accepted child; the caller continues into child j (its
      subtree, or a bonus draw from the target row after it if it is a leaf), and u[k]
      is NOT consumed. ``len(tokens) == n_accepted`` here: the round is not over.
    * none accepted: ``n_accepted=0, tokens=(y,), path=(), bonus=False``; the round ends.
    * k = 0: ``n_accepted=0, tokens=(y,), bonus=True`` with y ~ p drawn with u[0].
    Output law: exactly p (each step is a gamma-coupling of the residual target).
    Fallback ``residual_zero_mass``: a residual (P - q_j)_+ of zero mass (P == q_j up to
    rounding, impossible in exact arithmetic) leaves P unchanged.
    """
    p = as_probs(p, "p", ndim=1)
    v = p.shape[0]
    children = as_tokens(children, "children", vocab=v)
    k = children.shape[0]
    q = _draft_rows(q, k, v)
    check_same_vocab(p, q)
    for j, c in enumerate(children):
        _check_drafted(q[j], c, "children", j, f"its draft row q[{j}]")
    u = as_uniforms(u, "u", length=k + 1)
    fallbacks: list = []
    j, P = _mss_node(p, q, children, u, fallbacks)
    if j >= 0:
        return Verdict(1, (int(children[j]),), False, tuple(fallbacks), (j,))
    y = _draw(P, u[k], fallbacks)
    return Verdict(0, (y,), k == 0, tuple(fallbacks), ())


def verify_mss_rng(p, q, children, rng) -> Verdict:
    """:func:`verify_mss` with ``u = rng.random(k + 1)``."""
    check_generator(rng)
    return verify_mss(p, q, children, rng.random(len(np.atleast_1d(children)) + 1))


def mss_acceptance(p, q):
    """Closed form at one node (§1.4.1): with P_1 = p, beta_j = sum_x min(P_j(x), q_j(x))
    and P_{j+1} = normalise((P_j - q_j)_+), returns ``(acceptance, P_final)`` where
    acceptance = 1 - prod_j (1 - beta_j) = Pr(some child accepted) when child j ~ q_j
    independently, and P_final [V] is the law of y given that none was accepted.
    Shapes: p [V], q [k, V]. Works with Fractions. A zero-mass residual keeps P.
    """
    p = as_probs(p, "p", ndim=1)
    q = as_probs(q, "q", ndim=2)
    check_same_vocab(p, q)
    P = p
    reject = 1
    for j in range(q.shape[0]):
        beta = np.minimum(P, q[j]).sum()
        reject = reject * (1 - beta)
        w = np.maximum(P - q[j], 0)
        if w.sum() > 0:
            P = _normalise(w)
    return 1 - reject, P


# ---------------------------------------------------------------- SpecInfer MSS, whole tree


def verify_mss_tree(p, q, tokens, parents, u) -> Verdict:
    """SpecInfer MSS over a whole stochastic token tree (ALGORITHMS.md §1.4.1).

    Shapes: p [N+1, V], q [N+1, V], tokens [N], parents [N] (module docstring); the
    children of node n (of the root for row 0) were drawn independently from q[n+1].
    Noise u [N+1]: u[n] is node n's accept test (used only if the scan reaches node n),
    u[N] the one final draw of the round (residual or bonus).

    Walk from the root: at the current node run the MSS scan (:func:`verify_mss`) over
    its children in index order, with P starting at the node's target row and
    q_j = the node's draft row for every child. If child c is accepted, emit its token
    and move into it. Stop when no child is accepted (emit y ~ final residual P with
    u[N], bonus=False) or when an accepted node is a leaf (emit the bonus y ~ p[leaf+1]
    with u[N], bonus=True; N = 0 is the bonus from p[0]).

    Returns Verdict(n_accepted = depth of the accepted path, tokens = its tokens + y,
    bonus, fallbacks, path = accepted node indices, root excluded).
    Output law: exactly the target's (validity theorem of §1.4.1, node by node).
    """
    p = as_probs(p, "p", ndim=2)
    v = p.shape[1]
    tokens, parents, children, _ = validate_tree(tokens, parents, v)
    n = tokens.shape[0]
    p = _tree_rows(p, "p", n)
    q = _tree_rows(q, "q", n, vocab=v)
    for i in range(n):
        par = int(parents[i])
        _check_drafted(q[par + 1], tokens[i], "tokens", i,
                       "q[0] (root)" if par < 0 else f"q[{par + 1}] (node {par})")
    u = as_uniforms(u, "u", length=n + 1)
    fallbacks: list = []
    path: list = []
    row = 0  # row of the current node: 0 = root, n + 1 = node n
    while True:
        kids = children[row]
        if not kids:
            y = _draw(p[row], u[n], fallbacks)
            bonus = True
            break
        kid_tokens = [int(tokens[c]) for c in kids]
        kid_u = [u[c] for c in kids]
        j, P = _mss_node(p[row], [q[row]] * len(kids), kid_tokens, kid_u, fallbacks)
        if j < 0:
            y = _draw(P, u[n], fallbacks)
            bonus = False
            break
        path.append(kids[j])
        row = kids[j] + 1
    out = tuple(int(tokens[i]) for i in path) + (y,)
    return Verdict(len(path), out, bonus, tuple(fallbacks), tuple(path))


def verify_mss_tree_rng(p, q, tokens, parents, rng) -> Verdict:
    """:func:`verify_mss_tree` with ``u = rng.random(N + 1)``."""
    check_generator(rng)
    return verify_mss_tree(p, q, tokens, parents, rng.random(len(np.atleast_1d(tokens)) + 1))


# ---------------------------------------------------------------- SpecTr K-SEQ


def _kseq_beta(p, q, rho):
    return sum((min(qx, px / rho) for px, qx in zip(p, q)), 0 * rho)


def _kseq_ratio(p, q, k, rho):
    """p_acc(rho) / beta(rho) = sum_{i<k} (1 - beta)^i (= k when beta = 0)."""
    b = _kseq_beta(p, q, rho)
    return sum(((1 - b) ** i for i in range(k)), 0 * b)


def kseq_rho(p, q, k: int, tol: float = 1e-13) -> float:
    """rho* of K-SEQ (ALGORITHMS.md §1.4.2, §9): the smallest rho >= 1 with
    p_acc(rho) / beta(rho) <= rho, by bisection on [1, k] (float64).

    beta(rho) = sum_x min(q(x), p(x)/rho) and p_acc = 1 - (1 - beta)^k. The returned
    value is the upper end of the final bracket, so it always satisfies the validity
    condition in float arithmetic. (Validity is equivalent to g(rho) <= rho with
    g = p_acc/beta increasing in rho; for k <= 2 the set of valid rho is an interval,
    for larger k bisection returns a valid rho whose minimality holds on the bracket.)
    T4: p=(.5,.3,.2), q=(.2,.2,.6): 1.463325 (k=2), 1.792593 (k=3). k <= 1 returns 1.
    """
    p = np.asarray(as_probs(p, "p", ndim=1), dtype=np.float64)
    q = np.asarray(as_probs(q, "q", ndim=1), dtype=np.float64)
    check_same_vocab(p, q)
    k = _check_k(k)
    if k <= 1 or _kseq_ratio(p, q, k, 1.0) <= 1.0:
        return 1.0
    lo, hi = 1.0, float(k)
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if _kseq_ratio(p, q, k, mid) <= mid:
            hi = mid
        else:
            lo = mid
    return hi


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise InvalidInput("k", f"number of candidates must be an integer >= 0, got {k!r}")
    return int(k)


def kseq_acceptance(p, q, k: int, rho=None):
    """Pr(K-SEQ returns a candidate) = 1 - (1 - beta(rho))^k (§1.4.2), at rho* by default.
    T4: 0.785330 (k=2), 0.858519 (k=3). Exact with Fractions when ``rho`` is given."""
    p = as_probs(p, "p", ndim=1)
    q = as_probs(q, "q", ndim=1)
    check_same_vocab(p, q)
    k = _check_k(k)
    rho = kseq_rho(p, q, k) if rho is None else rho
    return 1 - (1 - _kseq_beta(p, q, rho)) ** k


def kseq_upper_bound(p, q, k: int):
    """Upper bound on the acceptance of ANY valid selection from k i.i.d. draws from q:
    sum_x min(p(x), 1 - (1 - q(x))^k) (§1.4.2). T4: 0.86 (k=2), 0.988 (k=3)."""
    p = as_probs(p, "p", ndim=1)
    q = as_probs(q, "q", ndim=1)
    check_same_vocab(p, q)
    k = _check_k(k)
    return sum((min(px, 1 - (1 - qx) ** k) for px, qx in zip(p, q)), 0 * p[0])


def kseq_residual_weights(p, q, k: int, rho):
    """Unnormalised K-SEQ residual [V]: (p(x) - min(q(x), p(x)/rho) p_acc/beta)_+ (§1.4.2).

    Its mass is 1 - p_acc. The clamp at 0 only removes float rounding when rho is
    valid (validity means every entry is >= 0)."""
    b = _kseq_beta(p, q, rho)
    if not b > 0:
        return p.copy()
    ratio = _kseq_ratio(p, q, k, rho)
    w = [px - min(qx, px / rho) * ratio for px, qx in zip(p, q)]
    return np.array([wx if wx > 0 else 0 * wx for wx in w], dtype=p.dtype)


def kseq_valid(p, q, k: int, rho, rtol: float = 1e-12) -> bool:
    """True if ``rho`` satisfies p_acc(rho)/beta(rho) <= rho (exactly for Fractions,
    within a relative ``rtol`` in float64)."""
    p = as_probs(p, "p", ndim=1)
    q = as_probs(q, "q", ndim=1)
    k = _check_k(k)
    if not rho >= 1:
        return False
    ratio = _kseq_ratio(p, q, k, rho)
    if is_exact(p) and isinstance(rho, (Fraction, int)):
        return ratio <= rho
    return float(ratio) <= float(rho) * (1 + rtol)


def verify_kseq(p, q, candidates, u, *, rho=None) -> Verdict:
    """SpecTr K-SEQ draft selection at one node (ALGORITHMS.md §1.4.2; Sun et al.,
    NeurIPS 2023, arXiv 2310.15141).

    Shapes: p [V], q [V] (the ONE draft row all candidates were drawn from, i.i.d.),
    candidates [k], u [k+1]. For j = 0..k-1 return candidate X_j iff
    ``u[j] * rho * q(X_j) < p(X_j)`` (division-free min(1, p/(rho q))); if none is
    returned, draw y from the closed-form residual
    p_res(x) ∝ p(x) - min(q(x), p(x)/rho) p_acc(rho)/beta(rho) with u[k].

    ``rho=None`` uses :func:`kseq_rho` (float64). With exact (Fraction) p and q, rho*
    is irrational in general: pass an exact ``rho`` (a Fraction) explicitly; any
    rho with :func:`kseq_valid` gives the exact target law, rho* the best acceptance.
    An invalid rho raises InvalidInput (it would give a wrong law).
    Verdict: a candidate returned: ``n_accepted=1, tokens=(X_j,), path=(j,)``
    (as :func:`verify_mss`, the round continues after it); none: ``n_accepted=0,
    tokens=(y,), path=()``; k = 0: the bonus y ~ p with u[0] (bonus=True).
    Fallback ``residual_zero_mass``: p_acc == 1 up to rounding and still rejected;
    y is drawn from p instead (counted).
    """
    p = as_probs(p, "p", ndim=1)
    q = as_probs(q, "q", ndim=1)
    check_same_vocab(p, q)
    v = p.shape[0]
    cands = as_tokens(candidates, "candidates", vocab=v)
    k = cands.shape[0]
    for j, c in enumerate(cands):
        _check_drafted(q, c, "candidates", j, "q")
    u = as_uniforms(u, "u", length=k + 1)
    fallbacks: list = []
    if k == 0:
        return Verdict(0, (_draw(p, u[0], fallbacks),), True, tuple(fallbacks), ())
    if rho is None:
        if is_exact(p) or is_exact(q):
            raise InvalidInput("rho", "exact (Fraction) inputs need an explicit exact rho: rho* "
                               "is irrational in general (use kseq_rho for a float value)")
        rho = kseq_rho(p, q, k)
    elif not kseq_valid(p, q, k, rho):
        raise InvalidInput("rho", f"rho = {rho} is invalid: p_acc(rho)/beta(rho) > rho or rho < 1 "
                           "(the output law would not be the target's)")
    for j, c in enumerate(cands):
        if u[j] * rho * q[c] < p[c]:
            return Verdict(1, (int(c),), False, tuple(fallbacks), (j,))
    w = kseq_residual_weights(p, q, k, rho)
    if not w.sum() > 0:
        fallbacks.append("residual_zero_mass")
        w = p
    return Verdict(0, (_draw(w, u[k], fallbacks),), False, tuple(fallbacks), ())


def verify_kseq_rng(p, q, candidates, rng, *, rho=None) -> Verdict:
    """:func:`verify_kseq` with ``u = rng.random(k + 1)``."""
    check_generator(rng)
    return verify_kseq(p, q, candidates, rng.random(len(np.atleast_1d(candidates)) + 1), rho=rho)


# ---------------------------------------------------------------- sample-and-match


def tree_depth(parents) -> int:
    """Depth of the deepest node (0 for the empty tree)."""
    depth = []
    for i, par in enumerate(np.asarray(parents, dtype=np.int64)):
        depth.append(1 if par < 0 else depth[int(par)] + 1)
    return max(depth, default=0)


def verify_tree_deterministic(p, tokens, parents, u) -> Verdict:
    """Sample-and-match verification of DETERMINISTIC candidates (ALGORITHMS.md §1.4.3,
    §5.3, §6.4; the verifier of the official DFlash and D2SD code).

    Shapes: p [N+1, V] target rows (module docstring; temperature 0 = one-hot rows from
    ``process_logits(..., temperature=0)``), tokens [N], parents [N],
    u [D+1] with D = :func:`tree_depth`: u[d] draws the d-th emitted token.

    ``valid`` starts as {root}. Loop: draw y from the target row of the lowest-index
    node in ``valid`` with u[d] (all valid nodes share the same prefix, so their rows
    agree; the lowest index is the "first valid row" of the D2SD code); emit y;
    valid <- the children of valid nodes whose token is y. Stop when valid is empty
    (y was the correction, bonus=False) or every valid node is a leaf (one more y is
    drawn from the row after it, the bonus, bonus=True). Duplicated siblings are
    harmless: they stay valid together (the tree acts as the trie of its paths).

    Returns Verdict(n_accepted = number of matched draft tokens, tokens = matched
    tokens + last y, bonus, fallbacks, path = ancestors of the lowest-index node of
    the final valid set). Lossless for any candidates: every emitted token is an
    exact target sample given the emitted prefix.
    """
    p = as_probs(p, "p", ndim=2)
    v = p.shape[1]
    tokens, parents, children, depth = validate_tree(tokens, parents, v)
    n = tokens.shape[0]
    p = _tree_rows(p, "p", n)
    u = as_uniforms(u, "u", length=max(depth, default=0) + 1)
    fallbacks: list = []
    valid = [-1]  # node indices; -1 is the root
    emitted: list = []
    while True:
        row = min(valid) + 1
        y = _draw(p[row], u[len(emitted)], fallbacks)
        emitted.append(y)
        kids = [c for node in valid for c in children[node + 1]]
        if not kids:
            bonus = True
            break
        nxt = sorted(c for c in kids if tokens[c] == y)
        if not nxt:
            bonus = False
            break
        valid = nxt
    path = path_to(min(valid), parents) if valid != [-1] else ()
    return Verdict(len(emitted) - 1, tuple(emitted), bonus, tuple(fallbacks), path)


def verify_tree_deterministic_rng(p, tokens, parents, rng) -> Verdict:
    """:func:`verify_tree_deterministic` with ``u = rng.random(tree_depth(parents) + 1)``."""
    check_generator(rng)
    return verify_tree_deterministic(p, tokens, parents, rng.random(tree_depth(parents) + 1))


def tree_expected_length(p, tokens, parents):
    """E[tau + 1] of sample-and-match on a deterministic tree (ALGORITHMS.md §1.4.3, T5):
    1 + sum over the DISTINCT drafted paths (trie nodes) of their target path probability
    prod_k p(x_k | x^{k-1}), read from the rows p [N+1, V] of the lowest-index node with
    each prefix. T5: chain (0.9, 0.8, 0.7, 0.6) -> 3.4264; tree A/B/C/D -> 2.37.
    Exact with Fractions.
    """
    p = as_probs(p, "p", ndim=2)
    tokens, parents, children, _ = validate_tree(tokens, parents, p.shape[1])
    p = _tree_rows(p, "p", tokens.shape[0])
    total = 1 + 0 * p[0, 0]
    frontier = [([-1], 1 + 0 * p[0, 0])]  # (valid set sharing one prefix, its path probability)
    while frontier:
        valid, prob = frontier.pop()
        row = p[min(valid) + 1]
        kids = sorted(c for node in valid for c in children[node + 1])
        for t in dict.fromkeys(int(tokens[c]) for c in kids):
            group = [c for c in kids if tokens[c] == t]
            child_prob = prob * row[t]
            total = total + child_prob
            frontier.append((group, child_prob))
    return total


def trie_from_sequences(sequences):
    """Merge candidate rows (lists of token ids sharing the root prefix, e.g. D2SD's K+1
    rows) into a trie. Returns ``(tokens [N], parents [N], node_of)`` where
    ``node_of[r][i]`` is the node of position i of row r. Nodes are numbered in order of
    first appearance (row by row), so parents come before children.
    """
    tokens: list = []
    parents: list = []
    index: dict = {}
    node_of = []
    for r, seq in enumerate(sequences):
        prev = -1
        nodes = []
        for i, t in enumerate(seq):
            if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
                raise InvalidInput("sequences", f"token ids must be integers, got {t!r}", index=(r, i))
            key = (prev, int(t))
            if key not in index:
                index[key] = len(tokens)
                tokens.append(int(t))
                parents.append(prev)
            prev = index[key]
            nodes.append(prev)
        node_of.append(nodes)
    return np.array(tokens, dtype=np.int64), np.array(parents, dtype=np.int64), node_of


# ---------------------------------------------------------------- D2SD branch selection (§6.2)


def d2sd_boundary_posterior(confidences):
    """D2SD's rejection-boundary posterior, Eq. (4) of arXiv 2606.04446 (ALGORITHMS.md
    §6.2): r(i) = (prod_{k<=i} c_k)(1 - c_{i+1}) for i = 0..len(c)-1, with
    c [gamma-1] the DFlash confidences (max draft probabilities). Returns a list.
    T5: c = (0.95, 0.84, 0.62, 0.70, 0.42) -> (0.05, 0.152, 0.30324, 0.14843, 0.20087).
    """
    c = list(confidences)
    for i, ci in enumerate(c):
        if not 0 <= ci <= 1:  # also rejects NaN
            raise InvalidInput("confidences", f"must lie in [0, 1], got {ci}", index=i)
    out = []
    prefix = 1
    for ci in c:
        out.append(prefix * (1 - ci))
        prefix = prefix * ci
    return out


def d2sd_branch_set(confidences, k: int):
    """D2SD's branch set S = Top-K of r(i) (Eq. (5)); ties keep the lower i; returned
    sorted ascending, as the official code does. T5: top-4 of the example is {1, 2, 3, 4}."""
    k = _check_k(k)
    r = d2sd_boundary_posterior(confidences)
    order = sorted(range(len(r)), key=lambda i: (-r[i], i))
    return sorted(order[:k])
