"""Cell-type constrained RNN (Fig 4): structure, constraints during training, resume, routing, bad input."""

import json
import shutil

import numpy as np
import pytest
import torch

from biornn import celltype as ct
from biornn.cli import main
from biornn.core.errors import BiornnError
from biornn.data.curate import Dataset, save_dataset
from biornn.nn import connectivity as C
from biornn.nn.constraints import sign_violations
from biornn.nn.models import CelltypeRNN

TINY = (4, 2, 2)  # units per population (Pyr, SST, VIP): N = 6 x 8 = 48


def _dataset(n=40, n_heldout=10, condition="familiar_change", labels=C.POPULATION_LABELS, seed=0):
    """A small smooth dataset in the curate format (one-step-ahead pairs of 16-frame traces)."""
    rng = np.random.default_rng(seed)
    t = np.arange(16)[None, :, None]
    phase = np.arange(18)[None, None, :]

    def traces(k):
        return 0.1 + 0.05 * np.sin(t / 3 + phase) + 0.01 * rng.standard_normal((k, 16, 18))

    train, held = traces(n), traces(n_heldout)
    return Dataset(condition=condition, inputs=train[:, :-1], targets=train[:, 1:], heldout_inputs=held[:, :-1],
                   heldout_targets=held[:, 1:], populations=tuple(labels), row_counts=np.ones(18, np.int64),
                   heldout_row_counts=np.ones(18, np.int64), n_experiments=np.ones(18, np.int64),
                   row_mean=np.zeros((18, 16)), row_sd=np.zeros((18, 16)), t_rel=np.zeros(16),
                   manifest={"seed": 0, "layer_rule": "split", "source": "test"})


def _config(**kw):
    base = dict(condition="familiar_change", seeds=(0, 1), sizes=TINY, dense_epochs=3, finetune_epochs=3,
                batch_size=20)
    return ct.CelltypeConfig(**{**base, **kw})


# ------------------------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------------------------
def test_model_layout_and_init():
    m = CelltypeRNN([0, 1], C.DEFAULT_SIZES)
    assert m.w_rec.shape == (2, 1440, 1440) and m.w_in.shape == (2, 1440, 18) and m.w_out.shape == (2, 1440)
    assert sign_violations(m.w_rec.detach(), m.signs) == 0
    k = 1 / np.sqrt(1440)
    W = m.w_rec.detach()[0]
    assert float(W[:, m.signs > 0].max()) <= k and float(W[:, m.signs < 0].min()) >= -k
    assert float(m.w_in.detach().abs().max()) <= k
    # readouts: U(+-1/sqrt(n_p)) per population, not trained parameters
    assert {name for name, _ in m.named_parameters()} == {"w_in", "w_rec"}
    pop = m.population.numpy()
    assert float(m.w_out[0, pop == 2].abs().max()) <= 1 / 4  # VIP: n_p = 16
    assert not torch.equal(m.w_rec[0], m.w_rec[1])
    again = CelltypeRNN([1], C.DEFAULT_SIZES)
    assert torch.equal(again.w_rec[0], m.w_rec[1]) and torch.equal(again.w_out[0], m.w_out[1])


def test_population_mapping_routes_channel_p_only_to_population_p():
    m = CelltypeRNN([0], {"Pyr": 3, "SST": 2, "VIP": 1}, input_mapping="population")
    dense = CelltypeRNN([0], {"Pyr": 3, "SST": 2, "VIP": 1}, input_mapping="dense")
    pop = m.population.numpy()
    x0 = torch.zeros(1, 1, 1, 18)
    for p in (0, 4, 17):
        x = x0.clone()
        x[..., p] = 1.0
        a = m.hidden(x)[0, 0, 0].detach().numpy()  # first step: a_0 = tanh(W_in x_0)
        assert np.all(a[pop != p] == 0) and np.all(a[pop == p] != 0)
        assert np.count_nonzero(dense.hidden(x)[0, 0, 0].detach().numpy()) == pop.size
    assert np.all(m.w_in.detach().numpy()[0][m.input_mask.numpy() == 0] == 0)


def test_readout_reads_only_its_own_population():
    m = CelltypeRNN([0], {"Pyr": 3, "SST": 2, "VIP": 1})
    R = m.readout_matrix()[0].numpy()
    pop = m.population.numpy()
    assert np.all((R != 0) == (pop[:, None] == np.arange(18)[None, :]))


