"""The results cache: atomic writes, clear errors on corruption, and cached runs that retrain to the same numbers."""

import json

import numpy as np
import pytest

from biornn.errors import BiornnError
from biornn.fig2 import StoredRun, cached_train
from biornn.store import load_run, run_dir, save_run
from biornn.train import fig2_config, train


def _arrays():
    return {"W_init": np.zeros((2, 4, 4), np.float32), "W_final": np.ones((2, 4, 4), np.float32),
            "signs": np.array([1, 1, 1, -1], np.float32)}


def _metrics():
    return {"config": {"a": 1}, "device": "cpu", "runs": [{"seed": 0}, {"seed": 1}]}


def test_save_and_load_roundtrip_leaves_no_temporaries(tmp_path):
    out = save_run(tmp_path / "run", _metrics(), _arrays())
    metrics, arrays = load_run(out)
    assert metrics["runs"][1]["seed"] == 1 and np.array_equal(arrays["W_final"], _arrays()["W_final"])
    save_run(tmp_path / "run", _metrics(), _arrays())  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_corrupt_cache_gives_a_clear_error(tmp_path):
    out = save_run(tmp_path / "run", _metrics(), _arrays())
    (out / "weights.npz").write_bytes(b"not a zip file")
    with pytest.raises(BiornnError, match="corrupt cache .*weights.npz.*delete"):
        load_run(out)
    out = save_run(tmp_path / "run", _metrics(), _arrays())
    (out / "metrics.json").write_text("{truncated")
    with pytest.raises(BiornnError, match="corrupt cache .*metrics.json"):
        load_run(out)


def test_cache_shape_and_nan_checks(tmp_path):
    arrays = _arrays()
    arrays["W_final"] = np.ones((3, 4, 4), np.float32)
    with pytest.raises(BiornnError, match="holds 3 runs"):
        load_run(save_run(tmp_path / "a", _metrics(), arrays))
    arrays = _arrays()
    arrays["W_final"][0, 0, 0] = np.nan
    with pytest.raises(BiornnError, match="NaN"):
        load_run(save_run(tmp_path / "b", _metrics(), arrays))
    with pytest.raises(BiornnError, match="is a file"):
        (tmp_path / "file").write_text("x")
        save_run(tmp_path / "file", _metrics(), _arrays())


def test_cached_train_writes_provenance_and_reuses(tmp_path):
    cfg = fig2_config("flipflop", "dales", "quick", seeds=(0,), epochs=1, n_train=50, n_test=20, batch_size=25)
    first = cached_train(cfg, root=tmp_path, progress=False)
    prov = first.provenance
    for key in ("code_version", "device", "torch", "wall_seconds", "created"):
        assert key in prov
    assert json.loads((first.directory / "metrics.json").read_text())["config"] == cfg.to_dict()
    again = cached_train(cfg, root=tmp_path, progress=False)
    assert again.directory == first.directory and again.provenance["created"] == prov["created"]


def test_paper_cache_retrains_to_the_same_numbers():
    """Retrain a committed paper-mode run (digits stand-in, Dale's, 50-epoch paper protocol, 5 seeds) and compare."""
    cfg = fig2_config("digits", "dales", "paper", epochs=50)
    directory = run_dir("fig2", "digits-dales", cfg.to_dict())
    assert directory.exists(), f"committed paper cache missing: {directory}"
    stored = StoredRun(directory)
    fresh = train(cfg, device="cpu", progress=False)
    np.testing.assert_allclose(fresh.curve("test_loss"), stored.curve("test_loss"), rtol=1e-6)
    np.testing.assert_allclose(fresh.curve("test_accuracy"), stored.curve("test_accuracy"), rtol=1e-6)
    np.testing.assert_allclose(fresh.weights["W_final"], stored.weights["W_final"], atol=1e-6)
