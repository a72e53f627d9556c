"""The speed paths of the numpy core compute exactly what the plain paths do."""

from __future__ import annotations

import numpy as np
import pytest

from doodlelab.config import ModelConfig
from doodlelab.nn import Dropout, Linear, ReLU, Sequential
from doodlelab.tasks.mlp import build_mlp


def _mlp(input_dropout: float) -> Sequential:
    cfg = ModelConfig(hidden=(12, 8), dropout=0.3, input_dropout=input_dropout)
    return build_mlp(cfg, rng=np.random.default_rng(0), dropout_rng=np.random.default_rng(1),
                     n_in=10, n_out=5, dtype=np.float64)


def _assert_same_grads(model, reference) -> None:  # type: ignore[no-untyped-def]
    """Every parameter gradient of ``model`` equals ``reference``'s of the same name, bit for bit."""
    grads = {name: g for name, _, g in reference.named_parameters()}
    for name, _, g in model.named_parameters():
        np.testing.assert_array_equal(g, grads[name], err_msg=name)


@pytest.mark.parametrize("input_dropout", [0.0, 0.2])
def test_backward_without_input_grad_gives_the_same_parameter_grads(input_dropout: float) -> None:
    rng = np.random.default_rng(2)
    x, dout = rng.normal(size=(6, 10)), rng.normal(size=(6, 5))
    full, fast = _mlp(input_dropout), _mlp(input_dropout)
    full.forward(x)
    fast.forward(x)
    full.zero_grad()
    fast.zero_grad()
    assert full.backward(dout).shape == x.shape
    assert fast.backward(dout, input_grad=False) is None
    _assert_same_grads(fast, full)


def test_accumulate_grads_adds_like_backward_and_parameterless_models_are_fine() -> None:
    rng = np.random.default_rng(3)
    lin = Linear(4, 3, rng=rng, dtype=np.float64)
    x, d = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    lin.forward(x)
    lin.zero_grad()
    lin.accumulate_grads(d)
    once = lin.grads["weight"].copy()
    lin.backward(d)
    np.testing.assert_allclose(lin.grads["weight"], 2 * once)
    model = Sequential(ReLU(), Dropout(0.5, rng=rng))
    model.forward(x)
    assert model.backward(d[:, :1].repeat(4, axis=1), input_grad=False) is None


def test_relu_mask_product_equals_where_on_finite_inputs() -> None:
    x = np.random.default_rng(4).normal(size=(50, 40)).astype(np.float32)
    x[0, :5] = 0.0
    relu = ReLU()
    out = relu.forward(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.where(x > 0, x, 0))
    d = np.ones_like(x)
    np.testing.assert_array_equal(relu.backward(d), np.where(x > 0, d, 0))


@pytest.mark.parametrize("input_grad", [True, False])
def test_assigning_backward_equals_zero_grad_then_backward(input_grad: bool) -> None:
    """accumulate=False sets every gradient to the pass's, whatever the arrays held before."""
    rng = np.random.default_rng(5)
    x, dout = rng.normal(size=(6, 10)), rng.normal(size=(6, 5))
    plain, fast = _mlp(0.2), _mlp(0.2)
    plain.forward(x)
    fast.forward(x)
    for _, _, g in fast.named_parameters():
        g[...] = rng.normal(size=g.shape)  # stale values from an earlier step
    plain.zero_grad()
    dx = plain.backward(dout, input_grad=input_grad)
    dx_fast = fast.backward(dout, input_grad=input_grad, accumulate=False)
    if input_grad:
        np.testing.assert_array_equal(dx_fast, dx)
    else:
        assert dx is None and dx_fast is None
    _assert_same_grads(fast, plain)


def test_assign_on_a_single_linear_and_on_modules_without_their_own_override() -> None:
    rng = np.random.default_rng(6)
    lin = Linear(4, 3, rng=rng, dtype=np.float64)
    x, d = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    lin.forward(x)
    lin.grads["weight"][...] = 7.0
    lin.grads["bias"][...] = 7.0
    lin.assign_grads(d)
    np.testing.assert_allclose(lin.grads["weight"], x.T @ d)  # hand-computed, not added to the 7s
    np.testing.assert_allclose(lin.grads["bias"], d.sum(axis=0))
    lin.grads["weight"][...] = 7.0
    np.testing.assert_allclose(lin.backward_assign(d), d @ lin.params["weight"].T)
    np.testing.assert_allclose(lin.grads["weight"], x.T @ d)
    relu = ReLU()  # the base class's fallback: zero_grad (nothing to zero), then backward
    relu.forward(x)
    np.testing.assert_array_equal(relu.backward_assign(np.ones_like(x)), (x > 0).astype(float))
