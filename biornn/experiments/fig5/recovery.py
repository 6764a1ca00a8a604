"""Does a fitted cell-type RNN recover the connectivity differences planted in the digital twin?

The question of Figures 4-5 asked of data whose answer is known. Two twins share everything (timelines, drives,
block strengths, noise streams) except the planted pathway gains: the **planted** twin's conditions differ by
:data:`biornn.data.synthetic.DEFAULT_PATHWAY_GAINS`, the **null** twin's do not differ at all. Fitting both with the
same
variant and testing the same condition pairs shows how often a fitted difference is real (planted twin, planted
pathway), spurious (planted twin, unplanted pathway) or produced by drive and data alone (null twin).

The measurement per twin, window, condition pair ``(A, B)`` (:data:`biornn.core.conditions.PAIRS`) and inter-area
pathway
(FF, FB_L23, FB_L5):

* **pathway strength** of a run: the mean over the pathway's population blocks of the block strength (mean ``|w|``
  over the run's kept entries, ``nonzero_abs_sparse`` of the summaries); the true strength is the same mean of
  ``|W_true|``;
* **delta**: ``log(strength_B) - log(strength_A)``; fitted delta = mean over B's runs minus mean over A's runs;
* **unit of replication**: the experiment resample. A run is one bootstrap resample of the one fixed dataset of its
  condition (each population's experiments, then trials, redrawn; :mod:`biornn.data.replicates`) plus a new
  initialisation. Runs are therefore bootstrap replicates of one fit, not independent data;
* **test** (:data:`TEST`, :func:`biornn.stats.significance.bootstrap_z`): ``z = delta / sqrt(sd_A^2 + sd_B^2)`` with
``sd`` the
  SD of the per-run log strength over a condition's resamples, **not** divided by ``sqrt(n)`` (the SD of bootstrap
  replicates already estimates the standard error of one fit; dividing would shrink it as runs are added while the
  data stay the same); two-sided normal p; ``n = runs of A`` vs ``runs of B``, and with 5 of each the SE is itself
  noisy; **correction**: Benjamini-Yekutieli over the pairs x pathways of one twin and window (27 when all nine
  pairs are tested; the contrasts share conditions, so Benjamini-Hochberg's guarantee is not established); ``alpha``
  0.05;
* a planted change is **recovered** when its adjusted p is below alpha and the fitted delta has the planted sign,
  **wrong sign** when significant with the opposite sign; an unplanted difference (planted twin, true delta 0) or any
  null-twin difference is **flagged** when its adjusted p is below alpha;
* **beyond the null twin** (:func:`_beyond_null`): seed k of the planted and of the null twin draw the same
  resample and the same initialisation (the streams depend on the seed, condition and population, not the twin),
  so the interaction is tested **paired by seed**: ``d_k = (B_k - A_k)_planted - (B_k - A_k)_null``,
  :func:`biornn.stats.significance.paired_bootstrap_z` (SE = SD of ``d_k`` over seeds, again not over ``sqrt(n)``), BY
  over the
  rows.

This is the **separate** estimator of the paper (one model per condition, differences of the fitted weights).

Identifiability on block strength: Spearman's rho over the twin's nonzero blocks between a run's block strengths
(in ΔF/F units, :func:`dff_strength`) and ``|W_true|``, beside the structure-only baseline
``density x |type strength|`` (what the connectivity table and the cell types alone predict; not circular because
the twin's strengths are drawn independently of density).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from biornn.celltype import (
    ablation_configs,
    celltype_config,
    find_fig4_runs,
    load_summary,
    save_summary,
    summarize,
    summary_dir,
    train_celltype,
    train_celltype_stack,
)
from biornn.core.conditions import ABBREVIATIONS, CONDITIONS, PAIRS
from biornn.core.conditions import BY_ABBREVIATION as ABBREV_TO_CONDITION
from biornn.core.errors import BiornnError
from biornn.core.store import atomic_write_bytes
from biornn.data.allen import load_metadata
from biornn.data.curate import (
    CurateConfig,
    build_datasets,
    cached_datasets,
    load_dataset_with_windows,
    open_source,
    save_dataset,
)
from biornn.data.synthetic import TwinConfig, write_ground_truth
from biornn.nn.connectivity import PATHWAYS, POPULATION_LABELS, pathway_blocks
from biornn.stats.significance import ALPHA, adjust, bootstrap_z, paired_bootstrap_z

TWIN_KINDS = ("planted", "null")
#: Estimators of ``compare recovery``: the cached per-condition runs, the joint linear fit, the joint RNN (to come).
ESTIMATORS = ("separate", "joint-linear", "joint-rnn")
TEST = "bootstrap_z"
CORRECTION = "fdr_by"
#: What the report's statistics are about (``statistics`` of :func:`recovery_report`).
UNIT_OF_REPLICATION = ("the experiment resample: one bootstrap redraw of each population's experiments, then trials, "
                       "of the condition's one fixed dataset, plus one initialisation (biornn.replicates); the runs "
                       "are bootstrap replicates of one fit, not independent data")
#: |true delta| below this counts as no planted change (float round-off of equal strengths).
PLANTED_TOL = 1e-9


def pathway_strength(strength) -> dict[str, np.ndarray]:
    """Per pathway, the mean block strength over its blocks: ``(..., 18, 18)`` -> ``{pathway: (...)}``."""
    strength = np.asarray(strength, dtype=np.float64)
    out = {}
    for name, blocks in pathway_blocks().items():
        out[name] = np.nanmean(np.stack([strength[..., post, pre] for post, pre in blocks], axis=-1), axis=-1)
    return out


def _log_strength(strength: np.ndarray) -> dict[str, np.ndarray]:
    with np.errstate(divide="ignore"):
        return {k: np.log(v) for k, v in pathway_strength(strength).items()}


def compare_twin(runs: dict[str, np.ndarray], pairs=PAIRS, alpha: float = ALPHA) -> list[dict]:
    """Bootstrap z-tests (:func:`biornn.stats.significance.bootstrap_z`) of every pair and pathway of one twin,
    BY-adjusted over
    them (module docstring).

    Args:
        runs: ``{abbreviation: (S, 18, 18) block strengths}`` (``FC``, ``FN`` ...), one run per experiment resample.
        pairs: condition pairs ``(A, B)``; deltas are B - A.

    Returns:
        One row per (pair, pathway): ``pair``, ``pathway``, ``delta``, ``se`` (``sqrt(sd_A^2 + sd_B^2)``), ``z``,
        ``p``, ``p_adj``, ``significant``, ``n_a``, ``n_b``.
    """
    missing = sorted({c for pair in pairs for c in pair} - set(runs))
    if missing:
        raise BiornnError(f"no runs for condition(s) {', '.join(missing)}; train and summarise them first")
    logs = {c: _log_strength(v) for c, v in runs.items()}
    rows = []
    for a, b in pairs:
        for path in PATHWAYS:
            res = bootstrap_z(logs[a][path], logs[b][path])
            rows.append({"pair": f"{a}->{b}", "pathway": path, "delta": res["delta"], "se": res["se"],
                         "z": res["z"], "p": res["pvalue"], "n_a": res["n_a"], "n_b": res["n_b"]})
    p = np.array([r["p"] for r in rows])
    p_adj = adjust(np.nan_to_num(p, nan=1.0), CORRECTION)
    for row, q in zip(rows, p_adj):
        row["p_adj"] = float(q)
        row["significant"] = bool(q < alpha)
    return rows


def true_deltas(truth: dict[str, np.ndarray], pairs=PAIRS) -> dict[tuple[str, str], float]:
    """``{(pair, pathway): log true-strength ratio}`` from ``{abbreviation: W_true (18, 18)}``."""
    logs = {c: _log_strength(np.abs(w)) for c, w in truth.items()}
    return {(f"{a}->{b}", p): float(logs[b][p] - logs[a][p]) for a, b in pairs for p in PATHWAYS}


def recovery_report(planted: dict[str, np.ndarray], null: dict[str, np.ndarray], truth: dict[str, np.ndarray],
                    pairs=PAIRS, alpha: float = ALPHA, seeds: dict[str, dict[str, list[int]]] | None = None) -> dict:
    """Calibrated recovery of the separate estimator: planted changes recovered, wrong-sign, unplanted and null
    differences flagged, and the change beyond the null twin (statistics in the module docstring).

    Args:
        planted, null: ``{abbreviation: (S, 18, 18) block strengths}`` of the two twins' runs (one run per
            experiment resample).
        truth: ``{abbreviation: (18, 18) W_true}`` of the planted twin.
        seeds: ``{"planted": {abbreviation: [seed per run]}, "null": {...}}`` for the pairing by seed of the
            interaction test; None: run ``i`` is seed ``i`` on both twins.

    Returns:
        JSON-ready dict: ``rows`` (per pair and pathway: ``planted_delta``, ``fitted_delta``, ``se``, ``z``, ``p``,
        ``p_adj``, ``null_delta``, ``null_se``, ``null_z``, ``null_p``, ``null_p_adj``, ``n_a``, ``n_b``, ``kind``
        planted / unplanted, ``recovered`` and ``wrong_sign`` or ``flagged``, ``null_flagged``, and the interaction
        columns of :func:`_beyond_null`); totals ``planted_total``, ``planted_recovered``, ``wrong_sign_flagged``,
        ``unplanted_total``, ``unplanted_flagged``, ``null_total``, ``null_flagged``, ``interaction_significant``,
        ``interaction_recovered``, ``interaction_wrong_sign``, ``interaction_unplanted_flagged``;
        ``calibrated_vs_planted`` (descriptive); ``estimator`` ("separate"), ``sampling`` ("population": each
        population's experiments resampled on their own), ``resamples`` and ``null_seeds`` (fewest runs of any
        condition of the planted and of the null twin); ``test``, ``correction``, ``alpha``, ``unit_of_replication``
        and ``statistics`` (test, n, correction and unit of replication of each statistic, and the resample SD).
    """
    fitted = compare_twin(planted, pairs, alpha)
    nulls = {(r["pair"], r["pathway"]): r for r in compare_twin(null, pairs, alpha)}
    deltas = true_deltas(truth, pairs)
    rows = []
    for r in fitted:
        key = (r["pair"], r["pathway"])
        true, nr = deltas[key], nulls[key]
        planted_change = abs(true) > PLANTED_TOL
        row = {**{k: r[k] for k in ("pair", "pathway", "n_a", "n_b", "se", "z", "p", "p_adj")},
               "planted_delta": true, "fitted_delta": r["delta"], "null_delta": nr["delta"], "null_se": nr["se"],
               "null_z": nr["z"], "null_p": nr["p"], "null_p_adj": nr["p_adj"], "null_flagged": nr["significant"],
               "kind": "planted" if planted_change else "unplanted"}
        if planted_change:
            right = bool(np.sign(r["delta"]) == np.sign(true))
            row["recovered"] = bool(r["significant"] and right)
            row["wrong_sign"] = bool(r["significant"] and not right)
        else:
            row["flagged"] = bool(r["significant"])
        rows.append(row)
    _beyond_null(rows, planted, null, seeds, alpha)
    planted_rows = [r for r in rows if r["kind"] == "planted"]
    unplanted_rows = [r for r in rows if r["kind"] == "unplanted"]
    calibrated = np.array([r["calibrated_delta"] for r in rows])
    true = np.array([r["planted_delta"] for r in rows])
    resamples = min(len(np.asarray(v)) for v in planted.values())
    null_seeds = min(len(np.asarray(v)) for v in null.values())
    m = len(rows)
    return {"rows": rows, "planted_total": len(planted_rows),
            "calibrated_vs_planted": {
                "spearman_rho": float(spearmanr(calibrated, true)[0]), "slope": calibrated_slope(rows), "n": m,
                "what": "Spearman rho, and the least-squares slope through the origin, over pairs x pathways of the "
                        "fitted change beyond the null twin (planted-twin delta minus null-twin delta) on the planted "
                        "log change; descriptive, no test"},
            "interaction_significant": sum(r["interaction_significant"] for r in rows),
            "interaction_recovered": sum(r["interaction_recovered"] for r in planted_rows),
            "interaction_wrong_sign": sum(r["interaction_wrong_sign"] for r in planted_rows),
            "interaction_unplanted_flagged": sum(r["interaction_significant"] for r in unplanted_rows),
            "planted_recovered": sum(r["recovered"] for r in planted_rows),
            "wrong_sign_flagged": sum(r["wrong_sign"] for r in planted_rows),
            "unplanted_total": len(unplanted_rows), "unplanted_flagged": sum(r["flagged"] for r in unplanted_rows),
            "null_total": m, "null_flagged": sum(r["null_flagged"] for r in rows),
            "estimator": "separate", "sampling": "population", "resamples": resamples, "null_seeds": null_seeds,
            "test": "bootstrap_z: two-sided z = delta / sqrt(sd_A^2 + sd_B^2) on per-resample log pathway strength, "
                    "sd = SD over a condition's resamples (not divided by sqrt(n))",
            "correction": f"Benjamini-Yekutieli over the {m} pairs x pathways of one twin", "alpha": alpha,
            "unit_of_replication": UNIT_OF_REPLICATION,
            "statistics": _statistics(planted, null, rows, resamples, null_seeds, alpha)}


def _statistics(planted: dict, null: dict, rows: list[dict], resamples: int, null_seeds: int, alpha: float) -> dict:
    """The report's ``statistics``: every statistic with its test, n, correction and unit of replication."""
    m = len(rows)
    n_pairs = sorted({r["interaction_n"] for r in rows})
    correction = (f"Benjamini-Yekutieli (fdr_by) over the {m} pairs x pathways of one twin, alpha {alpha}: the "
                  "contrasts share conditions' runs, so they are correlated and Benjamini-Hochberg's guarantee is not "
                  "established")
    return {
        "within_twin": {
            "test": TEST, "n": f"{resamples} resamples per condition (planted twin), {null_seeds} (null twin); the SE "
                               "is estimated from them (n - 1 degrees of freedom per condition), so it is itself "
                               "noisy at this n",
            "what": "delta = mean log pathway strength of B's resamples minus A's; SE = sqrt(sd_A^2 + sd_B^2), sd = SD "
                    "over a condition's resamples (ddof 1), not divided by sqrt(n) (each resample's fit is one "
                    "bootstrap replicate, so their SD is already the standard error of one fit; it is the "
                    "conservative end for the mean over resamples); z = delta / SE; two-sided normal p",
            "correction": correction, "unit_of_replication": UNIT_OF_REPLICATION,
            "outcomes": "recovered: planted row significant with the planted sign; wrong_sign_flagged: planted row "
                        "significant with the opposite sign; unplanted_flagged: planted-twin row with no planted "
                        "change significant; null_flagged: null-twin row significant"},
        "interaction": {
            "test": "paired_bootstrap_z",
            "n": f"{'/'.join(map(str, n_pairs))} seeds paired across the twins per row",
            "what": "per seed k, d_k = (B_k - A_k) of the planted twin minus (B_k - A_k) of the null twin (log pathway "
                    "strength); z = mean(d) / SD(d) over seeds (ddof 1, not divided by sqrt(n): each d_k is one "
                    "bootstrap replicate of the contrast); two-sided normal p",
            "pairing": "seed k of both twins draws the same experiment and trial resample (streams derive from seed, "
                       "condition, population and scheme, not the twin, on identical experiment and trial tables) "
                       "and the same initialisation (seed, 'init', 'celltype')",
            "correction": correction, "unit_of_replication": UNIT_OF_REPLICATION},
        "resample_sd": {**resample_sd(planted, null), "what": (
            "pooled SD over resamples of per-resample log pathway strength (all conditions of both twins, n - 1 "
            "weights); a pair delta's SE is about sd * sqrt(2) whatever the number of resamples (more resamples "
            "estimate it better, they do not shrink it); descriptive")},
    }


