"""Figure 3 experiment: pruning sweeps of trained networks, masked retraining, the cache and the reference arrays.

Tiny networks (N = 32, short sequences) keep this file to a few seconds on one thread.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from biornn.core.errors import BiornnError
from biornn.core.store import reference
from biornn.experiments import fig3
from biornn.experiments.fig3 import cli as fig3_cli
from biornn.experiments.verify import compare_curves
from biornn.nn.constraints import sign_violations
from biornn.nn.train import build_data, build_model, evaluate, fig2_config, load_weights, train

SIZES = dict(seeds=(0, 1), hidden=32, n_train=200, n_test=40, batch_size=20, steps=20, epochs=2)
LEVELS = [0.0, 0.3, 1.0]


@pytest.fixture(scope="module")
def run():
    return train(fig2_config("flipflop", "dales", "quick", **SIZES), progress=False)


@pytest.fixture(scope="module")
def sweep(run):
    return fig3.sweep_errors(run, LEVELS, draws=2, progress=False)


def _error_with(run, W):
    data = build_data(run.config)
    model = build_model(run.config, data)
    load_weights(model, run.weights)
    with torch.no_grad():
        model.w_hh.copy_(torch.as_tensor(W))
    return evaluate(model, torch.from_numpy(data.x_test), torch.from_numpy(data.y_test), data.kind)


def test_sweep_shapes_and_bookkeeping(sweep):
    assert sweep.levels.tolist() == LEVELS and sweep.methods == ("random", "topprob")
    for m in sweep.methods:
        for table in (sweep.loss, sweep.nominal_density, sweep.functional_density):
            assert table[m].shape == (2, 3, 2)
        assert sweep.budget[m].shape == (2, 3)
        assert sweep.errors(m).shape == (2, 3)
        np.testing.assert_array_equal(sweep.nominal_density[m], sweep.functional_density[m])  # Dale zeros never kept
        assert np.all(np.isfinite(sweep.loss[m]))
    assert sweep.accuracy == {} and sweep.dense_accuracy is None
    # achieved density near the budget B / N^2 (binomial error of ~1000 Bernoulli draws)
    np.testing.assert_allclose(sweep.nominal_density["topprob"][:, 1].mean(1), sweep.budget["topprob"][:, 1] / 32 ** 2,
                               atol=0.05)


def test_end_levels_are_dense_and_empty_networks(run, sweep):
    dense, _ = _error_with(run, run.weights["W_final"])
    empty, _ = _error_with(run, np.zeros_like(run.weights["W_final"]))
    np.testing.assert_array_equal(sweep.dense_loss, dense)
    np.testing.assert_allclose(dense, run.curve("test_loss")[:, -1], rtol=1e-6)
    for m in sweep.methods:
        np.testing.assert_array_equal(sweep.loss[m][:, 2], np.repeat(dense[:, None], 2, 1))  # p = 1: the dense net
        np.testing.assert_array_equal(sweep.loss[m][:, 0], np.repeat(empty[:, None], 2, 1))  # p = 0: no recurrence
        assert np.all(sweep.nominal_density[m][:, 0] == 0)
    np.testing.assert_array_equal(sweep.loss["random"][:, [0, 2]], sweep.loss["topprob"][:, [0, 2]])
    assert not np.array_equal(sweep.loss["random"][:, 1], sweep.loss["topprob"][:, 1])


def test_sweep_draws_differ_and_are_reproducible(run, sweep):
    assert not np.array_equal(sweep.loss["random"][:, 1, 0], sweep.loss["random"][:, 1, 1])
    again = fig3.sweep_errors(run, [0.3], methods=("random",), draws=1, first_draw=1, progress=False)
    np.testing.assert_array_equal(again.loss["random"][:, 0, 0], sweep.loss["random"][:, 1, 1])


def test_retrain_keeps_mask_and_signs(run, sweep):
    res = fig3.retrain_pruned(run, "topprob", density=0.3, epochs=2, progress=False)
    assert res.test_loss.shape == (2, 3) and res.train_loss.shape == (2, 2)
    assert res.outside_mask == 0 and res.sign_violations == 0
    assert np.all(res.W_final[~res.mask] == 0)
    assert sign_violations(torch.from_numpy(res.W_final), torch.from_numpy(run.weights["signs"])) == 0
    # the retraining mask is the sweep's mask at the same level and draw 0
    np.testing.assert_allclose(res.test_loss[:, 0], sweep.loss["topprob"][:, 1, 0], rtol=1e-12)
    np.testing.assert_allclose(res.dense_loss, sweep.dense_loss)
    assert np.abs(res.nominal_density - 0.3).max() < 0.06


def test_retraining_both_methods_in_one_batch_matches_one_at_a_time(run, monkeypatch):
    monkeypatch.setattr("biornn.nn.train.EVAL_MAX_ELEMS", 2 * 20 * 32 * 9)  # held-out set in chunks of 9 windows
    both = fig3.retrain_pruned_methods(run, ("random", "topprob"), density=0.3, epochs=2, progress=False)
    for method in ("random", "topprob"):
        alone = fig3.retrain_pruned(run, method, density=0.3, epochs=2, progress=False)
        for key in ("test_loss", "train_loss", "W_final", "mask", "nominal_density"):
            np.testing.assert_array_equal(getattr(both[method], key), getattr(alone, key), err_msg=f"{method} {key}")
    assert not np.array_equal(both["random"].mask, both["topprob"].mask)


def test_cache_round_trip(run, tmp_path):
    a = fig3.cached_sweep(run, [0.0, 0.5], draws=1, root=tmp_path, progress=False)
    dirs = list((tmp_path / "fig3").iterdir())
    assert len(dirs) == 1 and dirs[0].name.startswith("flipflop-sweep-")
    b = fig3.cached_sweep(run, [0.0, 0.5], draws=1, root=tmp_path, progress=False)  # read back
    np.testing.assert_array_equal(a.loss["topprob"], b.loss["topprob"])
    meta = json.loads((dirs[0] / "metrics.json").read_text())
    assert meta["config"]["dense"] == run.config.to_dict() and "code_version" in meta["provenance"]
    r = fig3.cached_retrain(run, "random", density=0.5, epochs=1, root=tmp_path, progress=False)
    r2 = fig3.cached_retrain(run, "random", density=0.5, epochs=1, root=tmp_path, progress=False)
    np.testing.assert_array_equal(r.test_loss, r2.test_loss)
    assert r2.W_final is None and r2.mask.dtype == bool and r2.outside_mask == 0


def test_classification_sweep_reports_accuracy():
    cfg = fig2_config("digits", "dales", "quick", seeds=(0, 1), hidden=32, n_train=200, n_test=60, epochs=1)
    res = fig3.sweep_errors(train(cfg, progress=False), [0.0, 0.5, 1.0], draws=1, progress=False)
    assert res.accuracy["topprob"].shape == (2, 3, 1) and res.dense_accuracy.shape == (2,)
    np.testing.assert_array_equal(res.accuracy["topprob"][:, 2, 0], res.dense_accuracy)


def test_sweep_rejects_bad_input(run):
    with pytest.raises(BiornnError, match="outside"):
        fig3.sweep_errors(run, [0.5, 1.5], draws=1, progress=False)
    with pytest.raises(BiornnError, match="pruning method"):
        fig3.sweep_errors(run, [0.5], methods=("magnitude",), draws=1, progress=False)


def test_sweep_constants():
    assert fig3.SWEEP.size == 15 and fig3.SWEEP[0] == 0 and fig3.SWEEP[-1] == 1
    assert fig3.RETRAIN_DENSITY == pytest.approx(0.0862, abs=1e-4)
    cfg = fig3.fig3_config("flipflop", "paper")
    assert cfg.seeds == tuple(range(10)) and cfg.method == "dales" and fig3.default_draws("paper") == 10


def test_mst_overlap_curves_small():
    c = fig3.mst_overlap_curves(sizes=(6,), sparsities=[0.0, 0.5, 1.0], matrices=2, draws=2)
    assert c["empirical"]["topprob"].shape == (1, 2, 2, 3) and c["bound"].shape == (1, 2, 3)
    np.testing.assert_allclose(c["expected"]["topprob"][..., 0], 1.0)
    np.testing.assert_allclose(c["expected"]["random"][..., 2], 0.0)
    assert np.all(c["expected"]["topprob"][..., 1] >= c["expected"]["random"][..., 1])


def test_reference_json_matches_the_typed_in_arrays():
    path = Path(__file__).with_name("test_stats.py")
    spec = importlib.util.spec_from_file_location("_ref_tables", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ref = reference("fig3")
    np.testing.assert_allclose(ref["levels"], fig3.SWEEP)
    for task, (R, T) in mod.TASKS.items():
        np.testing.assert_array_equal(ref["tasks"][task]["random"], R)
        np.testing.assert_array_equal(ref["tasks"][task]["topprob"], T)


def test_tables_on_reference_arrays():
    ref = reference("fig3")
    tasks = {v["label"]: (np.array(v["random"]), np.array(v["topprob"])) for v in ref["tasks"].values()}
    df = fig3.side_by_side(tasks, ref["levels"])
    bars = ref["bars_as_published"]
    for row, key in zip(df.itertuples(), ("flipflop", "wave", "smnist")):
        assert row.pub_bar_random == pytest.approx(bars[key][0], rel=5e-4)
        assert row.pub_min_p == pytest.approx(bars[key][4], abs=5e-7)
    assert df["holm_levels"].tolist() == [5, 1, 5]  # docs/paper/fig3-topprob-pruning.md 9.3
    lt = fig3.level_table(*tasks["Flip-flop"], ref["levels"])
    assert lt.shape[0] == 15 and np.isnan(lt["holm_t_log"][0]) and np.isnan(lt["holm_signflip"][14])
    assert lt["wins"].tolist()[7] == 5


def test_effects_table_on_reference_arrays():
    ref = reference("fig3")
    tasks = {v["label"]: (np.array(v["random"]), np.array(v["topprob"])) for v in ref["tasks"].values()}
    eff = fig3.effects_table(tasks, ref["levels"])
    assert list(eff.columns) == list(fig3.EFFECT_COLUMNS)
    primary = eff[eff.j == -1].set_index("task")
    side = fig3.side_by_side(tasks, ref["levels"]).set_index("task")
    assert list(primary.index) == list(tasks)
    for col in ("ratio", "ratio_lo", "ratio_hi", "p_t_log", "diff", "diff_lo", "diff_hi", "p_t", "p_signflip",
                "p_wilcoxon"):
        np.testing.assert_allclose(primary[col], side[col], err_msg=col)
    assert primary["holm_t_log"].isna().all() and eff.loc[eff.j >= 0, "holm_t_log"].notna().all()
    ff = eff[eff.task == "Flip-flop"]
    assert int((ff.holm_t_log < 0.05).sum()) == side.loc["Flip-flop", "holm_levels"]
    line = fig3.format_effect(primary.loc["Flip-flop"])
    assert f"{primary.loc['Flip-flop', 'ratio']:.3g}" in line and "paired t on log p" in line and "Wilcoxon" in line


def test_cli_registers_reproduce_fig3():
    from biornn.cli import build_parser

    args = build_parser().parse_args(["reproduce-fig3", "--mode", "quick", "--tasks", "wave", "--draws", "1"])
    assert args.func is fig3_cli._cmd_reproduce_fig3 and args.draws == 1


def test_informative_levels_skip_identical_columns():
    R = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.5, 3.0, 4.0]])
    T = np.array([[1.0, 1.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    assert fig3.informative_levels(R, T, [0.0, 0.5, 0.9, 1.0]).tolist() == [1]
    rng = np.random.default_rng(0)
    lt = fig3.level_table(np.c_[R, rng.random((2, 4)) + 1], np.c_[T, rng.random((2, 4)) + 0.5],
                        [0.0, 0.5, 0.9, 1.0, 0.2, 0.4, 0.6, 0.8])
    assert np.isnan(lt["holm_t_log"][2]) and np.isfinite(lt["holm_t_log"][1])


def test_significant_levels_follow_the_holm_column():
    ref = reference("fig3")
    R, T = (np.array(ref["tasks"]["flipflop"][k]) for k in ("random", "topprob"))
    lt = fig3.level_table(R, T, ref["levels"])
    better, worse = fig3.significant_levels(lt), fig3.significant_levels(lt, better=False)
    assert better.size + worse.size == 5  # holm_levels of the reference's flip-flop arrays (9.3)
    rows = lt.set_index("p").loc[better]
    assert (rows.topprob < rows.random).all() and (rows.holm_t_log < 0.05).all()
    assert fig3.format_levels([]) == "none" and fig3.format_levels([0.5, 0.25]) == "0.50, 0.25"


def test_retrain_table_counts_seeds_per_method():
    from types import SimpleNamespace

    def fake(final):
        return SimpleNamespace(test_loss=np.array([[1.0, 0.5, final[0]], [1.0, 0.5, final[1]]]), epochs=2,
                               dense_loss=np.array([0.1, 0.1]), test_accuracy=None)

    tab = fig3.retrain_table({("wave", "random"): fake((0.2, 0.1)), ("wave", "topprob"): fake((0.1, 0.3))})
    tab = tab.set_index("method")
    assert tab.loc["random", "seeds_lower"] == 1 and tab.loc["topprob", "seeds_lower"] == 1
    assert tab.loc["random", "final"] == pytest.approx(0.15) and tab.loc["topprob", "epoch_1"] == 0.5
    assert tab["final_accuracy"].isna().all() and (tab["n"] == 2).all()


# -- the committed paper-mode cache (data/results/fig3) -----------------------------------------------------------
def _paper_run(task):
    from biornn.core.store import run_dir
    from biornn.nn.runs import StoredRun

    cfg = fig3.fig3_config(task, "paper")
    directory = run_dir("fig3", f"{task}-dales", cfg.to_dict())
    assert directory.exists(), f"committed paper cache missing: {directory}"
    return StoredRun(directory)


def test_fig3_dense_flipflop_equals_fig2_seeds():
    """The 10-seed Fig 3 networks contain the 5 Fig 2 networks: same seed, same numbers, whatever the batch."""
    from biornn.core.store import run_dir
    from biornn.nn.runs import StoredRun

    ff10 = _paper_run("flipflop")
    cfg2 = fig2_config("flipflop", "dales", "paper")
    ff5 = StoredRun(run_dir("fig2", "flipflop-dales", cfg2.to_dict()))
    assert list(ff10.config.seeds[:5]) == list(ff5.config.seeds)
    np.testing.assert_allclose(ff10.curve("test_loss")[:5], ff5.curve("test_loss"), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ff10.weights["W_final"][:5], ff5.weights["W_final"], atol=1e-4)


def test_fig3_cached_sweep_and_retraining_recompute_to_the_same_numbers():
    """Recompute one level of the cached digits sweep and the cached top-prob retraining, and compare."""
    torch.set_num_threads(1)
    from biornn.core.config import RESULTS_DIR

    run = _paper_run("digits")
    for kind in ("sweep", "retrain"):  # committed, so nothing below computes (and writes) a missing piece
        assert list((Path(RESULTS_DIR) / "fig3").glob(f"digits-{kind}-*")), f"committed digits {kind} cache missing"
    sw = fig3.cached_sweep(run, fig3.SWEEP, draws=fig3.FIG3_DRAWS["paper"], retrain=False)
    assert sw.draws == 10 and len(sw.seeds) == 10
    j = 4
    fresh = fig3.sweep_errors(run, fig3.SWEEP[[j]], draws=2, progress=False)
    for m in ("random", "topprob"):
        np.testing.assert_allclose(fresh.loss[m][:, 0], sw.loss[m][:, j, :2], rtol=1e-5)
    cached = fig3.cached_retrain(run, "topprob", epochs=fig3.retrain_epochs("digits", "paper"), retrain=False)
    again = fig3.retrain_pruned(run, "topprob", epochs=cached.epochs, progress=False)
    # Same machine: bit for bit. Another CPU rounds float32 differently and retraining amplifies it, so compare
    # as biornn.experiments.verify does: epoch 1 within float32 rounding, the end within the between-seed band.
    fresh_loss, cached_loss = np.asarray(again.test_loss, float), np.asarray(cached.test_loss, float)
    spread = {"test_loss": float(np.std(cached_loss[:, -1], ddof=1))}
    verdict = compare_curves({"test_loss": fresh_loss}, {"test_loss": cached_loss}, spread, weights_equal=False)
    assert verdict.verdict == "rounding drift", verdict.reason
    assert again.outside_mask == 0 and again.sign_violations == 0
