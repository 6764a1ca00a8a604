"""Statistics: the reference's bar-chart aggregation reproduces the published numbers; the honest protocol's pieces.

The three 5 x 15 error tables per task are the reference's arrays (fig3-topprob-pruning.md 8.1; 4 significant digits).
"""

import numpy as np
import pytest

from biornn.core.errors import BiornnError
from biornn.stats.significance import (
    PAIRED_TESTS,
    adjust,
    bootstrap_z,
    fdr_bh,
    fdr_by,
    holm,
    mean_ci,
    paired_bootstrap_z,
    paired_effect,
    paired_effects,
    paired_test,
    pruning_comparison,
    reference_aggregation,
)

LEVELS = np.concatenate([[0.0], np.linspace(0.01, 1, 14)])

FLIPFLOP = """
R0 0.6172 0.6149 0.5976 0.5769 0.5617 0.5517 0.5354 0.502 0.5355 0.4439 0.4619 0.5763 0.6052 0.3805 0.0002513
R1 0.6173 0.6167 0.5999 0.5742 0.5575 0.5536 0.5116 0.5111 0.4818 0.457 0.393 0.3541 0.05196 0.01202 0.0002675
R2 0.6172 0.6154 0.5959 0.578 0.5541 0.5446 0.5125 0.495 0.4931 0.4623 0.3671 0.2293 0.0661 0.0006929 0.0002175
R3 0.659 0.6567 0.5979 0.5875 0.6095 0.5522 0.9183 0.5648 0.5022 0.3052 0.735 0.2008 0.1275 0.01118 0.004323
R4 0.6173 0.6182 0.5948 0.5823 0.5533 0.5535 0.5189 0.4859 0.4588 0.4198 0.3521 0.3403 0.1447 0.001743 7.517e-5
T0 0.6172 0.613 0.606 0.845 0.9452 0.9348 0.781 0.4116
   0.003216 0.0003672 0.0003921 0.000317 0.0003526 0.0002559 0.0002513
T1 0.6173 0.6141 0.5577 0.4683 0.3045 0.07248 0.008295 0.005065
   0.0006925 0.0003831 0.0005736 0.000294 0.0002842 0.0002688 0.0002675
T2 0.6172 0.6109 0.5778 0.5202 0.3911 0.2357 0.003185 0.02587
   0.000314 0.000392 0.0003396 0.000311 0.0002488 0.0002183 0.0002175
T3 0.659 0.6319 1.211 0.5716 0.8986 0.5551 0.2637 0.01138
   0.006789 0.00683 0.006416 0.004628 0.004784 0.004311 0.004323
T4 0.6173 0.6114 0.5618 0.5208 0.432 0.3502 0.133 0.01887
   0.001499 0.0004208 0.0002104 9.176e-5 7.763e-5 7.534e-5 7.517e-5
"""

WAVE = """
R0 0.1765 0.174 0.1507 0.1311 0.1043 0.08845 0.06487 0.04118
   0.04661 0.02278 0.03122 0.01203 0.008578 0.008902 0.006275
R1 0.253 0.2504 0.2101 0.191 0.1505 0.1206 0.1209 0.08753 0.05798 0.02681 0.02211 0.02509 0.01443 0.01087 0.00623
R2 0.3296 0.3269 0.2991 0.2727 0.2538 0.2067 0.1732 0.1496 0.1055 0.1014 0.04999 0.03113 0.01428 0.01144 0.005804
R3 0.2716 0.2683 0.2304 0.1982 0.1671 0.1492 0.1041 0.1098 0.07378 0.05154 0.03872 0.0339 0.01921 0.01057 0.009127
R4 0.1745 0.17 0.1421 0.1276 0.09672 0.0676 0.0795 0.06103 0.1093 0.04249 0.01722 0.01782 0.01046 0.01255 0.003849
T0 0.1765 0.1711 0.126 0.07288 0.03961 0.02074 0.008985 0.008863
   0.007031 0.0065 0.00657 0.006592 0.006359 0.006259 0.006275
T1 0.253 0.2441 0.1678 0.1111 0.07226 0.05454 0.04414 0.02554
   0.01652 0.01684 0.01065 0.01002 0.006679 0.006344 0.00623
T2 0.3296 0.3267 0.276 0.2147 0.1769 0.1035 0.1002 0.05491 0.03769 0.01608 0.01234 0.009147 0.006182 0.005846 0.005804
T3 0.2716 0.2645 0.1966 0.1322 0.05736 0.04311 0.01823 0.01718
   0.01159 0.01045 0.01048 0.009356 0.009148 0.00914 0.009127
T4 0.1745 0.1676 0.1237 0.1155 0.1557 0.2944 0.4244 0.4169 0.2081 0.1039 0.05276 0.01682 0.009003 0.00443 0.003849
"""

