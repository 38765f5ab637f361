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
# # 3. Gaussian couplings in 2-D
#
# One diffusion step is Gaussian: target $p=\mathcal N(m^p,s^2I)$, draft $q=\mathcal N(m^q,s^2I)$.
# Both couplings accept the draft with the maximal probability $2\Phi(-\delta/2)$,
# $\delta=\|m^p-m^q\|/s$ (ALGORITHMS.md §2.1). On a rejection the **reflection** coupling
# (De Bortoli et al., arXiv 2501.05370; §2.3) reflects the draft noise across $e^\perp$, while the
# **Γ-maximal** coupling (Soen et al., arXiv 2606.13426; §4.2) draws independently from the residual
# $(p-q)_+$ with the exact 1-D inverse-CDF sampler along $e$ (§2.4). Block verification needs the
# scaled residual $(c\,p-q)_+$ with $c<1$, which only the second construction can produce.

# %% tags=["parameters"]
SMOKE = False
SEED = 0

# %%
import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import norm

from specoracle.reference import gaussian as G

rng = np.random.default_rng(SEED)
N = 600 if SMOKE else 6000
m_q, m_p, s = np.zeros(2), np.array([1.2, 0.5]), 1.0

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 5), sharex=True, sharey=True)
for ax, (name, step) in zip(axes, (("reflection", G.reflection_coupling_rng),
                                   ("Gamma-maximal", G.gamma_coupling_rng))):
    out = [step(m_p, m_q, s, rng) for _ in range(N)]
    drafts = np.array([o.draft for o in out])
    acc = np.array([o.accepted for o in out])
    ys = np.array([o.x for o in out])
    ax.scatter(*drafts[acc].T, s=3, c="C0", alpha=0.5, label="draft, accepted")
    ax.scatter(*drafts[~acc].T, s=3, c="0.6", alpha=0.5, label="draft, rejected")
    ax.scatter(*ys[~acc].T, s=4, c="C3", alpha=0.7, label="output on rejection (residual)")
    ax.plot(*m_q, "k^", ms=9, label="m_q (draft mean)")
    ax.plot(*m_p, "k*", ms=12, label="m_p (target mean)")
    ax.set_title(f"{name}: accepted {acc.mean():.3f} (theory {G.acceptance_rate(np.linalg.norm(m_p - m_q) / s):.3f})")
    ax.set_aspect("equal")
    ax.set_xlabel("x_1 (first coordinate of the state)")
axes[0].set_ylabel("x_2 (second coordinate of the state)")
axes[0].legend(fontsize=7, loc="lower left")
fig.suptitle(f"one Gaussian step, {N} draws: draft N(m_q, s^2 I), target N(m_p, s^2 I), s = {s:g}")
plt.show()

# %% [markdown]
# ## Acceptance against $\delta$

# %%
deltas = np.linspace(0.05, 4, 12 if SMOKE else 30)
n_each = 200 if SMOKE else 2000
emp = {"reflection": [], "Gamma-maximal": []}
for d in deltas:
    mp = np.array([d * s, 0.0])
    emp["reflection"].append(np.mean([G.reflection_coupling_rng(mp, m_q, s, rng).accepted for _ in range(n_each)]))
    emp["Gamma-maximal"].append(np.mean([G.gamma_coupling_rng(mp, m_q, s, rng).accepted for _ in range(n_each)]))
grid = np.linspace(0, 4, 200)
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(grid, [G.acceptance_rate(g) for g in grid], "k-", label="2 Phi(-delta/2)")
ax.plot(deltas, emp["reflection"], "o", mfc="none", label="reflection (simulated)")
ax.plot(deltas, emp["Gamma-maximal"], "x", label="Gamma-maximal (simulated)")
ax.set_xlabel("delta = |m_p - m_q| / s")
ax.set_ylabel("acceptance")
ax.legend()
plt.show()

# %% [markdown]
# ## The scaled residual $(c\,p-q)_+$ for $c<1$
# Along $e$ the residual is one-dimensional: support $S>s^\star=\delta/2-\ln c/\delta$, mass
# $R(c,\delta)$ (§2.4). The exact inverse-CDF sampler against the normalised density.

# %%
delta = 1.0
fig, ax = plt.subplots(figsize=(6, 4))
xs = np.linspace(-1, 6, 400)
for c, col in ((1.0, "C0"), (0.5, "C1"), (0.2, "C2")):
    S = np.array([G.residual_quantile(u, c, delta) for u in rng.random(N)])
    dens = np.maximum(c * norm.pdf(xs - delta) - norm.pdf(xs), 0) / G.residual_mass(c, delta)
    ax.hist(S, bins=50, density=True, alpha=0.35, color=col)
    ax.plot(xs, dens, color=col, label=f"c = {c}: R = {G.residual_mass(c, delta):.4f}, s* = {G.residual_threshold(c, delta):.2f}")
ax.set_xlabel("S (coordinate along e, from m_q)")
ax.set_ylabel("density")
ax.set_title("Scaled residual: inverse-CDF samples vs density (delta = 1)")
ax.legend(fontsize=8)
plt.show()
