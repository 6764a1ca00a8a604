"""Figure 4 (the cell-type constrained RNN): network schematic, training curves, traces, weight matrices, block
heatmaps, densities, identifiability, condition fits and the mask.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch

from biornn.celltype import REFERENCE_NAMES
from biornn.nn.connectivity import (
    AREAS,
    DISPLAY_LAYERS,
    POPULATION_LABELS,
    TYPES,
    block_density,
    display_order,
    pathway_blocks,
    populations,
)
from biornn.plotting.style import (
    band_plot,
)

#: Colours of the three cell types (Pyr excitatory red; SST and VIP inhibitory blues).
CELLTYPE_COLORS = {"Pyr": "#c0392b", "SST": "#2e86c1", "VIP": "#7d3c98"}


#: Colours of the inter-area pathways (docs/paper/fig4-5-celltype-rnn.md section 6: feedforward orange, feedback green).
CELLTYPE_PATHWAY_COLORS = {"FF": "darkorange", "FB_L23": "forestgreen", "FB_L5": "forestgreen"}


#: Trace styles (docs/paper/fig4-5-celltype-rnn.md section 5): target black dashed, dense grey, sparse green.
TRACE_STYLE = {"target": dict(color="k", ls="--", label="target"), "dense": dict(color="grey", label="dense"),
               "sparse": dict(color="green", label="sparse")}


def _pretty(label: str) -> str:
    return label.replace("_", " ")


def plot_celltype_network(density=None, ax=None, min_probability: float = 0.0):
    """Diagram of the 18 populations and their connections (within-area table and the inter-area pathways).

    Nodes: areas side by side, layers top to bottom in display order (L2/3, L4, L5), types left to right; red =
    excitatory Pyr, blues = inhibitory SST/VIP. Grey lines: within-area connections (pre -> post, opacity and width
    grow with the table's probability; self-connections drawn as rings). Arrows: inter-area pathways, feedforward
    (V1 L2/3 Pyr -> LM L4) orange, feedback (LM L5 Pyr -> V1 L2/3 and V1 L5) green.

    Args:
        density: ``(18, 18)`` ``[post, pre]`` target densities (default :func:`biornn.nn.connectivity.block_density`).
        ax: axes to draw in.
        min_probability: hide within-area connections below this probability.

    Returns:
        The figure.
    """


    density = block_density() if density is None else np.asarray(density)
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 5.2))
    pos = {}
    for k, area in enumerate(AREAS):
        for j, layer in enumerate(DISPLAY_LAYERS):
            for t, cell_type in enumerate(TYPES):
                pos[f"{area}_{layer}_{cell_type}"] = (k * 5.0 + t * 1.2, -j * 1.6)
    idx = {lab: i for i, lab in enumerate(POPULATION_LABELS)}
    inter = {pair for pairs in pathway_blocks().values() for pair in pairs}
    pmax = max(float(density.max()), 1e-12)
    for post in POPULATION_LABELS:
        for pre in POPULATION_LABELS:
            p = density[idx[post], idx[pre]]
            if p <= min_probability or (idx[post], idx[pre]) in inter:
                continue
            (x0, y0), (x1, y1) = pos[pre], pos[post]
            if pre == post:
                ax.add_patch(plt.Circle((x0, y0), 0.3, fill=False, color="0.4", lw=0.5 + 2 * p / pmax,
                                        alpha=0.2 + 0.6 * p / pmax, zorder=1))
                continue
            ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), connectionstyle="arc3,rad=0.25", arrowstyle="-",
                                         color="0.4", lw=0.3 + 2 * p / pmax, alpha=0.1 + 0.5 * p / pmax, zorder=1))
    for name, pairs in pathway_blocks().items():
        for post, pre in pairs:
            ax.add_patch(FancyArrowPatch(pos[POPULATION_LABELS[pre]], pos[POPULATION_LABELS[post]],
                                         connectionstyle="arc3,rad=-0.12", arrowstyle="-|>", mutation_scale=12,
                                         color=CELLTYPE_PATHWAY_COLORS.get(name, "k"), lw=1.6, shrinkA=9, shrinkB=9,
                                         zorder=2))
    for lab, (x, y) in pos.items():
        cell_type = lab.split("_")[2]
        ax.scatter([x], [y], s=420, color=CELLTYPE_COLORS[cell_type], edgecolor="k", zorder=3)
        ax.text(x, y, cell_type, ha="center", va="center", fontsize=7, color="w", weight="bold", zorder=4)
    for k, area in enumerate(AREAS):
        ax.text(k * 5.0 + 1.2, 0.9, area, ha="center", fontsize=12, weight="bold")
        for j, layer in enumerate(DISPLAY_LAYERS):
            ax.text(k * 5.0 - 0.8, -j * 1.6, layer, ha="right", va="center", fontsize=9)
    handles = [plt.Line2D([], [], color="darkorange", lw=2, label="FF: V1 L2/3 Pyr -> LM L4 (p = 0.3)"),
               plt.Line2D([], [], color="forestgreen", lw=2, label="FB: LM L5 Pyr -> V1 L2/3, V1 L5 (p = 0.3)"),
               plt.Line2D([], [], color="0.4", lw=1.5, label="within area: probability table (pre -> post)")]
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=8)
    ax.set_xlim(-2.0, 8.4)
    ax.set_ylim(-4.0, 1.4)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax.figure


def plot_celltype_curves(runs: dict, factor: int = 1, log: bool = True):
    """Training curves of the two stages on one epoch axis: training loss (solid) and held-out MSE (dashed).

    Args:
        runs: ``{label: list of per-seed run dicts}`` (``dense_loss``, ``finetune_loss``, ``dense_heldout_loss``,
            ``finetune_heldout_loss``).
        factor: multiply the training losses by this (10 = the reference's sum over batches).
        log: logarithmic y axis.

    Returns:
        The figure (band = std over seeds; the dotted line marks the pruning).
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    colors = ["tab:green", "tab:blue", "tab:orange", "tab:purple"]
    n_dense = 0
    for (label, seeds), color in zip(runs.items(), colors):
        train = np.array([r["dense_loss"] + r["finetune_loss"] for r in seeds], dtype=float) * factor
        held = np.array([r["dense_heldout_loss"] + r["finetune_heldout_loss"] for r in seeds], dtype=float)
        n_dense = len(seeds[0]["dense_loss"])
        x = np.arange(1, train.shape[1] + 1)
        band_plot(ax, x, train, dict(color=color, marker=None, label=f"{label}: training"))
        if np.isfinite(held).all():
            ax.plot(x, held.mean(0), color=color, ls="--", lw=1, label=f"{label}: held-out MSE")
    ax.axvline(n_dense + 0.5, color="k", ls=":", lw=1)
    ax.text(n_dense + 0.7, ax.get_ylim()[1], "pruned", va="top", fontsize=8)
    ax.set(xlabel="Epoch (dense, then masked fine-tuning)",
           ylabel="MSE per element" + (f" x {factor} (reference sum)" if factor != 1 else ""))
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=7)
    return fig


def plot_celltype_traces(targets, dense, sparse, fits: dict | None = None, title: str = ""):
    """Predicted vs recorded traces, one panel per population (6 x 3 grid in display order).

    Args:
        targets: ``(T, 18)`` recorded next-frame activity of one sample.
        dense, sparse: ``(T, 18)`` predictions of the dense and sparse models.
        fits: optional ``{"r": (18,), "r2": (18,)}`` (e.g. the held-out pooled fit of the sparse model) for titles.
        title: figure title.

    Returns:
        The figure.
    """
    fig, axes = plt.subplots(6, 3, figsize=(11, 13), sharex=True)
    for ax, i in zip(axes.ravel(), display_order()):
        t = np.arange(len(targets))
        for key, arr in (("target", targets), ("dense", dense), ("sparse", sparse)):
            ax.plot(t, np.asarray(arr)[:, i], lw=1.4, **TRACE_STYLE[key])
        head = _pretty(POPULATION_LABELS[i])
        if fits is not None:
            head += f"  r={fits['r'][i]:.2f} R²={fits['r2'][i]:.2f}"
        ax.set_title(head, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("time step (frame)", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_weight_matrices(matrices: dict, sizes=None, lim: float | None = None):
    """Recurrent matrices side by side (``matshow``, cmap seismic, one shared colour bar; Figs 4-5 docs §5).

    Args:
        matrices: ``{title: (N, N) W[post, pre]}`` in index order.
        sizes: units per population (draws the area-layer boundaries).
        lim: colour limits ``+-lim`` (default ``1.5 / sqrt(N)``, i.e. 0.04 for N = 1440 as published).

    Returns:
        The figure.
    """
    mats = {k: np.asarray(v) for k, v in matrices.items()}
    N = next(iter(mats.values())).shape[0]
    lim = 1.5 / np.sqrt(N) if lim is None else lim
    table = populations(sizes)
    edges = table["stop"].to_numpy()[2::3][:-1]
    fig, axes = plt.subplots(1, len(mats), figsize=(5 * len(mats) + 1, 5.4), constrained_layout=True)
    axes = np.atleast_1d(axes)
    for ax, (title, W) in zip(axes, mats.items()):
        im = ax.matshow(W, cmap="seismic", vmin=-lim, vmax=lim)
        for e in edges:
            ax.axhline(e - 0.5, color="k", lw=0.3)
            ax.axvline(e - 0.5, color="k", lw=0.3)
        ax.set_title(title)
        ax.set_xlabel("presynaptic unit")
        ax.set_ylabel("postsynaptic unit")
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="weight")
    return fig


def plot_block_heatmap(values, title: str = "", dispersion: str = "cv", ax=None, cmap: str = "binary"):
    """Scatter heat map of an 18 x 18 block statistic over seeds (published order L2/3, L4, L5).

    Marker colour = mean over seeds; marker size = dispersion over seeds, ``std / |mean|`` (coefficient of variation,
    Q12, fig4-5-celltype-rnn.md). Blocks whose mean is exactly 0 (pruned away, or absent pathways) are left blank.

    Args:
        values: ``(S, 18, 18)`` ``[post, pre]`` per-seed block values (e.g. mean ``|W|``), index order.
        title: axes title.
        dispersion: ``"cv"`` (std / |mean|) or ``"std"``.
        ax: axes to draw in.
        cmap: colour map of the mean.

    Returns:
        The figure.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[None] if v.ndim == 2 else v
    o = display_order()
    v = v[:, o][:, :, o]
    mean = v.mean(0)
    sd = v.std(0, ddof=1) if v.shape[0] > 1 else np.zeros_like(mean)
    with np.errstate(invalid="ignore", divide="ignore"):
        disp = sd / np.abs(mean) if dispersion == "cv" else sd
    if ax is None:
        _, ax = plt.subplots(figsize=(7.6, 6.6))
    post, pre = np.nonzero(mean != 0)
    d = np.nan_to_num(disp[post, pre])
    dmax = d.max() if d.size and d.max() > 0 else 1.0
    sc = ax.scatter(pre, post, c=mean[post, pre], s=25 + 250 * d / dmax, cmap=cmap, edgecolors="0.7", vmin=0)
    labels = [_pretty(POPULATION_LABELS[i]) for i in o]
    ax.set_xticks(range(18), labels, rotation=70, fontsize=7)
    ax.set_yticks(range(18), labels, fontsize=7)
    ax.set_xlim(-0.7, 17.7)
    ax.set_ylim(17.7, -0.7)
    ax.set(xlabel="source (pre)", ylabel="target (post)", title=title)
    ax.figure.colorbar(sc, ax=ax, fraction=0.046, label="mean over seeds")
    for q in (0.25, 1.0):
        ax.scatter([], [], s=25 + 250 * q, facecolors="none", edgecolors="0.5",
                   label=f"{'CV' if dispersion == 'cv' else 'SD'} = {q * dmax:.2g}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.25, 1.0), fontsize=7, labelspacing=1.5)
    return ax.figure


def plot_density_vs_table(target, realised: dict, ax=None):
    """Realised block densities against the table's targets (one point per nonzero block, mean ± SD over seeds).

    Args:
        target: ``(18, 18)`` target densities.
        realised: ``{label: (S, 18, 18)}`` realised densities of one or more pruning rules.
        ax: axes to draw in.

    Returns:
        The figure.
    """
    target = np.asarray(target)
    nz = target > 0
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 5))
    markers = ["o", "s", "^"]
    for (label, r), m in zip(realised.items(), markers):
        r = np.asarray(r)
        ax.errorbar(target[nz], r.mean(0)[nz], yerr=r.std(0)[nz], fmt=m, ms=4, alpha=0.7, capsize=1.5, label=label)
    top = max(float(target.max()), max(float(np.asarray(r).max()) for r in realised.values())) * 1.05
    ax.plot([0, top], [0, top], color="k", lw=0.8, label="table")
    ax.set(xlabel="table density (target)", ylabel="realised density after pruning", xlim=(0, top), ylim=(0, top),
           title="Block densities (nonzero blocks)")
    ax.legend(fontsize=8)
    return ax.figure


def plot_identifiability(ground_truth, block_means, title: str = "", ax=None):
    """Fitted block means (mean ± SD over seeds) against the ground-truth population connectivity (twin data).

    Args:
        ground_truth: ``(18, 18)`` ``[post, pre]``, or None (real data: the axes say that there is no ground truth).
        block_means: ``(S, 18, 18)`` fitted block means (zeros included).
        title: axes title.
        ax: axes to draw in.

    Returns:
        The figure (colour = presynaptic cell type; only blocks with nonzero ground truth).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5.6, 4.6))
    if ground_truth is None:
        ax.text(0.5, 0.5, "no ground truth (real data)", ha="center", va="center", transform=ax.transAxes)
        ax.set(title=title, xticks=[], yticks=[])
        return ax.figure
    gt = np.asarray(ground_truth)
    bm = np.asarray(block_means)
    pre_type = np.array([lab.split("_")[2] for lab in POPULATION_LABELS])
    for cell_type, color in CELLTYPE_COLORS.items():
        sel = (gt != 0) & (pre_type[None, :] == cell_type)
        ax.errorbar(gt[sel], bm.mean(0)[sel], yerr=bm.std(0)[sel], fmt="o", ms=4, color=color, capsize=1.5,
                    alpha=0.8, label=f"pre {cell_type}")
    ax.axhline(0, color="k", lw=0.5)
    ax.axvline(0, color="k", lw=0.5)
    ax.set(xlabel="ground-truth coupling W[post, pre]", ylabel="fitted block mean of W_rec", title=title)
    ax.legend(fontsize=8)
    return ax.figure


