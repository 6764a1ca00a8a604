# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Appendix to notebook 07 — Figure 5 reproduced, tested and probed
#
# The research material behind the lecture [07_fig5_condition_comparisons](07_fig5_condition_comparisons.ipynb):
# the reproduction of **Figure 5** of Balwani, Wang, Najafi & Choi (Sci. Adv. 2025) from the cached Figure 4 runs
# (six conditions FC, FN, FO, NC, NN, NO; two windows, "full" = 15 frames and "half" = its second half; nine pairs
# A → B, the difference **B − A of the block-averaged |W_rec|** as population and layer maps and network diagrams),
# density against strength, permutation tests with correction, the pathways next to the reference's, the quick-size
# recovery check of the separate estimator, where coupling information lives in the bootstrapped data, the scaling
# sweep with its linear control, and the predictive-coding readings table. Background, sections (§) and quirks (Q1,
# Q3, Q4, Q11): [docs/paper/fig4-5-celltype-rnn.md](../docs/paper/fig4-5-celltype-rnn.md).
#
# **The paper figure, as this repository draws it:** Figure 5's layer-level maps, B − A of the block-averaged |W_rec|
# for the nine condition pairs, full window (`figures/fig5_layers_full.png`, written in section B):
#
# ![Figure 5, layer-level differences for the nine pairs, full window](../figures/fig5_layers_full.png)
#
# **Learning objectives**
# 1. Compute a block's mean |W| as density × strength, and say which of the two a Figure 5 difference changed.
# 2. Test block differences over training runs (permutation, Welch) with FDR or Holm, and know what the unit of
#    replication is.
# 3. Compare our inter-area pathway differences with the reference's, sign by sign.
# 4. Judge, with planted and null twins, whether a fitted difference recovers a planted connectivity change.
#
# **Runtimes** (2 CPU cores, from the README's [runtime table](../README.md#notebooks-and-runtimes)): quick mode
# ~5.5 min (trains the quick recovery check: 12 condition fits at quick sizes on both twins, most of the time; the
# reproduction panels come from the cached paper runs); paper mode ~1 min from the cache (the recovery check from the
# paper-size runs of both twins where cached; otherwise the quick check, and it says so). Sections are lettered
# A-E; each has an exercise.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from biornn import celltype as ct
from biornn.core import conditions
from biornn.core.config import figures_dir, get_mode, want_retrain
from biornn.core.errors import BiornnError
from biornn.data.curate import cached_datasets
from biornn.experiments.fig5 import inputs as fig5
from biornn.experiments.fig5 import recovery
from biornn.experiments.fig5.recovery_scaling import linear_table, sample_independence, scaling_table
from biornn.nn.connectivity import POPULATION_LABELS, population_index
from biornn.plotting import (
    plot_difference_grid,
    plot_difference_map,
    plot_network_grid,
    plot_pathway_agreement,
    plot_pathway_schematic,
    save_figure,
)
from biornn.plotting.fig5 import plot_recovery, plot_scaling
from biornn.stats import blocks as an
from biornn.stats import comparisons

MODE = get_mode()
RETRAIN = want_retrain()  # BIORNN_RETRAIN, read once here and passed down
FIGURES = figures_dir()  # where save_figure writes: BIORNN_FIGURES or figures/, read once here
print("mode:", MODE)

# %% [markdown]
# ## A. The test, and three ways to summarise a block
#
# ### Parameters
#
# Differences are B − A of run means (equal to the mean over all run pairs, the reference's Δ), shown in units of 1e-4.
# The test is a two-sided **run-label permutation test** (exact: all C(10, 5) = 252 relabellings for 5 vs 5 runs),
# corrected with **Benjamini–Hochberg FDR** over the blocks of each map; effect sizes are Hedges' g. **Unit of
# replication**: a training run. In the committed as-published cache all five runs of a condition were trained on
# the *same* bootstrap dataset, so these tests measure optimisation noise (initialisation, pruning draws), not how
# the data vary; the recovery check below uses runs that each redraw their data.

# %%
TEST, CORRECTION, ALPHA = "permutation", "fdr_bh", 0.05
SCALE = 1e4  # differences shown in units of 1e-4, as in the reference's colour bars
HEADLINE = ("full", "FN->FC")
pd.set_option("display.width", 160)

