"""Collecting Stage A windows per population over the experiments of a selection (per-experiment extraction,
optionally in worker processes).
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from biornn.allen import (
    SkipExperiment,
)
from biornn.conditions import CONDITIONS, split_condition
from biornn.connectivity import POPULATION_LABELS
from biornn.curate.windows import WINDOW_FRAMES, CurateConfig, EventWindows, extract_windows
from biornn.errors import BiornnError
from biornn.progress import progress as progress_bar
from biornn.stimulus import STIMULUS_CHANNELS

log = logging.getLogger("biornn.curate")


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
_WORKER_SOURCE = None


def _init_worker(source) -> None:
    global _WORKER_SOURCE
    _WORKER_SOURCE = source


def extract_experiment(source, experiment_id: int, window_types: tuple[str, ...], config) -> tuple:
    """Read one experiment and cut its windows: ``(n_cells, {window type: EventWindows})``, or ``(None, reason)``
    when the source raises :class:`biornn.allen.SkipExperiment`."""
    try:
        data = source.load(experiment_id)
    except SkipExperiment as exc:
        return None, str(exc)
    out = {w: extract_windows(data, w, config.omission_filter, config.framing, config.no_change_alignment)
           for w in window_types}
    source.release(experiment_id)
    return int(data.n_cells), out


def _worker_extract(job: tuple) -> tuple:
    return extract_experiment(_WORKER_SOURCE, *job)


def extract_experiments(source, jobs: list[tuple[int, tuple[str, ...]]], config, workers: int = 1,
                        progress: bool = True):
    """Yield ``(experiment_id, extract_experiment(...))`` for every job ``(experiment_id, window types)`` in job order.

    With ``workers > 1`` the experiments are read in that many forked processes (each opens its own AllenSDK cache);
    results still come back in job order, so what is built from them does not depend on ``workers``.
    """
    if int(workers) < 1:
        raise BiornnError(f"workers = {workers}; pass 1 or more worker processes")
    jobs = [(int(e), tuple(w), config) for e, w in jobs]
    if workers == 1 or len(jobs) < 2:
        results = (extract_experiment(source, *job) for job in jobs)
        yield from zip([j[0] for j in jobs], progress_bar(results, total=len(jobs), desc="experiments",
                                                          enabled=progress))
        return
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with concurrent.futures.ProcessPoolExecutor(max_workers=int(workers), mp_context=context,
                                                initializer=_init_worker, initargs=(source,)) as pool:
        results = pool.map(_worker_extract, jobs)
        yield from zip([j[0] for j in jobs], progress_bar(results, total=len(jobs), desc="experiments",
                                                       enabled=progress))
