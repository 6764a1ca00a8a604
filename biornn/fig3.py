"""The Figure 3 experiment: prune trained Dale's networks across a sweep of densities and compare the methods.

Dale's-backprop networks are trained per task (paper mode: 10 seeds, the Fig 2 paper sizes; :func:`dense_runs`),
pruned once per (seed, level, method, draw) from their final weights with :mod:`biornn.pruning` and evaluated on each
seed's full held-out test set without retraining (:func:`sweep_errors`); at one level (p = 0.0862) they are also
retrained with the mask fixed (:func:`retrain_pruned`; paper sections 5 and 9). Paper-mode results are cached under
``data/results/fig3/`` (:func:`cached_sweep`, :func:`cached_retrain`, :func:`fig3_results`).

Also here: the spanning-tree overlap curves of panel A (:func:`mst_overlap_curves`), the statistics tables
(:func:`level_table`, :func:`side_by_side`, :func:`effects_table`, built on :mod:`biornn.stats`) and the ``prune``
and ``reproduce-fig3`` commands.

The pruning algorithms themselves (top-prob, random, block-wise masks, spanning-tree bounds) live in
:mod:`biornn.pruning`. Facts: ``docs/paper/fig3-topprob-pruning.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from biornn.config import RESULTS_DIR, derive_seed, get_device, get_mode
from biornn.constraints import sign_violations
from biornn.errors import BiornnError
from biornn.fig2 import cached_train
from biornn.progress import progress as progress_bar
from biornn.pruning import (
    ELIGIBILITY,
    METHODS,
    REDISTRIBUTION,
    _as_weights,
    _check_choice,
    _check_density,
    keep_budget,
    mask_stats,
    max_spanning_tree_edges,
    overlap_lower_bound,
    prune,
    random_probabilities,
    reference_lower_bound,
    reference_random_expectation,
    topprob_probabilities,
)
from biornn.stats import PAIRED_TESTS, paired_effects, pruning_comparison, reference_aggregation
from biornn.store import atomic_write_bytes, load_run, provenance, run_dir, save_run, want_retrain
from biornn.train import build_data, build_model, evaluate, fig2_config, load_weights, train

#: The tasks of Figure 3 (``digits`` is the sklearn 8x8 stand-in for sequential MNIST; see :mod:`biornn.tasks`).
FIG3_TASKS = ("flipflop", "wave", "digits")
#: The paper's sweep of connection probabilities: ``{0} ∪ linspace(0.01, 1, 14)`` (15 levels, §5.3).
SWEEP = np.r_[0.0, np.linspace(0.01, 1.0, 14)]
#: Level of the masked-retraining experiment: ``SWEEP[2] = 0.0862`` (s = 0.914, "~90 % sparse", §5.2).
RETRAIN_DENSITY = float(SWEEP[2])
#: Sparsities of the spanning-tree panel (§5.3).
MST_SPARSITIES = np.linspace(0.0, 1.0, 21)
#: Seeds of the dense networks: paper mode needs >= 10 (an exact paired test on 5 seeds cannot reach p < 0.0625).
FIG3_SEEDS = {"paper": tuple(range(10)), "quick": (0, 1, 2)}
#: Mask draws per (seed, level, method) (§9.2: K >= 10); quick mode uses fewer.
FIG3_DRAWS = {"paper": 10, "quick": 2}
#: Dense training epochs in quick mode (the Fig 2 quick sizes, trained longer so flip-flop is learned at all).
QUICK_DENSE_EPOCHS = {"flipflop": 40, "wave": 25, "digits": 30, "mnist": 2}
#: Masked-retraining epochs (§5.4: wave 10, flip-flop 40, sMNIST 25). The 8x8 digits stand-in uses sMNIST's 25
#: epochs, half its dense run's epochs as in the reference (50 dense : 25 retraining); that is 200 Adam steps.
RETRAIN_EPOCHS = {
    "paper": {"flipflop": 40, "wave": 10, "digits": 25, "mnist": 25},
    "quick": {"flipflop": 10, "wave": 5, "digits": 10, "mnist": 1},
}


def fig3_config(task: str, mode: str | None = None, **overrides):
    """The dense Dale's-backprop configuration of ``task`` for Figure 3.

    Paper mode: the Fig 2 paper sizes with seeds 0-9. Quick mode: the Fig 2 quick sizes with seeds 0-2 and
    :data:`QUICK_DENSE_EPOCHS`.

    Args:
        task: ``flipflop``, ``wave``, ``digits`` or ``mnist``.
        mode: ``quick`` or ``paper`` (default ``$BIORNN_MODE``).
        **overrides: any :class:`biornn.train.TrainConfig` field (e.g. ``seeds``, ``epochs``).

    Returns:
        A :class:`biornn.train.TrainConfig`.
    """

    mode = get_mode(mode)
    opts: dict = {"seeds": FIG3_SEEDS[mode]}
    if mode == "quick" and task in QUICK_DENSE_EPOCHS:
        opts["epochs"] = QUICK_DENSE_EPOCHS[task]
    opts.update(overrides)
    return fig2_config(task, "dales", mode, **opts)


def dense_runs(tasks: Sequence[str] = FIG3_TASKS, mode: str | None = None, retrain: bool | None = None,
               device: str | None = None, progress: bool = True, root=None, **overrides) -> dict:
    """The trained dense Dale's networks of Figure 3, one batched run per task.

    Paper mode reads (or trains and stores) ``data/results/fig3/<task>-dales-<key>/``; quick mode trains on the spot
    (seconds) and stores nothing.

    Args:
        tasks: tasks to return.
        mode: ``quick`` or ``paper`` (default ``$BIORNN_MODE``).
        retrain: train again even if cached (paper mode; default ``$BIORNN_RETRAIN``).
        device: training device (default CUDA when present).
        progress: progress bar while training.
        root: cache root (default ``data/results``).
        **overrides: passed to :func:`fig3_config`.

    Returns:
        ``{task: run}``; each run has ``config``, ``weights`` (``W_final`` ``(S, N, N)``, ...), ``runs`` and
        ``curve(key)`` (a :class:`biornn.results.StoredRun` or :class:`biornn.train.TrainResult`).
    """

    mode = get_mode(mode)
    out = {}
    for task in tasks:
        config = fig3_config(task, mode, **overrides)
        if mode == "paper":
            out[task] = cached_train(config, retrain=retrain, root=root, device=device, progress=progress,
                                     experiment="fig3")
        else:
            out[task] = train(config, device=device, progress=progress)
    return out


def default_draws(mode: str | None = None) -> int:
    """Mask draws per (seed, level, method): 10 in paper mode, 2 in quick mode (§9.2)."""

    return FIG3_DRAWS[get_mode(mode)]


class _Evaluator:
    """A run's trained model and held-out test set, to evaluate any recurrent matrices ``(S, N, N)`` quickly."""

    def __init__(self, run, data=None, device=None):

        self.config = run.config
        self.data = build_data(self.config) if data is None else data
        self.device = get_device(device)
        self.model = build_model(self.config, self.data).to(self.device)
        if self.model.parametrization != "direct":
            raise BiornnError(f"pruning needs a directly parametrised W_hh (Dale's backprop); run "
                              f"{self.config.method!r} uses Song's parametrisation")
        load_weights(self.model, run.weights)
        self.W = self.model.w_hh.detach().clone()  # (S, N, N) trained weights, on the device
        self.x = torch.from_numpy(self.data.x_test).to(self.device)
        self.y = torch.from_numpy(self.data.y_test).to(self.device)

    def __call__(self, W: torch.Tensor):
        """``(loss, accuracy)`` per seed ``(S,)`` with ``W_hh`` replaced by ``W`` (accuracy None for regression)."""

        with torch.no_grad():
            self.model.w_hh.copy_(W.to(self.model.w_hh.dtype))
        try:
            return evaluate(self.model, self.x, self.y, self.data.kind)
        finally:
            with torch.no_grad():
                self.model.w_hh.copy_(self.W)