SMNIST = """
R0 4.001 4.059 3.865 4.63 4.212 4.219 4.121 4.138 4.462 4.344 5.251 3.676 2.277 0.8248 0.1419
R1 2.634 2.639 2.727 2.6 2.94 3.63 3.617 3.889 4.309 5.854 4.862 1.331 3.133 0.6594 0.2054
R2 5.506 5.465 6.292 6.145 5.912 5.717 5.366 5.918 5.458 6.952 3.583 4.706 2.2 2.35 0.1742
R3 2.556 2.561 2.631 2.723 2.87 2.746 3.927 3.236 4.061 3.535 4.046 2.312 1.646 0.4595 0.159
R4 3.012 3.02 3.011 3.268 3.135 5.533 3.752 6.008 5.205 4.521 4.903 5.65 3.208 1.326 0.2221
T0 4.001 3.906 6.8 5.489 4.926 4.01 1.177 1.19 0.5943 0.6751 0.2609 0.2026 0.1685 0.1437 0.1419
T1 2.634 2.651 3.265 4.205 2.811 2.502 1.477 1.027 0.5767 1.014 0.4374 0.3312 0.1937 0.1846 0.2054
T2 5.506 5.715 5.418 4.523 4.458 5.033 4.661 2.85 1.075 0.7548 0.2584 0.1913 0.1875 0.1676 0.1742
T3 2.556 2.684 3.35 3.601 3.262 2.273 1.404 0.8116 0.5096 0.4791 0.4445 0.1395 0.1396 0.154 0.159
T4 3.012 3.153 3.483 6.194 4.304 4.371 4.808 5.474 4.218 2.114 1.847 0.5576 0.2985 0.2317 0.2221
"""


def _table(text):
    rows, label = {}, None
    for line in text.strip().splitlines():
        tokens = line.split()
        if not line.startswith(" "):  # "R0 v v v ..."; indented lines continue the previous row
            label = tokens.pop(0)
            rows[label] = []
        rows[label] += [float(v) for v in tokens]
    R = np.array([rows[f"R{i}"] for i in range(5)])
    T = np.array([rows[f"T{i}"] for i in range(5)])
    assert R.shape == T.shape == (5, 15)
    return R, T


TASKS = {"flipflop": _table(FLIPFLOP), "wave": _table(WAVE), "smnist": _table(SMNIST)}

# docs/paper/fig3-topprob-pruning.md 8.4: random bar, random err, top-prob bar, top-prob err, min p, mean-of-p
BARS = {
    "flipflop": (0.50406, 0.04918, 0.38394, 0.07329, 0.012186, 0.29808),
    "wave": (0.15540, 0.02053, 0.15144, 0.02448, 0.021572, 0.32662),
    "smnist": (4.78294, 0.37686, 2.95261, 0.44498, 0.012186, 0.32628),
}

# docs/paper/fig3-topprob-pruning.md 8.3: per-level p-values and win counts
LEVEL_P = {
    "flipflop": [1, .0947, .6761, .1437, .6761, .6761, .0947, .0122, .0122, .0122, .0122, .0122, .0122, .0367, 1],
    "wave": [1, .6761, .4034, .2101, .2963, .2963, .2963, .2101, .1437, .1437, .1437, .0216, .0367, .0216, 1],
    "smnist": [1, .6761, .2963, .2963, .6761, .4034, .4034, .0601, .0216, .0122, .0122, .0122, .0122, .0122, 1],
}
WINS = {
    "flipflop": [0, 5, 3, 4, 3, 3, 4, 5, 5, 5, 5, 5, 5, 5, 0],
    "wave": [0, 5, 5, 5, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 0],
    "smnist": [0, 1, 1, 1, 2, 5, 4, 5, 5, 5, 5, 5, 5, 5, 0],
}


