"""Training the cell-type constrained two-area RNN of paper Figure 4 (``docs/paper/fig4-5-celltype-rnn.md``).

Pipeline per (condition, window), all seeds batched (§4.3):

1. **Dense Dale's training**: Adam (lr 1e-3), cosine schedule ``T_max = 10`` epochs, ``eta_min = 1e-4``, stepped
   per epoch and never restarted (``lr(e) = 1e-4 + 0.9e-3 (1 + cos(pi e / 10)) / 2``, ``e = 0`` in the first epoch);
   after every optimiser step the Dale projection of ``W_rec``. The epoch with the lowest epoch loss is kept and
   reloaded (per seed).
2. **Pruning** (one shot): within each area every population block is pruned by top-prob to the table's density
   (:func:`biornn.pruning.blockwise_mask`); the three inter-area pathways keep their dense trained values times a
   Bernoulli(0.3) mask; every other cross-area block is emptied. The connectivity mask ``M`` is the nonzero
   pattern right after pruning.
3. **Masked fine-tuning**: fresh Adam and the same schedule; before every step the gradient of ``W_rec`` is zeroed
   outside ``M`` (Adam's moments there stay exactly 0), after every step the Dale projection, then
   ``W_rec <- W_rec * M``.

Loss: MSE, mean over ``B x T x 18``; an epoch's loss is the **mean batch loss** (multiply by the number of batches,
10, for the reference's sum; :attr:`CelltypeResult.reference_factor`).

Switches (§9; defaults = biornn's choice, :meth:`CelltypeConfig.published` = the reference):

=====================  =========================================  ==============================================
option                 default (corrected)                        ``as published``
=====================  =========================================  ==============================================
``input_mapping``      ``population``: channel p -> population p  ``dense`` (Q1: the mask was never applied)
``pruning``            ``default``: exact budgets ``p n`` over     ``as_published``: the reference's budget
                       nonzero entries; inter-area: exactly        ``n (1 - s')`` (5-15 % above the table, Q8);
                       ``0.3 n`` of the nonzero entries            inter-area: Bernoulli(0.3) over all entries
``checkpoint_rule``    ``best``: lowest mean epoch loss of         ``as_published``: epoch *sum* must beat a
                       fine-tuning (best and last both kept)       running minimum started at one batch's MSE (Q7)
``dale``               True                                       False = the vanilla control (no projection)
=====================  =========================================  ==============================================

Top-prob as published (``eligibility="as_published"`` of :mod:`biornn.pruning`) redistributes the probability of
capped entries additively, as in Fig 3; the Fig 4 reference does not redistribute (``min(1, K |w|)``). The two
differ only for entries with ``K |w| > 1``; realised densities are reported next to the table.

Seeds: per-seed streams from :func:`biornn.config.derive_seed`: initialisation ``(seed, "init", "celltype")``,
shuffles ``(seed, "shuffle", "celltype", stage, epoch)``, pruning and inter-area draws through
:mod:`biornn.pruning` (``(seed, "prune", ...)``).

Checkpoints (``OUT/checkpoints/``, each written atomically): ``initial.pt``, ``dense_best.pt``, ``sparse.pt`` and a
rolling ``resume.pt`` (parameters, Adam state, best-so-far weights, mask and history after every completed epoch).
An interrupted :func:`train_celltype` with the same ``out`` resumes from ``resume.pt`` and ends with bitwise the
same result as an uninterrupted run on the CPU (per-epoch shuffles are derived, not carried).

Outputs (command line contract, ``python -m biornn celltype train``): ``OUT/metrics.json`` (config, device, data,
runs with per-stage losses and held-out fits) and ``OUT/weights.npz``: ``W_init``, ``W_dense``, ``W_sparse``,
``W_last`` ``(S, N, N)`` float32 (``W[post, pre]``), ``mask`` ``(S, N, N)`` uint8 (1 where a connection may exist),
``signs`` ``(N,)``, ``population`` ``(N,)`` labels such as ``V1_L2/3_Pyr``, ``population_index`` ``(N,)``,
``w_in_dense``, ``w_in_sparse``, ``w_in_last`` ``(S, N, 18)``, ``w_out`` ``(S, N)``, ``b_out`` ``(S, 18)``,
``target_density`` ``(18, 18)`` and ``realised_density`` ``(S, 18, 18)``.

Figure cache (paper mode, ``data/results/fig4/``): :func:`summarize` keeps only what the figures need, in float64
(block means raw and absolute for initial / dense / sparse weights, realised densities, mean ``|w|`` over nonzero
entries, losses, held-out fits, a few held-out traces, identifiability on twin data) plus seed 0's three full
matrices in float32 (display only).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from biornn.conditions import ABBREVIATIONS, CONDITIONS, condition_abbrev, condition_name
from biornn.config import RESULTS_DIR, derive_seed, get_device, get_mode
from biornn.connectivity import (
    POPULATION_LABELS,
    TYPES,
    block_density,
    block_means,
    load_inter_area,
    load_within_area,
    population_index,
    populations,
)
from biornn.constraints import dale_project_, sign_violations
from biornn.curate import HALF_WINDOW, Dataset, load_dataset_with_windows
from biornn.errors import BiornnError
from biornn.models import INPUT_MAPPINGS, CelltypeRNN, to_numpy
from biornn.progress import progress as progress_bar
from biornn.pruning import blockwise_mask
from biornn.replicates import RESAMPLING, replicate_stack
from biornn.stimulus import STIMULUS_CHANNELS
from biornn.store import _json_default, atomic_write_bytes, load_run, provenance, run_dir

WINDOWS = ("full", "half")
PRUNING = ("default", "as_published")
CHECKPOINT_RULES = ("best", "as_published")
#: Per-mode sizes: ``paper`` = the reference (N = 1440, 70 + 50 epochs, 5 runs, 2000 samples in batches of 200).
#: ``quick`` = N = 192 (16 Pyr, 8 SST, 8 VIP per area-layer: populations of at least 8 units keep the frozen readout
#: biases, U(+-1/sqrt(n_p)), within reach), 1000 samples in batches of 100 (the paper's 10 steps per epoch at half
#: the cost), 60 + 40 epochs, 3 seeds: about 12 s of one CPU core per seed.
MODE_SIZES = {
    "paper": dict(sizes=(192, 32, 16), dense_epochs=70, finetune_epochs=50, seeds=(0, 1, 2, 3, 4)),
    "quick": dict(sizes=(16, 8, 8), dense_epochs=60, finetune_epochs=40, seeds=(0, 1, 2), n_train=1000,
                  batch_size=100),
}
STAGES = ("dense", "finetune")
INITIAL_STATES = ("zero", "learned")
#: Switches added after the first paper caches, with the values those caches were trained with.
LATER_DEFAULTS = {"standardize": False, "initial_state": "zero", "burn_in": 0, "stimulus_inputs": False,
                  "resample": "none"}
#: The recommended variant on top of the corrected one (``CelltypeConfig.recommended``).
RECOMMENDED = dict(input_mapping="population", pruning="default", checkpoint_rule="best", standardize=True,
                   initial_state="learned", stimulus_inputs=True, resample="experiments")
RECOMMENDED_EXTRAS = ("std", "init", "stim", "resample")
VARIANTS = ("published", "corrected", "recommended")
KERNELS = ("auto", "dense", "sparse")


def sizes_dict(sizes) -> dict[str, int]:
    """``(Pyr, SST, VIP)`` unit counts (or a dict) as ``{"Pyr": ..., "SST": ..., "VIP": ...}``."""
    if isinstance(sizes, dict):
        return {t: int(sizes[t]) for t in TYPES}
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) != 3:
        raise BiornnError(f"sizes {sizes} must give three unit counts (Pyr, SST, VIP), e.g. 192,32,16")
    return dict(zip(TYPES, sizes))


@dataclass(frozen=True)
class CelltypeConfig:
    """Everything that determines a Figure 4 training run (the figure cache is keyed by all of it).

    Attributes:
        condition: one of :data:`CONDITIONS` (``familiar_change`` ...).
        seeds: one network per seed, trained together.
        window: ``full`` (15 steps) or ``half`` (steps 7-13, T = 7).
        sizes: units per population ``(Pyr, SST, VIP)`` (paper 192, 32, 16: N = 1440).
        dense_epochs, finetune_epochs: epochs of the two stages (paper 70 and 50).
        batch_size: mini-batch size (paper 200: 10 batches per epoch).
        n_train: train on the first ``n_train`` samples only (None = all 2000; the bootstrap samples are i.i.d.).
        lr, lr_min, t_max: Adam learning rate, cosine floor and half-period in epochs.
        input_mapping: ``population`` (default) or ``dense`` (as published).
        pruning: ``default`` (exact budgets) or ``as_published``.
        checkpoint_rule: ``best`` (default) or ``as_published``.
        dale: Dale projection after every step (False = vanilla control).
        readout_from_state: read out ``relu(a_t)`` instead of ``a_t`` (Q2 option).
        within_table, inter_table: connectivity CSV files (None = ``data/connectivity/``).
        standardize: train on per-population z-scores with the dataset's statistics pooled over all six
            conditions (:func:`biornn.curate.pooled_standardization`); fits are reported in ΔF/F.
        initial_state: ``zero`` (``r_0 = 0``, as published) or ``learned`` (a learned initial drive per unit).
        burn_in: leave the first ``burn_in`` predicted frames out of the training loss.
        stimulus_inputs: three extra inputs (image, change, omission codes of the predicted frame, from the
            stimulus table; :mod:`biornn.stimulus`) routed to every unit.
        resample: ``none`` (every run trains on the dataset), ``experiments`` or ``trials``: every run redraws its
            training set from the recorded rows (:mod:`biornn.replicates`), so runs are data replicates.
    """

    condition: str
    seeds: tuple[int, ...]
    window: str = "full"
    sizes: tuple[int, int, int] = (192, 32, 16)
    dense_epochs: int = 70
    finetune_epochs: int = 50
    batch_size: int = 200
    n_train: int | None = None
    lr: float = 1e-3
    lr_min: float = 1e-4
    t_max: int = 10
    input_mapping: str = "population"
    pruning: str = "default"
    checkpoint_rule: str = "best"
    dale: bool = True
    readout_from_state: bool = False
    within_table: str | None = None
    inter_table: str | None = None
    standardize: bool = False
    initial_state: str = "zero"
    burn_in: int = 0
    stimulus_inputs: bool = False
    resample: str = "none"

    def __post_init__(self):
        object.__setattr__(self, "condition", condition_name(self.condition))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        object.__setattr__(self, "sizes", tuple(sizes_dict(self.sizes).values()))
        if not self.seeds:
            raise BiornnError("no seeds given; pass at least one, e.g. --seeds 0,1,2")
        if len(set(self.seeds)) != len(self.seeds):
            raise BiornnError(f"repeated seed in {self.seeds}; give each seed once")
        for name, allowed in (("window", WINDOWS), ("input_mapping", INPUT_MAPPINGS), ("pruning", PRUNING),
                              ("checkpoint_rule", CHECKPOINT_RULES), ("initial_state", INITIAL_STATES),
                              ("resample", RESAMPLING)):
            if getattr(self, name) not in allowed:
                raise BiornnError(f"unknown {name} {getattr(self, name)!r}; use one of {', '.join(allowed)}")
        for name in ("dense_epochs", "finetune_epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise BiornnError(f"{name} must be a whole number >= 1, got {value!r}")
        if self.n_train is not None and self.n_train < 1:
            raise BiornnError(f"n_train = {self.n_train}; pass a positive number of samples or None (all)")
        if not isinstance(self.burn_in, int) or not 0 <= self.burn_in < 7:
            raise BiornnError(f"burn_in = {self.burn_in!r}; use a whole number of frames from 0 to 6")
        if self.batch_size < 1 or self.t_max < 1:
            raise BiornnError("batch_size and t_max must be >= 1")
        if not (self.lr > 0 and 0 <= self.lr_min <= self.lr):
            raise BiornnError(f"learning rates lr={self.lr}, lr_min={self.lr_min}: need 0 <= lr_min <= lr, lr > 0")

    @classmethod
    def published(cls, condition: str, seeds, **changes) -> CelltypeConfig:
        """The reference's switches: dense input weights, as-published pruning and sparse checkpoint rule."""
        base = dict(input_mapping="dense", pruning="as_published", checkpoint_rule="as_published")
        return cls(condition=condition, seeds=tuple(seeds), **{**base, **changes})

    @property
    def sizes_dict(self) -> dict[str, int]:
        return sizes_dict(self.sizes)

    @classmethod
    def recommended(cls, condition: str, seeds, **changes) -> CelltypeConfig:
        """The corrected switches plus pooled standardisation, a learned initial state, stimulus inputs and one
        resample of the experiments per run (:data:`RECOMMENDED`)."""
        return cls(condition=condition, seeds=tuple(seeds), **{**RECOMMENDED, **changes})

    @property
    def extras(self) -> tuple[str, ...]:
        """Short names of the switches on beyond the corrected variant (``std``, ``init``, ``stim``, ``resample``,
        ``burnin``)."""
        on = {"std": self.standardize, "init": self.initial_state == "learned", "stim": self.stimulus_inputs,
              "resample": self.resample != "none", "burnin": self.burn_in > 0}
        return tuple(k for k, v in on.items() if v)

    @property
    def variant(self) -> str:
        """``published``, ``corrected``, ``recommended``, ``corrected+std+init``, ``vanilla-published`` ... (a
        readable name for figure caches)."""
        pub = (self.input_mapping, self.pruning, self.checkpoint_rule) == ("dense", "as_published", "as_published")
        fix = (self.input_mapping, self.pruning, self.checkpoint_rule) == ("population", "default", "best")
        name = "published" if pub else "corrected" if fix else "mixed"
        if fix and self.extras == RECOMMENDED_EXTRAS and self.resample == "experiments":
            name = "recommended"
        elif self.extras:
            name = "+".join((name, *self.extras))
        return name if self.dale else f"vanilla-{name}"

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch`` (cosine annealing, stepped per epoch, never restarted)."""
        return self.lr_min + (self.lr - self.lr_min) * (1 + math.cos(math.pi * epoch / self.t_max)) / 2

    def to_dict(self) -> dict:
        """Every setting; the switches added after the first caches are left out while at their defaults, so
        older cache keys (hashes of this dict) stay valid."""
        d = dataclasses.asdict(self)
        d["seeds"] = list(self.seeds)
        d["sizes"] = list(self.sizes)
        for key, default in LATER_DEFAULTS.items():
            if d[key] == default:
                del d[key]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CelltypeConfig:
        d = {**LATER_DEFAULTS, **d}
        d["seeds"] = tuple(d["seeds"])
        d["sizes"] = tuple(d["sizes"])
        return cls(**d)


def celltype_config(condition: str = "familiar_change", mode: str | None = None, published: bool = False,
                    variant: str | None = None, **overrides) -> CelltypeConfig:
    """The Figure 4 configuration of ``condition`` in ``mode`` (paper: N = 1440, 70 + 50 epochs, 5 seeds).

    ``variant``: ``published``, ``corrected`` (default) or ``recommended`` (``published=True`` = ``published``).
    """
    sizes = dict(MODE_SIZES[get_mode(mode)])
    sizes.update(overrides)
    seeds = sizes.pop("seeds")
    variant = "published" if published else (variant or "corrected")
    if variant not in VARIANTS:
        raise BiornnError(f"unknown variant {variant!r}; use one of {', '.join(VARIANTS)}")
    if variant == "published":
        return CelltypeConfig.published(condition, seeds, **sizes)
    if variant == "recommended":
        return CelltypeConfig.recommended(condition, seeds, **sizes)
    return CelltypeConfig(condition=condition, seeds=tuple(seeds), **sizes)


#: The ablation of notebook 06: the recommended variant with one switch off at a time, between the corrected and
#: the recommended variants (label -> changes to :meth:`CelltypeConfig.recommended`).
ABLATION = {"published": None, "corrected": None, "recommended": {},
            "- pooled standardisation": {"standardize": False}, "- learned initial state": {"initial_state": "zero"},
            "- stimulus inputs": {"stimulus_inputs": False}, "- per-run resampling": {"resample": "none"}}


def ablation_configs(condition: str, mode: str | None = None, window: str = "half", **overrides
                     ) -> dict[str, CelltypeConfig]:
    """The configurations of :data:`ABLATION` for one condition, at ``mode``'s sizes."""
    out = {}
    for label, changes in ABLATION.items():
        if changes is None:
            out[label] = celltype_config(condition, mode, variant=label, window=window, **overrides)
        else:
            out[label] = celltype_config(condition, mode, variant="recommended", window=window,
                                         **{**overrides, **changes})
    return out


