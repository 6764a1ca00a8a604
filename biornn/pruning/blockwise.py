"""Block-wise pruning: one keep budget per (post, pre) population block (the Figure 4 model's pruning step)."""

from __future__ import annotations

import numpy as np
import torch

from biornn.core.errors import BiornnError
from biornn.pruning.masks import _draw, _stream
from biornn.pruning.probabilities import (
    ELIGIBILITY,
    PRUNING_METHODS,
    REDISTRIBUTION,
    SeedLike,
    _as_weights,
    _check_choice,
    _eligible_b,
    _probabilities,
)


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
    _check_choice(method, PRUNING_METHODS, "pruning method")
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