@dataclasses.dataclass
class SweepResult:
    """Errors of one task's pruned networks across a sweep of connection probabilities (no retraining).

    Attributes:
        task: the task.
        data_label: the dataset label (printed on plots).
        seeds: the networks' seeds (``S``).
        levels: ``(L,)`` connection probabilities ``p``.
        methods: the pruning methods.
        draws: mask draws per (seed, level, method) ``K``.
        loss: ``{method: (S, L, K)}`` held-out loss of every pruned network (per-element MSE or cross-entropy).
        accuracy: ``{method: (S, L, K)}`` held-out accuracy in % (classification; empty for regression).
        nominal_density: ``{method: (S, L, K)}`` achieved ``|M| / N^2``.
        functional_density: ``{method: (S, L, K)}`` achieved ``nnz(M * W) / N^2``.
        budget: ``{method: (S, L)}`` expected kept count ``B`` per network.
        dense_loss, dense_accuracy: ``(S,)`` held-out loss (and accuracy) of the unpruned networks.
        options: the pruning options (``eligibility``, ``common_random_numbers``, ``first_draw``).
        wall_seconds: compute time.
    """

    task: str
    data_label: str
    seeds: tuple
    levels: np.ndarray
    methods: tuple
    draws: int
    loss: dict
    accuracy: dict
    nominal_density: dict
    functional_density: dict
    budget: dict
    dense_loss: np.ndarray
    dense_accuracy: np.ndarray | None
    options: dict
    wall_seconds: float = 0.0

    def errors(self, method: str, metric: str = "loss") -> np.ndarray:
        """``(S, L)`` errors of ``method`` averaged over the mask draws within each seed (``loss`` or ``accuracy``)."""
        table = self.loss if metric == "loss" else self.accuracy
        if method not in table:
            raise BiornnError(f"no {metric} for method {method!r} in the {self.task} sweep")
        return table[method].mean(axis=2)

    def key(self) -> dict:
        """What the cache key hashes (besides the dense run's configuration)."""
        return {"levels": [float(v) for v in self.levels], "methods": list(self.methods), "draws": self.draws,
                **self.options}


