"""Run modes, devices, seeds, folders and switches: the few settings every experiment shares.

This is the one module that reads environment variables (``BIORNN_MODE``, ``BIORNN_PROGRESS``, ``BIORNN_RESULTS``,
``BIORNN_FIGURES``, ``BIORNN_ALLEN_CACHE``, ``BIORNN_ALLEN_DATA``, ``BIORNN_RETRAIN``, ``BIORNN_MALLOC``) and
defines :data:`ROOT`. The readers of the mode (:func:`get_mode`, :func:`start`), of ``retrain`` (:func:`want_retrain`)
and of the figures folder (:func:`figures_dir`) are for entry points only: the command line (:mod:`biornn.cli`
resolves them once and passes them down), ``benchmarks/run.py`` and a notebook's first code cell
(``MODE = get_mode()``, ``RETRAIN = want_retrain()``, ``FIGURES = figures_dir()``). Library functions take ``mode``
(default ``quick``), ``retrain`` (default False) and the folder as arguments and check a mode with
:func:`check_mode`; ``tests/test_structure.py`` fails on any other environment read.

``BIORNN_MODE`` selects how big the experiments are:

* ``quick`` (default): small sizes that run in seconds on a laptop CPU; used by the tests and CI.
* ``paper``: the paper's epochs, runs and sizes. Paper-mode results are cached under ``data/results/``
  so figure cells rerun in seconds.
"""

from __future__ import annotations

import ctypes
import os
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np

from biornn.core.errors import BiornnError

MODES = ("quick", "paper")

#: The repository root (``data/``, ``figures/`` and ``docs/`` live here).
ROOT = Path(__file__).resolve().parents[2]  # biornn/core/config.py -> the repository
#: Where cached runs live: ``$BIORNN_RESULTS`` or ``data/results`` (read once, at import).
RESULTS_DIR = Path(os.environ.get("BIORNN_RESULTS", ROOT / "data" / "results"))
#: Where curated Allen datasets are cached: ``$BIORNN_ALLEN_DATA`` or ``data/allen`` (read once, at import).
DATASETS_DIR = Path(os.environ.get("BIORNN_ALLEN_DATA", ROOT / "data" / "allen"))
#: Environment variable naming a real AllenSDK cache folder (used by the notebooks).
ALLEN_CACHE_ENV = "BIORNN_ALLEN_CACHE"


#: Where :func:`biornn.plotting.style.save_figure` writes unless told otherwise: ``figures/``.
FIGURES_DIR = ROOT / "figures"


def figures_dir() -> Path:
    """For entry points only: where figures are saved, ``$BIORNN_FIGURES`` (read at each call) or ``figures/``."""
    return Path(os.environ.get("BIORNN_FIGURES", FIGURES_DIR))


def allen_cache_dir() -> str | None:
    """``$BIORNN_ALLEN_CACHE`` (a real AllenSDK cache folder), or None when unset."""
    return os.environ.get(ALLEN_CACHE_ENV)


def progress_enabled() -> bool:
    """False when ``$BIORNN_PROGRESS`` is ``0`` (no progress bars), else True."""
    return os.environ.get("BIORNN_PROGRESS", "1") != "0"


def retrain_requested() -> bool:
    """``$BIORNN_RETRAIN`` is ``1``/``true``/``yes``."""
    return os.environ.get("BIORNN_RETRAIN", "0").lower() in ("1", "true", "yes")


def get_mode(mode: str | None = None) -> str:
    """For entry points only: the run mode, ``mode`` if given, else ``$BIORNN_MODE``, else ``"quick"``."""
    value = mode if mode is not None else os.environ.get("BIORNN_MODE", "quick")
    value = value.strip().lower()
    if value not in MODES:
        raise BiornnError(f"unknown mode {value!r}; set BIORNN_MODE to one of {', '.join(MODES)}")
    return value


def check_mode(mode: str) -> str:
    """``mode`` (``quick`` or ``paper``) checked, for library functions; never reads the environment."""
    if not isinstance(mode, str) or mode.strip().lower() not in MODES:
        raise BiornnError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    return mode.strip().lower()


def want_retrain(retrain: bool | None = None) -> bool:
    """For entry points only: ``retrain`` if given, else ``$BIORNN_RETRAIN`` (``1``/``true``/``yes``)."""
    if retrain is not None:
        return bool(retrain)
    return retrain_requested()


