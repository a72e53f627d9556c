"""Several seeds of one configuration: the entry point a study row calls to train all its seeds.

``fit_seeds(cfg, backend, kind, seeds, ...)[i]`` is ``fit_new`` of ``cfg`` with
``train.seed = seeds[i]``: the same initial weights, batch order, dropout masks,
augmentation, early stopping and restored weights, so every history row and metric
is that of training the seed alone (tests/training/test_seeds.py checks it).

The seeds are trained one after the other. Training them *together* (the models of
all seeds stacked along a leading axis, one batched product per layer, bit for bit the
same weights) was built as a benchmark and measured no faster on the numpy core
(``benchmarks/bench_stacking.py``: 5 seeds on 20,000 images, stacked/alone 0.98 for
the classifier and 1.00 for the two-tower in CPU seconds; ``docs/speed.md``).
A stacked product still runs one BLAS call per seed, so stacking saves only Python
calls, while every elementwise pass (optimizer, dropout, ReLU) then streams S times
larger arrays that no longer fit the CPU's cache. This function is the one place to
change if that ever pays (a GPU, ``torch.bmm``); its callers need not change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from doodlelab.config import Config
from doodlelab.kinds import Backend, Kind
from doodlelab.tasks.mlp import N_CLASSES
from doodlelab.training.fit import FitResult, Task, fit_new

PerSeed = Any  # one array (every seed trains on it) or a Sequence of one array per seed


def _for_seed(value: PerSeed, i: int, n: int, name: str) -> Any:
    """Return seed ``i``'s ``value``: the array itself, or the ``i``-th of a per-seed Sequence."""
    if isinstance(value, Sequence):  # a list, a tuple or a lazy Sequence; never an array
        if len(value) != n:
            raise ValueError(f"{name}: {len(value)} per-seed arrays for {n} seeds")
        return value[i]
    return value


def seed_config(cfg: Config, seed: int) -> Config:
    """Return ``cfg`` with ``train.seed = seed`` (checked like any config)."""
    return replace(cfg, train=replace(cfg.train, seed=seed))


def fit_seeds(cfg: Config, backend: Backend, kind: Kind, seeds: Sequence[int], x_train: PerSeed,
              y_train: PerSeed, x_val: PerSeed, y_val: PerSeed, *,
              class_vectors: np.ndarray | None = None, n_classes: int = N_CLASSES,
              progress: bool | None = None, score_train: bool = True,
              on_seed: Callable[[int, Task, FitResult], None] | None = None,
              ) -> list[tuple[Task, FitResult]]:
    """Train ``kind`` on ``backend`` once per seed; return ``[(task, FitResult)]`` in ``seeds``' order.

    Element ``i`` equals ``fit_new(cfg with train.seed=seeds[i], ...)``. Each of ``x_train``
    (N, 784), ``y_train`` (N,), ``x_val``, ``y_val`` is one array that every seed trains
    on, or a Sequence with one array per seed (a study row whose validation split depends on
    the seed; a lazy Sequence gathers each seed's rows only when that seed trains).
    ``on_seed(i, task, result)`` is called as each seed finishes.
    """
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must differ, got {list(seeds)}")
    out = []
    for i, seed in enumerate(seeds):
        data = [_for_seed(v, i, len(seeds), name) for v, name in
                ((x_train, "x_train"), (y_train, "y_train"), (x_val, "x_val"), (y_val, "y_val"))]
        task, result = fit_new(seed_config(cfg, seed), backend, kind, *data, class_vectors=class_vectors,
                               n_classes=n_classes, progress=progress, score_train=score_train)
        if on_seed is not None:
            on_seed(i, task, result)
        out.append((task, result))
    return out
