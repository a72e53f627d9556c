"""The two-tower objectives on the cosine matrix: hand-worked values, central differences, collapse."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doodlelab.nn import L2Normalize
from doodlelab.nn.embedding_losses import (
    OBJECTIVES,
    class_cosine,
    expected_triplet,
    make_objective,
    sample_negatives,
)
from doodlelab.nn.numeric_grad import numerical_grad
from tests.conftest import ScriptedDraws


def _objective(name: str, margin: float = 0.2, seed: int = 5):
    # A fresh Generator per call: the triplet draws the same negatives every time.
    return make_objective(name, margin=margin, scale=3.0, rng=np.random.default_rng(seed))


# One image of class 0 with cosines (0.9, 0.8, -0.5), margin 0.2, worked by hand.
S1, Y1 = np.array([[0.9, 0.8, -0.5]]), np.array([0])
HAND = {
    "hinge_rank": max(0, 0.2 - 0.9 + 0.8) + max(0, 0.2 - 0.9 - 0.5),  # 0.1 + 0
    "hardest_hinge": 0.2 - 0.9 + 0.8,  # the hardest wrong class is 1
    "cosine_contrastive": (1 - 0.9) + (max(0, 0.8 - 0.2) + max(0, -0.5 - 0.2)) / 2,
    "align_only": 1 - 0.9,
    "softmax_ce": -np.log(np.exp(2.7) / (np.exp(2.7) + np.exp(2.4) + np.exp(-1.5))),
}


@pytest.mark.parametrize("name", sorted(HAND))
def test_values_worked_by_hand(name):
    assert _objective(name).forward(S1, Y1) == pytest.approx(HAND[name], rel=1e-12)


# The triplet's negatives by the documented rule: n_i = (y_i + o_i) mod K with one offset o_i drawn
# from [1, K) per image. Two images of 3 classes, margin 0.5, |u - v|^2 = 2 - 2 cos (slope 2):
S2, Y2 = np.array([[0.9, 0.8, -0.5], [0.1, 0.3, 0.2]]), np.array([0, 2])
TRIPLET_BY_HAND = [
    # offsets (1, 2): negatives 1 and (2 + 2) mod 3 = 1; hinges 0.5 + 2 (0.8 - 0.9) = 0.3 and
    # 0.5 + 2 (0.3 - 0.2) = 0.7, both active: mean 0.5
    ([1, 2], 0.5, [[-1.0, 1.0, 0.0], [0.0, 1.0, -1.0]]),
    # offsets (2, 1): negatives 2 and 0; hinges 0.5 + 2 (-0.5 - 0.9) < 0 and 0.5 + 2 (0.1 - 0.2) = 0.3
    ([2, 1], 0.15, [[0.0, 0.0, 0.0], [1.0, 0.0, -1.0]]),
]


@pytest.mark.parametrize("offsets, loss, grad", TRIPLET_BY_HAND)
def test_triplet_takes_the_negative_offset_from_the_label_and_squared_distances(offsets, loss, grad):
    triplet = make_objective("triplet", margin=0.5, scale=1.0, rng=ScriptedDraws(integers=offsets))
    assert triplet.forward(S2, Y2) == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(triplet.backward(), grad, rtol=1e-12)  # slope 2 over 2 images


def test_the_expected_triplet_is_the_hand_mean_over_wrong_classes_and_the_sampled_limit():
    # Class 0, margin 0.1: hinges 0.1 + 2 (0.8 - 0.9) < 0 and 0.1 + 2 (-0.5 - 0.9) < 0: none active.
    assert expected_triplet(S1, Y1, 0.1) == (0.0, 0.0)
    # Class 0, cosines (0.1, 0.3, 0.0), margin 0.5: hinges 0.5 + 0.4 = 0.9 and 0.5 - 0.2 = 0.3.
    loss, active = expected_triplet(np.array([[0.1, 0.3, 0.0]]), np.array([0]), 0.5)
    assert loss == pytest.approx(0.6, rel=1e-12) and active == 1.0
    rng = np.random.default_rng(3)
    s, y = np.tanh(rng.normal(size=(400, 5))), rng.integers(0, 5, 400)
    exact, _ = expected_triplet(s, y, 0.3)
    sampled = np.mean([_objective("triplet", 0.3, seed).forward(s, y) for seed in range(300)])
    assert abs(sampled - exact) < 0.01 * exact  # the mean of the sampled loss over many draws


def test_sampled_negatives_are_never_the_label_and_cover_the_others():
    y = np.repeat(np.arange(4), 500)
    neg = sample_negatives(y, 4, np.random.default_rng(0))
    assert not np.any(neg == y)
    for k in range(4):
        assert set(neg[y == k]) == set(range(4)) - {k}


def test_active_fraction_counts_the_non_zero_terms():
    hinge = _objective("hinge_rank")
    hinge.forward(S1, Y1)
    assert hinge.active == 0.5  # class 1 violates the margin, class 2 does not
    contrastive = _objective("cosine_contrastive")
    contrastive.forward(S1, Y1)
    assert contrastive.active == 0.5  # only 0.8 is above the push threshold 0.2


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(OBJECTIVES), batch=st.integers(1, 6), k=st.integers(2, 6),
       margin=st.sampled_from([0.0, 0.1, 0.5]), seed=st.integers(0, 2**16))
def test_backward_matches_central_differences_on_the_cosines(name, batch, k, margin, seed):
    rng = np.random.default_rng(seed)
    s = rng.uniform(-1, 1, size=(batch, k))
    y = rng.integers(0, k, batch)
    objective = _objective(name, margin)
    objective.forward(s, y)
    analytic = objective.backward()
    numeric = numerical_grad(lambda: _objective(name, margin).forward(s, y), s)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(OBJECTIVES), batch=st.integers(1, 5), k=st.integers(2, 5),
       dim=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_gradients_through_the_normalisation_of_both_towers(name, batch, k, dim, seed):
    """objective(norm(A) norm(B)^T): the objectives' gradients chained through L2Normalize's Jacobian."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(batch, dim)), rng.normal(size=(k, dim))
    y = rng.integers(0, k, batch)

    def loss() -> float:
        return _objective(name).forward(L2Normalize().forward(a) @ L2Normalize().forward(b).T, y)

    norm_a, norm_b = L2Normalize(), L2Normalize()
    u, v = norm_a.forward(a), norm_b.forward(b)
    objective = _objective(name)
    objective.forward(u @ v.T, y)
    ds = objective.backward()
    np.testing.assert_allclose(norm_a.backward(ds @ v), numerical_grad(loss, a), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(norm_b.backward(ds.T @ u), numerical_grad(loss, b), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", OBJECTIVES)
def test_float32_cosines_give_float32_gradients(name):
    s = np.random.default_rng(0).uniform(-1, 1, (4, 3)).astype(np.float32)
    objective = _objective(name)
    objective.forward(s, np.array([0, 1, 2, 0]))
    assert objective.backward().dtype == np.float32


def test_align_only_is_minimised_by_collapse_and_the_rankers_are_not():
    collapsed = np.ones((6, 4))  # every image and every class the same unit vector
    y = np.arange(6) % 4
    assert _objective("align_only").forward(collapsed, y) == 0.0
    assert _objective("hinge_rank", 0.2).forward(collapsed, y) == pytest.approx(3 * 0.2)
    assert _objective("hardest_hinge", 0.2).forward(collapsed, y) == pytest.approx(0.2)
    assert _objective("cosine_contrastive", 0.2).forward(collapsed, y) == pytest.approx(0.8)


def test_class_cosine_of_orthogonal_and_collapsed_classes():
    assert class_cosine(np.eye(3)) == 0.0
    assert class_cosine(np.tile([[0.6, 0.8]], (3, 1))) == pytest.approx(1.0)
    two = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])  # pairs: 0, -1, 0 (each twice)
    assert class_cosine(two) == pytest.approx(-1 / 3)


def test_an_unknown_objective_is_refused():
    with pytest.raises(ValueError, match="unknown objective 'mse'"):
        _objective("mse")
