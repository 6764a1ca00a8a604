"""Write the per-figure results pages ``docs/results/fig{2,3,4,5}.md`` from the committed cache.

Every number on those pages is computed here, in seconds, from what the repository holds: the paper-mode runs in
``data/results/`` (Figs 2-4; Fig 5 compares the Fig 4 runs) and the reference implementation's numbers in
``data/reference/``. Nothing is trained: a run missing from the cache is an error that names the command that
computes it. Statements that no function recomputes from the cache (diagnostic runs that were not cached, device
comparisons) are kept on the pages as text marked "measured in an earlier session, not recomputed here".

Usage (from the repository root)::

    python docs/make_results.py              # rewrite docs/results/*.md
    python docs/make_results.py --out DIR    # write the pages to DIR instead (tests/test_docs.py compares them)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from results_common import HEADER, METHOD_NAMES, PAPER, ROOT, TASK_NAMES, f, g, p_, rng, table
from results_fig5 import fig5_page

from biornn import celltype
from biornn.core import conditions, store
from biornn.core.errors import BiornnError
from biornn.experiments import fig2
from biornn.experiments import fig3 as f3
from biornn.experiments.fig3 import wave_candidates as wc
from biornn.experiments.fig3 import wave_lead as wl
from biornn.nn import runs as run_cache
from biornn.stats.significance import pruning_comparison, reference_aggregation


def _no_training(*_args, **_kwargs):
    raise BiornnError("docs/make_results.py reads the committed cache only, and a run is missing from it; compute it "
                      "with the figure's reproduce command (python -m biornn --help) and commit the result")


def _guard() -> None:
    """Make every training entry point raise: the pages must come from the cache alone."""
    import biornn.nn.train

    biornn.nn.train.train = _no_training
    fig2.train = run_cache.train = run_cache.train_mixed = _no_training  # fig2 and the run cache hold their own names
    celltype.train_celltype = _no_training
    for name in ("sweep_errors", "retrain_pruned"):
        if hasattr(f3, name):
            setattr(f3, name, _no_training)


# -- Figure 2 ----------------------------------------------------------------------------------------------------
def fig2_page() -> str:
    runs = fig2.fig2_runs(tasks=("flipflop", "wave", "digits"), mode="paper", retrain=False)
    tab = fig2.fig2_table(runs)
    ref = store.reference("fig2")
    lines = [HEADER, "# Figure 2 results: Dale's backprop against conventional and rectified backprop\n",
             f"Facts about the paper and the reference implementation: `{PAPER}/fig2-dales-backprop.md`. Notebook: "
             "`notebooks/01_fig2_dales_backprop.ipynb`.\n",
             "Setting: paper mode, the committed cache `data/results/fig2/`. Unit of replication: the seed (one "
             "trained network); 5 seeds per (task, rule), every rule of a seed trained on the same data from the "
             "same initial weights (paired). Statistic: the final epoch's per-element held-out test MSE "
             "(flip-flop, 100 epochs; wave, 25 epochs) or test accuracy (digits: scikit-learn's 8x8 digits, row by "
             "row, as a stand-in for MNIST; 50 epochs), mean and median over seeds, SEM with ddof 1. No test. "
             "Reference: its 5 stored runs per rule (`data/reference/fig2.json`), converted to per-element means; "
             "its digit row is real MNIST, so not the same data.\n"]
    rows = []
    for _, r in tab.iterrows():
        final = runs[(r.task, r.method)].curve("test_accuracy" if r.task == "digits" else "test_loss")[:, -1]
        ref_runs = ref.get("mnist" if r.task == "digits" else r.task, {}).get("runs", {}).get(r.method)
        ref_cell = ("-" if ref_runs is None
                    else f"{g(np.mean(ref_runs))} ({g(np.median(ref_runs))}), n = {len(ref_runs)}")
        if ref_runs is not None and r.task == "digits":
            ref_cell = "MNIST " + ref_cell
        rows.append([TASK_NAMES[r.task], METHOD_NAMES.get(r.method, r.method), r.metric, int(r.epochs), int(r.n),
                     g(r["mean"]), g(np.median(final)), g(r["sem"], 2), ref_cell])
    lines.append(table(["task", "rule", "metric", "epochs", "n seeds", "mean", "median", "SEM", "reference mean "
                        "(median), n runs"], rows))
    lines.append("\n## Every seed\n")
    rows = []
    for (task, method), run in runs.items():
        final = run.curve("test_accuracy" if task == "digits" else "test_loss")[:, -1]
        rows.append([TASK_NAMES[task], METHOD_NAMES.get(method, method), ", ".join(g(v) for v in final)])
    lines.append(table(["task", "rule", "final value per seed (seeds 0-4)"], rows))
    ff = runs[("flipflop", "dales")].curve("test_loss")[:, -1]
    ref_ff = np.asarray(ref["flipflop"]["runs"]["dales"], dtype=float)
    wave = runs[("wave", "dales")].curve("test_loss")[:, -1]
    ref_wave = np.asarray(ref["wave"]["runs"]["dales"], dtype=float)
    lines.append(
        f"\nDale's backprop against the reference's Dale's runs: on wave the mean is {g(wave.mean())} against "
        f"{g(ref_wave.mean())} (median {g(np.median(wave))} against {g(np.median(ref_wave))}); on flip-flop "
        f"{int((ff < ref_ff.mean()).sum())} of {ff.size} seeds are below the reference mean {g(ref_ff.mean())}, "
        f"but the worst seed ends at {g(ff.max())}, so the flip-flop mean ({g(ff.mean())}) is above the "
        "reference's.\n")
    lines += convergence_section()
    lines += init_section()
    lines += mnist_section()
    long = fig2.fig2_runs(tasks=("digits",), mode="paper", retrain=False, epochs=1875)
    rows = [[METHOD_NAMES.get(m, m), int(run.curve("test_accuracy").shape[1]),
             g(run.curve("test_accuracy")[:, -1].mean()), rng(run.curve("test_accuracy")[:, -1], 1)]
            for (_, m), run in long.items()]
    lines.append("\n## Digits with MNIST's number of optimiser steps\n")
    lines.append("On the stand-in, 50 epochs are only 400 Adam steps; MNIST's 50 epochs are 15,000. The cache also "
                 "holds every rule trained for 1,875 epochs on the digits (15,000 steps), 5 seeds, same protocol "
                 "otherwise; final test accuracy in %:\n\n")
    lines.append(table(["rule", "epochs", "mean", "range over seeds"], rows))
    return "\n".join(lines)


def convergence_section() -> list[str]:
    """20 paired seeds per rule (flip-flop, wave): convergence counts, Fisher's exact tests, the reference beside."""
    conv = fig2.convergence_table(fig2.convergence_runs(retrain=False))
    tests = fig2.convergence_tests(conv)
    rows = [[TASK_NAMES[r.task], METHOD_NAMES.get(r.method, r.method), int(r.epochs), f"{r.converged}/{r.n}",
             g(r.final_median), g(r.last10_median),
             *([f"{int(r.ref_converged)}/{int(r.ref_n)}", g(r.ref_median)] if r.ref_n == r.ref_n else ["no runs"] * 2)]
            for r in conv.itertuples()]
    trows = [[TASK_NAMES[t.task], t.comparison, t.converged_a, t.converged_b, p_(t.p), p_(t.p_holm), t.correction]
             for t in tests.itertuples()]
    tasks = ", ".join(TASK_NAMES[t] for t in fig2.CONVERGENCE_TASKS)
    lines = [f"\n## Convergence with 20 paired seeds ({tasks})\n",
             "Paper mode, seeds 0-19 per rule, seed s of every rule trained on the same data from the same initial "
             "weights (cached beside the five-seed runs, whole or in blocks of 10 seeds that read back as one run; "
             "flip-flop seeds 0-4 agree with the five-seed runs to within 1e-7 of test MSE, trained in a batch of 20 "
             "on one thread instead of 5 on two). Converged: final per-element test MSE "
             f"below {fig2.CONVERGED_MSE}. Robust endpoint: median over seeds of each seed's median over its last 10 "
             "epochs. Test: Fisher's exact, two-sided; unit of replication: the seed; Holm within a task over each "
             "family (every rule against Dale's backprop; every rule against the reference), named per row. "
             "Reference: its 5 stored runs per rule, same threshold (it stored none for the corrected rectified "
             "rule, which is ours).\n",
             table(["task", "rule", "epochs", "converged", "final median", "last-10 median", "reference converged",
                    "reference median"], rows), "\n",
             table(["task", "comparison", "converged (a)", "converged (b)", "p", "p Holm", "correction"], trows),
             "\n"]
    for task, sub in conv.groupby("task", sort=False):
        by, t = sub.set_index("method"), tests[tests.task == task].set_index("comparison")
        between = [f"{METHOD_NAMES[a]} {by.at[a, 'converged']}/{by.at[a, 'n']} (Holm p = "
                   f"{p_(t.at[f'{a} vs {b} (ours)', 'p_holm'])})" for a, b in fig2.CONVERGENCE_PAIRS if a in by.index]
        refs = [f"{METHOD_NAMES[m]} Holm p = {p_(t.at[f'{m}: ours vs reference', 'p_holm'])}" for m in by.index
                if f"{m}: ours vs reference" in t.index]
        lines.append(f"{TASK_NAMES[task]}: Dale's backprop converges in {by.at['dales', 'converged']} of "
                     f"{by.at['dales', 'n']} seeds; against it: " + ", ".join(between)
                     + "; ours against the reference's five runs: " + ", ".join(refs) + ".\n")
    lines.append("Why the reference's five conventional flip-flop runs all converged is not tested (its runs are "
                 "unseeded and only their final values are stored).\n")
    return lines


