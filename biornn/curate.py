"""From experiments to training data: event windows, bootstrap, smoothing, one-step shift.

Background: ``docs/paper/allen-data-pipeline.md`` §5–8.

Conditions: experience level {familiar, novel} x window type {change, no-change, omission} (:data:`CONDITIONS`).

**Stage A, windows** (:func:`extract_windows`), per experiment and window type:

* change: event = ``change_time`` of every go trial (``is_change``);
* no-change: the same go trials (change and no-change are paired); event = onset of the 2nd presentation at or after
  trial start (``second_flash``, default) or trial start + 0.75 s (``trial_start``, the published 1.5 s from start);
* omission (absent from the reference): event = ``start_time`` of every omitted flash in the
  ``change_detection_behavior`` block.

Framing (``timestamps``, default): ``k_e`` = first frame with timestamp >= event, row = the plane's mean ΔF/F over
frames ``[k_e - 8, k_e + 8)``, so **frame 8 is the first frame at or after the event** (``0 <= t_rel[8] < dt``);
windows that run past the recording are dropped. ``published`` reproduces the reference's per-trial arithmetic
(change and no-change only). Omission filter (``window``, default): drop a window that contains an omitted or change
presentation other than its own event; ``trial``: drop trials that contain an omission; ``none``: as published.
No-change windows that reach the trial's change are dropped.

**Stage B** (:func:`build_dataset`), per population: split rows into training and held-out sets **before**
bootstrapping (by trial, default, so paired change/no-change rows share their side; or by experiment); bootstrap
``n_samples`` means of ``n_draw`` rows drawn with replacement; Gaussian smoothing along time (sigma = 1 frame, reflect,
truncate 4 sigma) and the one-step shift input = frames 0–14, target = frames 1–15. Default order smooth-then-shift,
so ``targets[:, t] == inputs[:, t + 1]`` exactly; ``shift_then_smooth`` is the published order.

**Dataset file format** (:func:`save_dataset`), one pair of files per condition, written atomically:

``<condition>.npz`` (numpy, no pickles):

==========================  ========================  ==============================================================
key                         shape / dtype             meaning
==========================  ========================  ==============================================================
``inputs``                  (n_samples, 15, 18) f8    model input: bootstrap means, frames 0–14
``targets``                 (n_samples, 15, 18) f8    one-step-ahead target: frames 1–15
``heldout_inputs``          (n_heldout, 15, 18) f8    the same from held-out rows only (n_heldout = 0 without split)
``heldout_targets``         (n_heldout, 15, 18) f8
``populations``             (18,) str                 channel labels in index order (``V1_L4_Pyr`` ... ``LM_L5_VIP``)
``condition``               () str                    e.g. ``familiar_change``
``layer_rule``              () str                    ``split`` / ``published`` / ``fixed``
``source``                  () str                    ``twin`` or ``allensdk``
``seed``                    () int64                  seed of the split and the bootstrap (and of the twin)
``row_counts``              (18,) int64               training rows (experiment x event windows) per population
``heldout_row_counts``      (18,) int64               held-out rows per population
``n_experiments``           (18,) int64               experiments contributing rows per population
``row_mean``, ``row_sd``    (18, 16) f8               mean and SD over training rows of the 16-frame windows
``t_rel``                   (16,) f8                  median frame time relative to the event (s)
==========================  ========================  ==============================================================

``<condition>.json``: the manifest (format version, every setting, source description, twin config, row counts
per population, skipped experiments with reasons, dropped-window counts, sha256 of the npz, code version, date).
Optional ``<condition>_windows.npz``: every Stage A row with provenance (the ``windows`` table of the spec).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d

from biornn.allen import (
    BEHAVIOR_BLOCK,
    ExperimentData,
    Metadata,
    find_overlaps,
    require_nonempty,
    select_experiments,
)
from biornn.conditions import ABBREVIATIONS, CONDITIONS, WINDOW_TYPES, split_condition
from biornn.config import derive_seed, get_mode
from biornn.connectivity import POPULATION_LABELS, file_token
from biornn.errors import BiornnError
from biornn.stimulus import STIMULUS_CHANNELS, stimulus_codes

log = logging.getLogger("biornn.curate")

OMISSION_FILTERS = ("window", "trial", "none")
FRAMINGS = ("timestamps", "published")
NO_CHANGE_ALIGNMENTS = ("second_flash", "trial_start")
SMOOTHING = ("smooth_then_shift", "shift_then_smooth", "none")
HELDOUT_MODES = ("trials", "experiments", "none")
WINDOW_FRAMES = 16
PRE_FRAMES = 8
HALF_WINDOW = slice(7, -1)
FORMAT_VERSION = 1
FRAME_PERIOD_RANGE = (0.085, 0.10)
#: Presentations within this many seconds of an event count as the event itself.
EVENT_TOLERANCE = 0.1


@dataclass(frozen=True)
class CurateConfig:
    """Settings of Stage A and Stage B (all recorded in the manifest).

    Attributes:
        seed: seed of the held-out split and the bootstrap (derived per condition and population).
        layer_rule: selection layer rule (``split`` default, ``published`` for figure comparison).
        omission_filter: ``window`` (default), ``trial`` or ``none`` (published).
        framing: ``timestamps`` (default) or ``published`` (reference arithmetic; change and no-change only).
        no_change_alignment: ``second_flash`` (default) or ``trial_start`` (published).
        smoothing: ``smooth_then_shift`` (default), ``shift_then_smooth`` (published) or ``none``.
        sigma: Gaussian smoothing width in frames.
        n_samples: bootstrap samples (training set); n_draw: rows per sample (with replacement).
        heldout: ``trials`` (default), ``experiments`` or ``none``; heldout_fraction: share held out.
        n_heldout_samples: bootstrap samples of the held-out set.
    """

    seed: int = 0
    layer_rule: str = "split"
    omission_filter: str = "window"
    framing: str = "timestamps"
    no_change_alignment: str = "second_flash"
    smoothing: str = "smooth_then_shift"
    sigma: float = 1.0
    n_samples: int = 2000
    n_draw: int = 100
    heldout: str = "trials"
    heldout_fraction: float = 0.2
    n_heldout_samples: int = 500

    def __post_init__(self):
        for name, allowed in (("omission_filter", OMISSION_FILTERS), ("framing", FRAMINGS),
                              ("no_change_alignment", NO_CHANGE_ALIGNMENTS), ("smoothing", SMOOTHING),
                              ("heldout", HELDOUT_MODES), ("layer_rule", ("published", "split", "fixed"))):
            if getattr(self, name) not in allowed:
                raise BiornnError(f"unknown {name} {getattr(self, name)!r}; use one of {', '.join(allowed)}")
        if not 0 < self.heldout_fraction < 1:
            raise BiornnError(f"heldout_fraction = {self.heldout_fraction}; use a number between 0 and 1")
        if self.n_samples < 1 or self.n_draw < 1:
            raise BiornnError("n_samples and n_draw must be positive")

    @classmethod
    def published(cls, **changes) -> CurateConfig:
        """The reference's choices (layers, no omission filter, framing, alignment, smoothing, no held-out set)."""
        base = dict(layer_rule="published", omission_filter="none", framing="published",
                    no_change_alignment="trial_start", smoothing="shift_then_smooth", heldout="none")
        return cls(**{**base, **changes})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------------------------------
