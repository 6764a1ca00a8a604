"""Collecting Stage A windows per population over the experiments of a selection (per-experiment extraction,
optionally in worker processes).
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from biornn.core.conditions import CONDITIONS, WINDOW_TYPES, split_condition
from biornn.core.errors import BiornnError
from biornn.core.progress import progress as progress_bar
from biornn.data.allen import SkipExperiment, one_line
from biornn.data.curate.extracted import load_extracted, save_extracted
from biornn.data.curate.windows import WINDOW_FRAMES, CurateConfig, EventWindows, extract_windows
from biornn.data.stimulus import STIMULUS_CHANNELS
from biornn.nn.connectivity import POPULATION_LABELS

log = logging.getLogger("biornn.data.curate")


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
                    progress: bool = True, workers: int | None = None, work_dir: str | os.PathLike | None = None
                    ) -> tuple[dict[str, dict[str, PopulationWindows]], dict]:
    """Stage A for several conditions in one pass per experiment.

    Args:
        source: an experiment source (:class:`biornn.data.synthetic.TwinSource` or
        :class:`biornn.data.allen.AllenCacheSource`).
        selection: output of :func:`biornn.data.allen.select_experiments`.
        conditions: conditions to cut.
        config: settings (omission filter, framing, alignment).
        progress: progress bar over experiments.
        workers: processes reading and cutting experiments (default ``source.workers`` or 1); results are merged
            in experiment order, so the windows do not depend on it.
        work_dir: keep each experiment's windows in ``work_dir/<experiment_id>.npz`` as soon as it is cut (all
            window types) and read the ones already there instead of extracting them again
            (:mod:`biornn.data.curate.extracted`); None keeps nothing.

    Returns:
        ``(windows, report)``: ``windows[condition][population]`` is a :class:`PopulationWindows`; ``report`` holds
        ``skipped`` (experiment id -> reason: read, but nothing to contribute), ``skip_counts`` (reason -> count),
        ``failed`` (experiment id -> reason: could not be read; the caller decides whether to go on),
        ``n_resumed`` / ``n_extracted`` (experiments read from ``work_dir`` / extracted now), ``no_events``
        (condition -> experiment ids without a kept window) and ``dropped`` (condition -> reason -> windows).
    """
    config = config or CurateConfig()
    wanted: dict[str, list[str]] = {}
    for cond in conditions:
        experience, wtype = split_condition(cond)
        wanted.setdefault(experience, []).append(wtype)
    sel = selection[selection["experience_level"].isin(list(wanted))]
    exp_ids = list(dict.fromkeys(sel["ophys_experiment_id"].astype(int)))
    meta = sel.drop_duplicates("ophys_experiment_id").set_index("ophys_experiment_id")

    workers = getattr(source, "workers", 1) if workers is None else workers
    jobs = [(exp_id, tuple(wanted[meta.loc[exp_id, "experience_level"]])) for exp_id in exp_ids]
    results, resumed = _run_jobs(source, jobs, config, workers, progress, work_dir)
    per_exp: dict[int, dict[str, EventWindows]] = {}
    n_cells: dict[int, int] = {}
    skipped: dict[int, str] = {}
    failed: dict[int, str] = {}
    for exp_id in exp_ids:
        status, value, result = results[exp_id]
        if status == "ok":
            per_exp[exp_id], n_cells[exp_id] = result, value
        elif status == "skipped":
            skipped[exp_id] = value
            log.warning("skipping %s", value)
        else:
            failed[exp_id] = value
            log.info("failed: %s", value)
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
              "failed": {str(k): v for k, v in failed.items()}, "n_resumed": resumed,
              "n_extracted": len(exp_ids) - resumed, "work_dir": None if work_dir is None else str(work_dir),
              "no_events": {k: v for k, v in no_events.items()},
              "dropped": {k: dict(v) for k, v in dropped.items()}, "n_experiments_requested": len(exp_ids)}
    return windows, report


def require_complete(report: dict, source, allow_missing: bool = False, shown: int = 3) -> None:
    """Fail when experiments could not be read (named with their reasons), unless ``allow_missing``.

    A build never becomes silently smaller: without ``allow_missing`` a :class:`BiornnError` names the failed
    experiments, what to do about them (``source.failure_fix()`` where the source has one), and that the finished
    experiments are kept for the rerun when a ``work_dir`` was used. With ``allow_missing`` it warns instead.
    """
    failed = report.get("failed", {})
    if not failed:
        return
    listed = "; ".join(list(failed.values())[:shown]) + (f"; and {len(failed) - shown} more" if len(failed) > shown
                                                         else "")
    head = f"{len(failed)} of {report['n_experiments_requested']} experiments could not be read: {listed}"
    if allow_missing:
        log.warning("%s; building without them (--allow-missing)", head)
        warnings.warn(f"{head}; building without them", UserWarning, stacklevel=2)
        return
    fix = source.failure_fix() if hasattr(source, "failure_fix") else "fix or replace their files"
    kept = (f"; the {report['n_experiments_requested'] - len(failed)} finished experiments are kept in "
            f"{report['work_dir']} and a rerun reads only the rest" if report.get("work_dir") else "")
    raise BiornnError(f"{head}. Fix: {fix}, then rerun{kept}; or pass --allow-missing to build without them")


def _run_jobs(source, jobs: list[tuple[int, tuple[str, ...]]], config, workers: int, progress: bool,
              work_dir) -> tuple[dict[int, tuple], int]:
    """Every job's result, read from ``work_dir`` where it is already there, else extracted (and stored)."""
    results: dict[int, tuple] = {}
    if work_dir is not None:
        jobs = [(e, WINDOW_TYPES) for e, _ in jobs]
        for exp_id, wtypes in jobs:
            done = load_extracted(work_dir, exp_id, wtypes)
            if done is not None:
                results[exp_id] = done
    pending = [(e, w) for e, w in jobs if e not in results]
    if results:
        log.info("%d of %d experiments already extracted in %s; extracting %d", len(results), len(jobs), work_dir,
                 len(pending))
    source.prefetch([e for e, _ in pending])
    for exp_id, result in extract_experiments(source, pending, config, workers, progress, work_dir):
        results[exp_id] = result
    return results, len(jobs) - len(pending)


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


