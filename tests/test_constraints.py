"""Dale's projection and the rectified variants (docs/paper/fig2-dales-backprop.md, sections 5 and 12)."""

import pytest
import torch

from biornn.core.errors import BiornnError
from biornn.nn.constraints import dale_project, dale_project_, rectify_published_, sign_violations
from biornn.nn.models import make_signs


@pytest.fixture
def W():
    g = torch.Generator().manual_seed(0)
    return torch.randn((3, 16, 16), generator=g)


def test_projection_satisfies_signs_and_is_idempotent(W):
    s = make_signs(16)
    P = dale_project(W, s)
    assert sign_violations(P, s) == 0
    assert (P[..., s > 0] >= 0).all() and (P[..., s < 0] <= 0).all()
    assert torch.equal(dale_project(P, s), P)


def test_projection_equals_reference_mask_multiply(W):
    s = make_signs(16)
    mask = torch.where(s > 0, (W > 0).float(), (W < 0).float())
    assert torch.equal(dale_project(W, s), W * mask)


def test_projection_is_nearest_point_in_the_cone(W):
    """P_C is the Euclidean projection: no other feasible point we try is closer."""
    s = make_signs(16)
    P = dale_project(W, s)
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        Q = dale_project(P + 0.1 * torch.randn(P.shape, generator=g), s)
        assert torch.linalg.norm(W - P) <= torch.linalg.norm(W - Q) + 1e-6


def test_projection_in_place_keeps_storage(W):
    ptr = W.data_ptr()
    dale_project_(W, make_signs(16))
    assert W.data_ptr() == ptr


def test_rectify_published_silences_inhibition(W):
    s = make_signs(16)
    V = rectify_published_(W.clone(), s)
    assert sign_violations(V, s) == 0
    # a second application zeroes every inhibitory column (the reference's bug, Q1)
    V2 = rectify_published_(V.clone(), s)
    assert (V2[..., s < 0] == 0).all()


def test_wrong_sign_vector_length_is_a_clear_error(W):
    with pytest.raises(BiornnError, match="sign vector has shape"):
        dale_project_(W, torch.ones(15))
