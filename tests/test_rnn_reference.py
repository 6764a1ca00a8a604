"""Figure 2's E/I network against ``torch.nn.RNN`` stepped one time step at a time, in float64.

biornn runs the recurrence with a hand-written backward through time (:func:`biornn.models.rnn_core`), a single
input-projection matmul per sequence and a recurrent weight gradient summed in one matmul. The reference here is the
plainest possible model: ``nn.RNN(tanh)`` called on one step at a time with the state fed back by hand (``relu`` of
the step's output when the state is rectified) and an ``nn.Linear`` readout of the unrectified output, trained with
the same Adam and the method's post-step written out independently. On the same weights and the same flip-flop
batches both must agree to about 1e-10 relative: the loss, every gradient and every weight after 20 Adam steps.

Methods (:data:`biornn.constraints.METHODS`): ``conventional`` (no post-step), ``dales`` (Dale projection
``W_ij <- s_j max(s_j W_ij, 0)`` after each step), ``rectified-published`` (``W_ij <- s_j max(W_ij, 0)``) and
``rectified`` (Song: ``W = relu(V) * s``, ``V`` trained). Each with and without state rectification
(``r_t = relu(a_t)`` passed to the next step).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from biornn.constraints import apply_post_step, get_method, sign_violations
from biornn.models import EIRNN
from biornn.tasks import make_flipflop
from biornn.train import per_seed_loss

N, T, B, N_STEPS = 32, 20, 8, 20
SEEDS = (0, 1)
LR = 1e-3
RTOL = 1e-10
METHOD_NAMES = ("conventional", "dales", "rectified-published", "rectified")
CASES = [(m, r) for m in METHOD_NAMES for r in (False, True)]


class _SongWeight(nn.Module):
    """``V -> relu(V) * s`` (Song et al.'s sign-constrained parametrisation), for ``torch.nn.utils.parametrize``."""

    def __init__(self, signs: torch.Tensor):
        super().__init__()
        self.register_buffer("signs", signs.clone())

    def forward(self, v: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.relu(v) * self.signs


class ReferenceRNN(nn.Module):
    """One seed of :class:`biornn.models.EIRNN` rebuilt from ``nn.RNN`` + ``nn.Linear``, stepped by hand.

    Args:
        model: the biornn model whose weights are copied (float64).
        seed_index: which seed of the stack.
        method: ``conventional``, ``dales``, ``rectified-published`` or ``rectified``.
    """

    def __init__(self, model: EIRNN, seed_index: int, method: str):
        super().__init__()
        s = seed_index
        self.method = method
        self.rectify = model.rectify_state
        self.output_tanh = model.output_tanh
        self.register_buffer("signs", model.signs.detach().clone())
        self.rnn = nn.RNN(model.n_in, model.n_hidden, nonlinearity="tanh", batch_first=True).double()
        self.out = nn.Linear(model.n_hidden, model.n_out).double()
        with torch.no_grad():
            self.rnn.weight_ih_l0.copy_(model.w_ih[s])
            self.rnn.bias_ih_l0.copy_(model.b_ih[s])
            self.rnn.bias_hh_l0.copy_(model.b_hh[s])
            self.rnn.weight_hh_l0.copy_(model.effective_w_hh()[s])
            self.out.weight.copy_(model.w_out[s] * model.readout_mask)
            self.out.bias.copy_(model.b_out[s])
        if method == "rectified":
            parametrize.register_parametrization(self.rnn, "weight_hh_l0", _SongWeight(self.signs),
                                                 unsafe=True)
            with torch.no_grad():
                self.rnn.parametrizations.weight_hh_l0.original.copy_(model.v_hh[s])

    @property
    def recurrent_param(self) -> nn.Parameter:
        """The trained recurrent parameter (``W_hh``, or Song's ``V``)."""
        if self.method == "rectified":
            return self.rnn.parametrizations.weight_hh_l0.original
        return self.rnn.weight_hh_l0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, n_in)`` -> ``(B, T, n_out)``, one ``nn.RNN`` call per step with the state fed back."""
        h = x.new_zeros(1, x.shape[0], self.rnn.hidden_size)
        outs = []
        for t in range(x.shape[1]):
            a, _ = self.rnn(x[:, t:t + 1], h)  # a = tanh(W_ih x_t + b_ih + W_hh h + b_hh), (B, 1, N)
            y = self.out(a)
            outs.append(torch.tanh(y) if self.output_tanh else y)
            h = (torch.relu(a) if self.rectify else a).transpose(0, 1)
        return torch.cat(outs, dim=1)

    @torch.no_grad()
    def post_step(self) -> None:
        """The method's post-step, written independently of :mod:`biornn.constraints`."""
        W, s = self.recurrent_param, self.signs
        if self.method == "dales":  # keep entries whose sign agrees with their column, zero the rest
            W.copy_(torch.where(W * s >= 0, W, torch.zeros_like(W)))
        elif self.method == "rectified-published":  # drop negative entries, then give each column its sign
            W.copy_(torch.where(W > 0, W, torch.zeros_like(W)) * s)

    def grads(self) -> dict[str, torch.Tensor]:
        """Gradients under biornn's parameter names."""
        return {"w_ih": self.rnn.weight_ih_l0.grad, "b_ih": self.rnn.bias_ih_l0.grad,
                "b_hh": self.rnn.bias_hh_l0.grad, "recurrent": self.recurrent_param.grad,
                "w_out": self.out.weight.grad, "b_out": self.out.bias.grad}

    def weights(self) -> dict[str, torch.Tensor]:
        """Current weights under biornn's parameter names (``W_hh`` is the effective matrix)."""
        return {"w_ih": self.rnn.weight_ih_l0, "b_ih": self.rnn.bias_ih_l0, "b_hh": self.rnn.bias_hh_l0,
                "recurrent": self.recurrent_param, "w_hh": self.rnn.weight_hh_l0, "w_out": self.out.weight,
                "b_out": self.out.bias}


def _biornn_grads(model: EIRNN, s: int) -> dict[str, torch.Tensor]:
    return {"w_ih": model.w_ih.grad[s], "b_ih": model.b_ih.grad[s], "b_hh": model.b_hh.grad[s],
            "recurrent": model.recurrent_param.grad[s], "w_out": model.w_out.grad[s], "b_out": model.b_out.grad[s]}


def _biornn_weights(model: EIRNN, s: int) -> dict[str, torch.Tensor]:
    return {"w_ih": model.w_ih[s], "b_ih": model.b_ih[s], "b_hh": model.b_hh[s],
            "recurrent": model.recurrent_param[s], "w_hh": model.effective_w_hh()[s], "w_out": model.w_out[s],
            "b_out": model.b_out[s]}


def assert_same(actual: torch.Tensor, expected: torch.Tensor, what: str, rtol: float = RTOL) -> None:
    """Relative agreement: norm-wise within ``rtol`` and element-wise within ``rtol`` of the largest entry."""
    actual, expected = actual.detach(), expected.detach()
    assert actual.dtype == torch.float64 and expected.dtype == torch.float64, what
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} vs {tuple(expected.shape)}"
    scale = float(expected.abs().max())
    assert scale > 0, f"{what} is all zero; the comparison would be vacuous"
    err = float((actual - expected).norm() / expected.norm())
    assert err <= rtol, f"{what}: relative error {err:.3g} > {rtol:g}"
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * scale, msg=what)