def sweep_errors(run, levels=SWEEP, methods: Sequence[str] = ("random", "topprob"), draws: int | None = None, *,
                 first_draw: int = 0, common_random_numbers: bool = False, eligibility: str = "default",
                 device: str | None = None, progress: bool = True, data=None) -> SweepResult:
    """Prune every network of ``run`` at every level and evaluate it on its own full held-out test set.

    For each (level, draw, method) one mask is drawn for all seeds at once (one stream per network, keyed by the
    network's seed, the method, the level and the draw index: :func:`prune`), ``W_hh`` of the batched model is
    replaced by the pruned stack and the whole test set is evaluated, vectorised over seeds. Only ``W_hh`` is pruned
    (inputs, biases and readouts stay as trained). A mask identical to one already evaluated at the same level (the
    empty mask at ``p = 0``, the full one at ``p = 1``, for every method and draw) reuses that evaluation.

    Args:
        run: a trained dense run (:func:`dense_runs`): ``config`` and ``weights`` with ``W_final`` ``(S, N, N)``.
        levels: ``(L,)`` connection probabilities (default :data:`SWEEP`).
        methods: pruning methods.
        draws: mask draws ``K`` per (seed, level, method) (default :func:`default_draws`).
        first_draw: index of the first draw (draws ``first_draw .. first_draw + K - 1``).
        common_random_numbers: one uniform matrix per (seed, draw) for all levels and methods (nested masks).
        eligibility: ``"default"`` (nonzero entries, functional density ``p``) or ``"as_published"``.
        device: evaluation device (default CUDA when present).
        progress: progress bar over levels.
        data: pre-built task data of ``run.config`` (default: rebuilt from the seeds).

    Returns:
        A :class:`SweepResult` with ``(S, L, K)`` arrays.
    """

    t0 = time.perf_counter()
    for m in methods:
        _check_choice(m, METHODS, "pruning method")
    _check_choice(eligibility, ELIGIBILITY, "eligibility")
    levels = np.asarray([_check_density(p, "level") for p in np.ravel(levels)], dtype=np.float64)
    K = default_draws() if draws is None else int(draws)
    if K < 1:
        raise BiornnError(f"draws must be >= 1, got {K}")
    ev = _Evaluator(run, data, device)
    seeds = [int(s) for s in ev.config.seeds]
    S, L = len(seeds), levels.size
    classification = ev.data.kind == "classification"
    W = ev.W
    shape = (S, L, K)
    loss = {m: np.zeros(shape) for m in methods}
    acc = {m: np.zeros(shape) for m in methods} if classification else {}
    nominal = {m: np.zeros(shape) for m in methods}
    functional = {m: np.zeros(shape) for m in methods}
    budget = {m: np.zeros((S, L)) for m in methods}
    dense_loss, dense_acc = ev(W)
    for j in progress_bar(range(L), L, f"{ev.config.task} sweep", progress):
        p = float(levels[j])
        seen: dict[bytes, tuple] = {}
        for m in methods:
            budget[m][:, j] = keep_budget(W, p, m, eligibility=eligibility).cpu().numpy()
        for k in range(K):
            for m in methods:
                W_pruned, mask, _ = prune(W, m, p, seeds, draw=first_draw + k,
                                          common_random_numbers=common_random_numbers, eligibility=eligibility)
                st = mask_stats(W, mask)
                nominal[m][:, j, k] = st["nominal_density"].cpu().numpy()
                functional[m][:, j, k] = st["functional_density"].cpu().numpy()
                digest = hashlib.sha1(mask.cpu().numpy().tobytes()).digest()
                if digest not in seen:
                    seen[digest] = ev(W_pruned)
                lo, ac = seen[digest]
                loss[m][:, j, k] = lo
                if classification:
                    acc[m][:, j, k] = ac
    return SweepResult(ev.config.task, ev.data.label, tuple(seeds), levels, tuple(methods), K, loss, acc, nominal,
                       functional, budget, np.asarray(dense_loss), None if dense_acc is None else np.asarray(dense_acc),
                       {"eligibility": eligibility, "common_random_numbers": bool(common_random_numbers),
                        "first_draw": int(first_draw)}, time.perf_counter() - t0)


@dataclasses.dataclass
class RetrainResult:
    """Masked retraining of one task's pruned networks (§5.4).

    Attributes:
        task, method: the task and the pruning method.
        density: the target connection probability of the mask.
        seeds: the networks' seeds (``S``).
        epochs: retraining epochs ``E``.
        test_loss: ``(S, E + 1)`` held-out loss; column 0 is the pruned network before retraining.
        train_loss: ``(S, E)`` mean training loss per epoch.
        test_accuracy: ``(S, E + 1)`` held-out accuracy in % (classification) or ``None``.
        dense_loss: ``(S,)`` held-out loss of the dense networks (the "original" line).
        nominal_density: ``(S,)`` achieved ``|M| / N^2``.
        mask: ``(S, N, N)`` Boolean keep mask.
        outside_mask: entries of the final ``W_hh`` outside the mask that are nonzero (must be 0).
        sign_violations: entries of the final ``W_hh`` with the wrong column sign (must be 0).
        W_final: ``(S, N, N)`` retrained ``W_hh`` (``None`` when read from the cache).
        options: ``draw``, ``eligibility``, ``common_random_numbers``.
        wall_seconds: compute time.
    """

    task: str
    method: str
    density: float
    seeds: tuple
    epochs: int
    test_loss: np.ndarray
    train_loss: np.ndarray
    test_accuracy: np.ndarray | None
    dense_loss: np.ndarray
    nominal_density: np.ndarray
    mask: np.ndarray
    outside_mask: int
    sign_violations: int
    W_final: np.ndarray | None = None
    options: dict = dataclasses.field(default_factory=dict)
    wall_seconds: float = 0.0

    def key(self) -> dict:
        """What the cache key hashes (besides the dense run's configuration)."""
        return {"method": self.method, "density": self.density, "epochs": self.epochs, **self.options}


def retrain_epochs(task: str, mode: str | None = None) -> int:
    """Masked-retraining epochs of ``task`` in ``mode`` (:data:`RETRAIN_EPOCHS`)."""

    return RETRAIN_EPOCHS[get_mode(mode)][task]


