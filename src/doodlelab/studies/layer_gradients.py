"""The size of each layer's gradient at initialisation, per activation and initialisation scheme.

Why one activation trains faster than another is visible before any training: with a
sigmoid, each layer multiplies the gradient flowing down by ``sigma'(a) <= 1/4``, so the
first layers receive a gradient much smaller than the last; a tanh or ReLU layer with the
initialisation made for it (Glorot for tanh and sigmoid, He for ReLU) keeps the sizes
comparable. This module measures it on real data: for each seed, a fresh classifier, one
mini-batch of training images, one backward pass of the cross-entropy (no step), and the
Frobenius norm of every weight matrix's gradient.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from doodlelab.config import Config
from doodlelab.kinds import CLASSIFIER, NUMPY
from doodlelab.tasks.streams import Streams
from doodlelab.training.registry import make_task


def layer_gradient_norms(cfg: Config, x: np.ndarray, y: np.ndarray, seed: int) -> list[float]:
    """Return the gradient norm of each weight matrix, first layer first, of a fresh classifier on (x, y)."""
    task = make_task(cfg, NUMPY, CLASSIFIER, streams=Streams.from_seed(seed))
    task.model.train()
    task.optimizer.zero_grad()
    logits = task.model.forward(np.asarray(x, np.float32))
    task.loss.forward(logits, y)
    task.model.backward(task.loss.backward(), input_grad=False)
    grads = task.grads()
    names = sorted((k for k in grads if k.endswith(".weight")), key=lambda k: int(k.split(".")[0]))
    return [float(np.linalg.norm(grads[k])) for k in names]


Variant = tuple[str, Mapping[str, Any]]  # (name, model settings such as activation and init)


def init_gradients(cfg: Config, x: np.ndarray, y: np.ndarray, variants: Sequence[Variant],
                   seeds: Sequence[int]) -> list[dict[str, Any]]:
    """Return one row per variant, seed and layer: ``{variant, seed, layer, grad_norm}``.

    ``variants`` are ``(name, {"activation": ..., "init": ...})`` model settings; ``x`` (B, 784)
    and ``y`` (B,) the batch every seed sees.
    """
    rows = []
    for name, model in variants:
        variant = replace(cfg, model=replace(cfg.model, **model))
        for seed in seeds:
            for layer, norm in enumerate(layer_gradient_norms(variant, x, y, seed), start=1):
                rows.append({"variant": name, "seed": seed, "layer": layer, "grad_norm": norm})
    return rows
