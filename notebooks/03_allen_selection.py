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
# # Allen Visual Behavior data, part 1 — which imaging planes feed the 18 populations
#
# Supports **Figures 4–5** of Balwani et al. (Sci. Adv. 2025): the cell-type RNN is fitted to two-photon ΔF/F of
# 18 populations, 2 areas (V1, LM) × 3 layers (L2/3, L4, L5) × 3 cell types (Pyr, SST, VIP), recorded in the Allen
# Brain Observatory Visual Behavior Ophys release. This notebook selects the imaging planes (*experiments*) of each
# population from the release metadata. Facts and rules: [docs/paper/allen-data-pipeline.md](../docs/paper/allen-data-pipeline.md), sections 2–4
# and 10.1.
#
# **The paper figure:** Figures 4–5 show a network fitted to these 18 population traces; this notebook draws the
# data side of it, the depths of the planes that feed each layer (`figures/03_allen_depths_split.png`, written below):
#
# ![Imaging depths of the selected planes, coloured by layer](../figures/03_allen_depths_split.png)
#
# **Where this notebook sits in the data pipeline** (03 → 04 → 05 → the model in 06):
#
# ```
# release metadata --[03: filters, depth -> layer]--> planes per population (18 x 2 experience levels)
#   --[04: dF/F, stimulus table]--> trial windows (change / no change / omission)
#   --[05: resample experiments]--> bootstrap datasets (input + target per population) --> 06: the cell-type RNN
# ```
#
# **Learning objectives**
# 1. Apply the reference's six selection filters (cre line, mesoscope project, active sessions, Familiar / Novel 1,
#    VISp / VISl, depth) to the real release metadata, offline.
# 2. Reproduce the reference's population sizes (experience × area × layer × cell type) under the `published` rule.
# 3. See why `published` double-counts data: every SST/VIP "L5" population is a subset of its L4 population.
# 4. Use the non-overlapping `split` rule (the default) and check that no population is empty.
#
# **Runtimes** (2 CPU cores, from the README's [runtime table](../README.md#notebooks-and-runtimes)): quick mode
# ~10 s, paper mode ~10 s (`BIORNN_MODE=quick` or `paper`); only metadata are read.
# A user with a network builds the same data from the real release: the section *With a network* below prints what
# that downloads.
#
# The metadata are the release tables that the `allensdk` 2.16.2 wheel ships as package data; `biornn` finds them
# through the installed package without importing `allensdk` and keeps no copy in the repository.

# %%
import matplotlib.pyplot as plt

from biornn.cli import main as biornn_cli
from biornn.core.config import figures_dir, start, want_retrain
from biornn.core.errors import BiornnError
from biornn.data import allen, allen_nwb
from biornn.plotting import allen as allen_plots
from biornn.plotting import save_figure

MODE = start()  # the mode, read once (BIORNN_MODE); also tunes the allocator for large CPU tensors
RETRAIN = want_retrain()  # BIORNN_RETRAIN, read once here and passed down
FIGURES = figures_dir()  # where save_figure writes: BIORNN_FIGURES or figures/, read once here
print("mode:", MODE)

# %% [markdown]
# ## 1. The release metadata and the filters
#
# Four tables: experiments (one row per imaging plane of one ophys session), ophys sessions, behaviour sessions and
# cells (one row per valid ROI).

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
meta = allen.load_metadata("bundled")
for name in ("experiments", "sessions", "behavior_sessions", "cells"):
    print(f"{name:18s} {getattr(meta, name).shape}")

# %% [markdown]
# The columns that drive the selection:

# %%
meta.experiments[list(allen.EXPERIMENT_COLUMNS)].head()

# %% [markdown]
# ### The filters, one at a time
#
# Filters 1–5 of the reference (section 4.1 of the docs page), in order; the depth → layer rule comes next.

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
print(allen.selection_funnel(meta).to_string(index=False))

# %% [markdown]
# **Exercise 1.** Which filter removes the most imaging planes, and what share of the release's planes survives all
# five? Replace the `...`.

# %% tags=["exercise"]
# Exercise 1 (solution)
# Hint: the funnel's n_experiments column, row by row; .diff() gives the change from one filter to the next.
funnel = allen.selection_funnel(meta)
# BEGIN SOLUTION
removed = -funnel["n_experiments"].diff()
worst = funnel.loc[removed.idxmax(), "filter"]
survive = funnel["n_experiments"].iloc[-1] / funnel["n_experiments"].iloc[0]
# END SOLUTION
print(f"the filter '{worst}' removes {removed.max():.0f} planes; {survive:.0%} of the release's planes survive")

