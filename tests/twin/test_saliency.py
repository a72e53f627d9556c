"""Saliency (d logit_k / d pixels): the numpy core's backward against torch autograd and
central differences, for both tasks, in float64 and eval mode (dropout must be off)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import need_module

torch = need_module("torch", "torch")

from doodlelab.config import build_config
from doodlelab.tasks.classifier import NumpyClassifier
from doodlelab.tasks.streams import Streams
from doodlelab.tasks.two_tower import NumpyTwoTower
from doodlelab.twin.classifier import TorchClassifier
from doodlelab.twin.two_tower import TorchTwoTower

CFG = build_config({
    "model": {"hidden": [24, 12], "dropout": 0.3, "input_dropout": 0.1, "activation": "tanh"},
    "two_tower": {"embed_dim": 6, "text_hidden": [10], "logit_scale": 7.0},
})
WORDS = np.random.default_rng([3, 9]).normal(size=(5, 12))


def _pair(task: str, seed: int):
    streams = (Streams.from_seed(seed), Streams.from_seed(seed))
    if task == "two_tower":
        return (NumpyTwoTower(CFG, streams[0], WORDS, dtype=np.float64),
                TorchTwoTower(CFG, streams[1], WORDS, dtype=np.float64))
    return (NumpyClassifier(CFG, streams[0], dtype=np.float64),
            TorchClassifier(CFG, streams[1], dtype=np.float64))


def _central_difference(core, x: np.ndarray, k: int, pixels: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Return d logit_k / d x at the given pixel indices of the single image ``x`` (1, 784)."""
    out = []
    for p in pixels:
        up, down = x.copy(), x.copy()
        up[0, p] += h
        down[0, p] -= h
        out.append((core.logits(up)[0, k] - core.logits(down)[0, k]) / (2 * h))
    return np.array(out)


@pytest.mark.parametrize("task", ["classifier", "two_tower"])
@pytest.mark.parametrize("seed", [0, 1])
def test_numpy_saliency_equals_torch_autograd_and_finite_differences(task: str, seed: int) -> None:
    core, tw = _pair(task, seed)
    x = np.random.default_rng(seed + 5).random((3, 784))
    for k in range(5):
        ours = core.input_gradient(x, k)
        assert ours.shape == (3, 784) and ours.dtype == np.float64
        np.testing.assert_allclose(ours, tw.input_gradient(x, k), rtol=1e-10, atol=1e-13)
        pixels = np.random.default_rng(k).choice(784, 12, replace=False)
        np.testing.assert_allclose(ours[1, pixels], _central_difference(core, x[1:2], k, pixels),
                                   rtol=1e-5, atol=1e-8)
    # eval mode: two calls agree (no dropout mask drawn), and no parameter gradient is left behind
    np.testing.assert_array_equal(core.input_gradient(x, 2), core.input_gradient(x, 2))
    assert all(not g.any() for _, _, g in core.model.named_parameters())
