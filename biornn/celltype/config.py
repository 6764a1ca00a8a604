"""The Fig 4 run configuration (:class:`CelltypeConfig`: sizes, stages, switches, variants) and the ablation configs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from biornn.core.conditions import WINDOWS, condition_name
from biornn.core.config import check_mode
from biornn.core.errors import BiornnError
from biornn.data.replicates import RESAMPLING
from biornn.nn.connectivity import TYPES
from biornn.nn.models import INPUT_MAPPINGS

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
            conditions (:func:`biornn.data.curate.pooled_standardization`); fits are reported in ΔF/F.
        initial_state: ``zero`` (``r_0 = 0``, as published) or ``learned`` (a learned initial drive per unit).
        burn_in: leave the first ``burn_in`` predicted frames out of the training loss.
        stimulus_inputs: three extra inputs (image, change, omission codes of the predicted frame, from the
            stimulus table; :mod:`biornn.data.stimulus`) routed to every unit.
        resample: ``none`` (every run trains on the dataset), ``experiments`` or ``trials``: every run redraws its
            training set from the recorded rows (:mod:`biornn.data.replicates`), so runs are data replicates.
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


def celltype_config(condition: str = "familiar_change", mode: str = "quick", published: bool = False,
                    variant: str | None = None, **overrides) -> CelltypeConfig:
    """The Figure 4 configuration of ``condition`` in ``mode`` (paper: N = 1440, 70 + 50 epochs, 5 seeds).

    ``variant``: ``published``, ``corrected`` (default) or ``recommended`` (``published=True`` = ``published``).
    """
    sizes = dict(MODE_SIZES[check_mode(mode)])
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


def ablation_configs(condition: str, mode: str = "quick", window: str = "half", **overrides
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


