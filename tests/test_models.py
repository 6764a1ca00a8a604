"""The batched E/I RNN: hand-written backward through time equals autograd; init matches the reference."""

import numpy as np
import pytest
import torch

from biornn.core.errors import BiornnError
from biornn.nn.models import (
    EIRNN,
    CelltypeRNN,
    SparsePattern,
    check_signs,
    make_signs,
    rnn_core,
    rnn_core_autograd,
    rnn_core_sparse,
    thin_matmul,
)


@pytest.mark.parametrize("rectify", [False, True])
def test_handwritten_bptt_matches_autograd(rectify):
    g = torch.Generator().manual_seed(0)
    U = torch.randn((2, 9, 3, 6), generator=g, dtype=torch.float64, requires_grad=True)
    W = (0.5 * torch.randn((2, 6, 6), generator=g, dtype=torch.float64)).requires_grad_()
    A1, A2 = rnn_core(U, W, rectify), rnn_core_autograd(U, W, rectify)
    assert torch.allclose(A1, A2, atol=1e-12)
    gA = torch.randn(A1.shape, generator=g, dtype=torch.float64)
    g1 = torch.autograd.grad((A1 * gA).sum(), (U, W))
    g2 = torch.autograd.grad((A2 * gA).sum(), (U, W))
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, atol=1e-10)


