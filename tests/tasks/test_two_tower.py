"""The numpy two-tower task: central-difference gradients of every objective and term, learning, scores."""

from __future__ import annotations

import numpy as np
import pytest

from doodlelab.config import build_config
from doodlelab.nn.embedding_losses import OBJECTIVES
from doodlelab.nn.numeric_grad import numerical_grad
from doodlelab.tasks.streams import Streams
from doodlelab.tasks.two_tower import NumpyTwoTower


def _cfg(**two_tower):
    return build_config({
        "model": {"hidden": [6], "dropout": 0.0, "activation": "tanh"},
        "two_tower": {"embed_dim": 4, "text_hidden": [5], **two_tower},
        "optim": {"lr": 0.1, "l2": 0.01},
        "train": {"label_smoothing": 0.1},
    })


@pytest.mark.parametrize("loss,align_weight",
                         [("hinge_rank", 0.0), *((name, 0.7) for name in OBJECTIVES)])
def test_every_parameter_gradient_matches_central_differences(loss, align_weight):
    rng = np.random.default_rng(3)
    words = rng.normal(size=(3, 7))
    cfg = _cfg(align_weight=align_weight, loss=loss, margin=0.3)
    task = NumpyTwoTower(cfg, Streams.from_seed(1), words, dtype=np.float64)
    x = rng.random((5, 784))
    y = np.array([0, 1, 2, 2, 0])

    def objective() -> float:
        task.objective.rng = np.random.default_rng(5)  # the triplet: the same negatives every call
        return task.compute_gradients(x, y)[0]

    objective()
    analytic = {name: g.copy() for name, _, g in task.model.named_parameters()}
    assert set(task.loss_terms) == ({loss, "align", "l2"} if align_weight else {loss, "l2"})
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


def test_each_term_matches_its_formula_on_the_embeddings():
    rng = np.random.default_rng(0)
    task = NumpyTwoTower(_cfg(align_weight=0.5), Streams.from_seed(0), rng.normal(size=(4, 7)),
                         dtype=np.float64)
    x, y = rng.random((8, 784)), rng.integers(0, 4, 8)
    u, v = task.embed(x), task.class_embeddings()  # no dropout: training pass = these
    objective, logits = task.compute_gradients(x, y)
    cos = u @ v.T  # (8, 4)
    np.testing.assert_allclose(logits, 10.0 * cos, rtol=1e-12)  # logit_scale 10
    own = cos[np.arange(8), y]
    hinge = np.maximum(0.0, 1.0 - own[:, None] + cos)  # the default margin is 1.0
    hinge[np.arange(8), y] = 0.0  # no hinge against the own class
    t = task.loss_terms
    assert set(t) == {"hinge_rank", "align", "l2"}  # the default has no cross-entropy term
    assert t["hinge_rank"] == pytest.approx(hinge.sum(1).mean(), rel=1e-12)
    assert t["align"] == pytest.approx(np.mean(1 - own), rel=1e-12)
    weights = [p for name, p, _ in task.model.named_parameters() if name.endswith("weight")]
    assert t["l2"] == pytest.approx(0.01 / 2 * sum((w**2).sum() for w in weights), rel=1e-12)
    assert objective == pytest.approx(t["hinge_rank"] + 0.5 * t["align"] + t["l2"], rel=1e-12)


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
    np.testing.assert_allclose(np.linalg.norm(task.embed(x[:5]), axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(task.class_embeddings(), axis=1), 1.0, rtol=1e-5)


def test_zero_shot_scores_any_word_vectors():
    rng = np.random.default_rng(1)
    task = NumpyTwoTower(_cfg(), Streams.from_seed(0), rng.normal(size=(3, 7)), dtype=np.float64)
    x = rng.random((4, 784))
    other = rng.normal(size=(6, 7))
    scores = task.logits(x, other)
    assert scores.shape == (4, 6)
    # Each word vector is scored on its own: a new list that reorders the class vectors and
    # adds unseen ones gives the class columns reordered, the others from their own vectors.
    mixed = np.concatenate([task.class_vectors[[2, 0]], other[:2], task.class_vectors[[1]]])
    np.testing.assert_allclose(task.logits(x, mixed),
                               np.c_[task.logits(x)[:, [2, 0]], scores[:, :2], task.logits(x)[:, [1]]],
                               rtol=1e-12)
    assert np.abs(scores).max() <= 10.0 + 1e-9  # logit_scale times a cosine


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


def test_evaluate_scores_the_configured_objective_and_the_diagnostics():
    rng = np.random.default_rng(6)
    task = NumpyTwoTower(_cfg(align_weight=0.5, margin=0.3), Streams.from_seed(0), rng.normal(size=(4, 7)),
                         dtype=np.float64)
    x, y = rng.random((9, 784)), rng.integers(0, 4, 9)
    scores = task.evaluate(x, y)
    u, v = task.embed(x), task.class_embeddings()
    s = u @ v.T
    rows = np.arange(9)
    hinge = np.maximum(0.0, 0.3 - s[rows, y][:, None] + s)
    hinge[rows, y] = 0.0
    assert scores["loss"] == pytest.approx(hinge.sum(axis=1).mean() + 0.5 * (1 - s[rows, y]).mean())
    assert scores["accuracy"] == pytest.approx((s.argmax(axis=1) == y).mean())
    assert scores["active"] == pytest.approx((hinge > 0).sum() / (9 * 3))
    pairs = [v[i] @ v[j] for i in range(4) for j in range(4) if i != j]
    assert scores["class_cosine"] == pytest.approx(np.mean(pairs))
