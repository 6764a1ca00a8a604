"""Plots of the Allen selection and of the digital twin: imaging depths of the selected planes
(:func:`plot_depths`) and a population block matrix (:func:`plot_block_matrix`).

:mod:`biornn.data.allen` and :mod:`biornn.data.synthetic` re-export these on first use, for the notebooks.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from biornn.core.conditions import EXPERIENCE_LEVELS
from biornn.nn.connectivity import AREAS, L4_UPPER, L23_UPPER, POPULATION_LABELS, TYPES


def plot_depths(selection: pd.DataFrame, ax=None):
    """Imaging depth of every selected plane per (experience, area, cell type), coloured by assigned layer.

    One marker per (experiment, population) row, so a plane that feeds two layers appears twice (side by side).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 4))
    colors = {"L2/3": "tab:blue", "L4": "tab:orange", "L5": "tab:green"}
    offsets = {"L2/3": 0.0, "L4": -0.12, "L5": 0.12}
    keys = [(e, a, t) for e in EXPERIENCE_LEVELS for a in AREAS for t in TYPES]
    for x, key in enumerate(keys):
        rows = selection[(selection["experience_level"] == key[0]) & (selection["area"] == key[1])
                         & (selection["cell_type"] == key[2])]
        for layer, group in rows.groupby("layer"):
            ax.scatter(np.full(len(group), x + offsets[layer]), group["imaging_depth"], s=10, color=colors[layer],
                       alpha=0.7)
    for depth in (L23_UPPER, L4_UPPER):
        ax.axhline(depth, color="grey", lw=0.5, ls="--")
    ax.set_xticks(range(len(keys)), [f"{e[0].upper()} {a} {t}" for e, a, t in keys], rotation=70)
    ax.invert_yaxis()
    ax.set_ylabel("imaging depth (µm)")
    ax.set_title(f"selected planes, layer rule {selection.attrs.get('layer_rule', '?')!r}")
    handles = [Line2D([], [], ls="", marker="o", color=c, label=l) for l, c in colors.items()]
    ax.legend(handles=handles, title="layer", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax


def plot_block_matrix(W: np.ndarray, ax=None, title: str = "", symmetric: bool = True):
    """An ``(18, 18)`` ``[post, pre]`` population matrix as a heat map (rows post, columns pre; index order)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5.5))
    lim = float(np.max(np.abs(W))) or 1.0
    im = ax.imshow(W, cmap="bwr" if symmetric else "viridis", vmin=-lim if symmetric else None,
                   vmax=lim if symmetric else None)
    labels = [lab.replace("_", " ") for lab in POPULATION_LABELS]
    ax.set_xticks(range(18), labels, rotation=70, fontsize=7)
    ax.set_yticks(range(18), labels, fontsize=7)
    ax.set_xlabel("pre")
    ax.set_ylabel("post")
    ax.set_title(title)
    plt.colorbar(im, ax=ax, fraction=0.046)
    return ax
