"""Mixed model batches: runs of different training rules trained in one pass give the numbers they give alone.

A GPU wants one pass per figure (kernel launches, not arithmetic, set its time), so Figure 2's rules can share a
model batch: each member keeps its own state rectification, parametrisation and post-step. These tests train a
mixed batch and each rule alone on the same seeds and compare every stored number.
"""

import shutil

import numpy as np
import pytest
import torch

from biornn.core.errors import BiornnError
from biornn.nn.constraints import sign_violations
from biornn.nn.models import rnn_core, rnn_core_autograd
from biornn.nn.runs import SeedBlockRun, cached_seeds, cached_train, cached_train_many, seed_blocks
from biornn.nn.train import TrainConfig, train, train_mixed

SIZES = dict(task="flipflop", epochs=3, n_train=120, n_test=40, batch_size=40, steps=15, hidden=16)
RULES = ("conventional", "dales", "rectified", "rectified-published")


def _config(method, seeds=(0, 1), **extra):
    return TrainConfig(method=method, seeds=seeds, **{**SIZES, **extra})


@pytest.fixture(scope="module")
def mixed_and_alone():
    # two seeds per rule: a lone run of ONE seed takes another matmul path (batch of one) and differs from any
    # batch in float32 round-off (~1e-8, test_single_seed_run_differs_only_by_round_off)
    configs = [_config(m, seeds) for m, seeds in zip(RULES, [(0, 1), (1, 0), (0, 2), (2, 1)])]
    torch.manual_seed(0)
    mixed = train_mixed(configs, device="cpu", progress=False)
    alone = [train(c, device="cpu", progress=False) for c in configs]
    return configs, mixed, alone


def test_mixed_members_match_runs_trained_alone(mixed_and_alone):
    configs, mixed, alone = mixed_and_alone
    for c, m, a in zip(configs, mixed, alone):
        assert m.config == c
        assert [r["seed"] for r in m.runs] == list(c.seeds)
        for key in ("W_init", "W_final", "w_ih", "b_ih", "b_hh", "w_out", "b_out"):
            np.testing.assert_array_equal(m.weights[key], a.weights[key], err_msg=f"{c.method} {key}")
        for key in ("train_loss", "test_loss"):
            np.testing.assert_array_equal(m.curve(key), a.curve(key), err_msg=f"{c.method} {key}")


def test_single_seed_run_differs_only_by_round_off():
    configs = [_config("rectified", (0,)), _config("dales", (1,))]
    for m, c in zip(train_mixed(configs, device="cpu", progress=False), configs):
        a = train(c, device="cpu", progress=False)
        np.testing.assert_allclose(m.weights["W_final"], a.weights["W_final"], rtol=0, atol=1e-6)


def test_mixed_wave_batch_with_chunked_evaluation(monkeypatch):
    """Wave keeps per-seed signals; test sets evaluated in several chunks still sum as in a lone run."""
    monkeypatch.setattr("biornn.nn.train.EVAL_MAX_ELEMS", 2 * 15 * 16 * 7)  # chunks of 7 of the 40 test windows
    configs = [_config(m, seeds, task="wave") for m, seeds in (("conventional", (0, 1)), ("dales", (2, 3)))]
    mixed = train_mixed(configs, device="cpu", progress=False)
    for c, m in zip(configs, mixed):
        alone = train(c, device="cpu", progress=False)
        np.testing.assert_array_equal(m.curve("test_loss"), alone.curve("test_loss"), err_msg=c.method)
        np.testing.assert_array_equal(m.weights["W_final"], alone.weights["W_final"])
        np.testing.assert_array_equal(m.info["signals"], alone.info["signals"])
        assert m.info["params"] == alone.info["params"]


def test_mixed_batch_keeps_each_rule(mixed_and_alone):
    configs, mixed, _ = mixed_and_alone
    by = {c.method: m for c, m in zip(configs, mixed)}
    signs = by["dales"].weights["signs"]
    # training moved every rule away from its start, and only conventional may break Dale's law
    for m in mixed:
        assert np.abs(m.weights["W_final"] - m.weights["W_init"]).max() > 1e-4
    for rule in ("dales", "rectified", "rectified-published"):
        assert sign_violations(by[rule].weights["W_final"], signs) == 0
    # seed 0 of conventional and of Dale's share data and initial weights, then diverge
    np.testing.assert_array_equal(by["conventional"].weights["W_init"][0], by["dales"].weights["W_init"][1])
    assert not np.allclose(by["conventional"].weights["W_final"][0], by["dales"].weights["W_final"][1])


