"""Batched E/I recurrent networks with a hand-written backward through time.

Conventions used everywhere in biornn:

* ``S`` seeds are trained at once: every parameter carries a leading seed axis, so ``W_hh`` is ``(S, N, N)``.
  The loss is the sum of per-seed losses and Adam is element-wise, so this is exactly ``S`` independent runs.
* ``W[post, pre]``: row ``i`` receives from column ``j``; Dale's law constrains **columns** (presynaptic signs).
* Step ``t`` (docs/paper/fig2-dales-backprop.md §4): ``a_t = tanh(W_ih x_t + b_ih + W_hh r_{t-1} + b_hh)``, ``r_0 = 0``;
  the state passed on is ``r_t = relu(a_t)`` (state rectification) or ``r_t = a_t``; readouts read ``a_t``.

Speed: on a CPU the cost of an RNN is the per-step autograd graph, not the arithmetic. :func:`rnn_core` runs the
loop without autograd and computes the backward pass by hand; the recurrent weight gradient is a single matmul over
all steps after the loop. The input projection is one matmul for the whole sequence.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from biornn.core.config import derive_seed
from biornn.core.errors import BiornnError
from biornn.nn.connectivity import POPULATION_LABELS, population_index, populations, unit_signs


class _RNNCore(torch.autograd.Function):
    """``A = core(U, W)``: the recurrent loop with a hand-written backward (see :func:`rnn_core`)."""

    @staticmethod
    def forward(ctx, U, W, floor):  # noqa: D102
        A = _core_forward(U, W, floor)
        ctx.save_for_backward(A, W)
        ctx.floor = floor
        return A

    @staticmethod
    def backward(ctx, gA):  # noqa: D102
        A, W = ctx.saved_tensors
        S, T, B, N = A.shape
        dZ = _backprop_states(gA, A, ctx.floor, lambda dz: torch.bmm(dz, W))
        gW = None
        if ctx.needs_input_grad[1]:
            if T > 1:
                R = _pass_on(A[:, :-1], ctx.floor)
                # one matmul over all steps and samples: gW[s] = sum_{t,b} dZ[s, t+1, b]^T R[s, t, b]
                gW = torch.bmm(dZ[:, 1:].reshape(S, (T - 1) * B, N).transpose(1, 2), R.reshape(S, (T - 1) * B, N))
            else:
                gW = torch.zeros_like(W)
        return dZ, gW, None


class _ThinMatmul(torch.autograd.Function):
    """``Y = A @ W`` per member for a tall ``A`` ``(S, M, N)`` and a thin ``W`` ``(S, N, O)`` (the readout).

    Same products as ``torch.bmm``; the backward takes both of its products with the long ``M`` side contiguous
    (``gY @ W^T`` with ``W^T`` made contiguous, ``(gY^T A)^T`` instead of ``A^T gY``), which the CPU's matmul runs
    about 4-5x faster at a wave batch's ``M = 50000``, ``O = 2`` (``docs/speed.md``); tests check the numbers are
    those of autograd's ``bmm``.
    """

    @staticmethod
    def forward(ctx, A, W):  # noqa: D102
        ctx.save_for_backward(A, W)
        return torch.bmm(A, W)

    @staticmethod
    def backward(ctx, gY):  # noqa: D102
        A, W = ctx.saved_tensors
        gA = torch.bmm(gY, W.transpose(1, 2).contiguous()) if ctx.needs_input_grad[0] else None
        gW = torch.bmm(gY.transpose(1, 2).contiguous(), A).transpose(1, 2) if ctx.needs_input_grad[1] else None
        return gA, gW


def thin_matmul(A: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``torch.bmm(A, W)`` for ``A`` ``(S, M, N)`` and ``W`` ``(S, N, O)`` with a faster backward on the CPU when
    ``O`` is small (:class:`_ThinMatmul`); plain ``bmm`` when nothing needs a gradient."""
    if torch.is_grad_enabled() and (A.requires_grad or W.requires_grad):
        return _ThinMatmul.apply(A, W)
    return torch.bmm(A, W)


def state_floor(rectify, like: torch.Tensor):
    """The state rectification of a batch as a floor on ``r_t``: ``r_t = max(a_t, floor)``.

    Args:
        rectify: ``True`` / ``False`` for every member, or a ``(S,)`` bool tensor / sequence, one flag per member
            (a mixed batch, e.g. conventional and Dale's runs trained together).
        like: a tensor of the batch (dtype and device of the floor).

    Returns:
        ``None`` (no member rectifies), ``0.0`` (every member does) or an ``(S,)`` tensor: 0 for members that
        rectify, ``-inf`` for the others.
    """
    if isinstance(rectify, bool):
        return 0.0 if rectify else None
    flags = torch.as_tensor(rectify).to(device="cpu", dtype=torch.bool).reshape(-1)
    if bool(flags.all()):
        return 0.0
    if not bool(flags.any()):
        return None
    neg = torch.full(flags.shape, float("-inf"), dtype=like.dtype)
    return torch.where(flags, torch.zeros_like(neg), neg).to(like.device)


