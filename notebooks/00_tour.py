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
# # A ten-minute tour: Dale's backprop and top-prob pruning on one small network
#
# Balwani, Wang, Najafi & Choi, *Constructing biologically constrained RNNs via Dale's backpropagation and
# topologically-informed pruning*, Science Advances (2025), has two ideas. This tour shows both on one small network,
# one idea per cell, and then the place where they meet, the paper's cell-type RNN.
#
# **Paper figures, in miniature:** Figure 2 (Dale's backprop keeps every neuron's sign; conventional backprop does
# not), Figure 3 (top-prob vs random pruning at one connection density) and the connectivity mask of the Figure 4
# cell-type RNN. This is what the tour draws (`figures/tour_dales_law.png`, written by the first plot below):
#
# ![Dale's law during training: wrong-sign synapses, test error, excitatory weights](../figures/tour_dales_law.png)
#
# The three steps:
#
# 1. **Dale's backpropagation.** A neuron is excitatory or inhibitory: all its outgoing weights share one sign.
#    Conventional backprop ignores that; Dale's backprop projects the weights back onto the allowed signs after every
#    optimiser step. We train the same E/I network both ways on the flip-flop task and watch the signs.
# 2. **Top-prob pruning.** Remove most synapses at random, or keep each one with a probability that grows with its
#    weight. We prune the trained Dale's network both ways at one density and compare the errors.
# 3. **A cell-type connectivity mask** from the published table of connection probabilities between layers and cell
#    types (V1 and LM, Pyr/SST/VIP), drawn by top-prob pruning one block at a time.
#
# **Learning objectives**
# 1. State Dale's law as one sign per presynaptic neuron (a column of `W[post, pre]`) and count its violations.
# 2. See that projecting after every optimiser step (Dale's backprop) keeps the signs and still learns flip-flop.
# 3. Explain top-prob pruning's keep probability `min(1, κ|w| + Δ)` and compare it with random pruning.
# 4. Draw a cell-type connectivity mask block by block from a table of connection probabilities.
#
# **Runtimes** (2 CPU cores, from the README's [runtime table](../README.md#notebooks-and-runtimes)): quick mode
# (default, `BIORNN_MODE=quick`, used by CI) ~1 min; paper mode (`BIORNN_MODE=paper`: the paper's flip-flop data
# sizes and 5 seeds, 40 of its 100 epochs, 10 mask draws) ~7 min (trains its own networks). Nothing is read from the
# results cache. Each of the three sections ends with an exercise.
#
# **For depth**, each step links to its figure notebook:
# [01_fig2_dales_backprop](01_fig2_dales_backprop.ipynb) (Fig 2),
# [02_fig3_topprob_pruning](02_fig3_topprob_pruning.ipynb) (Fig 3),
# [03_allen_selection](03_allen_selection.ipynb), [04_allen_trial_windows](04_allen_trial_windows.ipynb) and
# [05_allen_bootstrap_datasets](05_allen_bootstrap_datasets.ipynb) (the Allen data),
# [06_fig4_celltype_rnn](06_fig4_celltype_rnn.ipynb) (Fig 4) and
# [07_fig5_condition_comparisons](07_fig5_condition_comparisons.ipynb) (Fig 5).

# %%
import numpy as np
import torch

from biornn import pruning
from biornn.core.config import figures_dir, start, want_retrain
from biornn.experiments import fig3
from biornn.nn.constraints import sign_violations
from biornn.nn.train import CHANCE, fig2_config, train
from biornn.plotting import plot_celltype_mask, plot_tour_dales_law, plot_tour_pruning, save_figure

# %% [markdown]
# The mode (`BIORNN_MODE`, quick by default) picks the data sizes and the number of seeds.

# %%
MODE = start()  # the mode, read once (BIORNN_MODE); also tunes the allocator for large CPU tensors
RETRAIN = want_retrain()  # BIORNN_RETRAIN, read once here and passed down
FIGURES = figures_dir()  # where save_figure writes: BIORNN_FIGURES or figures/, read once here
# One small network: the paper's flip-flop E/I RNN (N = 128, 80 % excitatory, Adam lr 1e-3), trained for fewer
# epochs than the paper's 100 so that the tour stays short.
TOUR_SIZES = {
    "quick": dict(seeds=(0, 1, 2), epochs=40, n_train=1000, n_test=200, batch_size=100),
    "paper": dict(seeds=(0, 1, 2, 3, 4), epochs=40, n_train=6000, n_test=1000, batch_size=200),
}
SIZES = TOUR_SIZES[MODE]
print("mode:", MODE, SIZES)

