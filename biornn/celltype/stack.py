"""Several conditions' runs trained as one model batch (for the GPU, where kernel launches set the time).

A stack is a list of configurations that differ only in their condition (same variant, window, sizes, seeds and
budget). :func:`train_celltype_stack` lays their runs side by side as the members of one batched network, condition
after condition (``C x S`` members), each member with its own condition's data stream, and trains them with
:func:`biornn.celltype.train_celltype` in one pass: one kernel launch per step for all conditions instead of one per
condition. It then cuts the result back into one :class:`~biornn.celltype.training.CelltypeResult` per condition,
with that condition's configuration and data record, as if it had been trained alone.

Why that equals training alone: every per-run quantity is derived from the run's seed (initial weights, sample
order, pruning draws), members never mix (per-member matmuls, per-member losses summed, elementwise Adam and
projections) and the evaluation chunks are sized for one condition's seed count. ``tests/test_celltype_stack.py``
checks the numbers are those of lone runs (CPU, two conditions of two seeds). It is meant for CUDA (``python -m
biornn compare queue --stack``, ``benchmarks/gpu.sh`` stage ``fig4stack``); its speed has not been measured yet. On 2
CPU cores a bigger Figure 2 batch measured no faster (``docs/speed.md``), so the CPU queue trains one condition at a
time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from biornn.celltype.config import CelltypeConfig
from biornn.celltype.data import CelltypeData, prepare_data
from biornn.celltype.training import CelltypeResult, save_celltype, train_celltype
from biornn.core.errors import BiornnError

#: Arrays of a run that are shared by its members (not cut per condition).
SHARED_ARRAYS = ("signs", "population", "population_index", "target_density")


def check_stack(configs: Sequence[CelltypeConfig]) -> None:
    """One-line error unless ``configs`` differ only in their (distinct) conditions."""
    if not configs:
        raise BiornnError("an empty stack: pass at least one configuration")
    base = {k: v for k, v in configs[0].to_dict().items() if k != "condition"}
    for c in configs[1:]:
        other = {k: v for k, v in c.to_dict().items() if k != "condition"}
        if other != base:
            diff = sorted(k for k in base if base[k] != other.get(k))
            raise BiornnError(f"stacked runs must differ only in their condition; {c.condition} differs in "
                              f"{', '.join(diff)}: train those separately")
    conditions = [c.condition for c in configs]
    if len(set(conditions)) != len(conditions):
        raise BiornnError(f"a condition appears twice in the stack ({', '.join(conditions)}); list each once")


def _per_member(a: np.ndarray, n_seeds: int) -> np.ndarray:
    """``(S, n, ...)`` per-run arrays as they are; shared ``(n, ...)`` arrays repeated for the ``S`` members."""
    return a if a.ndim == 4 else np.broadcast_to(a, (n_seeds, *a.shape))


def stack_data(configs: Sequence[CelltypeConfig], datasets: Sequence) -> tuple[CelltypeConfig, CelltypeData, list]:
    """The stack's configuration and arrays, and each condition's own prepared data.

    Returns:
        ``(config, data, parts)``: ``config`` is the first configuration with its seeds repeated once per condition;
        ``data`` holds ``(C S, n, T, .)`` training and held-out arrays, condition after condition; ``parts`` the
        conditions' own :class:`CelltypeData` (for their data records).
    """
    check_stack(configs)
    parts = [d if isinstance(d, CelltypeData) else prepare_data(d, c.window, c.condition, c)
             for c, d in zip(configs, datasets, strict=True)]
    for c, d in zip(configs, parts):
        if d.condition != c.condition:
            raise BiornnError(f"data hold condition {d.condition!r} but the stack lists {c.condition!r} there")
    scales = {None if d.scale is None else (tuple(d.scale[0]), tuple(d.scale[1])) for d in parts}
    if len(scales) > 1:
        raise BiornnError("the stacked conditions are standardised with different statistics; build them together "
                          "(pooled statistics) or train them one at a time")
    S = len(configs[0].seeds)
    arrays = {k: np.ascontiguousarray(np.concatenate([_per_member(getattr(d, k), S) for d in parts]))
              for k in ("x", "y", "hx", "hy")}
    sha = hashlib.sha256("".join(d.sha256 for d in parts).encode()).hexdigest()
    data = dataclasses.replace(parts[0], **arrays, sha256=sha)
    # the members' seeds, condition after condition: each seed appears once per condition, which a configuration
    # of one run refuses (it would train a seed twice), so the stack's copy is given its seeds past the check
    config = dataclasses.replace(configs[0])
    object.__setattr__(config, "seeds", tuple(configs[0].seeds) * len(configs))
    return config, data, parts


def split_result(result: CelltypeResult, configs: Sequence[CelltypeConfig], parts: Sequence[CelltypeData],
                 n_available: Sequence[int]) -> list[CelltypeResult]:
    """Cut a stack's result into one result per condition (members ``i S .. (i + 1) S - 1`` are condition ``i``)."""
    S, out = len(configs[0].seeds), []
    for i, (config, data) in enumerate(zip(configs, parts)):
        cut = slice(i * S, (i + 1) * S)
        arrays = {k: (v if k in SHARED_ARRAYS else v[cut]) for k, v in result.arrays.items()}
        info = {**data.info(), "n_train": int(result.data["n_train"]), "n_available": int(n_available[i])}
        out.append(CelltypeResult(config, result.device, result.runs[cut], arrays, info, result.wall_seconds,
                                  kernels=result.kernels))
    return out


def train_celltype_stack(configs: Sequence[CelltypeConfig], datasets: Sequence, device: str | None = None,
                         outs: Sequence[str | os.PathLike] | None = None, stack_dir: str | os.PathLike | None = None,
                         progress: bool = True, kernels: str = "auto") -> list[CelltypeResult]:
    """Train the runs of several conditions in one pass (module docstring); one result per condition.

    Args:
        configs: the conditions' configurations (identical apart from the condition).
        datasets: their datasets (:class:`biornn.data.curate.Dataset` or prepared :class:`CelltypeData`), same order.
        device: ``cpu``, ``cuda`` or None (CUDA when present).
        outs: optional run folder per condition; each gets ``metrics.json`` and ``weights.npz`` exactly as a lone
            run writes them (:func:`~biornn.celltype.training.save_celltype`).
        stack_dir: folder for the stack's checkpoints (an interrupted stack resumes from there); None: no
            checkpoints.
        progress: progress bars over epochs.
        kernels: as for :func:`~biornn.celltype.train_celltype`.

    Returns:
        One :class:`~biornn.celltype.training.CelltypeResult` per condition, in the order of ``configs``;
        ``wall_seconds`` is the stack's.
    """
    if outs is not None and len(outs) != len(configs):
        raise BiornnError(f"{len(outs)} run folders for {len(configs)} stacked conditions; pass one per condition")
    t0 = time.perf_counter()
    config, data, parts = stack_data(configs, datasets)
    n_available = [int(d.x.shape[-3]) for d in parts]
    result = train_celltype(config, data, device=device, out=stack_dir, progress=progress, kernels=kernels,
                            seeds_per_chunk=len(configs[0].seeds))
    results = split_result(result, configs, parts, n_available)
    for r in results:
        r.wall_seconds = time.perf_counter() - t0
    for r, out in zip(results, outs or []):
        save_celltype(r, out)
        r.directory = Path(out)
    return results
