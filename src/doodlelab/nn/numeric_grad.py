"""Central-difference gradient checks, run in float64.

``numerical_grad(f, x)`` perturbs each entry of ``x`` in place by +-h and returns
``(f(x + h) - f(x - h)) / 2h``: error O(h^2), so with h = 1e-6 in float64 the
agreement with an exact backward pass is about 1e-8 relative.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numerical_grad(f: Callable[[], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Return d f / d x by central differences; ``f`` reads ``x`` (perturbed in place)."""
    grad = np.zeros_like(x, dtype=np.float64)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = f()
        flat[i] = old - h
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * h)
    return grad