def retrain_pruned(run, method: str = "topprob", density: float = RETRAIN_DENSITY, epochs: int | None = None, *,
                   draw: int = 0, common_random_numbers: bool = False, eligibility: str = "default",
                   device: str | None = None, progress: bool = True, data=None) -> RetrainResult:
    """Prune every network of ``run`` once at ``density`` and retrain it with the mask fixed (§5.4, biornn's choice).

    The mask is the one :func:`sweep_errors` draws at the same level and draw index. Retraining starts from the
    trained network with ``W_hh`` pruned, with a fresh Adam on all parameters; before every step the ``W_hh``
    gradient is zeroed outside the mask (so Adam's moments of pruned entries stay 0), after every step Dale's
    projection and the mask are re-applied (:func:`biornn.train.train` with ``mask=``). The held-out loss is
    recorded before retraining and after every epoch.

    Args:
        run: a trained dense run (:func:`dense_runs`).
        method: ``"topprob"`` or ``"random"``.
        density: connection probability of the mask (default :data:`RETRAIN_DENSITY` = 0.0862).
        epochs: retraining epochs (default :func:`retrain_epochs` of the task in the current mode).
        draw, common_random_numbers, eligibility: mask options as in :func:`sweep_errors`.
        device: training device.
        progress: progress bar over epochs.
        data: pre-built task data of ``run.config``.

    Returns:
        A :class:`RetrainResult`; ``outside_mask`` and ``sign_violations`` are 0 by construction (checked here).
    """


    t0 = time.perf_counter()
    _check_choice(method, METHODS, "pruning method")
    ev = _Evaluator(run, data, device)
    config = ev.config
    epochs = retrain_epochs(config.task) if epochs is None else int(epochs)
    seeds = [int(s) for s in config.seeds]
    W_pruned, mask, achieved = prune(ev.W, method, density, seeds, draw=draw,
                                     common_random_numbers=common_random_numbers, eligibility=eligibility)
    loss0, acc0 = ev(W_pruned)
    dense_loss, _ = ev(ev.W)
    weights = dict(run.weights)
    weights["W_final"] = W_pruned.cpu().numpy()
    mask_np = mask.cpu().numpy()
    result = train(dataclasses.replace(config, epochs=epochs), device=device, progress=progress, data=ev.data,
                   init_weights=weights, mask=mask_np.astype(np.float32))
    W_after = np.asarray(result.weights["W_final"])
    outside = int(np.count_nonzero(W_after[~mask_np]))
    violations = sign_violations(torch.from_numpy(W_after), torch.from_numpy(np.asarray(result.weights["signs"])))
    if outside or violations:
        raise BiornnError(f"masked retraining broke its constraints: {outside} pruned synapses revived, "
                          f"{violations} sign violations")
    test_loss = np.column_stack([loss0, result.curve("test_loss")])
    test_acc = None if acc0 is None else np.column_stack([acc0, result.curve("test_accuracy")])
    return RetrainResult(config.task, method, float(density), tuple(seeds), epochs, test_loss,
                         result.curve("train_loss"), test_acc, np.asarray(dense_loss), achieved.cpu().numpy(),
                         mask_np, outside, violations, W_after,
                         {"draw": int(draw), "eligibility": eligibility,
                          "common_random_numbers": bool(common_random_numbers)},
                         time.perf_counter() - t0)


# -- the cache ---------------------------------------------------------------------------------------------------
def save_sweep(result: SweepResult, directory, dense_config: dict | None = None) -> Path:
    """Write a :class:`SweepResult` as ``metrics.json`` + ``weights.npz`` (with provenance) into ``directory``."""

    metrics = {"config": {"dense": dense_config, **result.key()}, "task": result.task,
               "data_label": result.data_label, "seeds": list(result.seeds),
               "runs": [{"seed": s, "dense_loss": float(result.dense_loss[i]),
                         **({} if result.dense_accuracy is None else
                            {"dense_accuracy": float(result.dense_accuracy[i])})}
                        for i, s in enumerate(result.seeds)],
               "provenance": provenance("-", result.wall_seconds)}
    arrays = {"levels": result.levels, "dense_loss": result.dense_loss}
    if result.dense_accuracy is not None:
        arrays["dense_accuracy"] = result.dense_accuracy
    for m in result.methods:
        for name in ("loss", "accuracy", "nominal_density", "functional_density", "budget"):
            table = getattr(result, name)
            if m in table:
                arrays[f"{name}_{m}"] = table[m]
    return save_run(directory, metrics, arrays)


def load_sweep(directory) -> SweepResult:
    """Read a :class:`SweepResult` written by :func:`save_sweep`."""

    metrics, arrays = load_run(directory, required=("levels", "dense_loss"))
    cfg = metrics["config"]
    methods = tuple(cfg["methods"])
    missing = [f"loss_{m}" for m in methods if f"loss_{m}" not in arrays]
    if missing:
        raise BiornnError(f"{directory}/weights.npz has no {', '.join(missing)}; delete it and run again")

    def table(name):
        return {m: arrays[f"{name}_{m}"] for m in methods if f"{name}_{m}" in arrays}

    return SweepResult(metrics["task"], metrics.get("data_label", ""), tuple(metrics["seeds"]), arrays["levels"],
                       methods, int(cfg["draws"]), table("loss"), table("accuracy"), table("nominal_density"),
                       table("functional_density"), table("budget"), arrays["dense_loss"],
                       arrays.get("dense_accuracy"),
                       {k: cfg[k] for k in ("eligibility", "common_random_numbers", "first_draw")},
                       float(metrics.get("provenance", {}).get("wall_seconds", float("nan"))))


def save_retrain(result: RetrainResult, directory, dense_config: dict | None = None) -> Path:
    """Write a :class:`RetrainResult` (curves, mask, checks; not the retrained weights) into ``directory``."""

    metrics = {"config": {"dense": dense_config, **result.key()}, "task": result.task, "seeds": list(result.seeds),
               "runs": [{"seed": s} for s in result.seeds], "outside_mask": result.outside_mask,
               "sign_violations": result.sign_violations, "provenance": provenance("-", result.wall_seconds)}
    arrays = {"test_loss": result.test_loss, "train_loss": result.train_loss, "dense_loss": result.dense_loss,
              "nominal_density": result.nominal_density, "mask": result.mask}
    if result.test_accuracy is not None:
        arrays["test_accuracy"] = result.test_accuracy
    return save_run(directory, metrics, arrays)


def load_retrain(directory) -> RetrainResult:
    """Read a :class:`RetrainResult` written by :func:`save_retrain` (``W_final`` is ``None``)."""

    metrics, a = load_run(directory, required=("test_loss", "train_loss", "dense_loss", "mask"))
    cfg = metrics["config"]
    return RetrainResult(metrics["task"], cfg["method"], float(cfg["density"]), tuple(metrics["seeds"]),
                         int(cfg["epochs"]), a["test_loss"], a["train_loss"], a.get("test_accuracy"),
                         a["dense_loss"], a["nominal_density"], a["mask"].astype(bool), int(metrics["outside_mask"]),
                         int(metrics["sign_violations"]), None,
                         {k: cfg[k] for k in ("draw", "eligibility", "common_random_numbers")},
                         float(metrics.get("provenance", {}).get("wall_seconds", float("nan"))))


