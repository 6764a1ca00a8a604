"""A real, offline Visual Behavior Ophys project cache: small NWB files written with allensdk's own writers.

The allensdk wheel ships the release metadata tables but no NWB file, so the reading path of :mod:`biornn.data.allen`
(``VisualBehaviorOphysProjectCache.from_local_cache`` -> ``get_behavior_ophys_experiment`` -> ``dff_traces``,
``ophys_timestamps``, ``trials``, ``stimulus_presentations``) cannot otherwise run offline. :func:`write_fixture_cache`
builds a folder that allensdk accepts exactly as a downloaded cache:

* ``visual-behavior-ophys_manifest_v1.1.0.json`` (the release-manifest format of
  :class:`allensdk.api.cloud_cache.manifest.Manifest`: project name, manifest version, ``file_id`` column,
  ``data_pipeline``, and url / version id / blake2b hash per metadata and data file);
* ``visual-behavior-ophys-1.1.0/project_metadata/<name>_table.csv`` for the behaviour-session, ophys-session,
  ophys-experiment and ophys-cells tables: the rows of the chosen experiments copied from the real tables shipped
  in the allensdk wheel, plus a ``file_id``;
* ``visual-behavior-ophys-1.1.0/behavior_ophys_experiments/behavior_ophys_experiment_<id>.nwb``: one file per
  experiment, written by constructing allensdk's own data objects (``BehaviorSession`` parts, ``CellSpecimens``,
  ``BehaviorOphysMetadata``, ``Projections``, ``MotionCorrection``) into a ``BehaviorOphysExperiment`` and calling
  its ``to_nwb()``, so every module and table that ``BehaviorOphysExperiment.from_nwb`` reads back is present.

Each session has a short timeline (:func:`session_timeline`): a grey-screen row, a ``change_detection_behavior``
block of 0.75 s flashes with go/catch trials, changes and omissions, a grey-screen row and a short
``change_detection_passive`` block that also holds omissions (not part of a real active session; it is there so the
tests see allensdk recompute ``is_change`` across blocks). The mean ΔF/F of a plane is a known function of the
stimulus times, so the tests can check the cut windows against what was written. allensdk is imported inside the
functions only.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import multiprocessing
import os
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from biornn.core.conditions import CONDITIONS, condition_name, split_condition
from biornn.core.errors import BiornnError
from biornn.data.allen import (
    BEHAVIOR_BLOCK,
    CACHE_PROJECT,
    DEFAULT_LAYER_RULE,
    EXPERIENCE_LEVELS,
    LAYER_RULES,
    ExperimentData,
    ExperimentReadError,
    Metadata,
    SkipExperiment,
    allensdk_version,
    cache_experiment_files,
    experiment_from_allensdk,
    file_matches,
    load_metadata,
    manifest_data_files,
    manifest_files,
    one_line,
    open_cache,
    population_counts,
    require_cache_folder,
    select_experiments,
)

log = logging.getLogger("biornn.data.allen_nwb")
allen_log = logging.getLogger("biornn.data.allen")  # AllenCacheSource logs as it did in biornn.data.allen

PROJECT_NAME = CACHE_PROJECT
BUCKET = "visual-behavior-ophys-data"
MANIFEST_VERSION = "1.1.0"
MANIFEST_NAME = f"{PROJECT_NAME}_manifest_v{MANIFEST_VERSION}.json"
PASSIVE_BLOCK = "change_detection_passive"
FLASH_PERIOD = 0.75
FLASH_DURATION = 0.25
FRAME_PERIOD = 0.0932
IMAGES = ("im061", "im062", "im063", "im065")
#: ΔF/F bumps (added to every cell of a plane) after each kind of event, so the windows are recognisable.
EVENT_AMPLITUDE = {"flash": 0.05, "change": 0.5, "omission": 0.3}
METADATA_NAMES = {"behavior_session_table": "behavior_sessions", "ophys_session_table": "sessions",
                  "ophys_experiment_table": "experiments", "ophys_cells_table": "cells"}


@dataclass(frozen=True)
class FixtureConfig:
    """Size of the fixture.

    Attributes:
        n_behavior_flashes: flashes in the behaviour block (0.75 s each).
        n_passive_flashes: flashes in the passive block.
        gray_s: length of each grey-screen period (s).
        n_cells: cells per plane (plus one invalid ROI that allensdk drops).
        seed: noise seed.
    """

    n_behavior_flashes: int = 120
    n_passive_flashes: int = 24
    gray_s: float = 5.0
    n_cells: int = 3
    seed: int = 0


def session_timeline(session_id: int, config: FixtureConfig = FixtureConfig()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stimulus presentations and trials of one fixture session (deterministic in ``session_id``).

    Returns:
        ``(presentations, trials)`` shaped like allensdk's VBO tables (presentations with ``stimulus_block``,
        ``stimulus_block_name``, ``image_name``, ``omitted``, ``is_change``, ...; trials with ``start_time``,
        ``stop_time``, ``is_change``, ``change_time``, ``go``, ``catch``, ...).
    """
    rng = np.random.default_rng([config.seed, int(session_id) % 2**32])
    t0 = 1.0 + config.gray_s
    n = config.n_behavior_flashes
    onsets = t0 + FLASH_PERIOD * np.arange(n)
    image = np.empty(n, dtype=object)
    omitted = np.zeros(n, dtype=bool)
    is_change = np.zeros(n, dtype=bool)
    trials, i, current = [], 0, 0
    while i + 12 < n:
        go = rng.random() < 0.7
        k = int(rng.integers(4, 9))  # change on the k-th flash after trial start
        start = i
        image[i:i + k] = IMAGES[current]
        if go:
            current = (current + 1 + int(rng.integers(0, len(IMAGES) - 1))) % len(IMAGES)
            is_change[i + k] = True
        image[i + k:i + k + 3] = IMAGES[current]
        # one omission per trial, never next to the change flash
        j = i + int(rng.integers(1, max(2, k - 2)))
        omitted[j] = True
        trials.append(dict(start=start, change=start + k if go else -1, stop=i + k + 3, go=go))
        i += k + 3
    image[i:] = IMAGES[current]
    image[omitted] = "omitted"
    behavior = _presentations(onsets, image, omitted, is_change, 1, BEHAVIOR_BLOCK)
    gray0 = dict(start_time=1.0, stop_time=t0, duration=t0 - 1.0, image_name="", stimulus_block=0,
                 stimulus_block_name="initial_gray_screen_5min", stimulus_name="spontaneous", omitted=False,
                 is_change=False, start_frame=0, end_frame=int(config.gray_s * 60))
    t1 = onsets[-1] + FLASH_PERIOD
    gray1 = dict(gray0, start_time=t1, stop_time=t1 + config.gray_s, stimulus_block=2,
                 stimulus_block_name="post_behavior_gray_screen_5min")
    p_on = t1 + config.gray_s + FLASH_PERIOD * np.arange(config.n_passive_flashes)
    p_img = np.array([IMAGES[(current + 1) % len(IMAGES)]] * p_on.size, dtype=object)
    p_om = np.zeros(p_on.size, dtype=bool)
    p_om[3::6] = True
    p_img[p_om] = "omitted"
    passive = _presentations(p_on, p_img, p_om, np.zeros(p_on.size, dtype=bool), 3, PASSIVE_BLOCK)
    table = pd.concat([pd.DataFrame([gray0]), behavior, pd.DataFrame([gray1]), passive], ignore_index=True)
    return table, _trials_table(trials, onsets, image)


