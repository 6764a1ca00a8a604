"""Statistics used by the figures. Every function says which test it runs, on what n, and with what correction.

Figure 2: :func:`kl_divergence` and :func:`pairwise_kl` (histogram KL of weight distributions;
docs/paper/fig2-dales-backprop.md §7,
quirk Q11: ``aligned=True`` uses common bin edges, ``aligned=False`` reproduces the reference's per-matrix bins).

Figure 3 (docs/paper/fig3-topprob-pruning.md §9): seed-level summaries :func:`mean_ci`, :func:`holm`,
:func:`paired_test`,
:func:`paired_effect` / :func:`paired_effects` (each effect with its interval on the scale of its test, and all four
paired p-values) and :func:`pruning_comparison` (the recommended protocol), and :func:`reference_aggregation`
(the published bar chart's statistics, reproduced with their flaws for side-by-side reporting).

Figure 5 (docs/paper/fig4-5-celltype-rnn.md §6): run-label :func:`permutation_test` and :func:`welch_test` of
block values, :func:`hedges_g`, and the corrections :func:`fdr_bh` / :func:`fdr_by` / :func:`adjust` (one
implementation each; :mod:`biornn.stats.comparisons` uses them). The planted-vs-null recovery check
(:mod:`biornn.experiments.fig5.recovery`): :func:`bootstrap_z` and :func:`paired_bootstrap_z`, where each run is a
bootstrap
replicate of one fit, so the SD over runs is the standard error itself.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from itertools import combinations

import numpy as np

from biornn.core.errors import BiornnError


def kl_divergence(p_values, q_values, bins: int = 100, eps: float = 1e-7, aligned: bool = True) -> float:
    """KL(p || q) between the histograms of two samples of weights, in nats.

    Each sample is histogrammed into ``bins`` bins (density), ``eps`` is added to every bin, and each histogram is
    normalised to sum 1; then ``sum_k p_k ln(p_k / q_k)``.

    Args:
        p_values, q_values: arrays of any shape (flattened).
        bins: number of bins (reference: 100).
        eps: floor added to every bin (reference: 1e-7).
        aligned: ``True`` (default, the fix): both histograms share bin edges spanning the pooled range.
            ``False`` (as published, Q11): each histogram spans its own min-max range, so bin k of p and bin k of
            q cover different weight intervals.
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    q = np.asarray(q_values, dtype=np.float64).ravel()
    if p.size == 0 or q.size == 0:
        raise BiornnError("KL divergence needs two non-empty samples")
    if not (np.isfinite(p).all() and np.isfinite(q).all()):
        raise BiornnError("KL divergence got NaN or inf weights; check the weights file")
    if aligned:
        lo, hi = min(p.min(), q.min()), max(p.max(), q.max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
        hp, hq = np.histogram(p, edges, density=True)[0], np.histogram(q, edges, density=True)[0]
    else:
        hp, hq = np.histogram(p, bins, density=True)[0], np.histogram(q, bins, density=True)[0]
    hp, hq = hp + eps, hq + eps
    hp, hq = hp / hp.sum(), hq / hq.sum()
    return float(np.sum(hp * np.log(hp / hq)))


def pairwise_kl(reference_runs, other_runs, **kwargs) -> np.ndarray:
    """KL(reference run i || other run j) for every pair: ``(n_ref, n_other)`` array (reference: 5 x 5 = 25 pairs)."""
    ref, oth = list(reference_runs), list(other_runs)
    return np.array([[kl_divergence(a, b, **kwargs) for b in oth] for a in ref])


# ----------------------------------------------------------------------------------------------------------------
# Figure 3: seed-level summaries and tests (docs/paper/fig3-topprob-pruning.md §9)
# ----------------------------------------------------------------------------------------------------------------
PAIRED_TESTS = ("t_log", "t", "signflip", "wilcoxon")


def _finite(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise BiornnError(f"{name} contain NaN or inf; drop the failed runs or fix the errors table")
    return arr


def mean_ci(values, axis: int = 0, level: float = 0.95):
    """Mean and two-sided t confidence interval over seeds.

    Test: Student t interval ``mean ± t_{(1+level)/2, n-1} * SD / sqrt(n)`` with ``SD`` the sample standard
    deviation (ddof 1), n = number of seeds along ``axis``; no multiple-comparison correction.

    Args:
        values: array with seeds along ``axis`` (e.g. ``(seeds, levels)``).
        axis: the seed axis.
        level: confidence level in (0, 1).

    Returns:
        ``(mean, lower, upper)``: arrays of ``values``' shape without ``axis`` (floats for 1-D input); the bounds are
        NaN when n < 2.
    """
    from scipy import stats

    arr = _finite(values, "values")
    if not 0.0 < float(level) < 1.0:
        raise BiornnError(f"confidence level {level} is outside (0, 1); use e.g. 0.95")
    n = arr.shape[axis]
    if n == 0:
        raise BiornnError("mean_ci needs at least one value per column")
    mean = arr.mean(axis=axis)
    if n < 2:
        half = np.full_like(mean, np.nan)
    else:
        half = stats.t.ppf(0.5 + level / 2, n - 1) * arr.std(axis=axis, ddof=1) / np.sqrt(n)
    lower, upper = mean - half, mean + half
    if np.ndim(mean) == 0:
        return float(mean), float(lower), float(upper)
    return mean, lower, upper


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down; controls the family-wise error rate over all m inputs).

    ``p_adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))`` for the ascending p-values, returned in input order.

    Args:
        pvalues: ``(m,)`` p-values in [0, 1].

    Returns:
        ``(m,)`` adjusted p-values.
    """
    p = _finite(pvalues, "p-values").ravel()
    if ((p < 0) | (p > 1)).any():
        raise BiornnError("p-values must lie in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return out


def _signflip_pvalue(d: np.ndarray, n_random: int = 2 ** 16, seed: int = 0) -> float:
    n = d.size
    observed = abs(d.mean())
    if n <= 16:
        bits = (np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1
        means = np.abs((1 - 2 * bits) @ d) / n
        return float(np.mean(means >= observed - 1e-12 * max(1.0, observed)))
    rng = np.random.default_rng(seed)
    signs = rng.choice((-1.0, 1.0), size=(n_random, n))
    hits = np.sum(np.abs(signs @ d) / n >= observed - 1e-12 * max(1.0, observed))
    return float((1 + hits) / (1 + n_random))


def paired_test(a, b, test: str = "t_log") -> dict:
    """Two-sided paired test of ``a`` against ``b`` across seeds (one value per seed in each).

    Tests (n = number of seeds, no correction):

    * ``"t_log"``: paired t-test on ``log a - log b`` (n - 1 df); needs positive values.
    * ``"t"``: paired t-test on ``a - b`` (n - 1 df).
    * ``"signflip"``: exact permutation test of the mean of ``d = a - b`` under random sign flips; for n <= 16 all
      ``2^n`` sign patterns are enumerated (smallest p ``2 / 2^n``, 0.0625 at n = 5); for larger n, ``2^16`` random
      patterns from a fixed seed with the ``(1 + hits) / (1 + draws)`` estimate.
    * ``"wilcoxon"``: Wilcoxon signed-rank test on ``d`` (scipy, exact for small n without ties or zeros; with
      zeros, scipy drops them and uses the normal approximation, silently here).

    Args:
        a, b: ``(n,)`` paired values (e.g. per-seed errors of random and top-prob pruning).
        test: one of :data:`PAIRED_TESTS`.

    Returns:
        Dict with ``test``, ``n``, ``statistic`` (t, mean difference or W), ``pvalue`` and ``mean_diff``
        (mean of ``a - b``, or of ``log a - log b`` for ``t_log``).
    """
    from scipy import stats

    if test not in PAIRED_TESTS:
        raise BiornnError(f"unknown paired test {test!r}; use one of {', '.join(PAIRED_TESTS)}")
    a = _finite(a, "paired values").ravel()
    b = _finite(b, "paired values").ravel()
    if a.shape != b.shape:
        raise BiornnError(f"paired test needs one value per seed in each group, got {a.size} and {b.size}")
    if a.size < 2:
        raise BiornnError(f"paired test needs at least 2 seeds, got {a.size}")
    if test == "t_log":
        if (a <= 0).any() or (b <= 0).any():
            raise BiornnError("t_log needs positive errors; use test='t' or 'signflip' for values <= 0")
        d = np.log(a) - np.log(b)
    else:
        d = a - b
    if test in ("t", "t_log"):
        res = stats.ttest_1samp(d, 0.0)
        stat, p = float(res.statistic), float(res.pvalue)
    elif test == "signflip":
        stat, p = float(d.mean()), _signflip_pvalue(d)
    else:
        if np.all(d == 0):
            stat, p = 0.0, 1.0
        else:
            with warnings.catch_warnings():  # zeros in d: scipy drops them and uses the normal approximation
                warnings.simplefilter("ignore", UserWarning)
                res = stats.wilcoxon(d, alternative="two-sided")
            stat, p = float(res.statistic), float(res.pvalue)
    return {"test": test, "n": int(a.size), "statistic": stat, "pvalue": p, "mean_diff": float(d.mean())}


def paired_effect(a, b, level: float = 0.95) -> dict:
    """The paired effect of ``a`` against ``b`` on the scale of each test, with all four paired p-values.

    Each interval sits on the scale of the test it goes with, so interval and p-value agree (the interval excludes
    the null exactly when the two-sided t p-value is below ``1 - level``):

    * log scale (paired t on log values, ``t_log``): ``log_diff`` = mean over pairs of ``log a - log b`` with its
      t-interval (n - 1 df); ``ratio`` = ``exp(log_diff)``, the geometric mean of ``a / b``, with the exponentiated
      interval (``ratio > 1``: ``a`` larger). NaN when any value is <= 0.
    * raw scale (paired t, ``t``): ``diff`` = mean of ``a - b`` with its t-interval.
    * ``p_signflip`` (exact sign-flip of the mean raw difference) and ``p_wilcoxon`` (signed-rank on ``a - b``)
      test the raw differences without an interval of their own; ``wins`` = pairs with ``b < a``.

    No multiple-comparison correction here (see :func:`paired_effects`).

    Args:
        a, b: ``(n,)`` paired values, n >= 2 (e.g. per-seed errors of random and top-prob pruning).
        level: confidence level of the intervals.

    Returns:
        Dict of floats: ``n``, ``wins``, ``log_diff``, ``log_lo``, ``log_hi``, ``ratio``, ``ratio_lo``,
        ``ratio_hi``, ``diff``, ``diff_lo``, ``diff_hi`` and ``p_<test>`` for every test in :data:`PAIRED_TESTS`.
    """
    a = _finite(a, "paired values").ravel()
    b = _finite(b, "paired values").ravel()
    if a.shape != b.shape:
        raise BiornnError(f"paired effect needs one value per seed in each group, got {a.size} and {b.size}")
    if a.size < 2:
        raise BiornnError(f"paired effect needs at least 2 seeds, got {a.size}")
    out: dict = {"n": int(a.size), "wins": int(np.sum(b < a))}
    if (a > 0).all() and (b > 0).all():
        m, lo, hi = mean_ci(np.log(a) - np.log(b), level=level)
    else:
        m = lo = hi = float("nan")
    out.update(log_diff=m, log_lo=lo, log_hi=hi, ratio=float(np.exp(m)), ratio_lo=float(np.exp(lo)),
               ratio_hi=float(np.exp(hi)))
    m, lo, hi = mean_ci(a - b, level=level)
    out.update(diff=m, diff_lo=lo, diff_hi=hi)
    for test in PAIRED_TESTS:
        undefined = test == "t_log" and np.isnan(out["log_diff"])
        out[f"p_{test}"] = float("nan") if undefined else paired_test(a, b, test)["pvalue"]
    return out


def _holm_finite(pvalues) -> np.ndarray:
    """:func:`holm` over the finite entries of ``pvalues`` (NaN stays NaN and does not count in m)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = holm(p[ok])
    return out


