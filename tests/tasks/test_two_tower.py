"""The numpy two-tower task: central-difference gradients of every term, learning, zero-shot scoring."""

from __future__ import annotations

import numpy as np
import pytest

from doodlelab.config import build_config
from doodlelab.nn.gradcheck import numerical_grad
from doodlelab.tasks.streams import Streams
from doodlelab.tasks.two_tower import NumpyTwoTower


def _cfg(**two_tower):
    return build_config({
        "model": {"hidden": [6], "dropout": 0.0, "activation": "tanh"},
        "two_tower": {"embed_dim": 4, "text_hidden": [5], **two_tower},
        "optim": {"lr": 0.1, "l2": 0.01},
        "train": {"label_smoothing": 0.1},
    })


@pytest.mark.parametrize("align_weight", [0.0, 0.7])
def test_every_parameter_gradient_matches_central_differences(align_weight):
    rng = np.random.default_rng(3)
    words = rng.normal(size=(3, 7))
    task = NumpyTwoTower(_cfg(align_weight=align_weight), Streams.from_seed(1), words, dtype=np.float64)
    x = rng.random((5, 784))
    y = np.array([0, 1, 2, 2, 0])

    objective = lambda: task.compute_gradients(x, y)[0]  # noqa: E731
    objective()
    analytic = {name: g.copy() for name, _, g in task.model.named_parameters()}
    assert set(task.loss_terms) == ({"ce", "align", "l2"} if align_weight else {"ce", "l2"})
    for name, p, _ in task.model.named_parameters():
        if name == "image.0.weight":  # 784 x 6: check a random subset of rows (same math)
            rows = rng.choice(784, 20, replace=False)
            sub = p[rows]

            def f(sub=sub, rows=rows, p=p):
                p[rows] = sub
                return objective()

            numeric = numerical_grad(f, sub)
            p[rows] = sub  # numerical_grad restored ``sub``; put it back into ``p`` too
            np.testing.assert_allclose(analytic[name][rows], numeric, rtol=1e-5, atol=1e-8, err_msg=name)
        else:
            np.testing.assert_allclose(analytic[name], numerical_grad(objective, p),
                                       rtol=1e-5, atol=1e-8, err_msg=name)


def test_objective_is_the_sum_of_its_terms():
    rng = np.random.default_rng(0)
    task = NumpyTwoTower(_cfg(align_weight=0.5), Streams.from_seed(0), rng.normal(size=(4, 7)))
    x, y = rng.random((8, 784)).astype(np.float32), rng.integers(0, 4, 8)
    objective, logits = task.compute_gradients(x, y)
    t = task.loss_terms
    assert objective == pytest.approx(t["ce"] + 0.5 * t["align"] + t["l2"])
    assert 0.0 <= t["align"] <= 2.0  # 1 - cosine
    assert np.abs(logits).max() <= 10.0 + 1e-5  # logit_scale * cosine


def test_learns_a_separable_problem_and_predicts_the_most_similar_class():
    rng = np.random.default_rng(0)
    centres = rng.random((3, 784)).astype(np.float32)
    y = rng.integers(0, 3, 300)
    x = np.clip(centres[y] + rng.normal(0, 0.1, (300, 784)), 0, 1).astype(np.float32)
    cfg = build_config({"model": {"hidden": [32], "dropout": 0.0},
                        "two_tower": {"embed_dim": 8, "text_hidden": [8]}, "optim": {"lr": 0.1}})
    task = NumpyTwoTower(cfg, Streams.from_seed(0), rng.normal(size=(3, 50)))
    for _ in range(30):
        for i in range(0, 300, 50):
            task.train_batch(x[i : i + 50], y[i : i + 50])
    logits = task.logits(x)
    assert (logits.argmax(1) == y).mean() > 0.95
    cos = task.embed(x) @ task.class_embeddings().T
    np.testing.assert_array_equal(cos.argmax(1), logits.argmax(1))
    np.testing.assert_allclose(np.linalg.norm(task.embed(x[:5]), axis=1), 1.0, rtol=1e-5)


def test_zero_shot_scores_any_word_vectors():
    rng = np.random.default_rng(1)
    task = NumpyTwoTower(_cfg(), Streams.from_seed(0), rng.normal(size=(3, 7)))
    x = rng.random((4, 784)).astype(np.float32)
    other = rng.normal(size=(6, 7))
    assert task.logits(x, other).shape == (4, 6)
    np.testing.assert_allclose(task.logits(x, task.class_vectors), task.logits(x), rtol=1e-6)


def test_same_seed_same_weights_and_steps():
    rng = np.random.default_rng(2)
    words = rng.normal(size=(3, 7))
    x, y = rng.random((6, 784)).astype(np.float32), rng.integers(0, 3, 6)
    a, b = (NumpyTwoTower(_cfg(align_weight=0.2), Streams.from_seed(5), words) for _ in range(2))
    for task in (a, b):
        for _ in range(3):
            task.train_batch(x, y)
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(value, b.state_dict()[key])
    assert set(a.state_dict()) >= {"image.0.weight", "image.2.weight", "text.0.weight", "text.2.bias"}


def test_bad_class_vectors_are_refused():
    with pytest.raises(ValueError, match="class_vectors"):
        NumpyTwoTower(_cfg(), Streams.from_seed(0), np.zeros((1, 7)))
