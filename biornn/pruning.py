"""Top-prob and random pruning of a trained recurrent matrix ``W[post, pre]`` (Figure 3).

Both methods draw a Boolean keep mask ``M`` with independent Bernoulli entries; the pruned matrix is ``M * W``
(kept values unchanged, not rescaled). Pruning only zeroes entries, so the column signs of a Dale's-law matrix
survive.

* **Top-prob** (topologically informed, probabilistic): keep probabilities ``P = min(1, kappa |w| + Delta)`` with
  ``kappa = B / sum|w|`` and one constant ``Delta >= 0`` per matrix (or block) such that ``sum P = B``: the capped
  excess is spread *additively* over the uncapped entries ("water-filling"). Computed in closed form
  (:func:`topprob_probabilities`); ``redistribution="proportional"`` (``P = min(1, c |w|)``) is an ablation.
* **Random**: every eligible entry is kept with the same probability.

Bookkeeping (spec section 4). ``density`` ``p`` is relative to *all* entries of the matrix (or block), ``n``.

* ``eligibility="default"`` (the fix): the eligible set ``E`` is the nonzero entries of ``W`` (existing zeros, e.g.
  written by Dale's projection, are never kept and do not count as eligible), intersected with ``eligible`` if given;
  the diagonal is eligible unless ``exclude_diagonal=True``. Budget ``B = min(|E|, p n)`` for both methods; random
  keeps each eligible entry with probability ``B / |E|``. Both then have expected *functional* density ``p``.
* ``eligibility="as_published"`` (to match the reference arrays): ``1e-25`` is added to every entry (on a copy), so
  all entries, former zeros included, are eligible; top-prob uses ``B_ref = n (1 - s')`` with
  ``s' = (s n - z0) / (n - z0)``, ``z0 = #zeros after the floor + min(rows, cols)`` (0.79 % above ``p n`` for
  ``N = 128``); random keeps every entry with probability ``p - (fraction of zeros after the floor) = p``.
  The diagonal is eligible (the reference's diagonal removal is disabled); ``exclude_diagonal=True`` removes it
  while keeping the ``+min(rows, cols)`` term, as the reference intended.

Masks are drawn from one uniform ``U_ij`` per entry (keep if ``U_ij < P_ij``), generated on the CPU in float64 from a
``torch.Generator`` seeded with :func:`biornn.config.derive_seed` (so the same seed gives the same mask on any
device). By default the stream is keyed by method, density and ``draw``; ``common_random_numbers=True`` reuses one
``U`` per (seed, draw) across levels and methods, which gives nested masks and paired noise (spec 9.2).

Also here: the block-wise form (:func:`blockwise_mask`, one budget per (post, pre) population block), the
maximum-spanning-tree overlap analysis (spec section 6) and the ``prune`` command.

Facts: ``../shared/spec/fig3-topprob-pruning.md`` sections 2-4, 6 and 12.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from biornn.config import derive_seed
from biornn.errors import BiornnError

METHODS = ("topprob", "random")
ELIGIBILITY = ("default", "as_published")
REDISTRIBUTION = ("additive", "proportional")
#: The reference's in-place floor that makes every entry nonzero (applied here to a copy).
FLOOR = 1e-25

SeedLike = int | Sequence[int]


# ----------------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------------
def _as_weights(W, name: str = "weights") -> torch.Tensor:
    """``W`` as a floating tensor of shape ``(..., R, C)``; NaN or inf raise :class:`BiornnError`."""
    if not torch.is_tensor(W):
        W = torch.as_tensor(np.asarray(W))
    if W.ndim < 2:
        raise BiornnError(f"{name} have shape {tuple(W.shape)}; pass an (N, N) matrix or a (seeds, N, N) stack")
    if W.numel() == 0:
        raise BiornnError(f"{name} have shape {tuple(W.shape)} with no entries; pass a non-empty matrix")
    if not W.is_floating_point():
        W = W.double()
    finite = torch.isfinite(W)
    if not bool(finite.all()):
        n_nan = int(torch.isnan(W).sum())
        n_inf = int((~finite).sum()) - n_nan
        raise BiornnError(f"{name} contain {n_nan} NaN and {n_inf} inf entries; check the weights file or the "
                          "training run that wrote it")
    return W


def _check_density(density, name: str = "density") -> float:
    try:
        value = float(density)
    except (TypeError, ValueError):
        raise BiornnError(f"{name} {density!r} is not a number; pass a keep probability in [0, 1]") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise BiornnError(f"{name} {value:g} is outside [0, 1]; pass a keep probability between 0 and 1 "
                          "(e.g. 0.1 keeps 10 % of the synapses)")
    return value


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise BiornnError(f"unknown {what} {value!r}; use one of {', '.join(choices)}")
    return value


def _eligible_mask(W: torch.Tensor, eligible, exclude_diagonal: bool, eligibility: str):
    """``(x, E)``: float64 magnitudes and the Boolean eligible set, both of ``W``'s shape."""
    if eligibility == "as_published":
        A = W + FLOOR  # a copy: the reference adds the floor in place and mutates the trained weights (Q1)
        x = A.abs().double()
        E = A != 0
    else:
        x = W.abs().double()
        E = W != 0
    if eligible is not None:
        e = torch.as_tensor(np.asarray(eligible) if not torch.is_tensor(eligible) else eligible, device=W.device)
        try:
            E = E & e.bool().expand_as(E)
        except RuntimeError:
            raise BiornnError(f"eligible mask has shape {tuple(e.shape)} but the weights have {tuple(W.shape)}; "
                              "pass a Boolean mask of the weights' shape") from None
    if exclude_diagonal:
        R, C = W.shape[-2:]
        E = E & ~torch.eye(R, C, dtype=torch.bool, device=W.device)
    return x, E


