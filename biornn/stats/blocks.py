"""Block summaries of trained recurrent matrices ``W[post, pre]`` at three granularities (population, layer, area),
the runs of one condition (:class:`ModelSet`) and the Fig 4 folders' summaries (:func:`load_summaries`).

See :mod:`biornn.stats.comparisons` for the quantities (``mean_abs``, ``density``, ``strength``) and the block order.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from biornn.celltype import read_run_config
from biornn.core.errors import BiornnError
from biornn.nn.connectivity import AREAS, DISPLAY_LAYERS, LAYERS, POPULATION_LABELS, TYPES, parse_label, populations
from biornn.stats.significance import _nanstat

GRANULARITIES = ("population", "layer", "area")
QUANTITIES = ("mean_abs", "density", "strength")
QUANTITY_LABELS = {"mean_abs": "block mean |W| (zeros included)", "density": "realised density",
                   "strength": "mean |W| over surviving connections"}
ORDERS = ("display", "index")

#: The three inter-area pathways as (post, pre) layer blocks, and the presynaptic population of each.
PATHWAY_LAYERS = {"FF": ("LM_L4", "V1_L2/3"), "FB_L23": ("V1_L2/3", "LM_L5"), "FB_L5": ("V1_L5", "LM_L5")}
PATHWAY_TITLES = {"FF": "FF V1 L2/3 -> LM L4", "FB_L23": "FB LM L5 -> V1 L2/3", "FB_L5": "FB LM L5 -> V1 L5"}


# --------------------------------------------------------------------------------------------------------------------
# Groups: which population belongs to which block at each granularity
# --------------------------------------------------------------------------------------------------------------------

def _layers(order: str) -> tuple[str, ...]:
    if order not in ORDERS:
        raise BiornnError(f"unknown block order {order!r}; use 'display' (L2/3, L4, L5) or 'index' (L4 first)")
    return DISPLAY_LAYERS if order == "display" else LAYERS


def group_labels(granularity: str, order: str = "display") -> tuple[str, ...]:
    """Block labels of a granularity, e.g. ``("V1_L2/3", "V1_L4", "V1_L5", "LM_L2/3", ...)`` for ``layer``.

    Args:
        granularity: ``population`` (18 labels like ``V1_L2/3_Pyr``), ``layer`` (6, ``V1_L2/3``) or ``area`` (2).
        order: ``display`` (layers L2/3, L4, L5, the published Fig 5 order) or ``index`` (L4, L2/3, L5).
    """
    layers = _layers(order)
    if granularity == "population":
        return tuple(f"{a}_{l}_{t}" for a in AREAS for l in layers for t in TYPES)
    if granularity == "layer":
        return tuple(f"{a}_{l}" for a in AREAS for l in layers)
    if granularity == "area":
        return tuple(AREAS)
    raise BiornnError(f"unknown granularity {granularity!r}; use one of {', '.join(GRANULARITIES)}")


def population_groups(granularity: str, order: str = "display") -> np.ndarray:
    """``(18,)`` int: the block (row of :func:`group_labels`) of every population, populations in index order."""
    labels = {lab: i for i, lab in enumerate(group_labels(granularity, order))}
    out = []
    for lab in POPULATION_LABELS:
        area, layer, _ = parse_label(lab)
        key = lab if granularity == "population" else f"{area}_{layer}" if granularity == "layer" else area
        out.append(labels[key])
    return np.array(out)


def unit_populations(population) -> np.ndarray:
    """``(N,)`` int population index (index order, 0..17) of every unit, from its label (``"V1_L2/3_Pyr"``).

    Raises:
        BiornnError: an unknown label, or a population without units.
    """
    labels = np.asarray(population).astype(str)
    if labels.ndim != 1 or labels.size == 0:
        raise BiornnError(f"population labels must be a non-empty (N,) array, got shape {labels.shape}")
    uniq, inverse = np.unique(labels, return_inverse=True)
    lookup = {lab: i for i, lab in enumerate(POPULATION_LABELS)}
    for lab in uniq:
        if lab not in lookup:
            parse_label(lab)  # raises the one-line error naming the label
    index = np.array([lookup[lab] for lab in uniq])[inverse]
    missing = [POPULATION_LABELS[i] for i in range(len(POPULATION_LABELS)) if not np.any(index == i)]
    if missing:
        raise BiornnError(f"population {missing[0]} has no units; the model must hold all 18 populations")
    return index


def _one_hot(index: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((index.size, n))
    out[np.arange(index.size), index] = 1.0
    return out


# --------------------------------------------------------------------------------------------------------------------
# Block summaries
# --------------------------------------------------------------------------------------------------------------------

@dataclass
class BlockSummary:
    """Per-run block sums of one granularity; the three quantities are derived from them.

    Attributes:
        granularity: ``population``, ``layer`` or ``area``.
        labels: ``(G,)`` block labels (rows = post, columns = pre).
        sizes: ``(G,)`` units per block.
        abs_sum: ``(S, G, G)`` sum of ``|w|`` over each block (all entries).
        nonzero: ``(S, G, G)`` number of entries with ``|w| > tol``.
        surviving_sum: ``(S, G, G)`` sum of ``|w|`` over those entries (equals ``abs_sum`` when ``tol = 0``).
        tol: the survival threshold.
        order: ``display`` or ``index`` (see :func:`group_labels`).
    """

    granularity: str
    labels: tuple[str, ...]
    sizes: np.ndarray
    abs_sum: np.ndarray
    nonzero: np.ndarray
    surviving_sum: np.ndarray
    tol: float = 0.0
    order: str = "display"

    @property
    def n_runs(self) -> int:
        return int(self.abs_sum.shape[0])

    @property
    def n_entries(self) -> np.ndarray:
        """``(G, G)`` entries per block, ``n_post * n_pre``."""
        return np.outer(self.sizes, self.sizes).astype(float)

    @property
    def mean_abs(self) -> np.ndarray:
        """``(S, G, G)`` block mean of ``|W|``, zeros included (the reference's block mean)."""
        return self.abs_sum / self.n_entries

    @property
    def density(self) -> np.ndarray:
        """``(S, G, G)`` fraction of block entries with ``|w| > tol``."""
        return self.nonzero / self.n_entries

    @property
    def strength(self) -> np.ndarray:
        """``(S, G, G)`` mean ``|w|`` over the surviving entries; NaN where a block has none."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.nonzero > 0, self.surviving_sum / np.maximum(self.nonzero, 1), np.nan)

    def get(self, quantity: str) -> np.ndarray:
        """``(S, G, G)`` values of one of :data:`QUANTITIES`."""
        if quantity not in QUANTITIES:
            raise BiornnError(f"unknown quantity {quantity!r}; use one of {', '.join(QUANTITIES)}")
        return getattr(self, quantity)

    def mean(self, quantity: str) -> np.ndarray:
        """``(G, G)`` run mean of a quantity (NaN-aware for ``strength``)."""
        values = self.get(quantity)
        return _nanstat(np.nanmean, values) if quantity == "strength" else values.mean(axis=0)

    def frame(self, quantity: str, run: int | None = None) -> pd.DataFrame:
        """A ``(G, G)`` DataFrame (index = post, columns = pre) of one run, or of the run mean when ``run`` is None."""
        values = self.mean(quantity) if run is None else self.get(quantity)[run]
        return pd.DataFrame(values, index=list(self.labels), columns=list(self.labels))


def _population_sums(W, pop_index: np.ndarray, tol: float):
    """Population-level ``(S, 18, 18)`` abs sums, surviving counts and surviving sums (index order)."""
    W = np.asarray(W)
    if W.ndim == 2:
        W = W[None]
    n = pop_index.size
    if W.ndim != 3 or W.shape[1:] != (n, n):
        raise BiornnError(f"weights have shape {W.shape}; expected (runs, {n}, {n}) for {n} population labels")
    if not np.isfinite(W).all():
        raise BiornnError("weights contain NaN or inf; check the run directory")
    P = _one_hot(pop_index, len(POPULATION_LABELS))
    A = np.abs(W.astype(np.float64))
    keep = A > tol
    abs_sum = P.T @ A @ P
    nonzero = np.rint(P.T @ keep.astype(np.float64) @ P)
    surviving = abs_sum if tol == 0 else P.T @ np.where(keep, A, 0.0) @ P
    sizes = np.bincount(pop_index, minlength=len(POPULATION_LABELS)).astype(float)
    return abs_sum, nonzero, surviving, sizes


def _aggregate(abs_sum18, nonzero18, surviving18, sizes18, granularity: str, order: str, tol: float) -> BlockSummary:
    Q = _one_hot(population_groups(granularity, order), len(group_labels(granularity, order)))
    return BlockSummary(granularity=granularity, labels=group_labels(granularity, order), sizes=Q.T @ sizes18,
                        abs_sum=Q.T @ abs_sum18 @ Q, nonzero=np.rint(Q.T @ nonzero18 @ Q),
                        surviving_sum=Q.T @ surviving18 @ Q, tol=float(tol), order=order)


def block_summaries(W, population, granularities=GRANULARITIES, order: str = "display", tol: float = 0.0
                    ) -> dict[str, BlockSummary]:
    """Block summaries of recurrent matrices at several granularities (one pass over the weights).

    Args:
        W: ``(S, N, N)`` (or ``(N, N)``) recurrent matrices, ``W[post, pre]``, one per run.
        population: ``(N,)`` population label of every unit (``"V1_L2/3_Pyr"``), any unit order.
        granularities: any of :data:`GRANULARITIES`.
        order: ``display`` (L2/3, L4, L5) or ``index`` (L4 first).
        tol: an entry survives when ``|w| > tol`` (default 0: exact zeros are absent connections).

    Returns:
        ``{granularity: BlockSummary}`` with ``(S, G, G)`` arrays (``S = 1`` for a single matrix).
    """
    if tol < 0 or not np.isfinite(tol):
        raise BiornnError(f"tol = {tol}; use a threshold >= 0")
    pop_index = unit_populations(population)
    sums = _population_sums(W, pop_index, tol)
    return {g: _aggregate(*sums, g, order, tol) for g in granularities}


def block_summary(W, population, granularity: str = "population", order: str = "display", tol: float = 0.0
                  ) -> BlockSummary:
    """Block summary at one granularity (see :func:`block_summaries`)."""
    return block_summaries(W, population, (granularity,), order, tol)[granularity]


def summaries_from_blocks(mean_abs18, density18, population_sizes, granularities=GRANULARITIES,
                          order: str = "display") -> dict[str, BlockSummary]:
    """Summaries of *expected* population-level values (e.g. a ground truth), aggregated like real weights.

    Args:
        mean_abs18: ``(18, 18)`` or ``(S, 18, 18)`` block mean ``|W|`` in population index order, ``[post, pre]``.
        density18: the same shape: block densities.
        population_sizes: ``(18,)`` units per population (index order).
        granularities, order: as :func:`block_summaries`.

    Returns:
        ``{granularity: BlockSummary}``; coarser blocks are size-weighted averages (``nonzero`` may be fractional).
    """
    sizes = np.asarray(population_sizes, dtype=float)
    outer = np.outer(sizes, sizes)
    m = np.asarray(mean_abs18, dtype=float)
    d = np.asarray(density18, dtype=float)
    m, d = (m[None], d[None]) if m.ndim == 2 else (m, d)
    abs_sum, nonzero = m * outer, d * outer
    out = {}
    for g in granularities:
        Q = _one_hot(population_groups(g, order), len(group_labels(g, order)))
        out[g] = BlockSummary(granularity=g, labels=group_labels(g, order), sizes=Q.T @ sizes,
                              abs_sum=Q.T @ abs_sum @ Q, nonzero=Q.T @ nonzero @ Q, surviving_sum=Q.T @ abs_sum @ Q,
                              order=order)
    return out


# --------------------------------------------------------------------------------------------------------------------
# Models of one condition
# --------------------------------------------------------------------------------------------------------------------

@dataclass
class ModelSet:
    """The trained runs of one condition (and window).

    Attributes:
        W: ``(S, N, N)`` recurrent matrices ``W[post, pre]`` (the sparse, fine-tuned ones for Fig 5).
        population: ``(N,)`` population labels of the units.
        name: e.g. ``"FC full"``.
        mask: ``(S, N, N)`` 1 where a connection may exist, or None.
        source: where the runs came from (a folder, ``"twin (synthetic weights)"``, ...).
        metrics: the run directory's ``metrics.json`` (or {}).
    """

    W: np.ndarray
    population: np.ndarray
    name: str = ""
    mask: np.ndarray | None = None
    source: str = ""
    metrics: dict = field(default_factory=dict)

    def __post_init__(self):
        self.W = np.asarray(self.W)
        if self.W.ndim == 2:
            self.W = self.W[None]
        self.population = np.asarray(self.population).astype(str)
        if self.W.ndim != 3 or self.W.shape[1:] != (self.population.size,) * 2:
            raise BiornnError(f"{self.name or 'models'}: weights of shape {self.W.shape} do not match "
                              f"{self.population.size} population labels; expected (runs, N, N)")

    @property
    def n_runs(self) -> int:
        return int(self.W.shape[0])

    @property
    def n_units(self) -> int:
        return int(self.population.size)

    def summaries(self, granularities=GRANULARITIES, order: str = "display", tol: float = 0.0
                  ) -> dict[str, BlockSummary]:
        """:func:`block_summaries` of the runs."""
        return block_summaries(self.W, self.population, granularities, order, tol)


def load_models(directory: str | os.PathLike, weights: str = "W_sparse", name: str | None = None) -> ModelSet:
    """Read the runs of one condition from a Fig 4 run directory.

    The directory holds ``weights.npz`` with ``weights`` (default ``W_sparse``, ``(S, N, N)``), ``population``
    (``(N,)`` labels) and optionally ``mask`` (``(S, N, N)``); ``metrics.json`` is read when present (its
    ``config`` ``condition`` and ``window`` name the set).

    Raises:
        BiornnError: a missing folder or file, a missing array, wrong shapes, NaN/inf or unknown labels (one line).
    """
    directory = Path(directory)
    path = directory / "weights.npz" if directory.is_dir() else directory
    if directory.is_dir() is False and directory.suffix != ".npz":
        raise BiornnError(f"model folder {directory} not found; pass a Fig 4 run directory holding weights.npz")
    try:
        with np.load(path, allow_pickle=False) as npz:
            files = set(getattr(npz, "files", ()))
            if not files:
                raise BiornnError(f"{path} is not an .npz archive; pass a Fig 4 run directory")
            missing = [k for k in (weights, "population") if k not in files]
            if missing:
                raise BiornnError(f"{path} has no {missing[0]!r} array (it holds {', '.join(sorted(files))}); "
                                  f"a Fig 4 run stores {weights} and population")
            W = np.asarray(npz[weights])
            population = np.asarray(npz["population"]).astype(str)
            mask = np.asarray(npz["mask"]) if "mask" in files else None
    except FileNotFoundError:
        raise BiornnError(f"no weights.npz in {path.parent}; pass a Fig 4 run directory (train it first)") from None
    except BiornnError:
        raise
    except Exception as exc:  # BadZipFile, ValueError (pickled object arrays), OSError, EOFError
        raise BiornnError(f"cannot read {path} ({type(exc).__name__}: {exc}); train the run again") from None
    if W.ndim == 2:
        W = W[None]
    if W.ndim != 3 or W.shape[1:] != (population.size,) * 2:
        raise BiornnError(f"{path}: {weights} has shape {W.shape} but population has {population.size} labels; "
                          "expected (runs, N, N)")
    if not np.isfinite(W).all():
        raise BiornnError(f"{path}: {weights} contains NaN or inf; train the run again")
    unit_populations(population)
    metrics = {}
    if (path.parent / "metrics.json").exists():
        try:
            metrics = json.loads((path.parent / "metrics.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BiornnError(f"corrupt {path.parent / 'metrics.json'} ({exc}); train the run again") from None
    if name is None:
        cfg = metrics.get("config", {}) if isinstance(metrics, dict) else {}
        name = " ".join(str(cfg[k]) for k in ("condition", "window") if k in cfg) or path.parent.name
    return ModelSet(W=W, population=population, name=name, mask=mask, source=str(path.parent), metrics=metrics)


def _check_compatible(a: ModelSet, b: ModelSet) -> None:
    if a.n_units != b.n_units:
        raise BiornnError(f"A ({a.name or a.source}) has N = {a.n_units} units but B ({b.name or b.source}) has "
                          f"N = {b.n_units}; compare runs of the same model size")
    bad = np.flatnonzero(a.population != b.population)
    if bad.size:
        i = int(bad[0])
        raise BiornnError(f"population labels differ between A and B at unit {i} ({a.population[i]} vs "
                          f"{b.population[i]}); compare runs with the same unit layout")


# --------------------------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------------------------



















# --------------------------------------------------------------------------------------------------------------------
# Comparisons
# --------------------------------------------------------------------------------------------------------------------











# --------------------------------------------------------------------------------------------------------------------
# Reference numbers and the pathway table
# --------------------------------------------------------------------------------------------------------------------











# --------------------------------------------------------------------------------------------------------------------
# Finding the Fig 4 runs
# --------------------------------------------------------------------------------------------------------------------

def load_summaries(directory: str | os.PathLike, granularities=GRANULARITIES, order: str = "display",
                   tol: float = 0.0, weights: str = "W_sparse") -> dict[str, BlockSummary]:
    """Block summaries of one Fig 4 folder: from ``weights.npz`` when present, else from the figure cache.

    The figure cache (``summary.npz`` of :func:`biornn.celltype.save_summary`) keeps population-level
    ``block_abs_sparse`` (block mean ``|W|``, zeros included) and ``nonzero_abs_sparse`` (mean ``|w|`` over nonzero
    entries) per run; their ratio gives the realised density, and coarser blocks are exact size-weighted sums. Only
    ``tol = 0`` and the sparse weights are available there.

    Raises:
        BiornnError: no weights or summary, or a summary without those arrays.
    """
    directory = Path(directory)
    if (directory / "weights.npz").exists() or directory.suffix == ".npz":
        return load_models(directory, weights).summaries(granularities, order, tol)
    path = directory / "summary.npz"
    if not path.exists():
        raise BiornnError(f"no weights.npz or summary.npz in {directory}; pass a Fig 4 run or figure-cache folder")
    if tol != 0 or weights != "W_sparse":
        raise BiornnError(f"{directory} is a figure cache: only the sparse weights with tol = 0 are summarised there")
    try:
        with np.load(path, allow_pickle=False) as npz:
            mean_abs, strength = np.asarray(npz["block_abs_sparse"]), np.asarray(npz["nonzero_abs_sparse"])
    except KeyError as exc:
        raise BiornnError(f"{path} has no {exc}; summarise the run again (python -m biornn celltype summarize)"
                          ) from None
    except Exception as exc:
        raise BiornnError(f"cannot read {path} ({type(exc).__name__}: {exc}); summarise the run again") from None
    cfg = read_run_config(directory)
    sizes = cfg.get("sizes")
    if sizes is None or len(sizes) != 3:
        raise BiornnError(f"{directory}/summary.json has no config sizes (Pyr, SST, VIP); summarise the run again")

    pop_sizes = populations(dict(zip(TYPES, (int(v) for v in sizes))))["size"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        density = np.where(np.isfinite(strength) & (strength > 0), mean_abs / strength, 0.0)
    out = summaries_from_blocks(mean_abs, density, pop_sizes, granularities, order)
    for s in out.values():  # counts are whole numbers up to rounding
        s.nonzero = np.rint(s.nonzero)
    return out


# --------------------------------------------------------------------------------------------------------------------
# The digital twin's ground truth as synthetic weight matrices
# --------------------------------------------------------------------------------------------------------------------







# --------------------------------------------------------------------------------------------------------------------
# What the Figure 5 notebook compares
# --------------------------------------------------------------------------------------------------------------------

















# --------------------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------------------
