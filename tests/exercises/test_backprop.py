"""Checkers of notebook 02: the solution passes, the blank is "not yet", plausible mistakes are named."""

from __future__ import annotations

import math

import numpy as np
import pytest

from doodlelab.exercises import CORRECT, NOT_YET, WRONG, check
from doodlelab.exercises.backprop import mean_cross_entropy
from tests.conftest import need_module
from tests.notebook_cells import blank, solution


@pytest.mark.parametrize("name", ["linear_backward", "relu_backward", "softmax_cross_entropy"])
def test_the_notebook_solution_passes_and_the_blank_is_not_yet(name) -> None:
    assert check(name, solution(name)).status == CORRECT
    assert check(name, blank(name)).status == NOT_YET


def test_the_checkers_cross_entropy_by_hand_and_against_torch() -> None:
    # All-zero logits over 5 classes: p = 1/5 everywhere, so the loss is log 5 whatever the labels.
    assert mean_cross_entropy(np.zeros((3, 5)), np.array([0, 2, 4])) == pytest.approx(math.log(5))
    # Two classes, logits (0, log 3): p = (1/4, 3/4); labels 0 and 1 give (log 4 + log 4/3) / 2.
    z = np.array([[0.0, math.log(3)], [0.0, math.log(3)]])
    assert mean_cross_entropy(z, np.array([0, 1])) == pytest.approx((math.log(4) + math.log(4 / 3)) / 2)
    torch = need_module("torch", "torch")
    logits = np.random.default_rng(0).normal(size=(6, 5)) + 1000
    y = np.array([0, 3, 1, 4, 3, 2])
    expected = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)).item()
    assert mean_cross_entropy(logits, y) == pytest.approx(expected, rel=1e-12)


def _linear(dx, dw, db):
    return lambda x, w, dout: (dx(x, w, dout), dw(x, w, dout), db(x, w, dout))


DX, DW, DB = (lambda x, w, d: d @ w.T), (lambda x, w, d: x.T @ d), (lambda x, w, d: d.sum(axis=0))
LINEAR_MISTAKES = {
    "dw transposed": (_linear(DX, lambda x, w, d: d.T @ x, DB),
                      "dw has shape (3, 4), expected (4, 3): it is transposed: dw = x.T @ dout"),
    "db averaged": (_linear(DX, DW, lambda x, w, d: d.mean(axis=0)),
                    "db is 1/5 of the expected values (the batch size is 5): sum dout over the batch"),
    "dw divided by B again": (_linear(DX, lambda x, w, d: x.T @ d / len(x), DB),
                              "dw is 1/5 of the expected values (the batch size is 5): dout already holds "
                              "the 1/B"),
    "dx without the transpose": (_linear(lambda x, w, d: d @ w, DW, DB),
                                 "raised ValueError: matmul"),
    "dx sign": (_linear(lambda x, w, d: -(d @ w.T), DW, DB), "dx has the wrong sign"),
    "db kept 2-D": (_linear(DX, DW, lambda x, w, d: d.sum(axis=0, keepdims=True)),
                    "db has shape (1, 3), expected (3,): db = dout.sum(axis=0)"),
    "two values": (lambda x, w, d: (DX(x, w, d), DW(x, w, d)),
                   "return 3 values (dx, dw, db), got a tuple of 2"),
}

RELU_MISTAKES = {
    "no mask": (lambda x, d: d, "dx is dout unchanged: the gradient must stop where x <= 0"),
    "mask alone": (lambda x, d: (x > 0).astype(float), "dx is the mask (x > 0) alone: multiply it by dout"),
    "mask of dout": (lambda x, d: d * (d > 0), "the mask comes from dout"),
    "times relu(x)": (lambda x, d: d * np.maximum(x, 0), "dx is dout times relu(x)"),
    "mask flipped": (lambda x, d: d * (x < 0), "dx differs from the expected values"),
}


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _ce(loss_of, grad_of):
    return lambda z, y: (loss_of(z, y), grad_of(z, y))


def _onehot(z, y):
    return np.eye(z.shape[1])[y]


LOSS = lambda z, y: -np.log(_softmax(z)[np.arange(len(y)), y]).mean()  # noqa: E731
GRAD = lambda z, y: (_softmax(z) - _onehot(z, y)) / len(y)  # noqa: E731
CE_MISTAKES = {
    "no division by B": (_ce(LOSS, lambda z, y: _softmax(z) - _onehot(z, y)),
                         "dlogits is 6 times too large (the batch size is 6): the loss is a mean, so its "
                         "gradient is (softmax - onehot) / B"),
    "sign": (_ce(LOSS, lambda z, y: (_onehot(z, y) - _softmax(z)) / len(y)), "dlogits has the wrong sign"),
    "no onehot": (_ce(LOSS, lambda z, y: _softmax(z) / len(y)), "dlogits is softmax / B: subtract 1 at each "
                                                                "image's own class"),
    "summed loss": (_ce(lambda z, y: LOSS(z, y) * len(y), GRAD), "loss is 6 times too large"),
    "loss per image": (_ce(lambda z, y: -np.log(_softmax(z)[np.arange(len(y)), y]), GRAD),
                       "loss is an array of shape (6,), not one number"),
    "no max shift": (_ce(lambda z, y: -np.log((np.exp(z) / np.exp(z).sum(1, keepdims=True))
                                              [np.arange(len(y)), y]).mean(), GRAD),
                     "the loss is not finite for logits near 1000: subtract each row's max before exp"),
    "log(p + eps)": (_ce(lambda z, y: -np.log(_softmax(z)[np.arange(len(y)), y] + 1e-3).mean(), GRAD),
                     "loss is 1.60445 where 1.60944 is expected: the loss is the mean of -log softmax"),
}


@pytest.mark.parametrize("name, mistakes", [("linear_backward", LINEAR_MISTAKES),
                                             ("relu_backward", RELU_MISTAKES),
                                             ("softmax_cross_entropy", CE_MISTAKES)])
def test_mistakes_are_named(name, mistakes) -> None:
    for mistake, (fn, phrase) in mistakes.items():
        verdict = check(name, fn)
        assert verdict.status == WRONG and phrase in verdict.message, (mistake, str(verdict))
        assert "\n" not in str(verdict)
