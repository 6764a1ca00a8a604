"""A condition's dataset as model arrays (:class:`CelltypeData`, :func:`prepare_data`), the connectivity tables and
the block-wise pruning masks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from biornn.celltype.config import (
    PRUNING,
    WINDOWS,
    CelltypeConfig,
    sizes_dict,
)
from biornn.core.conditions import CONDITIONS, condition_name
from biornn.core.errors import BiornnError
from biornn.data.curate import HALF_WINDOW, Dataset
from biornn.data.replicates import replicate_stack
from biornn.nn.connectivity import (
    POPULATION_LABELS,
    block_density,
    block_means,
    load_inter_area,
    load_within_area,
    population_index,
)
from biornn.pruning import blockwise_mask


@dataclass
class CelltypeData:
    """Arrays of one condition and window, checked against the model's population order.

    Attributes:
        x, y: ``(n, T, C)`` and ``(n, T, 18)`` float32 training inputs (frames t, plus the stimulus codes of frame
            t + 1 when ``C = 21``) and targets (frames t + 1); ``(S, n, T, .)`` when every run has its own resample.
        hx, hy: ``(n_heldout, T, C)`` and ``(n_heldout, T, 18)`` held-out inputs and targets (``n_heldout`` may be 0).
        condition: the dataset's condition.
        source: ``twin`` or ``allensdk``.
        sha256: hash of the training and held-out arrays (a resumed run must see the same data).
        scale: ``(mean, sd)`` ``(18,)`` of the standardisation (None: the arrays are ΔF/F).
        twin: ``planted`` / ``null`` for twin data (None otherwise).
    """
    x: np.ndarray
    y: np.ndarray
    hx: np.ndarray
    hy: np.ndarray
    condition: str
    source: str
    sha256: str
    scale: tuple[np.ndarray, np.ndarray] | None = None
    twin: str | None = None

    def info(self) -> dict:
        out = {"condition": self.condition, "source": self.source, "sha256": self.sha256,
               "n_train": int(self.x.shape[-3]), "n_heldout": int(self.hx.shape[0]), "steps": int(self.x.shape[-2])}
        if self.x.ndim == 4:
            out["per_run_training_sets"] = True
        if self.scale is not None:
            out["standardization"] = {"mean": self.scale[0].tolist(), "sd": self.scale[1].tolist()}
        if self.twin is not None:
            out["twin"] = self.twin
        return out

    def to_dff(self, values: np.ndarray) -> np.ndarray:
        """Model-space outputs or targets ``(..., 18)`` back in ΔF/F (identity without standardisation)."""
        if self.scale is None:
            return np.asarray(values, dtype=np.float64)
        return np.asarray(values, dtype=np.float64) * self.scale[1] + self.scale[0]


def check_populations(labels) -> None:
    """Raise :class:`BiornnError` unless ``labels`` are the 18 populations in the model's index order."""
    labels = tuple(str(lab) for lab in labels)
    if labels == POPULATION_LABELS:
        return
    if len(labels) != len(POPULATION_LABELS):
        raise BiornnError(f"dataset has {len(labels)} population channels but the model has "
                          f"{len(POPULATION_LABELS)}; rebuild it with python -m biornn allen build")
    i = next(k for k, (a, b) in enumerate(zip(labels, POPULATION_LABELS)) if a != b)
    raise BiornnError(f"dataset population order disagrees with the model at channel {i}: {labels[i]!r} where the "
                      f"model has {POPULATION_LABELS[i]!r}; reorder the channels to "
                      "biornn.nn.connectivity.POPULATION_LABELS or rebuild the dataset with biornn.data.curate")


