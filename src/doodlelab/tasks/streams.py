"""The independent random streams of one training run, all derived from ``train.seed``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The fields of Streams, in seed order (negatives: the triplet objective's sampled classes)
STREAMS = ("init", "dropout", "shuffle", "augment", "negatives")


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
    negatives: np.random.Generator  # the triplet objective's sampled negative classes

    @classmethod
    def from_seed(cls, seed: int) -> Streams:
        """Return the five streams for ``seed`` (SeedSequence keeps them independent)."""
        return cls(*(np.random.default_rng([seed, k]) for k in range(len(STREAMS))))
