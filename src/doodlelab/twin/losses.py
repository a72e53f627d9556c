"""Losses of the torch twin, mirroring :mod:`doodlelab.nn.losses`.

Here autograd does the backward pass, so a loss is just a function that returns a
scalar tensor; the core computes the same numbers and gradients by hand.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class SoftmaxCrossEntropy:
    """Mean categorical cross-entropy of integer labels given raw logits.

    ``label_smoothing = s`` targets ``(1 - s) * onehot + s / C``, as in the core
    (which copies torch's definition).
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def __call__(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return the mean loss (0-d tensor) of logits (B, C) against labels (B,) int64."""
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)


def l2_penalty(model: torch.nn.Module, strength: float) -> torch.Tensor:
    """Return ``strength/2 * sum W^2`` over the weight matrices (not biases), a 0-d tensor.

    Adding it to the loss before ``backward`` adds ``strength * W`` to every weight
    gradient, which is what :func:`doodlelab.nn.losses.l2_penalty` does by hand.
    """
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
    if strength == 0.0 or not weights:
        dtype = next(model.parameters()).dtype if weights else torch.get_default_dtype()
        return torch.zeros((), dtype=dtype)
    return 0.5 * strength * sum((w * w).sum() for w in weights)
