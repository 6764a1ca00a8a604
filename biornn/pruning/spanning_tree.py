"""Maximum-spanning-tree overlap of a pruning mask (Figure 3A, §6 of ``docs/paper/fig3-topprob-pruning.md``)."""

from __future__ import annotations

import numpy as np
import torch

from biornn.core.errors import BiornnError
from biornn.pruning.probabilities import (
    PRUNING_METHODS,
    _check_choice,
    _check_density,
    _waterfill,
    random_probabilities,
    topprob_probabilities,
)


# ----------------------------------------------------------------------------------------------------------------
# Maximum-spanning-tree overlap (§6)
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
    """Exact expected fraction of the maximum spanning tree's edges kept by one mask draw (§6.4).

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
    _check_choice(method, PRUNING_METHODS, "pruning method")
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
    """Corrected lower bound on the expected MST overlap for i.i.d. continuous weights (§6.4).

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
    """The reference's "top-prob lower bound" LB_ref with its defects (§6.3; as published, not a bound).

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
    """The reference's random-pruning MST expectation (§6.2, as published).

    Its hypergeometric sum equals ``n_S / n_total`` with ``n_S = floor((1 - s) n_total)`` computed in floating
    point and ``n_total = 100`` hard-coded (correct only for ``N = 10``); e.g. 0.64 at ``s = 0.35`` from
    ``np.linspace(0, 1, 21)``.
    """
    s = _check_density(sparsity, "sparsity")
    return int((1.0 - s) * n_total) / n_total