def init_section() -> list[str]:
    """Dale's backprop on flip-flop from the balanced initialisation against the default, 20 paired seeds each."""
    runs = fig2.init_runs()
    lines = ["\n## A balanced initialisation (flip-flop, Dale's backprop, 20 paired seeds)\n",
             "`--init balanced` (`biornn.nn.models.balanced_init`): the reference's signed uniform draw with every "
             "unit's "
             "inhibitory inputs scaled to cancel its excitatory inputs, so every row of `W_hh` sums to zero and every "
             "sign is kept; the outlier eigenvalue of the default draw (about 3.36, Q7) disappears (row-sum-zero "
             "balanced E/I matrices: Rajan & Abbott, Phys. Rev. Lett. 97, 188104, 2006) and the spectral radius "
             "drops to about 0.6 (notebook 01 plots both spectra). Seeds 0-19, paper sizes, same data and same "
             "other initial parameters per seed as the default runs. Converged: final per-element test MSE below "
             f"{fig2.CONVERGED_MSE}. Test: Fisher's exact, two-sided, balanced against default (one comparison, no "
             "correction); unit of replication: the seed.\n"]
    if len(runs) < 2:
        return lines + ["Not in the cache yet: `python -m biornn reproduce-fig2 --mode paper --tasks flipflop "
                        "--methods dales --seeds 0-19 --seed-block 10 --init balanced` computes it (resumable blocks "
                        "of 10 seeds).\n"]
    res = fig2.init_convergence(runs)
    rows = []
    for name, run in runs.items():
        keep = [i for i, x in enumerate(run.runs) if int(x["seed"]) in res["seeds"]]
        curve = run.curve("test_loss")[keep]
        rows.append([name, f"{res[name][0]}/{res[name][1]}", g(np.median(curve[:, -1])),
                     g(np.median(np.median(curve[:, -10:], axis=1)))])
    seeds = res["seeds"]
    if len(seeds) < len(fig2.CONVERGENCE_SEEDS):
        lines.append(f"So far seeds {seeds[0]}-{seeds[-1]} of the balanced runs are cached (the rest: the command "
                     "below); the counts compare those seeds only.\n")
    lines.append(table(["initialisation", "converged", "final median", "last-10 median"], rows))
    lines.append(f"\nBalanced against default: {res['balanced'][0]}/{res['balanced'][1]} against "
                 f"{res['default'][0]}/{res['default'][1]} converged; {res['test']}, p = {p_(res['p'])} "
                 f"(correction: {res['correction']}; n = {res['balanced'][1]} seeds each).\n")
    if len(seeds) < len(fig2.CONVERGENCE_SEEDS):
        lines.append("Remaining seeds: `python -m biornn reproduce-fig2 --mode paper --tasks flipflop --methods dales "
                     "--seeds 0-19 --seed-block 10 --init balanced` (resumable).\n")
    return lines


