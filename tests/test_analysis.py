"""Figure 5 analysis: block summaries of hand-built matrices, the condition test's power and false-positive rate,
the twin stand-in, the reference numbers and the ``compare`` command line."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from biornn import celltype as ct
from biornn.cli import main
from biornn.core import conditions
from biornn.core.errors import BiornnError
from biornn.experiments.fig5 import inputs as fig5
from biornn.nn.connectivity import POPULATION_LABELS, population_index
from biornn.stats import blocks as an
from biornn.stats import comparisons, significance

SMALL = {"Pyr": 2, "SST": 1, "VIP": 1}  # 4 units per (area, layer), N = 24


def small_labels(sizes=None):
    return np.asarray(POPULATION_LABELS)[population_index(sizes or SMALL)]


def hand_matrix():
    """Unit layout (index order): V1 L4 0-3, V1 L2/3 4-7, V1 L5 8-11, LM L4 12-15, LM L2/3 16-19, LM L5 20-23;
    within each (area, layer): Pyr, Pyr, SST, VIP."""
    W = np.zeros((24, 24))
    W[4, 0], W[5, 1] = 0.4, 0.2  # V1 L2/3 Pyr <- V1 L4 Pyr (2 x 2 block)
    W[6, 2] = -0.8  # V1 L2/3 SST <- V1 L4 SST (1 x 1)
    W[12, 4], W[13, 4] = 0.3, 0.1  # FF: LM L4 Pyr <- V1 L2/3 Pyr (2 x 2)
    W[14, 5] = 0.2  # FF: LM L4 SST <- V1 L2/3 Pyr (1 x 2)
    return W


# --------------------------------------------------------------------------------------------------------------------
# Block summaries
# --------------------------------------------------------------------------------------------------------------------

def test_hand_built_matrix_all_granularities_and_quantities():
    s = an.block_summaries(hand_matrix(), small_labels())
    pop, lay, area = s["population"], s["layer"], s["area"]
    P, L = list(pop.labels), list(lay.labels)
    assert L == ["V1_L2/3", "V1_L4", "V1_L5", "LM_L2/3", "LM_L4", "LM_L5"]
    assert P[:4] == ["V1_L2/3_Pyr", "V1_L2/3_SST", "V1_L2/3_VIP", "V1_L4_Pyr"]
    i = P.index
    expected_pop = {  # (post, pre): (mean |W| with zeros, density, strength)
        ("V1_L2/3_Pyr", "V1_L4_Pyr"): (0.6 / 4, 2 / 4, 0.3),
        ("V1_L2/3_SST", "V1_L4_SST"): (0.8, 1.0, 0.8),
        ("LM_L4_Pyr", "V1_L2/3_Pyr"): (0.4 / 4, 2 / 4, 0.2),
        ("LM_L4_SST", "V1_L2/3_Pyr"): (0.2 / 2, 1 / 2, 0.2),
    }
    for (post, pre), (m, d, st) in expected_pop.items():
        assert pop.mean_abs[0, i(post), i(pre)] == pytest.approx(m)
        assert pop.density[0, i(post), i(pre)] == pytest.approx(d)
        assert pop.strength[0, i(post), i(pre)] == pytest.approx(st)
    assert np.count_nonzero(pop.mean_abs) == 4 and np.isfinite(pop.strength).sum() == 4
    # layers: 4 x 4 = 16 entries per block
    assert lay.mean_abs[0, L.index("V1_L2/3"), L.index("V1_L4")] == pytest.approx(1.4 / 16)
    assert lay.density[0, L.index("V1_L2/3"), L.index("V1_L4")] == pytest.approx(3 / 16)
    assert lay.strength[0, L.index("V1_L2/3"), L.index("V1_L4")] == pytest.approx(1.4 / 3)
    assert lay.mean_abs[0, L.index("LM_L4"), L.index("V1_L2/3")] == pytest.approx(0.6 / 16)
    assert lay.density[0, L.index("LM_L4"), L.index("V1_L2/3")] == pytest.approx(3 / 16)
    assert lay.strength[0, L.index("LM_L4"), L.index("V1_L2/3")] == pytest.approx(0.2)
    # areas: 12 x 12 = 144 entries per block; empty blocks have strength NaN
    np.testing.assert_allclose(area.mean_abs[0], [[1.4 / 144, 0], [0.6 / 144, 0]])
    np.testing.assert_allclose(area.density[0], [[3 / 144, 0], [3 / 144, 0]])
    np.testing.assert_allclose(area.strength[0], [[1.4 / 3, np.nan], [0.2, np.nan]])
    for g in s.values():  # the reference's block mean = density x strength (tol = 0)
        np.testing.assert_allclose(g.mean_abs, np.nan_to_num(g.density * g.strength), atol=1e-15)


def test_index_order_and_unit_order_do_not_matter():
    W, labels = hand_matrix(), small_labels()
    idx = an.block_summary(W, labels, "population", order="index")
    assert idx.labels == POPULATION_LABELS
    assert idx.mean_abs[0, POPULATION_LABELS.index("V1_L2/3_Pyr"), POPULATION_LABELS.index("V1_L4_Pyr")] == \
        pytest.approx(0.15)
    perm = np.random.default_rng(0).permutation(24)
    for g in an.GRANULARITIES:
        a = an.block_summary(W, labels, g)
        b = an.block_summary(W[np.ix_(perm, perm)], labels[perm], g)
        for q in an.QUANTITIES:
            np.testing.assert_allclose(a.get(q), b.get(q))


def test_summaries_match_a_loop_over_units_batched_over_runs():
    rng = np.random.default_rng(1)
    labels = small_labels()
    W = rng.normal(size=(3, 24, 24)) * (rng.random((3, 24, 24)) < 0.3)
    tol = 0.2
    for g in an.GRANULARITIES:
        s = an.block_summary(W, labels, g, tol=tol)
        key = {"population": lambda lab: lab, "layer": lambda lab: lab.rsplit("_", 1)[0],
               "area": lambda lab: lab.split("_")[0]}[g]
        groups = [key(lab) for lab in labels]
        for r in range(3):
            for a, post in enumerate(s.labels):
                for b, pre in enumerate(s.labels):
                    rows = [u for u in range(24) if groups[u] == post]
                    cols = [u for u in range(24) if groups[u] == pre]
                    block = np.abs(W[r][np.ix_(rows, cols)])
                    kept = block[block > tol]
                    assert s.mean_abs[r, a, b] == pytest.approx(block.mean())
                    assert s.density[r, a, b] == pytest.approx(kept.size / block.size)
                    if kept.size:
                        assert s.strength[r, a, b] == pytest.approx(kept.mean())
                    else:
                        assert np.isnan(s.strength[r, a, b])


def test_bad_labels_and_shapes():
    labels = small_labels().copy()
    labels[0] = "V1_L6_Pyr"
    with pytest.raises(BiornnError, match="unknown population label 'V1_L6_Pyr'"):
        an.block_summaries(hand_matrix(), labels)
    labels = small_labels().copy()
    labels[3] = "V1_L4_Pyr"  # the only V1 L4 VIP unit
    with pytest.raises(BiornnError, match="V1_L4_VIP has no units"):
        an.block_summaries(hand_matrix(), labels)
    with pytest.raises(BiornnError, match="expected"):
        an.block_summaries(np.zeros((2, 24, 23)), small_labels())


def test_expected_summaries_aggregate_like_weights():
    W = np.abs(hand_matrix())
    s = an.block_summaries(W, small_labels(), order="index")
    pop = s["population"]
    e = an.summaries_from_blocks(pop.mean_abs[0], pop.density[0], pop.sizes, order="index")
    for g in an.GRANULARITIES:
        np.testing.assert_allclose(e[g].mean_abs, s[g].mean_abs)
        np.testing.assert_allclose(e[g].density, s[g].density)


# --------------------------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------------------------

def test_permutation_test_exact_values_and_scipy():
    res = significance.permutation_test([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    assert res["method"] == "exact" and res["n_permutations"] == 20
    assert res["pvalue"][0] == pytest.approx(2 / 20) and res["statistic"][0] == 1.0
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(5, 4)), rng.normal(size=(5, 4)) + 1
    res = significance.permutation_test(a, b)
    assert res["n_permutations"] == math.comb(10, 5) == 252
    assert res["pvalue"].min() >= 2 / 252 - 1e-12
    for k in range(4):
        ref = stats.permutation_test((b[:, k], a[:, k]), lambda x, y: x.mean() - y.mean(), n_resamples=np.inf,
                                     permutation_type="independent", alternative="two-sided")
        assert res["pvalue"][k] == pytest.approx(ref.pvalue)
    mc = significance.permutation_test(a, b, max_exact=10, n_resamples=20000, seed=1)
    assert mc["method"] == "monte carlo"
    np.testing.assert_allclose(mc["pvalue"], res["pvalue"], atol=0.01)
    same = significance.permutation_test(a, a)
    np.testing.assert_allclose(same["pvalue"], 1.0)


def test_permutation_test_leaves_out_missing_values():
    a = np.array([[1.0, np.nan], [2.0, np.nan], [3.0, np.nan]])
    b = np.array([[11.0, 1.0], [12.0, np.nan], [np.nan, 2.0]])
    res = significance.permutation_test(a, b)
    assert res["statistic"][0] == pytest.approx(11.5 - 2.0)
    assert np.isnan(res["pvalue"][1])  # A has no value in block 2
    full = significance.permutation_test(a[:, :1], np.array([[11.0], [12.0]]))
    assert res["pvalue"][0] == pytest.approx(full["pvalue"][0])


def test_welch_hedges_and_fdr():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(6, 3)) * 2 + 1
    w = significance.welch_test(a, b)
    ref = stats.ttest_ind(b, a, equal_var=False)
    np.testing.assert_allclose(w["pvalue"], ref.pvalue)
    np.testing.assert_allclose(w["t"], ref.statistic)
    assert significance.hedges_g([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])[0] == pytest.approx(3 * (1 - 3 / 15))
    np.testing.assert_allclose(significance.fdr_bh([0.01, 0.04, 0.03, 0.005]), [0.02, 0.04, 0.04, 0.02])
    np.testing.assert_allclose(significance.adjust([0.01, 0.04, 0.03, 0.005], "holm"), [0.03, 0.06, 0.06, 0.02])
    with pytest.raises(BiornnError, match="unknown correction"):
        significance.adjust([0.1], "bonferroni")


def _random_models(rng, n_runs, density=0.5, gain=None, name="", sizes=None):
    """Runs of a small model: Bernoulli(density) masks and log-normal magnitudes, Dale signs by column;
    ``gain = ((post layer, pre layer), factor)`` scales one layer block's weights, e.g. (("LM_L4", "V1_L2/3"), 1.6)."""
    labels = small_labels(sizes)
    n = labels.size
    signs = np.where(np.char.endswith(labels.astype(str), "Pyr"), 1.0, -1.0)
    W = (rng.random((n_runs, n, n)) < density) * np.exp(0.3 * rng.standard_normal((n_runs, n, n)))
    if gain is not None:
        (post, pre), factor = gain
        rows = np.flatnonzero(np.char.startswith(labels, post + "_"))
        cols = np.flatnonzero(np.char.startswith(labels, pre + "_"))
        W[:, rows[:, None], cols[None, :]] *= factor
    return an.ModelSet(W=W * signs, population=labels, name=name)


