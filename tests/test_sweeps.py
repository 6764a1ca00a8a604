"""Sweeps through submitit: jobs land in the cache as local runs do, and a restarted sweep skips what is done."""

import shutil

import numpy as np
import pytest

from biornn.core.errors import BiornnError
from biornn.experiments.sweeps import make_executor, pending, run_sweep, sweep_configs
from biornn.nn.runs import StoredRun, cached_seeds, cached_train, find_cached
from biornn.nn.train import TrainConfig

SIZES = dict(task="flipflop", epochs=1, n_train=60, n_test=20, batch_size=20, steps=10, hidden=12)


def _configs():
    return [TrainConfig(method=m, seeds=b, **SIZES) for m in ("conventional", "dales") for b in ((0, 1), (2, 3))]


def test_local_executor_writes_what_a_local_run_writes_and_resumes(tmp_path):
    configs, cache = _configs(), tmp_path / "cache"
    ex = make_executor("local", tmp_path / "logs", timeout_min=10)
    dirs = run_sweep(configs, ex, root=cache, device="cpu")
    assert len(dirs) == 4
    for c in configs:
        here = cached_train(c, root=tmp_path / "here", device="cpu", progress=False)
        there = StoredRun(find_cached(c, cache))
        assert there.directory.name == here.directory.name
        assert sorted(p.name for p in there.directory.iterdir()) == sorted(p.name for p in here.directory.iterdir())
        for key in here.weights:
            np.testing.assert_array_equal(there.weights[key], here.weights[key], err_msg=key)
    # started again: nothing is submitted; a removed block is the only job left
    assert run_sweep(configs, ex, root=cache) == []
    shutil.rmtree(find_cached(configs[1], cache))
    assert pending(configs, cache) == [configs[1]]
    assert len(run_sweep(configs, make_executor("debug", tmp_path / "logs"), root=cache, device="cpu")) == 1
    # the two blocks of a rule read back as one run
    whole = TrainConfig(method="dales", seeds=(0, 1, 2, 3), **SIZES)
    assert [r["seed"] for r in cached_seeds(whole, block=2, root=cache).runs] == [0, 1, 2, 3]


def test_sweep_configs_and_errors(tmp_path):
    configs = sweep_configs(["wave"], ["conventional", "dales"], range(20), block=10, mode="paper")
    assert [(c.method, c.seeds[0], len(c.seeds)) for c in configs] == [
        ("conventional", 0, 10), ("conventional", 10, 10), ("dales", 0, 10), ("dales", 10, 10)]
    assert configs[0].epochs == 25  # paper sizes
    with pytest.raises(BiornnError, match="unknown method 'dale'"):
        sweep_configs(["wave"], ["dale"], range(4))
    with pytest.raises(BiornnError, match="unknown executor 'pbs'"):
        make_executor("pbs", tmp_path)
