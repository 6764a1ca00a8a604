"""Allen Visual Behavior Ophys: metadata, experiment selection and the real-cache reader.

Background: docs/paper/allen-data-pipeline.md §2–4.

Selection (§4) keeps experiments (imaging planes) with

1. cre line ``Slc17a7-IRES2-Cre`` -> Pyr, ``Sst-IRES-Cre`` -> SST, ``Vip-IRES-Cre`` -> VIP;
2. project ``VisualBehaviorMultiscope`` (mesoscope, ~10.7 Hz per plane);
3. active sessions (``passive == False``);
4. experience level ``Familiar`` (-> ``familiar``) or ``Novel 1`` (-> ``novel``);
5. area ``VISp`` -> V1, ``VISl`` -> LM (``VISal``, ``VISam`` dropped);
6. ``imaging_depth`` (µm) -> layer by a selectable rule (:data:`LAYER_RULES`):

   * ``published``: L2/3 [0, 250], L4 [250, 370], L5 [lo, 500] with the per-population lower bound ``lo`` of
     :data:`L5_LOWER_BOUNDS`. The lowered bounds overlap L4: every SST/VIP "L5" population is a subset of its L4
     population (and novel LM Pyr L5 shares the 355 µm planes with L4).
   * ``split`` (default): L2/3 [0, 250), L4 [250, lo), L5 [lo, 500]; same L5 as published, no overlap.
   * ``fixed``: L2/3 [0, 250), L4 [250, 370), L5 [370, 500]; diagnostic only (every SST/VIP L5 population is empty).

Metadata come from one of two sources (:func:`load_metadata`):

* ``"bundled"``: the real release tables that the ``allensdk`` wheel ships as package data (experiment, session,
  behaviour-session and cells tables), found through the package spec **without importing allensdk**;
* an AllenSDK cache folder: ``VisualBehaviorOphysProjectCache.from_local_cache`` (files already there) or
  ``from_s3_cache`` (downloads; needs a network). A folder that simply holds the four CSV files also works.

Per-experiment traces, timestamps, trials and stimulus presentations exist only in a real cache
(:class:`biornn.data.allen_nwb.AllenCacheSource`); :mod:`biornn.data.synthetic` provides the offline digital twin with
the same
interface.
``allensdk`` is imported lazily inside the real-cache functions only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from biornn.core.conditions import EXPERIENCE_LEVELS
from biornn.core.config import ALLEN_CACHE_ENV
from biornn.core.errors import BiornnError
from biornn.data.stimulus import BEHAVIOR_BLOCK
from biornn.nn.connectivity import (
    AREAS,
    DISPLAY_LAYERS,
    L4_UPPER,
    L5_UPPER,
    L23_UPPER,
    LAYERS,
    POPULATION_LABELS,
    TYPES,
    population_label,
)

log = logging.getLogger("biornn.data.allen")

CRE_TO_TYPE = {"Slc17a7-IRES2-Cre": "Pyr", "Sst-IRES-Cre": "SST", "Vip-IRES-Cre": "VIP"}
STRUCTURE_TO_AREA = {"VISp": "V1", "VISl": "LM"}
#: Structures of the release that the selection drops on purpose (anything else is reported as unknown).
DROPPED_STRUCTURES = ("VISal", "VISam")
EXPERIENCE_TO_LEVEL = {"Familiar": "familiar", "Novel 1": "novel"}
PROJECT_CODE = "VisualBehaviorMultiscope"
LAYER_RULES = ("published", "split", "fixed")
DEFAULT_LAYER_RULE = "split"

#: The reference's L5 lower bound (µm) per (cell type, area) and experience level (§4.2).
L5_LOWER_BOUNDS = {
    ("Pyr", "V1"): {"familiar": 370, "novel": 370},
    ("Pyr", "LM"): {"familiar": 370, "novel": 350},
    ("SST", "V1"): {"familiar": 295, "novel": 320},
    ("SST", "LM"): {"familiar": 295, "novel": 295},
    ("VIP", "V1"): {"familiar": 295, "novel": 295},
    ("VIP", "LM"): {"familiar": 295, "novel": 295},
}

#: Columns every experiment table must have (``ophys_experiment_id`` may be the index).
EXPERIMENT_COLUMNS = ("ophys_experiment_id", "ophys_session_id", "cre_line", "project_code", "passive",
                      "experience_level", "targeted_structure", "imaging_depth")
#: Columns of the selection table written by ``python -m biornn allen select``.
SELECTION_COLUMNS = ("ophys_experiment_id", "ophys_session_id", "experience_level", "cell_type", "area", "layer",
                     "imaging_depth", "n_cells")
TRIAL_COLUMNS = ("start_time", "stop_time", "is_change", "change_time")
STIMULUS_COLUMNS = ("start_time", "image_name", "is_change")

BUNDLED_SUBDIR = ("test", "brain_observatory", "behavior", "behavior_project_cache", "test_data", "vbo")
TABLE_FILES = {"experiments": "ophys_experiment_table.csv", "sessions": "ophys_session_table.csv",
               "behavior_sessions": "behavior_session_table.csv", "cells": "ophys_cells_table.csv"}
#: Environment variable naming a real AllenSDK cache folder (used by the notebooks).
CACHE_ENV = ALLEN_CACHE_ENV
#: File name pattern of an AllenSDK release manifest; a folder holding one is a cache.
MANIFEST_GLOB = "*_manifest_v*.json"
#: The release project whose manifests :func:`latest_manifest` reads.
CACHE_PROJECT = "visual-behavior-ophys"


# --------------------------------------------------------------------------------------------------------------------
# Layer rules
# --------------------------------------------------------------------------------------------------------------------

def layer_bounds(rule: str, cell_type: str, area: str, experience: str) -> dict[str, tuple[float, float, bool]]:
    """Depth bins of one population under a layer rule.

    Args:
        rule: ``published``, ``split`` or ``fixed``.
        cell_type: ``Pyr``, ``SST`` or ``VIP``.
        area: ``V1`` or ``LM``.
        experience: ``familiar`` or ``novel``.

    Returns:
        ``{layer: (low, high, high_inclusive)}`` in µm; the low end is always inclusive.
    """
    if rule not in LAYER_RULES:
        raise BiornnError(f"unknown layer rule {rule!r}; use one of {', '.join(LAYER_RULES)}")
    lo = L5_LOWER_BOUNDS[(cell_type, area)][experience]
    if rule == "published":
        return {"L2/3": (0, L23_UPPER, True), "L4": (L23_UPPER, L4_UPPER, True), "L5": (lo, L5_UPPER, True)}
    if rule == "split":
        return {"L2/3": (0, L23_UPPER, False), "L4": (L23_UPPER, lo, False), "L5": (lo, L5_UPPER, True)}
    return {"L2/3": (0, L23_UPPER, False), "L4": (L23_UPPER, L4_UPPER, False), "L5": (L4_UPPER, L5_UPPER, True)}


def layers_of_depth(depth: float, cell_type: str, area: str, experience: str, rule: str = DEFAULT_LAYER_RULE
                    ) -> list[str]:
    """The layers (zero, one, or two under ``published``) whose depth bin contains ``depth`` µm."""
    out = []
    for layer, (lo, hi, closed) in layer_bounds(rule, cell_type, area, experience).items():
        if lo <= depth and (depth <= hi if closed else depth < hi):
            out.append(layer)
    return out


# --------------------------------------------------------------------------------------------------------------------
# Metadata tables
# --------------------------------------------------------------------------------------------------------------------

@dataclass
class Metadata:
    """Release metadata tables.

    Attributes:
        experiments: one row per ophys experiment (``ophys_experiment_id`` a column).
        cells: ``ophys_experiment_id``, ``cell_specimen_id``, ``cell_roi_id`` (or None).
        sessions: ophys-session table (or None).
        behavior_sessions: behaviour-session table (or None).
        source: where the tables came from (for manifests).
    """

    experiments: pd.DataFrame
    cells: pd.DataFrame | None = None
    sessions: pd.DataFrame | None = None
    behavior_sessions: pd.DataFrame | None = None
    source: str = ""


def bundled_metadata_dir() -> Path:
    """The folder of metadata CSVs inside the installed ``allensdk`` package (found without importing it)."""
    spec = importlib.util.find_spec("allensdk")
    if spec is None or not spec.submodule_search_locations:
        raise BiornnError("allensdk is not installed, so the bundled metadata are unavailable; install "
                          "allensdk==2.16.2 (pip install -e .) or pass a metadata/cache folder")
    folder = Path(list(spec.submodule_search_locations)[0]).joinpath(*BUNDLED_SUBDIR)
    if not (folder / TABLE_FILES["experiments"]).exists():
        raise BiornnError(f"no {TABLE_FILES['experiments']} in {folder}; this allensdk build does not ship the "
                          "VBO test tables: install allensdk==2.16.2 or pass a metadata/cache folder")
    return folder


def allensdk_version() -> str:
    """The installed allensdk version (without importing it), or ``"not installed"``."""
    try:
        return metadata.version("allensdk")
    except metadata.PackageNotFoundError:
        return "not installed"


def read_metadata_csvs(folder: str | os.PathLike, source: str | None = None) -> Metadata:
    """Read the release CSVs of a folder (experiment table required; cells and session tables if present)."""
    folder = Path(folder)
    tables = {}
    for key, name in TABLE_FILES.items():
        path = folder / name
        if path.exists():
            tables[key] = pd.read_csv(path)
        elif key == "experiments":
            raise BiornnError(f"no {name} in {folder}; pass 'bundled', a folder with the release CSVs or an "
                              "AllenSDK cache folder")
    return Metadata(experiments=tables["experiments"], cells=tables.get("cells"), sessions=tables.get("sessions"),
                    behavior_sessions=tables.get("behavior_sessions"), source=source or str(folder))


def load_metadata(source: str | os.PathLike = "bundled", download: bool = False, flag: str = "--metadata"
                  ) -> Metadata:
    """Load the release metadata.

    Args:
        source: ``"bundled"`` (the tables shipped in the allensdk wheel; offline), a folder holding
            ``ophys_experiment_table.csv`` (and optionally the cells/session tables), or an AllenSDK cache folder
            (opened with :func:`open_cache`; imports allensdk).
        download: open a cache folder with ``from_s3_cache`` (downloads the tables; needs a network); the folder is
            created when missing.
        flag: the option that named ``source``, for messages.

    Returns:
        :class:`Metadata`.

    Raises:
        BiornnError: ``source`` is not a folder, or a folder that holds neither the release CSVs nor a cache manifest
            (the message suggests a nearby folder that does).
    """
    if str(source) == "bundled":
        return read_metadata_csvs(bundled_metadata_dir(), source=f"bundled (allensdk {allensdk_version()})")
    folder = Path(source).expanduser()
    if not download:
        hint = _did_you_mean(folder)
        if not folder.is_dir():
            raise BiornnError(f"{flag} {str(source)!r} is neither 'bundled' nor an existing folder{hint}; pass "
                              "bundled, a folder of release CSVs or an AllenSDK cache folder")
        if (folder / TABLE_FILES["experiments"]).exists():
            return read_metadata_csvs(folder)
        if not has_manifest(folder):
            raise BiornnError(f"{flag} {source} holds neither {TABLE_FILES['experiments']} nor an AllenSDK manifest "
                              f"({MANIFEST_GLOB}){hint}; pass bundled, a folder of release CSVs or an AllenSDK cache "
                              "folder")
    cache = open_cache(folder, download=download, flag=flag)
    experiments = cache.get_ophys_experiment_table().reset_index()
    try:
        cells = cache.get_ophys_cells_table().reset_index()
    except Exception as exc:  # noqa: BLE001 -- cell counts are optional; selection works without them
        log.warning("could not read the cells table from %s (%s); n_cells will be missing", folder, one_line(exc))
        cells = None
    return Metadata(experiments=experiments, cells=cells, sessions=cache.get_ophys_session_table().reset_index(),
                    behavior_sessions=None, source=f"AllenSDK cache {folder}")


def _require_columns(table: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    for col in columns:
        if col not in table.columns:
            raise BiornnError(f"{what} has no column {col!r} (columns: {', '.join(map(str, table.columns))}); "
                              "pass the table as AllenSDK returns it")


def validate_experiment_table(experiments: pd.DataFrame) -> pd.DataFrame:
    """Check and normalise an experiment table; return a copy with ``ophys_experiment_id`` as a column.

    Raises:
        BiornnError: a required column is missing (the message names it) or ids/depths are not numbers.
    """
    table = experiments
    if "ophys_experiment_id" not in table.columns and table.index.name == "ophys_experiment_id":
        table = table.reset_index()
    _require_columns(table, EXPERIMENT_COLUMNS, "experiment table")
    table = table.copy()
    for col in ("ophys_experiment_id", "ophys_session_id", "imaging_depth"):
        values = pd.to_numeric(table[col], errors="coerce")
        if values.isna().any():
            bad = table.loc[values.isna(), "ophys_experiment_id"].iloc[0]
            raise BiornnError(f"experiment {bad}: {col} is not a number; fix the experiment table")
        table[col] = values.astype(np.int64) if col != "imaging_depth" else values
    if table["passive"].dtype != bool:
        table["passive"] = table["passive"].astype(str).str.strip().str.lower().map({"true": True, "false": False})
        if table["passive"].isna().any():
            raise BiornnError("experiment table: column 'passive' must hold True/False")
    return table


def cells_per_experiment(cells: pd.DataFrame | None) -> pd.Series | None:
    """Number of cells (valid ROIs) per ``ophys_experiment_id`` from a cells table (None if no table)."""
    if cells is None:
        return None
    table = cells.reset_index() if "ophys_experiment_id" not in cells.columns else cells
    _require_columns(table, ("ophys_experiment_id",), "cells table")
    return table.groupby("ophys_experiment_id").size()


def select_experiments(experiments: pd.DataFrame | Metadata, cells: pd.DataFrame | None = None,
                       layer_rule: str = DEFAULT_LAYER_RULE, warn_overlap: bool = True) -> pd.DataFrame:
    """Apply the selection filters and the depth -> layer rule.

    Args:
        experiments: the experiment table (or a :class:`Metadata`, whose cells table is then used).
        cells: cells table for the per-experiment cell counts (optional).
        layer_rule: ``published``, ``split`` (default) or ``fixed``.
        warn_overlap: warn when one experiment feeds two populations (always the case under ``published``).

    Returns:
        One row per (experiment, population), sorted by experience level, then population index order
        (V1 then LM; L4, L2/3, L5; Pyr, SST, VIP), then experiment-table order. Columns: :data:`SELECTION_COLUMNS`
        plus ``population`` (e.g. ``V1_L2/3_Pyr``), ``cre_line``, ``session_type``, ``imaging_plane_group``
        (NaN when absent).

    Raises:
        BiornnError: a missing column, or an experiment that passes the project/activity/experience filters with
            an unknown cre line or area (the message names the experiment id).
    """
    if isinstance(experiments, Metadata):
        cells = experiments.cells if cells is None else cells
        experiments = experiments.experiments
    if layer_rule not in LAYER_RULES:
        raise BiornnError(f"unknown layer rule {layer_rule!r}; use one of {', '.join(LAYER_RULES)}")
    table = validate_experiment_table(experiments)
    table = table[(table["project_code"] == PROJECT_CODE) & (~table["passive"])
                  & table["experience_level"].isin(list(EXPERIENCE_TO_LEVEL))]
    unknown = table[~table["cre_line"].isin(list(CRE_TO_TYPE))]
    if len(unknown):
        row = unknown.iloc[0]
        raise BiornnError(f"experiment {row['ophys_experiment_id']}: unknown cre line {row['cre_line']!r}; known: "
                          f"{', '.join(CRE_TO_TYPE)} (drop the row or add the line to biornn.data.allen.CRE_TO_TYPE)")
    known = set(STRUCTURE_TO_AREA) | set(DROPPED_STRUCTURES)
    unknown = table[~table["targeted_structure"].isin(list(known))]
    if len(unknown):
        row = unknown.iloc[0]
        raise BiornnError(f"experiment {row['ophys_experiment_id']}: unknown area (targeted_structure) "
                          f"{row['targeted_structure']!r}; known: {', '.join(sorted(known))}")
    table = table[table["targeted_structure"].isin(list(STRUCTURE_TO_AREA))].copy()
    table["cell_type"] = table["cre_line"].map(CRE_TO_TYPE)
    table["area"] = table["targeted_structure"].map(STRUCTURE_TO_AREA)
    table["experience_level"] = table["experience_level"].map(EXPERIENCE_TO_LEVEL)
    counts = cells_per_experiment(cells)
    if counts is not None:
        table["n_cells"] = table["ophys_experiment_id"].map(counts).fillna(0).astype(np.int64)
    else:
        table["n_cells"] = pd.array([pd.NA] * len(table), dtype="Int64")
    for col in ("session_type", "imaging_plane_group"):
        if col not in table.columns:
            table[col] = np.nan
    table["_order"] = np.arange(len(table))
    parts = []
    for layer in LAYERS:
        keep = np.zeros(len(table), dtype=bool)
        for i, rec in enumerate(table[["imaging_depth", "cell_type", "area", "experience_level"]].itertuples(
                index=False)):
            keep[i] = layer in layers_of_depth(rec.imaging_depth, rec.cell_type, rec.area, rec.experience_level,
                                               layer_rule)
        part = table[keep].copy()
        part["layer"] = layer
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out["population"] = [population_label(a, l, t) for a, l, t in zip(out["area"], out["layer"], out["cell_type"])]
    pop_rank = {lab: i for i, lab in enumerate(POPULATION_LABELS)}
    out["_pop"] = out["population"].map(pop_rank)
    out["_exp"] = out["experience_level"].map({e: i for i, e in enumerate(EXPERIENCE_LEVELS)})
    out = out.sort_values(["_exp", "_pop", "_order"], kind="stable").reset_index(drop=True)
    cols = list(SELECTION_COLUMNS) + ["population", "cre_line", "session_type", "imaging_plane_group"]
    out = out[cols]
    out.attrs["layer_rule"] = layer_rule
    if warn_overlap:
        shared = find_overlaps(out)
        if len(shared):
            msg = (f"layer rule {layer_rule!r}: {int(shared['n_shared'].sum())} experiments feed two populations "
                   f"({len(shared)} population pairs, e.g. {shared.iloc[0]['experience_level']} "
                   f"{shared.iloc[0]['population_a']} & {shared.iloc[0]['population_b']}); their windows are "
                   "double-counted. Use layer_rule='split' for non-overlapping populations")
            log.info(msg)
            warnings.warn(msg, UserWarning, stacklevel=2)
    return out


def selection_funnel(experiments: pd.DataFrame | Metadata) -> pd.DataFrame:
    """Experiments (and sessions) left after each selection filter, in the order they are applied.

    Returns:
        DataFrame with columns ``filter``, ``n_experiments``, ``n_sessions``.
    """
    table = validate_experiment_table(experiments.experiments if isinstance(experiments, Metadata) else experiments)
    steps = [("release table", np.ones(len(table), dtype=bool)),
             ("cre line Slc17a7/Sst/Vip", table["cre_line"].isin(list(CRE_TO_TYPE)).to_numpy()),
             (f"project {PROJECT_CODE}", (table["project_code"] == PROJECT_CODE).to_numpy()),
             ("active (passive == False)", (~table["passive"]).to_numpy()),
             ("experience Familiar / Novel 1", table["experience_level"].isin(list(EXPERIENCE_TO_LEVEL)).to_numpy()),
             ("area VISp / VISl", table["targeted_structure"].isin(list(STRUCTURE_TO_AREA)).to_numpy())]
    rows, keep = [], np.ones(len(table), dtype=bool)
    for name, mask in steps:
        keep &= mask
        rows.append(dict(filter=name, n_experiments=int(keep.sum()),
                         n_sessions=int(table.loc[keep, "ophys_session_id"].nunique())))
    return pd.DataFrame(rows)


def find_overlaps(selection: pd.DataFrame) -> pd.DataFrame:
    """Population pairs (same experience level) that share experiments.

    Returns:
        DataFrame with columns ``experience_level``, ``population_a``, ``population_b``, ``n_shared`` and
        ``shared_depths`` (sorted unique depths in µm of the shared planes); empty when populations are disjoint.
    """
    rows = []
    for exp, group in selection.groupby("experience_level", sort=False):
        sets = {pop: set(g["ophys_experiment_id"]) for pop, g in group.groupby("population", sort=False)}
        depth = dict(zip(group["ophys_experiment_id"], group["imaging_depth"]))
        pops = [p for p in POPULATION_LABELS if p in sets]
        for i, a in enumerate(pops):
            for b in pops[i + 1:]:
                shared = sets[a] & sets[b]
                if shared:
                    rows.append(dict(experience_level=exp, population_a=a, population_b=b, n_shared=len(shared),
                                     shared_depths=sorted({int(depth[e]) for e in shared})))
    return pd.DataFrame(rows, columns=["experience_level", "population_a", "population_b", "n_shared",
                                       "shared_depths"])


def population_counts(selection: pd.DataFrame) -> pd.DataFrame:
    """Experiments and cells per population and experience level, all 36 combinations (zeros included).

    Returns:
        DataFrame indexed by (``experience_level``, ``area``, ``layer``, ``cell_type``) in display order
        (layers L2/3, L4, L5) with columns ``n_experiments``, ``n_sessions`` and ``n_cells``.
    """
    index = pd.MultiIndex.from_tuples([(e, a, l, t) for e in EXPERIENCE_LEVELS for a in AREAS
                                       for l in DISPLAY_LAYERS for t in TYPES],
                                      names=["experience_level", "area", "layer", "cell_type"])
    keys = ["experience_level", "area", "layer", "cell_type"]
    grouped = selection.groupby(keys)
    out = pd.DataFrame({"n_experiments": grouped["ophys_experiment_id"].nunique(),
                        "n_sessions": grouped["ophys_session_id"].nunique(),
                        "n_cells": grouped["n_cells"].sum()})
    return out.reindex(index).fillna(0).astype(np.int64)


def count_table(selection: pd.DataFrame, value: str = "n_experiments") -> pd.DataFrame:
    """A compact pivot of :func:`population_counts`: rows (experience, area, layer), columns Pyr, SST, VIP."""
    counts = population_counts(selection)[value].unstack("cell_type")
    order = pd.MultiIndex.from_tuples([(e, a, l) for e in EXPERIENCE_LEVELS for a in AREAS for l in DISPLAY_LAYERS],
                                      names=counts.index.names)
    return counts.reindex(order)[list(TYPES)]


def empty_populations(selection: pd.DataFrame) -> list[tuple[str, str]]:
    """``(experience_level, population label)`` of every population with no experiment."""
    have = set(zip(selection["experience_level"], selection["population"]))
    return [(e, p) for e in EXPERIENCE_LEVELS for p in POPULATION_LABELS if (e, p) not in have]


def require_nonempty(selection: pd.DataFrame, experience_levels=EXPERIENCE_LEVELS) -> None:
    """Raise :class:`BiornnError` naming the first empty population and its real cause.

    The causes, in the order checked: no experiment of a needed experience level at all (the metadata lack those
    sessions), a layer rule that empties populations (e.g. every SST/VIP L5 under ``fixed``), or metadata that simply
    hold no experiment of that population.
    """
    levels = [e for e in EXPERIENCE_LEVELS if e in experience_levels]
    have = set(selection["experience_level"]) if len(selection) else set()
    missing = [e for e in levels if e not in have]
    if missing:
        level = missing[0]
        raw = {v: k for k, v in EXPERIENCE_TO_LEVEL.items()}[level]
        other = [e for e in EXPERIENCE_LEVELS if e in have]
        hint = (f"build only {other[0]} conditions (e.g. --condition {other[0]}_change) or pass metadata that hold "
                f"{raw!r} sessions" if other else "pass metadata that hold them (e.g. --metadata bundled)")
        raise BiornnError(f"the selection has no {level} experiments (experience_level {raw!r}), which the requested "
                          f"{level} conditions need; {hint}")
    empty = [(e, p) for e, p in empty_populations(selection) if e in levels]
    if empty:
        rule = selection.attrs.get("layer_rule", "?")
        first = f"{empty[0][0]} {empty[0][1]}"
        if rule != DEFAULT_LAYER_RULE:
            fix = f"use --layer-rule {DEFAULT_LAYER_RULE} (layer_rule='{DEFAULT_LAYER_RULE}')"
        else:
            fix = "pass metadata (or a cache) that hold experiments of every population (allen select shows them)"
        raise BiornnError(f"{len(empty)} empty populations under layer rule {rule!r} (first: {first}); the "
                          f"18-population model needs all of them: {fix}")


# --------------------------------------------------------------------------------------------------------------------
# Per-experiment data and the real AllenSDK cache
# --------------------------------------------------------------------------------------------------------------------

class SkipExperiment(BiornnError):
    """An experiment that cannot contribute (all traces NaN, no cells, no trials); callers log and count it."""


class ExperimentReadError(BiornnError):
    """An experiment whose file could not be read; a build reports it by id and fails unless told to go on."""


@dataclass
class ExperimentData:
    """What the curation needs from one experiment (§3c–3e).

    Attributes:
        ophys_experiment_id: experiment (imaging plane) id.
        timestamps: ``(F,)`` frame times in s (sorted; same clock as trials and stimuli).
        pop_mean: ``(F,)`` mean ΔF/F over the valid cells of the plane.
        n_cells: cells in the mean.
        trials: one row per trial with ``start_time``, ``stop_time``, ``is_change`` (bool), ``change_time`` (s, NaN
            without a change); index ``trials_id``.
        stimulus_presentations: one row per presentation with ``start_time``, ``image_name``, ``omitted`` (bool),
            ``is_change`` (bool), ``stimulus_block_name``.
        ophys_session_id: the session (planes of one session share trials and stimuli).
        info: provenance (source, dropped NaN cells, ...).
    """

    ophys_experiment_id: int
    timestamps: np.ndarray
    pop_mean: np.ndarray
    n_cells: int
    trials: pd.DataFrame
    stimulus_presentations: pd.DataFrame
    ophys_session_id: int | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64)
        self.pop_mean = np.asarray(self.pop_mean, dtype=np.float64)
        if self.timestamps.ndim != 1 or self.timestamps.shape != self.pop_mean.shape:
            raise BiornnError(f"experiment {self.ophys_experiment_id}: {self.timestamps.shape[0]} timestamps but "
                              f"trace shape {self.pop_mean.shape}; timestamps and ΔF/F must have one value per frame")
        if self.timestamps.size > 1 and np.any(np.diff(self.timestamps) <= 0):
            raise BiornnError(f"experiment {self.ophys_experiment_id}: timestamps are not strictly increasing; "
                              "pass ophys_timestamps as AllenSDK returns them")


def mean_dff(dff_traces: pd.DataFrame, experiment_id: int = -1) -> tuple[np.ndarray, int, int]:
    """Stack an AllenSDK ``dff_traces`` table and average over cells, dropping cells with NaN/inf values.

    Args:
        dff_traces: DataFrame (index ``cell_specimen_id``) with a column ``dff`` holding one ``(F,)`` array per cell.
        experiment_id: for messages.

    Returns:
        ``(pop_mean (F,), n_valid_cells, n_dropped_cells)``.

    Raises:
        BiornnError: no ``dff`` column or arrays of different lengths.
        SkipExperiment: no cells, or every cell has non-finite values.
    """
    _require_columns(dff_traces, ("dff",), f"experiment {experiment_id}: dff_traces")
    if len(dff_traces) == 0:
        raise SkipExperiment(f"experiment {experiment_id}: dff_traces has no cells")
    lengths = {len(np.asarray(v)) for v in dff_traces["dff"]}
    if len(lengths) != 1:
        raise BiornnError(f"experiment {experiment_id}: dff arrays have different lengths {sorted(lengths)[:4]}; "
                          "every cell needs one value per frame")
    dff = np.vstack([np.asarray(v, dtype=np.float64) for v in dff_traces["dff"]])
    finite = np.isfinite(dff).all(axis=1)
    n_bad = int((~finite).sum())
    if n_bad:
        log.warning("experiment %s: dropped %d of %d cells with NaN/inf ΔF/F", experiment_id, n_bad, len(finite))
    if not finite.any():
        raise SkipExperiment(f"experiment {experiment_id}: all {len(finite)} cells have NaN/inf ΔF/F")
    return dff[finite].mean(axis=0), int(finite.sum()), n_bad


def parse_trials(trials: pd.DataFrame, experiment_id: int = -1) -> pd.DataFrame:
    """Check an AllenSDK ``trials`` table and return a sorted copy with bool ``is_change`` and float ``change_time``.

    ``stimulus_change`` (the raw name) and ``change_time_no_display_delay`` (VBN) are accepted as aliases.

    Raises:
        BiornnError: a required column (:data:`TRIAL_COLUMNS`) is missing (the message names it).
        SkipExperiment: the table has no rows.
    """
    aliases = {"stimulus_change": "is_change", "change_time_no_display_delay": "change_time"}
    rename = {a: c for a, c in aliases.items() if c not in trials.columns and a in trials.columns}
    trials = trials.rename(columns=rename) if rename else trials
    _require_columns(trials, TRIAL_COLUMNS, f"experiment {experiment_id}: trials table")
    if len(trials) == 0:
        raise SkipExperiment(f"experiment {experiment_id}: no trials")
    out = trials.copy()
    out["is_change"] = out["is_change"].fillna(False).astype(bool)
    for col in ("start_time", "stop_time", "change_time"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(np.float64)
    if out["start_time"].isna().any():
        raise BiornnError(f"experiment {experiment_id}: trials table has missing start_time values")
    return out.sort_values("start_time", kind="stable")


def parse_stimulus_presentations(stimulus: pd.DataFrame, experiment_id: int = -1) -> pd.DataFrame:
    """Check an AllenSDK ``stimulus_presentations`` table; return a copy sorted by ``start_time``.

    ``omitted`` is derived from ``image_name == 'omitted'`` when absent (older AllenSDK), and
    ``stimulus_block_name`` defaults to ``change_detection_behavior`` when absent (then every presentation counts as
    part of the behaviour block).

    Raises:
        BiornnError: a required column (:data:`STIMULUS_COLUMNS`) is missing (the message names it).
    """
    _require_columns(stimulus, STIMULUS_COLUMNS, f"experiment {experiment_id}: stimulus_presentations table")
    out = stimulus.copy()
    out["start_time"] = pd.to_numeric(out["start_time"], errors="coerce").astype(np.float64)
    out = out[out["start_time"].notna()]
    if "omitted" not in out.columns:
        out["omitted"] = out["image_name"].astype(str) == "omitted"
    out["omitted"] = out["omitted"].fillna(False).astype(bool)
    out["is_change"] = out["is_change"].fillna(False).astype(bool)
    if "stimulus_block_name" not in out.columns:
        log.info("experiment %s: stimulus table has no stimulus_block_name; treating all presentations as %s",
                 experiment_id, BEHAVIOR_BLOCK)
        out["stimulus_block_name"] = BEHAVIOR_BLOCK
    return out.sort_values("start_time", kind="stable")


def experiment_from_allensdk(experiment, experiment_id: int | None = None, session_id: int | None = None
                             ) -> ExperimentData:
    """Convert a ``BehaviorOphysExperiment`` (or any object with the same four attributes) to :class:`ExperimentData`.

    Args:
        experiment: object with ``dff_traces`` (DataFrame, column ``dff``), ``ophys_timestamps`` ((F,) s), ``trials``
            and ``stimulus_presentations`` (DataFrames shaped like AllenSDK's).
        experiment_id: id for messages and the result (default ``experiment.ophys_experiment_id`` if present).
        session_id: the ophys session id (default ``experiment.metadata['ophys_session_id']`` if present).
    """
    if experiment_id is None:
        experiment_id = int(getattr(experiment, "ophys_experiment_id", -1))
    if session_id is None:
        meta = getattr(experiment, "metadata", None)
        if isinstance(meta, dict) and "ophys_session_id" in meta:
            session_id = int(meta["ophys_session_id"])
    pop_mean, n_cells, n_bad = mean_dff(experiment.dff_traces, experiment_id)
    timestamps = np.asarray(experiment.ophys_timestamps, dtype=np.float64)
    if timestamps.shape != pop_mean.shape:
        raise BiornnError(f"experiment {experiment_id}: {timestamps.size} ophys_timestamps but {pop_mean.size} ΔF/F "
                          "frames; the file may be damaged: replace it with an intact copy")
    trials = parse_trials(experiment.trials, experiment_id)
    stimulus = parse_stimulus_presentations(experiment.stimulus_presentations, experiment_id)
    return ExperimentData(ophys_experiment_id=int(experiment_id), timestamps=timestamps, pop_mean=pop_mean,
                          n_cells=n_cells, trials=trials, stimulus_presentations=stimulus,
                          ophys_session_id=session_id, info={"source": "allensdk", "n_nan_cells": n_bad})


def one_line(exc: BaseException, limit: int = 240) -> str:
    """``"Type: message"`` of an exception on one line (whitespace collapsed, at most ``limit`` characters)."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def has_manifest(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds an AllenSDK release manifest (``*_manifest_v*.json``)."""
    folder = Path(folder)
    return folder.is_dir() and any(folder.glob(MANIFEST_GLOB))


def _did_you_mean(folder: Path) -> str:
    """``" (did you mean X?)"``: a parent, subfolder (two levels) or sibling that holds a manifest, else ``""``."""
    folder = Path(folder).expanduser().absolute()
    near = sorted(folder.glob("*/")) + sorted(folder.glob("*/*/")) if folder.is_dir() else []
    if not folder.exists() and folder.parent.is_dir():
        near = sorted(folder.parent.glob("*/"))  # a typo: its siblings
    found = [c for c in [folder.parent, folder.parent.parent, *near] if c != folder and has_manifest(c)]
    return f" (did you mean {found[0]}?)" if found else ""


def require_cache_folder(folder: str | os.PathLike, flag: str = "--source") -> Path:
    """Check that ``folder`` is a local AllenSDK cache (holds a release manifest) before anything is read.

    Raises:
        BiornnError: the folder does not exist or holds no manifest (naming a nearby folder that does, if any).
    """
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise BiornnError(f"{flag} {folder} does not exist{_did_you_mean(path)}; pass an AllenSDK cache folder "
                          "(the one that holds visual-behavior-ophys_manifest_v*.json)")
    if not has_manifest(path):
        hint = _did_you_mean(path)
        fix = "" if hint else f", or download into it with --source s3 --cache-dir {folder}"
        raise BiornnError(f"{flag} {folder} is not an AllenSDK cache: it holds no {MANIFEST_GLOB} file{hint}; pass "
                          f"the folder that holds the manifest{fix}")
    return path


def open_cache(cache_dir: str | os.PathLike, download: bool = False, flag: str = "--source"):
    """Open an AllenSDK ``VisualBehaviorOphysProjectCache`` (imports allensdk).

    ``download``: ``from_s3_cache`` (downloads; needs a network) into ``cache_dir``, created when missing. Otherwise
    ``from_local_cache`` (offline), and ``cache_dir`` must hold a release manifest: a local folder never falls back
    to a download.

    Raises:
        BiornnError: no manifest in a local folder (with a "did you mean" hint), or allensdk cannot open the cache.
    """
    if download:
        try:
            Path(cache_dir).expanduser().mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BiornnError(f"{flag} {cache_dir} cannot be created ({exc.strerror}); pass a folder you can write "
                              "to") from None
    cache_dir = Path(cache_dir).expanduser().resolve() if download else require_cache_folder(cache_dir, flag).resolve()
    try:
        from allensdk.brain_observatory.behavior.behavior_project_cache import VisualBehaviorOphysProjectCache
    except ImportError as exc:
        raise BiornnError(f"reading a real cache needs allensdk ({exc}); install allensdk==2.16.2") from None
    if not download:
        require_cache_tables(cache_dir)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"\s*As of AllenSDK version 2.16.0")
            if not download:
                return VisualBehaviorOphysProjectCache.from_local_cache(cache_dir=cache_dir)
            return VisualBehaviorOphysProjectCache.from_s3_cache(cache_dir=cache_dir)
    except Exception as exc:  # noqa: BLE001 -- any failure here is a setup problem the user must fix
        if download:
            raise BiornnError(f"could not open the AllenSDK cache at {cache_dir} with from_s3_cache, which needs a "
                              f"network ({one_line(exc, 160)}); connect to the internet, or pass --metadata bundled "
                              "and a local cache folder as --source") from None
        raise BiornnError(f"could not open the local AllenSDK cache at {cache_dir} ({one_line(exc, 160)}); a file "
                          "its manifest lists is missing or damaged: copy it from a complete cache, or download "
                          f"the cache again with --source s3 --cache-dir {cache_dir}") from None


