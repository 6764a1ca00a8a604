"""Dale's-law constraints on a recurrent matrix ``W[post, pre]`` (columns carry the presynaptic sign).

Three post-step operations (fig2-dales-backprop.md §5), all in place, on the tensor's device, batched over a leading
seed axis, and never touching the optimiser's moment estimates (Q24 there):

* :func:`dale_project_`: Dale's backprop. The Euclidean projection onto ``C = {W : s_j W_ij >= 0}``,
  ``P_C(W)_ij = s_j max(s_j W_ij, 0)``. Idempotent.
* :func:`rectify_published_`: the reference's "rectified backprop", ``W <- D * max(W, 0)`` with ``D_ij = s_j``.
  It silences every inhibitory column (Q1); kept only to reproduce the published numbers.
* Song et al.'s rectified parametrisation ``W = relu(V) * s`` lives in :class:`biornn.nn.models.EIRNN`
  (``parametrization="song"``): it needs no post-step.

:data:`METHODS` maps each training method to its parametrisation, post-step and default state rectification.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from biornn.core.errors import BiornnError


def _signs_for(W: torch.Tensor, signs) -> torch.Tensor:
    signs = torch.as_tensor(signs, device=W.device, dtype=W.dtype)
    if signs.ndim != 1 or signs.shape[0] != W.shape[-1]:
        raise BiornnError(f"sign vector has shape {tuple(signs.shape)} but W has {W.shape[-1]} columns; "
                          f"pass one +1/-1 per presynaptic unit ({W.shape[-1]} values)")
    return signs


@torch.no_grad()
def dale_project_(W: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """Project ``W`` (``(..., N, N)``) onto the sign-constrained set in place: ``s_j * max(s_j * W_ij, 0)``.

    Entries with the wrong sign become exactly 0 (they may grow back later). Returns ``W``.
    """
    s = _signs_for(W, signs)
    return W.mul_(s).clamp_(min=0).mul_(s)


def dale_project(W: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """Out-of-place :func:`dale_project_`."""
    return dale_project_(W.detach().clone(), signs)


@torch.no_grad()
def rectify_published_(W: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """The reference's rectified post-step, in place: ``W <- s_j * max(W_ij, 0)`` (Q1).

    Excitatory columns behave as in :func:`dale_project_`; inhibitory columns are zeroed at every step except
    for entries Adam just pushed above 0, which are negated, so inhibition stays within about one Adam step of 0.
    """
    s = _signs_for(W, signs)
    return W.clamp_(min=0).mul_(s)


def sign_violations(W, signs) -> int:
    """Number of entries of ``W`` (tensor or array, ``(..., N, N)``) whose sign disagrees with their column's sign.

    Zeros never violate.
    """
    W = torch.as_tensor(W)
    s = _signs_for(W, signs)
    return int(((W * s) < 0).sum().item())


@dataclass(frozen=True)
class Method:
    """How one Figure 2 method trains the recurrent matrix.

    Attributes:
        name: the method's command-line name.
        label: legend label (the reference's wording).
        parametrization: ``"direct"`` or ``"song"`` (see :class:`biornn.nn.models.EIRNN`).
        post_step: ``None``, ``"dale"`` or ``"rectify_published"``, applied after every optimiser step.
        rectify_state: default for passing ``relu(a_t)`` to the next step (Q4: Dale's only, as published).
        constrained: whether the effective ``W_hh`` obeys Dale's law after every step.
    """

    name: str
    label: str
    parametrization: str
    post_step: str | None
    rectify_state: bool
    constrained: bool


METHODS: dict[str, Method] = {
    "conventional": Method("conventional", "Conventional Backprop", "direct", None, False, False),
    "dales": Method("dales", "Dales Backprop", "direct", "dale", True, True),
    "rectified-published": Method("rectified-published", "Rectified Backprop (as published)", "direct",
                                  "rectify_published", False, True),
    "rectified": Method("rectified", "Rectified Backprop (Song et al.)", "song", None, False, True),
}


def get_method(name: str) -> Method:
    """Look up a method by name, with a clear error for unknown names."""
    if name not in METHODS:
        raise BiornnError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def apply_post_step(method: Method, W: torch.Tensor, signs: torch.Tensor) -> None:
    """Apply ``method``'s post-step to ``W`` in place (no-op for conventional and Song-style rectified)."""
    if method.post_step == "dale":
        dale_project_(W, signs)
    elif method.post_step == "rectify_published":
        rectify_published_(W, signs)