def mnist_section() -> list[str]:
    """Sequential MNIST (IDX files or the bundled 5,000-digit subset), 20 paired seeds per rule."""
    runs = fig2.mnist_runs()
    lines = ["\n## Sequential MNIST, 20 paired seeds per rule\n"]
    if not runs:
        return lines + ["Not in the cache yet: `python -m biornn reproduce-fig2 --mode paper --tasks mnist --seeds "
                        "0-19 --seed-block 10` computes it (resumable blocks of 10 seeds).\n"]
    ds = next(iter(runs.values())).dataset
    ref_runs = store.reference("fig2")["mnist"]["runs"]
    ref_acc = ", ".join(f"{METHOD_NAMES[m]} {g(np.mean(v))} %" for m, v in ref_runs.items() if m in METHOD_NAMES)
    ref_acc += f", n = {len(next(iter(ref_runs.values())))} runs each"
    lines.append(f"Data: {ds.get('name', '?')}; source: {ds.get('source', '?')}; split: {ds.get('split', '?')}. "
                 "Paper sizes otherwise (N = 128, batch 200, Adam 1e-3, 50 epochs); seed s of every rule shares "
                 "its initial weights and batches. Caveats: on 4,000 training images 50 epochs are 1,000 Adam steps "
                 "against the paper's ~15,000, and the held-out images are not MNIST's test split, so these are not "
                 f"the paper's numbers (the reference's, on all of MNIST: {ref_acc}). Statistic: final test "
                 "accuracy (%) per seed. "
                 "Test: Wilcoxon signed-rank, two-sided, each rule against Dale's backprop, paired by seed (unit of "
                 "replication), Holm over the comparisons made.\n")
    tab = fig2.accuracy_table(runs)
    rows = [[METHOD_NAMES.get(r.method, r.method), int(r.epochs), int(r.n), g(r["mean"]), g(r["median"]),
             g(r["sem"], 2), f"{g(r['min'])}-{g(r['max'])}"] for _, r in tab.iterrows()]
    lines.append(table(["rule", "epochs", "n seeds", "mean", "median", "SEM", "range"], rows))
    tests = fig2.accuracy_tests(runs)
    if len(tests):
        rows = [[t.comparison, int(t.n), g(t.mean_a), g(t.mean_b), f"{t.median_diff:+.3g}", f"{t.a_higher}/{t.n}",
                 p_(t.p), p_(t.p_holm), t.correction] for t in tests.itertuples()]
        lines += ["\n", table(["comparison (a vs b)", "n", "mean a", "mean b", "median a - b", "a higher",
                               "p (Wilcoxon)", "p Holm", "correction"], rows)]
    missing = [m for m in fig2.CONVERGENCE_METHODS if m not in runs]
    if missing:
        lines.append(f"\nNot in the cache yet: {', '.join(METHOD_NAMES[m] for m in missing)} (`python -m biornn "
                     "reproduce-fig2 --mode paper --tasks mnist --seeds 0-19 --seed-block 10`).\n")
    return lines


# -- Figure 3 ----------------------------------------------------------------------------------------------------
def _levels_where(df, better: bool, col: str, n: int) -> str:
    sel = df[(df[col] < 0.05) & ((df.topprob < df.random) if better else (df.topprob > df.random))]
    if sel.empty:
        return "none"
    wins = sel.wins if better else n - sel.wins
    return (f"p = {', '.join(f'{p:.2f}' for p in sel.p)} ({rng(wins, 0)} of {n} seeds in that direction; "
            f"Holm p {p_(sel[col].min())}-{p_(sel[col].max())})")


def _mostly_worse(df, n: int) -> str:
    sel = df[(n - df.wins >= 0.8 * n) & (df.topprob > df.random)]
    if sel.empty:
        return "none"
    return (f"p = {', '.join(f'{p:.2f}' for p in sel.p)} ({rng(n - sel.wins, 0)} of {n} seeds; smallest sign-flip "
            f"Holm p {p_(sel.holm_signflip.min())})")