def _presentations(onsets, image, omitted, is_change, block, name) -> pd.DataFrame:
    return pd.DataFrame({"start_time": onsets, "stop_time": onsets + FLASH_DURATION,
                         "duration": np.full(onsets.size, FLASH_DURATION), "image_name": image,
                         "stimulus_block": block, "stimulus_block_name": name, "stimulus_name": "Natural_Images",
                         "omitted": omitted, "is_change": is_change,
                         "start_frame": np.round(onsets * 60).astype(np.int64),
                         "end_frame": np.round((onsets + FLASH_DURATION) * 60).astype(np.int64)})


def _trials_table(trials: list[dict], onsets: np.ndarray, image: np.ndarray) -> pd.DataFrame:
    rows = []
    for tr in trials:
        go = tr["go"]
        change_time = float(onsets[tr["change"]]) if go else np.nan
        start = float(onsets[tr["start"]]) - 0.01
        rows.append(dict(start_time=start, stop_time=float(onsets[tr["stop"]]) - 0.02, lick_times=[],
                         reward_time=change_time + 0.4 if go else np.nan, reward_volume=0.005 if go else 0.0,
                         hit=go, false_alarm=False, miss=False, is_change=go, aborted=False, go=go, catch=not go,
                         auto_rewarded=False, correct_reject=not go, trial_length=0.0,
                         response_time=change_time + 0.4 if go else np.nan,
                         initial_image_name=str(image[tr["start"]]),
                         change_image_name=str(image[tr["change"]]) if go else str(image[tr["start"]]),
                         change_time=change_time, change_frame=int(round(change_time * 60)) if go else -99))
    table = pd.DataFrame(rows)
    table["trial_length"] = table["stop_time"] - table["start_time"]
    table.index.name = "trials_id"
    return table


def plane_trace(timestamps: np.ndarray, presentations: pd.DataFrame, depth: float) -> np.ndarray:
    """The noise-free mean ΔF/F of a fixture plane: a decaying bump after every flash, change and omission."""
    trace = np.full(timestamps.size, 0.01 * depth / 100.0)
    images = presentations[presentations["stimulus_block_name"].isin([BEHAVIOR_BLOCK, PASSIVE_BLOCK])]
    for rec in images.itertuples(index=False):
        kind = "omission" if rec.omitted else "change" if rec.is_change else "flash"
        dt = timestamps - rec.start_time
        trace += np.where(dt >= 0, EVENT_AMPLITUDE[kind] * np.exp(-np.clip(dt, 0, None) / 0.5), 0.0)
    return trace


