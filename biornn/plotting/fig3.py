"""Figure 3 (top-prob pruning): sweeps, retraining, spanning-tree overlap, kept weights, the reference's bars, paired
log ratios, and the tour's pruning panels.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from biornn.plotting.style import (
    PRUNING_STYLE,
    band_plot,
    kde_on_grid,
)
from biornn.pruning.probabilities import random_probabilities, topprob_probabilities


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
        aggs: ``{task_label: dict of biornn.stats.significance.reference_aggregation}``.
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


def plot_keep_probabilities(W, levels, xlabel: str = "|w|"):
    """Keep probability of every entry of one matrix against its magnitude, top-prob and random, at a few levels.

    Args:
        W: ``(N, N)`` weights (a torch tensor or an array).
        levels: connection probabilities ``p``; one line style per level (solid, dashed, dotted, dash-dot).
        xlabel: x-axis label (say which matrix it is).

    Returns:
        The figure.
    """
    W = torch.as_tensor(np.asarray(W, dtype=np.float64))
    order = torch.argsort(W.abs().ravel())
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for p, ls in zip(levels, ("-", "--", ":", "-.")):
        for method, P in (("topprob", topprob_probabilities(W, p)), ("random", random_probabilities(W, p))):
            ax.plot(W.abs().ravel()[order], P.ravel()[order], ls, color=PRUNING_STYLE[method]["color"],
                    label=f"{PRUNING_STYLE[method]['label']}, p = {p:.3f}")
    ax.set(xlabel=xlabel, ylabel="Keep probability")
    ax.legend(fontsize=8, loc="center right")
    return fig


def plot_wave_candidates(table, reference_ratio: float | None = None):
    """Forest plot of the wave candidates: mid-range log(top-prob / random) per candidate, 95 % t interval.

    Args:
        table: :func:`biornn.experiments.fig3.wave_candidates.candidate_table` (one row per candidate, ``default``
        first).
        reference_ratio: the same quantity on the reference's stored arrays (drawn as a vertical line), or None.

    Returns:
        The figure. Left of 0: top-prob better than random at p = 0.31-0.70.
    """
    y = np.arange(len(table))[::-1]
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(table) + 1.2))
    err = [table.log_ratio - table.ci_low, table.ci_high - table.log_ratio]
    ax.errorbar(table.log_ratio, y, xerr=err, fmt="o", color=PRUNING_STYLE["topprob"]["color"], capsize=3)
    ax.axvline(0, color="k", lw=0.8)
    if reference_ratio is not None:
        ax.axvline(reference_ratio, color="grey", ls="--", label="reference's arrays (5 runs)")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_yticks(y, [f"{c} ({w})" for c, w in zip(table.candidate, table.wins_039)])
    ax.set(xlabel="mean log(top-prob / random), p = 0.31-0.70  (< 0: top-prob better)")
    return fig


def plot_wave_lead(lead: dict):
    """Early learning speed against pruning robustness, one point per wave network
    (:func:`biornn.experiments.fig3.wave_lead`).

    Args:
        lead: the dict of :func:`biornn.experiments.fig3.wave_lead.wave_lead`: ``early_loss`` and ``log_ratio``
        ``(n,)``, the
            Spearman ``rho_log_ratio`` and ``p_log_ratio``, ``epoch``, ``seeds``.

    Returns:
        The figure (log x axis: held-out MSE per element at the early epoch; y: mid-range mean log error ratio).
    """
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    x, y = np.asarray(lead["early_loss"]), np.asarray(lead["log_ratio"])
    ax.scatter(x, y, color=PRUNING_STYLE["topprob"]["color"], s=24)
    for s, xi, yi in zip(lead["seeds"], x, y):
        ax.annotate(str(s), (xi, yi), fontsize=6, xytext=(2, 2), textcoords="offset points")
    ax.axhline(0, color="grey", lw=0.6, ls="--")
    ax.set_xscale("log")
    ax.set(xlabel=f"Held-out MSE per element after epoch {lead['epoch']}",
           ylabel="mean log(top-prob / random), p = 0.31-0.70",
           title=f"Wave, {lead['n']} Dale's networks: Spearman rho = {lead['rho_log_ratio']:+.2f} "
                 f"(p = {lead['p_log_ratio']:.2g}, descriptive)")
    fig.tight_layout()
    return fig