# ----------------------------------------------------------------------------------------------------------------
# Segmented water-filling (one segment = one matrix of the batch, or one population block of it)
# ----------------------------------------------------------------------------------------------------------------
def _segment_sort(values: torch.Tensor, segs: torch.Tensor, n_seg: int):
    """Order entries by segment (ascending), then by value (descending) within a segment, with one sort.

    The key is ``seg + (1 - v / max_seg v) / 2``; the float64 key resolves values to about ``1e-12`` of their
    segment's maximum; misordering near-ties moves the estimated level by at most their gap, and the level is
    recomputed from the capped set afterwards (see :func:`_waterfill`).
    """
    vmax = torch.zeros(n_seg, dtype=values.dtype, device=values.device)
    vmax = vmax.scatter_reduce(0, segs, values, "amax", include_self=False)
    scale = vmax[segs]
    y = torch.where(scale > 0, 0.5 * (1.0 - values / torch.where(scale > 0, scale, 1.0)), 0.5)
    order = torch.argsort(segs.double() + y)
    return order


def _segment_prefix(v_sorted: torch.Tensor, g_sorted: torch.Tensor, counts: torch.Tensor):
    """Exclusive within-segment prefix sums and ranks of values already sorted by segment."""
    L = v_sorted.shape[0]
    if L == 0:
        return v_sorted.clone(), g_sorted.clone()
    csum = torch.cumsum(v_sorted, 0)
    starts = torch.cumsum(counts, 0) - counts
    before = torch.where(starts > 0, csum[(starts - 1).clamp_min(0)], 0.0)
    prefix = csum - v_sorted - before[g_sorted]
    rank = torch.arange(L, device=v_sorted.device) - starts[g_sorted]
    return prefix, rank


def _waterfill(values: torch.Tensor, segs: torch.Tensor, budget: torch.Tensor, n_seg: int,
               redistribution: str = "additive") -> torch.Tensor:
    """Keep probabilities of the entries ``values`` (``(L,)`` float64 magnitudes >= 0) in segments ``segs``.

    Additive (the published method): ``P = min(1, a + Delta_g)`` with ``a = kappa_g v``, ``kappa_g = B_g / sum_g v``
    and ``Delta_g >= 0`` solving ``sum_g min(1, a + Delta) = B_g``. For any set ``S`` of ``m`` entries the line
    ``G_S(Delta) = m + sum_{i not in S} (a_i + Delta)`` lies above ``g(Delta) = sum min(1, a_i + Delta)``, so its
    root ``Delta_S`` is at most the true ``Delta``, with equality for the true capped set, which is a prefix of the
    descending order: ``Delta = max_m (B - m - sum_{i >= m} a_(i)) / (n - m)``. Only a band of entries is sorted:
    those above ``1 - Delta_lo`` (``Delta_lo`` from two steps of the reference's loop, a lower bound) are surely
    capped, those below ``1 - B / n`` never are (``Delta <= B / n``). The level is then recomputed from the capped
    set with per-segment sums, for accuracy. Budgets ``B_g >= n_g`` give ``P = 1``.

    Proportional (ablation): ``P = min(1, c v)``, ``c = max_m (B - m) / sum_{i >= m} v_(i)`` by the same argument.
    Entries with ``v = 0`` then get ``P = 0`` and the budget may be unreachable.

    Returns:
        ``(L,)`` float64 probabilities in ``[0, 1]``.
    """
    dev = values.device
    f64 = dict(dtype=torch.float64, device=dev)
    if values.numel() == 0:
        return values.clone()
    additive = redistribution == "additive"
    counts = torch.zeros(n_seg, dtype=torch.long, device=dev).index_add_(0, segs, torch.ones_like(segs))
    n = counts.double()

    def seg_total(x):
        return torch.zeros(n_seg, **f64).index_add_(0, segs, x)

    if additive:
        total = seg_total(values)
        kappa = torch.where(total > 0, budget / torch.where(total > 0, total, 1.0), 0.0)
        v = values * kappa[segs]
        seg_sum = total * kappa
        # Lower bound: Delta_S <= Delta for any set S; two Newton steps (the reference's loop) from Delta = 0.
        lo = torch.zeros(n_seg, **f64)
        for _ in range(2):
            cap = v + lo[segs] >= 1.0
            n_cap = seg_total(cap.double())
            rest = seg_total(torch.where(cap, 0.0, v))
            left = n - n_cap
            lo = torch.where(left > 0, (budget - n_cap - rest) / left.clamp_min(1), math.inf)
        # Upper bound: g(q) >= n q = B for q = B / n, so Delta <= q. Entries with v >= 1 - lo are surely capped,
        # entries with v < 1 - q never are; only the band in between is sorted.
        q = torch.where(n > 0, budget / n.clamp_min(1), 0.0)
        sure = v + lo[segs] >= 1.0
        band = ~sure & (v >= 1.0 - q[segs] - 1e-9)
    else:
        v = values
        seg_sum = seg_total(v)
        sure = torch.zeros_like(v, dtype=torch.bool)
        band = torch.ones_like(v, dtype=torch.bool)
    m0 = seg_total(sure.double())
    s0 = seg_total(torch.where(sure, v, 0.0))
    bi = band.nonzero().squeeze(1)
    vc, gc = v[bi], segs[bi]
    nc = torch.zeros(n_seg, dtype=torch.long, device=dev).index_add_(0, gc, torch.ones_like(gc))
    order = _segment_sort(vc, gc, n_seg)
    v_s, g_s = vc[order], gc[order]
    prefix, rank = _segment_prefix(v_s, g_s, nc)
    tail = (seg_sum - s0)[g_s] - prefix  # sum of everything after the sure set and the first `rank` band entries
    m = m0[g_s] + rank.double()
    if additive:
        cand = (budget[g_s] - m - tail) / (n[g_s] - m)
        # the prefix made of the sure set and the whole band: its root is not among the per-rank values above
        m_all = m0 + nc.double()
        left = n - m_all
        rest = seg_sum - s0 - torch.zeros(n_seg, **f64).index_add_(0, gc, vc)
        level = torch.where(left > 0, (budget - m_all - rest) / left.clamp_min(1), -math.inf)
    else:
        cand = torch.where(tail > 0, (budget[g_s] - m) / torch.where(tail > 0, tail, 1.0), -math.inf)
        level = torch.full((n_seg,), -math.inf, **f64)
    level = level.scatter_reduce(0, g_s, cand, "amax", include_self=True)
    level = torch.where(torch.isfinite(level), level, 0.0)
    if additive:
        capped = sure | (v + level[segs] >= 1.0)
        free_v = torch.where(capped, 0.0, v)
        n_cap = torch.zeros(n_seg, **f64).index_add_(0, segs, capped.double())
        free = torch.zeros(n_seg, **f64).index_add_(0, segs, free_v)
        left = n - n_cap
        level = torch.where(left > 0, (budget - n_cap - free) / torch.where(left > 0, left, 1.0), 0.0).clamp_min(0)
        level = torch.where(n_cap > 0, level, 0.0)  # nothing capped: Delta = 0 exactly (sum a = B), not rounding noise
        P = torch.where(capped, 1.0, (v + level[segs]).clamp(0.0, 1.0))
    else:
        capped = (v > 0) & (v * level[segs] >= 1.0)
        free_v = torch.where(capped, 0.0, v)
        n_cap = torch.zeros(n_seg, **f64).index_add_(0, segs, capped.double())
        free = torch.zeros(n_seg, **f64).index_add_(0, segs, free_v)
        c = torch.where(free > 0, (budget - n_cap) / torch.where(free > 0, free, 1.0), 0.0).clamp_min(0)
        P = torch.where(capped, 1.0, (v * c[segs]).clamp(0.0, 1.0))
    return P