# %% [markdown]
# ## 1. Dale's law is a sign per column
#
# The recurrent matrix is `W[post, pre]`: column `j` holds neuron `j`'s outgoing weights. Dale's law says every entry
# of column `j` has the sign `s_j` of neuron `j` (+1 excitatory, −1 inhibitory). Dale's backprop takes a normal Adam
# step and then projects: `W_ij ← s_j max(s_j W_ij, 0)`, i.e. wrong-sign weights become 0.
#
# We train the flip-flop task (three input channels with random ±1 pulses; each output must hold the sign of its
# channel's last pulse) with conventional and with Dale's backprop, from the *same* initial weights and data per seed,
# and count the wrong-sign synapses after every optimiser step.

# %%
runs, wrong_sign = {}, {}
for method in ("conventional", "dales"):
    fractions = []

    def watch(model, step, fractions=fractions):
        W = model.effective_w_hh()  # (seeds, N, N)
        fractions.append(sign_violations(W, model.signs) / W.numel())

    runs[method] = train(fig2_config("flipflop", method, MODE, **SIZES), on_step=watch, progress=False)
    wrong_sign[method] = np.array(fractions)
    final = runs[method].curve("test_loss")[:, -1]
    print(f"{method:12s} trained in {runs[method].wall_seconds:5.1f} s; final test MSE per seed {np.round(final, 3)}")

# %% [markdown]
# Left: the share of synapses with the wrong sign. Middle: test error (chance = always answering 0). Right: the final
# weights leaving *excitatory* neurons; everything left of 0 breaks Dale's law.

# %%
fig = plot_tour_dales_law(runs, wrong_sign, CHANCE["flipflop"])
save_figure(fig, "tour_dales_law", mode=MODE, folder=FIGURES);

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
final = {m: sign_violations(np.asarray(r.weights["W_final"]), r.weights["signs"]) for m, r in runs.items()}
print("conventional breaks Dale's law:", final["conventional"] > 0)
print("Dale's backprop keeps Dale's law at every step:", final["dales"] == 0 and wrong_sign["dales"].max() == 0)
print("Dale's backprop learns (mean test MSE below chance):",
      runs["dales"].curve("test_loss")[:, -1].mean() < CHANCE["flipflop"])

# %% [markdown]
# **Exercise 1. Who breaks the law?** Split the wrong-sign synapses of the final *conventional* networks by the
# presynaptic cell type. Do excitatory or inhibitory neurons break Dale's law more often (as a share of their
# synapses)? Replace the `...`.

# %% tags=["exercise"]
# Exercise 1 (solution)
# Hint: W_final is (seeds, N, N) with one column per presynaptic neuron; a synapse breaks the law when W * signs < 0.
W_conv = np.asarray(runs["conventional"].weights["W_final"])
s = np.asarray(runs["conventional"].weights["signs"])
for name, columns in (("excitatory", s > 0), ("inhibitory", s < 0)):
    # BEGIN SOLUTION
    wrong = (W_conv * s) < 0
    share = wrong[:, :, columns].mean()
    # END SOLUTION
    print(f"{name} neurons: {share:.1%} of their outgoing synapses have the wrong sign")

# %% [markdown]
# Depth: [01_fig2_dales_backprop](01_fig2_dales_backprop.ipynb) trains all three of the paper's tasks with the
# paper's sizes, adds a rectified-backprop baseline (and the reference's bug in it), and compares the weight
# distributions each rule produces.
#
# ## 2. Top-prob pruning vs random pruning
#
# Pruning keeps a fraction `p` of the synapses (`p` = connection density). **Random** pruning keeps every synapse
# with the same probability. **Top-prob** keeps synapse `ij` with probability `P_ij = min(1, κ|w_ij| + Δ)`, where `κ`
# and `Δ` are set so that both keep the same expected number of synapses: strong synapses are (almost) always kept,
# weak ones sometimes, so the network keeps its backbone but stays random. Pruning only sets weights to 0, so Dale's
# law survives. We prune each trained Dale's network several times at one density, without retraining, and measure
# its test error.