def test_planted_difference_is_detected():
    rng = np.random.default_rng(4)
    sizes = {"Pyr": 4, "SST": 2, "VIP": 2}  # 8 units per (area, layer): 64 entries per layer block
    a = _random_models(rng, 8, name="A", sizes=sizes)
    b = _random_models(rng, 8, gain=(("LM_L4", "V1_L2/3"), 1.6), name="B", sizes=sizes)
    comp = comparisons.compare_conditions(a, b)
    assert comp.n_permutations == math.comb(16, 8) and comp.method == "exact"
    L = list(comp.labels["layer"])
    ff = L.index("LM_L4"), L.index("V1_L2/3")
    sig = comp.significant("layer", "mean_abs")
    assert sig[ff] and sig.sum() <= 2  # the planted block (at most one false discovery tolerated)
    assert comp.significant("layer", "strength")[ff]
    assert not comp.significant("layer", "density")[ff]  # a strength change is not a density change
    assert comp.matrix("layer", "mean_abs", "hedges_g")[ff] > 2
    pw = comp.pathways()
    assert pw.set_index("pathway").loc["FF", "largest"] and pw.set_index("pathway").loc["FF", "p_holm3"] < 0.01
    # a pure density change: 60 % of the connections of one block removed in C
    c = _random_models(rng, 8, name="C", sizes=sizes)
    c.W[:, 24:32, 8:16] *= rng.random((8, 8, 8)) < 0.4  # LM L4 <- V1 L2/3 in index order
    comp = comparisons.compare_conditions(a, c)
    assert comp.significant("layer", "density")[ff] and comp.significant("layer", "mean_abs")[ff]
    assert not comp.significant("layer", "strength")[ff]


