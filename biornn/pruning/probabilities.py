"""Top-prob and random pruning of a trained recurrent matrix ``W[post, pre]`` (Figure 3).

Both methods draw a Boolean keep mask ``M`` with independent Bernoulli entries; the pruned matrix is ``M * W``
(kept values unchanged, not rescaled). Pruning only zeroes entries, so the column signs of a Dale's-law matrix
survive.

* **Top-prob** (topologically informed, probabilistic): keep probabilities ``P = min(1, kappa |w| + Delta)`` with
  ``kappa = B / sum|w|`` and one constant ``Delta >= 0`` per matrix (or block) such that ``sum P = B``: the capped
  excess is spread *additively* over the uncapped entries ("water-filling"). Computed in closed form
  (:func:`topprob_probabilities`); ``redistribution="proportional"`` (``P = min(1, c |w|)``) is an ablation.
* **Random**: every eligible entry is kept with the same probability.

Bookkeeping (§4). ``density`` ``p`` is relative to *all* entries of the matrix (or block), ``n``.

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
``torch.Generator`` seeded with :func:`biornn.core.config.derive_seed` (so the same seed gives the same mask on any
device). By default the stream is keyed by method, density and ``draw``; ``common_random_numbers=True`` reuses one
``U`` per (seed, draw) across levels and methods, which gives nested masks and paired noise (§9.2).

Also here: the block-wise form (:func:`blockwise_mask`, one budget per (post, pre) population block) and the
maximum-spanning-tree overlap analysis (§6). The Figure 3 experiment (sweeps, masked retraining, the
cache, tables and the ``prune`` / ``reproduce-fig3`` commands) is :mod:`biornn.experiments.fig3`.

Facts: ``docs/paper/fig3-topprob-pruning.md`` sections 2-4, 6 and 12.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from biornn.core.errors import BiornnError

PRUNING_METHODS = ("topprob", "random")
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
    capped = sure | (v + level[segs] >= 1.0) if additive else (v > 0) & (v * level[segs] >= 1.0)
    return _probabilities_from_capped(v, capped, segs, budget, n, additive)


def _probabilities_from_capped(v: torch.Tensor, capped: torch.Tensor, segs: torch.Tensor, budget: torch.Tensor,
                               n: torch.Tensor, additive: bool) -> torch.Tensor:
    """Last step of :func:`_waterfill`: recompute each segment's level from its capped set (``n`` entries each)."""
    n_seg, f64 = n.shape[0], dict(dtype=torch.float64, device=v.device)
    free_v = torch.where(capped, 0.0, v)
    n_cap = torch.zeros(n_seg, **f64).index_add_(0, segs, capped.double())
    free = torch.zeros(n_seg, **f64).index_add_(0, segs, free_v)
    if additive:
        left = n - n_cap
        level = torch.where(left > 0, (budget - n_cap - free) / torch.where(left > 0, left, 1.0), 0.0).clamp_min(0)
        level = torch.where(n_cap > 0, level, 0.0)  # nothing capped: Delta = 0 exactly (sum a = B), not rounding noise
        return torch.where(capped, 1.0, (v + level[segs]).clamp(0.0, 1.0))
    c = torch.where(free > 0, (budget - n_cap) / torch.where(free > 0, free, 1.0), 0.0).clamp_min(0)
    return torch.where(capped, 1.0, (v * c[segs]).clamp(0.0, 1.0))


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
    """Top-prob keep probabilities ``P = min(1, kappa |w| + Delta)`` with ``sum P = B`` (§2).

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
    """Random-pruning keep probabilities: one rate for every eligible entry (§3-4).

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
    _check_choice(method, PRUNING_METHODS, "pruning method")
    _check_choice(eligibility, ELIGIBILITY, "eligibility")
    Wb, seg, rows, cols = _whole(W)
    _, budget = _probabilities(Wb, seg, 1, torch.tensor([p], dtype=torch.float64, device=W.device), rows, cols, method,
                               _eligible_b(eligible, W), exclude_diagonal, "additive", eligibility)
    return budget[:, 0].reshape(W.shape[:-2])


