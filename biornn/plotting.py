"""One figure style and one figure writer for every notebook.

* :func:`save_figure` writes ``figures/<name>.png`` and ``figures/<name>.pdf`` (set ``BIORNN_FIGURES`` to write
  elsewhere, e.g. in tests).
* :data:`METHOD_STYLE` holds the paper's colours: conventional black, Dale's cornflower blue with triangles,
  rectified salmon with circles (spec Fig 2, section 7); the Song-style rectified fix is sienna with squares.
* :data:`PRUNING_STYLE`: random grey, top-prob green (spec Fig 3, section 7).
* :func:`band_plot`: mean curve with a shaded band over seeds.

Only matplotlib is imported here; seaborn is optional and imported by the functions that use it.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

ROOT = Path(__file__).resolve().parent.parent

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


def figures_dir() -> Path:
    """Where figures go: ``$BIORNN_FIGURES`` or ``figures/`` at the repository root."""
    return Path(os.environ.get("BIORNN_FIGURES", ROOT / "figures"))


def use_style() -> None:
    """Apply the shared matplotlib style (called on import; call again after changing rcParams)."""
    plt.rcParams.update(STYLE)


def save_figure(fig, name: str, formats=("png", "pdf")) -> list[Path]:
    """Save ``fig`` as ``figures/<name>.png`` and ``.pdf``; return the written paths.

    Files are written to a temporary name and renamed, so an interrupted save never leaves half a file.
    """
    out = figures_dir()
    out.mkdir(parents=True, exist_ok=True)
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
        band: ``"std"`` (population std, ddof 0, as the reference), ``"sem"`` or ``"ci95"`` (t interval).
        clip_zero: clip the band's lower edge at 0 (the reference does for losses).
        label: legend label (default the style's).
        markevery: marker spacing.
    """
    from scipy import stats as st

    curves = np.asarray(curves, dtype=float)
    mean = curves.mean(0)
    n = curves.shape[0]
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
