# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Allen Visual Behavior data, part 3 — the bootstrap datasets the cell-type RNN is trained on
#
# Supports **Figures 4–5**: for each of the six conditions (familiar/novel × change/no-change/omission: FC, FN, FO, NC,
# NN, NO) the model learns one-step-ahead prediction of 18 population traces. Each sample is the mean of 100 window
# rows drawn with replacement (2000 samples), smoothed along time; input = frames 0–14, target = frames 1–15. Facts
# and rules: [docs/paper/allen-data-pipeline.md](../docs/paper/allen-data-pipeline.md), sections 6–8.
#
# **The paper figure:** Figure 4 fits the cell-type RNN to exactly these traces (mean input and target per
# population); this notebook draws them for familiar change in V1 (`figures/05_allen_fc_v1_means.png`, written below):
#
# ![Familiar change, V1: model input and target per population](../figures/05_allen_fc_v1_means.png)
#
# **Where this notebook sits in the data pipeline** (03 → 04 → 05 → the model in 06):
#
# ```
# release metadata --[03: filters, depth -> layer]--> planes per population (18 x 2 experience levels)
#   --[04: dF/F, stimulus table]--> trial windows (change / no change / omission)
#   --[05: resample experiments]--> bootstrap datasets (input + target per population)  <- this notebook
#   --> 06: the cell-type RNN
# ```
#
# **Learning objectives**
# 1. Build all six condition datasets in one pass over the experiments, on the digital twin or a real cache.
# 2. Read the dataset file format: inputs/targets `(2000, 15, 18)`, held-out arrays, population names, manifest.
# 3. Check the invariants: `target[:, t] == input[:, t + 1]`, fixed channel order, a held-out split made before
#    bootstrapping.
# 4. Compare conditions, and see the twin's planted ground-truth connectivity differences that Figs 4–5 try to recover.
#
# **Runtimes** (2 CPU cores, from the README's [runtime table](../README.md#notebooks-and-runtimes)): quick mode
# ~30 s (10-minute twin sessions), paper mode ~1 min (the full-length twin: 75-minute sessions, ~48,300 frames per
# plane). Datasets are cached in `data/allen/`
# (`BIORNN_RETRAIN=1` rebuilds). Set `BIORNN_ALLEN_CACHE` to build from a real AllenSDK cache instead of the twin.

# %%
import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from biornn.cli import main as biornn_cli
from biornn.core import conditions
from biornn.core.config import figures_dir, start, want_retrain
from biornn.data import allen, allen_nwb, curate, synthetic
from biornn.nn.connectivity import POPULATION_LABELS
from biornn.plotting import allen as allen_plots
from biornn.plotting import curate as curate_plots
from biornn.plotting import save_figure

# %% [markdown]
# The mode sets the twin's session length; `CONFIG` holds every curation choice (defaults: the corrected ones).

# %%
MODE = start()  # the mode, read once (BIORNN_MODE); also tunes the allocator for large CPU tensors
RETRAIN = want_retrain()  # BIORNN_RETRAIN, read once here and passed down
FIGURES = figures_dir()  # where save_figure writes: BIORNN_FIGURES or figures/, read once here
CONFIG = curate.CurateConfig(seed=0)  # split layers, window omission filter, smooth-then-shift, 20 % held out
print("mode:", MODE, "| source:", curate.default_source_spec())

# %% [markdown]
# ## 1. Build (or read) the six datasets
#
# One pass over the selected experiments cuts all three window types; then each condition is split (by trial),
# bootstrapped and smoothed.

# %%
datasets, folder = curate.cached_datasets(conditions=conditions.CONDITIONS, config=CONFIG, mode=MODE, retrain=RETRAIN)

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
for cond, ds in datasets.items():
    print(f"{cond:19s} {conditions.ABBREVIATIONS[cond]}  inputs {ds.inputs.shape}  held-out {ds.heldout_inputs.shape}  "
          f"rows {int(ds.row_counts.sum())} + {int(ds.heldout_row_counts.sum())} held out")

# %% [markdown]
# ### Invariants
#
# Channel order = the model's index order (V1 then LM; L4, L2/3, L5; Pyr, SST, VIP). With the default
# smooth-then-shift order the target is the input shifted by one frame, exactly.

# %%
for ds in datasets.values():
    assert ds.populations == POPULATION_LABELS
    assert ds.inputs.shape == ds.targets.shape == (CONFIG.n_samples, 15, 18)
    assert np.array_equal(ds.targets[:, :-1], ds.inputs[:, 1:])
    assert (ds.row_counts > 0).all() and (ds.heldout_row_counts > 0).all()
    assert curate.half_window(ds.inputs).shape[1] == 7

