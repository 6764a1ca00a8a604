"""Training-speed benchmark: biornn's batched RNNs against the reference's naive per-step loops.

Run ``make bench`` (or ``.venv/bin/python benchmarks/run.py --help``). Every number of one workload is measured in
ONE process, interleaved batch by batch, so background load hits all variants alike and the ratios are fair.

What is timed, per workload (Dale's backprop: state rectification + projection of ``W_hh`` after every step):

* **biornn**: :class:`biornn.nn.models.EIRNN` with all ``S`` seeds batched (default 5), the training step of
  :func:`biornn.nn.train.train`: zero grads, forward, :func:`biornn.nn.train.per_seed_loss`, backward through the
  hand-written BPTT of :func:`biornn.nn.models.rnn_core`, one Adam step, in-place
  :func:`biornn.nn.constraints.dale_project_`.
* **naive**: the reference's way (fig2-dales-backprop.md §2, 4, 5, Q19). One seed at a time, its own Adam; per
  time step one ``nn.RNN`` call on a single step with the hidden state carried, the state rectified by multiplying
  with the mask ``[h > 0]``, the readout applied every step (also for MNIST, where only the last step is used);
  after every optimiser step a NumPy round trip of the recurrent matrix (``.detach().cpu().numpy()``, strict-sign
  mask multiply in NumPy, copy back into the parameter). The reference trains its 5 runs one after another, so one
  seed is timed and its seconds per epoch are the naive seconds per seed-epoch (5 seeds = 5 x that). The baseline is
  kept conservative (favourable to the naive loop): no ``DataLoader`` (batches are indexed from a tensor, as for
  biornn), no test pass, and the projection is copied back in place (the reference's re-assignment also forced a
  cuDNN weight re-compaction on GPUs).
* **autograd ablation**: the same batched biornn model and step, but with a plain-autograd recurrent loop in place of
  the hand-written backward, so the table shows what the hand-written BPTT buys on its own (``autograd / biornn``).
  ``--ablation unbind`` (default): :func:`autograd_core_unbind`, the maths of
  :func:`biornn.nn.models.rnn_core_autograd` with the steps taken by ``U.unbind(1)``. ``--ablation models``:
  :func:`biornn.nn.models.rnn_core_autograd` itself, which indexes ``U[:, t]`` in the loop; every such select's backward
  materialises a zero-filled gradient the size of the whole ``U`` and adds it up, O(T^2) memory traffic that makes
  the T = 500 wave row about 15x slower than the unbind loop (it then dominates the run's wall time).

Extrapolation: a full epoch would take minutes, so each variant runs ``--warmup`` untimed batches and then
``--steps`` timed batches; seconds per seed-epoch = median seconds per batch x batches per epoch (/ ``S`` for the
batched variants). Only the training batches are timed (no per-epoch test pass, no data generation).

FLOPs (per seed-epoch, counted honestly from the arithmetic the model needs; elementwise ops are not counted):

* forward, per sequence: recurrent matmuls ``2 N^2`` for each of the ``T - 1`` steps that have a previous state
  (``r_0 = 0``), input projection ``2 N I`` per step, readout ``2 N O`` per read-out step (``O`` = outputs; the
  wave's E and I readouts together read the N units once, so ``2 N``); MNIST reads out the last step only;
* backward: 2x forward for the recurrent and readout matmuls (gradient of the state and of the weights), 1x for
  the input projection (weight gradient only; the data need no gradient);
* total = ``n_train x [3 (T-1) 2N^2 + 2 T 2NI + 3 T_out 2N O_eff]``.

Limit fraction = (FLOPs per seed-epoch / matmul throughput) / biornn's seconds per seed-epoch, with the throughput
measured on the spot as the best of a few timed blocks of ``bmm((S, B, N), (S, N, N))``, the shape of one
recurrent step (the step that bounds a sequential recurrence), before and after the timing rounds. 1.0 would mean
biornn runs at pure matmul speed. Ceiling = naive seconds / FLOP-bound seconds: the largest naive/biornn ratio that
any implementation could reach on this device (on a CPU the naive loop is itself within a few x of the FLOP bound,
so large ratios are a GPU story, where the naive loop is bound by kernel launches instead).

Results: a printed table, and ``benchmarks/results/<device>.json`` (``cpu-2threads``, or the sanitized CUDA device
name) mapping each workload to ``{"biornn_s", "naive_s", "ratio", "limit_fraction", ...}`` plus a ``"meta"`` entry.

Before timing, every workload checks that the naive loop and biornn compute the same loss (and ``W_hh`` gradient)
on the same initial weights and batch, so the comparison is apples to apples.

Cell-type model (Figs 4-5, ``docs/paper/fig4-5-celltype-rnn.md``; :class:`CelltypeWorkload`): N = 1440 (18 populations,
sizes 192 / 32 / 16), I = O = 18, T = 15, B = 200, 2000 samples per epoch, MSE every step, frozen readouts.

* ``celltype_dense``: the dense stage. **biornn** = one batch of :func:`biornn.celltype.train_epoch` itself (all
  seeds, Adam, in-place Dale projection); **naive** = the reference's cell, one seed: per step
  ``tanh(W_in x_t + W_rec r)`` with ``nn.Linear`` layers, ``r = a * (a > 0)``, 18 frozen ``nn.Linear(n_p, 1)``
  readouts every step, then the NumPy round trip of ``W_rec`` (Pyr columns ``max(w, 0)``, SST/VIP ``min(w, 0)``).
* ``celltype_pruned``: the masked fine-tuning stage with a fixed mask from :func:`biornn.celltype.prune_mask` of the
  initial weights (block-wise top-prob at the table's densities, inter-area pathways): biornn masks the gradient,
  projects and masks; the naive loop adds the mask multiply to its NumPy round trip. **sparse** = the same
  ``train_epoch`` batch with biornn's CSR kernels (:meth:`biornn.nn.models.CelltypeRNN.use_sparse_kernels`, what
  fine-tuning runs on the CPU: a CSR ``W_rec`` per seed, ``addmm`` forward, ``W^T`` products backward,
  ``sampled_addmm`` for the weight gradient at the kept entries only).
* ``prune_blockwise_1440`` (:class:`PruneWorkload`): median seconds of one :func:`biornn.celltype.prune_mask` call on
  ``(S, 1440, 1440)`` weights, plus the within-area block-wise top-prob draw alone.

The cell-type FLOP count uses the dense ``W_rec`` (biornn's dense path does not exploit sparsity) and a frozen
readout (backward 1x); the equivalence check also compares the post-step (must agree exactly) and, for the pruned
stage, the sparse kernels' loss and kept-entry gradient.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import biornn.nn.models as biornn_models
from biornn.celltype import per_seed_mse, prune_mask, sizes_dict, train_epoch
from biornn.core.config import tune_allocator
from biornn.nn.connectivity import (
    block_density,
    load_inter_area,
    load_within_area,
    population_index,
    populations,
    unit_signs,
)
from biornn.nn.constraints import apply_post_step, dale_project_, get_method
from biornn.nn.models import EIRNN, CelltypeRNN, _backprop_states, _core_forward, make_signs, rnn_core_autograd
from biornn.nn.tasks import flipflop_batch, wave_signals, wave_windows
from biornn.nn.train import per_seed_loss
from biornn.pruning import blockwise_mask

RESULTS_DIR = Path(__file__).resolve().parent / "results"
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state", category=UserWarning)

#: Loss agreement required between the naive loop and biornn (relative to ``max(1, |loss|)``).
LOSS_TOL = 1e-5
#: ``W_hh`` gradient agreement required (relative Frobenius error).
GRAD_TOL = 1e-3


@dataclass(frozen=True)
class Workload:
    """One benchmark workload: the shapes of one task's training epoch.

    Attributes:
        name: key in :data:`WORKLOADS` and in the results JSON.
        label: human-readable name.
        steps: T, time steps per sequence.
        n_in: I, input size.
        batch: B, sequences per optimiser step.
        n_train: training sequences per epoch.
        n_out: readout size.
        kind: ``"regression"`` (MSE every step) or ``"classification"`` (cross-entropy on the last step).
        data: ``"flipflop"``, ``"wave"`` (the real generators) or ``"images"`` (uniform random pixels, MNIST's shape).
        hidden: N.
        output_tanh: tanh on the readout (flip-flop).
        split_readout: wave's E readout (E units -> 1) and I readout (I units -> 1).
    """

    name: str
    label: str
    steps: int
    n_in: int
    batch: int
    n_train: int
    n_out: int
    kind: str
    data: str
    hidden: int = 128
    output_tanh: bool = False
    split_readout: bool = False

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.n_train / self.batch)

    @property
    def last_step_only(self) -> bool:
        return self.kind == "classification"

    @property
    def n_exc(self) -> int:
        return int(0.8 * self.hidden)


@dataclass(frozen=True)
class CelltypeWorkload:
    """One stage of the cell-type model's training (docs/paper/fig4-5-celltype-rnn.md, sections 3 and 4.3).

    Attributes:
        name: key in :data:`WORKLOADS` and in the results JSON.
        label: human-readable name.
        stage: ``"dense"`` (Dale's projection after every step) or ``"pruned"`` (masked fine-tuning: gradient
            zeroed outside a fixed block-wise top-prob mask, projection, mask).
        sizes: units per population ``(Pyr, SST, VIP)``; 18 populations (2 areas x 3 layers x 3 types), so
            ``N = 6 (Pyr + SST + VIP)`` = 1440 for the paper's ``(192, 32, 16)``.
        steps: T (15: the full window). n_in, n_out: the 18 populations.
        batch: B. n_train: samples per epoch (2000: 10 batches).
        input_mapping: ``dense`` (as the reference ran, Q1 in the Figs 4-5 docs page; the naive loop uses it too).
        pruning: :func:`biornn.celltype.prune_mask`'s bookkeeping (``default`` or ``as_published``).
    """

    name: str
    label: str
    stage: str
    sizes: tuple[int, int, int] = (192, 32, 16)
    steps: int = 15
    batch: int = 200
    n_train: int = 2000
    n_in: int = 18
    n_out: int = 18
    input_mapping: str = "dense"
    pruning: str = "default"

    @property
    def hidden(self) -> int:
        return int(population_index(sizes_dict(self.sizes)).size)

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.n_train / self.batch)

    @property
    def pruned(self) -> bool:
        return self.stage == "pruned"


@dataclass(frozen=True)
class PruneWorkload:
    """Block-wise top-prob pruning of ``(S, N, N)`` recurrent matrices (:func:`biornn.celltype.prune_mask`).

    Attributes:
        name, label: as for :class:`Workload`.
        sizes: units per population ``(Pyr, SST, VIP)`` (N = 1440 for the paper's sizes).
        pruning: ``default`` or ``as_published``.
    """

    name: str
    label: str
    sizes: tuple[int, int, int] = (192, 32, 16)
    pruning: str = "default"

    @property
    def hidden(self) -> int:
        return int(population_index(sizes_dict(self.sizes)).size)


AnyWorkload = Workload | CelltypeWorkload | PruneWorkload


# ----------------------------------------------------------------------------------------------------------------
# Workload registry. Add new workloads here; the rest of the script needs no change for plain E/I RNNs.
# ----------------------------------------------------------------------------------------------------------------
WORKLOADS: dict[str, AnyWorkload] = {
    "flipflop": Workload("flipflop", "flip-flop", steps=50, n_in=1, batch=200, n_train=6000, n_out=1,
                         kind="regression", data="flipflop", output_tanh=True),
    "wave": Workload("wave", "wave", steps=500, n_in=2, batch=100, n_train=1000, n_out=2,
                     kind="regression", data="wave", split_readout=True),
    "mnist_shapes": Workload("mnist_shapes", "seq-MNIST shapes", steps=28, n_in=28, batch=200, n_train=60000,
                             n_out=10, kind="classification", data="images"),
    # The cell-type model of Figs 4-5 (docs/paper/fig4-5-celltype-rnn.md): see CelltypeWorkload and PruneWorkload below.
    "celltype_dense": CelltypeWorkload("celltype_dense", "cell-type dense", stage="dense"),
    "celltype_pruned": CelltypeWorkload("celltype_pruned", "cell-type pruned", stage="pruned"),
    "prune_blockwise_1440": PruneWorkload("prune_blockwise_1440", "block-wise top-prob pruning, N = 1440"),
}


def smoke_workload(w: AnyWorkload) -> AnyWorkload:
    """A tiny version of ``w`` for ``--smoke`` (a few milliseconds per step)."""
    if isinstance(w, CelltypeWorkload):
        return replace(w, sizes=(4, 2, 2), steps=min(w.steps, 6), batch=8, n_train=32)  # N = 48
    if isinstance(w, PruneWorkload):
        return replace(w, sizes=(4, 2, 2))
    return replace(w, steps=min(w.steps, 6), batch=8, n_train=32, hidden=16)


# ----------------------------------------------------------------------------------------------------------------
# FLOPs
# ----------------------------------------------------------------------------------------------------------------
def flops_per_sequence(w: Workload) -> dict[str, float]:
    """Forward and forward+backward matmul FLOPs of one training sequence (see the module docstring)."""
    N, T, I = w.hidden, w.steps, w.n_in
    rec = 2.0 * N * N * (T - 1)
    inp = 2.0 * N * I * T
    t_out = 1 if w.last_step_only else T
    o_eff = 1 if w.split_readout else w.n_out  # wave: E and I readouts read disjoint units, N in all
    out = 2.0 * N * o_eff * t_out
    return {"forward": rec + inp + out, "total": 3 * rec + 2 * inp + 3 * out}


def flops_per_seed_epoch(w: Workload) -> float:
    """Forward+backward matmul FLOPs of one seed's training epoch."""
    return flops_per_sequence(w)["total"] * w.batches_per_epoch * w.batch


# ----------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------
def make_pool(w: Workload, n_seeds: int, n_pool: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_pool`` training sequences per seed: ``x`` ``(S, n, T, I)``, ``y`` ``(S, n, T, O)`` or ``(S, n)`` labels."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for _ in range(n_seeds):
        if w.data == "flipflop":
            x, y = flipflop_batch(rng, n_pool, w.steps)
        elif w.data == "wave":
            signals, _ = wave_signals(rng)
            x, y = wave_windows(rng, signals, n_pool, w.steps, 0, signals.shape[1] - w.steps - 1)
        elif w.data == "images":
            x = rng.random((n_pool, w.steps, w.n_in), dtype=np.float32)
            y = rng.integers(0, w.n_out, size=n_pool)
        else:
            raise ValueError(f"unknown data kind {w.data!r}")
        xs.append(x)
        ys.append(y)
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


class BatchStream:
    """Shuffled mini-batches ``(S, B, ...)`` from a pool, one permutation per seed (as
    :func:`biornn.nn.train.train`)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch: int, seed: int = 0):
        self.x, self.y, self.batch = x, y, batch
        self.gen = torch.Generator().manual_seed(seed)
        self.rows = torch.arange(x.shape[0], device=x.device)[:, None]

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        S, n = self.x.shape[:2]
        idx = torch.stack([torch.randperm(n, generator=self.gen)[:self.batch] for _ in range(S)]).to(self.x.device)
        return self.x[self.rows, idx], self.y[self.rows, idx]


# ----------------------------------------------------------------------------------------------------------------
# biornn (and its autograd ablation)
# ----------------------------------------------------------------------------------------------------------------
def build_biornn(w: Workload, n_seeds: int, device: torch.device) -> EIRNN:
    """The batched Dale's model of ``w``: state rectification on, readouts as the task needs."""
    mask = None
    if w.split_readout:
        mask = np.zeros((2, w.hidden), dtype=np.float32)
        mask[0, :w.n_exc] = 1.0
        mask[1, w.n_exc:] = 1.0
    return EIRNN(range(n_seeds), w.n_in, w.n_out, n_hidden=w.hidden, rectify_state=True, readout_mask=mask,
                 output_tanh=w.output_tanh, last_step_only=w.last_step_only).to(device)


def autograd_core_unbind(U: torch.Tensor, W: torch.Tensor, rectify: bool) -> torch.Tensor:
    """:func:`biornn.nn.models.rnn_core_autograd`'s maths with ``U.unbind(1)`` (one O(T) backward for all the steps)."""
    outs, r = [], torch.zeros_like(U[:, 0])
    for u in U.unbind(1):
        a = torch.tanh(u + torch.bmm(r, W.transpose(1, 2)))
        outs.append(a)
        r = torch.relu(a) if rectify else a
    return torch.stack(outs, dim=1)


#: Plain-autograd cores for the ablation row (``--ablation``).
ABLATION_CORES: dict[str, Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]] = {
    "unbind": autograd_core_unbind,
    "models": rnn_core_autograd,
}


@contextlib.contextmanager
def patched_core(core: Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]) -> Iterator[None]:
    """Make :class:`EIRNN` use ``core`` instead of the hand-written BPTT :func:`biornn.nn.models.rnn_core`."""
    saved = biornn_models.rnn_core
    biornn_models.rnn_core = core
    try:
        yield
    finally:
        biornn_models.rnn_core = saved


class BiornnTrainer:
    """One batched Dale's training step, exactly as the inner loop of :func:`biornn.nn.train.train`."""

    def __init__(self, w: Workload, n_seeds: int, device: torch.device,
                 core: Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor] | None = None):
        self.w = w
        self.model = build_biornn(w, n_seeds, device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
        self.method = get_method("dales")
        self.core = core
        self.run_loss = torch.zeros(n_seeds, dtype=torch.float64, device=device)

    def losses(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """``(S,)`` per-seed losses of one batch (graph kept for backward)."""
        ctx = patched_core(self.core) if self.core is not None else contextlib.nullcontext()
        with ctx:
            return per_seed_loss(self.model(xb), yb, self.w.kind)

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        """Zero grads, forward, loss, backward, Adam, in-place projection, loss bookkeeping."""
        self.opt.zero_grad(set_to_none=True)
        losses = self.losses(xb, yb)
        losses.sum().backward()
        self.opt.step()
        apply_post_step(self.method, self.model.recurrent_param.data, self.model.signs)
        self.run_loss += losses.detach().double() * xb.shape[1]


# ----------------------------------------------------------------------------------------------------------------
# The naive reference loop
# ----------------------------------------------------------------------------------------------------------------
class NaiveRNN(nn.Module):
    """The reference's model: ``nn.RNN`` called one step at a time, Dale's state rectification, per-step readout."""

    def __init__(self, w: Workload):
        super().__init__()
        self.w = w
        self.rnn = nn.RNN(w.n_in, w.hidden, nonlinearity="tanh", batch_first=True)
        if w.split_readout:
            self.out_e = nn.Linear(w.n_exc, 1)
            self.out_i = nn.Linear(w.hidden - w.n_exc, 1)
        else:
            self.out = nn.Linear(w.hidden, w.n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(B, T, I)`` -> per-step outputs (``(B, T, O)``, or wave's ``(yE, yI)`` each ``(B, T)``), or
        the last step's logits ``(B, O)`` for classification."""
        B, T, _ = x.shape
        h = torch.zeros(1, B, self.w.hidden, device=x.device)
        outs_e, outs_i, outs = [], [], []
        for t in range(T):
            a, h = self.rnn(x[:, t:t + 1, :], h)
            h = h * (h > 0)  # Dale's: r_t = relu(h_t), as the reference's mask multiplication
            a = a[:, 0]  # readouts read the unrectified h_t
            if self.w.split_readout:
                outs_e.append(self.out_e(a[:, :self.w.n_exc])[:, 0])
                outs_i.append(self.out_i(a[:, self.w.n_exc:])[:, 0])
            else:
                y = self.out(a)
                outs.append(torch.tanh(y) if self.w.output_tanh else y)
        if self.w.split_readout:
            return torch.stack(outs_e, 1), torch.stack(outs_i, 1)
        if self.w.last_step_only:
            return outs[-1]
        return torch.stack(outs, 1)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The reference's loss: MSE (wave: E and I rows stacked to ``(2B, T)``) or last-step cross-entropy."""
        out = self(x)
        if self.w.split_readout:
            return F.mse_loss(torch.cat(out, 0), torch.cat([y[..., 0], y[..., 1]], 0))
        if self.w.last_step_only:
            return F.cross_entropy(out, y)
        return F.mse_loss(out, y)


def copy_seed_weights(naive: NaiveRNN, model: EIRNN, s: int) -> None:
    """Load seed ``s`` of the batched model into the naive model (same initial weights)."""
    w = naive.w
    with torch.no_grad():
        naive.rnn.weight_ih_l0.copy_(model.w_ih[s])
        naive.rnn.weight_hh_l0.copy_(model.effective_w_hh()[s])
        naive.rnn.bias_ih_l0.copy_(model.b_ih[s])
        naive.rnn.bias_hh_l0.copy_(model.b_hh[s])
        if w.split_readout:
            naive.out_e.weight.copy_(model.w_out[s, 0:1, :w.n_exc])
            naive.out_e.bias.copy_(model.b_out[s, 0:1])
            naive.out_i.weight.copy_(model.w_out[s, 1:2, w.n_exc:])
            naive.out_i.bias.copy_(model.b_out[s, 1:2])
        else:
            naive.out.weight.copy_(model.w_out[s])
            naive.out.bias.copy_(model.b_out[s])


class NaiveTrainer:
    """One seed's training step the reference's way, with the NumPy round trip of ``W_hh`` after every step."""

    def __init__(self, w: Workload, device: torch.device):
        self.model = NaiveRNN(w).to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
        self.signs = make_signs(w.hidden).numpy()
        self.running = 0.0

    def project_numpy(self) -> None:
        """The reference's projection: to NumPy, multiply by the strict-sign mask, copy back into the parameter."""
        p = self.model.rnn.weight_hh_l0
        W = p.detach().cpu().numpy()
        keep = np.where(self.signs > 0, W > 0, W < 0)  # E columns > 0, I columns < 0
        W = W * keep
        with torch.no_grad():
            p.copy_(torch.from_numpy(W).to(p.device))

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        """Zero grads, forward, loss, backward, Adam, NumPy projection, ``loss.item()`` into the epoch sum."""
        self.opt.zero_grad(set_to_none=True)
        loss = self.model.loss(xb, yb)
        loss.backward()
        self.opt.step()
        self.project_numpy()
        self.running += loss.item()


# ----------------------------------------------------------------------------------------------------------------
# Checks and timing
# ----------------------------------------------------------------------------------------------------------------
def check_equivalence(w: Workload, device: torch.device, n_seeds: int = 2, seed: int = 0) -> dict[str, float]:
    """Same initial weights, same batch: the naive loop and biornn must give the same loss and ``W_hh`` gradient.

    Checks every seed of a small batched model against a naive model loaded with that seed's weights.

    Returns:
        ``{"loss_diff": max |loss_naive - loss_biornn|, "grad_rel": max relative gradient error}``.

    Raises:
        AssertionError: when the two disagree beyond :data:`LOSS_TOL` / :data:`GRAD_TOL`.
    """
    x, y = make_pool(w, n_seeds, min(w.batch, 64), seed=seed + 1)
    x, y = x.to(device), y.to(device)
    trainer = BiornnTrainer(w, n_seeds, device)
    losses = trainer.losses(x, y)
    losses.sum().backward()
    g_batched = trainer.model.w_hh.grad
    loss_diff = grad_rel = 0.0
    for s in range(n_seeds):
        naive = NaiveTrainer(w, device)
        copy_seed_weights(naive.model, trainer.model, s)
        loss = naive.model.loss(x[s], y[s])
        loss.backward()
        ref = float(losses[s].detach())
        diff = abs(float(loss.detach()) - ref)
        g = naive.model.rnn.weight_hh_l0.grad
        rel = float((g - g_batched[s]).norm() / g_batched[s].norm().clamp_min(1e-30))
        if diff > LOSS_TOL * max(1.0, abs(ref)) or not rel <= GRAD_TOL:
            raise AssertionError(f"{w.name}: naive and biornn disagree on seed {s}: loss {float(loss.detach()):.8g} vs "
                                 f"{ref:.8g} (diff {diff:.2e}), W_hh gradient relative error {rel:.2e}")
        loss_diff, grad_rel = max(loss_diff, diff), max(grad_rel, rel)
    return {"loss_diff": loss_diff, "grad_rel": grad_rel}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(w: Workload, n_seeds: int, device: torch.device, blocks: int = 5,
                  min_block_s: float = 0.05) -> float:
    """Best-of-``blocks`` throughput (GFLOP/s) of ``bmm((S, B, N), (S, N, N))``, one recurrent step's shape."""
    a = torch.randn(n_seeds, w.batch, w.hidden, device=device)
    b = torch.randn(n_seeds, w.hidden, w.hidden, device=device)
    c = torch.empty(n_seeds, w.batch, w.hidden, device=device)
    flop = 2.0 * n_seeds * w.batch * w.hidden ** 2
    for _ in range(3):
        torch.bmm(a, b, out=c)
    _sync(device)
    reps, best = 1, 0.0
    while True:  # size a block to last about min_block_s
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.bmm(a, b, out=c)
        _sync(device)
        dt = time.perf_counter() - t0
        if dt >= min_block_s:
            best = max(best, flop * reps / dt)
            break
        reps *= 4 if dt < min_block_s / 8 else 2
    for _ in range(blocks - 1):
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.bmm(a, b, out=c)
        _sync(device)
        best = max(best, flop * reps / (time.perf_counter() - t0))
    return best / 1e9


def time_interleaved(steppers: dict[str, Callable[[], None]], warmup: int, steps: int,
                     device: torch.device) -> dict[str, list[float]]:
    """Run the steppers in turn, ``warmup + steps`` rounds; return each one's timed seconds per step."""
    times: dict[str, list[float]] = {k: [] for k in steppers}
    for r in range(warmup + steps):
        for name, fn in steppers.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            if r >= warmup:
                times[name].append(time.perf_counter() - t0)
    return times


class FloorStep:
    """The per-step floor at a workload's shapes: the recurrence alone, forward and backward, with no model around it.

    Per batch: the forward loop (``T`` steps of ``bmm`` plus ``tanh`` and the state rectification), the backward
    loop (``T`` steps of ``bmm`` with ``W`` and the elementwise derivative) and the one weight-gradient ``bmm``, on
    random inputs of the batch's shape: biornn's own core (:func:`biornn.nn.models._core_forward`,
    :func:`biornn.nn.models._backprop_states`). What biornn spends beyond it is the input projection, the readout, the
    loss, autograd's bookkeeping, Adam and the post-step.
    """

    def __init__(self, w: Workload, n_seeds: int, device: torch.device):
        g = torch.Generator().manual_seed(0)
        shape = (n_seeds, w.steps, w.batch, w.hidden)
        self.U = torch.randn(shape, generator=g).mul_(0.5).to(device)
        self.gA = torch.randn(shape, generator=g).to(device)
        self.W = (torch.randn(n_seeds, w.hidden, w.hidden, generator=g) / w.hidden ** 0.5).to(device)

    def step(self) -> None:
        A = _core_forward(self.U, self.W, 0.0)
        dZ = _backprop_states(self.gA, A, 0.0, lambda dz: torch.bmm(dz, self.W))
        S, T, B, N = A.shape
        torch.bmm(dZ[:, 1:].reshape(S, (T - 1) * B, N).transpose(1, 2), A[:, :-1].clamp_min(0).reshape(S, -1, N))


def bench_workload(w: Workload, n_seeds: int, device: torch.device, warmup: int, steps: int,
                   ablation: str | None = "unbind", quick_matmul: bool = False) -> dict:
    """Measure one workload; returns its JSON entry (seconds per seed-epoch and the rest)."""
    check = check_equivalence(w, device)
    n_pool = max(4 * w.batch, 256)
    x, y = make_pool(w, n_seeds, n_pool)
    x, y = x.to(device), y.to(device)
    batched = BatchStream(x, y, w.batch, seed=1)
    naive = NaiveTrainer(w, device)
    bt = BiornnTrainer(w, n_seeds, device)
    copy_seed_weights(naive.model, bt.model, 0)
    steppers: dict[str, Callable[[], None]] = {"biornn": lambda: bt.step(*batched.next())}
    if ablation:
        at = BiornnTrainer(w, n_seeds, device, core=ABLATION_CORES[ablation])
        steppers["autograd"] = lambda: at.step(*batched.next())

    def naive_step() -> None:
        xb, yb = batched.next()
        naive.step(xb[0], yb[0])  # one seed; the reference trains seeds one after another

    steppers["naive"] = naive_step
    steppers["floor"] = FloorStep(w, n_seeds, device).step
    mm_opts = {"blocks": 2, "min_block_s": 0.002} if quick_matmul else {}
    gflops = matmul_gflops(w, n_seeds, device, **mm_opts)
    times = time_interleaved(steppers, warmup, steps, device)
    gflops = max(gflops, matmul_gflops(w, n_seeds, device, **mm_opts))  # before and after: the better of the two
    shapes = {"T": w.steps, "I": w.n_in, "B": w.batch, "N": w.hidden, "O": w.n_out, "n_train": w.n_train}
    return timing_entry(times, w.batches_per_epoch, n_seeds, flops_per_seed_epoch(w), gflops, shapes, check)


def timing_entry(times: dict[str, list[float]], bpe: int, n_seeds: int, flops: float, gflops: float,
                 shapes: dict, check: dict) -> dict:
    """The fields every RNN row shares, from per-batch times of the variants (``biornn`` and ``autograd`` batched
    over ``n_seeds``; ``naive`` and ``sparse`` per seed or batched as timed): seconds per seed-epoch, the ratio,
    the FLOP-bound limit and ceiling."""
    per_batch = {k: statistics.median(v) for k, v in times.items()}
    mins = {k: min(v) for k, v in times.items()}
    biornn_s = per_batch["biornn"] * bpe / n_seeds
    naive_s = per_batch["naive"] * bpe
    limit_s = flops / (gflops * 1e9)
    entry = {
        "biornn_s": biornn_s,
        "naive_s": naive_s,
        "ratio": naive_s / biornn_s,
        "limit_fraction": limit_s / biornn_s,
        "limit_s": limit_s,
        "ceiling_ratio": naive_s / limit_s,
        "ratio_of_min_batches": mins["naive"] * n_seeds / mins["biornn"],
        "flops_per_seed_epoch": flops,
        "matmul_gflops": gflops,
        "batches_per_epoch": bpe,
        "shapes": shapes,
        "seconds_per_batch": {k: {"median": per_batch[k], "min": min(v), "max": max(v)} for k, v in times.items()},
        "check": check,
    }
    if "floor" in per_batch:
        entry["floor_s"] = per_batch["floor"] * bpe / n_seeds
        entry["biornn_over_floor"] = biornn_s / entry["floor_s"]
    if "autograd" in per_batch:
        entry["autograd_s"] = per_batch["autograd"] * bpe / n_seeds
        entry["autograd_over_biornn"] = entry["autograd_s"] / biornn_s
    return entry


# ----------------------------------------------------------------------------------------------------------------
# The cell-type model (Figs 4-5): biornn's stage loop, the reference's per-step loop, a torch.sparse variant
# ----------------------------------------------------------------------------------------------------------------
def celltype_flops_per_sequence(w: CelltypeWorkload) -> dict[str, float]:
    """Forward and forward+backward matmul FLOPs of one cell-type training sequence (dense ``W_rec``).

    Recurrent ``2 N^2`` for each of the ``T - 1`` steps with a previous state, input projection ``2 N I`` per step,
    readout ``2 N`` per step (every unit feeds only its own population's output). Backward: 2x for the recurrent
    matmul (state and weight gradients), 1x for the input projection (weight gradient only) and 1x for the readout
    (frozen weights: state gradient only).
    """
    N, T, I = w.hidden, w.steps, w.n_in
    rec = 2.0 * N * N * (T - 1)
    inp = 2.0 * N * I * T
    out = 2.0 * N * T
    return {"forward": rec + inp + out, "total": 3 * rec + 2 * inp + 2 * out}


def celltype_masked_flops_per_sequence(w: CelltypeWorkload, nnz: float) -> float:
    """As :func:`celltype_flops_per_sequence` with the recurrent matmul over ``nnz`` kept entries only."""
    f = celltype_flops_per_sequence(w)
    N, T = w.hidden, w.steps
    rec, rec_sparse = 2.0 * N * N * (T - 1), 2.0 * nnz * (T - 1)
    return f["total"] - 3 * rec + 3 * rec_sparse


def celltype_data(w: CelltypeWorkload, device: torch.device, n: int | None = None,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n, T, 18)`` inputs and targets, uniform in ``[0, 0.3)`` (as :func:`biornn.celltype.benchmark_epochs`)."""
    g = torch.Generator().manual_seed(seed)
    n = w.n_train if n is None else n
    x = torch.rand((n, w.steps, w.n_in), generator=g).mul_(0.3)
    y = torch.rand((n, w.steps, w.n_out), generator=g).mul_(0.3)
    return x.to(device), y.to(device)


class PermStream:
    """Random ``(rows, B)`` sample indices, one row per seed (as :func:`biornn.celltype.train_epoch` slices them)."""

    def __init__(self, n: int, n_seeds: int, batch: int, device: torch.device, seed: int = 1):
        self.n, self.n_seeds, self.batch, self.device = n, n_seeds, batch, device
        self.gen = torch.Generator().manual_seed(seed)

    def next(self, rows: int | None = None) -> torch.Tensor:
        rows = self.n_seeds if rows is None else rows
        return torch.stack([torch.randperm(self.n, generator=self.gen)[:self.batch] for _ in range(rows)]).to(
            self.device)


def build_celltype(w: CelltypeWorkload, n_seeds: int, device: torch.device) -> tuple[CelltypeRNN, torch.Tensor | None]:
    """The batched :class:`CelltypeRNN` and, for the pruned stage, its ``(S, N, N)`` Boolean mask (already applied).

    The mask is :func:`biornn.celltype.prune_mask` of the initial weights: block-wise top-prob within areas at the
    table's densities, the three inter-area pathways at 0.3, everything else empty (as after the dense stage).
    """
    seeds = list(range(n_seeds))
    model = CelltypeRNN(seeds, sizes_dict(w.sizes), w.input_mapping).to(device)
    if not w.pruned:
        return model, None
    mask = prune_mask(model.w_rec.detach(), seeds, w.sizes, w.pruning)
    with torch.no_grad():
        model.w_rec.mul_(mask)
    return model, mask


class CelltypeTrainer:
    """biornn's step: one batch of :func:`biornn.celltype.train_epoch` itself (masked gradient, Adam, projection,
    mask for the pruned stage), optionally with a plain-autograd recurrent core (the ablation)."""

    def __init__(self, w: CelltypeWorkload, n_seeds: int, device: torch.device,
                 core: Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor] | None = None,
                 sparse: bool = False):
        self.w = w
        self.model, self.mask = build_celltype(w, n_seeds, device)
        self.keep = None if self.mask is None else self.mask.float()
        if sparse:  # biornn's CSR kernels over the mask (CelltypeRNN.use_sparse_kernels), as fine-tuning runs them
            self.model.use_sparse_kernels(self.keep)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.core = core

    def step(self, x: torch.Tensor, y: torch.Tensor, perms: torch.Tensor) -> None:
        ctx = patched_core(self.core) if self.core is not None else contextlib.nullcontext()
        with ctx:
            train_epoch(self.model, self.opt, x, y, perms, self.w.batch, True, self.keep)


class NaiveCelltypeRNN(nn.Module):
    """The reference's cell, one seed: per time step ``a = tanh(W_in x_t + W_rec r)``, ``r = a * (a > 0)``, and the 18
    frozen per-population readouts (``nn.Linear(n_p, 1)``) applied to ``a`` every step and concatenated."""

    def __init__(self, w: CelltypeWorkload):
        super().__init__()
        table = populations(sizes_dict(w.sizes))
        self.n_hidden = int(table["size"].sum())
        self.w_in = nn.Linear(w.n_in, self.n_hidden, bias=False)
        self.w_rec = nn.Linear(self.n_hidden, self.n_hidden, bias=False)
        self.bounds = [(int(a), int(b)) for a, b in zip(table["start"], table["stop"])]
        self.readouts = nn.ModuleList(nn.Linear(b - a, 1) for a, b in self.bounds)
        self.readouts.requires_grad_(False)  # frozen, as in the reference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, T, 18)`` -> predictions ``(B, T, 18)``."""
        B, T, _ = x.shape
        r = x.new_zeros(B, self.n_hidden)  # r_0 = 0; the reference multiplies it by W_rec all the same
        outs = []
        for t in range(T):
            a = torch.tanh(self.w_in(x[:, t]) + self.w_rec(r))
            r = a * (a > 0)
            outs.append(torch.cat([ro(a[:, lo:hi]) for ro, (lo, hi) in zip(self.readouts, self.bounds)], dim=1))
        return torch.stack(outs, 1)


def copy_celltype_weights(naive: NaiveCelltypeRNN, model: CelltypeRNN, s: int) -> None:
    """Load seed ``s`` of the batched model into the naive one."""
    with torch.no_grad():
        naive.w_in.weight.copy_(model.w_in[s])
        naive.w_rec.weight.copy_(model.w_rec[s])
        for p, (ro, (lo, hi)) in enumerate(zip(naive.readouts, naive.bounds)):
            ro.weight.copy_(model.w_out[s, lo:hi][None])
            ro.bias.copy_(model.b_out[s, p:p + 1])


class NaiveCelltypeTrainer:
    """One seed the reference's way: MSE, Adam, then the NumPy round trip of ``W_rec`` (projection and, when pruned,
    the mask multiply in NumPy) after every step. The reference does not mask the gradient: Adam is element-wise
    and pruned entries are zeroed again after every step, so the kept weights follow the same trajectory."""

    def __init__(self, w: CelltypeWorkload, device: torch.device, mask: np.ndarray | None = None):
        self.model = NaiveCelltypeRNN(w).to(device)
        self.opt = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad], lr=1e-3)
        self.signs = unit_signs(sizes_dict(w.sizes))
        self.mask = None if mask is None else np.asarray(mask, dtype=np.float32)
        self.running = 0.0

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.model(x), y)

    def project_numpy(self) -> None:
        """Pyr columns ``max(w, 0)``, SST/VIP columns ``min(w, 0)`` in NumPy, then ``* mask``, copied back."""
        p = self.model.w_rec.weight
        W = p.detach().cpu().numpy()
        W = np.where(self.signs > 0, np.maximum(W, 0), np.minimum(W, 0))
        if self.mask is not None:
            W = W * self.mask
        with torch.no_grad():
            p.copy_(torch.from_numpy(W).to(p.device))

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(xb, yb)
        loss.backward()
        self.opt.step()
        self.project_numpy()
        self.running += loss.item()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def check_celltype_equivalence(w: CelltypeWorkload, device: torch.device, n_seeds: int = 2,
                               seed: int = 0) -> dict[str, float | bool]:
    """Same initial weights (and mask), same batch: the naive loop, biornn and (pruned) the sparse variant agree.

    Checks per seed: the loss (to :data:`LOSS_TOL`), the ``W_rec`` gradient at the entries that are trained (all, or
    the kept ones; to :data:`GRAD_TOL` relative) and the post-step (biornn's ``dale_project_`` and mask multiply
    against the naive NumPy round trip, on weights with wrong-sign entries: must agree exactly).

    Returns:
        ``{"loss_diff", "grad_rel", "post_step_diff"}`` (maxima over seeds), for the pruned stage also
        ``"sparse_loss_diff"``, ``"sparse_grad_rel"``, and ``"passed": True``.

    Raises:
        AssertionError: when two implementations disagree.
    """
    model, mask = build_celltype(w, n_seeds, device)
    x, y = celltype_data(w, device, n=min(w.batch, 64), seed=seed + 1)
    xb, yb = x[None], y[None]  # one batch for every seed
    losses = per_seed_mse(model(xb), yb)
    losses.sum().backward()
    keep = None if mask is None else mask.float()
    g_batched = model.w_rec.grad if keep is None else model.w_rec.grad * keep
    out: dict[str, float | bool] = {"loss_diff": 0.0, "grad_rel": 0.0, "post_step_diff": 0.0}

    def fail(what: str, s: int, detail: str) -> None:
        raise AssertionError(f"{w.name}: {what} disagree on seed {s}: {detail}")

    # post-step input: the initial weights plus noise, so that some entries have the wrong sign
    gen = torch.Generator().manual_seed(seed + 2)
    W_post = model.w_rec.detach() + 0.02 * torch.randn(model.w_rec.shape, generator=gen).to(device)
    W_biornn = dale_project_(W_post.clone(), model.signs)
    if keep is not None:
        W_biornn.mul_(keep)
    for s in range(n_seeds):
        naive = NaiveCelltypeTrainer(w, device, None if mask is None else mask[s].cpu().numpy())
        copy_celltype_weights(naive.model, model, s)
        loss = naive.loss(x, y)
        loss.backward()
        ref = float(losses[s].detach())
        diff = abs(float(loss.detach()) - ref)
        g = naive.model.w_rec.weight.grad
        if keep is not None:
            g = g * keep[s]
        rel = _rel(g, g_batched[s])
        if diff > LOSS_TOL * max(1.0, abs(ref)) or not rel <= GRAD_TOL:
            fail("naive and biornn", s, f"loss {float(loss.detach()):.8g} vs {ref:.8g} (diff {diff:.2e}), W_rec "
                                        f"gradient relative error {rel:.2e}")
        with torch.no_grad():
            naive.model.w_rec.weight.copy_(W_post[s])
        naive.project_numpy()
        post = float((naive.model.w_rec.weight.detach() - W_biornn[s]).abs().max())
        if post != 0.0:
            fail("naive and biornn post-steps", s, f"max |difference| {post:.2e}")
        out["loss_diff"] = max(out["loss_diff"], diff)
        out["grad_rel"] = max(out["grad_rel"], rel)
    if mask is not None:
        sparse, _ = build_celltype(w, n_seeds, device)
        sparse.use_sparse_kernels(keep)
        sp_losses = per_seed_mse(sparse(xb), yb)
        sp_losses.sum().backward()
        out["sparse_loss_diff"] = out["sparse_grad_rel"] = 0.0
        for s in range(n_seeds):
            diff = abs(float(sp_losses[s].detach()) - float(losses[s].detach()))
            rel = _rel(sparse.w_rec.grad[s][mask[s]], model.w_rec.grad[s][mask[s]])
            if diff > LOSS_TOL * max(1.0, abs(float(losses[s].detach()))) or not rel <= GRAD_TOL:
                fail("sparse and biornn", s, f"loss diff {diff:.2e}, W_rec gradient relative error {rel:.2e}")
            if bool((sparse.w_rec.grad[s][~mask[s]] != 0).any()):
                fail("sparse and biornn", s, "the sparse W_rec gradient is nonzero outside the mask")
            out["sparse_loss_diff"] = max(out["sparse_loss_diff"], diff)
            out["sparse_grad_rel"] = max(out["sparse_grad_rel"], rel)
    out["passed"] = True
    return out


