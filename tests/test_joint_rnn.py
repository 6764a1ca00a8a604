"""The joint RNN estimator (:mod:`biornn.experiments.fig5.joint_rnn`): its filter matches the linear estimator's,
Dale's law and the mask hold after fitting, and a fresh model fitted to data a known model generated recovers that
model's pathway log-gains, while a model with every gain fixed at 0 fits those data worse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from biornn.core.conditions import CONDITIONS
from biornn.core.errors import BiornnError
from biornn.experiments.fig5 import joint_rnn, joint_rnn_checks
from biornn.experiments.fig5.joint_linear import TwinRows, convolve
from biornn.experiments.fig5.joint_linear_report import ROW_NAMES, score
from biornn.experiments.fig5.joint_linear_report import run_recovery as linear_recovery
from biornn.experiments.fig5.joint_rnn import (
    JointCelltypeRNN,
    RNNConfig,
    fit_best,
    fit_model,
    indicator_filter,
    rnn_config,
    standardize,
    table_mask,
)
from biornn.nn.connectivity import POPULATION_LABELS
from biornn.nn.constraints import sign_violations

SIZES = (4, 2, 2)          # N = 48: 4 Pyr, 2 SST, 2 VIP per area-layer
FRAME_PERIOD = 0.1
#: Planted log-gains of the five non-reference conditions (rows) on FF, FB_L23, FB_L5.
G_TRUE = np.array([[0.4, 0.3, -0.3], [-0.3, 0.2, 0.3], [0.3, -0.3, 0.2], [-0.2, 0.3, 0.4], [0.4, -0.2, -0.3]])
#: Self-recovery tolerance on every log-gain. A fresh fit does not reach the generating network (units are
#: exchangeable and the 48-unit network has many near-equivalent couplings; Adam stalls at in-sample R^2 0.92 of
#: noise-free data), so the gains come back attenuated or inflated: measured at this size and seed, max error 0.31,
#: median 0.17 over the 15 gains of planted size 0.2-0.4, Pearson r 0.87, and the g = 0 model's squared error 1.27x
#: the free model's. 0.35 bounds the max error with a small margin; the pattern (r > 0.8) and the cost of fixing
#: the gains at 0 (> 1.1x) are asserted too. This is a weak recovery: an RNN fit that converged further would allow
#: a tighter bound.
TOLERANCE = 0.35


def stimulus_codes() -> np.ndarray:
    """``(6, 1, 18, 14, 3)`` codes: an image every third frame, the change (with its image) at frame 7 in the change
    conditions, the image before frame 7 omitted in the omission conditions."""
    z = np.zeros((len(CONDITIONS), 1, 18, 14, 3))
    z[..., ::3, 0] = 1.0
    for i, cond in enumerate(CONDITIONS):
        if cond.endswith("_change"):
            z[i, ..., 7, :2] = 1.0
        if cond.endswith("_omission"):
            z[i, ..., 7, 2] = 1.0
            z[i, ..., 6, 0] = 0.0
    return z


@pytest.fixture(scope="module")
def generated():
    """Noise-free condition means of a known model: random Dale's W under a block-wise random mask at the table
    densities, the pathway blocks 5x stronger (so the gains move the population means), a novel observation scale
    of exp(0.3) and the gains :data:`G_TRUE`."""
    torch.set_num_threads(1)
    truth = JointCelltypeRNN(SIZES, FRAME_PERIOD, seed=11)
    truth.set_mask(table_mask(truth, 11, "random"))
    with torch.no_grad():
        truth.w_rec.mul_(1 + 4 * truth.pathway.sum(0))
        truth.g_free.copy_(torch.as_tensor(G_TRUE))
        truth.log_scale[1] += 0.3
        z = stimulus_codes()
        target, _, _ = standardize(truth(torch.as_tensor(z)).numpy())
    return truth, z, target


def test_filter_matches_the_linear_estimators():
    r = np.random.default_rng(0).random((3, 18, 14))
    ours = indicator_filter(torch.as_tensor(r), FRAME_PERIOD, 0.05, 0.4).numpy()
    np.testing.assert_allclose(ours, convolve(r, FRAME_PERIOD, 0.05, 0.4), atol=1e-12)


def test_pathway_gains_match_the_explicit_per_condition_coupling():
    model = JointCelltypeRNN(SIZES, FRAME_PERIOD, seed=3)
    model.set_mask(table_mask(model, 3, "random"))
    with torch.no_grad():
        model.g_free.copy_(torch.as_tensor(np.random.default_rng(1).normal(0, 0.5, (5, 3))))
    drive = torch.as_tensor(np.random.default_rng(2).normal(0, 1, (6, 2, model.n_units, 14)))
    fast, explicit = model._run(drive, explicit=False), model._run(drive, explicit=True)
    assert fast.shape == (6, 2, 18, 14)
    np.testing.assert_allclose(fast.detach().numpy(), explicit.detach().numpy(), atol=1e-12)
    W = model.effective_w().detach()
    ref, ff = CONDITIONS.index("familiar_no_change"), CONDITIONS.index("familiar_change")
    on = model.pathway[0].bool() & (model.mask > 0) & (model.w_rec.detach() != 0)
    ratio = (W[ff][on] / W[ref][on]).numpy()
    np.testing.assert_allclose(ratio, np.exp(model.gains().detach()[ff, 0].item()), rtol=1e-12)
    assert torch.equal(W[ff][~model.pathway.sum(0).bool()], W[ref][~model.pathway.sum(0).bool()])


def test_paper_size_is_the_celltype_rnns():
    assert rnn_config("paper").sizes == (192, 32, 16)
    assert JointCelltypeRNN(rnn_config("quick").sizes).n_units == 192


def test_self_recovery_of_the_gains(generated):
    truth, z, target = generated
    config = RNNConfig(sizes=SIZES, steps=1000, lr=0.01, seed=5)
    fit = fit_model(z, target, FRAME_PERIOD, config, mask=truth.mask, device="cpu")
    fixed = fit_model(z, target, FRAME_PERIOD, RNNConfig(**{**config.to_dict(), "fit_gains": False}),
                      mask=truth.mask, device="cpu")
    g_true = truth.gains().detach().numpy()
    ref = CONDITIONS.index("familiar_no_change")
    assert np.all(fit["g"][ref] == 0) and np.all(fixed["g"] == 0)
    free = np.delete(fit["g"], ref, axis=0).ravel()
    assert np.max(np.abs(fit["g"] - g_true)) < TOLERANCE, fit["g"].round(2)
    assert np.corrcoef(free, G_TRUE.ravel())[0, 1] > 0.8, fit["g"].round(2)
    assert fixed["sse"] > 1.1 * fit["sse"], (fixed["sse"], fit["sse"])
    model = JointCelltypeRNN(SIZES, FRAME_PERIOD)
    model.load_state_dict(fit["state"])
    assert sign_violations(model.w_rec.detach(), model.signs) == 0
    assert torch.all(model.w_rec.detach()[truth.mask == 0] == 0)


def test_the_point_fit_keeps_the_best_seed(generated):
    _, z, target = generated
    config = RNNConfig(sizes=SIZES, steps=5, warmup_steps=3, seed=0)
    best = fit_best(z, target, FRAME_PERIOD, config, seeds=(0, 1, 2), device="cpu")
    assert best["loss"] == best["seed_losses"].min()
    assert best["seed"] == (0, 1, 2)[int(np.argmin(best["seed_losses"]))]
    assert len(set(best["seed_losses"].round(12))) == 3            # the seeds start from different networks
    again = fit_model(z, target, FRAME_PERIOD, RNNConfig(**{**config.to_dict(), "seed": best["seed"]}), device="cpu")
    np.testing.assert_array_equal(again["g"], best["g"])          # seeded: the kept fit is reproducible


def test_recovery_run_resumes_from_its_per_resample_cache(tmp_path, monkeypatch, generated):
    """``run_recovery`` (``compare recovery --estimator joint-rnn``) writes one file per fit; a second call refits
    nothing and gives the same report, and a cache with other settings is refused."""
    _, z, target = generated
    rng = np.random.default_rng(0)
    ids = np.arange(3) + 1000
    experiments = {(lv, p): ids for lv in ("familiar", "novel") for p in POPULATION_LABELS}
    rows = TwinRows({}, experiments, dict(experiments), FRAME_PERIOD)
    means = target[:, 0]                                                     # (6, 18, 16)
    codes = np.concatenate([z[:, 0], np.zeros_like(z[:, 0, :, :2])], axis=2)  # (6, 18, 16, 3)
    monkeypatch.setattr(joint_rnn, "load_twin_rows", lambda folder: rows)
    monkeypatch.setattr(joint_rnn, "resample_means",
                        lambda r, seed, b, sampling="population": (means + (0 if b is None else 0.05 * rng.normal(
                            size=means.shape)), codes, None))
    for name in ("planted", "null"):
        (tmp_path / name).mkdir()
        np.savez(tmp_path / name / "ground_truth.npz", W_true=1 + np.random.default_rng(1).random((6, 18, 18)))
    config = RNNConfig(sizes=SIZES, steps=3, warmup_steps=2)
    args = (tmp_path / "out", tmp_path / "planted", [(1, tmp_path / "null")], config)
    rep, path = joint_rnn.run_recovery(*args, resamples=2, warm=False, device="cpu", point_seeds=(0,))
    assert rep["estimator"] == "joint-rnn" and rep["resamples"] == 2 and rep["null_seeds"] == [1]
    assert sorted(p.name for p in (tmp_path / "out" / "joint-rnn-cache" / "planted").iterdir()) == [
        "b0000.npz", "b0001.npz", "point.pt", "settings.json"]
    monkeypatch.setattr(joint_rnn, "fit_model", lambda *a, **k: pytest.fail("a cached fit was refitted"))
    again, _ = joint_rnn.run_recovery(*args, resamples=2, warm=False, device="cpu", point_seeds=(0,))
    assert json.dumps(again, sort_keys=True) == json.dumps(rep, sort_keys=True)
    with pytest.raises(BiornnError, match="other settings"):
        joint_rnn.run_recovery(*args, resamples=2, warm=True, device="cpu", point_seeds=(0,))
    cache = tmp_path / "out" / "joint-rnn-bootstrap.npz"
    from_cache, _ = joint_rnn.report_from_cache(cache, tmp_path / "again")
    assert json.dumps(from_cache, sort_keys=True) == json.dumps(rep, sort_keys=True)
    with pytest.raises(BiornnError, match="--estimator joint-rnn"):
        linear_recovery(tmp_path / "linear", from_cache=cache)


def test_shortfall_scores_name_the_missed_rows():
    """The descriptive scores of the shortfall checks: perfect on the planted changes themselves, the reversed rows
    named, and an RMS for a null twin (nothing planted)."""
    planted = np.zeros(27)
    planted[[0, 4, 5, 18]] = [0.47, 0.26, 0.59, 0.18]
    perfect = score(planted, planted)
    assert perfect["sign"] == 4 and perfect["rmse"] == 0 and perfect["wrong_sign_rows"] == []
    fitted = planted.copy()
    fitted[18] = -0.1
    assert score(fitted, planted)["wrong_sign_rows"] == [ROW_NAMES[18]] == ["FN->NN FF"]
    assert score(np.full(27, 0.1), np.zeros(27))["rms"] == pytest.approx(0.1)


def test_code_shift_feeds_later_frames():
    """``code_shift`` k passes the codes of calcium frame t + k as the codes of rate frame t; other shifts refused."""
    means = np.random.default_rng(0).normal(size=(6, 18, 16))
    codes = np.broadcast_to(np.arange(16.0)[None, None, :, None], (6, 18, 16, 3))
    for k in (0, 1, 2):
        z, target, _, _ = joint_rnn.twin_inputs(means, codes, k)
        assert z.shape == (6, 1, 18, 14, 3) and z[0, 0, 0, 0, 0] == k and z[0, 0, 0, -1, 0] == 13 + k
        assert target.shape == (6, 1, 18, 16)
    with pytest.raises(BiornnError, match="code shift 3"):
        joint_rnn.twin_inputs(means, codes, 3)


def test_committed_joint_rnn_report_recomputes_from_its_cache(tmp_path):
    """The committed paper-size joint RNN report is what its committed cache of resample fits gives (nothing
    fitted): at least 20 resamples per twin, the planted twin and at least one null twin."""
    folder = Path(__file__).resolve().parents[1] / "data" / "results" / "fig5"
    rep, path = joint_rnn.report_from_cache(folder / "joint-rnn-bootstrap.npz", tmp_path)
    assert json.loads(path.read_text()) == json.loads((folder / "recovery-joint-rnn-full.json").read_text())
    assert rep["estimator"] == "joint-rnn" and rep["window"] == "full" and rep["resamples"] >= 20
    assert len(rep["null_seeds"]) >= 1 and rep["resample_starts"] == "cold"
    assert rep["config"]["sizes"] == [192, 32, 16]


def test_half_window_loss_ignores_the_pre_event_frames(generated):
    """``window="half"`` fits ΔF/F frames 8-15 only: scrambling frames 0-7 of the target changes nothing, while the
    full-window fit does change."""
    _, z, target = generated
    scrambled = target.copy()
    scrambled[..., :8] = np.random.default_rng(0).normal(size=scrambled[..., :8].shape)
    half = RNNConfig(sizes=SIZES, steps=5, warmup_steps=3, window="half")
    a = fit_model(z, target, FRAME_PERIOD, half, device="cpu")
    b = fit_model(z, scrambled, FRAME_PERIOD, half, device="cpu")
    np.testing.assert_array_equal(a["g"], b["g"])
    assert a["loss"] == b["loss"]
    full = RNNConfig(sizes=SIZES, steps=5, warmup_steps=3)
    assert not np.array_equal(fit_model(z, target, FRAME_PERIOD, full, device="cpu")["g"],
                              fit_model(z, scrambled, FRAME_PERIOD, full, device="cpu")["g"])
    with pytest.raises(BiornnError, match="unknown window 'quarter'"):
        RNNConfig(window="quarter")


def test_cache_stamps_leave_out_settings_at_their_legacy_value():
    """A cache stamped before ``code_shift`` and ``window`` existed matches the config that reproduces it (shift 0,
    full window) and no other."""
    old = joint_rnn.cache_settings(RNNConfig(code_shift=0))
    assert "code_shift" not in old and "window" not in old
    assert joint_rnn.cache_settings(RNNConfig())["code_shift"] == 1
    assert joint_rnn.cache_settings(RNNConfig(code_shift=0, window="half"))["window"] == "half"


def test_a_reverse_worker_fills_the_same_cache(tmp_path, monkeypatch, generated):
    """``reverse=True`` (a second worker) fits twins and resamples from the end; its report equals the forward
    run's, and a forward run over its cache refits nothing."""
    _, z, target = generated
    ids = np.arange(3) + 1000
    experiments = {(lv, p): ids for lv in ("familiar", "novel") for p in POPULATION_LABELS}
    rows = TwinRows({}, experiments, dict(experiments), FRAME_PERIOD)
    codes = np.concatenate([z[:, 0], np.zeros_like(z[:, 0, :, :2])], axis=2)
    monkeypatch.setattr(joint_rnn, "load_twin_rows", lambda folder: rows)
    monkeypatch.setattr(joint_rnn, "resample_means", lambda r, seed, b, sampling="population": (
        target[:, 0] + (0 if b is None else 0.05 * np.random.default_rng(b).normal(size=target[:, 0].shape)),
        codes, None))
    for name in ("planted", "null"):
        (tmp_path / name).mkdir()
        np.savez(tmp_path / name / "ground_truth.npz", W_true=1 + np.random.default_rng(1).random((6, 18, 18)))
    config = RNNConfig(sizes=SIZES, steps=3, warmup_steps=2)

    def run(out, **kw):
        return joint_rnn.run_recovery(tmp_path / out, tmp_path / "planted", [(1, tmp_path / "null")], config,
                                      resamples=3, warm=False, device="cpu", point_seeds=(0,), **kw)

    forward, _ = run("forward")
    backward, _ = run("backward", reverse=True)
    assert json.dumps(backward, sort_keys=True) == json.dumps(forward, sort_keys=True)
    monkeypatch.setattr(joint_rnn, "fit_model", lambda *a, **k: pytest.fail("a cached fit was refitted"))
    assert json.dumps(run("backward")[0], sort_keys=True) == json.dumps(forward, sort_keys=True)


def test_sampling_summary_reports_the_committed_check():
    """The notebook's one-line sampling summary carries the committed entry's numbers."""
    folder = Path(__file__).resolve().parents[1] / "data" / "results" / "fig5"
    entry = json.loads((folder / "joint-rnn-diagnostics.json").read_text())["sampling"]
    line = joint_rnn_checks.sampling_summary()
    assert f"median {entry['se_ratio_median']:.2f}" in line
    assert f"population: recovered {entry['population']['recovered']}," in line
    assert f"session: recovered {entry['session']['recovered']}," in line