def test_pathway_specificity_separates_a_pathway_change_from_a_global_shift():
    rng = np.random.default_rng(7)
    a = _random_models(rng, 5, name="A")
    shrunk = an.ModelSet(W=a.W * 0.8, population=a.population, name="A x 0.8")  # every weight 20 % smaller
    ff_only = an.ModelSet(W=a.W.copy(), population=a.population, name="FF x 2")
    rows = np.flatnonzero(np.char.startswith(a.population, "LM_L4_"))
    cols = np.flatnonzero(np.char.startswith(a.population, "V1_L2/3_"))
    ff_only.W[:, rows[:, None], cols[None, :]] *= 2.0
    comps = {("full", "A->shrunk"): comparisons.compare_conditions(a, shrunk, granularities=("layer",)),
             ("full", "A->FF"): comparisons.compare_conditions(a, ff_only, granularities=("layer",))}
    t = comparisons.pathway_specificity(comps).set_index("pair")
    assert t.loc["A->shrunk", "n_within"] == 18  # 2 areas x 3 x 3 layer blocks
    for col in ("FF", "FB_L23", "FB_L5", "within_median"):
        assert t.loc["A->shrunk", col] == pytest.approx(-20.0)
    assert t.loc["A->shrunk", "within_same_sign"] == 1.0 and t.loc["A->shrunk", "global_shift"]
    assert not t.loc["A->FF", "global_shift"]  # nothing within the areas moved
    assert t.loc["A->FF", "FF"] == pytest.approx(100.0) and t.loc["A->FF", "within_median"] == pytest.approx(0.0)
    assert t.loc["A->FF", "FB_L5"] == pytest.approx(0.0)
    with pytest.raises(BiornnError, match="compare_pairs"):
        comparisons.pathway_specificity({})


