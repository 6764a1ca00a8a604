"""Figures 4-5 inference against a null: the twins, runs as replicates, pooled standardisation, stimulus codes,
the recommended variant and the calibrated recovery report."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr

from biornn import celltype as ct
from biornn.cli import main
from biornn.core.conditions import ABBREVIATIONS, CONDITIONS
from biornn.core.errors import BiornnError
from biornn.data import synthetic as S
from biornn.data.curate import PopulationWindows, build_dataset, load_windows, pooled_standardization, save_dataset
from biornn.data.replicates import resample_training
from biornn.data.stimulus import stimulus_codes
from biornn.experiments.fig5 import recovery as rc
from biornn.nn.connectivity import POPULATION_LABELS

RNG = np.random.default_rng(0)


# ---- twins ----------------------------------------------------------------------------------------------------------
def test_null_twin_is_identical_across_conditions_and_shares_the_planted_base():
    null = S.ground_truth_stack(S.TwinConfig(twin="null"))["W_true"]
    planted = S.ground_truth_stack(S.TwinConfig(twin="planted"))["W_true"]
    assert all(np.array_equal(null[0], w) for w in null[1:])
    assert not all(np.array_equal(planted[0], w) for w in planted[1:])
    # familiar no-change has no planted gain: both twins agree there
    fn = CONDITIONS.index("familiar_no_change")
    np.testing.assert_array_equal(planted[fn], null[fn])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_strength_is_not_a_function_of_density(seed):
    g = S.ground_truth_stack(S.TwinConfig(seed=seed))
    for W in g["W_true"]:
        nz = W != 0
        assert abs(spearmanr(np.abs(W[nz]), g["density"][nz])[0]) < 0.5
    legacy = S.ground_truth_stack(S.TwinConfig(seed=seed, strength_sd=0.0))
    W = legacy["W_true"][0]
    assert spearmanr(np.abs(W[W != 0]), legacy["density"][W != 0])[0] > 0.85  # the old, circular twin


def test_legacy_manifests_rebuild_the_legacy_twin():
    old = {k: v for k, v in S.TwinConfig().to_dict().items() if k not in ("twin", "strength_sd")}
    cfg = S.TwinConfig.from_dict(old)
    assert cfg.strength_sd == 0 and cfg.twin == "planted"
    with pytest.raises(BiornnError, match="unknown twin"):
        S.TwinConfig(twin="empty")


def test_ground_truth_file(tmp_path):
    path = S.write_ground_truth(S.TwinConfig(twin="null"), tmp_path)
    with np.load(path) as npz:
        assert npz["W_true"].shape == (6, 18, 18)
        assert tuple(npz["conditions"]) == CONDITIONS
        assert npz["density"].shape == (18, 18) and str(npz["twin"]) == "null"


# ---- stimulus codes -------------------------------------------------------------------------------------------------
def test_stimulus_codes_follow_the_presentation_table():
    stim = pd.DataFrame({"start_time": [0.0, 1.0, 1.75, 2.5], "duration": [1.0, 0.25, 0.25, 0.25],
                         "image_name": [np.nan, "im1", "omitted", "im2"], "omitted": [False, False, True, False],
                         "is_change": [False, False, False, True],
                         "stimulus_block_name": ["gray", "change_detection_behavior", "change_detection_behavior",
                                                 "change_detection_behavior"]})
    codes = stimulus_codes(stim, np.array([0.5, 1.1, 1.3, 1.8, 2.6, 2.8]))
    np.testing.assert_array_equal(codes, [[0, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 1], [1, 1, 0], [0, 0, 0]])
    passive = stim.assign(stimulus_block_name="passive")
    assert stimulus_codes(passive, np.array([2.6]))[0, 1] == 0  # changes count in the behaviour block only


# ---- datasets: replicates and pooled standardisation ----------------------------------------------------------------
def _windows(n_exp=4, rows=30, shift=0.0):
    out = {}
    for i, pop in enumerate(POPULATION_LABELS):
        n = n_exp * rows
        exp = np.repeat(np.arange(n_exp) + 100 * i, rows)
        values = RNG.normal(0.1 * (1 + i % 3) + shift, 0.05, (n, 16)) + 0.02 * exp[:, None] % 3
        out[pop] = PopulationWindows(values=values, t_rel=np.tile(np.arange(16) * 0.093 - 0.75, (n, 1)),
                                     experiment_id=exp, session_id=exp, trial_index=np.tile(np.arange(rows), n_exp),
                                     event_time=np.zeros(n), n_cells=np.full(n, 10),
                                     n_trials={int(e): rows for e in np.unique(exp)},
                                     stimulus=np.zeros((n, 16, 3)))
    return out


def _datasets():
    from biornn.data.curate import CurateConfig

    config = CurateConfig(n_samples=50, n_draw=10, n_heldout_samples=20)
    out = {c: build_dataset(c, _windows(shift=0.05 * k), config, source="twin")
           for k, c in enumerate(CONDITIONS)}
    stats = pooled_standardization(out)
    for ds in out.values():
        ds.manifest["standardization"] = stats
    return out


def test_runs_see_different_resamples_of_the_same_rows(tmp_path):
    ds = _datasets()["familiar_change"]
    save_dataset(ds, tmp_path, windows=True)
    windows = load_windows(tmp_path, "familiar_change")
    a = resample_training(ds, windows, seed=0)
    b = resample_training(ds, windows, seed=1)
    again = resample_training(ds, windows, seed=0)
    assert a[0].shape == ds.inputs.shape
    assert not np.allclose(a[0], b[0])
    np.testing.assert_array_equal(a[0], again[0])
    cfg = ct.CelltypeConfig("familiar_change", (0, 1), sizes=(2, 1, 1), resample="experiments")
    ds.windows = windows
    data = ct.prepare_data(ds, "full", None, cfg)
    assert data.x.shape == (2, 50, 15, 18) and not np.allclose(data.x[0], data.x[1])
    np.testing.assert_array_equal(data.hx, ds.heldout_inputs.astype(np.float32))  # held-out set is shared


def test_standardisation_statistics_are_shared_by_the_six_conditions():
    datasets = _datasets()
    stats = [ds.standardization for ds in datasets.values()]
    assert all(s == stats[0] for s in stats) and sorted(stats[0]["pooled_over"]) == sorted(CONDITIONS)
    cfg = ct.CelltypeConfig("novel_change", (0,), sizes=(2, 1, 1), standardize=True)
    data = ct.prepare_data(datasets["novel_change"], "full", None, cfg)
    np.testing.assert_allclose(data.to_dff(data.y), datasets["novel_change"].targets, atol=1e-5)
    single = _datasets()["novel_change"]
    single.manifest["standardization"] = pooled_standardization({"novel_change": single})
    with pytest.raises(BiornnError, match="pooled over all six"):
        ct.prepare_data(single, "full", None, cfg)


# ---- the recommended variant --------------------------------------------------------------------------------------
def test_recommended_config_names_and_keeps_old_cache_keys():
    cfg = ct.CelltypeConfig.recommended("FC", (0,))
    assert cfg.variant == "recommended"
    assert ct.CelltypeConfig("FC", (0,), standardize=True).variant == "corrected+std"
    old = ct.CelltypeConfig.published("FC", (0, 1))
    assert "standardize" not in old.to_dict()  # older summaries hash to the same folder
    assert ct.CelltypeConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(BiornnError, match="initial_state"):
        ct.CelltypeConfig("FC", (0,), initial_state="noise")


def test_recommended_run_trains_with_stimulus_inputs_and_a_learned_initial_state(tmp_path):
    datasets = _datasets()
    ds = datasets["familiar_omission"]
    save_dataset(ds, tmp_path, windows=True)
    ds.windows = load_windows(tmp_path, ds.condition)
    ds.stimulus = np.zeros((16, 3))
    ds.stimulus[8, 2] = 1.0
    cfg = ct.CelltypeConfig.recommended("FO", (0, 1), sizes=(2, 1, 1), dense_epochs=2, finetune_epochs=2,
                                        batch_size=25, window="half")
    result = ct.train_celltype(cfg, ds, progress=False, out=tmp_path / "run")
    assert result.arrays["w_in_sparse"].shape[-1] == 21
    assert np.abs(result.arrays["h0_sparse"]).max() > 0  # the initial state was learned
    assert result.data["per_run_training_sets"] and result.data["twin"] == "planted"
    again = ct.load_celltype(tmp_path / "run")
    model = again.model("sparse")
    assert model.h0 is not None
    torch.testing.assert_close(model.h0.detach(), torch.as_tensor(result.arrays["h0_sparse"]))


# ---- the recovery report --------------------------------------------------------------------------------------------
def _runs_from_truth(W, n_runs=5, noise=0.02, seed=0):
    rng = np.random.default_rng(seed)
    return {ABBREVIATIONS[c]: np.abs(W[i])[None] * np.exp(noise * rng.standard_normal((n_runs, 18, 18)))
            for i, c in enumerate(CONDITIONS)}


def test_recovery_from_true_weights_recovers_every_planted_change_and_flags_nothing_on_the_null():
    planted = S.ground_truth_stack(S.TwinConfig())["W_true"]
    null = S.ground_truth_stack(S.TwinConfig(twin="null"))["W_true"]
    truth = {ABBREVIATIONS[c]: planted[i] for i, c in enumerate(CONDITIONS)}
    report = rc.recovery_report(_runs_from_truth(planted), _runs_from_truth(null, seed=1), truth)
    assert report["planted_total"] > 10
    assert report["planted_recovered"] == report["planted_total"]
    assert report["unplanted_flagged"] == 0 and report["null_flagged"] == 0 and report["wrong_sign_flagged"] == 0
    assert report["null_total"] == 27 and report["test"].startswith("bootstrap_z")
    assert "Benjamini-Yekutieli" in report["correction"]
    # beyond the null twin: the calibrated change tracks the planted one, and every planted row's interaction is found
    assert report["calibrated_vs_planted"]["spearman_rho"] > 0.8
    assert report["calibrated_vs_planted"]["slope"] == pytest.approx(1, abs=0.1)
    assert all(r["interaction_significant"] == (r["kind"] == "planted") for r in report["rows"])
    assert report["interaction_recovered"] == report["planted_total"] and report["interaction_unplanted_flagged"] == 0


def test_recovery_misses_changes_that_the_fits_do_not_show():
    planted = S.ground_truth_stack(S.TwinConfig())["W_true"]
    null = S.ground_truth_stack(S.TwinConfig(twin="null"))["W_true"]
    truth = {ABBREVIATIONS[c]: planted[i] for i, c in enumerate(CONDITIONS)}
    report = rc.recovery_report(_runs_from_truth(null), _runs_from_truth(null, seed=1), truth)
    assert report["planted_recovered"] == 0  # fits that learned no difference recover nothing
    assert report["interaction_significant"] == 0


def test_recovery_cli_reads_cached_twins(tmp_path):
    planted = S.ground_truth_stack(S.TwinConfig())["W_true"]
    null = S.ground_truth_stack(S.TwinConfig(twin="null"))["W_true"]
    root = tmp_path / "fig4"
    for twin, W in (("planted", planted), ("null", null)):
        runs = _runs_from_truth(W, seed=len(twin))
        for i, cond in enumerate(CONDITIONS):
            cfg = ct.CelltypeConfig.recommended(cond, (0, 1, 2, 3, 4), window="half")
            folder = ct.summary_dir(cfg, tmp_path, twin=twin)  # tmp_path/fig4/<name>
            heldout = {"sparse": {"r": [0.95] * 18}}
            summary = {"config": cfg.to_dict(), "data": {"twin": twin, "condition": cond},
                       "runs": [{"seed": s, "heldout": heldout} for s in range(5)],
                       "nonzero_abs_sparse": runs[ABBREVIATIONS[cond]], "ground_truth": W[i],
                       "target_density": S.block_density()}
            ct.save_summary(summary, folder)
    assert main(["compare", "recovery", "--root", str(root), "--variant", "recommended", "--window", "half",
                 "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "recovery.json").read_text())
    assert report["planted_recovered"] == report["planted_total"] and report["null_flagged"] == 0
    assert report["heldout_median_r"]["planted"]["familiar_change"] == pytest.approx(0.95)
    ident = report["identifiability"]["planted"]["FC"]
    assert min(ident["rho"]) > 0.9 and ident["baseline"] < 0.5


def test_report_names_estimator_sampling_and_every_statistic():
    planted = S.ground_truth_stack(S.TwinConfig())["W_true"]
    null = S.ground_truth_stack(S.TwinConfig(twin="null"))["W_true"]
    truth = {ABBREVIATIONS[c]: planted[i] for i, c in enumerate(CONDITIONS)}
    report = rc.recovery_report(_runs_from_truth(planted, n_runs=4), _runs_from_truth(null, n_runs=6, seed=1), truth)
    assert (report["estimator"], report["sampling"], report["resamples"], report["null_seeds"]) == (
        "separate", "population", 4, 6)
    for name in ("within_twin", "interaction"):
        stat = report["statistics"][name]
        assert {"test", "n", "correction", "unit_of_replication"} <= stat.keys()
        assert "Benjamini-Yekutieli" in stat["correction"] and "resample" in stat["unit_of_replication"]
    assert report["statistics"]["within_twin"]["test"] == "bootstrap_z"
    assert all(r["interaction_n"] == 4 for r in report["rows"])  # only the seeds both twins have are paired
    assert "projection" not in report and "power" not in report  # the run-count projection is gone
    assert "wrong sign" in rc.describe(report) and "n = 4 resamples" in rc.describe(report)


def test_se_is_the_resample_sd_and_does_not_shrink_with_more_runs():
    """Every run is a bootstrap replicate of one fit: the SE of a pair delta is sqrt(sd_A^2 + sd_B^2), whatever the
    number of runs, so a delta of one SE stays as significant with 40 runs as with 5."""
    rng = np.random.default_rng(3)
    base = np.abs(S.ground_truth_stack(S.TwinConfig(twin="null"))["W_true"][0])
    for n in (5, 40):
        runs = {c: base[None] * np.exp(0.1 * rng.standard_normal((n, 1, 1))) for c in ABBREVIATIONS.values()}
        row = rc.compare_twin(runs, pairs=(("FN", "FC"),))[0]
        logs = {c: np.log(rc.pathway_strength(runs[c])["FF"]) for c in ("FN", "FC")}
        assert row["delta"] == pytest.approx(logs["FC"].mean() - logs["FN"].mean())
        assert row["se"] == pytest.approx(np.hypot(logs["FN"].std(ddof=1), logs["FC"].std(ddof=1)))
        assert 0.1 * np.sqrt(2) / 3 < row["se"] < 0.1 * np.sqrt(2) * 3  # not 0.1 sqrt(2 / n)
    sd = rc.resample_sd(runs, runs)
    assert sd["FF"] == pytest.approx(0.1, rel=0.15)


def test_wrong_sign_rows_are_counted_and_not_recovered():
    planted = S.ground_truth_stack(S.TwinConfig())["W_true"]
    null = S.ground_truth_stack(S.TwinConfig(twin="null"))["W_true"]
    truth = {ABBREVIATIONS[c]: planted[i] for i, c in enumerate(CONDITIONS)}
    # fits that move every planted pathway the opposite way: log W_fit = 2 log W_null - log W_planted
    mirrored = np.abs(null) ** 2 / np.where(planted != 0, np.abs(planted), 1.0)
    report = rc.recovery_report(_runs_from_truth(mirrored), _runs_from_truth(null, seed=1), truth)
    assert report["planted_recovered"] == 0 and report["wrong_sign_flagged"] == report["planted_total"]
    assert report["interaction_wrong_sign"] == report["planted_total"] and report["interaction_recovered"] == 0
    assert set(rc.recovery_frame(report).query("kind == 'planted'")["outcome"]) == {"wrong sign"}


def test_interaction_is_paired_by_seed():
    """Seed k gives both twins the same resample: a per-seed shift shared by the twins cancels in the paired test,
    so a small planted change stands out; pairing the wrong seeds loses it."""
    planted = S.ground_truth_stack(S.TwinConfig())["W_true"]
    null = S.ground_truth_stack(S.TwinConfig(twin="null"))["W_true"]
    truth = {ABBREVIATIONS[c]: planted[i] for i, c in enumerate(CONDITIONS)}
    rng = np.random.default_rng(5)
    shared = {c: np.exp(0.5 * rng.standard_normal((5, 1, 1))) for c in ABBREVIATIONS.values()}  # per seed

    def runs(W, seed):
        small = np.exp(0.01 * np.random.default_rng(seed).standard_normal((5, 18, 18)))
        return {ABBREVIATIONS[c]: np.abs(W[i])[None] * shared[ABBREVIATIONS[c]] * small for i, c in
                enumerate(CONDITIONS)}

    p_runs, n_runs = runs(planted, 0), runs(null, 1)
    paired = rc.recovery_report(p_runs, n_runs, truth)
    # within a twin the shared per-seed shift (SD 0.5) swamps every change
    assert paired["planted_recovered"] == 0
    # beyond the null twin it cancels seed by seed
    assert paired["interaction_recovered"] == paired["planted_total"]
    assert all(r["interaction_se"] < 0.05 for r in paired["rows"])
    # the same runs labelled so that seed k of the planted twin meets another seed of the null twin
    seeds = {"planted": {c: [0, 1, 2, 3, 4] for c in p_runs}, "null": {c: [1, 2, 3, 4, 0] for c in n_runs}}
    shuffled = rc.recovery_report(p_runs, n_runs, truth, seeds=seeds)
    assert shuffled["interaction_recovered"] < paired["interaction_recovered"] // 2
    with pytest.raises(BiornnError, match="one seed per run"):
        rc.recovery_report(p_runs, n_runs, truth, seeds={"planted": {"FC": [0, 1]}})


def test_strengths_of_a_standardised_fit_are_scored_in_dff_units():
    W = np.abs(S.ground_truth_stack(S.TwinConfig())["W_true"][0])
    sd = np.exp(RNG.normal(size=18))
    fitted_z = (W * sd[None, :] / sd[:, None])[None]  # what a perfect fit on z-scores learns
    summary = {"nonzero_abs_sparse": fitted_z, "ground_truth": W, "target_density": S.block_density(),
               "config": {"standardize": True}, "data": {"standardization": {"sd": sd.tolist()}}}
    assert rc._identifiability_of(summary)["rho"][0] == pytest.approx(1)
    raw = {**summary, "config": {"standardize": False}}  # a raw-ΔF/F fit is scored as it is
    assert rc._identifiability_of(raw)["rho"][0] < 0.9
    assert np.array_equal(rc.dff_strength(raw), fitted_z)


# ---- several conditions in one model batch -------------------------------------------------------------------------
def test_stacked_conditions_train_to_the_numbers_of_lone_runs(tmp_path):
    datasets, conds = _datasets(), ("familiar_change", "novel_omission")
    for k, c in enumerate(conds):
        save_dataset(datasets[c], tmp_path / c, windows=True)
        datasets[c].windows = load_windows(tmp_path / c, c)
        datasets[c].stimulus = np.zeros((16, 3))
        datasets[c].stimulus[8, 1 + k] = 1.0
    cfgs = [ct.CelltypeConfig.recommended(c, (0, 1), sizes=(2, 1, 1), dense_epochs=2, finetune_epochs=2,
                                          batch_size=25, window="half") for c in conds]
    stacked = ct.train_celltype_stack(cfgs, [datasets[c] for c in conds], progress=False,
                                      outs=[tmp_path / f"run-{c}" for c in conds])
    for cfg, c, got in zip(cfgs, conds, stacked):
        alone = ct.train_celltype(cfg, datasets[c], progress=False)
        assert got.config == cfg and got.data["condition"] == c and got.data["sha256"] == alone.data["sha256"]
        assert got.arrays.keys() == alone.arrays.keys()
        for key, value in alone.arrays.items():
            np.testing.assert_array_equal(got.arrays[key], value, err_msg=key)
        for a, b in zip(got.runs, alone.runs):
            for key in ("seed", "dense_loss", "dense_heldout_loss", "finetune_loss", "finetune_heldout_loss",
                        "dense_best_epoch", "sparse_epoch", "pruned_loss", "heldout"):
                assert a[key] == b[key], key
        again = ct.load_celltype(tmp_path / f"run-{c}")  # stored exactly as a lone run stores itself
        assert again.config == cfg and again.runs[0]["dense_loss"] == alone.runs[0]["dense_loss"]


def test_a_stack_of_runs_that_differ_beyond_the_condition_is_refused():
    a = ct.CelltypeConfig.recommended("familiar_change", (0, 1), sizes=(2, 1, 1))
    b = ct.CelltypeConfig.recommended("novel_change", (0, 1), sizes=(2, 1, 1), dense_epochs=3)
    with pytest.raises(BiornnError, match="novel_change differs in dense_epochs"):
        ct.check_stack([a, b])
    with pytest.raises(BiornnError, match="appears twice"):
        ct.check_stack([a, a])


def test_stacked_queue_writes_every_missing_summary_once(tmp_path, monkeypatch):
    datasets = _datasets()
    for c, ds in datasets.items():
        save_dataset(ds, tmp_path / "ds" / c, windows=True)
        ds.windows = load_windows(tmp_path / "ds" / c, c)
        ds.stimulus = np.zeros((16, 3))
    monkeypatch.setattr(rc, "twin_datasets", lambda twin, mode, root, progress=True: datasets)
    monkeypatch.setattr(rc, "celltype_config", lambda cond, mode, variant, window: ct.CelltypeConfig.recommended(
        cond, (0, 1), sizes=(2, 1, 1), dense_epochs=1, finetune_epochs=1, batch_size=25, window=window))
    kw = dict(twins=("planted",), mode="quick", runs_root=tmp_path / "runs", results_root=tmp_path / "res",
              progress=False, stack=True)
    written = rc.run_queue(**kw)
    assert len(written) == 6 and all((w / "summary.json").exists() for w in written)
    assert sorted(p.name.split("-")[0] for p in written) == sorted(ABBREVIATIONS[c] for c in CONDITIONS)
    assert rc.run_queue(**kw) == []  # a finished queue trains nothing


def test_committed_paper_recovery_report_recomputes_from_the_cache():
    """``data/results/fig5/recovery-recommended-half.json`` is what ``compare recovery`` writes from the committed
    summaries; regenerate it whenever the queue adds a condition."""
    from biornn.core.config import RESULTS_DIR

    path = RESULTS_DIR / "fig5" / "recovery-recommended-half.json"
    if not path.exists():
        pytest.skip("no paper-size recovery report committed")
    stored = json.loads(path.read_text())
    fresh = json.loads(json.dumps(rc.report_from_cache(None, "recommended", "half")))
    assert fresh["pairs_tested"] == stored["pairs_tested"], "regenerate the report (docs/usage.md)"
    assert fresh.keys() == stored.keys()
    for key in ("planted_recovered", "planted_total", "wrong_sign_flagged", "unplanted_flagged", "null_flagged",
                "null_total", "interaction_significant", "n_runs", "estimator", "sampling", "resamples", "null_seeds",
                "test", "correction", "statistics"):
        assert fresh[key] == stored[key], key
    for a, b in zip(fresh["rows"], stored["rows"]):
        assert a.keys() == b.keys()
        for k, v in a.items():
            assert v == (pytest.approx(b[k], rel=1e-9) if isinstance(v, float) else b[k]), k