def test_gradcheck_core():
    g = torch.Generator().manual_seed(1)
    U = torch.randn((1, 4, 2, 3), generator=g, dtype=torch.float64, requires_grad=True)
    W = (0.5 * torch.randn((1, 3, 3), generator=g, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda u, w: rnn_core(u, w, True), (U, W))


def test_reference_initialisation_statistics():
    """Mean row sum and the outlier eigenvalue are about (102 - 26) * 0.0442 = 3.36 (fig2-dales-backprop.md §12)."""
    model = EIRNN(range(4), n_in=1, n_out=1)
    W = model.w_hh.detach().double()
    assert W.shape == (4, 128, 128)
    s = model.signs
    assert (W[..., s > 0] >= 0).all() and (W[..., s < 0] <= 0).all()
    assert abs(W.sum(-1).mean().item() - 3.36) < 0.1
    lead = torch.linalg.eigvals(W).abs().max(-1).values
    assert torch.allclose(lead, torch.full_like(lead, 3.36), atol=0.15)
    assert W.abs().max() <= 1 / np.sqrt(128)


def test_seeds_are_independent_of_batch_composition():
    a = EIRNN([3, 7], n_in=2, n_out=1)
    b = EIRNN([7], n_in=2, n_out=1)
    assert torch.equal(a.w_hh[1], b.w_hh[0])


def test_song_parametrisation_starts_at_the_same_matrix():
    direct = EIRNN([0], n_in=1, n_out=1)
    song = EIRNN([0], n_in=1, n_out=1, parametrization="song")
    assert torch.equal(direct.effective_w_hh(), song.effective_w_hh())


def test_forward_shapes():
    m = EIRNN([0, 1], n_in=3, n_out=2, n_hidden=16)
    x = torch.randn(2, 5, 7, 3)
    assert m(x).shape == (2, 5, 7, 2)
    m.last_step_only = True
    assert m(x).shape == (2, 5, 2)
    assert m(x[:1]).shape == (2, 5, 2)  # shared data broadcasts over seeds


def test_sign_vector_checks():
    with pytest.raises(BiornnError, match="128 columns"):
        check_signs(torch.ones(100), 128)
    with pytest.raises(BiornnError, match="use \\+1"):
        check_signs(torch.tensor([1.0, 0.5]), 2)
    with pytest.raises(BiornnError, match="sign vector"):
        EIRNN([0], n_in=1, n_out=1, n_hidden=8, signs=make_signs(9))


@pytest.mark.parametrize("rectify", [True, False])
def test_sparse_core_matches_dense_core_on_a_masked_matrix(rectify):
    g = torch.Generator().manual_seed(3)
    S, T, B, N = 3, 7, 5, 40
    M = (torch.rand(S, N, N, generator=g) < 0.15).float()
    M[1] = 0  # one seed with an empty pattern
    M[2, :, 0] = 1  # a full column
    W = torch.randn(S, N, N, generator=g, dtype=torch.float64) * M
    U = torch.randn(S, T, B, N, generator=g, dtype=torch.float64)
    gA = torch.randn(S, T, B, N, generator=g, dtype=torch.float64)
    outs = []
    for core in ("dense", "sparse"):
        Wc, Uc = W.clone().requires_grad_(), U.clone().requires_grad_()
        A = rnn_core(Uc, Wc, rectify) if core == "dense" else rnn_core_sparse(Uc, Wc, SparsePattern(M), rectify)
        (A * gA).sum().backward()
        outs.append((A.detach(), Uc.grad, Wc.grad))
    (A1, dU1, dW1), (A2, dU2, dW2) = outs
    torch.testing.assert_close(A2, A1, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(dU2, dU1, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(dW2, dW1 * M, rtol=1e-10, atol=1e-12)  # the dense gradient, restricted to the mask
    assert torch.all(dW2[M == 0] == 0) and dW1[M == 0].abs().max() > 0  # exact zeros outside, not by accident


def test_sparse_kernels_refuse_weights_outside_the_mask():
    model = CelltypeRNN([0, 1], {"Pyr": 4, "SST": 2, "VIP": 2})
    N = model.n_hidden
    mask = (torch.rand(2, N, N, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    with pytest.raises(BiornnError, match="nonzero weights outside the mask"):
        model.use_sparse_kernels(mask)
    with pytest.raises(BiornnError, match="one \\(N, N\\) mask per seed"):
        model.use_sparse_kernels(mask[:1])
    with torch.no_grad():
        model.w_rec.mul_(mask)
    x = torch.rand(1, 3, 5, 18, generator=torch.Generator().manual_seed(1))
    dense = model(x)
    model.use_sparse_kernels(mask)
    torch.testing.assert_close(model(x), dense, rtol=1e-5, atol=1e-6)
    with pytest.raises(BiornnError, match="rebuild it from this model's mask"):
        rnn_core_sparse(torch.zeros(1, 2, 3, N), model.w_rec[:1], model.sparse_pattern, True)
    model.use_sparse_kernels(None)
    assert model.sparse_pattern is None


@pytest.mark.parametrize("transposed", [False, True])  # True: W as the readout passes it, (S, O, N).transpose(1, 2)
@pytest.mark.parametrize("steps, batch, n_out", [(50, 200, 1), (500, 100, 2)])  # flip-flop and wave paper shapes
def test_thin_matmul_gives_autograd_bmm_numbers_bit_for_bit(steps, batch, n_out, transposed):
    g = torch.Generator().manual_seed(3)
    A = torch.randn(5, steps * batch, 128, generator=g, requires_grad=True)
    W = torch.randn(5, 128, n_out, generator=g)
    W = (W.transpose(1, 2).contiguous().transpose(1, 2) if transposed else W).requires_grad_(True)
    gY = torch.randn(5, steps * batch, n_out, generator=g)
    out = {}
    for name, fn in (("bmm", torch.bmm), ("thin", thin_matmul)):
        A.grad = W.grad = None
        Y = fn(A, W)
        Y.backward(gY)
        out[name] = (Y.detach(), A.grad.clone(), W.grad.clone())
    for ref, new in zip(out["bmm"], out["thin"]):
        assert torch.equal(ref, new)


def test_balanced_init_removes_the_outlier_and_keeps_dale_signs():
    """Zero row sums (Rajan & Abbott 2006): the 3.36 outlier of the default draw is gone, the bulk stays below 1."""
    default = EIRNN(range(3), n_in=1, n_out=1).w_hh.detach().double()
    model = EIRNN(range(3), n_in=1, n_out=1, init="balanced")
    W = model.w_hh.detach().double()
    s = model.signs
    assert (W[..., s > 0] >= 0).all() and (W[..., s < 0] <= 0).all()
    assert W.sum(-1).abs().max() < 1e-5
    radius = torch.linalg.eigvals(W).abs().max(-1).values
    assert (radius < 1.0).all() and (torch.linalg.eigvals(default).abs().max(-1).values > 3.0).all()
    assert torch.equal(W[..., s > 0], default[..., s > 0])  # same draw, only the I columns rescaled
    assert torch.equal(model.w_ih, EIRNN(range(3), n_in=1, n_out=1).w_ih)  # the rest of the init is paired
    with pytest.raises(BiornnError, match="unknown initialisation"):
        EIRNN([0], n_in=1, n_out=1, init="orthogonal")
    with pytest.raises(BiornnError, match="both excitatory and inhibitory"):
        EIRNN([0], n_in=1, n_out=1, signs=torch.ones(128), init="balanced")