def _behavior_session(row: pd.Series, presentations: pd.DataFrame, trials: pd.DataFrame, end_time: float):
    """allensdk ``BehaviorSession`` parts of one fixture session (imports allensdk)."""
    from allensdk.brain_observatory.behavior import behavior_session as bs
    from allensdk.brain_observatory.behavior.data_objects import task_parameters as tp
    from allensdk.brain_observatory.behavior.data_objects.metadata.behavior_metadata import (
        behavior_session_uuid,
        equipment,
        project_code,
        session_type,
        stimulus_frame_rate,
    )
    from allensdk.brain_observatory.behavior.data_objects.metadata.subject_metadata import (
        age,
        driver_line,
        full_genotype,
        mouse_id,
        reporter_line,
        sex,
        subject_metadata,
    )
    from allensdk.brain_observatory.behavior.data_objects.stimuli.presentations import Presentations
    from allensdk.brain_observatory.behavior.data_objects.stimuli.stimulus_templates import StimulusTemplateFactory
    from allensdk.brain_observatory.behavior.data_objects.stimuli.templates import Templates

    date = bs.DateOfAcquisition(pd.Timestamp(row["date_of_acquisition"]).to_pydatetime())
    stim_times = np.arange(0.0, end_time, 1 / 60.0)
    subject = subject_metadata.SubjectMetadata(
        sex=sex.Sex(str(row["sex"])), age=age.Age(int(row["age_in_days"])),
        reporter_line=reporter_line.ReporterLine(str(row["reporter_line"])),
        full_genotype=full_genotype.FullGenotype(str(row["full_genotype"])),
        driver_line=driver_line.DriverLine([str(row["cre_line"])]), mouse_id=mouse_id.MouseId(str(row["mouse_id"])))
    meta = bs.BehaviorMetadata(
        date_of_acquisition=date, subject_metadata=subject,
        behavior_session_id=bs.BehaviorSessionId(int(row["behavior_session_id"])),
        equipment=equipment.Equipment(str(row["equipment_name"])),
        stimulus_frame_rate=stimulus_frame_rate.StimulusFrameRate(60.0),
        session_type=session_type.SessionType(str(row["session_type"])),
        behavior_session_uuid=behavior_session_uuid.BehaviorSessionUUID(uuid.UUID(int=int(row["ophys_session_id"]))),
        project_code=project_code.ProjectCode(str(row["project_code"])))
    n_run = 64
    run_t = np.linspace(0.0, end_time, n_run)
    running = pd.DataFrame({"timestamps": run_t, "speed": np.zeros(n_run)})
    acq = pd.DataFrame({"dx": np.zeros(n_run), "v_sig": np.zeros(n_run), "v_in": np.full(n_run, 5.0)},
                       index=pd.Index(run_t, name="timestamps"))
    go = trials[trials["go"]]
    licks = pd.DataFrame({"timestamps": go["response_time"].to_numpy(float),
                          "frame": np.round(go["response_time"].to_numpy(float) * 60).astype(np.int64)})
    rewards = pd.DataFrame({"timestamps": go["reward_time"].to_numpy(float), "volume": np.full(len(go), 0.005),
                            "auto_rewarded": np.zeros(len(go), dtype=bool)})
    images = [i for i in IMAGES]
    pixels = np.zeros((len(images), 4, 6), dtype=np.float64)
    template = StimulusTemplateFactory.from_processed(
        image_set_name="fixture_images", image_attributes=[{"image_name": i} for i in images],
        warped=pixels, unwarped=pixels)
    params = tp.TaskParameters(
        blank_duration_sec=[0.5, 0.5], stimulus_duration_sec=FLASH_DURATION, omitted_flash_fraction=0.05,
        response_window_sec=[0.15, 0.75], reward_volume=0.005, auto_reward_volume=0.005,
        session_type=str(row["session_type"]), stimulus="images",
        stimulus_distribution=tp.StimulusDistribution.GEOMETRIC,
        task_type=tp.TaskType.CHANGE_DETECTION, n_stimulus_frames=int(stim_times.size), stimulus_name="images")
    trials_obj = bs.BehaviorSession._trials_class()(trials=trials, response_window_start=0.15)
    stimuli = bs.Stimuli(presentations=Presentations(presentations), templates=Templates({"fixture_images": template}))
    return bs.BehaviorSession(
        behavior_session_id=bs.BehaviorSessionId(int(row["behavior_session_id"])),
        stimulus_timestamps=bs.StimulusTimestamps(timestamps=stim_times, monitor_delay=0.0),
        running_acquisition=bs.RunningAcquisition(running_acquisition=acq),
        raw_running_speed=bs.RunningSpeed(running_speed=running, filtered=False),
        running_speed=bs.RunningSpeed(running_speed=running), metadata=meta, licks=bs.Licks(licks),
        rewards=bs.Rewards(rewards), stimuli=stimuli, task_parameters=params, trials=trials_obj,
        date_of_acquisition=date)


