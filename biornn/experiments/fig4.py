"""The runs and tables of notebooks 06 and 06b (Figure 4), computed from run summaries
(:func:`biornn.celltype.summarize`).

:func:`fig4_runs` is where the mode is decided (train now or read the cache), so the notebooks call the same
functions in both modes; every other function here only reads the :class:`~biornn.celltype.Fig4Run` summaries.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from biornn.celltype import REFERENCE_NAMES, Fig4Run, celltype_config, fig4_run, sizes_dict
from biornn.core.config import check_mode
from biornn.core.errors import BiornnError
from biornn.data.curate import cached_datasets
from biornn.nn.connectivity import POPULATION_LABELS, aggregate_blocks, display_order, populations

IDENTIFIABILITY_KEYS = ("rho", "rho_abs", "rho_coupling_abs", "sign_agreement")
#: The two variants notebook 06 compares (label -> ``published`` flag of :func:`biornn.celltype.celltype_config`).
SHOWN_VARIANTS = {"as published": True, "corrected": False}


def fig4_runs(condition: str = "familiar_change", mode: str = "quick", progress: bool = False
              ) -> dict[str, Fig4Run]:
    """Both variants of Figure 4 for one condition: trained now (quick mode) or read from the cache (paper mode).

    Quick mode builds (or reads) the quick twin's datasets and trains both variants at quick sizes (about a minute
    on 2 CPU cores). Paper mode reads the summaries in ``data/results/fig4/`` (N = 1440, 5 seeds).

    Args:
        condition: ``familiar_change`` ... (the full name).
        mode: ``quick`` or ``paper`` (default ``quick``).
        progress: show progress bars while building data and training.

    Returns:
        ``{"as published": Fig4Run, "corrected": Fig4Run}``.

    Raises:
        BiornnError: paper mode and a variant's summary is not cached.
    """
    mode = check_mode(mode)
    configs = {label: celltype_config(condition, mode, published=published)
               for label, published in SHOWN_VARIANTS.items()}
    if mode == "paper":
        runs = {label: fig4_run(cfg, None, "paper") for label, cfg in configs.items()}
        missing = [label for label, run in runs.items() if run is None]
        if missing:
            raise BiornnError(f"no paper-mode Figure 4 summary cached for {condition} ({', '.join(missing)}); compute "
                              "it with python -m biornn celltype train / summarize, or set BIORNN_MODE=quick")
        return runs
    datasets, _ = cached_datasets(conditions=(condition,), mode="quick", progress=progress)
    return {label: fig4_run(cfg, datasets[condition], "quick", progress=progress) for label, cfg in configs.items()}


def run_overview(runs: dict) -> pd.DataFrame:
    """One row per variant: network size, seeds, epochs, the switches, the device and the data it was trained on.

    Args:
        runs: ``{label: Fig4Run}``.
    """
    rows = []
    for label, run in runs.items():
        c, data = run.config, run.summary["data"]
        rows.append({"variant": label, "N": sum(c.sizes) * 6, "seeds": len(c.seeds),
                     "epochs": f"{c.dense_epochs} + {c.finetune_epochs}", "input": c.input_mapping,
                     "pruning": c.pruning, "checkpoint": c.checkpoint_rule, "device": run.summary["device"],
                     "data": data.get("source"), "train samples": data.get("n_train"),
                     "held-out samples": data.get("n_heldout"), "steps": data.get("steps")})
    return pd.DataFrame(rows).set_index("variant")


def constraint_counts(runs: dict) -> pd.DataFrame:
    """Per variant, summed over seeds: sign violations, nonzero weights outside the mask, and connections in blocks
    whose target density is 0 (every count must be 0)."""
    rows = {}
    for label, run in runs.items():
        s = run.summary
        rows[label] = {"sign violations": sum(sum(r["sign_violations"].values()) for r in s["runs"]),
                       "outside the mask": sum(r["outside_mask"] for r in s["runs"]),
                       "in zero-probability blocks": int(s["realised_density"][:, s["target_density"] == 0].sum())}
    return pd.DataFrame(rows).T


def kept_fraction(run: Fig4Run) -> np.ndarray:
    """Per seed, the fraction of the ``N x N`` recurrent entries that the pruning mask keeps."""
    n = populations(run.config.sizes_dict)["size"].to_numpy(dtype=float)
    pairs = np.outer(n, n)
    return (run.summary["realised_density"] * pairs).sum(axis=(1, 2)) / pairs.sum()


def reference_table(baselines: dict) -> pd.DataFrame:
    """The reference predictors of the next frame on the held-out set: MSE (x 1e5), median r and R² over populations.

    Args:
        baselines: ``summary["baselines"]`` (:func:`biornn.celltype.baselines`).
    """
    return pd.DataFrame({REFERENCE_NAMES[name]: {"held-out MSE x 1e5": 1e5 * float(b["mse"]),
                                                 "median r": np.median(b["r"]), "median R2": np.median(b["r2"])}
                         for name, b in baselines.items()}).T


def fit_overview(runs: dict, baselines: dict | None = None) -> pd.DataFrame:
    """Median over the 18 populations of the held-out r and R² (each the median over seeds), per variant and stage
    (dense, sparse), with the reference predictors below them.

    Args:
        runs: ``{label: Fig4Run}``.
        baselines: ``summary["baselines"]``, or None.
    """
    rows = {}
    for label, run in runs.items():
        for which in ("dense", "sparse"):
            rows[f"{label}, {which}"] = {
                name: float(np.median(np.median([r["heldout"][which][key] for r in run.summary["runs"]], axis=0)))
                for key, name in (("r", "median r"), ("r2", "median R2"))}
    for name, b in (baselines or {}).items():
        rows[REFERENCE_NAMES[name]] = {"median r": float(np.median(b["r"])), "median R2": float(np.median(b["r2"]))}
    return pd.DataFrame(rows).T


def reference_losses(runs: dict) -> pd.DataFrame:
    """Per variant and seed, the losses in the reference's unit (sums over an epoch's batches, §7.1): dense epoch 10
    and last, the best dense epoch, one batch right after pruning, fine-tuning epoch 10 and last, and the epoch the
    sparse checkpoint comes from (None: the last epoch)."""
    rows = []
    for label, run in runs.items():
        f = run.summary["reference_factor"]
        for r in run.summary["runs"]:
            d, t = np.array(r["dense_loss"]) * f, np.array(r["finetune_loss"]) * f
            rows.append({"variant": label, "seed": r["seed"], f"dense ep {min(10, len(d))}": d[min(10, len(d)) - 1],
                         f"dense ep {len(d)}": d[-1], "best dense ep": r["dense_best_epoch"],
                         "pruned, one batch": r["pruned_batch_loss"],
                         f"fine-tune ep {min(10, len(t))}": t[min(10, len(t)) - 1], f"fine-tune ep {len(t)}": t[-1],
                         "sparse epoch": r["sparse_epoch"]})
    return pd.DataFrame(rows)


def strength_by_type(runs: dict) -> pd.DataFrame:
    """Mean |w| over the *kept* entries of the sparse model per presynaptic type (median over blocks and seeds)."""
    pre_type = np.array([label.split("_")[2] for label in POPULATION_LABELS])
    return pd.DataFrame({label: {t: float(np.nanmedian(run.summary["nonzero_abs_sparse"][:, :, pre_type == t]))
                                 for t in ("Pyr", "SST", "VIP")} for label, run in runs.items()}).T


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