@pytest.mark.parametrize("task", TASKS)
def test_reference_aggregation_reproduces_bar_chart(task):
    R, T = TASKS[task]
    agg = reference_aggregation(R, T)
    bar_r, err_r, bar_t, err_t, min_p, mean_p = BARS[task]
    # bars and error bars to 4 significant digits (the arrays are rounded to 4 digits)
    for got, want in ((agg["bar_random"], bar_r), (agg["err_random"], err_r), (agg["bar_topprob"], bar_t),
                      (agg["err_topprob"], err_t)):
        assert got == pytest.approx(want, rel=5e-4)
    # the MWU p-values depend on ranks only, so the rounded arrays reproduce them exactly
    assert agg["min_p"] == pytest.approx(min_p, abs=5e-7)
    assert agg["mean_p"] == pytest.approx(mean_p, abs=5e-6)
    assert agg["label"] == "*" and agg["label_mean"] == "ns"
    np.testing.assert_allclose(agg["pvalues"], LEVEL_P[task], atol=5e-5)
    assert agg["wins"] == WINS[task]


def test_reference_aggregation_supporting_values():
    R, T = TASKS["flipflop"]
    agg = reference_aggregation(R, T)
    np.testing.assert_allclose(agg["run_means_random"], [.5041, .4195, .4088, .4688, .4161], atol=6e-5)
    np.testing.assert_allclose(agg["run_means_topprob"], [.3839, .1767, .1989, .3227, .2165], atol=6e-5)
    assert agg["pooled_mean_random"] == pytest.approx(.4434, abs=6e-5)
    assert agg["pooled_sd_topprob"] == pytest.approx(.3238, abs=6e-5)


def test_holm_over_interior_levels_removes_reference_significance():
    """Spec 9.1: Holm over the 13 informative levels turns the min p into 0.158 / 0.280 / 0.158 (all ns)."""
    for task, want in (("flipflop", 0.158), ("wave", 0.280), ("smnist", 0.158)):
        p = reference_aggregation(*TASKS[task])["pvalues"][1:14]
        assert holm(p).min() == pytest.approx(want, abs=1e-3)


def test_holm_known_vector():
    p = [0.01, 0.04, 0.03, 0.005]
    # ascending 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, 1*0.04 = .02 .03 .06 .04 -> monotone .02 .03 .06 .06
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])  # monotone: 0.9 is raised to 2 * 0.5
    np.testing.assert_allclose(holm([0.2, 0.01]), [0.2, 0.02])
    with pytest.raises(BiornnError):
        holm([0.1, float("nan")])


def test_signflip_exact_minimum():
    res = paired_test([2.0, 3.0, 4.0, 5.0, 6.0], [1.0, 1.5, 2.0, 2.5, 3.0], test="signflip")
    assert res["pvalue"] == pytest.approx(0.0625) and res["n"] == 5
    # one negative difference out of five: patterns with |mean| >= observed are few but more than two
    res = paired_test([2.0, 3.0, 4.0, 5.0, 0.0], [1.0, 1.5, 2.0, 2.5, 0.5], test="signflip")
    d = np.array([1.0, 1.5, 2.0, 2.5, -0.5])
    bits = (np.arange(32)[:, None] >> np.arange(5)) & 1
    want = np.mean(np.abs((1 - 2 * bits) @ d) >= abs(d.sum()) - 1e-12)
    assert res["pvalue"] == pytest.approx(want) and res["pvalue"] > 0.0625


