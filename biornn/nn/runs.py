"""The run cache around :func:`biornn.nn.train.train`: stored runs, cached training (one run, several, seed blocks).

Runs live in ``data/results/<experiment>/<task>-<method>-<key>/`` (:mod:`biornn.core.store`); Figure 2, Figure 3
and the sweeps read and write them through this module. ``retrain=True`` trains again."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from biornn.core.config import get_device
from biornn.core.errors import BiornnError
from biornn.core.store import load_run, run_dir, save_train_result
from biornn.nn.train import TrainConfig, train, train_mixed


class StoredRun:
    """A trained run read back from disk; offers the same accessors as :class:`biornn.nn.train.TrainResult`."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.metrics, self.weights = load_run(self.directory)
        self.runs = self.metrics["runs"]
        self.device = self.metrics.get("device", "?")
        self.data_label = self.metrics.get("data_label", "")
        self.dataset = self.metrics.get("dataset", {})
        self.provenance = self.metrics.get("provenance", {})
        self.wall_seconds = self.provenance.get("wall_seconds", float("nan"))
        self.info = {"params": self.metrics.get("task_params")}
        if "wave_signals" in self.weights:
            self.info["signals"] = self.weights["wave_signals"]

    @property
    def config(self):
        return TrainConfig.from_dict(self.metrics["config"])

    def curve(self, key: str) -> np.ndarray:
        return np.array([r[key] for r in self.runs], dtype=float)


def cached_train(config, retrain: bool = False, root: str | os.PathLike | None = None, device=None,
                 progress: bool = True, experiment: str = "fig2", computed=None):
    """Return the stored run of ``config`` if the cache has it, else train, store and return it.

    ``computed``: this config's :class:`~biornn.nn.train.TrainResult` already at hand (a member of a mixed batch),
    stored instead of training when the cache lacks it.

    Args:
        config: a :class:`biornn.nn.train.TrainConfig`.
        experiment: cache sub-folder (``fig2``, ``fig3``, ...).
        retrain: train even if cached (default False).
        root: cache root (default ``data/results``).
        device: training device (default CUDA when present).
        progress: progress bar while training.
    """
    directory = run_dir(experiment, f"{config.task}-{config.method}", config.to_dict(), root)
    if directory.exists() and not retrain:
        stored = StoredRun(directory)
        if stored.metrics["config"] != config.to_dict():
            raise BiornnError(f"cache {directory} holds a different configuration; delete it and train again")
        return stored
    result = computed if computed is not None else train(config, device=device, progress=progress)
    save_train_result(result, directory)
    return StoredRun(directory)


#: How :func:`cached_train_many` groups runs: ``figure`` trains every missing rule of a task in one mixed batch
#: (:func:`biornn.nn.train.train_mixed`; what a GPU wants), ``rule`` one rule at a time (on 2 CPU cores a larger batch
#: measured no faster, benchmarks/README.md), ``auto`` = ``figure`` on CUDA, ``rule`` on the CPU.
BATCHING = ("auto", "figure", "rule")


def resolve_batching(batch: str, device=None) -> str:
    """``figure`` or ``rule`` for ``batch`` (one of :data:`BATCHING`) on ``device``."""
    if batch not in BATCHING:
        raise BiornnError(f"unknown batching {batch!r}; use one of {', '.join(BATCHING)}")
    if batch == "auto":
        return "figure" if get_device(device).type == "cuda" else "rule"
    return batch


def cached_train_many(configs, retrain: bool = False, device=None, batch: str = "auto",
                      progress: bool = True, experiment: str = "fig2",
                      root: str | os.PathLike | None = None) -> list[StoredRun]:
    """:func:`cached_train` for several runs of one task: the missing ones trained together or one by one.

    Each run lands in the cache exactly where :func:`cached_train` puts it (same key, same files), whichever
    batching trained it; a mixed batch gives every member the numbers it gets alone (``tests/test_mixed_batch.py``).

    Args:
        configs: :class:`biornn.nn.train.TrainConfig` of one task, sizes and option set (rules and seeds may differ).
        retrain: train even if cached (default False).
        device: training device (default CUDA when present).
        batch: one of :data:`BATCHING`.
        progress: progress bars while training.
        experiment: cache sub-folder.
        root: cache root (default ``data/results``).

    Returns:
        One :class:`StoredRun` per config, in order.
    """
    configs, done = list(configs), {}
    if resolve_batching(batch, device) == "figure":
        todo = [i for i, c in enumerate(configs) if retrain
                or not run_dir(experiment, f"{c.task}-{c.method}", c.to_dict(), root).exists()]
        if len(todo) > 1:
            done = dict(zip(todo, train_mixed([configs[i] for i in todo], device=device, progress=progress)))
    return [cached_train(c, retrain, root, device, progress, experiment, computed=done.get(i))
            for i, c in enumerate(configs)]



