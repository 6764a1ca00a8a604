"""The results cache: trained runs on disk with provenance, written atomically, validated on load.

A run directory holds the command-line contract's two files:

* ``metrics.json``: ``{"config", "device", "runs", "provenance"}``; provenance records the code version, device,
  torch version, wall time and date;
* ``weights.npz``: plain arrays (``W_init``, ``W_final`` ``(seeds, N, N)``, ``signs`` ``(N,)``, ...).

Paper-mode runs live in ``data/results/<experiment>/<name>-<key>/`` where ``key`` hashes the full configuration, so
a changed setting never reads a stale run. Notebooks call :func:`cached_train`; set ``BIORNN_RETRAIN=1`` (or pass
``retrain=True``) to train again and overwrite.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from biornn.errors import BiornnError

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(os.environ.get("BIORNN_RESULTS", ROOT / "data" / "results"))


def config_key(config: dict) -> str:
    """A short stable hash of a configuration dict (canonical JSON)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def code_version() -> str:
    """The package version plus the git commit (with ``+dirty`` for uncommitted changes), when available."""
    from biornn import __version__

    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "biornn"], cwd=ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        if rev:
            return f"{__version__}+g{rev}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__


def provenance(device: str, wall_seconds: float) -> dict:
    """Where, when and with what a result was made."""
    import platform

    import torch

    return {"code_version": code_version(), "device": device, "torch": torch.__version__,
            "numpy": np.__version__, "python": platform.python_version(), "wall_seconds": round(wall_seconds, 3),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_run(directory: str | os.PathLike, metrics: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``metrics.json`` and ``weights.npz`` into ``directory`` as one atomic step.

    Both files are written into a temporary sibling folder that then replaces ``directory``, so an interrupt
    leaves either the old run or the new one, never a mix.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise BiornnError(f"output path {directory} is a file; pass a folder path for --out")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.", suffix=".tmp"))
    try:
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1, default=_json_default) + "\n")
        with open(tmp / "weights.npz", "wb") as fh:
            np.savez_compressed(fh, **arrays)
        old = None
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
            os.replace(directory, old)
        os.replace(tmp, directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot store {type(obj).__name__} in metrics.json")


def load_run(directory: str | os.PathLike, required: tuple[str, ...] = ("W_init", "W_final", "signs")):
    """Read a run directory; raise :class:`BiornnError` naming the problem when it is missing or corrupt.

    Returns:
        ``(metrics, arrays)``: the parsed ``metrics.json`` and a dict of numpy arrays from ``weights.npz``.
    """
    directory = Path(directory)
    fix = f"delete {directory} and train again (BIORNN_RETRAIN=1 or retrain=True)"
    try:
        metrics = json.loads((directory / "metrics.json").read_text())
    except FileNotFoundError:
        raise BiornnError(f"no metrics.json in {directory}; {fix}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BiornnError(f"corrupt cache {directory}/metrics.json ({exc}); {fix}") from None
    for key in ("config", "runs"):
        if key not in metrics:
            raise BiornnError(f"corrupt cache {directory}/metrics.json: no {key!r} entry; {fix}")
    try:
        with np.load(directory / "weights.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise BiornnError(f"no weights.npz in {directory}; {fix}") from None
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError, EOFError ...
        raise BiornnError(f"corrupt cache {directory}/weights.npz ({type(exc).__name__}: {exc}); {fix}") from None
    missing = [k for k in required if k not in arrays]
    if missing:
        raise BiornnError(f"{directory}/weights.npz has no {', '.join(missing)}; {fix}")
    n_runs = len(metrics["runs"])
    for key in ("W_init", "W_final"):
        if key in arrays and arrays[key].shape[0] != n_runs:
            raise BiornnError(f"{directory}/weights.npz: {key} holds {arrays[key].shape[0]} runs but metrics.json "
                              f"lists {n_runs}; {fix}")
        if key in arrays and not np.isfinite(arrays[key]).all():
            raise BiornnError(f"{directory}/weights.npz: {key} contains NaN or inf; {fix}")
    return metrics, arrays


def run_dir(experiment: str, name: str, config: dict, root: str | os.PathLike | None = None) -> Path:
    """The cache folder of one configuration: ``<root>/<experiment>/<name>-<key>``."""
    return Path(root if root is not None else RESULTS_DIR) / experiment / f"{name}-{config_key(config)}"


def want_retrain(retrain: bool | None = None) -> bool:
    """``retrain`` if given, else ``$BIORNN_RETRAIN`` (``1``/``true``)."""
    if retrain is not None:
        return bool(retrain)
    return os.environ.get("BIORNN_RETRAIN", "0").lower() in ("1", "true", "yes")


def save_train_result(result, directory: str | os.PathLike) -> Path:
    """Save a :class:`biornn.train.TrainResult` in the contract layout (plus provenance and task info)."""
    metrics = result.metrics()
    metrics["provenance"] = provenance(result.device, result.wall_seconds)
    arrays = dict(result.weights)
    if "signals" in result.info:
        arrays["wave_signals"] = result.info["signals"]
    if "params" in result.info:
        metrics["task_params"] = result.info["params"]
    return save_run(directory, metrics, arrays)


class StoredRun:
    """A trained run read back from disk; offers the same accessors as :class:`biornn.train.TrainResult`."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.metrics, self.weights = load_run(self.directory)
        self.runs = self.metrics["runs"]
        self.device = self.metrics.get("device", "?")
        self.data_label = self.metrics.get("data_label", "")
        self.provenance = self.metrics.get("provenance", {})
        self.wall_seconds = self.provenance.get("wall_seconds", float("nan"))
        self.info = {"params": self.metrics.get("task_params")}
        if "wave_signals" in self.weights:
            self.info["signals"] = self.weights["wave_signals"]

    @property
    def config(self):
        from biornn.train import TrainConfig

        return TrainConfig.from_dict(self.metrics["config"])

    def curve(self, key: str) -> np.ndarray:
        return np.array([r[key] for r in self.runs], dtype=float)


def cached_train(config, retrain: bool | None = None, root: str | os.PathLike | None = None, device=None,
                 progress: bool = True, experiment: str = "fig2"):
    """Return the stored run of ``config`` if the cache has it, else train, store and return it.

    Args:
        config: a :class:`biornn.train.TrainConfig`.
        experiment: cache sub-folder (``fig2``, ``fig3``, ...).
        retrain: train even if cached (default ``$BIORNN_RETRAIN``).
        root: cache root (default ``data/results``).
        device: training device (default CUDA when present).
        progress: progress bar while training.
    """
    from biornn.train import train

    directory = run_dir(experiment, f"{config.task}-{config.method}", config.to_dict(), root)
    if directory.exists() and not want_retrain(retrain):
        stored = StoredRun(directory)
        if stored.metrics["config"] != config.to_dict():
            raise BiornnError(f"cache {directory} holds a different configuration; delete it and train again")
        return stored
    result = train(config, device=device, progress=progress)
    save_train_result(result, directory)
    return StoredRun(directory)


def fig2_runs(tasks=("flipflop", "wave", "digits"), methods=None, mode: str | None = None,
              retrain: bool | None = None, device=None, **overrides) -> dict:
    """Every Figure 2 run of ``mode``: ``{(task, method): run}``.

    Paper mode reads the committed cache (training only what is missing, or everything with ``retrain``); quick
    mode trains small models on the spot (seconds). Runs offer ``curve(key)``, ``weights``, ``runs``, ``info``.
    """
    from biornn.config import get_mode
    from biornn.constraints import METHODS
    from biornn.train import fig2_config, train

    mode = get_mode(mode)
    methods = tuple(METHODS) if methods is None else tuple(methods)
    out = {}
    for task in tasks:
        for method in methods:
            config = fig2_config(task, method, mode, **overrides)
            if mode == "paper":
                out[(task, method)] = cached_train(config, retrain=retrain, device=device)
            else:
                out[(task, method)] = train(config, device=device)
    return out


def reference(figure: str) -> dict:
    """The reference implementation's published numbers for ``figure`` (``data/reference/<figure>.json``)."""
    path = ROOT / "data" / "reference" / f"{figure}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BiornnError(f"no reference numbers for {figure!r} ({path} missing)") from None


def fig2_table(runs: dict, ref: dict | None = None):
    """Final-epoch numbers per (task, method), ours beside the reference's (pandas DataFrame).

    Ours: mean, SEM (ddof 1) and n over seeds of the last epoch's per-element test MSE (flip-flop, wave) or test
    accuracy (digits/MNIST). Reference: the same statistics of its 5 stored runs, converted to per-element means.
    The reference's MNIST numbers are shown beside the digits stand-in for orientation only: different data.
    """
    import pandas as pd

    ref = reference("fig2") if ref is None else ref
    rows = []
    for (task, method), run in runs.items():
        key = "test_accuracy" if task in ("digits", "mnist") else "test_loss"
        final = run.curve(key)[:, -1]
        n = len(final)
        row = {"task": task, "dataset": run.data_label, "method": method,
               "metric": "test accuracy (%)" if key == "test_accuracy" else "test MSE / element",
               "epochs": run.curve(key).shape[1], "n": n, "mean": final.mean(),
               "sem": final.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")}
        ref_task = "mnist" if task in ("digits", "mnist") else task
        ref_runs = ref.get(ref_task, {}).get("runs", {}).get(method)
        if ref_runs is not None:
            r = np.asarray(ref_runs, dtype=float)
            row.update(ref_mean=r.mean(), ref_sem=r.std(ddof=1) / np.sqrt(len(r)), ref_n=len(r),
                       ref_data="MNIST 28x28" if ref_task == "mnist" else "same task")
        rows.append(row)
    return pd.DataFrame(rows)