def _pass_on(a: torch.Tensor, floor) -> torch.Tensor:
    """``r = max(a, floor)`` for ``a`` ``(S, ...)``: the state a step passes on (one op per step in the cores)."""
    if floor is None:
        return a
    if isinstance(floor, float):
        return a.clamp_min(floor)
    return torch.maximum(a, floor.reshape(-1, *([1] * (a.ndim - 1))))


def _backprop_states(gA: torch.Tensor, A: torch.Tensor, floor, through_w) -> torch.Tensor:
    """Backward through time of ``a_t = tanh(u_t + W r_{t-1})`` for the states (both cores, any layout).

    Args:
        gA: ``(S, T, ...)`` gradient of the loss with respect to every ``a_t``.
        A: ``(S, T, ...)`` the forward activations.
        floor: the state rectification (:func:`state_floor`; a bool is read as for every member).
        through_w: ``dz_t -> dL/dr_{t-1}``, the product with ``W^T`` in the core's layout.

    Returns:
        ``dZ`` like ``A``: the gradient with respect to each step's pre-activation (also ``dL/du_t``).
    """
    if isinstance(floor, bool):
        floor = 0.0 if floor else None
    if isinstance(floor, torch.Tensor):
        floor = floor.reshape(-1, *([1] * (A.ndim - 2)))
    dZ = torch.empty_like(A)
    dr = None
    for t in range(A.shape[1] - 1, -1, -1):
        a = A[:, t]
        if dr is None:
            torch.mul(gA[:, t], 1 - a * a, out=dZ[:, t])
        else:
            if floor is not None:
                dr.mul_(a > floor)
            torch.mul(gA[:, t] + dr, 1 - a * a, out=dZ[:, t])
        if t > 0:
            dr = through_w(dZ[:, t])
    return dZ


def _core_forward(U: torch.Tensor, W: torch.Tensor, floor) -> torch.Tensor:
    T = U.shape[1]
    A = torch.empty_like(U)
    Wt = W.transpose(1, 2)
    torch.tanh(U[:, 0], out=A[:, 0])
    for t in range(1, T):
        torch.baddbmm(U[:, t], _pass_on(A[:, t - 1], floor), Wt, out=A[:, t])
        A[:, t].tanh_()
    return A


def rnn_core(U: torch.Tensor, W: torch.Tensor, rectify) -> torch.Tensor:
    """Run the recurrent loop.

    Args:
        U: ``(S, T, B, N)`` input drive per step (input projection plus both biases), contiguous.
        W: ``(S, N, N)`` recurrent matrix ``W[post, pre]``.
        rectify: pass ``relu(a_t)`` to the next step instead of ``a_t``: one bool for every member, or one flag
            per member (``(S,)`` bool tensor or sequence) for a mixed batch.

    Returns:
        ``(S, T, B, N)`` activations ``a_t = tanh(U_t + W r_{t-1})`` (unrectified), differentiable in ``U`` and ``W``.
        The layout keeps each step's ``(B, N)`` slab contiguous and lets the weight gradient be one matmul.
    """
    U = U.contiguous()
    floor = state_floor(rectify, U)
    if torch.is_grad_enabled() and (U.requires_grad or W.requires_grad):
        return _RNNCore.apply(U, W, floor)
    return _core_forward(U, W, floor)


class SparsePattern:
    """The fixed nonzero pattern of a ``(S, N, N)`` 0/1 mask, as CSR structures for :func:`rnn_core_sparse`.

    Per seed: the CSR row pointers and column indices of ``W`` and of ``W^T``, the flat (row-major) positions of
    the kept entries in ``W`` (CSR order is row-major, so ``W[s].view(-1)[index[s]]`` are the CSR values) and the
    permutation that orders those values for ``W^T``.
    """

    def __init__(self, mask: torch.Tensor):
        mask = torch.as_tensor(mask)
        if mask.ndim != 3 or mask.shape[1] != mask.shape[2]:
            raise BiornnError(f"mask has shape {tuple(mask.shape)}; expected (seeds, N, N)")
        S, N, _ = mask.shape
        self.shape = (N, N)
        self.n_seeds = S
        self.crow, self.col, self.crow_t, self.col_t, self.perm, self.index = ([] for _ in range(6))
        for s in range(S):
            m = mask[s] != 0
            idx = torch.full((N, N), -1, dtype=torch.long, device=m.device)
            flat = m.reshape(-1).nonzero().squeeze(1)
            idx.view(-1)[flat] = torch.arange(flat.numel(), device=m.device)
            counts = m.sum(1)
            self.crow.append(torch.cat([counts.new_zeros(1), counts.cumsum(0)]))
            self.col.append(flat % N)
            counts_t = m.sum(0)
            self.crow_t.append(torch.cat([counts_t.new_zeros(1), counts_t.cumsum(0)]))
            self.col_t.append(m.T.reshape(-1).nonzero().squeeze(1) % N)
            self.perm.append(idx.T[m.T])  # W^T's values in CSR order = values[perm]
            self.index.append(flat)

    def matrix(self, s: int, values: torch.Tensor, transpose: bool = False) -> torch.Tensor:
        """Seed ``s``'s CSR matrix (or its transpose) holding ``values`` (CSR order of ``W``)."""
        if transpose:
            return torch.sparse_csr_tensor(self.crow_t[s], self.col_t[s], values[self.perm[s]], self.shape,
                                           check_invariants=False)
        return torch.sparse_csr_tensor(self.crow[s], self.col[s], values, self.shape, check_invariants=False)

    def values(self, W: torch.Tensor) -> list[torch.Tensor]:
        """The kept entries of ``W`` ``(S, N, N)``, one CSR-ordered vector per seed."""
        return [W[s].reshape(-1)[self.index[s]] for s in range(self.n_seeds)]


