"""The bookkeeping of the numpy core, checked value by value: state dicts, dtype, repr,
train/eval, the skipped input gradient, softmax, activations at their edges, optimizer state.

Written to kill the mutants that mutation testing (docs/testing.md) found alive.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from doodlelab.nn import (
    SGD,
    Dropout,
    L2Normalize,
    LeakyReLU,
    Linear,
    LRSchedule,
    Module,
    ReLU,
    Sequential,
    Sigmoid,
    SoftmaxCrossEntropy,
    l2_penalty,
    log_softmax,
    softmax,
)
from doodlelab.nn.numeric_grad import numerical_grad


def _mlp(dtype=np.float64) -> Sequential:
    rng = np.random.default_rng(0)
    return Sequential(Linear(3, 2, rng=rng, dtype=dtype), ReLU(), Dropout(0.3, rng=rng),
                      Linear(2, 2, rng=rng, dtype=dtype))


def test_load_state_dict_copies_into_the_same_arrays():
    model = _mlp()
    arrays = [p for _, p, _ in model.named_parameters()]
    state = {k: np.full_like(v, 0.5) for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert [p for _, p, _ in model.named_parameters()] == arrays  # same objects (the optimizer's)
    assert all(p is q for p, q in zip(arrays, [p for _, p, _ in model.named_parameters()]))
    assert all((p == 0.5).all() for p in arrays)
    assert list(state) == ["0.weight", "0.bias", "3.weight", "3.bias"]


def test_load_state_dict_names_missing_unexpected_and_misshapen_entries():
    model = _mlp()
    state = model.state_dict()
    missing = {k: v for k, v in state.items() if k != "3.bias"}
    with pytest.raises(KeyError, match=r"missing \['3.bias'\], unexpected \[\]"):
        model.load_state_dict(missing)
    with pytest.raises(KeyError, match=r"missing \[\], unexpected \['9.weight'\]"):
        model.load_state_dict({**state, "9.weight": state["0.weight"]})
    with pytest.raises(ValueError, match=r"0.weight: shape \(2, 3\) does not match \(3, 2\)"):
        model.load_state_dict({**state, "0.weight": state["0.weight"].T})


def test_astype_converts_every_parameter_and_resets_gradients():
    model = _mlp(np.float32)
    model.layers[0].grads["weight"] += 1.0
    assert model.astype(np.float64) is model
    for _, p, g in model.named_parameters():
        assert p.dtype == g.dtype == np.float64 and g.shape == p.shape and not g.any()
    assert model.astype(np.float32) is model  # and back: every child, weights and biases
    assert all(p.dtype == g.dtype == np.float32 for _, p, g in model.named_parameters())
    lin = Linear(3, 2, rng=np.random.default_rng(0))
    assert lin.params["weight"].dtype == lin.params["bias"].dtype == lin.grads["bias"].dtype == np.float32


def test_repr_lists_the_children_like_torch():
    assert repr(_mlp()) == ("Sequential(\n  (0): Linear(in_features=3, out_features=2)\n  (1): ReLU()\n"
                            "  (2): Dropout(p=0.3)\n  (3): Linear(in_features=2, out_features=2)\n)")
    assert repr(L2Normalize()) == "L2Normalize(eps=1e-12)"
    assert repr(LeakyReLU()) == "LeakyReLU(negative_slope=0.01)"


def test_call_is_forward_and_train_eval_reach_every_child():
    model = _mlp()
    x = np.random.default_rng(1).normal(size=(4, 3))
    model.eval()
    np.testing.assert_array_equal(model(x), model.forward(x))
    assert model.training is False and all(m.training is False for m in model.layers)
    assert model.train() is model
    assert model.training is True and all(m.training is True for m in model.layers)


class Spy(Module):
    """A parameter-free layer that records its backward calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x):
        return x

    def backward(self, dout):
        self.calls += 1
        return dout


class Scale(Module):
    """y = x * w with a parameter but no accumulate_grads of its own (the base class's is used)."""

    def __init__(self) -> None:
        super().__init__()
        self.params["w"] = np.array([2.0])
        self.grads["w"] = np.zeros(1)

    def forward(self, x):
        self._x = x
        return x * self.params["w"]

    def backward(self, dout):
        self.grads["w"] += (dout * self._x).sum()
        return dout * self.params["w"]


