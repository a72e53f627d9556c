"""The independent random streams of one training run, all derived from ``train.seed``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STREAMS = ("init", "dropout", "shuffle", "augment")  # the fields of Streams, in seed order


@dataclass
class Streams:
    """The independent random streams of one run, all derived from ``train.seed``.

    Both backends draw initial weights, dropout masks, batch order and augmentation
    from these numpy Generators, so a numpy run and its torch twin see the same
    randomness.
    """

    init: np.random.Generator
    dropout: np.random.Generator
    shuffle: np.random.Generator
    augment: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int) -> Streams:
        """Return the four streams for ``seed`` (SeedSequence keeps them independent)."""
        return cls(*(np.random.default_rng([seed, k]) for k in range(4)))