def resample_sd(planted: dict, null: dict) -> dict[str, float]:
    """``{pathway: pooled SD over resamples of per-resample log pathway strength}``, pooled over every condition of
    both twins (pooled variance, n - 1 weights); NaN where no condition has two finite values."""
    var = {path: [0.0, 0] for path in PATHWAYS}
    for runs in (planted, null):
        for value in runs.values():
            logs = _log_strength(value)
            for path in PATHWAYS:
                x = logs[path][np.isfinite(logs[path])]
                if x.size > 1:
                    var[path][0] += x.var(ddof=1) * (x.size - 1)
                    var[path][1] += x.size - 1
    return {path: float(np.sqrt(v / df)) if df else float("nan") for path, (v, df) in var.items()}


def calibrated_slope(rows: list[dict]) -> float:
    """Least-squares slope through the origin of ``calibrated_delta`` on ``planted_delta`` over ``rows`` (1: the fit
    moves by the planted amount beyond the null twin; 0: not at all); 0 when nothing was planted. Descriptive."""
    true = np.array([r["planted_delta"] for r in rows])
    calibrated = np.array([r["calibrated_delta"] for r in rows])
    return float(true @ calibrated / (true @ true)) if true.any() else 0.0


def _by_seed(values: np.ndarray, seeds: list[int] | None) -> dict[int, float]:
    seeds = list(range(len(values))) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != len(values):
        raise BiornnError(f"{len(seeds)} seeds for {len(values)} runs; pass one seed per run")
    return dict(zip(seeds, np.asarray(values, dtype=np.float64)))


