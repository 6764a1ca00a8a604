"""The three toy tasks of the paper's Figure 2 (and Figure 3): flip-flop, wave reconstruction, sequential digits.

Every generator returns a :class:`TaskData` whose arrays are stacked over seeds:

* ``x_train``: ``(S, n_train, T, n_in)`` float32 inputs (``S = 1`` when all seeds share one dataset, as for
  the digit tasks);
* ``y_train``: ``(S, n_train, T, n_out)`` float32 targets for regression tasks, ``(S, n_train)`` int64 class labels
  for classification;
* ``x_test`` / ``y_test``: the same for the held-out set.

Data are drawn from a generator seeded by the run's seed only (see :func:`biornn.config.derive_seed`), so the
methods compared in Figure 2 share data and initial weights (paired runs, Q15). Pass ``draw_key`` to make
each method draw its own data, as the unseeded reference did.

Facts: ``docs/paper/fig2-dales-backprop.md`` sections 2, 3 and 10; the Q numbers below are that page's.
"""

from __future__ import annotations

import gzip
import os
import struct
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biornn.config import ROOT, derive_seed
from biornn.errors import BiornnError

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
                    np.stack(yt), n_out=1, output_tanh=True, info={"pulse_prob": pulse_prob})


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
                          "heldout": heldout, "input_routing": input_routing})


# ----------------------------------------------------------------------------------------------------------------
# Sequential digits: MNIST when its IDX files are present, scikit-learn's 8x8 digits otherwise
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


def make_digits(seeds, prefer_mnist: bool = True, n_train: int | None = None, n_test: int | None = None,
                mnist_dir: str | os.PathLike | None = None) -> TaskData:
    """Row-by-row sequential digits, shared by all seeds (each seed shuffles its own batches).

    Uses MNIST (28 steps of 28 pixels) when its IDX files are in ``data/mnist/`` and ``prefer_mnist`` is true,
    otherwise scikit-learn's 8x8 digits (8 steps of 8 pixels), labelled as such.

    Args:
        seeds: run seeds (unused for the data, which all seeds share).
        prefer_mnist: use MNIST when present.
        n_train, n_test: optional subset sizes (the first rows), for quick runs.
        mnist_dir: where to look for the IDX files.
    """
    del seeds
    if prefer_mnist and find_mnist(mnist_dir) is not None:
        xtr, ytr, xte, yte = load_mnist(mnist_dir)
        name, label = "mnist", "Sequential MNIST (row by row, 28x28)"
    else:
        xtr, ytr, xte, yte = load_digits_8x8()
        name, label = "digits", "Sequential digits (sklearn 8x8 stand-in for MNIST)"
    if n_train is not None:
        xtr, ytr = xtr[:n_train], ytr[:n_train]
    if n_test is not None:
        xte, yte = xte[:n_test], yte[:n_test]
    return TaskData(name, label, "classification", xtr[None], ytr[None], xte[None], yte[None], n_out=10,
                    info={"n_train": len(ytr), "n_test": len(yte)})


def make_task(task: str, seeds, n_hidden: int = 128, draw_key: str = "", **options) -> TaskData:
    """Build the data of ``task`` for ``seeds`` (dispatches to the ``make_*`` functions above)."""
    if task == "flipflop":
        return make_flipflop(seeds, draw_key=draw_key, **options)
    if task == "wave":
        return make_wave(seeds, n_hidden=n_hidden, draw_key=draw_key, **options)
    if task == "digits":
        return make_digits(seeds, prefer_mnist=False, **options)
    if task == "mnist":
        if find_mnist(options.get("mnist_dir")) is None:
            raise BiornnError(f"--task mnist needs the four MNIST IDX files in {MNIST_DIR}; run `python -m "
                              "biornn fetch-mnist` where a network exists, or use --task digits")
        return make_digits(seeds, prefer_mnist=True, **options)
    raise BiornnError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
