"""Sweeps beyond one machine: independent Figure 2 runs sent to a SLURM cluster (or run locally) with submitit.

A sweep is a list of jobs, one per (task, rule, seed block); each job trains its block with
:func:`biornn.nn.runs.cached_train` and writes it into the results cache exactly as a local run does (same key, same
files; blocks read back as one run with :func:`biornn.nn.runs.cached_seeds`). Before anything is submitted, jobs whose
block is already cached are dropped, so a stopped sweep, started again, runs only what is missing.

Executors: ``slurm`` (a cluster; submitit writes the batch scripts and logs into ``--folder``), ``local``
(subprocesses on this machine, submitit's local executor) and ``debug`` (in this process, for tests and debugging).

Example (a cluster with a GPU partition)::

    python -m biornn sweep --tasks wave --methods conventional,dales --seeds 0-19 --seed-block 5 \\
        --executor slurm --partition gpu --gpus 1 --timeout-min 60
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import submitit

from biornn.core.config import RESULTS_DIR, check_mode, parse_seeds
from biornn.core.errors import BiornnError
from biornn.experiments.fig2 import add_data_options, data_overrides
from biornn.nn.constraints import METHODS
from biornn.nn.runs import SEED_BLOCK, cached_train, find_cached, seed_blocks
from biornn.nn.tasks import TASKS
from biornn.nn.train import TrainConfig, fig2_config

#: submitit executors biornn can use.
EXECUTORS = ("slurm", "local", "debug")


def sweep_configs(tasks: Sequence[str], methods: Sequence[str], seeds, block: int = SEED_BLOCK,
                  mode: str = "quick", **overrides) -> list[TrainConfig]:
    """One :class:`~biornn.nn.train.TrainConfig` per (task, rule, seed block), in that order."""
    for m in methods:
        if m not in METHODS:
            raise BiornnError(f"unknown method {m!r}; use {', '.join(METHODS)}")
    for t in tasks:
        if t not in TASKS:
            raise BiornnError(f"unknown task {t!r}; use {', '.join(TASKS)}")
    return [fig2_config(t, m, mode, seeds=b, **overrides) for t in tasks for m in methods
            for b in seed_blocks(seeds, block)]


def pending(configs: Sequence[TrainConfig], root: str | os.PathLike | None = None) -> list[TrainConfig]:
    """The configs whose run is not cached yet (under ``root``, default ``data/results``)."""
    return [c for c in configs if find_cached(c, root) is None]


def train_block(config: dict, root: str | None = None, device: str | None = None) -> str:
    """The job: train one block and store it in the cache; returns the run folder (runs on the worker)."""
    run = cached_train(TrainConfig.from_dict(config), root=root, device=device, progress=False)
    return str(run.directory)


def make_executor(kind: str, folder: str | os.PathLike, **slurm):
    """A submitit executor of ``kind`` (:data:`EXECUTORS`) logging into ``folder``.

    ``slurm`` takes ``partition``, ``gpus`` (per node), ``cpus`` (per task) and ``timeout_min``.
    """
    if kind not in EXECUTORS:
        raise BiornnError(f"unknown executor {kind!r}; use one of {', '.join(EXECUTORS)}")
    if kind == "debug":
        return submitit.DebugExecutor(folder=folder)
    if kind == "local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=int(slurm.get("timeout_min") or 60))
        return ex
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params = {"timeout_min": int(slurm.get("timeout_min") or 60), "cpus_per_task": int(slurm.get("cpus") or 2)}
    if slurm.get("partition"):
        params["slurm_partition"] = slurm["partition"]
    if slurm.get("gpus"):
        params["gpus_per_node"] = int(slurm["gpus"])
    ex.update_parameters(**params)
    return ex


def run_sweep(configs: Sequence[TrainConfig], executor, root: str | os.PathLike | None = None,
              device: str | None = None, wait: bool = True) -> list[str]:
    """Submit one job per missing block to ``executor``; with ``wait``, return the run folders they wrote.

    Jobs already cached are not submitted. Without ``wait`` the job ids are returned (their results land in the
    cache as they finish; run the same sweep again later to see what is left).
    """
    todo = pending(configs, root)
    if not todo:
        return []
    root_s = None if root is None else str(root)
    jobs = executor.map_array(train_block, [c.to_dict() for c in todo], [root_s] * len(todo), [device] * len(todo))
    if not wait:
        return [j.job_id for j in jobs]
    return [j.result() for j in jobs]


def register_cli(sub) -> None:
    """Add ``sweep`` to the command line."""
    p = sub.add_parser("sweep", help="send independent Figure 2 runs (task x rule x seed block) to SLURM or run "
                                     "them locally (submitit); cached blocks are skipped")
    p.add_argument("--tasks", default="flipflop,wave")
    p.add_argument("--methods", default="conventional,dales")
    p.add_argument("--seeds", default="0-19", help="e.g. 0-19")
    p.add_argument("--seed-block", type=int, default=SEED_BLOCK, help="seeds per job (default 10)")
    p.add_argument("--mode", choices=("quick", "paper"), default="paper")
    p.add_argument("--executor", choices=EXECUTORS, default="local")
    p.add_argument("--folder", default="data/runs/sweep-logs", help="submitit scripts and logs")
    p.add_argument("--partition", default=None, help="SLURM partition")
    p.add_argument("--gpus", type=int, default=None, help="GPUs per node (SLURM)")
    p.add_argument("--cpus", type=int, default=2, help="CPUs per task (SLURM)")
    p.add_argument("--timeout-min", type=int, default=60)
    p.add_argument("--device", default="auto", help="training device on the worker")
    p.add_argument("--dry-run", action="store_true", help="list the jobs that would be submitted and stop")
    p.add_argument("--no-wait", action="store_true", help="submit and return (run again later to collect)")
    add_data_options(p)
    p.set_defaults(func=_cmd_sweep)


def _cmd_sweep(args) -> int:
    configs = sweep_configs(args.tasks.split(","), args.methods.split(","), parse_seeds(args.seeds),
                            args.seed_block, check_mode(args.mode), **data_overrides(args))
    todo = pending(configs)
    print(f"{len(configs)} blocks, {len(configs) - len(todo)} already cached in {RESULTS_DIR}, {len(todo)} to run")
    for c in todo:
        print(f"  {c.task}/{c.method} seeds {c.seeds[0]}-{c.seeds[-1]}")
    if args.dry_run or not todo:
        return 0
    ex = make_executor(args.executor, Path(args.folder), partition=args.partition, gpus=args.gpus, cpus=args.cpus,
                       timeout_min=args.timeout_min)
    out = run_sweep(todo, ex, device=args.device, wait=not args.no_wait)
    print("\n".join(out))
    return 0
