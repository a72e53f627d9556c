"""Torch parity of the numpy core in float64: every module, the loss, L2, whole-model
gradients, and optimizer trajectories over several steps with a changing learning rate.

Each test builds the numpy object first and its twin with :func:`doodlelab.twin.from_numpy`
(or the task classes), so the two start from identical weights; dropout layers on
both sides draw from Generators seeded alike, so they drop the same units.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from tests.conftest import ScriptedDraws, need_module

torch = need_module("torch", "torch")

from doodlelab import nn, twin
from doodlelab.config import ModelConfig, build_config
from doodlelab.tasks.classifier import NumpyClassifier
from doodlelab.tasks.mlp import build_mlp
from doodlelab.tasks.streams import Streams
from doodlelab.twin.classifier import TorchClassifier

TIGHT = {"rtol": 1e-12, "atol": 1e-12}
DROP_SEED = 11
F64 = np.float64

# name -> factory(init_rng, dropout_rng) of a numpy module taking (B, 7) inputs.
MODULES: dict[str, Callable[[np.random.Generator, np.random.Generator], nn.Module]] = {
    "linear": lambda r, d: nn.Linear(7, 4, rng=r, dtype=F64),
    "linear_no_bias": lambda r, d: nn.Linear(7, 4, rng=r, bias=False, dtype=F64),
    "relu": lambda r, d: nn.ReLU(),
    "leaky_relu": lambda r, d: nn.LeakyReLU(0.2),
    "tanh": lambda r, d: nn.Tanh(),
    "sigmoid": lambda r, d: nn.Sigmoid(),
    "dropout": lambda r, d: nn.Dropout(0.4, rng=d),
    "l2_normalize": lambda r, d: nn.L2Normalize(),
    "sequential": lambda r, d: nn.Sequential(
        nn.Dropout(0.1, rng=d), nn.Linear(7, 5, rng=r, dtype=F64), nn.LeakyReLU(),
        nn.Dropout(0.5, rng=d), nn.Linear(5, 3, rng=r, init="glorot_uniform", dtype=F64),
        nn.Sigmoid(),
    ),
}


def _assert_close(actual, expected, **tol) -> None:
    actual = actual.detach().numpy() if isinstance(actual, torch.Tensor) else actual
    np.testing.assert_allclose(actual, expected, **(tol or TIGHT))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", list(MODULES))
def test_module_forward_and_backward_match_autograd(name: str, seed: int, training: bool) -> None:
    rng = np.random.default_rng(seed)
    core = MODULES[name](rng, np.random.default_rng([seed, DROP_SEED])).train(training)
    tw = twin.from_numpy(core, dropout_rng=np.random.default_rng([seed, DROP_SEED]))
    assert tw.training == training
    x = rng.normal(0.0, 2.0, size=(6, 7))
    x[0, :3] = 0.0  # the kink of (leaky) ReLU: both sides send no/sloped gradient
    xt = torch.tensor(x, requires_grad=True)

    out = core.forward(x.copy())
    out_t = tw(xt)
    _assert_close(out_t, out)

    dout = rng.normal(size=out.shape)
    core.zero_grad()
    dx = core.backward(dout)
    out_t.backward(torch.tensor(dout))
    _assert_close(xt.grad, dx)
    twin_grads = twin.numpy_grads(tw)
    for pname, _, g in core.named_parameters():
        _assert_close(twin_grads[pname], g)


def test_twin_keeps_names_layout_and_weights() -> None:
    core = MODULES["sequential"](np.random.default_rng(0), np.random.default_rng(1))
    tw = twin.from_numpy(core)
    assert [n for n, _ in tw.named_parameters()] == [n for n, _, _ in core.named_parameters()]
    assert tuple(tw[1].weight.shape) == (5, 7)  # torch (out, in); the core keeps (in, out)
    np.testing.assert_array_equal(tw[1].weight.detach().numpy(), core[1].params["weight"].T)
    state = twin.numpy_state(tw)
    for name, p, _ in core.named_parameters():
        np.testing.assert_array_equal(state[name], p)
        assert state[name].flags.c_contiguous
    assert tw[0].rng is core[0].rng  # without dropout_rng the twin shares the core's stream


def test_load_numpy_state_round_trip_and_errors() -> None:
    core = MODULES["sequential"](np.random.default_rng(0), np.random.default_rng(1))
    tw = twin.from_numpy(core)
    fresh = {k: np.full_like(v, 0.5) + np.arange(v.shape[-1]) for k, v in core.state_dict().items()}
    twin.load_numpy_state(tw, fresh)
    for k, v in twin.numpy_state(tw).items():
        np.testing.assert_array_equal(v, fresh[k])
    with pytest.raises(KeyError, match="missing"):
        twin.load_numpy_state(tw, {k: v for k, v in fresh.items() if k != "1.bias"})
    with pytest.raises(ValueError, match=r"1.weight: shape \(5, 7\) does not match \(7, 5\)"):
        twin.load_numpy_state(tw, {**fresh, "1.weight": fresh["1.weight"].T})
    with pytest.raises(TypeError, match="no torch twin"):
        twin.from_numpy(nn.Module())


def test_twin_dropout_keeps_a_unit_where_its_uniform_draw_is_at_least_p() -> None:
    # The documented rule, worked by hand (as in tests/nn/test_dropout.py): one uniform draw per
    # unit, row-major; kept where the draw is at least p = 0.3, kept units times 1 / 0.7.
    draws = [0.05, 0.3, 0.29999, 0.9,
             0.31, 0.0, 0.7, 0.99,
             0.5, 0.1, 0.4, 0.2]
    kept = torch.tensor([[0, 1, 0, 1], [1, 0, 1, 1], [1, 0, 1, 0]], dtype=torch.bool)
    x = torch.arange(1.0, 13.0, dtype=torch.float64).reshape(3, 4)
    tw = twin.Dropout(0.3, rng=ScriptedDraws(draws)).train()
    assert torch.equal(tw(x), torch.where(kept, x * (1 / 0.7), 0.0))
    tw.rng, tw.shard = ScriptedDraws(draws), (3, slice(1, 3))  # rows 1-2 of a global batch of 3
    assert torch.equal(tw(x[1:]), torch.where(kept[1:], x[1:] * (1 / 0.7), 0.0))
    assert torch.equal(tw.eval()(x), x)
    with pytest.raises(ValueError, match="dropout probability"):
        twin.Dropout(1.0, rng=np.random.default_rng(0))


def test_twin_dropout_and_the_core_stay_in_step_call_after_call() -> None:
    x = np.ones((50, 40))
    core = nn.Dropout(0.3, rng=np.random.default_rng(5))
    tw = twin.Dropout(0.3, rng=np.random.default_rng(5))
    for _ in range(3):
        _assert_close(tw(torch.tensor(x)), core.forward(x), rtol=0, atol=0)
    assert tw(torch.ones(2, 3, dtype=torch.float32)).dtype == torch.float32


@pytest.mark.parametrize("scale", [1.0, 60.0], ids=["unit", "huge-logits"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.4])
def test_loss_and_its_gradient_match_torch(smoothing: float, scale: float) -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, scale, size=(9, 5))
    y = rng.integers(0, 5, size=9)
    core = nn.SoftmaxCrossEntropy(smoothing)
    loss = core.forward(logits, y)
    grad = core.backward()
    lt = torch.tensor(logits, requires_grad=True)
    loss_t = twin.SoftmaxCrossEntropy(smoothing)(lt, torch.tensor(y))
    loss_t.backward()
    assert np.isfinite(loss)
    _assert_close(loss_t, loss)
    _assert_close(lt.grad, grad)


@pytest.mark.parametrize("strength", [0.0, 0.01, 0.3])
def test_l2_penalty_value_and_gradient_match_torch(strength: float) -> None:
    core = MODULES["sequential"](np.random.default_rng(0), np.random.default_rng(1))
    tw = twin.from_numpy(core)
    core.zero_grad()
    value = nn.l2_penalty(core, strength)
    value_t = twin.l2_penalty(tw, strength)
    _assert_close(value_t, value)
    if strength:
        value_t.backward()
    grads = twin.numpy_grads(tw)
    for name, _, g in core.named_parameters():
        _assert_close(grads[name], g)
        if name.endswith("bias"):
            assert not g.any()  # biases are not penalised


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid"])
def test_whole_model_gradients_match_autograd(activation: str) -> None:
    cfg = ModelConfig(hidden=(12, 8), activation=activation, dropout=0.3, input_dropout=0.2)
    core = build_mlp(cfg, rng=np.random.default_rng(1), dropout_rng=np.random.default_rng(2),
                     n_in=10, n_out=5, dtype=F64)
    tw = twin.build_mlp(cfg, rng=np.random.default_rng(1), dropout_rng=np.random.default_rng(2),
                        n_in=10, n_out=5, dtype=F64)
    for name, value in twin.numpy_state(tw).items():  # identical draws, no copy needed
        np.testing.assert_array_equal(value, core.state_dict()[name])
    rng = np.random.default_rng(4)
    x, y = rng.random((16, 10)), rng.integers(0, 5, 16)

    loss = nn.SoftmaxCrossEntropy(0.1)
    core.zero_grad()
    objective = loss.forward(core.forward(x), y)
    core.backward(loss.backward())
    objective += nn.l2_penalty(core, 0.02)
    objective_t = (twin.SoftmaxCrossEntropy(0.1)(tw(torch.tensor(x)), torch.tensor(y))
                   + twin.l2_penalty(tw, 0.02))
    objective_t.backward()

    _assert_close(objective_t, objective)
    grads = twin.numpy_grads(tw)
    for name, _, g in core.named_parameters():
        _assert_close(grads[name], g)


OPTIMIZERS = {
    "plain": {"momentum": 0.0, "nesterov": False, "weight_decay": 0.0},
    "momentum": {"momentum": 0.9, "nesterov": False, "weight_decay": 0.0},
    "nesterov": {"momentum": 0.9, "nesterov": True, "weight_decay": 0.0},
    "momentum+wd": {"momentum": 0.9, "nesterov": False, "weight_decay": 5e-3},
    "nesterov+wd+l2": {"momentum": 0.8, "nesterov": True, "weight_decay": 5e-3, "l2": 1e-3},
}
# A learning rate that jumps around: the textbook momentum form would drift from torch here.
LRS = [0.1, 0.1, 0.03, 0.2, 0.005, 0.08, 0.15, 0.05]


def _trajectory(dtype: type, optim: dict, tol: float) -> None:
    cfg = build_config({"model": {"hidden": [16, 8], "dropout": 0.25, "input_dropout": 0.1},
                        "optim": {"lr": 0.1, **optim}, "train": {"label_smoothing": 0.05}})
    core = NumpyClassifier(cfg, Streams.from_seed(3), dtype=dtype)
    tw = TorchClassifier(cfg, Streams.from_seed(3), dtype=dtype)
    rng = np.random.default_rng(7)
    for lr in LRS:
        x, y = rng.random((12, 784)).astype(dtype), rng.integers(0, 5, 12)
        core.set_lr(lr)
        tw.set_lr(lr)
        objective, correct = core.train_batch(x, y)
        objective_t, correct_t = tw.train_batch(x, y)
        assert objective_t == pytest.approx(objective, rel=tol, abs=tol)
        assert correct_t == correct
        twin_state = tw.state_dict()
        for name, p in core.state_dict().items():
            np.testing.assert_allclose(twin_state[name], p, rtol=0, atol=tol, err_msg=name)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_trajectory_float64(name: str) -> None:
    _trajectory(np.float64, OPTIMIZERS[name], tol=1e-10)


@pytest.mark.parametrize("name", ["nesterov+wd+l2"])
def test_optimizer_trajectory_float32(name: str) -> None:
    _trajectory(np.float32, OPTIMIZERS[name], tol=1e-5)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_the_gradients_read_after_a_step_are_that_steps_gradients(name: str) -> None:
    # The gradient check reads .grad after the optimizer steps. torch's multi-tensor SGD
    # (foreach=True, its default on a GPU) adds Nesterov's momentum term into .grad in place,
    # which would make the twin's gradients 1.9 times the core's after a first step here.
    cfg = build_config({"model": {"hidden": [16, 8]}, "optim": {"lr": 0.1, **OPTIMIZERS[name]}})
    core = NumpyClassifier(cfg, Streams.from_seed(3), dtype=F64)
    tw = TorchClassifier(cfg, Streams.from_seed(3), dtype=F64)
    rng = np.random.default_rng(8)
    for _ in range(2):
        x, y = rng.random((12, 784)), rng.integers(0, 5, 12)
        core.train_batch(x, y)
        tw.train_batch(x, y)
        grads = twin.numpy_grads(tw.model)
        for param, _, g in core.model.named_parameters():
            np.testing.assert_allclose(grads[param], g, rtol=0, atol=1e-12, err_msg=param)


def test_l2_normalize_of_a_zero_row_matches_torch() -> None:
    core = nn.L2Normalize()
    x = np.zeros((3, 4))
    x[1] = [3.0, 4.0, 0.0, 0.0]
    x[2] = [1e-13, 0.0, 0.0, 0.0]  # shorter than eps: divided by eps, like torch
    dout = np.arange(12.0).reshape(3, 4)
    xt = torch.tensor(x, requires_grad=True)
    yt = twin.from_numpy(core)(xt)
    (yt * torch.tensor(dout)).sum().backward()
    _assert_close(core.forward(x), yt.detach().numpy())
    _assert_close(core.backward(dout), xt.grad.numpy(), rtol=1e-12, atol=0)
    assert np.all(core.forward(x)[0] == 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scale", [0.0, 0.5, 1.0 - 2.0**-20, 1.0, 1.0 + 2.0**-20, 2.0, 1e6])
def test_l2_normalize_at_and_around_its_floor_matches_torch(dtype, scale: float) -> None:
    # eps a power of two, so a row (eps * scale, 0, 0) has a norm of exactly eps * scale: at
    # scale 1 the norm equals the floor, where torch's clamp_min passes the gradient through.
    eps = 2.0**-40
    core = nn.L2Normalize(eps=eps)
    x = np.zeros((2, 3), dtype=dtype)
    x[0, 0] = eps * scale
    x[1] = np.array([0.5, -0.25, 0.75]) * eps * scale  # another direction, norm ~0.94 eps * scale
    dout = np.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]], dtype=dtype)
    xt = torch.tensor(x, requires_grad=True)
    yt = twin.from_numpy(core)(xt)
    (yt * torch.tensor(dout)).sum().backward()
    tol = {"rtol": 1e-12 if dtype == np.float64 else 1e-6, "atol": 0}
    _assert_close(core.forward(x), yt.detach().numpy(), **tol)
    grad = core.backward(dout)
    _assert_close(grad, xt.grad.numpy(), **tol)
    # expected by hand for the first row: clamped below eps (dout / eps), else the
    # tangential part of dout over the norm (the radial first component drops out)
    by_hand = dout[0] / eps if scale < 1.0 else np.array([0.0, -2.0, 0.5]) / (eps * scale)
    np.testing.assert_allclose(grad[0], by_hand, **tol)
