"""The results store: trained runs on disk with provenance, written atomically, validated on load.

A run directory holds the command-line contract's two files:

* ``metrics.json``: ``{"config", "device", "runs", "provenance"}``; provenance records the code version, device,
  torch version, wall time, date and the machine (CPU model, instruction set, threads, BLAS: :func:`machine`);
* ``weights.npz``: plain arrays (``W_init``, ``W_final`` ``(seeds, N, N)``, ``signs`` ``(N,)``, ...).

Paper-mode runs live in ``data/results/<experiment>/<name>-<key>/`` where ``key`` hashes the full configuration, so
a changed setting never reads a stale run. Notebooks call :func:`biornn.nn.runs.cached_train`; pass ``retrain=True`` to
train again and overwrite.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from biornn import __version__
from biornn.core.config import RESULTS_DIR, ROOT
from biornn.core.errors import BiornnError


def config_key(config: dict) -> str:
    """A short stable hash of a configuration dict (canonical JSON)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def code_version() -> str:
    """The package version plus the git commit (with ``+dirty`` for uncommitted changes), when available."""
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


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`), or ``"unknown"``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    """The CPU facts that decide float32 rounding, hence whether a cached run retrains bit for bit here.

    Returns:
        ``{"cpu_model", "cpu_capability", "threads", "blas", "arch"}``: the processor's name, the instruction set
        ATen's vector kernels use (``torch.backends.cpu.get_cpu_capability()``, e.g. ``AVX2``, ``AVX512`` or
        ``DEFAULT``; ``$ATEN_CPU_CAPABILITY`` lowers it), torch's intra-op thread count, the BLAS torch was built
        with, and the machine architecture. Two machines that differ in any of the first four may round matrix
        products differently (docs/usage.md, "What reproduces exactly").
    """
    import torch

    blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return {"cpu_model": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(), "blas": blas.group(1) if blas else "unknown",
            "arch": platform.machine()}


def provenance(device: str, wall_seconds: float) -> dict:
    """Where, when and with what a result was made (``machine``: :func:`machine`)."""
    import torch

    return {"code_version": code_version(), "device": device, "torch": torch.__version__,
            "numpy": np.__version__, "python": platform.python_version(), "wall_seconds": round(wall_seconds, 3),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine()}


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


def save_train_result(result, directory: str | os.PathLike) -> Path:
    """Save a :class:`biornn.nn.train.TrainResult` in the contract layout (plus provenance and task info)."""
    metrics = result.metrics()
    metrics["provenance"] = provenance(result.device, result.wall_seconds)
    arrays = dict(result.weights)
    if "signals" in result.info:
        arrays["wave_signals"] = result.info["signals"]
    if "params" in result.info:
        metrics["task_params"] = result.info["params"]
    return save_run(directory, metrics, arrays)








def reference(figure: str) -> dict:
    """The reference implementation's published numbers for ``figure`` (``data/reference/<figure>.json``)."""
    path = ROOT / "data" / "reference" / f"{figure}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BiornnError(f"no reference numbers for {figure!r} ({path} missing)") from None


