"""Inference of the joint linear estimator (:mod:`biornn.experiments.fig5.joint_linear`): the experiment bootstrap over
twins, pair
changes, intervals, multiplicity correction, the recovery report and its cache, and the ``compare recovery
--estimator joint-linear`` driver.

Per twin, one point fit on all rows and one fit per experiment resample (the same draws for every twin). Per row
(9 pairs x 3 pathways, change = ``g[B] - g[A]``): the 95 % percentile interval of the resample fits, a robust SE
(IQR / 1.349 of the resample fits; the resample spread *is* the sampling uncertainty, never divided by sqrt(n)),
the two-sided bootstrap-normal p of the point change against that SE, Benjamini-Yekutieli (or Holm) over the 27 rows
of one twin, and beside it the percentile-bootstrap p (which cannot go below ``2 / (B + 1)``, so with a few hundred
resamples it cannot pass a 27-row correction). The false-flag rate is measured on independently seeded null twins.
The cache keeps every resample's fitted gains, so the report recomputes in seconds.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import numpy as np
from scipy.stats import norm, spearmanr

from biornn.core.conditions import ABBREVIATIONS, CONDITIONS, PAIRS
from biornn.core.errors import BiornnError
from biornn.core.progress import progress as progress_bar
from biornn.core.store import atomic_write_bytes
from biornn.data.allen import load_metadata
from biornn.data.curate import CurateConfig, build_datasets, open_source, save_dataset
from biornn.data.synthetic import write_ground_truth
from biornn.experiments.fig5.joint_linear import (
    DEFAULT_CODE_SHIFT,
    LEGACY_SETTINGS,
    JointConfig,
    TwinRows,
    align_codes,
    deconvolve,
    fit_joint,
    fit_point,
    legacy_stamp,
    load_twin_rows,
    resample_means,
)
from biornn.nn.connectivity import PATHWAYS, pathway_blocks
from biornn.stats.significance import ALPHA, adjust

#: Corrections valid for the correlated pair contrasts of one twin (Benjamini-Hochberg is not guaranteed there).
JOINT_CORRECTIONS = ("fdr_by", "holm")


# --------------------------------------------------------------------------------------------------------------------
# Bootstrap, pair changes and the report
# --------------------------------------------------------------------------------------------------------------------

#: How each resample's fit starts: ``warm`` from the point fit's ``theta`` (stays in the point fit's basin, so the
#: interval misses the other minima); ``all`` from every start of the point fit, the lowest cost kept (the same
#: estimator as the point fit, about 8x the cost).
RESAMPLE_STARTS = ("warm", "all")


def bootstrap_gains(rows: TwinRows, config: JointConfig, resamples: int, seed: int = 0, sampling: str = "population",
                    progress: bool = True, desc: str = "joint-linear bootstrap", starts: str = "warm") -> dict:
    """The point fit and one fit per experiment resample (``starts``: :data:`RESAMPLE_STARTS`).

    Returns:
        ``point`` (the point fit's ``g`` ``(6, 3)``), ``g`` ``(resamples, 6, 3)``, ``cost`` ``(resamples,)``,
        ``fallbacks`` (session-sampling fallbacks summed over resamples), ``r2``, ``theta`` and ``point_costs`` of the
        point fit.
    """
    if resamples < 1:
        raise BiornnError(f"resamples = {resamples}; use a positive number (at least 200 for a report)")
    if starts not in RESAMPLE_STARTS:
        raise BiornnError(f"resample starts {starts!r}; use one of {', '.join(RESAMPLE_STARTS)}")
    means, codes, _ = resample_means(rows, seed, None, sampling)
    point = fit_point(means, codes, rows.frame_period, config)
    gains, costs, fallbacks = [], [], 0
    for b in progress_bar(range(resamples), total=resamples, desc=desc, enabled=progress):
        m, z, fb = resample_means(rows, seed, b, sampling)
        if starts == "all":
            fit = fit_point(m, z, rows.frame_period, config)
        else:
            x = deconvolve(m, rows.frame_period, config.rise, config.decay)
            fit = fit_joint(x, align_codes(z, x.shape[-1], config.code_shift), config, theta0=point["theta"])
        gains.append(fit["g"])
        costs.append(fit["cost"])
        fallbacks += fb
    return {"point": point["g"], "g": np.array(gains), "cost": np.array(costs), "fallbacks": int(fallbacks),
            "r2": point["r2"], "theta": point["theta"], "point_costs": point["costs"]}


def _twin_bootstrap(folder, config: JointConfig, resamples: int, seed: int, sampling: str, progress: bool, desc: str,
                    starts: str, checkpoint: Path | None) -> dict:
    """:func:`bootstrap_gains` of one twin folder, read from / written to ``checkpoint`` (an npz with its settings)
    when given, so an interrupted multi-twin run resumes at the first unfinished twin."""
    settings = json.dumps({"config": legacy_stamp(config.to_dict(), LEGACY_SETTINGS), "folder": str(folder),
                           "resamples": resamples, "seed": seed,
                           "sampling": sampling, "starts": starts}, sort_keys=True)
    if checkpoint is not None and checkpoint.exists():
        with np.load(checkpoint, allow_pickle=False) as z:
            if str(z["settings"]) == settings:
                fit = {k: z[k] for k in z.files if k != "settings"}
                return {**fit, "fallbacks": int(fit["fallbacks"]), "r2": float(fit["r2"]),
                        "point_costs": fit["point_costs"].tolist()}
    fit = bootstrap_gains(load_twin_rows(folder), config, resamples, seed, sampling, progress, desc, starts)
    if checkpoint is not None:
        save_cache({**{k: np.asarray(v) for k, v in fit.items()}, "settings": np.array(settings)}, checkpoint)
    return fit


#: Name of each of the 27 rows of :func:`pair_changes` (``"FN->FC FF"`` ...), in its order.
ROW_NAMES = [f"{a}->{b} {k}" for a, b in PAIRS for k in PATHWAYS]


def pair_changes(g: np.ndarray, pairs=PAIRS) -> np.ndarray:
    """``(..., 6, 3)`` log-gains -> ``(..., 9 * 3)`` pair changes ``g[B] - g[A]`` (pair-major, pathways in
    :data:`biornn.nn.connectivity.PATHWAYS` order)."""
    idx = {ABBREVIATIONS[c]: i for i, c in enumerate(CONDITIONS)}
    out = np.stack([g[..., idx[b], :] - g[..., idx[a], :] for a, b in pairs], axis=-2)
    return out.reshape(out.shape[:-2] + (-1,))


def robust_sd(samples: np.ndarray, axis: int = 0) -> np.ndarray:
    """Interquartile range / 1.349 (the SD of a normal with that IQR): the spread of heavy-tailed resample fits."""
    q75, q25 = np.percentile(samples, [75, 25], axis=axis)
    return (q75 - q25) / 1.3489795


def bootstrap_p(samples: np.ndarray, axis: int = 0) -> np.ndarray:
    """Two-sided percentile-bootstrap p of ``H0: change = 0``: ``min(1, 2 min(#(<= 0) + 1, #(>= 0) + 1) / (B + 1))``
    over the resamples (the smallest reachable p is ``2 / (B + 1)``; the ``1 - p`` percentile interval just
    touches 0)."""
    samples = np.asarray(samples, dtype=np.float64)
    B = samples.shape[axis]
    low = (np.sum(samples <= 0, axis=axis) + 1) / (B + 1)
    high = (np.sum(samples >= 0, axis=axis) + 1) / (B + 1)
    return np.minimum(1.0, 2 * np.minimum(low, high))


def normal_p(point: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Two-sided p of ``point / robust_sd(samples)`` against the standard normal (bootstrap-normal, robust SE)."""
    se = robust_sd(samples)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, np.abs(point) / se, 0.0)
    return 2 * norm.sf(z)


def decide(point: np.ndarray, samples: np.ndarray, alpha: float = ALPHA, correction: str = "fdr_by") -> dict:
    """Per-row intervals, p-values and decisions of one twin.

    Args:
        point: ``(R,)`` full-data pair changes; samples: ``(B, R)`` resample pair changes.
        correction: ``fdr_by`` (Benjamini-Yekutieli, any dependence) or ``holm``, over the R rows.

    Returns:
        ``ci`` ``(R, 2)`` 95 % percentile interval, ``se`` robust SD, ``p`` / ``p_adj`` bootstrap-normal (robust SE;
        the decision), ``p_percentile`` / ``p_percentile_adj`` (percentile bootstrap, limited to ``2 / (B + 1)``),
        ``significant`` and ``significant_percentile`` ``(R,)`` bool, ``direction`` ``(R,)`` sign of the point change.
    """
    if correction not in JOINT_CORRECTIONS:
        raise BiornnError(f"unknown correction {correction!r}; use one of {', '.join(JOINT_CORRECTIONS)}")
    p = normal_p(point, samples)
    pp = bootstrap_p(samples)
    p_adj, pp_adj = adjust(p, correction), adjust(pp, correction)
    return {"ci": np.percentile(samples, [2.5, 97.5], axis=0).T, "se": robust_sd(samples), "p": p, "p_adj": p_adj,
            "p_percentile": pp, "p_percentile_adj": pp_adj, "significant": p_adj < alpha,
            "significant_percentile": pp_adj < alpha, "direction": np.sign(point)}


def score(changes: np.ndarray, planted: np.ndarray) -> dict:
    """Descriptive scores of one fit's 27 pair changes against the planted ones (no test): on a null twin (nothing
    planted) ``rms`` and ``max_abs``; else ``sign`` (planted rows fitted with the planted sign), ``rmse`` over the
    planted rows, ``spearman`` over all rows, per pathway the median fitted / planted ``median_ratio``,
    ``wrong_sign_rows`` and ``unplanted_max_abs``."""
    changes, planted = np.asarray(changes, float), np.asarray(planted, float)
    if not np.any(planted):
        return {"rms": float(np.sqrt(np.mean(changes ** 2))), "max_abs": float(np.abs(changes).max())}
    m = planted != 0
    agree = np.sign(changes) == np.sign(planted)
    ratio = {p: float(np.median(changes[k::3][m[k::3]] / planted[k::3][m[k::3]])) for k, p in enumerate(PATHWAYS)}
    return {"sign": int(agree[m].sum()), "planted_rows": int(m.sum()),
            "rmse": float(np.sqrt(np.mean((changes[m] - planted[m]) ** 2))),
            "spearman": float(spearmanr(changes, planted)[0]), "median_ratio": ratio,
            "wrong_sign_rows": [ROW_NAMES[i] for i in np.flatnonzero(m & ~agree)],
            "unplanted_max_abs": float(np.abs(changes[~m]).max())}


def planted_changes(W_true: np.ndarray, pairs=PAIRS) -> np.ndarray:
    """``(27,)`` planted pair changes: log ratio of the mean ``|W_true|`` over each pathway's blocks, from the twin's
    ``W_true`` ``(6, 18, 18)`` (conditions in :data:`CONDITIONS` order)."""
    W = np.abs(np.asarray(W_true, dtype=np.float64))
    blocks = pathway_blocks()
    strength = np.stack([np.log(np.mean([W[:, post, pre] for post, pre in blocks[k]], axis=0)) for k in PATHWAYS],
                        axis=-1)                                                   # (6, 3)
    return pair_changes(strength, pairs)


def few_experiments(rows: TwinRows) -> dict[str, dict[str, int]]:
    """Populations with fewer than 2 experiments in an experience level: ``{population: {level: experiments}}``
    (their bootstrap varies by trials only)."""
    out: dict[str, dict[str, int]] = {}
    for level, pops in rows.n_experiments().items():
        for pop, n in pops.items():
            if n < 2:
                out.setdefault(pop, {})[level] = n
    return out


#: The first resamples of the planted twin whose inputs are kept in the cache, so a test can refit them.
CHECK_RESAMPLES = 3


def run_twins(planted: str | os.PathLike, nulls: list, config: JointConfig, resamples: int, seed: int = 0,
              sampling: str = "population", progress: bool = True, log=None, starts: str = "warm",
              checkpoints: str | os.PathLike | None = None) -> dict:
    """Bootstrap the planted twin and every null twin (the same experiment draws in all of them).

    Args:
        planted: dataset folder of the planted twin (with ``ground_truth.npz``); nulls: ``[(sample seed, folder)]``.
        log: optional callable receiving one line per finished twin.
        starts: :data:`RESAMPLE_STARTS`.
        checkpoints: optional folder of one finished-twin file each (a rerun resumes at the first missing twin).

    Returns:
        The cache arrays (:func:`save_cache`): ``planted_point``, ``planted_g``, ``planted_cost``, ``null_point``
        ``(S, 6, 3)``, ``null_g`` ``(S, B, 6, 3)``, ``planted_delta`` ``(27,)``, the refit check inputs and ``meta``.
    """
    truth = np.load(Path(planted) / "ground_truth.npz")
    rows = load_twin_rows(planted)
    ckpt = (lambda name: Path(checkpoints) / f"{name}.npz") if checkpoints is not None else (lambda name: None)
    t0 = time.perf_counter()
    fit = _twin_bootstrap(planted, config, resamples, seed, sampling, progress, "planted twin", starts,
                          ckpt("planted"))
    check = [resample_means(rows, seed, b, sampling)[:2] for b in range(min(CHECK_RESAMPLES, resamples))]
    if log:
        log(f"planted twin: {resamples} resamples in {time.perf_counter() - t0:.0f} s")
    out = {"planted_point": fit["point"], "planted_g": fit["g"], "planted_cost": fit["cost"],
           "planted_delta": planted_changes(truth["W_true"]), "check_means": np.array([c[0] for c in check]),
           "check_codes": np.array([c[1] for c in check]), "check_theta0": fit["theta"],
           "check_g": fit["g"][: len(check)], "frame_period": rows.frame_period}
    null_point, null_g, fallbacks = [], [], {"planted": fit["fallbacks"]}
    for s, folder in nulls:
        t0 = time.perf_counter()
        nf = _twin_bootstrap(folder, config, resamples, seed, sampling, progress, f"null twin {s}", starts,
                             ckpt(f"null-s{int(s)}"))
        null_point.append(nf["point"])
        null_g.append(nf["g"])
        fallbacks[f"null_{s}"] = nf["fallbacks"]
        if log:
            log(f"null twin seed {s}: {resamples} resamples in {time.perf_counter() - t0:.0f} s")
    meta = {"estimator": "joint-linear", "config": config.to_dict(), "sampling": sampling, "resamples": resamples,
            "seed": seed, "null_seeds": [int(s) for s, _ in nulls], "planted_folder": str(planted),
            "null_folders": [str(f) for _, f in nulls], "few_experiments": few_experiments(rows),
            "n_experiments": rows.n_experiments(), "session_fallbacks": fallbacks, "r2_planted": fit["r2"],
            "point_costs": fit["point_costs"], "resample_starts": starts}
    out.update(null_point=np.array(null_point), null_g=np.array(null_g), meta=np.array(json.dumps(meta)))
    return out


def refit_check(cache: dict, b: int) -> dict:
    """Refit the ``b``-th cached check resample (one of the first :data:`CHECK_RESAMPLES`) the way the bootstrap
    fitted it (warm from the point fit's ``theta``, or from every start), to compare with ``cache["check_g"][b]``.

    Returns:
        The fit (``g`` ``(6, 3)``, ``r2``, ``cost``).
    """
    meta = cache["meta"]
    config = config_from_meta(meta)
    means, codes, fp = cache["check_means"][b], cache["check_codes"][b], float(cache["frame_period"])
    if meta.get("resample_starts", "warm") == "all":
        return fit_point(means, codes, fp, config)
    x = deconvolve(means, fp, config.rise, config.decay)
    return fit_joint(x, align_codes(codes, x.shape[-1], config.code_shift), config, theta0=cache["check_theta0"])


def config_from_meta(meta: dict) -> JointConfig:
    """The :class:`JointConfig` a cache's meta records (caches written before ``code_shift`` existed: 0)."""
    return JointConfig(**{**LEGACY_SETTINGS, **{k: tuple(v) if isinstance(v, list) else v
                                                 for k, v in meta["config"].items()}})


def save_cache(arrays: dict, path: str | os.PathLike) -> Path:
    """Write the bootstrap cache (:func:`run_twins`) as one compressed npz (no pickles), atomically."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def load_cache(path: str | os.PathLike) -> dict:
    """Read a cache written by :func:`save_cache`; ``meta`` is decoded."""
    path = Path(path)
    if not path.exists():
        raise BiornnError(f"no bootstrap cache at {path}; run python -m biornn compare recovery --estimator "
                          "joint-linear first")
    with np.load(path, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    out["meta"] = json.loads(str(out["meta"]))
    return out


def report(cache: dict, alpha: float = ALPHA, correction: str = "fdr_by", pairs=PAIRS) -> dict:
    """The recovery report from the bootstrap cache (seconds; nothing is fitted).

    Per row (pair x pathway): planted change, the planted twin's fitted change (point fit) with its 95 % percentile
    interval, robust SE, bootstrap-normal p and its adjusted p, the percentile p, and on every null twin the fitted
    change and adjusted p (``row_keys`` in the report says what each summary column means). A planted row is
    **recovered** when its adjusted p < alpha and the fitted change has the planted sign (**wrong-sign flagged** when
    significant with the other sign); an unplanted row or any null-twin row is **flagged** when its adjusted
    p < alpha.
    """
    meta = cache["meta"]
    planted = decide(pair_changes(cache["planted_point"], pairs), pair_changes(cache["planted_g"], pairs), alpha,
                     correction)
    nulls = [decide(pair_changes(p, pairs), pair_changes(g, pairs), alpha, correction)
             for p, g in zip(cache["null_point"], cache["null_g"])]
    true = np.asarray(cache["planted_delta"], dtype=np.float64)
    fitted = pair_changes(cache["planted_point"], pairs)
    null_fitted = [pair_changes(p, pairs) for p in cache["null_point"]]
    names = [(f"{a}->{b}", k) for a, b in pairs for k in PATHWAYS]
    rows = []
    for i, (pair, path) in enumerate(names):
        planted_row = abs(true[i]) > 1e-9
        sig = bool(planted["significant"][i])
        row = {"pair": pair, "pathway": path, "kind": "planted" if planted_row else "unplanted",
               "planted_delta": float(true[i]), "fitted_delta": float(fitted[i]),
               "ci_low": float(planted["ci"][i, 0]), "ci_high": float(planted["ci"][i, 1]),
               "se": float(planted["se"][i]), "p": float(planted["p"][i]), "p_adj": float(planted["p_adj"][i]),
               "p_percentile": float(planted["p_percentile"][i]),
               "p_percentile_adj": float(planted["p_percentile_adj"][i]),
               "null_delta": float(np.mean([f[i] for f in null_fitted])) if null_fitted else float("nan"),
               "null_deltas": [float(f[i]) for f in null_fitted],
               "null_p_adj": float(min((n["p_adj"][i] for n in nulls), default=np.nan)),
               "null_p_adj_per_seed": [float(n["p_adj"][i]) for n in nulls],
               "null_flagged": int(sum(bool(n["significant"][i]) for n in nulls)),
               "interaction_p_adj": float("nan"),
               "n_a": int(meta["resamples"]), "n_b": int(meta["resamples"])}
        if planted_row:
            row["recovered"] = bool(sig and np.sign(fitted[i]) == np.sign(true[i]))
            row["wrong_sign"] = bool(sig and np.sign(fitted[i]) != np.sign(true[i]))
        else:
            row["flagged"] = sig
        rows.append(row)
    rep = _totals(rows, planted, nulls, true, fitted, meta, alpha, correction)
    # caches written before the key existed: the linear bootstrap was warm; the joint RNN's says so in warm_start
    rep["resample_starts"] = meta.get("resample_starts", "cold" if meta.get("warm_start") is False else "warm")
    return rep


def _totals(rows: list[dict], planted: dict, nulls: list[dict], true: np.ndarray, fitted: np.ndarray, meta: dict,
            alpha: float, correction: str) -> dict:
    """The report's counts, statistics text and settings around its rows."""
    is_planted = np.abs(true) > 1e-9
    per_seed = [int(n["significant"].sum()) for n in nulls]
    pct_right = planted["significant_percentile"] & (np.sign(fitted) == np.sign(true))
    name = {"fdr_by": "Benjamini-Yekutieli", "holm": "Holm"}[correction]
    return {
        "estimator": "joint-linear", "variant": "joint-linear", "window": meta["config"]["window"],
        "sampling": meta["sampling"], "resamples": int(meta["resamples"]), "null_seeds": meta["null_seeds"],
        "rows": rows, "planted_total": int(is_planted.sum()),
        "planted_recovered": sum(r.get("recovered", False) for r in rows),
        "wrong_sign_flagged": sum(r.get("wrong_sign", False) for r in rows),
        "unplanted_total": int((~is_planted).sum()), "unplanted_flagged": sum(r.get("flagged", False) for r in rows),
        "null_total": len(rows) * len(nulls), "null_flagged": int(sum(per_seed)), "null_flagged_per_seed": per_seed,
        "fitted_vs_planted": {"spearman_rho": float(spearmanr(fitted, true)[0]), "n": len(rows),
                              "what": "Spearman rho over pairs x pathways between the planted log change and the "
                                      "planted twin's fitted change (point fit); descriptive, no test"},
        "null_rms": float(np.sqrt(np.mean(np.square([r["null_deltas"] for r in rows]))))
        if nulls else float("nan"),
        "null_rms_what": "root mean square of the null twins' fitted changes over rows and seeds (0 = no spurious "
                         "change); descriptive",
        "percentile": {"planted_recovered": int((pct_right & is_planted).sum()),
                       "wrong_sign_flagged": int((planted["significant_percentile"] & ~pct_right & is_planted).sum()),
                       "unplanted_flagged": int((planted["significant_percentile"] & ~is_planted).sum()),
                       "null_flagged_per_seed": [int(n["significant_percentile"].sum()) for n in nulls],
                       "smallest_p": 2 / (meta["resamples"] + 1),
                       "what": f"the same decisions from two-sided percentile-bootstrap p ({name}); with B "
                               "resamples no p is below 2 / (B + 1)"},
        "test": "bootstrap-normal two-sided test of each pair change (point fit / robust SE, robust SE = IQR / 1.349 "
                "of the resample fits); 95 % percentile intervals reported beside",
        "correction": f"{name} over the {len(rows)} pairs x pathways of one twin", "alpha": alpha,
        "statistics": {"within_twin": {
            "n": f"{meta['resamples']} experiment resamples per twin (1 planted twin, {len(nulls)} null twins)",
            "correction": f"{name} over the {len(rows)} pairs x pathways of one twin"}},
        "unit_of_replication": "experiment resample (experiments drawn with replacement within each population, "
                               "then their trials; the same draws for every twin)",
        "few_experiments": meta["few_experiments"], "n_experiments": meta["n_experiments"],
        "config": meta["config"], "seed": meta["seed"], "session_fallbacks": meta.get("session_fallbacks", {}),
        "r2_planted": meta.get("r2_planted"), "heldout_median_r": {"planted": {}},
        "n_runs": {"planted": {ABBREVIATIONS[c]: int(meta["resamples"]) for c in CONDITIONS}},
        "row_keys": {"se": "robust SE of the pair change over the resamples (IQR / 1.349)",
                     "null_delta": "mean over the null seeds of the null twins' fitted changes",
                     "null_p_adj": "smallest adjusted p of the row over the null seeds (per seed: null_p_adj_per_seed)",
                     "null_flagged": "null seeds on which the row is significant",
                     "interaction_p_adj": "not computed: the joint estimator reports the fitted gains directly"}}


# --------------------------------------------------------------------------------------------------------------------
# The command: twins on disk, bootstrap, report
# --------------------------------------------------------------------------------------------------------------------

def twin_folder(root: str | os.PathLike, twin: str, mode: str = "paper", sample_seed: int = 0) -> Path:
    """``ROOT/twin-<mode>-<twin>`` (sample seed 0, the folder of :func:`biornn.experiments.fig5.recovery.twin_datasets`)
    or
    ``ROOT/twin-<mode>-<twin>-s<K>`` (``allen build --source twin --twin <twin> --twin-seed K``)."""
    return Path(root) / (f"twin-{mode}-{twin}" + (f"-s{sample_seed}" if sample_seed else ""))


def ensure_twin(root: str | os.PathLike, twin: str, mode: str = "paper", sample_seed: int = 0,
                progress: bool = True) -> Path:
    """The folder of one twin's six datasets with their rows, built first when missing (about a minute at paper
    size; the same as ``allen build --source twin --twin T --twin-seed K --mode M --condition all --windows``)."""
    folder = twin_folder(root, twin, mode, sample_seed)
    if all((folder / f"{c}_windows.npz").exists() for c in CONDITIONS) and (folder / "ground_truth.npz").exists():
        return folder
    meta = load_metadata("bundled")
    source = open_source("twin", mode=mode, metadata=meta, progress=progress, twin=twin, twin_seed=sample_seed)
    for ds in build_datasets(source, meta, CONDITIONS, CurateConfig(), progress=progress, keep_windows=True).values():
        save_dataset(ds, folder, windows=True)
    write_ground_truth(source.config, folder)
    return folder


def run_recovery(out: str | os.PathLike, window: str = "full", sampling: str = "population", resamples: int = 200,
                 null_seeds=(0, 1, 2, 3, 4), kinetics_scale: float = 1.0, root: str | os.PathLike = "data/allen",
                 mode: str = "paper", seed: int = 0, correction: str = "fdr_by", progress: bool = True,
                 from_cache: str | os.PathLike | None = None, starts: str = "warm",
                 code_shift: int = DEFAULT_CODE_SHIFT) -> tuple[dict, Path]:
    """``compare recovery --estimator joint-linear``: bootstrap the planted twin and the null twins (built when
    missing), write ``OUT/joint-linear-bootstrap.npz`` (the cache) and ``OUT/recovery.json`` (:func:`report`).
    Each finished twin is kept under ``OUT/joint-linear-cache/``, so a rerun resumes at the first missing twin.

    Args:
        kinetics_scale: multiplies both indicator time constants the estimator assumes (0.7 and 1.3 are the
            misspecification checks; the twin's data are unchanged).
        from_cache: recompute the report from this cache instead of fitting.
        starts: how each resample's fit starts (:data:`RESAMPLE_STARTS`).
        code_shift: :attr:`JointConfig.code_shift`.

    Returns:
        ``(report, path of recovery.json)``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BiornnError(f"--out {out} is a file; pass a folder path")
    if from_cache is not None:
        cache = load_cache(from_cache)
        if cache["meta"].get("estimator", "joint-linear") != "joint-linear":
            raise BiornnError(f"{from_cache} holds {cache['meta']['estimator']!r} fits; pass them with --estimator "
                              f"{cache['meta']['estimator']}")
    else:
        if not kinetics_scale > 0:
            raise BiornnError(f"kinetics scale {kinetics_scale}; use a positive factor such as 0.7, 1 or 1.3")
        base = JointConfig()
        config = JointConfig(window=window, rise=base.rise * kinetics_scale, decay=base.decay * kinetics_scale,
                             code_shift=code_shift)
        planted = ensure_twin(root, "planted", mode, 0, progress)
        nulls = [(int(s), ensure_twin(root, "null", mode, int(s), progress)) for s in null_seeds]
        cache = run_twins(planted, nulls, config, resamples, seed, sampling, progress,
                          log=lambda line: print(line, flush=True), starts=starts,
                          checkpoints=out / "joint-linear-cache")
        cache["meta"] = np.array(json.dumps({**json.loads(str(cache["meta"])), "kinetics_scale": kinetics_scale}))
        save_cache(cache, out / "joint-linear-bootstrap.npz")
        cache = load_cache(out / "joint-linear-bootstrap.npz")
    rep = report(cache, correction=correction)
    rep["kinetics_scale"] = cache["meta"].get("kinetics_scale", 1.0)
    path = out / "recovery.json"
    atomic_write_bytes(path, (json.dumps(rep, indent=1) + "\n").encode())
    return rep, path


def describe(rep: dict) -> str:
    """A few lines for the terminal."""
    few = ", ".join(f"{p} ({', '.join(f'{k} {v}' for k, v in d.items())})" for p, d in rep["few_experiments"].items())
    pct = rep["percentile"]
    name = rep.get("estimator", "joint-linear")
    parts = [
        f"{name} / {rep['window']} window / {rep['sampling']} sampling, {rep['resamples']} resamples:",
        f"planted changes recovered {rep['planted_recovered']} of {rep['planted_total']}",
        f"(wrong sign flagged {rep['wrong_sign_flagged']});",
        f"unplanted flagged {rep['unplanted_flagged']} of {rep['unplanted_total']};",
        f"null twins flagged {rep['null_flagged']} of {rep['null_total']} (per seed {rep['null_flagged_per_seed']});",
        f"Spearman fitted vs planted {rep['fitted_vs_planted']['spearman_rho']:.2f}; null RMS {rep['null_rms']:.3f}.",
        f"Test: {rep['test']}; correction: {rep['correction']}; alpha {rep['alpha']};",
        f"unit of replication: {rep['unit_of_replication']}.",
        f"Percentile bootstrap instead: recovered {pct['planted_recovered']}, unplanted flagged",
        f"{pct['unplanted_flagged']}, null flagged per seed {pct['null_flagged_per_seed']}.",
        f"Populations with fewer than 2 experiments: {few or 'none'}."]
    return " ".join(parts)