def test_merge_pathway_tables_matches_rows_by_key():
    import pandas as pd

    a = pd.DataFrame({"window": ["full", "full", "half"], "pair": ["FN->FC"] * 3, "pathway": ["FF", "FB_L5", "FF"],
                      "diff": [1.0, -2.0, 3.0], "p_holm3": [0.01, 0.5, 0.2], "ref_diff": [13.9, 8.0, 2.4]})
    b = a.iloc[::-1].assign(diff=[-3.0, 2.0, 1.5], p_holm3=[0.9, 0.04, 0.03])  # other row order: rows are matched
    m = comparisons.merge_pathway_tables({"published": a, "corrected": b}).set_index(["window", "pathway"])
    assert m.loc[("full", "FF"), "diff_published"] == 1.0 and m.loc[("full", "FF"), "diff_corrected"] == 1.5
    assert m.loc[("half", "FF"), "diff_corrected"] == -3.0 and not m.loc[("half", "FF"), "same_sign_corrected"]
    assert m.loc[("full", "FB_L5"), "same_sign_corrected"] and not m.loc[("full", "FB_L5"), "same_sign_published"]
    only_full = comparisons.merge_pathway_tables({"published": a, "corrected": b[b["window"] == "full"]})
    assert set(only_full["window"]) == {"full"}
    with pytest.raises(BiornnError, match="no column 'p_holm3'"):
        comparisons.merge_pathway_tables({"x": a.drop(columns="p_holm3")})