def prepare_data(dataset: Dataset, window: str = "full", condition: str | None = None,
                 config: CelltypeConfig | None = None) -> CelltypeData:
    """Check a :class:`biornn.data.curate.Dataset`, cut its window and build the model's arrays.

    Args:
        dataset: one condition's dataset.
        window: ``full`` (all 15 steps) or ``half`` (steps 7-13).
        condition: the condition the run expects (raises if the dataset holds another).
        config: the run (its ``resample``, ``standardize`` and ``stimulus_inputs`` switches); None = ΔF/F as is.
    """
    check_populations(dataset.populations)
    if condition is not None and condition_name(condition) != dataset.condition:
        raise BiornnError(f"dataset holds condition {dataset.condition!r} but the run asks for "
                          f"{condition_name(condition)!r}; pass the matching --condition or dataset file")
    if window not in WINDOWS:
        raise BiornnError(f"unknown window {window!r}; use one of {', '.join(WINDOWS)}")
    arrays = [np.asarray(a, dtype=np.float64) for a in (dataset.inputs, dataset.targets, dataset.heldout_inputs,
                                                        dataset.heldout_targets)]
    if config is not None and config.resample != "none":
        if dataset.windows is None:
            raise BiornnError(f"resample={config.resample!r} needs the dataset's rows; load them with "
                              "biornn.data.curate.load_windows (build with python -m biornn allen build --windows)")
        arrays[:2] = replicate_stack(dataset, dataset.windows, config.seeds, config.resample)
    cut = (slice(None), HALF_WINDOW) if window == "half" else (slice(None),)
    arrays = [a[(slice(None),) * (a.ndim - 3) + cut] for a in arrays]
    for a in arrays:
        if not np.isfinite(a).all():
            raise BiornnError(f"dataset {dataset.condition} contains NaN or inf; rebuild it")
    scale = None
    if config is not None and config.standardize:
        scale = _pooled_scale(dataset)
        arrays = [(a - scale[0]) / scale[1] for a in arrays]
    if config is not None and config.stimulus_inputs:
        if dataset.stimulus is None:
            raise BiornnError(f"dataset {dataset.condition} has no stimulus codes; rebuild it with this version of "
                              "python -m biornn allen build (or run without stimulus inputs)")
        course = np.asarray(dataset.stimulus, dtype=np.float64)[1:]  # the predicted frames' codes, (15, 3)
        course = course[HALF_WINDOW] if window == "half" else course
        for k in (0, 2):
            a = arrays[k]
            arrays[k] = np.concatenate([a, np.broadcast_to(course, a.shape[:-1] + course.shape[-1:])], axis=-1)
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    x, y, hx, hy = (np.ascontiguousarray(a, dtype=np.float32) for a in arrays)
    twin = dataset.manifest.get("twin_config", {}).get("twin", "planted") if dataset.source == "twin" else None
    return CelltypeData(x, y, hx, hy, dataset.condition, dataset.source, h.hexdigest(), scale, twin)


def _pooled_scale(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's pooled ``(mean, sd)``; refuses statistics of fewer than all six conditions."""
    stats = dataset.standardization
    if stats is None or sorted(stats.get("pooled_over", [])) != sorted(CONDITIONS):
        raise BiornnError(f"dataset {dataset.condition} has no standardisation statistics pooled over all six "
                          "conditions; build all six together (python -m biornn allen build --condition all)")
    return np.asarray(stats["mean"], dtype=np.float64), np.asarray(stats["sd"], dtype=np.float64)


def connectivity_tables(config: CelltypeConfig):
    """The validated within-area and inter-area tables of ``config`` (pandas DataFrames)."""
    return load_within_area(config.within_table), load_inter_area(config.inter_table)


def target_density(config: CelltypeConfig | None = None) -> np.ndarray:
    """``(18, 18)`` ``[post, pre]`` target densities: within-area table plus the inter-area pathways."""
    if config is None:
        return block_density()
    return block_density(*connectivity_tables(config))


def prune_mask(W: torch.Tensor, seeds, sizes, pruning: str = "default", within=None, inter=None) -> torch.Tensor:
    """The connectivity mask of trained dense weights: block-wise top-prob within areas, pathway masks across.

    Args:
        W: ``(S, N, N)`` dense recurrent weights ``W[post, pre]`` (after the Dale projection).
        seeds: one seed per matrix (the pruning and inter-area draws use each seed's stream).
        sizes: units per population (dict or ``(Pyr, SST, VIP)``).
        pruning: ``default`` (exact budgets over the nonzero entries; inter-area keep rate ``min(|E|, p n) / |E|``)
            or ``as_published`` (reference budgets; inter-area Bernoulli(p) over all entries).
        within, inter: connectivity tables (default: the shipped files).

    Returns:
        ``(S, N, N)`` Boolean mask on ``W``'s device: True where a connection may exist. It is the nonzero pattern
        of ``W`` after pruning (entries that Dale's projection had set to 0 are never kept).
    """
    if pruning not in PRUNING:
        raise BiornnError(f"unknown pruning {pruning!r}; use one of {', '.join(PRUNING)}")
    within = load_within_area() if within is None else within
    inter = load_inter_area() if inter is None else inter
    pop = population_index(sizes_dict(sizes))
    if W.ndim != 3 or W.shape[-1] != pop.size:
        raise BiornnError(f"weights have shape {tuple(W.shape)}; expected (seeds, {pop.size}, {pop.size})")
    seeds = [int(s) for s in seeds]
    inside = block_density(within, inter, include_inter=False)
    across = block_density(within, inter, include_within=False)
    m_in, _ = blockwise_mask(W, inside, pop, "topprob", seed=seeds, eligibility=pruning)
    m_x, _ = blockwise_mask(W, across, pop, "random", seed=seeds, eligibility=pruning)
    return (m_in | m_x) & (W != 0)


def realised_density(mask, sizes) -> np.ndarray:
    """``(S, 18, 18)`` fraction of kept entries in every population block of ``(S, N, N)`` masks."""
    m = mask.detach().cpu().numpy() if torch.is_tensor(mask) else np.asarray(mask)
    sizes = sizes_dict(sizes)
    return np.stack([block_means(mi.astype(np.float64), sizes) for mi in m])