# ----------------------------------------------------------------------------------------------------------------
# Probabilities
# ----------------------------------------------------------------------------------------------------------------
def _probabilities(W: torch.Tensor, seg: torch.Tensor, n_blocks: int, block_density: torch.Tensor,
                   block_rows: torch.Tensor, block_cols: torch.Tensor, method: str, eligible, exclude_diagonal: bool,
                   redistribution: str, eligibility: str):
    """Keep probabilities and budgets for ``W`` ``(Bt, R, C)`` split into blocks ``seg`` ``(R, C)``.

    Returns:
        ``(P, budget)``: ``(Bt, R, C)`` float64 probabilities (0 outside the eligible set) and ``(Bt, K)`` float64
        expected kept counts per block.
    """
    Bt, R, C = W.shape
    K = n_blocks
    dev = W.device
    x, E = _eligible_mask(W, eligible, exclude_diagonal, eligibility)
    flat_seg = (torch.arange(Bt, device=dev)[:, None] * K + seg.reshape(1, -1)).reshape(-1)
    Ef = E.reshape(-1)
    size = torch.bincount(seg.reshape(-1), minlength=K).double()  # entries per block (all, eligible or not)
    n_elig = torch.zeros(Bt * K, dtype=torch.float64, device=dev).index_add_(0, flat_seg, Ef.double()).view(Bt, K)
    d = block_density.double().view(1, K)
    if eligibility == "as_published":
        nonzero = torch.zeros(Bt * K, dtype=torch.float64, device=dev)
        nonzero.index_add_(0, flat_seg, (W + FLOOR != 0).reshape(-1).double())
        zeros = size.view(1, K) - nonzero.view(Bt, K)
        if method == "random":
            rate = (d - zeros / size.clamp_min(1).view(1, K)).clamp(0.0, 1.0)
            budget = rate * n_elig
        else:
            z0 = zeros + torch.minimum(block_rows, block_cols).double().view(1, K)
            sz = size.view(1, K)
            denom = sz - z0
            s_prime = ((1.0 - d) * sz - z0) / torch.where(denom > 0, denom, 1.0)
            budget = torch.where(denom > 0, sz * (1.0 - s_prime), d * sz).clamp_min(0.0)
    else:
        budget = torch.minimum(n_elig, d * size.view(1, K))
    P = torch.zeros(Bt * R * C, dtype=torch.float64, device=dev)
    # only eligible entries of blocks with a positive budget can be kept: the rest stay exactly 0, unsorted
    # (block-wise tables are mostly zero blocks, e.g. every cross-area block of the cell-type model)
    live = budget.reshape(-1) > 0
    idx = (Ef & live[flat_seg]).nonzero().squeeze(1) if not bool(live.all()) else Ef.nonzero().squeeze(1)
    segs = flat_seg[idx]
    if method == "random":
        q = torch.where(n_elig > 0, budget / n_elig.clamp_min(1), 0.0).clamp(0.0, 1.0).reshape(-1)
        P[idx] = q[segs]
    else:
        P[idx] = _waterfill(x.reshape(-1)[idx], segs, budget.reshape(-1), Bt * K, redistribution)
    return P.view(Bt, R, C), budget


def _whole(W: torch.Tensor):
    """Batch-flattened ``(Bt, R, C)`` view plus the one-block segmentation of a whole matrix."""
    Wb = W.reshape(-1, *W.shape[-2:])
    R, C = Wb.shape[-2:]
    seg = torch.zeros((R, C), dtype=torch.long, device=W.device)
    rows = torch.tensor([R], device=W.device)
    cols = torch.tensor([C], device=W.device)
    return Wb, seg, rows, cols


def _eligible_b(eligible, W: torch.Tensor):
    if eligible is None:
        return None
    e = torch.as_tensor(np.asarray(eligible) if not torch.is_tensor(eligible) else eligible, device=W.device)
    try:
        return e.bool().expand_as(W).reshape(-1, *W.shape[-2:])
    except RuntimeError:
        raise BiornnError(f"eligible mask has shape {tuple(e.shape)} but the weights have {tuple(W.shape)}; "
                          "pass a Boolean mask of the weights' shape") from None


