"""Run modes, devices and seeds: the few settings every experiment shares.

``BIORNN_MODE`` selects how big the experiments are:

* ``quick`` (default): small sizes that run in seconds on a laptop CPU; used by the tests and CI.
* ``paper``: the paper's epochs, runs and sizes. Paper-mode results are cached under ``data/results/``
  so figure cells rerun in seconds.
"""

from __future__ import annotations

import os
import zlib

import numpy as np

from biornn.errors import BiornnError

MODES = ("quick", "paper")


def get_mode(mode: str | None = None) -> str:
    """Return the run mode: ``mode`` if given, else ``$BIORNN_MODE``, else ``"quick"``."""
    value = mode if mode is not None else os.environ.get("BIORNN_MODE", "quick")
    value = value.strip().lower()
    if value not in MODES:
        raise BiornnError(f"unknown mode {value!r}; set BIORNN_MODE to one of {', '.join(MODES)}")
    return value


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
