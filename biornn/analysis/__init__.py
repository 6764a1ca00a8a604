"""Figure 5: how the inferred connectivity differs between conditions (``docs/paper/fig4-5-celltype-rnn.md`` §5–9).

Block summaries of trained recurrent matrices ``W[post, pre]`` at three granularities, each reported three ways
(Q4: density and strength are never confused):

* ``mean_abs``: block mean of ``|W|`` **including the pruned zeros** (the reference's quantity, §6);
* ``density``: realised density, the fraction of block entries with ``|w| > tol`` (``tol = 0``: exact zeros are
  pruned, masked or clamped connections);
* ``strength``: mean ``|w|`` over the surviving entries (NaN for an empty block).

With ``tol = 0``, ``mean_abs = density * strength`` exactly. Granularities: ``population`` (18 x 18), ``layer``
(area x layer, 6 x 6) and ``area`` (2 x 2). Blocks are listed in the published display order (area-major, layers
**L2/3, L4, L5**, types Pyr, SST, VIP; Q11) unless ``order="index"`` asks for the internal index layout (L4
first, :data:`biornn.connectivity.POPULATION_LABELS`). All sums are one-hot matrix products, batched over runs.

Condition comparisons (§6, Q3): for conditions A and B with runs ``a_1..a_nA`` and ``b_1..b_nB``
of a block quantity, ``diff = mean(b) - mean(a)`` (= the mean over all ``nA * nB`` run pairs of ``b_j - a_i``, the
reference's Δ). Tests, per block, two-sided, on run-level values (the run is the unit of replication):

* ``permutation`` (default): the difference of means under exchange of run labels between the conditions; exact
  enumeration of all ``C(nA + nB, nA)`` relabellings when that is at most ``max_exact`` (252 for 5 vs 5; the smallest
  attainable p is then ``2 / 252 = 0.0079``), else ``n_resamples`` random relabellings from a seeded generator with
  ``p = (1 + hits) / (1 + draws)``;
* ``welch``: Welch's unequal-variance t-test (Welch–Satterthwaite df).

Multiple comparisons: within each (granularity, quantity) table, over the **tested blocks** (those holding at least one
connection in at least one run of either condition), with Benjamini–Hochberg FDR (``fdr_bh``, default) or Holm's
family-wise correction (``holm``). Effect size: Hedges' g (difference over the pooled SD, small-sample corrected).
Every table and side file names its test, n and correction.

:class:`ModelSet` holds the runs of one condition (loaded from a Fig 4 run directory with :func:`load_models`, or made
from the digital twin's ground truth with :func:`twin_models`); :func:`compare_conditions` returns a
:class:`Comparison`; :func:`load_summaries` also reads the Fig 4 figure cache (``summary.npz``), which keeps
population-level block means only. :func:`fig5_inputs` gathers all six conditions x two windows for the notebook (Fig 4
cache, else quick stand-in models trained now, else synthetic twin weights) and :func:`pathway_table` sets the three
inter-area pathways of the nine pairs beside the reference's numbers (``data/reference/fig5.json``). The command line
``python -m biornn compare --models DIR_A DIR_B --out DIR`` writes the tables.

Submodules (imports point one way): :mod:`~biornn.analysis.blocks` (groups, block summaries, model sets),
:mod:`~biornn.analysis.comparisons` (condition comparisons, pathway tables), :mod:`~biornn.analysis.fig5` (what the
Figure 5 notebook compares). The tests live with the other statistics in :mod:`biornn.stats` and are re-exported here.
"""

from __future__ import annotations

from biornn.analysis.blocks import (
    GRANULARITIES,
    ORDERS,
    PATHWAY_LAYERS,
    PATHWAY_TITLES,
    QUANTITIES,
    QUANTITY_LABELS,
    BlockSummary,
    ModelSet,
    block_summaries,
    block_summary,
    group_labels,
    load_models,
    load_summaries,
    population_groups,
    summaries_from_blocks,
    unit_populations,
)
from biornn.analysis.comparisons import (
    Comparison,
    compare_conditions,
    compare_pairs,
    compare_summaries,
    merge_pathway_tables,
    pathway_specificity,
    pathway_table,
    reference_fig5,
    reference_layer_matrix,
)
from biornn.analysis.fig5 import (
    QUICK_TRAINING,
    SOURCES,
    TWIN_MODEL_SIZES,
    Fig5Inputs,
    fig5_inputs,
    planted_counts,
    planted_table,
    twin_expected,
    twin_models,
)
from biornn.celltype import find_fig4_runs
from biornn.conditions import BY_ABBREVIATION, CONDITION_TITLES, PAIRS, WINDOWS
from biornn.stats import CORRECTIONS, TESTS, adjust, fdr_bh, hedges_g, permutation_test, welch_test

__all__ = ["BlockSummary", "CONDITION_TITLES", "BY_ABBREVIATION", "CORRECTIONS", "Comparison", "Fig5Inputs",
           "GRANULARITIES", "ModelSet", "ORDERS", "PAIRS", "PATHWAY_LAYERS", "PATHWAY_TITLES", "QUANTITIES",
           "QUANTITY_LABELS", "QUICK_TRAINING", "SOURCES", "TESTS", "TWIN_MODEL_SIZES", "WINDOWS", "adjust",
           "block_summaries", "block_summary", "compare_conditions", "compare_pairs", "compare_summaries", "fdr_bh",
           "fig5_inputs", "find_fig4_runs", "group_labels", "hedges_g", "load_models", "load_summaries",
           "merge_pathway_tables", "pathway_specificity", "pathway_table", "permutation_test", "planted_counts",
           "planted_table", "population_groups", "reference_fig5", "reference_layer_matrix", "summaries_from_blocks",
           "twin_expected", "twin_models", "unit_populations", "welch_test"]
