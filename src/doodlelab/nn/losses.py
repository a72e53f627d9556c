"""Losses of the numpy core.

``SoftmaxCrossEntropy`` fuses softmax and categorical cross-entropy through
log-sum-exp, so it never takes ``log(p + eps)`` and never overflows; its gradient
with respect to the logits is the famous ``(softmax(z) - target) / B``.
"""

from __future__ import annotations

import numpy as np

from doodlelab.nn.modules import Module


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Return log softmax along the last axis, (B, C) -> (B, C), stable for any logits."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(z: np.ndarray) -> np.ndarray:
    """Return softmax probabilities along the last axis, (B, C) -> (B, C)."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class SoftmaxCrossEntropy:
    """Mean categorical cross-entropy of integer labels given raw logits.

    ``label_smoothing = s`` mixes the one-hot target with the uniform distribution,
    ``t = (1 - s) * onehot + s / C``, exactly as ``torch.nn.CrossEntropyLoss`` does.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def _target(self, y: np.ndarray, n_classes: int, dtype: np.dtype) -> np.ndarray:
        s = self.label_smoothing
        t = np.full((y.shape[0], n_classes), s / n_classes, dtype=dtype)
        t[np.arange(y.shape[0]), y] += 1.0 - s
        return t  # (B, C)

    def forward(self, logits: np.ndarray, y: np.ndarray) -> float:
        """Return the mean loss over the batch; caches softmax for ``backward``."""
        logp = log_softmax(logits)  # (B, C)
        self._probs = np.exp(logp)
        self._y = y
        rows = np.arange(y.shape[0])
        if self.label_smoothing == 0.0:
            return float(-logp[rows, y].mean())
        t = self._target(y, logits.shape[1], logits.dtype)
        return float(-(t * logp).sum(axis=1).mean())

    __call__ = forward

    def backward(self) -> np.ndarray:
        """Return d(mean loss)/d(logits), (B, C)."""
        probs, y = self._probs, self._y
        batch = y.shape[0]
        if self.label_smoothing == 0.0:
            grad = probs.copy()
            grad[np.arange(batch), y] -= 1
        else:
            grad = probs - self._target(y, probs.shape[1], probs.dtype)
        grad /= batch
        return grad


def l2_penalty(model: Module, strength: float) -> float:
    """Add ``strength * W`` to every weight gradient and return ``strength/2 * sum W^2``.

    Only weight matrices are penalised (not biases), which is the textbook L2 term;
    the optimizer's ``weight_decay`` is the torch-style alternative that also touches
    biases. Call after ``backward`` and before ``step``.
    """
    if strength == 0.0:
        return 0.0
    total = 0.0
    for name, p, g in model.named_parameters():
        if name.endswith("weight"):
            total += float(np.vdot(p, p))
            g += p.dtype.type(strength) * p
    return 0.5 * strength * total
