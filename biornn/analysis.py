"""Figure 5: how the inferred connectivity differs between conditions (``docs/paper/fig4-5-celltype-rnn.md`` §5–9).

Block summaries of trained recurrent matrices ``W[post, pre]`` at three granularities, each reported three ways
(Q4: density and strength are never confused):

* ``mean_abs``: block mean of ``|W|`` **including the pruned zeros** (the reference's quantity, §6);
* ``density``: realised density, the fraction of block entries with ``|w| > tol`` (``tol = 0``: exact zeros are
  pruned, masked or clamped connections);
* ``strength``: mean ``|w|`` over the surviving entries (NaN for an empty block).

With ``tol = 0``, ``mean_abs = density * strength`` exactly. Granularities: ``population`` (18 x 18), ``layer``
(area x layer, 6 x 6) and ``area`` (2 x 2). Blocks are listed in the published display order (area-major, layers
**L2/3, L4, L5**, types Pyr, SST, VIP; Q11) unless ``order="index"`` asks for the internal index layout (L4
first, :data:`biornn.connectivity.POPULATION_LABELS`). All sums are one-hot matrix products, batched over runs.

Condition comparisons (§6, Q3): for conditions A and B with runs ``a_1..a_nA`` and ``b_1..b_nB``
of a block quantity, ``diff = mean(b) - mean(a)`` (= the mean over all ``nA * nB`` run pairs of ``b_j - a_i``, the
reference's Δ). Tests, per block, two-sided, on run-level values (the run is the unit of replication):

* ``permutation`` (default): the difference of means under exchange of run labels between the conditions; exact
  enumeration of all ``C(nA + nB, nA)`` relabellings when that is at most ``max_exact`` (252 for 5 vs 5; the smallest
  attainable p is then ``2 / 252 = 0.0079``), else ``n_resamples`` random relabellings from a seeded generator with
  ``p = (1 + hits) / (1 + draws)``;
* ``welch``: Welch's unequal-variance t-test (Welch–Satterthwaite df).

Multiple comparisons: within each (granularity, quantity) table, over the **tested blocks** (those holding at least one
connection in at least one run of either condition), with Benjamini–Hochberg FDR (``fdr_bh``, default) or Holm's
family-wise correction (``holm``). Effect size: Hedges' g (difference over the pooled SD, small-sample corrected).
Every table and side file names its test, n and correction.

:class:`ModelSet` holds the runs of one condition (loaded from a Fig 4 run directory with :func:`load_models`, or made
from the digital twin's ground truth with :func:`twin_models`); :func:`compare_conditions` returns a
:class:`Comparison`; :func:`load_summaries` also reads the Fig 4 figure cache (``summary.npz``), which keeps
population-level block means only. :func:`fig5_inputs` gathers all six conditions x two windows for the notebook (Fig 4
cache, else quick stand-in models trained now, else synthetic twin weights) and :func:`pathway_table` sets the three
inter-area pathways of the nine pairs beside the reference's numbers (``data/reference/fig5.json``). The command line
``python -m biornn compare --models DIR_A DIR_B --out DIR`` writes the tables.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from biornn.celltype import find_fig4_runs, read_run_config
from biornn.conditions import BY_ABBREVIATION as CONDITIONS
from biornn.conditions import PAIRS, WINDOWS, condition_abbrev
from biornn.connectivity import AREAS, DISPLAY_LAYERS, LAYERS, POPULATION_LABELS, TYPES, parse_label
from biornn.errors import BiornnError
from biornn.stats import holm

ROOT = Path(__file__).resolve().parent.parent

GRANULARITIES = ("population", "layer", "area")
QUANTITIES = ("mean_abs", "density", "strength")
QUANTITY_LABELS = {"mean_abs": "block mean |W| (zeros included)", "density": "realised density",
                   "strength": "mean |W| over surviving connections"}
ORDERS = ("display", "index")
TESTS = ("permutation", "welch")
CORRECTIONS = ("fdr_bh", "holm")

#: The three inter-area pathways as (post, pre) layer blocks, and the presynaptic population of each.
PATHWAYS = {"FF": ("LM_L4", "V1_L2/3"), "FB_L23": ("V1_L2/3", "LM_L5"), "FB_L5": ("V1_L5", "LM_L5")}
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

def fdr_bh(pvalues) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (step-up; controls the false discovery rate over all m inputs).

    ``p_adj_(i) = min_{j >= i} min(1, m p_(j) / j)`` for the ascending p-values, returned in input order.

    Args:
        pvalues: ``(m,)`` p-values in [0, 1].

    Returns:
        ``(m,)`` adjusted p-values.
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    if not np.isfinite(p).all() or ((p < 0) | (p > 1)).any():
        raise BiornnError("p-values must be finite numbers in [0, 1]")
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    adj = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    out = np.empty(m)
    out[order] = adj
    return out


def adjust(pvalues, correction: str = "fdr_bh") -> np.ndarray:
    """Adjust p-values with ``fdr_bh`` (:func:`fdr_bh`) or ``holm`` (:func:`biornn.stats.holm`)."""
    if correction not in CORRECTIONS:
        raise BiornnError(f"unknown correction {correction!r}; use one of {', '.join(CORRECTIONS)}")
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    if p.size == 0:
        return p
    return fdr_bh(p) if correction == "fdr_bh" else holm(p)


def _nanstat(fn, x: np.ndarray, **kwargs) -> np.ndarray:
    """``fn(x, axis=0, **kwargs)`` for a NaN-aware numpy statistic, NaN without a warning for all-NaN columns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(x, axis=0, **kwargs)


