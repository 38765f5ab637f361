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
# # 2. Block verification vs token verification
#
# Sun et al. (arXiv 2403.10444) verify the drafted block jointly and keep the **longest**
# passing prefix. On their binary example, $p=(1/3,2/3)$, $q=(2/3,1/3)$, $\gamma=2$, token
# verification accepts $\mathbb E[\tau]=10/9$ and block verification $11/9$ (ALGORITHMS.md T3a),
# with $\Pr(\tau=0,1,2)=(3,2,4)/9$ and $(3,1,5)/9$. Then random context-dependent (Markov)
# models: $\Pr(\tau\ge i)$ from the closed forms (product of minima for tokens, the min-over-$j$
# formula for blocks) against simulation.

# %% tags=["parameters"]
SMOKE = False
SEED = 0

# %%
import matplotlib.pyplot as plt
import numpy as np

from specoracle.experiments import accepted_lengths, markov_accepted_lengths, survival_from_lengths
from specoracle.reference.targets import MarkovModel, block_survival, token_survival

rng = np.random.default_rng(SEED)
N = 3000 if SMOKE else 60000

# %%
p, q = np.array([1 / 3, 2 / 3]), np.array([2 / 3, 1 / 3])
law = {}
for v in ("chain", "block"):
    taus = accepted_lengths(v, p, q, k=2, n=N, rng=rng)
    law[v] = np.bincount(taus, minlength=3) / N
    print(f"{v:6s} E[tau] = {taus.mean():.4f}   (exact {'10/9' if v == 'chain' else '11/9'}"
          f" = {(10 if v == 'chain' else 11) / 9:.4f})")

fig, ax = plt.subplots(figsize=(6, 4))
x = np.arange(3)
ax.bar(x - 0.2, law["chain"], 0.4, label="token-level (simulated)")
ax.bar(x + 0.2, law["block"], 0.4, label="block (simulated)")
ax.plot(x - 0.2, np.array([3, 2, 4]) / 9, "k_", ms=22, mew=2, label="exact")
ax.plot(x + 0.2, np.array([3, 1, 5]) / 9, "k_", ms=22, mew=2)
ax.set_xticks(x)
ax.set_xlabel("accepted drafts tau")
ax.set_ylabel("probability")
ax.set_title("Sun et al.'s example: 10/9 vs 11/9")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Random context-dependent models
# First-order Markov target and draft over 3 tokens, block length 4.

# %%
N_MODELS = 2 if SMOKE else 4
GAMMA = 4
fig, axes = plt.subplots(1, N_MODELS, figsize=(4 * N_MODELS, 3.5), squeeze=False)
for ax in axes[0]:
    target = MarkovModel.random(rng, vocab=3, order=1, concentration=1.0)
    draft = MarkovModel.random(rng, vocab=3, order=1, concentration=1.0)
    prefix = [0]
    i = np.arange(1, GAMMA + 1)
    tok = np.array(token_survival(target, draft, prefix, GAMMA), dtype=float)
    blk = np.array(block_survival(target, draft, prefix, GAMMA), dtype=float)
    n_sim = N // 4
    sim_t = survival_from_lengths(markov_accepted_lengths("chain", target, draft, prefix, GAMMA, n_sim, rng), GAMMA)
    sim_b = survival_from_lengths(markov_accepted_lengths("block", target, draft, prefix, GAMMA, n_sim, rng), GAMMA)
    ax.plot(i, tok, "C0-", label="token: closed form")
    ax.plot(i, sim_t, "C0o", label="token: simulated")
    ax.plot(i, blk, "C1-", label="block: closed form")
    ax.plot(i, sim_b, "C1s", label="block: simulated")
    ax.set_xlabel("i")
    ax.set_ylabel("Pr(tau >= i)")
    ax.set_xticks(i)
axes[0][0].legend(fontsize=7)
fig.suptitle("Block verification dominates token verification at every i")
plt.show()