@pytest.mark.parametrize("correction", ["fdr_bh", "holm"])
def test_identical_conditions_keep_the_family_wise_rate(correction):
    rng = np.random.default_rng(5)
    reps, alpha = 200, 0.05
    any_corrected, any_raw, raw_rate = 0, 0, []
    for _ in range(reps):
        a, b = _random_models(rng, 8), _random_models(rng, 8)
        comp = comparisons.compare_conditions(a, b, granularities=("layer",), quantities=("mean_abs",),
                                     correction=correction, alpha=alpha)
        p = comp.matrix("layer", "mean_abs", "p")
        any_corrected += bool(comp.significant("layer", "mean_abs").any())
        any_raw += bool((p < alpha).any())
        raw_rate.append(np.mean(p < alpha))
    slack = stats.binom.ppf(0.999, reps, alpha) / reps
    assert comp.family_size("layer", "mean_abs") == 36
    assert any_corrected / reps <= slack
    assert any_raw / reps > 0.5  # without a correction the same check fails: it has teeth
    assert 0.03 < np.mean(raw_rate) < 0.065  # and the test is not conservative per block


def test_comparison_tables_name_test_n_and_correction():
    rng = np.random.default_rng(6)
    a, b = _random_models(rng, 5, name="FN full"), _random_models(rng, 5, name="FC full")
    comp = comparisons.compare_conditions(a, b, correction="holm")
    table = comp.table("layer", "mean_abs")
    assert len(table) == 36 and set(table["test"]) == {"permutation (exact, 252 relabellings)"}
    assert set(table["correction"]) == {"holm"} and set(table["n_a"]) == {5} and set(table["family_size"]) == {36}
    mean_b = b.summaries(("layer",))["layer"].mean_abs.mean(0)
    mean_a = a.summaries(("layer",))["layer"].mean_abs.mean(0)
    np.testing.assert_allclose(table["diff"].to_numpy().reshape(6, 6), mean_b - mean_a)
    assert "n = 5 vs 5" in comp.describe() and "Holm" in comp.describe()
    meta = comp.meta()
    assert meta["n_a"] == 5 and meta["correction"] == "holm" and meta["family_sizes"]["layer/mean_abs"] == 36
    json.dumps(meta)
    pw = comp.pathways(scale=1e4)
    assert list(pw["pathway"]) == ["FF", "FB_L23", "FB_L5"] and pw["largest"].sum() >= 0
    assert comp.describe_pathways() == ("permutation (exact, 252 relabellings), n = 5 vs 5 runs, Holm over the 3 "
                                        "pathways of each pair and window")


# --------------------------------------------------------------------------------------------------------------------
# Twin stand-in, reference numbers, run discovery
# --------------------------------------------------------------------------------------------------------------------

def test_twin_models_recover_the_planted_pathway_gains():
    sizes = {"Pyr": 12, "SST": 2, "VIP": 1}
    fn = fig5.twin_models("FN", n_runs=5, sizes=sizes)
    fo = fig5.twin_models("familiar_omission", n_runs=5, sizes=sizes)
    assert fn.W.shape == (5, 90, 90) and fn.mask.shape == fn.W.shape
    assert np.all(fn.W[:, :, np.char.endswith(fn.population, "Pyr")] >= 0)  # Dale's law by column
    assert np.all(fn.W[:, :, ~np.char.endswith(fn.population, "Pyr")] <= 0)
    pw = comparisons.compare_conditions(fn, fo).pathways()
    d = dict(zip(pw["pathway"], pw["diff"]))
    assert d["FB_L5"] > d["FB_L23"] > 0 and abs(d["FF"]) < 0.2 * d["FB_L23"]  # gains 1.8, 1.3, 1.0
    assert pw.set_index("pathway").loc["FB_L5", "p_holm3"] < 0.05


def test_planted_counts():
    import pandas as pd

    pl = pd.DataFrame({"pathway": ["FF", "FB_L23", "FB_L5", "FF"], "planted": [True, True, False, False],
                       "recovered": [True, False, False, False], "false_positive": [False, False, True, False]})
    assert fig5.planted_counts(pl) == {"recovered": 1, "planted": 2, "recovered_ff": 1, "recovered_fb": 0,
                                     "false_positive": 1, "unplanted": 2}