class _SparseRNNCore(torch.autograd.Function):
    """:func:`rnn_core` with CSR kernels over a fixed pattern, in the ``(S, T, N, B)`` layout inside."""

    @staticmethod
    def forward(ctx, U, W, pattern: SparsePattern, rectify: bool):  # noqa: D102
        S, T, B, N = U.shape
        Ut = U.transpose(2, 3).contiguous()  # (S, T, N, B): each step is W (N, N) @ r (N, B)
        A = torch.empty_like(Ut)
        with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
            warnings.simplefilter("ignore", UserWarning)
            values = pattern.values(W.detach())
            Ws = [pattern.matrix(s, v) for s, v in enumerate(values)]
            torch.tanh(Ut[:, 0], out=A[:, 0])
            for t in range(1, T):
                R = A[:, t - 1].clamp_min(0) if rectify else A[:, t - 1]
                for s in range(S):
                    torch.addmm(Ut[s, t], Ws[s], R[s], out=A[s, t])
                A[:, t].tanh_()
        ctx.save_for_backward(A, *values)
        ctx.pattern, ctx.rectify = pattern, rectify
        return A.transpose(2, 3)

    @staticmethod
    def backward(ctx, gA):  # noqa: D102
        A, *values = ctx.saved_tensors
        pattern, rectify = ctx.pattern, ctx.rectify
        S, T, N, B = A.shape
        gA = gA.transpose(2, 3).contiguous()
        gW = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            WTs = [pattern.matrix(s, v, transpose=True) for s, v in enumerate(values)]
            dZ = _backprop_states(gA, A, rectify, lambda dz: torch.stack([torch.sparse.mm(WTs[s], dz[s])
                                                                          for s in range(S)]))
            if ctx.needs_input_grad[1]:
                gW = torch.zeros((S, N * N), dtype=A.dtype, device=A.device)
                if T > 1:
                    K = (T - 1) * B
                    for s in range(S):
                        dz = dZ[s, 1:].permute(1, 0, 2).reshape(N, K)  # dz[i, (t, b)] = dZ[t + 1, i, b]
                        r = A[s, :-1].clamp_min(0) if rectify else A[s, :-1]
                        r = r.permute(0, 2, 1).reshape(K, N)  # r[(t, b), j] = r_t[j, b]
                        ones = pattern.matrix(s, A.new_ones(pattern.index[s].numel()))
                        g = torch.sparse.sampled_addmm(ones, dz, r, beta=0.0).values()
                        gW[s].index_copy_(0, pattern.index[s], g)
                gW = gW.reshape(S, N, N)
        return dZ.transpose(2, 3), gW, None, None


def rnn_core_sparse(U: torch.Tensor, W: torch.Tensor, pattern: SparsePattern, rectify: bool) -> torch.Tensor:
    """:func:`rnn_core` for a recurrent matrix that is zero outside a fixed ``pattern`` (the pruned stage).

    Forward ``a_t = tanh(u_t + W r_{t-1})`` with a CSR ``W`` per seed (``addmm``), the state backward with ``W^T``
    (CSR), the weight gradient only at the kept entries (``torch.sparse.sampled_addmm``), returned dense with exact
    zeros elsewhere. Entries of ``W`` outside ``pattern`` are **ignored** (treated as 0): the caller keeps them 0,
    as the masked fine-tuning of :func:`biornn.celltype.train_epoch` does after every step.

    Args:
        U: ``(S, T, B, N)`` input drive per step.
        W: ``(S, N, N)`` recurrent matrix ``W[post, pre]``.
        pattern: the :class:`SparsePattern` of the mask (built once per stage).
        rectify: pass ``relu(a_t)`` to the next step.

    Returns:
        ``(S, T, B, N)`` activations (a transposed view of the internal ``(S, T, N, B)`` layout).
    """
    if pattern.n_seeds != W.shape[0] or pattern.shape != tuple(W.shape[1:]):
        raise BiornnError(f"sparse pattern is for {pattern.n_seeds} seeds of {pattern.shape} but W has shape "
                          f"{tuple(W.shape)}; rebuild it from this model's mask")
    return _SparseRNNCore.apply(U, W, pattern, rectify)


