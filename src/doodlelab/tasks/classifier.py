"""The softmax classifier on the numpy core: MLP + fused softmax cross-entropy + SGD.

The shared task methods (learning rate, threads, weights) are in
:class:`~doodlelab.tasks.base.NumpyTask`; the torch twin is
:class:`doodlelab.twin.classifier.TorchClassifier`.
"""

from __future__ import annotations

import numpy as np

from doodlelab.config import Config
from doodlelab.geometry import N_PIXELS
from doodlelab.kinds import CLASSIFIER, Kind
from doodlelab.nn import SoftmaxCrossEntropy, l2_penalty, log_softmax
from doodlelab.tasks.base import NumpyTask
from doodlelab.tasks.mlp import N_CLASSES, build_mlp
from doodlelab.tasks.streams import Streams
from doodlelab.tasks.threads import blas_threads


def cross_entropy_scores(logits: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Return {"loss": mean cross-entropy, "accuracy"} of logits (N, C) against labels (N,)."""
    logp = log_softmax(logits.astype(np.float64))
    return {"loss": float(-logp[np.arange(y.shape[0]), y].mean()),
            "accuracy": float((logits.argmax(axis=1) == y).mean())}


class NumpyClassifier(NumpyTask):
    """MLP classifier trained with the from-scratch backprop and SGD."""

    kind: Kind = CLASSIFIER

    def __init__(self, cfg: Config, streams: Streams, dtype: np.dtype | type = np.float32,
                 n_classes: int = N_CLASSES) -> None:
        self.cfg = cfg
        self.dtype = np.dtype(dtype)
        self.n_classes = n_classes
        self.widths = (N_PIXELS, *cfg.model.hidden, n_classes)
        self.model = build_mlp(cfg.model, rng=streams.init, dropout_rng=streams.dropout,
                               n_out=n_classes, dtype=dtype)
        self.loss = SoftmaxCrossEntropy(cfg.train.label_smoothing)
        self.loss_terms: dict[str, float] = {}  # one term: nothing to report separately
        self._setup_optimizer()

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """One SGD step on (B, 784), (B,); return (objective, number correct)."""
        x = np.asarray(x, dtype=self.dtype)  # a no-op for float32 batches; the twin casts too
        self.model.train()
        with blas_threads(self.threads(x.shape[0])):
            logits = self.model.forward(x)
            loss = self.loss.forward(logits, y)
            # Every gradient is set to this batch's (no zero_grad needed); images need none.
            self.model.backward(self.loss.backward(), input_grad=False, accumulate=False)
            loss += l2_penalty(self.model, self.cfg.optim.l2)
            # Every gradient is complete before any parameter moves.
            self.optimizer.step()
        return loss, int((logits.argmax(axis=1) == y).sum())

    def logits(self, x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        """Return eval-mode logits (N, K) for images (N, 784)."""
        self.model.eval()
        with blas_threads(self.threads(min(batch_size, x.shape[0]))):
            out = [self.model.forward(x[i : i + batch_size])
                   for i in range(0, x.shape[0], batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.n_classes), np.float32)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Return eval-mode {"loss": mean cross-entropy, "accuracy"} on images (N, 784), labels (N,)."""
        return cross_entropy_scores(self.logits(x), y)

    def input_gradient(self, x: np.ndarray, k: int) -> np.ndarray:
        """Return d logit_k / d x (N, 784) in eval mode, by the core's own backward pass.

        This is the saliency of class ``k``: which pixels would raise its score. The
        parameter gradients the pass accumulates are zeroed again afterwards.
        """
        x = np.asarray(x, dtype=self.dtype)
        self.model.eval()
        logits = self.model.forward(x)  # (N, K)
        dout = np.zeros_like(logits)
        dout[:, k] = 1
        dx = self.model.backward(dout)  # (N, 784)
        self.model.zero_grad()
        return dx