# %%
DENSITY = 0.2  # keep 20 % of the synapses
DRAWS = 3 if MODE == "quick" else 10  # mask draws per network and method
dales = runs["dales"]
sweep = fig3.sweep_errors(dales, [DENSITY], draws=DRAWS, progress=False)
print(f"p = {DENSITY}: test MSE per seed (mean over {DRAWS} mask draws)")
print("  dense   ", np.round(sweep.dense_loss, 3))
for method in ("random", "topprob"):
    print(f"  {method:8s}", np.round(sweep.errors(method)[:, 0], 3))

# %% [markdown]
# The keep probability of every synapse of one network (seed 0) under each rule:

# %%
W = torch.as_tensor(np.asarray(dales.weights["W_final"]))  # (seeds, N, N)
keep_probability = {"random": pruning.random_probabilities(W[0], DENSITY).numpy(),
                    "topprob": pruning.topprob_probabilities(W[0], DENSITY).numpy()}

# %% [markdown]
# Left: keep probability against |w|: random is flat, top-prob rises with the weight. Right: each network's test error
# after pruning (mean over the mask draws) beside its error before pruning.

# %%
errors = {method: sweep.errors(method)[:, 0] for method in keep_probability}
fig = plot_tour_pruning(W[0].abs().numpy(), keep_probability, errors, sweep.dense_loss, DENSITY, CHANCE["flipflop"])
save_figure(fig, "tour_pruning", mode=MODE, folder=FIGURES);

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
W_pruned, mask, achieved = pruning.prune(W, "topprob", DENSITY, list(dales.config.seeds))
print("pruned networks keep Dale's law:", sign_violations(W_pruned, dales.weights["signs"]) == 0)
print(f"about {DENSITY:.0%} of the synapses kept:", abs(float(achieved.mean()) - DENSITY) < 0.02)
print(f"top-prob beats random at p = {DENSITY} (mean test MSE):",
      sweep.errors("topprob").mean() < sweep.errors("random").mean())

# %% [markdown]
# **Exercise 2. One density is one point.** Compare top-prob and random pruning of the Dale's networks at p = 0.05,
# 0.1 and 0.4 (one mask draw each). Where is the gap largest? Replace the `...`.

# %% tags=["exercise"]
# Exercise 2 (solution)
# Hint: fig3.sweep_errors(dales, levels, draws=1, progress=False).errors(method) is a (seeds, levels) array.
levels = [0.05, 0.1, 0.4]
# BEGIN SOLUTION
sw = fig3.sweep_errors(dales, levels, draws=1, progress=False)
# END SOLUTION
for j, p in enumerate(levels):
    r, t = sw.errors("random")[:, j].mean(), sw.errors("topprob")[:, j].mean()
    print(f"p = {p:4.2f}: random {r:.3f}, top-prob {t:.3f}, difference {r - t:+.3f}")

# %% [markdown]
# Removing 80 % of the synapses without retraining hurts every network; top-prob, which keeps the strong synapses,
# hurts less on average (not necessarily for every network and every draw). The paper then retrains each pruned
# network with its mask fixed (masked retraining) to recover performance.
#
# Depth: [02_fig3_topprob_pruning](02_fig3_topprob_pruning.ipynb) sweeps the whole density range on all three tasks,
# retrains the pruned networks with their masks, relates top-prob to maximum spanning trees, and tests the
# differences honestly (paired tests, multiple-comparison correction).
#
# ## 3. Where the two meet: a cell-type connectivity mask
#
# The paper's cell-type RNN has 18 populations: 2 areas (V1, LM) × 3 layers (L4, L2/3, L5) × 3 cell types (Pyr
# excitatory; SST and VIP inhibitory). Within each area, the published table gives the connection probability of every
# (pre type and layer → post type and layer) pair; between areas only three pathways exist (V1 L2/3 Pyr → LM L4,
# LM L5 Pyr → V1 L2/3 and V1 L5, each 0.3). The paper trains the network with Dale's backprop, then prunes each
# within-area block with top-prob to the table's density; the inter-area blocks get a random (Bernoulli 0.3) mask.
# Here we do that on a small stand-in (12 : 2 : 1 Pyr : SST : VIP as in the paper, N = 180) with random Dale's
# weights.

# %%
from biornn.nn.connectivity import POPULATION_LABELS, block_density, expand_blocks, population_index, unit_signs

density = block_density()  # (18, 18), [post, pre]
within = block_density(include_inter=False)
inter = block_density(include_within=False)
sizes = {"Pyr": 24, "SST": 4, "VIP": 2}
pop, signs = population_index(sizes), unit_signs(sizes)

