"""Checkers of notebook 05 (Part II, the two towers): the cosine matrix, the ranking hinge, collapse.

Expectations: cosines by an explicit loop over pairs; the ranking hinge's loss by hand
on a 2-image case and its gradient by central differences (:func:`doodlelab.nn.numeric_grad.numerical_grad`)
of a forward pass written out here, at cosines away from every hinge's kink; the mean
cosine between class embeddings by hand on three unit vectors.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from doodlelab.exercises.diagnosis import array_problem, as_array, close, scalar_problem, unpack
from doodlelab.exercises.verdict import CORRECT, WRONG, Verdict, attempt, checker, describe
from doodlelab.nn.numeric_grad import numerical_grad

COSINES, HINGE, CLASS_COSINE = "cosine_matrix", "hinge_rank_loss", "class_cosine"


def _unit_rows(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


@checker(COSINES)
def check_cosine_matrix(fn: Any) -> Verdict:
    """Check ``fn(u (B, E), v (K, E)) -> S (B, K)``, S[i, k] the cosine of u_i and v_k, against a loop."""
    rng = np.random.default_rng(5)
    u, v = rng.normal(scale=3.0, size=(4, 3)), rng.normal(scale=3.0, size=(5, 3))  # rows longer than 1
    expected = np.array([[np.dot(a, b) / math.sqrt(np.dot(a, a) * np.dot(b, b)) for b in v] for a in u])
    got, verdict = attempt(COSINES, fn, u.copy(), v.copy(),
                           hint=f"u is {u.shape} (images), v {v.shape} (classes)")
    if verdict:
        return verdict
    s = as_array(got)
    if s is not None and s.shape == expected.shape and not close(s, expected):
        if np.abs(s).max() > 1 + 1e-9 and close(s, u @ v.T):
            return Verdict(COSINES, WRONG, "values outside [-1, 1]: these are dot products; scale every row "
                                           "of u and of v to unit length first")
        if close(s, _unit_rows(u) @ v.T):
            return Verdict(COSINES, WRONG, "only u's rows were scaled to unit length: scale v's rows too")
        if close(s, u @ _unit_rows(v).T):
            return Verdict(COSINES, WRONG, "only v's rows were scaled to unit length: scale u's rows too")
        if close(s, (u / np.linalg.norm(u, axis=0)) @ (v / np.linalg.norm(v, axis=0)).T):
            return Verdict(COSINES, WRONG, "the columns were scaled, not the rows: take the norms along "
                                           "axis=1 (one per image, one per class)")
    problem = array_problem("S", got, expected,
                            hints={"transposed": "rows are the B images and columns the K classes, u @ v.T",
                                   "shape": "S is (B, K): u_unit @ v_unit.T"})
    if problem:
        return Verdict(COSINES, WRONG, problem)
    return Verdict(COSINES, CORRECT, "S[i, k] is the cosine of image i and class k, (B, K)")


# -- the ranking hinge ------------------------------------------------------------------------------


def hinge_rank(s: np.ndarray, y: np.ndarray, margin: float) -> float:
    """Return mean_i sum_{k != y_i} max(0, margin - S[i, y_i] + S[i, k]) (the checker's own forward)."""
    total = 0.0
    for i, own in enumerate(y):
        total += sum(max(0.0, margin - s[i, own] + s[i, k]) for k in range(s.shape[1]) if k != own)
    return total / len(y)


# Worked by hand (margin 0.5): image 0's wrong classes score 0.5 - 0.9 + 0.2 = -0.2 and
# 0.5 - 0.9 - 0.5 = -0.9 (both inactive); image 1's 0.5 - 0.3 + 0.1 = 0.3 and 0.5 - 0.3 + 0.0 = 0.2.
# Loss (0 + 0.5) / 2 = 0.25; dS: row 1 is [1/2, -2/2, 1/2] (each active hinge, minus both at the own class).
HAND_S = ((0.9, 0.2, -0.5), (0.1, 0.3, 0.0))
HAND_Y, HAND_MARGIN, HAND_LOSS = (0, 1), 0.5, 0.25
HAND_DS = ((0.0, 0.0, 0.0), (0.5, -1.0, 0.5))

HINGE_HINTS = {
    "loss": {"batch": "the loss is a mean over the images, divide the sum by B",
             "per_item": "the loss is one number, the mean over the images of each one's sum of hinges"},
    "dS": {"batch": "the loss is a mean, so each active hinge adds 1/B",
           "sign": "an active hinge raises the loss when S[i, k] grows (+1/B) and lowers it when the own "
                   "cosine grows",
           "values": "each active hinge adds +1/B at (i, k) and -1/B at (i, y_i)"},
}


def _random_case() -> tuple[np.ndarray, np.ndarray]:
    """Return cosines S (6, 4) and labels y (6,) whose hinges (margin 0.5) all stay 0.02 from their kink."""
    rng = np.random.default_rng(6)
    y = np.array([0, 1, 2, 3, 1, 2])
    while True:
        s = rng.uniform(-1, 1, size=(6, 4))
        args = 0.5 - s[np.arange(6), y][:, None] + s
        if np.all(np.abs(args) > 0.02):
            return s, y


def _hinge_problem(fn: Any, s: np.ndarray, y: np.ndarray, margin: float) -> Verdict | None:
    """Return the verdict of the learner's (loss, dS) on one case, or None when both are right."""
    got, verdict = attempt(HINGE, fn, s.copy(), y.copy(), margin,
                           hint=f"S is {s.shape}, y holds {y.size} labels")
    if verdict:
        return verdict
    parts, problem = unpack(got, ("loss", "dS"))
    if parts is None:
        return Verdict(HINGE, WRONG, problem)
    expected = hinge_rank(s, y, margin)
    loss = as_array(parts[0])
    if loss is not None and loss.size == 1:
        value = float(loss.reshape(()))
        if math.isclose(value, expected + margin, rel_tol=1e-6):
            return Verdict(HINGE, WRONG, "the loss is one margin too large: the own class counted itself "
                                         "(m - S_iy + S_iy = m); sum over k != y_i only")
        unclipped = _unclipped(s, y, margin)
        if not math.isclose(expected, unclipped) and math.isclose(value, unclipped, rel_tol=1e-6):
            return Verdict(HINGE, WRONG, "the loss counts negative hinges: clip each term at 0, max(0, ...)")
    problem = scalar_problem("loss", parts[0], expected, batch=y.size, hints=HINGE_HINTS["loss"])
    if problem:
        return Verdict(HINGE, WRONG, problem)
    ds = numerical_grad(lambda: hinge_rank(s, y, margin), s)
    grad = as_array(parts[1])
    if grad is not None and grad.shape == ds.shape and not close(grad, ds):
        own = np.zeros_like(ds, dtype=bool)
        own[np.arange(y.size), y] = True
        if close(grad[~own], ds[~own]) and not close(grad[own], ds[own]):
            return Verdict(HINGE, WRONG, "dS is right off the own class but wrong at S[i, y_i]: the own "
                                         "cosine is in every hinge of its row, so it gets minus their sum")
    problem = array_problem("dS", parts[1], ds, batch=y.size, hints=HINGE_HINTS["dS"])
    return Verdict(HINGE, WRONG, problem) if problem else None


def _unclipped(s: np.ndarray, y: np.ndarray, margin: float) -> float:
    """Return the hinge sum without the clip at 0 (what forgetting max(0, .) gives)."""
    rows = np.arange(y.size)
    terms = margin - s[rows, y][:, None] + s
    terms[rows, y] = 0.0
    return float(terms.sum() / y.size)


@checker(HINGE)
def check_hinge_rank_loss(fn: Any) -> Verdict:
    """Check ``fn(S (B, K), y (B,), margin) -> (loss, dS (B, K))``: DeViSE's ranking hinge, mean over B."""
    cases = [(np.array(HAND_S), np.array(HAND_Y), HAND_MARGIN), (*_random_case(), 0.5)]
    for s, y, margin in cases:
        verdict = _hinge_problem(fn, s, y, margin)
        if verdict:
            return verdict
    return Verdict(HINGE, CORRECT, f"the loss ({HAND_LOSS} on the hand-worked pair) and dS match the hinge's "
                                   "definition and its central differences")


# -- collapse: the mean cosine between classes ------------------------------------------------------

# Three unit vectors e1, e2 and (e1 + e2)/sqrt(2): the 6 ordered pairs of distinct classes have
# cosines 0, 0, 1/sqrt(2) four times; their mean is 4/sqrt(2)/6 = 0.4714.
THREE = np.array([[1.0, 0.0], [0.0, 1.0], [math.sqrt(0.5), math.sqrt(0.5)]])
THREE_MEAN = 4 / math.sqrt(2) / 6
THREE_WRONG = {
    (3 + 4 / math.sqrt(2)) / 9: "the diagonal (each class with itself, cosine 1) is counted: average over "
                                "the pairs k != j only",
    4 / math.sqrt(2) / 9: "the sum over the K(K-1) distinct pairs was divided by K*K",
}


@checker(CLASS_COSINE)
def check_class_cosine(fn: Any) -> Verdict:
    """Check ``fn(v (K, E) unit rows) -> float``: the mean cosine between distinct classes (1 = collapsed)."""
    got, verdict = attempt(CLASS_COSINE, fn, THREE.copy(), hint="v holds K unit rows, one per class")
    if verdict:
        return verdict
    value = as_array(got)
    if value is None or value.size != 1:
        return Verdict(CLASS_COSINE, WRONG, f"return one number, the mean over pairs of classes, "
                                            f"got {describe(got)}")
    value = float(value.reshape(()))
    if not math.isclose(value, THREE_MEAN, rel_tol=1e-6):
        for wrong, where in THREE_WRONG.items():
            if math.isclose(value, wrong, rel_tol=1e-6):
                return Verdict(CLASS_COSINE, WRONG, f"got {value:.4f} for e1, e2, (e1 + e2)/sqrt 2; {where}")
        return Verdict(CLASS_COSINE, WRONG, f"got {value:.4f} for e1, e2, (e1 + e2)/sqrt 2, expected "
                                            f"{THREE_MEAN:.4f}: the mean of v_j . v_k over pairs j != k")
    collapsed, verdict = attempt(CLASS_COSINE, fn, np.tile(THREE[2], (4, 1)))
    if verdict:
        return verdict
    one = as_array(collapsed)
    if one is None or one.size != 1 or not math.isclose(float(one.reshape(())), 1.0, rel_tol=1e-6):
        return Verdict(CLASS_COSINE, WRONG, f"four identical classes give {collapsed}, expected 1 "
                                            "(collapsed)")
    return Verdict(CLASS_COSINE, CORRECT, f"{THREE_MEAN:.4f} for e1, e2, (e1 + e2)/sqrt 2, and 1 when every "
                                          "class is the same vector")