def _cell_specimens(row: pd.Series, cell_rows: pd.DataFrame, dff: np.ndarray, ophys_ts):
    """allensdk ``CellSpecimens`` of one plane: the given ROIs, the last one invalid (dropped when read back)."""
    from allensdk.brain_observatory.behavior.data_objects.cell_specimens import cell_specimens as cs
    from allensdk.brain_observatory.behavior.data_objects.cell_specimens.events import Events
    from allensdk.brain_observatory.behavior.data_objects.cell_specimens.traces import (
        corrected_fluorescence_traces as cf,
    )
    from allensdk.brain_observatory.behavior.data_objects.cell_specimens.traces.demixed_traces import DemixedTraces
    from allensdk.brain_observatory.behavior.data_objects.cell_specimens.traces.dff_traces import DFFTraces
    from allensdk.brain_observatory.behavior.data_objects.cell_specimens.traces.neuropil_traces import NeuropilTraces
    from allensdk.brain_observatory.behavior.data_objects.metadata.ophys_experiment_metadata import imaging_plane

    n = len(cell_rows)
    roi_ids = cell_rows["cell_roi_id"].to_numpy(np.int64)
    valid = np.arange(n) < n - 1
    mask = np.zeros((8, 8), dtype=bool)
    mask[2:5, 2:5] = True
    table = pd.DataFrame({"cell_roi_id": roi_ids, "height": 3, "width": 3, "x": 2, "y": 2,
                          "max_correction_down": 0.0, "max_correction_left": 0.0, "max_correction_right": 0.0,
                          "max_correction_up": 0.0, "valid_roi": valid, "roi_mask": [mask] * n},
                         index=pd.Index(cell_rows["cell_specimen_id"].fillna(-1).astype(np.int64).to_numpy(),
                                        name="cell_specimen_id"))
    by_roi = pd.Index(roi_ids, name="cell_roi_id")
    plane = imaging_plane.ImagingPlane(ophys_frame_rate=1 / FRAME_PERIOD,
                                       targeted_structure=str(row["targeted_structure"]), excitation_lambda=910.0,
                                       indicator=str(row["indicator"]))
    return cs.CellSpecimens(
        cell_specimen_table=table, meta=cs.CellSpecimenMeta(imaging_plane=plane),
        events=Events(events=np.zeros_like(dff), frame_rate_hz=1 / FRAME_PERIOD,
                      events_meta=pd.DataFrame({"cell_roi_id": roi_ids, "lambda": 0.0, "noise_std": 0.01})),
        ophys_timestamps=ophys_ts, segmentation_mask_image_spacing=(0.78, 0.78),
        corrected_fluorescence_traces=cf.CorrectedFluorescenceTraces(pd.DataFrame(
            {"corrected_fluorescence": list(100 + dff), "RMSE": 0.1, "r": 0.7}, index=by_roi)),
        dff_traces=DFFTraces(pd.DataFrame({"dff": list(dff)}, index=by_roi)),
        demixed_traces=DemixedTraces(pd.DataFrame({"demixed_trace": list(100 + dff)}, index=by_roi)),
        neuropil_traces=NeuropilTraces(pd.DataFrame({"neuropil_trace": list(np.zeros_like(dff))}, index=by_roi)),
        exclude_invalid_rois=False)


def build_experiment(row: pd.Series, session_row: pd.Series, cell_rows: pd.DataFrame,
                     config: FixtureConfig = FixtureConfig()):
    """An in-memory allensdk ``BehaviorOphysExperiment`` for one experiment-table row (imports allensdk).

    Args:
        row: the experiment's row of the release experiment table.
        session_row: its ophys-session row (for ``imaging_plane_group_count``).
        cell_rows: the cells-table rows whose ``cell_roi_id`` / ``cell_specimen_id`` the file uses (the last one is
            written as an invalid ROI).
        config: fixture size.
    """
    from allensdk.brain_observatory.behavior import behavior_ophys_experiment as boe
    from allensdk.brain_observatory.behavior.data_objects.metadata.ophys_experiment_metadata import (
        field_of_view_shape,
        imaging_depth,
        ophys_container_id,
        ophys_project_code,
        ophys_session_id,
        targeted_imaging_depth,
    )
    from allensdk.brain_observatory.behavior.data_objects.metadata.ophys_experiment_metadata.multi_plane_metadata import (  # noqa: E501
        imaging_plane_group,
        multi_plane_metadata,
    )
    from allensdk.brain_observatory.behavior.image_api import Image

    presentations, trials = session_timeline(int(row["ophys_session_id"]), config)
    end_time = float(presentations["stop_time"].max()) + 2.0
    session = _behavior_session(row, presentations, trials, end_time)
    group = int(row["imaging_plane_group"]) if pd.notna(row["imaging_plane_group"]) else 0
    n_groups = int(session_row.get("imaging_plane_group_count", 4) or 4)
    timestamps = 0.5 + FRAME_PERIOD * (group / n_groups + np.arange(int((end_time - 1.0) / FRAME_PERIOD)))
    rng = np.random.default_rng([config.seed, int(row["ophys_experiment_id"]) % 2**32])
    clean = plane_trace(timestamps, presentations, float(row["imaging_depth"]))
    dff = clean[None, :] + rng.normal(0.0, 0.01, (len(cell_rows), timestamps.size))
    ophys_ts = boe.OphysTimestampsMultiplane(timestamps=timestamps)
    ophys_meta = multi_plane_metadata.MultiplaneMetadata(
        ophys_experiment_id=int(row["ophys_experiment_id"]),
        ophys_session_id=ophys_session_id.OphysSessionId(int(row["ophys_session_id"])),
        ophys_container_id=ophys_container_id.OphysContainerId(int(row["ophys_container_id"])),
        field_of_view_shape=field_of_view_shape.FieldOfViewShape(height=8, width=8),
        imaging_depth=imaging_depth.ImagingDepth(int(row["imaging_depth"])),
        targeted_imaging_depth=targeted_imaging_depth.TargetedImagingDepth(int(row["targeted_imaging_depth"])),
        imaging_plane_group=imaging_plane_group.ImagingPlaneGroup(plane_group=group, plane_group_count=n_groups),
        project_code=ophys_project_code.OphysProjectCode(str(row["project_code"])))
    image = Image(data=np.ones((8, 8), dtype=np.float32), spacing=(0.78, 0.78), unit="mm")
    return boe.BehaviorOphysExperiment(
        behavior_session=session, projections=boe.Projections(max_projection=image, avg_projection=image),
        ophys_timestamps=ophys_ts, cell_specimens=_cell_specimens(row, cell_rows, dff, ophys_ts),
        metadata=boe.BehaviorOphysMetadata(behavior_metadata=session._metadata, ophys_metadata=ophys_meta),
        motion_correction=boe.MotionCorrection(pd.DataFrame({"x": np.zeros(timestamps.size),
                                                             "y": np.zeros(timestamps.size)})),
        date_of_acquisition=session._date_of_acquisition)