def latest_manifest(cache_dir: str | os.PathLike) -> Path | None:
    """The newest ``visual-behavior-ophys_manifest_v*.json`` in a cache folder (None if there is none)."""
    files = sorted(Path(cache_dir).glob(f"{CACHE_PROJECT}_manifest_v*.json"))
    if not files:
        return None

    def version(path: Path) -> tuple:
        return tuple(int(p) if p.isdigit() else 0 for p in path.stem.split("_v")[-1].split("."))

    return max(files, key=version)


def manifest_files(cache_dir: str | os.PathLike, section: str) -> dict[str, tuple[Path, str, int | None]]:
    """``{key: (local path, blake2b hash, size in bytes or None)}`` of one section of a cache's newest manifest."""
    path = latest_manifest(cache_dir)
    if path is None:
        return {}
    try:
        manifest = json.loads(path.read_text())
        root = Path(cache_dir).resolve() / f"{manifest['project_name']}-{manifest['manifest_version']}"
        out = {}
        for key, entry in manifest[section].items():
            rel = entry["url"].split(".amazonaws.com/", 1)[-1].split("/", 1)[-1]
            size = entry.get("file_size", entry.get("size"))
            out[str(key)] = (root / rel, entry["file_hash"], int(size) if size is not None else None)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BiornnError(f"the cache manifest {path} is unreadable ({one_line(exc, 120)}); copy an intact one from "
                          "the release (or download the cache again with --source s3)") from None
    return out