# ------------------------------------------------------------------------------------------------------------------
# Pruning
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pruning", ["default", "as_published"])
def test_realised_block_densities_within_binomial_error(pruning):
    sizes = (48, 8, 4)
    m = CelltypeRNN([0, 1], ct.sizes_dict(sizes))
    W = m.w_rec.detach()
    mask = ct.prune_mask(W, [0, 1], sizes, pruning)
    real = ct.realised_density(mask, sizes)
    target = C.block_density()
    n = np.outer(*(2 * [C.populations(ct.sizes_dict(sizes))["size"].to_numpy()]))
    assert np.all(real[:, target == 0] == 0)
    if pruning == "default":
        # exact budgets: kept ~ Poisson-binomial with mean p n, variance <= n p (1 - p)
        sd = np.sqrt(n * target * (1 - target))
        assert np.all(np.abs(real * n - target * n) <= 4 * sd + 1)
    else:
        # the reference's budgets keep more than the table (Q8, fig4-5-celltype-rnn.md), never less on average
        within = target.copy()
        within[np.ix_(range(9), range(9, 18))] = within[np.ix_(range(9, 18), range(9))] = 0
        assert real.mean(0)[within > 0].sum() > within[within > 0].sum()
    assert not np.array_equal(real[0], real[1])  # per-seed draws


def test_pruning_never_keeps_zeros_or_cross_area_outside_pathways():
    m = CelltypeRNN([3], ct.sizes_dict(TINY))
    W = m.w_rec.detach().clone()
    W[0, :, :5] = 0
    mask = ct.prune_mask(W, [3], TINY, "as_published")
    assert not mask[0, :, :5].any()
    allowed = C.expand_blocks(C.block_mask(), ct.sizes_dict(TINY))
    assert not mask[0].numpy()[~allowed].any()


# ------------------------------------------------------------------------------------------------------------------
# Training invariants
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("published,kernels", [(False, "sparse"), (True, "sparse"), (False, "dense")])
def test_constraints_hold_after_every_step(published, kernels):
    cfg = _config(**(dict(input_mapping="dense", pruning="as_published", checkpoint_rule="as_published")
                     if published else {}))
    allowed = torch.as_tensor(C.expand_blocks(C.block_mask(), cfg.sizes_dict))
    fresh = CelltypeRNN(cfg.seeds, cfg.sizes_dict, cfg.input_mapping)
    seen = {"dense": 0, "finetune": 0}

    def check(model, stage, keep):
        W = model.w_rec.detach()
        assert sign_violations(W, model.signs) == 0, stage
        # frozen readouts (compared on the CPU: the model trains on CUDA when present)
        assert torch.equal(model.w_out.cpu(), fresh.w_out) and torch.equal(model.b_out.cpu(), fresh.b_out)
        if stage == "finetune":
            assert torch.all(W[keep == 0] == 0)
            assert torch.all(W[:, ~allowed.to(W.device)] == 0)  # zero-probability blocks and absent pathways
        seen[stage] += 1

    res = ct.train_celltype(cfg, _dataset(), progress=False, on_step=check, kernels=kernels)
    assert seen == {"dense": 6, "finetune": 6}  # 3 epochs x 2 batches per stage
    assert res.kernels == {"dense": "dense", "finetune": kernels}
    for run in res.runs:
        assert run["sign_violations"] == {"W_dense": 0, "W_sparse": 0, "W_last": 0} and run["outside_mask"] == 0
    assert np.all(res.arrays["W_sparse"][res.arrays["mask"] == 0] == 0)
    assert np.array_equal(res.arrays["w_out"], fresh.w_out.numpy())
    if not published:
        assert np.all(res.arrays["w_in_sparse"][:, fresh.input_mask.numpy() == 0] == 0)