# %% [markdown]
# Random Dale's weights stand in for a trained network; within-area blocks are pruned with top-prob, the inter-area
# pathways at random.

# %%
rng = np.random.default_rng(0)
W_dense = np.abs(rng.standard_normal((len(signs), len(signs)))) * signs  # stand-in for trained Dale's weights
keep_within, _ = pruning.blockwise_mask(W_dense, within, pop, "topprob", seed=0)
keep_inter, _ = pruning.blockwise_mask(W_dense, inter, pop, "random", seed=0)
mask = (keep_within | keep_inter).numpy()
print(f"N = {len(signs)} units, {mask.sum()} synapses kept ({mask.mean():.1%} of all pairs)")

# %% [markdown]
# Left: the table of connection probabilities between the 18 populations. Right: the unit-level mask drawn from it
# (grey lines separate the populations); blue columns are excitatory units, red ones inhibitory.

# %%
fig = plot_celltype_mask(density, mask, signs, pop, POPULATION_LABELS)
save_figure(fig, "tour_celltype_mask", mode=MODE, folder=FIGURES);

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
print("populations:", len(POPULATION_LABELS), "| blocks that may connect:", int((density > 0).sum()), "of", density.size)
print("inter-area pathway blocks:", int((inter > 0).sum()))
print("no synapse where the table says 0:", not (mask & (expand_blocks(density, sizes) == 0)).any())
print("every synapse obeys Dale's law:", sign_violations(np.where(mask, W_dense, 0.0), signs) == 0)

# %% [markdown]
# **Exercise 3. How sparse is the paper's cell-type network?** With the paper's sizes (192 Pyr, 32 SST, 16 VIP per
# layer and area, N = 1440), compute the expected overall connection density and the expected number of synapses.
# Replace the `...`.

# %% tags=["exercise"]
# Exercise 3 (solution)
# Hint: expand_blocks(block_density()) gives every pair of units its connection probability (default sizes, N = 1440).
# BEGIN SOLUTION
P_units = expand_blocks(block_density())
# END SOLUTION
print(f"N = {P_units.shape[0]}: expected density {P_units.mean():.3f}, expected synapses {P_units.sum():,.0f}")

# %% [markdown]
# ## Summary
#
# The numbers of this run (quick and paper mode give different values; each is computed above):

# %%
wrong_final = {m: 100 * float(v[-1]) for m, v in wrong_sign.items()}
mse = {m: float(r.curve("test_loss")[:, -1].mean()) for m, r in runs.items()}
print(f"wrong-sign synapses after training: conventional {wrong_final['conventional']:.1f} %, "
      f"Dale's {wrong_final['dales']:.1f} % (max over all steps {100 * wrong_sign['dales'].max():.1f} %)")
print(f"final test MSE (mean over {len(dales.config.seeds)} seeds): conventional {mse['conventional']:.4f}, "
      f"Dale's {mse['dales']:.4f}, chance {CHANCE['flipflop']:.4f}")
print(f"pruned to p = {DENSITY} without retraining: random {errors['random'].mean():.4f}, "
      f"top-prob {errors['topprob'].mean():.4f}, dense {np.mean(sweep.dense_loss):.4f} (mean over seeds)")
print(f"cell-type mask: {len(POPULATION_LABELS)} populations, {int((density > 0).sum())} of {density.size} blocks "
      f"may connect, {mask.mean():.1%} of the {mask.size:,} unit pairs connected")

# %% [markdown]
# * Conventional backprop flips the signs of a share of the synapses; Dale's backprop keeps them all, at every step,
#   and still learns the task (its test error is below chance).
# * At the same density, top-prob pruning keeps the strong synapses and on average hurts less than random pruning.
# * The cell-type mask connects only the blocks the table allows, and pruning never changes a sign.
#
# Depth: the Allen Visual Behavior data the cell-type RNN is trained on are selected in
# [03_allen_selection](03_allen_selection.ipynb), cut into trial windows in
# [04_allen_trial_windows](04_allen_trial_windows.ipynb) and resampled into training sets in
# [05_allen_bootstrap_datasets](05_allen_bootstrap_datasets.ipynb); the network itself is trained, pruned and read out
# in [06_fig4_celltype_rnn](06_fig4_celltype_rnn.ipynb), and its learned connectivity compared across stimulus
# conditions in [07_fig5_condition_comparisons](07_fig5_condition_comparisons.ipynb).