# ----------------------------------------------------------------------------------------------------------------
# Data and tables
# ----------------------------------------------------------------------------------------------------------------
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
                      "biornn.connectivity.POPULATION_LABELS or rebuild the dataset with biornn.curate")


def prepare_data(dataset: Dataset, window: str = "full", condition: str | None = None,
                 config: CelltypeConfig | None = None) -> CelltypeData:
    """Check a :class:`biornn.curate.Dataset`, cut its window and build the model's arrays.

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
                              "biornn.curate.load_windows (build with python -m biornn allen build --windows)")
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


# ----------------------------------------------------------------------------------------------------------------
# Pruning
# ----------------------------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------
def _permutations(seeds, n: int, *stream) -> torch.Tensor:
    """``(S, n)`` one shuffle per seed, derived from ``(seed, "shuffle", "celltype", *stream)``."""
    return torch.stack([torch.randperm(n, generator=torch.Generator().manual_seed(
        derive_seed(s, "shuffle", "celltype", *stream))) for s in seeds])


def per_seed_mse(out: torch.Tensor, y: torch.Tensor, burn_in: int = 0) -> torch.Tensor:
    """``(S,)`` MSE per seed, mean over batch, steps (from ``burn_in`` on) and the 18 outputs."""
    return ((out[:, :, burn_in:] - y[..., burn_in:, :]) ** 2).flatten(1).mean(1)


def batch_of(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``(S, B, T, C)`` batch of sample indices ``idx`` ``(S, B)`` from shared ``(n, T, C)`` or per-run
    ``(S, n, T, C)`` arrays."""
    if x.ndim == 4:
        return x[torch.arange(x.shape[0], device=x.device)[:, None], idx]
    return x[idx]


def train_epoch(model: CelltypeRNN, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                perms: torch.Tensor, batch_size: int, dale: bool = True, keep: torch.Tensor | None = None,
                on_step=None, burn_in: int = 0) -> torch.Tensor:
    """One epoch of (masked) training; the inner loop shared by training and the benchmark hook.

    Per batch: zero grads, forward, per-seed MSE, backward of their sum, gradient of ``W_rec`` zeroed outside
    ``keep``, Adam step, Dale projection (``dale``), ``W_rec <- W_rec * keep``.

    Args:
        model: the batched network.
        opt: its optimiser.
        x, y: ``(n, T, C)`` / ``(n, T, 18)`` training inputs and targets on the model's device (``(S, n, ...)``:
            one training set per seed).
        perms: ``(S, n)`` sample order per seed.
        batch_size: samples per batch.
        dale: apply the Dale projection after every step.
        keep: ``(S, N, N)`` float 0/1 connectivity mask, or None (dense stage).
        on_step: optional ``callback(model)`` after every step (tests check the invariants with it).
        burn_in: predicted frames left out of the loss.

    Returns:
        ``(S,)`` float64 mean batch loss of the epoch.
    """
    n = perms.shape[1]
    perms = perms.to(x.device)
    total = torch.zeros(model.n_seeds, dtype=torch.float64, device=x.device)
    batches = 0
    for lo in range(0, n, batch_size):
        idx = perms[:, lo:lo + batch_size]
        xb, yb = batch_of(x, idx), batch_of(y, idx)  # (S, B, T, C)
        opt.zero_grad(set_to_none=True)
        losses = per_seed_mse(model(xb), yb, burn_in)
        losses.sum().backward()
        if keep is not None:
            model.w_rec.grad.mul_(keep)
        opt.step()
        if dale:
            dale_project_(model.w_rec.data, model.signs)
        if keep is not None:
            model.w_rec.data.mul_(keep)
        total += losses.detach().double()
        batches += 1
        if on_step is not None:
            on_step(model)
    return total / batches


