# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. Acceptance and overlap
#
# The first draft token is accepted with probability $\beta(p,q)=\sum_x\min(p,q)=1-\mathrm{TV}(p,q)$
# (ALGORITHMS.md §1.1), for token-level and block verification alike. With $k$ i.i.d. children,
# SpecInfer's multi-step speculative sampling accepts some child with probability
# $1-\prod_j(1-\beta_j)$ against the running residual (§1.4.1). Here the oracle runs on random
# pairs and the empirical acceptance is set against the theory, with exact binomial 95% bands.
# p is the target, q the draft.

# %% tags=["parameters"]
SMOKE = False
SEED = 0

# %%
import matplotlib.pyplot as plt
import numpy as np

from specoracle.experiments import accepted_lengths, binomial_band
from specoracle.reference.targets import beta, random_pair
from specoracle.reference.tree import mss_acceptance

rng = np.random.default_rng(SEED)
N_PAIRS = 8 if SMOKE else 40
N_ROUNDS = 300 if SMOKE else 4000
V = 6

# %%
rows = []
for _ in range(N_PAIRS):
    p, q = random_pair(rng, V, concentration=0.7)
    theory_first = float(beta(p, q))
    theory_mss, _ = mss_acceptance(p, np.stack([q, q]))
    emp = {v: (accepted_lengths(v, p, q, k=2, n=N_ROUNDS, rng=rng) >= 1).mean()
           for v in ("chain", "block", "mss")}
    rows.append((theory_first, float(theory_mss), emp))

# %%
fig, ax = plt.subplots(figsize=(6, 5))
grid = np.linspace(0, 1, 101)
lo, hi = binomial_band(grid, N_ROUNDS)
ax.fill_between(grid, lo, hi, color="0.85", label=f"95% binomial band (n={N_ROUNDS})")
ax.plot(grid, grid, "k-", lw=1, label="theory")
t1 = [r[0] for r in rows]
ax.plot(t1, [r[2]["chain"] for r in rows], "o", label="token-level: Pr(tau >= 1)")
ax.plot(t1, [r[2]["block"] for r in rows], "x", label="block: Pr(tau >= 1)")
ax.plot([r[1] for r in rows], [r[2]["mss"] for r in rows], "s", mfc="none",
        label="MSS, 2 children: Pr(accept)")
ax.set_xlabel("theory: 1 - TV(p, q)   (MSS: 1 - prod(1 - beta_j))")
ax.set_ylabel("empirical acceptance")
ax.set_title("Acceptance equals overlap")
ax.legend(loc="upper left", fontsize=8)
plt.show()

# %% [markdown]
# Every point lies inside the band: the oracle's first-token acceptance is the overlap
# $1-\mathrm{TV}$, and two stochastic children lift it to $1-\prod_j(1-\beta_j)$.
# How many points fall outside the band (about 5% are expected by chance):

# %%
outside = 0
for t_first, t_mss, emp in rows:
    for theory, value in ((t_first, emp["chain"]), (t_first, emp["block"]), (t_mss, emp["mss"])):
        lo_, hi_ = binomial_band(theory, N_ROUNDS)
        outside += not (lo_ <= value <= hi_)
print(f"{outside} of {3 * len(rows)} points outside their 95% band")
