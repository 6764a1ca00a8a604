"""Layer 3, Figure 4 model: the cell-type constrained two-area RNN (training, pruning, summaries, cache)."""

from __future__ import annotations

from biornn.celltype.cache import Fig4Run, condition_fits, fig4_run, find_fig4_runs, population_fits, read_run_config
from biornn.celltype.cli import register_cli
from biornn.celltype.config import (
    ABLATION,
    CHECKPOINT_RULES,
    INITIAL_STATES,
    KERNELS,
    LATER_DEFAULTS,
    MODE_SIZES,
    PRUNING,
    RECOMMENDED,
    RECOMMENDED_EXTRAS,
    STAGES,
    VARIANTS,
    WINDOWS,
    CelltypeConfig,
    ablation_configs,
    celltype_config,
    sizes_dict,
)
from biornn.celltype.data import (
    CelltypeData,
    check_populations,
    connectivity_tables,
    prepare_data,
    prune_mask,
    realised_density,
    target_density,
)
from biornn.celltype.stack import check_stack, split_result, stack_data, train_celltype_stack
from biornn.celltype.summaries import (
    REFERENCE_NAMES,
    baselines,
    ground_truth_for,
    identifiability,
    linear_history_predict,
    load_summary,
    load_summary_json,
    nonzero_mean_abs,
    refresh_baselines,
    save_summary,
    summarize,
    summary_dir,
)
from biornn.celltype.training import (
    CelltypeResult,
    batch_of,
    benchmark_epochs,
    fit_metrics,
    load_celltype,
    model_from_arrays,
    new_model,
    per_seed_mse,
    predict,
    save_celltype,
    train_celltype,
    train_epoch,
)

__all__ = ["ABLATION", "CHECKPOINT_RULES", "CelltypeConfig", "CelltypeData", "CelltypeResult", "Fig4Run",
           "INITIAL_STATES", "KERNELS", "LATER_DEFAULTS", "MODE_SIZES", "PRUNING", "RECOMMENDED",
           "RECOMMENDED_EXTRAS", "REFERENCE_NAMES", "STAGES", "VARIANTS", "WINDOWS", "ablation_configs", "baselines",
           "batch_of", "benchmark_epochs", "celltype_config", "check_populations", "check_stack", "condition_fits",
           "connectivity_tables", "fig4_run", "find_fig4_runs", "fit_metrics", "ground_truth_for", "identifiability",
           "linear_history_predict", "load_celltype", "load_summary", "load_summary_json", "model_from_arrays",
           "new_model", "nonzero_mean_abs", "per_seed_mse", "population_fits", "predict", "prepare_data",
           "prune_mask", "read_run_config", "realised_density", "refresh_baselines", "register_cli", "save_celltype",
           "save_summary", "sizes_dict", "split_result", "stack_data", "summarize", "summary_dir", "target_density",
           "train_celltype", "train_celltype_stack", "train_epoch"]
