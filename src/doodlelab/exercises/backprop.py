"""Checkers of notebook 02 (backpropagation): a linear layer's, ReLU's and softmax cross-entropy's backward.

Every expected gradient is a central difference (:func:`doodlelab.nn.numeric_grad.numerical_grad`,
float64) of a forward pass written out here, never the core's backward; the loss is
held against a hand-worked value in the tests (all-zero logits over C classes: log C).
Shapes are all different (B = 5 images, 4 inputs, 3 outputs), so a transpose cannot
pass by accident.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from doodlelab.exercises.diagnosis import array_problem, as_array, close, scalar_problem, unpack
from doodlelab.exercises.verdict import CORRECT, WRONG, Verdict, attempt, checker
from doodlelab.nn.numeric_grad import numerical_grad

LINEAR, RELU, SOFTMAX_CE = "linear_backward", "relu_backward", "softmax_cross_entropy"
B, N_IN, N_OUT = 5, 4, 3


def _rng() -> np.random.Generator:
    return np.random.default_rng(20250330)


def _linear_case() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Return x (B, in), w (in, out), b (out,), dout (B, out) and the central-difference gradients."""
    rng = _rng()
    x, w = rng.normal(size=(B, N_IN)), rng.normal(size=(N_IN, N_OUT))
    b, dout = rng.normal(size=N_OUT), rng.normal(size=(B, N_OUT))

    def loss() -> float:  # L = sum(dout * (x @ w + b)), so dL/d(output) = dout
        return float(np.sum(dout * (x @ w + b)))

    grads = {"dx": numerical_grad(loss, x), "dw": numerical_grad(loss, w), "db": numerical_grad(loss, b)}
    return x, w, b, dout, grads


LINEAR_HINTS = {
    "dx": {"transposed": "dx = dout @ w.T is shaped like x, (B, in)",
           "shape": "dx = dout @ w.T is shaped like x, (B, in)", "values": "dx = dout @ w.T"},
    "dw": {"transposed": "dw = x.T @ dout is shaped like w, (in, out)",
           "shape": "dw = x.T @ dout is shaped like w, (in, out)", "values": "dw = x.T @ dout",
           "per_batch": "dout already holds the 1/B of a mean loss, do not divide again"},
    "db": {"per_batch": "sum dout over the batch (axis 0) instead of averaging",
           "shape": "db = dout.sum(axis=0) is shaped like b, (out,)", "values": "db = dout.sum(axis=0)",
           "batch": "db = dout.sum(axis=0)"},
}


@checker(LINEAR)
def check_linear_backward(fn: Any) -> Verdict:
    """Check ``fn(x, w, dout) -> (dx, dw, db)`` of ``y = x @ w + b`` against central differences."""
    x, w, _, dout, grads = _linear_case()
    got, verdict = attempt(LINEAR, fn, x.copy(), w.copy(), dout.copy(),
                           hint=f"check the shapes you multiply: x {x.shape}, w {w.shape}, dout {dout.shape}")
    if verdict:
        return verdict
    parts, problem = unpack(got, ("dx", "dw", "db"))
    if parts is None:
        return Verdict(LINEAR, WRONG, problem)
    for name, value in zip(("dx", "dw", "db"), parts):
        problem = array_problem(name, value, grads[name], batch=B, hints=LINEAR_HINTS[name])
        if problem:
            return Verdict(LINEAR, WRONG, problem)
    return Verdict(LINEAR, CORRECT, "dx, dw and db match central differences of sum(dout * (x @ w + b))")


@checker(RELU)
def check_relu_backward(fn: Any) -> Verdict:
    """Check ``fn(x, dout) -> dx`` of ``y = max(x, 0)`` against central differences."""
    rng = _rng()
    x = rng.normal(size=(B, N_OUT))
    x[np.abs(x) < 0.05] = 0.5  # no input near the kink at 0, where the difference quotient breaks
    dout = rng.normal(size=(B, N_OUT))
    expected = numerical_grad(lambda: float(np.sum(dout * np.maximum(x, 0))), x)
    got, verdict = attempt(RELU, fn, x.copy(), dout.copy(), hint="x and dout are both (B, D)")
    if verdict:
        return verdict
    arr = as_array(got)
    if arr is not None and arr.shape == x.shape and not close(arr, expected):
        if close(arr, dout):
            return Verdict(RELU, WRONG, "dx is dout unchanged: the gradient must stop where x <= 0, "
                                        "multiply dout by (x > 0)")
        if close(arr, (x > 0).astype(float)):
            return Verdict(RELU, WRONG, "dx is the mask (x > 0) alone: multiply it by dout")
        if close(arr, dout * (dout > 0)):
            return Verdict(RELU, WRONG, "the mask comes from dout: it must come from the input, (x > 0)")
        if close(arr, dout * np.maximum(x, 0)):
            return Verdict(RELU, WRONG, "dx is dout times relu(x): the derivative of relu is 1 where x > 0 "
                                        "and 0 elsewhere, so multiply dout by (x > 0)")
    problem = array_problem("dx", got, expected, hints={"values": "dx = dout * (x > 0)"})
    if problem:
        return Verdict(RELU, WRONG, problem)
    return Verdict(RELU, CORRECT, "dx = dout where x > 0 and 0 elsewhere, as central differences say")