def rnn_core_autograd(U: torch.Tensor, W: torch.Tensor, rectify) -> torch.Tensor:
    """Reference implementation of :func:`rnn_core` built from plain autograd ops (for tests and benchmarks)."""
    outs, r = [], torch.zeros_like(U[:, 0])
    flags = None if isinstance(rectify, bool) else torch.as_tensor(rectify, dtype=torch.bool,
                                                                     device=U.device).reshape(-1, 1, 1)
    for u in U.unbind(1):  # unbind, not U[:, t]: indexing makes the backward O(T^2) in memory traffic
        a = torch.tanh(u + torch.bmm(r, W.transpose(1, 2)))
        outs.append(a)
        if flags is None:
            r = torch.relu(a) if rectify else a
        else:
            r = torch.where(flags, torch.relu(a), a)
    return torch.stack(outs, dim=1)


def make_signs(n_hidden: int = 128, frac_exc: float = 0.8) -> torch.Tensor:
    """``(N,)`` presynaptic signs: ``+1`` for the first ``int(frac_exc * N)`` units (E), ``-1`` for the rest (I)."""
    if n_hidden < 2:
        raise BiornnError(f"hidden size {n_hidden} is too small; use at least 2 units")
    if not 0.0 <= frac_exc <= 1.0:
        raise BiornnError(f"excitatory fraction {frac_exc} is outside [0, 1]")
    n_exc = int(frac_exc * n_hidden)
    signs = torch.ones(n_hidden)
    signs[n_exc:] = -1.0
    return signs


def check_signs(signs, n: int) -> torch.Tensor:
    """Validate a presynaptic sign vector: length ``n``, every entry +1 or -1."""
    signs = torch.as_tensor(signs, dtype=torch.float32)
    if signs.ndim != 1 or signs.shape[0] != n:
        raise BiornnError(f"sign vector has shape {tuple(signs.shape)} but the recurrent matrix has {n} columns; "
                          f"pass one +1/-1 per presynaptic unit ({n} values)")
    bad = ~((signs == 1) | (signs == -1))
    if bool(bad.any()):
        raise BiornnError(f"sign vector holds {signs[bad][0].item()} at index {int(bad.nonzero()[0])}; "
                          "use +1 (excitatory) or -1 (inhibitory)")
    return signs


