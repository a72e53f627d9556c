"""Objectives of the two-tower model on torch, mirroring :mod:`doodlelab.nn.embedding_losses`.

Each is a function of the cosine matrix ``s`` (B, K) and the labels ``y`` (B,) int64
that returns a 0-d tensor; autograd does the backward pass. Where torch has the loss
already it is used (``F.multi_margin_loss``, ``F.cross_entropy``), so the core's
hand-written gradients are checked against an independent implementation.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from doodlelab.nn.embedding_losses import OBJECTIVES, sample_negatives


def hinge_rank(s: torch.Tensor, y: torch.Tensor, margin: float) -> torch.Tensor:
    """Return mean_i sum_{k != y_i} max(0, m - S_iy + S_ik).

    ``F.multi_margin_loss`` divides each image's sum by K, so it is multiplied back.
    """
    return s.shape[1] * F.multi_margin_loss(s, y, margin=margin)


def _own(s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.one_hot(y, s.shape[1]).bool()  # (B, K)


def hardest_hinge(s: torch.Tensor, y: torch.Tensor, margin: float) -> torch.Tensor:
    """Return mean_i max(0, m - S_iy + max_{k != y_i} S_ik)."""
    pos = s.gather(1, y[:, None])[:, 0]
    hardest = s.masked_fill(_own(s, y), float("-inf")).max(dim=1).values
    return torch.clamp(margin - pos + hardest, min=0).mean()


def triplet(s: torch.Tensor, y: torch.Tensor, margin: float, negatives: torch.Tensor) -> torch.Tensor:
    """Return mean_i max(0, m + |u - v_y|^2 - |u - v_n|^2) with |u - v|^2 = 2 - 2 cos on unit vectors."""
    d_pos = 2 - 2 * s.gather(1, y[:, None])[:, 0]
    d_neg = 2 - 2 * s.gather(1, negatives[:, None])[:, 0]
    return torch.clamp(margin + d_pos - d_neg, min=0).mean()


def cosine_contrastive(s: torch.Tensor, y: torch.Tensor, margin: float) -> torch.Tensor:
    """Return mean_i [(1 - S_iy) + mean_{k != y_i} max(0, S_ik - m)]."""
    own = _own(s, y)
    push = torch.clamp(s - margin, min=0).masked_fill(own, 0).sum(dim=1) / (s.shape[1] - 1)
    return (1 - s[own] + push).mean()


def align_only(s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Return mean_i (1 - S_iy)."""
    return (1 - s.gather(1, y[:, None])[:, 0]).mean()


class Objective:
    """The objective ``name`` as a callable ``(s, y) -> 0-d tensor``, the twin of ``make_objective``.

    ``rng`` draws the triplet's negatives with the core's formula, so a twin built on
    a Generator seeded like the core's sees the same negatives.
    """

    def __init__(self, name: str, *, margin: float, scale: float, rng: np.random.Generator,
                 label_smoothing: float = 0.0) -> None:
        if name not in OBJECTIVES:
            raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
        self.name, self.margin, self.scale, self.rng = name, margin, scale, rng
        self.label_smoothing = label_smoothing
        self.shard: tuple[int, slice] | None = None  # (global rows, this process's rows) of the batch

    def negatives(self, y: np.ndarray, n_classes: int) -> np.ndarray:
        """Return the triplet's negatives of labels ``y``; under a shard, drawn for the global batch.

        A process whose share is empty calls it too, so its stream moves as the others' do.
        """
        if self.shard is None:
            return sample_negatives(y, n_classes, self.rng)
        n, rows = self.shard  # y holds rows ``rows`` of a global batch of n: draw all n offsets, keep ours
        offsets = sample_negatives(np.zeros(n, dtype=np.int64), n_classes, self.rng)[rows]
        return (y + offsets) % n_classes

    def __call__(self, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return the mean loss of cosines (B, K) against labels (B,) int64."""
        if self.name == "triplet":
            neg = self.negatives(y.cpu().numpy(), s.shape[1])
            return triplet(s, y, self.margin, torch.from_numpy(neg).to(s.device))
        if self.name == "softmax_ce":
            return F.cross_entropy(self.scale * s, y, label_smoothing=self.label_smoothing)
        if self.name == "align_only":
            return align_only(s, y)
        loss = {"hinge_rank": hinge_rank, "hardest_hinge": hardest_hinge,
                "cosine_contrastive": cosine_contrastive}[self.name]
        return loss(s, y, self.margin)