def bench_celltype(w: CelltypeWorkload, n_seeds: int, device: torch.device, warmup: int, steps: int,
                   ablation: str | None = "unbind", quick_matmul: bool = False) -> dict:
    """Measure one cell-type stage; returns its JSON entry (seconds per seed-epoch and the rest)."""
    check = check_celltype_equivalence(w, device)
    x, y = celltype_data(w, device)
    stream = PermStream(w.n_train, n_seeds, w.batch, device)
    bt = CelltypeTrainer(w, n_seeds, device)
    mask = bt.mask
    naive = NaiveCelltypeTrainer(w, device, None if mask is None else mask[0].cpu().numpy())
    copy_celltype_weights(naive.model, bt.model, 0)
    steppers: dict[str, Callable[[], None]] = {"biornn": lambda: bt.step(x, y, stream.next())}
    if ablation:
        at = CelltypeTrainer(w, n_seeds, device, core=ABLATION_CORES[ablation])
        steppers["autograd"] = lambda: at.step(x, y, stream.next())
    if mask is not None:
        sp = CelltypeTrainer(w, n_seeds, device, sparse=True)
        steppers["sparse"] = lambda: sp.step(x, y, stream.next())

    def naive_step() -> None:
        idx = stream.next(1)[0]
        naive.step(x[idx], y[idx])  # one seed; the reference trains its runs one after another

    steppers["naive"] = naive_step
    mm_opts = {"blocks": 2, "min_block_s": 0.002} if quick_matmul else {}
    gflops = matmul_gflops(w, n_seeds, device, **mm_opts)
    times = time_interleaved(steppers, warmup, steps, device)
    gflops = max(gflops, matmul_gflops(w, n_seeds, device, **mm_opts))
    bpe = w.batches_per_epoch
    n_seq = bpe * w.batch
    shapes = {"T": w.steps, "I": w.n_in, "B": w.batch, "N": w.hidden, "O": w.n_out, "n_train": w.n_train,
              "sizes": list(w.sizes)}
    entry = timing_entry(times, bpe, n_seeds, celltype_flops_per_sequence(w)["total"] * n_seq, gflops, shapes,
                         check)
    target = 3.0 if w.pruned else 1.3
    entry.update(stage=w.stage, target_ratio=target, meets_target=entry["ratio"] >= target)
    naive_s, biornn_s = entry["naive_s"], entry["biornn_s"]
    if mask is not None:
        nnz = float(mask.sum(dim=(1, 2)).double().mean())
        entry["mask_density"] = nnz / w.hidden ** 2
        entry["sparse_s"] = statistics.median(times["sparse"]) * bpe / n_seeds
        entry["naive_over_sparse"] = naive_s / entry["sparse_s"]
        entry["biornn_over_sparse"] = biornn_s / entry["sparse_s"]
        entry["flops_per_seed_epoch_masked"] = celltype_masked_flops_per_sequence(w, nnz) * n_seq
    return entry