def topprob_probabilities(W, density: float, eligible=None, exclude_diagonal: bool = False,
                          redistribution: str = "additive", eligibility: str = "default") -> torch.Tensor:
    """Top-prob keep probabilities ``P = min(1, kappa |w| + Delta)`` with ``sum P = B`` (spec section 2).

    The whole matrix is one block: excitatory and inhibitory columns share one budget and the sign is ignored.
    The excess of capped entries is redistributed additively (water-filling, exact closed form; matches the
    reference's iterative loop to about ``1e-14``).

    Args:
        W: ``(..., R, C)`` weights (torch tensor on any device, or array); leading axes (e.g. seeds) are independent
            matrices with their own budgets.
        density: target keep probability ``p`` in ``[0, 1]``, relative to all ``R * C`` entries.
        eligible: optional Boolean mask (broadcastable to ``W``) further restricting the eligible set.
        exclude_diagonal: make the diagonal ineligible (default: self-connections are eligible, as published).
        redistribution: ``"additive"`` (the method) or ``"proportional"`` (ablation: ``P = min(1, c |w|)``).
        eligibility: ``"default"``: existing zeros are ineligible and do not count, ``B = min(|E|, p R C)``;
            ``"as_published"``: 1e-25 floor on every entry, all entries eligible, ``B_ref = R C (1 - s')``
            (see the module docstring).

    Returns:
        ``(..., R, C)`` float64 probabilities on ``W``'s device, 0 outside the eligible set, non-decreasing in
        ``|w|`` within a matrix.
    """
    W = _as_weights(W)
    p = _check_density(density)
    _check_choice(redistribution, REDISTRIBUTION, "redistribution")
    _check_choice(eligibility, ELIGIBILITY, "eligibility")
    Wb, seg, rows, cols = _whole(W)
    P, _ = _probabilities(Wb, seg, 1, torch.tensor([p], dtype=torch.float64, device=W.device), rows, cols, "topprob",
                          _eligible_b(eligible, W), exclude_diagonal, redistribution, eligibility)
    return P.view(W.shape)


def random_probabilities(W, density: float, eligible=None, exclude_diagonal: bool = False,
                         eligibility: str = "default") -> torch.Tensor:
    """Random-pruning keep probabilities: one rate for every eligible entry (spec sections 3-4).

    Args:
        W: ``(..., R, C)`` weights.
        density: target keep probability ``p`` in ``[0, 1]`` relative to all ``R * C`` entries.
        eligible, exclude_diagonal, eligibility: as in :func:`topprob_probabilities`. Default: rate
            ``min(|E|, p R C) / |E|`` over the nonzero entries (functional density ``p``); ``"as_published"``: rate
            ``p`` over all entries (the reference's ``p - z`` correction with ``z = 0`` after the floor).

    Returns:
        ``(..., R, C)`` float64 probabilities, 0 outside the eligible set.
    """
    W = _as_weights(W)
    p = _check_density(density)
    _check_choice(eligibility, ELIGIBILITY, "eligibility")
    Wb, seg, rows, cols = _whole(W)
    P, _ = _probabilities(Wb, seg, 1, torch.tensor([p], dtype=torch.float64, device=W.device), rows, cols, "random",
                          _eligible_b(eligible, W), exclude_diagonal, "additive", eligibility)
    return P.view(W.shape)


def keep_budget(W, density: float, method: str = "topprob", eligible=None, exclude_diagonal: bool = False,
                eligibility: str = "default") -> torch.Tensor:
    """Expected number of kept entries ``B`` per matrix (the target to log next to the realised count).

    Args:
        W: ``(..., R, C)`` weights.
        density, method, eligible, exclude_diagonal, eligibility: as in :func:`prune`.

    Returns:
        ``W.shape[:-2]`` float64 budgets: ``min(|E|, p R C)`` by default; as published ``p R C * N / (N - 1)``
        (top-prob, square ``N x N`` without zeros) or ``p R C`` (random).
    """
    W = _as_weights(W)
    p = _check_density(density)
    _check_choice(method, METHODS, "pruning method")
    _check_choice(eligibility, ELIGIBILITY, "eligibility")
    Wb, seg, rows, cols = _whole(W)
    _, budget = _probabilities(Wb, seg, 1, torch.tensor([p], dtype=torch.float64, device=W.device), rows, cols, method,
                               _eligible_b(eligible, W), exclude_diagonal, "additive", eligibility)
    return budget[:, 0].reshape(W.shape[:-2])


# ----------------------------------------------------------------------------------------------------------------
# Masks
# ----------------------------------------------------------------------------------------------------------------
def _uniforms(shape: tuple[int, ...], seed: SeedLike, stream: tuple, device) -> torch.Tensor:
    """``shape`` float64 uniforms in ``[0, 1)``, drawn on the CPU (device-independent) and moved to ``device``.

    ``seed`` is one int (one generator fills the whole batch) or one int per matrix of the batch (leading axis).
    """
    if isinstance(seed, (int, np.integer)):
        g = torch.Generator().manual_seed(derive_seed(int(seed), "prune", *stream))
        U = torch.rand(shape, generator=g, dtype=torch.float64)
    else:
        seeds = [int(s) for s in seed]
        batch = shape[:-2]
        if len(batch) != 1 or batch[0] != len(seeds):
            raise BiornnError(f"got {len(seeds)} seeds for weights of shape {shape}; pass one int, or one seed per "
                              "matrix of a (seeds, N, N) stack")
        U = torch.stack([torch.rand(shape[1:], generator=torch.Generator().manual_seed(
            derive_seed(s, "prune", *stream)), dtype=torch.float64) for s in seeds])
    return U.to(device)


def _density_key(density) -> str:
    arr = np.asarray(density, dtype=np.float64)
    if arr.ndim == 0:
        return f"{float(arr):.12g}"
    return hashlib.sha1(arr.tobytes()).hexdigest()[:16]


def _stream(method: str, density, draw: int, common_random_numbers: bool, kind: str = "matrix") -> tuple:
    if common_random_numbers:
        return ("crn", int(draw))
    return (kind, method, _density_key(density), int(draw))


def _draw(P: torch.Tensor, seed: SeedLike, stream: tuple) -> torch.Tensor:
    U = _uniforms(tuple(P.shape), seed, stream, P.device)
    return U < P


def _achieved(mask: torch.Tensor) -> torch.Tensor:
    R, C = mask.shape[-2:]
    return mask.sum(dim=(-2, -1), dtype=torch.float64) / (R * C)


