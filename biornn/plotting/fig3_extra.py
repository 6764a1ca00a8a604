"""Figure 3, extra panels for the notebook: the keep probabilities of top-prob and random pruning against |w|."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from biornn.plotting.style import PRUNING_STYLE
from biornn.pruning import random_probabilities, topprob_probabilities


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
        table: :func:`biornn.fig3.wave_candidates.candidate_table` (one row per candidate, ``default`` first).
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
    """Early learning speed against pruning robustness, one point per wave network (:func:`biornn.fig3.wave_lead`).

    Args:
        lead: the dict of :func:`biornn.fig3.wave_lead.wave_lead`: ``early_loss`` and ``log_ratio`` ``(n,)``, the
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
