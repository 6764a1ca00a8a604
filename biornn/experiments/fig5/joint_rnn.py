"""The joint RNN estimator of the pathway changes (issue 26, first step): one cell-type RNN fitted to all six
conditions at once, with the pathway changes as explicit per-condition log-gains.

The joint linear estimator (:mod:`biornn.experiments.fig5.joint_linear`) fits a population-level linear model; this
module fits the
same structure as the cell-type RNN of Figure 4 (Dale's backprop, the block-wise top-prob mask, the paper's N).

**Model** (:class:`JointCelltypeRNN`, frame time). ``N`` units grouped into the 18 populations (sizes per mode from
:func:`biornn.celltype.config.celltype_config`: paper 192 / 32 / 16 Pyr / SST / VIP per area-layer, N = 1440;
quick 16 / 8 / 8, N = 192). Per condition ``c`` (all six in one batch, ``(conditions, samples)``) and rate frame
``t``::

    a_t = tanh(W_c r_{t-1} + K z[c, pop(i), t] + b + [t = 0] h0),    r_t = relu(a_t),    r_{-1} = 0
    W_c[i, j] = M[i, j] W[i, j] exp(g[c, pathway(pop(i), pop(j))])    (factor 1 outside the three pathways)
    rate[c, p, t] = mean of r_t over the units of population p
    m[c, p, :] = offset[p] + exp(s[level(c), p]) * F(rate[c, p, :])

* ``W`` shared, Dale's signs per presynaptic type (Pyr +, SST / VIP -; :func:`biornn.nn.constraints.dale_project_`
  after every Adam step), fixed mask ``M``;
* ``g[c, k]``: the per-condition log-gain of pathway ``k`` in FF, FB_L23, FB_L5 (``familiar_no_change`` = 0, the
  reference): the estimate. A pair's change is ``g[B] - g[A]``;
* ``z``: the six code channels of :data:`biornn.experiments.fig5.joint_linear.CODES` (image, change, omission and novel
x each) of
  the population's own mean stimulus codes, shared weights ``K`` ``(N, 6)``, shared bias ``b`` and a shared initial
  drive ``h0`` (the same for every condition: no per-condition drive or initial state);
* ``F``: the known indicator filter, two first-order stages (:func:`indicator_filter`, the torch twin of
  :func:`biornn.experiments.fig5.joint_linear.convolve`): 14 rate frames -> the 16 ΔF/F frames of the full window
  (pre-event frames
  included);
* ``s[level, p]``: per-population familiar / novel observation log-scale; ``offset[p]`` shared by all conditions.

**Mask.** By default (``mask_from="warmup"``) the paper's procedure: a dense Dale's warm-up (``warmup_steps``),
then block-wise top-prob pruning (:func:`biornn.pruning.blockwise_mask`) of the warm-up ``W`` to the connectivity
table's block densities, then the masked fit. The warm-up lets top-prob keep the connections the data use, as in
Figure 4; ``mask_from="table"`` draws a block-wise random mask at the table densities instead (no warm-up: cheaper,
and what a test needs when it should not depend on the warm-up). A caller can also pass a known mask.

**Fit** (:func:`fit_model`): Adam on the squared error of the six conditions' mean courses in per-population
z-units (mean and SD pooled over conditions and frames, so the transform is the same in every condition), plus
``(g / prior_sd)^2`` (the joint linear estimator's weak prior), float64 by default, CUDA when present. Seeds:
:func:`biornn.core.config.derive_seed` ``(seed, "joint-rnn", ...)`` for the initialisation and the mask.

**Measured** (first session, 2 CPU cores shared with other jobs, load ~4.5, one thread, float64; quick twins built
with ``allen build --source twin --twin planted|null --mode quick --condition all --windows``: 31 s and 18 s).
One full-data fit per twin, quick size (N = 192), 300 warm-up + 1500 masked Adam steps, seed 0 (descriptive, one
fit, no bootstrap): planted twin 119 s, in-sample R^2 0.958; null twin 151 s, R^2 0.935 (66-84 ms per step).
Fitted vs planted pair changes over the 27 rows: Spearman rho 0.91, the planted sign on 19 of 19 planted rows;
FF within a level at the planted size (FN->FC +0.47 vs +0.47, FC->FO -0.55 vs -0.47, NN->NC +0.44 vs +0.41, NC->NO
-0.56 vs -0.41), FB_L5 somewhat attenuated (FN->FO +0.36 vs +0.59, NC->NO +0.73 vs +0.79), FB_L23 strongly
attenuated (+0.03 to +0.17 vs +0.26 to +0.59), familiar vs novel FF small (+0.02 to +0.06 vs +0.12 to +0.18).
Null twin: RMS of the 27 fitted changes 0.13 (largest FC->NC FB_L23 +0.28). Self-recovery
(``tests/test_joint_rnn.py``, N = 48, noise-free, 1000 steps, the generating mask given): max error 0.31, median
0.17 over 15 gains of size 0.2-0.4, Pearson r 0.87 (the fit stalls at R^2 0.92); gains fixed at 0 cost 1.27x the
squared error.
Warm vs cold starts (planted quick twin, experiment resamples 0-3, population sampling): per resample the warm
start (from the point fit's state and mask, 1500 steps) and a fresh fit (seed 0, warm-up + 1500 steps) differ by
a median 0.07 (max 0.29) in the 27 pair changes; the warm fits reach lower loss (0.041-0.074 vs 0.065-0.079) and
spread less over the 4 resamples (median SD 0.043 vs 0.071). A second seed's point fit (seed 1: R^2 0.949) differs
from seed 0's by a median 0.07, max 0.27 (FC->FO FB_L5 +0.73 vs +0.50). So the fit-to-fit optimisation spread is
about the size of the warm bootstrap spread: warm starts do **not** give the same intervals on this evidence
(4 resamples), and the point fit should keep the best of several seeds, as the linear estimator keeps the best of
eight starts.
Cost at paper size (N = 1440, float64, one thread, same loaded machine): 0.96 s per Adam step (5 steps timed), so
about 29 min per fit of 300 + 1500 steps; the ``jointrnn`` stage of ``benchmarks/gpu.sh`` times one on a GPU.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from biornn.celltype.config import celltype_config, sizes_dict
from biornn.core.conditions import CONDITIONS, WINDOWS, split_condition
from biornn.core.config import derive_seed
from biornn.core.errors import BiornnError
from biornn.core.store import atomic_write_bytes
from biornn.experiments.fig5.joint_linear import (
    CODES,
    DEFAULT_CODE_SHIFT,
    LEGACY_SETTINGS,
    REFERENCE,
    TWIN_KINETICS,
    align_codes,
    check_code_shift,
    legacy_stamp,
    load_twin_rows,
    resample_means,
    structure,
)
from biornn.experiments.fig5.joint_linear_report import (
    few_experiments,
    load_cache,
    pair_changes,
    planted_changes,
    report,
    save_cache,
)
from biornn.nn.connectivity import PATHWAYS, POPULATION_LABELS, block_density, population_index, unit_signs
from biornn.nn.constraints import dale_project_
from biornn.pruning import blockwise_mask

MASK_SOURCES = ("warmup", "table")
#: Largest network run with explicit per-condition couplings (:meth:`JointCelltypeRNN._run`).
EXPLICIT_MAX_UNITS = 256
#: Rate frames simulated per condition (the 16 ΔF/F frames of the full window minus the filter's two).
RATE_FRAMES = 14
#: ΔF/F frames the loss counts per window: full = all 16; half = the 8 after the event (the reference's second
#: half; the network still runs from frame 0 on the known codes, with no per-condition state to fit).
LOSS_FRAMES = {"full": slice(0, 16), "half": slice(8, 16)}


@dataclass(frozen=True)
class RNNConfig:
    """Settings of one joint RNN fit.

    Attributes:
        sizes: units per population ``(Pyr, SST, VIP)``.
        rise, decay: indicator time constants (s) of the known observation filter.
        warmup_steps: Adam steps of the dense Dale's warm-up (``mask_from="warmup"``).
        steps: Adam steps of the masked fit.
        lr: Adam learning rate.
        prior_sd: SD of the weak Gaussian prior on every log-gain (0 = none).
        mask_from: ``warmup`` (top-prob of the warm-up) or ``table`` (block-wise random at the table densities).
        fit_gains: False fixes every ``g`` at 0 (the no-change model a test compares with).
        seed: initialisation and mask seed.
        dtype: ``float64`` or ``float32``.
        code_shift: the codes of ΔF/F frame ``t + k`` drive rate frame ``t`` (default 1; see
            :class:`biornn.experiments.fig5.joint_linear.JointConfig`: the filter's own lag, no data; 0 = the
            alignment of the reports before this setting existed).
        window: the ΔF/F frames the loss counts (:data:`LOSS_FRAMES`): ``full`` (the reports) or ``half``.
    """

    sizes: tuple[int, int, int] = (16, 8, 8)
    rise: float = TWIN_KINETICS["rise"]
    decay: float = TWIN_KINETICS["decay"]
    warmup_steps: int = 300
    steps: int = 1500
    lr: float = 1e-2
    prior_sd: float = 1.0
    mask_from: str = "warmup"
    fit_gains: bool = True
    seed: int = 0
    dtype: str = "float64"
    code_shift: int = DEFAULT_CODE_SHIFT
    window: str = "full"

    def __post_init__(self):
        object.__setattr__(self, "sizes", tuple(sizes_dict(self.sizes).values()))
        if self.mask_from not in MASK_SOURCES:
            raise BiornnError(f"unknown mask source {self.mask_from!r}; use one of {', '.join(MASK_SOURCES)}")
        if self.dtype not in ("float64", "float32"):
            raise BiornnError(f"dtype {self.dtype!r}; use float64 or float32")
        if not (self.rise > 0 and self.decay > 0 and self.lr > 0) or self.steps < 1 or self.warmup_steps < 0:
            raise BiornnError("rise, decay and lr must be positive, steps >= 1 and warmup_steps >= 0")
        check_code_shift(self.code_shift)
        if self.window not in WINDOWS:
            raise BiornnError(f"unknown window {self.window!r}; use one of {', '.join(WINDOWS)}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def rnn_config(mode: str = "quick", **changes) -> RNNConfig:
    """:class:`RNNConfig` with the cell-type RNN's population sizes of ``mode`` (``paper``: N = 1440)."""
    return RNNConfig(sizes=celltype_config(CONDITIONS[0], mode).sizes, **changes)


