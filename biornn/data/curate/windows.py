"""Stage A of the curation: the settings (:class:`CurateConfig`) and the event windows of one experiment
(:func:`find_events`, :func:`extract_windows`). See :mod:`biornn.data.curate` for the conditions and the framing.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from biornn.core.conditions import WINDOW_TYPES
from biornn.core.errors import BiornnError
from biornn.data.allen import BEHAVIOR_BLOCK, ExperimentData
from biornn.data.stimulus import stimulus_codes

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







# --------------------------------------------------------------------------------------------------------------------
# Stage B: split, bootstrap, smoothing, shift
# --------------------------------------------------------------------------------------------------------------------

















# --------------------------------------------------------------------------------------------------------------------
# The whole pipeline
# --------------------------------------------------------------------------------------------------------------------









# --------------------------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------------------------















# --------------------------------------------------------------------------------------------------------------------
# Cache for the notebooks
# --------------------------------------------------------------------------------------------------------------------







# --------------------------------------------------------------------------------------------------------------------
# Plots used by the notebooks
# --------------------------------------------------------------------------------------------------------------------