# %% [markdown]
# ## 2. The `published` layer rule and its overlap
#
# L2/3 = [0, 250] µm, L4 = [250, 370] µm, L5 = [lo, 500] µm, where the L5 lower bound `lo` is lowered for the
# interneurons (and for novel LM Pyr) — the reference's per-population table:

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
for (cell_type, area), bounds in allen.L5_LOWER_BOUNDS.items():
    print(f"{cell_type:4s} {area}: familiar {bounds['familiar']} um, novel {bounds['novel']} um")

# %% [markdown]
# Selecting with it warns that some planes feed two populations. Below: experiments per population, the numbers the
# reference printed (section 10.1 of [docs/paper/allen-data-pipeline.md](../docs/paper/allen-data-pipeline.md) states that the shipped table reproduces all of them).

# %%
published = allen.select_experiments(meta, layer_rule="published")

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
print(allen.count_table(published).to_string())

# %% [markdown]
# ### Overlap under `published`
#
# Every population pair that shares planes, with the shared depths. All SST and VIP L5 populations sit inside their
# L4 population (no SST/VIP mesoscope plane is deeper than 350 µm), and novel LM Pyr shares its 355 µm planes.

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
overlaps = allen.find_overlaps(published)
print(overlaps.to_string(index=False))

# %%
sets = {k: set(g["ophys_experiment_id"]) for k, g in published.groupby(["experience_level", "population"])}
for exp in allen.EXPERIENCE_LEVELS:
    for area in ("V1", "LM"):
        for cell_type in ("SST", "VIP"):
            assert sets[(exp, f"{area}_L5_{cell_type}")] <= sets[(exp, f"{area}_L4_{cell_type}")]

# %% [markdown]
# **Warning.** Under `published`, the same planes — and therefore the same trials — feed the L4 and the L5 channel of
# every interneuron type. Comparing learned L4 and L5 weights (Fig 5) is then partly tautological. Use `published`
# only to compare with the published figures.
#
# The depths of the selected planes, coloured by the layer they feed (a plane feeding two layers appears twice):

# %%
fig, ax = plt.subplots(figsize=(10, 4))
allen_plots.plot_depths(published, ax=ax)
save_figure(fig, "03_allen_depths_published", mode=MODE, folder=FIGURES)

# %% [markdown]
# **Exercise 2.** Under `published`, what fraction of the familiar V1 SST L4 planes also feed the L5 population?
# Replace the `...`.

# %% tags=["exercise"]
# Exercise 2 (solution)
# Hint: sets[(experience, population)] is a set of experiment ids; & intersects two sets.
l4 = sets[("familiar", "V1_L4_SST")]
# BEGIN SOLUTION
shared = l4 & sets[("familiar", "V1_L5_SST")]
# END SOLUTION
print(f"{len(shared)} of {len(l4)} planes ({len(shared) / len(l4):.0%})")

# %% [markdown]
# ## 3. The `split` rule (default), and why not a fixed L5
#
# L2/3 = [0, 250), L4 = [250, lo), L5 = [lo, 500]: L5 stays exactly as published (so the published L5 row counts still
# apply) and L4 loses only the double-counted planes.

# %%
split = allen.select_experiments(meta, layer_rule="split")

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
print(allen.count_table(split).to_string())

# %%
assert allen.empty_populations(split) == []
assert allen.find_overlaps(split).empty
assert not split.duplicated(["experience_level", "ophys_experiment_id"]).any()

# %% [markdown]
# The same depth plot under `split`: every plane now feeds exactly one layer.

# %%
fig, ax = plt.subplots(figsize=(10, 4))
allen_plots.plot_depths(split, ax=ax)
save_figure(fig, "03_allen_depths_split", mode=MODE, folder=FIGURES)

# %% [markdown]
# ### Why not simply L5 = [370, 500]?
#
# The `fixed` rule uses the nominal bins for every type. It leaves every SST and VIP L5 population empty, so the
# 18-population model cannot be built:

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
fixed = allen.select_experiments(meta, layer_rule="fixed")
print(allen.empty_populations(fixed))
try:
    allen.require_nonempty(fixed)
except BiornnError as exc:
    print("BiornnError:", exc)

# %% [markdown]
# **Exercise 3.** How many distinct ophys sessions (mice × days) contribute to each experience level under `split`?
# Replace the `...`.