def _fig3_results() -> tuple[dict, list[str]]:
    """Figure 3's cached results: flip-flop, wave, sequential MNIST (when cached) and the 8x8 digits stand-in."""
    tasks = [*f3.FIG3_TASKS, "digits"]
    try:
        return f3.fig3_results(tasks, "paper", retrain=False, progress=False), []
    except BiornnError:
        tasks.remove("mnist")
        note = ["Sequential MNIST is not in the cache yet (`python -m biornn reproduce-fig3 --mode paper --tasks "
                "mnist`).\n"]
        return f3.fig3_results(tasks, "paper", retrain=False, progress=False), note


def wave_lead_section() -> list[str]:
    """Figure 3 wave: early learning speed against pruning robustness over the 20 Dale's wave networks."""
    if not wl.WAVE_LEAD_CACHE.exists():
        return []
    lead = wl.wave_lead(wl.lead_errors())
    lines = ["\n## Wave: does early learning speed predict pruning robustness?\n",
             f"`{wl.WAVE_LEAD_CACHE.relative_to(ROOT)}` (`python -m biornn wave-lead`). The {lead['n']} paired "
             "Dale's wave "
             "networks of Figure 2 (seeds 0-19, paper sizes; seeds 0-9 are the networks above), pruned with the "
             f"candidates' protocol ({wc.DRAWS} draws, {wc.N_SCORE} held-out windows). Early learning speed: each "
             f"seed's held-out test MSE after epoch {lead['epoch']} of its cached training curve. Pruning "
             "robustness: the seed's mean over p = 0.31-0.70 of log(top-prob / random), and top-prob's mean error "
             "there. Spearman's rank correlation, two-sided, n = seeds (unit of replication), no correction; "
             "descriptive (one pre-chosen pair of quantities, no mechanism tested).\n\n"]
    rows = [[s, g(e), f"{r:+.2f}", g(t)] for s, e, r, t in zip(lead["seeds"], lead["early_loss"], lead["log_ratio"],
                                                                 lead["topprob_mid"])]
    lines.append(table(["seed", f"test MSE after epoch {lead['epoch']}", "mid-range log(top-prob / random)",
                        "top-prob mid-range error"], rows))
    lines.append("\n" + wl.format_lead(lead) + " " + wl.post_hoc_note(lead) + "\n")
    return lines


def _mnist_reading(sweeps: dict) -> list[str]:
    """The Figure 3 reading of the MNIST subset (cross-entropy tests, accuracy described), from the cache."""
    if "mnist" not in sweeps:
        return []
    sw = sweeps["mnist"]
    acc = {m: np.asarray(sw.accuracy[m]).mean(axis=(0, 2)) for m in ("random", "topprob")}
    ahead = sw.levels[(acc["topprob"] > acc["random"] + 1) & (sw.levels > 0) & (sw.levels < 1)]
    df = f3.level_table(sw.loss["random"], sw.loss["topprob"], sw.levels)
    e = f3.effects_table({"mnist": (sw.loss["random"], sw.loss["topprob"])}, sw.levels)
    e = e[e.j == -1].iloc[0]
    return [
        f"On the MNIST subset the dense networks are weak (held-out accuracy {g(sw.dense_accuracy.mean())} % on "
        f"average after 1,000 Adam steps): {int((df.holm_t_log < 0.05).sum())} levels separate the methods' "
        "cross-entropy after Holm, and the primary endpoint (cross-entropy) gives the ratio random / top-prob "
        f"{e.ratio:.2f} [{e.ratio_lo:.2f}, {e.ratio_hi:.2f}] (paired t on log errors, p = {p_(e.p_t_log)}, one "
        "test, no correction). Held-out accuracy, "
        "which no test here compares (descriptive, mean over seeds), is more than a point higher under top-prob "
        f"at p = {', '.join(f'{p:.2f}' for p in ahead)}: on this subset the two metrics disagree (not "
        "examined further). The 8x8 stand-in (400 Adam steps) favoured top-prob on both.\n"]