def test_paired_tests_against_scipy():
    from scipy import stats

    rng = np.random.default_rng(0)
    a, b = rng.lognormal(size=8), rng.lognormal(size=8)
    assert paired_test(a, b, "t")["pvalue"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert paired_test(a, b, "t_log")["pvalue"] == pytest.approx(stats.ttest_rel(np.log(a), np.log(b)).pvalue)
    assert paired_test(a, b, "wilcoxon")["pvalue"] == pytest.approx(stats.wilcoxon(a - b).pvalue)
    with pytest.raises(BiornnError, match="positive"):
        paired_test([1.0, -1.0], [1.0, 2.0], "t_log")
    with pytest.raises(BiornnError, match="unknown paired test"):
        paired_test(a, b, "ks")


def test_mean_ci_by_hand():
    x = np.array([1.0, 2.0, 4.0, 7.0])
    mean, lo, hi = mean_ci(x)
    sd = np.sqrt(((x - 3.5) ** 2).sum() / 3)  # 2.6458
    half = 3.182446305284263 * sd / 2  # t_{0.975, 3}
    assert mean == 3.5 and lo == pytest.approx(3.5 - half) and hi == pytest.approx(3.5 + half)
    m, lo, hi = mean_ci(np.stack([x, 2 * x], axis=1))
    np.testing.assert_allclose(m, [3.5, 7.0])
    np.testing.assert_allclose(hi - m, [half, 2 * half])
    assert np.isnan(mean_ci([3.0])[1])


# docs §9.3: interior-mean errors, paired difference [95 % CI], paired t p (raw / log), Wilcoxon, Holm levels
PROTOCOL = {
    "flipflop": (0.463, 0.252, 0.212, (0.141, 0.283), 0.0012, 0.0076, 0.0625, list(range(8, 13))),
    "wave": (0.101, 0.085, 0.017, (-0.057, 0.090), 0.56, 0.38, 0.625, [2]),
    "smnist": (3.81, 2.24, 1.57, (0.90, 2.24), 0.0029, 0.0025, 0.0625, list(range(9, 14))),
}


@pytest.mark.parametrize("task", TASKS)
def test_recommended_protocol_on_reference_arrays(task):
    R, T = TASKS[task]
    res = pruning_comparison(R, T, LEVELS)
    r_mean, t_mean, diff, ci, p_raw, p_log, p_wil, holm_levels = PROTOCOL[task]
    assert res["interior"] == list(range(1, 14))
    prim = res["primary"]
    tol = dict(rel=0.02, abs=2e-3)
    assert prim["random"] == pytest.approx(r_mean, **tol) and prim["topprob"] == pytest.approx(t_mean, **tol)
    assert prim["diff"] == pytest.approx(diff, **tol)
    assert prim["diff_ci"][0] == pytest.approx(ci[0], **tol) and prim["diff_ci"][1] == pytest.approx(ci[1], **tol)
    assert prim["pvalues"]["t"] == pytest.approx(p_raw, rel=0.05, abs=1e-4)
    assert prim["pvalues"]["t_log"] == pytest.approx(p_log, rel=0.05, abs=1e-4)
    assert prim["pvalue"] == prim["pvalues"]["t_log"]
    assert prim["pvalues"]["wilcoxon"] == pytest.approx(p_wil)
    significant = [j for j, p in zip(res["per_level"]["index"], res["per_level"]["p_holm"]) if p < 0.05]
    assert significant == holm_levels
    # per-level summaries: docs/paper/fig3-topprob-pruning.md 8.2 means at two levels
    assert len(res["random"]["mean"]) == 15 and res["random"]["ci_low"][3] < res["random"]["mean"][3]


def test_protocol_averages_draws_and_checks_shapes():
    R, T = TASKS["wave"]
    draws = np.stack([R, R], axis=2)
    a = pruning_comparison(draws, np.stack([T, T], axis=2), LEVELS)
    b = pruning_comparison(R, T, LEVELS)
    assert a["primary"]["pvalue"] == pytest.approx(b["primary"]["pvalue"])
    with pytest.raises(BiornnError, match="levels"):
        pruning_comparison(R, T, LEVELS[:5])
    with pytest.raises(BiornnError, match="differ in shape"):
        pruning_comparison(R, T[:4], LEVELS)


# -- each effect on the scale of its test (paired_effect / paired_effects) ----------------------------------------
def _agrees(lo, hi, null, p):
    """A two-sided t interval excludes the null exactly when its t-test's p is below 1 - level."""
    return (lo > null or hi < null) == (p < 0.05)


def test_log_and_raw_conclusions_differ():
    # every seed's error 20 % higher under a, but one seed's errors are 10^4 times the others': the log-scale test
    # sees ten consistent ratios, the raw-scale test sees one large difference and nine negligible ones
    rng = np.random.default_rng(1)
    b = np.r_[np.full(9, 1e-3), 10.0] * rng.uniform(0.9, 1.1, 10)
    a = b * 1.2 * rng.uniform(0.98, 1.02, 10)
    e = paired_effect(a, b)
    assert e["n"] == 10 and e["wins"] == 10
    assert e["p_t_log"] < 1e-6 and e["ratio_lo"] > 1.15 and e["ratio_hi"] < 1.25
    assert e["p_t"] > 0.2 and e["diff_lo"] < 0 < e["diff_hi"]
    assert e["p_signflip"] == pytest.approx(2 / 2 ** 10) and e["p_wilcoxon"] == pytest.approx(2 / 2 ** 10)
    assert _agrees(e["ratio_lo"], e["ratio_hi"], 1.0, e["p_t_log"]) and _agrees(e["diff_lo"], e["diff_hi"], 0, e["p_t"])
    # the log-scale effect is exactly the t-interval of the log ratios, exponentiated
    m, lo, hi = mean_ci(np.log(a / b))
    assert e["log_diff"] == pytest.approx(m) and e["ratio"] == pytest.approx(np.exp(m))
    assert (e["ratio_lo"], e["ratio_hi"]) == pytest.approx((np.exp(lo), np.exp(hi)))
    assert e["p_t_log"] == pytest.approx(paired_test(a, b, "t_log")["pvalue"])


def test_paired_effect_without_positive_values():
    e = paired_effect([1.0, -1.0, 2.0], [0.5, 0.0, 1.0])
    assert np.isnan(e["ratio"]) and np.isnan(e["p_t_log"])
    assert np.isfinite(e["p_t"]) and e["diff"] == pytest.approx(0.5 / 3)


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_signflip_is_exact_for_small_n(n):
    import itertools

    rng = np.random.default_rng(n)
    a, b = rng.lognormal(size=n), rng.lognormal(size=n)
    d = a - b
    hits = sum(abs(np.dot(signs, d)) >= abs(d.sum()) - 1e-12 for signs in itertools.product((1, -1), repeat=n))
    p = paired_effect(a, b)["p_signflip"]
    assert p == hits / 2 ** n  # exact, not approximately
    assert (p * 2 ** n) % 2 == 0  # the null distribution is symmetric: patterns come in +- pairs
    # all differences one way: the smallest possible p
    assert paired_effect(b + rng.uniform(0.5, 1.5, n), b)["p_signflip"] == 2 / 2 ** n


def test_holm_is_monotone():
    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 13):
        p = rng.uniform(0, 0.2, m) ** 2
        adj = holm(p)
        order = np.argsort(p)
        assert np.all(np.diff(adj[order]) >= 0) and np.all(adj >= p) and np.all(adj <= 1)