def test_twin_source_and_planted_table():
    inputs = fig5.fig5_inputs("paper", source="twin", windows=("full",), root="/nonexistent")
    assert inputs.source == "twin" and "SYNTHETIC" in inputs.description
    assert set(inputs.n_runs().values()) == {5} and len(inputs.summaries) == 6
    comps = comparisons.compare_pairs(inputs.summaries, windows=("full",))
    assert set(comps) == {("full", f"{a}->{b}") for a, b in conditions.PAIRS}
    planted = fig5.planted_table(comps, inputs.ground_truth)
    row = planted.set_index(["pair", "pathway"])
    assert row.loc[("FN->FC", "FF"), "planted_ratio"] == pytest.approx(1.6)
    assert not row.loc[("FN->FC", "FB_L23"), "planted"]
    assert planted["recovered"].sum() >= 0.8 * planted["planted"].sum()
    assert planted["false_positive"].sum() <= 1
    with pytest.raises(BiornnError, match="Fig 4 runs missing for FC full"):
        fig5.fig5_inputs("paper", source="cache", root="/nonexistent")


def test_reference_numbers():
    ref = comparisons.reference_fig5()
    for window in conditions.WINDOWS:
        assert set(ref["pairs"][window]) == {f"{a}->{b}" for a, b in conditions.PAIRS}
        for pair, entry in ref["pairs"][window].items():
            M = comparisons.reference_layer_matrix(ref, window, pair)
            assert M.shape == (6, 6)
            top = np.abs(M).max()
            assert any(entry["pathways"][p]["largest"] for p in an.PATHWAY_LAYERS)
            for p, (post, pre) in an.PATHWAY_LAYERS.items():
                i, j = ref["layer_labels"].index(post), ref["layer_labels"].index(pre)
                assert M[i, j] == pytest.approx(entry["pathways"][p]["layer"], abs=0.05)
                if entry["pathways"][p]["largest"]:
                    assert abs(M[i, j]) == pytest.approx(top, abs=0.15)
    assert ref["pairs"]["full"]["FN->FC"]["pathways"]["FF"]["layer"] == 13.9


def _write_run(directory, W, labels, metrics=None):
    directory.mkdir(parents=True)
    np.savez(directory / "weights.npz", W_sparse=W, W_dense=W, mask=(W != 0).astype(np.float32),
             signs=np.where(np.char.endswith(labels, "Pyr"), 1.0, -1.0), population=labels)
    (directory / "metrics.json").write_text(json.dumps(metrics or {"config": {}, "runs": []}))


def test_find_fig4_runs(tmp_path):
    W, labels = np.zeros((1, 24, 24), dtype=np.float32), small_labels()
    _write_run(tmp_path / "FC-full-abc", W, labels)
    _write_run(tmp_path / "familiar_no_change-half-abc", W, labels)
    _write_run(tmp_path / "run7", W, labels, {"config": {"condition": "novel_omission", "window": "half"}})
    _write_run(tmp_path / "FC-vanilla-full", W, labels)
    (tmp_path / "NN-full-notes").mkdir()  # no weights or summary: ignored
    found = ct.find_fig4_runs(tmp_path)
    assert set(found) == {("full", "FC"), ("half", "FN"), ("half", "NO")}
    assert set(ct.find_fig4_runs(tmp_path, variant="vanilla")) == {("full", "FC")}
    _write_run(tmp_path / "FC-full-def", W, labels)
    with pytest.raises(BiornnError, match="two Fig 4 runs for FC"):
        ct.find_fig4_runs(tmp_path)
    assert ct.find_fig4_runs(tmp_path / "missing") == {}


