"""Mini-batch index iterator."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def iterate_minibatches(
    n: int, batch_size: int, rng: np.random.Generator | None = None
) -> Iterator[np.ndarray]:
    """Yield index arrays covering ``range(n)`` once, in batches of ``batch_size``.

    With a Generator the order is a fresh permutation drawn from it (one per call,
    i.e. per epoch); without one the order is 0..n-1. The last, partial batch is kept.
    """
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def n_batches(n: int, batch_size: int) -> int:
    """Return how many batches :func:`iterate_minibatches` yields: ceil(n / batch_size)."""
    return -(-n // batch_size)


def shard_rows(n: int, rank: int, world_size: int) -> slice:
    """Return rank ``rank``'s contiguous share of ``n`` rows split over ``world_size`` processes."""
    return slice(n * rank // world_size, n * (rank + 1) // world_size)