def pick_device(device: str | None = None) -> torch.device:
    """``device`` or CUDA when present, else the CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


# --------------------------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------------------------

def indicator_filter(r: torch.Tensor, frame_period: float, rise: float, decay: float) -> torch.Tensor:
    """Two first-order stages along the last axis, ``(..., T)`` -> ``(..., T + 2)``, resting start (the torch
    twin of :func:`biornn.experiments.fig5.joint_linear.convolve` with default initial states)."""
    b_r, b_d = 1.0 - math.exp(-frame_period / rise), 1.0 - math.exp(-frame_period / decay)
    h = [r[..., 0]]
    for t in range(r.shape[-1]):
        h.append(h[-1] + b_r * (r[..., t] - h[-1]))
    c = [h[0]]
    for t in range(len(h)):
        c.append(c[-1] + b_d * (h[t] - c[-1]))
    return torch.stack(c, dim=-1)


def code_channels(codes: torch.Tensor) -> torch.Tensor:
    """``(6, ..., 3)`` stimulus codes -> ``(6, ..., 6)`` channels of :data:`CODES` (novel x each added)."""
    novel = torch.tensor([split_condition(c)[0] == "novel" for c in CONDITIONS], dtype=codes.dtype,
                         device=codes.device).reshape(-1, *([1] * (codes.ndim - 1)))
    return torch.cat([codes, novel * codes], dim=-1)


class JointCelltypeRNN(nn.Module):
    """The joint cell-type RNN (module docstring): shared ``W``, code weights, bias and initial drive; per-condition
    pathway log-gains; per-population familiar / novel observation scales.

    Args:
        sizes: units per population ``(Pyr, SST, VIP)``.
        frame_period: s per frame; rise, decay: indicator time constants (s).
        seed: initialisation seed.
        fit_gains: False keeps ``g`` at 0.
        dtype: parameter dtype.

    Attributes:
        w_rec: ``(N, N)`` ``W[post, pre]`` (trained; column signs = :attr:`signs`). mask: ``(N, N)`` 0/1 buffer.
        g_free: ``(5, 3)`` log-gains of the five non-reference conditions. k_code: ``(N, 6)``. bias, h0: ``(N,)``.
        log_scale: ``(2, 18)`` familiar / novel observation log-scales. offset: ``(18,)``.
        pathway: ``(3, N, N)`` 0/1 buffer, entry of pathway ``k``'s blocks.
    """

    def __init__(self, sizes=(16, 8, 8), frame_period: float = 0.1, rise: float = TWIN_KINETICS["rise"],
                 decay: float = TWIN_KINETICS["decay"], seed: int = 0, fit_gains: bool = True,
                 dtype: torch.dtype = torch.float64):
        super().__init__()
        sizes = sizes_dict(sizes)
        self.frame_period, self.rise, self.decay = float(frame_period), float(rise), float(decay)
        pop = torch.as_tensor(population_index(sizes), dtype=torch.long)
        n, P = int(pop.numel()), len(POPULATION_LABELS)
        self.n_units, self.sizes = n, sizes
        signs = torch.as_tensor(unit_signs(sizes), dtype=dtype)
        onehot = nn.functional.one_hot(pop, P).to(dtype)
        _, path = structure()
        path_unit = torch.as_tensor(path)[pop][:, pop]                               # (N, N)
        self.register_buffer("population", pop)
        self.register_buffer("signs", signs)
        self.register_buffer("readout", onehot / onehot.sum(dim=0, keepdim=True))   # (N, 18) population means
        self.register_buffer("pathway", torch.stack([(path_unit == k).to(dtype) for k in range(len(PATHWAYS))]))
        self.register_buffer("mask", torch.ones(n, n, dtype=dtype))
        self.register_buffer("novel", torch.tensor([split_condition(c)[0] == "novel" for c in CONDITIONS]))
        for k in range(len(PATHWAYS)):            # per pathway: post units, pre units, 0/1 block pattern
            rows = torch.unique(torch.nonzero(path_unit == k)[:, 0])
            cols = torch.unique(torch.nonzero(path_unit == k)[:, 1])
            self.register_buffer(f"path_rows{k}", rows, persistent=False)
            self.register_buffer(f"path_cols{k}", cols, persistent=False)
            self.register_buffer(f"path_sub{k}", (path_unit[rows][:, cols] == k).to(dtype), persistent=False)
        gen = torch.Generator().manual_seed(derive_seed(seed, "joint-rnn", "init"))
        w = torch.rand((n, n), generator=gen, dtype=torch.float64) * signs.double() * (2.0 / math.sqrt(n))
        self.w_rec = nn.Parameter(w.to(dtype))
        self.k_code = nn.Parameter((torch.randn((n, len(CODES)), generator=gen, dtype=torch.float64) * 0.5).to(dtype))
        self.bias = nn.Parameter((torch.randn(n, generator=gen, dtype=torch.float64) * 0.1).to(dtype))
        self.h0 = nn.Parameter(torch.zeros(n, dtype=dtype))
        self.g_free = nn.Parameter(torch.zeros(len(CONDITIONS) - 1, len(PATHWAYS), dtype=dtype),
                                   requires_grad=fit_gains)
        self.log_scale = nn.Parameter(torch.zeros(2, P, dtype=dtype))
        self.offset = nn.Parameter(torch.zeros(P, dtype=dtype))

    @property
    def _pathway_blocks(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        return [(getattr(self, f"path_rows{k}"), getattr(self, f"path_cols{k}"), getattr(self, f"path_sub{k}"))
                for k in range(len(PATHWAYS))]

    def gains(self) -> torch.Tensor:
        """``(6, 3)`` log-gains in :data:`CONDITIONS` order (the reference row is 0)."""
        ref = CONDITIONS.index(REFERENCE)
        zero = torch.zeros(1, len(PATHWAYS), dtype=self.g_free.dtype, device=self.g_free.device)
        return torch.cat([self.g_free[:ref], zero, self.g_free[ref:]])

    def effective_w(self) -> torch.Tensor:
        """``(6, N, N)`` per-condition coupling ``M W exp(g[c, pathway])``."""
        log_gain = torch.einsum("ck,kij->cij", self.gains(), self.pathway)
        return (self.w_rec * self.mask)[None] * torch.exp(log_gain)

    @torch.no_grad()
    def project_(self) -> None:
        """Dale's projection of ``w_rec`` and zero outside the mask, in place."""
        dale_project_(self.w_rec, self.signs)
        self.w_rec.mul_(self.mask)

    def set_mask(self, mask: torch.Tensor) -> None:
        """Fix the mask ``(N, N)`` and zero ``w_rec`` outside it."""
        self.mask.copy_(torch.as_tensor(mask, dtype=self.mask.dtype, device=self.mask.device))
        self.project_()

    def rates(self, codes: torch.Tensor) -> torch.Tensor:
        """Population mean rates ``(6, B, 18, T)`` from codes ``(6, B, 18, T, 3)`` (each population's mean codes at
        the rate frames)."""
        if codes.ndim != 5 or codes.shape[0] != len(CONDITIONS) or codes.shape[2] != len(POPULATION_LABELS):
            raise BiornnError(f"codes have shape {tuple(codes.shape)}; expected (6, samples, 18, frames, 3)")
        drive = torch.einsum("cbitk,ik->cbit", code_channels(codes)[:, :, self.population], self.k_code)
        return self._run(drive)

    def _run(self, drive: torch.Tensor, explicit: bool | None = None) -> torch.Tensor:
        """Population rates ``(6, B, 18, T)`` from the unit drive ``(6, B, N, T)``.

        The coupling of condition ``c`` is ``M W`` plus ``(exp(g[c, k]) - 1)`` times pathway ``k``'s blocks of it
        (one shared ``(N, N)`` product per frame and three small ones: no per-condition ``(N, N)`` matrices, so the
        weight gradient is one ``N x N`` outer product per frame; 10x faster at N = 1440). ``explicit``: the same
        through :meth:`effective_w` (six ``(N, N)`` matrices; fewer, larger operations, about 2x faster at N = 48 and
        as fast at N = 192); default: explicit up to :data:`EXPLICIT_MAX_UNITS` units.
        """
        explicit = self.n_units <= EXPLICIT_MAX_UNITS if explicit is None else explicit
        Wm = self.w_rec * self.mask
        factor = torch.exp(self.gains()) - 1.0                                        # (6, 3)
        subs = [Wm[rows][:, cols] * sub for rows, cols, sub in self._pathway_blocks]
        W = self.effective_w() if explicit else None
        r = torch.zeros(drive.shape[:2] + (self.n_units,), dtype=Wm.dtype, device=Wm.device)
        out = []
        for t in range(drive.shape[3]):
            u = drive[:, :, :, t] + self.bias + (self.h0 if t == 0 else 0.0)
            if explicit:
                x = torch.einsum("cij,cbj->cbi", W, r)
            else:
                x = r @ Wm.T
                for k, (rows, cols, _) in enumerate(self._pathway_blocks):
                    x = x.index_add(2, rows, (r[..., cols] @ subs[k].T) * factor[:, k, None, None])
            r = torch.relu(torch.tanh(x + u))
            out.append(r @ self.readout)
        return torch.stack(out, dim=-1)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """Predicted ΔF/F means ``(6, B, 18, T + 2)`` (z-units of the fit) from codes ``(6, B, 18, T, 3)``."""
        ca = indicator_filter(self.rates(codes), self.frame_period, self.rise, self.decay)
        scale = torch.exp(self.log_scale[self.novel.long()])                         # (6, 18)
        return self.offset[None, None, :, None] + scale[:, None, :, None] * ca