def test_without_input_grad_the_layers_below_the_first_parameters_are_never_run_backward():
    spy = Spy()
    inner = Sequential(spy, Linear(3, 2, rng=np.random.default_rng(0), dtype=np.float64))
    outer = Sequential(inner, ReLU(), Linear(2, 2, rng=np.random.default_rng(1), dtype=np.float64))
    x = np.random.default_rng(2).normal(size=(5, 3))
    outer.forward(x)
    assert outer.backward(np.ones((5, 2)), input_grad=False) is None
    assert spy.calls == 0 and inner.layers[1].grads["weight"].any()
    outer.backward(np.ones((5, 2)))
    assert spy.calls == 1


def test_the_base_accumulate_grads_runs_backward():
    scale = Scale()
    model = Sequential(Spy(), scale)
    model.forward(np.array([[1.0, 3.0]]))
    model.backward(np.array([[1.0, 1.0]]), input_grad=False)
    assert scale.grads["w"][0] == 4.0  # sum of dout * x = 1 + 3
    d = np.ones((2, 2))
    assert Sequential().backward(d) is d  # no layers: the gradient passes through


def test_linear_bias_gradient_accumulates():
    lin = Linear(2, 3, rng=np.random.default_rng(0), dtype=np.float64)
    lin.forward(np.ones((4, 2)))
    d = np.arange(12.0).reshape(4, 3)
    lin.backward(d)
    lin.backward(d)
    np.testing.assert_array_equal(lin.grads["bias"], 2 * d.sum(axis=0))  # [36, 44, 52]


def test_softmax_by_hand_along_the_last_axis():
    # e^0 : e^ln2 : e^ln5 = 1 : 2 : 5 -> 1/8, 2/8, 5/8; shifting a row changes nothing
    z = np.log(np.array([[1.0, 2.0, 5.0], [4.0, 4.0, 8.0]])) + np.array([[0.0], [1000.0]])
    np.testing.assert_allclose(softmax(z), [[0.125, 0.25, 0.625], [0.25, 0.25, 0.5]], rtol=1e-12)
    np.testing.assert_allclose(softmax(np.log(np.array([1.0, 3.0]))), [0.25, 0.75], rtol=1e-12)
    cube = np.log(np.arange(1.0, 13.0).reshape(2, 2, 3))  # rows (1, 2, 3), (4, 5, 6), ...
    np.testing.assert_allclose(softmax(cube)[1, 1], [10 / 33, 11 / 33, 12 / 33], rtol=1e-12)
    np.testing.assert_allclose(log_softmax(cube)[1, 1], np.log([10 / 33, 11 / 33, 12 / 33]), rtol=1e-12)
    np.testing.assert_allclose(log_softmax(np.log(np.array([1.0, 3.0]))), np.log([0.25, 0.75]), rtol=1e-12)


