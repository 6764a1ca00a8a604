"""Stage B of the curation: held-out split, bootstrap means, smoothing and the one-step shift per population
(:func:`build_dataset`), and the whole pipeline from an experiment source (:func:`build_datasets`).

The package (:mod:`biornn.data.curate`), as a whole: From experiments to training data: event windows, bootstrap,
smoothing, one-step shift.

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
per population, skipped and failed experiments with reasons, dropped-window counts, code version, date), the
``build_id`` shared by every condition of one build, and ``file_digests`` (sha256 of each file's bytes and of its
arrays), which :func:`load_dataset` checks. A build from a real cache also keeps each experiment's windows in
``OUT/.extract/`` (:mod:`~biornn.data.curate.extracted`), so that a stopped build resumes.
Optional ``<condition>_windows.npz``: every Stage A row with provenance (the ``windows`` table of the spec).

Submodules (imports point one way): :mod:`~biornn.data.curate.windows` (settings, Stage A),
:mod:`~biornn.data.curate.collect` (windows per population, worker processes), :mod:`~biornn.data.curate.datasets`
(Stage B,
the pipeline), :mod:`~biornn.data.curate.files` (files, the notebooks' cache), :mod:`~biornn.data.curate.cli` (the
``allen``
command). This package re-exports their public names; the plots live in :mod:`biornn.plotting.curate`.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d

from biornn.core.conditions import ABBREVIATIONS, CONDITIONS, split_condition
from biornn.core.config import ALLEN_CACHE_ENV, allen_cache_dir, derive_seed
from biornn.core.errors import BiornnError
from biornn.core.store import config_key
from biornn.data.allen import Metadata, find_overlaps, load_metadata, require_nonempty, select_experiments
from biornn.data.allen_nwb import AllenCacheSource
from biornn.data.curate.collect import PopulationWindows, collect_windows, require_complete
from biornn.data.curate.windows import FORMAT_VERSION, HALF_WINDOW, SMOOTHING, WINDOW_FRAMES, CurateConfig
from biornn.data.synthetic import TwinSource, twin_config
from biornn.nn.connectivity import POPULATION_LABELS

log = logging.getLogger("biornn.data.curate")


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
            raise BiornnError(f"{condition}: population {pop} has no windows: its experiments were all skipped, "
                              "or none of their events gave a window (see the skipped and dropped counts in the log); "
                              "add experiments of that population (a larger --max-experiments) or use longer sessions")
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


def default_source_spec() -> str:
    """``$BIORNN_ALLEN_CACHE`` (a real AllenSDK cache folder) when set, else ``"twin"``."""
    return (allen_cache_dir() or "").strip() or "twin"


def open_default_source(mode: str = "quick", seed: int = 0, progress: bool = True):
    """The notebooks' source and metadata: a real cache if ``$BIORNN_ALLEN_CACHE`` is set, else the twin.

    Returns:
        ``(source, metadata)``.
    """
    spec = default_source_spec()
    metadata = load_metadata("bundled" if spec == "twin" else spec, flag=f"${ALLEN_CACHE_ENV}")
    return open_source(spec, seed=seed, mode=mode, metadata=metadata, progress=progress), metadata


def open_source(spec: str | os.PathLike, seed: int = 0, mode: str = "quick", metadata: Metadata | None = None,
                progress: bool = True, twin: str = "planted", twin_seed: int | None = None):
    """An experiment source: ``"twin"`` (the digital twin of the bundled metadata; ``twin`` = ``planted`` or
    ``null``; ``twin_seed`` = the twin's sample seed, :attr:`biornn.data.synthetic.TwinConfig.sample_seed`, None =
    ``seed``)
    or an AllenSDK cache folder."""
    if str(spec) == "twin":

        return TwinSource(metadata or load_metadata("bundled"),
                          twin_config(mode, seed=seed, twin=twin, sample_seed=twin_seed), progress=progress)

    folder = Path(spec)
    if not folder.is_dir():
        raise BiornnError(f"source {spec!r} is neither 'twin' nor an existing folder; pass twin or a cache folder")
    return AllenCacheSource(folder)


def build_datasets(source, metadata: Metadata | pd.DataFrame, conditions=CONDITIONS,
                   config: CurateConfig | None = None, progress: bool = True, keep_windows: bool = False,
                   work_dir: str | os.PathLike | None = None, allow_missing: bool = False) -> dict[str, Dataset]:
    """Select, cut, bootstrap: the training datasets of several conditions in one pass over the experiments.

    Args:
        source: experiment source (:func:`open_source`).
        metadata: release metadata (selected with ``config.layer_rule``) or a ready selection table.
        conditions: any of :data:`CONDITIONS`.
        config: settings.
        progress: progress bars.
        keep_windows: keep the Stage A rows on each dataset (``dataset.windows``).
        work_dir: keep each experiment's windows there as it finishes and reuse them on a rerun
            (:func:`biornn.data.curate.collect.collect_windows`).
        allow_missing: build without experiments that could not be read (listed in the manifest's
            ``report.failed``) instead of failing.

    Returns:
        ``{condition: Dataset}``; every manifest carries the same ``build_id`` (a hash of the settings, the source
        and the pooled standardisation), which :func:`biornn.data.curate.files.load_dataset` compares across a folder.

    Raises:
        BiornnError: an empty population, or experiments that could not be read (all named) without
            ``allow_missing``.
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
    windows, report = collect_windows(source, selection, conditions, config, progress, work_dir=work_dir)
    require_complete(report, source, allow_missing)
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
    build_id = config_key({"config": config.to_dict(), "source": describe, "twin": extra.get("twin_config"),
                           "conditions": sorted(out), "standardization": stats})
    for ds in out.values():
        ds.manifest["standardization"] = stats
        ds.manifest["build_id"] = build_id
        if not keep_windows:
            ds.windows = None
    return out
