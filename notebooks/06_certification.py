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
# rejected, the reference must not. Its bars are -log10 of each run's smallest p-value on a
# log axis (a passing reference sits near 1, a rejected mutant beyond the alpha line), each
# labelled with its p-value; p = 0 with an infinite statistic means the sampler emitted an
# output that has probability 0 under the target.

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
    finite = [c for c in rep.checks if np.isfinite(c.p_value)]
    worst = min(finite, key=lambda c: c.p_value) if finite else None
    results[name] = (rep.verdict, worst.p_value if worst else np.nan,
                     worst is not None and worst.p_value == 0 and np.isinf(worst.statistic))
    print(f"{name:40s} {rep.verdict}")

# %%
fig, ax = plt.subplots(figsize=(7.5, 0.3 * len(impls) + 1.5))
y = np.arange(len(impls))
pvals = np.array([results[n][1] for n in impls])
score = -np.log10(np.clip(pvals, 1e-300, 1.0))            # p = 0 (an impossible output) -> 300
floor = 1e-2                                               # log axis: bars start at 0.01
colors = ["C2" if results[n][0] == "exact" else "C3" for n in impls]
ax.barh(y, np.maximum(score, floor) - floor, left=floor, color=colors)
for yi, name, p, sc in zip(y, impls, pvals, score):
    if results[name][2]:       # statistic inf: an output the target law gives probability 0
        text = "p = 0: an impossible output was emitted"
    else:
        text = "p < 1e-300 (underflow)" if p < 1e-300 else f"p = {p:.2g}"
    ax.annotate(text, (max(sc, floor), yi), textcoords="offset points", xytext=(3, -3), fontsize=7)
ax.axvline(-np.log10(cert.DEFAULT_ALPHA), color="k", ls="--", lw=1,
           label=f"alpha = {cert.DEFAULT_ALPHA:g} (whole run): rejected to the right")
ax.set_xscale("log")
ax.set_xlim(floor, 3e4)
ax.set_yticks(y)
ax.set_yticklabels(impls, fontsize=8)
ax.set_xlabel("-log10 (smallest p-value of the run), log scale")
ax.set_title("Reference (green) passes; every mutant (red) is rejected")
ax.legend(fontsize=8, loc="lower right")
plt.show()