def plot_condition_fits(table, threshold: float = 0.9, ax=None):
    """Held-out median r per seed for every cached condition and window (:func:`biornn.celltype.condition_fits`).

    Args:
        table: the DataFrame of :func:`biornn.celltype.condition_fits`.
        threshold: a dashed line at the bar.
        ax: axes to draw in.

    Returns:
        The figure: one dot per seed, full window filled and half window open, the bar dashed, and beside each
        window's dots (solid full, dotted half) the held-out median r of the reference predictors the table has:
        the per-step linear history predictor (green), the held-out set's own average trace (orange, an oracle) and
        the training samples' average trace (purple); all six conditions on the x axis (one without a cached run is
        an empty column).
    """
    created = ax is None
    if created:
        _, ax = plt.subplots(figsize=(8.6, 3.8))
    order = ["FC", "FN", "FO", "NC", "NN", "NO"]  # every condition on the axis: a missing one shows as a gap
    for window, offset, face in (("full", -0.12, None), ("half", 0.12, "none")):
        sub = table[table["window"] == window]
        if sub.empty:
            continue
        xs = np.array([order.index(c) for c in sub["condition"]], dtype=float) + offset
        ax.scatter(xs, sub["median_r"], s=22, color="k", facecolors=face if face else "k", label=f"{window} window")
    # reference predictors (data only, :func:`biornn.celltype.baselines`), each window's beside its own dots: solid
    # for the full window, dotted for the half window

    for key, color in (("linear_history", "tab:green"), ("time_mean", "tab:orange"), ("train_mean", "tab:purple")):
        column, name = f"{key}_r", REFERENCE_NAMES[key]
        if column not in table:
            continue
        for window, offset, style in (("full", -0.12, "-"), ("half", 0.12, ":")):
            level = table[table["window"] == window].groupby("condition")[column].first()
            labelled = False
            for i, c in enumerate(order):
                if c in level and np.isfinite(level[c]):
                    ax.plot([i + offset - 0.14, i + offset + 0.14], [level[c]] * 2, color=color, lw=2,
                            ls=style, label=None if labelled else f"{name} ({window})")
                    labelled = True
    ax.axhline(threshold, color="grey", ls="--", lw=1, label=f"bar {threshold}")
    ax.set_xticks(range(len(order)), order)
    ax.set_xlim(-0.5, len(order) - 0.5)
    ax.set(xlabel="condition", ylabel="held-out median r (sparse model)", title="Fits per condition and seed")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if created:
        ax.figure.tight_layout()  # room for the legend outside the axes
    return ax.figure


