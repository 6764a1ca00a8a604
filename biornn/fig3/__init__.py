"""The Figure 3 experiment: prune trained Dale's networks across a sweep of densities and compare the methods.

Dale's-backprop networks are trained per task (paper mode: 10 seeds, the Fig 2 paper sizes; :func:`dense_runs`),
pruned once per (seed, level, method, draw) from their final weights with :mod:`biornn.pruning` and evaluated on each
seed's full held-out test set without retraining (:func:`sweep_errors`); at one level (p = 0.0862) they are also
retrained with the mask fixed (:func:`retrain_pruned`; paper sections 5 and 9). Paper-mode results are cached under
``data/results/fig3/`` (:func:`cached_sweep`, :func:`cached_retrain`, :func:`fig3_results`).

Also here: the spanning-tree overlap curves of panel A (:func:`mst_overlap_curves`), the statistics tables
(:func:`level_table`, :func:`side_by_side`, :func:`effects_table`, built on :mod:`biornn.stats`), the notebook's
helpers (:func:`significant_levels`, :func:`format_levels`, :func:`retrain_table`) and the ``prune`` and
``reproduce-fig3`` commands.

The pruning algorithms themselves (top-prob, random, block-wise masks, spanning-tree bounds) live in
:mod:`biornn.pruning`. Facts: ``docs/paper/fig3-topprob-pruning.md``.

Submodules (imports point one way): :mod:`~biornn.fig3.experiment`, :mod:`~biornn.fig3.tables` and
:mod:`~biornn.fig3.cli`; this package re-exports their public names (and ``register_cli``).
"""

from __future__ import annotations

from biornn.fig3.cli import register_cli
from biornn.fig3.experiment import (
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
from biornn.fig3.tables import (
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
from biornn.fig3.wave_candidates import (
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