@contextlib.contextmanager
def shared_type_map():
    """Let pynwb containers share one type map while NWB files are written or read (4-5x faster, same result).

    pynwb 2.8 / hdmf 3.14 deep-copy the whole NWB type map on every container attribute they set, only to look up
    an optional TermSet configuration (none is loaded here); a shared copy gives the same result.
    """
    import hdmf.container
    import pynwb
    import pynwb.core

    shared = pynwb.get_type_map()
    saved = pynwb.core.NWBMixin._get_type_map, hdmf.container.AbstractContainer._get_type_map
    pynwb.core.NWBMixin._get_type_map = hdmf.container.AbstractContainer._get_type_map = lambda self: shared
    try:
        yield
    finally:
        pynwb.core.NWBMixin._get_type_map, hdmf.container.AbstractContainer._get_type_map = saved


def write_nwb(experiment, path: str | os.PathLike) -> Path:
    """Write an allensdk ``BehaviorOphysExperiment`` with its own ``to_nwb()`` and pynwb's ``NWBHDF5IO``."""
    import pynwb

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), shared_type_map():
        warnings.simplefilter("ignore")
        nwbfile = experiment.to_nwb()
        with pynwb.NWBHDF5IO(str(path), "w") as io:
            io.write(nwbfile)
    return path


def fixture_experiments(layer_rule: str = "split", experience_levels=("familiar",), per_population: int = 1
                        ) -> pd.DataFrame:
    """Real experiment-table rows for the fixture: the first ``per_population`` selected experiments of every
    population (so a full 18-population build works), from the tables shipped in the allensdk wheel."""

    meta = load_metadata("bundled")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = select_experiments(meta, layer_rule=layer_rule, warn_overlap=False)
    sel = sel[sel["experience_level"].isin(list(experience_levels))]
    ids = list(dict.fromkeys(sel.groupby(["experience_level", "population"], sort=False)
                             .head(per_population)["ophys_experiment_id"]))
    table = meta.experiments.set_index("ophys_experiment_id").loc[ids].reset_index()
    return table


def _file_entry(path: Path, root: Path, cache_dir: Path) -> dict:
    from allensdk.api.cloud_cache.utils import file_hash_from_path

    rel = path.relative_to(root).as_posix()
    return {"url": f"https://{BUCKET}.s3.amazonaws.com/{PROJECT_NAME}/{rel}", "version_id": "fixture",
            "file_hash": file_hash_from_path(path)}


def _write_fixture_file(job: tuple) -> Path:
    row, session_row, cell_rows, config, path = job
    return write_nwb(build_experiment(row, session_row, cell_rows, config), path)


def write_fixture_cache(cache_dir: str | os.PathLike, experiments: pd.DataFrame | None = None,
                        config: FixtureConfig = FixtureConfig(), workers: int = 1) -> Path:
    """Write a local Visual Behavior Ophys project cache that ``from_local_cache`` opens offline.

    Args:
        cache_dir: an empty (or new) folder.
        experiments: rows of the release experiment table (default :func:`fixture_experiments`).
        config: fixture size.
        workers: processes writing NWB files (forked; the files do not depend on it).

    Returns:
        ``cache_dir``.
    """
    cache_dir = Path(cache_dir)
    if (cache_dir / MANIFEST_NAME).exists():
        raise BiornnError(f"{cache_dir} already holds {MANIFEST_NAME}; pass an empty folder")
    experiments = fixture_experiments() if experiments is None else experiments
    meta = load_metadata("bundled")
    ids = experiments["ophys_experiment_id"].astype(np.int64)
    root = cache_dir / f"{PROJECT_NAME}-{MANIFEST_VERSION}"
    tables = {
        "ophys_experiment_table": experiments.assign(file_id=ids.to_numpy(), file_path=""),
        "ophys_session_table": meta.sessions[meta.sessions["ophys_session_id"].isin(experiments["ophys_session_id"])],
        "behavior_session_table": meta.behavior_sessions[
            meta.behavior_sessions["behavior_session_id"].isin(experiments["behavior_session_id"])],
    }
    rois = meta.cells[meta.cells["ophys_experiment_id"].isin(ids)].groupby("ophys_experiment_id", sort=False).head(
        config.n_cells + 1)
    last = rois.groupby("ophys_experiment_id", sort=False).cumcount(ascending=False) == 0
    tables["ophys_cells_table"] = rois[~last]  # the release lists valid ROIs only; the last ROI is written invalid
    manifest = {"project_name": PROJECT_NAME, "manifest_version": MANIFEST_VERSION,
                "metadata_file_id_column_name": "file_id",
                "data_pipeline": [{"name": "AllenSDK", "version": "2.16.2", "comment": "biornn offline fixture"}],
                "metadata_files": {}, "data_files": {}}
    for name, table in tables.items():
        path = root / "project_metadata" / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, index=False)
        manifest["metadata_files"][name] = _file_entry(path, root, cache_dir)
    sessions = tables["ophys_session_table"].set_index("ophys_session_id")
    cells = rois
    jobs = [(row, sessions.loc[row["ophys_session_id"]], cells[cells["ophys_experiment_id"] == row[
        "ophys_experiment_id"]], config, root / "behavior_ophys_experiments" /
             f"behavior_ophys_experiment_{int(row['ophys_experiment_id'])}.nwb") for _, row in experiments.iterrows()]
    if workers > 1 and len(jobs) > 1:
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        with concurrent.futures.ProcessPoolExecutor(max_workers=int(workers), mp_context=context) as pool:
            paths = list(pool.map(_write_fixture_file, jobs))
    else:
        paths = [_write_fixture_file(job) for job in jobs]
    for (row, *_), path in zip(jobs, paths):
        manifest["data_files"][str(int(row["ophys_experiment_id"]))] = _file_entry(path, root, cache_dir)
    (cache_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1))
    # allensdk's record of downloaded files (absolute path -> hash), as a download through the cache leaves it
    entries = [*manifest["metadata_files"].values(), *manifest["data_files"].values()]
    paths = {str(p.resolve()): h for p, h in manifest_data_files(cache_dir).values()}
    paths.update({str((root / "project_metadata" / f"{n}.csv").resolve()): manifest["metadata_files"][n]["file_hash"]
                  for n in tables})
    assert len(paths) == len(entries)
    (cache_dir / "_downloaded_data.json").write_text(json.dumps(paths, indent=2, sort_keys=True))
    log.info("wrote a %d-experiment fixture cache in %s", len(experiments), cache_dir)
    return cache_dir


