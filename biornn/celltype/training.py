"""Training a Fig 4 run: dense Dale's training, block-wise pruning and masked fine-tuning of all seeds at once
(:func:`train_celltype`), checkpoints, the stored run (:func:`save_celltype`, :func:`load_celltype`) and the
benchmark hook.

The package (:mod:`biornn.celltype`), as a whole: Training the cell-type constrained two-area RNN of paper Figure 4
(``docs/paper/fig4-5-celltype-rnn.md``).

Pipeline per (condition, window), all seeds batched (§4.3):

1. **Dense Dale's training**: Adam (lr 1e-3), cosine schedule ``T_max = 10`` epochs, ``eta_min = 1e-4``, stepped
   per epoch and never restarted (``lr(e) = 1e-4 + 0.9e-3 (1 + cos(pi e / 10)) / 2``, ``e = 0`` in the first epoch);
   after every optimiser step the Dale projection of ``W_rec``. The epoch with the lowest epoch loss is kept and
   reloaded (per seed).
2. **Pruning** (one shot): within each area every population block is pruned by top-prob to the table's density
   (:func:`biornn.pruning.blockwise_mask`); the three inter-area pathways keep their dense trained values times a
   Bernoulli(0.3) mask; every other cross-area block is emptied. The connectivity mask ``M`` is the nonzero
   pattern right after pruning.
3. **Masked fine-tuning**: fresh Adam and the same schedule; before every step the gradient of ``W_rec`` is zeroed
   outside ``M`` (Adam's moments there stay exactly 0), after every step the Dale projection, then
   ``W_rec <- W_rec * M``.

Loss: MSE, mean over ``B x T x 18``; an epoch's loss is the **mean batch loss** (multiply by the number of batches,
10, for the reference's sum; :attr:`CelltypeResult.reference_factor`).

Switches (§9; defaults = biornn's choice, :meth:`CelltypeConfig.published` = the reference):

=====================  =========================================  ==============================================
option                 default (corrected)                        ``as published``
=====================  =========================================  ==============================================
``input_mapping``      ``population``: channel p -> population p  ``dense`` (Q1: the mask was never applied)
``pruning``            ``default``: exact budgets ``p n`` over     ``as_published``: the reference's budget
                       nonzero entries; inter-area: exactly        ``n (1 - s')`` (5-15 % above the table, Q8);
                       ``0.3 n`` of the nonzero entries            inter-area: Bernoulli(0.3) over all entries
``checkpoint_rule``    ``best``: lowest mean epoch loss of         ``as_published``: epoch *sum* must beat a
                       fine-tuning (best and last both kept)       running minimum started at one batch's MSE (Q7)
``dale``               True                                       False = the vanilla control (no projection)
=====================  =========================================  ==============================================

Top-prob as published (``eligibility="as_published"`` of :mod:`biornn.pruning`) redistributes the probability of
capped entries additively, as in Fig 3; the Fig 4 reference does not redistribute (``min(1, K |w|)``). The two
differ only for entries with ``K |w| > 1``; realised densities are reported next to the table.

Seeds: per-seed streams from :func:`biornn.core.config.derive_seed`: initialisation ``(seed, "init", "celltype")``,
shuffles ``(seed, "shuffle", "celltype", stage, epoch)``, pruning and inter-area draws through
:mod:`biornn.pruning` (``(seed, "prune", ...)``).

Checkpoints (``OUT/checkpoints/``, each written atomically): ``initial.pt``, ``dense_best.pt``, ``sparse.pt`` and a
rolling ``resume.pt`` (parameters, Adam state, best-so-far weights, mask and history after every completed epoch).
An interrupted :func:`train_celltype` with the same ``out`` resumes from ``resume.pt`` and ends with bitwise the
same result as an uninterrupted run on the CPU (per-epoch shuffles are derived, not carried).

Outputs (command line contract, ``python -m biornn celltype train``): ``OUT/metrics.json`` (config, device, data,
runs with per-stage losses and held-out fits) and ``OUT/weights.npz``: ``W_init``, ``W_dense``, ``W_sparse``,
``W_last`` ``(S, N, N)`` float32 (``W[post, pre]``), ``mask`` ``(S, N, N)`` uint8 (1 where a connection may exist),
``signs`` ``(N,)``, ``population`` ``(N,)`` labels such as ``V1_L2/3_Pyr``, ``population_index`` ``(N,)``,
``w_in_dense``, ``w_in_sparse``, ``w_in_last`` ``(S, N, 18)``, ``w_out`` ``(S, N)``, ``b_out`` ``(S, 18)``,
``target_density`` ``(18, 18)`` and ``realised_density`` ``(S, 18, 18)``.

Figure cache (paper mode, ``data/results/fig4/``): :func:`summarize` keeps only what the figures need, in float64
(block means raw and absolute for initial / dense / sparse weights, realised densities, mean ``|w|`` over nonzero
entries, losses, held-out fits, a few held-out traces, identifiability on twin data) plus seed 0's three full
matrices in float32 (display only).

Submodules (imports point one way): :mod:`~biornn.celltype.config`, :mod:`~biornn.celltype.data`,
:mod:`~biornn.celltype.training`, :mod:`~biornn.celltype.stack` (several conditions in one model batch),
:mod:`~biornn.celltype.summaries`, :mod:`~biornn.celltype.cache` and
:mod:`~biornn.celltype.cli`; this package re-exports their public names (and ``register_cli``).
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from biornn.celltype.config import (
    KERNELS,
    CelltypeConfig,
    sizes_dict,
)
from biornn.celltype.data import (
    CelltypeData,
    connectivity_tables,
    prepare_data,
    prune_mask,
    realised_density,
)
from biornn.core.config import derive_seed, get_device
from biornn.core.errors import BiornnError
from biornn.core.progress import progress as progress_bar
from biornn.core.store import _json_default, atomic_write_bytes, load_run, provenance
from biornn.data.curate import Dataset
from biornn.data.stimulus import STIMULUS_CHANNELS
from biornn.nn.connectivity import POPULATION_LABELS, block_density
from biornn.nn.constraints import dale_project_, sign_violations
from biornn.nn.models import CelltypeRNN, to_numpy

#: Wall time between resume checkpoints when no epoch interval is given (s); stage ends always write one.
CHECKPOINT_SECONDS = 300.0


def _permutations(seeds, n: int, *stream) -> torch.Tensor:
    """``(S, n)`` one shuffle per seed, derived from ``(seed, "shuffle", "celltype", *stream)``."""
    return torch.stack([torch.randperm(n, generator=torch.Generator().manual_seed(
        derive_seed(s, "shuffle", "celltype", *stream))) for s in seeds])


def per_seed_mse(out: torch.Tensor, y: torch.Tensor, burn_in: int = 0) -> torch.Tensor:
    """``(S,)`` MSE per seed, mean over batch, steps (from ``burn_in`` on) and the 18 outputs."""
    return ((out[:, :, burn_in:] - y[..., burn_in:, :]) ** 2).flatten(1).mean(1)


def batch_of(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``(S, B, T, C)`` batch of sample indices ``idx`` ``(S, B)`` from shared ``(n, T, C)`` or per-run
    ``(S, n, T, C)`` arrays."""
    if x.ndim == 4:
        return x[torch.arange(x.shape[0], device=x.device)[:, None], idx]
    return x[idx]