# %% [markdown]
# Training rows per population (experiment × window rows) and condition:

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
rows = pd.DataFrame({conditions.ABBREVIATIONS[c]: ds.row_counts for c, ds in datasets.items()}, index=POPULATION_LABELS)
print(rows.to_string())

# %% [markdown]
# **Exercise 1.** Which population has the fewest training rows in each condition, and how many times more rows has
# the best-sampled population? Replace the `...`.

# %% tags=["exercise"]
# Exercise 1 (solution)
# Hint: rows is a DataFrame (populations x conditions); .idxmin(), .min() and .max() work column by column.
# BEGIN SOLUTION
fewest = rows.idxmin()
spread = rows.max() / rows.min()
# END SOLUTION
print(pd.DataFrame({"fewest rows": fewest, "max / min": spread.round(1)}).to_string())

# %% [markdown]
# ## 2. The traces the model is trained on
#
# Familiar change (FC), V1: mean ± SD over the 2000 bootstrap samples of the model input (black, frames 0–14) and
# target (green dashed, frames 1–15); the red line marks frame 8, the first frame after the change.

# %%
axes = curate_plots.plot_population_means(datasets["familiar_change"], "V1")
save_figure(axes[0, 0].figure, "05_allen_fc_v1_means", mode=MODE, folder=FIGURES)

# %% [markdown]
# The same for LM:

# %%
axes = curate_plots.plot_population_means(datasets["familiar_change"], "LM")
save_figure(axes[0, 0].figure, "05_allen_fc_lm_means", mode=MODE, folder=FIGURES)

# %% [markdown]
# One population in all six conditions (solid familiar, dashed novel): the VIP response to omissions stands out.

# %%
fig, ax = plt.subplots(figsize=(6, 4))
curate_plots.plot_conditions(datasets, "V1_L2/3_VIP", ax=ax)
save_figure(fig, "05_allen_conditions_v1_l23_vip", mode=MODE, folder=FIGURES)

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
means = {conditions.ABBREVIATIONS[c]: np.round(ds.inputs.mean(axis=(0, 1))[[0, 5, 9, 14]], 3).tolist()
         for c, ds in datasets.items()}
print("mean input of V1_L4_Pyr, V1_L2/3_VIP, LM_L4_Pyr, LM_L2/3_VIP:")
for k, v in means.items():
    print(k, v)

# %% [markdown]
# **Exercise 2.** Each sample is the mean of 100 rows drawn with replacement. How much smaller is the bootstrap SD
# with 400 draws per sample instead of 100? (Expect a factor of about 2.) Replace the `...`.

# %% tags=["exercise"]
# Exercise 2 (solution)
# Hint: curate.bootstrap_means(rows, n_samples, n_draws, rng) is (n_samples, frames); take its SD over samples.
fake_rows = np.random.default_rng(0).normal(size=(1000, 16))
sd = {}
for n in (100, 400):
    # BEGIN SOLUTION
    sd[n] = curate.bootstrap_means(fake_rows, 2000, n, np.random.default_rng(1)).std(axis=0).mean()
    # END SOLUTION
print(f"SD with 100 draws / SD with 400 draws = {sd[100] / sd[400]:.2f}")

# %% [markdown]
# ## 3. The twin's ground truth
#
# The twin's network uses a different connectivity matrix in each condition. Its default planted differences scale the
# three inter-area pathways; e.g. novel omission vs novel no-change (NN → NO) strengthens LM L5 Pyr → V1 feedback.
# These are the block-level changes Figs 4–5 should recover from the twin's datasets.

# %%
W = synthetic.ground_truth_connectivity(synthetic.twin_config(MODE))
delta = W["novel_omission"] - W["novel_no_change"]
fig, ax = plt.subplots(figsize=(6, 5.5))
allen_plots.plot_block_matrix(delta, ax=ax, title="ground truth NO - NN, W[post, pre]")
save_figure(fig, "05_allen_twin_truth_no_minus_nn", mode=MODE, folder=FIGURES)

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
for post, pre in np.argwhere(delta != 0):
    print(f"{POPULATION_LABELS[pre]:12s} -> {POPULATION_LABELS[post]:12s} {delta[post, pre]:+.4f}")

# %% [markdown]
# **Exercise 3.** What is the planted familiar-change minus familiar-no-change (FN → FC) difference? Replace the
# `...`.