# Stage A: events and windows of one experiment
# --------------------------------------------------------------------------------------------------------------------

@dataclass
class EventWindows:
    """The kept windows of one experiment and window type.

    Attributes:
        values: ``(n, 16)`` mean ΔF/F per window.
        t_rel: ``(n, 16)`` frame time minus event time (s).
        event_time: ``(n,)`` event times (s).
        trial_index: ``(n,)`` position of the trial holding the event (0-based row of the sorted trials table).
        event_id: ``(n,)`` ``trials_id`` (change, no-change) or presentation id (omission).
        n_trials: rows of the experiment's trials table (for the held-out split).
        counts: ``events``, ``kept`` and the number dropped per reason.
    """

    values: np.ndarray
    t_rel: np.ndarray
    event_time: np.ndarray
    trial_index: np.ndarray
    event_id: np.ndarray
    n_trials: int
    counts: dict
    stimulus: np.ndarray | None = None


def frame_period(timestamps: np.ndarray) -> float:
    """Median frame period (s) of a recording."""
    return float(np.median(np.diff(timestamps)))


def check_frame_period(data: ExperimentData) -> float:
    """The median frame period; raise :class:`BiornnError` unless it is a mesoscope period (0.085–0.10 s)."""
    dt = frame_period(data.timestamps)
    lo, hi = FRAME_PERIOD_RANGE
    if not lo <= dt <= hi:
        raise BiornnError(f"experiment {data.ophys_experiment_id}: median frame period {dt:.4f} s is outside "
                          f"{lo}-{hi} s (not a ~10.7 Hz mesoscope plane); select only {BEHAVIOR_BLOCK!r} "
                          "experiments of project VisualBehaviorMultiscope")
    return dt


def find_events(data: ExperimentData, window_type: str, no_change_alignment: str = "second_flash") -> pd.DataFrame:
    """The candidate events of one window type.

    Returns:
        DataFrame with ``event_time``, ``trial_index`` (position in the sorted trials table), ``event_id`` and
        ``change_time`` (the trial's change, NaN for omissions) in time order.
    """
    trials = data.trials
    stim = data.stimulus_presentations
    if window_type not in WINDOW_TYPES:
        raise BiornnError(f"unknown window type {window_type!r}; use one of {', '.join(WINDOW_TYPES)}")
    pos = np.arange(len(trials))
    go = (trials["is_change"].to_numpy(bool) & np.isfinite(trials["change_time"].to_numpy(float)))
    if window_type == "change":
        return pd.DataFrame({"event_time": trials["change_time"].to_numpy(float)[go], "trial_index": pos[go],
                             "event_id": np.asarray(trials.index)[go], "change_time":
                             trials["change_time"].to_numpy(float)[go]})
    if window_type == "no_change":
        start = trials["start_time"].to_numpy(float)[go]
        if no_change_alignment == "trial_start":
            events = start + 0.75
        else:
            onsets = np.sort(stim.loc[stim["stimulus_block_name"].to_numpy() == BEHAVIOR_BLOCK,
                                      "start_time"].to_numpy(float))
            i = np.searchsorted(onsets, start, side="left") + 1
            ok = i < onsets.size
            events = np.full(start.shape, np.nan)
            events[ok] = onsets[i[ok]]
        table = pd.DataFrame({"event_time": events, "trial_index": pos[go], "event_id": np.asarray(trials.index)[go],
                              "change_time": trials["change_time"].to_numpy(float)[go]})
        return table[np.isfinite(table["event_time"])]
    behavior = stim["stimulus_block_name"].to_numpy() == BEHAVIOR_BLOCK
    om = stim[stim["omitted"].to_numpy(bool) & behavior]
    times = om["start_time"].to_numpy(float)
    starts = trials["start_time"].to_numpy(float)
    tidx = np.clip(np.searchsorted(starts, times, side="right") - 1, 0, max(len(trials) - 1, 0))
    return pd.DataFrame({"event_time": times, "trial_index": tidx, "event_id": np.asarray(om.index),
                         "change_time": np.nan})