# %% [markdown]
# ### A hand-built check
#
# A 24-unit model (2 Pyr, 1 SST, 1 VIP per area-layer) with six nonzero weights: two in V1 L2/3 Pyr ← V1 L4 Pyr
# (0.4 and 0.2; Pyr columns are excitatory), one in V1 L2/3 SST ← V1 L4 SST (−0.8, inhibitory), and three feedforward
# weights from V1 L2/3 Pyr into LM L4 (two onto Pyr, one onto SST). By hand: the 2 × 2 Pyr block holds |0.4| + |0.2| = 0.6 over 4
# entries, so its mean |W| with zeros is 0.15, its density 2/4 = 0.5 and its strength (mean over the 2 survivors) 0.3;
# the V1 L2/3 ← V1 L4 layer block (16 entries) holds 1.4 in 3 entries: 0.0875, 0.1875 and 0.467. The reference's
# number is always density × strength.

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
labels = np.asarray(POPULATION_LABELS)[population_index({"Pyr": 2, "SST": 1, "VIP": 1})]
W = np.zeros((24, 24))
W[4, 0], W[5, 1], W[6, 2] = 0.4, 0.2, -0.8           # V1 L2/3 <- V1 L4 (units 4-7 <- 0-3)
W[12, 4], W[13, 4], W[14, 5] = 0.3, 0.1, 0.2         # LM L4 <- V1 L2/3 Pyr (feedforward)
hand = an.block_summaries(W, labels)
for g, post, pre in (("population", "V1_L2/3_Pyr", "V1_L4_Pyr"), ("population", "LM_L4_SST", "V1_L2/3_Pyr"),
                     ("layer", "V1_L2/3", "V1_L4"), ("layer", "LM_L4", "V1_L2/3"), ("area", "LM", "V1")):
    s = hand[g]
    i, j = s.labels.index(post), s.labels.index(pre)
    print(f"{g:10s} {post:12s} <- {pre:12s} mean|W| {s.mean_abs[0, i, j]:.4f}  density {s.density[0, i, j]:.4f}  "
          f"strength {s.strength[0, i, j]:.4f}")

# %% [markdown]
# ### The reference's numbers
#
# Differences of the three inter-area pathways for all nine pairs and both windows, read off the published figure
# (§7.5; `data/reference/fig5.json`, units 1e-4): the layer-level value and, in brackets, the population-level
# values from the pathway's Pyr source into the target layer's Pyr, SST and VIP. `*` marks the largest |Δ| of the whole
# 6×6 panel.

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
REF = comparisons.reference_fig5()
for window in conditions.WINDOWS:
    for pair, entry in REF["pairs"][window].items():
        cells = [f"{p:6s} {v['layer']:+6.1f}{'*' if v['largest'] else ' '} [{', '.join(f'{x:+.0f}' for x in v['populations'])}]"
                 for p, v in entry["pathways"].items()]
        print(f"{window:4s} {pair:6s}  " + "   ".join(cells))

# %% [markdown]
# **Exercise A1.** Check on the hand-built model that every block's mean |W| is density × strength, at every
# granularity (`hand[g]` has arrays `mean_abs`, `density` and `strength`; strength is NaN in an empty block).
# Replace the `...`.

# %% tags=["exercise"]
# Exercise A1 (solution)
# Hint: np.allclose(a, b) compares two arrays; np.nan_to_num(strength) turns an empty block's NaN into 0.
for g, summary in hand.items():
    # BEGIN SOLUTION
    product_ok = np.allclose(summary.mean_abs, summary.density * np.nan_to_num(summary.strength))
    # END SOLUTION
    print(f"{g:10s} mean|W| == density x strength in every block: {product_ok}")

# %% [markdown]
# ## B. Figure 5 reproduced
#
# ### Load the models
#
# `fig5_inputs` takes the Fig 4 runs when all 12 condition-windows are cached, otherwise (quick mode) trains the small
# stand-ins, otherwise builds synthetic weights from the twin's ground truth. Only sparse (fine-tuned) weights are used.

# %%
inputs = fig5.fig5_inputs(MODE, retrain=RETRAIN)
SOURCE = inputs.source
print(inputs.description)
print("runs per condition-window:", sorted(set(inputs.n_runs().values())))

# %% [markdown]
# ### One condition, three ways
#
# The familiar no-change models (full window) at the layer level, mean over runs. Rows are targets (post), columns
# sources (pre). Within-area blocks follow the connectivity table's densities; only three inter-area blocks exist.

# %%
fn = inputs.summaries[("full", "FN")]["layer"]
for q, factor in (("mean_abs", SCALE), ("density", 1.0), ("strength", SCALE)):
    unit = " (x 1e-4)" if factor != 1 else ""
    print(f"{an.QUANTITY_LABELS[q]}{unit}:")
    print(fn.frame(q).mul(factor).round(3).to_string(), end="\n\n")

# %% [markdown]
# ### All nine pairs, both windows
#
# Each comparison tests every block that holds a connection in at least one run of either condition (21 layer blocks,
# about 120 population blocks), for each quantity separately.

# %%
comps = comparisons.compare_pairs(inputs.summaries, test=TEST, correction=CORRECTION, alpha=ALPHA)
head = comps[HEADLINE]
print(head.describe())
print({f"{g}/{q}": head.family_size(g, q) for g, q in head.blocks if q == "mean_abs"})

# %% [markdown]
# With 5 vs 5 runs the smallest possible two-sided permutation p is 2/252 ≈ 0.008. Benjamini–Hochberg over 21 layer
# blocks can then only reject when several blocks reach that floor together, and over ~120 population blocks almost
# never. This is how many blocks survive in each map (mean |W|):