def topprob_mask(W, density: float, seed: SeedLike = 0, *, draw: int = 0, common_random_numbers: bool = False,
                 eligible=None, exclude_diagonal: bool = False, redistribution: str = "additive",
                 eligibility: str = "default") -> tuple[torch.Tensor, torch.Tensor]:
    """Draw a top-prob keep mask: ``M_ij ~ Bernoulli(P_ij)`` with ``P`` from :func:`topprob_probabilities`.

    Args:
        W: ``(..., R, C)`` weights.
        density: target keep probability ``p`` in ``[0, 1]``.
        seed: the run's seed; one int for the whole batch or one per matrix of a ``(S, R, C)`` stack.
        draw: index of the mask draw (K draws per seed and level: ``draw = 0..K-1``).
        common_random_numbers: reuse one ``U`` per (seed, draw) across densities and methods (nested masks).
        eligible, exclude_diagonal, redistribution, eligibility: see :func:`topprob_probabilities`.

    Returns:
        ``(mask, achieved)``: ``(..., R, C)`` Boolean mask on ``W``'s device and ``W.shape[:-2]`` float64 achieved
        nominal density ``|M| / (R C)``.
    """
    P = topprob_probabilities(W, density, eligible, exclude_diagonal, redistribution, eligibility)
    mask = _draw(P, seed, _stream("topprob", density, draw, common_random_numbers))
    return mask, _achieved(mask)


def random_mask(W, density: float, seed: SeedLike = 0, *, draw: int = 0, common_random_numbers: bool = False,
                eligible=None, exclude_diagonal: bool = False,
                eligibility: str = "default") -> tuple[torch.Tensor, torch.Tensor]:
    """Draw a random keep mask: each eligible entry kept independently with one rate (see
    :func:`random_probabilities`: ``B / |E|`` by default, ``p`` over all entries as published).

    Args:
        W, density, seed, draw, common_random_numbers, eligible, exclude_diagonal, eligibility: as in
            :func:`topprob_mask`.

    Returns:
        ``(mask, achieved)`` as in :func:`topprob_mask`.
    """
    P = random_probabilities(W, density, eligible, exclude_diagonal, eligibility)
    mask = _draw(P, seed, _stream("random", density, draw, common_random_numbers))
    return mask, _achieved(mask)


def prune(W, method: str, density: float, seed: SeedLike = 0, **options) -> tuple[torch.Tensor, torch.Tensor,
                                                                                   torch.Tensor]:
    """Prune ``W`` once: draw a mask and zero everything outside it.

    Args:
        W: ``(..., R, C)`` weights (torch tensor or array).
        method: ``"topprob"`` or ``"random"``.
        density: target keep probability ``p`` in ``[0, 1]``.
        seed: the run's seed (one int, or one per matrix of a stack).
        **options: ``draw``, ``common_random_numbers``, ``eligible``, ``exclude_diagonal``, ``eligibility`` and
            (top-prob only) ``redistribution``.

    Returns:
        ``(W_pruned, mask, achieved)``: ``W_pruned`` ``(..., R, C)`` in ``W``'s dtype with kept values unchanged and
        pruned entries exactly ``+0``; the Boolean mask; the achieved nominal density per matrix.
    """
    _check_choice(method, METHODS, "pruning method")
    W = _as_weights(W)
    if method == "topprob":
        mask, achieved = topprob_mask(W, density, seed, **options)
    else:
        if "redistribution" in options:
            raise BiornnError("redistribution applies to top-prob pruning only; drop it for method 'random'")
        mask, achieved = random_mask(W, density, seed, **options)
    return torch.where(mask, W, torch.zeros((), dtype=W.dtype, device=W.device)), mask, achieved


def mask_stats(W, mask) -> dict[str, torch.Tensor]:
    """What to log per (seed, level, method, draw) (spec section 4).

    Args:
        W: ``(..., R, C)`` weights before pruning.
        mask: ``(..., R, C)`` Boolean keep mask.

    Returns:
        Dict of ``W.shape[:-2]`` tensors: ``kept`` (``|M|``), ``kept_nonzero`` (``nnz(M * W)``),
        ``nominal_density`` (``|M| / (R C)``) and ``functional_density`` (``nnz(M * W) / (R C)``).
    """
    W = _as_weights(W)
    mask = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask, device=W.device).bool()
    if mask.shape != W.shape:
        raise BiornnError(f"mask has shape {tuple(mask.shape)} but the weights have {tuple(W.shape)}; pass a mask "
                          "of the weights' shape")
    R, C = W.shape[-2:]
    kept = mask.sum(dim=(-2, -1), dtype=torch.float64)
    nnz = (mask & (W != 0)).sum(dim=(-2, -1), dtype=torch.float64)
    return {"kept": kept, "kept_nonzero": nnz, "nominal_density": kept / (R * C),
            "functional_density": nnz / (R * C)}


# ----------------------------------------------------------------------------------------------------------------
# Block-wise pruning
# ----------------------------------------------------------------------------------------------------------------
def _blocks(W: torch.Tensor, block_density, population):
    """Validate the block table and population vector; return the segmentation of ``W``."""
    N = W.shape[-1]
    if W.shape[-2] != N:
        raise BiornnError(f"block-wise pruning needs square weights, got {tuple(W.shape[-2:])}; pass (N, N) "
                          "matrices")
    pop = torch.as_tensor(np.asarray(population) if not torch.is_tensor(population) else population)
    if pop.ndim != 1 or pop.shape[0] != N:
        raise BiornnError(f"population vector has shape {tuple(pop.shape)} but the weights have {N} units; pass "
                          f"one integer population id per unit ({N} values)")
    if pop.is_floating_point():
        if not bool((pop == pop.round()).all()):
            raise BiornnError("population ids must be whole numbers; pass an integer array of population ids")
    pop = pop.long()
    if bool((pop < 0).any()):
        raise BiornnError(f"population id {int(pop.min())} is negative; use ids 0..P-1")
    table = torch.as_tensor(np.asarray(block_density, dtype=np.float64) if not torch.is_tensor(block_density)
                            else block_density).double()
    n_pop = int(pop.max()) + 1
    if table.ndim != 2 or table.shape[0] != table.shape[1] or table.shape[0] < n_pop:
        raise BiornnError(f"block density table has shape {tuple(table.shape)}; pass a square (P, P) table indexed "
                          f"[post_pop, pre_pop] with P >= {n_pop} (largest population id + 1)")
    bad = ~(torch.isfinite(table) & (table >= 0) & (table <= 1))
    if bool(bad.any()):
        i, j = (int(v) for v in bad.nonzero()[0])
        raise BiornnError(f"block density [{i}, {j}] = {float(table[i, j]):g} is outside [0, 1]; pass keep "
                          "probabilities between 0 and 1")
    P = table.shape[0]
    pop = pop.to(W.device)
    seg = pop[:, None] * P + pop[None, :]
    sizes = torch.bincount(pop, minlength=P)
    rows = sizes[:, None].expand(P, P).reshape(-1)
    cols = sizes[None, :].expand(P, P).reshape(-1)
    return table.to(W.device).reshape(-1), seg, P, rows, cols