def fig3_page() -> str:
    res, missing_note = _fig3_results()
    sweeps, retrained = res["sweep"], res["retrain"]
    levels = f3.SWEEP
    lines = [HEADER, "# Figure 3 results: top-prob against random pruning\n",
             f"Facts: `{PAPER}/fig3-topprob-pruning.md` (section numbers below refer to it). Notebook: "
             "`notebooks/02_fig3_topprob_pruning.ipynb`.\n"]
    first = next(iter(sweeps.values()))
    lines.append(
        f"Setting: paper mode, the committed cache `data/results/fig3/`. Dense Dale's networks at the Fig 2 paper "
        f"sizes, {len(first.seeds)} seeds per task, pruned from their final weights at the {len(levels)} levels of "
        f"the paper's sweep, {first.draws} mask draws per (seed, level, method) averaged within each seed, each "
        "pruned network evaluated on its seed's full held-out test set without retraining. Unit of replication: "
        "the seed. Per level: mean over seeds with a 95 % t-interval (n - 1 df). Tests: paired and two-sided "
        "across seeds, the paired t-test on log errors (`t_log`) and the exact sign-flip test (`signflip`), each "
        "Holm-corrected over the task's informative levels (the levels where the two methods are not identical "
        "by construction: 0 < p < 1 and a budget below the number of non-zero weights).\n")
    dense_rows = [[TASK_NAMES.get(t, t), sw.data_label, len(sw.seeds), g(sw.dense_loss.mean())]
                  for t, sw in sweeps.items()]
    lines.append(table(["task", "data", "n seeds", "dense held-out loss, mean"], dense_rows))
    lines += missing_note
    mn = res["dense"].get("mnist")
    if mn is not None:
        ds = mn.dataset
        lines.append(f"\nSequential MNIST: {ds.get('name', '?')}; source: {ds.get('source', '?')}; split: "
                     f"{ds.get('split', '?')}. Its dense networks are seeds 0-9 of the Figure 2 MNIST runs (50 epochs; "
                     "on the 4,000-image subset that is 1,000 Adam steps against the paper's ~15,000). The digits "
                     "stand-in (scikit-learn's 8x8 digits) is kept below for comparison.\n")
    summary, primary, per_seed = [], [], []
    for task, sw in sweeps.items():
        R, T = sw.loss["random"], sw.loss["topprob"]
        n = len(sw.seeds)
        df = f3.level_table(R, T, sw.levels)
        lines.append(f"\n## {sw.data_label}: error at pruning, per level\n")
        acc = getattr(sw, "accuracy", None) or {}
        acc = {m: np.asarray(a, dtype=float).reshape(n, len(sw.levels), -1).mean(axis=(0, 2)) for m, a in acc.items()}
        rows = [[int(r.j), f(r.p, 4), f"{g(r.random)} [{g(r.random_lo)}, {g(r.random_hi)}]",
                 f"{g(r.topprob)} [{g(r.topprob_lo)}, {g(r.topprob_hi)}]", f"{int(r.wins)}/{n}",
                 p_(r.p_t_log), p_(r.holm_t_log), p_(r.p_signflip), p_(r.holm_signflip)]
                + ([f"{acc['random'][i]:.0f} / {acc['topprob'][i]:.0f}"] if acc else [])
                for i, (_, r) in enumerate(df.iterrows())]
        lines.append(table(["j", "p", "random [95 % CI]", "top-prob [95 % CI]", "top-prob lower", "t_log p",
                            "t_log Holm", "sign-flip p", "sign-flip Holm"]
                           + (["accuracy %, random / top-prob"] if acc else []), rows))
        summary.append([TASK_NAMES.get(task, task), _levels_where(df, True, "holm_t_log", n),
                        _levels_where(df, False, "holm_t_log", n), _levels_where(df, False, "holm_signflip", n),
                        _mostly_worse(df, n)])
        interior = f3.informative_levels(R, T, sw.levels)
        comp = pruning_comparison(R, T, sw.levels, test="t_log", interior=interior)
        prim = comp["primary"]
        row = [TASK_NAMES.get(task, task), n, len(interior), f"{g(prim['random'])} vs {g(prim['topprob'])}"]
        if hasattr(f3, "effects_table"):
            e = f3.effects_table({task: (R, T)}, sw.levels)
            e = e[e.j == -1].iloc[0]
            row += [f"{e.ratio:.2f} [{e.ratio_lo:.2f}, {e.ratio_hi:.2f}], p = {p_(e.p_t_log)}",
                    f"{e['diff']:+.2g} [{e.diff_lo:+.2g}, {e.diff_hi:+.2g}], p = {p_(e.p_t)}",
                    f"{p_(e.p_signflip)}, {p_(e.p_wilcoxon)}"]
        else:  # pragma: no cover - older library
            row += ["-", f"{prim['diff']:+.2g} [{prim['diff_ci'][0]:+.2g}, {prim['diff_ci'][1]:+.2g}]",
                    p_(prim["pvalues"]["signflip"])]
        primary.append(row)
        rs, ts = np.asarray(prim["per_seed_random"]), np.asarray(prim["per_seed_topprob"])
        better = rs > ts
        others = "; ".join(f"seed {sw.seeds[i]}: {rs[i] - ts[i]:+.2g} (ratio {rs[i] / ts[i]:.2f})"
                           for i in np.flatnonzero(~better))
        per_seed.append(f"* {TASK_NAMES.get(task, task)}: top-prob's mean error is lower in {int(better.sum())} of "
                        f"{n} seeds" + (f" (ratios {rng(rs[better] / ts[better], 1)})" if better.any() else "")
                        + (f"; the others, random - top-prob: {others}" if others else "") + ".\n")
    lines.append("\n## Where top-prob is better or worse\n")
    lines.append("Paired t on log errors, Holm over the informative levels, alpha = 0.05 (n = seeds). Last column: "
                 "the same with the exact sign-flip test.\n\n")
    lines.append(table(["task", "top-prob significantly lower (t_log, Holm)", "significantly higher (t_log, Holm)",
                        "significantly higher (sign-flip, Holm)", "not lower in >= 80 % of seeds (no test)"],
                       summary))
    lines.append("\n## Primary endpoint\n")
    lines.append("Per seed the mean error over the informative levels; paired two-sided tests across seeds, one "
                 "comparison per test (no correction); each effect with its 95 % t-interval on the scale of its own "
                 "test: the geometric-mean error ratio random / top-prob beside the paired t-test on log errors, the "
                 "mean difference random - top-prob beside the paired t-test on raw errors, then the exact "
                 "sign-flip and Wilcoxon p on the raw differences.\n\n")
    lines.append(table(["task", "n seeds", "levels", "mean error, random vs top-prob",
                        "ratio random / top-prob [95 % CI], paired t on log errors",
                        "random - top-prob [95 % CI], paired t on raw errors", "sign-flip p, Wilcoxon p"], primary))
    lines.append("\nPer seed (the unit of replication):\n\n" + "".join(per_seed))
    rows = []
    for task, sw in sweeps.items():
        a = reference_aggregation(sw.loss["random"], sw.loss["topprob"])
        rows.append([TASK_NAMES.get(task, task), f"{g(a['bar_random'], 4)} +- {g(a['err_random'], 3)}",
                     f"{g(a['bar_topprob'], 4)} +- {g(a['err_topprob'], 3)}", f"{p_(a['min_p'])} ({a['label']})"])
    lines.append("\n## The reference's aggregation on these networks (as published, section 9.1)\n")
    lines.append("Bar = maximum over seeds of each seed's mean over all 15 levels; error = 1.96 x SEM of all "
                 "seeds x levels pooled as if independent; label from the smallest of 15 uncorrected unpaired "
                 "Mann-Whitney p-values. Shown for comparison only: section 9.1 lists why it misleads.\n\n")
    lines.append(table(["task", "random bar", "top-prob bar", "smallest p (label)"], rows))
    lines.append(
        "\nReading. The paper's claim holds on flip-flop near p = 0.5 (paired t on log errors with Holm; the exact "
        "sign-flip test, pulled by the one unconverged dense seed, does not reach it) and on the digit stand-in, but "
        "not on wave: there top-prob helps only at the sparsest levels and is worse than random in most seeds at "
        "moderate sparsity. On flip-flop the log and raw scales disagree because the seeds where random wins weigh "
        "more on the raw scale. The reference's own aggregation labels every task significant all the same, wave "
        "included, although on wave its bars show top-prob's error about twice random's.\n")
    lines += _mnist_reading(sweeps)
    ref = store.reference("fig3")
    rows = []
    for task, entry in ref["tasks"].items():
        R, T = np.asarray(entry["random"], dtype=float), np.asarray(entry["topprob"], dtype=float)
        lv = np.asarray(ref["levels"], dtype=float)
        interior = f3.informative_levels(R, T, lv)
        prim = pruning_comparison(R, T, lv, test="t_log", interior=interior)["primary"]
        df = f3.level_table(R, T, lv)
        agg = reference_aggregation(R, T)
        rows.append([TASK_NAMES.get(task, task), f"{g(prim['random'])} vs {g(prim['topprob'])}",
                     f"{prim['diff']:+.3g} [{prim['diff_ci'][0]:+.3g}, {prim['diff_ci'][1]:+.3g}]",
                     p_(prim["pvalues"]["t_log"]), int((df.holm_t_log < 0.05).sum()),
                     f"{p_(agg['min_p'])} ({agg['label']})"])
    lines.append("\n## The same analyses on the reference's own arrays (n = 5 runs, one batch each)\n")
    lines.append("`data/reference/fig3.json` (section 8.1); compare section 9.3.\n\n")
    lines.append(table(["task", "mean error, random vs top-prob", "random - top-prob [95 % CI]", "paired t on log p",
                        "levels significant after Holm (t_log)", "as published: smallest p (label)"], rows))
    lines += wave_candidates_section()
    lines += wave_lead_section()
    lines.append("\n## Masked retraining from p = 0.0862\n")
    lines.append("Masks of draw 0 from the sweep, retrained with a fresh Adam, gradients and weights masked after "
                 "every step (section 5.4). Final held-out value, mean over seeds; `top-prob better` counts seeds "
                 "(unit of replication) in which top-prob ends better; no test.\n\n")
    rows = []
    for task in sweeps:
        rr, rt = retrained[(task, "random")], retrained[(task, "topprob")]
        if rt.test_accuracy is not None:
            a_r, a_t = rr.test_accuracy[:, -1], rt.test_accuracy[:, -1]
            metric, better = "accuracy (%)", int((a_t > a_r).sum())
        else:
            a_r, a_t = rr.test_loss[:, -1], rt.test_loss[:, -1]
            metric, better = "loss", int((a_t < a_r).sum())
        rows.append([TASK_NAMES.get(task, task), rt.epochs, metric, g(a_t.mean()), g(a_r.mean()),
                     f"{better}/{len(a_t)}", g(rt.dense_loss.mean()),
                     int(rr.outside_mask + rt.outside_mask), int(rr.sign_violations + rt.sign_violations)])
    lines.append(table(["task", "epochs", "metric", "top-prob", "random", "top-prob better", "dense loss",
                        "weights outside mask", "sign violations"], rows))
    return "\n".join(lines)


