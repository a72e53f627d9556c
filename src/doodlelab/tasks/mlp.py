"""The image MLP both numpy tasks are built from, and the course's number of classes."""

from __future__ import annotations

import numpy as np

from doodlelab.config import ModelConfig
from doodlelab.data.course import CLASSES
from doodlelab.geometry import N_PIXELS
from doodlelab.nn import Dropout, Linear, Sequential
from doodlelab.nn.modules import ACTIVATIONS, Module

N_CLASSES = len(CLASSES)  # the course's five classes; a folder with classes.json has its own count


def build_mlp(
    cfg: ModelConfig,
    *,
    rng: np.random.Generator,
    dropout_rng: np.random.Generator,
    n_in: int = N_PIXELS,
    n_out: int = N_CLASSES,
    dtype: np.dtype | type = np.float32,
) -> Sequential:
    """Return ``[Dropout] Linear, act, [Dropout], ..., Linear``: (B, n_in) -> (B, n_out)."""
    act = ACTIVATIONS[cfg.activation]
    layers: list[Module] = []
    if cfg.input_dropout > 0:
        layers.append(Dropout(cfg.input_dropout, rng=dropout_rng))
    width = n_in
    for h in cfg.hidden:
        layers += [Linear(width, h, rng=rng, init=cfg.init, dtype=dtype), act()]
        if cfg.dropout > 0:
            layers.append(Dropout(cfg.dropout, rng=dropout_rng))
        width = h
    layers.append(Linear(width, n_out, rng=rng, init=cfg.init, dtype=dtype))
    return Sequential(*layers)