def _beyond_null(rows: list[dict], planted: dict, null: dict, seeds: dict | None = None, alpha: float = ALPHA) -> None:
    """Add the change beyond the null twin and its paired test to every row, in place.

    ``calibrated_delta``: planted-twin minus null-twin fitted delta (means over all runs; descriptive). Test: the
    twin x condition interaction **paired by seed** (seed k of both twins shares the resample and the
    initialisation): ``d_k = (B_k - A_k)_planted - (B_k - A_k)_null`` of per-run log pathway strength over the seeds
    that all four groups have, :func:`biornn.stats.significance.paired_bootstrap_z` (``interaction_delta`` = mean of
    ``d_k``,
    ``interaction_se`` = SD of ``d_k``, not divided by sqrt(n); ``interaction_z``, ``interaction_p``,
    ``interaction_n`` seeds), Benjamini-Yekutieli over the rows (``interaction_p_adj``, ``interaction_significant``
    at ``alpha``); on planted rows ``interaction_recovered`` (significant, planted sign) and
    ``interaction_wrong_sign``. Unit of replication: the experiment resample (a seed).

    Args:
        seeds: ``{"planted": {abbreviation: [seed per run]}, "null": {...}}``; None: run ``i`` is seed ``i``.
    """
    seeds = seeds or {}
    logs = {t: {c: _log_strength(v) for c, v in runs.items()} for t, runs in (("planted", planted), ("null", null))}
    pvals = []
    for row in rows:
        a, b = row["pair"].split("->")
        groups = {(t, c): _by_seed(logs[t][c][row["pathway"]], seeds.get(t, {}).get(c))
                  for t in ("planted", "null") for c in (a, b)}
        common = sorted(set.intersection(*(set(g) for g in groups.values())))
        pl, nu = (("planted", b), ("planted", a)), (("null", b), ("null", a))
        d = np.array([(groups[pl[0]][k] - groups[pl[1]][k]) - (groups[nu[0]][k] - groups[nu[1]][k]) for k in common])
        res = paired_bootstrap_z(d)
        row.update(calibrated_delta=float(row["fitted_delta"] - row["null_delta"]), interaction_delta=res["delta"],
                   interaction_se=res["se"], interaction_z=res["z"], interaction_p=res["pvalue"],
                   interaction_n=res["n"])
        pvals.append(res["pvalue"])
    adj = adjust(np.nan_to_num(np.array(pvals, dtype=np.float64), nan=1.0), CORRECTION)
    for row, q in zip(rows, adj):
        significant = bool(q < alpha)
        row.update(interaction_p_adj=float(q), interaction_significant=significant)
        if row["kind"] == "planted":
            right = bool(np.sign(row["interaction_delta"]) == np.sign(row["planted_delta"]))
            row.update(interaction_recovered=significant and right, interaction_wrong_sign=significant and not right)