def wave_candidates_section() -> list[str]:
    """Figure 3 wave: the candidate causes of top-prob losing here, one change each (cache: wave-candidates.json)."""
    results = f3.load_candidates()
    if not results:
        return []
    df = f3.candidate_table({**results, f3.REFERENCE_ROW: f3.reference_result(store.reference("fig3"))})
    lines = ["\n## Wave: why top-prob loses here (candidate causes, one change each)\n",
             f"`{wc.CANDIDATES_CACHE.relative_to(ROOT)}` (`python -m biornn wave-candidates`). Every row: "
             f"{wc.DRAWS} mask "
             f"draws, each seed scored on {wc.N_SCORE} held-out windows unless the row changes the scoring. "
             "`log ratio`: per seed, the mean over p = 0.31-0.70 of log(top-prob / random) (< 0: top-prob "
             "better); mean over seeds, 95 % t "
             "interval, paired t-test against 0 (unit: dense network; no correction, each row read on its own). "
             "`wins at 0.39`: seeds with top-prob better at p = 0.3908, Fisher's exact test against the reference's "
             "4 of 5. `levels won`: interior levels (of 13) where top-prob is better in more than half the seeds. "
             "`breakdowns`: seeds whose top-prob network is worse somewhere at p = 0.31-0.70 than with no recurrent "
             "weights at all (p = 0); descriptive.\n\n"]
    rows = []
    for r in df.itertuples():
        ref = r.candidate == f3.REFERENCE_ROW
        text = "the reference's stored arrays" if ref else f3.get_candidate(r.candidate).text
        rows.append([r.candidate, text, r.n, f"{r.log_ratio:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]", p_(r.p_t),
                     r.wins_039, "" if np.isnan(r.fisher_vs_ref) else p_(r.fisher_vs_ref), r.levels_won,
                     r.breakdowns])
    lines.append(table(["candidate", "change", "n", "log ratio [95 % CI]", "paired t p", "wins at 0.39",
                        "Fisher vs reference p", "levels won", "breakdowns"], rows))
    return lines


