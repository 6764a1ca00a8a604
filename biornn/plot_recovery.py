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


def null_band(report: dict, coverage: float = 0.95) -> tuple[float, float, int]:
    """The central ``coverage`` of the null twins' fitted changes of a recovery report.

    Pools every null-twin fitted change over pairs x pathways (and, for the joint estimator, over its independently
    seeded null twins: the rows' ``null_deltas``; the separate estimator has one null twin, ``null_delta``).

    Args:
        report: a recovery report (:func:`biornn.recovery.recovery_report` or
            :func:`biornn.joint_linear_report.report`).
        coverage: fraction of the null changes inside the band (0.95: the 2.5th to the 97.5th percentile).

    Returns:
        ``(low, high, n)``: the band's limits (log change) and the number of null-twin changes it is taken over.

    Raises:
        BiornnError: ``coverage`` outside (0, 1).
    """
    from biornn.errors import BiornnError

    if not 0 < coverage < 1:
        raise BiornnError(f"coverage = {coverage}; use a fraction between 0 and 1, e.g. 0.95")
    values = np.concatenate([np.atleast_1d(r.get("null_deltas", r["null_delta"])) for r in report["rows"]])
    values = values[np.isfinite(values)]
    tail = 50 * (1 - coverage)
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high), int(values.size)


def plot_fitted_vs_planted(reports: dict[str, dict], coverage: float = 0.95):
    """Fitted vs planted change per pair x pathway, one panel per estimator, each with its null twins' band.

    x: the planted log change ``log(strength_B / strength_A)``; y: the planted twin's fitted change (the separate
    estimator: mean over its runs; the joint estimator: the point fit). Colour: pathway; marker: outcome as the
    report's test and correction decide (recovered, wrong sign, missed, flagged, quiet). Grey band: the central
    ``coverage`` of the null twins' fitted changes (:func:`null_band`); small grey dots: the null twins' fitted
    change of the same pair x pathway. The title prints the report's counts. Axes are shared, so the panels compare.

    Args:
        reports: ``{panel title: recovery report}`` (e.g. the separate and the joint linear estimator).
        coverage: fraction of the null-twin changes inside the band.

    Returns:
        The figure.
    """
    markers = {"recovered": "o", "wrong sign": "v", "missed": "X", "flagged": "s", "quiet": "."}
    fig, axes = plt.subplots(1, len(reports), figsize=(5.0 * len(reports) + 1.6, 4.9), sharex=True, sharey=True,
                             squeeze=False)
    frames = {name: recovery_frame(rep) for name, rep in reports.items()}
    nulls = {name: [(r["planted_delta"], v) for r in rep["rows"]
                    for v in np.atleast_1d(r.get("null_deltas", r["null_delta"]))] for name, rep in reports.items()}
    values = np.concatenate([f[["planted_delta", "fitted_delta"]].to_numpy().ravel() for f in frames.values()]
                            + [np.ravel(v) for v in nulls.values()])
    lim = float(np.nanmax(np.abs(values))) * 1.1 or 1.0
    for ax, (name, rep) in zip(axes[0], reports.items()):
        rows = frames[name]
        low, high, n = null_band(rep, coverage)
        ax.axhspan(low, high, color="0.87", zorder=0, label=f"null twins' fitted changes, central {coverage:.0%}")
        x, y = np.array(nulls[name]).T
        ax.scatter(x, y, s=8, color="0.55", zorder=2, label="null twin, same pair x pathway")
        sns.scatterplot(data=rows, x="planted_delta", y="fitted_delta", hue="pathway", style="outcome",
                        palette=PATHWAY_PALETTE, hue_order=list(PATHWAY_PALETTE),
                        markers={k: v for k, v in markers.items() if k in set(rows["outcome"])}, s=60, ax=ax,
                        zorder=3)
        ax.plot([-lim, lim], [-lim, lim], color="k", lw=0.8, ls=":", zorder=1)
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(0, color="k", lw=0.5)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="planted change, log(B / A)",
               ylabel="fitted change on the planted twin, log(B / A)")
        ax.set_title(f"{name} ({rep.get('window', '?')} window, {rep['resamples']} resamples)\n"
                     f"recovered {rep['planted_recovered']}/{rep['planted_total']}, wrong sign "
                     f"{rep['wrong_sign_flagged']}, unplanted flagged {rep['unplanted_flagged']}/"
                     f"{rep['unplanted_total']}, null flagged {rep['null_flagged']}/{rep['null_total']}\n"
                     f"null band [{low:+.2f}, {high:+.2f}] (n = {n} null-twin changes)", fontsize=8)
        ax.legend(fontsize=6, loc="upper left")
    for ax in axes[0][:-1]:
        ax.get_legend().remove()
    axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig
