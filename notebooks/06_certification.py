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
# # 6. Certification: power of the harness and the mutant zoo
#
# `specoracle certify` tests a sampler's output law against the exact target law with a
# stated false-positive rate $\alpha$ (Holm over the checks of a run) and a stated power: the
# smallest total-variation distance it detects with probability 0.9. The first plot is that
# detectable TV against the number of samples (worst case over alternatives; noncentral
# chi-square, proofs/stats.py). The second runs the certification on the reference and on
# the mutant zoo (known-wrong samplers modelled on real engine bugs): every mutant must be
# rejected, the reference must not.

# %% tags=["parameters"]
SMOKE = False
SEED = 0

# %%
import matplotlib.pyplot as plt
import numpy as np

from specoracle.proofs import certify as cert
from specoracle.proofs import stats as st

# %%
ns = np.logspace(2, 6, 60)
fig, ax = plt.subplots(figsize=(6, 4))
for df in (1, 4, 16, 64):
    ax.loglog(ns, [st.detectable_tv(int(n), df, alpha=1e-4, power=0.9) for n in ns],
              label=f"{df} degrees of freedom")
ax.set_xlabel("samples n")
ax.set_ylabel("smallest TV detected with power 0.9")
ax.set_title("Power of one chi-square check (alpha = 1e-4 per check)")
ax.grid(True, which="both", alpha=0.3)
ax.legend()
plt.show()

# %%
names = [n for n in cert.list_impls() if n.startswith("mutant.")]
if SMOKE:
    names = ["mutant.residual_abs", "mutant.shared_noise", "mutant.block_residual_no_ptau"]
impls = ["reference.chain", "reference.block"] + names
results = {}
for name in impls:
    rep = cert.certify(name, seed=SEED, samples=2000 if SMOKE else None)
    finite = [c.p_value for c in rep.checks if np.isfinite(c.p_value)]
    results[name] = (rep.verdict, min(finite) if finite else np.nan)
    print(f"{name:40s} {rep.verdict}")

# %%
fig, ax = plt.subplots(figsize=(7, 0.3 * len(impls) + 1.5))
y = np.arange(len(impls))
pvals = np.array([max(results[n][1], 1e-300) for n in impls])
colors = ["C2" if results[n][0] == "exact" else "C3" for n in impls]
ax.barh(y, -np.log10(pvals), color=colors)
ax.axvline(-np.log10(cert.DEFAULT_ALPHA), color="k", ls="--", lw=1,
           label=f"alpha = {cert.DEFAULT_ALPHA:g} (whole run)")
ax.set_yticks(y)
ax.set_yticklabels(impls, fontsize=8)
ax.set_xlabel("-log10 (smallest p-value of the run)")
ax.set_title("Reference (green) passes; every mutant (red) is rejected")
ax.legend(fontsize=8)
plt.show()