# %%
counts = pd.DataFrame({w: {pair: int(c.significant("layer").sum()) for (ww, pair), c in comps.items() if ww == w}
                       for w in conditions.WINDOWS})
counts.index.name = "significant layer blocks"
print(counts.T.to_string())
print(f"({head.test_name}, n = {head.n_a} vs {head.n_b} runs per pair; Benjamini-Hochberg FDR over the tested layer "
      f"blocks of each map, {head.family_size('layer', 'mean_abs')} in {HEADLINE[1]} {HEADLINE[0]})")


# %% [markdown]
# ### Layer-level differences, full window
#
# 6×6 maps, B − A of mean |W| (zeros included), each with its own symmetric colour range (as published); grey = no
# connection in either condition; a black dot = significant after FDR correction.

# %%
def panels(window, granularity, quantity="mean_abs"):
    out = {}
    for (w, pair), c in comps.items():
        if w == window:
            out[pair.replace("->", " → ")] = (c.matrix(granularity, quantity), c.significant(granularity, quantity),
                                              ~c.matrix(granularity, quantity, "tested"))
    return out

fig = plot_difference_grid(panels("full", "layer"), head.labels["layer"], scale=SCALE)
fig.suptitle(f"Layers, full window ({SOURCE})", y=1.01)
save_figure(fig, "fig5_layers_full", mode=MODE, folder=FIGURES)

# %% [markdown]
# The same for the half window (the second half of each 15-frame window).

# %%
fig = plot_difference_grid(panels("half", "layer"), head.labels["layer"], scale=SCALE)
fig.suptitle(f"Layers, half window ({SOURCE})", y=1.01)
save_figure(fig, "fig5_layers_half", mode=MODE, folder=FIGURES)

# %% [markdown]
# ### Population-level differences
#
# 18×18 maps, full window. Rows and columns run V1 then LM, layers L2/3, L4, L5, types Pyr, SST, VIP (published order,
# Q11). Small blocks (16 VIP units) are noisy: a few connections more or less change their mean a lot.

# %%
fig = plot_difference_grid(panels("full", "population"), head.labels["population"], scale=SCALE, panel_size=5.0,
                           fontsize=5)
fig.suptitle(f"Populations, full window ({SOURCE})", y=1.005)
save_figure(fig, "fig5_populations_full", mode=MODE, folder=FIGURES)

# %% [markdown]
# Half window:

# %%
fig = plot_difference_grid(panels("half", "population"), head.labels["population"], scale=SCALE, panel_size=5.0,
                           fontsize=5)
fig.suptitle(f"Populations, half window ({SOURCE})", y=1.005)
save_figure(fig, "fig5_populations_half", mode=MODE, folder=FIGURES)

# %% [markdown]
# ### Density or strength?
#
# The reference's quantity is density × strength (Q4). For the headline pair, the layer-level difference of each:
# a change of the block mean can come from more (or fewer) surviving connections, from stronger ones, or both. The
# inter-area masks are redrawn in every run, so their densities differ between runs even without any effect.

# %%
fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
for ax, q, factor in zip(axes, an.QUANTITIES, (SCALE, 1e2, SCALE)):
    unit = "x 1e-4" if factor == SCALE else "x 1e-2"
    plot_difference_map(ax, head.matrix("layer", q), head.labels["layer"], f"{an.QUANTITY_LABELS[q]} ({unit})",
                        significant=head.significant("layer", q), absent=~head.matrix("layer", q, "tested"),
                        scale=factor)
fig.suptitle(f"{HEADLINE[1]} ({HEADLINE[0]} window, {SOURCE}): B - A", y=1.02)
fig.tight_layout()
save_figure(fig, "fig5_density_vs_strength", mode=MODE, folder=FIGURES)

# %% [markdown]
# ### Network diagrams
#
# First the schematic (§6): within-area connections grey, the feedforward pathway V1 L2/3 Pyr → LM L4
# orange, the two feedback pathways LM L5 Pyr → V1 L2/3 and → V1 L5 green; width ∝ density (mean over all conditions
# and runs, full window).

# %%
density = np.mean([inputs.summaries[("full", c)]["layer"].density.mean(0) for c in conditions.BY_ABBREVIATION], axis=0)
fig = plot_pathway_schematic(density, head.labels["layer"])
save_figure(fig, "fig5_schematic", mode=MODE, folder=FIGURES)


# %% [markdown]
# One diagram per pair, full window: edge colour = layer-level Δ (`bwr`, ±max|Δ| of the drawn edges, units 1e-4),
# width = density averaged over both conditions and all runs; significant edges get a black outline.

# %%
def networks(window):
    out = {}
    for (w, pair), c in comps.items():
        if w == window:
            a, b = pair.split("->")
            rho = (c.matrix("layer", "density", "mean_a") + c.matrix("layer", "density", "mean_b")) / 2
            title = f"{conditions.CONDITION_TITLES[a]}-Sparse vs\n{conditions.CONDITION_TITLES[b]}-Sparse"
            out[title] = (c.matrix("layer"), rho, c.significant("layer"))
    return out

