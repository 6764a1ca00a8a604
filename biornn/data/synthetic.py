"""The digital twin: offline ΔF/F for the real selected experiments, driven by a known cell-type network.

The twin stands in for the AllenSDK cache (``docs/paper/allen-data-pipeline.md`` §10.2).
It keeps the real experiment ids, sessions, areas,
depths and cell counts of the release metadata and simulates what the cache would return for each experiment:
frame timestamps, the plane's mean ΔF/F, the trials table and the stimulus-presentation table
(:class:`biornn.data.allen.ExperimentData`). The same :mod:`biornn.data.curate` code then turns twin and real data into
training sets.

Generative model, one simulation per ophys session (shared by its planes):

* **Timeline**: ``initial_gray`` s of grey, then a ``change_detection_behavior`` block with a flash every
  ``flash_period`` s (``flash_duration`` s image + grey); go trials change the image 4–11 flashes after trial start
  (truncated geometric), catch trials do not, aborted trials end early; about 5 % of non-change flashes are omitted
  (never on a change flash, never on the flash before one, never two in a row). A final grey period follows.
* **Ground-truth network**: 18 population rates ``r`` (index order of :data:`biornn.nn.connectivity.POPULATION_LABELS`),
  ``r <- r + a (-r + relu(W_c r + b + u(t) + noise))`` with ``a = 1 - exp(-dt / tau_rate)``. ``W_c[post, pre]`` obeys
  Dale's law (Pyr columns >= 0, SST/VIP columns <= 0) and the block mask of :mod:`biornn.nn.connectivity` (within-area
  probability table + three inter-area pathways); magnitudes are ``density x type strength``, scaled to a spectral
  radius. ``W_c`` depends on the condition: during the ``context_span`` around each change (omission) the network
  runs with that experience level's change (omission) matrix, otherwise with its no-change matrix. The default
  planted differences scale inter-area pathways (e.g. stronger LM L5 Pyr -> V1 feedback for novel omissions); see
  :data:`DEFAULT_PATHWAY_GAINS` and :func:`ground_truth_connectivity`.
* **Inputs** ``u(t)``: a flash drives V1 L4 (and weakly LM L4), a change flash more strongly (and VIP), an omitted
  flash drives VIP and LM L5 Pyr (an expectation signal); novel images drive ``novel_drive_gain`` times more.
* **Observation**: GCaMP6f-like two-stage filter (rise ``gcamp_rise`` s, decay ``gcamp_decay`` s), ΔF/F scale per
  cell line, sampled at the plane's frames (period ``frame_period`` s, phase from the imaging-plane group), mean of
  ``n_cells`` cells with gamma-distributed gains and independent Gaussian noise: sampled exactly through the cell
  mean, whose noise shrinks as ``1 / sqrt(n_cells)``.

A plane observes the population of its *true* layer, assigned from depth by ``config.layer_rule`` (default
``split``, one layer per plane); with the ``published`` selection rule the double counting is then measurable.
Seeds: a session's timeline and network noise use ``derive_seed(seed, "twin-session", ophys_session_id)``, a plane's
observation ``derive_seed(seed, "twin-plane", ophys_experiment_id)``, so results do not depend on processing order
or on which sessions are simulated together. ``TwinConfig.sample_seed`` (when set) replaces ``seed`` in these
sample streams only; the ground truth keeps ``seed``, so twins of different sample seeds share ``W_true``.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from biornn.core.conditions import CONDITIONS, EXPERIENCE_LEVELS
from biornn.core.config import check_mode, derive_seed
from biornn.core.errors import BiornnError
from biornn.core.progress import progress as progress_bar
from biornn.core.store import atomic_write_bytes
from biornn.data.allen import (
    BEHAVIOR_BLOCK,
    CRE_TO_TYPE,
    EXPERIENCE_TO_LEVEL,
    PROJECT_CODE,
    STRUCTURE_TO_AREA,
    ExperimentData,
    Metadata,
    SkipExperiment,
    cells_per_experiment,
    layers_of_depth,
    validate_experiment_table,
)
from biornn.nn.connectivity import POPULATION_LABELS, SIGNS, TYPES, block_density, pathway_blocks, population_label

log = logging.getLogger("biornn.data.synthetic")


FAMILIAR_IMAGES = ("im061", "im062", "im063", "im065", "im066", "im069", "im077", "im085")
NOVEL_IMAGES = tuple(f"novel_im{i}" for i in range(8))

#: Planted connectivity differences: condition -> {pathway or "post<-pre" block: multiplicative gain}.
#: Pathways are those of ``data/connectivity/inter_area_pathways.csv`` (FF, FB_L23, FB_L5).
DEFAULT_PATHWAY_GAINS = {
    "familiar_no_change": {},
    "familiar_change": {"FF": 1.6},
    "familiar_omission": {"FB_L23": 1.3, "FB_L5": 1.8},
    "novel_no_change": {"FF": 1.2},
    "novel_change": {"FF": 1.8, "FB_L23": 1.3},
    "novel_omission": {"FF": 1.2, "FB_L23": 1.8, "FB_L5": 2.2},
}

#: The two twins: ``planted`` differences between conditions, or ``null`` (none).
TWINS = ("planted", "null")
#: Values of fields missing from manifests written before they existed (see :meth:`TwinConfig.from_dict`).
LEGACY_FIELDS = {"twin": "planted", "strength_sd": 0.0}

#: Stimulus drive per code: image flash, change flash (added to the image drive), omitted flash.
DEFAULT_DRIVES = {
    "image": {"V1_L4_Pyr": 1.0, "V1_L4_SST": 0.5, "V1_L4_VIP": 0.2, "V1_L2/3_Pyr": 0.6, "V1_L5_Pyr": 0.3,
              "LM_L4_Pyr": 0.3, "LM_L2/3_Pyr": 0.3},
    "change": {"V1_L4_Pyr": 0.8, "V1_L4_SST": 0.3, "V1_L2/3_VIP": 0.3, "LM_L2/3_VIP": 0.3, "LM_L4_Pyr": 0.2},
    "omission": {"V1_L2/3_VIP": 0.4, "LM_L2/3_VIP": 0.4, "V1_L5_VIP": 0.2, "LM_L5_Pyr": 0.3},
}


@dataclass(frozen=True)
class TwinConfig:
    """Every setting of the twin (times in s).

    Attributes:
        seed: global seed; sessions and planes derive their own streams from it.
        frame_period: imaging frame period per plane (mesoscope ~0.0934 s, ~10.7 Hz).
        substeps: network steps per frame (dt = frame_period / substeps); planes take one of ``substeps`` phases.
        flash_period, flash_duration: flash cycle (0.75 s measured as 0.7506 s) and image duration.
        initial_gray, behavior_duration, final_gray: block durations (total ~4514 s in ``paper`` mode).
        omission_prob: probability that an eligible flash is omitted.
        p_go, p_catch: trial-type probabilities (the rest are aborted trials).
        change_flashes: ``(min, max)`` flashes from trial start to the change; ``change_geometric_p``: its
            truncated-geometric parameter.
        post_change: ``(min, max)`` s from change to trial stop; ``iti``: ``(min, max)`` s after a stop.
        tau_rate: population time constant. baseline: constant input (spontaneous rate).
        process_noise: network input noise SD per step; cell_noise: per-cell ΔF/F noise SD per frame.
        cell_gain_cv: coefficient of variation of cell gains; gcamp_rise, gcamp_decay: indicator kinetics.
        dff_scale: ΔF/F per unit calcium for each cell type.
        type_strength: weight scale of each presynaptic type before the spectral-radius normalisation (Pyr
            larger: a population's summed input grows with its presynaptic cell count).
        spectral_radius: spectral radius of the familiar no-change matrix.
        novel_drive_gain: drive multiplier for novel images.
        context_span: ``(start, stop)`` s around a change or omission during which that condition's matrix is used.
        pathway_gains: planted differences (see :data:`DEFAULT_PATHWAY_GAINS`).
        drives: stimulus drive vectors (see :data:`DEFAULT_DRIVES`).
        layer_rule: depth -> true layer rule of the twin's planes.
        twin: ``planted`` (the conditions differ by :attr:`pathway_gains`) or ``null`` (the same matrix in all six
            conditions; drives and everything else unchanged): the null twin says how large a fitted
            difference gets when nothing was planted.
        strength_sd: SD of the seeded log-normal factor of every block's strength (``exp(sd z - sd^2 / 2)``,
            ``z ~ N(0, 1)`` from ``derive_seed(seed, "twin-strength")``), drawn independently of the block's
            density so that recovering strengths is not the same as recovering the mask; 0 = the legacy twin
            (strength = density x type strength).
        sample_seed: seed of the twin's *samples* only: session timelines, network noise, plane phases and cell
            observations. ``None`` (default) uses :attr:`seed`, so existing twins are unchanged; the ground truth
            (``W_true``, block strengths) always comes from :attr:`seed`, so twins with different sample seeds share
            their network and differ in their data (independent replicates of one twin).
    """

    seed: int = 0
    frame_period: float = 0.09342
    substeps: int = 2
    flash_period: float = 0.7506
    flash_duration: float = 0.25
    initial_gray: float = 300.0
    behavior_duration: float = 3600.0
    final_gray: float = 614.0
    omission_prob: float = 0.05
    p_go: float = 0.5
    p_catch: float = 0.1
    change_flashes: tuple[int, int] = (4, 11)
    change_geometric_p: float = 0.3
    post_change: tuple[float, float] = (3.5, 4.5)
    iti: tuple[float, float] = (0.1, 0.5)
    tau_rate: float = 0.1
    baseline: float = 0.2
    process_noise: float = 0.05
    cell_noise: float = 0.2
    cell_gain_cv: float = 0.4
    gcamp_rise: float = 0.05
    gcamp_decay: float = 0.4
    dff_scale: dict = field(default_factory=lambda: {"Pyr": 0.3, "SST": 0.4, "VIP": 0.5})
    type_strength: dict = field(default_factory=lambda: {"Pyr": 3.0, "SST": 1.5, "VIP": 1.0})
    spectral_radius: float = 0.75
    novel_drive_gain: float = 1.3
    context_span: tuple[float, float] = (-0.75, 0.75)
    pathway_gains: dict = field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_PATHWAY_GAINS.items()})
    drives: dict = field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_DRIVES.items()})
    layer_rule: str = "split"
    twin: str = "planted"
    strength_sd: float = 0.5
    sample_seed: int | None = None

    def __post_init__(self):
        if self.twin not in TWINS:
            raise BiornnError(f"unknown twin {self.twin!r}; use one of {', '.join(TWINS)}")
        if not (np.isfinite(self.strength_sd) and self.strength_sd >= 0):
            raise BiornnError(f"strength_sd = {self.strength_sd}; use a number >= 0 (0 = strength set by density)")
        if self.sample_seed is not None and (isinstance(self.sample_seed, bool) or int(self.sample_seed) < 0
                                             or int(self.sample_seed) != self.sample_seed):
            raise BiornnError(f"sample_seed = {self.sample_seed!r}; use a non-negative integer or None (= seed)")

    @property
    def stream_seed(self) -> int:
        """Base seed of the sample streams (timelines, noise, phases, observations): :attr:`sample_seed` when set,
        else :attr:`seed`."""
        return self.seed if self.sample_seed is None else int(self.sample_seed)

    @property
    def dt(self) -> float:
        """Network time step (s)."""
        return self.frame_period / self.substeps

    @property
    def duration(self) -> float:
        """Session length (s)."""
        return self.initial_gray + self.behavior_duration + self.final_gray

    def to_dict(self) -> dict:
        """Every field; ``sample_seed`` only when set, so a default twin's manifests and cache keys stay as they
        were before the field existed."""
        out = dataclasses.asdict(self)
        if out["sample_seed"] is None:
            del out["sample_seed"]
        return out

    @classmethod
    def from_dict(cls, d: dict) -> TwinConfig:
        """Rebuild a configuration from :meth:`to_dict` output; keys it lacks take their **legacy** values.

        Manifests written before the null twin and the independent block strengths existed have neither
        ``twin`` nor ``strength_sd``; those twins were planted with strengths set by density (``strength_sd = 0``).
        """
        names = {f.name for f in dataclasses.fields(cls)}
        values = {**LEGACY_FIELDS, **{k: v for k, v in d.items() if k in names}}
        for key in ("change_flashes", "post_change", "iti", "context_span"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def replace(self, **changes) -> TwinConfig:
        return dataclasses.replace(self, **changes)


#: Session lengths per run mode: ``paper`` = the real ~75 min; ``quick`` = 10 min of behaviour (~40 go trials).
TWIN_SIZES = {
    "paper": dict(initial_gray=300.0, behavior_duration=3600.0, final_gray=614.0),
    "quick": dict(initial_gray=30.0, behavior_duration=600.0, final_gray=10.0),
}


def twin_config(mode: str = "quick", seed: int = 0, **overrides) -> TwinConfig:
    """The twin configuration of a run mode (``quick`` or ``paper``; default ``quick``)."""
    return TwinConfig(seed=seed, **{**TWIN_SIZES[check_mode(mode)], **overrides})


# --------------------------------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------------------------------

def _block_index(key: str) -> tuple[int, int]:
    post, pre = (s.strip() for s in key.split("<-"))
    labels = {lab: i for i, lab in enumerate(POPULATION_LABELS)}
    if post not in labels or pre not in labels:
        raise BiornnError(f"unknown block {key!r} in pathway_gains; write 'POST<-PRE' with labels like V1_L2/3_Pyr")
    return labels[post], labels[pre]


def ground_truth_connectivity(config: TwinConfig | None = None) -> dict[str, np.ndarray]:
    """The twin's population connectivity per condition.

    Args:
        config: twin configuration (default :class:`TwinConfig`).

    Returns:
        ``{condition: W (18, 18)}`` indexed ``[post, pre]`` in population index order, for the six
        :data:`CONDITIONS`. Pyr columns are >= 0, SST/VIP columns <= 0, and zero wherever
        :func:`biornn.nn.connectivity.block_mask` is False.
    """
    config = config or TwinConfig()
    density = block_density()
    pre_types = [lab.split("_")[2] for lab in POPULATION_LABELS]
    col = np.array([SIGNS[t] * config.type_strength[t] for t in pre_types])
    if config.strength_sd == 0:  # legacy twin: coupling = density x type strength
        base = density * col[None, :]
    else:  # coupling independent of density: type strength x a log-normal factor per block, on the table's blocks
        base = (density > 0) * col[None, :] * block_strength_factor(config)
    radius = np.max(np.abs(np.linalg.eigvals(base)))
    base = base * (config.spectral_radius / radius)
    pathways = pathway_blocks()
    gains = config.pathway_gains if config.twin == "planted" else {}
    out = {}
    for cond in CONDITIONS:
        W = base.copy()
        for key, gain in gains.get(cond, {}).items():
            if key in pathways:
                for post, pre in pathways[key]:
                    W[post, pre] *= gain
            else:
                post, pre = _block_index(key)
                W[post, pre] *= gain
        out[cond] = W
    return out


def block_strength_factor(config: TwinConfig) -> np.ndarray:
    """``(18, 18)`` log-normal strength factor per block (mean 1), independent of density; ones when
    ``strength_sd = 0``."""
    P = len(POPULATION_LABELS)
    if config.strength_sd == 0:
        return np.ones((P, P))
    z = np.random.default_rng(derive_seed(config.seed, "twin-strength")).standard_normal((P, P))
    return np.exp(config.strength_sd * z - config.strength_sd ** 2 / 2)


def ground_truth_stack(config: TwinConfig | None = None) -> dict[str, np.ndarray]:
    """The arrays of ``ground_truth.npz``: ``W_true`` ``(6, 18, 18)`` ``[post, pre]`` in :data:`CONDITIONS` order,
    ``conditions`` ``(6,)``, ``density`` ``(18, 18)`` (the table's block densities) and ``twin`` (``planted`` /
    ``null``)."""
    config = config or TwinConfig()
    W = ground_truth_connectivity(config)
    return {"W_true": np.stack([W[c] for c in CONDITIONS]), "conditions": np.array(CONDITIONS),
            "density": block_density(), "twin": np.array(config.twin)}


def write_ground_truth(config: TwinConfig, directory) -> str:
    """Write ``DIR/ground_truth.npz`` (:func:`ground_truth_stack`) atomically; return its path."""
    buf = io.BytesIO()
    np.savez(buf, **ground_truth_stack(config))
    path = Path(directory) / "ground_truth.npz"
    atomic_write_bytes(path, buf.getvalue())
    return str(path)


def drive_vectors(config: TwinConfig | None = None) -> dict[str, np.ndarray]:
    """Stimulus drive per code as ``(18,)`` arrays: ``image``, ``change`` (extra on a change flash), ``omission``."""
    config = config or TwinConfig()
    labels = {lab: i for i, lab in enumerate(POPULATION_LABELS)}
    out = {}
    for name in ("image", "change", "omission"):
        vec = np.zeros(len(labels))
        for lab, value in config.drives.get(name, {}).items():
            if lab not in labels:
                raise BiornnError(f"unknown population {lab!r} in drives[{name!r}]; use labels like V1_L4_Pyr")
            vec[labels[lab]] = value
        out[name] = vec
    return out


# --------------------------------------------------------------------------------------------------------------------
# Timeline of one session
# --------------------------------------------------------------------------------------------------------------------

@dataclass
class Timeline:
    """Stimulus and trial tables of one simulated session plus the per-step codes of the network.

    Attributes:
        trials: AllenSDK-shaped trials table (index ``trials_id``).
        stimulus_presentations: AllenSDK-shaped presentation table (index ``stimulus_presentations_id``).
        code: ``(S,)`` int8 per network step: 0 grey, 1 image, 2 change image, 3 omitted flash.
        context: ``(S,)`` int8 per network step: window type index (0 change, 1 no-change, 2 omission) of the
            connectivity in effect.
    """

    trials: pd.DataFrame
    stimulus_presentations: pd.DataFrame
    code: np.ndarray
    context: np.ndarray


def _paint(array: np.ndarray, starts: np.ndarray, stops: np.ndarray, value: int) -> None:
    """Set ``array[s0:s1] = value`` for every (s0, s1) pair (vectorised)."""
    starts = np.clip(starts, 0, array.size)
    stops = np.clip(stops, 0, array.size)
    lengths = np.maximum(stops - starts, 0)
    if lengths.sum() == 0:
        return
    idx = np.repeat(starts - np.cumsum(np.r_[0, lengths[:-1]]), lengths) + np.arange(lengths.sum())
    array[idx] = value


def simulate_timeline(config: TwinConfig, session_id: int, experience: str) -> Timeline:
    """Draw the trials, flashes, changes and omissions of one session (seeded by the session id)."""
    rng = np.random.default_rng(derive_seed(config.stream_seed, "twin-timeline", int(session_id)))
    t0 = config.initial_gray
    n_flash = int(config.behavior_duration // config.flash_period)
    onsets = t0 + config.flash_period * np.arange(n_flash)
    lo, hi = config.change_flashes
    support = np.arange(lo, hi + 1)
    pmf = config.change_geometric_p * (1 - config.change_geometric_p) ** (support - lo)
    pmf /= pmf.sum()
    is_change = np.zeros(n_flash, dtype=bool)
    trials = []
    k = 0
    while True:
        n_pre = int(rng.choice(support, p=pmf))
        post = rng.uniform(*config.post_change)
        if k + n_pre >= n_flash or onsets[k + n_pre] + post > onsets[-1]:
            break
        start = onsets[k] - rng.uniform(0.0, 0.05)
        kind = rng.choice(3, p=[config.p_go, config.p_catch, 1 - config.p_go - config.p_catch])
        if kind == 2:  # aborted: ends (an early lick) before the change would have come
            a = int(rng.integers(1, n_pre))
            stop = onsets[k + a] + rng.uniform(0.0, 0.5)
            trials.append((start, stop, False, np.nan, False, False, True))
        else:
            c = k + n_pre
            stop = onsets[c] + post
            if kind == 0:
                is_change[c] = True
                trials.append((start, stop, True, onsets[c], True, False, False))
            else:
                trials.append((start, stop, False, np.nan, False, True, False))
        k = int(np.searchsorted(onsets, stop + rng.uniform(*config.iti), side="left"))
        if k >= n_flash:
            break
    trials = pd.DataFrame(trials, columns=["start_time", "stop_time", "is_change", "change_time", "go", "catch",
                                           "aborted"])
    trials.index.name = "trials_id"
    # omissions: ~omission_prob of eligible flashes, never a change flash, never the flash before one, never twice
    eligible = ~is_change & ~np.r_[is_change[1:], False]
    eligible[0] = False
    draw = rng.random(n_flash) < config.omission_prob / max(eligible.mean(), 1e-9)
    omitted = np.zeros(n_flash, dtype=bool)
    for i in np.flatnonzero(draw & eligible):
        if not omitted[i - 1]:
            omitted[i] = True
    # image identities: a new image at every change
    images = FAMILIAR_IMAGES if experience == "familiar" else NOVEL_IMAGES
    current = np.zeros(n_flash, dtype=np.int64)
    img = int(rng.integers(len(images)))
    for i in range(n_flash):
        if is_change[i]:
            img = (img + int(rng.integers(1, len(images)))) % len(images)
        current[i] = img
    names = np.array(images, dtype=object)[current]
    names[omitted] = "omitted"
    flashes = pd.DataFrame({"start_time": onsets, "end_time": onsets + config.flash_duration,
                            "duration": config.flash_duration, "image_name": names, "omitted": omitted,
                            "is_change": is_change, "stimulus_block_name": BEHAVIOR_BLOCK})
    grey = pd.DataFrame({"start_time": [0.0, t0 + config.behavior_duration],
                         "end_time": [t0, config.duration],
                         "duration": [t0, config.final_gray], "image_name": [np.nan, np.nan],
                         "omitted": False, "is_change": False,
                         "stimulus_block_name": ["initial_gray_screen_5min", "post_behavior_gray_screen_5min"]})
    stim = pd.concat([grey.iloc[:1], flashes, grey.iloc[1:]], ignore_index=True)
    stim.index.name = "stimulus_presentations_id"
    # per-step codes and contexts
    dt = config.dt
    n_steps = int(np.ceil(config.duration / dt)) + config.substeps
    code = np.zeros(n_steps, dtype=np.int8)
    s0 = np.ceil(onsets / dt).astype(np.int64)
    s1 = np.ceil((onsets + config.flash_duration) / dt).astype(np.int64)
    _paint(code, s0[~omitted], s1[~omitted], 1)
    _paint(code, s0[is_change], s1[is_change], 2)
    _paint(code, s0[omitted], s1[omitted], 3)
    context = np.ones(n_steps, dtype=np.int8)  # no-change
    a, b = config.context_span
    for times, value in ((onsets[is_change], 0), (onsets[omitted], 2)):
        _paint(context, np.ceil((times + a) / dt).astype(np.int64), np.ceil((times + b) / dt).astype(np.int64), value)
    return Timeline(trials=trials, stimulus_presentations=stim, code=code, context=context)


# --------------------------------------------------------------------------------------------------------------------
# Planes and the batched network simulation
# --------------------------------------------------------------------------------------------------------------------

def twin_planes(metadata: Metadata | pd.DataFrame, cells: pd.DataFrame | None = None,
                layer_rule: str = "split") -> pd.DataFrame:
    """The experiments the twin can simulate: the selection filters applied, each plane with its true population.

    Args:
        metadata: release metadata (or an experiment table).
        cells: cells table (default the metadata's) for ``n_cells``.
        layer_rule: depth -> true layer rule (default ``split``: one layer per plane).

    Returns:
        One row per plane: ``ophys_experiment_id``, ``ophys_session_id``, ``experience_level``, ``cell_type``,
        ``area``, ``imaging_depth``, ``layer``, ``population``, ``n_cells``, ``imaging_plane_group``.
    """
    if isinstance(metadata, Metadata):
        cells = metadata.cells if cells is None else cells
        metadata = metadata.experiments
    table = validate_experiment_table(metadata)
    table = table[(table["project_code"] == PROJECT_CODE) & (~table["passive"])
                  & table["experience_level"].isin(list(EXPERIENCE_TO_LEVEL))
                  & table["targeted_structure"].isin(list(STRUCTURE_TO_AREA))
                  & table["cre_line"].isin(list(CRE_TO_TYPE))].copy()
    table["cell_type"] = table["cre_line"].map(CRE_TO_TYPE)
    table["area"] = table["targeted_structure"].map(STRUCTURE_TO_AREA)
    table["experience_level"] = table["experience_level"].map(EXPERIENCE_TO_LEVEL)
    layers = [layers_of_depth(d, t, a, e, layer_rule) for d, t, a, e in
              zip(table["imaging_depth"], table["cell_type"], table["area"], table["experience_level"])]
    table["layer"] = [ls[-1] if ls else None for ls in layers]  # under 'published' a shared plane is truly L5
    table = table[table["layer"].notna()]
    table["population"] = [population_label(a, l, t) for a, l, t in
                           zip(table["area"], table["layer"], table["cell_type"])]
    counts = cells_per_experiment(cells)
    if counts is not None:
        table["n_cells"] = table["ophys_experiment_id"].map(counts).fillna(0).astype(np.int64)
    else:
        medians = {"Pyr": 92, "SST": 10, "VIP": 15}
        log.warning("no cells table: the twin uses median cell counts per type %s", medians)
        table["n_cells"] = table["cell_type"].map(medians)
    if "imaging_plane_group" not in table.columns:
        table["imaging_plane_group"] = np.nan
    cols = ["ophys_experiment_id", "ophys_session_id", "experience_level", "cell_type", "area", "imaging_depth",
            "layer", "population", "n_cells", "imaging_plane_group"]
    return table[cols].reset_index(drop=True)


def simulate_sessions(config: TwinConfig, sessions: pd.DataFrame, planes: pd.DataFrame, progress: bool = True
                      ) -> tuple[dict[int, Timeline], dict[int, np.ndarray]]:
    """Run the network of several sessions in one batch and record each plane's calcium signal at its frames.

    Args:
        config: twin configuration.
        sessions: one row per session: ``ophys_session_id``, ``experience_level``.
        planes: one row per plane: ``ophys_experiment_id``, ``ophys_session_id``, ``population``, ``phase``
            (0..substeps-1).
        progress: show a progress bar.

    Returns:
        ``(timelines, calcium)``: the :class:`Timeline` of every session and, per plane, ``(F,)`` float32 calcium of
        its population at frame times ``(f * substeps + phase + 1) * dt`` (the state after network step
        ``f * substeps + phase``).
    """
    B = len(sessions)
    sess_ids = sessions["ophys_session_id"].to_numpy()
    timelines = {int(s): simulate_timeline(config, int(s), e) for s, e in
                 zip(sess_ids, sessions["experience_level"])}
    n_steps = max(t.code.size for t in timelines.values())
    code = np.zeros((B, n_steps), dtype=np.int8)
    widx = np.zeros((B, n_steps), dtype=np.int16)
    exp_idx = np.array([EXPERIENCE_LEVELS.index(e) for e in sessions["experience_level"]])
    for b, s in enumerate(sess_ids):
        tl = timelines[int(s)]
        code[b, :tl.code.size] = tl.code
        widx[b, :tl.code.size] = 3 * exp_idx[b] + tl.context
        widx[b, tl.code.size:] = 3 * exp_idx[b] + 1
    P = len(POPULATION_LABELS)
    W = ground_truth_connectivity(config)
    Wcat = np.concatenate([W[c].T for c in CONDITIONS], axis=1)  # r @ Wcat -> (B, 6 * P)
    drives = drive_vectors(config)
    table = np.zeros((2, 4, P))  # (experience, code, population)
    for e, gain in enumerate((1.0, config.novel_drive_gain)):
        table[e, 1] = gain * drives["image"]
        table[e, 2] = gain * (drives["image"] + drives["change"])
        table[e, 3] = drives["omission"]
    table += config.baseline
    drive = table[exp_idx]  # (B, 4, P)
    dt = config.dt
    alpha = 1 - np.exp(-dt / config.tau_rate)
    beta_rise = 1 - np.exp(-dt / config.gcamp_rise)
    beta_decay = 1 - np.exp(-dt / config.gcamp_decay)
    noise_sd = config.process_noise
    rngs = [np.random.default_rng(derive_seed(config.stream_seed, "twin-network", int(s))) for s in sess_ids]
    pop_index = {lab: i for i, lab in enumerate(POPULATION_LABELS)}
    sess_row = {int(s): b for b, s in enumerate(sess_ids)}
    plane_b = planes["ophys_session_id"].map(sess_row).to_numpy()
    plane_p = planes["population"].map(pop_index).to_numpy()
    plane_m = planes["phase"].to_numpy().astype(int)
    n_frames = (n_steps - 1 - plane_m) // config.substeps + 1
    record = np.zeros((len(planes), int(n_frames.max())), dtype=np.float32)
    groups = [(np.flatnonzero(plane_m == m), plane_b[plane_m == m] * P + plane_p[plane_m == m])
              for m in range(config.substeps)]
    # start every session at its resting state (iterate the grey-screen fixed point)
    r = np.zeros((B, P))
    for _ in range(200):
        r = np.maximum(np.einsum("bqp,bp->bq", np.stack([W[CONDITIONS[3 * e + 1]] for e in exp_idx]), r)
                       + drive[:, 0], 0)
    h = r.copy()
    c = r.copy()
    rows = np.arange(B) * len(CONDITIONS)
    chunk = 2048
    starts = range(0, n_steps, chunk)
    for s0 in progress_bar(starts, total=len(starts), desc="twin network", enabled=progress):
        s1 = min(s0 + chunk, n_steps)
        noise = np.stack([g.standard_normal((chunk, P))[: s1 - s0] for g in rngs], axis=1) * noise_sd
        inp = drive[np.arange(B)[None, :], code[:, s0:s1].T] + noise  # (L, B, P)
        w_rows = (rows[None, :] + widx[:, s0:s1].T)  # (L, B)
        for j in range(s1 - s0):
            s = s0 + j
            x = (r @ Wcat).reshape(B * len(CONDITIONS), P)[w_rows[j]]
            x += inp[j]
            np.maximum(x, 0, out=x)
            r += alpha * (x - r)
            h += beta_rise * (r - h)
            c += beta_decay * (h - c)
            idx, flat = groups[s % config.substeps]
            if idx.size:
                record[idx, s // config.substeps] = c.ravel()[flat]
    calcium = {int(e): record[i, : n_frames[i]] for i, e in enumerate(planes["ophys_experiment_id"])}
    return timelines, calcium


def observe_plane(calcium: np.ndarray, n_cells: int, cell_type: str, experiment_id: int, config: TwinConfig
                  ) -> np.ndarray:
    """Mean ΔF/F of ``n_cells`` cells watching one population, sampled exactly through the cell mean.

    Each cell has a gamma-distributed gain (mean 1, CV ``cell_gain_cv``) and independent Gaussian noise (SD
    ``cell_noise``); the plane mean is ``mean(gains) * scale * calcium + N(0, cell_noise^2 / n_cells)``.

    Returns:
        ``(F,)`` float64 ΔF/F.
    """
    rng = np.random.default_rng(derive_seed(config.stream_seed, "twin-plane", int(experiment_id)))
    n = max(int(n_cells), 1)
    k = 1.0 / config.cell_gain_cv ** 2
    gain = rng.gamma(k, 1.0 / k, size=n).mean()
    noise = rng.standard_normal(calcium.size) * (config.cell_noise / np.sqrt(n))
    return gain * config.dff_scale[cell_type] * calcium.astype(np.float64) + noise


class TwinSource:
    """Experiment source that simulates the selected real experiments (same interface as
    :class:`biornn.data.allen_nwb.AllenCacheSource`).

    Args:
        metadata: release metadata (experiment and cells tables), e.g. ``load_metadata("bundled")``.
        config: twin configuration (default :func:`twin_config` of the current mode).
        progress: progress bars during simulation.
    """

    name = "twin"

    def __init__(self, metadata: Metadata, config: TwinConfig | None = None, progress: bool = True):
        self.config = config if config is not None else twin_config()
        if self.config.substeps < 1:
            raise BiornnError(f"substeps = {self.config.substeps}; use a positive integer")
        self.metadata = metadata
        self.planes = twin_planes(metadata, layer_rule=self.config.layer_rule)
        group = pd.to_numeric(self.planes["imaging_plane_group"], errors="coerce")
        phase = np.array([int(g) % self.config.substeps if np.isfinite(g) else
                          derive_seed(self.config.stream_seed, "twin-phase", int(e)) % self.config.substeps
                          for g, e in zip(group, self.planes["ophys_experiment_id"])])
        self.planes["phase"] = phase
        self.progress = progress
        self._by_id = self.planes.set_index("ophys_experiment_id")
        self._data: dict[int, ExperimentData] = {}
        self.metadata_source = metadata.source if isinstance(metadata, Metadata) else ""

    def describe(self) -> str:
        """One line for manifests."""
        samples = "" if self.config.sample_seed is None else f", sample seed {self.config.sample_seed}"
        return f"digital twin (seed {self.config.seed}{samples}) of {self.metadata_source or 'the given metadata'}"

    def ground_truth(self) -> dict[str, np.ndarray]:
        """The ``(18, 18)`` ``[post, pre]`` connectivity per condition (:func:`ground_truth_connectivity`)."""
        return ground_truth_connectivity(self.config)

    def prefetch(self, experiment_ids) -> None:
        """Simulate, in one batch, every session that holds one of ``experiment_ids`` (results kept in memory)."""
        ids = [int(e) for e in experiment_ids if int(e) not in self._data]
        unknown = [e for e in ids if e not in self._by_id.index]
        if unknown:
            raise BiornnError(f"experiment {unknown[0]} is not one the twin can simulate (not in the selection "
                              "filters or outside every depth bin); select experiments with biornn.data.allen")
        if not ids:
            return
        sessions = self._by_id.loc[ids, "ophys_session_id"].unique()
        planes = self.planes[self.planes["ophys_session_id"].isin(sessions)
                             & self.planes["ophys_experiment_id"].isin(ids)]
        sess_table = planes.drop_duplicates("ophys_session_id")[["ophys_session_id", "experience_level"]]
        timelines, calcium = simulate_sessions(self.config, sess_table, planes, progress=self.progress)
        for rec in planes.itertuples(index=False):
            exp_id = int(rec.ophys_experiment_id)
            ca = calcium[exp_id]
            frames = np.arange(ca.size)
            timestamps = (frames * self.config.substeps + rec.phase + 1) * self.config.dt
            tl = timelines[int(rec.ophys_session_id)]
            self._data[exp_id] = ExperimentData(
                ophys_experiment_id=exp_id, timestamps=timestamps,
                pop_mean=observe_plane(ca, rec.n_cells, rec.cell_type, exp_id, self.config),
                n_cells=int(rec.n_cells), trials=tl.trials, stimulus_presentations=tl.stimulus_presentations,
                ophys_session_id=int(rec.ophys_session_id),
                info={"source": "twin", "true_population": rec.population, "seed": self.config.seed})

    def load(self, experiment_id: int) -> ExperimentData:
        """The simulated data of one experiment (simulates its session first if needed)."""
        experiment_id = int(experiment_id)
        if experiment_id not in self._data:
            self.prefetch([experiment_id])
        data = self._data[experiment_id]
        if data.n_cells < 1:
            raise SkipExperiment(f"experiment {experiment_id}: no cells in the cells table")
        return data

    def release(self, experiment_id: int) -> None:
        """Forget one experiment's simulated data."""
        self._data.pop(int(experiment_id), None)




def true_population_of(source: TwinSource) -> dict[int, str]:
    """``{ophys_experiment_id: true population label}`` of the twin's planes."""
    return dict(zip(source.planes["ophys_experiment_id"], source.planes["population"]))


__all__ = ["CONDITIONS", "DEFAULT_DRIVES", "DEFAULT_PATHWAY_GAINS", "TWINS", "TYPES", "Timeline", "TwinConfig",
           "TwinSource", "block_strength_factor", "drive_vectors", "ground_truth_connectivity", "ground_truth_stack",
           "observe_plane", "simulate_sessions", "simulate_timeline", "true_population_of",
           "twin_config", "twin_planes"]
