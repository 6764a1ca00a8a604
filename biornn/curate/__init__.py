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
per population, skipped and failed experiments with reasons, dropped-window counts, code version, date), the
``build_id`` shared by every condition of one build, and ``file_digests`` (sha256 of each file's bytes and of its
arrays), which :func:`load_dataset` checks. A build from a real cache also keeps each experiment's windows in
``OUT/.extract/`` (:mod:`~biornn.curate.extracted`), so that a stopped build resumes.
Optional ``<condition>_windows.npz``: every Stage A row with provenance (the ``windows`` table of the spec).

Submodules (imports point one way): :mod:`~biornn.curate.windows` (settings, Stage A),
:mod:`~biornn.curate.collect` (windows per population, worker processes), :mod:`~biornn.curate.datasets` (Stage B,
the pipeline), :mod:`~biornn.curate.files` (files, the notebooks' cache), :mod:`~biornn.curate.cli` (the ``allen``
command). This package re-exports their public names; the plots live in :mod:`biornn.plotting.curate`.
"""

from __future__ import annotations

from biornn.conditions import ABBREVIATIONS, CONDITIONS, WINDOW_TYPES, split_condition
from biornn.config import DATASETS_DIR
from biornn.curate.collect import PopulationWindows, collect_windows, extract_experiment, extract_experiments
from biornn.curate.datasets import (
    Dataset,
    bootstrap_means,
    build_dataset,
    build_datasets,
    default_source_spec,
    half_window,
    heldout_mask,
    inputs_targets,
    open_default_source,
    open_source,
    pooled_standardization,
    smooth,
)
from biornn.curate.files import (
    DATASET_KEYS,
    WINDOW_KEYS,
    cached_datasets,
    load_dataset,
    load_dataset_with_windows,
    load_windows,
    save_dataset,
    save_reference_layout,
)
from biornn.curate.windows import (
    EVENT_TOLERANCE,
    FORMAT_VERSION,
    FRAME_PERIOD_RANGE,
    FRAMINGS,
    HALF_WINDOW,
    HELDOUT_MODES,
    NO_CHANGE_ALIGNMENTS,
    OMISSION_FILTERS,
    PRE_FRAMES,
    SMOOTHING,
    WINDOW_FRAMES,
    CurateConfig,
    EventWindows,
    check_frame_period,
    extract_windows,
    find_events,
    frame_period,
)

__all__ = ["ABBREVIATIONS", "CONDITIONS", "CurateConfig", "DATASETS_DIR", "DATASET_KEYS", "Dataset",
           "EVENT_TOLERANCE", "EventWindows", "FORMAT_VERSION", "FRAME_PERIOD_RANGE", "FRAMINGS", "HALF_WINDOW",
           "HELDOUT_MODES", "NO_CHANGE_ALIGNMENTS", "OMISSION_FILTERS", "PRE_FRAMES", "PopulationWindows",
           "SMOOTHING", "WINDOW_FRAMES", "WINDOW_KEYS", "WINDOW_TYPES", "bootstrap_means", "build_dataset",
           "build_datasets", "cached_datasets", "check_frame_period", "collect_windows", "default_source_spec",
           "extract_experiment", "extract_experiments", "extract_windows", "find_events", "frame_period",
           "half_window", "heldout_mask", "inputs_targets", "load_dataset", "load_dataset_with_windows",
           "load_windows", "open_default_source", "open_source", "pooled_standardization", "save_dataset",
           "save_reference_layout", "smooth", "split_condition"]

#: Plots that moved to :mod:`biornn.plotting.curate`, still reachable here for the notebooks.
_PLOTS = ("plot_conditions", "plot_population_means", "plot_timeline", "plot_windows")


def __getattr__(name: str):
    """``biornn.curate.plot_*`` for the notebooks: the plots live in :mod:`biornn.plotting.curate` (imported on
    first use, so this module does not pull in matplotlib or the plotting layer)."""
    if name in _PLOTS:
        from biornn.plotting import curate as plots  # upward re-export, on first use only

        return getattr(plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