def blockwise_probabilities(W, block_density, population, method: str = "topprob", eligible=None,
                            exclude_diagonal: bool = False, redistribution: str = "additive",
                            eligibility: str = "default") -> torch.Tensor:
    """Keep probabilities with one budget per (post, pre) population block.

    Each block ``(a, b)`` (rows of population ``a``, columns of population ``b``) is pruned like a whole matrix
    with density ``block_density[a, b]``, relative to the block's ``n_a n_b`` entries; all blocks are solved at
    once (one sort with a composite key, segment sums with ``index_add``).

    Args:
        W: ``(..., N, N)`` weights.
        block_density: ``(P, P)`` keep probabilities indexed ``[post_pop, pre_pop]``.
        population: ``(N,)`` integer population id of every unit (ids ``0..P-1``).
        method: ``"topprob"`` or ``"random"``.
        eligible, exclude_diagonal, redistribution, eligibility: as in :func:`topprob_probabilities`, per block
            (as published: ``z0`` uses ``min(n_a, n_b)``).

    Returns:
        ``(..., N, N)`` float64 probabilities; blocks with density 0 are exactly 0.
    """
    W = _as_weights(W)
    _check_choice(method, METHODS, "pruning method")
    _check_choice(redistribution, REDISTRIBUTION, "redistribution")
    _check_choice(eligibility, ELIGIBILITY, "eligibility")
    table, seg, n_pop, rows, cols = _blocks(W, block_density, population)
    Wb = W.reshape(-1, *W.shape[-2:])
    P, _ = _probabilities(Wb, seg, n_pop * n_pop, table, rows, cols, method, _eligible_b(eligible, W),
                          exclude_diagonal, redistribution, eligibility)
    return P.view(W.shape)


def blockwise_mask(W, block_density, population, method: str = "topprob", seed: SeedLike = 0, *, draw: int = 0,
                   common_random_numbers: bool = False, eligible=None, exclude_diagonal: bool = False,
                   redistribution: str = "additive",
                   eligibility: str = "default") -> tuple[torch.Tensor, torch.Tensor]:
    """Draw a block-wise keep mask (see :func:`blockwise_probabilities`).

    Args:
        W: ``(..., N, N)`` weights.
        block_density: ``(P, P)`` keep probabilities indexed ``[post_pop, pre_pop]``.
        population: ``(N,)`` integer population ids.
        method: ``"topprob"`` or ``"random"``.
        seed, draw, common_random_numbers: as in :func:`topprob_mask`.
        eligible, exclude_diagonal, redistribution, eligibility: as in :func:`blockwise_probabilities`.

    Returns:
        ``(mask, achieved)``: ``(..., N, N)`` Boolean mask and ``(..., P, P)`` float64 achieved density of every
        block (``|M_block| / (n_a n_b)``; NaN for blocks with no entries).
    """
    P = blockwise_probabilities(W, block_density, population, method, eligible, exclude_diagonal, redistribution,
                                eligibility)
    table, seg, n_pop, _, _ = _blocks(P, block_density, population)
    stream = _stream(method, table.cpu().numpy(), draw, common_random_numbers, kind="blocks")
    mask = _draw(P, seed, stream)
    Mb = mask.reshape(-1, seg.numel())
    K = n_pop * n_pop
    flat_seg = (torch.arange(Mb.shape[0], device=P.device)[:, None] * K + seg.reshape(1, -1)).reshape(-1)
    kept = torch.zeros(Mb.shape[0] * K, dtype=torch.float64, device=P.device)
    kept.index_add_(0, flat_seg, Mb.reshape(-1).double())
    size = torch.bincount(seg.reshape(-1), minlength=K).double()
    achieved = kept.view(-1, K) / size.view(1, K)  # 0/0 -> NaN for empty blocks
    return mask, achieved.view(*W.shape[:-2], n_pop, n_pop)


# ----------------------------------------------------------------------------------------------------------------
# Maximum-spanning-tree overlap (spec section 6)
# ----------------------------------------------------------------------------------------------------------------
def _as_matrix(W, name: str = "weights") -> np.ndarray:
    A = W.detach().cpu().numpy() if torch.is_tensor(W) else np.asarray(W)
    if A.ndim != 2 or A.size == 0:
        raise BiornnError(f"{name} have shape {A.shape}; the spanning-tree analysis needs one (R, C) matrix")
    A = A.astype(np.float64)
    if not np.isfinite(A).all():
        raise BiornnError(f"{name} contain NaN or inf; pass finite weights")
    return A


