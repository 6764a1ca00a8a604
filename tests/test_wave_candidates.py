"""Figure 3 wave candidates: each changes one thing of the sweep; the table reads the mid-range comparison."""

import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats

from biornn.core.errors import BiornnError
from biornn.experiments.fig3.experiment import SWEEP
from biornn.experiments.fig3.wave_candidates import (
    CANDIDATES,
    DRAWS,
    N_SCORE,
    _mask,
    _scoring_data,
    candidate_errors,
    candidate_table,
    ei_keep_shares,
    get_candidate,
    load_candidates,
    run_candidates,
)
from biornn.nn.train import TrainConfig, train

TINY = TrainConfig(task="wave", method="dales", epochs=2, seeds=(0, 1, 2), hidden=20, n_train=120, n_test=60,
                   batch_size=40, steps=30)


@pytest.fixture(scope="module")
def tiny_run():
    return train(TINY, device="cpu", progress=False)


def test_candidates_change_one_thing_each():
    base = CANDIDATES[0]
    assert base.name == "default"
    for c in CANDIDATES[1:]:
        changed = [f.name for f in dataclasses.fields(c)
                   if f.name not in ("name", "group", "text") and getattr(c, f.name) != getattr(base, f.name)]
        assert len(changed) == 1, (c.name, changed)
    assert get_candidate("network_epoch5").config().epochs == 5
    with pytest.raises(BiornnError, match="unknown wave candidate 'nope'"):
        get_candidate("nope")


def test_scoring_data(tiny_run):
    own = _scoring_data(tiny_run, get_candidate("score_last_batch"))
    foreign = _scoring_data(tiny_run, get_candidate("score_foreign_batch"))
    assert own.x_test.shape[:2] == (3, 100)
    np.testing.assert_array_equal(foreign.x_test[0], own.x_test[-1])  # every seed gets the last seed's batch
    np.testing.assert_array_equal(foreign.x_test[1], own.x_test[-1])
    assert not np.array_equal(own.x_test[0], own.x_test[-1])


def test_ei_block_topprob_keeps_each_block_at_density(tiny_run):
    W = torch.as_tensor(tiny_run.weights["W_final"])
    signs = np.asarray(tiny_run.weights["signs"])
    pop = torch.as_tensor((signs < 0).astype(np.int64))
    Wp = _mask(W, "topprob", 0.4, [0, 1, 2], 0, get_candidate("topprob_ei_blocks"), pop)
    kept = (Wp != 0).double()
    for cols in (signs > 0, signs < 0):
        frac = kept[:, :, torch.as_tensor(cols)].mean().item()
        assert 0.25 < frac < 0.55  # each block near 0.4 (Dale zeros lower it), not all budget to one sign
    assert torch.all((Wp == 0) | (Wp == W))  # kept entries keep their values


def test_candidate_errors_and_table(tiny_run, tmp_path):
    res = candidate_errors(get_candidate("default"), run=tiny_run, levels=[0.0, 0.5, 1.0], draws=2, progress=False)
    assert res["random"].shape == (3, 3)
    np.testing.assert_allclose(res["random"][:, 0], res["topprob"][:, 0])  # p = 0: both masks empty
    np.testing.assert_allclose(res["random"][:, 2], res["dense"], rtol=1e-6)  # p = 1: the dense network
    # the table on made-up errors: top-prob twice random at mid levels in every seed
    R = np.full((4, 15), 0.1)
    T = R.copy()
    T[:, 5:11] = 0.2 * (1 + 0.01 * np.arange(4))[:, None]
    T[:, [1, 13]] = 0.05  # top-prob better at two interior levels only
    table = candidate_table({"default": {"random": R, "topprob": T, "dense": np.zeros(4)}}).iloc[0]
    assert table["log_ratio"] == pytest.approx(np.log(2 * (1 + 0.01 * np.arange(4))).mean())
    assert table["ci_low"] > 0 and table["p_t"] < 1e-4
    assert table["wins_039"] == "0/4" and table["levels_won"] == 2
    assert table["breakdowns"] == "4/4"  # 0.2 at mid levels against 0.1 with no recurrent weights
    d = np.log(2 * (1 + 0.01 * np.arange(4)))
    half = stats.t.ppf(0.975, 3) * d.std(ddof=1) / 2
    assert table["ci_high"] - table["log_ratio"] == pytest.approx(half)
    with pytest.raises(BiornnError, match="15 levels"):
        candidate_table({"default": {"random": R[:, :3], "topprob": T[:, :3], "dense": np.zeros(4)}})
    assert table["fisher_vs_ref"] < 0.05  # 0/4 against the reference's 4/5


def test_run_candidates_resumes(tmp_path, monkeypatch):
    calls = []

    def fake(cand, device=None, progress=True):
        calls.append(cand.name)
        return {"random": np.ones((2, 15)), "topprob": np.ones((2, 15)), "seeds": [0, 1], "levels": SWEEP,
                "dense": np.zeros(2), "config": {}, "draws": DRAWS, "n_score": N_SCORE, "seconds": 0.0}

    monkeypatch.setattr("biornn.experiments.fig3.wave_candidates.candidate_errors", fake)
    path = tmp_path / "c.json"
    run_candidates(["default"], path)
    run_candidates(["default", "score_last_batch"], path)
    assert calls == ["default", "score_last_batch"]
    assert set(load_candidates(path)) == {"default", "score_last_batch"}
    # a cached candidate computed with another protocol (here: fewer draws) is computed again
    monkeypatch.setattr("biornn.experiments.fig3.wave_candidates.DRAWS", DRAWS + 1)
    run_candidates(["default"], path)
    assert calls == ["default", "score_last_batch", "default"]


def test_ei_keep_shares_follow_the_magnitudes():
    rng = np.random.default_rng(0)
    signs = np.r_[np.ones(16), -np.ones(4)]
    W = rng.uniform(0.01, 0.05, (2, 20, 20)) * signs
    W[:, :, signs < 0] *= 2.0  # inhibitory synapses twice as strong
    shares = ei_keep_shares(W, signs, 0.3)
    assert shares["random"][0] == pytest.approx(0.3) and shares["random"][1] == pytest.approx(0.3)
    assert shares["topprob"][1] > 0.45 > 0.3 > shares["topprob"][0]