# --------------------------------------------------------------------------------------------------------------------
# Fit
# --------------------------------------------------------------------------------------------------------------------

def standardize(means: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-population z-units of condition means ``(6, B, 18, F)``: mean and SD pooled over conditions, samples and
    frames (one transform for all conditions). Returns ``(z, mu, sd)`` with ``mu``, ``sd`` ``(18,)``."""
    mu = means.mean(axis=(0, 1, 3))
    sd = means.std(axis=(0, 1, 3))
    if not np.all(sd > 0):
        raise BiornnError(f"population {POPULATION_LABELS[int(np.argmin(sd))]} has a constant course; it cannot be "
                          "fitted (check its rows)")
    return (means - mu[:, None]) / sd[:, None], mu, sd


def _objective(model: JointCelltypeRNN, codes: torch.Tensor, target: torch.Tensor, prior_sd: float,
               frames: slice = LOSS_FRAMES["full"]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, sse)``: squared error summed over every condition, sample, population and ``frames`` (z-units) plus
    the prior ``sum (g / prior_sd)^2``, divided by the number of data points counted."""
    y = target[..., frames]
    sse = ((model(codes)[..., frames] - y) ** 2).sum()
    prior = (model.g_free ** 2).sum() / prior_sd ** 2 if prior_sd else 0.0
    return (sse + prior) / y.numel(), sse


def train(model: JointCelltypeRNN, codes: torch.Tensor, target: torch.Tensor, steps: int, lr: float,
          prior_sd: float = 1.0, frames: slice = LOSS_FRAMES["full"]) -> list[float]:
    """Adam on :func:`_objective`, Dale's projection (and the mask) after every step; cosine decay of the learning
    rate to ``lr / 10``. Returns the loss of every step."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr / 10)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss, _ = _objective(model, codes, target, prior_sd, frames)
        loss.backward()
        opt.step()
        sched.step()
        model.project_()
        losses.append(float(loss.detach()))
    return losses


def table_mask(model: JointCelltypeRNN, seed: int, method: str = "random") -> torch.Tensor:
    """Block-wise mask ``(N, N)`` at the connectivity table's block densities: ``random`` or ``topprob`` of the
    model's current ``|W|`` (:func:`biornn.pruning.blockwise_mask`)."""
    W = model.w_rec.detach().double().cpu()
    if method == "random":
        W = torch.ones_like(W)
    mask, _ = blockwise_mask(W, torch.as_tensor(block_density()), model.population.cpu(), method,
                             seed=derive_seed(seed, "joint-rnn", "mask"))
    return mask.to(model.mask.device)


def fit_model(codes: np.ndarray, target: np.ndarray, frame_period: float, config: RNNConfig | None = None,
              mask=None, init: dict | None = None, device: str | None = None) -> dict:
    """One joint RNN fit to targets in z-units.

    Args:
        codes: ``(6, B, 18, 14, 3)`` mean stimulus codes at the rate frames.
        target: ``(6, B, 18, 16)`` ΔF/F means in z-units (:func:`standardize`).
        frame_period: s per frame.
        config: fit settings.
        mask: a known ``(N, N)`` mask (skips the warm-up and the pruning).
        init: a ``state_dict`` to start from (a warm start: its mask is kept, no warm-up).
        device: torch device (default CUDA when present).

    Returns:
        ``g`` ``(6, 3)`` log-gains, ``loss`` (final objective), ``sse`` (z-units), ``r2`` (of the 6 x B x 18 x 16
        means; of the window's frames only), ``losses`` per step, ``state`` (the ``state_dict`` on the CPU, for warm
        starts), ``seconds``.
    """
    config = config or RNNConfig()
    dev, dtype, frames = pick_device(device), getattr(torch, config.dtype), LOSS_FRAMES[config.window]
    t0 = time.perf_counter()
    torch.manual_seed(derive_seed(config.seed, "joint-rnn", "torch"))
    model = JointCelltypeRNN(config.sizes, frame_period, config.rise, config.decay, config.seed, config.fit_gains,
                             dtype).to(dev)
    z = torch.as_tensor(codes, dtype=dtype, device=dev)
    y = torch.as_tensor(target, dtype=dtype, device=dev)
    losses: list[float] = []
    if init is not None:
        model.load_state_dict({k: torch.as_tensor(v) for k, v in init.items()})
        if not config.fit_gains:
            with torch.no_grad():
                model.g_free.zero_()
    elif mask is not None:
        model.set_mask(mask)
    elif config.mask_from == "table":
        model.set_mask(table_mask(model, config.seed, "random"))
    else:
        model.project_()
        losses += train(model, z, y, config.warmup_steps, config.lr, config.prior_sd, frames)
        model.set_mask(table_mask(model, config.seed, "topprob"))
    losses += train(model, z, y, config.steps, config.lr, config.prior_sd, frames)
    with torch.no_grad():
        loss, sse = _objective(model, z, y, config.prior_sd, frames)
    yw = y[..., frames]
    total = float(((yw - yw.mean(dim=(0, 1, 3), keepdim=True)) ** 2).sum())
    return {"g": model.gains().detach().cpu().numpy(), "loss": float(loss), "sse": float(sse),
            "r2": 1.0 - float(sse) / total, "losses": np.array(losses),
            "state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "seconds": time.perf_counter() - t0}



def fit_best(codes: np.ndarray, target: np.ndarray, frame_period: float, config: RNNConfig | None = None,
             seeds=(0,), device: str | None = None) -> dict:
    """:func:`fit_model` from every seed in ``seeds`` (initialisation and mask), the lowest final loss kept: the
    point fit (seed-to-seed spread of one fit is about the bootstrap spread, module docstring).

    Returns:
        The best fit's dict plus ``seed`` (its seed) and ``seed_losses`` ``(len(seeds),)``.
    """
    config = config or RNNConfig()
    if not len(seeds):
        raise BiornnError("no seeds given for the point fit; pass at least one")
    fits = [fit_model(codes, target, frame_period, dataclasses.replace(config, seed=int(s)), device=device)
            for s in seeds]
    best = int(np.argmin([f["loss"] for f in fits]))
    return {**fits[best], "seed": int(seeds[best]), "seed_losses": np.array([f["loss"] for f in fits])}

# --------------------------------------------------------------------------------------------------------------------
# Twins: point fit, bootstrap with a resumable per-resample cache
# --------------------------------------------------------------------------------------------------------------------

def twin_inputs(means: np.ndarray, codes: np.ndarray, code_shift: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Condition means ``(6, 18, 16)`` and codes ``(6, 18, 16, 3)``
    (:func:`biornn.experiments.fig5.joint_linear.resample_means`)
    -> ``(codes (6, 1, 18, 14, 3), target (6, 1, 18, 16) z-units, mu, sd)``: the full window, the codes of calcium
    frame ``t + code_shift`` at rate frame ``t`` (:func:`biornn.experiments.fig5.joint_linear.align_codes`; the
    model's filter shows rate frame ``t`` first in calcium frame ``t + 2``, the continuous indicator about one frame
    after the rate, so 0 drives the network a frame early and 1, :attr:`RNNConfig.code_shift`'s default, does not)."""
    target, mu, sd = standardize(np.asarray(means, np.float64)[:, None])
    return align_codes(np.asarray(codes, np.float64), RATE_FRAMES, code_shift)[:, None], target, mu, sd


def fit_twin(folder: str | os.PathLike, config: RNNConfig | None = None, device: str | None = None,
             seeds=None) -> dict:
    """The full-data joint RNN fit of one twin folder (``allen build --source twin ... --condition all --windows``).

    Returns:
        :func:`fit_best`'s dict (``seeds``: default the config's seed) plus ``changes`` ``(27,)`` fitted pair
        changes (:func:`pair_changes`) and, when the folder holds ``ground_truth.npz``, ``planted`` ``(27,)``
        planted pair changes.
    """
    rows = load_twin_rows(folder)
    means, codes, _ = resample_means(rows, 0, None)
    config = config or RNNConfig()
    z, y, _, _ = twin_inputs(means, codes, config.code_shift)
    fit = fit_best(z, y, rows.frame_period, config, (config.seed,) if seeds is None else seeds, device)
    fit["changes"] = pair_changes(fit["g"])
    truth = Path(folder) / "ground_truth.npz"
    if truth.exists():
        fit["planted"] = planted_changes(np.load(truth)["W_true"])
    return fit


def _save_npz(path: Path, **arrays) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


#: Settings added to :class:`RNNConfig` after caches were written, with the value those caches used.
RNN_LEGACY_SETTINGS = {**LEGACY_SETTINGS, "window": "full"}


def cache_settings(config: RNNConfig) -> dict:
    """``config`` as a cache stamps it: settings at their :data:`RNN_LEGACY_SETTINGS` value are left out, so a
    cache written before a setting existed matches exactly the configs that reproduce it."""
    return legacy_stamp(config.to_dict(), RNN_LEGACY_SETTINGS)


def bootstrap_twin(folder: str | os.PathLike, cache_dir: str | os.PathLike, config: RNNConfig, resamples: int,
                   seed: int = 0, sampling: str = "population", warm: bool = True, device: str | None = None,
                   log=None, point_seeds=(0, 1, 2), reverse: bool = False) -> dict:
    """Point fit (best of ``point_seeds``, :func:`fit_best`) and ``resamples`` experiment-resample fits of one
    twin, each cached in its own file
    (``cache_dir/point.pt``, ``cache_dir/b0000.npz`` ...; atomic writes), so an interrupted run resumes where it
    stopped (``settings.json`` there: a cache with other settings is refused). ``warm``: every resample starts from
    the point fit's state (mask included); else a fresh fit. ``reverse``: fit the resamples from the last one, so a
    second worker can share the cache with a first (each skips what the other has written).

    Returns:
        ``point`` ``(6, 3)``, ``g`` ``(resamples, 6, 3)``, ``loss`` ``(resamples,)``, ``r2`` of the point fit,
        ``few_experiments`` and ``n_experiments`` of the twin's rows.
    """
    cache_dir = Path(cache_dir)
    settings = json.loads(json.dumps({**cache_settings(config), "folder": str(folder), "seed": seed,
                                      "sampling": sampling, "warm": warm,
                                      "point_seeds": [int(s) for s in point_seeds]}))
    stamp = cache_dir / "settings.json"
    if stamp.exists() and json.loads(stamp.read_text()) != settings:
        raise BiornnError(f"{cache_dir} holds fits with other settings ({stamp}); pass another --out or delete it")
    atomic_write_bytes(stamp, (json.dumps(settings, indent=1) + "\n").encode())
    rows = load_twin_rows(folder)
    point_path = cache_dir / "point.pt"
    if point_path.exists():
        point = torch.load(point_path, weights_only=True)
    else:
        means, codes, _ = resample_means(rows, seed, None, sampling)
        z, y, _, _ = twin_inputs(means, codes, config.code_shift)
        fit = fit_best(z, y, rows.frame_period, config, point_seeds, device)
        point = {"g": torch.as_tensor(fit["g"]), "r2": torch.tensor(fit["r2"]), "state": fit["state"]}
        buf = io.BytesIO()
        torch.save(point, buf)
        atomic_write_bytes(point_path, buf.getvalue())
        if log:
            log(f"{folder}: point fit in {fit['seconds']:.0f} s, R^2 {fit['r2']:.3f}")
    gains, losses = {}, {}
    for b in (range(resamples - 1, -1, -1) if reverse else range(resamples)):
        path = cache_dir / f"b{b:04d}.npz"
        if not path.exists():
            means, codes, _ = resample_means(rows, seed, b, sampling)
            fit = fit_model(*twin_inputs(means, codes, config.code_shift)[:2], rows.frame_period, config,
                            init=point["state"] if warm else None, device=device)
            _save_npz(path, g=fit["g"], loss=np.array(fit["loss"]), seconds=np.array(fit["seconds"]))
            if log:
                log(f"{folder}: resample {b} in {fit['seconds']:.0f} s")
        with np.load(path) as f:
            gains[b], losses[b] = f["g"], float(f["loss"])
    return {"point": point["g"].numpy(), "g": np.array([gains[b] for b in range(resamples)]),
            "loss": np.array([losses[b] for b in range(resamples)]), "r2": float(point["r2"]),
            "few_experiments": few_experiments(rows), "n_experiments": rows.n_experiments()}


def run_recovery(out: str | os.PathLike, planted: str | os.PathLike, nulls: list, config: RNNConfig | None = None,
                 resamples: int = 20, seed: int = 0, sampling: str = "population", warm: bool = True,
                 device: str | None = None, log=None, point_seeds=(0, 1, 2), reverse: bool = False
                 ) -> tuple[dict, Path]:
    """The joint RNN recovery run: :func:`bootstrap_twin` on the planted twin and every null twin (``[(sample
    seed, folder)]``), per-resample caches under ``OUT/joint-rnn-cache/``, then ``OUT/joint-rnn-bootstrap.npz`` in
    the layout of :func:`biornn.experiments.fig5.joint_linear_report.run_twins` and ``OUT/recovery.json`` by
    :func:`biornn.experiments.fig5.joint_linear_report.report` (estimator renamed ``joint-rnn``). Rerunning resumes.
    ``warm=False``
    fits every resample fresh (the quick-size check found warm-started spreads narrower than fresh ones);
    ``point_seeds``: the seeds of each twin's point fit (best loss kept). ``reverse``: a second worker on the same
    ``out``, taking the twins and their resamples from the end (``compare recovery ... --reverse``).

    Returns:
        ``(report, path of recovery.json)``.
    """
    config = config or RNNConfig()
    out = Path(out)
    if resamples < 2:
        raise BiornnError(f"resamples = {resamples}; use at least 20 for a report")
    twins = [("planted", planted, "planted")] + [(f"null_{s}", f, f"null-s{int(s)}") for s, f in nulls]
    fits = {}
    for key, folder, name in (twins[::-1] if reverse else twins):
        fits[key] = bootstrap_twin(folder, out / "joint-rnn-cache" / name, config, resamples, seed, sampling, warm,
                                   device, log, point_seeds, reverse)
    null_fits = [fits[f"null_{s}"] for s, _ in nulls]
    meta = {"estimator": "joint-rnn", "config": config.to_dict(), "sampling": sampling,
            "resamples": resamples, "seed": seed, "warm_start": warm,
            "resample_starts": "warm" if warm else "cold", "null_seeds": [int(s) for s, _ in nulls],
            "planted_folder": str(planted), "null_folders": [str(f) for _, f in nulls],
            "r2_planted": fits["planted"]["r2"], "few_experiments": fits["planted"]["few_experiments"],
            "n_experiments": fits["planted"]["n_experiments"]}
    cache = {"planted_point": fits["planted"]["point"], "planted_g": fits["planted"]["g"],
             "planted_cost": fits["planted"]["loss"],
             "planted_delta": planted_changes(np.load(Path(planted) / "ground_truth.npz")["W_true"]),
             "null_point": np.array([f["point"] for f in null_fits]).reshape(-1, len(CONDITIONS), len(PATHWAYS)),
             "null_g": np.array([f["g"] for f in null_fits]).reshape(-1, resamples, len(CONDITIONS), len(PATHWAYS)),
             "meta": np.array(json.dumps(meta))}
    save_cache(cache, out / "joint-rnn-bootstrap.npz")
    return report_from_cache(out / "joint-rnn-bootstrap.npz", out)


def report_from_cache(cache: str | os.PathLike, out: str | os.PathLike) -> tuple[dict, Path]:
    """``OUT/recovery.json`` from a ``joint-rnn-bootstrap.npz`` (seconds, nothing fitted): the joint linear
    estimator's :func:`biornn.experiments.fig5.joint_linear_report.report` with the estimator named ``joint-rnn``.

    Returns:
        ``(report, path of recovery.json)``.
    """
    data = load_cache(cache)
    if data["meta"].get("estimator") != "joint-rnn":
        raise BiornnError(f"{cache} holds {data['meta'].get('estimator')!r} fits, not joint-rnn; pass the "
                          "joint-rnn-bootstrap.npz that compare recovery --estimator joint-rnn wrote")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BiornnError(f"--out {out} is a file; pass a folder path")
    rep = report(data)
    rep.update(estimator="joint-rnn", variant="joint-rnn")
    path = out / "recovery.json"
    atomic_write_bytes(path, (json.dumps(rep, indent=1) + "\n").encode())
    return rep, path


def timed_fit(folder: str | os.PathLike, out: str | os.PathLike, mode: str = "paper", steps: int = 1500,
              warmup_steps: int = 300, device: str | None = None) -> dict:
    """One full-data joint RNN fit of a twin at ``mode``'s size, timed (the ``jointrnn`` stage of
    ``benchmarks/gpu.sh``); writes ``out`` (JSON: seconds, R^2, fitted and planted pair changes, device).

    Returns:
        The written record.
    """
    config = rnn_config(mode, steps=steps, warmup_steps=warmup_steps)
    fit = fit_twin(folder, config, device)
    dev = pick_device(device)
    record = {"mode": mode, "config": config.to_dict(), "device": str(dev),
              "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
              "seconds": fit["seconds"], "seconds_per_step": fit["seconds"] / (steps + warmup_steps),
              "r2": fit["r2"], "g": fit["g"].tolist(), "changes": fit["changes"].tolist(),
              "planted": fit.get("planted", np.zeros(0)).tolist()}
    atomic_write_bytes(Path(out), (json.dumps(record, indent=1) + "\n").encode())
    return record
