"""Writes notebooks 03–05 (Allen Visual Behavior data pipeline), run from the repository root.

``python notebooks/src/build_03_05_allen.py`` writes output-free notebooks; ``--fill`` then executes them in quick mode
and keeps the outputs of the ``keep_output`` cells (the ``# NBVAL_CHECK_OUTPUT`` references for nbval), with an
execution count (nbval refuses reference outputs of cells marked as unrun) and without stderr or timing metadata.
"""

import sys

from nbtools import ROOT, code, fill, md, write

NOTEBOOKS = ("notebooks/03_allen_selection.ipynb", "notebooks/04_allen_trial_windows.ipynb",
             "notebooks/05_allen_bootstrap_datasets.ipynb")


# ----------------------------------------------------------------------------------------------------------------------
# 03: experiment selection
# ----------------------------------------------------------------------------------------------------------------------

nb03 = [
    md(r"""
# Allen Visual Behavior data, part 1 — which imaging planes feed the 18 populations

Supports **Figures 4–5** of Balwani et al. (Sci. Adv. 2025): the cell-type RNN is fitted to two-photon ΔF/F of
18 populations, 2 areas (V1, LM) × 3 layers (L2/3, L4, L5) × 3 cell types (Pyr, SST, VIP), recorded in the Allen
Brain Observatory Visual Behavior Ophys release. This notebook selects the imaging planes (*experiments*) of each
population from the release metadata. Facts and rules: `shared/spec/data-allen-pipeline.md`, sections 2–4 and 10.1.

**Learning objectives**
1. Apply the reference's six selection filters (cre line, mesoscope project, active sessions, Familiar / Novel 1,
   VISp / VISl, depth) to the real release metadata, offline.
2. Reproduce the reference's 36 population sizes under the `published` layer rule.
3. See why `published` double-counts data: every SST/VIP "L5" population is a subset of its L4 population.
4. Use the non-overlapping `split` rule (the default) and check that no population is empty.

**Runtimes** (2 CPU cores): about 10 s in both modes (`BIORNN_MODE=quick` or `paper`); only metadata are read.

The metadata are the release tables that the `allensdk` 2.16.2 wheel ships as package data; `biornn` finds them
through the installed package without importing `allensdk` and keeps no copy in the repository.
"""),
    code("""
import matplotlib.pyplot as plt

from biornn import allen
from biornn.config import get_mode
from biornn.errors import BiornnError
from biornn.plotting import save_figure

MODE = get_mode()
print("mode:", MODE)
"""),
    md("""
## The release metadata

Four tables: experiments (one row per imaging plane of one ophys session), ophys sessions, behaviour sessions and
cells (one row per valid ROI).
"""),
    code("""
# NBVAL_CHECK_OUTPUT
meta = allen.load_metadata("bundled")
for name in ("experiments", "sessions", "behavior_sessions", "cells"):
    print(f"{name:18s} {getattr(meta, name).shape}")
"""),
    md("The columns that drive the selection:"),
    code("""
meta.experiments[list(allen.EXPERIMENT_COLUMNS)].head()
"""),
    md("""
## The filters, one at a time

Filters 1–5 of the reference (spec section 4.1), in order; the depth → layer rule comes next.
"""),
    code("""
# NBVAL_CHECK_OUTPUT
print(allen.selection_funnel(meta).to_string(index=False))
"""),
    md("""
## The `published` layer rule

L2/3 = [0, 250] µm, L4 = [250, 370] µm, L5 = [lo, 500] µm, where the L5 lower bound `lo` is lowered for the
interneurons (and for novel LM Pyr) — the reference's per-population table:
"""),
    code("""
# NBVAL_CHECK_OUTPUT
for (cell_type, area), bounds in allen.L5_LOWER_BOUNDS.items():
    print(f"{cell_type:4s} {area}: familiar {bounds['familiar']} um, novel {bounds['novel']} um")
"""),
    md("""
Selecting with it warns that some planes feed two populations. Below: experiments per population, the numbers the
reference printed (spec section 10.1 states that the shipped table reproduces all 36).
"""),
    code("""
published = allen.select_experiments(meta, layer_rule="published")
"""),
    code("""
# NBVAL_CHECK_OUTPUT
print(allen.count_table(published).to_string())
"""),
    md("""
### Overlap under `published`

Every population pair that shares planes, with the shared depths. All SST and VIP L5 populations sit inside their
L4 population (no SST/VIP mesoscope plane is deeper than 350 µm), and novel LM Pyr shares its 355 µm planes.
"""),
    code("""
# NBVAL_CHECK_OUTPUT
overlaps = allen.find_overlaps(published)
print(overlaps.to_string(index=False))
"""),
    code("""
sets = {k: set(g["ophys_experiment_id"]) for k, g in published.groupby(["experience_level", "population"])}
for exp in allen.EXPERIENCE_LEVELS:
    for area in ("V1", "LM"):
        for cell_type in ("SST", "VIP"):
            assert sets[(exp, f"{area}_L5_{cell_type}")] <= sets[(exp, f"{area}_L4_{cell_type}")]
"""),
    md("""
**Warning.** Under `published`, the same planes — and therefore the same trials — feed the L4 and the L5 channel of
every interneuron type. Comparing learned L4 and L5 weights (Fig 5) is then partly tautological. Use `published`
only to compare with the published figures.

The depths of the selected planes, coloured by the layer they feed (a plane feeding two layers appears twice):
"""),
    code("""
fig, ax = plt.subplots(figsize=(10, 4))
allen.plot_depths(published, ax=ax)
save_figure(fig, "03_allen_depths_published")
"""),
    md("""
## The `split` rule (default)

L2/3 = [0, 250), L4 = [250, lo), L5 = [lo, 500]: L5 stays exactly as published (so the published L5 row counts still
apply) and L4 loses only the double-counted planes.
"""),
    code("""
split = allen.select_experiments(meta, layer_rule="split")
"""),
    code("""
# NBVAL_CHECK_OUTPUT
print(allen.count_table(split).to_string())
"""),
    code("""
assert allen.empty_populations(split) == []
assert allen.find_overlaps(split).empty
assert not split.duplicated(["experience_level", "ophys_experiment_id"]).any()
"""),
    md("The same depth plot under `split`: every plane now feeds exactly one layer."),
    code("""
fig, ax = plt.subplots(figsize=(10, 4))
allen.plot_depths(split, ax=ax)
save_figure(fig, "03_allen_depths_split")
"""),
    md("""
## Why not simply L5 = [370, 500]?

The `fixed` rule uses the nominal bins for every type. It leaves every SST and VIP L5 population empty, so the
18-population model cannot be built:
"""),
    code("""
# NBVAL_CHECK_OUTPUT
fixed = allen.select_experiments(meta, layer_rule="fixed")
print(allen.empty_populations(fixed))
try:
    allen.require_nonempty(fixed)
except BiornnError as exc:
    print("BiornnError:", exc)
"""),
    md("""
## Cells per population

Each experiment's cell count comes from the cells table. A row of the training data is the mean over all cells of
one plane, so a 10-cell SST plane counts as much as a 300-cell Pyr plane (spec section 6).
"""),
    code("""
# NBVAL_CHECK_OUTPUT
print(allen.count_table(split, "n_cells").to_string())
per_plane = split.drop_duplicates("ophys_experiment_id").groupby("cell_type")["n_cells"]
print(per_plane.describe()[["min", "50%", "max"]].to_string())
"""),
    md("""
The command line writes the same selection as a CSV (one row per experiment and population):

```
python -m biornn allen select --metadata bundled --layer-rule split --out selection.csv
```

## Summary

* The shipped metadata reproduce the reference's selection offline: 424 mesoscope planes, 36 population sizes.
* Under `published`, all 8 SST/VIP L5 populations (and novel LM Pyr L5) reuse L4 planes; the selection warns.
* `split` keeps L5 as published, removes the overlap, and leaves no population empty; it is the default.
* "L5" interneurons are, under every viable rule, the deepest available planes (295–350 µm).

## Exercises

1. How many distinct ophys sessions (mice × days) contribute to each experience level under `split`?
2. Which population has the fewest cells in total, and how many planes does it have?
3. Under `published`, what fraction of the familiar V1 SST L4 rows would come from planes that also feed L5?
"""),
    code("""
# Exercise 1 (solution)
print(split.groupby("experience_level")["ophys_session_id"].nunique())
""", tags=["exercise"]),
    code("""
# Exercise 2 (solution)
counts = allen.population_counts(split)
print(counts.sort_values("n_cells").head(3))
""", tags=["exercise"]),
    code("""
# Exercise 3 (solution)
l4 = sets[("familiar", "V1_L4_SST")]
print(f"{len(l4 & sets[('familiar', 'V1_L5_SST')])} of {len(l4)} planes")
""", tags=["exercise"]),
]

