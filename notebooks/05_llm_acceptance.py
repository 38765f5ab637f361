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
# # 5. LLM acceptance on the zoo pair
#
# The project's own Llama pair (zoo:code-target, 23.2M parameters; zoo:code-draft, 2.46M; a
# shared 8k BPE tokenizer; Python source and Shakespeare). Speculative decoding with real KV
# caches (fastpath/models/engine.py): per-position acceptance, the mean committed length
# $\tau$ (bonus included) against $k$ and the temperature, chain against block verification,
# and the measured speed-up over the target alone with the same code path. Runs on the CPU;
# needs the zoo weights (`specoracle zoo install --from DIR`).

# %% tags=["parameters"]
SMOKE = False
SEED = 0

# %%
from specoracle.fastpath.models.zoo import zoo_reason

REASON = zoo_reason("zoo:code-target", "zoo:code-draft")
if REASON:
    print("SKIP:", REASON)

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from specoracle.fastpath.models.engine import autoregressive_generate, speculative_generate
from specoracle.fastpath.models.hf import load_pair
from specoracle.fastpath.models.processing import Warp

torch.set_num_threads(1)
target, draft, tok = load_pair("zoo:code-target", "zoo:code-draft")
PROMPTS = ["def fibonacci(n):\n    ", "import numpy as np\n\n", "ROMEO.\nBut soft, what light",
           "class Stack:\n    def __init__(self):\n        "]
prompts = [tok(p)["input_ids"] for p in (PROMPTS[:2] if SMOKE else PROMPTS)]
NEW = 24 if SMOKE else 128
KS = [2, 4] if SMOKE else [1, 2, 4, 8]
TEMPS = [0.0, 1.0]

# %%
results = {}
for T in TEMPS:
    for k in KS:
        for method in (("greedy",) if T == 0 else ("chain", "block")):
            r = speculative_generate(target, draft, prompts, k=k, method=method, warping=Warp(temperature=T),
                                     max_new_tokens=NEW, seeds=SEED)
            results[(T, k, method)] = r
base = {T: autoregressive_generate(target, prompts, warping=Warp(temperature=T), max_new_tokens=NEW, seeds=SEED)
        for T in TEMPS}

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
kmax = max(KS)
for method, style in (("chain", "o-"), ("block", "s--")):
    acc = results[(1.0, kmax, method)].position_acceptance()
    axes[0].plot(range(1, kmax + 1), acc, style, label=f"T = 1, {method}")
acc = results[(0.0, kmax, "greedy")].position_acceptance()
axes[0].plot(range(1, kmax + 1), acc, "^:", label="T = 0, greedy")
axes[0].set_xlabel("draft position i")
axes[0].set_ylabel("Pr(n_accepted >= i)")
axes[0].set_title(f"per-position acceptance (k = {kmax})")
axes[0].legend(fontsize=8)

for (T, method), style in (((0.0, "greedy"), "^:"), ((1.0, "chain"), "o-"), ((1.0, "block"), "s--")):
    axes[1].plot(KS, [results[(T, k, method)].tau() for k in KS], style, label=f"T = {T:g}, {method}")
    axes[2].plot(KS, [results[(T, k, method)].tokens_per_second / base[T].tokens_per_second for k in KS],
                 style, label=f"T = {T:g}, {method}")
axes[1].set_xlabel("k (drafted tokens per round)")
axes[1].set_ylabel("tau = committed tokens per target call")
axes[1].set_title("mean committed length (bonus included)")
axes[1].legend(fontsize=8)
axes[2].axhline(1, color="k", lw=1)
axes[2].set_xlabel("k")
axes[2].set_ylabel("speed-up over target-only decoding")
axes[2].set_title("measured wall-clock speed-up (2-core CPU)")
axes[2].legend(fontsize=8)
plt.show()

# %% [markdown]
# Block verification commits at least as many tokens per round as token-level verification
# (Sun et al.'s optimality), and at temperature 0 the greedy chain is longest. DFlash and
# D²SD drafters appear here when trained weights are available (`specoracle zoo train-dflash`).

# %%
for T in TEMPS:
    for k in KS:
        for method in (("greedy",) if T == 0 else ("chain", "block")):
            r = results[(T, k, method)]
            print(f"T={T:g} k={k} {method:6s} tau={r.tau():.3f} tokens/s={r.tokens_per_second:7.1f} "
                  f"(target alone {base[T].tokens_per_second:7.1f})")
