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
