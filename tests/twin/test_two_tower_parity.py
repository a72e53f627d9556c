"""The two-tower task against its torch twin in float64: first-step gradients, several steps, logits."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import need_module

torch = need_module("torch", "torch")

from doodlelab.config import build_config
from doodlelab.nn.embedding_losses import OBJECTIVES
from doodlelab.tasks.streams import Streams
from doodlelab.tasks.two_tower import NumpyTwoTower
from doodlelab.twin.modules import numpy_grads
from doodlelab.twin.two_tower import TorchTwoTower


def _pair(align_weight: float, l2: float, dropout: float, seed: int = 0, loss: str = "hinge_rank"):
    cfg = build_config({
        "model": {"hidden": [16, 8], "dropout": dropout},
        "two_tower": {"embed_dim": 6, "text_hidden": [10], "align_weight": align_weight, "loss": loss},
        "optim": {"lr": 0.2, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3, "l2": l2},
        "train": {"label_smoothing": 0.05},
    })
    words = np.random.default_rng([seed, 9]).normal(size=(5, 12))
    return (NumpyTwoTower(cfg, Streams.from_seed(seed), words, dtype=np.float64),
            TorchTwoTower(cfg, Streams.from_seed(seed), words, dtype=np.float64))


@pytest.mark.parametrize("align_weight,l2,dropout,loss", [
    (0.0, 0.0, 0.0, "hinge_rank"),
    *((0.5, 0.01, 0.3, name) for name in OBJECTIVES),
])
def test_first_iteration_gradients_match_autograd(align_weight, l2, dropout, loss):
    core, tw = _pair(align_weight, l2, dropout, loss=loss)
    for key, value in core.state_dict().items():
        np.testing.assert_array_equal(tw.state_dict()[key], value)
    rng = np.random.default_rng(1)
    x, y = rng.random((12, 784)), rng.integers(0, 5, 12)
    obj_np, logits_np = core.compute_gradients(x, y)
    obj_tw, logits_tw = tw.compute_gradients(x, y)
    assert obj_np == pytest.approx(obj_tw, rel=1e-12)
    assert core.loss_terms.keys() == tw.loss_terms.keys()
    for k in core.loss_terms:
        assert core.loss_terms[k] == pytest.approx(tw.loss_terms[k], rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(logits_np, logits_tw, rtol=1e-12, atol=1e-12)
    grads_tw = numpy_grads(tw.model)
    for name, _, g in core.model.named_parameters():
        np.testing.assert_allclose(g, grads_tw[name], rtol=1e-10, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("loss", ["hinge_rank", "triplet"])  # triplet: both draw the same negatives
def test_several_steps_with_a_changing_learning_rate_stay_together(loss):
    core, tw = _pair(0.3, 0.001, 0.2, loss=loss)
    rng = np.random.default_rng(2)
    for step in range(6):
        x, y = rng.random((10, 784)), rng.integers(0, 5, 10)
        for task in (core, tw):
            task.set_lr(0.2 / (step + 1))
        a, b = core.train_batch(x, y), tw.train_batch(x, y)
        assert a[0] == pytest.approx(b[0], rel=1e-10) and a[1] == b[1]
    state = tw.state_dict()
    for key, value in core.state_dict().items():
        np.testing.assert_allclose(value, state[key], rtol=1e-9, atol=1e-12, err_msg=key)
    x = rng.random((7, 784))
    np.testing.assert_allclose(core.logits(x), tw.logits(x), rtol=1e-9, atol=1e-12)
    other = rng.normal(size=(3, 12))
    np.testing.assert_allclose(core.logits(x, other), tw.logits(x, other), rtol=1e-9, atol=1e-12)