def test_figure_cache_summaries_equal_weight_summaries(tmp_path):
    """The Fig 4 figure cache keeps population-level block means only; coarser levels must come out the same."""
    from biornn.nn.connectivity import block_means

    rng = np.random.default_rng(8)
    sizes = {"Pyr": 3, "SST": 2, "VIP": 1}
    models = _random_models(rng, 3, density=0.3, sizes=sizes)
    folder = tmp_path / "FO-half-published-0123456789ab"
    folder.mkdir()
    W = np.asarray(models.W, dtype=np.float64)
    block_abs = np.stack([block_means(np.abs(w), sizes) for w in W])
    dens = np.stack([block_means((w != 0).astype(float), sizes) for w in W])
    with np.errstate(invalid="ignore", divide="ignore"):
        nonzero_abs = np.where(dens > 0, block_abs / dens, np.nan)
    np.savez(folder / "summary.npz", block_abs_sparse=block_abs, nonzero_abs_sparse=nonzero_abs)
    cfg = {"condition": "familiar_omission", "window": "half", "sizes": [3, 2, 1], "input_mapping": "dense",
           "pruning": "as_published", "checkpoint_rule": "as_published", "dale": True}
    (folder / "summary.json").write_text(json.dumps({"config": cfg}))
    assert ct.find_fig4_runs(tmp_path, variant="published") == {("half", "FO"): folder}
    assert ct.find_fig4_runs(tmp_path, variant="corrected") == {}
    cached = an.load_summaries(folder)
    direct = models.summaries()
    for g in an.GRANULARITIES:
        np.testing.assert_array_equal(cached[g].nonzero, direct[g].nonzero)
        for q in an.QUANTITIES:
            np.testing.assert_allclose(cached[g].get(q), direct[g].get(q), rtol=1e-12)
    with pytest.raises(BiornnError, match="only the sparse weights"):
        an.load_summaries(folder, tol=1e-5)


# --------------------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------------------

def test_compare_cli_contract(tmp_path):
    rng = np.random.default_rng(7)
    labels = small_labels()
    a, b = _random_models(rng, 5), _random_models(rng, 5)
    _write_run(tmp_path / "A", a.W.astype(np.float32), labels)
    _write_run(tmp_path / "B", b.W.astype(np.float32), labels)
    out = tmp_path / "out"
    assert main(["compare", "--models", str(tmp_path / "A"), str(tmp_path / "B"), "--out", str(out)]) == 0
    meta = json.loads((out / "comparison.json").read_text())
    assert meta["test"] == "permutation" and meta["n_a"] == 5 and meta["n_b"] == 5
    assert meta["correction"] == "fdr_bh" and meta["files"] == [f"differences_{g}.csv" for g in an.GRANULARITIES]
    import pandas as pd

    assert main(["compare", "--models", str(tmp_path / "A"), str(tmp_path / "B"), "--out", str(tmp_path / "w"),
                 "--test", "welch", "--correction", "holm"]) == 0
    meta_w = json.loads((tmp_path / "w" / "comparison.json").read_text())
    assert meta_w["test"] == "welch" and meta_w["correction"] == "holm"
    table = pd.read_csv(out / "differences_area.csv")
    assert len(table) == 2 * 2 * 3 and {"diff", "p", "p_adj", "hedges_g", "test", "n_a", "correction"} <= set(table)
    sa = an.block_summary(a.W.astype(np.float32), labels, "area")
    sb = an.block_summary(b.W.astype(np.float32), labels, "area")
    got = table.query("quantity == 'density'")["diff"].to_numpy().reshape(2, 2)
    np.testing.assert_allclose(got, sb.density.mean(0) - sa.density.mean(0), rtol=1e-5)


def test_compare_cli_errors_are_one_line(tmp_path, capsys):
    labels = small_labels()
    W = np.ones((2, 24, 24), dtype=np.float32)
    _write_run(tmp_path / "A", W, labels)
    _write_run(tmp_path / "big", np.ones((2, 28, 28), dtype=np.float32),
               np.asarray(POPULATION_LABELS)[population_index({"Pyr": 2, "SST": 1, "VIP": 1})].tolist()
               + ["V1_L4_Pyr"] * 4)
    swapped = labels.copy()
    swapped[[0, 4]] = swapped[[4, 0]]
    _write_run(tmp_path / "swapped", W, swapped)
    (tmp_path / "empty").mkdir()
    cases = [("empty", "no weights.npz"), ("missing", "not found"), ("big", "N = 24 units but B"),
             ("swapped", "population labels differ between A and B at unit 0")]
    for other, needle in cases:
        rc = main(["compare", "--models", str(tmp_path / "A"), str(tmp_path / other), "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and needle in err[0], (other, err)
