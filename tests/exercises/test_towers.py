"""Checkers of notebook 05: the solution passes, the blank is "not yet", plausible mistakes are named."""

from __future__ import annotations

import numpy as np
import pytest

from doodlelab.exercises import CORRECT, NOT_YET, WRONG, check
from doodlelab.exercises.towers import (
    HAND_DS,
    HAND_LOSS,
    HAND_MARGIN,
    HAND_S,
    HAND_Y,
    THREE,
    THREE_MEAN,
    hinge_rank,
)
from doodlelab.nn.numeric_grad import numerical_grad
from tests.notebook_cells import blank, solution


@pytest.mark.parametrize("name", ["cosine_matrix", "hinge_rank_loss", "class_cosine"])
def test_the_notebook_solution_passes_and_the_blank_is_not_yet(name) -> None:
    assert check(name, solution(name)).status == CORRECT
    assert check(name, blank(name)).status == NOT_YET


def test_the_hand_worked_hinge() -> None:
    s, y = np.array(HAND_S), np.array(HAND_Y)
    assert hinge_rank(s, y, HAND_MARGIN) == pytest.approx(HAND_LOSS)
    numeric = numerical_grad(lambda: hinge_rank(s, y, HAND_MARGIN), s)
    assert numeric == pytest.approx(np.array(HAND_DS), abs=1e-8)


def test_the_checkers_hinge_is_the_cores() -> None:
    """The checker's loop-by-loop hinge agrees with the core's HingeRank on random cosines."""
    from doodlelab.nn.embedding_losses import HingeRank

    rng = np.random.default_rng(3)
    s, y = rng.uniform(-1, 1, size=(7, 5)), rng.integers(0, 5, size=7)
    assert hinge_rank(s, y, 0.4) == pytest.approx(HingeRank(0.4).forward(s, y))


def test_the_hand_worked_class_cosine() -> None:
    gram = THREE @ THREE.T
    assert np.diag(gram) == pytest.approx(1.0)
    assert THREE_MEAN == pytest.approx((gram.sum() - 3) / 6) == pytest.approx(0.4714045)


def _unit(a, axis=1):
    return a / np.linalg.norm(a, axis=axis, keepdims=True)


COSINE_MISTAKES = {
    "dot products": (lambda u, v: u @ v.T, "values outside [-1, 1]: these are dot products"),
    "only u scaled": (lambda u, v: _unit(u) @ v.T, "only u's rows were scaled to unit length"),
    "only v scaled": (lambda u, v: u @ _unit(v).T, "only v's rows were scaled to unit length"),
    "columns scaled": (lambda u, v: _unit(u, 0) @ _unit(v, 0).T, "the columns were scaled, not the rows"),
    "transposed": (lambda u, v: _unit(v) @ _unit(u).T,
                   "S has shape (5, 4), expected (4, 5): it is transposed: rows are the B images"),
    "u.T @ v": (lambda u, v: _unit(u).T @ _unit(v), "raised ValueError"),
}


def _hinge(value_of, grad_of):
    return lambda s, y, m: (value_of(s, y, m), grad_of(s, y, m))


def _terms(s, y, m, own_too=False, clip=True):
    rows = np.arange(len(y))
    h = m - s[rows, y][:, None] + s
    if not own_too:
        h[rows, y] = 0.0
    return np.maximum(h, 0) if clip else h


LOSS = lambda s, y, m: _terms(s, y, m).sum() / len(y)  # noqa: E731
GRAD = lambda s, y, m: solution("hinge_rank_loss")(s, y, m)[1]  # noqa: E731


def _grad_without_own(s, y, m):
    g = (_terms(s, y, m) > 0) / len(y)
    return g


HINGE_MISTAKES = {
    "own class counted": (_hinge(lambda s, y, m: _terms(s, y, m, own_too=True).sum() / len(y), GRAD),
                          "the loss is one margin too large: the own class counted itself"),
    "summed": (_hinge(lambda s, y, m: _terms(s, y, m).sum(), GRAD), "loss is 2 times too large"),
    "no clip": (_hinge(lambda s, y, m: _terms(s, y, m, clip=False).sum() / len(y), GRAD),
                "the loss counts negative hinges: clip each term at 0"),
    "own class left out of dS": (_hinge(LOSS, _grad_without_own),
                                 "dS is right off the own class but wrong at S[i, y_i]"),
    "no 1/B in dS": (_hinge(LOSS, lambda s, y, m: GRAD(s, y, m) * len(y)), "dS is 2 times too large"),
    "dS sign": (_hinge(LOSS, lambda s, y, m: -GRAD(s, y, m)), "dS has the wrong sign"),
    "per image": (_hinge(lambda s, y, m: _terms(s, y, m).sum(axis=1), GRAD),
                  "loss is an array of shape (2,)"),
}

CLASS_COSINE_MISTAKES = {
    "diagonal counted": (lambda v: (v @ v.T).mean(),
                         "the diagonal (each class with itself, cosine 1) is counted"),
    "divided by K*K": (lambda v: ((v @ v.T).sum() - np.trace(v @ v.T)) / len(v) ** 2,
                       "the sum over the K(K-1) distinct pairs was divided by K*K"),
    "the matrix itself": (lambda v: v @ v.T, "return one number, the mean over pairs of classes"),
    "distances": (lambda v: np.mean([np.linalg.norm(a - b) for a in v for b in v if a is not b]),
                  "expected 0.4714: the mean of v_j . v_k over pairs j != k"),
}


@pytest.mark.parametrize("name, mistakes", [("cosine_matrix", COSINE_MISTAKES),
                                             ("hinge_rank_loss", HINGE_MISTAKES),
                                             ("class_cosine", CLASS_COSINE_MISTAKES)])
def test_mistakes_are_named(name, mistakes) -> None:
    for mistake, (fn, phrase) in mistakes.items():
        verdict = check(name, fn)
        assert verdict.status == WRONG and phrase in verdict.message, (mistake, str(verdict))
        assert "\n" not in str(verdict)
