"""Figure 5 (connectivity differences between conditions): difference maps, network diagrams, pathway schematic
and agreement with the reference.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Arc, FancyArrowPatch

from biornn.experiments.fig5.recovery import recovery_frame

#: Node positions of the two-area diagram (Figs 4-5 docs §6): V1 at x = 0, LM at x = 1.5; L2/3 y = 1, L4 0, L5 -1.
NETWORK_POSITIONS = {f"{a}_{l}": (x, y) for a, x in (("V1", 0.0), ("LM", 1.5))
                     for l, y in (("L2/3", 1.0), ("L4", 0.0), ("L5", -1.0))}


FIG5_PATHWAY_COLORS = {"intra": "0.6", "FF": "orange", "FB": "green"}


def _block_label(label: str) -> str:
    return label.replace("_", " ")


def plot_difference_map(ax, delta, labels, title: str = "", significant=None, absent=None, lim: float | None = None,
                        scale: float = 1.0, colorbar: bool = True, fontsize: int = 7, cbar_label: str = "",
                        xlabels: bool = True, ylabels: bool = True):
    """Heat map of a ``(G, G)`` difference matrix ``[post, pre]``: ``bwr`` centred at 0, limits ``±max |Δ|``.

    Args:
        ax: matplotlib axes.
        delta: ``(G, G)`` differences (rows post, columns pre).
        labels: ``(G,)`` block labels (``V1_L2/3`` or ``V1_L2/3_Pyr``), drawn with spaces.
        title: axes title.
        significant: optional ``(G, G)`` bool; those blocks get a black dot.
        absent: optional ``(G, G)`` bool; blocks without any connection, drawn light grey.
        lim: colour half-range (default ``max |Δ|`` over the present blocks).
        scale: multiply ``delta`` by this before drawing (e.g. 1e4 for units of 1e-4).
        colorbar: add a colour bar.
        fontsize: tick-label size.
        cbar_label: colour-bar label.
        xlabels, ylabels: write the block labels and axis titles (off for inner panels of a grid).

    Returns:
        The image.
    """

    d = np.asarray(delta, dtype=float) * scale
    G = d.shape[0]
    show = np.ma.masked_array(d, mask=np.zeros_like(d, dtype=bool) if absent is None else np.asarray(absent))
    if lim is None:
        finite = np.abs(show.compressed()) if show.count() else np.zeros(1)
        lim = float(np.nanmax(finite)) if finite.size and np.isfinite(finite).any() else 1.0
    lim = lim if lim > 0 else 1.0
    cmap = mpl.colormaps["bwr"].copy()
    cmap.set_bad("0.88")
    im = ax.imshow(show, cmap=cmap, vmin=-lim, vmax=lim, interpolation="none")
    names = [_block_label(x) for x in labels]
    if xlabels:
        ax.set_xticks(range(G), names, rotation=70, fontsize=fontsize, ha="right", rotation_mode="anchor")
        ax.set_xlabel("pre (source)", fontsize=fontsize + 1)
    else:
        ax.set_xticks(range(G), [])
    if ylabels:
        ax.set_yticks(range(G), names, fontsize=fontsize)
        ax.set_ylabel("post (target)", fontsize=fontsize + 1)
    else:
        ax.set_yticks(range(G), [])
    step = 3 if G in (6, 18) else None
    if step:
        for k in range(step, G, step):
            ax.axhline(k - 0.5, color="0.75", lw=0.4)
            ax.axvline(k - 0.5, color="0.75", lw=0.4)
        ax.axhline(G / 2 - 0.5, color="k", lw=0.8)
        ax.axvline(G / 2 - 0.5, color="k", lw=0.8)
    if significant is not None:
        rows, cols = np.nonzero(np.asarray(significant))
        ax.plot(cols, rows, "o", color="k", ms=3 if G > 6 else 5)
    ax.set_title(title, fontsize=fontsize + 2)
    if colorbar:
        cb = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        cb.ax.tick_params(labelsize=fontsize)
        if cbar_label:
            cb.set_label(cbar_label, fontsize=fontsize)
    return im


def plot_difference_grid(panels: dict, labels, scale: float = 1e4, ncols: int = 3, panel_size: float = 3.6,
                         cbar_label: str = "Δ (x 1e-4)", fontsize: int = 6):
    """One difference map per panel (own symmetric colour range each, as the reference), in a grid; block labels on
    the left column and bottom row only.

    Args:
        panels: ``{title: (delta, significant, absent)}`` with ``(G, G)`` arrays (``significant``/``absent`` may be
            None).
        labels: ``(G,)`` block labels.
        scale: multiply differences by this.
        ncols: panels per row.
        panel_size: inches per panel.
        cbar_label: colour-bar label.
        fontsize: tick-label size.

    Returns:
        The figure.
    """
    n = len(panels)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols * 1.15, panel_size * nrows), squeeze=False)
    for k, (ax, (title, (delta, sig, absent))) in enumerate(zip(axes.flat, panels.items())):
        plot_difference_map(ax, delta, labels, title, significant=sig, absent=absent, scale=scale,
                            fontsize=fontsize, cbar_label=cbar_label, xlabels=k + ncols >= n, ylabels=k % ncols == 0)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def _arc_rad(pos, src: int, dst: int, clearance: float = 0.5) -> float:
    """Curvature of the arc ``src -> dst``: 0.3 as published unless the arc passes within ``clearance`` (data units)
    of a third node; then the first of -0.3, ±0.15, ±0.5 that keeps clear (else the clearest)."""
    p0, p2 = np.asarray(pos[src], float), np.asarray(pos[dst], float)
    others = np.array([q for k, q in enumerate(pos) if k not in (src, dst)], float)
    best, best_gap = 0.3, -1.0
    for rad in (0.3, -0.3, 0.15, -0.15, 0.5, -0.5):
        d = p2 - p0
        c = (p0 + p2) / 2 + rad * np.array([d[1], -d[0]])
        t = np.array([0.25, 0.5, 0.75])[:, None]
        curve = (1 - t) ** 2 * p0 + 2 * t * (1 - t) * c + t ** 2 * p2
        gap = np.min(np.linalg.norm(curve[:, None, :] - others[None], axis=2)) if len(others) else np.inf
        if gap >= clearance:
            return rad
        if gap > best_gap:
            best, best_gap = rad, gap
    return best


def plot_network_diagram(ax, delta, density, labels, title: str = "", lim: float | None = None,
                         max_width: float = 4.0, edge_colors: dict | None = None, colorbar: bool = True,
                         scale: float = 1.0, significant=None):
    """The two-area network diagram of the Figs 4-5 docs §6: 6 layer nodes, one arrow pre -> post per connected block.

    Edge colour = ``bwr`` of the difference (limits ``±max |Δ|``) unless ``edge_colors`` fixes it; width =
    ``max_width * ρ / max ρ`` with ρ the block density; curved arcs (``arc3``, rad 0.3 as published, bent the other
    way or less where an arc would pass over a third node); self-loops are circles (radius 0.2) outside the node (left
    for V1, right for LM).

    Args:
        ax: matplotlib axes.
        delta: ``(6, 6)`` differences ``[post, pre]`` (ignored where ``edge_colors`` gives a colour).
        density: ``(6, 6)`` block densities; blocks with density 0 get no edge.
        labels: ``(6,)`` layer labels such as ``V1_L2/3`` (positions from :data:`NETWORK_POSITIONS`).
        title: axes title.
        lim: colour half-range (default ``max |Δ|`` over the drawn edges).
        max_width: width of the densest edge (points).
        edge_colors: optional ``{(post, pre): colour}`` (the schematic uses it).
        colorbar: add a colour bar for Δ.
        scale: multiply ``delta`` by this (colour-bar units).
        significant: optional ``(6, 6)`` bool; significant edges get a black outline (others a light grey one, so
            that edges with Δ near 0, drawn white, stay visible).

    Returns:
        The axes.
    """

    d = np.asarray(delta, dtype=float) * scale
    rho = np.asarray(density, dtype=float)
    edges = rho > 0
    if lim is None:
        lim = float(np.abs(d[edges]).max()) if edges.any() else 1.0
    lim = lim if lim > 0 else 1.0
    norm = mpl.colors.Normalize(-lim, lim)
    cmap = mpl.colormaps["bwr"]
    widths = max_width * rho / rho.max() if edges.any() else rho
    pos = [NETWORK_POSITIONS[lab] for lab in labels]
    for i, j in zip(*np.nonzero(edges)):
        color = edge_colors.get((i, j)) if edge_colors else None
        color = cmap(norm(d[i, j])) if color is None else color
        lw = max(float(widths[i, j]), 0.3)
        outline = significant is not None and bool(np.asarray(significant)[i, j])
        if i == j:
            x, y = pos[i]
            side = -1 if x < 0.75 else 1
            cx = x + side * 0.42
            ax.add_patch(Arc((cx, y), 0.4, 0.4, color="k" if outline else "0.8", lw=lw + 1.2, zorder=1))
            ax.add_patch(Arc((cx, y), 0.4, 0.4, color=color, lw=lw, zorder=1))
            tip = (cx + side * 0.02, y - 0.2)
            ax.annotate("", xy=(cx - side * 0.06, y - 0.19), xytext=tip, zorder=1,
                        arrowprops=dict(arrowstyle="-|>", color=color, lw=0.5, mutation_scale=9))
            continue
        kwargs = dict(connectionstyle=f"arc3,rad={_arc_rad(pos, j, i)}", arrowstyle="-|>", mutation_scale=12,
                      shrinkA=22, shrinkB=22, zorder=1)
        ax.add_patch(FancyArrowPatch(pos[j], pos[i], color="k" if outline else "0.8", lw=lw + 1.2, **kwargs))
        ax.add_patch(FancyArrowPatch(pos[j], pos[i], color=color, lw=lw, **kwargs))
    xs, ys = zip(*pos)
    ax.scatter(xs, ys, s=1500, color="0.85", edgecolors="k", zorder=2)
    for (x, y), lab in zip(pos, labels):
        ax.text(x, y, lab.split("_")[1], ha="center", va="center", fontweight="bold", fontsize=9, zorder=3)
    for area, x in (("V1", 0.0), ("LM", 1.5)):
        ax.text(x, -1.75, area, ha="center", va="center", fontweight="bold", fontsize=11)
    ax.set_xlim(-0.95, 2.45)
    ax.set_ylim(-2.0, 1.5)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=8)
    if colorbar and not edge_colors:
        sm = mpl.cm.ScalarMappable(norm=norm, cmap=cmap)
        cb = ax.figure.colorbar(sm, ax=ax, fraction=0.04, pad=0.01)
        cb.ax.tick_params(labelsize=7)
    return ax


def plot_network_grid(panels: dict, labels, scale: float = 1e4, ncols: int = 3, panel_size: float = 3.3):
    """Network diagrams in a grid: ``panels = {title: (delta, density, significant)}`` (``(6, 6)`` each).

    Returns:
        The figure.
    """
    n = len(panels)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols * 1.2, panel_size * nrows), squeeze=False)
    for ax, (title, (delta, density, sig)) in zip(axes.flat, panels.items()):
        plot_network_diagram(ax, delta, density, labels, title, scale=scale, significant=sig)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_pathway_schematic(density, labels, inter_area: dict | None = None):
    """The schematic of Figs 4-5 docs §6: within-area edges grey, feedforward orange, feedback green, width ∝ density.

    Args:
        density: ``(6, 6)`` block densities ``[post, pre]``.
        labels: ``(6,)`` layer labels.
        inter_area: ``{(post, pre): "FF" or "FB"}`` of the inter-area blocks (default: inferred from the areas,
            V1 -> LM = FF, LM -> V1 = FB).

    Returns:
        The figure.
    """
    rho = np.asarray(density, dtype=float)
    colors = {}
    for i, j in zip(*np.nonzero(rho > 0)):
        post_area, pre_area = labels[i].split("_")[0], labels[j].split("_")[0]
        kind = "intra" if post_area == pre_area else "FF" if pre_area == "V1" else "FB"
        if inter_area is not None and (i, j) in inter_area:
            kind = inter_area[(i, j)]
        colors[(i, j)] = FIG5_PATHWAY_COLORS[kind]
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    plot_network_diagram(ax, np.zeros_like(rho), rho, labels, edge_colors=colors, colorbar=False)
    return fig


def plot_pathway_agreement(table, value: str = "diff", reference: str = "ref_diff", unit: str = "x 1e-4"):
    """Our inter-area pathway differences against the reference's, one point per (window, pair, pathway).

    Colours: FF orange, FB -> L2/3 green, FB -> L5 dark green; circles full window, squares half window. Points in
    the shaded quadrants have the same sign as the reference.

    Args:
        table: :func:`biornn.stats.comparisons.pathway_table` output.
        value, reference: columns to plot.
        unit: axis unit.

    Returns:
        The figure.
    """
    colors = {"FF": "orange", "FB_L23": "green", "FB_L5": "darkgreen"}
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    x, y = table[reference].to_numpy(float), table[value].to_numpy(float)
    xl = np.nanmax(np.abs(x)) * 1.15 if np.isfinite(x).any() else 1.0
    yl = np.nanmax(np.abs(y)) * 1.15 if np.isfinite(y).any() and np.nanmax(np.abs(y)) > 0 else 1.0
    ax.fill_between([0, xl], 0, yl, color="0.93", lw=0)
    ax.fill_between([-xl, 0], -yl, 0, color="0.93", lw=0)
    for (window, pathway), sub in table.groupby(["window", "pathway"], sort=False):
        ax.plot(sub[reference], sub[value], "o" if window == "full" else "s", color=colors.get(pathway, "k"),
                mfc="none" if window == "half" else colors.get(pathway, "k"), ms=6, label=f"{pathway}, {window}")
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(0, color="k", lw=0.6)
    ax.set(xlim=(-xl, xl), ylim=(-yl, yl), xlabel=f"reference Δ ({unit})", ylabel=f"ours Δ ({unit})",
           title="Inter-area pathways, 9 pairs x 2 windows")
    ax.legend(fontsize=7, ncol=2)
    return fig


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
    import seaborn as sns  # optional dependency, only these plots need it

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
    import seaborn as sns  # optional dependency, only these plots need it

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

    Bars: :func:`biornn.experiments.fig5.recovery_scaling.point_row` ``slope`` (1 = the fit moves by the planted amount
    beyond the
    null twin, 0 = it does not see the planted gains); labels give planted changes recovered and null differences
    flagged.
    """
    import seaborn as sns  # optional dependency, only these plots need it

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
        report: a recovery report (:func:`biornn.experiments.fig5.recovery.recovery_report` or
            :func:`biornn.experiments.fig5.joint_linear_report.report`).
        coverage: fraction of the null changes inside the band (0.95: the 2.5th to the 97.5th percentile).

    Returns:
        ``(low, high, n)``: the band's limits (log change) and the number of null-twin changes it is taken over.

    Raises:
        BiornnError: ``coverage`` outside (0, 1).
    """
    from biornn.core.errors import BiornnError

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
    import seaborn as sns  # optional dependency, only these plots need it

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
