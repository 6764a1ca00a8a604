"""Recovery against training budget and data size: the sweep's numbers, resumption and input errors."""

import json

import numpy as np
import pytest

from biornn.cli import main
from biornn.core.conditions import ABBREVIATIONS, CONDITIONS
from biornn.core.errors import BiornnError
from biornn.data import synthetic as S
from biornn.experiments.fig5 import recovery as rc
from biornn.experiments.fig5 import recovery_scaling as rs


def _runs(W, seed, n_runs=3, noise=0.02):
    rng = np.random.default_rng(seed)
    return {ABBREVIATIONS[c]: np.abs(W[i])[None] * np.exp(noise * rng.standard_normal((n_runs, 18, 18)))
            for i, c in enumerate(CONDITIONS)}


def _report(planted_runs, null_runs, epochs_x=1, n_train=1000):
    planted = S.ground_truth_stack(S.TwinConfig())["W_true"]
    truth = {ABBREVIATIONS[c]: planted[i] for i, c in enumerate(CONDITIONS)}
    report = rc.recovery_report(planted_runs, null_runs, truth)
    report.update(epochs_x=epochs_x, n_train=n_train, recordings="quick", dense_epochs=60 * epochs_x,
                  finetune_epochs=40 * epochs_x, wall_seconds=1.0,
                  heldout_median_r={"planted": {c: 0.9 for c in CONDITIONS}})
    return report


def test_slope_is_one_when_the_fit_moves_by_the_planted_amount_and_zero_when_it_does_not():
    planted = S.ground_truth_stack(S.TwinConfig())["W_true"]
    null = S.ground_truth_stack(S.TwinConfig(twin="null"))["W_true"]
    seeing = rs.point_row(_report(_runs(planted, 0), _runs(null, 1)))
    blind = rs.point_row(_report(_runs(null, 0), _runs(null, 1)))
    assert seeing["slope"] == pytest.approx(1.0, abs=0.05) and seeing["rho"] > 0.8
    assert abs(blind["slope"]) < 0.1 and blind["planted_recovered"] == 0
    assert seeing["epochs"] == 100 and seeing["heldout_r"] == pytest.approx(0.9)


def test_sweep_writes_each_point_and_skips_finished_ones(tmp_path, monkeypatch):
    planted = S.ground_truth_stack(S.TwinConfig())["W_true"]
    null = S.ground_truth_stack(S.TwinConfig(twin="null"))["W_true"]
    calls = []

    def fake(epochs_x, n_train, recordings, drive, *args, **kwargs):
        calls.append((epochs_x, n_train, recordings))
        return _report(_runs(planted, epochs_x), _runs(null, n_train), epochs_x, n_train)

    monkeypatch.setattr(rs, "train_point", fake)
    monkeypatch.setattr(rs, "linear_recovery", lambda *a, drive, **k: {
        **_report(_runs(planted, 0), _runs(null, 1)), "resampling": "experiments", "n_runs": 5})
    out = tmp_path / "sweep.json"
    rs.run_sweep(out, ((1, 1000, "quick", "stimulus"), (2, 500, "quick", "stimulus")), progress=False)
    assert len(calls) == 2 and set(json.loads(out.read_text())["points"]) == {"epochs_x1-n1000-quick",
                                                                              "epochs_x2-n500-quick"}
    sweep = rs.run_sweep(out, ((1, 1000, "quick", "stimulus"), (2, 500, "quick", "stimulus"),
                               (4, 500, "quick", "stimulus")), progress=False)
    assert calls[2:] == [(4, 500, "quick")]  # the two finished points were not trained again
    assert list(rs.scaling_table(sweep)["epochs_x"]) == [1, 2, 4]
    assert list(rs.linear_table(sweep)["drive"]) == list(rs.DRIVES)


def test_bad_points_fail_before_anything_trains(tmp_path, monkeypatch):
    monkeypatch.setattr(rs, "train_point", lambda *a, **k: pytest.fail("trained before checking every point"))
    with pytest.raises(BiornnError, match="1-2000 samples"):
        rs.run_sweep(tmp_path / "s.json", ((1, 1000, "quick", "stimulus"), (1, 9000, "quick", "stimulus")),
                     progress=False)
    assert rs.parse_points("1x1000,4x2000:paper,1x500:quick:none") == (
        (1, 1000, "quick", "stimulus"), (4, 2000, "paper", "stimulus"), (1, 500, "quick", "none"))
    assert rs.point_key(1, 500, "quick", "none") == "epochs_x1-n500-quick-nodrive"
    assert main(["scaling", "--out", str(tmp_path / "s.json"), "--points", "1x100:quick:stim"]) == 2
    assert main(["scaling", "--out", str(tmp_path / "s.json"), "--points", "2by1000"]) == 2
    assert main(["scaling", "--out", str(tmp_path / "s.json"), "--points", "1x100:twin"]) == 2
    assert not (tmp_path / "s.json").exists()


def _ar_data(A, n=3000, seed=0, drift=0.0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 16, 18))
    x[:, 0] = rng.standard_normal((n, 18))
    for t in range(15):
        x[:, t + 1] = x[:, t] @ A.T + 0.5 * rng.standard_normal((n, 18)) + drift * t
    return x[:, :15], x[:, 1:]


def test_linear_coupling_recovers_a_masked_matrix_and_zeroes_the_rest():
    allowed = S.block_density() > 0
    A = np.where(allowed, np.random.default_rng(1).uniform(0.05, 0.3, (18, 18)), 0.0) / 3
    x, y = _ar_data(A)
    for drive in ("frame", "constant"):
        fit = rs.linear_coupling(x, y, "full", drive)
        assert np.all(fit[~allowed] == 0)
        assert np.abs(fit[allowed] - A[allowed]).max() < 0.05, drive
    # a frame-locked drive the model does not have is absorbed into A; per-frame intercepts absorb it instead
    x, y = _ar_data(A, drift=0.1)
    errors = {d: np.abs(rs.linear_coupling(x, y, "full", d)[allowed] - A[allowed]).max() for d in ("frame", "constant")}
    assert errors["frame"] < 0.05 < errors["constant"]
    with pytest.raises(BiornnError, match="unknown drive"):
        rs.linear_coupling(x, y, "full", "per-trial")
    with pytest.raises(BiornnError, match="stimulus codes"):
        rs.linear_coupling(x, y, "full", "stimulus")


def test_sample_independence_sees_shared_fluctuations_and_their_absence():
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    shared = rng.standard_normal((2000, 16, 1)) + 0.3 * rng.standard_normal((2000, 16, 18))
    own = rng.standard_normal((2000, 16, 18))
    joint = rs.sample_independence(SimpleNamespace(inputs=shared[:, :15], targets=shared[:, 1:]))
    apart = rs.sample_independence(SimpleNamespace(inputs=own[:, :15], targets=own[:, 1:]))
    assert joint["mean"] > 0.8 and abs(apart["mean"]) < 0.01 and apart["max_abs"] < 0.1