def paired_effects(errors_random, errors_topprob, levels, interior=None, level: float = 0.95) -> dict:
    """:func:`paired_effect` of random vs top-prob pruning at every compared level and for the primary endpoint.

    Unit of replication: the seed; mask draws are averaged within a seed first. Per level (the ``interior``
    levels, default ``0 < p < 1``): effects on the log and raw scales with their ``level`` t-intervals and the four
    two-sided paired p-values, each test **Holm**-corrected over the compared levels (``holm_<test>``; m = number
    of levels with a finite p). Primary endpoint: per seed the mean error over the compared levels, the same
    effects and four p-values, uncorrected (one pre-specified comparison per test), as in
    :func:`pruning_comparison`. Effects are random relative to top-prob: ``ratio > 1`` and ``diff > 0`` mean
    top-prob's error is lower.

    Args:
        errors_random, errors_topprob: ``(seeds, levels)`` or ``(seeds, levels, draws)`` errors, paired by seed.
        levels: ``(levels,)`` connection probabilities.
        interior: indices of the compared levels.
        level: confidence level.

    Returns:
        ``{"per_level": [row, ...], "primary": row}``; each row is a :func:`paired_effect` dict, per-level rows
        with ``index``, ``level`` and ``holm_<test>`` added, the primary row with ``index = -1`` and ``level`` NaN.
    """
    R, T, lv = _paired_tables(errors_random, errors_topprob, levels)
    idx = np.flatnonzero((lv > 0) & (lv < 1)) if interior is None else np.asarray(interior, dtype=int).ravel()
    if idx.size == 0:
        raise BiornnError("no levels to compare; pass levels strictly between 0 and 1")
    rows = [{"index": int(j), "level": float(lv[j]), **paired_effect(R[:, j], T[:, j], level)} for j in idx]
    for test in PAIRED_TESTS:
        adj = _holm_finite([row[f"p_{test}"] for row in rows])
        for row, p in zip(rows, adj):
            row[f"holm_{test}"] = float(p)
    primary = {"index": -1, "level": float("nan"),
               **paired_effect(R[:, idx].mean(axis=1), T[:, idx].mean(axis=1), level)}
    return {"per_level": rows, "primary": primary}


