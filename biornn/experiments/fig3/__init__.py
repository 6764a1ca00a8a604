"""Layer 5, experiments: Figure 3, pruning trained Dale's networks across densities and comparing methods."""

from __future__ import annotations

from biornn.experiments.fig3.cli import register_cli
from biornn.experiments.fig3.experiment import (
           FIG3_DRAWS,
           FIG3_SEEDS,
           FIG3_TASKS,
           MST_SPARSITIES,
           QUICK_DENSE_EPOCHS,
           RETRAIN_DENSITY,
           RETRAIN_EPOCHS,
           SWEEP,
           RetrainResult,
           SweepResult,
           cached_retrain,
           cached_sweep,
           default_draws,
           dense_runs,
           fig3_config,
           fig3_results,
           load_retrain,
           load_sweep,
           mst_overlap_curves,
           retrain_epochs,
           retrain_pruned,
           retrain_pruned_methods,
           save_retrain,
           save_sweep,
           sweep_errors,
)
from biornn.experiments.fig3.tables import (
           EFFECT_COLUMNS,
           effects_table,
           format_effect,
           format_levels,
           informative_levels,
           level_table,
           retrain_table,
           side_by_side,
           significant_levels,
)
from biornn.experiments.fig3.wave_candidates import (
           AS_PUBLISHED,
           CANDIDATES,
           REFERENCE_ROW,
           candidate_errors,
           candidate_table,
           ei_keep_shares,
           get_candidate,
           load_candidates,
           reference_result,
           run_candidates,
           sweep_panels,
)

__all__ = ["AS_PUBLISHED", "CANDIDATES", "EFFECT_COLUMNS", "FIG3_DRAWS", "FIG3_SEEDS", "FIG3_TASKS", "MST_SPARSITIES",
           "QUICK_DENSE_EPOCHS", "REFERENCE_ROW", "RETRAIN_DENSITY", "RETRAIN_EPOCHS", "RetrainResult", "SWEEP",
           "SweepResult", "cached_retrain", "cached_sweep", "candidate_errors", "candidate_table", "default_draws",
           "dense_runs", "effects_table", "ei_keep_shares", "fig3_config", "fig3_results", "format_effect",
           "format_levels", "get_candidate", "informative_levels", "level_table", "load_candidates", "load_retrain",
           "load_sweep", "mst_overlap_curves", "reference_result", "register_cli", "retrain_epochs", "retrain_pruned",
           "retrain_pruned_methods", "retrain_table", "run_candidates", "save_retrain", "save_sweep", "side_by_side",
           "sweep_panels",
           "significant_levels", "sweep_errors"]