# ----------------------------------------------------------------------------------------------------------------------
# 04: trial windows
# ----------------------------------------------------------------------------------------------------------------------

nb04 = [
    md(r"""
# Allen Visual Behavior data, part 2 — windows around changes, repeats and omissions

Supports **Figures 4–5**: each training sample of the cell-type RNN is built from 16-frame (≈1.5 s) windows of a
plane's mean ΔF/F around an event. Three window types give the paper's conditions: image **change**, **no-change**
(image repeat, from the same go trials) and **omission** (an expected flash that does not come; the reference code has
no generator for it, `biornn` defines it from omitted flashes). Spec: `shared/spec/data-allen-pipeline.md` section 5.

**Learning objectives**
1. Read the stimulus timeline of a Visual Behavior session: 0.25 s flash + 0.5 s grey, changes, ~5 % omissions.
2. Cut event-aligned windows so that frame 8 is the first frame at or after the event.
3. Compare with the reference's per-trial frame arithmetic, whose event lands on frame 8 or 9.
4. See what the omission filter removes.

**Runtimes** (2 CPU cores): quick mode about 15 s, paper mode about 30 s.

**Data source.** No traces are available offline, so by default this notebook runs on the **digital twin**
(`biornn.synthetic`): the real selected experiments (ids, sessions, depths, cell counts) with simulated stimuli and
ΔF/F from a known cell-type network. Set `BIORNN_ALLEN_CACHE=/path/to/allensdk_cache` to use real data through
AllenSDK (the checked outputs below then differ; run it without nbval).
"""),
    code("""
import matplotlib.pyplot as plt
import numpy as np

from biornn import allen, curate
from biornn.config import get_mode
from biornn.plotting import save_figure

MODE = get_mode()
source, meta = curate.open_default_source(MODE, seed=0)
print("mode:", MODE, "| source:", source.name)
"""),
    md("""
## One example plane

The first familiar V1 L2/3 Pyr experiment of the `split` selection. Its ids, depth and cell count are real; with the
twin its traces are simulated.
"""),
    code("""
selection = allen.select_experiments(meta, layer_rule="split")
row = selection[(selection["experience_level"] == "familiar") & (selection["population"] == "V1_L2/3_Pyr")].iloc[0]
data = source.load(row["ophys_experiment_id"])
"""),
    code("""
# NBVAL_CHECK_OUTPUT
stim = data.stimulus_presentations
print("experiment", data.ophys_experiment_id, "| session", data.ophys_session_id, "| depth", row["imaging_depth"],
      "um |", data.n_cells, "cells")
print("frames:", data.timestamps.size, "| frame period:", round(curate.frame_period(data.timestamps), 4), "s")
print("trials:", len(data.trials), "| go trials:", int(data.trials["is_change"].sum()))
print("omitted flashes:", int(stim["omitted"].sum()), "| changes:", int(stim["is_change"].sum()))
"""),
    md("""
The trials table: go trials have `is_change` and a `change_time`; catch and aborted trials have neither.
"""),
    code("""
data.trials.head()
"""),
    md("""
Twenty seconds of the plane's mean ΔF/F around the first omission, with flashes (grey), changes (red) and omitted
flashes (purple, dashed):
"""),
    code("""
first_omission = stim.loc[stim["omitted"], "start_time"].iloc[0]
fig, ax = plt.subplots(figsize=(10, 3))
curate.plot_timeline(data, first_omission - 10, first_omission + 10, ax=ax)
save_figure(fig, "04_allen_timeline")
"""),
    md("""
## Windows

`k_e` = the first frame with timestamp ≥ event; a window is frames `k_e − 8 … k_e + 7`, so **frame 8 is the first
frame at or after the event** and `0 ≤ t_rel[8] < dt`. Events: the change time of each go trial; the onset of the
2nd flash of the same go trials (no-change); each omitted flash of the behaviour block (omission). The default
omission filter (`window`) drops a window that contains another change or omission.
"""),
    code("""
windows = {w: curate.extract_windows(data, w) for w in ("change", "no_change", "omission")}
"""),
    code("""
# NBVAL_CHECK_OUTPUT
dt = curate.frame_period(data.timestamps)
for wtype, w in windows.items():
    print(f"{wtype:9s} rows {w.values.shape}  counts {w.counts}")
    assert w.values.shape[1] == 16
for wtype in ("change", "omission"):
    t8 = windows[wtype].t_rel[:, 8]
    assert np.all((t8 >= 0) & (t8 < dt)) and np.all(windows[wtype].t_rel[:, 7] < 0)
    print(f"{wtype}: t_rel[8] in [{t8.min():.3f}, {t8.max():.3f}] s, dt = {dt:.4f} s")
"""),
    md("No-change windows must end before the trial's change:"),
    code("""
nc = windows["no_change"]
change = data.trials["change_time"].to_numpy()[nc.trial_index]
assert np.all(nc.event_time + nc.t_rel[:, -1] < change)
"""),
    md("Mean ± SD over the windows of this plane, per window type:"),
    code("""
fig, ax = plt.subplots(figsize=(6, 4))
curate.plot_windows(windows, ax=ax)
save_figure(fig, "04_allen_windows_example")
"""),
    md("""
## The reference's frame arithmetic

The reference estimated the frame period per trial, counted offsets from the trial start and truncated; the change
then lands on frame 8 or 9 (spec section 5.3). `framing="published"` reproduces it (change and no-change only):
"""),
    code("""
published = curate.extract_windows(data, "change", omission_filter="none", framing="published")
first_post = np.argmax(published.t_rel >= 0, axis=1)
"""),
    code("""
# NBVAL_CHECK_OUTPUT
values, counts = np.unique(first_post, return_counts=True)
print("first frame at/after the change, published arithmetic:", dict(zip(values.tolist(), counts.tolist())))
"""),
    md("Where the first post-change frame lands, as a histogram:"),
    code("""
fig, ax = plt.subplots(figsize=(5, 3))
ax.bar(values, counts, color="0.5")
ax.set_xlabel("window index of the first frame at/after the change")
ax.set_ylabel("windows")
save_figure(fig, "04_allen_published_framing")
"""),
    md("""
## The omission filter

`none` (as published: the reference's check is a no-op), `window` (default) and `trial` (drop any trial containing an
omission). Rows kept per window type:
"""),
    code("""
# NBVAL_CHECK_OUTPUT
for mode in curate.OMISSION_FILTERS:
    kept = {w: curate.extract_windows(data, w, omission_filter=mode).counts["kept"] for w in windows}
    print(f"{mode:7s} {kept}")
"""),
    md("""
## Summary

* A window is 16 frames with the event on frame 8 (first frame at or after it); edge windows are dropped.
* Change and no-change windows come from the same go trials (paired); omission windows from omitted flashes.
* The reference's arithmetic puts the change on frame 8 or 9; `biornn` aligns on timestamps instead.
* The `window` omission filter keeps each window free of other changes and omissions.

## Exercises

1. How many omission windows does this plane yield per minute of the behaviour block?
2. Align the no-change windows on the trial start, as published (`no_change_alignment="trial_start"`): how far
   from the change does the last frame end, at minimum?
3. Which fraction of this session's flashes are omitted?
"""),
    code("""
# Exercise 1 (solution)
behavior = stim[stim["stimulus_block_name"] == allen.BEHAVIOR_BLOCK]
minutes = (behavior["start_time"].max() - behavior["start_time"].min()) / 60
print(round(len(windows["omission"].values) / minutes, 2), "omission windows per minute")
""", tags=["exercise"]),
    code("""
# Exercise 2 (solution)
ts = curate.extract_windows(data, "no_change", no_change_alignment="trial_start")
gap = data.trials["change_time"].to_numpy()[ts.trial_index] - (ts.event_time + ts.t_rel[:, -1])
print(round(float(gap.min()), 3), "s")
""", tags=["exercise"]),
    code("""
# Exercise 3 (solution)
print(round(float(behavior["omitted"].mean()), 4))
""", tags=["exercise"]),
]