# --------------------------------------------------------------------------------------------------------------------
# A real cache on disk: manifest files, interrupted downloads, the download plan
# --------------------------------------------------------------------------------------------------------------------

#: Size range of one behaviour-ophys NWB file (GB), as documented in docs/paper/allen-data-pipeline.md (§2, loading).
#: ``allen plan`` uses it for files whose size the release manifest does not list (the 1.1.0 manifest lists none).
DOCUMENTED_GB_RANGE = (0.23, 0.82)
#: The middle of :data:`DOCUMENTED_GB_RANGE`: the point estimate of ``allen plan`` (override with --gb-per-experiment).
ASSUMED_GB_PER_EXPERIMENT = round(sum(DOCUMENTED_GB_RANGE) / 2, 3)
#: Where the documented range comes from (printed with every plan).
SIZE_SOURCE = "the range documented in docs/paper/allen-data-pipeline.md"


def discard_corrupt_file(cache_dir: str | os.PathLike, file_id: int | str) -> Path | None:
    """Delete an experiment's local NWB file when it does not match the manifest hash; return its path if deleted.

    allensdk's S3 cache writes a download straight to its final path and, on the next run, takes any existing file
    as complete, so an interrupted download would be read (and fail) forever. Deleting the partial file lets the
    cache download it again. Only for a download cache: :class:`AllenCacheSource` never calls it on a local cache.
    """
    entry = manifest_data_files(cache_dir).get(str(file_id))
    if entry is None or not entry[0].exists() or file_matches(*entry):
        return None
    entry[0].unlink()
    log.warning("deleted %s: it does not match the manifest (an interrupted download); it will be downloaded again",
                entry[0])
    return entry[0]


def cap_per_population(selection: pd.DataFrame, max_experiments: int | None) -> pd.DataFrame:
    """Keep the first ``max_experiments`` experiments of every (experience level, population) (None: keep all)."""
    if max_experiments is None:
        return selection
    if max_experiments < 1:
        raise BiornnError(f"--max-experiments {max_experiments}; pass 1 or more experiments per population")
    out = selection.groupby(["experience_level", "population"], sort=False).head(max_experiments)
    out.attrs.update(selection.attrs)
    return out


def download_plan(selection: pd.DataFrame, cache_dir: str | os.PathLike | None = None,
                  gb_per_experiment: float | None = None) -> dict:
    """What a real build of a selection needs: experiments, sessions, files already cached, estimated download.

    The size of a file still to download is its manifest size where the manifest lists one, else the range of
    :data:`DOCUMENTED_GB_RANGE` (or ``gb_per_experiment`` when given).

    Args:
        selection: output of :func:`biornn.data.allen.select_experiments` (possibly capped per population).
        cache_dir: a cache folder to count the files already there (optional; compared with its manifest).
        gb_per_experiment: size of one NWB file in GB (default: the documented range).

    Returns:
        dict with ``n_experiments``, ``n_sessions``, ``n_cached``, ``n_to_download``, ``gb_per_experiment`` (the
        point estimate per file), ``estimated_gb`` (point estimate of the download), ``estimated_gb_range``
        ``[low, high]``, ``basis`` (one sentence) and ``cache_warning`` (a sentence, or None when the cache folder
        is fine or not given).
    """
    if gb_per_experiment is not None and gb_per_experiment <= 0:
        raise BiornnError(f"--gb-per-experiment {gb_per_experiment}; pass a positive size in GB")
    ids = [int(i) for i in selection["ophys_experiment_id"].astype(np.int64).unique()]
    warning, files, paths = None, {}, {}
    if cache_dir is not None:
        try:
            require_cache_folder(cache_dir, "--cache-dir")
            files = manifest_files(cache_dir, "data_files")
            paths = cache_experiment_files(cache_dir)
        except BiornnError as exc:
            warning = f"{exc}; nothing was counted as cached"
    todo = [i for i in ids if not (i in paths and paths[i].is_file())]
    by_path = {v[0]: v[2] for v in files.values()}
    sizes = {i: by_path.get(paths[i]) for i in todo if i in paths and by_path.get(paths[i]) is not None}
    listed = sum(sizes.values()) / 1e9
    unlisted = [i for i in todo if i not in sizes]
    if gb_per_experiment is not None:
        lo = hi = mid = float(gb_per_experiment)
        why = f"{mid:g} GB per file, given by --gb-per-experiment"
    else:
        lo, hi = DOCUMENTED_GB_RANGE
        mid = ASSUMED_GB_PER_EXPERIMENT
        why = f"{lo:g}-{hi:g} GB per file, {SIZE_SOURCE}"
    low, high = listed + lo * len(unlisted), listed + hi * len(unlisted)
    basis = (f"{len(todo)} NWB files not yet in the cache: {len(todo) - len(unlisted)} at their manifest sizes "
             f"({listed:.1f} GB), {len(unlisted)} at {why}")
    if not sizes:
        basis = f"{len(todo)} NWB files not yet in the cache x {why} (the release manifest lists no file sizes)"
    return {"n_experiments": int(len(ids)), "n_sessions": int(selection["ophys_session_id"].nunique()),
            "n_cached": len(ids) - len(todo), "n_to_download": int(len(todo)), "gb_per_experiment": float(mid),
            "estimated_gb": round(listed + mid * len(unlisted), 1), "estimated_gb_range": [round(low, 1),
                                                                                         round(high, 1)],
            "basis": basis, "cache_warning": warning}


