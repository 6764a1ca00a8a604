"""Layer 2, data: from experiments to training data (event windows, bootstrap, smoothing, one-step shift)."""

from __future__ import annotations

from biornn.data.curate.collect import PopulationWindows, collect_windows, extract_experiment, extract_experiments
from biornn.data.curate.datasets import (
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
from biornn.data.curate.files import (
    DATASET_KEYS,
    WINDOW_KEYS,
    cached_datasets,
    load_dataset,
    load_dataset_with_windows,
    load_windows,
    save_dataset,
    save_reference_layout,
)
from biornn.data.curate.windows import (
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

__all__ = ["CurateConfig", "DATASET_KEYS", "Dataset",
           "EVENT_TOLERANCE", "EventWindows", "FORMAT_VERSION", "FRAME_PERIOD_RANGE", "FRAMINGS", "HALF_WINDOW",
           "HELDOUT_MODES", "NO_CHANGE_ALIGNMENTS", "OMISSION_FILTERS", "PRE_FRAMES", "PopulationWindows",
           "SMOOTHING", "WINDOW_FRAMES", "WINDOW_KEYS", "bootstrap_means", "build_dataset",
           "build_datasets", "cached_datasets", "check_frame_period", "collect_windows", "default_source_spec",
           "extract_experiment", "extract_experiments", "extract_windows", "find_events", "frame_period",
           "half_window", "heldout_mask", "inputs_targets", "load_dataset", "load_dataset_with_windows",
           "load_windows", "open_default_source", "open_source", "pooled_standardization", "save_dataset",
           "save_reference_layout", "smooth"]