def _cached(kind: str, run, key: dict, compute, save, load, retrain, root):

    dense = run.config.to_dict()
    directory = run_dir("fig3", f"{run.config.task}-{kind}", {"dense": dense, **key}, root)
    if directory.exists() and not want_retrain(retrain):
        return load(directory)
    result = compute()
    save(result, directory, dense)
    return load(directory)


def cached_sweep(run, levels=SWEEP, methods: Sequence[str] = ("random", "topprob"), draws: int | None = None, *,
                 first_draw: int = 0, common_random_numbers: bool = False, eligibility: str = "default",
                 retrain: bool | None = None, root=None, device: str | None = None,
                 progress: bool = True) -> SweepResult:
    """:func:`sweep_errors` through the cache ``data/results/fig3/<task>-sweep-<key>/`` (key: the dense run's
    configuration and every sweep option); ``retrain`` (default ``$BIORNN_RETRAIN``) recomputes."""
    levels = np.asarray(levels, dtype=np.float64).ravel()
    K = default_draws() if draws is None else int(draws)
    key = {"levels": [float(v) for v in levels], "methods": list(methods), "draws": K, "eligibility": eligibility,
           "common_random_numbers": bool(common_random_numbers), "first_draw": int(first_draw)}
    return _cached("sweep", run, key,
                   lambda: sweep_errors(run, levels, methods, K, first_draw=first_draw,
                                        common_random_numbers=common_random_numbers, eligibility=eligibility,
                                        device=device, progress=progress),
                   save_sweep, load_sweep, retrain, root)


def cached_retrain(run, method: str = "topprob", density: float = RETRAIN_DENSITY, epochs: int | None = None, *,
                   draw: int = 0, common_random_numbers: bool = False, eligibility: str = "default",
                   retrain: bool | None = None, root=None, device: str | None = None,
                   progress: bool = True) -> RetrainResult:
    """:func:`retrain_pruned` through the cache ``data/results/fig3/<task>-retrain-<key>/``."""
    epochs = retrain_epochs(run.config.task) if epochs is None else int(epochs)
    key = {"method": method, "density": float(density), "epochs": epochs, "draw": int(draw),
           "eligibility": eligibility, "common_random_numbers": bool(common_random_numbers)}
    return _cached("retrain", run, key,
                   lambda: retrain_pruned(run, method, density, epochs, draw=draw,
                                          common_random_numbers=common_random_numbers, eligibility=eligibility,
                                          device=device, progress=progress),
                   save_retrain, load_retrain, retrain, root)


def fig3_results(tasks: Sequence[str] = FIG3_TASKS, mode: str | None = None, draws: int | None = None,
                 retrain: bool | None = None, device: str | None = None, progress: bool = True,
                 root=None) -> dict:
    """Everything Figure 3 needs: dense runs, pruning sweeps and masked retraining of both methods.

    Paper mode reads each piece from ``data/results/fig3/`` and computes (and stores) only what is missing (all of
    it with ``retrain``); quick mode computes everything on the spot and stores nothing.

    Args:
        tasks: the tasks.
        mode: ``quick`` or ``paper`` (default ``$BIORNN_MODE``).
        draws: mask draws per (seed, level, method) (default 10 in paper mode, 2 in quick mode).
        retrain: recompute even if cached (paper mode; default ``$BIORNN_RETRAIN``).
        device: compute device.
        progress: progress bars.
        root: cache root.

    Returns:
        ``{"mode", "dense": {task: run}, "sweep": {task: SweepResult},
        "retrain": {(task, method): RetrainResult}}``.
    """

    mode = get_mode(mode)
    K = default_draws(mode) if draws is None else int(draws)
    dense = dense_runs(tasks, mode, retrain=retrain, device=device, progress=progress, root=root)
    out: dict = {"mode": mode, "dense": dense, "sweep": {}, "retrain": {}}
    for task, run in dense.items():
        if mode == "paper":
            out["sweep"][task] = cached_sweep(run, SWEEP, draws=K, retrain=retrain, root=root, device=device,
                                              progress=progress)
        else:
            out["sweep"][task] = sweep_errors(run, SWEEP, draws=K, device=device, progress=progress)
        for method in ("random", "topprob"):
            epochs = retrain_epochs(task, mode)
            if mode == "paper":
                res = cached_retrain(run, method, epochs=epochs, retrain=retrain, root=root, device=device,
                                     progress=progress)
            else:
                res = retrain_pruned(run, method, epochs=epochs, device=device, progress=progress)
            out["retrain"][(task, method)] = res
    return out