def parse_conditions(text: str) -> tuple[str, ...]:
    """``"all"`` or a comma-separated list of conditions (long names or FC, FN, FO, NC, NN, NO) -> long names.

    Raises:
        BiornnError: an unknown condition (the message lists the accepted names).
    """
    if str(text).strip().lower() == "all":
        return CONDITIONS
    names = tuple(dict.fromkeys(condition_name(c) for c in str(text).split(",") if c.strip()))
    if not names:
        raise BiornnError(f"--condition {text!r} names no condition; use 'all' or some of {', '.join(CONDITIONS)}")
    return names


def add_plan_parser(allen_sub) -> None:
    """Add ``allen plan`` (the selection options of ``allen select``) to the ``allen`` sub-command parser."""
    pl = allen_sub.add_parser("plan", help="before downloading: experiments, sessions and estimated download size")
    pl.add_argument("--metadata", default="bundled", help="as for select")
    pl.add_argument("--layer-rule", choices=LAYER_RULES, default=DEFAULT_LAYER_RULE)
    pl.add_argument("--condition", default="all",
                    help="'all' or a comma-separated list of conditions (long names or FC, FN, FO, NC, NN, NO)")
    pl.add_argument("--max-experiments", type=int, default=None, help="at most K experiments per population")
    pl.add_argument("--cache-dir", default=None, help="count the files already in this AllenSDK cache folder")
    pl.add_argument("--gb-per-experiment", type=float, default=None,
                    help=f"size of one NWB file in GB (default: the documented {DOCUMENTED_GB_RANGE[0]:g}-"
                         f"{DOCUMENTED_GB_RANGE[1]:g} GB)")
    pl.set_defaults(func=cmd_plan)


