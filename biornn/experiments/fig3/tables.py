"""The Figure 3 statistics tables (per level, side by side with the reference's aggregation, the primary effects),
built on :mod:`biornn.stats.significance`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from biornn.experiments.fig3.experiment import SWEEP
from biornn.stats.significance import (
    PAIRED_TESTS,
    paired_effects,
    pruning_comparison,
    reference_aggregation,
)


def _seed_tables(errors_random, errors_topprob):
    R = np.asarray(errors_random, dtype=np.float64)
    T = np.asarray(errors_topprob, dtype=np.float64)
    return (R.mean(axis=2), T.mean(axis=2)) if R.ndim == 3 else (R, T)


def informative_levels(errors_random, errors_topprob, levels=SWEEP) -> np.ndarray:
    """Indices of the levels that can differ between the methods: ``0 < p < 1`` and not identical for every seed.

    Besides ``p = 0`` and ``p = 1``, a level is identical by construction when its budget ``p N^2`` reaches the
    number of non-zero weights (both masks are then the full non-zero set); such levels are left out of the tests.

    Args:
        errors_random, errors_topprob: ``(S, L)`` or ``(S, L, K)`` errors.
        levels: ``(L,)`` connection probabilities.

    Returns:
        ``(m,)`` int indices.
    """
    R, T = _seed_tables(errors_random, errors_topprob)
    lv = np.asarray(levels, dtype=np.float64).ravel()
    return np.flatnonzero((lv > 0) & (lv < 1) & np.any(R != T, axis=0))


def level_table(errors_random, errors_topprob, levels=SWEEP, tests: Sequence[str] = ("t_log", "signflip")):
    """Per-level comparison of random vs top-prob pruning (pandas DataFrame, one row per level).

    Columns: ``j``, ``p``; per method the mean over seeds and its 95 % t-interval (n - 1 df); ``diff`` (mean of
    random - top-prob); ``wins`` (seeds with top-prob < random); for each paired test in ``tests`` (two-sided,
    matched seeds, :func:`biornn.stats.significance.paired_test`) the raw ``p_<test>`` and the Holm-adjusted
    ``holm_<test>`` over
    the informative levels (:func:`informative_levels`; NaN at the levels where both methods are identical by
    construction: ``p = 0``, ``p = 1`` and any level whose budget covers every non-zero weight).

    Args:
        errors_random, errors_topprob: ``(S, L)`` or ``(S, L, K)`` errors (draws averaged within seed).
        levels: ``(L,)`` connection probabilities.
        tests: paired tests (see :data:`biornn.stats.significance.PAIRED_TESTS`).
    """
    R, T = _seed_tables(errors_random, errors_topprob)
    lv = np.asarray(levels, dtype=np.float64).ravel()
    idx = informative_levels(R, T, lv)
    first = pruning_comparison(R, T, lv, test=tests[0], interior=idx)
    df = pd.DataFrame({"j": np.arange(lv.size), "p": lv,
                       "random": first["random"]["mean"], "random_lo": first["random"]["ci_low"],
                       "random_hi": first["random"]["ci_high"], "topprob": first["topprob"]["mean"],
                       "topprob_lo": first["topprob"]["ci_low"], "topprob_hi": first["topprob"]["ci_high"],
                       "diff": (R - T).mean(axis=0), "wins": (T < R).sum(axis=0)})
    for test in tests:
        res = first if test == tests[0] else pruning_comparison(R, T, lv, test=test, interior=idx)
        raw = np.full(lv.size, np.nan)
        adj = np.full(lv.size, np.nan)
        raw[res["per_level"]["index"]] = res["per_level"]["p"]
        adj[res["per_level"]["index"]] = res["per_level"]["p_holm"]
        df[f"p_{test}"] = raw
        df[f"holm_{test}"] = adj
    return df


def side_by_side(tables: dict, levels=SWEEP, test: str = "t_log"):
    """The reference's aggregation ("as published") beside the recommended protocol, one row per task.

    As published (:func:`biornn.stats.significance.reference_aggregation`): bar = max over seeds of the per-seed mean
    over all
    levels, error = 1.96 x SEM of all seeds x levels pooled, label from the minimum uncorrected per-level
    Mann-Whitney p. Recommended (:func:`biornn.stats.significance.pruning_comparison`): per seed the mean error over the
    informative levels (:func:`informative_levels`: ``0 < p < 1``, not identical by construction), compared across
    seeds (the primary endpoint): each effect beside the p of the test on its scale (geometric-mean ratio random /
    top-prob with its 95 % t-interval and ``p_t_log``; mean difference random - top-prob with its 95 % t-interval
    and ``p_t``), the exact sign-flip and Wilcoxon p, and the number of informative levels whose Holm-adjusted
    paired ``test`` p is below 0.05 (``n_levels`` of them).

    Args:
        tables: ``{task_label: (errors_random, errors_topprob)}``, each ``(S, L)`` or ``(S, L, K)``.
        levels: ``(L,)`` connection probabilities.
        test: paired test of the per-level Holm counts.

    Returns:
        A pandas DataFrame.
    """
    rows = []
    for label, (R, T) in tables.items():
        agg = reference_aggregation(R, T)
        res = pruning_comparison(R, T, levels, test=test, interior=informative_levels(R, T, levels))
        prim = res["primary"]
        rows.append({"task": label, "n": res["n_seeds"],
                     "pub_bar_random": agg["bar_random"], "pub_err_random": agg["err_random"],
                     "pub_bar_topprob": agg["bar_topprob"], "pub_err_topprob": agg["err_topprob"],
                     "pub_min_p": agg["min_p"], "pub_label": agg["label"],
                     "mean_random": prim["random"], "mean_topprob": prim["topprob"], "ratio": prim["ratio"],
                     "ratio_lo": prim["ratio_ci"][0], "ratio_hi": prim["ratio_ci"][1],
                     "p_t_log": prim["pvalues"]["t_log"], "diff": prim["diff"], "diff_lo": prim["diff_ci"][0],
                     "diff_hi": prim["diff_ci"][1], "p_t": prim["pvalues"]["t"],
                     "p_signflip": prim["pvalues"]["signflip"], "p_wilcoxon": prim["pvalues"]["wilcoxon"],
                     "n_levels": len(res["interior"]),
                     "holm_levels": int(np.sum(np.asarray(res["per_level"]["p_holm"]) < 0.05)),
                     "min_holm_p": float(np.min(res["per_level"]["p_holm"]))})
    return pd.DataFrame(rows)


#: Columns of :func:`effects_table`: each effect beside its interval and the p-value of the test on its scale.
EFFECT_COLUMNS = ("task", "n", "j", "p", "random", "topprob", "wins", "ratio", "ratio_lo", "ratio_hi", "p_t_log",
                  "holm_t_log", "diff", "diff_lo", "diff_hi", "p_t", "holm_t", "p_signflip", "holm_signflip",
                  "p_wilcoxon", "holm_wilcoxon", "log_diff", "log_lo", "log_hi")


def effects_table(tables: dict, levels=SWEEP, level: float = 0.95):
    """Random vs top-prob per (task, level), each effect on the scale of its test, with all four paired p-values.

    Per task the informative levels (:func:`informative_levels`) and, in the row with ``j = -1`` and ``p`` NaN, the
    primary endpoint (per seed the mean error over those levels), from :func:`biornn.stats.significance.paired_effects`:

    * log scale, paired t on log errors: ``ratio`` = geometric mean over seeds of random / top-prob error with its
      ``level`` t-interval (``log_diff`` and ``log_lo``/``log_hi`` are the same on the natural-log scale),
      ``p_t_log``;
    * raw scale, paired t: ``diff`` = mean of random - top-prob with its t-interval, ``p_t``;
    * ``p_signflip`` (exact for n <= 16) and ``p_wilcoxon`` on the raw differences.

    ``holm_<test>``: Holm over the informative levels of the task, per test (NaN in the primary row, which is one
    pre-specified comparison). ``random``/``topprob``: means over seeds; ``wins``: seeds with top-prob below
    random. ``ratio > 1`` and ``diff > 0`` mean top-prob's error is lower.

    Args:
        tables: ``{task_label: (errors_random, errors_topprob)}``, each ``(S, L)`` or ``(S, L, K)``.
        levels: ``(L,)`` connection probabilities.
        level: confidence level.

    Returns:
        A pandas DataFrame with :data:`EFFECT_COLUMNS`.
    """
    rows = []
    lv = np.asarray(levels, dtype=np.float64).ravel()
    for label, (errors_random, errors_topprob) in tables.items():
        R, T = _seed_tables(errors_random, errors_topprob)
        res = paired_effects(R, T, lv, interior=informative_levels(R, T, lv), level=level)
        primary = {**res["primary"], **{f"holm_{t}": np.nan for t in PAIRED_TESTS}}
        idx = [row["index"] for row in res["per_level"]]
        means = [(R[:, j].mean(), T[:, j].mean()) for j in idx] + [(R[:, idx].mean(), T[:, idx].mean())]
        for row, (r, t) in zip([*res["per_level"], primary], means):
            rows.append({**row, "task": label, "j": row["index"], "p": row["level"], "random": r, "topprob": t})
    return pd.DataFrame(rows, columns=list(EFFECT_COLUMNS))


def _p(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.2g}" if value >= 1e-3 else f"{value:.1e}"


def format_effect(row) -> str:
    """One line of an :func:`effects_table` row: each effect with its interval, next to the p of its own test."""
    return (f"random/top-prob {row['ratio']:.3g} [{row['ratio_lo']:.3g}, {row['ratio_hi']:.3g}] (geometric mean), "
            f"paired t on log p = {_p(row['p_t_log'])}; random - top-prob {row['diff']:+.3g} [{row['diff_lo']:+.3g}, "
            f"{row['diff_hi']:+.3g}], paired t p = {_p(row['p_t'])}; sign-flip p = {_p(row['p_signflip'])}; "
            f"Wilcoxon p = {_p(row['p_wilcoxon'])}")


def significant_levels(table, better: bool = True, column: str = "holm_t_log", alpha: float = 0.05) -> np.ndarray:
    """The connection probabilities of a :func:`level_table` where the methods differ significantly one way.

    Args:
        table: a :func:`level_table` DataFrame (columns ``p``, ``random``, ``topprob`` and ``column``).
        better: True for the levels where top-prob's mean error is *below* random's, False for those above it.
        column: the (Holm-adjusted) p-value column that decides significance, e.g. ``holm_t_log`` (paired t on log
            errors) or ``holm_signflip`` (exact sign-flip); NaN (untested levels) never counts.
        alpha: significance level, two-sided.

    Returns:
        ``(m,)`` float array of the levels ``p``, in increasing order.
    """
    direction = table["topprob"] < table["random"] if better else table["topprob"] > table["random"]
    keep = (table[column] < alpha) & direction
    return np.sort(table.loc[keep, "p"].to_numpy(dtype=np.float64))


def format_levels(levels, digits: int = 2) -> str:
    """``"0.47, 0.55"`` for a list of levels, ``"none"`` when it is empty."""
    return ", ".join(f"{p:.{digits}f}" for p in levels) or "none"


def retrain_table(retrained: dict):
    """One row per (task, method) of the masked-retraining results, means over seeds.

    Columns: ``task``, ``method``, ``n`` (seeds), ``epochs``, ``at_pruning`` (held-out loss before retraining),
    ``epoch_1``, ``final`` (after the last epoch), ``dense`` (the unpruned networks), ``final_accuracy`` (held-out
    accuracy in % after the last epoch; NaN for regression tasks) and ``seeds_lower`` (seeds whose final loss is
    below that of the other method's mask on the same network; ties count for neither).

    Args:
        retrained: ``{(task, method): RetrainResult}``, as in :func:`biornn.experiments.fig3.fig3_results`
        ``["retrain"]``.

    Returns:
        A pandas DataFrame.
    """
    rows = []
    for (task, method), rt in retrained.items():
        loss = np.asarray(rt.test_loss, dtype=np.float64)
        others = [r for (t, m), r in retrained.items() if t == task and m != method]
        lower = sum(int((loss[:, -1] < np.asarray(o.test_loss, dtype=np.float64)[:, -1]).sum()) for o in others)
        acc = np.nan if rt.test_accuracy is None else float(np.asarray(rt.test_accuracy)[:, -1].mean())
        rows.append({"task": task, "method": method, "n": loss.shape[0], "epochs": rt.epochs,
                     "at_pruning": loss[:, 0].mean(), "epoch_1": loss[:, 1].mean(), "final": loss[:, -1].mean(),
                     "dense": float(np.mean(rt.dense_loss)), "final_accuracy": acc, "seeds_lower": lower})
    return pd.DataFrame(rows)

