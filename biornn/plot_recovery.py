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
    what drives and data produce alone. Marker by outcome: recovered (significant, planted sign), wrong sign
    (significant, opposite sign), missed, flagged (significant, nothing planted), quiet; significance as the report's
    test and correction state.
    """
    rows = recovery_frame(report)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.4, 4.6))
    lo, hi = float(np.min(rows["null_delta"])), float(np.max(rows["null_delta"]))
    ax.axhspan(lo, hi, color="0.85", zorder=0, label=f"null twin: [{lo:+.2f}, {hi:+.2f}]")
    markers = {"recovered": "o", "wrong sign": "v", "missed": "X", "flagged": "s", "quiet": "."}
    sns.scatterplot(data=rows, x="planted_delta", y="fitted_delta", hue="pathway", style="outcome",
                    palette=PATHWAY_PALETTE, markers={k: v for k, v in markers.items() if k in set(rows["outcome"])},
                    s=60, ax=ax, zorder=3)
    lim = float(np.nanmax(np.abs(rows[["planted_delta", "fitted_delta", "null_delta"]].to_numpy()))) * 1.1 or 1.0
    ax.plot([-lim, lim], [-lim, lim], color="k", lw=0.8, ls=":", zorder=1)
    ax.axhline(0, color="k", lw=0.5)
    ax.axvline(0, color="k", lw=0.5)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="planted change, log(B / A)",
           ylabel="fitted change, log(B / A), mean over runs",
           title=f"{report.get('variant', '')} ({report.get('window', '')} window): "
                 f"{report['planted_recovered']}/{report['planted_total']} recovered, "
                 f"{report.get('wrong_sign_flagged', 0)} wrong sign, "
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


def plot_scaling(table: pd.DataFrame, linear: pd.DataFrame, ax=None):
    """Slope of the calibrated on the planted change: the RNN at each sweep point beside the linear control.

    Bars: :func:`biornn.recovery_scaling.point_row` ``slope`` (1 = the fit moves by the planted amount beyond the
    null twin, 0 = it does not see the planted gains); labels give planted changes recovered and null differences
    flagged.
    """
    rnn = table.assign(label=[f"RNN {r.drive} drive\n{r.epochs} ep, n={r.n_train}, {r.recordings}"
                              for r in table.itertuples()], kind="RNN (quick sizes)")
    lin = linear.assign(label=[f"linear, {d} drive" for d in linear["drive"]], kind="linear control")
    both = pd.concat([rnn, lin], ignore_index=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(8.5, 3.8))
    sns.barplot(data=both, x="label", y="slope", hue="kind", dodge=False, ax=ax,
                palette={"RNN (quick sizes)": "0.45", "linear control": "tab:blue"})
    for i, r in enumerate(both.itertuples()):
        ax.annotate(f"{r.planted_recovered}/{r.planted_total}\nnull {r.null_flagged}", (i, max(r.slope, 0)),
                    ha="center", va="bottom", fontsize=6)
    ax.axhline(1, color="k", lw=0.6, ls=":")
    ax.axhline(0, color="k", lw=0.6)
    ax.set(xlabel="", ylabel="slope: calibrated / planted change")
    ax.tick_params(axis="x", labelsize=6, rotation=60)
    ax.legend(fontsize=7)
    return ax.figure