def _values(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 1:
        raise BiornnError(f"{name} must be (runs, blocks) with at least one run, got shape {x.shape}")
    if np.isinf(x).any():
        raise BiornnError(f"{name} contain inf")
    return x


def _group_means(x0: np.ndarray, valid: np.ndarray, members: np.ndarray):
    """Means of the member rows and of the rest: ``members`` ``(K, n)`` 0/1 -> two ``(K, m)`` arrays."""
    s_in, c_in = members @ x0, members @ valid
    s_out, c_out = x0.sum(0) - s_in, valid.sum(0) - c_in
    with np.errstate(invalid="ignore", divide="ignore"):
        return s_in / c_in, s_out / c_out


@lru_cache(maxsize=16)
def _relabellings(n: int, k: int) -> np.ndarray:
    """``(C(n, k), n)`` 0/1 rows: every way to pick the ``k`` members of group B among ``n`` runs."""
    idx = np.array(list(combinations(range(n), k)), dtype=np.int64).reshape(-1, k)
    members = np.zeros((idx.shape[0], n))
    np.put_along_axis(members, idx, 1.0, axis=1)
    members.setflags(write=False)
    return members


def permutation_test(a, b, n_resamples: int = 9999, max_exact: int = 20000, seed: int = 0) -> dict:
    """Two-sided run-label permutation test of ``mean(b) - mean(a)``, vectorised over blocks.

    Under the null, run labels are exchangeable between the conditions. Every relabelling keeps the group sizes.
    NaN values (e.g. the strength of an empty block) are left out of the means; relabellings that leave a group
    without a value are left out of the reference distribution.

    Args:
        a: ``(nA, m)`` values of condition A (runs x blocks); ``(nA,)`` for one block.
        b: ``(nB, m)`` values of condition B.
        n_resamples: random relabellings when enumeration is too large.
        max_exact: enumerate all ``C(nA + nB, nB)`` relabellings when there are at most this many.
        seed: seed of the random relabellings.

    Returns:
        Dict with ``statistic`` ``(m,)`` (mean B - mean A), ``pvalue`` ``(m,)`` (NaN when a condition has no value),
        ``method`` (``exact`` or ``monte carlo``), ``n_permutations``, ``n_a``, ``n_b``.
    """
    a, b = _values(a, "values of A"), _values(b, "values of B")
    if a.shape[1] != b.shape[1]:
        raise BiornnError(f"A has {a.shape[1]} blocks and B {b.shape[1]}; pass the same blocks")
    na, nb = a.shape[0], b.shape[0]
    n = na + nb
    x = np.concatenate([a, b])
    valid = np.isfinite(x).astype(np.float64)
    x0 = np.where(valid > 0, x, 0.0)
    observed = np.zeros((1, n))
    observed[0, na:] = 1.0
    mb, ma = _group_means(x0, valid, observed)
    stat = (mb - ma)[0]
    total = math.comb(n, nb)
    if total <= max_exact:
        members = _relabellings(n, nb)
        method = "exact"
    else:
        rng = np.random.default_rng(seed)
        picks = np.argsort(rng.random((int(n_resamples), n)), axis=1)[:, :nb]
        members = np.zeros((int(n_resamples), n))
        np.put_along_axis(members, picks, 1.0, axis=1)
        method = "monte carlo"
    pb, pa = _group_means(x0, valid, members)
    perm = pb - pa
    ok = np.isfinite(perm)
    scale = np.max(np.abs(x0), axis=0)  # ties up to rounding count as at least as extreme
    with np.errstate(invalid="ignore"):
        hits = (ok & (np.abs(perm) >= np.abs(stat) - 1e-9 * scale)).sum(0)
    used = ok.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = hits / used if method == "exact" else (1 + hits) / (1 + used)
    p = np.where(np.isfinite(stat) & (used > 0), np.minimum(p, 1.0), np.nan)
    return {"statistic": stat, "pvalue": p, "method": method, "n_permutations": int(members.shape[0]),
            "n_a": na, "n_b": nb}


def welch_test(a, b) -> dict:
    """Welch's two-sided unequal-variance t-test of ``mean(b) - mean(a)``, vectorised over blocks (NaN ignored).

    Args:
        a: ``(nA, m)`` values of condition A; b: ``(nB, m)`` of condition B.

    Returns:
        Dict with ``statistic`` ``(m,)`` (mean difference), ``t``, ``df``, ``pvalue`` (1 when both groups are
        constant and equal, 0 when constant and different, NaN with fewer than 2 values in a group), ``n_a``,
        ``n_b``.
    """
    from scipy import stats

    a, b = _values(a, "values of A"), _values(b, "values of B")
    ca, cb = np.isfinite(a).sum(0), np.isfinite(b).sum(0)
    ma, mb = _nanstat(np.nanmean, a), _nanstat(np.nanmean, b)
    va, vb = _nanstat(np.nanvar, a, ddof=1), _nanstat(np.nanvar, b, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        se2 = va / ca + vb / cb
        diff = mb - ma
        t = diff / np.sqrt(se2)
        df = se2 ** 2 / ((va / ca) ** 2 / (ca - 1) + (vb / cb) ** 2 / (cb - 1))
        p = 2 * stats.t.sf(np.abs(t), df)
    p = np.where(se2 == 0, np.where(diff == 0, 1.0, 0.0), p)
    p = np.where((ca < 2) | (cb < 2), np.nan, p)
    return {"statistic": diff, "t": t, "df": df, "pvalue": p, "method": "welch", "n_a": a.shape[0],
            "n_b": b.shape[0]}


def hedges_g(a, b) -> np.ndarray:
    """Hedges' g of B vs A per block: ``(mean B - mean A) / pooled SD * (1 - 3 / (4 (nA + nB) - 9))``.

    Pooled SD with ddof 1 in each group; NaN values left out. NaN when either group has fewer than 2 values or when
    the difference and the SD are both 0; +-inf when only the SD is 0.

    Args:
        a: ``(nA, m)``; b: ``(nB, m)``.

    Returns:
        ``(m,)`` effect sizes.
    """
    a, b = _values(a, "values of A"), _values(b, "values of B")
    ca, cb = np.isfinite(a).sum(0), np.isfinite(b).sum(0)
    diff = _nanstat(np.nanmean, b) - _nanstat(np.nanmean, a)
    va, vb = _nanstat(np.nanvar, a, ddof=1), _nanstat(np.nanvar, b, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = np.sqrt(((ca - 1) * va + (cb - 1) * vb) / (ca + cb - 2))
        g = diff / pooled * (1 - 3 / (4 * (ca + cb) - 9))
    return np.where((ca < 2) | (cb < 2) | ((diff == 0) & (pooled == 0)), np.nan, g)


# --------------------------------------------------------------------------------------------------------------------
# Comparisons
# --------------------------------------------------------------------------------------------------------------------

@dataclass
class Comparison:
    """Block differences B - A between two conditions, with tests and effect sizes.

    Attributes:
        name_a, name_b: the conditions (A is the reference, differences are B - A).
        n_a, n_b: runs per condition.
        test: ``permutation`` or ``welch``; method: ``exact`` / ``monte carlo`` / ``welch``; n_permutations.
        correction: ``fdr_bh`` or ``holm``, applied within each (granularity, quantity) over the tested blocks.
        alpha: significance level of the ``significant`` flags.
        blocks: ``{(granularity, quantity): {field: (G, G) array}}`` with fields ``mean_a``, ``mean_b``,
            ``diff``, ``hedges_g``, ``p``, ``p_adj``, ``tested`` (bool), ``n_a``, ``n_b`` (runs with a value).
        labels: ``{granularity: block labels}``.
        order, tol, seed: settings used.
    """

    name_a: str
    name_b: str
    n_a: int
    n_b: int
    test: str
    method: str
    n_permutations: int
    correction: str
    alpha: float
    blocks: dict
    labels: dict
    order: str = "display"
    tol: float = 0.0
    seed: int = 0

    def matrix(self, granularity: str = "layer", quantity: str = "mean_abs", field: str = "diff") -> np.ndarray:
        """One ``(G, G)`` field, e.g. ``matrix("layer", "mean_abs", "diff")`` (rows post, columns pre)."""
        key = (granularity, quantity)
        if key not in self.blocks:
            raise BiornnError(f"no {quantity} comparison at the {granularity} level; computed: "
                              f"{', '.join(f'{g}/{q}' for g, q in self.blocks)}")
        if field not in self.blocks[key]:
            raise BiornnError(f"unknown field {field!r}; use one of {', '.join(self.blocks[key])}")
        return self.blocks[key][field]

    def significant(self, granularity: str = "layer", quantity: str = "mean_abs") -> np.ndarray:
        """``(G, G)`` bool: tested blocks with adjusted p below ``alpha``."""
        p = self.matrix(granularity, quantity, "p_adj")
        return np.nan_to_num(p, nan=1.0) < self.alpha

    def family_size(self, granularity: str, quantity: str) -> int:
        """Number of blocks in the correction family of one table."""
        return int(self.matrix(granularity, quantity, "tested").sum())

    def table(self, granularity: str | None = None, quantity: str | None = None) -> pd.DataFrame:
        """Long table, one row per (granularity, quantity, post, pre) block, naming test, n and correction."""
        rows = []
        for (g, q), res in self.blocks.items():
            if (granularity is not None and g != granularity) or (quantity is not None and q != quantity):
                continue
            labels = self.labels[g]
            G = len(labels)
            post, pre = np.meshgrid(np.arange(G), np.arange(G), indexing="ij")
            frame = pd.DataFrame({"granularity": g, "quantity": q, "post": np.asarray(labels)[post.ravel()],
                                  "pre": np.asarray(labels)[pre.ravel()], "A": self.name_a, "B": self.name_b})
            for key in ("mean_a", "mean_b", "diff", "hedges_g", "p", "p_adj"):
                frame[key] = res[key].ravel()
            frame["tested"] = res["tested"].ravel()
            frame["significant"] = frame["tested"] & (frame["p_adj"].fillna(1.0) < self.alpha)
            frame["n_a"] = res["n_a"].ravel().astype(int)
            frame["n_b"] = res["n_b"].ravel().astype(int)
            frame["test"] = self.test_name
            frame["correction"] = self.correction
            frame["family_size"] = self.family_size(g, q)
            rows.append(frame)
        if not rows:
            raise BiornnError(f"no comparison for granularity={granularity!r}, quantity={quantity!r}")
        return pd.concat(rows, ignore_index=True)

    @property
    def test_name(self) -> str:
        """E.g. ``permutation (exact, 252 relabellings)`` or ``welch``."""
        if self.test == "permutation":
            return f"permutation ({self.method}, {self.n_permutations} relabellings)"
        return "welch t"

    def describe(self) -> str:
        """One sentence naming the difference, the test, n and the correction."""
        corr = "Benjamini-Hochberg FDR" if self.correction == "fdr_bh" else "Holm (family-wise)"
        return (f"{self.name_b} - {self.name_a}: difference of run means; two-sided {self.test_name} on run-level "
                f"values, n = {self.n_a} vs {self.n_b} runs; {corr} over the tested blocks of each table; "
                f"effect size Hedges' g; alpha = {self.alpha}")

    def describe_pathways(self) -> str:
        """Test, n and correction of the ``p_holm3`` column of :meth:`pathways` (the pre-specified family)."""
        return (f"{self.test_name}, n = {self.n_a} vs {self.n_b} runs, Holm over the 3 pathways of each pair and "
                "window")

    def meta(self) -> dict:
        """JSON-ready description of the comparison (for the side file)."""
        return {"A": self.name_a, "B": self.name_b, "difference": "mean over runs of B - mean over runs of A "
                "(= mean over all run pairs of B_j - A_i)", "test": self.test, "test_detail": self.test_name,
                "two_sided": True, "n_a": self.n_a, "n_b": self.n_b, "n_permutations": self.n_permutations,
                "correction": self.correction, "correction_family": "tested blocks (a connection in at least one "
                "run of either condition) of each (granularity, quantity) table", "alpha": self.alpha,
                "effect_size": "Hedges' g (pooled SD, ddof 1, small-sample factor 1 - 3/(4(nA+nB)-9))",
                "order": self.order, "tol": self.tol, "seed": self.seed,
                "family_sizes": {f"{g}/{q}": self.family_size(g, q) for g, q in self.blocks},
                "quantities": {q: QUANTITY_LABELS[q] for q in {q for _, q in self.blocks}}}

    def pathways(self, quantity: str = "mean_abs", scale: float = 1.0) -> pd.DataFrame:
        """The three inter-area pathways at the layer level (needs the layer and population tables).

        Columns: ``pathway``, ``diff`` (layer block), ``to_Pyr``, ``to_SST``, ``to_VIP`` (population blocks from the
        pathway's Pyr source), ``p`` (raw), ``p_adj`` (correction over all tested layer blocks), ``p_holm3`` (Holm over
        the three pathways only: the pre-specified primary family), ``hedges_g``, ``largest`` (True if this
        pathway's ``|diff|`` is the largest in the whole layer table), all differences times ``scale``.
        """
        layer = self.labels["layer"]
        pops = self.labels["population"]
        D = self.matrix("layer", quantity, "diff")
        Dp = self.matrix("population", quantity, "diff")
        rows = []
        for name, (post, pre) in PATHWAYS.items():
            i, j = layer.index(post), layer.index(pre)
            row = {"pathway": name, "diff": D[i, j] * scale}
            for t in TYPES:
                row[f"to_{t}"] = Dp[pops.index(f"{post}_{t}"), pops.index(f"{pre}_Pyr")] * scale
            row["p"] = self.matrix("layer", quantity, "p")[i, j]
            row["p_adj"] = self.matrix("layer", quantity, "p_adj")[i, j]
            row["hedges_g"] = self.matrix("layer", quantity, "hedges_g")[i, j]
            row["largest"] = bool(np.isclose(abs(D[i, j]), np.nanmax(np.abs(D))))
            rows.append(row)
        out = pd.DataFrame(rows)
        out["p_holm3"] = holm(np.nan_to_num(out["p"].to_numpy(), nan=1.0))
        return out


def _test(a, b, test: str, n_resamples: int, max_exact: int, seed: int) -> dict:
    if test == "permutation":
        return permutation_test(a, b, n_resamples=n_resamples, max_exact=max_exact, seed=seed)
    return welch_test(a, b)


def compare_summaries(sa: dict[str, BlockSummary], sb: dict[str, BlockSummary], quantities=QUANTITIES,
                      test: str = "permutation", correction: str = "fdr_bh", alpha: float = 0.05,
                      n_resamples: int = 9999, max_exact: int = 20000, seed: int = 0, name_a: str = "A",
                      name_b: str = "B") -> Comparison:
    """Compare two conditions given their block summaries (e.g. computed once per condition and reused).

    Args:
        sa, sb: ``{granularity: BlockSummary}`` of A and B (same granularities, labels and order).
        quantities: any of :data:`QUANTITIES`.
        test: ``permutation`` or ``welch``.
        correction: ``fdr_bh`` or ``holm`` (within each table, over the tested blocks).
        alpha: level of the ``significant`` flags.
        n_resamples, max_exact, seed: permutation settings (:func:`permutation_test`).
        name_a, name_b: condition names.

    Returns:
        A :class:`Comparison`.
    """
    if test not in TESTS:
        raise BiornnError(f"unknown test {test!r}; use one of {', '.join(TESTS)}")
    if correction not in CORRECTIONS:
        raise BiornnError(f"unknown correction {correction!r}; use one of {', '.join(CORRECTIONS)}")
    if not 0 < alpha < 1:
        raise BiornnError(f"alpha = {alpha}; use a level in (0, 1) such as 0.05")
    if set(sa) != set(sb):
        raise BiornnError(f"A has granularities {sorted(sa)} and B {sorted(sb)}; summarise both the same way")
    blocks, labels, info = {}, {}, {}
    for g in sa:
        A, B = sa[g], sb[g]
        if A.labels != B.labels:
            raise BiornnError(f"block labels differ between A and B at the {g} level; use the same order")
        if not np.array_equal(A.sizes, B.sizes):
            raise BiornnError(f"population sizes differ between A and B at the {g} level ({A.sizes.tolist()} vs "
                              f"{B.sizes.tolist()}); compare runs with the same unit layout")
        labels[g] = A.labels
        G = len(A.labels)
        present = (A.nonzero.sum(0) + B.nonzero.sum(0)) > 0
        for q in quantities:
            va, vb = A.get(q).reshape(A.n_runs, -1), B.get(q).reshape(B.n_runs, -1)
            res = _test(va, vb, test, n_resamples, max_exact, seed)
            p = res["pvalue"].reshape(G, G)
            tested = present & np.isfinite(p)
            p_adj = np.full((G, G), np.nan)
            p_adj[tested] = adjust(p[tested], correction)
            mean_a = _nanstat(np.nanmean, va) if q == "strength" else va.mean(0)
            mean_b = _nanstat(np.nanmean, vb) if q == "strength" else vb.mean(0)
            blocks[(g, q)] = {"mean_a": mean_a.reshape(G, G), "mean_b": mean_b.reshape(G, G),
                              "diff": (mean_b - mean_a).reshape(G, G), "hedges_g": hedges_g(va, vb).reshape(G, G),
                              "p": np.where(tested, p, np.nan), "p_adj": p_adj, "tested": tested,
                              "n_a": np.isfinite(va).sum(0).reshape(G, G), "n_b": np.isfinite(vb).sum(0).reshape(G, G)}
            info = res
    first = next(iter(sa.values()))
    return Comparison(name_a=name_a, name_b=name_b, n_a=first.n_runs, n_b=next(iter(sb.values())).n_runs, test=test,
                      method=info.get("method", test), n_permutations=info.get("n_permutations", 0),
                      correction=correction, alpha=alpha, blocks=blocks, labels=labels, order=first.order,
                      tol=first.tol, seed=seed)


def compare_conditions(a: ModelSet, b: ModelSet, granularities=GRANULARITIES, quantities=QUANTITIES,
                       order: str = "display", tol: float = 0.0, **kwargs) -> Comparison:
    """Block differences B - A of two model sets with tests (see :func:`compare_summaries` for the options).

    Raises:
        BiornnError: A and B differ in N or in their population labels.
    """
    _check_compatible(a, b)
    sa = a.summaries(granularities, order, tol)
    sb = b.summaries(granularities, order, tol)
    kwargs.setdefault("name_a", a.name or "A")
    kwargs.setdefault("name_b", b.name or "B")
    return compare_summaries(sa, sb, quantities, **kwargs)


def compare_pairs(summaries: dict, pairs=PAIRS, windows=WINDOWS, **kwargs) -> dict:
    """Every pair of every window: ``{(window, "FN->FC"): Comparison}``.

    Args:
        summaries: ``{(window, condition): {granularity: BlockSummary}}``; pairs whose conditions are missing are
            skipped.
        pairs: ``(A, B)`` abbreviations (default :data:`PAIRS`).
        windows: windows to compare.
        **kwargs: passed to :func:`compare_summaries`.
    """
    out = {}
    for window in windows:
        for a, b in pairs:
            if (window, a) in summaries and (window, b) in summaries:
                out[(window, f"{a}->{b}")] = compare_summaries(
                    summaries[(window, a)], summaries[(window, b)], name_a=f"{a} {window}", name_b=f"{b} {window}",
                    **kwargs)
    return out


# --------------------------------------------------------------------------------------------------------------------
# Reference numbers and the pathway table
# --------------------------------------------------------------------------------------------------------------------

def reference_fig5() -> dict:
    """The published Fig 5 numbers (``data/reference/fig5.json``; §7.5–7.7)."""
    from biornn.store import reference

    return reference("fig5")


def reference_layer_matrix(ref: dict, window: str, pair: str) -> np.ndarray:
    """The published 6 x 6 layer difference matrix of one pair (x 1e-4, display order, rows post, columns pre)."""
    try:
        return np.asarray(ref["pairs"][window][pair]["layer_matrix"], dtype=float)
    except KeyError:
        raise BiornnError(f"no reference layer matrix for {pair} ({window} window) in fig5.json") from None


def pathway_table(comparisons: dict, ref: dict | None = None, quantity: str = "mean_abs",
                  scale: float = 1e4) -> pd.DataFrame:
    """The three inter-area pathways of every pair, ours next to the reference's (differences x ``1 / scale``).

    Args:
        comparisons: ``{(window, "FN->FC"): Comparison}`` (:func:`compare_pairs`).
        ref: reference numbers (default :func:`reference_fig5`); None entries in it are left blank.
        quantity: which block quantity (the reference's is ``mean_abs``).
        scale: multiply differences by this (1e4: the reference's units of 1e-4).

    Returns:
        One row per (window, pair, pathway): ours (``diff``, ``to_Pyr/SST/VIP``, ``p``, ``p_holm3``, ``p_adj``,
        ``hedges_g``, ``largest``), the reference (``ref_diff``, ``ref_to_Pyr/SST/VIP``, ``ref_largest``), and
        ``same_sign``.
    """
    ref = reference_fig5() if ref is None else ref
    frames = []
    for (window, pair), comp in comparisons.items():
        frame = comp.pathways(quantity, scale)
        frame.insert(0, "pair", pair)
        frame.insert(0, "window", window)
        entry = ref.get("pairs", {}).get(window, {}).get(pair, {}).get("pathways", {})
        frame["ref_diff"] = [entry.get(p, {}).get("layer", np.nan) for p in frame["pathway"]]
        for k, t in enumerate(TYPES):
            frame[f"ref_to_{t}"] = [entry.get(p, {}).get("populations", [np.nan] * 3)[k] for p in frame["pathway"]]
        frame["ref_largest"] = [bool(entry.get(p, {}).get("largest", False)) for p in frame["pathway"]]
        frames.append(frame)
    if not frames:
        raise BiornnError("no comparisons to tabulate; compute them with compare_pairs first")
    out = pd.concat(frames, ignore_index=True)
    out["same_sign"] = np.sign(out["diff"]) == np.sign(out["ref_diff"])
    out["n"] = [f"{c.n_a} vs {c.n_b}" for c in comparisons.values() for _ in PATHWAYS]
    out["test"] = [c.test_name for c in comparisons.values() for _ in PATHWAYS]
    return out


def merge_pathway_tables(tables: dict) -> pd.DataFrame:
    """Pathway tables of several model variants side by side (rows matched on window, pair and pathway).

    Args:
        tables: ``{name: DataFrame}`` from :func:`pathway_table`, e.g. ``{"published": ..., "corrected": ...}``.

    Returns:
        One row per (window, pair, pathway) present in every table: ``ref_diff`` and, per name, ``diff_<name>``,
        ``p_holm3_<name>`` and ``same_sign_<name>`` (as the reference).
    """
    if not tables:
        raise BiornnError("no pathway tables to merge; pass {name: pathway_table(...)}")
    keys = ["window", "pair", "pathway"]
    out = None
    for name, t in tables.items():
        missing = [c for c in keys + ["diff", "p_holm3", "ref_diff"] if c not in t]
        if missing:
            raise BiornnError(f"pathway table {name!r} has no column {missing[0]!r}; make it with pathway_table")
        part = t[keys + ["ref_diff", "diff", "p_holm3"]].rename(
            columns={"diff": f"diff_{name}", "p_holm3": f"p_holm3_{name}"})
        part[f"same_sign_{name}"] = np.sign(part[f"diff_{name}"]) == np.sign(part["ref_diff"])
        out = part if out is None else out.merge(part.drop(columns="ref_diff"), on=keys, how="inner")
    return out.reset_index(drop=True)


def pathway_specificity(comparisons: dict, quantity: str = "mean_abs", min_same_sign: float = 0.9,
                        min_median: float = 5.0) -> pd.DataFrame:
    """Is a pathway's change specific, or does the whole matrix shift? (descriptive: no test).

    For every pair, the relative change ``(mean_b - mean_a) / mean_a`` of each inter-area pathway's layer block next to
    the median relative change of the within-area layer blocks (those tested, i.e. holding connections). If all
    within-area blocks fall by 20 % and a pathway falls by 20 % too, the pathway did not change *relative to the rest*:
    the model's overall weight scale did.

    Args:
        comparisons: ``{(window, "FN->FC"): Comparison}`` (:func:`compare_pairs`) with layer-level tables.
        quantity: which block quantity (default the reference's ``mean_abs``).
        min_same_sign, min_median: a pair is a ``global_shift`` when at least this fraction of its within-area
            blocks move the way of their median and that median is at least ``min_median`` % in size.

    Returns:
        One row per (window, pair): ``FF``, ``FB_L23``, ``FB_L5`` (relative change, %), ``within_median`` (%),
        ``within_same_sign`` (fraction of within-area blocks whose change has the sign of their median), ``n_within``
        and ``global_shift`` (bool).
    """
    rows = []
    for (window, pair), comp in comparisons.items():
        labels = comp.labels["layer"]
        a = comp.matrix("layer", quantity, "mean_a")
        d = comp.matrix("layer", quantity, "diff")
        tested = comp.matrix("layer", quantity, "tested").astype(bool)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = 100.0 * d / a
        row = {"window": window, "pair": pair}
        for name, (post, pre) in PATHWAYS.items():
            row[name] = float(rel[labels.index(post), labels.index(pre)])
        areas = np.array([lab.split("_")[0] for lab in labels])
        vals = rel[tested & (areas[:, None] == areas[None, :])]  # the pathways are all inter-area blocks
        med = float(np.median(vals)) if vals.size else np.nan
        row["within_median"] = med
        row["within_same_sign"] = float(np.mean(np.sign(vals) == np.sign(med))) if vals.size else np.nan
        row["n_within"] = int(vals.size)
        row["global_shift"] = bool(row["within_same_sign"] >= min_same_sign and abs(med) >= min_median)
        rows.append(row)
    if not rows:
        raise BiornnError("no comparisons to summarise; compute them with compare_pairs first")
    return pd.DataFrame(rows)


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
    from biornn.connectivity import populations

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

#: Units per population type of the synthetic stand-in (N = 360; the paper's sizes are 192/32/16, N = 1440).
TWIN_SIZES = {"Pyr": 48, "SST": 8, "VIP": 4}


def twin_expected(condition: str, target_max: float = 0.01, config=None) -> dict[str, np.ndarray]:
    """Expected population-level block values of :func:`twin_models` (index order, ``[post, pre]``).

    The twin's ground truth ``W_c`` (:func:`biornn.synthetic.ground_truth_connectivity`) sets the block mean:
    ``mean_abs = c |W_c|`` with one constant ``c`` for every condition (``target_max`` = the largest familiar
    no-change block mean); ``density`` = the connectivity table's target (:func:`biornn.connectivity.block_density`);
    ``strength = mean_abs / density``.

    Returns:
        ``{"mean_abs", "density", "strength"}``, each ``(18, 18)`` (strength NaN where the density is 0).
    """
    from biornn.connectivity import block_density
    from biornn.synthetic import ground_truth_connectivity

    truth = ground_truth_connectivity(config)
    c = target_max / np.abs(truth["familiar_no_change"]).max()
    mean_abs = c * np.abs(truth[CONDITIONS[condition_abbrev(condition)]])
    density = block_density()
    with np.errstate(invalid="ignore", divide="ignore"):
        strength = np.where(density > 0, mean_abs / density, np.nan)
    return {"mean_abs": mean_abs, "density": density, "strength": strength}


def twin_models(condition: str, n_runs: int = 5, window: str = "full", sizes: dict | None = None,
                noise: float = 0.3, seed: int = 0, target_max: float = 0.01, config=None) -> ModelSet:
    """Synthetic "trained" weights of one condition, made from the twin's ground truth (not trained models).

    Per run: a fresh connection mask, each entry of block (post, pre) kept with the block's table density ``rho``
    (:func:`biornn.connectivity.block_density`: within-area table, inter-area pathways 0.3), and every kept entry
    ``sign(pre) * mean_abs / rho * LogNormal(-noise^2 / 2, noise)`` (mean factor 1), so the expected block mean
    ``|W|`` is the twin's ``mean_abs`` (:func:`twin_expected`) and the planted condition differences are pure
    strength changes of the inter-area pathways. Runs differ in masks and noise (seeded by ``seed``, the condition,
    the window and the run).

    Args:
        condition: ``FC`` ... ``NO`` (or the long names).
        n_runs: runs (the paper has 5).
        window: ``full`` or ``half`` (the twin has no timescale: only the random draws differ).
        sizes: units per type (default :data:`TWIN_SIZES`).
        noise: log-normal SD of the weights.
        seed: base seed.
        target_max: scale (see :func:`twin_expected`).
        config: twin configuration (:class:`biornn.synthetic.TwinConfig`; default its defaults).

    Returns:
        A :class:`ModelSet` named ``"<condition> <window>"`` with ``mask``.
    """
    from biornn.config import derive_seed
    from biornn.connectivity import population_index, unit_signs

    abbrev = condition_abbrev(condition)
    sizes = dict(TWIN_SIZES if sizes is None else sizes)
    exp = twin_expected(abbrev, target_max, config)
    idx = population_index(sizes)
    rho = exp["density"][np.ix_(idx, idx)]
    magnitude = np.nan_to_num(exp["strength"])[np.ix_(idx, idx)]
    signs = unit_signs(sizes)
    N = idx.size
    W = np.zeros((n_runs, N, N), dtype=np.float32)
    mask = np.zeros((n_runs, N, N), dtype=np.float32)
    for r in range(n_runs):
        rng = np.random.default_rng(derive_seed(seed, "fig5-twin", abbrev, window, r))
        m = rng.random((N, N)) < rho
        lognormal = np.exp(noise * rng.standard_normal((N, N)) - noise ** 2 / 2)
        W[r] = m * magnitude * lognormal * signs[None, :]
        mask[r] = m
    labels = np.asarray(POPULATION_LABELS)[idx]
    return ModelSet(W=W, population=labels, name=f"{abbrev} {window}", mask=mask,
                    source="digital twin ground truth (synthetic weights, not trained)")


# --------------------------------------------------------------------------------------------------------------------
# What the Figure 5 notebook compares
# --------------------------------------------------------------------------------------------------------------------

#: Quick-mode training of the stand-in models (5 runs as in the paper, far fewer epochs than its 70 + 50).
QUICK_TRAINING = {"seeds": (0, 1, 2, 3, 4), "dense_epochs": 12, "finetune_epochs": 8}
SOURCES = ("cache", "quick", "twin")


@dataclass
class Fig5Inputs:
    """Block summaries of every (window, condition) and where they came from.

    Attributes:
        summaries: ``{(window, condition): {granularity: BlockSummary}}``.
        source: ``cache`` (the Fig 4 figure cache / runs in ``data/results/fig4``), ``quick`` (small models trained
            now by :mod:`biornn.celltype` on the twin's datasets) or ``twin`` (synthetic weights from the twin's
            ground truth, :func:`twin_models`; nothing trained).
        description: one line for the notebook.
        ground_truth: ``{condition: (18, 18)}`` twin population connectivity (index order) when the data come from the
            twin, else None.
        folders: ``{(window, condition): folder}`` of stored runs (empty for ``twin``).
        expected: for ``twin`` only, ``{condition: twin_expected(condition)}``.
    """

    summaries: dict
    source: str
    description: str
    ground_truth: dict | None = None
    folders: dict = field(default_factory=dict)
    expected: dict | None = None

    def n_runs(self) -> dict:
        """``{(window, condition): runs}``."""
        return {k: next(iter(v.values())).n_runs for k, v in self.summaries.items()}


def _quick_models(windows, variant: str, progress: bool, device, retrain) -> Fig5Inputs:
    from biornn import celltype, curate
    from biornn.store import run_dir, save_run, want_retrain

    names = tuple(CONDITIONS.values())
    datasets, data_folder = curate.cached_datasets(conditions=names, mode="quick", progress=progress)
    summaries, folders = {}, {}
    for window in windows:
        for abbrev, cond in CONDITIONS.items():
            cfg = celltype.celltype_config(cond, "quick", published=variant == "published", window=window,
                                           **QUICK_TRAINING)
            folder = run_dir("_quick/fig5", f"{abbrev}-{window}-{cfg.variant}",
                             {"config": cfg.to_dict(), "data": data_folder.name})
            if want_retrain(retrain) or not (folder / "weights.npz").exists():
                res = celltype.train_celltype(cfg, datasets[cond], device=device, progress=progress)
                save_run(folder, {"config": cfg.to_dict(), "runs": [], "data_folder": data_folder.name},
                         {k: np.asarray(res.arrays[k]) for k in ("W_sparse", "mask", "population")})
            summaries[(window, abbrev)] = load_summaries(folder)
            folders[(window, abbrev)] = folder
    truth = {abbrev: celltype.ground_truth_for(datasets[cond]) for abbrev, cond in CONDITIONS.items()}
    seeds = QUICK_TRAINING["seeds"]
    desc = (f"quick stand-in: N = {sum(cfg.sizes) * 6} models ({variant} switches) trained now on the digital "
            f"twin's datasets, {len(seeds)} runs, {QUICK_TRAINING['dense_epochs']} + "
            f"{QUICK_TRAINING['finetune_epochs']} epochs (paper: N = 1440, 70 + 50); not the paper's models")
    return Fig5Inputs(summaries, "quick", desc, truth, folders)


def _twin_inputs(windows, n_runs: int, sizes: dict | None, seed: int) -> Fig5Inputs:
    from biornn.synthetic import ground_truth_connectivity

    summaries = {(w, c): twin_models(c, n_runs, w, sizes=sizes, seed=seed).summaries()
                 for w in windows for c in CONDITIONS}
    gt = ground_truth_connectivity()
    truth = {c: gt[full] for c, full in CONDITIONS.items()}
    sizes = dict(TWIN_SIZES if sizes is None else sizes)
    desc = (f"digital-twin stand-in: SYNTHETIC weight matrices built from the twin's ground truth (N = "
            f"{sum(sizes.values()) * 6}, {n_runs} runs, random masks and weights), not trained models")
    return Fig5Inputs(summaries, "twin", desc, truth, expected={c: twin_expected(c) for c in CONDITIONS})


def fig5_inputs(mode: str | None = None, source: str | None = None, variant: str = "published",
                root: str | os.PathLike | None = None, windows=WINDOWS, progress: bool = False, device: str = "cpu",
                retrain: bool | None = None, n_runs: int = 5, seed: int = 0) -> Fig5Inputs:
    """The block summaries Figure 5 compares, from the best available source.

    ``source=None`` picks: the Fig 4 runs in ``data/results/fig4`` (``variant``) when all 6 conditions x windows
    are there; else, in quick mode, small :mod:`biornn.celltype` models trained now on the twin's quick datasets
    (:data:`QUICK_TRAINING`; stored under ``data/results/_quick/fig5`` and reused, ``BIORNN_RETRAIN=1`` retrains);
    else synthetic weights from the twin's ground truth (:func:`twin_models`).

    Args:
        mode: ``quick`` or ``paper`` (default ``$BIORNN_MODE``).
        source: force ``cache``, ``quick`` or ``twin``.
        variant: Fig 4 variant (``published`` or ``corrected``).
        root: the Fig 4 cache folder.
        windows: windows to load.
        progress: progress bars while training.
        device: training device of the quick models.
        retrain: train the quick models again.
        n_runs, seed: runs and seed of the synthetic twin weights.

    Raises:
        BiornnError: ``source="cache"`` with runs missing (names them and how to compute them).
    """
    from biornn.config import get_mode

    mode = get_mode(mode)
    if source is not None and source not in SOURCES:
        raise BiornnError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    runs = find_fig4_runs(root, variant=variant)
    missing = [(w, c) for w in windows for c in CONDITIONS if (w, c) not in runs]
    if source == "cache" or (source is None and not missing):
        if missing:
            raise BiornnError(f"Fig 4 runs missing for {', '.join(f'{c} {w}' for w, c in missing[:4])}"
                              f"{' ...' if len(missing) > 4 else ''}; compute them with python -m biornn celltype "
                              "train and celltype summarize (paper mode, GPU)")
        summaries = {k: load_summaries(runs[k]) for k in ((w, c) for w in windows for c in CONDITIONS)}
        truth = {}
        for (w, c), folder in runs.items():
            if w == windows[0] and (folder / "summary.npz").exists():
                with np.load(folder / "summary.npz", allow_pickle=False) as npz:
                    if "ground_truth" in npz.files:
                        truth[c] = np.asarray(npz["ground_truth"])
        n = {next(iter(v.values())).n_runs for v in summaries.values()}
        where = next(iter(runs.values())).parent
        desc = f"cached Fig 4 runs ({variant} switches, {'/'.join(map(str, sorted(n)))} runs) in {where}"
        return Fig5Inputs(summaries, "cache", desc, truth if len(truth) == len(CONDITIONS) else None,
                          {k: runs[k] for k in summaries})
    if source == "quick" or (source is None and mode == "quick" and _celltype_available()):
        return _quick_models(windows, variant, progress, device, retrain)
    return _twin_inputs(windows, n_runs, None, seed)


def _celltype_available() -> bool:
    try:
        from biornn import celltype
    except ImportError:
        return False
    return all(hasattr(celltype, name) for name in ("celltype_config", "train_celltype", "ground_truth_for"))


def planted_table(comparisons: dict, truth: dict, scale: float = 1e4) -> pd.DataFrame:
    """The twin's planted pathway changes next to the recovered differences.

    Args:
        comparisons: ``{(window, "FN->FC"): Comparison}``.
        truth: ``{condition: (18, 18)}`` twin population connectivity (index order).
        scale: multiply differences by this.

    Returns:
        One row per (window, pair, pathway): ``planted_ratio`` (``sum |W_B| / sum |W_A|`` over the pathway's
        population blocks), ``planted`` (ratio != 1), ``diff``, ``p``, ``p_holm3``, ``recovered`` (planted, right
        sign and ``p_holm3 < alpha``), ``false_positive`` (not planted but ``p_holm3 < alpha``).
    """
    from biornn.connectivity import pathway_blocks

    blocks = pathway_blocks()
    rows = []
    for (window, pair), comp in comparisons.items():
        a, b = pair.split("->")
        pw = comp.pathways(scale=scale).set_index("pathway")
        for name in PATHWAYS:
            post, pre = np.array(blocks[name]).T
            ratio = np.abs(truth[b][post, pre]).sum() / np.abs(truth[a][post, pre]).sum()
            planted = not np.isclose(ratio, 1.0)
            sig = pw.loc[name, "p_holm3"] < comp.alpha
            rows.append({"window": window, "pair": pair, "pathway": name, "planted_ratio": ratio,
                         "planted": planted, "diff": pw.loc[name, "diff"], "p": pw.loc[name, "p"],
                         "p_holm3": pw.loc[name, "p_holm3"],
                         "recovered": bool(planted and sig and np.sign(pw.loc[name, "diff"]) == np.sign(ratio - 1)),
                         "false_positive": bool(not planted and sig)})
    return pd.DataFrame(rows)


def planted_counts(planted: pd.DataFrame) -> dict:
    """Counts of a :func:`planted_table`: ``recovered`` of ``planted`` (also split into ``recovered_ff`` and
    ``recovered_fb``), ``false_positive`` of ``unplanted``, as ints."""
    ff = planted["pathway"] == "FF"
    return {"recovered": int(planted["recovered"].sum()), "planted": int(planted["planted"].sum()),
            "recovered_ff": int(planted.loc[ff, "recovered"].sum()),
            "recovered_fb": int(planted.loc[~ff, "recovered"].sum()),
            "false_positive": int(planted["false_positive"].sum()), "unplanted": int((~planted["planted"]).sum())}


# --------------------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------------------