def _count_between(sorted_times: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Number of ``sorted_times`` in ``[lo, hi]`` for every pair."""
    return np.searchsorted(sorted_times, hi, side="right") - np.searchsorted(sorted_times, lo, side="left")


def extract_windows(data: ExperimentData, window_type: str, omission_filter: str = "window",
                    framing: str = "timestamps", no_change_alignment: str = "second_flash") -> EventWindows:
    """Cut the 16-frame windows of one experiment and window type.

    Args:
        data: one experiment (real or twin).
        window_type: ``change``, ``no_change`` or ``omission``.
        omission_filter: ``window``, ``trial`` or ``none``.
        framing: ``timestamps`` (frame 8 = first frame at or after the event) or ``published`` (reference
            arithmetic; omission windows always use ``timestamps``).
        no_change_alignment: ``second_flash`` or ``trial_start``.

    Returns:
        :class:`EventWindows` (``values`` ``(n, 16)``).
    """
    check_frame_period(data)
    ts, trace = data.timestamps, data.pop_mean
    events = find_events(data, window_type, no_change_alignment)
    ev = events["event_time"].to_numpy(float)
    counts = Counter(events=len(ev))
    if framing == "published" and window_type != "omission":
        idx, valid = _published_frames(data, events, window_type)
    else:
        k = np.searchsorted(ts, ev, side="left")
        idx = k[:, None] + np.arange(-PRE_FRAMES, WINDOW_FRAMES - PRE_FRAMES)[None, :]
        valid = (k - PRE_FRAMES >= 0) & (k + WINDOW_FRAMES - PRE_FRAMES <= ts.size)
    counts["dropped_edge"] = int((~valid).sum())
    idx = np.where(valid[:, None], idx, 0)
    lo, hi = ts[idx[:, 0]], ts[idx[:, -1]]
    keep = valid.copy()
    stim = data.stimulus_presentations
    if omission_filter != "none":
        # Behaviour block only, like the events: allensdk 2.16 recomputes is_change over the whole table, so the
        # first presentation of each block counts as a "change" (dropped here) and passive blocks have omissions.
        block = stim[stim["stimulus_block_name"].to_numpy() == BEHAVIOR_BLOCK]
        omitted = np.sort(block.loc[block["omitted"].to_numpy(bool), "start_time"].to_numpy(float))
        changes = block.loc[block["is_change"].to_numpy(bool), "start_time"].to_numpy(float)
        changes = np.sort(changes[changes > block["start_time"].min()])
        special = np.sort(np.concatenate([omitted, changes]))
        if omission_filter == "window" or window_type == "omission":
            own = 0 if window_type == "no_change" else _count_between(special, ev - EVENT_TOLERANCE,
                                                                      ev + EVENT_TOLERANCE)
            bad = (_count_between(special, lo, hi) - own) > 0
        else:  # trial: drop any trial that contains an omission
            tr = data.trials
            t_start = tr["start_time"].to_numpy(float)[events["trial_index"].to_numpy()]
            t_stop = tr["stop_time"].to_numpy(float)[events["trial_index"].to_numpy()]
            bad = _count_between(omitted, t_start, t_stop) > 0
        counts["dropped_filter"] = int((keep & bad).sum())
        keep &= ~bad
    if window_type == "no_change":
        late = hi >= events["change_time"].to_numpy(float)
        counts["dropped_reaches_change"] = int((keep & late).sum())
        keep &= ~late
    counts["kept"] = int(keep.sum())
    idx = idx[keep]
    return EventWindows(values=trace[idx], t_rel=ts[idx] - ev[keep, None], event_time=ev[keep],
                        trial_index=events["trial_index"].to_numpy()[keep],
                        event_id=np.asarray(events["event_id"].to_numpy())[keep], n_trials=len(data.trials),
                        counts=dict(counts), stimulus=stimulus_codes(stim, ts[idx]))


def _published_frames(data: ExperimentData, events: pd.DataFrame, window_type: str) -> tuple[np.ndarray, np.ndarray]:
    """The reference's frame arithmetic (§5.3): per-trial period estimate, offset from trial start."""
    ts = data.timestamps
    tr = data.trials
    t_idx = events["trial_index"].to_numpy()
    s = tr["start_time"].to_numpy(float)[t_idx]
    p = tr["stop_time"].to_numpy(float)[t_idx]
    i0 = np.searchsorted(ts, s, side="left")
    n = np.searchsorted(ts, p, side="right") - i0
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.round((p - s) / n, 3)
        w0 = (events["change_time"].to_numpy(float) - 0.75) if window_type == "change" else s
        a = np.trunc((w0 - s) / delta)
    a = np.where(np.isfinite(a), a, -1).astype(np.int64)
    valid = (n > 0) & (a >= 0) & (a + WINDOW_FRAMES <= n)
    idx = i0[:, None] + a[:, None] + np.arange(WINDOW_FRAMES)[None, :]
    return np.where(valid[:, None], idx, 0), valid


# --------------------------------------------------------------------------------------------------------------------
# Collecting windows per population
# --------------------------------------------------------------------------------------------------------------------

@dataclass
class PopulationWindows:
    """Every Stage A row of one population and condition, stacked in experiment-table order.

    Attributes:
        values: ``(n, 16)`` ΔF/F. t_rel: ``(n, 16)`` s. experiment_id, session_id, trial_index, n_cells:
        ``(n,)`` provenance per row. n_trials: ``{session_id: trials in the session}``.
    """

    values: np.ndarray
    t_rel: np.ndarray
    experiment_id: np.ndarray
    session_id: np.ndarray
    trial_index: np.ndarray
    event_time: np.ndarray
    n_cells: np.ndarray
    n_trials: dict = field(default_factory=dict)
    stimulus: np.ndarray | None = None

    @classmethod
    def empty(cls) -> PopulationWindows:
        z = np.zeros(0, dtype=np.int64)
        return cls(np.zeros((0, WINDOW_FRAMES)), np.zeros((0, WINDOW_FRAMES)), z, z, z, np.zeros(0), z,
                   stimulus=np.zeros((0, WINDOW_FRAMES, len(STIMULUS_CHANNELS))))

    @classmethod
    def concat(cls, parts: list[tuple[int, int, int, EventWindows]]) -> PopulationWindows:
        """Stack ``(experiment_id, session_id, n_cells, EventWindows)`` parts."""
        if not parts:
            return cls.empty()

        def rep(value, w):
            return np.full(len(w.values), value, dtype=np.int64)

        return cls(values=np.concatenate([w.values for *_, w in parts]),
                   t_rel=np.concatenate([w.t_rel for *_, w in parts]),
                   experiment_id=np.concatenate([rep(e, w) for e, _, _, w in parts]),
                   session_id=np.concatenate([rep(s, w) for _, s, _, w in parts]),
                   trial_index=np.concatenate([w.trial_index.astype(np.int64) for *_, w in parts]),
                   event_time=np.concatenate([w.event_time for *_, w in parts]),
                   n_cells=np.concatenate([rep(n, w) for _, _, n, w in parts]),
                   n_trials={s: w.n_trials for _, s, _, w in parts},
                   stimulus=None if any(w.stimulus is None for *_, w in parts)
                   else np.concatenate([w.stimulus for *_, w in parts]))

    def subset(self, mask: np.ndarray) -> PopulationWindows:
        return PopulationWindows(self.values[mask], self.t_rel[mask], self.experiment_id[mask],
                                 self.session_id[mask], self.trial_index[mask], self.event_time[mask],
                                 self.n_cells[mask], dict(self.n_trials),
                                 None if self.stimulus is None else self.stimulus[mask])


def collect_windows(source, selection: pd.DataFrame, conditions=CONDITIONS, config: CurateConfig | None = None,
                    progress: bool = True, workers: int | None = None
                    ) -> tuple[dict[str, dict[str, PopulationWindows]], dict]:
    """Stage A for several conditions in one pass per experiment.

    Args:
        source: an experiment source (:class:`biornn.synthetic.TwinSource` or :class:`biornn.allen.AllenCacheSource`).
        selection: output of :func:`biornn.allen.select_experiments`.
        conditions: conditions to cut.
        config: settings (omission filter, framing, alignment).
        progress: progress bar over experiments.
        workers: processes reading and cutting experiments (default ``source.workers`` or 1); results are merged
            in experiment order, so the windows do not depend on it.

    Returns:
        ``(windows, report)``: ``windows[condition][population]`` is a :class:`PopulationWindows`; ``report`` holds
        ``skipped`` (experiment id -> reason), ``skip_counts`` (reason -> count), ``no_events`` (condition ->
        experiment ids without a kept window) and ``dropped`` (condition -> reason -> windows).
    """
    config = config or CurateConfig()
    wanted: dict[str, list[str]] = {}
    for cond in conditions:
        experience, wtype = split_condition(cond)
        wanted.setdefault(experience, []).append(wtype)
    sel = selection[selection["experience_level"].isin(list(wanted))]
    exp_ids = list(dict.fromkeys(sel["ophys_experiment_id"].astype(int)))
    meta = sel.drop_duplicates("ophys_experiment_id").set_index("ophys_experiment_id")
    from biornn.allen_nwb import extract_experiments  # per-experiment work, optionally in worker processes

    source.prefetch(exp_ids)
    per_exp: dict[int, dict[str, EventWindows]] = {}
    n_cells: dict[int, int] = {}
    skipped: dict[int, str] = {}
    jobs = [(exp_id, tuple(wanted[meta.loc[exp_id, "experience_level"]])) for exp_id in exp_ids]
    workers = getattr(source, "workers", 1) if workers is None else workers
    for exp_id, (cells, result) in extract_experiments(source, jobs, config, workers, progress):
        if cells is None:
            skipped[exp_id] = result
            log.warning("skipping %s", result)
            continue
        per_exp[exp_id] = result
        n_cells[exp_id] = cells
    windows: dict[str, dict[str, PopulationWindows]] = {}
    no_events: dict[str, list[int]] = {}
    dropped: dict[str, Counter] = {}
    for cond in conditions:
        experience, wtype = split_condition(cond)
        rows = sel[sel["experience_level"] == experience]
        windows[cond] = {}
        dropped[cond] = Counter()
        done = set()
        for pop in POPULATION_LABELS:
            parts = []
            for rec in rows[rows["population"] == pop].itertuples(index=False):
                exp_id = int(rec.ophys_experiment_id)
                if exp_id not in per_exp:
                    continue
                w = per_exp[exp_id][wtype]
                if exp_id not in done:
                    done.add(exp_id)
                    dropped[cond].update({k: v for k, v in w.counts.items() if k.startswith("dropped")})
                    if len(w.values) == 0:
                        no_events.setdefault(cond, []).append(exp_id)
                parts.append((exp_id, int(rec.ophys_session_id), n_cells[exp_id], w))
            windows[cond][pop] = PopulationWindows.concat(parts)
    skip_counts = Counter(_skip_reason(r) for r in skipped.values())
    if skipped:
        msg = (f"skipped {len(skipped)} of {len(exp_ids)} experiments: "
               + ", ".join(f"{n} {reason}" for reason, n in skip_counts.items()))
        log.warning(msg)
        warnings.warn(msg, UserWarning, stacklevel=2)
    for cond, ids in no_events.items():
        log.warning("%s: %d experiments contributed no window (first: %s)", cond, len(ids), ids[0])
    report = {"skipped": {str(k): v for k, v in skipped.items()}, "skip_counts": dict(skip_counts),
              "no_events": {k: v for k, v in no_events.items()},
              "dropped": {k: dict(v) for k, v in dropped.items()}, "n_experiments_requested": len(exp_ids)}
    return windows, report


def _skip_reason(message: str) -> str:
    for key in ("NaN", "no trials", "no cells", "could not read"):
        if key in message:
            return {"NaN": "all traces NaN", "no trials": "no trials", "no cells": "no cells",
                    "could not read": "unreadable file"}[key]
    return "other"


# --------------------------------------------------------------------------------------------------------------------
# Stage B: split, bootstrap, smoothing, shift
# --------------------------------------------------------------------------------------------------------------------

def heldout_mask(windows: PopulationWindows, config: CurateConfig, condition: str, population: str) -> np.ndarray:
    """``(n,)`` bool: which rows belong to the held-out set.

    ``trials``: a trial is held out with probability ``heldout_fraction``, drawn per session from
    ``derive_seed(seed, "heldout", session_id)``, so every plane of a session (and the paired change and no-change
    rows of one trial) land on the same side. ``experiments``: ``round(fraction x n)`` experiments of the population
    (at least one when it has two or more; with a single experiment the trial split is used, with a warning).
    """
    n = len(windows.values)
    if config.heldout == "none" or n == 0:
        return np.zeros(n, dtype=bool)
    if config.heldout == "experiments":
        exps = np.unique(windows.experiment_id)
        if exps.size >= 2:
            rng = np.random.default_rng(derive_seed(config.seed, "heldout-experiments", condition, population))
            k = max(1, int(round(config.heldout_fraction * exps.size)))
            chosen = rng.choice(exps, size=k, replace=False)
            return np.isin(windows.experiment_id, chosen)
        log.warning("%s %s: a single experiment, so its trials are split instead", condition, population)
    out = np.zeros(n, dtype=bool)
    for sess in np.unique(windows.session_id):
        rows = windows.session_id == sess
        n_trials = max(int(windows.n_trials.get(int(sess), 0)), int(windows.trial_index[rows].max()) + 1)
        u = np.random.default_rng(derive_seed(config.seed, "heldout", int(sess))).random(n_trials)
        out[rows] = u[windows.trial_index[rows]] < config.heldout_fraction
    return out


def bootstrap_means(rows: np.ndarray, n_samples: int, n_draw: int, rng: np.random.Generator) -> np.ndarray:
    """``n_samples`` means of ``n_draw`` rows drawn with replacement: ``(n, T)`` -> ``(n_samples, T)`` float64."""
    rows = np.asarray(rows, dtype=np.float64)
    if rows.shape[0] == 0:
        raise BiornnError("cannot bootstrap from zero rows")
    idx = rng.integers(0, rows.shape[0], size=(n_samples, n_draw))
    out = np.empty((n_samples, rows.shape[1]))
    step = max(1, 2_000_000 // max(n_draw * rows.shape[1], 1))
    for a in range(0, n_samples, step):
        out[a:a + step] = rows[idx[a:a + step]].mean(axis=1)
    return out


def smooth(x: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Gaussian smoothing along the last (time) axis: reflect boundary, truncate at 4 sigma."""
    return gaussian_filter1d(np.asarray(x, dtype=np.float64), sigma=sigma, axis=-1, mode="reflect", truncate=4.0)


def inputs_targets(means: np.ndarray, smoothing: str = "smooth_then_shift", sigma: float = 1.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One-step-ahead pairs from window means ``(n, 16)``: input = frames 0–14, target = frames 1–15.

    ``smooth_then_shift`` (default) smooths the 16-frame mean first, so ``target[:, t] == input[:, t + 1]``;
    ``shift_then_smooth`` (published) smooths input and target separately; ``none`` does not smooth.
    """
    if smoothing == "smooth_then_shift":
        m = smooth(means, sigma)
        return m[:, :-1], m[:, 1:]
    if smoothing == "shift_then_smooth":
        return smooth(means[:, :-1], sigma), smooth(means[:, 1:], sigma)
    if smoothing == "none":
        m = np.asarray(means, dtype=np.float64)
        return m[:, :-1].copy(), m[:, 1:].copy()
    raise BiornnError(f"unknown smoothing {smoothing!r}; use one of {', '.join(SMOOTHING)}")


def half_window(x: np.ndarray) -> np.ndarray:
    """The reference's 'half' window: time steps 7–13 of a ``(n, 15, ...)`` array (T = 7)."""
    return x[:, HALF_WINDOW]


@dataclass
class Dataset:
    """One condition's training data (see the module docstring for the file format)."""

    condition: str
    inputs: np.ndarray
    targets: np.ndarray
    heldout_inputs: np.ndarray
    heldout_targets: np.ndarray
    populations: tuple[str, ...]
    row_counts: np.ndarray
    heldout_row_counts: np.ndarray
    n_experiments: np.ndarray
    row_mean: np.ndarray
    row_sd: np.ndarray
    t_rel: np.ndarray
    manifest: dict
    windows: dict[str, PopulationWindows] | None = None
    stimulus: np.ndarray | None = None

    @property
    def standardization(self) -> dict | None:
        """Per-population ``mean`` and ``sd`` (18,) pooled over the conditions named in ``pooled_over`` (or None)."""
        return self.manifest.get("standardization")

    @property
    def seed(self) -> int:
        return int(self.manifest["seed"])

    @property
    def layer_rule(self) -> str:
        return self.manifest["layer_rule"]

    @property
    def source(self) -> str:
        return self.manifest["source"]


def build_dataset(condition: str, windows: dict[str, PopulationWindows], config: CurateConfig | None = None,
                  source: str = "unknown", manifest: dict | None = None) -> Dataset:
    """Stage B for one condition: split, bootstrap, smoothing and one-step shift of all 18 populations.

    Args:
        condition: one of :data:`CONDITIONS`.
        windows: ``{population label: PopulationWindows}`` for all 18 populations.
        config: settings.
        source: ``twin`` or ``allensdk`` (recorded).
        manifest: extra manifest entries.

    Raises:
        BiornnError: a population without training rows (or without held-out rows when a split is requested).
    """
    config = config or CurateConfig()
    split_condition(condition)
    X, Y, HX, HY = [], [], [], []
    counts, hcounts, nexp, mean, sd, trel, stim_sum = [], [], [], [], [], [], []
    for pop in POPULATION_LABELS:
        w = windows.get(pop, PopulationWindows.empty())
        if len(w.values) == 0:
            raise BiornnError(f"{condition}: population {pop} has no windows (no experiments, or all skipped); "
                              "check the selection (layer rule 'split') and the skipped experiments in the log")
        held = heldout_mask(w, config, condition, pop)
        train_rows, held_rows = w.values[~held], w.values[held]
        if len(train_rows) == 0:
            raise BiornnError(f"{condition}: population {pop} has no training rows after the held-out split; "
                              "use heldout='none' or a smaller heldout_fraction")
        rng = np.random.default_rng(derive_seed(config.seed, "bootstrap", condition, pop, "train"))
        x, y = inputs_targets(bootstrap_means(train_rows, config.n_samples, config.n_draw, rng), config.smoothing,
                              config.sigma)
        X.append(x)
        Y.append(y)
        if config.heldout != "none":
            if len(held_rows) == 0:
                raise BiornnError(f"{condition}: population {pop} has no held-out rows ({len(w.values)} rows in "
                                  "all); use heldout='none' or more data")
            rng = np.random.default_rng(derive_seed(config.seed, "bootstrap", condition, pop, "heldout"))
            hx, hy = inputs_targets(bootstrap_means(held_rows, config.n_heldout_samples, config.n_draw, rng),
                                    config.smoothing, config.sigma)
        else:
            hx = hy = np.zeros((0, WINDOW_FRAMES - 1))
        HX.append(hx)
        HY.append(hy)
        counts.append(len(train_rows))
        hcounts.append(len(held_rows))
        nexp.append(np.unique(w.experiment_id).size)
        mean.append(train_rows.mean(axis=0))
        sd.append(train_rows.std(axis=0))
        trel.append(w.t_rel)
        if w.stimulus is not None:
            stim_sum.append(w.stimulus[~held].sum(axis=0))
    t_rel = np.median(np.concatenate(trel), axis=0)
    # the condition's stimulus course: share of training windows (all populations) showing each code per frame
    stimulus = np.sum(stim_sum, axis=0) / max(sum(counts), 1) if len(stim_sum) == len(POPULATION_LABELS) else None
    info = {"format_version": FORMAT_VERSION, "condition": condition, "abbreviation": ABBREVIATIONS[condition],
            "source": source, "seed": int(config.seed), "layer_rule": config.layer_rule, "config": config.to_dict(),
            "populations": list(POPULATION_LABELS),
            "shapes": {"inputs": [config.n_samples, WINDOW_FRAMES - 1, 18],
                       "heldout_inputs": [len(HX[0]), WINDOW_FRAMES - 1, 18]},
            "row_counts": dict(zip(POPULATION_LABELS, map(int, counts))),
            "heldout_row_counts": dict(zip(POPULATION_LABELS, map(int, hcounts))),
            "n_experiments": dict(zip(POPULATION_LABELS, map(int, nexp)))}
    info.update(manifest or {})
    return Dataset(condition=condition, inputs=np.stack(X, axis=-1), targets=np.stack(Y, axis=-1),
                   heldout_inputs=np.stack(HX, axis=-1), heldout_targets=np.stack(HY, axis=-1),
                   populations=POPULATION_LABELS, row_counts=np.array(counts, dtype=np.int64),
                   heldout_row_counts=np.array(hcounts, dtype=np.int64), n_experiments=np.array(nexp, dtype=np.int64),
                   row_mean=np.array(mean), row_sd=np.array(sd), t_rel=t_rel, manifest=info, windows=dict(windows),
                   stimulus=stimulus)


def pooled_standardization(datasets: dict[str, Dataset]) -> dict:
    """Per-population mean and SD of the training inputs, pooled over all the given conditions.

    One set of statistics for all conditions: per-condition statistics would rescale each condition's weights
    differently and fake pathway differences between conditions.

    Returns:
        ``{"mean": [18], "sd": [18], "pooled_over": [conditions]}`` (ΔF/F units).
    """
    stacked = np.concatenate([ds.inputs.reshape(-1, ds.inputs.shape[-1]) for ds in datasets.values()])
    sd = stacked.std(axis=0)
    if not np.all(sd > 0):
        raise BiornnError(f"population {POPULATION_LABELS[int(np.argmin(sd))]} has zero variance across the "
                          "conditions; it cannot be standardised (check its windows)")
    return {"mean": stacked.mean(axis=0).tolist(), "sd": sd.tolist(), "pooled_over": sorted(datasets)}


# --------------------------------------------------------------------------------------------------------------------
# The whole pipeline
# --------------------------------------------------------------------------------------------------------------------

def default_source_spec() -> str:
    """``$BIORNN_ALLEN_CACHE`` (a real AllenSDK cache folder) when set, else ``"twin"``."""
    from biornn.allen import CACHE_ENV

    return os.environ.get(CACHE_ENV, "").strip() or "twin"


def open_default_source(mode: str | None = None, seed: int = 0, progress: bool = True):
    """The notebooks' source and metadata: a real cache if ``$BIORNN_ALLEN_CACHE`` is set, else the twin.

    Returns:
        ``(source, metadata)``.
    """
    from biornn.allen import load_metadata

    spec = default_source_spec()
    metadata = load_metadata("bundled" if spec == "twin" else spec)
    return open_source(spec, seed=seed, mode=mode, metadata=metadata, progress=progress), metadata


def open_source(spec: str | os.PathLike, seed: int = 0, mode: str | None = None, metadata: Metadata | None = None,
                progress: bool = True, twin: str = "planted"):
    """An experiment source: ``"twin"`` (the digital twin of the bundled metadata; ``twin`` = ``planted`` or
    ``null``) or an AllenSDK cache folder."""
    if str(spec) == "twin":
        from biornn.allen import load_metadata
        from biornn.synthetic import TwinSource, twin_config

        return TwinSource(metadata or load_metadata("bundled"), twin_config(mode, seed=seed, twin=twin),
                          progress=progress)
    from biornn.allen import AllenCacheSource

    folder = Path(spec)
    if not folder.is_dir():
        raise BiornnError(f"source {spec!r} is neither 'twin' nor an existing folder; pass twin or a cache folder")
    return AllenCacheSource(folder)


def build_datasets(source, metadata: Metadata | pd.DataFrame, conditions=CONDITIONS,
                   config: CurateConfig | None = None, progress: bool = True, keep_windows: bool = False
                   ) -> dict[str, Dataset]:
    """Select, cut, bootstrap: the training datasets of several conditions in one pass over the experiments.

    Args:
        source: experiment source (:func:`open_source`).
        metadata: release metadata (selected with ``config.layer_rule``) or a ready selection table.
        conditions: any of :data:`CONDITIONS`.
        config: settings.
        progress: progress bars.
        keep_windows: keep the Stage A rows on each dataset (``dataset.windows``).

    Returns:
        ``{condition: Dataset}``.
    """
    config = config or CurateConfig()
    for cond in conditions:
        split_condition(cond)
    start = time.perf_counter()
    if isinstance(metadata, pd.DataFrame) and "population" in metadata.columns:
        selection = metadata
    else:
        selection = select_experiments(metadata, layer_rule=config.layer_rule)  # warns about overlapping populations
    levels = sorted({split_condition(c)[0] for c in conditions})
    require_nonempty(selection, levels)
    windows, report = collect_windows(source, selection, conditions, config, progress)
    describe = source.describe() if hasattr(source, "describe") else str(source)
    overlaps = find_overlaps(selection)
    extra = {"source_description": describe, "report": report, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),

             "wall_seconds": round(time.perf_counter() - start, 3),
             "metadata_source": getattr(metadata, "source", "selection table")}
    if getattr(source, "name", "") == "twin":
        extra["twin_config"] = source.config.to_dict()
    out = {}
    for cond in conditions:
        experience = split_condition(cond)[0]
        shared = overlaps[overlaps["experience_level"] == experience].to_dict(orient="records")
        ds = build_dataset(cond, windows[cond], config, source=getattr(source, "name", "unknown"),
                           manifest={**extra, "overlapping_populations": shared,
                                     "report": {**report, "dropped": report["dropped"].get(cond, {}),
                                                "no_events": report["no_events"].get(cond, [])}})
        out[cond] = ds
    stats = pooled_standardization(out)
    for ds in out.values():
        ds.manifest["standardization"] = stats
        if not keep_windows:
            ds.windows = None
    return out


# --------------------------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------------------------

def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a manifest")


def save_dataset(dataset: Dataset, directory: str | os.PathLike, windows: bool = False) -> list[Path]:
    """Write ``<condition>.npz`` and ``<condition>.json`` (and optionally ``<condition>_windows.npz``) atomically.

    Returns:
        The written paths (npz first).
    """
    from biornn.store import atomic_write_bytes, code_version

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise BiornnError(f"output path {directory} is a file; pass a folder")
    arrays = {"inputs": dataset.inputs, "targets": dataset.targets, "heldout_inputs": dataset.heldout_inputs,
              "heldout_targets": dataset.heldout_targets, "populations": np.array(dataset.populations),
              "condition": np.array(dataset.condition), "layer_rule": np.array(dataset.layer_rule),
              "source": np.array(dataset.source), "seed": np.array(dataset.seed, dtype=np.int64),
              "row_counts": dataset.row_counts, "heldout_row_counts": dataset.heldout_row_counts,
              "n_experiments": dataset.n_experiments, "row_mean": dataset.row_mean, "row_sd": dataset.row_sd,
              "t_rel": dataset.t_rel}
    if dataset.stimulus is not None:
        arrays["stimulus"] = dataset.stimulus
    data = _npz_bytes(arrays)
    paths = [directory / f"{dataset.condition}.npz", directory / f"{dataset.condition}.json"]
    manifest = {**dataset.manifest, "npz_sha256": hashlib.sha256(data).hexdigest(), "code_version": code_version(),
                "files": [p.name for p in paths]}
    if windows:
        if dataset.windows is None:
            raise BiornnError("this dataset keeps no windows; build it with keep_windows=True")
        paths.append(directory / f"{dataset.condition}_windows.npz")
        manifest["files"].append(paths[-1].name)
    atomic_write_bytes(paths[0], data)
    if windows:
        w = dataset.windows
        pops = np.concatenate([np.full(len(w[p].values), i, dtype=np.int16) for i, p in enumerate(POPULATION_LABELS)])
        cat = {k: np.concatenate([getattr(w[p], k) for p in POPULATION_LABELS])
               for k in WINDOW_KEYS}
        if all(w[p].stimulus is not None for p in POPULATION_LABELS):
            cat["stimulus"] = np.concatenate([w[p].stimulus for p in POPULATION_LABELS])
        atomic_write_bytes(paths[2], _npz_bytes({**cat, "population_index": pops,
                                                 "populations": np.array(POPULATION_LABELS)}))
    atomic_write_bytes(paths[1], (json.dumps(manifest, indent=1, default=_json_default) + "\n").encode())
    return paths


WINDOW_KEYS = ("values", "t_rel", "experiment_id", "session_id", "trial_index", "event_time", "n_cells")
DATASET_KEYS = ("inputs", "targets", "heldout_inputs", "heldout_targets", "populations", "condition", "layer_rule",
                "source", "seed", "row_counts", "heldout_row_counts", "n_experiments", "row_mean", "row_sd", "t_rel")


def load_dataset(path: str | os.PathLike, condition: str | None = None) -> Dataset:
    """Read a dataset written by :func:`save_dataset`.

    Args:
        path: the ``.npz`` file, or a folder (then ``condition`` names the file).
        condition: condition name when ``path`` is a folder.

    Raises:
        BiornnError: a missing or corrupt file, a missing key or inconsistent shapes (with the fix).
    """
    path = Path(path)
    if path.is_dir():
        if condition is None:
            raise BiornnError(f"{path} is a folder; pass condition= (one of {', '.join(CONDITIONS)})")
        path = path / f"{condition}.npz"
    fix = f"rebuild it (python -m biornn allen build ... --out {path.parent})"
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise BiornnError(f"no dataset file {path}; {fix}") from None
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError ...
        raise BiornnError(f"corrupt dataset {path} ({type(exc).__name__}: {exc}); {fix}") from None
    missing = [k for k in DATASET_KEYS if k not in arrays]
    if missing:
        raise BiornnError(f"dataset {path} has no {missing[0]!r}; {fix}")
    try:
        manifest = json.loads(path.with_suffix(".json").read_text())
    except FileNotFoundError:
        raise BiornnError(f"no manifest {path.with_suffix('.json')}; {fix}") from None
    except json.JSONDecodeError as exc:
        raise BiornnError(f"corrupt manifest {path.with_suffix('.json')} ({exc}); {fix}") from None
    n_pop = len(arrays["populations"])
    for key in ("inputs", "targets", "heldout_inputs", "heldout_targets"):
        a = arrays[key]
        if a.ndim != 3 or a.shape[2] != n_pop:
            raise BiornnError(f"dataset {path}: {key} has shape {a.shape}, expected (n, T, {n_pop}); {fix}")
    if arrays["inputs"].shape != arrays["targets"].shape:
        raise BiornnError(f"dataset {path}: inputs {arrays['inputs'].shape} and targets "
                          f"{arrays['targets'].shape} differ; {fix}")
    return Dataset(condition=str(arrays["condition"]), inputs=arrays["inputs"], targets=arrays["targets"],
                   heldout_inputs=arrays["heldout_inputs"], heldout_targets=arrays["heldout_targets"],
                   populations=tuple(str(p) for p in arrays["populations"]), row_counts=arrays["row_counts"],
                   heldout_row_counts=arrays["heldout_row_counts"], n_experiments=arrays["n_experiments"],
                   row_mean=arrays["row_mean"], row_sd=arrays["row_sd"], t_rel=arrays["t_rel"], manifest=manifest,
                   stimulus=arrays.get("stimulus"))


def load_windows(path: str | os.PathLike, condition: str | None = None) -> dict[str, PopulationWindows]:
    """Read ``<condition>_windows.npz`` (written by ``save_dataset(..., windows=True)``): every Stage A row.

    Args:
        path: the dataset's ``.npz`` (or its folder with ``condition``).

    Returns:
        ``{population label: PopulationWindows}`` (``n_trials`` per session rebuilt from the rows).
    """
    path = Path(path)
    if path.is_dir():
        path = path / f"{condition}.npz"
    wpath = path.with_name(path.stem + "_windows.npz")
    try:
        with np.load(wpath, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise BiornnError(f"no windows file {wpath}; rebuild the datasets with python -m biornn allen build "
                          "--windows (per-run resampling needs every row)") from None
    out = {}
    for i, pop in enumerate(POPULATION_LABELS):
        rows = arrays["population_index"] == i
        parts = {k: arrays[k][rows] for k in WINDOW_KEYS}
        n_trials = {}
        for sess, trial in zip(parts["session_id"], parts["trial_index"]):
            n_trials[int(sess)] = max(n_trials.get(int(sess), 0), int(trial) + 1)
        out[pop] = PopulationWindows(**parts, n_trials=n_trials,
                                     stimulus=arrays["stimulus"][rows] if "stimulus" in arrays else None)
    return out


def save_reference_layout(dataset: Dataset, directory: str | os.PathLike) -> list[Path]:
    """Also write the reference's per-population files ``dff_{V1,LM}_{L23,L4,L5}_{pyr,sst,vip}_{cond}_{train,test}.npy``
    (``train`` = input, ``test`` = target; ``(n_samples, 15)`` float64) for code that reads that layout."""
    from biornn.store import atomic_write_bytes

    paths = []
    for i, pop in enumerate(dataset.populations):
        for suffix, arr in (("train", dataset.inputs), ("test", dataset.targets)):
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(arr[:, :, i]))
            path = Path(directory) / f"dff_{file_token(pop)}_{dataset.condition}_{suffix}.npy"
            atomic_write_bytes(path, buf.getvalue())
            paths.append(path)
    return paths


# --------------------------------------------------------------------------------------------------------------------
# Cache for the notebooks
# --------------------------------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
DATASETS_DIR = Path(os.environ.get("BIORNN_ALLEN_DATA", ROOT / "data" / "allen"))


def cached_datasets(source_spec: str | None = None, conditions=CONDITIONS, config: CurateConfig | None = None,
                    mode: str | None = None, root: str | os.PathLike | None = None, retrain: bool | None = None,
                    progress: bool = True, twin: str = "planted") -> tuple[dict[str, Dataset], Path]:
    """Build the datasets once and read them back afterwards (``data/allen/<source>-<mode>-<key>/``).

    ``source_spec``: ``"twin"``, a cache folder, or None for :func:`default_source_spec`; ``twin``: ``planted`` or
    ``null`` (twin only). Every dataset keeps its Stage A rows (``dataset.windows``, for per-run resampling).

    The folder key hashes the source, mode and every setting, so a changed setting never reads a stale dataset;
    ``BIORNN_RETRAIN=1`` (or ``retrain=True``) rebuilds.

    Returns:
        ``({condition: Dataset}, folder)``.
    """
    from biornn.store import config_key, want_retrain

    config = config or CurateConfig()
    mode = get_mode(mode)
    source_spec = default_source_spec() if source_spec is None else source_spec
    label = "twin" if str(source_spec) == "twin" else "allensdk"
    identity = {"source": str(source_spec), "mode": mode, "config": config.to_dict(), "format": FORMAT_VERSION}
    if label == "twin":
        from biornn.synthetic import twin_config

        identity["twin"] = twin_config(mode, seed=config.seed, twin=twin).to_dict()
    key = config_key(identity)
    folder = Path(root if root is not None else DATASETS_DIR) / f"{label}-{mode}-{key}"
    if want_retrain(retrain) or not all((folder / f"{c}_windows.npz").exists() for c in CONDITIONS):
        # always all six: the pooled standardisation statistics must not depend on which conditions were asked for
        source = open_source(source_spec, seed=config.seed, mode=mode, progress=progress, twin=twin)
        metadata = source.metadata if label == "twin" else source.metadata()
        datasets = build_datasets(source, metadata, CONDITIONS, config, progress=progress, keep_windows=True)
        for ds in datasets.values():
            save_dataset(ds, folder, windows=True)
    return {c: load_dataset_with_windows(folder, c) for c in conditions}, folder


def load_dataset_with_windows(path: str | os.PathLike, condition: str | None = None) -> Dataset:
    """:func:`load_dataset` plus its Stage A rows (``dataset.windows``) when ``<condition>_windows.npz`` exists."""
    dataset = load_dataset(path, condition)
    npz = Path(path) / f"{dataset.condition}.npz" if Path(path).is_dir() else Path(path)
    if npz.with_name(npz.stem + "_windows.npz").exists():
        dataset.windows = load_windows(npz)
    return dataset


# --------------------------------------------------------------------------------------------------------------------
# Plots used by the notebooks
# --------------------------------------------------------------------------------------------------------------------

WINDOW_COLORS = {"change": "tab:red", "no_change": "tab:grey", "omission": "tab:purple"}


def plot_timeline(data: ExperimentData, start: float, stop: float, ax=None):
    """The plane's mean ΔF/F between ``start`` and ``stop`` s with flashes (grey), changes (red) and omissions
    (purple dashed)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3))
    ts = data.timestamps
    sl = (ts >= start) & (ts <= stop)
    ax.plot(ts[sl], data.pop_mean[sl], color="k", lw=1, marker=".", ms=3)
    stim = data.stimulus_presentations
    stim = stim[(stim["start_time"] >= start) & (stim["start_time"] <= stop)
                & (stim["stimulus_block_name"] == BEHAVIOR_BLOCK)]
    for rec in stim.itertuples(index=False):
        if rec.omitted:
            ax.axvline(rec.start_time, color=WINDOW_COLORS["omission"], ls="--", lw=1)
        else:
            ax.axvspan(rec.start_time, rec.start_time + 0.25,
                       color=WINDOW_COLORS["change"] if rec.is_change else "0.85", alpha=0.6, lw=0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mean ΔF/F")
    ax.set_title(f"experiment {data.ophys_experiment_id} ({data.n_cells} cells)")
    return ax


def plot_windows(windows: dict[str, EventWindows], ax=None):
    """Mean ± SD over rows of each window type against the median event-relative frame time."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for wtype, w in windows.items():
        if len(w.values) == 0:
            continue
        t = np.median(w.t_rel, axis=0)
        m, sd = w.values.mean(axis=0), w.values.std(axis=0)
        color = WINDOW_COLORS.get(wtype, None)
        ax.plot(t, m, color=color, marker="o", ms=3, label=f"{wtype} (n={len(w.values)})")
        ax.fill_between(t, m - sd, m + sd, color=color, alpha=0.15, lw=0)
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("time from event (s)")
    ax.set_ylabel("mean ΔF/F")
    ax.legend()
    return ax


def plot_population_means(dataset: Dataset, area: str = "V1", axes=None):
    """3 x 3 grid (layers L2/3, L4, L5 x Pyr, SST, VIP) of one area: mean ± SD over training samples of the model
    inputs (frames 0–14, solid) and targets (frames 1–15, dashed)."""
    import matplotlib.pyplot as plt

    from biornn.connectivity import DISPLAY_LAYERS, TYPES, population_label

    if axes is None:
        fig, axes = plt.subplots(3, 3, figsize=(9, 7), sharex=True, constrained_layout=True)
        fig.suptitle(f"{dataset.condition} ({ABBREVIATIONS[dataset.condition]}), {area}: bootstrap means")
    frames = np.arange(WINDOW_FRAMES)
    for i, layer in enumerate(DISPLAY_LAYERS):
        for j, cell_type in enumerate(TYPES):
            ax = axes[i, j]
            p = dataset.populations.index(population_label(area, layer, cell_type))
            for arr, x, style in ((dataset.inputs, frames[:-1], "-"), (dataset.targets, frames[1:], "--")):
                m, sd = arr[:, :, p].mean(axis=0), arr[:, :, p].std(axis=0)
                ax.plot(x, m, style, color="k" if style == "-" else "tab:green", lw=1)
                ax.fill_between(x, m - sd, m + sd, color="0.7", alpha=0.3, lw=0)
            ax.axvline(PRE_FRAMES, color="tab:red", lw=0.5)
            ax.set_title(f"{area} {layer} {cell_type} (n={dataset.row_counts[p]})", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("frame")
    return axes


def plot_conditions(datasets: dict[str, Dataset], population: str, ax=None):
    """Mean model input of one population in every condition (solid familiar, dashed novel)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for cond, ds in datasets.items():
        experience, wtype = split_condition(cond)
        p = ds.populations.index(population)
        ax.plot(np.arange(WINDOW_FRAMES - 1), ds.inputs[:, :, p].mean(axis=0), color=WINDOW_COLORS[wtype],
                ls="-" if experience == "familiar" else "--", label=ABBREVIATIONS[cond])
    ax.axvline(PRE_FRAMES, color="k", lw=0.5)
    ax.set_xlabel("input frame")
    ax.set_ylabel("mean ΔF/F")
    ax.set_title(population)
    ax.legend(ncol=2)
    return ax