def signed_uniform_init(signs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Reference initialisation: E columns ``U(0, 1/sqrt N)``, I columns ``U(-1/sqrt N, 0]`` (drawn in float64)."""
    n = signs.shape[0]
    mag = torch.rand((n, n), generator=generator, dtype=torch.float64) / math.sqrt(n)
    return (mag * signs.double()).float()


#: Initialisations of the recurrent matrix of :class:`EIRNN` (:func:`signed_uniform_init`, :func:`balanced_init`).
INITS = ("default", "balanced")


def balanced_init(signs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The reference's signed uniform draw with every unit's excitatory and inhibitory input sums balanced.

    Draws exactly what :func:`signed_uniform_init` draws (same generator stream), then scales each row's inhibitory
    entries by ``c_i = sum_{j in E} W_ij / |sum_{j in I} W_ij|`` so that every row sums to zero while every entry
    keeps its column's sign (Dale's law holds at step 0). Row sums of zero make the all-ones vector an eigenvector
    with eigenvalue 0, which removes the outlier eigenvalue (about ``(102 - 26) x 0.0442 = 3.36`` at N = 128, Q7 of
    docs/paper/fig2-dales-backprop.md) that the default initialisation's net excitation creates; the rest of the
    spectrum stays a bulk (Rajan & Abbott, Phys. Rev. Lett. 97, 188104, 2006: row-sum-zero balanced E/I matrices).

    Args:
        signs: ``(N,)`` presynaptic signs (+1 E, -1 I), with at least one of each.
        generator: the seed's initialisation generator.

    Returns:
        ``(N, N)`` float32 ``W[post, pre]`` with zero row sums (to float32 rounding).
    """
    W = signed_uniform_init(signs, generator).double()
    exc = signs > 0
    if bool(exc.all()) or not bool(exc.any()):
        raise BiornnError("balanced initialisation needs both excitatory and inhibitory units; use init='default'")
    e_sum = W[:, exc].sum(1)
    i_sum = -W[:, ~exc].sum(1)
    scale = torch.where(i_sum > 0, e_sum / i_sum.clamp_min(1e-300), torch.zeros_like(e_sum))
    W[:, ~exc] *= scale[:, None]
    return W.float()


#: Recurrent parametrisations of :class:`EIRNN` (index = the per-member code of a mixed batch).
PARAMETRIZATIONS = ("direct", "song", "song_abs")


def _per_member(value, n: int, name: str, allowed) -> list:
    """``value`` (one setting, or one per member) as a list of ``n`` settings, each checked against ``allowed``."""
    values = [value] * n if isinstance(value, (bool, str)) else list(value)
    if len(values) != n:
        raise BiornnError(f"{name} has {len(values)} entries for {n} seeds; give one value or one per seed")
    for v in values:
        if v not in allowed:
            raise BiornnError(f"unknown {name} {v!r}; use one of {', '.join(map(str, allowed))}")
    return values


class EIRNN(nn.Module):
    """A stack of ``S`` independent E/I RNNs (one per seed) with linear readouts.

    Args:
        seeds: one network per seed; each is initialised from its own generator.
        n_in: input size.
        n_out: readout size.
        n_hidden: N (paper: 128).
        signs: ``(N,)`` presynaptic signs; default 80 % excitatory.
        rectify_state: pass ``relu(a_t)`` to the next step (Dale's as published) instead of ``a_t``; one bool, or
            one per seed for a mixed batch (members of different training rules trained in one pass).
        parametrization: ``"direct"`` (``W_hh`` is the parameter) or ``"song"`` (``W_hh = relu(V) * signs`` with
            ``V`` the parameter, Song et al. 2016; ``"song_abs"`` uses ``|V|``); one name, or one per seed (the
            model's ``parametrization`` is then ``"mixed"`` and ``w_hh`` holds ``W`` or ``V`` per member).
        readout_mask: ``(n_out, N)`` 0/1 array of which hidden units feed which readout (wave E/I readouts).
        output_tanh: pass the readout through ``tanh`` (flip-flop).
        last_step_only: read out only the last step (sequential digits).
        readout_from_state: read out ``r_t`` instead of the unrectified ``a_t`` (Q5 option of the Fig 2 docs page).
        input_mask: optional ``(N, n_in)`` 0/1 mask applied to the input weights (wave E/I input routing, Q3).
        init_key: extra key for the initialisation stream (``""`` for paired runs).
        init: ``W_hh`` initialisation, one of :data:`INITS`: ``default`` (:func:`signed_uniform_init`, as
            published) or ``balanced`` (:func:`balanced_init`); the other parameters are drawn alike either way.
    """

    def __init__(self, seeds, n_in: int, n_out: int, n_hidden: int = 128, signs=None,
                 rectify_state: bool | Sequence[bool] = False, parametrization: str | Sequence[str] = "direct",
                 readout_mask=None,
                 output_tanh: bool = False, last_step_only: bool = False, readout_from_state: bool = False,
                 input_mask=None, init_key: str = "", init: str = "default"):
        super().__init__()
        seeds = list(seeds)
        if not seeds:
            raise BiornnError("no seeds given; pass at least one seed")
        if init not in INITS:
            raise BiornnError(f"unknown initialisation {init!r}; use one of {', '.join(INITS)}")
        draw_w = balanced_init if init == "balanced" else signed_uniform_init
        rect = _per_member(rectify_state, len(seeds), "rectify_state", (True, False))
        kinds = _per_member(parametrization, len(seeds), "parametrization", PARAMETRIZATIONS)
        signs = make_signs(n_hidden) if signs is None else check_signs(signs, n_hidden)
        self.seeds = seeds
        self.n_hidden, self.n_in, self.n_out = n_hidden, n_in, n_out
        self.rectify_state = rect[0] if len(set(rect)) == 1 else tuple(rect)
        self.parametrization = kinds[0] if len(set(kinds)) == 1 else "mixed"
        if self.parametrization == "mixed":  # which parametrisation each member's w_hh holds
            self.register_buffer("param_code", torch.tensor([PARAMETRIZATIONS.index(k) for k in kinds]))
        self.output_tanh, self.last_step_only = output_tanh, last_step_only
        self.readout_from_state = readout_from_state
        self.register_buffer("signs", signs)
        k = 1.0 / math.sqrt(n_hidden)
        mask = torch.ones(n_out, n_hidden) if readout_mask is None else torch.as_tensor(readout_mask).float()
        if tuple(mask.shape) != (n_out, n_hidden):
            raise BiornnError(f"readout mask has shape {tuple(mask.shape)}, expected ({n_out}, {n_hidden})")
        self.register_buffer("readout_mask", mask)
        self.register_buffer("input_mask", None if input_mask is None else torch.as_tensor(input_mask).float())
        w_ih, b_ih, b_hh, w_hh, w_out, b_out = [], [], [], [], [], []
        fan_in = mask.sum(1).clamp_min(1)
        for seed in seeds:
            g = torch.Generator().manual_seed(derive_seed(seed, "init", init_key))
            w_hh.append(draw_w(signs, g))
            w_ih.append((torch.rand((n_hidden, n_in), generator=g) * 2 - 1) * k)
            b_ih.append((torch.rand(n_hidden, generator=g) * 2 - 1) * k)
            b_hh.append((torch.rand(n_hidden, generator=g) * 2 - 1) * k)
            bound = (1.0 / fan_in.sqrt())
            w_out.append((torch.rand((n_out, n_hidden), generator=g) * 2 - 1) * bound[:, None] * mask)
            b_out.append((torch.rand(n_out, generator=g) * 2 - 1) * bound)
        self.w_ih = nn.Parameter(torch.stack(w_ih))
        self.b_ih = nn.Parameter(torch.stack(b_ih))
        self.b_hh = nn.Parameter(torch.stack(b_hh))
        W0 = self.param_from_effective(torch.stack(w_hh))  # Song's V = |W0| gives W_eff = W0 at step 0
        if self.parametrization in ("direct", "mixed"):
            self.w_hh = nn.Parameter(W0)
        else:
            self.v_hh = nn.Parameter(W0)
        self.w_out = nn.Parameter(torch.stack(w_out))
        self.b_out = nn.Parameter(torch.stack(b_out))

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    @property
    def recurrent_param(self) -> nn.Parameter:
        """The trained recurrent parameter (``W_hh`` or Song's ``V``; per member in a mixed batch)."""
        return self.w_hh if self.parametrization in ("direct", "mixed") else self.v_hh

    def param_from_effective(self, W: torch.Tensor) -> torch.Tensor:
        """The recurrent parameter value ``(S, N, N)`` whose effective matrix is the sign-respecting ``W``."""
        if self.parametrization == "direct":
            return W
        if self.parametrization != "mixed":
            return W.abs()
        return torch.where(self.param_code.to(W.device).reshape(-1, 1, 1) == 0, W, W.abs())

    def effective_w_hh(self) -> torch.Tensor:
        """``(S, N, N)`` recurrent matrix used in the forward pass (for Song's parametrisation ``relu(V) * signs``)."""
        if self.parametrization == "direct":
            return self.w_hh
        if self.parametrization == "mixed":
            W, code = self.w_hh, self.param_code.reshape(-1, 1, 1)
            song = torch.where(code == 1, W.clamp_min(0), W.abs()) * self.signs
            return torch.where(code == 0, W, song)
        v = self.v_hh.clamp_min(0) if self.parametrization == "song" else self.v_hh.abs()
        return v * self.signs

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Run the recurrence on ``x`` ``(S or 1, B, T, n_in)``; return ``(S, T, B, N)`` activations ``a_t``."""
        if x.ndim != 4 or x.shape[-1] != self.n_in:
            raise BiornnError(f"input has shape {tuple(x.shape)}; expected (seeds, batch, steps, {self.n_in})")
        w_ih = self.w_ih if self.input_mask is None else self.w_ih * self.input_mask
        # the whole sequence's input projection in one matmul: (S', T, B, I) @ (S, 1, I, N) -> (S, T, B, N)
        U = torch.matmul(x.transpose(1, 2), w_ih.transpose(1, 2)[:, None])
        U = U.add_((self.b_ih + self.b_hh)[:, None, None, :])  # in place: one pass less over (S, T, B, N)
        return rnn_core(U, self.effective_w_hh(), self.rectify_state)

    def readout(self, A: torch.Tensor) -> torch.Tensor:
        """Map ``(S, ..., N)`` activations to ``(S, ..., n_out)`` outputs."""
        floor = state_floor(self.rectify_state, A) if self.readout_from_state else None
        if isinstance(floor, torch.Tensor):  # autograd runs through here: where, so a == 0 gets clamp_min's gradient
            A = torch.where(floor.reshape(-1, *([1] * (A.ndim - 1))) == 0, A.clamp_min(0), A)
        else:
            A = _pass_on(A, floor)
        w = (self.w_out * self.readout_mask).transpose(1, 2)
        shape = A.shape
        # every step's readout (flip-flop, wave): the thin-matmul backward; the last step only (digits): plain bmm
        matmul = torch.bmm if self.last_step_only else thin_matmul
        y = matmul(A.reshape(shape[0], -1, shape[-1]), w).reshape(*shape[:-1], -1)
        y = y + self.b_out.reshape(shape[0], *([1] * (len(shape) - 2)), -1)
        return torch.tanh(y) if self.output_tanh else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs ``(S, B, T, n_out)``, or ``(S, B, n_out)`` with ``last_step_only``."""
        A = self.hidden(x)
        if self.last_step_only:
            return self.readout(A[:, -1])
        return self.readout(A).transpose(1, 2)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """Detach, move to the CPU and convert to a numpy array that owns its memory.

    A copy: on the CPU ``tensor.numpy()`` shares storage, so a snapshot of a parameter would follow later in-place
    updates.
    """
    return t.detach().cpu().numpy().copy()


# ----------------------------------------------------------------------------------------------------------------
# The cell-type constrained two-area RNN (paper Figs 4-5; docs/paper/fig4-5-celltype-rnn.md, section 3)
# ----------------------------------------------------------------------------------------------------------------
#: Input mappings of :class:`CelltypeRNN`: ``dense`` (every unit sees all 18 channels, as the reference effectively
#: ran, Q1 there) and ``population`` (channel ``p`` reaches only population ``p``'s units, the reference's intent).
INPUT_MAPPINGS = ("dense", "population")


class CelltypeRNN(nn.Module):
    """A stack of ``S`` cell-type constrained RNNs (one per seed): 18 populations, signs per presynaptic population.

    Step ``t`` (one imaging frame; no leak, no biases in the recurrent core, ``r_0 = 0``)::

        a_t = tanh(W_in x_t + W_rec r_{t-1}),    r_t = relu(a_t)
        y_t[p] = w_p . a_t[I_p] + b_p            (p = 0..17, I_p = the units of population p)

    The readout sees the **unrectified** ``a_t`` (``readout_from_state=True`` reads ``r_t`` instead, Q2 there) and
    each output reads only its own population's units. Readouts ``(w_p, b_p)`` keep PyTorch's default ``Linear``
    initialisation ``U(+-1/sqrt(n_p))`` and are **frozen** (buffers, never trained), which ties every unit to its
    population so that block averages of ``W_rec`` read as population-level connectivity.

    Initialisation per seed (one generator, :func:`biornn.core.config.derive_seed` ``(seed, "init", "celltype", key)``):
    ``W_rec`` dense with Pyr columns ``U(0, 1/sqrt N)`` and SST/VIP columns ``U(-1/sqrt N, 0]``
    (:func:`signed_uniform_init`), then ``W_in`` ``U(+-1/sqrt N)`` (zero outside the input mask for the
    ``population`` mapping), then the readout weights and biases.

    Args:
        seeds: one network per seed.
        sizes: units per population by cell type, ``{"Pyr": 192, "SST": 32, "VIP": 16}`` by default (N = 1440);
            quick mode uses e.g. ``{"Pyr": 12, "SST": 2, "VIP": 1}`` (N = 90).
        input_mapping: ``"dense"`` or ``"population"`` (see :data:`INPUT_MAPPINGS`).
        readout_from_state: read out ``r_t`` instead of ``a_t``.
        init_key: extra key for the initialisation stream.
        n_stimulus: extra input channels after the 18 population channels (stimulus codes, routed to every unit;
            their weights are drawn after all others, so the legacy stream is unchanged).
        learned_init: learn an initial drive ``h0`` ``(S, N)`` added to step 0 (equivalent to a learned
            ``W r_{-1}``; starts at 0), so the first predicted frames need not start from a silent network.

    Attributes:
        w_in: ``(S, N, 18 + n_stimulus)`` input weights (trained; unsigned).
        h0: ``(S, N)`` learned initial drive (only with ``learned_init``).
        w_rec: ``(S, N, N)`` recurrent weights ``W[post, pre]`` (trained; column signs = :attr:`signs`).
        w_out: ``(S, N)`` frozen readout weight of every unit (for its own population's output).
        b_out: ``(S, 18)`` frozen readout biases.
        signs: ``(N,)`` +1 for Pyr units, -1 for SST and VIP units.
        population: ``(N,)`` population index (0..17, order of :data:`biornn.nn.connectivity.POPULATION_LABELS`).
        input_mask: ``(N, 18)`` 0/1 routing of the input channels (all ones for ``dense``).
    """

    def __init__(self, seeds, sizes: dict[str, int] | None = None, input_mapping: str = "dense",
                 readout_from_state: bool = False, init_key: str = "", n_stimulus: int = 0,
                 learned_init: bool = False):
        super().__init__()
        seeds = list(seeds)
        if not seeds:
            raise BiornnError("no seeds given; pass at least one seed")
        if input_mapping not in INPUT_MAPPINGS:
            raise BiornnError(f"unknown input mapping {input_mapping!r}; use one of {', '.join(INPUT_MAPPINGS)}")
        table = populations(sizes)
        self.sizes = {t: int(table.loc[table["type"] == t, "size"].iloc[0]) for t in ("Pyr", "SST", "VIP")}
        self.seeds = seeds
        self.labels = POPULATION_LABELS
        self.n_pop = len(POPULATION_LABELS)
        self.n_out = self.n_pop
        self.n_stimulus = int(n_stimulus)
        self.n_in = self.n_pop + self.n_stimulus
        self.input_mapping = input_mapping
        self.readout_from_state = readout_from_state
        pop = torch.as_tensor(population_index(self.sizes), dtype=torch.long)
        n = int(pop.shape[0])
        self.n_hidden = n
        signs = torch.as_tensor(unit_signs(self.sizes), dtype=torch.float32)
        self.register_buffer("signs", signs)
        self.register_buffer("population", pop)
        onehot = torch.nn.functional.one_hot(pop, self.n_pop).float()  # (N, 18)
        self.register_buffer("readout_onehot", onehot)
        mask = onehot.clone() if input_mapping == "population" else torch.ones(n, self.n_pop)
        mask = torch.cat([mask, torch.ones(n, self.n_stimulus)], dim=1)
        self.register_buffer("input_mask", mask)
        k = 1.0 / math.sqrt(n)
        fan = torch.as_tensor(table["size"].to_numpy(dtype=np.float64))
        bound_unit = (1.0 / fan.sqrt())[pop].float()  # (N,) U(+-1/sqrt(n_p)) bound of each unit's readout weight
        bound_pop = (1.0 / fan.sqrt()).float()
        w_rec, w_in, w_out, b_out = [], [], [], []
        for seed in seeds:
            g = torch.Generator().manual_seed(derive_seed(seed, "init", "celltype", init_key))
            w_rec.append(signed_uniform_init(signs, g))
            w_in.append((torch.rand((n, self.n_pop), generator=g) * 2 - 1) * k * mask[:, :self.n_pop])
            w_out.append((torch.rand(n, generator=g) * 2 - 1) * bound_unit)
            b_out.append((torch.rand(self.n_pop, generator=g) * 2 - 1) * bound_pop)
            if self.n_stimulus:
                w_in[-1] = torch.cat([w_in[-1], (torch.rand((n, self.n_stimulus), generator=g) * 2 - 1) * k], dim=1)
        self.w_in = nn.Parameter(torch.stack(w_in))
        self.h0 = nn.Parameter(torch.zeros(len(seeds), n)) if learned_init else None
        self.w_rec = nn.Parameter(torch.stack(w_rec))
        self.register_buffer("w_out", torch.stack(w_out))
        self.register_buffer("b_out", torch.stack(b_out))
        self.sparse_pattern: SparsePattern | None = None

    def use_sparse_kernels(self, mask: torch.Tensor | None) -> None:
        """Run the recurrence with CSR kernels over ``mask`` ``(S, N, N)`` (None: back to dense matmuls).

        Only for a ``w_rec`` that stays zero outside ``mask`` (the masked fine-tuning stage): entries outside it
        are ignored. On 2 CPU cores at N = 1440 and 5 % density this runs a pruned-stage batch about 2x faster
        (``benchmarks/run.py``, row ``celltype_pruned``).
        """
        if mask is None:
            self.sparse_pattern = None
            return
        mask = torch.as_tensor(mask, device=self.w_rec.device)
        if tuple(mask.shape) != tuple(self.w_rec.shape):
            raise BiornnError(f"mask has shape {tuple(mask.shape)} but w_rec has {tuple(self.w_rec.shape)}; "
                              "pass one (N, N) mask per seed")
        outside = int(((self.w_rec.detach() != 0) & (mask == 0)).sum())
        if outside:
            raise BiornnError(f"w_rec has {outside} nonzero weights outside the mask; multiply it by the mask "
                              "before switching to sparse kernels")
        self.sparse_pattern = SparsePattern(mask)

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Run the recurrence on ``x`` ``(S or 1, B, T, 18)``; return ``(S, T, B, N)`` activations ``a_t``."""
        if x.ndim != 4 or x.shape[-1] != self.n_in:
            raise BiornnError(f"input has shape {tuple(x.shape)}; expected (seeds, batch, steps, {self.n_in})")
        w_in = self.w_in if self.input_mapping == "dense" else self.w_in * self.input_mask
        # the whole sequence's input projection in one matmul, no biases: U = x W_in^T, (S, T, B, N)
        U = torch.matmul(x.transpose(1, 2), w_in.transpose(1, 2)[:, None])
        if self.h0 is not None:  # learned initial drive at step 0
            U = torch.cat([U[:, :1] + self.h0[:, None, None, :], U[:, 1:]], dim=1)
        if self.sparse_pattern is not None:
            return rnn_core_sparse(U, self.w_rec, self.sparse_pattern, rectify=True)
        return rnn_core(U, self.w_rec, rectify=True)

    def readout_matrix(self) -> torch.Tensor:
        """``(S, N, 18)`` block-diagonal readout: unit ``i`` feeds only its own population's output."""
        return self.w_out[:, :, None] * self.readout_onehot

    def readout(self, A: torch.Tensor) -> torch.Tensor:
        """Map ``(S, ..., N)`` activations to ``(S, ..., 18)`` population outputs."""
        if self.readout_from_state:
            A = A.clamp_min(0)
        shape = A.shape
        y = torch.bmm(A.reshape(shape[0], -1, shape[-1]), self.readout_matrix()).reshape(*shape[:-1], -1)
        return y + self.b_out.reshape(shape[0], *([1] * (len(shape) - 2)), -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predictions ``(S, B, T, 18)`` of the next frame of every population."""
        return self.readout(self.hidden(x)).transpose(1, 2)