def plot_celltype_mask(density, mask, signs, population, labels):
    """Tour, step 3: the published block connection probabilities beside one unit-level mask drawn from them.

    Args:
        density: (P, P) connection probability per [post, pre] population block.
        mask: (N, N) boolean unit-level mask, [post, pre].
        signs: (N,) +1 excitatory / -1 inhibitory per unit.
        population: (N,) population index per unit (contiguous blocks).
        labels: the P population names.

    Returns:
        The figure (two panels).
    """
    density, mask, signs = np.asarray(density), np.asarray(mask), np.asarray(signs)
    n_pop = len(labels)
    fig, axes = plt.subplots(1, 2, figsize=(14, 6.2))
    im = axes[0].imshow(density, cmap="Greys", vmin=0, vmax=density.max())
    axes[0].set(xticks=range(n_pop), yticks=range(n_pop), title="Published connection probabilities [post, pre]",
                xlabel="presynaptic population", ylabel="postsynaptic population")
    axes[0].set_xticklabels(labels, rotation=90, fontsize=7)
    axes[0].set_yticklabels(labels, fontsize=7)
    fig.colorbar(im, ax=axes[0], shrink=0.7, label="probability")
    axes[1].imshow(mask * signs[None, :], cmap="bwr_r", vmin=-1.5, vmax=1.5, interpolation="nearest")
    for b in np.flatnonzero(np.diff(np.asarray(population))) + 0.5:
        axes[1].axhline(b, color="0.85", lw=0.4)
        axes[1].axvline(b, color="0.85", lw=0.4)
    axes[1].set(title="Unit-level mask (blue: excitatory synapse, red: inhibitory)", xlabel="presynaptic unit",
                ylabel="postsynaptic unit")
    return fig