# %% tags=["exercise"]
# Exercise 3 (solution)
# Hint: W[condition] is the (18, 18) block matrix W[post, pre]; np.argwhere lists the non-zero entries.
# BEGIN SOLUTION
d = W["familiar_change"] - W["familiar_no_change"]
# END SOLUTION
for post, pre in np.argwhere(d != 0):
    print(f"{POPULATION_LABELS[pre]:12s} -> {POPULATION_LABELS[post]:12s} {d[post, pre]:+.4f}")

# %% [markdown]
# ## 4. The dataset files, and the real datasets
#
# One `<condition>.npz` (plain arrays, no pickles) plus a `<condition>.json` manifest per condition, written atomically
# (format in the `biornn.data.curate` docstring). The manifest records every setting, the source, row counts, skipped
# experiments and the npz checksum.

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
with np.load(folder / "familiar_omission.npz") as npz:
    for key in npz.files:
        print(f"{key:19s} {npz[key].dtype}  {npz[key].shape}")
manifest = json.loads((folder / "familiar_omission.json").read_text())
print({k: manifest[k] for k in ("format_version", "condition", "abbreviation", "source", "seed", "layer_rule")})

# %% [markdown]
# The command line builds the same files:
#
# ```
# python -m biornn allen build --source twin --condition all --seed 0 --out data/allen/twin-seed0
# python -m biornn allen build --source /path/to/allensdk_cache --condition familiar_change --seed 0 --out DIR
# ```
#
# ### With a network: the real datasets
#
# A user with a network builds the same six files from the real release. First the plan, printed by
# `python -m biornn allen plan --metadata bundled --layer-rule split` (here through the same function):

# %%
biornn_cli(["allen", "plan", "--metadata", "bundled", "--layer-rule", "split"])

# %% [markdown]
# then a smoke run (at most `K` experiments per population; `K = 1` below), and the full build once it works:
#
# ```
# python -m biornn allen build --source s3 --cache-dir DIR --max-experiments 1 --condition all --out data/allen/s3-k1
# python -m biornn allen build --source s3 --cache-dir DIR --condition all --workers 2 --out data/allen/s3-seed0
# ```
#
# The smoke run's size, from the functions the commands call:

# %%
split_selection = allen.select_experiments(allen.load_metadata("bundled"), layer_rule="split", warn_overlap=False)
smoke = allen_nwb.download_plan(allen_nwb.cap_per_population(split_selection, 1))
print(f"smoke run (K = 1): {smoke['n_experiments']} NWB files, {smoke['n_sessions']} sessions, "
      f"estimated {smoke['estimated_gb']:.1f} GB at an assumed {smoke['gb_per_experiment']:g} GB per file")

# %% [markdown]
# **Exercise 4.** Rebuild familiar change with the published choices (`CurateConfig.published()`, cached like the
# others): how many V1 SST L4 rows does the `published` layer overlap add? Replace the `...`.

# %% tags=["exercise"]
# Exercise 4 (solution)
# Hint: compare the published row count with the default's training plus held-out rows of the same population.
pub, _ = curate.cached_datasets(conditions=("familiar_change",), config=curate.CurateConfig.published(), mode=MODE, retrain=RETRAIN)
i = POPULATION_LABELS.index("V1_L4_SST")
# BEGIN SOLUTION
n_published = int(pub["familiar_change"].row_counts[i])
n_split = int(datasets["familiar_change"].row_counts[i] + datasets["familiar_change"].heldout_row_counts[i])
# END SOLUTION
print(f"V1_L4_SST rows: published {n_published}, split {n_split} (+{n_published - n_split})")

# %% [markdown]
# Offline, `biornn.data.allen_nwb.write_fixture_cache(DIR)` writes a small AllenSDK cache of synthetic NWB files for real
# selected experiments; `python -m biornn allen build --source DIR --condition all --out OUT` then runs the real NWB
# reading path end to end (`tests/test_allen_nwb.py` does this).
#
# ## Summary
#
# The numbers of this build, computed above:

# %%
fc = datasets["familiar_change"]
print(f"{len(datasets)} datasets ({', '.join(conditions.ABBREVIATIONS[c] for c in datasets)}), each inputs "
      f"{fc.inputs.shape} and held-out {fc.heldout_inputs.shape}")
print("training rows per condition:", {conditions.ABBREVIATIONS[c]: int(ds.row_counts.sum()) for c, ds in datasets.items()})
print(f"planted NO - NN differences in the twin's ground truth: {int((delta != 0).sum())} blocks")

# %% [markdown]
# * Six datasets, each `(2000, 15, 18)` input/target plus a held-out set bootstrapped only from held-out trials.
# * Smooth-then-shift makes the target exactly the input one frame later; `shift_then_smooth` is the published order.
# * The twin's windows go through the same code as real data, and its ground-truth connectivity per condition is known.
