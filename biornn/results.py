"""Stored results under one import path, for the notebooks: the store (:mod:`biornn.store`: run folders, atomic
writes, provenance, reference numbers) and the Figure 2 runs (:mod:`biornn.fig2`: :class:`StoredRun`,
:func:`cached_train`, :func:`fig2_runs`, :func:`fig2_table`).

Library modules import :mod:`biornn.store` or :mod:`biornn.fig2` directly; this module only re-exports.
"""

from __future__ import annotations

from biornn.config import RESULTS_DIR, ROOT
from biornn.fig2 import StoredRun, cached_train, fig2_runs, fig2_table
from biornn.store import (
    atomic_write_bytes,
    code_version,
    config_key,
    load_run,
    provenance,
    reference,
    run_dir,
    save_run,
    save_train_result,
    want_retrain,
)

__all__ = ["RESULTS_DIR", "ROOT", "StoredRun", "atomic_write_bytes", "cached_train", "code_version", "config_key",
           "fig2_runs", "fig2_table", "load_run", "provenance", "reference", "run_dir", "save_run",
           "save_train_result", "want_retrain"]