@pytest.mark.parametrize("task", TASKS)
def test_paired_effects_on_reference_arrays(task):
    R, T = TASKS[task]
    res = paired_effects(R, T, LEVELS)
    rows, prim = res["per_level"], res["primary"]
    old = pruning_comparison(R, T, LEVELS)
    assert [r["index"] for r in rows] == old["interior"] == list(range(1, 14))
    np.testing.assert_allclose([r["holm_t_log"] for r in rows], old["per_level"]["p_holm"])
    np.testing.assert_allclose([r["diff"] for r in rows], old["per_level"]["mean_diff"])
    assert prim["diff"] == pytest.approx(old["primary"]["diff"]) and prim["index"] == -1
    assert [prim["diff_lo"], prim["diff_hi"]] == pytest.approx(old["primary"]["diff_ci"])
    assert [prim["ratio_lo"], prim["ratio_hi"]] == pytest.approx(old["primary"]["ratio_ci"])
    for test in PAIRED_TESTS:
        assert prim[f"p_{test}"] == pytest.approx(old["primary"]["pvalues"][test])
        raw = np.array([r[f"p_{test}"] for r in rows])
        adj = np.array([r[f"holm_{test}"] for r in rows])
        np.testing.assert_allclose(adj, holm(raw))
        order = np.argsort(raw, kind="stable")
        assert np.all(np.diff(adj[order]) >= 0) and np.all(adj >= raw)  # Holm per test over the levels
    for r in [*rows, prim]:
        assert _agrees(r["ratio_lo"], r["ratio_hi"], 1.0, r["p_t_log"]) and _agrees(r["diff_lo"], r["diff_hi"], 0,
                                                                                    r["p_t"])


