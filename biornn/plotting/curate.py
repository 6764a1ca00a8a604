"""Plots of the curation used by the notebooks: an experiment's timeline, the cut windows, bootstrap means per
population and the conditions of one population.

:mod:`biornn.data.curate` re-exports these on first use, for the notebooks.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from biornn.core.conditions import ABBREVIATIONS, split_condition
from biornn.data.allen import BEHAVIOR_BLOCK, ExperimentData
from biornn.data.curate.datasets import Dataset
from biornn.data.curate.windows import PRE_FRAMES, WINDOW_FRAMES, EventWindows
from biornn.nn.connectivity import DISPLAY_LAYERS, TYPES, population_label

WINDOW_COLORS = {"change": "tab:red", "no_change": "tab:grey", "omission": "tab:purple"}


def plot_timeline(data: ExperimentData, start: float, stop: float, ax=None):
    """The plane's mean ΔF/F between ``start`` and ``stop`` s with flashes (grey), changes (red) and omissions
    (purple dashed)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3))
    ts = data.timestamps
    sl = (ts >= start) & (ts <= stop)
    ax.plot(ts[sl], data.pop_mean[sl], color="k", lw=1, marker=".", ms=3)
    stim = data.stimulus_presentations
    stim = stim[(stim["start_time"] >= start) & (stim["start_time"] <= stop)
                & (stim["stimulus_block_name"] == BEHAVIOR_BLOCK)]
    for rec in stim.itertuples(index=False):
        if rec.omitted:
            ax.axvline(rec.start_time, color=WINDOW_COLORS["omission"], ls="--", lw=1)
        else:
            ax.axvspan(rec.start_time, rec.start_time + 0.25,
                       color=WINDOW_COLORS["change"] if rec.is_change else "0.85", alpha=0.6, lw=0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mean ΔF/F")
    ax.set_title(f"experiment {data.ophys_experiment_id} ({data.n_cells} cells)")
    return ax


def plot_windows(windows: dict[str, EventWindows], ax=None):
    """Mean ± SD over rows of each window type against the median event-relative frame time."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for wtype, w in windows.items():
        if len(w.values) == 0:
            continue
        t = np.median(w.t_rel, axis=0)
        m, sd = w.values.mean(axis=0), w.values.std(axis=0)
        color = WINDOW_COLORS.get(wtype, None)
        ax.plot(t, m, color=color, marker="o", ms=3, label=f"{wtype} (n={len(w.values)})")
        ax.fill_between(t, m - sd, m + sd, color=color, alpha=0.15, lw=0)
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("time from event (s)")
    ax.set_ylabel("mean ΔF/F")
    ax.legend()
    return ax


def plot_population_means(dataset: Dataset, area: str = "V1", axes=None):
    """3 x 3 grid (layers L2/3, L4, L5 x Pyr, SST, VIP) of one area: mean ± SD over training samples of the model
    inputs (frames 0–14, solid) and targets (frames 1–15, dashed)."""

    if axes is None:
        fig, axes = plt.subplots(3, 3, figsize=(9, 7), sharex=True, constrained_layout=True)
        fig.suptitle(f"{dataset.condition} ({ABBREVIATIONS[dataset.condition]}), {area}: bootstrap means")
    frames = np.arange(WINDOW_FRAMES)
    for i, layer in enumerate(DISPLAY_LAYERS):
        for j, cell_type in enumerate(TYPES):
            ax = axes[i, j]
            p = dataset.populations.index(population_label(area, layer, cell_type))
            for arr, x, style in ((dataset.inputs, frames[:-1], "-"), (dataset.targets, frames[1:], "--")):
                m, sd = arr[:, :, p].mean(axis=0), arr[:, :, p].std(axis=0)
                ax.plot(x, m, style, color="k" if style == "-" else "tab:green", lw=1)
                ax.fill_between(x, m - sd, m + sd, color="0.7", alpha=0.3, lw=0)
            ax.axvline(PRE_FRAMES, color="tab:red", lw=0.5)
            ax.set_title(f"{area} {layer} {cell_type} (n={dataset.row_counts[p]})", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("frame")
    return axes


def plot_conditions(datasets: dict[str, Dataset], population: str, ax=None):
    """Mean model input of one population in every condition (solid familiar, dashed novel)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for cond, ds in datasets.items():
        experience, wtype = split_condition(cond)
        p = ds.populations.index(population)
        ax.plot(np.arange(WINDOW_FRAMES - 1), ds.inputs[:, :, p].mean(axis=0), color=WINDOW_COLORS[wtype],
                ls="-" if experience == "familiar" else "--", label=ABBREVIATIONS[cond])
    ax.axvline(PRE_FRAMES, color="k", lw=0.5)
    ax.set_xlabel("input frame")
    ax.set_ylabel("mean ΔF/F")
    ax.set_title(population)
    ax.legend(ncol=2)
    return ax
