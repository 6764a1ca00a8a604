"""Training the cell-type constrained two-area RNN of paper Figure 4 (``docs/paper/fig4-5-celltype-rnn.md``).

Pipeline per (condition, window), all seeds batched (§4.3):

1. **Dense Dale's training**: Adam (lr 1e-3), cosine schedule ``T_max = 10`` epochs, ``eta_min = 1e-4``, stepped
   per epoch and never restarted (``lr(e) = 1e-4 + 0.9e-3 (1 + cos(pi e / 10)) / 2``, ``e = 0`` in the first epoch);
   after every optimiser step the Dale projection of ``W_rec``. The epoch with the lowest epoch loss is kept and
   reloaded (per seed).
2. **Pruning** (one shot): within each area every population block is pruned by top-prob to the table's density
   (:func:`biornn.pruning.blockwise_mask`); the three inter-area pathways keep their dense trained values times a
   Bernoulli(0.3) mask; every other cross-area block is emptied. The connectivity mask ``M`` is the nonzero
   pattern right after pruning.
3. **Masked fine-tuning**: fresh Adam and the same schedule; before every step the gradient of ``W_rec`` is zeroed
   outside ``M`` (Adam's moments there stay exactly 0), after every step the Dale projection, then
   ``W_rec <- W_rec * M``.

Loss: MSE, mean over ``B x T x 18``; an epoch's loss is the **mean batch loss** (multiply by the number of batches,
10, for the reference's sum; :attr:`CelltypeResult.reference_factor`).

Switches (§9; defaults = biornn's choice, :meth:`CelltypeConfig.published` = the reference):

=====================  =========================================  ==============================================
option                 default (corrected)                        ``as published``
=====================  =========================================  ==============================================
``input_mapping``      ``population``: channel p -> population p  ``dense`` (Q1: the mask was never applied)
``pruning``            ``default``: exact budgets ``p n`` over     ``as_published``: the reference's budget
                       nonzero entries; inter-area: exactly        ``n (1 - s')`` (5-15 % above the table, Q8);
                       ``0.3 n`` of the nonzero entries            inter-area: Bernoulli(0.3) over all entries
``checkpoint_rule``    ``best``: lowest mean epoch loss of         ``as_published``: epoch *sum* must beat a
                       fine-tuning (best and last both kept)       running minimum started at one batch's MSE (Q7)
``dale``               True                                       False = the vanilla control (no projection)
=====================  =========================================  ==============================================

Top-prob as published (``eligibility="as_published"`` of :mod:`biornn.pruning`) redistributes the probability of
capped entries additively, as in Fig 3; the Fig 4 reference does not redistribute (``min(1, K |w|)``). The two
differ only for entries with ``K |w| > 1``; realised densities are reported next to the table.

Seeds: per-seed streams from :func:`biornn.config.derive_seed`: initialisation ``(seed, "init", "celltype")``,
shuffles ``(seed, "shuffle", "celltype", stage, epoch)``, pruning and inter-area draws through
:mod:`biornn.pruning` (``(seed, "prune", ...)``).

Checkpoints (``OUT/checkpoints/``, each written atomically): ``initial.pt``, ``dense_best.pt``, ``sparse.pt`` and a
rolling ``resume.pt`` (parameters, Adam state, best-so-far weights, mask and history after every completed epoch).
An interrupted :func:`train_celltype` with the same ``out`` resumes from ``resume.pt`` and ends with bitwise the
same result as an uninterrupted run on the CPU (per-epoch shuffles are derived, not carried).

Outputs (command line contract, ``python -m biornn celltype train``): ``OUT/metrics.json`` (config, device, data,
runs with per-stage losses and held-out fits) and ``OUT/weights.npz``: ``W_init``, ``W_dense``, ``W_sparse``,
``W_last`` ``(S, N, N)`` float32 (``W[post, pre]``), ``mask`` ``(S, N, N)`` uint8 (1 where a connection may exist),
``signs`` ``(N,)``, ``population`` ``(N,)`` labels such as ``V1_L2/3_Pyr``, ``population_index`` ``(N,)``,
``w_in_dense``, ``w_in_sparse``, ``w_in_last`` ``(S, N, 18)``, ``w_out`` ``(S, N)``, ``b_out`` ``(S, 18)``,
``target_density`` ``(18, 18)`` and ``realised_density`` ``(S, 18, 18)``.

Figure cache (paper mode, ``data/results/fig4/``): :func:`summarize` keeps only what the figures need, in float64
(block means raw and absolute for initial / dense / sparse weights, realised densities, mean ``|w|`` over nonzero
entries, losses, held-out fits, a few held-out traces, identifiability on twin data) plus seed 0's three full
matrices in float32 (display only).

Submodules (imports point one way): :mod:`~biornn.celltype.config`, :mod:`~biornn.celltype.data`,
:mod:`~biornn.celltype.training`, :mod:`~biornn.celltype.stack` (several conditions in one model batch),
:mod:`~biornn.celltype.summaries`, :mod:`~biornn.celltype.cache` and
:mod:`~biornn.celltype.cli`; this package re-exports their public names (and ``register_cli``).
"""

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