fig = plot_network_grid(networks("full"), head.labels["layer"], scale=SCALE)
fig.suptitle(f"Full window ({SOURCE})", y=1.01)
save_figure(fig, "fig5_networks_full", mode=MODE, folder=FIGURES)

# %% [markdown]
# Half window:

# %%
fig = plot_network_grid(networks("half"), head.labels["layer"], scale=SCALE)
fig.suptitle(f"Half window ({SOURCE})", y=1.01)
save_figure(fig, "fig5_networks_half", mode=MODE, folder=FIGURES)

# %% [markdown]
# **Exercise B1. Welch or permutation?** Compare the full-window pairs with `test="welch"`. How many layer blocks are
# significant now? Why can a t-test reach smaller p-values than a 5 vs 5 permutation test, and what does it assume
# instead? Replace the `...`.

# %% tags=["exercise"]
# Exercise B1 (solution)
# Hint: comparisons.compare_pairs(inputs.summaries, windows=("full",), test="welch", correction=CORRECTION, alpha=ALPHA).
# BEGIN SOLUTION
welch = comparisons.compare_pairs(inputs.summaries, windows=("full",), test="welch", correction=CORRECTION, alpha=ALPHA)
# END SOLUTION
for (w, pair), c in welch.items():
    print(f"{pair}: Welch {int(c.significant('layer').sum()):2d} significant layer blocks, "
          f"permutation {int(comps[(w, pair)].significant('layer').sum()):2d}")
# Welch's p comes from the t distribution, so it is continuous and can be tiny with 5 runs; it assumes roughly normal
# run-to-run variation, which 5 runs cannot check. The permutation test assumes only exchangeable runs.

# %% [markdown]
# **Exercise B2. A density-only change.** Take the synthetic twin FN models, delete half of the feedforward
# connections in a copy (`W[:, LM L4 units][:, :, V1 L2/3 units]`), and compare the copy with the original. Which of
# the three quantities flag the FF block? Replace the `...`.

# %% tags=["exercise"]
# Exercise B2 (solution)
# Hint: zero a random half of W[:, post[:, None], pre[None, :]]; comparisons.compare_conditions(base, thinned, ...).
base = fig5.twin_models("FN", n_runs=5)
thinned = fig5.twin_models("FN", n_runs=5)
post = np.flatnonzero(np.char.startswith(thinned.population, "LM_L4_"))
pre = np.flatnonzero(np.char.startswith(thinned.population, "V1_L2/3_"))
rng = np.random.default_rng(0)
# BEGIN SOLUTION
thinned.W[:, post[:, None], pre[None, :]] *= rng.random((5, post.size, pre.size)) < 0.5
c = comparisons.compare_conditions(base, thinned, granularities=("population", "layer"), name_a="FN", name_b="FN thinned")
# END SOLUTION
i, j = c.labels["layer"].index("LM_L4"), c.labels["layer"].index("V1_L2/3")
print(c.describe())
for q in an.QUANTITIES:
    print(f"{q:9s} diff {c.matrix('layer', q)[i, j]:+.2e}  p_adj {c.matrix('layer', q, 'p_adj')[i, j]:.3f}")

# %% [markdown]
# ## C. The inter-area pathways against the reference's

# %% [markdown]
# ### The three inter-area pathways, ours next to the reference's
#
# Per pair and window: our layer-level Δ and population-level Δ into Pyr/SST/VIP (units 1e-4), the raw permutation p,
# `p_holm3` (Holm over the three pathways only: the pre-specified primary family of this figure), Hedges' g, and the
# reference's values. `largest`: the pathway holds the largest |Δ| of its 6×6 map.

# %%
table = comparisons.pathway_table(comps, REF, scale=SCALE)
show = table[["window", "pair", "pathway", "diff", "to_Pyr", "to_SST", "to_VIP", "p", "p_holm3", "hedges_g",
              "largest", "ref_diff", "ref_to_Pyr", "ref_to_SST", "ref_to_VIP", "ref_largest", "same_sign"]]
print(f"source: {SOURCE}; test: {table['test'].iloc[0]}, n = {table['n'].iloc[0]} runs")
print(show.to_string(index=False, float_format=lambda v: f"{v:.3g}"))

# %% [markdown]
# Agreement at a glance: our pathway Δ against the reference's, one point per pair, window and pathway (same-sign points
# lie in the shaded quadrants). Only the signs and rankings are comparable: a different model size or source changes
# the scale.

# %%
fig = plot_pathway_agreement(table)
fig.axes[0].set_title(f"Inter-area pathways, 9 pairs x 2 windows ({SOURCE})")
save_figure(fig, "fig5_pathway_agreement", mode=MODE, folder=FIGURES)

# %% [markdown]
# Summary of the comparison: how often the sign agrees, how often the largest |Δ| of a layer map is an inter-area
# pathway (true in all 18 reference panels), and how many pathway differences survive the Holm correction over three.