def significance_label(p: float) -> str:
    """``'***'`` (p < 0.001), ``'**'`` (< 0.01), ``'*'`` (< 0.05) or ``'ns'``."""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "ns"


def _paired_tables(errors_random, errors_topprob, levels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The random and top-prob error tables ``(seeds, levels)``, checked to pair by seed, and their levels."""
    R = _errors_table(errors_random, "random-pruning errors")
    T = _errors_table(errors_topprob, "top-prob errors")
    if R.shape != T.shape:
        raise BiornnError(f"error tables differ in shape: random {R.shape}, top-prob {T.shape}; pair them by seed")
    lv = _finite(levels, "levels").ravel()
    if lv.size != R.shape[1]:
        raise BiornnError(f"{lv.size} levels given for tables with {R.shape[1]} columns; pass one p per column")
    return R, T, lv


def _errors_table(values, name: str) -> np.ndarray:
    arr = _finite(values, name)
    if arr.ndim == 3:  # (seeds, levels, draws): average the mask draws within a seed first
        arr = arr.mean(axis=2)
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise BiornnError(f"{name} have shape {arr.shape}; pass a (seeds, levels) or (seeds, levels, draws) table "
                          "with at least 2 seeds")
    return arr


def reference_aggregation(errors_random, errors_topprob) -> dict:
    """The reference's bar-chart statistics for one task, reproduced as published (§8.4 and 9.1; flawed).

    * Bar: per run the mean over all levels, then the **maximum over runs** (a worst-run statistic).
    * Error bar: ``1.96 * SEM`` (SD with ddof 1 / sqrt(n)) of all runs x levels pooled as ``n = 75`` i.i.d. values.
    * Test: per level an *unpaired* two-sided Mann-Whitney U (n = 5 vs 5, normal approximation with continuity
      correction: ``scipy.stats.mannwhitneyu(..., method="asymptotic", use_continuity=True)``); the label comes from
      the **minimum of the per-level p-values, uncorrected**. The first version used their mean instead.

    Args:
        errors_random, errors_topprob: ``(runs, levels)`` errors of the pruned networks.

    Returns:
        Dict: ``bar_random``, ``bar_topprob``, ``err_random``, ``err_topprob``, ``run_means_random``,
        ``run_means_topprob``, ``pooled_mean_random``/``_topprob``, ``pooled_sd_random``/``_topprob``,
        ``pvalues`` (per level), ``wins`` (runs with top-prob < random, per level), ``min_p``, ``mean_p``,
        ``label`` (from ``min_p``) and ``label_mean`` (from ``mean_p``).
    """
    from scipy import stats

    R = _errors_table(errors_random, "random-pruning errors")
    T = _errors_table(errors_topprob, "top-prob errors")
    if R.shape != T.shape:
        raise BiornnError(f"error tables differ in shape: random {R.shape}, top-prob {T.shape}")
    out: dict = {}
    for name, X in (("random", R), ("topprob", T)):
        run_means = X.mean(axis=1)
        pooled = X.ravel()
        out[f"run_means_{name}"] = run_means.tolist()
        out[f"bar_{name}"] = float(run_means.max())
        out[f"err_{name}"] = float(1.96 * pooled.std(ddof=1) / np.sqrt(pooled.size))
        out[f"pooled_mean_{name}"] = float(pooled.mean())
        out[f"pooled_sd_{name}"] = float(pooled.std(ddof=1))
    pvalues = [float(stats.mannwhitneyu(R[:, j], T[:, j], alternative="two-sided", method="asymptotic",
                                        use_continuity=True).pvalue) for j in range(R.shape[1])]
    out["pvalues"] = pvalues
    out["wins"] = (T < R).sum(axis=0).astype(int).tolist()
    out["min_p"] = float(min(pvalues))
    out["mean_p"] = float(np.mean(pvalues))
    out["label"] = significance_label(out["min_p"])
    out["label_mean"] = significance_label(out["mean_p"])
    return out


def pruning_comparison(errors_random, errors_topprob, levels, test: str = "t_log", level: float = 0.95,
                       interior=None) -> dict:
    """The recommended seed-level comparison of random vs top-prob pruning (§9.2).

    Unit of replication: the seed (one trained network); mask draws within a seed are averaged first.

    * Per level: mean ± ``level`` t-interval over seeds (n - 1 df) for each method (:func:`mean_ci`).
    * Secondary: a paired ``test`` (:func:`paired_test`, random vs top-prob across seeds) at each interior level, with
      Holm correction over the interior levels.
    * Primary endpoint: per seed the mean error over the interior levels; paired ``test`` across seeds (two-sided,
      no correction: one pre-specified test), the mean paired difference random - top-prob with its t-interval (the
      scale of ``t``), the mean log ratio and geometric-mean ratio random / top-prob with theirs (the scale of
      ``t_log``; see :func:`paired_effect`), and the p-values of all four paired tests for reference.

    Args:
        errors_random, errors_topprob: ``(seeds, levels)`` or ``(seeds, levels, draws)`` errors, paired by seed.
        levels: ``(levels,)`` connection probabilities ``p``.
        test: the paired test of the primary and secondary analyses (``t_log`` by default).
        level: confidence level.
        interior: indices of the compared levels (default: every level with ``0 < p < 1``; the end levels are
            identical for both methods by construction).

    Returns:
        A dict of plain lists and floats: ``levels``, ``n_seeds``, ``test``, ``interior``, ``random`` and ``topprob``
        (each ``{"mean", "ci_low", "ci_high"}`` per level), ``per_level`` (``{"index", "level", "mean_diff", "p",
        "p_holm"}`` over the interior levels; ``mean_diff`` = mean of random - top-prob) and ``primary``
        (``{"random", "topprob", "diff", "diff_ci", "log_diff", "log_diff_ci", "ratio", "ratio_ci", "pvalue",
        "pvalues"}``; the log-scale entries are NaN for errors <= 0).
    """
    R, T, lv = _paired_tables(errors_random, errors_topprob, levels)
    if test not in PAIRED_TESTS:
        raise BiornnError(f"unknown paired test {test!r}; use one of {', '.join(PAIRED_TESTS)}")
    idx = np.flatnonzero((lv > 0) & (lv < 1)) if interior is None else np.asarray(interior, dtype=int).ravel()
    if idx.size == 0:
        raise BiornnError("no interior levels to compare; pass levels strictly between 0 and 1")
    out: dict = {"levels": lv.tolist(), "n_seeds": int(R.shape[0]), "test": test, "interior": idx.tolist()}
    for name, X in (("random", R), ("topprob", T)):
        mean, lo, hi = mean_ci(X, axis=0, level=level)
        out[name] = {"mean": mean.tolist(), "ci_low": lo.tolist(), "ci_high": hi.tolist()}
    raw = [paired_test(R[:, j], T[:, j], test)["pvalue"] for j in idx]
    out["per_level"] = {"index": idx.tolist(), "level": lv[idx].tolist(),
                        "mean_diff": (R[:, idx] - T[:, idx]).mean(axis=0).tolist(), "p": raw,
                        "p_holm": holm(raw).tolist()}
    r_seed, t_seed = R[:, idx].mean(axis=1), T[:, idx].mean(axis=1)
    diff, lo, hi = mean_ci(r_seed - t_seed, level=level)
    pvalues = {}
    for name in PAIRED_TESTS:
        if name == "t_log" and name != test and ((r_seed <= 0).any() or (t_seed <= 0).any()):
            pvalues[name] = float("nan")  # log errors undefined; only reported when not the chosen test
        else:
            pvalues[name] = paired_test(r_seed, t_seed, name)["pvalue"]
    eff = paired_effect(r_seed, t_seed, level) if (r_seed > 0).all() and (t_seed > 0).all() else None
    nan = float("nan")
    out["primary"] = {"random": float(r_seed.mean()), "topprob": float(t_seed.mean()), "diff": diff,
                      "diff_ci": [lo, hi], "log_diff": eff["log_diff"] if eff else nan,
                      "log_diff_ci": [eff["log_lo"], eff["log_hi"]] if eff else [nan, nan],
                      "ratio": eff["ratio"] if eff else nan,
                      "ratio_ci": [eff["ratio_lo"], eff["ratio_hi"]] if eff else [nan, nan],
                      "pvalue": pvalues[test], "pvalues": pvalues,
                      "per_seed_random": r_seed.tolist(), "per_seed_topprob": t_seed.tolist()}
    return out



# ----------------------------------------------------------------------------------------------------------------------
# Two-group tests of run-level block values (Figure 5 condition comparisons) and multiple-comparison corrections
# ----------------------------------------------------------------------------------------------------------------------

TESTS = ("permutation", "welch")


#: The significance level of every test in biornn (two-sided), unless a call says otherwise.
ALPHA = 0.05
CORRECTIONS = ("fdr_bh", "fdr_by", "holm")


def fdr_bh(pvalues) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (step-up; controls the false discovery rate over all m inputs).

    ``p_adj_(i) = min_{j >= i} min(1, m p_(j) / j)`` for the ascending p-values, returned in input order.

    Args:
        pvalues: ``(m,)`` p-values in [0, 1].

    Returns:
        ``(m,)`` adjusted p-values.
    """
    return _step_up(pvalues, 1.0)


def _step_up(pvalues, factor: float) -> np.ndarray:
    """``min_{j >= i} min(1, factor m p_(j) / j)`` over the ascending p-values, in input order (BH: factor 1)."""
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    if not np.isfinite(p).all() or ((p < 0) | (p > 1)).any():
        raise BiornnError("p-values must be finite numbers in [0, 1]")
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    ranked = p[order] * factor * m / np.arange(1, m + 1)
    adj = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    out = np.empty(m)
    out[order] = adj
    return out


def fdr_by(pvalues) -> np.ndarray:
    """Benjamini–Yekutieli adjusted p-values: the false discovery rate controlled under any dependence of the tests.

    Benjamini–Hochberg scaled by ``c(m) = sum_{i=1..m} 1/i`` (Benjamini & Yekutieli 2001, theorem 1.3):
    ``p_adj_(i) = min_{j >= i} min(1, c(m) m p_(j) / j)`` for the ascending p-values, returned in input order. Use it
    where the tests are correlated in unknown ways (for example contrasts that share a condition's runs), where
    Benjamini–Hochberg's guarantee (independence or positive regression dependence) is not established.

    Args:
        pvalues: ``(m,)`` p-values in [0, 1].

    Returns:
        ``(m,)`` adjusted p-values.
    """
    m = np.asarray(pvalues).size
    return _step_up(pvalues, float(np.sum(1.0 / np.arange(1, m + 1))))


def adjust(pvalues, correction: str = "fdr_bh") -> np.ndarray:
    """Adjust p-values with ``fdr_bh`` (:func:`fdr_bh`), ``fdr_by`` (:func:`fdr_by`) or ``holm``
    (:func:`biornn.stats.significance.holm`)."""
    if correction not in CORRECTIONS:
        raise BiornnError(f"unknown correction {correction!r}; use one of {', '.join(CORRECTIONS)}")
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    if p.size == 0:
        return p
    return {"fdr_bh": fdr_bh, "fdr_by": fdr_by, "holm": holm}[correction](p)


def _finite_1d(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def bootstrap_z(a, b) -> dict:
    """Two-sided z-test of ``mean(b) - mean(a)`` with the bootstrap standard error ``sqrt(sd_a^2 + sd_b^2)``.

    For replicates that are each one **bootstrap resample** of a fixed dataset (plus a new initialisation), such as
    the runs of :mod:`biornn.data.replicates`: the SD over a condition's replicates (``ddof=1``) already estimates the
    standard error of one fit, so it is **not** divided by ``sqrt(n)`` (doing so would shrink the SE as replicates
    are added while the data stay the same). Using it for the mean over replicates is the conservative end (averaging
    removes initialisation noise, not the sampling noise of the data). ``z = delta / se``, ``p = 2 (1 - Phi(|z|))``.
    The SE is itself estimated from ``n_a`` and ``n_b`` replicates (``n - 1`` degrees of freedom each), so with few
    replicates it is noisy. NaN/inf values are dropped.

    Args:
        a, b: the two groups' per-replicate values.

    Returns:
        ``{"delta", "se", "z", "pvalue", "n_a", "n_b"}``; ``se``, ``z`` and ``pvalue`` are NaN when a group has fewer
        than two finite values or both SDs are 0.
    """
    a, b = _finite_1d(a), _finite_1d(b)
    delta = float(b.mean() - a.mean()) if a.size and b.size else float("nan")
    se = float(np.hypot(a.std(ddof=1), b.std(ddof=1))) if a.size > 1 and b.size > 1 else float("nan")
    return _z(delta, se) | {"n_a": int(a.size), "n_b": int(b.size)}


def paired_bootstrap_z(d) -> dict:
    """Two-sided z-test of ``mean(d)`` with the bootstrap standard error ``sd(d)`` (``ddof=1``, not over sqrt(n)).

    ``d``: per-replicate paired differences, each computed within one bootstrap replicate (for example seed k's
    planted-twin minus null-twin delta, where seed k gives both twins the same resample and initialisation). As in
    :func:`bootstrap_z`, each ``d_k`` is one bootstrap replicate of the contrast, so its SD over replicates is the
    standard error of one fit; pairing removes what the replicates share. NaN/inf values are dropped.

    Returns:
        ``{"delta", "se", "z", "pvalue", "n"}`` (NaN statistics below two finite values or at zero spread).
    """
    d = _finite_1d(d)
    delta = float(d.mean()) if d.size else float("nan")
    se = float(d.std(ddof=1)) if d.size > 1 else float("nan")
    return _z(delta, se) | {"n": int(d.size)}


def _z(delta: float, se: float) -> dict:
    from scipy import stats

    if not (np.isfinite(se) and se > 0 and np.isfinite(delta)):
        return {"delta": delta, "se": se, "z": float("nan"), "pvalue": float("nan")}
    z = delta / se
    return {"delta": delta, "se": se, "z": float(z), "pvalue": float(2 * stats.norm.sf(abs(z)))}


def _nanstat(fn, x: np.ndarray, **kwargs) -> np.ndarray:
    """``fn(x, axis=0, **kwargs)`` for a NaN-aware numpy statistic, NaN without a warning for all-NaN columns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(x, axis=0, **kwargs)


def _values(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 1:
        raise BiornnError(f"{name} must be (runs, blocks) with at least one run, got shape {x.shape}")
    if np.isinf(x).any():
        raise BiornnError(f"{name} contain inf")
    return x


def _group_means(x0: np.ndarray, valid: np.ndarray, members: np.ndarray):
    """Means of the member rows and of the rest: ``members`` ``(K, n)`` 0/1 -> two ``(K, m)`` arrays."""
    s_in, c_in = members @ x0, members @ valid
    s_out, c_out = x0.sum(0) - s_in, valid.sum(0) - c_in
    with np.errstate(invalid="ignore", divide="ignore"):
        return s_in / c_in, s_out / c_out


@lru_cache(maxsize=16)
def _relabellings(n: int, k: int) -> np.ndarray:
    """``(C(n, k), n)`` 0/1 rows: every way to pick the ``k`` members of group B among ``n`` runs."""
    idx = np.array(list(combinations(range(n), k)), dtype=np.int64).reshape(-1, k)
    members = np.zeros((idx.shape[0], n))
    np.put_along_axis(members, idx, 1.0, axis=1)
    members.setflags(write=False)
    return members


def permutation_test(a, b, n_resamples: int = 9999, max_exact: int = 20000, seed: int = 0) -> dict:
    """Two-sided run-label permutation test of ``mean(b) - mean(a)``, vectorised over blocks.

    Under the null, run labels are exchangeable between the conditions. Every relabelling keeps the group sizes.
    NaN values (e.g. the strength of an empty block) are left out of the means; relabellings that leave a group
    without a value are left out of the reference distribution.

    Args:
        a: ``(nA, m)`` values of condition A (runs x blocks); ``(nA,)`` for one block.
        b: ``(nB, m)`` values of condition B.
        n_resamples: random relabellings when enumeration is too large.
        max_exact: enumerate all ``C(nA + nB, nB)`` relabellings when there are at most this many.
        seed: seed of the random relabellings.

    Returns:
        Dict with ``statistic`` ``(m,)`` (mean B - mean A), ``pvalue`` ``(m,)`` (NaN when a condition has no value),
        ``method`` (``exact`` or ``monte carlo``), ``n_permutations``, ``n_a``, ``n_b``.
    """
    a, b = _values(a, "values of A"), _values(b, "values of B")
    if a.shape[1] != b.shape[1]:
        raise BiornnError(f"A has {a.shape[1]} blocks and B {b.shape[1]}; pass the same blocks")
    na, nb = a.shape[0], b.shape[0]
    n = na + nb
    x = np.concatenate([a, b])
    valid = np.isfinite(x).astype(np.float64)
    x0 = np.where(valid > 0, x, 0.0)
    observed = np.zeros((1, n))
    observed[0, na:] = 1.0
    mb, ma = _group_means(x0, valid, observed)
    stat = (mb - ma)[0]
    total = math.comb(n, nb)
    if total <= max_exact:
        members = _relabellings(n, nb)
        method = "exact"
    else:
        rng = np.random.default_rng(seed)
        picks = np.argsort(rng.random((int(n_resamples), n)), axis=1)[:, :nb]
        members = np.zeros((int(n_resamples), n))
        np.put_along_axis(members, picks, 1.0, axis=1)
        method = "monte carlo"
    pb, pa = _group_means(x0, valid, members)
    perm = pb - pa
    ok = np.isfinite(perm)
    scale = np.max(np.abs(x0), axis=0)  # ties up to rounding count as at least as extreme
    with np.errstate(invalid="ignore"):
        hits = (ok & (np.abs(perm) >= np.abs(stat) - 1e-9 * scale)).sum(0)
    used = ok.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = hits / used if method == "exact" else (1 + hits) / (1 + used)
    p = np.where(np.isfinite(stat) & (used > 0), np.minimum(p, 1.0), np.nan)
    return {"statistic": stat, "pvalue": p, "method": method, "n_permutations": int(members.shape[0]),
            "n_a": na, "n_b": nb}


def welch_test(a, b) -> dict:
    """Welch's two-sided unequal-variance t-test of ``mean(b) - mean(a)``, vectorised over blocks (NaN ignored).

    Args:
        a: ``(nA, m)`` values of condition A; b: ``(nB, m)`` of condition B.

    Returns:
        Dict with ``statistic`` ``(m,)`` (mean difference), ``t``, ``df``, ``pvalue`` (1 when both groups are
        constant and equal, 0 when constant and different, NaN with fewer than 2 values in a group), ``n_a``,
        ``n_b``.
    """
    from scipy import stats

    a, b = _values(a, "values of A"), _values(b, "values of B")
    ca, cb = np.isfinite(a).sum(0), np.isfinite(b).sum(0)
    ma, mb = _nanstat(np.nanmean, a), _nanstat(np.nanmean, b)
    va, vb = _nanstat(np.nanvar, a, ddof=1), _nanstat(np.nanvar, b, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        se2 = va / ca + vb / cb
        diff = mb - ma
        t = diff / np.sqrt(se2)
        df = se2 ** 2 / ((va / ca) ** 2 / (ca - 1) + (vb / cb) ** 2 / (cb - 1))
        p = 2 * stats.t.sf(np.abs(t), df)
    p = np.where(se2 == 0, np.where(diff == 0, 1.0, 0.0), p)
    p = np.where((ca < 2) | (cb < 2), np.nan, p)
    return {"statistic": diff, "t": t, "df": df, "pvalue": p, "method": "welch", "n_a": a.shape[0],
            "n_b": b.shape[0]}


def hedges_g(a, b) -> np.ndarray:
    """Hedges' g of B vs A per block: ``(mean B - mean A) / pooled SD * (1 - 3 / (4 (nA + nB) - 9))``.

    Pooled SD with ddof 1 in each group; NaN values left out. NaN when either group has fewer than 2 values or when
    the difference and the SD are both 0; +-inf when only the SD is 0.

    Args:
        a: ``(nA, m)``; b: ``(nB, m)``.

    Returns:
        ``(m,)`` effect sizes.
    """
    a, b = _values(a, "values of A"), _values(b, "values of B")
    ca, cb = np.isfinite(a).sum(0), np.isfinite(b).sum(0)
    diff = _nanstat(np.nanmean, b) - _nanstat(np.nanmean, a)
    va, vb = _nanstat(np.nanvar, a, ddof=1), _nanstat(np.nanvar, b, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = np.sqrt(((ca - 1) * va + (cb - 1) * vb) / (ca + cb - 2))
        g = diff / pooled * (1 - 3 / (4 * (ca + cb) - 9))
    return np.where((ca < 2) | (cb < 2) | ((diff == 0) & (pooled == 0)), np.nan, g)
