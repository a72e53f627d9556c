"""Weight initialisation schemes for a ``(fan_in, fan_out)`` weight matrix.

All draw from the Generator they are given (never from global state):

- ``he_normal`` / ``he_uniform``: variance 2/fan_in, which keeps the activation scale
  constant through ReLU layers (He et al., 2015).
- ``glorot_normal`` / ``glorot_uniform``: variance 2/(fan_in + fan_out), for
  tanh/sigmoid (Glorot & Bengio, 2010).
- ``lecun_normal``: variance 1/fan_in.
- ``torch_default``: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), what ``torch.nn.Linear`` does.
- ``normal`` / ``uniform``: fixed scale N(0, 0.01^2) and U(-0.05, 0.05).
"""

from __future__ import annotations

import math

import numpy as np


def _bounds(name: str, fan_in: int, fan_out: int) -> tuple[str, float]:
    """Return ("normal", std) or ("uniform", limit) for scheme ``name``."""
    if name == "he_normal":
        return "normal", math.sqrt(2.0 / fan_in)
    if name == "he_uniform":
        return "uniform", math.sqrt(6.0 / fan_in)  # var of U(-a, a) is a^2/3
    if name == "glorot_normal":
        return "normal", math.sqrt(2.0 / (fan_in + fan_out))
    if name == "glorot_uniform":
        return "uniform", math.sqrt(6.0 / (fan_in + fan_out))
    if name == "lecun_normal":
        return "normal", math.sqrt(1.0 / fan_in)
    if name == "torch_default":
        return "uniform", 1.0 / math.sqrt(fan_in)
    if name == "normal":
        return "normal", 0.01
    if name == "uniform":
        return "uniform", 0.05
    raise ValueError(f"unknown init scheme {name!r}; choose one of {', '.join(SCHEMES)}")


SCHEMES = (
    "he_normal",
    "he_uniform",
    "glorot_normal",
    "glorot_uniform",
    "lecun_normal",
    "torch_default",
    "normal",
    "uniform",
)


def initialize(
    name: str,
    shape: tuple[int, int],
    *,
    rng: np.random.Generator,
    dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    """Return a new ``shape = (fan_in, fan_out)`` weight array drawn with scheme ``name``."""
    fan_in, fan_out = shape
    law, scale = _bounds(name, fan_in, fan_out)
    if law == "normal":
        w = rng.normal(0.0, scale, size=shape)
    else:
        w = rng.uniform(-scale, scale, size=shape)
    return w.astype(dtype)