# %%
largest = table.groupby(["window", "pair"])["largest"].any()
print(f"same sign as the reference: {int(table['same_sign'].sum())} of {len(table)} pathway differences")
print(f"largest |delta| of the layer map is an inter-area pathway: {int(largest.sum())} of {len(largest)} panels "
      f"(reference: 18 of 18)")
print(f"pathway differences with p_holm3 < {ALPHA}: {int((table['p_holm3'] < ALPHA).sum())} of {len(table)} "
      f"({head.describe_pathways()})")

# %% [markdown]
# ### A pathway change, or the whole matrix?
#
# A pathway's Δ means little if every block of the matrix moved the same way. Relative changes, (B − A) / A of the
# layer-level mean |W|, of the three pathways next to the median over the 18 within-area layer blocks (descriptive, no
# test): where the within-area median is as large as the pathway's change and `within_same_sign` is near 1, the
# condition changed the model's overall weight scale rather than one pathway.

# %%
spec = comparisons.pathway_specificity(comps)
print(spec.round(1).assign(within_same_sign=spec["within_same_sign"].round(2)).to_string(index=False))
print(f"\nglobal shifts (>= 90 % of the within-area blocks move one way, by a median of >= 5 %): "
      f"{int(spec['global_shift'].sum())} of {len(spec)} pairs")

# %% [markdown]
# **Exercise C1.** Per window and per pathway, in what share of the nine pairs does our pathway difference have the
# reference's sign? Replace the `...`.

# %% tags=["exercise"]
# Exercise C1 (solution)
# Hint: table has one row per window, pair and pathway, with a Boolean same_sign column; group and average it.
# BEGIN SOLUTION
agreement = table.groupby(["window", "pathway"])["same_sign"].mean().unstack()
# END SOLUTION
print(agreement.round(2).to_string())

# %% [markdown]
# ## D. Does the fit recover what was planted?

# %% [markdown]
# ### Beyond what the null twin shows?
#
# Both twins are fitted with the **recommended** variant (its ablation: 06b_fig4_appendix, section F), half window,
# one model per condition (the paper's separate estimator). Every run redraws its experiments from the condition's one dataset (a
# hierarchical bootstrap) and starts from a new initialisation, so the runs are bootstrap replicates of one fit, not
# new data: the **unit of replication is the experiment resample**. Per pair and inter-area pathway: the planted
# change (log ratio of the true pathway strengths), the fitted change (log ratio of the fitted strengths, mean |w|
# over kept entries, mean over runs), and a two-sided **bootstrap z-test**: SE = sqrt(sd_A² + sd_B²) with sd the SD
# over a condition's resamples, not divided by sqrt(runs), because the SD of bootstrap replicates is already the
# standard error of one fit (n = resamples of A and of B; with 5 each the SE is itself noisy).
# **Benjamini-Yekutieli** over the 27 pair × pathway tests of each twin (they share conditions, so they are
# correlated), alpha 0.05. *Recovered*: significant with the planted sign; *wrong sign*: significant with the
# opposite sign. *Flagged*: significant where nothing was planted (planted twin) or anywhere on the null twin. Beyond
# the null twin, the interaction is paired by seed (seed k draws the same resample and initialisation on both twins).
# `python -m biornn compare recovery` writes the same report as JSON from the cache. In paper mode the report covers
# the pairs whose two conditions are cached on both twins (the paper-size queue fills them pair by pair; the
# correction then runs over the tested rows only, and `pairs_tested` lists them); quick mode trains all 12
# conditions at quick sizes.

# %%
try:
    REPORT, TWIN_RUNS = recovery.twin_recovery(MODE)
except BiornnError as exc:  # paper mode before both twins' runs are cached
    print(f"paper-size runs not cached yet ({exc}); the quick check instead")
    REPORT, TWIN_RUNS = recovery.twin_recovery("quick")
print(recovery.describe(REPORT))
print(f"pairs tested: {', '.join(REPORT['pairs_tested'])}; runs per condition: {REPORT['n_runs']['planted']}")

# %% [markdown]
# Every pair and pathway: the planted delta, the fitted deltas of both twins, n, adjusted p and the outcome.

# %%
print(recovery.recovery_table(REPORT).to_string(index=False, float_format=lambda v: f"{v:.3g}"))

# %% [markdown]
# Fitted against planted change, with the null twin's fitted changes as a grey band: a fitted change inside the band
# is no larger than what the stimulus drives and the data produce when nothing was planted.

# %%
fig = plot_recovery(REPORT)
save_figure(fig, "fig5_recovery", mode=MODE, folder=FIGURES)

# %% [markdown]
# Do the fits learn the block strengths at all? Spearman's rho of fitted block strength with the true |W| over the
# nonzero blocks, per condition (median over runs), beside the structure-only prediction (density × type strength),
# and how well each condition's fits predict held-out trials (median over runs of the median r over populations).