def test_sparse_and_dense_fine_tuning_kernels_agree():
    """The CSR fine-tuning path is the same maths as the masked dense one (float32 round-off apart)."""
    cfg, data = _config(finetune_epochs=4), _dataset()
    runs = {k: ct.train_celltype(cfg, data, progress=False, kernels=k) for k in ("dense", "sparse")}
    a, b = runs["dense"], runs["sparse"]
    assert np.array_equal(a.arrays["mask"], b.arrays["mask"]) and np.array_equal(a.arrays["W_dense"],
                                                                                  b.arrays["W_dense"])
    np.testing.assert_allclose(b.arrays["W_last"], a.arrays["W_last"], rtol=0, atol=1e-5)
    assert np.abs(a.arrays["W_last"] - a.arrays["W_dense"] * a.arrays["mask"]).max() > 1e-3  # it did train
    for ra, rb in zip(a.runs, b.runs):
        np.testing.assert_allclose(rb["finetune_loss"], ra["finetune_loss"], rtol=1e-4)
    again = ct.train_celltype(cfg, data, progress=False, kernels="sparse")
    assert np.array_equal(again.arrays["W_last"], b.arrays["W_last"])  # same seed, same numbers
    with pytest.raises(BiornnError, match="unknown kernels 'csr'"):
        ct.train_celltype(cfg, data, progress=False, kernels="csr")


def test_vanilla_control_may_break_signs_but_keeps_the_mask():
    res = ct.train_celltype(_config(dale=False, dense_epochs=4, seeds=(0,)), _dataset(), progress=False)
    assert np.all(res.arrays["W_sparse"][res.arrays["mask"] == 0] == 0)
    assert res.config.variant == "vanilla-corrected"


def test_default_checkpoints_are_off_the_hot_path(tmp_path):
    """By default resume.pt is written at stage ends and by wall time, not after every epoch."""
    def interrupt(stage, epoch):
        if (stage, epoch) == ("dense", 1):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ct.train_celltype(_config(), _dataset(), out=tmp_path / "run", progress=False, on_epoch=interrupt)
    assert (tmp_path / "run" / "checkpoints" / "initial.pt").exists()
    assert not (tmp_path / "run" / "checkpoints" / "resume.pt").exists()  # 2 epochs in, far from 5 minutes


def test_learning_rate_schedule():
    cfg = _config()
    assert cfg.lr_at(0) == pytest.approx(1e-3) and cfg.lr_at(10) == pytest.approx(1e-4)
    assert cfg.lr_at(20) == pytest.approx(1e-3) and cfg.lr_at(5) == pytest.approx(5.5e-4)


def test_resumed_run_equals_uninterrupted(tmp_path):
    data = _dataset()
    cfg = _config(checkpoint_rule="as_published")
    full = ct.train_celltype(cfg, data, out=tmp_path / "full", progress=False)
    for stop in (("dense", 1), ("finetune", 0)):
        out = tmp_path / f"cut-{stop[0]}"

        def interrupt(stage, epoch, stop=stop):
            if (stage, epoch) == stop:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            ct.train_celltype(cfg, data, out=out, progress=False, on_epoch=interrupt, checkpoint_every=1)
        assert (out / "checkpoints" / "resume.pt").exists() and not (out / "metrics.json").exists()
        resumed = ct.train_celltype(cfg, data, out=out, progress=False)
        for key, value in full.arrays.items():
            assert np.array_equal(value, resumed.arrays[key]), (stop, key)
        for a, b in zip(full.runs, resumed.runs):
            for key in ("dense_loss", "finetune_loss", "dense_heldout_loss", "sparse_epoch", "dense_best_epoch",
                        "pruned_batch_loss"):
                assert a[key] == b[key], (stop, key)
    assert {p.name for p in (tmp_path / "full" / "checkpoints").iterdir()} == {"initial.pt", "dense_best.pt",
                                                                                "sparse.pt"}
    with pytest.raises(BiornnError, match="another configuration"):
        out = tmp_path / "cut-dense"
        (out / "metrics.json").unlink()
        shutil.copy(tmp_path / "full" / "checkpoints" / "sparse.pt", out / "checkpoints" / "resume.pt")
        ct.train_celltype(_config(dense_epochs=2), data, out=out, progress=False)


# ------------------------------------------------------------------------------------------------------------------
# Metrics and identifiability
# ------------------------------------------------------------------------------------------------------------------
def test_fit_metrics_and_identifiability_on_exact_inputs():
    rng = np.random.default_rng(0)
    y = rng.standard_normal((5, 15, 18))
    fits = ct.fit_metrics(np.stack([y, 2 * y]), y)
    assert np.allclose(fits["r"], 1) and np.allclose(fits["r2"][0], 1) and np.all(fits["r2"][1] < 1)
    gt = C.block_density() * np.where(np.arange(18) % 3 == 0, 1.0, -1.0)[None, :]
    W = C.expand_blocks(gt * rng.uniform(0.5, 1.5, gt.shape), ct.sizes_dict(TINY))
    res = ct.identifiability(np.stack([W, W]), gt, TINY)
    assert np.all(res["sign_agreement"] == 1) and res["n_blocks"] == int((gt != 0).sum())
    assert res["rho"][0] > 0.8
    perfect = ct.identifiability(C.expand_blocks(gt, ct.sizes_dict(TINY))[None], gt, TINY)
    assert perfect["rho"][0] == pytest.approx(1) and perfect["rho_abs"][0] == pytest.approx(1)


# ------------------------------------------------------------------------------------------------------------------
# Command line and bad input
# ------------------------------------------------------------------------------------------------------------------
def _cli(tmp_path, *extra):
    data = tmp_path / "data"
    if not data.exists():
        save_dataset(_dataset(), data)
    return main(["celltype", "train", "--data", str(data), "--condition", "FC", "--seeds", "0,1",
                 "--out", str(tmp_path / "run"), "--sizes", ",".join(map(str, TINY)), "--dense-epochs", "2",
                 "--finetune-epochs", "2", *extra])


def test_cli_contract(tmp_path, capsys):
    assert _cli(tmp_path, "--published") == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"config", "device", "runs", "data", "provenance"} <= set(metrics)
    assert metrics["config"]["input_mapping"] == "dense" and metrics["config"]["pruning"] == "as_published"
    run = metrics["runs"][1]
    assert run["seed"] == 1 and len(run["dense_loss"]) == 2 and len(run["finetune_loss"]) == 2
    assert len(run["heldout"]["sparse"]["r2"]) == 18
    N = 48
    with np.load(tmp_path / "run" / "weights.npz") as w:
        assert w["W_dense"].shape == w["W_sparse"].shape == w["mask"].shape == (2, N, N)
        assert w["signs"].shape == (N,) and w["population"].shape == (N,)
        assert w["population"][0] == "V1_L4_Pyr" and w["population"][-1] == "LM_L5_VIP"
        assert set(np.unique(w["mask"])) <= {0, 1}
        assert np.all(w["W_sparse"][w["mask"] == 0] == 0)
    assert "held-out" in capsys.readouterr().out
    res = ct.load_celltype(tmp_path / "run")
    summary = ct.summarize(res, _dataset())
    ct.save_summary(summary, tmp_path / "summary")
    back = ct.load_summary(tmp_path / "summary")
    assert np.array_equal(back["realised_density"], summary["realised_density"])
    assert back["trace_sparse"].shape == (2, 4, 15, 18)
    for key in ("W_dense_seed", "W_sparse_seed"):  # display matrices: float16 on disk, float32 back
        assert back[key].dtype == np.float32
        np.testing.assert_allclose(back[key], summary[key], rtol=1e-3, atol=1e-7)
    np.testing.assert_array_equal(back["W_init_seed"], summary["W_init_seed"])  # regenerated from config and seed
    assert np.array_equal(back["W_sparse_seed"] == 0, summary["W_sparse_seed"] == 0)
    # kernels "auto": CSR on the CPU, dense matmuls on CUDA; recorded in metrics.json
    assert res.kernels == {"dense": "dense", "finetune": "sparse" if res.device == "cpu" else "dense"}
    # the summarize command without display matrices, then the per-condition fit table over that cache
    cache = tmp_path / "cache"
    assert main(["celltype", "summarize", "--run", str(tmp_path / "run"), "--data", str(tmp_path / "data"),
                 "--no-matrices", "--out", str(cache / "FC-full-published-x")]) == 0
    small = ct.load_summary(cache / "FC-full-published-x")
    assert not any(k.endswith("_seed") and k.startswith("W_") for k in small)
    np.testing.assert_array_equal(small["block_abs_sparse"], summary["block_abs_sparse"])
    fits = ct.condition_fits(cache)
    assert list(fits["seed"]) == [0, 1] and set(fits["condition"]) == {"FC"} and set(fits["window"]) == {"full"}
    train_pred = ct.predict(res.model("sparse"), _dataset().inputs[:40])
    train_r = ct.fit_metrics(train_pred, _dataset().targets[:40])["r"]
    for s, row in fits.iterrows():
        assert row["median_r"] == pytest.approx(np.median(metrics["runs"][s]["heldout"]["sparse"]["r"]))
        assert small["runs"][s]["train_fit_samples"] == 40  # the whole (tiny) training set
        assert row["train_median_r"] == pytest.approx(np.median(train_r[s]))
        assert row["passes"] == (row["median_r"] >= 0.9)
        assert row["train_minutes"] == pytest.approx(sum(map(sum, metrics["runs"][s]["epoch_seconds"].values())) / 60)
        assert row["wall_minutes"] == pytest.approx(small["wall_seconds"] / 60)
    # a CUDA run whose epoch timer did not synchronise (launch time only) has no epoch minutes, only wall minutes
    js = json.loads((cache / "FC-full-published-x" / "summary.json").read_text())
    js["device"] = "cuda"
    for run in js["runs"]:
        run.pop("epoch_timer")
    (cache / "FC-full-published-x" / "summary.json").write_text(json.dumps(js))
    old = ct.condition_fits(cache)
    assert old["train_minutes"].isna().all() and old["wall_minutes"].notna().all()
    assert ct.condition_fits(tmp_path / "nothing-here").empty
    # reference predictors: summarize stores the honest ones (fitted on training data); a summary written before
    # they existed gets them back from its dataset alone (celltype baselines), and the fit table shows them
    assert set(small["baselines"]) == {"persistence", "time_mean", "train_mean", "linear_history"}
    for run in js["runs"]:
        run["epoch_timer"] = "synchronised"
    js["baselines"] = {k: v for k, v in js["baselines"].items() if k in ("persistence", "time_mean")}
    (cache / "FC-full-published-x" / "summary.json").write_text(json.dumps(js))
    assert ct.condition_fits(cache)["linear_history_r"].isna().all()
    assert main(["celltype", "baselines", "--data", str(tmp_path / "data"), "--root", str(cache)]) == 0
    back = ct.condition_fits(cache)
    expect = ct.baselines(_dataset().heldout_inputs, _dataset().heldout_targets, _dataset().inputs,
                          _dataset().targets)
    for name in ("time_mean", "train_mean", "linear_history"):
        assert back[f"{name}_r"].iloc[0] == pytest.approx(np.median(expect[name]["r"]), rel=1e-6)
    pops = ct.population_fits("familiar_change", "full", root=cache)
    assert list(pops.index) == list(C.POPULATION_LABELS)
    seeds_r = np.array([metrics["runs"][s]["heldout"]["sparse"]["r"] for s in (0, 1)])
    np.testing.assert_allclose(pops["model_r"], np.median(seeds_r, 0))
    assert (pops["model_r_min"] <= pops["model_r"]).all() and (pops["model_r"] <= pops["model_r_max"]).all()
    np.testing.assert_allclose(pops["linear_history_r"], expect["linear_history"]["r"], rtol=1e-6)
    with pytest.raises(BiornnError, match="no cached Figure 4 summary for FN half"):
        ct.population_fits("FN", "half", root=cache)
    # another dataset (other noise draw, same condition) is refused with the hashes named
    with pytest.raises(BiornnError, match="hashes to .* trained on") as err:
        ct.refresh_baselines(cache / "FC-full-published-x", _dataset(seed=1))
    assert "\n" not in str(err.value)


def test_linear_history_predictor_is_causal_fitted_on_training_data_and_beats_the_mean():
    """An AR(1) deviation around a mean time course: the past predicts it, the average trace cannot."""
    rng = np.random.default_rng(3)
    T, P = 15, 3
    mean = np.sin(np.arange(T + 1) / 3)[None, :, None] * np.array([1.0, 0.5, 0.2])

    def samples(n, offset):
        d = np.empty((n, T + 1, P))
        d[:, 0] = offset + rng.standard_normal((n, P))
        for t in range(T):
            d[:, t + 1] = 0.9 * d[:, t] + 0.1 * rng.standard_normal((n, P))
        full = mean + 0.3 * d
        return full[:, :-1], full[:, 1:]

    x, y = samples(400, 0.0)
    hx, hy = samples(200, 0.5)  # the held-out pool sits off the training mean, as a held-out set of trials can
    base = ct.baselines(hx, hy, x, y, history=2)
    med = {k: np.median(v["r"]) for k, v in base.items()}
    assert med["linear_history"] > 0.99 > med["time_mean"] > med["train_mean"]
    assert base["linear_history"]["mse"] < 0.05 * base["train_mean"]["mse"]
    pred = ct.linear_history_predict(x, y, hx, history=2)
    # causal: frames after t do not change the prediction at t
    later = hx.copy()
    later[:, 8:] += 1.0
    np.testing.assert_array_equal(ct.linear_history_predict(x, y, later, history=2)[:, :8], pred[:, :8])
    assert not np.allclose(ct.linear_history_predict(x, y, later, history=2)[:, 8:], pred[:, 8:])
    for bad, needle in (((x, y[:, :5], hx), "of one shape"), ((x, y, hx[:, :, :2]), "of one shape")):
        with pytest.raises(BiornnError, match=needle):
            ct.linear_history_predict(*bad)
    with pytest.raises(BiornnError, match="ridge > 0"):
        ct.linear_history_predict(x, y, hx, ridge=0)


def _edit_csv(tmp_path, name, edit):
    path = tmp_path / name
    lines = (C.CONNECTIVITY_DIR / name).read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")
    return path


@pytest.mark.parametrize("case, needle", [
    ("probability", "probability '1.3' is not a number in [0, 1]"),
    ("missing", "is missing"),
    ("order", "population order disagrees"),
    ("condition", "unknown condition"),
])
def test_bad_input_is_one_line(tmp_path, capsys, case, needle):
    extra = []
    if case == "probability":
        path = _edit_csv(tmp_path, "within_area_probabilities.csv",
                         lambda ls: [ls[0], ls[1].rsplit(",", 1)[0] + ",1.3", *ls[2:]])
        extra = ["--within-table", str(path)]
    elif case == "missing":
        path = _edit_csv(tmp_path, "within_area_probabilities.csv", lambda ls: ls[:5] + ls[6:])
        extra = ["--within-table", str(path)]
    elif case == "order":
        labels = list(C.POPULATION_LABELS)
        labels[0], labels[1] = labels[1], labels[0]
        save_dataset(_dataset(labels=labels), tmp_path / "data")
    if case == "condition":
        rc = main(["celltype", "train", "--data", str(tmp_path), "--condition", "XX", "--seeds", "0",
                   "--out", str(tmp_path / "run")])
    else:
        rc = _cli(tmp_path, *extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0], err
    with pytest.raises(BiornnError, match="order disagrees"):
        ct.prepare_data(_dataset(labels=C.POPULATION_LABELS[::-1]))


def test_benchmark_hook_and_paper_cache_lookup(tmp_path):
    out = ct.benchmark_epochs(TINY, n_seeds=2, steps=3, batch_size=10, n_samples=20, device="cpu")
    assert out["batches"] == 2 and out["n_hidden"] == 48 and out["dense_s"] > 0 and out["finetune_s"] > 0
    assert 0 < out["mask_density"] < 0.3
    cfg = ct.celltype_config("FN", "paper", published=True)
    assert cfg.sizes == (192, 32, 16) and cfg.seeds == (0, 1, 2, 3, 4) and cfg.variant == "published"
    folder = ct.summary_dir(cfg, root=tmp_path)
    assert folder.name.startswith("FN-full-published-")
    assert ct.fig4_run(cfg, None, "paper", root=tmp_path) is None
    with pytest.raises(BiornnError, match="unknown condition"):
        ct.celltype_config("XY")


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe binary", b'{"config": {}}'])
def test_corrupt_summary_json_gives_one_line_error(tmp_path, content):
    folder = tmp_path / "FC-full-published-x"
    folder.mkdir()
    (folder / "summary.json").write_bytes(content)
    np.savez(folder / "summary.npz", x=np.zeros(1))
    for call in (lambda: ct.condition_fits(tmp_path), lambda: ct.load_summary(folder)):
        with pytest.raises(BiornnError, match="corrupt Figure 4 summary") as err:
            call()
        assert "\n" not in str(err.value) and "summarise again" in str(err.value)
