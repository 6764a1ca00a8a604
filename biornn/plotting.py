"""One figure style and one figure writer for every notebook.

* :func:`save_figure` writes ``figures/<name>.png`` and ``figures/<name>.pdf`` (set ``BIORNN_FIGURES`` to write
  elsewhere, e.g. in tests).
* :data:`METHOD_STYLE` holds the paper's colours: conventional black, Dale's cornflower blue with triangles,
  rectified salmon with circles (fig2-dales-backprop.md §7); the Song-style rectified fix is sienna with squares.
* :data:`PRUNING_STYLE`: random grey, top-prob green (docs/paper/fig3-topprob-pruning.md, section 7).
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

    In quick mode a small grey note in the corner says so, so a quick figure never passes for a paper one.

    Files are written to a temporary name and renamed, so an interrupted save never leaves half a file.
    """
    from biornn.config import get_mode

    out = figures_dir()
    out.mkdir(parents=True, exist_ok=True)
    if get_mode() == "quick" and not getattr(fig, "_biornn_marked", False):
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


def plot_fig2_curves(runs: dict, rules, task: str, key: str, ylabel: str, log: bool = False, clip: bool = True):
    """One Figure 2 learning-curve panel: ``key`` per epoch for every rule.

    Bold line = mean over seeds; on a linear axis the band is the std over seeds (as the paper), on a log axis each
    seed is drawn as a thin line instead.

    Args:
        runs: ``{(task, rule): run}`` as returned by :func:`biornn.results.fig2_runs`.
        rules: the rules to draw, in legend order.
        task: which task.
        key: per-epoch metric (``test_loss``, ``train_loss``, ``test_accuracy``).
        ylabel: axis label (state the convention, e.g. "Test MSE per element").
        log: logarithmic y axis.
        clip: clip the band's lower edge at 0.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for rule in rules:
        curves = runs[(task, rule)].curve(key)
        band_plot(ax, np.arange(1, curves.shape[1] + 1), curves, METHOD_STYLE[rule], clip_zero=clip,
                  band="runs" if log else "std", markevery=max(1, curves.shape[1] // 10))
    ax.set(xlabel="Epoch", ylabel=ylabel, title=runs[(task, rules[0])].data_label)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    return fig


def plot_weight_kdes(runs: dict, rules, task: str, max_points: int = 20000):
    """Initial and final recurrent-weight densities of every rule, pooled over seeds, on one common grid.

    Each pooled sample is thinned to at most ``max_points`` values (every k-th) before the KDE.
    """
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for ax, key, title in zip(axes, ("W_init", "W_final"), ("Initialization weights", "Final weights")):
        pooled = {rule: np.asarray(runs[(task, rule)].weights[key]).ravel() for rule in rules}
        lo, hi = np.percentile(np.concatenate(list(pooled.values())), [0.1, 99.9])
        grid = np.linspace(lo, hi, 400)
        for rule in rules:
            sample = pooled[rule][:: max(1, pooled[rule].size // max_points)]
            ax.plot(grid, kde_on_grid(sample, grid), color=METHOD_STYLE[rule]["color"],
                    label=METHOD_STYLE[rule]["label"])
        ax.set(title=f"{runs[(task, rules[0])].data_label}: {title}", xlabel="Weight", ylabel="Density")
    axes[1].legend(fontsize=7)
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Figure 3: pruning
# ----------------------------------------------------------------------------------------------------------------
def _log_floor(ax, values) -> None:
    """Set a log y axis whose lower limit sits below the smallest positive value of ``values``."""
    v = np.concatenate([np.ravel(np.asarray(x, dtype=float)) for x in values])
    v = v[np.isfinite(v) & (v > 0)]
    ax.set_yscale("log", nonpositive="clip")
    if v.size:
        ax.set_ylim(bottom=v.min() / 3)


def plot_pruning_sweep(panels: dict, ylabel: str, log: bool = True, dense: dict | None = None,
                       xlabel: str = "Connection probability p"):
    """Error of pruned networks against the connection probability, one panel per task (Fig 3, per-task curves).

    Each method's curve is the mean over seeds (mask draws averaged within a seed first) with a shaded 95 %
    t-interval (n - 1 df); on a log axis, interval edges below 0 are cut at the axis.

    Args:
        panels: ``{title: (levels, {method: errors})}`` with ``levels`` ``(L,)`` and ``errors`` ``(S, L)`` or
            ``(S, L, K)`` per method (``random``, ``topprob``).
        ylabel: axis label (state the metric).
        log: logarithmic y axis.
        dense: optional ``{title: (S,) errors of the unpruned networks}``, drawn as a dashed black line.
        xlabel: x-axis label.

    Returns:
        The figure (``1 x len(panels)`` axes).
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    for ax, (title, (levels, errors)) in zip(axes[0], panels.items()):
        means = []
        for method, err in errors.items():
            err = np.asarray(err, dtype=float)
            err = err.mean(axis=2) if err.ndim == 3 else err
            band_plot(ax, levels, err, PRUNING_STYLE[method], band="ci95")
            means.append(err.mean(0))
        if dense is not None and title in dense:
            ax.axhline(np.mean(dense[title]), color="k", ls="--", lw=1, label="Dense (unpruned)")
        if log:
            _log_floor(ax, means)
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        ax.title.set_fontsize(9)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_retraining(panels: dict, ylabel: str = "Held-out loss", log: bool = True):
    """Held-out loss during masked retraining, one panel per task (mean over seeds, shaded 95 % t-interval).

    Args:
        panels: ``{title: ({method: (S, E + 1) curves}, dense (S,))}``; column 0 of each curve is the pruned network
            before retraining; ``dense`` (the unpruned networks' held-out loss) is the dashed "original" line.
        ylabel: axis label.
        log: logarithmic y axis.

    Returns:
        The figure.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    for ax, (title, (curves, dense)) in zip(axes[0], panels.items()):
        means = []
        for method, c in curves.items():
            c = np.asarray(c, dtype=float)
            band_plot(ax, np.arange(c.shape[1]), c, PRUNING_STYLE[method], band="ci95",
                      markevery=max(1, c.shape[1] // 10))
            means.append(c.mean(0))
        ax.axhline(np.mean(dense), color="k", ls="--", lw=1, label="Original (dense) loss")
        means.append(np.atleast_1d(np.mean(dense)))
        if log:
            _log_floor(ax, means)
        ax.set(title=title, xlabel="Retraining epoch (0 = at pruning)", ylabel=ylabel)
        ax.title.set_fontsize(9)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_mst_overlap(curves: dict, reference: dict | None = None):
    """Fig 3 panel A: fraction of the maximum spanning tree kept by each pruning method, against sparsity.

    Empirical curves: mean ± SD over sizes, matrices and draws (top-prob green, random grey). Theory (black): the
    exact expected overlap of top-prob (mean over sizes and matrices; random's expectation is ``1 - s``), the
    corrected lower bound (dotted) and, marked "as published", the reference's LB_ref on one ``N = 10`` matrix
    (open circles; not a bound, docs/paper/fig3-topprob-pruning.md 6.3).

    Args:
        curves: the dict of :func:`biornn.pruning.mst_overlap_curves`.
        reference: optional ``data/reference/fig3.json`` ``mst_overlap`` entry; its empirical top-prob curve (read
            off the reference's figure) is drawn as green open diamonds.

    Returns:
        The figure.
    """
    s = np.asarray(curves["sparsities"])
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for method, fmt in (("topprob", "-o"), ("random", "-x")):
        e = np.asarray(curves["empirical"][method])
        flat = e.transpose(3, 0, 1, 2).reshape(s.size, -1)
        st = PRUNING_STYLE[method]
        ax.errorbar(s, flat.mean(1), yerr=flat.std(1), fmt=fmt, color=st["color"], ms=4, capsize=2,
                     label=f"{st['label'].split()[0]} empirical (N = {', '.join(map(str, curves['sizes']))})")
    ax.plot(s, np.asarray(curves["expected"]["topprob"]).mean((0, 1)), color="k", lw=1.2,
            label="Top-prob exact expectation")
    ax.plot(s, np.asarray(curves["expected"]["random"]).mean((0, 1)), "x", color="k", ms=5,
            label="Random expectation (1 - s)")
    ax.plot(s, np.asarray(curves["bound"]).mean((0, 1)), ":", color="k", label="Corrected lower bound (§6.4)")
    ax.plot(s, curves["reference_bound"], "o", mfc="none", color="k", ms=5,
            label="'Top-prob lower bound' (as published)")
    if reference is not None:
        ax.plot(reference["sparsities"], reference["empirical_topprob"], "d", mfc="none", color="g", ms=5,
                label="Top-prob empirical, reference figure")
    ax.set(xlabel="Sparsity", ylabel="Fraction overlap", title="Overlap with MST")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    return fig


def plot_kept_weights(W, masks: dict, title: str, points: int = 400):
    """Fig 3 panel B: density of the relative magnitudes of the non-zero weights before and after pruning.

    Magnitudes are ``|w| / max |w|`` per matrix; the KDE (Scott's bandwidth) is evaluated on ``[0, 1]`` only.

    Args:
        W: ``(N, N)`` or ``(S, N, N)`` weights before pruning.
        masks: ``{method: Boolean mask of W's shape}``.
        title: panel title.
        points: grid size.

    Returns:
        The figure.
    """
    W = np.abs(np.asarray(W, dtype=np.float64))
    W = W[None] if W.ndim == 2 else W
    rel = W / W.max(axis=(1, 2), keepdims=True)
    grid = np.linspace(0, 1, points)
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.plot(grid, kde_on_grid(rel[rel > 0], grid), color="k", label="Original matrix")
    for method, mask in masks.items():
        m = np.asarray(mask, dtype=bool).reshape(rel.shape)
        kept = rel[m & (rel > 0)]
        ax.plot(grid, kde_on_grid(kept, grid), color=PRUNING_STYLE[method]["color"],
                label=f"Sparse - {PRUNING_STYLE[method]['label'].split()[0]}")
    ax.set(xlabel="Relative magnitude of weights", ylabel="Density", title=title, xlim=(0, 1))
    ax.legend(fontsize=8)
    return fig


def plot_reference_bars(aggs: dict, title: str = "Errors of pruned models at initialization (as published)"):
    """Fig 3 panel C as published: grouped bars per task with the reference's aggregation (flawed; Fig 3 docs §9.1).

    Bar = maximum over runs of the per-run mean over all levels; error bar = 1.96 x SEM of all runs x levels pooled;
    label '*'/'ns' from the minimum uncorrected per-level Mann-Whitney p, centred at ``max(bar + err) + 0.1``.

    Args:
        aggs: ``{task_label: dict of biornn.stats.reference_aggregation}``.
        title: axes title.

    Returns:
        The figure.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    x = np.arange(len(aggs))
    for off, method, label in ((0.0, "random", "Random Pruning"), (0.25, "topprob", "Top-prob Pruning")):
        ax.bar(x + off, [a[f"bar_{method}"] for a in aggs.values()], 0.25,
               yerr=[a[f"err_{method}"] for a in aggs.values()], capsize=2,
               color=PRUNING_STYLE[method]["color"], label=label)
    for i, a in enumerate(aggs.values()):
        top = max(a["bar_random"] + a["err_random"], a["bar_topprob"] + a["err_topprob"])
        ax.text(i + 0.125, top + 0.1, a["label"], ha="center")
    ax.set_xticks(x + 0.125, list(aggs), fontsize=8)
    ax.set(xlabel="Tasks", ylabel="Errors", title=title)
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    return fig


def plot_paired_log_ratio(panels: dict, holm_p: dict | None = None, alpha: float = 0.05):
    """Per-level paired effect: ``log10(random error / top-prob error)`` per seed, mean with its 95 % t-interval.

    Above 0 top-prob is better. This is the statistic of the paired t-test on log errors; levels whose
    Holm-adjusted p is below ``alpha`` are drawn as filled markers.

    Args:
        panels: ``{title: (levels, errors_random, errors_topprob)}``, errors ``(S, L)`` or ``(S, L, K)``; levels with
            ``p`` = 0 or 1 are left out (identical by construction).
        holm_p: optional ``{title: (L,) Holm-adjusted p-values}`` (NaN at the end levels).
        alpha: significance threshold for the filled markers.

    Returns:
        The figure.
    """
    from scipy import stats as st

    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    for ax, (title, (levels, R, T)) in zip(axes[0], panels.items()):
        R, T = np.asarray(R, dtype=float), np.asarray(T, dtype=float)
        R, T = (R.mean(axis=2), T.mean(axis=2)) if R.ndim == 3 else (R, T)
        lv = np.asarray(levels, dtype=float)
        inner = (lv > 0) & (lv < 1)
        d = np.log10(R[:, inner]) - np.log10(T[:, inner])
        n = d.shape[0]
        mean = d.mean(0)
        half = st.t.ppf(0.975, n - 1) * d.std(0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(mean)
        ax.axhline(0, color="k", lw=0.8)
        ax.errorbar(lv[inner], mean, yerr=half, fmt="none", ecolor="g", capsize=2)
        sig = np.zeros(inner.sum(), dtype=bool)
        if holm_p is not None and title in holm_p:
            sig = np.asarray(holm_p[title], dtype=float)[inner] < alpha
        ax.plot(lv[inner][sig], mean[sig], "o", color="g", ms=5, label=f"Holm p < {alpha}")
        ax.plot(lv[inner][~sig], mean[~sig], "o", color="g", mfc="white", ms=5, label="not significant")
        ax.set(title=title, xlabel="Connection probability p", ylabel="log10(random / top-prob error)")
        ax.title.set_fontsize(9)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Figure 5: connectivity differences between conditions
# ----------------------------------------------------------------------------------------------------------------
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
    import matplotlib as mpl

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
    import matplotlib as mpl
    from matplotlib.patches import Arc, FancyArrowPatch

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
        table: :func:`biornn.analysis.pathway_table` output.
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


# ----------------------------------------------------------------------------------------------------------------
# Figure 4: the cell-type constrained RNN
# ----------------------------------------------------------------------------------------------------------------
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
        density: ``(18, 18)`` ``[post, pre]`` target densities (default :func:`biornn.connectivity.block_density`).
        ax: axes to draw in.
        min_probability: hide within-area connections below this probability.

    Returns:
        The figure.
    """
    from matplotlib.patches import FancyArrowPatch

    from biornn.connectivity import AREAS, DISPLAY_LAYERS, POPULATION_LABELS, TYPES, block_density, pathway_blocks

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
    from biornn.connectivity import POPULATION_LABELS, display_order

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
    from biornn.connectivity import populations

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
    from biornn.connectivity import POPULATION_LABELS, display_order

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
        ground_truth: ``(18, 18)`` ``[post, pre]``.
        block_means: ``(S, 18, 18)`` fitted block means (zeros included).
        title: axes title.
        ax: axes to draw in.

    Returns:
        The figure (colour = presynaptic cell type; only blocks with nonzero ground truth).
    """
    from biornn.connectivity import POPULATION_LABELS

    gt = np.asarray(ground_truth)
    bm = np.asarray(block_means)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.6, 4.6))
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
    from biornn.celltype import REFERENCE_NAMES

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


# ----------------------------------------------------------------------------------------------------------------------
# Teaching notebooks (00 tour, 01 Fig 2): the plumbing of their multi-panel figures
# ----------------------------------------------------------------------------------------------------------------------


def plot_tour_dales_law(runs: dict, wrong_sign: dict, chance: float):
    """Tour, step 1: wrong-sign share per Adam step, test error per epoch, final excitatory weights.

    Args:
        runs: method -> stored run (``curve("test_loss")`` of shape (seeds, epochs), ``weights["W_final"]`` of shape
            (seeds, N, N) and ``weights["signs"]`` of shape (N,)).
        wrong_sign: method -> share of wrong-sign synapses after every optimiser step.
        chance: the task's chance-level test error (a dotted line).

    Returns:
        The figure (three panels).
    """
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for method, run in runs.items():
        style = METHOD_STYLE[method]
        axes[0].plot(100 * np.asarray(wrong_sign[method]), color=style["color"], label=style["label"])
        loss = run.curve("test_loss")
        epochs = np.arange(1, loss.shape[1] + 1)
        axes[1].plot(epochs, loss.mean(0), color=style["color"], label=style["label"])
        axes[1].fill_between(epochs, loss.min(0), loss.max(0), color=style["color"], alpha=0.15)
        W, s = np.asarray(run.weights["W_final"]), np.asarray(run.weights["signs"])
        axes[2].hist(W[:, :, s > 0].ravel(), bins=np.linspace(-0.6, 0.6, 121), histtype="step", color=style["color"],
                     label=style["label"], density=True)
    axes[1].axhline(chance, color="grey", ls=":", label="chance")
    axes[2].axvspan(-0.6, 0, color="red", alpha=0.06)
    axes[0].set(xlabel="Adam step", ylabel="wrong-sign synapses (%)", title="Signs during training")
    axes[1].set(xlabel="epoch", ylabel="test MSE per element", title="Flip-flop test error (band: min-max over seeds)")
    axes[2].set(xlabel="final weight, excitatory columns", ylabel="density", title="Excitatory neurons' outputs",
                yscale="log")
    axes[0].legend()
    axes[1].legend()
    return fig


def plot_tour_pruning(w_abs, probabilities: dict, errors: dict, dense_loss, density: float, chance: float):
    """Tour, step 2: keep probability against |w| (one network), and each network's error after pruning.

    Args:
        w_abs: |w| of one network's synapses, flattened.
        probabilities: pruning method -> keep probability of each of those synapses (same order).
        errors: pruning method -> test error per network (seed) at ``density``.
        dense_loss: test error per network before pruning.
        density: the kept fraction of synapses.
        chance: the task's chance-level test error.

    Returns:
        The figure (two panels).
    """
    w_abs = np.asarray(w_abs).ravel()
    order = np.argsort(w_abs)
    seeds = np.arange(len(dense_loss))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for method, probs in probabilities.items():
        style = PRUNING_STYLE[method]
        axes[0].plot(w_abs[order], np.asarray(probs).ravel()[order], color=style["color"], label=style["label"])
        axes[1].plot(seeds, errors[method], color=style["color"], marker=style["marker"], ls="none", ms=8,
                     label=style["label"])
    axes[1].plot(seeds, dense_loss, "k_", ms=14, label="dense (unpruned)")
    axes[1].axhline(chance, color="grey", ls=":", label="chance")
    axes[0].set(xlabel="|w| (seed 0; zeros from Dale's projection are never kept)", ylabel="keep probability",
                title=f"Keep probabilities at p = {density}")
    axes[1].set(xlabel="network (seed)", ylabel="test MSE per element", xticks=seeds,
                title=f"Pruned to p = {density}, no retraining")
    axes[0].legend()
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


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


def plot_kl_bars(kl: dict, tasks, rules, task_labels, variant: str = "aligned"):
    """Fig 2: KL(conventional || rule) per task as grouped bars (error bars = std over the seed pairs).

    Args:
        kl: (task, rule, variant) -> array of divergences, one per (conventional seed, rule seed) pair.
        tasks: the tasks (bar groups).
        rules: the rules compared with conventional backprop (one bar each per group).
        task_labels: x tick label per task (e.g. the dataset label).
        variant: which binning to show (``"aligned"`` or ``"as published"``).

    Returns:
        The figure.
    """
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(rules)
    for i, rule in enumerate(rules):
        means = [np.mean(kl[(task, rule, variant)]) for task in tasks]
        stds = [np.std(kl[(task, rule, variant)]) for task in tasks]
        ax.bar(np.arange(len(tasks)) + i * width, means, width, yerr=stds, capsize=3,
               color=METHOD_STYLE[rule]["color"], label=METHOD_STYLE[rule]["label"])
    ax.set_xticks(np.arange(len(tasks)) + width * (len(rules) - 1) / 2, list(task_labels), fontsize=8)
    ax.set(ylabel="KL(conventional || rule), nats", title="Divergence from conventional backprop (final weights)")
    ax.legend(fontsize=8)
    return fig


def plot_mean_weight_matrices(matrices: dict, lim: float = 0.2):
    """Fig 2: one mean recurrent weight matrix per learning rule, side by side on one colour scale.

    Args:
        matrices: rule -> (N, N) mean final ``W_hh`` [post, pre].
        lim: the colour scale runs from -lim to +lim.

    Returns:
        The figure.
    """
    fig, axes = plt.subplots(1, len(matrices), figsize=(4 * len(matrices), 4.2))
    axes = np.atleast_1d(axes)
    for ax, (rule, mean_w) in zip(axes, matrices.items()):
        im = ax.imshow(mean_w, cmap="bwr", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set(title=METHOD_STYLE[rule]["label"], xlabel="presynaptic", ylabel="postsynaptic" if ax is axes[0] else "")
        ax.title.set_fontsize(9)
    fig.colorbar(im, ax=list(axes), shrink=0.8)
    return fig