# %%
for twin in ("planted", "null"):
    ident = REPORT["identifiability"][twin]
    print(twin, {c: f"{np.median(v['rho']):.2f} (structure {v['baseline']:.2f})" for c, v in ident.items()})
    print("  held-out r:", {c: round(v, 2) for c, v in REPORT["heldout_median_r"][twin].items()})

# %% [markdown]
# The SE does not shrink with more runs of the same data: more resamples estimate it better, they do not make it
# smaller. The resample SD of each pathway's log strength (pooled over conditions and twins; descriptive) sets the
# SE of a pair difference at about sd × √2:

# %%
sd = REPORT["statistics"]["resample_sd"]
print({p: round(sd[p], 3) for p in ("FF", "FB_L23", "FB_L5")}, "->", "SE of a pair delta about",
      {p: round(sd[p] * np.sqrt(2), 2) for p in ("FF", "FB_L23", "FB_L5")})

# %% [markdown]
# ### Why the fits miss the planted changes, and what it would take
#
# Each population's trace comes from its own experiments (cell types are recorded in different mouse lines), and each
# bootstrap sample draws every population's rows independently. So within a sample the populations do not
# co-fluctuate: the only place a coupling between populations can show is the condition's **mean course**. Measured
# on the planted twin's FC dataset (half window): the correlation of two populations' sample deviations at the same
# frame, over all population pairs, beside a population's own one-frame correlation.

# %%
QUICK_TWIN, _ = cached_datasets("twin", mode="quick", twin="planted", progress=False, retrain=RETRAIN)
indep = sample_independence(QUICK_TWIN["familiar_change"])
print(f"cross-population correlation of sample deviations: mean {indep['mean']:+.3f}, max |r| "
      f"{indep['max_abs']:.3f} (n = {indep['n_samples']} samples; SE of r about {indep['n_samples'] ** -0.5:.3f}); "
      f"a population with itself one frame later: {indep['own_lag1']:.2f}")

# %% [markdown]
# A model with a free per-frame drive can fit the mean course without changing any coupling. The cached sweep
# (`python -m biornn scaling`, about 15 min on 2 cores; read here in both modes) tests this with a **linear control**:
# a masked one-step linear fit on the same per-run resamples (5 runs, 2000 samples) with three drive terms — one
# intercept per frame, the stimulus codes the recommended RNN also gets, or a constant. Same report; its counts were
# taken with the earlier Welch test over runs (SE divided by sqrt(runs)), so they overstate significance.

