"""Central-difference gradient checks (float64) for every module and the loss."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doodlelab.nn import (
    Dropout,
    L2Normalize,
    LeakyReLU,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    SoftmaxCrossEntropy,
    Tanh,
    l2_penalty,
)
from doodlelab.nn.numeric_grad import numerical_grad
from tests.conftest import examples

# Adding a layer = one entry here: (name, factory(in_features, rng) -> (module, out_features)).
MODULES = [
    ("linear", lambda d, rng: (Linear(d, 3, rng=rng, init="glorot_normal", dtype=np.float64), 3)),
    ("linear_nobias", lambda d, rng: (Linear(d, 4, rng=rng, bias=False, dtype=np.float64), 4)),
    ("relu", lambda d, rng: (ReLU(), d)),
    ("leaky_relu", lambda d, rng: (LeakyReLU(0.1), d)),
    ("tanh", lambda d, rng: (Tanh(), d)),
    ("sigmoid", lambda d, rng: (Sigmoid(), d)),
    ("dropout", lambda d, rng: (Dropout(0.4, rng=np.random.default_rng(7)), d)),
    ("l2_normalize", lambda d, rng: (L2Normalize(), d)),
    (
        "mlp",
        lambda d, rng: (
            Sequential(Linear(d, 6, rng=rng, dtype=np.float64), Tanh(),
                       Linear(6, 2, rng=rng, dtype=np.float64)),
            2,
        ),
    ),
]

shapes = st.tuples(st.integers(1, 5), st.integers(1, 6))


def _away_from_kinks(x: np.ndarray) -> np.ndarray:
    # ReLU-type kinks at 0 make central differences wrong within h of 0.
    return np.where(np.abs(x) < 1e-3, 0.1, x)


def _check_module(name, factory, batch, width, seed):
    rng = np.random.default_rng(seed)
    module, out_features = factory(width, rng)
    x = _away_from_kinks(rng.normal(size=(batch, width)))
    w = rng.normal(size=(batch, out_features))  # loss = sum(w * module(x))

    if name == "dropout":  # freeze one mask: replay the same draw for every evaluation
        state = module.rng.bit_generator.state

        def loss() -> float:
            module.rng.bit_generator.state = state
            return float((w * module.forward(x)).sum())
    else:

        def loss() -> float:
            return float((w * module.forward(x)).sum())

    loss()
    module.zero_grad()
    dx = module.backward(w)
    # Central differences in float64 with h = 1e-6: truncation ~1e-12, round-off ~1e-9.
    np.testing.assert_allclose(dx, numerical_grad(loss, x), rtol=1e-5, atol=1e-7,
                               err_msg=f"{name}: d/dx")
    for pname, p, g in module.named_parameters():
        np.testing.assert_allclose(g, numerical_grad(loss, p), rtol=1e-5, atol=1e-7,
                                   err_msg=f"{name}: d/d{pname}")


@pytest.mark.parametrize("name,factory", MODULES, ids=[m[0] for m in MODULES])
@settings(max_examples=examples(12))
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_module_gradients_match_central_differences(name, factory, shape, seed):
    _check_module(name, factory, shape[0], shape[1], seed)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@settings(max_examples=examples(15))
@given(batch=st.integers(1, 6), classes=st.integers(2, 6), seed=st.integers(0, 2**16),
       scale=st.sampled_from([0.1, 1.0, 30.0]))
def test_softmax_cross_entropy_gradient(smoothing, batch, classes, seed, scale):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(batch, classes)) * scale
    y = rng.integers(0, classes, size=batch)
    ce = SoftmaxCrossEntropy(smoothing)
    ce.forward(z, y)
    analytic = ce.backward()
    numeric = numerical_grad(lambda: ce.forward(z, y), z, h=1e-6)
    assert np.abs(analytic - numeric).max() < 1e-7


def test_cross_entropy_is_stable_for_huge_logits():
    z = np.array([[1000.0, 0.0, -1000.0], [-1e4, 1e4, 0.0]])
    ce = SoftmaxCrossEntropy()
    loss = ce.forward(z, np.array([0, 0]))
    assert np.isfinite(loss) and loss == pytest.approx(2e4 / 2)
    assert np.isfinite(ce.backward()).all()


def test_cross_entropy_value_matches_definition():
    z = np.array([[2.0, 1.0, 0.1]])
    p = np.exp(z) / np.exp(z).sum()
    assert SoftmaxCrossEntropy().forward(z, np.array([1])) == pytest.approx(-np.log(p[0, 1]))


def test_l2_penalty_value_and_gradient():
    rng = np.random.default_rng(3)
    model = Sequential(Linear(4, 3, rng=rng, dtype=np.float64), ReLU(),
                       Linear(3, 2, rng=rng, dtype=np.float64))
    model.zero_grad()
    value = l2_penalty(model, 0.01)
    weights = [p for n, p, _ in model.named_parameters() if n.endswith("weight")]
    assert value == pytest.approx(0.005 * sum((w**2).sum() for w in weights))
    for name, p, g in model.named_parameters():
        expected = 0.01 * p if name.endswith("weight") else np.zeros_like(p)
        np.testing.assert_allclose(g, expected)


def test_backward_accumulates_until_zero_grad():
    rng = np.random.default_rng(0)
    lin = Linear(3, 2, rng=rng, dtype=np.float64)
    x, d = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    lin.forward(x)
    lin.backward(d)
    once = lin.grads["weight"].copy()
    lin.forward(x)
    lin.backward(d)
    np.testing.assert_allclose(lin.grads["weight"], 2 * once)
    lin.zero_grad()
    assert not lin.grads["weight"].any()


def test_dropout_is_identity_in_eval_mode_and_keeps_expectation():
    drop = Dropout(0.25, rng=np.random.default_rng(0))
    x = np.ones((2000, 50), dtype=np.float32)
    y = drop.forward(x)
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert y.mean() == pytest.approx(1.0, abs=0.01)
    assert (y == 0).mean() == pytest.approx(0.25, abs=0.01)
    drop.eval()
    assert drop.forward(x) is x


@pytest.mark.parametrize("norm_over_eps", [0.25, 0.9, 1.1, 4.0])
def test_l2_normalize_gradient_near_its_floor(norm_over_eps: float) -> None:
    # Central differences with a step far below eps, on rows just below and above the
    # floor: below it the map is x / eps (linear), above it x / |x|.
    eps = 1e-6
    rng = np.random.default_rng(3)
    direction = rng.normal(size=(3, 4))
    x = direction / np.linalg.norm(direction, axis=1, keepdims=True) * eps * norm_over_eps
    w = rng.normal(size=(3, 4))
    module = L2Normalize(eps=eps)

    def objective() -> float:
        return float((w * module.forward(x)).sum())

    module.forward(x)
    analytic = module.backward(w)
    numeric = numerical_grad(objective, x, h=eps * 1e-5)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-5 / eps)
    assert np.max(np.abs(analytic)) > 0.1 / eps  # the gradient really is of order 1/eps here
