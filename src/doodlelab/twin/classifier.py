"""The softmax classifier on PyTorch: the twin of :class:`doodlelab.tasks.classifier.NumpyClassifier`.

Same task interface (``train_batch`` and ``logits`` here, the rest from
:class:`~doodlelab.twin.base.TorchTask`), same architecture, same initial weights (the
numpy MLP is built first from the run's init stream and copied), same dropout
masks (drawn from the run's dropout stream), same loss and the same optimizer
formula (``torch.optim.SGD``, which the core reproduces). State dicts use the
numpy layout, so ``weights.npz`` does not depend on the backend that wrote it.
"""

from __future__ import annotations

import numpy as np
import torch

from doodlelab.config import Config
from doodlelab.geometry import N_PIXELS
from doodlelab.kinds import CLASSIFIER, Kind
from doodlelab.tasks.classifier import cross_entropy_scores
from doodlelab.tasks.mlp import N_CLASSES
from doodlelab.tasks.streams import Streams
from doodlelab.twin.base import TorchTask, configure_threads, torch_threads
from doodlelab.twin.losses import SoftmaxCrossEntropy, l2_penalty
from doodlelab.twin.modules import build_mlp, torch_dtype


class TorchClassifier(TorchTask):
    """MLP classifier trained with torch autograd and ``torch.optim.SGD``."""

    kind: Kind = CLASSIFIER

    def __init__(self, cfg: Config, streams: Streams, dtype: np.dtype | type = np.float32,
                 n_classes: int = N_CLASSES, device: torch.device | str = "cpu") -> None:
        configure_threads()
        self.device = torch.device(device)
        self.cfg = cfg
        self.np_dtype = np.dtype(dtype)
        self.dtype = torch_dtype(dtype)
        self.n_classes = n_classes
        self.widths = (N_PIXELS, *cfg.model.hidden, n_classes)
        self.model = build_mlp(cfg.model, rng=streams.init, dropout_rng=streams.dropout,
                               n_out=n_classes, dtype=self.np_dtype).to(self.device)
        self.loss = SoftmaxCrossEntropy(cfg.train.label_smoothing)
        self.loss_terms: dict[str, float] = {}  # one term: nothing to report separately
        self._setup_optimizer()

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

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Return eval-mode {"loss": mean cross-entropy, "accuracy"} on images (N, 784), labels (N,)."""
        return cross_entropy_scores(self.logits(x), y)

    def input_gradient(self, x: np.ndarray, k: int) -> np.ndarray:
        """Return d logit_k / d x (N, 784) in eval mode, by autograd (the core's backward twin)."""
        self.model.eval()
        images = self._tensor(x).clone().requires_grad_(True)
        self.model(images)[:, k].sum().backward()
        self.model.zero_grad(set_to_none=True)
        return images.grad.cpu().numpy()