def bench_prune(w: PruneWorkload, n_seeds: int, device: torch.device, warmup: int, repeats: int) -> dict:
    """Time :func:`biornn.celltype.prune_mask` on ``(S, N, N)`` Dale's weights (the initial ones: every entry is
    nonzero, so every entry is eligible, the most work); median seconds per call over ``repeats`` calls.

    Also times the within-area block-wise top-prob draw alone (:func:`biornn.pruning.blockwise_mask`, the bulk of
    the work); ``prune_mask`` additionally reads the two connectivity tables and draws the inter-area masks.
    """
    seeds = list(range(n_seeds))
    sizes = sizes_dict(w.sizes)
    W = CelltypeRNN(seeds, sizes).w_rec.detach().to(device)
    inside = block_density(load_within_area(), load_inter_area(), include_inter=False)
    pop = population_index(sizes)

    def timed(fn: Callable[[], torch.Tensor]) -> tuple[list[float], torch.Tensor]:
        out = None
        for _ in range(warmup):
            out = fn()
        ts = []
        for _ in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            out = fn()
            _sync(device)
            ts.append(time.perf_counter() - t0)
        return ts, out

    t_mask, mask = timed(lambda: prune_mask(W, seeds, w.sizes, w.pruning))
    t_block, _ = timed(lambda: blockwise_mask(W, inside, pop, "topprob", seed=seeds, eligibility=w.pruning)[0])
    # the issue's unit: one 1440 x 1440 matrix
    t_one, _ = timed(lambda: prune_mask(W[:1], seeds[:1], w.sizes, w.pruning))
    return {
        "seconds_one_matrix": statistics.median(t_one),
        "seconds_per_call": statistics.median(t_mask),
        "min_s": min(t_mask),
        "max_s": max(t_mask),
        "blockwise_topprob_s": statistics.median(t_block),
        "repeats": repeats,
        "target_s": 1.0,
        "meets_target": statistics.median(t_one) < 1.0,
        "mask_density": float(mask.double().mean()),
        "shape": list(W.shape),
        "pruning": w.pruning,
    }