def strength_identifiability(strength, truth, density, type_strength) -> dict:
    """Spearman rho of block strengths with ``|W_true|`` over its nonzero blocks, and the structure-only baseline.

    Args:
        strength: ``(S, 18, 18)`` fitted block strengths (mean ``|w|`` over kept entries).
        truth: ``(18, 18)`` ``W_true``.
        density: ``(18, 18)`` the table's block densities.
        type_strength: ``(18,)`` ``|type strength|`` of each presynaptic population.

    Returns:
        ``{"rho": [S], "baseline": float, "n_blocks": int}``.
    """
    truth = np.abs(np.asarray(truth, dtype=np.float64))
    nz = truth > 0
    structure = np.asarray(density, dtype=np.float64) * np.asarray(type_strength, dtype=np.float64)[None, :]
    rho = [float(spearmanr(np.nan_to_num(s[nz]), truth[nz])[0]) for s in np.asarray(strength, dtype=np.float64)]
    return {"rho": rho, "baseline": float(spearmanr(structure[nz], truth[nz])[0]), "n_blocks": int(nz.sum())}


def load_twin_runs(root: str | os.PathLike | None, variant: str, window: str, twin: str) -> dict[str, dict]:
    """``{abbreviation: summary}`` of one twin's cached runs (:func:`biornn.celltype.find_fig4_runs`)."""
    found = find_fig4_runs(root, variant=variant, twin=twin)
    out = {c: load_summary(path) for (w, c), path in found.items() if w == window}
    if not out:
        raise BiornnError(f"no cached {variant} runs of the {twin} twin ({window} window) under "
                          f"{root or 'data/results/fig4'}; train and summarise them first")
    return out