def start(mode: str | None = None) -> str:
    """What an entry point (the command line, a notebook's first cell, a benchmark) does once, before any work.

    Resolves the run mode once (``mode`` if given, else ``$BIORNN_MODE``, else ``quick``) and tunes the C allocator
    for large CPU tensors (:func:`tune_allocator`). ``import biornn`` changes no process state; library functions
    take the mode as an argument.

    Returns:
        The run mode (``quick`` or ``paper``).
    """
    tune_allocator()
    return get_mode(mode)


def get_device(device: str | None = None):
    """Return a ``torch.device``: ``device`` if given, else CUDA when present, else CPU."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise BiornnError(f"unknown device {device!r}; use cpu, cuda or auto")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BiornnError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return torch.device(device)


def derive_seed(seed: int, *stream: str | int) -> int:
    """A 63-bit seed for one random stream of one run, independent of processing order.

    Args:
        seed: the run's seed (the user-facing number).
        *stream: names of the stream, e.g. ``("data", "flipflop")`` or ``("init",)``.

    Returns:
        An integer suitable for ``torch.Generator.manual_seed`` and ``np.random.default_rng``.
    """
    keys = [int(seed) & 0xFFFFFFFF]
    for part in stream:
        keys.append(zlib.crc32(str(part).encode()) if isinstance(part, str) else int(part) & 0xFFFFFFFF)
    return int(np.random.SeedSequence(keys).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def parse_seeds(text: str | list[int] | tuple[int, ...]) -> list[int]:
    """Parse ``"0,1,2"`` or ``"0-4"`` (or a list) into a list of distinct non-negative seeds."""
    if isinstance(text, (list, tuple)):
        seeds = [int(s) for s in text]
    else:
        seeds = []
        for part in str(text).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                if "-" in part[1:]:
                    lo, hi = part.split("-", 1)
                    seeds.extend(range(int(lo), int(hi) + 1))
                else:
                    seeds.append(int(part))
            except ValueError:
                raise BiornnError(f"bad seed {part!r}; give seeds as 0,1,2 or 0-4") from None
    if not seeds:
        raise BiornnError("no seeds given; pass at least one, e.g. --seeds 0,1,2")
    if any(s < 0 for s in seeds):
        raise BiornnError(f"negative seed in {seeds}; seeds must be >= 0")
    if len(set(seeds)) != len(seeds):
        raise BiornnError(f"repeated seed in {seeds}; give each seed once")
    return seeds


#: ``BIORNN_MALLOC`` values: ``heap`` (default) keeps large CPU tensors in the process heap, ``system`` leaves the C
#: library's allocator as it is.
MALLOC_CHOICES = ("heap", "system")
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters (malloc.h)


def tune_allocator() -> bool:
    """Keep large CPU tensors in the heap, so their pages are not faulted in again on every allocation.

    glibc serves every allocation above 32 MB with a fresh ``mmap`` and returns it on ``free``; a training batch
    allocates several such tensors (a wave batch's ``(5, 500, 100, 128)`` activations are 128 MB), and faulting their
    pages in each time cost more than the arithmetic on them (on this project's 2-core machine, one Dale's wave batch:
    1.28 s with the default, 0.80 s with this; ``docs/speed.md``). This turns ``mmap`` off for malloc and raises the
    trim threshold to 1 GB: freed memory stays in the process for the next batch. Numbers do not change. Called
    once by :func:`start` (the entry points, not ``import biornn``); ``BIORNN_MALLOC=system`` turns it off (an
    unknown value warns and does the same). A no-op outside Linux with glibc.

    Limits: it acts on the main thread's heap (PyTorch's CPU training runs there); a thread's own arena still maps
    allocations above 64 MB. Memory freed below the top of the heap stays with the process, so its resident size
    stays near its peak until it exits.

    Returns:
        True when the allocator was tuned.
    """
    choice = os.environ.get("BIORNN_MALLOC", "heap")
    if choice not in MALLOC_CHOICES:  # a speed setting: warn and keep the system's allocator, do not stop the import
        warnings.warn(f"BIORNN_MALLOC={choice!r} is not heap or system; leaving the allocator as it is", stacklevel=2)
        return False
    if choice == "system" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 ** 30))
