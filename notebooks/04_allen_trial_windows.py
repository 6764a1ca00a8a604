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
# # Allen Visual Behavior data, part 2 — windows around changes, repeats and omissions
#
# Supports **Figures 4–5**: each training sample of the cell-type RNN is built from 16-frame (≈1.5 s) windows of a
# plane's mean ΔF/F around an event. Three window types give the paper's conditions: image **change**, **no-change**
# (image repeat, from the same go trials) and **omission** (an expected flash that does not come; the reference code has
# no generator for it, `biornn` defines it from omitted flashes). Facts and rules: [docs/paper/allen-data-pipeline.md](../docs/paper/allen-data-pipeline.md),
# section 5.
#
# **The paper figure:** the traces Figures 4–5 fit are these event-locked windows; this notebook draws them per window
# type for one plane (`figures/04_allen_windows_example.png`, written below):
#
# ![Mean ± SD of one plane's windows per window type](../figures/04_allen_windows_example.png)
#
# **Where this notebook sits in the data pipeline** (03 → 04 → 05 → the model in 06):
#
# ```
# release metadata --[03: filters, depth -> layer]--> planes per population (18 x 2 experience levels)
#   --[04: dF/F, stimulus table]--> trial windows (change / no change / omission)      <- this notebook
#   --[05: resample experiments]--> bootstrap datasets (input + target per population) --> 06: the cell-type RNN
# ```
#
# **Learning objectives**
# 1. Read the stimulus timeline of a Visual Behavior session: 0.25 s flash + 0.5 s grey, changes, ~5 % omissions.
# 2. Cut event-aligned windows so that frame 8 is the first frame at or after the event.
# 3. Compare with the reference's per-trial frame arithmetic, whose event lands on frame 8 or 9.
# 4. See what the omission filter removes.
#
# **Runtimes** (2 CPU cores, from the README's [runtime table](../README.md#notebooks-and-runtimes)): quick mode
# ~15 s, paper mode ~30 s.
#
# **Data source.** No traces are available offline, so by default this notebook runs on the **digital twin**
# (`biornn.data.synthetic`): the real selected experiments (ids, sessions, depths, cell counts) with simulated stimuli and
# ΔF/F from a known cell-type network. Set `BIORNN_ALLEN_CACHE=/path/to/allensdk_cache` to use real data through
# AllenSDK (the checked outputs below then differ; run it without nbval). The section *With a network* below says how
# to get such a cache.

# %%
import matplotlib.pyplot as plt
import numpy as np

from biornn.cli import main as biornn_cli
from biornn.core.config import figures_dir, start, want_retrain
from biornn.data import allen, curate
from biornn.plotting import curate as curate_plots
from biornn.plotting import save_figure

# %% [markdown]
# The data source: the digital twin unless `BIORNN_ALLEN_CACHE` names a real AllenSDK cache.

# %%
MODE = start()  # the mode, read once (BIORNN_MODE); also tunes the allocator for large CPU tensors
RETRAIN = want_retrain()  # BIORNN_RETRAIN, read once here and passed down
FIGURES = figures_dir()  # where save_figure writes: BIORNN_FIGURES or figures/, read once here
source, meta = curate.open_default_source(MODE, seed=0)
print("mode:", MODE, "| source:", source.name)

# %% [markdown]
# ## 1. One example plane and its session
#
# The first familiar V1 L2/3 Pyr experiment of the `split` selection. Its ids, depth and cell count are real; with the
# twin its traces are simulated.

# %%
selection = allen.select_experiments(meta, layer_rule="split")
row = selection[(selection["experience_level"] == "familiar") & (selection["population"] == "V1_L2/3_Pyr")].iloc[0]
data = source.load(row["ophys_experiment_id"])

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
stim = data.stimulus_presentations
print("experiment", data.ophys_experiment_id, "| session", data.ophys_session_id, "| depth", row["imaging_depth"],
      "um |", data.n_cells, "cells")
print("frames:", data.timestamps.size, "| frame period:", round(curate.frame_period(data.timestamps), 4), "s")
print("trials:", len(data.trials), "| go trials:", int(data.trials["is_change"].sum()))
print("omitted flashes:", int(stim["omitted"].sum()), "| changes:", int(stim["is_change"].sum()))