def extract_experiment(source, experiment_id: int, window_types: tuple[str, ...], config,
                       work_dir: str | os.PathLike | None = None) -> tuple:
    """Read one experiment and cut its windows.

    Args:
        source: experiment source. experiment_id: the experiment. window_types: which windows to cut.
        config: :class:`CurateConfig`.
        work_dir: where to store the result at once (see :mod:`biornn.data.curate.extracted`); failures are not stored.

    Returns:
        ``("ok", n_cells, {window type: EventWindows})``; ``("skipped", reason, None)`` when the source raises
        :class:`biornn.data.allen.SkipExperiment` (read, but nothing to contribute); ``("failed", reason, None)`` for
        any other exception while reading or cutting this experiment (the reason names the experiment).
    """
    try:
        data = source.load(experiment_id)
        out = {w: extract_windows(data, w, config.omission_filter, config.framing, config.no_change_alignment)
               for w in window_types}
        result = ("ok", int(data.n_cells), out)
        source.release(experiment_id)
    except SkipExperiment as exc:
        result = ("skipped", str(exc), None)
    except Exception as exc:  # noqa: BLE001 -- one experiment's failure is reported by id, never a traceback
        message = str(exc) if isinstance(exc, BiornnError) else one_line(exc)
        if not message.startswith(f"experiment {experiment_id}"):
            message = f"experiment {experiment_id}: {message}"
        return "failed", message, None
    if work_dir is not None:
        save_extracted(work_dir, experiment_id, result)
    return result


def _worker_extract(job: tuple) -> tuple:
    return extract_experiment(_WORKER_SOURCE, *job)


def extract_experiments(source, jobs: list[tuple[int, tuple[str, ...]]], config, workers: int = 1,
                        progress: bool = True, work_dir: str | os.PathLike | None = None):
    """Yield ``(experiment_id, extract_experiment(...))`` for every job ``(experiment_id, window types)`` in job order.

    With ``workers > 1`` the experiments are read in that many forked processes (each opens its own AllenSDK cache
    and stores its results in ``work_dir`` itself); results still come back in job order, so what is built from them
    does not depend on ``workers``.
    """
    if int(workers) < 1:
        raise BiornnError(f"workers = {workers}; pass 1 or more worker processes")
    jobs = [(int(e), tuple(w), config, work_dir) for e, w in jobs]
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