# %%
SWEEP = recovery.load_report("recovery-scaling-quick")
LINEAR, SCALING = linear_table(SWEEP), scaling_table(SWEEP)
cols = ["drive", "planted_recovered", "planted_total", "unplanted_flagged", "null_flagged", "null_total", "slope", "rho"]
print(LINEAR[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}"))

# %% [markdown]
# The RNN (quick sizes, 3 runs per condition) against training budget, data size (samples per run; quick or
# paper-length twin recordings) and drive (`none`: stimulus inputs and learned initial state switched off).

# %%
cols = ["drive", "epochs", "n_train", "recordings", "planted_recovered", "null_flagged", "slope", "rho", "heldout_r"]
print(SCALING[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}"))

# %% [markdown]
# Both side by side: the slope of the calibrated change on the planted change (1 = the fit moves by the planted
# amount beyond the null twin), with recovered / planted and null flags over each bar.

# %%
fig = plot_scaling(SCALING, LINEAR)
save_figure(fig, "fig5_recovery_scaling", mode=MODE, folder=FIGURES)

# %% [markdown]
# How to read them: the slope and the counts are the measurement; differences between RNN points are not tested
# (3 runs per condition, one sweep per point). The linear control with a per-frame intercept sees almost nothing,
# as the independence above predicts; without it, it sees part of the planted changes and flags null-twin
# differences too, because drive differences between conditions then land in the coupling.
#
# **What it would take.** What the measurements say, and what they only suggest:
#
# * More epochs or data (quick sizes, the table): the slope reaches about 0.2 with 2-4x the epochs or twice the
#   samples, against about 0 at the base point, and no point recovers a planted change after BH. Differences between
#   points are not tested.
# * More runs of the same data would not lower the SE (each is a resample of one dataset). At paper size (the
#   committed report, printed below in both modes) some planted changes come out within the planted twin, but none
#   is significant beyond the null twin, so these fits do not show planted changes beyond what the null twin shows.
# * Suggested by the linear control, not tested with the RNN: a fit whose drive cannot make the mean course on its
#   own (the drive known rather than learned per condition), or recordings whose populations co-fluctuate within a
#   trial.

# %%
best = SCALING.loc[SCALING["slope"].idxmax()]
lin = LINEAR.set_index("drive")
print(f"RNN slope range {SCALING['slope'].min():.2f} to {SCALING['slope'].max():.2f} (best: {best['drive']} drive, "
      f"{best['epochs']} epochs, n = {best['n_train']}, {best['recordings']} recordings); linear control slope: "
      + ", ".join(f"{d} {v:.2f} (null flagged {lin.at[d, 'null_flagged']})" for d, v in lin["slope"].items()))

# %%
PAPER = recovery.load_report("recovery-recommended-half")
print(f"paper size (recovery-recommended-half.json, {len(PAPER['pairs_tested'])} pairs): "
      f"slope {PAPER['calibrated_vs_planted']['slope']:.2f} (descriptive)")
print(recovery.describe(PAPER))

# %% [markdown]
# **Exercise D1. Power.** On synthetic twin weights, how many runs per condition does FN→FC need until its FF layer
# block survives FDR over all tested layer blocks? Try 3, 5 and 8 runs. Replace the `...`.

# %% tags=["exercise"]
# Exercise D1 (solution)
# Hint: fig5.twin_models(condition, n_runs=n) for FN and FC, then comparisons.compare_conditions(a, b, granularities=("layer",), ...).
for n in (3, 5, 8):
    # BEGIN SOLUTION
    a, b = fig5.twin_models("FN", n_runs=n), fig5.twin_models("FC", n_runs=n)
    c = comparisons.compare_conditions(a, b, granularities=("layer",), quantities=("mean_abs",))
    # END SOLUTION
    i, j = c.labels["layer"].index("LM_L4"), c.labels["layer"].index("V1_L2/3")
    print(f"{n} runs each: FF p = {c.matrix('layer', 'mean_abs', 'p')[i, j]:.4f}, "
          f"FDR-adjusted over {c.family_size('layer', 'mean_abs')} layer blocks "
          f"{c.matrix('layer', 'mean_abs', 'p_adj')[i, j]:.4f} ({c.test_name}, n = {n} vs {n} runs)")

# %% [markdown]
# ## E. The predictive-coding reading, and the corrected variant
#
# ### What agrees with the predictive-coding reading, and what does not
#
# The paper states that the inferred interactions "corroborate experimental findings in agreement with the theory of
# predictive coding, across both long and short timescales". The reading in docs/paper/fig4-5-celltype-rnn.md of the reference's numbers (section 8,
# an interpretation, not the paper's text) is: in the full window, familiar change vs no-change strengthens the
# **feedforward** pathway most (FN→FC FF +13.9 × 1e-4), omission vs no-change strengthens **feedback to V1 L5** most
# (FN→FO +19.8), and omission vs change raises FB → L5 (+11.8) while FF falls (−2.0): bottom-up drive when the input
# changes unexpectedly, top-down drive when an expected image is omitted. Novel vs familiar raises FF in all three trial
# types in the full window (+5.0, +4.8, +7.6), and in the half window omission raises both feedback pathways against
# either other trial type, in familiar and novel sessions.
#
# What does not fit, or is not established:
#
# * **Exceptions in the reference itself.** Novel NC→NO lowers FB → L2/3 (−5.7, the largest entry of its map) instead
#   of raising feedback; FO→NO lowers FB → L5 (−8.3); the half-window FN→FC map is small and its largest entry is a
#   *decrease* of FB → L2/3 (−3.5); novel vs familiar FF is only +0.4 for omission in the half window.
# * **No statistics.** The reference's test compares a sample with itself (Q3). Its Δ are about 1e-3 on block means of
#   about 1e-2, from 5 unseeded runs per condition. With 5 vs 5 runs, a permutation test cannot go below p = 0.008, so
#   after any correction over many blocks little can be declared; the counts above show how much survives here.
# * **Density and strength are mixed** (Q4). The inter-area masks are drawn anew in each run (Bernoulli 0.3), so part of
#   a pathway's Δ is mask noise; the density-vs-strength panel separates the two.
# * **Dense input weights** (Q1, as published): every unit receives all 18 recorded populations, so signals can reach
#   the other area without W_rec, and a change of an inter-area W_rec block need not be how the model carries
#   information between areas.
# * **Functional, not anatomical.** The weights are the best one-step predictor of bootstrapped population means on the
#   training data (Q5). Conditions differ in their input statistics (novel images drive more activity), which alone can
#   change the fitted weights; the twin check above shows how well planted coupling changes, and only those, are
#   recovered.
#
# So the headline familiar contrasts are consistent with a predictive-coding account, but the evidence is descriptive,
# has exceptions across windows and experience levels, and carries no uncertainty in the reference. The next cell puts
# the same readings side by side for the models loaded here.

# %%
READINGS = recovery.reference_readings()  # data/reference/fig5_readings.csv
rows = table.set_index(["window", "pair", "pathway"])
reading = pd.DataFrame([{"window": w, "pair": p, "pathway": k, "expected": "+" if s > 0 else "-",
                         "reference": rows.loc[(w, p, k), "ref_diff"], "ours": rows.loc[(w, p, k), "diff"],
                         "p_holm3": rows.loc[(w, p, k), "p_holm3"],
                         "ours agrees": np.sign(rows.loc[(w, p, k), "diff"]) == s}
                        for w, p, k, s in READINGS[["window", "pair", "pathway", "expected"]].itertuples(index=False)])
print(f"source: {SOURCE}; p_holm3: {head.describe_pathways()}")
print(reading.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
print(f"\nours agree with the reading in {int(reading['ours agrees'].sum())} of {len(reading)} cases")

# %% [markdown]
# **Exercise E1.** In which readings does *our* pathway difference have the other sign than the reading expects,
# and does any of those disagreements survive the Holm correction over the three pathways (`p_holm3 < ALPHA`)?
# Replace the `...`.

# %% tags=["exercise"]
# Exercise E1 (solution)
# Hint: reading has a Boolean column "ours agrees" and a column p_holm3; ~ negates a Boolean column.
# BEGIN SOLUTION
disagree = reading[~reading["ours agrees"].astype(bool)]
significant = disagree[disagree["p_holm3"] < ALPHA]
# END SOLUTION
print(f"{len(disagree)} of {len(reading)} readings have the other sign in our fits; {len(significant)} of them "
      f"with p_holm3 < {ALPHA}:")
print(disagree[["window", "pair", "pathway", "expected", "ours", "p_holm3"]].to_string(index=False))

# %% [markdown]
# ### The corrected variant (when cached)
#
# biornn's corrected model fixes the as-published quirks: the input mask is applied (each input reaches only its own
# population, so signals between areas must pass through W_rec), pruning budgets are exact, and the sparse checkpoint
# rule compares like with like. For every window where all six corrected conditions are cached, the pathway
# differences of both variants side by side, and on the twin how many planted changes each variant recovers.

# %%
corrected_runs = ct.find_fig4_runs(variant="corrected")
corr_windows = tuple(w for w in conditions.WINDOWS if all((w, c) in corrected_runs for c in conditions.BY_ABBREVIATION))
if SOURCE == "cache" and corr_windows:
    corr = fig5.fig5_inputs(MODE, source="cache", variant="corrected", windows=corr_windows, retrain=RETRAIN)
    corr_comps = comparisons.compare_pairs(corr.summaries, windows=corr_windows, test=TEST, correction=CORRECTION,
                                  alpha=ALPHA)
    both = comparisons.merge_pathway_tables({"published": table, "corrected": comparisons.pathway_table(corr_comps, REF, scale=SCALE)})
    print(f"windows with all six corrected conditions cached: {', '.join(corr_windows)}; p_holm3: "
          f"{next(iter(corr_comps.values())).describe_pathways()}")
    print(both.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    agree = int((np.sign(both["diff_published"]) == np.sign(both["diff_corrected"])).sum())
    print(f"\nsame sign in both variants: {agree} of {len(both)}; same sign as the reference: published "
          f"{int(both['same_sign_published'].sum())}, corrected {int(both['same_sign_corrected'].sum())}")
    print(f"corrected: global shifts in {int(comparisons.pathway_specificity(corr_comps)['global_shift'].sum())} of "
          f"{len(corr_comps)} pairs")
    if inputs.ground_truth is not None and corr.ground_truth is not None:
        for name, cs, truth in (("as published", {k: v for k, v in comps.items() if k[0] in corr_windows},
                                 inputs.ground_truth), ("corrected", corr_comps, corr.ground_truth)):
            n = fig5.planted_counts(fig5.planted_table(cs, truth, scale=SCALE))
            print(f"{name:12s}: planted changes recovered {n['recovered']} of {n['planted']} (FF {n['recovered_ff']}, "
                  f"feedback {n['recovered_fb']}); unplanted flagged {n['false_positive']} of {n['unplanted']}")
else:
    print("(corrected-variant Fig 4 runs not cached for any whole window; compute them with python -m biornn "
          "celltype train/summarize without --published)")

# %% [markdown]
# ## Summary
#
# * Block means of |W| with zeros (the reference's quantity) are density × strength; report both factors.
# * A difference needs a test over runs, and the test is only about what varies between runs: with one dataset per
#   condition that is optimisation, not data. With 5 vs 5 runs an exact permutation test bottoms out at p = 0.008.
# * The reference's pathway numbers fit a predictive-coding reading for the headline familiar contrasts, with
#   exceptions; the comparison table shows how much the models loaded here reproduce.
# * The planted/null twins answer whether a fitted difference is real; bootstrapped populations do not co-fluctuate,
#   so coupling shows only in the mean course, which a per-frame drive can absorb. The numbers, computed above:

# %%
print(recovery.describe(REPORT))
print(f"cached sweep: RNN slope {SCALING['slope'].min():.2f} to {SCALING['slope'].max():.2f} over {len(SCALING)} "
      f"budget / data / drive points; linear control slope {LINEAR['slope'].min():.2f} to {LINEAR['slope'].max():.2f}")
print(f"reproduction panels from: {SOURCE}; pathway differences with p_holm3 < {ALPHA}: "
      f"{int((table['p_holm3'] < ALPHA).sum())} of {len(table)}")
