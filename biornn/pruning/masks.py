"""Keep masks drawn from keep probabilities: top-prob, random, the ``prune`` dispatcher and mask statistics (Figure
3)."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from biornn.core.config import derive_seed
from biornn.core.errors import BiornnError
from biornn.pruning.probabilities import (
    PRUNING_METHODS,
    SeedLike,
    _as_weights,
    _check_choice,
    random_probabilities,
    topprob_probabilities,
)


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
    _check_choice(method, PRUNING_METHODS, "pruning method")
    W = _as_weights(W)
    if method == "topprob":
        mask, achieved = topprob_mask(W, density, seed, **options)
    else:
        if "redistribution" in options:
            raise BiornnError("redistribution applies to top-prob pruning only; drop it for method 'random'")
        mask, achieved = random_mask(W, density, seed, **options)
    return torch.where(mask, W, torch.zeros((), dtype=W.dtype, device=W.device)), mask, achieved


def mask_stats(W, mask) -> dict[str, torch.Tensor]:
    """What to log per (seed, level, method, draw) (§4).

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


