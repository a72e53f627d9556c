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
from doodlelab.tasks.classifier import N_CLASSES, N_INPUTS, Streams, matmul_threads, usable_cpus
from doodlelab.twin.losses import SoftmaxCrossEntropy, l2_penalty
from doodlelab.twin.modules import Dropout, build_mlp, load_numpy_state, numpy_state, torch_dtype


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
    """What every torch task shares: numpy images in, the device, the learning rate, the thread
    rule, and the share of a global batch when several processes train one model.

    Subclasses set ``np_dtype``, ``optimizer``, ``model`` and ``widths`` (the image MLP's layer sizes).
    """

    np_dtype: np.dtype
    optimizer: torch.optim.Optimizer
    model: torch.nn.Module
    widths: tuple[int, ...]
    device: torch.device = torch.device("cpu")
    trainer: torch.nn.Module | None = None  # the DistributedDataParallel wrapper, when distributed
    batch_share: float = 1.0  # (local rows x processes) / global rows of the current batch
    world_size: int = 1

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        """Return images as a torch tensor of the model dtype on the task's device."""
        return torch.from_numpy(np.require(x, dtype=self.np_dtype, requirements=["C", "W"])).to(self.device)

    def _labels(self, y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.require(y, dtype=np.int64, requirements=["C", "W"])).to(self.device)

    def distribute(self, world_size: int) -> None:
        """Train through DistributedDataParallel from now on (the process group must exist)."""
        from doodlelab.twin.distributed import wrap

        self.world_size = world_size
        self.trainer = wrap(self.model, self.device)

    def set_batch_shard(self, n: int, rows: slice) -> None:
        """Say that the next batch is rows ``rows`` of a global batch of ``n`` images."""
        for module in self.model.modules():
            if isinstance(module, Dropout):
                module.shard = (n, rows)
        self.batch_share = (rows.stop - rows.start) * self.world_size / max(n, 1)

    def data_term(self, loss: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Return the batch loss weighted so that averaging over processes gives the global mean."""
        if self.trainer is None:
            return loss
        if logits.shape[0] == 0:  # an empty share still joins the gradient average
            return logits.sum() * 0.0
        return loss * self.batch_share

    def set_lr(self, lr: float) -> None:
        """Set the learning rate used by the next steps."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def threads(self, rows: int) -> int:
        """Return the intra-op thread count for ``rows`` images: the numpy core's rule."""
        return matmul_threads(rows, self.widths)


class TorchClassifier(TorchTask):
    """MLP classifier trained with torch autograd and ``torch.optim.SGD``."""

    backend = "torch"

    def __init__(self, cfg: Config, streams: Streams, dtype: np.dtype | type = np.float32,
                 n_classes: int = N_CLASSES, device: torch.device | str = "cpu") -> None:
        configure_threads()
        self.device = torch.device(device)
        self.cfg = cfg
        self.np_dtype = np.dtype(dtype)
        self.dtype = torch_dtype(dtype)
        self.n_classes = n_classes
        self.widths = (N_INPUTS, *cfg.model.hidden, n_classes)
        self.model = build_mlp(cfg.model, rng=streams.init, dropout_rng=streams.dropout,
                               n_out=n_classes, dtype=self.np_dtype).to(self.device)
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
        labels = self._labels(y)
        with torch_threads(self.threads(labels.shape[0])):
            logits = (self.model if self.trainer is None else self.trainer)(self._tensor(x))
            loss = self.loss(logits, labels) if labels.shape[0] else logits.sum() * 0.0
            objective = self.data_term(loss, logits)
            penalty = l2_penalty(self.model, self.cfg.optim.l2) if self.cfg.optim.l2 else None
            if penalty is not None:
                objective = objective + penalty
            objective.backward()
            self.optimizer.step()
        if self.trainer is None:
            value = objective.item()
        else:  # this process's own batch objective, not the weighted share it back-propagated
            value = loss.item() + (penalty.item() if penalty is not None else 0.0)
        return value, int((logits.argmax(dim=1) == labels).sum())

    def logits(self, x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        """Return eval-mode logits (N, K) for images (N, 784)."""
        self.model.eval()
        with torch.inference_mode(), torch_threads(self.threads(min(batch_size, x.shape[0]))):
            out = [self.model(self._tensor(x[i : i + batch_size])).cpu().numpy()
                   for i in range(0, x.shape[0], batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.n_classes), self.np_dtype)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Return copies of the weights in numpy layout (Linear weight is (in, out))."""
        return numpy_state(self.model)

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Load weights in numpy layout."""
        load_numpy_state(self.model, state)