@torch.no_grad()
def predict(model: CelltypeRNN, x, max_elems: int = 2 ** 24) -> np.ndarray:
    """Predictions ``(S, n, T, 18)`` (float64) for inputs ``(n, T, C)`` (or one set per seed, ``(S, n, T, C)``), in
    chunks that bound memory."""
    x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=torch.float32,
                        device=model.w_rec.device)
    x = x if x.ndim == 4 else x[None]
    n = x.shape[1]
    if n == 0:
        return np.zeros((model.n_seeds, 0, x.shape[2], model.n_out))
    chunk = max(1, int(max_elems // (model.n_seeds * x.shape[2] * model.n_hidden)))
    outs = [to_numpy(model(x[:, lo:lo + chunk])).astype(np.float64) for lo in range(0, n, chunk)]
    return np.concatenate(outs, axis=1)


def _mse(model: CelltypeRNN, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    if x.shape[-3] == 0:
        return np.full(model.n_seeds, np.nan)
    pred = predict(model, x)
    y = to_numpy(y).astype(np.float64)
    return ((pred - (y if y.ndim == 4 else y[None])) ** 2).reshape(model.n_seeds, -1).mean(1)


def fit_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """Per-population fit of predicted vs recorded traces.

    Args:
        pred: ``(S, n, T, 18)`` predictions.
        target: ``(n, T, 18)`` recorded next frames (or ``(S, n, T, 18)``, one set per seed).

    Returns:
        ``r``, ``r2``: ``(S, 18)`` Pearson r and ``R^2 = 1 - SSE / SST`` pooled over all samples and steps of a
        population; ``trace_r``, ``trace_r2``: ``(S, 18)`` medians over samples of the same computed per 15-step
        trace (the published figure's quantity, one trace at a time); ``mse``: ``(S,)``.
    """
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    target = target if target.ndim == 4 else target[None]
    S, n, T, P = pred.shape

    def r_and_r2(p, t, axis):
        pc = p - p.mean(axis=axis, keepdims=True)
        tc = t - t.mean(axis=axis, keepdims=True)
        sst = (tc ** 2).sum(axis=axis)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (pc * tc).sum(axis=axis) / np.sqrt((pc ** 2).sum(axis=axis) * sst)
            r2 = 1 - ((p - t) ** 2).sum(axis=axis) / sst
        return r, r2

    r, r2 = r_and_r2(pred.reshape(S, n * T, P), np.broadcast_to(target, pred.shape).reshape(S, n * T, P), 1)
    tr, tr2 = r_and_r2(pred, np.broadcast_to(target, pred.shape), 2)
    return {"r": r, "r2": r2, "trace_r": np.nanmedian(tr, axis=1), "trace_r2": np.nanmedian(tr2, axis=1),
            "mse": ((pred - target) ** 2).reshape(S, -1).mean(1)}


def _save_torch(path: Path, obj) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _cpu(obj):
    """Deep-copy tensors of a (nested) state to the CPU."""
    if torch.is_tensor(obj):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu(v) for v in obj]
    return obj


@dataclass
class CelltypeResult:
    """What one batched Figure 4 run produced.

    Attributes:
        config: the :class:`CelltypeConfig`.
        device: where it ran.
        runs: one dict per seed: ``seed``; ``dense_loss``, ``dense_heldout_loss``, ``finetune_loss``,
            ``finetune_heldout_loss`` (per epoch, mean batch loss / held-out MSE); ``dense_best_epoch`` and
            ``sparse_epoch`` (1-based; ``sparse_epoch`` None when the as-published rule never saved, then the last
            epoch is used); ``pruned_batch_loss`` (one batch's MSE right after pruning, the reference's anchor),
            ``pruned_loss`` (training-set MSE right after pruning); ``heldout`` fits of the dense and sparse
            models (:func:`fit_metrics`, lists over populations); ``sign_violations``; ``outside_mask``;
            ``epoch_seconds``.
        arrays: the ``weights.npz`` arrays (see the module docstring).
        data: :meth:`CelltypeData.info`.
        wall_seconds: total wall time (this call; a resumed run counts only its own part).
    """

    config: CelltypeConfig
    device: str
    runs: list
    arrays: dict
    data: dict
    wall_seconds: float = 0.0
    directory: Path | None = None
    kernels: dict = field(default_factory=dict)

    @property
    def reference_factor(self) -> int:
        """Batches per epoch: multiply a mean batch loss by this for the reference's epoch sum."""
        return math.ceil(self.data["n_train"] / self.config.batch_size)

    def curve(self, key: str) -> np.ndarray:
        """``(S, epochs)`` array of one per-epoch metric."""
        return np.array([r[key] for r in self.runs], dtype=float)

    def metrics(self) -> dict:
        """The ``metrics.json`` content (command-line contract)."""
        return {"config": self.config.to_dict(), "device": self.device, "kernels": self.kernels, "data": self.data,
                "reference_factor": self.reference_factor, "runs": self.runs}

    def model(self, which: str = "sparse", device: str | None = "cpu") -> CelltypeRNN:
        """The network with ``which`` weights (``init``, ``dense``, ``sparse`` or ``last``) loaded."""
        return model_from_arrays(self.config, self.arrays, which, device)


def model_from_arrays(config: CelltypeConfig, arrays: dict, which: str = "sparse", device=None) -> CelltypeRNN:
    """Rebuild a :class:`CelltypeRNN` from stored arrays (``which`` in ``init``, ``dense``, ``sparse``, ``last``)."""
    keys = {"init": ("W_init", None), "dense": ("W_dense", "w_in_dense"), "sparse": ("W_sparse", "w_in_sparse"),
            "last": ("W_last", "w_in_last")}
    if which not in keys:
        raise BiornnError(f"unknown weights {which!r}; use one of {', '.join(keys)}")
    model = new_model(config)
    w_key, in_key = keys[which]
    with torch.no_grad():
        model.w_rec.copy_(torch.as_tensor(np.asarray(arrays[w_key])))
        if in_key is not None:
            model.w_in.copy_(torch.as_tensor(np.asarray(arrays[in_key])))
            if model.h0 is not None:
                model.h0.copy_(torch.as_tensor(np.asarray(arrays[in_key.replace("w_in", "h0")])))
        for name in ("w_out", "b_out"):
            if name in arrays:
                getattr(model, name).copy_(torch.as_tensor(np.asarray(arrays[name])))
    return model.to(device if isinstance(device, torch.device) else get_device(device))


def new_model(config: CelltypeConfig) -> CelltypeRNN:
    """The untrained network stack of ``config`` (its inputs and initial state as the switches say)."""
    return CelltypeRNN(config.seeds, config.sizes_dict, config.input_mapping, config.readout_from_state,
                       n_stimulus=len(STIMULUS_CHANNELS) if config.stimulus_inputs else 0,
                       learned_init=config.initial_state == "learned")


def _trained(model: CelltypeRNN) -> dict[str, torch.Tensor]:
    """Detached copies of the trained tensors kept for the best / sparse checkpoints (``w_rec``, ``w_in``, ``h0``)."""
    out = {"w_rec": model.w_rec.detach().clone(), "w_in": model.w_in.detach().clone()}
    if model.h0 is not None:
        out["h0"] = model.h0.detach().clone()
    return out


def _sync(dev: torch.device) -> None:
    """Wait for queued CUDA work (epoch timers measure work done, not launched); nothing on the CPU."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def train_celltype(config: CelltypeConfig, dataset: Dataset | CelltypeData, device: str | None = None,
                   out: str | os.PathLike | None = None, resume: bool = True, progress: bool = True,
                   on_step=None, on_epoch=None, checkpoint_every: int = 1, kernels: str = "auto") -> CelltypeResult:
    """Dense Dale's training, pruning and masked fine-tuning of all seeds of ``config`` (module docstring).

    Args:
        config: the run's configuration.
        dataset: the condition's dataset (:class:`biornn.curate.Dataset`) or prepared arrays.
        device: ``cpu``, ``cuda`` or None (CUDA when present).
        out: run folder; when given, stage checkpoints go to ``out/checkpoints/`` and ``metrics.json`` and
            ``weights.npz`` are written at the end (:func:`save_celltype`).
        resume: continue from ``out/checkpoints/resume.pt`` if present (same config and data required).
        progress: progress bars over epochs.
        on_step: ``callback(model, stage, mask)`` after every optimiser step (``mask`` None in the dense stage).
        on_epoch: ``callback(stage, epoch)`` after every completed (and checkpointed) epoch, 0-based.
        checkpoint_every: write ``resume.pt`` every this many epochs (and at the end of each stage).
        kernels: recurrence kernels of the masked fine-tuning stage: ``dense`` (masked dense matmuls), ``sparse``
            (CSR kernels over the mask, :meth:`CelltypeRNN.use_sparse_kernels`; same maths, float32 round-off
            apart) or ``auto`` (sparse on the CPU, where it measured ~2x faster at N = 1440; dense on CUDA, not
            measured). Not part of the configuration: recorded in ``metrics.json`` as ``kernels``.

    Returns:
        A :class:`CelltypeResult`.
    """
    t_start = time.perf_counter()
    dev = get_device(device)
    if kernels not in KERNELS:
        raise BiornnError(f"unknown kernels {kernels!r}; use one of {', '.join(KERNELS)}")
    if kernels == "auto":
        kernels = "sparse" if dev.type == "cpu" else "dense"
    data = dataset if isinstance(dataset, CelltypeData) else prepare_data(dataset, config.window, config.condition,
                                                                          config)
    if data.condition != config.condition:
        raise BiornnError(f"data hold condition {data.condition!r} but the run asks for {config.condition!r}")
    within, inter = connectivity_tables(config)
    sizes = config.sizes_dict
    model = new_model(config).to(dev)
    S = model.n_seeds
    if data.x.shape[-1] != model.n_in:
        raise BiornnError(f"data have {data.x.shape[-1]} input channels but the model takes {model.n_in}; prepare "
                          "the data with this config (prepare_data(..., config=config))")
    x, y = (torch.from_numpy(a[..., :config.n_train, :, :]).to(dev) for a in (data.x, data.y))
    hx, hy = torch.from_numpy(data.hx).to(dev), torch.from_numpy(data.hy).to(dev)
    n = x.shape[-3]
    B = min(config.batch_size, n)
    ckdir = Path(out) / "checkpoints" if out is not None else None
    identity = {"config": config.to_dict(), "data_sha256": data.sha256}

    def new_opt():
        return torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.999), eps=1e-8)

    opt = new_opt()
    state = None
    if out is not None and resume and (Path(out) / "metrics.json").exists() and not (ckdir / "resume.pt").exists():
        done = load_celltype(out)
        if done.config == config and done.data.get("sha256") == data.sha256:
            return done
    if ckdir is not None and resume and (ckdir / "resume.pt").exists():
        state = _load_checkpoint(ckdir / "resume.pt", dev)
        if state.get("identity") != identity:
            raise BiornnError(f"checkpoint {ckdir / 'resume.pt'} was written for another configuration or dataset; "
                              f"delete {ckdir} (or pass another --out) to start afresh")
        model.load_state_dict(state["model"])
        if state["stage"] == "finetune":
            opt = new_opt()
        opt.load_state_dict(state["opt"])
        W_init = state["W_init"].to(dev)
    else:
        W_init = model.w_rec.detach().clone()
        state = {"identity": identity, "stage": "dense", "epoch": 0,
                 "history": {k: [[] for _ in range(S)] for k in ("dense_loss", "dense_heldout_loss",
                                                                 "finetune_loss", "finetune_heldout_loss",
                                                                 "dense_seconds", "finetune_seconds")},
                 "best_loss": torch.full((S,), math.inf, dtype=torch.float64, device=dev),
                 "best_epoch": [0] * S, "best": _trained(model), "mask": None, "extra": {}}
        if ckdir is not None:
            _save_torch(ckdir / "initial.pt", {"identity": identity, "model": _cpu(model.state_dict())})
    state["W_init"] = W_init
    hist = state["history"]

    def checkpoint(force: bool = False):
        if ckdir is None:
            return
        if force or state["epoch"] % max(1, checkpoint_every) == 0:
            _save_torch(ckdir / "resume.pt", _cpu({**state, "model": model.state_dict(), "opt": opt.state_dict()}))

    def step_hook(stage, keep):
        if on_step is None:
            return None
        return lambda m: on_step(m, stage, keep)

    # ---- stage 1: dense training --------------------------------------------------------------------------
    if state["stage"] == "dense":
        epochs = range(state["epoch"], config.dense_epochs)
        for e in progress_bar(epochs, len(epochs), f"{config.condition}/dense", progress):
            t0 = time.perf_counter()
            for g in opt.param_groups:
                g["lr"] = config.lr_at(e)
            loss = train_epoch(model, opt, x, y, _permutations(config.seeds, n, "dense", e), B, config.dale,
                               None, step_hook("dense", None), config.burn_in)
            better = loss < state["best_loss"]
            state["best_loss"] = torch.where(better, loss, state["best_loss"])
            for key, value in _trained(model).items():
                state["best"][key][better] = value[better]
            held = _mse(model, hx, hy)
            _sync(dev)  # CUDA runs asynchronously: without this, dt would time the kernel launches only
            dt = time.perf_counter() - t0
            for s in range(S):
                if bool(better[s]):
                    state["best_epoch"][s] = e + 1
                hist["dense_loss"][s].append(float(loss[s]))
                hist["dense_heldout_loss"][s].append(float(held[s]))
                hist["dense_seconds"][s].append(dt)
            state["epoch"] = e + 1
            checkpoint(force=e + 1 == config.dense_epochs)
            if on_epoch is not None:
                on_epoch("dense", e)
        # reload the best dense epoch, prune, start the fine-tuning stage
        with torch.no_grad():
            for key, value in state["best"].items():
                getattr(model, key).copy_(value)
        if ckdir is not None:
            _save_torch(ckdir / "dense_best.pt", _cpu({"identity": identity, "model": model.state_dict(),
                                                        "best_epoch": state["best_epoch"]}))
        mask = prune_mask(model.w_rec.detach(), config.seeds, sizes, config.pruning, within, inter)
        with torch.no_grad():
            model.w_rec.mul_(mask)
        state["mask"] = mask
        first = _permutations(config.seeds, n, "threshold")[:, :B].to(dev)
        with torch.no_grad():
            batch_loss = per_seed_mse(model(batch_of(x, first)), batch_of(y, first), config.burn_in).double()
        state["extra"] = {"pruned_batch_loss": [float(batch_loss[s]) for s in range(S)],
                          "pruned_loss": [float(v) for v in _mse(model, x, y)]}
        factor = math.ceil(n / B)
        # sparse checkpoint bookkeeping (Q7): "best" = lowest mean epoch loss; "as_published" = the epoch
        # *sum* must beat a running minimum that starts at one batch's MSE of the pruned model
        published = config.checkpoint_rule == "as_published"
        start = batch_loss.clone() if published else torch.full_like(batch_loss, math.inf)
        state.update(stage="finetune", epoch=0, sparse_threshold=start, sparse_epoch=[None] * S,
                     sparse=_trained(model), sparse_factor=factor if published else 1)
        opt = new_opt()
        checkpoint(force=True)

    # ---- stage 3: masked fine-tuning --------------------------------------------------------------------
    keep = state["mask"].to(dev).float()
    if kernels == "sparse":
        model.use_sparse_kernels(keep)
    epochs = range(state["epoch"], config.finetune_epochs)
    for e in progress_bar(epochs, len(epochs), f"{config.condition}/fine-tune", progress):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = config.lr_at(e)
        loss = train_epoch(model, opt, x, y, _permutations(config.seeds, n, "finetune", e), B, config.dale, keep,
                           step_hook("finetune", keep), config.burn_in)
        score = loss * state["sparse_factor"]
        better = score < state["sparse_threshold"]
        state["sparse_threshold"] = torch.where(better, score, state["sparse_threshold"])
        for key, value in _trained(model).items():
            state["sparse"][key][better] = value[better]
        held = _mse(model, hx, hy)
        _sync(dev)  # CUDA runs asynchronously: without this, dt would time the kernel launches only
        dt = time.perf_counter() - t0
        for s in range(S):
            if bool(better[s]):
                state["sparse_epoch"][s] = e + 1
            hist["finetune_loss"][s].append(float(loss[s]))
            hist["finetune_heldout_loss"][s].append(float(held[s]))
            hist["finetune_seconds"][s].append(dt)
        state["epoch"] = e + 1
        checkpoint(force=e + 1 == config.finetune_epochs)
        if on_epoch is not None:
            on_epoch("finetune", e)

    model.use_sparse_kernels(None)

    # ---- results ------------------------------------------------------------------------------------------
    last = _trained(model)
    never = [s for s in range(S) if state["sparse_epoch"][s] is None]
    sparse = {k: v.clone() for k, v in state["sparse"].items()}
    for s in never:  # the as-published rule never saved: use the last epoch (flagged by sparse_epoch = None)
        for key in sparse:
            sparse[key][s] = last[key][s]
    if ckdir is not None:
        _save_torch(ckdir / "sparse.pt", _cpu({"identity": identity, "sparse": sparse, "last": last,
                                               "sparse_epoch": state["sparse_epoch"]}))
    mask = state["mask"].to(dev)
    arrays = {"W_init": to_numpy(state["W_init"]), "W_dense": to_numpy(state["best"]["w_rec"]),
              "W_sparse": to_numpy(sparse["w_rec"]), "W_last": to_numpy(last["w_rec"]),
              "mask": to_numpy(mask).astype(np.uint8),
              "signs": to_numpy(model.signs), "population": np.array([POPULATION_LABELS[i] for i in
                                                                      to_numpy(model.population)]),
              "population_index": to_numpy(model.population).astype(np.int64),
              "w_out": to_numpy(model.w_out), "b_out": to_numpy(model.b_out),
              "target_density": block_density(within, inter), "realised_density": realised_density(mask, sizes)}
    for key in ("w_in", "h0"):
        if key in last:
            for which, source in (("dense", state["best"]), ("sparse", sparse), ("last", last)):
                arrays[f"{key}_{which}"] = to_numpy(source[key])
    fits = {}
    hx_np, hy_np = (data.hx, data.hy) if data.hx.shape[0] else (data.x, data.y)
    for which in ("dense", "sparse"):  # fits in ΔF/F: predictions and targets mapped back from model units
        pred = predict(model_from_arrays(config, arrays, which, dev), hx_np)
        fits[which] = fit_metrics(data.to_dff(pred), data.to_dff(hy_np))
    runs = []
    signs = model.signs
    for s, seed in enumerate(config.seeds):
        run = {"seed": int(seed)}
        for key in ("dense_loss", "dense_heldout_loss", "finetune_loss", "finetune_heldout_loss"):
            run[key] = hist[key][s]
        run["epoch_seconds"] = {"dense": hist["dense_seconds"][s], "finetune": hist["finetune_seconds"][s]}
        # runs before this field timed CUDA epochs without synchronising (launch time only): condition_fits drops them
        run["epoch_timer"] = "synchronised"
        run["dense_best_epoch"] = int(state["best_epoch"][s])
        run["sparse_epoch"] = state["sparse_epoch"][s]
        run["pruned_batch_loss"] = state["extra"]["pruned_batch_loss"][s]
        run["pruned_loss"] = state["extra"]["pruned_loss"][s]
        run["heldout_split"] = "heldout" if data.hx.shape[0] else "train (the dataset has no held-out split)"
        run["heldout"] = {w: {k: (np.asarray(v[s]).tolist()) for k, v in fits[w].items()} for w in fits}
        run["sign_violations"] = {k: sign_violations(torch.as_tensor(arrays[k][s]), signs.cpu())
                                  for k in ("W_dense", "W_sparse", "W_last")}
        run["outside_mask"] = int(((arrays["W_sparse"][s] != 0) & (arrays["mask"][s] == 0)).sum()
                                  + ((arrays["W_last"][s] != 0) & (arrays["mask"][s] == 0)).sum())
        runs.append(run)
    info = {**data.info(), "n_train": int(n), "n_available": int(data.x.shape[0])}
    result = CelltypeResult(config, dev.type, runs, arrays, info, time.perf_counter() - t_start,
                            kernels={"dense": "dense", "finetune": kernels})
    if out is not None:
        save_celltype(result, out)
        result.directory = Path(out)
        if (ckdir / "resume.pt").exists():
            (ckdir / "resume.pt").unlink()
    return result


def _load_checkpoint(path: Path, device) -> dict:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # truncated or foreign file
        raise BiornnError(f"corrupt checkpoint {path} ({type(exc).__name__}: {exc}); delete it to start afresh"
                          ) from None


def save_celltype(result: CelltypeResult, directory: str | os.PathLike) -> Path:
    """Write ``metrics.json`` and ``weights.npz`` into ``directory`` (each atomically; weights first).

    ``metrics.json`` appears last, so its presence marks a complete run; ``directory/checkpoints`` is kept.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise BiornnError(f"output path {directory} is a file; pass a folder path for --out")
    buf = io.BytesIO()
    np.savez_compressed(buf, **result.arrays)
    atomic_write_bytes(directory / "weights.npz", buf.getvalue())
    metrics = result.metrics()
    metrics["provenance"] = provenance(result.device, result.wall_seconds)
    text = json.dumps(metrics, indent=1, default=_json_default) + "\n"
    atomic_write_bytes(directory / "metrics.json", text.encode())
    return directory


def load_celltype(directory: str | os.PathLike) -> CelltypeResult:
    """Read a run folder written by :func:`save_celltype` (``python -m biornn celltype train``)."""
    metrics, arrays = load_run(directory, required=("W_init", "W_dense", "W_sparse", "mask", "signs"))
    try:
        config = CelltypeConfig.from_dict(metrics["config"])
    except (TypeError, KeyError) as exc:
        raise BiornnError(f"{directory}/metrics.json is not a cell-type run ({exc}); pass the folder written by "
                          "python -m biornn celltype train") from None
    wall = metrics.get("provenance", {}).get("wall_seconds", float("nan"))
    return CelltypeResult(config, metrics.get("device", "?"), metrics["runs"], arrays, metrics.get("data", {}),
                          wall, Path(directory), metrics.get("kernels", {}))


# ----------------------------------------------------------------------------------------------------------------
# Identifiability on twin data
# ----------------------------------------------------------------------------------------------------------------
def ground_truth_for(dataset: Dataset) -> np.ndarray:
    """The twin's ``(18, 18)`` ``[post, pre]`` population connectivity of ``dataset``'s condition.

    Raises:
        BiornnError: the dataset does not come from the digital twin (real data have no ground truth).
    """
    from biornn.synthetic import TwinConfig, ground_truth_connectivity

    if dataset.source != "twin" or "twin_config" not in dataset.manifest:
        raise BiornnError(f"dataset {dataset.condition} comes from {dataset.source!r}, not the digital twin; "
                          "ground truth exists only for twin data")
    return ground_truth_connectivity(TwinConfig.from_dict(dataset.manifest["twin_config"]))[dataset.condition]


def identifiability(W, ground_truth: np.ndarray, sizes) -> dict:
    """How well block averages of fitted weights recover a ground-truth population connectivity.

    Over the blocks where the ground truth is nonzero: Spearman rank correlation of the fitted block means
    (zeros included) with the ground truth, signed (``rho``) and of magnitudes (``rho_abs``, the harder test:
    signs are fixed by Dale's law); the same for the population coupling ``n_pre x block mean``
    (``rho_coupling_abs``: a rate model's ``W[post, pre]`` multiplies a population's mean rate, the RNN sums over
    its ``n_pre`` units); and the sign agreement (an all-zero block counts as disagreeing).

    Args:
        W: ``(S, N, N)`` fitted recurrent weights ``W[post, pre]``.
        ground_truth: ``(18, 18)`` ``[post, pre]``.
        sizes: units per population.

    Returns:
        Dict of ``(S,)`` arrays ``rho``, ``rho_abs``, ``rho_coupling_abs``, ``sign_agreement``; the same four for
        the seed-mean block matrix (keys with suffix ``_of_mean``); ``n_blocks``; ``block_means`` ``(S, 18, 18)``.
    """
    from scipy.stats import spearmanr

    W = np.asarray(W, dtype=np.float64)
    W = W[None] if W.ndim == 2 else W
    gt = np.asarray(ground_truth, dtype=np.float64)
    sizes = sizes_dict(sizes)
    bm = np.stack([block_means(w, sizes) for w in W])
    n_pre = populations(sizes)["size"].to_numpy(dtype=np.float64)
    nz = gt != 0

    def scores(m):
        a, g = m[nz], gt[nz]
        return {"rho": spearmanr(a, g)[0], "rho_abs": spearmanr(np.abs(a), np.abs(g))[0],
                "rho_coupling_abs": spearmanr(np.abs((m * n_pre[None, :])[nz]), np.abs(g))[0],
                "sign_agreement": float(np.mean(np.sign(a) == np.sign(g)))}

    per = [scores(m) for m in bm]
    out = {k: np.array([p[k] for p in per], dtype=float) for k in per[0]}
    out.update({f"{k}_of_mean": v for k, v in scores(bm.mean(0)).items()})
    out["n_blocks"] = int(nz.sum())
    out["block_means"] = bm
    return out


# ----------------------------------------------------------------------------------------------------------------
# Figure summaries (the paper-mode cache keeps these, not the full runs)
# ----------------------------------------------------------------------------------------------------------------
def nonzero_mean_abs(W, sizes) -> np.ndarray:
    """``(S, 18, 18)`` mean ``|w|`` over the nonzero entries of every block (NaN for empty blocks; Q4)."""
    W = np.asarray(W, dtype=np.float64)
    sizes = sizes_dict(sizes)
    total = np.stack([block_means(np.abs(w), sizes) for w in W])
    dens = np.stack([block_means((w != 0).astype(np.float64), sizes) for w in W])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(dens > 0, total / dens, np.nan)


def summarize(result: CelltypeResult, dataset: Dataset | None = None, n_traces: int = 4,
              matrices_seed: int | None = 0, n_train_fit: int = 500) -> dict:
    """What the Figure 4 notebook plots, from a run (and its dataset for traces and ground truth).

    Returns:
        Dict with ``config`` (dict), ``data``, ``runs`` (the per-seed metrics) and float64 arrays:
        ``block_mean_{init,dense,sparse}`` and ``block_abs_{init,dense,sparse}`` ``(S, 18, 18)`` (zeros included),
        ``nonzero_abs_sparse`` ``(S, 18, 18)``, ``realised_density`` ``(S, 18, 18)``, ``target_density``
        ``(18, 18)``, ``trace_inputs``/``trace_targets`` ``(K, T, 18)`` and ``trace_{dense,sparse}``
        ``(S, K, T, 18)`` (the first ``n_traces`` held-out samples), ``baselines`` (:func:`baselines`), seed
        ``matrices_seed``'s ``W_init``, ``W_dense``, ``W_sparse`` ``(N, N)`` float32 (display only), and, for twin
        data, ``ground_truth`` ``(18, 18)`` with ``identifiability`` (and a structure-only baseline
        ``W_init * mask``, ``identifiability_baseline``). With a dataset, every run also gets ``train_fit`` (``r``,
        ``r2`` per population of the sparse model on the first ``n_train_fit`` training samples: the quantity the
        reference reports) beside its held-out ``heldout`` fits.
    """
    cfg = result.config
    sizes = cfg.sizes_dict
    arr = result.arrays
    out: dict = {"config": cfg.to_dict(), "data": dict(result.data), "runs": result.runs, "device": result.device,
                 "reference_factor": result.reference_factor, "wall_seconds": result.wall_seconds}
    for which, key in (("init", "W_init"), ("dense", "W_dense"), ("sparse", "W_sparse")):
        W = np.asarray(arr[key], dtype=np.float64)
        out[f"block_mean_{which}"] = np.stack([block_means(w, sizes) for w in W])
        out[f"block_abs_{which}"] = np.stack([block_means(w, sizes, absolute=True) for w in W])
    out["nonzero_abs_sparse"] = nonzero_mean_abs(arr["W_sparse"], sizes)
    out["realised_density"] = np.asarray(arr["realised_density"], dtype=np.float64)
    out["target_density"] = np.asarray(arr["target_density"], dtype=np.float64)
    if matrices_seed is not None:
        s = list(cfg.seeds).index(matrices_seed) if matrices_seed in cfg.seeds else 0
        for key in ("W_init", "W_dense", "W_sparse"):
            out[f"{key}_seed"] = np.asarray(arr[key][s], dtype=np.float32)
        out["matrices_seed"] = int(cfg.seeds[s])
    if dataset is not None:
        data = prepare_data(dataset, cfg.window, cfg.condition, cfg)  # the model's arrays
        raw = prepare_data(dataset, cfg.window, cfg.condition)  # ΔF/F, the dataset's own training set
        hx, hy = (data.hx, data.hy) if data.hx.shape[0] else (data.x, data.y)
        # fits on training samples too: the reference reports r on its training data only (Q5), so this is the
        # number to set beside its 0.94-0.97; the held-out fits in runs[...]["heldout"] are the honest ones
        n_fit = min(n_train_fit, data.x.shape[-3])
        train_pred = predict(result.model("sparse"), data.x[..., :n_fit, :, :])
        train_fits = fit_metrics(data.to_dff(train_pred), data.to_dff(data.y[..., :n_fit, :, :]))
        out["runs"] = [{**run, "train_fit": {key: np.asarray(train_fits[key][i]).tolist() for key in ("r", "r2")},
                        "train_fit_samples": int(n_fit)} for i, run in enumerate(result.runs)]
        k = min(n_traces, hx.shape[-3])
        rhx, rhy = (raw.hx, raw.hy) if raw.hx.shape[0] else (raw.x, raw.y)
        out["trace_inputs"], out["trace_targets"] = rhx[:k].astype(np.float64), rhy[:k].astype(np.float64)
        for which in ("dense", "sparse"):
            out[f"trace_{which}"] = data.to_dff(predict(result.model(which), hx[..., :k, :, :]))
        out["baselines"] = baselines(rhx, rhy, raw.x, raw.y) if raw.hx.shape[0] else baselines(rhx, rhy)
        if dataset.source == "twin" and "twin_config" in dataset.manifest:
            gt = ground_truth_for(dataset)
            out["ground_truth"] = gt
            ident = identifiability(arr["W_sparse"], gt, sizes)
            base = identifiability(np.asarray(arr["W_init"]) * np.asarray(arr["mask"]), gt, sizes)
            out["identifiability"] = {k: v for k, v in ident.items() if k != "block_means"}
            out["identifiability_baseline"] = {k: v for k, v in base.items() if k != "block_means"}
    return out


def linear_history_predict(train_inputs, train_targets, inputs, history: int = 4, ridge: float = 1e-3) -> np.ndarray:
    """A fitted linear reference predictor: per-step ridge regression on the last ``history`` frames.

    For every step ``t`` a separate linear map (with an unpenalised intercept, so it also learns the mean time
    course) predicts the 18 next frames from the 18 x ``history`` frames ``x_{t-history+1} .. x_t`` (zeros before
    the first frame), fitted on the training samples only and applied to ``inputs``. It knows the step index and the
    sample's recent past, like the RNN (whose hidden state carries the past) and unlike :func:`baselines`'
    ``time_mean``, which knows only the average. Not a ceiling (a better predictor may exist): a level the data
    demonstrably allow from the same inputs.

    Args:
        train_inputs, train_targets: ``(n, T, P)`` training frames ``t`` and ``t + 1``.
        inputs: ``(m, T, P)`` frames to predict from (e.g. the held-out inputs).
        history: frames of the past per prediction (>= 1).
        ridge: penalty as a fraction of the mean diagonal of the centred Gram matrix (scale-free; the fits are
            insensitive between 1e-5 and 1e-2 on the twin).

    Returns:
        ``(m, T, P)`` float64 predictions of the next frames.
    """
    x = np.asarray(train_inputs, dtype=np.float64)
    y = np.asarray(train_targets, dtype=np.float64)
    z = np.asarray(inputs, dtype=np.float64)
    if x.ndim != 3 or x.shape != y.shape or z.ndim != 3 or z.shape[1:] != x.shape[1:]:
        raise BiornnError(f"linear_history_predict needs (n, T, P) training inputs and targets of one shape and "
                          f"(m, T, P) inputs; got {x.shape}, {y.shape} and {z.shape}")
    if history < 1 or not ridge > 0:
        raise BiornnError(f"history must be >= 1 and ridge > 0; got history={history}, ridge={ridge}")
    if x.shape[0] < 2:
        raise BiornnError(f"linear_history_predict needs at least 2 training samples; got {x.shape[0]}")

    def lagged(a):  # (n, T, history * P): frames t-history+1 .. t, zero-padded before the window
        n, T, P = a.shape
        padded = np.concatenate([np.zeros((n, history - 1, P)), a], axis=1)
        return np.stack([padded[:, t:t + history].reshape(n, -1) for t in range(T)], axis=1)

    F, G = lagged(x), lagged(z)
    out = np.empty(z.shape, dtype=np.float64)
    for t in range(x.shape[1]):  # T <= 15 small solves; the samples are vectorised
        mu, ym = F[:, t].mean(0), y[:, t].mean(0)
        A = F[:, t] - mu
        gram = A.T @ A
        lam = ridge * np.trace(gram) / len(gram)
        gram[np.diag_indices_from(gram)] += lam if lam > 0 else 1.0  # all-constant features: w = 0
        w = np.linalg.solve(gram, A.T @ (y[:, t] - ym))
        out[:, t] = (G[:, t] - mu) @ w + ym
    return out


#: Display names of the reference predictors of :func:`baselines` (keys as stored in the summaries).
REFERENCE_NAMES = {"persistence": "persistence", "time_mean": "held-out average trace (oracle)",
                   "train_mean": "training average trace", "linear_history": "linear history predictor"}


def baselines(inputs, targets, train_inputs=None, train_targets=None, history: int = 4) -> dict:
    """Reference predictors of the next frame, scored like the model (:func:`fit_metrics`) on ``inputs/targets``.

    ``persistence``: the next frame equals the current one (``y_t = x_t``). ``time_mean``: the mean trace of the
    scored samples themselves (an *oracle*: it knows the average time course of the set it is scored on, which a
    model trained on other trials does not). With training arrays, two honest predictors fitted on them only:
    ``train_mean`` (the training samples' mean trace) and ``linear_history`` (:func:`linear_history_predict`, per-step
    ridge on the last ``history`` frames). Returns ``{name: {"mse": float, "r2": (P,) list, "r": (P,) list}}``.
    """
    x = np.asarray(inputs, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    preds = {"persistence": x, "time_mean": np.broadcast_to(y.mean(0, keepdims=True), y.shape)}
    if train_inputs is not None and train_targets is not None:
        ty = np.asarray(train_targets, dtype=np.float64)
        if ty.shape[1:] != y.shape[1:]:
            raise BiornnError(f"training targets {ty.shape} and scored targets {y.shape} differ in steps or "
                              "populations; pass arrays of the same condition and window")
        preds["train_mean"] = np.broadcast_to(ty.mean(0, keepdims=True), y.shape)
        preds["linear_history"] = linear_history_predict(train_inputs, ty, x, history=history)
    out = {}
    for name, pred in preds.items():
        fits = fit_metrics(pred[None], y)
        out[name] = {"mse": float(fits["mse"][0]), "r2": fits["r2"][0].tolist(), "r": fits["r"][0].tolist()}
    return out


def save_summary(summary: dict, directory: str | os.PathLike) -> Path:
    """Write a :func:`summarize` dict as ``summary.npz`` (arrays) plus ``summary.json`` (the rest), atomically."""
    directory = Path(directory)
    arrays = {k: v for k, v in summary.items() if isinstance(v, np.ndarray)}
    rest = {k: v for k, v in summary.items() if not isinstance(v, np.ndarray)}
    # the (N, N) display matrices dominate the file (8 MB each at N = 1440). W_init is not stored: load_summary
    # regenerates it from the config and the seed (seeded initialisation). W_dense and W_sparse are stored as
    # float16 (about 3 significant digits, weights below ~6e-8 become 0; display only), read back as float32.
    arrays.pop("W_init_seed", None)
    for key in ("W_dense_seed", "W_sparse_seed"):
        if key in arrays:
            arrays[key] = arrays[key].astype(np.float16)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(directory / "summary.npz", buf.getvalue())
    _write_summary_json(directory, rest)
    return directory


def _write_summary_json(directory: Path, rest: dict) -> None:
    atomic_write_bytes(directory / "summary.json", (json.dumps(rest, indent=1, default=_json_default) + "\n").encode())


def load_summary_json(directory: str | os.PathLike) -> dict:
    """The JSON half of a summary (fits, losses, config; no arrays), with one-line errors for a missing or corrupt
    file. What :func:`condition_fits` reads: the small file only."""
    path = Path(directory) / "summary.json"
    try:
        rest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BiornnError(f"no Figure 4 summary in {path.parent} (summary.json missing); compute it with "
                          "python -m biornn celltype summarize") from None
    except (OSError, ValueError) as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BiornnError(f"corrupt Figure 4 summary {path} ({type(exc).__name__}: {exc}); delete its folder and "
                          "summarise again (python -m biornn celltype summarize)") from None
    if not isinstance(rest, dict) or "runs" not in rest:
        raise BiornnError(f"corrupt Figure 4 summary {path} (no 'runs'); delete its folder and summarise again")
    return rest


def refresh_baselines(directory: str | os.PathLike, dataset: Dataset, history: int = 4) -> dict:
    """Recompute the reference predictors (:func:`baselines`) of a cached summary from its dataset.

    They depend on the data only, so a summary written before a predictor existed gets it without its run's
    weights. The dataset must be the one the run was trained on: its window's arrays must hash to the summary's
    ``data.sha256``. ``summary.json`` is rewritten atomically; the arrays are untouched.

    Returns:
        The new ``baselines`` dict.
    """
    directory = Path(directory)
    rest = load_summary_json(directory)
    cfg = CelltypeConfig.from_dict(rest["config"])
    data = prepare_data(dataset, cfg.window, cfg.condition)
    want = rest.get("data", {}).get("sha256")
    if want != data.sha256:
        raise BiornnError(f"{directory}: the dataset ({dataset.condition}, {cfg.window} window) hashes to "
                          f"{data.sha256[:12]}, the summary was trained on {str(want)[:12]}; pass the dataset folder "
                          "the run was trained on")
    if not data.hx.shape[0]:
        raise BiornnError(f"{directory}: the dataset has no held-out samples; the reference predictors are scored "
                          "on held-out data")
    rest["baselines"] = baselines(data.hx, data.hy, data.x, data.y, history=history)
    _write_summary_json(directory, rest)
    return rest["baselines"]


def load_summary(directory: str | os.PathLike) -> dict:
    """Read a folder written by :func:`save_summary`."""
    directory = Path(directory)
    rest = load_summary_json(directory)
    try:
        with np.load(directory / "summary.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError as exc:
        raise BiornnError(f"no Figure 4 summary in {directory} ({exc.filename} missing); compute it with "
                          "python -m biornn celltype summarize") from None
    except (ValueError, OSError, json.JSONDecodeError) as exc:
        raise BiornnError(f"corrupt Figure 4 summary in {directory} ({exc}); delete it and summarise again") from None
    for key in ("identifiability", "identifiability_baseline"):
        if key in rest:
            rest[key] = {k: np.asarray(v, dtype=float) if isinstance(v, list) else v for k, v in rest[key].items()}
    arrays = {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in arrays.items()}
    if "matrices_seed" in rest and "W_init_seed" not in arrays:
        cfg = CelltypeConfig.from_dict(rest["config"])
        model = new_model(dataclasses.replace(cfg, seeds=(rest["matrices_seed"],)))
        arrays["W_init_seed"] = model.w_rec.detach().numpy()[0].astype(np.float32)
    return {**rest, **arrays}


def summary_dir(config: CelltypeConfig, root: str | os.PathLike | None = None, twin: str | None = None) -> Path:
    """Cache folder of a configuration's summary: ``data/results/fig4/<abbr>-<window>-<variant>[-<twin>]-<key>``
    (``twin``: ``planted`` / ``null`` for runs on the current twins; older caches have no twin token)."""
    name = f"{ABBREVIATIONS[config.condition]}-{config.window}-{config.variant}" + (f"-{twin}" if twin else "")
    return run_dir("fig4", name, config.to_dict(), root)


# ----------------------------------------------------------------------------------------------------------------
# Finding the cached runs
# ----------------------------------------------------------------------------------------------------------------
def _run_variant(cfg: dict) -> str | None:
    """:attr:`CelltypeConfig.variant` of a stored ``config``; None when it is not a complete Fig 4 config."""
    try:
        return CelltypeConfig.from_dict(cfg).variant
    except (TypeError, KeyError, ValueError, BiornnError):
        return None


def read_run_config(directory: Path) -> dict:
    for name in ("metrics.json", "summary.json"):
        try:
            data = json.loads((directory / name).read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(data, dict) and isinstance(data.get("config"), dict):
            return data["config"]
    return {}


def _identify(directory: Path, cfg: dict) -> tuple[str | None, str | None, str | None]:
    """(condition abbreviation, window, variant) of a Fig 4 folder, from its config or else its name."""
    cond, window, variant = cfg.get("condition"), cfg.get("window"), _run_variant(cfg)
    name = directory.name
    tokens = re.split(r"[-.\s]+", name)
    if cond is None:
        for token in tokens:
            if token.upper() in ABBREVIATIONS.values() or token.lower() in CONDITIONS:
                cond = token
                break
    if window is None:
        low = {t.lower() for t in re.split(r"[-_.\s]+", name)}
        window = "half" if "half" in low else "full"
    if variant is None:
        low = name.lower()
        base = "published" if "published" in low else "corrected" if "corrected" in low else None
        variant = None if base is None else f"vanilla-{base}" if "vanilla" in low else base
        if variant is None and "vanilla" in low:
            variant = "vanilla"
    try:
        cond = condition_abbrev(cond) if cond is not None else None
    except BiornnError:
        cond = None
    return cond, str(window).lower(), variant


def _read_twin(directory: Path) -> str | None:
    """``planted`` / ``null`` for runs on the current twins (recorded in the run's data info), else None."""
    for name in ("summary.json", "metrics.json"):
        try:
            data = json.loads((directory / name).read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(data, dict) and isinstance(data.get("data"), dict):
            return data["data"].get("twin")
    return None


def find_fig4_runs(root: str | os.PathLike | None = None, variant: str | None = None, twin: str | None = None,
                   **config_filter) -> dict[tuple[str, str], Path]:
    """The Fig 4 folders under ``root`` (default ``data/results/fig4``): ``{(window, condition): folder}``.

    A folder counts when it holds ``weights.npz`` (a training run) or ``summary.npz`` (the figure cache of
    :func:`biornn.celltype.save_summary`). Its condition, window and variant come from the ``config`` in
    ``metrics.json`` / ``summary.json`` or else from its name (``FC`` / ``familiar_change``, ``full`` / ``half``,
    ``published`` / ``corrected`` / ``vanilla``; no window token means ``full``).

    Args:
        root: folder to search.
        variant: keep only this variant (``published``, ``corrected``, ``vanilla-published`` ...); None keeps every
            variant without Dale's-projection-free (vanilla) training.
        twin: keep only runs on this twin (``planted`` / ``null``, recorded by runs on the current twins); None
            keeps all.
        **config_filter: keep folders whose ``config`` has these values (e.g. ``pruning="as_published"``).

    Raises:
        BiornnError: two folders match the same (window, condition); choose with ``variant`` or ``config_filter``.
    """
    root = Path(root) if root is not None else RESULTS_DIR / "fig4"
    if not root.is_dir():
        return {}
    found: dict[tuple[str, str], Path] = {}
    for directory in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not ((directory / "weights.npz").exists() or (directory / "summary.npz").exists()):
            continue
        cfg = read_run_config(directory)
        if any(cfg.get(k) != v for k, v in config_filter.items()):
            continue
        if twin is not None and _read_twin(directory) != twin:
            continue
        cond, window, found_variant = _identify(directory, cfg)
        if cond is None:
            continue
        if variant is None and found_variant is not None and found_variant.startswith("vanilla"):
            continue
        if variant is not None and found_variant != variant:
            continue
        key = (window, cond)
        if key in found:
            raise BiornnError(f"two Fig 4 runs for {cond} ({window} window): {found[key].name} and {directory.name}; "
                              "choose one with variant= (published, corrected) or a config filter")
        found[key] = directory
    return found


def condition_fits(root: str | os.PathLike | None = None, variant: str = "published", threshold: float = 0.9):
    """Held-out fit of every cached Figure 4 summary (one row per condition, window and seed).

    Args:
        root: the figure cache (default ``data/results/fig4``).
        variant: ``published``, ``corrected`` ... (:attr:`CelltypeConfig.variant`).
        threshold: the bar on the median r (issue: at least 0.9 per condition).

    Returns:
        A ``pandas.DataFrame`` with ``condition`` (FC ...), ``window``, ``seed``, ``median_r`` and ``median_r2``
        (sparse model, median over the 18 populations of r / R^2 pooled over held-out samples and steps),
        ``trace_median_r`` (per 15-step trace, median over held-out samples, then over populations: the
        published panel's quantity, one trial at a time), ``dense_median_r``, ``train_median_r`` (the same on
        training samples, the reference's quantity; NaN for summaries written before it was stored),
        ``time_mean_r`` (the held-out median r of the held-out set's own average trace: an oracle that knows the
        mean time course of the very trials it is scored on), ``train_mean_r`` (the same for the training samples'
        average trace, an honest blind predictor) and ``linear_history_r`` (per-step ridge regression on the last 4
        frames fitted on the training samples, :func:`linear_history_predict`: a level the data allow; NaN where a
        summary predates these predictors, see :func:`refresh_baselines`), ``pruned_batch_loss``,
        ``finetune_loss`` (last epoch, mean batch loss), ``sign_violations``,
        ``outside_mask``, ``device``, ``train_minutes`` (the summed epoch times of the batched run, all seeds
        together: correct across resumes; NaN for CUDA runs trained before the epoch timer synchronised, whose
        epoch times count kernel launches only; pruning, per-epoch held-out evaluation, checkpoint writes and the final
        evaluation not included), ``wall_minutes`` (the run's wall time as recorded: all of those, and any pause of
        the process; the last session only, if it was resumed),
        ``passes`` (``median_r >= threshold``) and, on twin data, ``rho_abs`` / ``rho_abs_structure``: the rank
        correlation of fitted |block means| with the ground truth (:func:`identifiability`) for the sparse model and
        for the structure-only baseline ``W_init * mask`` (NaN on real data). Empty when nothing is cached.
    """
    import pandas as pd


    rows = []
    for (window, condition), folder in sorted(find_fig4_runs(root, variant=variant).items()):
        if not (folder / "summary.json").exists():
            continue
        summary = load_summary_json(folder)
        ident, base = summary.get("identifiability", {}), summary.get("identifiability_baseline", {})
        references = {f"{name}_r": float(np.median(summary["baselines"][name]["r"]))
                      if name in summary.get("baselines", {}) else float("nan")
                      for name in ("time_mean", "train_mean", "linear_history")}
        for k, run in enumerate(summary["runs"]):
            fits = run["heldout"]
            r = float(np.median(fits["sparse"]["r"]))
            rows.append({"condition": ABBREVIATIONS.get(condition, condition), "window": window, "seed": run["seed"],
                         "median_r": r, "median_r2": float(np.median(fits["sparse"]["r2"])),
                         "trace_median_r": float(np.median(fits["sparse"]["trace_r"])),
                         "dense_median_r": float(np.median(fits["dense"]["r"])),
                         "train_median_r": float(np.median(run["train_fit"]["r"])) if "train_fit" in run
                         else float("nan"),
                         **references,
                         "pruned_batch_loss": run["pruned_batch_loss"], "finetune_loss": run["finetune_loss"][-1],
                         "sign_violations": int(sum(run["sign_violations"].values())),
                         "outside_mask": int(run["outside_mask"]), "device": summary.get("device", "?"),
                         "train_minutes": sum(sum(v) for v in run["epoch_seconds"].values()) / 60
                         if summary.get("device") == "cpu" or run.get("epoch_timer") == "synchronised"
                         else float("nan"),
                         "wall_minutes": float(summary.get("wall_seconds") or float("nan")) / 60,
                         "passes": r >= threshold,
                         "rho_abs": ident["rho_abs"][k] if "rho_abs" in ident else float("nan"),
                         "rho_abs_structure": base["rho_abs"][k] if "rho_abs" in base else float("nan")})
    return pd.DataFrame(rows)


def population_fits(condition: str, window: str = "full", variant: str = "published",
                    root: str | os.PathLike | None = None):
    """Held-out r per population of one cached condition and window, beside the honest reference predictors.

    Args:
        condition: ``FN``, ``familiar_no_change`` ...
        window: ``full`` or ``half``.
        variant: ``published``, ``corrected`` ...
        root: the figure cache (default ``data/results/fig4``).

    Returns:
        A ``pandas.DataFrame`` indexed by population label (model order) with ``model_r`` (sparse model, median over
        seeds), ``model_r_min`` / ``model_r_max`` (over seeds), ``train_mean_r`` and ``linear_history_r``
        (:func:`baselines`; NaN where the summary predates them).

    Raises:
        BiornnError: no summary cached for that condition, window and variant.
    """
    import pandas as pd


    abbr = condition_abbrev(condition)
    folder = find_fig4_runs(root, variant=variant).get((window, abbr))
    if folder is None:
        raise BiornnError(f"no cached Figure 4 summary for {abbr} {window} ({variant}); train and summarise it "
                          "(python -m biornn celltype train / summarize) or pick a cached condition")
    summary = load_summary_json(folder)
    r = np.array([run["heldout"]["sparse"]["r"] for run in summary["runs"]])  # (seeds, 18)
    base = summary.get("baselines", {})
    nan = [float("nan")] * r.shape[1]
    return pd.DataFrame({"model_r": np.median(r, 0), "model_r_min": r.min(0), "model_r_max": r.max(0),
                         "train_mean_r": base.get("train_mean", {}).get("r", nan),
                         "linear_history_r": base.get("linear_history", {}).get("r", nan)},
                        index=list(POPULATION_LABELS))


# ----------------------------------------------------------------------------------------------------------------
# Benchmark hook
# ----------------------------------------------------------------------------------------------------------------
def benchmark_epochs(sizes=(192, 32, 16), n_seeds: int = 5, steps: int = 15, batch_size: int = 200,
                     n_samples: int = 2000, device: str | None = None, pruning: str = "default",
                     input_mapping: str = "dense") -> dict:
    """Time one dense Dale's epoch and one masked fine-tuning epoch of the given sizes (random data).

    Exactly the inner loop of :func:`train_celltype` (:func:`train_epoch`): dense Adam steps with the Dale
    projection; then :func:`prune_mask` on the trained weights and one epoch with the masked gradient, projection
    and mask. No held-out evaluation, no checkpoints. ``n_samples / batch_size`` batches per epoch.

    Returns:
        ``{"dense_s", "finetune_s"`` (seconds per epoch, all seeds together), ``"prune_s"``, ``"batches"``,
        ``"n_hidden"``, ``"n_seeds"``, ``"steps"``, ``"device"``, ``"mask_density"}``.
    """
    dev = get_device(device)
    seeds = list(range(n_seeds))
    g = torch.Generator().manual_seed(0)
    x = torch.rand((n_samples, steps, 18), generator=g).mul_(0.3).to(dev)
    y = torch.rand((n_samples, steps, 18), generator=g).mul_(0.3).to(dev)
    model = CelltypeRNN(seeds, sizes_dict(sizes), input_mapping).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    perms = _permutations(seeds, n_samples, "benchmark").to(dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    sync()
    t0 = time.perf_counter()
    train_epoch(model, opt, x, y, perms, batch_size, True, None)
    sync()
    t1 = time.perf_counter()
    mask = prune_mask(model.w_rec.detach(), seeds, sizes, pruning)
    with torch.no_grad():
        model.w_rec.mul_(mask)
    keep = mask.float()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sync()
    t2 = time.perf_counter()
    train_epoch(model, opt, x, y, perms, batch_size, True, keep)
    sync()
    t3 = time.perf_counter()
    return {"dense_s": t1 - t0, "prune_s": t2 - t1, "finetune_s": t3 - t2, "batches": math.ceil(n_samples / batch_size),
            "n_hidden": model.n_hidden, "n_seeds": n_seeds, "steps": steps, "device": dev.type,
            "mask_density": float(mask.double().mean())}


# ----------------------------------------------------------------------------------------------------------------
# Notebook helper
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Fig4Run:
    """One trained (quick) or cached (paper) Figure 4 variant, as the notebook uses it."""

    config: CelltypeConfig
    summary: dict
    result: CelltypeResult | None = None
    extra: dict = field(default_factory=dict)


def fig4_run(config: CelltypeConfig, dataset: Dataset | None, mode: str | None = None, device=None,
             progress: bool = True, root: str | os.PathLike | None = None) -> Fig4Run | None:
    """Quick mode: train ``config`` on ``dataset`` now and summarise it. Paper mode: read the cached summary.

    Returns:
        A :class:`Fig4Run`, or None in paper mode when the summary is not cached (compute it on a GPU with
        ``python -m biornn celltype train`` and ``python -m biornn celltype summarize``).
    """
    if get_mode(mode) == "paper":
        folder = summary_dir(config, root)
        if not (folder / "summary.json").exists():
            return None
        return Fig4Run(config, load_summary(folder))
    result = train_celltype(config, dataset, device=device, progress=progress)
    return Fig4Run(config, summarize(result, dataset), result)


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------
def register_cli(sub) -> None:
    """Add ``celltype train`` and ``celltype summarize`` to the command line."""
    p = sub.add_parser("celltype", help="Figure 4: train the cell-type constrained two-area RNN",
                       description="Cell-type constrained RNN (biornn.celltype): train, summarise for the figures.")
    csub = p.add_subparsers(dest="celltype_command", metavar="ACTION", parser_class=type(p))
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    t = csub.add_parser("train", help="dense Dale's training, pruning and masked fine-tuning (all seeds batched)",
                        description="Train all seeds of one condition; write DIR/metrics.json, DIR/weights.npz and "
                                    "stage checkpoints in DIR/checkpoints/ (an interrupted run resumes).")
    t.add_argument("--data", required=True, help="dataset folder (<condition>.npz + .json) or one .npz file")
    t.add_argument("--condition", required=True, help=f"one of {', '.join(CONDITIONS)} (or FC, FN, ...)")
    t.add_argument("--seeds", required=True, help="e.g. 0,1,2,3,4 or 0-4")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--mode", choices=("quick", "paper"), default=None,
                   help="default sizes and epochs (default $BIORNN_MODE or quick; paper: N = 1440, 70 + 50 epochs)")
    t.add_argument("--window", choices=WINDOWS, default="full")
    t.add_argument("--sizes", default=None, help="units per population Pyr,SST,VIP (paper 192,32,16)")
    t.add_argument("--dense-epochs", type=int, default=None)
    t.add_argument("--finetune-epochs", type=int, default=None)
    t.add_argument("--published", action="store_true",
                   help="the reference's switches: dense input weights, as-published pruning and checkpoint rule")
    t.add_argument("--variant", choices=VARIANTS, default=None,
                   help="published, corrected (default) or recommended (corrected + pooled standardisation, learned "
                        "initial state, stimulus inputs, one resample of the experiments per run)")
    for flag, help_text in (("standardize", "z-score with statistics pooled over the six conditions"),
                            ("stimulus-inputs", "image / change / omission codes as three extra inputs")):
        t.add_argument(f"--{flag}", dest=flag.replace("-", "_"), action=argparse.BooleanOptionalAction,
                       default=None, help=help_text)
    t.add_argument("--initial-state", choices=INITIAL_STATES, default=None)
    t.add_argument("--burn-in", type=int, default=None, help="predicted frames left out of the loss")
    t.add_argument("--resample", choices=RESAMPLING, default=None, help="per-run resample of the recordings")
    t.add_argument("--input-mapping", choices=INPUT_MAPPINGS, default=None)
    t.add_argument("--pruning", choices=PRUNING, default=None)
    t.add_argument("--checkpoint-rule", choices=CHECKPOINT_RULES, default=None)
    t.add_argument("--vanilla", action="store_true", help="no Dale projection (the reference's vanilla control)")
    t.add_argument("--within-table", default=None, help="within-area probability CSV (default data/connectivity/)")
    t.add_argument("--inter-table", default=None, help="inter-area pathway CSV (default data/connectivity/)")
    t.add_argument("--device", default="auto", help="cpu, cuda or auto (CUDA when present)")
    t.add_argument("--no-resume", action="store_true", help="start afresh even if DIR/checkpoints/resume.pt exists")
    t.add_argument("--checkpoint-every", type=int, default=1, help="write the resume checkpoint every K epochs")
    t.add_argument("--kernels", choices=KERNELS, default="auto",
                   help="fine-tuning stage kernels: sparse (CSR), dense, or auto (sparse on the CPU, dense on CUDA)")
    t.set_defaults(func=_cmd_train)

    s = csub.add_parser("summarize", help="store what the Figure 4 notebook plots (data/results/fig4/...)",
                        description="Summarise a trained run (block means, densities, fits, traces, identifiability) "
                                    "into the paper-mode figure cache.")
    s.add_argument("--run", required=True, help="folder written by celltype train")
    s.add_argument("--data", required=True, help="the dataset folder the run was trained on")
    s.add_argument("--out", default=None, help="default data/results/fig4/<abbr>-<window>-<variant>-<key>")
    s.add_argument("--no-matrices", action="store_true",
                   help="leave out seed 0's (N, N) display matrices (~4 MB at N = 1440; notebook 06 shows them "
                        "for FC only): block summaries, fits and traces are kept (~0.1 MB)")
    s.set_defaults(func=_cmd_summarize)

    b = csub.add_parser("baselines", help="recompute the reference predictors of cached summaries (data only)",
                        description="Score the reference predictors (persistence, average traces, per-step linear "
                                    "history ridge) on the held-out data of every cached summary whose dataset is "
                                    "given, and store them in its summary.json (no weights needed).")
    b.add_argument("--data", required=True, help="the dataset folder the cached runs were trained on")
    b.add_argument("--root", default=None, help="figure cache (default data/results/fig4)")
    b.set_defaults(func=_cmd_baselines)


def _load_for_cli(path: str, condition: str) -> Dataset:
    path_ = Path(path)
    if not path_.exists():
        raise BiornnError(f"--data {path} does not exist; pass a dataset folder written by python -m biornn "
                          "allen build")
    return load_dataset_with_windows(path_, condition if path_.is_dir() else None)


def _cmd_train(args) -> int:
    from biornn.config import parse_seeds

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise BiornnError(f"--out {out} is a file; pass a folder path")
    condition = condition_name(args.condition)
    overrides: dict = {"window": args.window, "seeds": tuple(parse_seeds(args.seeds))}
    if args.sizes:
        try:
            overrides["sizes"] = tuple(int(v) for v in args.sizes.split(","))
        except ValueError:
            raise BiornnError(f"bad --sizes {args.sizes!r}; give three integers Pyr,SST,VIP such as 192,32,16"
                              ) from None
    for name in ("dense_epochs", "finetune_epochs", "input_mapping", "pruning", "checkpoint_rule",
                 "within_table", "inter_table", "standardize", "stimulus_inputs", "initial_state", "burn_in",
                 "resample"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.vanilla:
        overrides["dale"] = False
    config = celltype_config(condition, args.mode, published=args.published, variant=args.variant, **overrides)
    connectivity_tables(config)  # validate the tables before loading data
    dataset = _load_for_cli(args.data, condition)
    result = train_celltype(config, dataset, device=args.device, out=out, resume=not args.no_resume,
                            checkpoint_every=args.checkpoint_every, kernels=args.kernels)
    final = np.mean([r["finetune_loss"][-1] for r in result.runs])
    r2 = np.mean([np.median(r["heldout"]["sparse"]["r2"]) for r in result.runs])
    print(f"{config.condition}/{config.window}/{config.variant}: {len(config.seeds)} seeds, N = "
          f"{result.arrays['W_sparse'].shape[-1]}, {config.dense_epochs} + {config.finetune_epochs} epochs on "
          f"{result.device} in {result.wall_seconds:.1f} s; final fine-tune loss {final:.4g}, held-out median "
          f"R2 {r2:.3f} -> {out}")
    return 0


def _cmd_summarize(args) -> int:
    result = load_celltype(args.run)
    dataset = _load_for_cli(args.data, result.config.condition)
    summary = summarize(result, dataset, matrices_seed=None if args.no_matrices else 0)
    out = Path(args.out) if args.out else summary_dir(result.config, twin=result.data.get("twin"))
    save_summary(summary, out)
    print(f"summary of {args.run} -> {out}")
    return 0


def _cmd_baselines(args) -> int:
    root = Path(args.root) if args.root else RESULTS_DIR / "fig4"
    folders = sorted(p.parent for p in root.glob("*/summary.json"))
    if not folders:
        raise BiornnError(f"no Figure 4 summaries under {root}; pass --root or summarise runs first")
    datasets: dict = {}
    for folder in folders:
        condition = load_summary_json(folder)["config"]["condition"]
        if condition not in datasets:
            datasets[condition] = _load_for_cli(args.data, condition)
        base = refresh_baselines(folder, datasets[condition])
        print(f"{folder.name}: held-out median r " + ", ".join(f"{k} {np.median(v['r']):.3f}" for k, v in base.items()))
    return 0
