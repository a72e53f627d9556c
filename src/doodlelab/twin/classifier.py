"""The softmax classifier on PyTorch: the twin of :class:`doodlelab.tasks.classifier.NumpyClassifier`.

Same task interface (``backend``, ``set_lr``, ``train_batch``, ``logits``,
``state_dict``, ``load_state_dict``), same architecture, same initial weights (the
numpy MLP is built first from the run's init stream and copied), same dropout
masks (drawn from the run's dropout stream), same loss and the same optimizer
formula (``torch.optim.SGD``, which the core reproduces). State dicts use the
numpy layout, so ``weights.npz`` does not depend on the backend that wrote it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from doodlelab.config import Config
from doodlelab.tasks.classifier import (
    N_CLASSES,
    N_INPUTS,
    Streams,
    cross_entropy_scores,
    matmul_threads,
    usable_cpus,
)
from doodlelab.twin.losses import SoftmaxCrossEntropy, l2_penalty
from doodlelab.twin.modules import build_mlp, load_numpy_state, numpy_state, torch_dtype


def configure_threads() -> int:
    """Give torch one intra-op thread per usable CPU unless ``OMP_NUM_THREADS`` says otherwise.

    Returns the number of threads torch now uses.
    """
    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(usable_cpus())
    return torch.get_num_threads()


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TorchTask:
    """What every torch task shares: numpy images in, the learning rate, the thread rule.

    Subclasses set ``np_dtype``, ``optimizer`` and ``widths`` (the image MLP's layer sizes).
    """

    np_dtype: np.dtype
    optimizer: torch.optim.Optimizer
    widths: tuple[int, ...]

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        """Return images as a torch tensor of the model dtype, sharing memory when possible."""
        return torch.from_numpy(np.require(x, dtype=self.np_dtype, requirements=["C", "W"]))

    def set_lr(self, lr: float) -> None:
        """Set the learning rate used by the next steps."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def threads(self, rows: int) -> int:
        """Return the intra-op thread count for ``rows`` images: the numpy core's rule."""
        return matmul_threads(rows, self.widths)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Return eval-mode {"loss": mean cross-entropy of the logits, "accuracy"} (the classifier's)."""
        return cross_entropy_scores(self.logits(x), y)


class TorchClassifier(TorchTask):
    """MLP classifier trained with torch autograd and ``torch.optim.SGD``."""

    backend = "torch"

    def __init__(self, cfg: Config, streams: Streams, dtype: np.dtype | type = np.float32,
                 n_classes: int = N_CLASSES) -> None:
        configure_threads()
        self.cfg = cfg
        self.np_dtype = np.dtype(dtype)
        self.dtype = torch_dtype(dtype)
        self.n_classes = n_classes
        self.widths = (N_INPUTS, *cfg.model.hidden, n_classes)
        self.model = build_mlp(cfg.model, rng=streams.init, dropout_rng=streams.dropout,
                               n_out=n_classes, dtype=self.np_dtype)
        self.loss = SoftmaxCrossEntropy(cfg.train.label_smoothing)
        o = cfg.optim
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=o.lr,
            momentum=o.momentum,
            nesterov=o.nesterov,
            weight_decay=o.weight_decay,
        )

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """One SGD step on (B, 784), (B,); return (objective, number correct)."""
        self.model.train()
        self.optimizer.zero_grad()
        labels = torch.from_numpy(np.require(y, dtype=np.int64, requirements=["C", "W"]))
        with torch_threads(self.threads(labels.shape[0])):
            logits = self.model(self._tensor(x))
            objective = self.loss(logits, labels)
            if self.cfg.optim.l2:
                objective = objective + l2_penalty(self.model, self.cfg.optim.l2)
            objective.backward()
            self.optimizer.step()
        return objective.item(), int((logits.argmax(dim=1) == labels).sum())

    def logits(self, x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        """Return eval-mode logits (N, K) for images (N, 784)."""
        self.model.eval()
        with torch.inference_mode(), torch_threads(self.threads(min(batch_size, x.shape[0]))):
            out = [self.model(self._tensor(x[i : i + batch_size])).numpy()
                   for i in range(0, x.shape[0], batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.n_classes), self.np_dtype)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Return copies of the weights in numpy layout (Linear weight is (in, out))."""
        return numpy_state(self.model)

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Load weights in numpy layout."""
        load_numpy_state(self.model, state)
