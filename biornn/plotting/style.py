"""The shared figure style (colours of methods and pruning rules, matplotlib rcParams), the figure writer
(:func:`save_figure`) and the small helpers every figure uses (:func:`band_plot`, :func:`kde_on_grid`).

The package (:mod:`biornn.plotting`), as a whole: One figure style and one figure writer for every notebook.

* :func:`save_figure` writes ``figures/<name>.png`` and ``figures/<name>.pdf`` (``folder=`` writes elsewhere,
  e.g. in tests).
* :data:`METHOD_STYLE` holds the paper's colours: conventional black, Dale's cornflower blue with triangles,
  rectified salmon with circles (fig2-dales-backprop.md §7); the Song-style rectified fix is sienna with squares.
* :data:`PRUNING_STYLE`: random grey, top-prob green (docs/paper/fig3-topprob-pruning.md, section 7).
* :func:`band_plot`: mean curve with a shaded band over seeds.

Only matplotlib is imported here; seaborn is optional and imported by the functions that use it.

Submodules (imports point one way): :mod:`~biornn.plotting.style` (style, :func:`save_figure`), one per figure
(:mod:`~biornn.plotting.fig2` ... :mod:`~biornn.plotting.fig5`; :mod:`~biornn.plotting.fig3` adds notebook 02's
keep-probability panel), and the data plots :mod:`~biornn.plotting.allen`
(selection depths, the twin's block matrix) and :mod:`~biornn.plotting.curate` (timelines, windows, bootstrap
means). This package re-exports their public names.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from biornn.core.config import FIGURES_DIR, check_mode

METHOD_STYLE = {
    "conventional": dict(color="k", marker=None, label="Conventional Backprop"),
    "dales": dict(color="cornflowerblue", marker="^", label="Dales Backprop"),
    "rectified-published": dict(color="salmon", marker="o", label="Rectified Backprop (as published)"),
    "rectified": dict(color="sienna", marker="s", label="Rectified Backprop (Song et al., fixed)"),
}

PRUNING_STYLE = {
    "random": dict(color="grey", marker="x", label="Random pruning"),
    "topprob": dict(color="g", marker="o", label="Top-prob pruning"),
    "theory": dict(color="k", marker=None, label="Theory"),
}

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 250,
    "savefig.bbox": "tight",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "font.size": 10,
    "axes.titlesize": 11,
    "legend.frameon": False,
    "pdf.fonttype": 42,
}


def use_style() -> None:
    """Apply the shared matplotlib style (called on import; call again after changing rcParams)."""
    plt.rcParams.update(STYLE)


def save_figure(fig, name: str, formats=("png", "pdf"), *, folder: str | os.PathLike = FIGURES_DIR,
                mode: str = "quick") -> list[Path]:
    """Save ``fig`` as ``<folder>/<name>.png`` and ``.pdf``; return the written paths.

    In quick mode a small grey note in the corner says so, so a quick figure never passes for a paper one.

    Files are written to a temporary name and renamed, so an interrupted save never leaves half a file.

    Args:
        fig: a matplotlib figure.
        name: file name without suffix.
        formats: file formats to write.
        folder: output folder (default ``figures/``; a notebook passes ``FIGURES = figures_dir()``).
        mode: the run mode of the figure's numbers (``quick`` marks the figure).
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if check_mode(mode) == "quick" and not getattr(fig, "_biornn_marked", False):
        # never let a quick-mode figure pass for a paper-mode one
        fig.text(0.995, 0.005, "biornn quick mode: small models, not the paper's sizes", ha="right", va="bottom",
                 fontsize=6, color="0.5")
        fig._biornn_marked = True
    paths = []
    for fmt in formats:
        path = out / f"{name}.{fmt}"
        tmp = out / f".{name}.tmp.{fmt}"
        fig.savefig(tmp, format=fmt)
        os.replace(tmp, path)
        paths.append(path)
    return paths


def band_plot(ax, x, curves, style: dict, band: str = "std", clip_zero: bool = False, label: str | None = None,
              markevery=None):
    """Plot the mean of ``curves`` ``(runs, points)`` with a shaded band.

    Args:
        ax: matplotlib axes.
        x: ``(points,)`` x values.
        curves: ``(runs, points)`` values.
        style: a :data:`METHOD_STYLE` entry (colour, marker, label).
        band: ``"std"`` (population std, ddof 0, as the reference), ``"sem"``, ``"ci95"`` (t interval) or
            ``"runs"`` (every run as a thin line: the honest choice on a log axis, where a mean - std band is
            often negative).
        clip_zero: clip the band's lower edge at 0 (the reference does for losses).
        label: legend label (default the style's).
        markevery: marker spacing.
    """
    from scipy import stats as st

    curves = np.asarray(curves, dtype=float)
    mean = curves.mean(0)
    n = curves.shape[0]
    if band == "runs":
        for run in curves:
            ax.plot(x, run, color=style["color"], lw=0.6, alpha=0.35)
        ax.plot(x, mean, color=style["color"], marker=style.get("marker"), markevery=markevery, ms=4,
                label=label or style["label"])
        return ax
    if band == "std":
        half = curves.std(0)
    elif band == "sem":
        half = curves.std(0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(mean)
    elif band == "ci95":
        half = (st.t.ppf(0.975, n - 1) * curves.std(0, ddof=1) / np.sqrt(n)) if n > 1 else np.zeros_like(mean)
    else:
        raise ValueError(f"unknown band {band!r}; use std, sem or ci95")
    lo = mean - half
    if clip_zero:
        lo = np.maximum(lo, 0)
    ax.plot(x, mean, color=style["color"], marker=style.get("marker"), markevery=markevery, ms=4,
            label=label or style["label"])
    ax.fill_between(x, lo, mean + half, color=style["color"], alpha=0.2, lw=0)
    return ax


use_style()


def kde_on_grid(values, grid) -> np.ndarray:
    """Gaussian KDE (Scott's bandwidth, as seaborn's default) of ``values`` evaluated on a common ``grid``.

    Evaluating every run on one grid is the fix for the reference's averaging of curves by grid index (Fig 2 docs Q12).
    """
    from scipy.stats import gaussian_kde

    values = np.asarray(values, dtype=np.float64).ravel()
    if np.ptp(values) == 0:
        return np.where(np.isclose(grid, values[0]), np.inf, 0.0)
    return gaussian_kde(values, bw_method="scott")(grid)