def cmd_plan(args) -> int:
    """``python -m biornn allen plan``: print what a real build of the selection downloads, before any download."""
    conditions = parse_conditions(args.condition)
    levels = [e for e in EXPERIENCE_LEVELS if e in {split_condition(c)[0] for c in conditions}]
    if args.max_experiments is not None and args.max_experiments < 1:
        raise BiornnError(f"--max-experiments {args.max_experiments}; pass 1 or more experiments per population")
    meta = load_metadata(args.metadata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        selection = select_experiments(meta, layer_rule=args.layer_rule)
    selection = cap_per_population(selection[selection["experience_level"].isin(levels)], args.max_experiments)
    plan = download_plan(selection, args.cache_dir, args.gb_per_experiment)
    counts = population_counts(selection)["n_experiments"]
    empty = int((counts[counts.index.get_level_values("experience_level").isin(levels)] == 0).sum())
    cap = "all" if args.max_experiments is None else f"at most {args.max_experiments}"
    print(f"plan: layer rule {args.layer_rule!r}, {cap} experiments per population, experience "
          f"{'/'.join(levels)}, metadata {meta.source}")
    print(f"  experiments (NWB files): {plan['n_experiments']}")
    print(f"  ophys sessions:          {plan['n_sessions']}")
    if args.cache_dir is not None:
        print(f"  already in {args.cache_dir}: {plan['n_cached']} (to download: {plan['n_to_download']})")
    low, high = plan["estimated_gb_range"]
    size = f"{low:.1f} GB" if low == high else f"{low:.1f}-{high:.1f} GB (middle {plan['estimated_gb']:.1f} GB)"
    print(f"  estimated download:      {size}")
    print(f"  basis: {plan['basis']}")
    if plan["cache_warning"]:
        print(f"warning: {plan['cache_warning']}")
    if empty:
        print(f"warning: {empty} empty populations under this rule for {'/'.join(levels)}; the 18-population build "
              "needs them all")
    return 0


# --------------------------------------------------------------------------------------------------------------------
# The real-cache experiment source
# --------------------------------------------------------------------------------------------------------------------

class AllenCacheSource:
    """Experiment source backed by a real AllenSDK cache (downloads one NWB file per experiment when needed).

    Args:
        cache_dir: one shared absolute cache folder.
        retries: extra attempts after an ``OSError`` in a download cache; a local file that does not match the
            manifest hash (an interrupted download) is deleted first, so that the cache downloads it again. A local
            (non-download) cache never deletes a file: it could not fetch it again.
        download: open the cache with ``from_s3_cache`` (needs a network). workers: extraction processes.
    """

    name = "allensdk"

    def __init__(self, cache_dir: str | os.PathLike, retries: int = 1, download: bool = False, workers: int = 1):
        if int(workers) < 1:
            raise BiornnError(f"--workers {workers}; pass 1 or more worker processes")
        self.cache_dir = Path(cache_dir).expanduser().resolve()
        self.retries = int(retries)
        self.download = bool(download)
        self.workers = int(workers)
        self._cache = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cache": None}  # worker processes open their own cache

    @property
    def cache(self):
        """The AllenSDK project cache (opened on first use; imports allensdk)."""
        if self._cache is None:
            self._cache = open_cache(self.cache_dir, download=self.download)
        return self._cache

    def describe(self) -> str:
        """One line for manifests."""
        return f"AllenSDK cache {self.cache_dir} (allensdk {allensdk_version()})"

    def metadata(self) -> Metadata:
        """The release metadata of this cache."""
        return load_metadata(self.cache_dir, download=self.download, flag="--cache-dir" if self.download
                             else "--source")

    def check_experiments(self, experiment_ids, allow_missing: bool = False) -> list[int]:
        """Before any reading: every id must be in the cache's experiment table, and (local cache) have its file.

        Args:
            experiment_ids: the experiments a build will read.
            allow_missing: list local files that are missing instead of raising.

        Returns:
            The ids whose NWB file is missing from a local cache (empty for a download cache).

        Raises:
            BiornnError: ids the cache does not know (metadata of another release), or missing local files.
        """
        ids = [int(i) for i in dict.fromkeys(experiment_ids)]
        if self.download:
            known = {int(i) for i in self.cache.get_ophys_experiment_table().index}
            files = {}
        else:
            require_cache_folder(self.cache_dir)
            files = cache_experiment_files(self.cache_dir)
            known = set(files)
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise BiornnError(f"{len(unknown)} of {len(ids)} selected experiments are not in the cache at "
                              f"{self.cache_dir} (first: {unknown[0]}): the metadata and the cache come from "
                              "different releases; pass --metadata with the cache's own tables (or leave it out) or "
                              "a cache of the same release")
        missing = [i for i in ids if i in files and not files[i].is_file()]
        if missing and not allow_missing:
            raise BiornnError(f"{len(missing)} of {len(ids)} selected NWB files are not in the local cache "
                              f"{self.cache_dir} (first: {files[missing[0]]}); download them with --source s3 "
                              f"--cache-dir {self.cache_dir}, or pass --allow-missing to build without them")
        return missing

    def failure_fix(self) -> str:
        """What to do about experiments that could not be read (for the build's final message)."""
        if self.download:
            return "check the network and rerun (unreadable downloads are deleted and fetched again)"
        return (f"this local cache cannot download files again: copy intact files into {self.cache_dir}, or "
                f"download them with --source s3 --cache-dir {self.cache_dir}")

    def prefetch(self, experiment_ids) -> None:
        """Nothing to do: experiments are read one at a time."""

    def release(self, experiment_id: int) -> None:
        """Nothing is kept in memory."""

    def load(self, experiment_id: int) -> ExperimentData:
        """Read one experiment.

        Raises:
            ExperimentReadError: the file could not be read (any exception of allensdk, h5py, ...), naming the file
                and whether it matches the manifest; a download cache deletes a damaged file and tries again first.
            SkipExperiment: the file was read but cannot contribute (no cells, all NaN, no trials).
        """
        experiment_id = int(experiment_id)
        cache = self.cache  # a cache that cannot be opened is a setup error, not a per-experiment failure
        last: Exception | None = None
        for attempt in range(self.retries + 1 if self.download else 1):
            try:
                with shared_type_map(), warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="This nwb file with identifier")
                    experiment = cache.get_behavior_ophys_experiment(experiment_id)
                return experiment_from_allensdk(experiment, experiment_id=experiment_id)
            except SkipExperiment:
                raise
            except Exception as exc:  # noqa: BLE001 -- any failure of one file is reported by id, never fatal here
                last = exc
                allen_log.info("experiment %s: read failed (attempt %d): %s", experiment_id, attempt + 1,
                               one_line(exc))
                if not (self.download and isinstance(exc, OSError) and self._discard(experiment_id)):
                    break
        raise ExperimentReadError(f"experiment {experiment_id}: {self._read_failure(experiment_id, last)}")

    def _file_of(self, experiment_id: int) -> tuple[str, Path, str] | None:
        try:
            file_id = str(self.cache.get_ophys_experiment_table().loc[int(experiment_id), "file_id"])
            return file_id, *manifest_data_files(self.cache_dir)[file_id]
        except Exception:  # noqa: BLE001 -- only used to word a message or find a file to discard
            return None

    def _discard(self, experiment_id: int) -> bool:
        entry = self._file_of(experiment_id)
        return entry is not None and discard_corrupt_file(self.cache_dir, entry[0]) is not None

    def _read_failure(self, experiment_id: int, exc: Exception | None) -> str:
        entry = self._file_of(experiment_id)
        if entry is None:
            return f"not in the cache's experiment table or manifest ({one_line(exc, 120)})"
        _, path, file_hash = entry
        if not path.is_file():
            return f"its NWB file {path} is not in the cache ({one_line(exc, 120)})"
        if not file_matches(path, file_hash):
            return f"its NWB file {path} is truncated or damaged (its hash differs from the manifest's)"
        return f"its NWB file {path} could not be read ({one_line(exc, 160)})"