def report_from_cache(root: str | os.PathLike | None, variant: str, window: str) -> dict:
    """:func:`recovery_report` of the cached planted- and null-twin runs, with held-out fits and identifiability."""
    return report_from_summaries({t: load_twin_runs(root, variant, window, t) for t in TWIN_KINDS}, variant, window)


def dff_strength(summary: dict) -> np.ndarray:
    """``(S, 18, 18)`` fitted block strengths in ΔF/F units, to first order: a linear map of the raw traces with
    coupling ``w`` becomes ``w * sd_pre / sd_post`` on standardised traces, so a standardised fit's strengths are
    multiplied back by ``sd_post / sd_pre`` (the pooled SDs stored with the data); unchanged for a fit on raw ΔF/F.
    Exact only for a linear map; for the RNN (hidden units, nonlinearity, frozen readouts) it is not tested.

    Used for identifiability, which compares strengths across blocks. A block's delta between conditions does not
    depend on the factor (pooled statistics give every condition the same one), but a pathway's mean over blocks
    with different post populations does; the recovery report's pathway strengths stay in the fit's own units."""
    strength = np.asarray(summary["nonzero_abs_sparse"], dtype=np.float64)
    stats = (summary.get("data") or {}).get("standardization")
    if not stats or not (summary.get("config") or {}).get("standardize", False):
        return strength
    sd = np.asarray(stats["sd"], dtype=np.float64)
    return strength * (sd[:, None] / sd[None, :])


def _identifiability_of(summary: dict) -> dict:
    strengths = TwinConfig().type_strength
    types = [lab.split("_")[2] for lab in POPULATION_LABELS]
    return strength_identifiability(dff_strength(summary), summary["ground_truth"], summary["target_density"],
                                    [strengths[t] for t in types])