def manifest_data_files(cache_dir: str | os.PathLike) -> dict[str, tuple[Path, str]]:
    """``{file_id: (local path, blake2b hash)}`` of the data files of a cache's newest manifest (no allensdk).

    Local paths follow allensdk's ``Manifest``: ``<cache>/<project>-<version>/<url path without the project>``.
    """
    return {k: (p, h) for k, (p, h, _) in manifest_files(cache_dir, "data_files").items()}


def require_cache_tables(cache_dir: str | os.PathLike) -> dict[str, tuple[Path, str, int | None]]:
    """The metadata tables of a local cache's manifest; raise :class:`BiornnError` naming one that is not on disk."""
    tables = manifest_files(cache_dir, "metadata_files")
    for path, _, _ in tables.values():
        if not path.is_file():
            raise BiornnError(f"the local cache {cache_dir} lacks {path.name} ({path}), which its manifest lists; "
                              "copy it from a complete cache, or download it with --source s3 --cache-dir "
                              f"{cache_dir}")
    return tables


def cache_experiment_files(cache_dir: str | os.PathLike) -> dict[int, Path]:
    """``{ophys_experiment_id: local NWB path}`` of a local cache, from its manifest and its experiment table.

    Raises:
        BiornnError: a metadata table the manifest lists is not on disk, or the experiment table has no
            ``file_id`` column (the message names the file and how to restore it).
    """
    tables = require_cache_tables(cache_dir)
    if "ophys_experiment_table" not in tables:
        raise BiornnError(f"the manifest of {cache_dir} lists no ophys_experiment_table; pass a Visual Behavior "
                          "Ophys cache")
    table = pd.read_csv(tables["ophys_experiment_table"][0])
    if "file_id" not in table.columns or "ophys_experiment_id" not in table.columns:
        raise BiornnError(f"{tables['ophys_experiment_table'][0]} has no ophys_experiment_id / file_id column; "
                          "copy the table from a complete cache")
    data = manifest_data_files(cache_dir)
    return {int(e): data[str(f)][0] for e, f in zip(table["ophys_experiment_id"], table["file_id"])
            if str(f) in data}


def file_matches(path: Path, file_hash: str) -> bool:
    """Whether a local file exists and has the manifest's blake2b hash (allensdk's ``file_hash_from_path``)."""
    if not path.is_file():
        return False
    hasher = hashlib.blake2b()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest() == file_hash