def test_label_smoothing_of_one_or_more_is_refused_and_dtypes_are_kept():
    for s in (1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
            SoftmaxCrossEntropy(s)
    ce = SoftmaxCrossEntropy(0.1)
    ce.forward(np.zeros((2, 4), np.float32), np.array([0, 3]))
    grad = ce.backward()
    assert grad.dtype == np.float32
    # uniform probabilities 1/4, target 0.9 + 0.1/4 on the label, 0.1/4 elsewhere, over B = 2
    np.testing.assert_allclose(grad[0], [(0.25 - 0.925) / 2, *[(0.25 - 0.025) / 2] * 3], atol=1e-7)


def test_l2_penalty_of_strength_zero_and_one():
    model = Sequential(Linear(2, 2, rng=np.random.default_rng(0), dtype=np.float64))
    w = model.layers[0].params["weight"]
    model.zero_grad()
    assert l2_penalty(model, 0.0) == 0.0 and not model.layers[0].grads["weight"].any()
    assert l2_penalty(model, 1.0) == pytest.approx(0.5 * (w**2).sum())
    np.testing.assert_allclose(model.layers[0].grads["weight"], w)


def test_leaky_relu_default_slope_and_its_edges():
    act = LeakyReLU()
    x = np.array([[-2.0, 0.0, 0.5, 3.0]])
    np.testing.assert_allclose(act.forward(x), [[-0.02, 0.0, 0.5, 3.0]])
    # at exactly 0 the negative side's slope is used, as in torch
    np.testing.assert_allclose(act.backward(np.ones_like(x)), [[0.01, 0.01, 1.0, 1.0]])


def test_sigmoid_values_and_dtype():
    x = np.array([-30.0, -2.0, 0.0, 2.0, 30.0])
    tail = 9.357622968840175e-14  # 1 / (1 + e^30)
    expected = [tail, 0.11920292202211755, 0.5, 0.8807970779778823, 1 - tail]
    np.testing.assert_allclose(Sigmoid().forward(x), expected, rtol=1e-12)
    assert Sigmoid().forward(x.astype(np.float32)).dtype == np.float32
    act = Sigmoid()
    act.forward(np.array([0.0, 2.0]))
    # y (1 - y): 0.5 * 0.5 = 0.25 and 0.8807970779778823 * 0.11920292202211755 = 0.1049935854
    np.testing.assert_allclose(act.backward(np.array([1.0, 2.0])), [0.25, 2 * 0.1049935854035065])


def test_l2_normalize_default_eps_and_the_clamped_rows():
    out = L2Normalize().forward(np.array([[0.3, 0.4]]))  # norm 0.5: divided by it, not by eps
    np.testing.assert_allclose(out, [[0.6, 0.8]])
    # A row shorter than eps is x / eps, a linear map: gradient dout / eps, no radial part.
    norm = L2Normalize(eps=1e-12)
    y = norm.forward(np.array([[6e-14, 8e-14]]))
    np.testing.assert_allclose(y, [[0.06, 0.08]])
    np.testing.assert_allclose(norm.backward(np.array([[1.0, 0.0]])), [[1e12, 0.0]], rtol=1e-9)
    # A row exactly eps long is not clamped (torch's clamp_min passes the gradient at equality):
    # the full Jacobian (dout - u (u . dout)) / norm = ([1, 1] - [1, 0]) / 0.5.
    half = L2Normalize(eps=0.5)
    half.forward(np.array([[0.5, 0.0]]))
    np.testing.assert_allclose(half.backward(np.array([[1.0, 1.0]])), [[0.0, 2.0]])


def test_dropout_default_p_is_one_half():
    assert Dropout(rng=np.random.default_rng(0)).p == 0.5


def test_sgd_messages_and_state_round_trip():
    with pytest.raises(ValueError, match="lr must be > 0, got 0"):
        SGD([], lr=0)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\), got 1.0"):
        SGD([], lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="^nesterov needs momentum > 0$"):
        SGD([], lr=0.1, momentum=0.0, nesterov=True)
    with pytest.raises(ValueError, match="weight_decay must be >= 0, got -1"):
        SGD([], lr=0.1, weight_decay=-1)
    p, g = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    opt = SGD([(p, g)], lr=0.1, momentum=0.9)
    opt.step()
    state = opt.state_dict()
    assert set(state) == {"lr", "velocity"} and state["lr"] == 0.1
    opt.step()
    opt.lr = 7.0
    np.testing.assert_allclose(opt.velocity[0], [0.95, -1.9])
    opt.load_state_dict(state)
    assert opt.lr == 0.1
    np.testing.assert_allclose(opt.velocity[0], [0.5, -1.0])
    assert state["velocity"][0] is not opt.velocity[0]  # copies, not the live buffers


def test_schedule_defaults_constant_kind_and_message():
    step = LRSchedule("step", 1.0, 100)  # step_size 10, gamma 0.1 by default
    assert (step(9), step(10), step(25)) == pytest.approx((1.0, 0.1, 0.01))
    assert LRSchedule("constant", 0.3, 10)(7.5) == 0.3
    with pytest.raises(ValueError, match="choose one of constant, step, cosine"):
        LRSchedule("linear", 0.1, 10)
    assert LRSchedule("cosine", 1.0, 4)(2) == pytest.approx((1 + math.cos(math.pi / 2)) / 2)
    # one epoch of cosine: half-way through it, (1 + cos(pi / 2)) / 2 = 0.5
    assert LRSchedule("cosine", 1.0, 1)(0.5) == pytest.approx(0.5)


def test_numerical_grad_is_float64_for_float32_arrays_and_restores_them():
    x = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    grad = numerical_grad(lambda: float((x.astype(np.float64) ** 2).sum()), x, h=1e-2)
    assert grad.dtype == np.float64 and grad.shape == (2, 2)
    np.testing.assert_allclose(grad, [[2.0, 4.0], [6.0, 8.0]], rtol=1e-4)  # float32 steps of 1e-2
    np.testing.assert_array_equal(x, [[1.0, 2.0], [3.0, 4.0]])