# -- spanning-tree overlap (panel A) -----------------------------------------------------------------------------
def mst_overlap_curves(sizes: Sequence[int] = (10, 50, 100), sparsities=MST_SPARSITIES, matrices: int = 3,
                       draws: int = 3, seed: int = 0) -> dict:
    """Overlap of pruning masks with the maximum spanning tree of uniform random matrices (§6, panel A).

    For each size ``N`` and each of ``matrices`` matrices ``W ~ U[0, 1)^{N x N}`` (seeded): the empirical overlap of
    ``draws`` masks per sparsity and method, the exact expectation (:func:`expected_overlap`: mean keep probability
    over the tree's edges), and the corrected lower bound (:func:`overlap_lower_bound` with top-prob's sorted
    probabilities). Also the reference's as-published quantities on the first ``N = 10`` matrix
    (:func:`reference_lower_bound`, :func:`reference_random_expectation`).

    Args:
        sizes: matrix sizes ``N``.
        sparsities: ``(n_s,)`` target sparsities ``s = 1 - p``.
        matrices: random matrices per size.
        draws: mask draws per (matrix, sparsity, method).
        seed: master seed.

    Returns:
        Dict: ``sizes``, ``sparsities``; ``empirical`` ``{method: (n_sizes, matrices, draws, n_s)}``; ``expected``
        ``{method: (n_sizes, matrices, n_s)}``; ``bound`` ``(n_sizes, matrices, n_s)`` (top-prob);
        ``reference_bound`` and ``reference_random`` ``(n_s,)``.
    """
    s_grid = np.asarray(sparsities, dtype=np.float64).ravel()
    n_s, n_n = s_grid.size, len(sizes)
    emp = {m: np.zeros((n_n, matrices, draws, n_s)) for m in METHODS}
    exp = {m: np.zeros((n_n, matrices, n_s)) for m in METHODS}
    bound = np.zeros((n_n, matrices, n_s))
    first10 = None
    for a, N in enumerate(sizes):
        Ws = np.stack([np.random.default_rng(derive_seed(seed, "mst", int(N), i)).random((N, N))
                       for i in range(matrices)])
        if N == 10 and first10 is None:
            first10 = Ws[0]
        trees = [max_spanning_tree_edges(W) for W in Ws]
        Wt = torch.from_numpy(Ws)
        mat_seeds = [int(derive_seed(seed, "mst-mask", int(N), i) % 2 ** 31) for i in range(matrices)]
        for b, s in enumerate(s_grid):
            p = float(min(1.0, max(0.0, 1.0 - s)))
            P = {"topprob": topprob_probabilities(Wt, p).numpy(), "random": random_probabilities(Wt, p).numpy()}
            order = np.argsort(-Ws.reshape(matrices, -1), axis=1, kind="stable")
            bound[a, :, b] = overlap_lower_bound(N, s, np.take_along_axis(P["topprob"].reshape(matrices, -1),
                                                                          order, axis=1))
            for m in METHODS:
                exp[m][a, :, b] = [P[m][i][trees[i]].mean() for i in range(matrices)]
                for d in range(draws):
                    _, mask, _ = prune(Wt, m, p, mat_seeds, draw=d)
                    M = mask.numpy()
                    emp[m][a, :, d, b] = [M[i][trees[i]].mean() for i in range(matrices)]
    ref_w = first10 if first10 is not None else np.random.default_rng(derive_seed(seed, "mst", 10, 0)).random((10, 10))
    return {"sizes": tuple(int(n) for n in sizes), "sparsities": s_grid, "empirical": emp, "expected": exp,
            "bound": bound, "reference_bound": np.array([reference_lower_bound(ref_w, s) for s in s_grid]),
            "reference_random": np.array([reference_random_expectation(s) for s in s_grid])}


# -- statistics tables -------------------------------------------------------------------------------------------
def _seed_tables(errors_random, errors_topprob):
    R = np.asarray(errors_random, dtype=np.float64)
    T = np.asarray(errors_topprob, dtype=np.float64)
    return (R.mean(axis=2), T.mean(axis=2)) if R.ndim == 3 else (R, T)


def informative_levels(errors_random, errors_topprob, levels=SWEEP) -> np.ndarray:
    """Indices of the levels that can differ between the methods: ``0 < p < 1`` and not identical for every seed.

    Besides ``p = 0`` and ``p = 1``, a level is identical by construction when its budget ``p N^2`` reaches the
    number of non-zero weights (both masks are then the full non-zero set); such levels are left out of the tests.

    Args:
        errors_random, errors_topprob: ``(S, L)`` or ``(S, L, K)`` errors.
        levels: ``(L,)`` connection probabilities.

    Returns:
        ``(m,)`` int indices.
    """
    R, T = _seed_tables(errors_random, errors_topprob)
    lv = np.asarray(levels, dtype=np.float64).ravel()
    return np.flatnonzero((lv > 0) & (lv < 1) & np.any(R != T, axis=0))


def level_table(errors_random, errors_topprob, levels=SWEEP, tests: Sequence[str] = ("t_log", "signflip")):
    """Per-level comparison of random vs top-prob pruning (pandas DataFrame, one row per level).

    Columns: ``j``, ``p``; per method the mean over seeds and its 95 % t-interval (n - 1 df); ``diff`` (mean of
    random - top-prob); ``wins`` (seeds with top-prob < random); for each paired test in ``tests`` (two-sided,
    matched seeds, :func:`biornn.stats.paired_test`) the raw ``p_<test>`` and the Holm-adjusted ``holm_<test>`` over
    the informative levels (:func:`informative_levels`; NaN at the levels where both methods are identical by
    construction: ``p = 0``, ``p = 1`` and any level whose budget covers every non-zero weight).

    Args:
        errors_random, errors_topprob: ``(S, L)`` or ``(S, L, K)`` errors (draws averaged within seed).
        levels: ``(L,)`` connection probabilities.
        tests: paired tests (see :data:`biornn.stats.PAIRED_TESTS`).
    """


    R, T = _seed_tables(errors_random, errors_topprob)
    lv = np.asarray(levels, dtype=np.float64).ravel()
    idx = informative_levels(R, T, lv)
    first = pruning_comparison(R, T, lv, test=tests[0], interior=idx)
    df = pd.DataFrame({"j": np.arange(lv.size), "p": lv,
                       "random": first["random"]["mean"], "random_lo": first["random"]["ci_low"],
                       "random_hi": first["random"]["ci_high"], "topprob": first["topprob"]["mean"],
                       "topprob_lo": first["topprob"]["ci_low"], "topprob_hi": first["topprob"]["ci_high"],
                       "diff": (R - T).mean(axis=0), "wins": (T < R).sum(axis=0)})
    for test in tests:
        res = first if test == tests[0] else pruning_comparison(R, T, lv, test=test, interior=idx)
        raw = np.full(lv.size, np.nan)
        adj = np.full(lv.size, np.nan)
        raw[res["per_level"]["index"]] = res["per_level"]["p"]
        adj[res["per_level"]["index"]] = res["per_level"]["p_holm"]
        df[f"p_{test}"] = raw
        df[f"holm_{test}"] = adj
    return df


