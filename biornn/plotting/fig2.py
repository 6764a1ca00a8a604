"""Figure 2 (Dale's backpropagation): learning curves, weight distributions, KL bars, mean weight matrices, and the
tour's Dale's-law panels.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from biornn.plotting.style import (
    METHOD_STYLE,
    band_plot,
    kde_on_grid,
)


def plot_fig2_curves(runs: dict, rules, task: str, key: str, ylabel: str, log: bool = False, clip: bool = True):
    """One Figure 2 learning-curve panel: ``key`` per epoch for every rule.

    Bold line = mean over seeds; on a linear axis the band is the std over seeds (as the paper), on a log axis each
    seed is drawn as a thin line instead.

    Args:
        runs: ``{(task, rule): run}`` as returned by :func:`biornn.experiments.fig2.fig2_runs`.
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


def plot_init_spectra(matrices: dict, unit_circle: bool = True):
    """Eigenvalues of initial recurrent matrices in the complex plane, one panel per initialisation.

    Args:
        matrices: ``{label: W}`` with ``W`` ``(N, N)`` or ``(S, N, N)`` (all seeds' eigenvalues are pooled).
        unit_circle: draw ``|lambda| = 1`` for orientation (the edge of linear stability of ``W r``).

    Returns:
        The figure; each panel's title gives the largest ``|lambda|`` (the spectral radius, max over seeds).
    """
    fig, axes = plt.subplots(1, len(matrices), figsize=(4.6 * len(matrices), 4.2), squeeze=False)
    for ax, (label, W) in zip(axes[0], matrices.items()):
        W = np.asarray(W, dtype=np.float64)
        W = W[None] if W.ndim == 2 else W
        ev = np.concatenate([np.linalg.eigvals(w) for w in W])
        ax.scatter(ev.real, ev.imag, s=6, alpha=0.5, color="cornflowerblue", edgecolors="none")
        if unit_circle:
            t = np.linspace(0, 2 * np.pi, 200)
            ax.plot(np.cos(t), np.sin(t), color="grey", lw=0.6, ls="--")
        ax.axhline(0, color="black", lw=0.4)
        ax.axvline(0, color="black", lw=0.4)
        ax.set(xlabel="Re(lambda)", ylabel="Im(lambda)", aspect="equal",
               title=f"{label}\nspectral radius {np.abs(ev).max():.2f} ({len(W)} seed{'s' if len(W) > 1 else ''})")
    fig.tight_layout()
    return fig