# ----------------------------------------------------------------------------------------------------------------------
# 05: bootstrap datasets
# ----------------------------------------------------------------------------------------------------------------------

nb05 = [
    md(r"""
# Allen Visual Behavior data, part 3 — the bootstrap datasets the cell-type RNN is trained on

Supports **Figures 4–5**: for each of the six conditions (familiar/novel × change/no-change/omission: FC, FN, FO, NC,
NN, NO) the model learns one-step-ahead prediction of 18 population traces. Each sample is the mean of 100 window
rows drawn with replacement (2000 samples), smoothed along time; input = frames 0–14, target = frames 1–15. Spec:
`shared/spec/data-allen-pipeline.md` sections 6–8.

**Learning objectives**
1. Build all six condition datasets in one pass over the experiments, on the digital twin or a real cache.
2. Read the dataset file format: inputs/targets `(2000, 15, 18)`, held-out arrays, population names, manifest.
3. Check the invariants: `target[:, t] == input[:, t + 1]`, fixed channel order, a held-out split made before
   bootstrapping.
4. Compare conditions, and see the twin's planted ground-truth connectivity differences that Figs 4–5 try to recover.

**Runtimes** (2 CPU cores): quick mode about 30 s (10-minute twin sessions), paper mode about 1 minute for the
full-length twin (75-minute sessions, ~48,300 frames per plane). Datasets are cached in `data/allen/`
(`BIORNN_RETRAIN=1` rebuilds). Set `BIORNN_ALLEN_CACHE` to build from a real AllenSDK cache instead of the twin.
"""),
    code("""
import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from biornn import curate, synthetic
from biornn.config import get_mode
from biornn.connectivity import POPULATION_LABELS
from biornn.plotting import save_figure

MODE = get_mode()
CONFIG = curate.CurateConfig(seed=0)  # split layers, window omission filter, smooth-then-shift, 20 % held out
print("mode:", MODE, "| source:", curate.default_source_spec())
"""),
    md("""
## Build (or read) the six datasets

One pass over the selected experiments cuts all three window types; then each condition is split (by trial),
bootstrapped and smoothed.
"""),
    code("""
datasets, folder = curate.cached_datasets(conditions=curate.CONDITIONS, config=CONFIG, mode=MODE)
"""),
    code("""
# NBVAL_CHECK_OUTPUT
for cond, ds in datasets.items():
    print(f"{cond:19s} {curate.ABBREVIATIONS[cond]}  inputs {ds.inputs.shape}  held-out {ds.heldout_inputs.shape}  "
          f"rows {int(ds.row_counts.sum())} + {int(ds.heldout_row_counts.sum())} held out")
"""),
    md("""
## Invariants

Channel order = the model's index order (V1 then LM; L4, L2/3, L5; Pyr, SST, VIP). With the default
smooth-then-shift order the target is the input shifted by one frame, exactly.
"""),
    code("""
for ds in datasets.values():
    assert ds.populations == POPULATION_LABELS
    assert ds.inputs.shape == ds.targets.shape == (CONFIG.n_samples, 15, 18)
    assert np.array_equal(ds.targets[:, :-1], ds.inputs[:, 1:])
    assert (ds.row_counts > 0).all() and (ds.heldout_row_counts > 0).all()
    assert curate.half_window(ds.inputs).shape[1] == 7
"""),
    md("Training rows per population (experiment × window rows) and condition:"),
    code("""
# NBVAL_CHECK_OUTPUT
rows = pd.DataFrame({curate.ABBREVIATIONS[c]: ds.row_counts for c, ds in datasets.items()}, index=POPULATION_LABELS)
print(rows.to_string())
"""),
    md("""
## The traces the model is trained on

Familiar change (FC), V1: mean ± SD over the 2000 bootstrap samples of the model input (black, frames 0–14) and
target (green dashed, frames 1–15); the red line marks frame 8, the first frame after the change.
"""),
    code("""
axes = curate.plot_population_means(datasets["familiar_change"], "V1")
save_figure(axes[0, 0].figure, "05_allen_fc_v1_means")
"""),
    md("The same for LM:"),
    code("""
axes = curate.plot_population_means(datasets["familiar_change"], "LM")
save_figure(axes[0, 0].figure, "05_allen_fc_lm_means")
"""),
    md("One population in all six conditions (solid familiar, dashed novel): the VIP response to omissions stands out."),
    code("""
fig, ax = plt.subplots(figsize=(6, 4))
curate.plot_conditions(datasets, "V1_L2/3_VIP", ax=ax)
save_figure(fig, "05_allen_conditions_v1_l23_vip")
"""),
    code("""
# NBVAL_CHECK_OUTPUT
means = {curate.ABBREVIATIONS[c]: np.round(ds.inputs.mean(axis=(0, 1))[[0, 5, 9, 14]], 3).tolist()
         for c, ds in datasets.items()}
print("mean input of V1_L4_Pyr, V1_L2/3_VIP, LM_L4_Pyr, LM_L2/3_VIP:")
for k, v in means.items():
    print(k, v)
"""),
    md("""
## The twin's ground truth

The twin's network uses a different connectivity matrix in each condition. Its default planted differences scale the
three inter-area pathways; e.g. novel omission vs novel no-change (NN → NO) strengthens LM L5 Pyr → V1 feedback.
These are the block-level changes Figs 4–5 should recover from the twin's datasets.
"""),
    code("""
W = synthetic.ground_truth_connectivity(synthetic.twin_config(MODE))
delta = W["novel_omission"] - W["novel_no_change"]
fig, ax = plt.subplots(figsize=(6, 5.5))
synthetic.plot_block_matrix(delta, ax=ax, title="ground truth NO - NN, W[post, pre]")
save_figure(fig, "05_allen_twin_truth_no_minus_nn")
"""),
    code("""
# NBVAL_CHECK_OUTPUT
for post, pre in np.argwhere(delta != 0):
    print(f"{POPULATION_LABELS[pre]:12s} -> {POPULATION_LABELS[post]:12s} {delta[post, pre]:+.4f}")
"""),
    md("""
## The dataset files

One `<condition>.npz` (plain arrays, no pickles) plus a `<condition>.json` manifest per condition, written atomically
(format in the `biornn.curate` docstring). The manifest records every setting, the source, row counts, skipped
experiments and the npz checksum.
"""),
    code("""
# NBVAL_CHECK_OUTPUT
with np.load(folder / "familiar_omission.npz") as npz:
    for key in npz.files:
        print(f"{key:19s} {npz[key].dtype}  {npz[key].shape}")
manifest = json.loads((folder / "familiar_omission.json").read_text())
print({k: manifest[k] for k in ("format_version", "condition", "abbreviation", "source", "seed", "layer_rule")})
"""),
    md("""
The command line builds the same files:

```
python -m biornn allen build --source twin --condition all --seed 0 --out data/allen/twin-seed0
python -m biornn allen build --source /path/to/allensdk_cache --condition familiar_change --seed 0 --out DIR
```

## Summary

* Six datasets, each `(2000, 15, 18)` input/target plus a held-out set bootstrapped only from held-out trials.
* Smooth-then-shift makes the target exactly the input one frame later; `shift_then_smooth` is the published order.
* The twin's windows go through the same code as real data, and its ground-truth connectivity per condition is known.

## Exercises

1. Rebuild familiar change with the published choices (`CurateConfig.published()`): how many V1 SST L4 rows does the
   overlap add?
2. How much smaller is the bootstrap SD with 400 draws per sample instead of 100? (Expect a factor of about 2.)
3. What is the ground-truth FN → FC difference?
"""),
    code("""
# Exercise 1 (solution)
pub, _ = curate.cached_datasets(conditions=("familiar_change",), config=curate.CurateConfig.published(), mode=MODE)
i = POPULATION_LABELS.index("V1_L4_SST")
print(pub["familiar_change"].row_counts[i], "vs", datasets["familiar_change"].row_counts[i] +
      datasets["familiar_change"].heldout_row_counts[i])
""", tags=["exercise"]),
    code("""
# Exercise 2 (solution)
rows = np.random.default_rng(0).normal(size=(1000, 16))
sd = {n: curate.bootstrap_means(rows, 2000, n, np.random.default_rng(1)).std(axis=0).mean() for n in (100, 400)}
print(round(sd[100] / sd[400], 2))
""", tags=["exercise"]),
    code("""
# Exercise 3 (solution)
d = W["familiar_change"] - W["familiar_no_change"]
print([(POPULATION_LABELS[pre], POPULATION_LABELS[post], round(d[post, pre], 4)) for post, pre in np.argwhere(d)])
""", tags=["exercise"]),
]

if __name__ == "__main__":
    for name, cells in zip(NOTEBOOKS, (nb03, nb04, nb05)):
        write(name, cells)
    if "--fill" in sys.argv[1:]:
        for name in NOTEBOOKS:
            fill(ROOT / name)