# %% [markdown]
# The trials table: go trials have `is_change` and a `change_time`; catch and aborted trials have neither.

# %%
data.trials.head()

# %% [markdown]
# Twenty seconds of the plane's mean ΔF/F around the first omission, with flashes (grey), changes (red) and omitted
# flashes (purple, dashed):

# %%
first_omission = stim.loc[stim["omitted"], "start_time"].iloc[0]
fig, ax = plt.subplots(figsize=(10, 3))
curate_plots.plot_timeline(data, first_omission - 10, first_omission + 10, ax=ax)
save_figure(fig, "04_allen_timeline", mode=MODE, folder=FIGURES)

# %% [markdown]
# **Exercise 1.** Which fraction of the behaviour block's flashes are omitted (the paper's sessions: about 5 %)?
# Replace the `...`.

# %% tags=["exercise"]
# Exercise 1 (solution)
# Hint: the stimulus table's boolean column omitted, restricted to the behaviour block; the mean of a boolean is a share.
behavior = stim[stim["stimulus_block_name"] == allen.BEHAVIOR_BLOCK]
# BEGIN SOLUTION
omitted_share = float(behavior["omitted"].mean())
# END SOLUTION
print(f"{omitted_share:.2%} of the behaviour block's {len(behavior)} flashes are omitted")

# %% [markdown]
# ## 2. Event-aligned windows
#
# `k_e` = the first frame with timestamp ≥ event; a window is frames `k_e − 8 … k_e + 7`, so **frame 8 is the first
# frame at or after the event** and `0 ≤ t_rel[8] < dt`. Events: the change time of each go trial; the onset of the
# 2nd flash of the same go trials (no-change); each omitted flash of the behaviour block (omission). The default
# omission filter (`window`) drops a window that contains another change or omission.

# %%
windows = {w: curate.extract_windows(data, w) for w in ("change", "no_change", "omission")}

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
dt = curate.frame_period(data.timestamps)
for wtype, w in windows.items():
    print(f"{wtype:9s} rows {w.values.shape}  counts {w.counts}")
    assert w.values.shape[1] == 16
for wtype in ("change", "omission"):
    t8 = windows[wtype].t_rel[:, 8]
    assert np.all((t8 >= 0) & (t8 < dt)) and np.all(windows[wtype].t_rel[:, 7] < 0)
    print(f"{wtype}: t_rel[8] in [{t8.min():.3f}, {t8.max():.3f}] s, dt = {dt:.4f} s")

# %% [markdown]
# No-change windows must end before the trial's change:

# %%
nc = windows["no_change"]
change = data.trials["change_time"].to_numpy()[nc.trial_index]
assert np.all(nc.event_time + nc.t_rel[:, -1] < change)

# %% [markdown]
# Mean ± SD over the windows of this plane, per window type:

# %%
fig, ax = plt.subplots(figsize=(6, 4))
curate_plots.plot_windows(windows, ax=ax)
save_figure(fig, "04_allen_windows_example", mode=MODE, folder=FIGURES)

# %% [markdown]
# **Exercise 2.** How many omission windows does this plane yield per minute of the behaviour block? Replace the
# `...`.

# %% tags=["exercise"]
# Exercise 2 (solution)
# Hint: the block lasts from its first to its last flash onset (start_time, in s); windows["omission"].values has a row per window.
# BEGIN SOLUTION
minutes = (behavior["start_time"].max() - behavior["start_time"].min()) / 60
rate = len(windows["omission"].values) / minutes
# END SOLUTION
print(f"{rate:.2f} omission windows per minute over {minutes:.1f} minutes")

# %% [markdown]
# ## 3. The reference's frame arithmetic
#
# The reference estimated the frame period per trial, counted offsets from the trial start and truncated; the change
# then lands on frame 8 or 9 (section 5.3 of [docs/paper/allen-data-pipeline.md](../docs/paper/allen-data-pipeline.md)). `framing="published"` reproduces it (change and no-change only):

# %%
published = curate.extract_windows(data, "change", omission_filter="none", framing="published")
first_post = np.argmax(published.t_rel >= 0, axis=1)

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
values, counts = np.unique(first_post, return_counts=True)
print("first frame at/after the change, published arithmetic:", dict(zip(values.tolist(), counts.tolist())))

# %% [markdown]
# Where the first post-change frame lands, as a histogram:

# %%
fig, ax = plt.subplots(figsize=(5, 3))
ax.bar(values, counts, color="0.5")
ax.set_xlabel("window index of the first frame at/after the change")
ax.set_ylabel("windows")
save_figure(fig, "04_allen_published_framing", mode=MODE, folder=FIGURES)

# %% [markdown]
# **Exercise 3.** Align the no-change windows on the trial start, as published (`no_change_alignment="trial_start"`):
# how close to the change does the last frame end, at minimum? Replace the `...`.

# %% tags=["exercise"]
# Exercise 3 (solution)
# Hint: a window's last frame is at event_time + t_rel[:, -1]; the trial's change time is trials["change_time"][trial_index].
ts = curate.extract_windows(data, "no_change", no_change_alignment="trial_start")
# BEGIN SOLUTION
gap = data.trials["change_time"].to_numpy()[ts.trial_index] - (ts.event_time + ts.t_rel[:, -1])
# END SOLUTION
print(f"the last frame ends at least {float(gap.min()):.3f} s before the change")

# %% [markdown]
# ## 4. The omission filter, and real data
#
# `none` (as published: the reference's check is a no-op), `window` (default) and `trial` (drop any trial containing an
# omission). Rows kept per window type:

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
for mode in curate.OMISSION_FILTERS:
    kept = {w: curate.extract_windows(data, w, omission_filter=mode).counts["kept"] for w in windows}
    print(f"{mode:7s} {kept}")

# %% [markdown]
# **Exercise 4.** What share of the windows of each type does the strictest filter (`trial`) keep, against `none`?
# Replace the `...`.

# %% tags=["exercise"]
# Exercise 4 (solution)
# Hint: curate.extract_windows(data, w, omission_filter=mode).counts["kept"] for mode "none" and "trial".
for w in windows:
    # BEGIN SOLUTION
    n_none = curate.extract_windows(data, w, omission_filter="none").counts["kept"]
    n_trial = curate.extract_windows(data, w, omission_filter="trial").counts["kept"]
    # END SOLUTION
    print(f"{w:9s} the trial filter keeps {n_trial} of {n_none} windows ({n_trial / n_none:.0%})")

# %% [markdown]
# ### With a network: windows from real data
#
# To cut these windows from real ΔF/F, download a few real experiments first (a smoke run: at most `K` experiments
# per population), then point this notebook at the cache:
#
# ```
# python -m biornn allen build --source s3 --cache-dir DIR --max-experiments 1 --condition familiar_change --out OUT
# BIORNN_ALLEN_CACHE=DIR jupyter lab notebooks/04_allen_trial_windows.ipynb
# ```
#
# What that smoke run downloads, printed by `python -m biornn allen plan --metadata bundled --layer-rule split
# --max-experiments 1` (here through the same function; without `--max-experiments` it plans the full build):

# %%
biornn_cli(["allen", "plan", "--metadata", "bundled", "--layer-rule", "split", "--max-experiments", "1"])

# %% [markdown]
# Without a network, `biornn.data.allen_nwb.write_fixture_cache(DIR)` writes a small offline cache of synthetic NWB files
# for real selected experiments; `BIORNN_ALLEN_CACHE=DIR` then runs this notebook through the real NWB reading path
# (this is what `tests/test_allen_nwb.py` checks).
#
# ## Summary
#
# The numbers of this plane, computed above:

# %%
n_windows = {w: len(v.values) for w, v in windows.items()}
print(f"experiment {data.ophys_experiment_id} ({source.name}): " + ", ".join(f"{n} {w}" for w, n in n_windows.items())
      + f" windows of {windows['change'].values.shape[1]} frames, frame period {dt:.4f} s")
print("published framing, first frame at/after the change:", dict(zip(values.tolist(), counts.tolist())))
print(f"omitted flashes: {int(stim['omitted'].sum())} of {len(stim)} presentations")

# %% [markdown]
# * A window is 16 frames with the event on frame 8 (first frame at or after it); edge windows are dropped.
# * Change and no-change windows come from the same go trials (paired); omission windows from omitted flashes.
# * The reference's arithmetic puts the change on frame 8 or 9; `biornn` aligns on timestamps instead.
# * The `window` omission filter keeps each window free of other changes and omissions.