def train_epoch(model: CelltypeRNN, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                perms: torch.Tensor, batch_size: int, dale: bool = True, keep: torch.Tensor | None = None,
                on_step=None, burn_in: int = 0) -> torch.Tensor:
    """One epoch of (masked) training; the inner loop shared by training and the benchmark hook.

    Per batch: zero grads, forward, per-seed MSE, backward of their sum, gradient of ``W_rec`` zeroed outside
    ``keep``, Adam step, Dale projection (``dale``), ``W_rec <- W_rec * keep``.

    Args:
        model: the batched network.
        opt: its optimiser.
        x, y: ``(n, T, C)`` / ``(n, T, 18)`` training inputs and targets on the model's device (``(S, n, ...)``:
            one training set per seed).
        perms: ``(S, n)`` sample order per seed.
        batch_size: samples per batch.
        dale: apply the Dale projection after every step.
        keep: ``(S, N, N)`` float 0/1 connectivity mask, or None (dense stage).
        on_step: optional ``callback(model)`` after every step (tests check the invariants with it).
        burn_in: predicted frames left out of the loss.

    Returns:
        ``(S,)`` float64 mean batch loss of the epoch.
    """
    n = perms.shape[1]
    perms = perms.to(x.device)
    total = torch.zeros(model.n_seeds, dtype=torch.float64, device=x.device)
    batches = 0
    for lo in range(0, n, batch_size):
        idx = perms[:, lo:lo + batch_size]
        xb, yb = batch_of(x, idx), batch_of(y, idx)  # (S, B, T, C)
        opt.zero_grad(set_to_none=True)
        losses = per_seed_mse(model(xb), yb, burn_in)
        losses.sum().backward()
        if keep is not None:
            model.w_rec.grad.mul_(keep)
        opt.step()
        if dale:
            dale_project_(model.w_rec.data, model.signs)
        if keep is not None:
            model.w_rec.data.mul_(keep)
        total += losses.detach().double()
        batches += 1
        if on_step is not None:
            on_step(model)
    return total / batches