def side_by_side(tables: dict, levels=SWEEP, test: str = "t_log"):
    """The reference's aggregation ("as published") beside the recommended protocol, one row per task.

    As published (:func:`biornn.stats.reference_aggregation`): bar = max over seeds of the per-seed mean over all
    levels, error = 1.96 x SEM of all seeds x levels pooled, label from the minimum uncorrected per-level
    Mann-Whitney p. Recommended (:func:`biornn.stats.pruning_comparison`): per seed the mean error over the
    informative levels (:func:`informative_levels`: ``0 < p < 1``, not identical by construction), compared across
    seeds (the primary endpoint): each effect beside the p of the test on its scale (geometric-mean ratio random /
    top-prob with its 95 % t-interval and ``p_t_log``; mean difference random - top-prob with its 95 % t-interval
    and ``p_t``), the exact sign-flip and Wilcoxon p, and the number of informative levels whose Holm-adjusted
    paired ``test`` p is below 0.05 (``n_levels`` of them).

    Args:
        tables: ``{task_label: (errors_random, errors_topprob)}``, each ``(S, L)`` or ``(S, L, K)``.
        levels: ``(L,)`` connection probabilities.
        test: paired test of the per-level Holm counts.

    Returns:
        A pandas DataFrame.
    """


    rows = []
    for label, (R, T) in tables.items():
        agg = reference_aggregation(R, T)
        res = pruning_comparison(R, T, levels, test=test, interior=informative_levels(R, T, levels))
        prim = res["primary"]
        rows.append({"task": label, "n": res["n_seeds"],
                     "pub_bar_random": agg["bar_random"], "pub_err_random": agg["err_random"],
                     "pub_bar_topprob": agg["bar_topprob"], "pub_err_topprob": agg["err_topprob"],
                     "pub_min_p": agg["min_p"], "pub_label": agg["label"],
                     "mean_random": prim["random"], "mean_topprob": prim["topprob"], "ratio": prim["ratio"],
                     "ratio_lo": prim["ratio_ci"][0], "ratio_hi": prim["ratio_ci"][1],
                     "p_t_log": prim["pvalues"]["t_log"], "diff": prim["diff"], "diff_lo": prim["diff_ci"][0],
                     "diff_hi": prim["diff_ci"][1], "p_t": prim["pvalues"]["t"],
                     "p_signflip": prim["pvalues"]["signflip"], "p_wilcoxon": prim["pvalues"]["wilcoxon"],
                     "n_levels": len(res["interior"]),
                     "holm_levels": int(np.sum(np.asarray(res["per_level"]["p_holm"]) < 0.05)),
                     "min_holm_p": float(np.min(res["per_level"]["p_holm"]))})
    return pd.DataFrame(rows)


#: Columns of :func:`effects_table`: each effect beside its interval and the p-value of the test on its scale.
EFFECT_COLUMNS = ("task", "n", "j", "p", "random", "topprob", "wins", "ratio", "ratio_lo", "ratio_hi", "p_t_log",
                  "holm_t_log", "diff", "diff_lo", "diff_hi", "p_t", "holm_t", "p_signflip", "holm_signflip",
                  "p_wilcoxon", "holm_wilcoxon", "log_diff", "log_lo", "log_hi")


def effects_table(tables: dict, levels=SWEEP, level: float = 0.95):
    """Random vs top-prob per (task, level), each effect on the scale of its test, with all four paired p-values.

    Per task the informative levels (:func:`informative_levels`) and, in the row with ``j = -1`` and ``p`` NaN, the
    primary endpoint (per seed the mean error over those levels), from :func:`biornn.stats.paired_effects`:

    * log scale, paired t on log errors: ``ratio`` = geometric mean over seeds of random / top-prob error with its
      ``level`` t-interval (``log_diff`` and ``log_lo``/``log_hi`` are the same on the natural-log scale),
      ``p_t_log``;
    * raw scale, paired t: ``diff`` = mean of random - top-prob with its t-interval, ``p_t``;
    * ``p_signflip`` (exact for n <= 16) and ``p_wilcoxon`` on the raw differences.

    ``holm_<test>``: Holm over the informative levels of the task, per test (NaN in the primary row, which is one
    pre-specified comparison). ``random``/``topprob``: means over seeds; ``wins``: seeds with top-prob below
    random. ``ratio > 1`` and ``diff > 0`` mean top-prob's error is lower.

    Args:
        tables: ``{task_label: (errors_random, errors_topprob)}``, each ``(S, L)`` or ``(S, L, K)``.
        levels: ``(L,)`` connection probabilities.
        level: confidence level.

    Returns:
        A pandas DataFrame with :data:`EFFECT_COLUMNS`.
    """


    rows = []
    lv = np.asarray(levels, dtype=np.float64).ravel()
    for label, (errors_random, errors_topprob) in tables.items():
        R, T = _seed_tables(errors_random, errors_topprob)
        res = paired_effects(R, T, lv, interior=informative_levels(R, T, lv), level=level)
        primary = {**res["primary"], **{f"holm_{t}": np.nan for t in PAIRED_TESTS}}
        idx = [row["index"] for row in res["per_level"]]
        means = [(R[:, j].mean(), T[:, j].mean()) for j in idx] + [(R[:, idx].mean(), T[:, idx].mean())]
        for row, (r, t) in zip([*res["per_level"], primary], means):
            rows.append({**row, "task": label, "j": row["index"], "p": row["level"], "random": r, "topprob": t})
    return pd.DataFrame(rows, columns=list(EFFECT_COLUMNS))


def _p(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.2g}" if value >= 1e-3 else f"{value:.1e}"


def format_effect(row) -> str:
    """One line of an :func:`effects_table` row: each effect with its interval, next to the p of its own test."""
    return (f"random/top-prob {row['ratio']:.3g} [{row['ratio_lo']:.3g}, {row['ratio_hi']:.3g}] (geometric mean), "
            f"paired t on log p = {_p(row['p_t_log'])}; random - top-prob {row['diff']:+.3g} [{row['diff_lo']:+.3g}, "
            f"{row['diff_hi']:+.3g}], paired t p = {_p(row['p_t'])}; sign-flip p = {_p(row['p_signflip'])}; "
            f"Wilcoxon p = {_p(row['p_wilcoxon'])}")


