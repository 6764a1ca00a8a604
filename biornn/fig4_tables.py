"""The tables notebook 06 prints (Figure 4), computed from run summaries (:func:`biornn.celltype.summarize`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from biornn.celltype import REFERENCE_NAMES, sizes_dict
from biornn.connectivity import POPULATION_LABELS, aggregate_blocks, display_order

IDENTIFIABILITY_KEYS = ("rho", "rho_abs", "rho_coupling_abs", "sign_agreement")


def fit_table(runs: dict, baselines: dict | None = None) -> pd.DataFrame:
    """Held-out r and R² per population (median over seeds), dense and sparse, per variant, in display order.

    Args:
        runs: ``{label: Fig4Run}``.
        baselines: reference predictors (``summary["baselines"]``) to show beside them (R²).
    """
    cols = {}
    for label, run in runs.items():
        for which in ("dense", "sparse"):
            for key, name in (("r", "r"), ("r2", "R2")):
                cols[(label, which, name)] = np.median([r["heldout"][which][key] for r in run.summary["runs"]],
                                                       axis=0)
    for name, b in (baselines or {}).items():
        cols[("reference", REFERENCE_NAMES[name], "R2")] = np.asarray(b["r2"])
    index = [label.replace("_", " ") for label in POPULATION_LABELS]
    return pd.DataFrame(cols, index=index).iloc[display_order()]


def identifiability_table(runs: dict) -> pd.DataFrame:
    """Identifiability scores (mean ± SD over seeds) of every variant beside its structure-only baseline."""
    rows = []
    for label, run in runs.items():
        s = run.summary
        if "identifiability" not in s:
            continue
        for name, key in ((label, "identifiability"),
                          (f"{label}: structure only (W_init ⊙ mask)", "identifiability_baseline")):
            res = s[key]
            rows.append({"model": name, "blocks": int(res["n_blocks"]),
                         **{k: f"{np.mean(res[k]):.2f} ± {np.std(res[k], ddof=1):.2f}" for k in IDENTIFIABILITY_KEYS},
                         "rho_abs (seed mean)": round(float(res["rho_abs_of_mean"]), 2)})
    return pd.DataFrame(rows)


def condition_summary(fits: pd.DataFrame) -> pd.DataFrame:
    """Per window and condition: seeds, range of held-out median r, the reference predictors and constraints."""
    return fits.groupby(["window", "condition"]).agg(
        seeds=("seed", "size"), median_r_min=("median_r", "min"), median_r_max=("median_r", "max"),
        median_r2=("median_r2", "median"), trace_r=("trace_median_r", "median"),
        train_r=("train_median_r", "median"), train_mean_r=("train_mean_r", "first"),
        oracle_r=("time_mean_r", "first"), linear_r=("linear_history_r", "first"),
        dense_r=("dense_median_r", "median"), violations=("sign_violations", "sum"),
        outside_mask=("outside_mask", "sum"), rho_abs=("rho_abs", "mean"),
        rho_abs_structure=("rho_abs_structure", "mean"), train_minutes=("train_minutes", "first"))


def density_report(runs: dict, target: np.ndarray, sizes) -> pd.DataFrame:
    """Realised / target density at the area-layer level, within areas and across, per variant (mean over seeds)."""
    sizes = sizes_dict(sizes)
    target_layer, _ = aggregate_blocks(target, sizes)
    same_area = np.kron(np.eye(2), np.ones((3, 3))).astype(bool)
    rows = []
    for label, run in runs.items():
        real_layer, _ = aggregate_blocks(run.summary["realised_density"].mean(0), sizes)
        within = same_area & (target_layer > 0)
        across = ~same_area & (target_layer > 0)
        ratio = real_layer[within] / target_layer[within]
        rows.append({"variant": label, "within: realised/target": round(float(ratio.mean()), 3),
                     "within: min": round(float(ratio.min()), 3), "within: max": round(float(ratio.max()), 3),
                     "inter-area realised": np.round(real_layer[across], 3).tolist(),
                     "inter-area target": np.round(target_layer[across], 3).tolist()})
    return pd.DataFrame(rows)


def layer_densities(summary: dict, sizes) -> pd.DataFrame:
    """Realised densities at the area-layer level (mean over seeds) as a labelled 6 x 6 table [post, pre]."""
    values, names = aggregate_blocks(summary["realised_density"].mean(0), sizes_dict(sizes))
    return pd.DataFrame(values, index=names, columns=names)