@torch.no_grad()
def predict(model: CelltypeRNN, x, max_elems: int = 2 ** 24, seeds_per_chunk: int | None = None) -> np.ndarray:
    """Predictions ``(S, n, T, 18)`` (float64) for inputs ``(n, T, C)`` (or one set per seed, ``(S, n, T, C)``), in
    chunks of samples that bound memory: ``max_elems // (seeds_per_chunk * T * N)`` samples each (``seeds_per_chunk``
    defaults to the model's seed count; a stack of runs passes one run's count, so chunks, and float32 sums, are
    those of a run trained alone)."""
    x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=torch.float32,
                        device=model.w_rec.device)
    x = x if x.ndim == 4 else x[None]
    n = x.shape[1]
    if n == 0:
        return np.zeros((model.n_seeds, 0, x.shape[2], model.n_out))
    chunk = max(1, int(max_elems // ((seeds_per_chunk or model.n_seeds) * x.shape[2] * model.n_hidden)))
    outs = [to_numpy(model(x[:, lo:lo + chunk])).astype(np.float64) for lo in range(0, n, chunk)]
    return np.concatenate(outs, axis=1)


def _mse(model: CelltypeRNN, x: torch.Tensor, y: torch.Tensor, seeds_per_chunk: int | None = None) -> np.ndarray:
    if x.shape[-3] == 0:
        return np.full(model.n_seeds, np.nan)
    pred = predict(model, x, seeds_per_chunk=seeds_per_chunk)
    y = to_numpy(y).astype(np.float64)
    return ((pred - (y if y.ndim == 4 else y[None])) ** 2).reshape(model.n_seeds, -1).mean(1)


def fit_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """Per-population fit of predicted vs recorded traces.

    Args:
        pred: ``(S, n, T, 18)`` predictions.
        target: ``(n, T, 18)`` recorded next frames (or ``(S, n, T, 18)``, one set per seed).

    Returns:
        ``r``, ``r2``: ``(S, 18)`` Pearson r and ``R^2 = 1 - SSE / SST`` pooled over all samples and steps of a
        population; ``trace_r``, ``trace_r2``: ``(S, 18)`` medians over samples of the same computed per 15-step
        trace (the published figure's quantity, one trace at a time); ``mse``: ``(S,)``.
    """
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    target = target if target.ndim == 4 else target[None]
    S, n, T, P = pred.shape

    def r_and_r2(p, t, axis):
        pc = p - p.mean(axis=axis, keepdims=True)
        tc = t - t.mean(axis=axis, keepdims=True)
        sst = (tc ** 2).sum(axis=axis)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (pc * tc).sum(axis=axis) / np.sqrt((pc ** 2).sum(axis=axis) * sst)
            r2 = 1 - ((p - t) ** 2).sum(axis=axis) / sst
        return r, r2

    r, r2 = r_and_r2(pred.reshape(S, n * T, P), np.broadcast_to(target, pred.shape).reshape(S, n * T, P), 1)
    tr, tr2 = r_and_r2(pred, np.broadcast_to(target, pred.shape), 2)
    return {"r": r, "r2": r2, "trace_r": np.nanmedian(tr, axis=1), "trace_r2": np.nanmedian(tr2, axis=1),
            "mse": ((pred - target) ** 2).reshape(S, -1).mean(1)}


def _save_torch(path: Path, obj) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _cpu(obj):
    """Deep-copy tensors of a (nested) state to the CPU."""
    if torch.is_tensor(obj):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu(v) for v in obj]
    return obj


@dataclass
class CelltypeResult:
    """What one batched Figure 4 run produced.

    Attributes:
        config: the :class:`CelltypeConfig`.
        device: where it ran.
        runs: one dict per seed: ``seed``; ``dense_loss``, ``dense_heldout_loss``, ``finetune_loss``,
            ``finetune_heldout_loss`` (per epoch, mean batch loss / held-out MSE); ``dense_best_epoch`` and
            ``sparse_epoch`` (1-based; ``sparse_epoch`` None when the as-published rule never saved, then the last
            epoch is used); ``pruned_batch_loss`` (one batch's MSE right after pruning, the reference's anchor),
            ``pruned_loss`` (training-set MSE right after pruning); ``heldout`` fits of the dense and sparse
            models (:func:`fit_metrics`, lists over populations); ``sign_violations``; ``outside_mask``;
            ``epoch_seconds``.
        arrays: the ``weights.npz`` arrays (see the module docstring).
        data: :meth:`CelltypeData.info`.
        wall_seconds: total wall time (this call; a resumed run counts only its own part).
    """
    config: CelltypeConfig
    device: str
    runs: list
    arrays: dict
    data: dict
    wall_seconds: float = 0.0
    directory: Path | None = None
    kernels: dict = field(default_factory=dict)

    @property
    def reference_factor(self) -> int:
        """Batches per epoch: multiply a mean batch loss by this for the reference's epoch sum."""
        return math.ceil(self.data["n_train"] / self.config.batch_size)

    def curve(self, key: str) -> np.ndarray:
        """``(S, epochs)`` array of one per-epoch metric."""
        return np.array([r[key] for r in self.runs], dtype=float)

    def metrics(self) -> dict:
        """The ``metrics.json`` content (command-line contract)."""
        return {"config": self.config.to_dict(), "device": self.device, "kernels": self.kernels, "data": self.data,
                "reference_factor": self.reference_factor, "runs": self.runs}

    def model(self, which: str = "sparse", device: str | None = "cpu") -> CelltypeRNN:
        """The network with ``which`` weights (``init``, ``dense``, ``sparse`` or ``last``) loaded."""
        return model_from_arrays(self.config, self.arrays, which, device)


def model_from_arrays(config: CelltypeConfig, arrays: dict, which: str = "sparse", device=None) -> CelltypeRNN:
    """Rebuild a :class:`CelltypeRNN` from stored arrays (``which`` in ``init``, ``dense``, ``sparse``, ``last``)."""
    keys = {"init": ("W_init", None), "dense": ("W_dense", "w_in_dense"), "sparse": ("W_sparse", "w_in_sparse"),
            "last": ("W_last", "w_in_last")}
    if which not in keys:
        raise BiornnError(f"unknown weights {which!r}; use one of {', '.join(keys)}")
    model = new_model(config)
    w_key, in_key = keys[which]
    with torch.no_grad():
        model.w_rec.copy_(torch.as_tensor(np.asarray(arrays[w_key])))
        if in_key is not None:
            model.w_in.copy_(torch.as_tensor(np.asarray(arrays[in_key])))
            if model.h0 is not None:
                model.h0.copy_(torch.as_tensor(np.asarray(arrays[in_key.replace("w_in", "h0")])))
        for name in ("w_out", "b_out"):
            if name in arrays:
                getattr(model, name).copy_(torch.as_tensor(np.asarray(arrays[name])))
    return model.to(device if isinstance(device, torch.device) else get_device(device))


def new_model(config: CelltypeConfig) -> CelltypeRNN:
    """The untrained network stack of ``config`` (its inputs and initial state as the switches say)."""
    return CelltypeRNN(config.seeds, config.sizes_dict, config.input_mapping, config.readout_from_state,
                       n_stimulus=len(STIMULUS_CHANNELS) if config.stimulus_inputs else 0,
                       learned_init=config.initial_state == "learned")


def _trained(model: CelltypeRNN) -> dict[str, torch.Tensor]:
    """Detached copies of the trained tensors kept for the best / sparse checkpoints (``w_rec``, ``w_in``, ``h0``)."""
    out = {"w_rec": model.w_rec.detach().clone(), "w_in": model.w_in.detach().clone()}
    if model.h0 is not None:
        out["h0"] = model.h0.detach().clone()
    return out


def _sync(dev: torch.device) -> None:
    """Wait for queued CUDA work (epoch timers measure work done, not launched); nothing on the CPU."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


@dataclass
class _Training:
    """What the stages of :func:`train_celltype` share: the run, its tensors on the device, and the training state."""

    config: CelltypeConfig
    data: CelltypeData
    dev: torch.device
    kernels: str
    model: CelltypeRNN
    x: torch.Tensor
    y: torch.Tensor
    hx: torch.Tensor
    hy: torch.Tensor
    ckdir: Path | None
    identity: dict
    progress: bool
    on_step: object
    on_epoch: object
    checkpoint_every: int | None
    within: object = None
    inter: object = None
    state: dict | None = None
    opt: torch.optim.Optimizer | None = None
    checkpoint_seconds: float = CHECKPOINT_SECONDS
    last_save: float = field(default_factory=time.perf_counter)
    seeds_per_chunk: int | None = None

    @property
    def S(self) -> int:
        return self.model.n_seeds

    @property
    def n(self) -> int:
        return self.x.shape[-3]

    @property
    def B(self) -> int:
        return min(self.config.batch_size, self.n)

    def new_opt(self):
        return torch.optim.Adam(self.model.parameters(), lr=self.config.lr, betas=(0.9, 0.999), eps=1e-8)

    def checkpoint(self, force: bool = False):
        if self.ckdir is None:
            return
        if self.checkpoint_every is None:  # by wall time: off the hot path (a 1440-unit state is ~200 MB)
            due = time.perf_counter() - self.last_save >= self.checkpoint_seconds
        else:
            due = self.state["epoch"] % max(1, self.checkpoint_every) == 0
        if force or due:
            _save_torch(self.ckdir / "resume.pt", _cpu({**self.state, "model": self.model.state_dict(),
                                                        "opt": self.opt.state_dict()}))
            self.last_save = time.perf_counter()

    def step_hook(self, stage, keep):
        if self.on_step is None:
            return None
        on_step = self.on_step
        return lambda m: on_step(m, stage, keep)


def _prepare_training(config: CelltypeConfig, dataset: Dataset | CelltypeData, device, out, progress: bool, on_step,
                      on_epoch, checkpoint_every: int, kernels: str) -> _Training:
    """Check the arguments, prepare the data and build the model of :func:`train_celltype`."""
    dev = get_device(device)
    if kernels not in KERNELS:
        raise BiornnError(f"unknown kernels {kernels!r}; use one of {', '.join(KERNELS)}")
    if kernels == "auto":
        kernels = "sparse" if dev.type == "cpu" else "dense"
    data = dataset if isinstance(dataset, CelltypeData) else prepare_data(dataset, config.window, config.condition,
                                                                          config)
    if data.condition != config.condition:
        raise BiornnError(f"data hold condition {data.condition!r} but the run asks for {config.condition!r}")
    within, inter = connectivity_tables(config)
    model = new_model(config).to(dev)
    if data.x.shape[-1] != model.n_in:
        raise BiornnError(f"data have {data.x.shape[-1]} input channels but the model takes {model.n_in}; prepare "
                          "the data with this config (prepare_data(..., config=config))")
    x, y = (torch.from_numpy(a[..., :config.n_train, :, :]).to(dev) for a in (data.x, data.y))
    hx, hy = torch.from_numpy(data.hx).to(dev), torch.from_numpy(data.hy).to(dev)
    ckdir = Path(out) / "checkpoints" if out is not None else None
    identity = {"config": config.to_dict(), "data_sha256": data.sha256}
    return _Training(config, data, dev, kernels, model, x, y, hx, hy, ckdir, identity, progress, on_step, on_epoch,
                     checkpoint_every, within, inter)


def _start_or_resume(t: _Training, out, resume: bool) -> CelltypeResult | None:
    """Set the optimiser and the training state (fresh, or from ``resume.pt``); the finished run if ``out`` has it."""
    t.opt = t.new_opt()
    if out is not None and resume and (Path(out) / "metrics.json").exists() and not (t.ckdir / "resume.pt").exists():
        done = load_celltype(out)
        if done.config == t.config and done.data.get("sha256") == t.data.sha256:
            return done
    if t.ckdir is not None and resume and (t.ckdir / "resume.pt").exists():
        t.state = _load_checkpoint(t.ckdir / "resume.pt", t.dev)
        if t.state.get("identity") != t.identity:
            raise BiornnError(f"checkpoint {t.ckdir / 'resume.pt'} was written for another configuration or dataset; "
                              f"delete {t.ckdir} (or pass another --out) to start afresh")
        t.model.load_state_dict(t.state["model"])
        if t.state["stage"] == "finetune":
            t.opt = t.new_opt()
        t.opt.load_state_dict(t.state["opt"])
        W_init = t.state["W_init"].to(t.dev)
    else:
        S = t.S
        W_init = t.model.w_rec.detach().clone()
        t.state = {"identity": t.identity, "stage": "dense", "epoch": 0,
                   "history": {k: [[] for _ in range(S)] for k in ("dense_loss", "dense_heldout_loss",
                                                                   "finetune_loss", "finetune_heldout_loss",
                                                                   "dense_seconds", "finetune_seconds")},
                   "best_loss": torch.full((S,), math.inf, dtype=torch.float64, device=t.dev),
                   "best_epoch": [0] * S, "best": _trained(t.model), "mask": None, "extra": {}}
        if t.ckdir is not None:
            _save_torch(t.ckdir / "initial.pt", {"identity": t.identity, "model": _cpu(t.model.state_dict())})
    t.state["W_init"] = W_init
    return None


#: Per stage: where the kept weights go and which per-seed epoch records them.
_KEEP = {"dense": ("best", "best_epoch"), "finetune": ("sparse", "sparse_epoch")}


def _end_epoch(t: _Training, stage: str, e: int, t0: float, loss: torch.Tensor, better: torch.Tensor,
               n_epochs: int) -> None:
    """Shared end of a dense or fine-tuning epoch: keep the better seeds' weights, score the held-out set, record
    the history, checkpoint (always after the stage's last epoch) and call ``on_epoch``."""
    state, hist = t.state, t.state["history"]
    store, epoch_key = _KEEP[stage]
    for key, value in _trained(t.model).items():
        state[store][key][better] = value[better]
    held = _mse(t.model, t.hx, t.hy, t.seeds_per_chunk)
    _sync(t.dev)  # CUDA runs asynchronously: without this, dt would time the kernel launches only
    dt = time.perf_counter() - t0
    for s in range(t.S):
        if bool(better[s]):
            state[epoch_key][s] = e + 1
        hist[f"{stage}_loss"][s].append(float(loss[s]))
        hist[f"{stage}_heldout_loss"][s].append(float(held[s]))
        hist[f"{stage}_seconds"][s].append(dt)
    state["epoch"] = e + 1
    t.checkpoint(force=e + 1 == n_epochs)
    if t.on_epoch is not None:
        t.on_epoch(stage, e)


def _dense_stage(t: _Training) -> None:
    """Stage 1: dense training, keeping each seed's best epoch."""
    config, model, state = t.config, t.model, t.state
    epochs = range(state["epoch"], config.dense_epochs)
    for e in progress_bar(epochs, len(epochs), f"{config.condition}/dense", t.progress):
        t0 = time.perf_counter()
        for g in t.opt.param_groups:
            g["lr"] = config.lr_at(e)
        loss = train_epoch(model, t.opt, t.x, t.y, _permutations(config.seeds, t.n, "dense", e), t.B, config.dale,
                           None, t.step_hook("dense", None), config.burn_in)
        better = loss < state["best_loss"]
        state["best_loss"] = torch.where(better, loss, state["best_loss"])
        _end_epoch(t, "dense", e, t0, loss, better, config.dense_epochs)


def _prune_dense(t: _Training) -> None:
    """Reload the best dense epoch, prune, and start the fine-tuning stage."""
    config, model, state = t.config, t.model, t.state
    within, inter = t.within, t.inter
    with torch.no_grad():
        for key, value in state["best"].items():
            getattr(model, key).copy_(value)
    if t.ckdir is not None:
        _save_torch(t.ckdir / "dense_best.pt", _cpu({"identity": t.identity, "model": model.state_dict(),
                                                      "best_epoch": state["best_epoch"]}))
    mask = prune_mask(model.w_rec.detach(), config.seeds, config.sizes_dict, config.pruning, within, inter)
    with torch.no_grad():
        model.w_rec.mul_(mask)
    state["mask"] = mask
    first = _permutations(config.seeds, t.n, "threshold")[:, :t.B].to(t.dev)
    with torch.no_grad():
        batch_loss = per_seed_mse(model(batch_of(t.x, first)), batch_of(t.y, first), config.burn_in).double()
    state["extra"] = {"pruned_batch_loss": [float(batch_loss[s]) for s in range(t.S)],
                      "pruned_loss": [float(v) for v in _mse(model, t.x, t.y, t.seeds_per_chunk)]}
    factor = math.ceil(t.n / t.B)
    # sparse checkpoint bookkeeping (Q7): "best" = lowest mean epoch loss; "as_published" = the epoch
    # *sum* must beat a running minimum that starts at one batch's MSE of the pruned model
    published = config.checkpoint_rule == "as_published"
    start = batch_loss.clone() if published else torch.full_like(batch_loss, math.inf)
    state.update(stage="finetune", epoch=0, sparse_threshold=start, sparse_epoch=[None] * t.S,
                 sparse=_trained(model), sparse_factor=factor if published else 1)
    t.opt = t.new_opt()
    t.checkpoint(force=True)


def _finetune_stage(t: _Training) -> None:
    """Stage 3: masked fine-tuning, keeping each seed's checkpoint under the configured rule."""
    config, model, state = t.config, t.model, t.state
    keep = state["mask"].to(t.dev).float()
    if t.kernels == "sparse":
        model.use_sparse_kernels(keep)
    epochs = range(state["epoch"], config.finetune_epochs)
    for e in progress_bar(epochs, len(epochs), f"{config.condition}/fine-tune", t.progress):
        t0 = time.perf_counter()
        for g in t.opt.param_groups:
            g["lr"] = config.lr_at(e)
        loss = train_epoch(model, t.opt, t.x, t.y, _permutations(config.seeds, t.n, "finetune", e), t.B,
                           config.dale, keep, t.step_hook("finetune", keep), config.burn_in)
        score = loss * state["sparse_factor"]
        better = score < state["sparse_threshold"]
        state["sparse_threshold"] = torch.where(better, score, state["sparse_threshold"])
        _end_epoch(t, "finetune", e, t0, loss, better, config.finetune_epochs)
    model.use_sparse_kernels(None)


def _result_arrays(t: _Training) -> dict:
    """The run's arrays: initial, dense, sparse and last weights, mask, signs, populations, readout, densities."""
    model, state = t.model, t.state
    within, inter = t.within, t.inter
    last = _trained(model)
    never = [s for s in range(t.S) if state["sparse_epoch"][s] is None]
    sparse = {k: v.clone() for k, v in state["sparse"].items()}
    for s in never:  # the as-published rule never saved: use the last epoch (flagged by sparse_epoch = None)
        for key in sparse:
            sparse[key][s] = last[key][s]
    if t.ckdir is not None:
        _save_torch(t.ckdir / "sparse.pt", _cpu({"identity": t.identity, "sparse": sparse, "last": last,
                                                 "sparse_epoch": state["sparse_epoch"]}))
    mask = state["mask"].to(t.dev)
    arrays = {"W_init": to_numpy(state["W_init"]), "W_dense": to_numpy(state["best"]["w_rec"]),
              "W_sparse": to_numpy(sparse["w_rec"]), "W_last": to_numpy(last["w_rec"]),
              "mask": to_numpy(mask).astype(np.uint8),
              "signs": to_numpy(model.signs), "population": np.array([POPULATION_LABELS[i] for i in
                                                                      to_numpy(model.population)]),
              "population_index": to_numpy(model.population).astype(np.int64),
              "w_out": to_numpy(model.w_out), "b_out": to_numpy(model.b_out),
              "target_density": block_density(within, inter),
              "realised_density": realised_density(mask, t.config.sizes_dict)}
    for key in ("w_in", "h0"):
        if key in last:
            for which, source in (("dense", state["best"]), ("sparse", sparse), ("last", last)):
                arrays[f"{key}_{which}"] = to_numpy(source[key])
    return arrays


def _result_runs(t: _Training, arrays: dict) -> list[dict]:
    """One record per seed: loss curves, epoch times, checkpoints, held-out fits, sign checks."""
    config, data, state, hist = t.config, t.data, t.state, t.state["history"]
    fits = {}
    hx_np, hy_np = (data.hx, data.hy) if data.hx.shape[0] else (data.x, data.y)
    for which in ("dense", "sparse"):  # fits in ΔF/F: predictions and targets mapped back from model units
        pred = predict(model_from_arrays(config, arrays, which, t.dev), hx_np, seeds_per_chunk=t.seeds_per_chunk)
        fits[which] = fit_metrics(data.to_dff(pred), data.to_dff(hy_np))
    runs = []
    signs = t.model.signs
    for s, seed in enumerate(config.seeds):
        run = {"seed": int(seed)}
        for key in ("dense_loss", "dense_heldout_loss", "finetune_loss", "finetune_heldout_loss"):
            run[key] = hist[key][s]
        run["epoch_seconds"] = {"dense": hist["dense_seconds"][s], "finetune": hist["finetune_seconds"][s]}
        # runs before this field timed CUDA epochs without synchronising (launch time only): condition_fits drops them
        run["epoch_timer"] = "synchronised"
        run["dense_best_epoch"] = int(state["best_epoch"][s])
        run["sparse_epoch"] = state["sparse_epoch"][s]
        run["pruned_batch_loss"] = state["extra"]["pruned_batch_loss"][s]
        run["pruned_loss"] = state["extra"]["pruned_loss"][s]
        run["heldout_split"] = "heldout" if data.hx.shape[0] else "train (the dataset has no held-out split)"
        run["heldout"] = {w: {k: (np.asarray(v[s]).tolist()) for k, v in fits[w].items()} for w in fits}
        run["sign_violations"] = {k: sign_violations(torch.as_tensor(arrays[k][s]), signs.cpu())
                                  for k in ("W_dense", "W_sparse", "W_last")}
        run["outside_mask"] = int(((arrays["W_sparse"][s] != 0) & (arrays["mask"][s] == 0)).sum()
                                  + ((arrays["W_last"][s] != 0) & (arrays["mask"][s] == 0)).sum())
        runs.append(run)
    return runs


def train_celltype(config: CelltypeConfig, dataset: Dataset | CelltypeData, device: str | None = None,
                   out: str | os.PathLike | None = None, resume: bool = True, progress: bool = True,
                   on_step=None, on_epoch=None, checkpoint_every: int | None = None, kernels: str = "auto",
                   seeds_per_chunk: int | None = None) -> CelltypeResult:
    """Dense Dale's training, pruning and masked fine-tuning of all seeds of ``config`` (module docstring).

    Args:
        config: the run's configuration.
        dataset: the condition's dataset (:class:`biornn.data.curate.Dataset`) or prepared arrays.
        device: ``cpu``, ``cuda`` or None (CUDA when present).
        out: run folder; when given, stage checkpoints go to ``out/checkpoints/`` and ``metrics.json`` and
            ``weights.npz`` are written at the end (:func:`save_celltype`).
        resume: continue from ``out/checkpoints/resume.pt`` if present (same config and data required).
        progress: progress bars over epochs.
        on_step: ``callback(model, stage, mask)`` after every optimiser step (``mask`` None in the dense stage).
        on_epoch: ``callback(stage, epoch)`` after every completed (and checkpointed) epoch, 0-based.
        checkpoint_every: write ``resume.pt`` every this many epochs (and at the end of each stage); None (default):
            at stage ends and whenever :data:`CHECKPOINT_SECONDS` of wall time have passed since the last one. Resuming
            is exact either way (per-epoch shuffles are derived from the seed, not carried).
        kernels: recurrence kernels of the masked fine-tuning stage: ``dense`` (masked dense matmuls), ``sparse``
            (CSR kernels over the mask, :meth:`CelltypeRNN.use_sparse_kernels`; same maths, float32 round-off
            apart) or ``auto`` (sparse on the CPU, where it measured ~2x faster at N = 1440; dense on CUDA, not
            measured). Not part of the configuration: recorded in ``metrics.json`` as ``kernels``.
        seeds_per_chunk: seeds the evaluation chunks are sized for (:func:`predict`); a stack of several runs
            (:func:`biornn.celltype.stack.train_celltype_stack`) passes one run's seed count.

    Returns:
        A :class:`CelltypeResult`.
    """
    t_start = time.perf_counter()
    t = _prepare_training(config, dataset, device, out, progress, on_step, on_epoch, checkpoint_every, kernels)
    t.seeds_per_chunk = seeds_per_chunk
    done = _start_or_resume(t, out, resume)
    if done is not None:
        return done
    if t.state["stage"] == "dense":
        _dense_stage(t)
        _prune_dense(t)
    _finetune_stage(t)
    arrays = _result_arrays(t)
    runs = _result_runs(t, arrays)
    info = {**t.data.info(), "n_train": int(t.n), "n_available": int(t.data.x.shape[-3])}
    result = CelltypeResult(config, t.dev.type, runs, arrays, info, time.perf_counter() - t_start,
                            kernels={"dense": "dense", "finetune": t.kernels})
    if out is not None:
        save_celltype(result, out)
        result.directory = Path(out)
        if (t.ckdir / "resume.pt").exists():
            (t.ckdir / "resume.pt").unlink()
    return result


def _load_checkpoint(path: Path, device) -> dict:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # truncated or foreign file
        raise BiornnError(f"corrupt checkpoint {path} ({type(exc).__name__}: {exc}); delete it to start afresh"
                          ) from None


def save_celltype(result: CelltypeResult, directory: str | os.PathLike) -> Path:
    """Write ``metrics.json`` and ``weights.npz`` into ``directory`` (each atomically; weights first).

    ``metrics.json`` appears last, so its presence marks a complete run; ``directory/checkpoints`` is kept.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise BiornnError(f"output path {directory} is a file; pass a folder path for --out")
    buf = io.BytesIO()
    np.savez_compressed(buf, **result.arrays)
    atomic_write_bytes(directory / "weights.npz", buf.getvalue())
    metrics = result.metrics()
    metrics["provenance"] = provenance(result.device, result.wall_seconds)
    text = json.dumps(metrics, indent=1, default=_json_default) + "\n"
    atomic_write_bytes(directory / "metrics.json", text.encode())
    return directory


def load_celltype(directory: str | os.PathLike) -> CelltypeResult:
    """Read a run folder written by :func:`save_celltype` (``python -m biornn celltype train``)."""
    metrics, arrays = load_run(directory, required=("W_init", "W_dense", "W_sparse", "mask", "signs"))
    try:
        config = CelltypeConfig.from_dict(metrics["config"])
    except (TypeError, KeyError) as exc:
        raise BiornnError(f"{directory}/metrics.json is not a cell-type run ({exc}); pass the folder written by "
                          "python -m biornn celltype train") from None
    wall = metrics.get("provenance", {}).get("wall_seconds", float("nan"))
    return CelltypeResult(config, metrics.get("device", "?"), metrics["runs"], arrays, metrics.get("data", {}),
                          wall, Path(directory), metrics.get("kernels", {}))


def benchmark_epochs(sizes=(192, 32, 16), n_seeds: int = 5, steps: int = 15, batch_size: int = 200,
                     n_samples: int = 2000, device: str | None = None, pruning: str = "default",
                     input_mapping: str = "dense") -> dict:
    """Time one dense Dale's epoch and one masked fine-tuning epoch of the given sizes (random data).

    Exactly the inner loop of :func:`train_celltype` (:func:`train_epoch`): dense Adam steps with the Dale
    projection; then :func:`prune_mask` on the trained weights and one epoch with the masked gradient, projection
    and mask. No held-out evaluation, no checkpoints. ``n_samples / batch_size`` batches per epoch.

    Returns:
        ``{"dense_s", "finetune_s"`` (seconds per epoch, all seeds together), ``"prune_s"``, ``"batches"``,
        ``"n_hidden"``, ``"n_seeds"``, ``"steps"``, ``"device"``, ``"mask_density"}``.
    """
    dev = get_device(device)
    seeds = list(range(n_seeds))
    g = torch.Generator().manual_seed(0)
    x = torch.rand((n_samples, steps, 18), generator=g).mul_(0.3).to(dev)
    y = torch.rand((n_samples, steps, 18), generator=g).mul_(0.3).to(dev)
    model = CelltypeRNN(seeds, sizes_dict(sizes), input_mapping).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    perms = _permutations(seeds, n_samples, "benchmark").to(dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    sync()
    t0 = time.perf_counter()
    train_epoch(model, opt, x, y, perms, batch_size, True, None)
    sync()
    t1 = time.perf_counter()
    mask = prune_mask(model.w_rec.detach(), seeds, sizes, pruning)
    with torch.no_grad():
        model.w_rec.mul_(mask)
    keep = mask.float()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sync()
    t2 = time.perf_counter()
    train_epoch(model, opt, x, y, perms, batch_size, True, keep)
    sync()
    t3 = time.perf_counter()
    return {"dense_s": t1 - t0, "prune_s": t2 - t1, "finetune_s": t3 - t2, "batches": math.ceil(n_samples / batch_size),
            "n_hidden": model.n_hidden, "n_seeds": n_seeds, "steps": steps, "device": dev.type,
            "mask_density": float(mask.double().mean())}