# -- softmax cross-entropy ---------------------------------------------------------------------

N_CLASSES = 5


def mean_cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """Return -mean_i log softmax(logits_i)[y_i], through log-sum-exp (the checker's own forward)."""
    top = logits.max(axis=1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))  # (B,)
    return float(np.mean(log_z - logits[np.arange(y.size), y]))


CE_HINTS = {
    "loss": {"batch": "the loss is a mean over the batch, divide the sum by B",
             "per_item": "the loss is the mean over the batch of -log p(own class)",
             "sign": "the loss is -log of the probability of the own class",
             "values": "the loss is the mean of -log softmax(logits)[i, y_i], its logs taken through "
                       "log-sum-exp (no log(p + eps))"},
    "dlogits": {"batch": "the loss is a mean, so its gradient is (softmax - onehot) / B",
                "sign": "the gradient is (softmax - onehot) / B, not (onehot - softmax) / B",
                "transposed": "dlogits has the shape of logits, (B, C)",
                "values": "dlogits = (softmax(logits) - onehot(y)) / B"},
}


def _ce_verdict(fn: Any, logits: np.ndarray, y: np.ndarray) -> Verdict | None:
    """Return the verdict of the learner's (loss, dlogits) on one case, or None when both are right."""
    got, verdict = attempt(SOFTMAX_CE, fn, logits.copy(), y.copy(),
                           hint=f"logits are {logits.shape}, y holds {y.size} class indices")
    if verdict:
        return verdict
    parts, problem = unpack(got, ("loss", "dlogits"))
    if parts is None:
        return Verdict(SOFTMAX_CE, WRONG, problem)
    big = float(np.abs(logits).max()) > 100
    stable = " for logits near 1000: subtract each row's max before exp (log-sum-exp)"
    loss = as_array(parts[0])
    if big and (loss is None or not np.all(np.isfinite(loss))):
        return Verdict(SOFTMAX_CE, WRONG, "the loss is not finite" + stable)
    expected = mean_cross_entropy(logits, y)
    problem = scalar_problem("loss", parts[0], expected, batch=y.size, hints=CE_HINTS["loss"])
    if problem:
        return Verdict(SOFTMAX_CE, WRONG, problem)
    grad = as_array(parts[1])
    if big and grad is not None and not np.all(np.isfinite(grad)):
        return Verdict(SOFTMAX_CE, WRONG, "dlogits holds NaN" + stable)
    shifted = logits - logits.max(axis=1, keepdims=True)  # the same loss and gradient, exactly
    d = numerical_grad(lambda: mean_cross_entropy(shifted, y), shifted)
    if grad is not None and grad.shape == d.shape and not close(grad, d):
        onehot = np.eye(logits.shape[1])[y]
        if close(grad, d + onehot / y.size):
            return Verdict(SOFTMAX_CE, WRONG, "dlogits is softmax / B: subtract 1 at each image's own class "
                                              "before dividing by B")
    problem = array_problem("dlogits", parts[1], d, batch=y.size, hints=CE_HINTS["dlogits"])
    return Verdict(SOFTMAX_CE, WRONG, problem) if problem else None


@checker(SOFTMAX_CE)
def check_softmax_cross_entropy(fn: Any) -> Verdict:
    """Check ``fn(logits (B, C), y (B,)) -> (mean loss, dlogits (B, C))`` by hand and by central differences.

    Three cases: all-zero logits (the loss is log C, every class at p = 1/C), random
    logits, and logits near 1000 (a plain exp overflows there).
    """
    rng = _rng()
    y = np.array([0, 3, 1, 4, 3, 2])
    cases = [np.zeros((y.size, N_CLASSES)), rng.normal(scale=2.0, size=(y.size, N_CLASSES)),
             1000.0 + rng.normal(size=(y.size, N_CLASSES))]
    for logits in cases:
        verdict = _ce_verdict(fn, logits, y)
        if verdict:
            return verdict
    return Verdict(SOFTMAX_CE, CORRECT, "the mean loss and (softmax - onehot) / B match log-sum-exp and "
                                        "central differences on zero (log C), random and near-1000 logits")
