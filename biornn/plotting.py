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


def kde_on_grid(values, grid) -> np.ndarray:
    """Gaussian KDE (Scott's bandwidth, as seaborn's default) of ``values`` evaluated on a common ``grid``.

    Evaluating every run on one grid is the fix for the reference's averaging of curves by grid index (spec Q12).
    """
    from scipy.stats import gaussian_kde

    values = np.asarray(values, dtype=np.float64).ravel()
    if np.ptp(values) == 0:
        return np.where(np.isclose(grid, values[0]), np.inf, 0.0)
    return gaussian_kde(values, bw_method="scott")(grid)


def plot_fig2_curves(runs: dict, rules, task: str, key: str, ylabel: str, log: bool = False, clip: bool = True):
    """One Figure 2 learning-curve panel: ``key`` per epoch for every rule (mean, band = std over seeds).

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
                  markevery=max(1, curves.shape[1] // 10))
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
    (open circles; not a bound, spec 6.3).

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
    ax.plot(s, np.asarray(curves["bound"]).mean((0, 1)), ":", color="k", label="Corrected lower bound (spec 6.4)")
    ax.plot(s, curves["reference_bound"], "o", mfc="none", color="k", ms=5,
            label="'Top-prob lower bound' (as published)")
    if reference is not None:
        ax.plot(reference["sparsities"], reference["empirical_topprob"], "d", mfc="none", color="g", ms=5,
                label="Top-prob empirical, reference figure")
    ax.set(xlabel="Sparsity", ylabel="Fraction overlap", title="Overlap with MST")
    ax.legend(fontsize=7)
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
    """Fig 3 panel C as published: grouped bars per task with the reference's aggregation (flawed; spec 9.1).

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
