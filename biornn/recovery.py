"""Does a fitted cell-type RNN recover the connectivity differences planted in the digital twin?

The question of Figures 4-5 asked of data whose answer is known. Two twins share everything (timelines, drives,
block strengths, noise streams) except the planted pathway gains: the **planted** twin's conditions differ by
:data:`biornn.synthetic.DEFAULT_PATHWAY_GAINS`, the **null** twin's do not differ at all. Fitting both with the same
variant and testing the same condition pairs shows how often a fitted difference is real (planted twin, planted
pathway), spurious (planted twin, unplanted pathway) or produced by drive and data alone (null twin).

The measurement per twin, window, condition pair ``(A, B)`` (:data:`biornn.analysis.PAIRS`) and inter-area pathway
(FF, FB_L23, FB_L5):

* **pathway strength** of a run: the mean over the pathway's population blocks of the block strength (mean ``|w|``
  over the run's kept entries, ``nonzero_abs_sparse`` of the summaries); the true strength is the same mean of
  ``|W_true|``;
* **delta**: ``log(strength_B) - log(strength_A)``; fitted delta = mean over B's runs minus mean over A's runs;
* **test**: Welch's two-sided t-test on the per-run log strengths, unit of replication = the run (one resample of
  the recordings plus one initialisation; :mod:`biornn.replicates`), ``n = runs of A`` vs ``runs of B``;
  **correction**: Benjamini-Hochberg over the 9 pairs x 3 pathways of one twin and window; ``alpha`` 0.05;
* a planted change is **recovered** when its adjusted p is below alpha and the fitted delta has the planted sign;
  an unplanted difference (planted twin, true delta 0) or any null-twin difference is **flagged** when its adjusted
  p is below alpha.

Identifiability on block strength: Spearman's rho over the twin's nonzero blocks between a run's block strengths
(in ΔF/F units, :func:`dff_strength`) and ``|W_true|``, beside the structure-only baseline
``density x |type strength|`` (what the connectivity table and the cell types alone predict; not circular because
the twin's strengths are drawn independently of density).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.stats import spearmanr

from biornn.allen import load_metadata
from biornn.analysis import (
    CORRECTIONS,
    GRANULARITIES,
    ORDERS,
    PAIRS,
    PATHWAYS,
    TESTS,
    adjust,
    compare_conditions,
    find_fig4_runs,
    load_models,
    welch_test,
)
from biornn.celltype import (
    ablation_configs,
    celltype_config,
    load_summary,
    save_summary,
    summarize,
    summary_dir,
    train_celltype,
    train_celltype_stack,
)
from biornn.conditions import ABBREVIATIONS, CONDITIONS
from biornn.conditions import BY_ABBREVIATION as ABBREV_TO_CONDITION
from biornn.connectivity import POPULATION_LABELS, pathway_blocks
from biornn.curate import (
    CurateConfig,
    build_datasets,
    cached_datasets,
    load_dataset_with_windows,
    open_source,
    save_dataset,
)
from biornn.errors import BiornnError
from biornn.store import atomic_write_bytes
from biornn.synthetic import TwinConfig, write_ground_truth

TWIN_KINDS = ("planted", "null")
TEST = "welch"
CORRECTION = "fdr_bh"
ALPHA = 0.05
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
    """Welch tests of every pair and pathway of one twin, BH-adjusted over them.

    Args:
        runs: ``{abbreviation: (S, 18, 18) block strengths}`` (``FC``, ``FN`` ...).
        pairs: condition pairs ``(A, B)``; deltas are B - A.

    Returns:
        One row per (pair, pathway): ``pair``, ``pathway``, ``delta``, ``p``, ``p_adj``, ``significant``, ``n_a``,
        ``n_b``.
    """
    missing = sorted({c for pair in pairs for c in pair} - set(runs))
    if missing:
        raise BiornnError(f"no runs for condition(s) {', '.join(missing)}; train and summarise them first")
    logs = {c: _log_strength(v) for c, v in runs.items()}
    rows = []
    for a, b in pairs:
        for path in PATHWAYS:
            res = welch_test(logs[a][path][:, None], logs[b][path][:, None])
            rows.append({"pair": f"{a}->{b}", "pathway": path, "delta": float(res["statistic"][0]),
                         "p": float(res["pvalue"][0]), "n_a": int(res["n_a"]), "n_b": int(res["n_b"])})
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
                    pairs=PAIRS, alpha: float = ALPHA) -> dict:
    """Calibrated recovery: planted changes recovered, unplanted and null differences flagged.

    Args:
        planted, null: ``{abbreviation: (S, 18, 18) block strengths}`` of the two twins' runs.
        truth: ``{abbreviation: (18, 18) W_true}`` of the planted twin.

    Returns:
        JSON-ready dict: ``rows`` (per pair and pathway: ``planted_delta``, ``fitted_delta``, ``null_delta``,
        ``p``, ``p_adj``, ``null_p_adj``, ``n_a``, ``n_b``, ``kind`` planted / unplanted, ``recovered`` or
        ``flagged``, ``null_flagged``), totals ``planted_total``, ``planted_recovered``, ``unplanted_total``,
        ``unplanted_flagged``, ``null_total``, ``null_flagged``, and ``test``, ``correction``, ``alpha``,
        ``unit_of_replication``.
    """
    fitted = compare_twin(planted, pairs, alpha)
    nulls = {(r["pair"], r["pathway"]): r for r in compare_twin(null, pairs, alpha)}
    deltas = true_deltas(truth, pairs)
    rows = []
    for r in fitted:
        key = (r["pair"], r["pathway"])
        true, nr = deltas[key], nulls[key]
        planted_change = abs(true) > PLANTED_TOL
        row = {**{k: r[k] for k in ("pair", "pathway", "n_a", "n_b", "p", "p_adj")}, "planted_delta": true,
               "fitted_delta": r["delta"], "null_delta": nr["delta"], "null_p_adj": nr["p_adj"],
               "null_flagged": nr["significant"], "kind": "planted" if planted_change else "unplanted"}
        if planted_change:
            row["recovered"] = bool(r["significant"] and np.sign(r["delta"]) == np.sign(true))
        else:
            row["flagged"] = bool(r["significant"])
        rows.append(row)
    _beyond_null(rows, planted, null)
    power = detectable_change(planted, null, rows, alpha)
    planted_rows = [r for r in rows if r["kind"] == "planted"]
    unplanted_rows = [r for r in rows if r["kind"] == "unplanted"]
    calibrated = np.array([r["calibrated_delta"] for r in rows])
    true = np.array([r["planted_delta"] for r in rows])
    return {"rows": rows, "planted_total": len(planted_rows),
            "calibrated_vs_planted": {
                "spearman_rho": float(spearmanr(calibrated, true)[0]), "n": len(rows),
                "what": "Spearman rho over pairs x pathways between the planted log change and the fitted change "
                        "beyond the null twin (planted-twin delta minus null-twin delta); descriptive, no test"},
            "interaction_significant": sum(r["interaction_significant"] for r in rows),
            "planted_recovered": sum(r["recovered"] for r in planted_rows),
            "unplanted_total": len(unplanted_rows), "unplanted_flagged": sum(r["flagged"] for r in unplanted_rows),
            "null_total": len(rows), "null_flagged": sum(r["null_flagged"] for r in rows),
            "test": "Welch two-sided t-test on per-run log pathway strength", "correction":
            "Benjamini-Hochberg over the pairs x pathways of one twin", "alpha": alpha,
            "unit_of_replication": "run (one resample of the recordings + one initialisation)", "power": power,
            "projection": project_runs(rows, power["run_sd"], alpha=alpha)}


def calibrated_slope(rows: list[dict]) -> float:
    """Least-squares slope through the origin of ``calibrated_delta`` on ``planted_delta`` over ``rows`` (1: the fit
    moves by the planted amount beyond the null twin; 0: not at all); 0 when nothing was planted. Descriptive."""
    true = np.array([r["planted_delta"] for r in rows])
    calibrated = np.array([r["calibrated_delta"] for r in rows])
    return float(true @ calibrated / (true @ true)) if true.any() else 0.0


#: Power of the per-pair test that :func:`detectable_change` plans for.
POWER = 0.8


def detectable_change(planted: dict, null: dict, rows: list[dict], alpha: float = ALPHA, power: float = POWER) -> dict:
    """What the runs could see: the smallest detectable change, and the runs a planted change would need.

    Descriptive power arithmetic, normal approximation, one unadjusted two-sided test at ``alpha`` (BH over the
    pairs x pathways asks for more):

    * ``run_sd[pathway]``: the run-to-run SD of per-run log pathway strength, pooled over every condition of both
      twins (pooled variance, n - 1 weights);
    * ``detectable_log_change[pathway]`` = ``(z_{1-alpha/2} + z_power) * run_sd * sqrt(2 / n)`` with ``n`` the median
      runs per condition: the |difference of mean log strengths| a test of n vs n runs finds with probability
      ``power``;
    * ``slope``: least squares through the origin of the fitted change beyond the null twin (``calibrated_delta``) on
      the planted change, over ``rows`` (1: the fit moves by the planted amount);
    * ``runs_needed[pathway]``: runs per condition at which the median |planted change| of the planted rows, scaled by
      ``slope``, reaches the detectable change: ``2 ((z_a + z_b) run_sd / (slope * median))^2`` rounded up (at
      least 2); None when the slope is not positive (no run count would see it).
    """
    var = {path: [0.0, 0] for path in PATHWAYS}
    sizes = []
    for runs in (planted, null):
        for value in runs.values():
            logs = _log_strength(value)
            for path in PATHWAYS:
                x = logs[path][np.isfinite(logs[path])]
                if x.size > 1:
                    var[path][0] += x.var(ddof=1) * (x.size - 1)
                    var[path][1] += x.size - 1
            sizes.append(len(np.asarray(value)))
    sd = {path: float(np.sqrt(v / df)) if df else float("nan") for path, (v, df) in var.items()}
    n = float(np.median(sizes))
    z = float(sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power))
    slope = calibrated_slope(rows)
    planted_abs = [abs(r["planted_delta"]) for r in rows if r["kind"] == "planted"]
    median = float(np.median(planted_abs)) if planted_abs else float("nan")
    needed = {path: (max(2, math.ceil(2 * (z * sd[path] / (slope * median)) ** 2)) if slope > 0 and planted_abs
                     else None) for path in PATHWAYS}
    return {"run_sd": sd, "runs_per_condition": n, "alpha": alpha, "power": power,
            "detectable_log_change": {path: float(z * sd[path] * np.sqrt(2 / n)) for path in PATHWAYS},
            "slope": slope, "median_planted_change": median, "runs_needed": needed,
            "what": "descriptive: normal approximation, one unadjusted two-sided test; unit of replication: the run"}


#: Runs per condition that :func:`project_runs` looks at (the paper's 5, then more).
PROJECTED_RUNS = (5, 10, 20, 40)


def project_runs(rows: list[dict], run_sd: dict[str, float], runs=PROJECTED_RUNS, alpha: float = ALPHA) -> dict:
    """Expected outcome counts with ``n`` runs per condition, if the fitted means and run SDs stayed as measured.

    Descriptive plug-in power: normal approximation, one unadjusted two-sided test per row at ``alpha`` (BH asks for
    more). A measured delta ``d`` overstates its true size by its own sampling noise (``E[d^2] = delta^2 + v`` with
    ``v = run_sd^2 (1/n_a + 1/n_b)``), so each is shrunk to ``sign(d) sqrt(max(d^2 - v, 0))`` before use: a delta
    within its noise counts as no effect.

    * pair test (one twin): ``se = run_sd * sqrt(2 / n)``; a planted row is recovered with probability
      ``Phi(sign(planted) * d / se - z)``; an unplanted or a null-twin row is flagged with probability
      ``Phi(|d| / se - z) + Phi(-|d| / se - z)``;
    * twin x condition interaction: ``d`` = ``calibrated_delta``, ``v`` and ``se`` with four groups instead of two
      (``se = run_sd * sqrt(4 / n)``), same rules.

    Args:
        rows: the report's rows (with ``calibrated_delta``); run_sd: ``{pathway: SD of per-run log strength}``.

    Returns:
        ``{"rows": [{runs, planted_recovered, unplanted_flagged, null_flagged, interaction_recovered,
        interaction_flagged}, ...], "alpha", "what"}`` (expected counts; the totals are the report's).
    """
    z = float(sps.norm.ppf(1 - alpha / 2))

    def hit(d, se, sign=None, v=0.0):  # P(test significant [with the given sign]) at the shrunk delta
        d = float(np.sign(d)) * math.sqrt(max(d * d - v, 0.0))
        if sign is not None:
            return float(sps.norm.cdf(sign * d / se - z))
        return float(sps.norm.cdf(abs(d) / se - z) + sps.norm.cdf(-abs(d) / se - z))

    out = []
    for n in runs:
        counts = dict.fromkeys(("planted_recovered", "unplanted_flagged", "null_flagged", "interaction_recovered",
                                "interaction_flagged"), 0.0)
        for r in rows:
            sd = run_sd[r["pathway"]]
            se2, se4 = sd * math.sqrt(2 / n), sd * math.sqrt(4 / n)
            v2 = sd ** 2 * (1 / r["n_a"] + 1 / r["n_b"])  # sampling variance of a measured delta (both twins alike)
            counts["null_flagged"] += hit(r["null_delta"], se2, v=v2)
            if r["kind"] == "planted":
                sign = float(np.sign(r["planted_delta"]))
                counts["planted_recovered"] += hit(r["fitted_delta"], se2, sign, v2)
                counts["interaction_recovered"] += hit(r["calibrated_delta"], se4, sign, 2 * v2)
            else:
                counts["unplanted_flagged"] += hit(r["fitted_delta"], se2, v=v2)
                counts["interaction_flagged"] += hit(r["calibrated_delta"], se4, v=2 * v2)
        out.append({"runs": int(n), **{k: round(v, 3) for k, v in counts.items()}})
    return {"rows": out, "alpha": alpha,
            "what": "descriptive plug-in projection: expected counts if every condition had n runs, with the measured "
                    "run SDs and the measured deltas shrunk by their sampling noise taken as the true ones; normal "
                    "approximation (it overstates power at few runs, where a t-test's critical value is larger), "
                    "unadjusted two-sided tests, each row's own delta; unit of replication: the run"}


def _beyond_null(rows: list[dict], planted: dict, null: dict) -> None:
    """Add ``calibrated_delta`` (planted-twin minus null-twin fitted delta) and its test to every row, in place.

    Test: the twin x condition interaction of per-run log pathway strength,
    ``(mean B_p - mean A_p) - (mean B_n - mean A_n)``, against its standard error from the four groups' run
    variances (Welch-Satterthwaite degrees of freedom), two-sided; Benjamini-Hochberg over the rows (``interaction_p``,
    ``interaction_p_adj``, ``interaction_significant`` at :data:`ALPHA`). Unit of replication: the run.
    """
    logs = {"p": {c: _log_strength(v) for c, v in planted.items()}, "n": {c: _log_strength(v) for c, v in null.items()}}
    pvals = []
    for row in rows:
        a, b = row["pair"].split("->")
        groups = [logs[t][c][row["pathway"]] for t in ("p", "n") for c in (b, a)]
        groups = [g[np.isfinite(g)] for g in groups]
        var = np.array([g.var(ddof=1) / g.size for g in groups])
        se2 = var.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            df = se2 ** 2 / np.sum(var ** 2 / (np.array([g.size for g in groups]) - 1))
            t = (row["fitted_delta"] - row["null_delta"]) / np.sqrt(se2)
        row["calibrated_delta"] = float(row["fitted_delta"] - row["null_delta"])
        pvals.append(float(2 * sps.t.sf(abs(t), df)) if se2 > 0 else 1.0)
    adj = adjust(np.nan_to_num(np.array(pvals), nan=1.0), CORRECTION)
    for row, p, q in zip(rows, pvals, adj):
        row.update(interaction_p=p, interaction_p_adj=float(q), interaction_significant=bool(q < ALPHA))


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
    """``{abbreviation: summary}`` of one twin's cached runs (:func:`biornn.analysis.find_fig4_runs`)."""
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
    """A few lines for the terminal and the notebooks."""
    return (f"{report.get('variant', '?')} / {report.get('window', '?')} window: planted changes recovered "
            f"{report['planted_recovered']} of {report['planted_total']}; unplanted differences flagged "
            f"{report['unplanted_flagged']} of {report['unplanted_total']}; null-twin differences flagged "
            f"{report['null_flagged']} of {report['null_total']} ({report['test']}, {report['correction']}, "
            f"alpha {report['alpha']}; unit of replication: {report['unit_of_replication']}). Beyond the null twin: "
            f"{report['interaction_significant']} of {report['null_total']} twin x condition interactions "
            f"significant (BH); planted vs calibrated change Spearman rho "
            f"{report['calibrated_vs_planted']['spearman_rho']:.2f} (n = {report['calibrated_vs_planted']['n']})"
            + _describe_power(report.get("power")))


def _describe_power(power: dict | None) -> str:
    if not power:
        return ""
    paths = ", ".join(f"{p} {power['detectable_log_change'][p]:.2f}" for p in PATHWAYS)
    need = ", ".join(f"{p} {'never' if v is None else v}" for p, v in power["runs_needed"].items())
    return (f". Power ({power['what']}): with {power['runs_per_condition']:.0f} runs per condition a test finds a "
            f"log change of at least {paths} with probability {power['power']}; the fit moves by {power['slope']:.2f}"
            f" x the planted change, so the median planted change ({power['median_planted_change']:.2f}) would need "
            f"about {need} runs per condition")


def register_cli(sub) -> None:
    """Add ``compare`` to the command line."""
    p = sub.add_parser("compare", help="block differences of recurrent connectivity between two conditions",
                       description="Compare the runs of condition B with those of condition A (differences B - A) "
                                   "at the population, layer and area level: block mean |W| (zeros included), "
                                   "realised density and mean |W| over surviving connections, with a run-label "
                                   "permutation test (or Welch t), corrected within each table, and Hedges' g. "
                                   "Writes differences_<granularity>.csv and comparison.json to --out.")
    p.add_argument("--models", nargs=2, metavar=("DIR_A", "DIR_B"),
                   help="two Fig 4 run directories (weights.npz with W_sparse and population)")
    p.add_argument("--out", default=None, help="output folder")
    p.add_argument("--weights", default="W_sparse", help="which array of weights.npz (default W_sparse)")
    p.add_argument("--test", choices=TESTS, default="permutation")
    p.add_argument("--correction", choices=CORRECTIONS, default="fdr_bh",
                   help="fdr_bh (Benjamini-Hochberg, default) or holm, over the tested blocks of each table")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--n-resamples", type=int, default=9999, help="random relabellings when enumeration is too big")
    p.add_argument("--seed", type=int, default=0, help="seed of the random relabellings")
    p.add_argument("--tol", type=float, default=0.0, help="an entry survives when |w| > tol (default 0)")
    p.add_argument("--order", choices=ORDERS, default="display", help="display (L2/3, L4, L5) or index (L4 first)")
    p.set_defaults(func=_cmd_compare)
    csub = p.add_subparsers(dest="compare_command", metavar="ACTION", parser_class=type(p))
    r = csub.add_parser("recovery", help="planted vs null twin: which planted pathway changes the fits recover",
                        description="Read the cached runs of the planted and the null twin (trains nothing) and "
                                    "write OUT/recovery.json: per condition pair and pathway the planted, fitted and "
                                    "null deltas, Welch test, n, BH correction, recovered / flagged, and totals.")
    r.add_argument("--root", default=None, help="figure cache (default data/results/fig4)")
    r.add_argument("--variant", default="recommended", help="published, corrected, recommended ...")
    r.add_argument("--window", choices=("full", "half"), default="half")
    r.add_argument("--out", required=True, help="output folder (recovery.json)")
    r.set_defaults(func=_cmd_recovery)
    q = csub.add_parser("queue", help="train + summarise every missing (twin, condition) of a variant and window",
                        description="Resumable background queue for the recovery report: builds both twins' "
                                    "datasets once, trains each missing condition (resuming from checkpoints) and "
                                    "writes its summary into the figure cache. Run it again after an interruption.")
    q.add_argument("--variant", default="recommended", choices=("published", "corrected", "recommended"))
    q.add_argument("--window", choices=("full", "half"), default="half")
    q.add_argument("--twins", default="planted,null", help="comma-separated: planted, null")
    q.add_argument("--mode", choices=("quick", "paper"), default="paper")
    q.add_argument("--data-root", default="data/allen", help="where the twin datasets are built")
    q.add_argument("--runs-root", default="data/runs", help="where full runs and checkpoints go (not committed)")
    q.add_argument("--device", default=None)
    q.add_argument("--stack", action="store_true",
                   help="train a twin's missing conditions as one model batch (for CUDA, where kernel launches "
                        "set the time; not timed on the CPU, where a bigger Figure 2 batch measured no faster)")
    q.set_defaults(func=_cmd_queue)


def _cmd_queue(args) -> int:
    twins = tuple(t.strip() for t in args.twins.split(","))
    bad = [t for t in twins if t not in TWIN_KINDS]
    if bad:
        raise BiornnError(f"unknown twin {bad[0]!r} in --twins; use planted, null or both")
    written = run_queue(args.variant, args.window, twins, args.mode, args.data_root, args.runs_root,
                        device=args.device, stack=args.stack)
    print(f"queue done: {len(written)} new summaries")
    return 0


def _cmd_recovery(args) -> int:
    report = report_from_cache(args.root, args.variant, args.window)
    path = write_report(report, args.out)
    print(describe(report))
    print(f"held-out median r per condition (planted twin): {report['heldout_median_r']['planted']}")
    print(f"wrote {path}")
    return 0


def _cmd_compare(args) -> int:
    if not args.models or not args.out:
        raise BiornnError("compare needs --models DIR_A DIR_B and --out DIR (or the action: compare recovery ...)")
    if args.n_resamples < 1:
        raise BiornnError(f"--n-resamples {args.n_resamples}; use a positive number such as 9999")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise BiornnError(f"output path {out} is a file; pass a folder path for --out")
    a = load_models(args.models[0], args.weights)
    b = load_models(args.models[1], args.weights)
    comp = compare_conditions(a, b, order=args.order, tol=args.tol, test=args.test, correction=args.correction,
                              alpha=args.alpha, n_resamples=args.n_resamples, seed=args.seed)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for g in GRANULARITIES:
        path = out / f"differences_{g}.csv"
        atomic_write_bytes(path, comp.table(g).to_csv(index=False, float_format="%.6g").encode())
        written.append(path.name)
    meta = comp.meta()
    meta.update(models={"A": a.source, "B": b.source}, weights=args.weights, files=written,
                columns={"mean_a": "run mean in A", "mean_b": "run mean in B", "diff": "mean_b - mean_a",
                         "hedges_g": "effect size", "p": "raw two-sided p", "p_adj": f"{args.correction} adjusted p",
                         "tested": "block in the correction family", "n_a": "runs of A with a value",
                         "n_b": "runs of B with a value"})
    atomic_write_bytes(out / "comparison.json", (json.dumps(meta, indent=1) + "\n").encode())
    print(comp.describe())
    print(f"wrote {', '.join(written)} and comparison.json to {out}")
    return 0


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
    report = recovery_report({c: s["nonzero_abs_sparse"] for c, s in runs["planted"].items()},
                             {c: s["nonzero_abs_sparse"] for c, s in runs["null"].items()}, truth, pairs)
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
    """The report's rows as a DataFrame with an ``outcome`` column (recovered / missed / flagged / quiet)."""
    rows = pd.DataFrame(report["rows"])
    planted = rows["kind"] == "planted"
    outcome = np.where(planted, np.where(rows.get("recovered", False).fillna(False).astype(bool), "recovered",
                                         "missed"),
                       np.where(rows.get("flagged", False).fillna(False).astype(bool), "flagged", "quiet"))
    return rows.assign(outcome=outcome)


def recovery_table(report: dict) -> pd.DataFrame:
    """The report's rows for printing: pair, pathway, planted / fitted / null deltas, n, p, p_adj, outcome."""
    cols = ["pair", "pathway", "planted_delta", "fitted_delta", "null_delta", "calibrated_delta", "n_a", "n_b",
            "p_adj", "null_p_adj", "interaction_p_adj", "outcome"]
    return recovery_frame(report)[cols]


def projection_table(report: dict) -> pd.DataFrame:
    """The report's run-count projection (:func:`project_runs`) as fractions of the report's totals, one row per
    run count."""
    tab = pd.DataFrame(report["projection"]["rows"]).set_index("runs")
    totals = {"planted_recovered": "planted_total", "unplanted_flagged": "unplanted_total",
              "null_flagged": "null_total", "interaction_recovered": "planted_total",
              "interaction_flagged": "unplanted_total"}
    return pd.DataFrame({k: tab[k] / max(report[t], 1) for k, t in totals.items()})