# -- Figure 4 ----------------------------------------------------------------------------------------------------
def _fits_rows(df, published=None):
    rows = []
    for (cond, window), grp in df.groupby(["condition", "window"], sort=False):
        row = [cond, window, f"{rng(grp.median_r)} ({int(grp.passes.sum())}/{len(grp)} >= 0.9)",
               f(grp.trace_median_r.median()), f(grp.train_median_r.median())]
        if published is not None:
            pub = published[(published.condition == cond) & (published.window == window)]
            row.append(rng(pub.median_r) if len(pub) else "-")
        row += [f"{f(grp.train_mean_r.iloc[0])} / {f(grp.time_mean_r.iloc[0])} / {f(grp.linear_history_r.iloc[0])}",
                f"{grp.rho_abs.mean():.2f} ({grp.rho_abs_structure.mean():.2f})",
                f"{f(grp.train_minutes.iloc[0], 1)} / {f(grp.wall_minutes.iloc[0], 1)} ({grp.device.iloc[0]})"]
        rows.append(row)
    return rows


def fig4_page() -> str:
    pub = celltype.condition_fits(variant="published")
    if pub.empty:
        raise BiornnError("no Figure 4 summaries cached in data/results/fig4")
    order = {c: i for i, c in enumerate(conditions.BY_ABBREVIATION)}
    key = lambda d: d.assign(_w=d.window.map({"full": 0, "half": 1}), _c=d.condition.map(order))  # noqa: E731
    pub = key(pub).sort_values(["_w", "_c", "seed"])
    cor = celltype.condition_fits(variant="corrected")
    cor = key(cor).sort_values(["_w", "_c", "seed"]) if not cor.empty else cor
    n_seeds = int(pub.groupby(["condition", "window"]).size().max())
    lines = [HEADER, "# Figure 4 results: the cell-type RNN fitted to the digital twin\n",
             f"Facts: `{PAPER}/fig4-5-celltype-rnn.md` and `{PAPER}/allen-data-pipeline.md`. Notebook: "
             "`notebooks/06_fig4_celltype_rnn.ipynb` (appendix: `notebooks/06b_fig4_appendix.ipynb`).\n",
             f"Setting: paper mode, the committed cache `data/results/fig4/`; N = 1440, 70 + 50 epochs, "
             f"{n_seeds} seeds per condition and window (unit of replication: the seed), data from the digital "
             "twin, whose trials are split into training and held-out sets before bootstrapping. Fit = Pearson r "
             "between predicted and recorded next frames of the sparse model, median over the 18 populations: "
             "pooled over the held-out samples x steps of a seed (the bar is 0.9); per held-out trace, median over "
             "traces and then over seeds (what the published panel shows for one trial); on training samples "
             "(the reference's quantity, 0.94-0.97 read off its figure). Reference predictors (data only, scored on "
             "the same held-out samples): the training samples' average trace; the held-out set's own average "
             "trace (an oracle: it knows the mean of the very trials it is scored on); a per-step linear ridge "
             "predictor of the next frame from the last 4 frames of all 18 populations, fitted on the training "
             "samples (what the data allow, not a ceiling). Identifiability: Spearman correlation of the fitted "
             "|block means| with the twin's ground truth over its non-zero blocks, mean over seeds, and in "
             "brackets the same for the untrained initial weights times the final mask (structure only). "
             "Minutes: summed epoch times of the batched run / its recorded wall time (n/a where the GPU epoch "
             "timer did not synchronise). No test.\n"]
    header = ["condition", "window", "held-out median r per seed (pooled)", "per-trace r (median over seeds)",
              "training-set r", "reference predictors r: training avg / held-out avg (oracle) / linear history",
              "identifiability rho_abs (structure only)", "minutes: epochs / wall (device)"]
    lines.append("\n## As published (dense input weights, the reference's pruning budgets and checkpoint rule)\n")
    lines.append(table(header, _fits_rows(pub)))
    lines.append(f"\nConstraints: {int(pub.sign_violations.sum())} sign violations and {int(pub.outside_mask.sum())} "
                 "weights outside the mask over all runs.\n")
    for window in ("full", "half"):
        w = pub[pub.window == window]
        d_avg = w.median_r - w.train_mean_r
        d_lin = w.linear_history_r - w.median_r
        lines.append(
            f"\n{window.capitalize()} window: {int(w.passes.sum())} of {len(w)} seeds reach 0.9. Per seed the "
            f"models sit {d_avg.min():+.3f} to {d_avg.max():+.3f} from the training average trace and "
            f"{d_lin.min():.3f}-{d_lin.max():.3f} below the linear history predictor, which reaches "
            f"{rng(w.linear_history_r)} in every condition. Identifiability is below the structure-only baseline in "
            f"{int((w.groupby('condition').rho_abs.mean() < w.groupby('condition').rho_abs_structure.mean()).sum())}"
            f" of {w.condition.nunique()} conditions.\n")
    worst = pub.groupby(["condition", "window"]).median_r.median().idxmin()
    pf = celltype.population_fits(worst[0], worst[1], variant="published")
    pf = pf.sort_values("model_r")
    rows = [[label, f(r.model_r), f"{f(r.model_r_min)}-{f(r.model_r_max)}", f(r.train_mean_r),
             f(r.linear_history_r)] for label, r in pf.head(6).iterrows()]
    lines.append(f"\n### The worst condition-window, {worst[0]} {worst[1]}: the six worst-fitted populations\n")
    lines.append("Held-out r per population (median and range over seeds) beside the data-only predictors:\n\n")
    lines.append(table(["population", "model r (median)", "range over seeds", "training avg r",
                        "linear history r"], rows))
    if not cor.empty:
        lines.append("\n## Corrected variant (input mask applied, exact pruning budgets, best-epoch checkpoint)\n")
        lines.append("Same data, seeds, sizes and epochs. Each unit reads only its own population's recorded trace, "
                     "so everything between populations must pass through the sparse W_rec.\n\n")
        lines.append(table(header[:5] + ["as published: held-out median r"] + header[5:], _fits_rows(cor, pub)))
        by_cw = cor.groupby(["condition", "window"])
        lines.append(f"\nConstraints: {int(cor.sign_violations.sum())} sign violations and "
                     f"{int(cor.outside_mask.sum())} weights outside the mask. Seeds reaching 0.9: "
                     f"{int(cor.passes.sum())} of {len(cor)}; identifiability {rng(by_cw.rho_abs.mean(), 2)} "
                     f"against the structure-only {rng(by_cw.rho_abs_structure.mean(), 2)}.\n")
    lines.append(MEASURED_FIG4)
    return "\n".join(lines)


