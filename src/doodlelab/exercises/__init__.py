"""Checkers for the exercises of the guided notebooks (``notebooks/``): one line back, never a traceback.

In a notebook::

    from doodlelab.exercises import check

    def linear_backward(x, w, dout):
        ...
    check("linear_backward", linear_backward)
    # linear_backward: wrong. dw has shape (3, 4), expected (4, 3): it is transposed: dw = x.T @ dout ...

Each checker tests the learner's function against expectations of its own (central
differences through :mod:`doodlelab.nn.numeric_grad`, values worked out by hand; never
torch, never the core's answer to the same question) and says "correct", "wrong" with
what is wrong and where to look, or "not yet" for a blank that still raises
``NotImplementedError``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from doodlelab.exercises import backprop, descent, loading, parity, towers
from doodlelab.exercises.verdict import CORRECT, NOT_YET, WRONG, Verdict
from doodlelab.geometry import N_PIXELS


@dataclass(frozen=True)
class Exercise:
    """One exercise: its name (the function the learner writes), its notebook, what it asks, its checker."""

    name: str
    notebook: str  # the notebook's file stem, e.g. "02_backprop"
    asks: str  # the function's signature and what it returns
    checker: Callable[[Any], Verdict]


EXERCISES: dict[str, Exercise] = {e.name: e for e in (
    Exercise(loading.PIXELS, "01_data", f"pixels_to_inputs(images) -> (N, {N_PIXELS}) float32 in [0, 1]",
             loading.check_pixels_to_inputs),
    Exercise(loading.SPLIT, "01_data", "split_indices(labels, val_fraction, seed) -> (train_idx, val_idx)",
             loading.check_split_indices),
    Exercise(backprop.LINEAR, "02_backprop", "linear_backward(x, w, dout) -> (dx, dw, db)",
             backprop.check_linear_backward),
    Exercise(backprop.RELU, "02_backprop", "relu_backward(x, dout) -> dx", backprop.check_relu_backward),
    Exercise(backprop.SOFTMAX_CE, "02_backprop", "softmax_cross_entropy(logits, y) -> (loss, dlogits)",
             backprop.check_softmax_cross_entropy),
    Exercise(descent.MINIBATCHES, "03_training", "minibatch_indices(n, batch_size, rng) -> [index arrays]",
             descent.check_minibatch_indices),
    Exercise(descent.MOMENTUM, "03_training", "momentum_step(p, g, v, lr, mu) -> (p_new, v_new)",
             descent.check_momentum_step),
    Exercise(descent.NESTEROV, "03_training", "nesterov_step(p, g, v, lr, mu) -> (p_new, v_new)",
             descent.check_nesterov_step),
    Exercise(parity.LAYOUT, "04_torch_twin", "to_torch_layout(state) -> state with (out, in) weights",
             parity.check_to_torch_layout),
    Exercise(parity.RELATIVE, "04_torch_twin", "relative_error(a, b, floor) -> float",
             parity.check_relative_error),
    Exercise(towers.COSINES, "05_two_tower", "cosine_matrix(u, v) -> S (B, K)", towers.check_cosine_matrix),
    Exercise(towers.HINGE, "05_two_tower", "hinge_rank_loss(S, y, margin) -> (loss, dS)",
             towers.check_hinge_rank_loss),
    Exercise(towers.CLASS_COSINE, "05_two_tower", "class_cosine(v) -> float", towers.check_class_cosine),
)}


def check(name: str, fn: Any) -> Verdict:
    """Return the verdict on the learner's ``fn`` for exercise ``name``: one line, never an exception."""
    exercise = EXERCISES.get(name)
    if exercise is None:
        return Verdict(str(name), WRONG, f"there is no exercise {name!r}; the exercises are "
                                         f"{', '.join(EXERCISES)}")
    return exercise.checker(fn)


__all__ = ["CORRECT", "EXERCISES", "NOT_YET", "WRONG", "Exercise", "Verdict", "check"]