def _data(n_batches: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(S, n_batches * B, T, 1)`` flip-flop inputs and targets, denser pulses than the paper's for signal."""
    data = make_flipflop(SEEDS, n_train=n_batches * B, n_test=1, steps=T, pulse_prob=0.2)
    return torch.from_numpy(data.x_train).double(), torch.from_numpy(data.y_train).double()


def _pair(method: str, rectify: bool) -> tuple[EIRNN, list[ReferenceRNN]]:
    m = get_method(method)
    model = EIRNN(SEEDS, n_in=1, n_out=1, n_hidden=N, rectify_state=rectify, parametrization=m.parametrization,
                  output_tanh=True).double()
    return model, [ReferenceRNN(model, s, method) for s in range(len(SEEDS))]


def _reference_loss(refs: list[ReferenceRNN], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sum over seeds of the per-element MSE (what :func:`biornn.train.train` back-propagates)."""
    return sum(((ref(x[s]) - y[s]) ** 2).mean() for s, ref in enumerate(refs))


def _compare_step(model: EIRNN, refs: list[ReferenceRNN], x: torch.Tensor, y: torch.Tensor, label: str):
    """One forward/backward of both on the same batch; compare the loss and every gradient."""
    model.zero_grad(set_to_none=True)
    for ref in refs:
        ref.zero_grad(set_to_none=True)
    loss = per_seed_loss(model(x), y, "regression").sum()
    loss.backward()
    ref_loss = _reference_loss(refs, x, y)
    ref_loss.backward()
    assert_same(loss, ref_loss, f"{label}: loss")
    for s, ref in enumerate(refs):
        got, want = _biornn_grads(model, s), ref.grads()
        for name in want:
            assert_same(got[name], want[name], f"{label}: seed {s} gradient of {name}")
    return loss


@pytest.mark.parametrize(("method", "rectify"), CASES)
def test_loss_and_gradients_match_nn_rnn(method, rectify):
    model, refs = _pair(method, rectify)
    x, y = _data(1)
    _compare_step(model, refs, x, y, f"{method}, rectify={rectify}")


@pytest.mark.parametrize(("method", "rectify"), CASES)
def test_twenty_adam_steps_match_nn_rnn(method, rectify):
    model, refs = _pair(method, rectify)
    m = get_method(method)
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8)
    ref_opts = [torch.optim.Adam(ref.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8) for ref in refs]
    x, y = _data(N_STEPS)
    W0 = model.effective_w_hh().detach().clone()
    for k in range(N_STEPS):
        xb, yb = x[:, k * B:(k + 1) * B], y[:, k * B:(k + 1) * B]
        _compare_step(model, refs, xb, yb, f"{method}, rectify={rectify}, step {k}")
        opt.step()
        apply_post_step(m, model.recurrent_param.data, model.signs)
        for ref, ref_opt in zip(refs, ref_opts):
            ref_opt.step()
            ref.post_step()
    W = model.effective_w_hh().detach()
    assert float((W - W0).abs().max()) > 10 * LR, "W_hh barely moved; the trajectory comparison is vacuous"
    for s, ref in enumerate(refs):
        got, want = _biornn_weights(model, s), ref.weights()
        for name in want:
            assert_same(got[name], want[name], f"{method}, rectify={rectify}: seed {s} {name} after {N_STEPS} steps")
    if m.constrained:
        assert sign_violations(W, model.signs) == 0


def test_the_comparison_can_fail():
    """Sanity: a 1e-6 change of one recurrent weight, or a missing Dale projection, breaks the equality."""
    model, refs = _pair("dales", True)
    x, y = _data(N_STEPS)
    with torch.no_grad():
        refs[1].rnn.weight_hh_l0[3, 5] += 1e-6
    with pytest.raises(AssertionError):
        _compare_step(model, refs, x[:, :B], y[:, :B], "perturbed")

    model, refs = _pair("dales", True)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    ref_opts = [torch.optim.Adam(ref.parameters(), lr=LR) for ref in refs]
    for k in range(N_STEPS):  # biornn projects, the reference does not
        xb, yb = x[:, k * B:(k + 1) * B], y[:, k * B:(k + 1) * B]
        model.zero_grad()
        per_seed_loss(model(xb), yb, "regression").sum().backward()
        opt.step()
        apply_post_step(get_method("dales"), model.recurrent_param.data, model.signs)
        for ref in refs:
            ref.zero_grad()
        _reference_loss(refs, xb, yb).backward()
        for ref_opt in ref_opts:
            ref_opt.step()
    assert sign_violations(refs[0].rnn.weight_hh_l0.detach(), model.signs) > 0
    with pytest.raises(AssertionError):
        assert_same(model.w_hh[0], refs[0].rnn.weight_hh_l0, "unprojected reference")


def test_state_rectification_is_exercised():
    """Sanity: with these weights some activations are negative, so ``relu`` on the state changes the run."""
    model, _ = _pair("conventional", False)
    x, y = _data(1)
    with torch.no_grad():
        A = model.hidden(x)
        assert float((A < 0).double().mean()) > 0.05
        plain = model(x)
        model.rectify_state = True
        assert float((model(x) - plain).abs().max()) > 1e-3