def _cmd_reproduce_fig3(args) -> int:

    mode = get_mode(args.mode)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    for t in tasks:
        if t not in ("flipflop", "wave", "digits", "mnist"):
            raise BiornnError(f"unknown task {t!r}; choose from flipflop, wave, digits, mnist")
    res = fig3_results(tasks, mode, draws=args.draws, retrain=args.retrain or None, device=args.device)
    for task in tasks:
        sw = res["sweep"][task]
        R, T = sw.errors("random"), sw.errors("topprob")
        j = int(np.argmin(np.abs(sw.levels - 0.5)))
        print(f"{task}: {len(sw.seeds)} seeds x {sw.draws} draws x {sw.levels.size} levels; dense loss "
              f"{sw.dense_loss.mean():.4g}; at p = {sw.levels[j]:.3f} random {R[:, j].mean():.4g} vs top-prob "
              f"{T[:, j].mean():.4g}")
        for method in ("random", "topprob"):
            rt = res["retrain"][(task, method)]
            print(f"  retrained {method:8s} p = {rt.density:.4f}, {rt.epochs} epochs: held-out loss "
                  f"{rt.test_loss[:, 0].mean():.4g} -> {rt.test_loss[:, -1].mean():.4g}")
    if mode == "paper":

        print(f"cached under {RESULTS_DIR / 'fig3'}")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------
def register_cli(sub) -> None:
    """Add ``prune`` and ``reproduce-fig3`` to the command line."""
    p = sub.add_parser("prune", help="prune trained recurrent matrices (top-prob or random)",
                       description="Draw one keep mask per network of a trained run's W_final and write FILE.npz "
                                   "with mask and W (seeds, N, N) and the achieved density per network.")
    p.add_argument("--weights", required=True, help="weights.npz of a trained run (or its folder)")
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--density", required=True, type=float, help="target keep probability p in [0, 1]")
    p.add_argument("--seed", type=int, default=0, help="seed of the mask draw (default 0)")
    p.add_argument("--out", required=True, help="output .npz file")
    p.add_argument("--draw", type=int, default=0, help="mask draw index (default 0)")
    p.add_argument("--eligibility", choices=ELIGIBILITY, default="default",
                   help="default: nonzero entries, B = p N^2; as_published: 1e-25 floor, B_ref")
    p.add_argument("--redistribution", choices=REDISTRIBUTION, default="additive",
                   help="top-prob capping rule (proportional is an ablation)")
    p.add_argument("--exclude-diagonal", action="store_true", help="never keep self-connections")
    p.set_defaults(func=_cmd_prune)

    p = sub.add_parser("reproduce-fig3", help="compute (or read from the cache) every Figure 3 result of a mode",
                       description="Train the dense Dale's networks, run the pruning sweep (random and top-prob, "
                                   "every level and draw) and the masked retraining at p = 0.0862 for each task. "
                                   "Paper mode stores everything under data/results/fig3/ and reuses what is "
                                   "there; quick mode computes small versions and stores nothing.")
    p.add_argument("--mode", choices=("quick", "paper"), default=None, help="default $BIORNN_MODE or quick")
    p.add_argument("--tasks", default=",".join(FIG3_TASKS), help="comma-separated (default flipflop,wave,digits)")
    p.add_argument("--draws", type=int, default=None, help="mask draws per (seed, level, method); default 10 "
                                                          "(paper) or 2 (quick)")
    p.add_argument("--retrain", action="store_true", help="compute again even if cached")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (CUDA when present)")
    p.set_defaults(func=_cmd_reproduce_fig3)


def _load_w_final(path: Path) -> np.ndarray:
    if path.is_dir():
        path = path / "weights.npz"
    fix = "pass the weights.npz written by `python -m biornn train --out DIR`"
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not hasattr(npz, "files"):
                raise BiornnError(f"{path} is a single .npy array, not an .npz archive; {fix}")
            if "W_final" not in npz.files:
                found = ", ".join(npz.files) or "nothing"
                raise BiornnError(f"{path} has no W_final array (found {found}); {fix}")
            return np.asarray(npz["W_final"])
    except FileNotFoundError:
        raise BiornnError(f"no weights file {path}; {fix}") from None
    except BiornnError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError, EOFError ...
        raise BiornnError(f"cannot read {path} ({type(exc).__name__}: {exc}); {fix}") from None


def _cmd_prune(args) -> int:

    density = _check_density(args.density, "--density")
    out = Path(args.out)
    if out.is_dir():
        raise BiornnError(f"--out {out} is a folder; pass a file path such as {out / 'pruned.npz'}")
    W_np = _load_w_final(Path(args.weights))
    if W_np.ndim == 2:
        W_np = W_np[None]
    if W_np.ndim != 3 or W_np.shape[1] != W_np.shape[2]:
        raise BiornnError(f"W_final has shape {W_np.shape}; expected (seeds, N, N)")
    W = _as_weights(torch.from_numpy(W_np), "W_final weights")
    options = dict(draw=args.draw, eligibility=args.eligibility, exclude_diagonal=args.exclude_diagonal)
    if args.method == "topprob":
        options["redistribution"] = args.redistribution
    W_pruned, mask, achieved = prune(W, args.method, density, args.seed, **options)
    stats = mask_stats(W, mask)
    buf = io.BytesIO()
    np.savez_compressed(buf, mask=mask.numpy(), W=W_pruned.numpy(), density=achieved.numpy(),
                        functional_density=stats["functional_density"].numpy(),
                        target_density=np.float64(density), seed=np.int64(args.seed), method=np.array(args.method),
                        eligibility=np.array(args.eligibility))
    atomic_write_bytes(out, buf.getvalue())
    dens = ", ".join(f"{d:.4f}" for d in achieved.tolist())
    print(f"{args.method} pruning at p = {density:g}: {W.shape[0]} networks, achieved density {dens} -> {out}")
    return 0