MEASURED_FIG4 = """
## Measured in earlier sessions, not recomputed here

These statements come from runs that are not in the cache (or from timings of the machines used); they are kept
as they were measured and are not recomputed by this script.

* **Devices** (commit be96e37). The full windows and FC half ran on 2 CPU cores; the other five half windows on a
  lent H200 GPU (`benchmarks/gpu.sh`, the twin carried bit for bit with `benchmarks/twin_pack.py`). FC half was
  trained on both: the held-out r of all five seeds agreed to 4 decimals (0.9587, 0.9589, 0.9572, 0.9617, 0.9583)
  and rho_abs to 0.001, so the devices differ only by float32 round-off. A half-window run took about 1.5 min of
  wall time on the GPU against 16 min on the CPU; how that splits between epochs, the per-epoch held-out pass and
  the resume checkpoint written after every epoch is not measured (the CUDA epoch timer did not synchronise then).
  NO full includes about 10 min paused while CI ran; FC full ran with masked dense matmuls on shared cores; a
  resumed run records only its last part as wall time.
* **Twice the paper's budget** (commit 7b6bfad; FN full, seeds 0 and 1, 140 + 100 epochs, 25 min on 2 CPU cores,
  not cached): held-out r rose from 0.829 / 0.838 to 0.875 / 0.898 and the held-out MSE fell from 2.7e-5 / 2.4e-5
  (training average trace: 2.5e-5) to 1.9e-5 / 1.7e-5, still far from the linear predictor's 4.1e-6.
* **Ten times the data scale** (commit 7b6bfad; the same FN data x 10, seeds 0 and 1, paper budget, not cached):
  0.865 / 0.858. The loss is MSE on raw dF/F and the readouts are frozen, so the recipe is not scale-free.
* **Reading.** The no-change fits miss 0.9 on the twin because the recipe is under-trained there at the paper's
  budget, not because the bar is out of the data's reach: the models learn each condition's mean time course and
  little of what a sample's own past says about its next frame. No-change trials fail first because their mean
  time course carries the least variance (in FN the three LM L5 populations barely follow the repeated image).
  (Until commit 7b6bfad the README read the held-out average trace, 0.897 on FN, as a limit set by bootstrap noise;
  that predictor is not a ceiling, and the linear one shows the reading was wrong.)
* **Cache size.** `data/results/fig4` holds about 0.2 MB per condition plus 3.7 MB of FC display matrices.
* **Corrected variant, training** (commits 063db83, dd9c908). Its training loss was about 70 times the published
  variant's and still falling at epoch 70 of the dense stage (FC half: 0.0044 at epoch 35, 0.0028 at 70; published
  4e-5). With twice the epochs (140 + 100, FC half, seeds 0-2, 14 min on 2 cores, not cached) held-out r rose from
  0.74-0.79 to 0.84-0.88 and the fine-tuning loss halved, still below the bar and the average traces (0.957-0.959).
  FC's corrected epoch minutes include about 8 min paused while CI ran.
"""


PAGES = {"fig2.md": fig2_page, "fig3.md": fig3_page, "fig4.md": fig4_page, "fig5.md": fig5_page}


def write_pages(out: Path) -> list[Path]:
    """Write every page to ``out`` and return their paths."""
    _guard()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in PAGES.items():
        text = make().rstrip("\n") + "\n"
        text = "\n".join(line.rstrip() for line in text.split("\n"))
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv=None) -> int:
    os.environ["BIORNN_PROGRESS"] = "0"
    os.environ["BIORNN_RETRAIN"] = "0"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "results"), help="output folder (default docs/results)")
    args = parser.parse_args(argv)
    try:
        for path in write_pages(Path(args.out)):
            print("wrote", path)
    except BiornnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
