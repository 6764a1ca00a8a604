"""Layer 6, plotting: one figure style, one figure writer and one plotting module per figure."""

from __future__ import annotations

from biornn.plotting.allen import plot_block_matrix, plot_depths
from biornn.plotting.curate import WINDOW_COLORS, plot_conditions, plot_population_means, plot_timeline, plot_windows
from biornn.plotting.fig2 import (
    plot_fig2_curves,
    plot_kl_bars,
    plot_mean_weight_matrices,
    plot_tour_dales_law,
    plot_weight_kdes,
)
from biornn.plotting.fig3 import (
    plot_keep_probabilities,
    plot_kept_weights,
    plot_mst_overlap,
    plot_paired_log_ratio,
    plot_pruning_sweep,
    plot_reference_bars,
    plot_retraining,
    plot_tour_pruning,
    plot_wave_candidates,
)
from biornn.plotting.fig4 import (
    CELLTYPE_COLORS,
    CELLTYPE_PATHWAY_COLORS,
    TRACE_STYLE,
    plot_block_heatmap,
    plot_celltype_curves,
    plot_celltype_mask,
    plot_celltype_network,
    plot_celltype_traces,
    plot_condition_fits,
    plot_density_vs_table,
    plot_identifiability,
    plot_weight_matrices,
)
from biornn.plotting.fig5 import (
    FIG5_PATHWAY_COLORS,
    NETWORK_POSITIONS,
    plot_difference_grid,
    plot_difference_map,
    plot_network_diagram,
    plot_network_grid,
    plot_pathway_agreement,
    plot_pathway_schematic,
)
from biornn.plotting.style import (
    METHOD_STYLE,
    PRUNING_STYLE,
    STYLE,
    band_plot,
    kde_on_grid,
    save_figure,
    use_style,
)

__all__ = ["CELLTYPE_COLORS", "CELLTYPE_PATHWAY_COLORS", "FIG5_PATHWAY_COLORS", "METHOD_STYLE", "NETWORK_POSITIONS",
           "PRUNING_STYLE", "STYLE", "TRACE_STYLE", "WINDOW_COLORS", "band_plot", "kde_on_grid",
           "plot_block_heatmap", "plot_block_matrix", "plot_celltype_curves", "plot_celltype_mask",
           "plot_celltype_network", "plot_celltype_traces", "plot_condition_fits", "plot_conditions",
           "plot_density_vs_table", "plot_depths", "plot_difference_grid", "plot_difference_map", "plot_fig2_curves",
           "plot_identifiability", "plot_keep_probabilities", "plot_kept_weights", "plot_kl_bars",
           "plot_mean_weight_matrices", "plot_mst_overlap", "plot_network_diagram", "plot_network_grid",
           "plot_paired_log_ratio", "plot_pathway_agreement", "plot_pathway_schematic", "plot_population_means",
           "plot_pruning_sweep", "plot_reference_bars", "plot_retraining", "plot_timeline", "plot_tour_dales_law",
           "plot_tour_pruning", "plot_wave_candidates", "plot_weight_kdes", "plot_weight_matrices", "plot_windows",
           "save_figure", "use_style"]