def write_report(report: dict, out: str | os.PathLike) -> Path:
    """Write ``OUT/recovery.json`` atomically."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BiornnError(f"--out {out} is a file; pass a folder path")
    path = out / "recovery.json"
    atomic_write_bytes(path, (json.dumps(report, indent=1) + "\n").encode())
    return path


def describe(report: dict) -> str:
    """A few lines for the terminal and the notebooks: every count with its test, n, correction and unit."""
    stats = report.get("statistics", {})
    n = f"n = {report['resamples']} resamples per condition" if "resamples" in report else "n = runs per condition"
    inter = (f"{report['interaction_recovered']} of {report['planted_total']} planted rows recovered, "
             f"{report['interaction_wrong_sign']} with the wrong sign, {report['interaction_unplanted_flagged']} of "
             f"{report['unplanted_total']} unplanted rows flagged" if "interaction_recovered" in report else
             f"{report['interaction_significant']} of {report['null_total']} significant")
    return (f"{report.get('variant', '?')} / {report.get('window', '?')} window, {report.get('estimator', '?')} "
            f"estimator: planted changes recovered {report['planted_recovered']} of {report['planted_total']}, "
            f"{report.get('wrong_sign_flagged', '?')} significant with the wrong sign; unplanted differences flagged "
            f"{report['unplanted_flagged']} of {report['unplanted_total']}; null-twin differences flagged "
            f"{report['null_flagged']} of {report['null_total']} ({report['test']}; {n}; {report['correction']}, "
            f"alpha {report['alpha']}; unit of replication: {report['unit_of_replication']}). Beyond the null twin "
            f"({stats.get('interaction', {}).get('test', 'interaction test')}, paired by seed, same correction): "
            f"{inter}; planted vs calibrated change Spearman rho "
            f"{report['calibrated_vs_planted']['spearman_rho']:.2f} (n = {report['calibrated_vs_planted']['n']} rows, "
            "descriptive)")


# --------------------------------------------------------------------------------------------------------------------
# The paper-mode queue: both twins, six conditions, one window
# --------------------------------------------------------------------------------------------------------------------
def twin_datasets(twin: str, mode: str, root: str | os.PathLike, progress: bool = True) -> dict:
    """The six datasets of one twin with their rows, built once into ``ROOT/twin-<mode>-<twin>/`` (with
    ``ground_truth.npz``) and read back afterwards."""
    folder = Path(root) / f"twin-{mode}-{twin}"
    if not all((folder / f"{c}_windows.npz").exists() for c in CONDITIONS):
        meta = load_metadata("bundled")
        source = open_source("twin", mode=mode, metadata=meta, progress=progress, twin=twin)
        for ds in build_datasets(source, meta, CONDITIONS, CurateConfig(), progress=progress,
                                 keep_windows=True).values():
            save_dataset(ds, folder, windows=True)
        write_ground_truth(source.config, folder)
    return {c: load_dataset_with_windows(folder, c) for c in CONDITIONS}


#: Training order of :func:`run_queue`: the headline familiar pairs first (FN, FC, FO), then the novel ones.
QUEUE_ORDER = ("familiar_no_change", "familiar_change", "familiar_omission", "novel_no_change", "novel_change",
               "novel_omission")


def run_queue(variant: str = "recommended", window: str = "half", twins=TWIN_KINDS, mode: str = "paper",
              data_root: str | os.PathLike = "data/allen", runs_root: str | os.PathLike = "data/runs",
              results_root: str | os.PathLike | None = None, device: str | None = None,
              checkpoint_every: int | None = None, progress: bool = True, stack: bool = False) -> list[Path]:
    """Train and summarise every missing (twin, condition) of one variant and window, in a fixed order.

    Resumable at every level: a condition whose summary is cached is skipped, a half-trained run resumes from
    ``RUNS/<variant>-<window>-<twin>/<condition>/checkpoints/resume.pt``, datasets are built once. Kill it at any
    time and run the same command again. ``stack``: train a twin's missing conditions as one model batch
    (:func:`biornn.celltype.train_celltype_stack`, checkpoints under ``RUNS/<variant>-<window>-<twin>-stack-...``;
    for CUDA, where it saves kernel launches); the summaries are those of lone runs.

    Returns:
        The summary folders written by this call.
    """
    written = []
    datasets = {twin: twin_datasets(twin, mode, data_root, progress) for twin in twins}
    if stack:
        for twin in twins:
            written += _stack_twin(twin, datasets[twin], variant, window, mode, runs_root, results_root, device,
                                   progress)
        return written
    for cond in QUEUE_ORDER:  # pair by pair, both twins, so a partial queue already answers for whole pairs
        for twin in twins:
            cfg = celltype_config(cond, mode, variant=variant, window=window)
            target = summary_dir(cfg, results_root, twin=twin)
            if (target / "summary.json").exists():
                continue
            out = Path(runs_root) / f"{variant}-{window}-{twin}" / cond
            data = datasets[twin][cond]
            result = train_celltype(cfg, data, device=device, out=out, progress=progress,
                                    checkpoint_every=checkpoint_every)
            save_summary(summarize(result, data, matrices_seed=None), target)
            written.append(target)
            print(f"{twin} {cond}: {result.wall_seconds:.0f} s -> {target}", flush=True)
    return written


def _stack_twin(twin: str, datasets: dict, variant: str, window: str, mode: str, runs_root, results_root, device,
                progress: bool) -> list[Path]:
    """The missing conditions of one twin trained as one stack, then summarised one by one."""
    configs = [celltype_config(c, mode, variant=variant, window=window) for c in QUEUE_ORDER]
    todo = [c for c in configs if not (summary_dir(c, results_root, twin=twin) / "summary.json").exists()]
    if not todo:
        return []
    base = Path(runs_root) / f"{variant}-{window}-{twin}"
    tag = "-".join(ABBREVIATIONS[c.condition] for c in todo)
    results = train_celltype_stack(todo, [datasets[c.condition] for c in todo], device=device,
                                   outs=[base / c.condition for c in todo], stack_dir=f"{base}-stack-{tag}",
                                   progress=progress)
    written = []
    for cfg, result in zip(todo, results):
        target = summary_dir(cfg, results_root, twin=twin)
        save_summary(summarize(result, datasets[cfg.condition], matrices_seed=None), target)
        written.append(target)
        print(f"{twin} {cfg.condition} (stack of {len(todo)}): {result.wall_seconds:.0f} s -> {target}", flush=True)
    return written


def twin_recovery(mode: str, variant: str = "recommended", window: str = "half", root=None, progress: bool = False,
                  device: str | None = None) -> tuple[dict, dict]:
    """The recovery report of notebook 07 and the summaries behind it.

    Paper mode reads the cached runs of both twins (:func:`report_from_cache`). Quick mode trains ``variant`` on the
    quick twins now (3 runs per condition at the quick sizes; about 10 s per condition on 2 cores) and scores the
    same report.

    Returns:
        ``(report, {twin: {abbreviation: summary}})``.
    """
    if mode == "paper":
        runs = {t: load_twin_runs(root, variant, window, t) for t in TWIN_KINDS}
        return report_from_cache(root, variant, window), runs
    runs = {}
    for twin in TWIN_KINDS:
        datasets, _ = cached_datasets("twin", mode="quick", twin=twin, progress=progress)
        runs[twin] = {}
        for cond in CONDITIONS:
            cfg = celltype_config(cond, "quick", variant=variant, window=window)
            result = train_celltype(cfg, datasets[cond], device=device, progress=progress)
            runs[twin][ABBREVIATIONS[cond]] = summarize(result, datasets[cond], n_traces=1, matrices_seed=None)
    return report_from_summaries(runs, variant, window), runs


def report_from_summaries(runs: dict[str, dict[str, dict]], variant: str, window: str) -> dict:
    """:func:`recovery_report` plus held-out fits and identifiability from ``{twin: {abbreviation: summary}}``.

    Only the pairs whose two conditions have runs on both twins are tested (``pairs_tested``; all nine once the
    queue is complete); ``pairs_missing`` lists the others.
    """
    both = set(runs["planted"]) & set(runs["null"])
    pairs = tuple(p for p in PAIRS if set(p) <= both)
    if not pairs:
        raise BiornnError(f"no condition pair has runs on both twins (planted: {sorted(runs['planted'])}, null: "
                          f"{sorted(runs['null'])}); run python -m biornn compare queue further")
    truth = {c: np.asarray(s["ground_truth"]) for c, s in runs["planted"].items()}
    seeds = {t: {c: [r["seed"] for r in s["runs"]] for c, s in v.items()} for t, v in runs.items()}
    report = recovery_report({c: s["nonzero_abs_sparse"] for c, s in runs["planted"].items()},
                             {c: s["nonzero_abs_sparse"] for c, s in runs["null"].items()}, truth, pairs, seeds=seeds)
    report.update(variant=variant, window=window, heldout_median_r={}, identifiability={},
                  pairs_tested=["->".join(p) for p in pairs],
                  pairs_missing=["->".join(p) for p in PAIRS if p not in pairs])
    for twin, summaries in runs.items():
        report["heldout_median_r"][twin] = {ABBREV_TO_CONDITION[c]: float(np.median(
            [np.median(r["heldout"]["sparse"]["r"]) for r in s["runs"]])) for c, s in sorted(summaries.items())}
        report["identifiability"][twin] = {c: _identifiability_of(s) for c, s in sorted(summaries.items())}
    report["n_runs"] = {t: {c: len(s["runs"]) for c, s in sorted(v.items())} for t, v in runs.items()}
    return report


def ablation(condition: str = "familiar_change", window: str = "half", progress: bool = False,
             device: str | None = None) -> tuple[pd.DataFrame, dict]:
    """Notebook 06's ablation at quick sizes on the planted twin: every variant of
    :data:`biornn.celltype.ABLATION`, trained now (3 runs each; about 10 s per variant on 2 cores).

    Returns:
        ``(table, summaries)``: one row per (variant, run) with ``variant``, ``seed``, ``heldout_r`` (median over the
        18 populations of the sparse model's held-out r), ``rho_strength`` and ``baseline``
        (:func:`strength_identifiability`); ``summaries`` by variant label.
    """
    datasets, _ = cached_datasets("twin", mode="quick", twin="planted", progress=progress)
    rows, summaries = [], {}
    for label, cfg in ablation_configs(condition, "quick", window).items():
        result = train_celltype(cfg, datasets[condition], device=device, progress=progress)
        summaries[label] = summary = summarize(result, datasets[condition], n_traces=1, matrices_seed=None)
        ident = _identifiability_of(summary)
        for run, rho in zip(summary["runs"], ident["rho"]):
            rows.append({"variant": label, "seed": run["seed"], "heldout_r": float(np.median(
                run["heldout"]["sparse"]["r"])), "rho_strength": rho, "baseline": ident["baseline"]})
    return pd.DataFrame(rows), summaries


def recovery_frame(report: dict) -> pd.DataFrame:
    """The report's rows as a DataFrame with an ``outcome`` column (recovered / wrong sign / missed / flagged /
    quiet)."""
    rows = pd.DataFrame(report["rows"])
    planted = rows["kind"] == "planted"

    def flag(column):
        return rows[column].fillna(False).astype(bool) if column in rows else pd.Series(False, index=rows.index)

    outcome = np.where(planted, np.where(flag("recovered"), "recovered", np.where(flag("wrong_sign"), "wrong sign",
                                                                                   "missed")),
                       np.where(flag("flagged"), "flagged", "quiet"))
    return rows.assign(outcome=outcome)


def size_ratios(report: dict) -> pd.Series:
    """Per pathway, the median over its planted rows of fitted / planted change (1 = the planted size, 0 = nothing,
    negative = the wrong sign on most rows); descriptive."""
    rows = recovery_frame(report).query("kind == 'planted'")
    return (rows["fitted_delta"] / rows["planted_delta"]).groupby(rows["pathway"]).median()


def recovery_table(report: dict) -> pd.DataFrame:
    """The report's rows for printing: pair, pathway, planted / fitted / null deltas, SE, n, adjusted p, outcome."""
    cols = ["pair", "pathway", "planted_delta", "fitted_delta", "se", "null_delta", "calibrated_delta", "n_a", "n_b",
            "p_adj", "null_p_adj", "interaction_p_adj", "outcome"]
    return recovery_frame(report)[cols]