#: Seeds per cached block when a many-seed run is trained in blocks (``reproduce-fig2 --seed-block``).
SEED_BLOCK = 10


RUN_FOLDERS = ("fig2", "fig3")


def find_cached(config: TrainConfig, root: str | os.PathLike | None = None) -> Path | None:
    """The cached run of exactly ``config`` in any of :data:`RUN_FOLDERS`, or None."""
    for folder in RUN_FOLDERS:
        directory = run_dir(folder, f"{config.task}-{config.method}", config.to_dict(), root)
        if directory.exists():
            return directory
    return None


def seed_blocks(seeds, block: int) -> list[tuple[int, ...]]:
    """``seeds`` cut into consecutive blocks of ``block``; the last may be shorter, but never a single seed (a
    one-seed batch rounds differently), so a trailing single seed joins the block before it."""
    if block < 2:
        raise BiornnError(f"seed block {block} is too small; use >= 2 (a one-seed batch rounds differently)")
    seeds = tuple(seeds)
    blocks = [seeds[i:i + block] for i in range(0, len(seeds), block)]
    if len(blocks) > 1 and len(blocks[-1]) == 1:
        blocks[-2:] = [blocks[-2] + blocks[-1]]
    return blocks


class SeedBlockRun:
    """Runs of consecutive seed blocks read as one run (the accessors of :class:`StoredRun`).

    On the CPU a seed's weights do not depend on which other seeds share its batch (batches of >= 2;
    ``tests/test_mixed_batch.py``), so blocks of 10 give the weights one 20-seed batch gives; held-out losses can
    differ in the last float32 bits where the test set is evaluated in chunks (their size follows the batch's seed
    count, :func:`biornn.nn.train.evaluate`).
    """

    def __init__(self, parts: list):
        self.parts = parts
        self.directory = [p.directory for p in parts]
        self.runs = [r for p in parts for r in p.runs]
        self.data_label = parts[0].data_label
        self.dataset = parts[0].dataset
        self.device = parts[0].device
        self.wall_seconds = float(sum(p.wall_seconds for p in parts))
        seeds = tuple(s for p in parts for s in p.config.seeds)
        self.config = TrainConfig.from_dict({**parts[0].config.to_dict(), "seeds": seeds})
        self.weights = {k: v if k == "signs" else np.concatenate([p.weights[k] for p in parts])
                        for k, v in parts[0].weights.items()}
        params = [p.info.get("params") for p in parts]
        self.info = {"params": None if None in params else [x for q in params for x in q]}
        if "wave_signals" in self.weights:
            self.info["signals"] = self.weights["wave_signals"]

    def curve(self, key: str) -> np.ndarray:
        return np.array([r[key] for r in self.runs], dtype=float)


def cached_seeds(config: TrainConfig, block: int = SEED_BLOCK, retrain: bool = False, device=None,
                 root: str | os.PathLike | None = None):
    """The run of ``config``: cached whole, or assembled from cached blocks of ``block`` seeds (trained if missing).

    A stopped many-seed training restarts at the first missing block; each block is stored exactly as
    :func:`cached_train` stores a run with those seeds.
    """
    if not retrain:
        whole = find_cached(config, root)
        if whole is not None:
            return StoredRun(whole)
    parts = []
    for seeds in seed_blocks(config.seeds, block):
        part = TrainConfig.from_dict({**config.to_dict(), "seeds": seeds})
        found = None if retrain else find_cached(part, root)
        parts.append(StoredRun(found) if found else cached_train(part, retrain=retrain, root=root, device=device))
    return parts[0] if len(parts) == 1 else SeedBlockRun(parts)



def lookup_seeds(config: TrainConfig, block: int = SEED_BLOCK, root: str | os.PathLike | None = None,
                 partial: bool = False):
    """The run of ``config`` from the cache only (whole, or assembled from blocks of ``block`` seeds), or None.

    ``partial``: assemble whichever blocks are cached (fewer seeds) instead of returning None when one is missing.
    """
    whole = find_cached(config, root)
    if whole is not None:
        return StoredRun(whole)
    parts = [find_cached(TrainConfig.from_dict({**config.to_dict(), "seeds": seeds}), root)
             for seeds in seed_blocks(config.seeds, block)]
    if partial:
        parts = [p for p in parts if p is not None]
    if not parts or any(p is None for p in parts):
        return None
    return StoredRun(parts[0]) if len(parts) == 1 else SeedBlockRun([StoredRun(p) for p in parts])




