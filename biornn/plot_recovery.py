"""Figures of the planted-vs-null recovery check (notebooks 06 and 07): recovery scatter, ablation bars."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from biornn.recovery import recovery_frame

#: Pathway colours (feedforward orange, feedback green: the paper's network diagrams).
PATHWAY_PALETTE = {"FF": "darkorange", "FB_L23": "forestgreen", "FB_L5": "seagreen"}


def plot_recovery(report: dict, ax=None):
    """Fitted vs planted log change per (pair, pathway), with the null twin's fitted changes as a grey band.

    x: planted ``log(strength_B / strength_A)``; y: fitted (planted twin, mean over runs). The band spans the null
    twin's fitted changes (the same pairs and pathways, nothing planted): a fitted change inside it is no larger than
    what drives and data produce alone. Filled markers: significant after the report's correction.
    """
    rows = recovery_frame(report)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.4, 4.6))
    lo, hi = float(np.min(rows["null_delta"])), float(np.max(rows["null_delta"]))
    ax.axhspan(lo, hi, color="0.85", zorder=0, label=f"null twin: [{lo:+.2f}, {hi:+.2f}]")
    sns.scatterplot(data=rows, x="planted_delta", y="fitted_delta", hue="pathway", style="outcome",
                    palette=PATHWAY_PALETTE, markers={"recovered": "o", "missed": "X", "flagged": "s", "quiet": "."},
                    s=60, ax=ax, zorder=3)
    lim = float(np.nanmax(np.abs(rows[["planted_delta", "fitted_delta", "null_delta"]].to_numpy()))) * 1.1 or 1.0
    ax.plot([-lim, lim], [-lim, lim], color="k", lw=0.8, ls=":", zorder=1)
    ax.axhline(0, color="k", lw=0.5)
    ax.axvline(0, color="k", lw=0.5)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="planted change, log(B / A)",
           ylabel="fitted change, log(B / A), mean over runs",
           title=f"{report.get('variant', '')} ({report.get('window', '')} window): "
                 f"{report['planted_recovered']}/{report['planted_total']} recovered, "
                 f"null {report['null_flagged']}/{report['null_total']} flagged")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.figure.tight_layout()
    return ax.figure


def plot_ablation(table: pd.DataFrame, ax=None):
    """Held-out median r and identifiability per variant: one point per run, the structure-only baseline dashed.

    Args:
        table: one row per (variant, run) with ``variant``, ``heldout_r``, ``rho_strength`` and ``baseline``.
    """
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    order = list(dict.fromkeys(table["variant"]))
    for axis, column, title in ((ax[0], "heldout_r", "held-out median r"),
                                (ax[1], "rho_strength", "block strength vs truth (Spearman rho)")):
        sns.stripplot(data=table, y="variant", x=column, order=order, ax=axis, color="k", size=5, jitter=0.1)
        axis.set(title=title, xlabel="", ylabel="")
    ax[1].axvline(float(table["baseline"].iloc[0]), color="grey", ls="--", label="structure only")
    ax[0].axvline(0.9, color="grey", ls=":", label="0.9 bar")
    for axis in ax:
        axis.legend(fontsize=7, loc="lower left")
    ax[0].figure.tight_layout()
    return ax[0].figure