# --------------------------------------------------------------------------------------------------------------------
# Committed reports and the reference's reading (notebooks 07 and 07b)
# --------------------------------------------------------------------------------------------------------------------
def load_report(name: str, folder: str | os.PathLike | None = None) -> dict:
    """A committed Figure 5 report, ``data/results/fig5/<name>.json`` (e.g. ``recovery-recommended-half``,
    ``recovery-joint-linear-full``, ``recovery-scaling-quick``).

    Args:
        name: the file name without ``.json``.
        folder: where to look (default: ``fig5`` under :data:`biornn.core.config.RESULTS_DIR`).

    Returns:
        The report as written (JSON ``NaN`` read back as float NaN).

    Raises:
        BiornnError: no such report; the message lists the ones there are.
    """
    from biornn.core.config import RESULTS_DIR

    folder = Path(folder) if folder is not None else RESULTS_DIR / "fig5"
    path = folder / f"{name.removesuffix('.json')}.json"
    if not path.exists():
        there = ", ".join(sorted(p.stem for p in folder.glob("*.json"))) or "none"
        raise BiornnError(f"no report {path.name} in {folder}; pass one of: {there}")
    return json.loads(path.read_text())


def reference_readings() -> pd.DataFrame:
    """The predictive-coding reading of the reference's pathway differences (``data/reference/fig5_readings.csv``;
    docs/paper/fig4-5-celltype-rnn.md, section 8): the sign the reading expects for each (window, pair, pathway).

    Returns:
        One row per reading: ``window``, ``pair`` (``A->B``), ``pathway`` (FF, FB_L23, FB_L5) and ``expected``
        (+1: B > A, -1: B < A).
    """
    from biornn.core.config import ROOT

    table = pd.read_csv(ROOT / "data" / "reference" / "fig5_readings.csv", comment="#")
    bad = sorted(set(table["pathway"]) - set(PATHWAYS)) + sorted(set(table["expected"]) - {1, -1})
    if bad:
        raise BiornnError(f"fig5_readings.csv holds unknown values {bad}; use pathways {', '.join(PATHWAYS)} and "
                          "expected signs +1 / -1")
    return table