# ----------------------------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------------------------
def device_label(device: torch.device, threads: int) -> str:
    """``cpu-<n>threads`` or the sanitized CUDA device name (``nvidia-h100-80gb-hbm3``)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"cpu-{threads}threads"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=False)
            f.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def format_table(results: dict[str, dict]) -> str:
    """The printed table (seconds per seed-epoch; ratio = naive / biornn), then the pruning rows."""
    head = (f"{'workload':<16}{'biornn s':>10}{'naive s':>10}{'ratio':>8}{'ceiling':>9}{'autograd s':>12}"
            f"{'ag/biornn':>10}{'limit':>8}{'GFLOP':>9}{'GFLOP/s':>9}{'sparse s':>10}{'floor s':>9}{'vs floor':>9}")
    lines = [head, "-" * len(head)]
    prune_lines = []
    for name, r in results.items():
        if "seconds_per_call" in r:
            prune_lines.append(f"{name:<22}{r['seconds_per_call']:>10.3f} s per call (min {r['min_s']:.3f}, max "
                               f"{r['max_s']:.3f}, {r['repeats']} calls; block-wise top-prob alone "
                               f"{r['blockwise_topprob_s']:.3f} s) on {tuple(r['shape'])}, mask density "
                               f"{r['mask_density']:.4f}; one (1440, 1440) matrix {r['seconds_one_matrix']:.3f} s "
                               f"(target < 1 s: {'met' if r['meets_target'] else 'NOT met'})")
            continue
        ag = r.get("autograd_s", float("nan"))
        ag_ratio = r.get("autograd_over_biornn", float("nan"))
        sparse = f"{r['sparse_s']:>10.3f}" if "sparse_s" in r else f"{'-':>10}"
        floor = (f"{r['floor_s']:>9.3f}{r['biornn_over_floor']:>8.2f}x" if "floor_s" in r else f"{'-':>9}{'-':>9}")
        lines.append(f"{name:<16}{r['biornn_s']:>10.3f}{r['naive_s']:>10.2f}{r['ratio']:>7.1f}x"
                     f"{r['ceiling_ratio']:>8.1f}x{ag:>12.3f}{ag_ratio:>9.2f}x{r['limit_fraction']:>8.1%}"
                     f"{r['flops_per_seed_epoch'] / 1e9:>9.1f}{r['matmul_gflops']:>9.1f}{sparse}{floor}")
    if prune_lines:
        lines += ["", "pruning (median seconds per call, all seeds at once):", *prune_lines]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the command line (``--smoke`` forces 1 warm-up and 1 timed batch)."""
    p = argparse.ArgumentParser(description="Time biornn's batched training against the reference's naive "
                                            "per-step loop (seconds per seed-epoch, extrapolated from a few "
                                            "batches).")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma list of {', '.join(WORKLOADS)}")
    p.add_argument("--seeds", type=int, default=5, help="seeds batched by biornn (default 5)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads on the CPU (default 2)")
    p.add_argument("--warmup", type=int, default=2, help="untimed batches per variant (default 2)")
    p.add_argument("--steps", type=int, default=5, help="timed batches per variant (default 5)")
    p.add_argument("--ablation", default="unbind", choices=(*ABLATION_CORES, "none"),
                   help="plain-autograd core of the ablation row: unbind (default), models "
                        "(biornn.nn.models.rnn_core_autograd, O(T^2) backward: slow on wave) or none")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, 1 timed step: a few seconds (for tests)")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/<device>.json)")
    args = p.parse_args(argv)
    names = [n for n in args.workloads.split(",") if n]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown or not names:
        p.error(f"unknown workload(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(WORKLOADS)}")
    args.names = names
    if args.seeds < 1 or args.steps < 1 or args.warmup < 0 or args.threads < 1:
        p.error("--seeds, --steps and --threads must be >= 1, --warmup >= 0")
    if args.smoke:
        args.warmup, args.steps = 1, 1
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    args = parse_args(argv)
    tune_allocator()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda requested but CUDA is not available; use --device cpu", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    label = device_label(device, args.threads)
    out = Path(args.out) if args.out else RESULTS_DIR / f"{label}.json"
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    load_txt = f"; load average at start {load[0]:.2f}" if load else ""
    print(f"biornn benchmark on {label} (torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.seeds} seeds batched{load_txt})", flush=True)
    print(f"Timing {args.warmup} warm-up + {args.steps} timed batches per variant, interleaved; seconds per "
          "seed-epoch = median s/batch x batches/epoch (/ seeds for batched runs). Naive = one seed timed, "
          "seeds run one after another as in the reference.", flush=True)
    results: dict[str, dict] = {}
    t_all = time.perf_counter()
    ablation = None if args.ablation == "none" else args.ablation
    for name in args.names:
        w = smoke_workload(WORKLOADS[name]) if args.smoke else WORKLOADS[name]
        t0 = time.perf_counter()
        if isinstance(w, PruneWorkload):
            results[name] = bench_prune(w, args.seeds, device, args.warmup, args.steps)
            print(f"  {name}: done in {time.perf_counter() - t0:.1f} s", flush=True)
            continue
        if isinstance(w, CelltypeWorkload):
            results[name] = bench_celltype(w, args.seeds, device, args.warmup, args.steps, ablation=ablation,
                                           quick_matmul=args.smoke)
        else:
            results[name] = bench_workload(w, args.seeds, device, args.warmup, args.steps, ablation=ablation,
                                           quick_matmul=args.smoke)
        c = results[name]["check"]
        extra = (f"; sparse vs biornn |d loss| {c['sparse_loss_diff']:.1e}, grad rel. error "
                 f"{c['sparse_grad_rel']:.1e}" if "sparse_grad_rel" in c else "")
        print(f"  {name}: done in {time.perf_counter() - t0:.1f} s (naive vs biornn on the same weights and batch: "
              f"|d loss| {c['loss_diff']:.1e}, recurrent grad rel. error {c['grad_rel']:.1e}{extra})", flush=True)
    print()
    print(f"Seconds per seed-epoch (extrapolated). ratio = naive / biornn. ceiling = naive / FLOP-bound time, the best "
          f"ratio any\nimplementation could reach here. ag/biornn = autograd ablation ({args.ablation}) / biornn. "
          "limit = fraction of the FLOP-bound\nlimit (FLOPs / measured bmm GFLOP/s / biornn s). GFLOP per seed-epoch, "
          "forward + backward matmuls.\nsparse s = the pruned cell-type stage with torch.sparse kernels (a CSR "
          "W_rec per seed); cell-type limits count dense W_rec FLOPs.")
    print(format_table(results))
    meta = {
        "device": label,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "seeds": args.seeds,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "warmup_batches": args.warmup,
        "timed_batches": args.steps,
        "smoke": args.smoke,
        "ablation_core": args.ablation,
        "matmul_gflops": {n: r["matmul_gflops"] for n, r in results.items() if "matmul_gflops" in r},
        "load_average_at_start": list(load) if load else None,
        "wall_seconds": time.perf_counter() - t_all,
        "note": "seconds per seed-epoch, extrapolated from the timed batches (median) x batches per epoch; "
                "training batches only; naive = one seed (runs one after another), biornn = all seeds batched / "
                "seeds",
    }
    load_end = os.getloadavg() if hasattr(os, "getloadavg") else None
    meta["load_average_at_end"] = list(load_end) if load_end else None
    busy = max(load[0] if load else 0.0, load_end[0] if load_end else 0.0)
    if device.type == "cpu" and busy > (os.cpu_count() or 1) * 0.75:
        print(f"WARNING: the machine was busy (load average up to {busy:.1f} on {os.cpu_count()} cores): absolute "
              "times are noisy; the ratios (measured interleaved) are the meaningful part.")
    write_json_atomic(out, {**results, "meta": meta})
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