def test_per_member_rectification_matches_autograd():
    g = torch.Generator().manual_seed(3)
    U = torch.randn(3, 6, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    W = (0.5 * torch.randn(3, 5, 5, generator=g, dtype=torch.float64)).requires_grad_()
    flags = torch.tensor([True, False, True])
    A1, A2 = rnn_core(U, W, flags), rnn_core_autograd(U, W, flags)
    torch.testing.assert_close(A1, A2)
    w = torch.randn(A1.shape, generator=g, dtype=torch.float64)
    g1 = torch.autograd.grad((A1 * w).sum(), (U, W))
    g2 = torch.autograd.grad((A2 * w).sum(), (U, W))
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)
    # member 1 (not rectified) equals a lone unrectified run
    torch.testing.assert_close(A1[1:2], rnn_core(U[1:2], W[1:2], False))
    assert torch.autograd.gradcheck(lambda u, v: rnn_core(u, v, flags), (U, W))


def test_mixed_batch_rejects_runs_that_cannot_share_a_pass():
    with pytest.raises(BiornnError, match="differ in more than rule"):
        train_mixed([_config("conventional"), _config("dales", epochs=4)], device="cpu", progress=False)
    with pytest.raises(BiornnError, match="unpaired"):
        train_mixed([_config("conventional"), _config("dales", paired=False)], device="cpu", progress=False)
    with pytest.raises(BiornnError, match="no runs"):
        train_mixed([], device="cpu")


def test_cached_train_many_stores_what_cached_train_stores(tmp_path):
    configs = [_config(m, (0, 1), epochs=1) for m in ("conventional", "dales")]
    many = cached_train_many(configs, device="cpu", batch="figure", progress=False, root=tmp_path / "a")
    one = [cached_train(c, device="cpu", progress=False, root=tmp_path / "b") for c in configs]
    for m, o in zip(many, one):
        assert m.directory.name == o.directory.name
        assert sorted(p.name for p in m.directory.iterdir()) == sorted(p.name for p in o.directory.iterdir())
        for key in o.weights:
            np.testing.assert_array_equal(m.weights[key], o.weights[key])
    # a second call finds both runs and trains nothing
    again = cached_train_many(configs, device="cpu", batch="figure", progress=False, root=tmp_path / "a")
    assert [r.metrics["provenance"] for r in again] == [r.metrics["provenance"] for r in many]
    with pytest.raises(BiornnError, match="unknown batching"):
        cached_train_many(configs, batch="all", root=tmp_path / "a")


def test_seed_blocks_read_back_as_the_whole_run(tmp_path):
    whole = cached_train(_config("dales", (0, 1, 2, 3), epochs=1), device="cpu", progress=False, root=tmp_path / "w")
    config = _config("dales", (0, 1, 2, 3), epochs=1)
    blocks = cached_seeds(config, block=2, device="cpu", root=tmp_path / "b")
    assert isinstance(blocks, SeedBlockRun) and blocks.config == config
    assert [r["seed"] for r in blocks.runs] == [0, 1, 2, 3]
    for key in whole.weights:
        np.testing.assert_array_equal(blocks.weights[key], whole.weights[key], err_msg=key)
    np.testing.assert_array_equal(blocks.curve("test_loss"), whole.curve("test_loss"))
    # a stopped run restarts at the missing block; the block already cached is not trained again
    first, second = blocks.directory
    stamp = (first / "metrics.json").stat().st_mtime_ns
    shutil.rmtree(second)
    again = cached_seeds(config, block=2, device="cpu", root=tmp_path / "b")
    assert (first / "metrics.json").stat().st_mtime_ns == stamp and second.exists()
    np.testing.assert_array_equal(again.weights["W_final"], whole.weights["W_final"])
    # the whole run, once cached, is found first (also in fig3/, where Figure 3 keeps its dense Dale's runs)
    fig3 = tmp_path / "b" / "fig3" / whole.directory.name
    shutil.copytree(whole.directory, fig3)
    assert cached_seeds(config, block=2, root=tmp_path / "b").directory == fig3
    with pytest.raises(BiornnError, match="too small"):
        seed_blocks((0, 1, 2), 1)
    # never a one-seed block (it would round differently): a trailing single seed joins the block before it
    assert seed_blocks(range(21), 10) == [tuple(range(10)), tuple(range(10, 21))]
    assert seed_blocks(range(22), 10)[-1] == (20, 21)
