"""What every task is, whatever its kind and backend: the :class:`Task` protocol.

A *task* owns the model, loss and optimizer of one kind on one backend and answers: train
on this batch, give logits for these images, hand me your weights (and gradients), take
these weights. The fit loop (:mod:`doodlelab.training.fit`), scoring, the run folder and
the studies talk to a task through :class:`Task` only; the registry
(:func:`doodlelab.training.registry.make_task`) returns one. The classes are
:class:`~doodlelab.tasks.classifier.NumpyClassifier` and
:class:`~doodlelab.tasks.two_tower.NumpyTwoTower` on the numpy core and their twins in
``twin/``.

What only some tasks can do is a second protocol each: a two-tower task embeds images and
class words in one space (:class:`EmbeddingTask`); a torch task can train as one of
several processes (:class:`DistributedTask`).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from doodlelab.config import Config
from doodlelab.kinds import Backend, Kind


class Task(Protocol):
    """What the fit loop, scoring, the run folder, the demo and the studies need of a model."""

    kind: Kind
    backend: Backend
    cfg: Config
    n_classes: int  # the width of the logits
    widths: tuple[int, ...]  # the image MLP's layer sizes, (784, *hidden, outputs)
    # name -> value in the last ``train_batch`` of each term of a several-term objective
    # (empty when the objective is one term); the fit loop logs their epoch means as term_<name>
    loss_terms: dict[str, float]

    def set_lr(self, lr: float) -> None: ...
    def train_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]: ...
    def logits(self, x: np.ndarray) -> np.ndarray: ...
    # {"loss": the task's objective, "accuracy", and any diagnostics (logged as diag_<name>)}
    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]: ...
    def input_gradient(self, x: np.ndarray, k: int) -> np.ndarray: ...
    def state_dict(self) -> dict[str, np.ndarray]: ...
    def load_state_dict(self, state: dict[str, np.ndarray]) -> None: ...
    def grads(self) -> dict[str, np.ndarray]: ...
    def training_state(self) -> dict[str, np.ndarray]: ...
    def load_training_state(self, state: dict[str, np.ndarray]) -> None: ...


@runtime_checkable
class EmbeddingTask(Task, Protocol):
    """A task that scores images by their cosine with the class words' embeddings (two-tower)."""

    class_vectors: Any  # (K, D) the class names' word vectors (a numpy array or a torch tensor)

    def embed(self, x: np.ndarray) -> np.ndarray: ...
    def class_embeddings(self, class_vectors: np.ndarray | None = None) -> np.ndarray: ...


@runtime_checkable
class DistributedTask(Task, Protocol):
    """A task that trains as one of several processes (torchrun): the torch tasks."""

    def distribute(self, world_size: int) -> None: ...
    def set_batch_shard(self, n: int, rows: slice) -> None: ...