def max_spanning_tree_edges(Wabs) -> tuple[np.ndarray, np.ndarray]:
    """Maximum spanning tree of the complete bipartite graph ``K_{R,C}`` weighted by ``|W|``.

    Row ``i`` and column ``j`` are separate nodes; edge ``(i, j)`` has weight ``|W_ij|``. Computed with scipy's
    ``minimum_spanning_tree`` on the descending *rank* of each weight (1 = heaviest), so every edge has a positive
    weight (scipy reads 0 as "no edge") and the order is exact; equal weights are ranked by flat index.

    Args:
        Wabs: ``(R, C)`` weights (absolute values are taken).

    Returns:
        ``(rows, cols)``: two int arrays of length ``R + C - 1`` indexing the tree's entries of ``W``.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    A = np.abs(_as_matrix(Wabs))
    R, C = A.shape
    order = np.argsort(-A.ravel(), kind="stable")
    rank = np.empty(R * C, dtype=np.float64)
    rank[order] = np.arange(1, R * C + 1, dtype=np.float64)
    i = np.repeat(np.arange(R), C)
    j = R + np.tile(np.arange(C), R)
    G = coo_matrix((rank, (i, j)), shape=(R + C, R + C)).tocsr()
    T = minimum_spanning_tree(G).tocoo()
    u, v = np.minimum(T.row, T.col), np.maximum(T.row, T.col)
    if u.size != R + C - 1:
        raise BiornnError(f"spanning tree has {u.size} edges instead of {R + C - 1}; the weights graph is "
                          "disconnected")
    order = np.lexsort((v, u))
    return u[order].astype(np.int64), (v[order] - R).astype(np.int64)


def expected_overlap(W, sparsity: float, method: str = "topprob", **options) -> float:
    """Exact expected fraction of the maximum spanning tree's edges kept by one mask draw (spec 6.4).

    The tree ``T`` of ``|W|`` is fixed and the draws are independent, so ``E[overlap | W] = mean_{e in T} P_e``:
    for top-prob the mean of its keep probabilities over the ``R + C - 1`` tree edges; for random pruning its
    rate (``1 - s`` for a matrix without zeros). No bound and no sampling.

    Args:
        W: ``(R, C)`` weights.
        sparsity: target sparsity ``s = 1 - p``.
        method: ``"topprob"`` or ``"random"``.
        **options: ``eligible``, ``exclude_diagonal``, ``eligibility`` (and ``redistribution`` for top-prob).

    Returns:
        The expected overlap in ``[0, 1]``.
    """
    _check_choice(method, METHODS, "pruning method")
    A = _as_matrix(W)
    s = _check_density(sparsity, "sparsity")
    rows, cols = max_spanning_tree_edges(A)
    Wt = torch.from_numpy(A)
    P = (topprob_probabilities(Wt, 1.0 - s, **options) if method == "topprob"
         else random_probabilities(Wt, 1.0 - s, **options))
    return float(P.numpy()[rows, cols].mean())


def empirical_overlap(W, mask) -> float:
    """Fraction of the maximum spanning tree of ``|W|`` kept by ``mask`` (tree edges matched by index).

    Args:
        W: ``(R, C)`` weights.
        mask: ``(R, C)`` Boolean keep mask (or 0/1 array).

    Returns:
        ``|T ∩ kept| / (R + C - 1)``.
    """
    A = _as_matrix(W)
    M = mask.detach().cpu().numpy() if torch.is_tensor(mask) else np.asarray(mask)
    if M.shape != A.shape:
        raise BiornnError(f"mask has shape {M.shape} but the weights have {A.shape}; pass a mask of the weights' "
                          "shape")
    rows, cols = max_spanning_tree_edges(A)
    return float(M[rows, cols].astype(bool).mean())


def overlap_lower_bound(N: int, sparsity: float, P_sorted=None) -> float:
    """Corrected lower bound on the expected MST overlap for i.i.d. continuous weights (spec 6.4).

    ``E[overlap] >= (1 / (2N - 1)) sum_k P_(k) L_k`` with ``P_(k)`` the keep probability of the rank-``k`` weight
    (0 = heaviest), ``L_0 = L_1 = L_2 = 1``, ``L_k = 1 - (k^2 - k) / (N^2 - k)`` for ``3 <= k < N`` and ``L_k = 0``
    for ``k >= N`` (the rank-``k`` edge is in the tree if at least one endpoint is untouched by the ``k`` heavier
    edges). Valid in expectation over the weights' placement, not for every single matrix; loose (plateau 0.39 at
    ``N = 10``).

    Args:
        N: matrix size (``N x N``, tree size ``2N - 1``).
        sparsity: target sparsity ``s``; used only when ``P_sorted`` is None (then ``P_(k) = 1 - s``, random pruning).
        P_sorted: ``(..., N^2)`` keep probabilities ordered by decreasing weight (e.g. ``sort(P)[::-1]`` for
            top-prob, whose ``P`` is monotone in ``|w|``).

    Returns:
        The bound (float, or an array for a stack of ``P_sorted``).
    """
    N = int(N)
    if N < 2:
        raise BiornnError(f"matrix size {N} is too small; the spanning-tree bound needs N >= 2")
    s = _check_density(sparsity, "sparsity")
    k = np.arange(N * N, dtype=np.float64)
    L = np.where(k < 3, 1.0, np.where(k < N, 1.0 - (k * k - k) / (N * N - k), 0.0))
    if P_sorted is None:
        P = np.full(N * N, 1.0 - s)
    else:
        P = np.asarray(P_sorted.detach().cpu().numpy() if torch.is_tensor(P_sorted) else P_sorted, dtype=np.float64)
        if P.shape[-1] != N * N:
            raise BiornnError(f"P_sorted has {P.shape[-1]} entries per matrix, expected N^2 = {N * N}")
    out = (P * L).sum(-1) / (2 * N - 1)
    return float(out) if np.ndim(out) == 0 else out


def reference_lower_bound(W, sparsity: float) -> float:
    """The reference's "top-prob lower bound" LB_ref with its defects (spec 6.3; as published, not a bound).

    ``P`` is computed as in section 2 but without the floor and without the ``+N`` term (``B = N^2 (1 - s)``, all
    entries eligible), ordered by decreasing weight, and
    ``LB_ref = [sum_{k=1..3} P_(k) + sum_{k=4..N} P_(k) (N-k)^2 / (N^2-k)] / min(2N - 1, n_S)`` with
    ``n_S = floor((1 - s) N^2)`` in floating point. It skips rank 0, uses the both-endpoints factor and shrinks its
    denominator for ``s > 0.8``. Returns 0 when ``n_S = 0``.

    Args:
        W: ``(N, N)`` weights.
        sparsity: target sparsity ``s``.

    Returns:
        LB_ref.
    """
    A = np.abs(_as_matrix(W))
    N = A.shape[0]
    if A.shape != (N, N) or N < 4:
        raise BiornnError(f"reference bound needs a square matrix with N >= 4, got {A.shape}")
    s = _check_density(sparsity, "sparsity")
    n_s = int((1.0 - s) * N * N)
    if n_s == 0:
        return 0.0
    budget = torch.tensor([N * N * (1.0 - s)], dtype=torch.float64)
    flat = torch.from_numpy(A.ravel())
    P = _waterfill(flat, torch.zeros(N * N, dtype=torch.long), budget, 1).numpy()
    P_sorted = P[np.argsort(-A.ravel(), kind="stable")]
    k = np.arange(4, N + 1)
    total = P_sorted[1:4].sum() + (P_sorted[k] * (N - k) ** 2 / (N * N - k)).sum()
    return float(total / min(2 * N - 1, n_s))


def reference_random_expectation(sparsity: float, n_total: int = 100) -> float:
    """The reference's random-pruning MST expectation (spec 6.2, as published).

    Its hypergeometric sum equals ``n_S / n_total`` with ``n_S = floor((1 - s) n_total)`` computed in floating
    point and ``n_total = 100`` hard-coded (correct only for ``N = 10``); e.g. 0.64 at ``s = 0.35`` from
    ``np.linspace(0, 1, 21)``.
    """
    s = _check_density(sparsity, "sparsity")
    return int((1.0 - s) * n_total) / n_total


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
    from biornn.results import atomic_write_bytes

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


# ----------------------------------------------------------------------------------------------------------------
# Figure 3 experiment
# ----------------------------------------------------------------------------------------------------------------
# Dale's-backprop networks are trained per task (paper mode: 10 seeds, the Fig 2 paper sizes), pruned once per
# (seed, level, method, draw) from their final weights and evaluated on each seed's full held-out test set without
# retraining; at one level (p = 0.0862) they are also retrained with the mask fixed (spec sections 5 and 9).

#: The tasks of Figure 3 (``digits`` is the sklearn 8x8 stand-in for sequential MNIST; see :mod:`biornn.tasks`).
FIG3_TASKS = ("flipflop", "wave", "digits")
#: The paper's sweep of connection probabilities: ``{0} ∪ linspace(0.01, 1, 14)`` (15 levels, spec 5.3).
SWEEP = np.r_[0.0, np.linspace(0.01, 1.0, 14)]
#: Level of the masked-retraining experiment: ``SWEEP[2] = 0.0862`` (s = 0.914, "~90 % sparse", spec 5.2).
RETRAIN_DENSITY = float(SWEEP[2])
#: Sparsities of the spanning-tree panel (spec 5.3).
MST_SPARSITIES = np.linspace(0.0, 1.0, 21)
#: Seeds of the dense networks: paper mode needs >= 10 (an exact paired test on 5 seeds cannot reach p < 0.0625).
FIG3_SEEDS = {"paper": tuple(range(10)), "quick": (0, 1, 2)}
#: Mask draws per (seed, level, method) (spec 9.2: K >= 10); quick mode uses fewer.
FIG3_DRAWS = {"paper": 10, "quick": 2}
#: Dense training epochs in quick mode (the Fig 2 quick sizes, trained longer so flip-flop is learned at all).
QUICK_DENSE_EPOCHS = {"flipflop": 40, "wave": 25, "digits": 30, "mnist": 2}
#: Masked-retraining epochs (spec 5.4: wave 10, flip-flop 40, sMNIST 25). The 8x8 digits stand-in uses sMNIST's 25
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
    from biornn.config import get_mode
    from biornn.train import fig2_config

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
    from biornn.config import get_mode
    from biornn.results import cached_train
    from biornn.train import train

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
    """Mask draws per (seed, level, method): 10 in paper mode, 2 in quick mode (spec 9.2)."""
    from biornn.config import get_mode

    return FIG3_DRAWS[get_mode(mode)]


def _progress(iterable, total: int, desc: str, enabled: bool):
    from biornn.train import _progress as progress_bar

    return progress_bar(iterable, total, desc, enabled)


class _Evaluator:
    """A run's trained model and held-out test set, to evaluate any recurrent matrices ``(S, N, N)`` quickly."""

    def __init__(self, run, data=None, device=None):
        from biornn.config import get_device
        from biornn.train import build_data, build_model, load_weights

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
        from biornn.train import evaluate

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
    import time

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
    for j in _progress(range(L), L, f"{ev.config.task} sweep", progress):
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
    """Masked retraining of one task's pruned networks (spec 5.4).

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
    from biornn.config import get_mode

    return RETRAIN_EPOCHS[get_mode(mode)][task]


def retrain_pruned(run, method: str = "topprob", density: float = RETRAIN_DENSITY, epochs: int | None = None, *,
                   draw: int = 0, common_random_numbers: bool = False, eligibility: str = "default",
                   device: str | None = None, progress: bool = True, data=None) -> RetrainResult:
    """Prune every network of ``run`` once at ``density`` and retrain it with the mask fixed (spec 5.4 [Rec]).

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
    import time

    from biornn.constraints import sign_violations
    from biornn.train import train

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
    from biornn.results import provenance, save_run

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
    from biornn.results import load_run

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
    from biornn.results import provenance, save_run

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
    from biornn.results import load_run

    metrics, a = load_run(directory, required=("test_loss", "train_loss", "dense_loss", "mask"))
    cfg = metrics["config"]
    return RetrainResult(metrics["task"], cfg["method"], float(cfg["density"]), tuple(metrics["seeds"]),
                         int(cfg["epochs"]), a["test_loss"], a["train_loss"], a.get("test_accuracy"),
                         a["dense_loss"], a["nominal_density"], a["mask"].astype(bool), int(metrics["outside_mask"]),
                         int(metrics["sign_violations"]), None,
                         {k: cfg[k] for k in ("draw", "eligibility", "common_random_numbers")},
                         float(metrics.get("provenance", {}).get("wall_seconds", float("nan"))))


def _cached(kind: str, run, key: dict, compute, save, load, retrain, root):
    from biornn.results import run_dir, want_retrain

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
    from biornn.config import get_mode

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
    """Overlap of pruning masks with the maximum spanning tree of uniform random matrices (spec 6, panel A).

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
    import pandas as pd

    from biornn.stats import pruning_comparison

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
    import pandas as pd

    from biornn.stats import pruning_comparison, reference_aggregation

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
    import pandas as pd

    from biornn.stats import PAIRED_TESTS, paired_effects

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
    from biornn.config import get_mode

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
        from biornn.results import RESULTS_DIR

        print(f"cached under {RESULTS_DIR / 'fig3'}")
    return 0
