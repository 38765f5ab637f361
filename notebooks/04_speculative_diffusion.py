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
# # 4. Speculative diffusion
#
# A DDPM sampler is a chain of Gaussian kernels, so speculative sampling applies step by step
# (De Bortoli et al., arXiv 2501.05370) and block verification lifts the acceptance further
# (Soen et al., arXiv 2606.13426). Target: the exact denoiser of a 1-D Gaussian mixture
# (ALGORITHMS.md T10), 50 DDPM steps, the training-free Free Drafter (FD-b, §4.4). Shown:
# per-step acceptance along the schedule, sequential target calls against the window $L$,
# token against block verification, and the law of the output against the exact grid law of
# the target chain; then a sample grid from the project's trained digits model.

# %% tags=["parameters"]
SMOKE = False
SEED = 0

# %%
import matplotlib.pyplot as plt
import numpy as np

from specoracle.fastpath.numpy_batch import gaussian as numpy_batch_gaussian
from specoracle.reference import diffusion as df
from specoracle.reference import targets_continuous as tc

rng = np.random.default_rng(SEED)
CHAINS = 2000 if SMOKE else 50000
STEPS = 50
schedule = tc.linear_schedule(STEPS, 1e-3, 0.2)
sampler = df.DiffusionSampler(schedule, "ddpm", final_noise=True)
data = tc.GaussianMixtureData(np.array([0.3, 0.7]), np.array([[-2.0], [1.5]]), np.array([0.5, 0.3]))
target = df.TargetModel(sampler, tc.ExactDenoiser(data, schedule, "eps"))

def run(verify, window, drafter="free"):
    x0 = rng.standard_normal((CHAINS, 1))
    # verifier: the batched NumPy twin of the oracle's window verifiers (same decisions, tested)
    return df.speculative_sample(target, df.make_drafter(drafter, target), x0, rng,
                                 window=window, verify=verify, verifier=numpy_batch_gaussian)

# %% [markdown]
# ## Acceptance along the schedule (window 4)

# %%
res = {v: run(v, 4) for v in ("token", "block")}
fig, ax = plt.subplots(figsize=(7, 4))
for v, r in res.items():
    ax.plot(np.arange(STEPS), r.acceptance_per_step, label=f"{v} verification")
ax.set_xlabel("chain step k (k = 0 is pure noise, t = T)")
ax.set_ylabel("acceptance of drafted states")
ax.set_title("Free Drafter on the mixture: per-step acceptance")
ax.legend()
plt.show()

# %% [markdown]
# ## Sequential target calls against the window
# One round drafts up to $L$ states and verifies them with ONE batched target call, so a chain
# needs about (steps / states committed per round) sequential calls instead of one per step.
# At $L = 1$ there is nothing to gain: every round verifies one state with one call, exactly as
# the plain chain does, and the Free Drafter adds one start-up call at pure noise before its
# first window (it has no target output to freeze yet), hence 50 + 1 = 51. From $L = 2$ on the
# saving grows with $L$. Block verification commits at least as many states per round as token
# verification in expectation (Sun et al.'s optimality), so it needs at most as many calls; at
# $L \le 2$ the two agree up to sampling noise (in the full run their labels agree to two
# decimals), and the gap opens from $L = 4$ on. The markers are drawn slightly left (token) and
# right (block) of each $L$ so that both stay visible; the labels give token / block.

# %%
windows = [1, 2, 4, 8] if SMOKE else [1, 2, 4, 8, 16]
calls = {v: [] for v in ("token", "block")}
for L in windows:
    for v in calls:
        calls[v].append(run(v, L).sequential_calls.mean())
fig, ax = plt.subplots(figsize=(6, 4))
ax.axhline(STEPS, color="k", ls="--", lw=1, label=f"plain chain ({STEPS} calls)")
styles = {"token": dict(marker="o", ls="-", mfc="none", ms=9, shift=0.96),
          "block": dict(marker="s", ls=":", ms=5, shift=1.04)}   # side by side on the log axis
for v, c in calls.items():
    st = dict(styles[v])
    shift = st.pop("shift")
    ax.plot(np.array(windows) * shift, c, label=f"{v} verification", **st)
for L, a, b in zip(windows, calls["token"], calls["block"]):
    ax.annotate(f"{a:.2f} / {b:.2f}", (L, max(a, b)), textcoords="offset points", xytext=(0, 8),
                ha="center", fontsize=7)
ax.set_ylim(0, STEPS * 1.15)
ax.set_xscale("log", base=2)
ax.set_xticks(windows, [str(L) for L in windows])
ax.set_xlabel("window L (drafted states per round)")
ax.set_ylabel("sequential target calls per chain (mean)")
ax.set_title("calls per chain, token / block (L = 1: one call per step + 1 start-up call)", fontsize=9)
ax.legend()
plt.show()
print({v: [round(x, 3) for x in c] for v, c in calls.items()})

# %% [markdown]
# ## The output law is the target chain's
# The exact law of the target chain's output (grid propagation of the density, T10),
# against histograms of the speculative samplers.

# %%
grid = tc.grid_reference_1d(data, sampler, n=2001)
fig, ax = plt.subplots(figsize=(7, 4))
for v, r in res.items():
    ax.hist(r.samples[:, 0], bins=120, density=True, histtype="step", label=f"{v} (speculative)")
ax.plot(grid.grid, grid.density, "k-", lw=1, label="target chain (exact, grid)")
ax.set_xlabel("x_0")
ax.set_ylabel("density")
ax.legend()
plt.show()

# %% [markdown]
# ## A trained model: 8x8 digits
# The project's own digits eps-net (fastpath/models/zoo/weights/diffusion/digits), sampled with
# the Free Drafter and block verification (window 8). Sequential target calls against the
# plain chain's one call per step.

# %%
import torch

from specoracle.fastpath.models.diffusion.load import load_model
from specoracle.fastpath.models.diffusion.data import to_images
from specoracle.fastpath.models.diffusion.spec import SpecConfig, sample_speculative_rng

torch.set_num_threads(1)
D_STEPS, D_N = (100, 16) if SMOKE else (1000, 64)
den, draft_den, chain, info = load_model("zoo:digits", D_STEPS)
out = sample_speculative_rng(den, chain, D_N, np.random.default_rng(SEED),
                             SpecConfig(window=8, drafter="free", verify="block"))
imgs = to_images(out.samples)
cols = 8
rows = int(np.ceil(len(imgs) / cols))
fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.8, rows * 0.8 + 0.5))
for ax, i in zip(axes.flat, range(rows * cols)):
    ax.axis("off")
    if i < len(imgs):
        ax.imshow(imgs[i], cmap="gray_r", vmin=0, vmax=16, interpolation="nearest")
calls = out.stats.get("seq_target_calls")
fig.suptitle(f"digits, {D_STEPS} steps: {calls} sequential target calls (plain chain: {D_STEPS})", fontsize=9)
plt.show()