# %% tags=["exercise"]
# Exercise 3 (solution)
# Hint: group the split selection by experience_level and count the unique ophys_session_id.
# BEGIN SOLUTION
n_sessions = split.groupby("experience_level")["ophys_session_id"].nunique()
# END SOLUTION
print(n_sessions.to_string())

# %% [markdown]
# ## 4. Cells per population, and the real data
#
# Each experiment's cell count comes from the cells table. A row of the training data is the mean over all cells of
# one plane, so a 10-cell SST plane counts as much as a 300-cell Pyr plane (section 6 of the docs page).

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
print(allen.count_table(split, "n_cells").to_string())
per_plane = split.drop_duplicates("ophys_experiment_id").groupby("cell_type")["n_cells"]
print(per_plane.describe()[["min", "50%", "max"]].to_string())

# %% [markdown]
# The command line writes the same selection as a CSV (one row per experiment and population):
#
# ```
# python -m biornn allen select --metadata bundled --layer-rule split --out selection.csv
# ```
#
# ### With a network: the real data
#
# Everything above runs offline. With a network, a user first asks what a real build downloads; this is the output of
# `python -m biornn allen plan --metadata bundled --layer-rule split`, computed here by the same function:

# %%
biornn_cli(["allen", "plan", "--metadata", "bundled", "--layer-rule", "split"])

# %% [markdown]
# Before the full download, a smoke run of the real pipeline takes at most `K` experiments per population
# (here `K = 1`), downloads them into `DIR` and builds one condition:
#
# ```
# python -m biornn allen plan --metadata bundled --layer-rule split --max-experiments 1
# python -m biornn allen build --source s3 --cache-dir DIR --max-experiments 1 --condition familiar_change --out OUT
# ```
#
# The smoke run's plan, from the same functions the command calls:

# %%
SMOKE_K = 1
smoke = allen_nwb.download_plan(allen_nwb.cap_per_population(split, SMOKE_K))
print(f"smoke run (K = {SMOKE_K}): {smoke['n_experiments']} NWB files from {smoke['n_sessions']} sessions, "
      f"estimated {smoke['estimated_gb']:.1f} GB ({smoke['basis']})")

# %% [markdown]
# **Exercise 4.** Which populations have the fewest cells in total, and how many planes do they have? Replace the
# `...`.

# %% tags=["exercise"]
# Exercise 4 (solution)
# Hint: allen.population_counts(split) has n_experiments, n_sessions and n_cells per population; sort by n_cells.
# BEGIN SOLUTION
counts = allen.population_counts(split)
fewest = counts.sort_values("n_cells").head(3)
# END SOLUTION
print(fewest.to_string())

# %% [markdown]
# The reading path from NWB files is tested offline: `biornn.data.allen_nwb.write_fixture_cache(DIR)` writes a small
# AllenSDK cache of synthetic NWB files (one real selected experiment per population), which
# `python -m biornn allen build --source DIR ...` and `tests/test_allen_nwb.py` read exactly as they would read a
# download.
#
# ## Summary
#
# The numbers, computed from the selections above:

# %%
plan = allen_nwb.download_plan(split)
n_sizes = allen.count_table(published).size
l5_overlaps = overlaps[overlaps["population_b"].str.contains("L5")]
l5_depths = split.loc[split["population"].str.contains("L5_(?:SST|VIP)"), "imaging_depth"]
print(f"published rule: {published['ophys_experiment_id'].nunique()} planes, {n_sizes} population sizes "
      f"(experience level x area x layer x cell type); {len(l5_overlaps)} L5 populations reuse L4 planes")
print(f"split rule: {split['ophys_experiment_id'].nunique()} planes, {len(allen.empty_populations(split))} empty "
      f"populations, {len(allen.find_overlaps(split))} overlapping population pairs")
print(f"'L5' SST/VIP planes under split: {l5_depths.min():.0f}-{l5_depths.max():.0f} um deep")
print(f"a full real build: {plan['n_experiments']} NWB files from {plan['n_sessions']} sessions")

# %% [markdown]
# * The shipped metadata reproduce the reference's selection offline (the population sizes above).
# * Under `published`, the SST/VIP L5 populations (and novel LM Pyr L5) reuse L4 planes; the selection warns.
# * `split` keeps L5 as published, removes the overlap, and leaves no population empty; it is the default.
# * "L5" interneurons are, under every viable rule, the deepest available planes.
# * With a network, `allen plan` says what a build downloads and `allen build --max-experiments K` is the smoke run.