# ---- the recovery check's statistics (biornn.experiments.fig5.recovery) ----------------------------------------
def test_benjamini_yekutieli_known_vector():
    p = [0.01, 0.04, 0.03, 0.005]
    c4 = 1 + 1 / 2 + 1 / 3 + 1 / 4  # 25/12
    # ascending 0.005, 0.01, 0.03, 0.04 -> c 4 p / rank = .02c .02c .04c .04c (already monotone) -> 1/24 1/24 1/12 1/12
    np.testing.assert_allclose(fdr_by(p), [0.02 * c4, 0.04 * c4, 0.04 * c4, 0.02 * c4])
    np.testing.assert_allclose(fdr_by(p), [1 / 24, 1 / 12, 1 / 12, 1 / 24])
    np.testing.assert_allclose(fdr_by(p), fdr_bh(p) * c4)  # BH times c(m) where nothing reaches the cap
    np.testing.assert_allclose(fdr_by([0.3, 0.5]), [0.75, 0.75])  # c2 = 1.5: 0.9 and 0.75 -> step-up minimum 0.75
    np.testing.assert_allclose(fdr_by([0.6, 0.9]), [1.0, 1.0])  # capped at 1
    np.testing.assert_allclose(adjust(p, "fdr_by"), fdr_by(p))
    assert fdr_by([]).size == 0
    with pytest.raises(BiornnError):
        fdr_by([0.1, float("nan")])


def test_bootstrap_z_by_hand():
    # a: mean 2, sd 1; b: mean 6, sd sqrt(3) -> delta 4, se sqrt(1 + 3) = 2 (no division by sqrt(n)), z 2
    res = bootstrap_z([1, 2, 3], [5, 5, 8])
    assert res["delta"] == pytest.approx(4) and res["se"] == pytest.approx(2) and res["z"] == pytest.approx(2)
    assert res["pvalue"] == pytest.approx(0.0455003, abs=1e-6) and (res["n_a"], res["n_b"]) == (3, 3)
    assert bootstrap_z([1, 2, np.nan, 3], [5, 5, 8])["n_a"] == 3  # non-finite values dropped
    assert np.isnan(bootstrap_z([1], [5, 6])["pvalue"]) and np.isnan(bootstrap_z([1, 1], [2, 2])["pvalue"])
    # paired: d = 0, 2, 4 -> mean 2, sd 2, z 1
    res = paired_bootstrap_z([0, 2, 4])
    assert (res["delta"], res["se"], res["z"], res["n"]) == pytest.approx((2, 2, 1, 3))
    assert res["pvalue"] == pytest.approx(0.3173105, abs=1e-6)


def test_bootstrap_se_does_not_shrink_as_replicates_are_added():
    """Replicates of one dataset: adding them must not make a fixed difference more significant (Welch would)."""
    rng = np.random.default_rng(1)
    few = bootstrap_z(rng.normal(0, 1, 5), rng.normal(1, 1, 5))
    many = bootstrap_z(rng.normal(0, 1, 4000), rng.normal(1, 1, 4000))
    assert many["se"] == pytest.approx(np.sqrt(2), rel=0.05)  # the SD of one replicate's difference, not over sqrt(n)
    assert many["pvalue"] == pytest.approx(2 * 0.2397501, abs=0.03)  # z = 1 / sqrt(2)
    assert 0.3 < few["se"] / np.sqrt(2) < 3
    d = rng.normal(1, 2, 4000)
    assert paired_bootstrap_z(d)["se"] == pytest.approx(2, rel=0.05) and paired_bootstrap_z(d)["pvalue"] > 0.5
