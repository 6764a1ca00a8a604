"""Runs as replicates: every training run of a condition sees its own resample of the recordings.

When all runs of a condition train on one bootstrap dataset, a difference between conditions measured over runs
says how much optimisation varies, not how much the data do. Here run ``seed`` redraws its training set from the
Stage A rows (:class:`biornn.data.curate.PopulationWindows`), with the same held-out rows left out as in the dataset:

``experiments`` (default; a hierarchical bootstrap)
    per population, draw its experiments with replacement, then draw each bootstrap sample's ``n_draw`` rows
    with replacement from the rows of the drawn experiments (an experiment drawn twice counts twice);
``trials``
    draw the ``n_draw`` rows of every sample from all training rows (the dataset's own scheme, new stream).

Then the same smoothing and one-step shift as :func:`biornn.data.curate.build_dataset`. Streams:
``derive_seed(seed, "replicate", condition, population, scheme)``; the unit of replication of every test over such
runs is the run (one resample of the data plus one initialisation).
"""

from __future__ import annotations

import numpy as np

from biornn.core.config import derive_seed
from biornn.core.errors import BiornnError
from biornn.data.curate import CurateConfig, Dataset, PopulationWindows, bootstrap_means, heldout_mask, inputs_targets
from biornn.nn.connectivity import POPULATION_LABELS

RESAMPLING = ("none", "trials", "experiments")


def _pool(w: PopulationWindows, train: np.ndarray, scheme: str, rng: np.random.Generator) -> np.ndarray:
    """Row indices of one resample's pool: the training rows (``trials``) or those of resampled experiments."""
    rows = np.flatnonzero(train)
    if scheme == "trials":
        return rows
    exps = np.unique(w.experiment_id[rows])
    drawn = rng.choice(exps, size=exps.size, replace=True)
    return np.concatenate([rows[w.experiment_id[rows] == e] for e in drawn])


def resample_training(dataset: Dataset, windows: dict[str, PopulationWindows], seed: int,
                      scheme: str = "experiments") -> tuple[np.ndarray, np.ndarray]:
    """A fresh training set of one run: ``(inputs, targets)`` ``(n_samples, 15, 18)`` float64.

    Args:
        dataset: the condition's dataset (its manifest holds the curation settings used again here).
        windows: the dataset's Stage A rows (:func:`biornn.data.curate.load_windows`).
        seed: the run's seed.
        scheme: ``experiments`` or ``trials`` (module docstring).

    Raises:
        BiornnError: an unknown scheme, or windows of another condition than the dataset's.
    """
    if scheme not in RESAMPLING[1:]:
        raise BiornnError(f"unknown resampling {scheme!r}; use one of {', '.join(RESAMPLING[1:])}")
    config = CurateConfig(**dataset.manifest["config"])
    xs, ys = [], []
    for i, pop in enumerate(POPULATION_LABELS):
        w = windows[pop]
        train = ~heldout_mask(w, config, dataset.condition, pop)
        if int(train.sum()) != int(dataset.row_counts[i]):
            raise BiornnError(f"{dataset.condition} {pop}: the windows give {int(train.sum())} training rows but "
                              f"the dataset was built from {int(dataset.row_counts[i])}; pass the windows file "
                              "written with this dataset")
        rng = np.random.default_rng(derive_seed(seed, "replicate", dataset.condition, pop, scheme))
        means = bootstrap_means(w.values[_pool(w, train, scheme, rng)], config.n_samples, config.n_draw, rng)
        x, y = inputs_targets(means, config.smoothing, config.sigma)
        xs.append(x)
        ys.append(y)
    return np.stack(xs, axis=-1), np.stack(ys, axis=-1)


def replicate_stack(dataset: Dataset, windows: dict[str, PopulationWindows], seeds, scheme: str = "experiments"
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Training sets of several runs: ``(S, n_samples, 15, 18)`` inputs and targets, one resample per seed."""
    pairs = [resample_training(dataset, windows, int(s), scheme) for s in seeds]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
