"""Objectives of the word-embedding (two-tower) model, on the similarity matrix S.

Every objective here reads ``S`` (B, K): the cosine of each of B image embeddings
with each of the K class embeddings, and the labels ``y`` (B,). ``forward`` returns
the mean loss and caches what ``backward`` needs; ``backward`` returns dLoss/dS
(B, K), which the two-tower task sends into both towers (``dU = dS V``,
``dV = dS^T U``). ``active`` is the fraction of the objective's terms that were
non-zero in the last ``forward`` (a hinge that is satisfied contributes nothing).

With ``m`` the margin and ``p = S[i, y_i]`` the image's cosine with its own class:

- ``hinge_rank`` (DeViSE, Frome et al. 2013): mean_i sum_{k != y_i} max(0, m - p + S_ik);
- ``hardest_hinge`` (structured SVM / SJE): mean_i max(0, m - p + max_{k != y_i} S_ik);
- ``triplet`` (FaceNet's squared Euclidean form on unit vectors, one sampled negative
  ``n_i``): mean_i max(0, m + |u_i - v_y|^2 - |u_i - v_n|^2) = mean_i max(0, m + 2 (S_in - p));
- ``cosine_contrastive``: mean_i (1 - p) + mean_{k != y_i} max(0, S_ik - m);
- ``align_only``: mean_i (1 - p), the bare "discrepancy" term. Every image and class
  mapped to one constant vector scores 0: it collapses. Also the optional extra pull
  of any objective (``two_tower.align_weight``);
- ``softmax_ce``: cross-entropy of ``scale * S``. A cross-entropy, so outside the
  assignment's Part II rule; kept only for comparison.
"""

from __future__ import annotations

import numpy as np

from doodlelab.nn.losses import SoftmaxCrossEntropy


def sample_negatives(y: np.ndarray, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Return one class index per label (B,), uniform over the K - 1 classes other than ``y``."""
    return (y + rng.integers(1, n_classes, size=y.shape[0])) % n_classes


def _own(s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Return (B, K) bool, True at each row's own class."""
    mask = np.zeros(s.shape, dtype=bool)
    mask[np.arange(y.shape[0]), y] = True
    return mask


class EmbeddingObjective:
    """Base of the objectives: caches S's shape and dtype, and the gradient arrays they need."""

    name = ""
    active = 0.0  # fraction of the terms that were non-zero in the last forward

    def __init__(self, margin: float = 0.0) -> None:
        self.margin = margin

    def _start(self, s: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Remember shape, dtype and labels; return the own-class mask (B, K)."""
        self._shape, self._dtype, self._y = s.shape, s.dtype, y
        return _own(s, y)

    def _zeros(self) -> np.ndarray:
        return np.zeros(self._shape, dtype=self._dtype)

    def _per_image(self) -> np.floating:
        return self._dtype.type(1.0 / self._shape[0])

    def _pair_fraction(self) -> float:
        """Return the share of the B (K - 1) (image, wrong class) terms that are active."""
        return float(self._on.sum() / (self._shape[0] * (self._shape[1] - 1)))


class HingeRank(EmbeddingObjective):
    """DeViSE's ranking hinge: every other class must score ``margin`` below the own class."""

    name = "hinge_rank"

    def forward(self, s: np.ndarray, y: np.ndarray) -> float:
        """Return mean_i sum_{k != y_i} max(0, m - S_iy + S_ik); caches the active hinges."""
        own = self._start(s, y)
        hinge = s.dtype.type(self.margin) - s[own][:, None] + s  # (B, K)
        self._on = (hinge > 0) & ~own
        self.active = self._pair_fraction()
        return float(np.where(self._on, hinge, 0).sum(dtype=np.float64) / s.shape[0])

    def backward(self) -> np.ndarray:
        """Return dLoss/dS (B, K): 1/B on each active hinge, minus their sum on the own class."""
        grad = self._on.astype(self._dtype) * self._per_image()
        grad[np.arange(self._shape[0]), self._y] = -grad.sum(axis=1)
        return grad


class _OneNegativeHinge(EmbeddingObjective):
    """A hinge on one wrong class n_i per image: mean_i max(0, m + slope * (S_in - S_iy))."""

    slope = 1.0

    def _negatives(self, s: np.ndarray, own: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def forward(self, s: np.ndarray, y: np.ndarray) -> float:
        """Return the mean hinge over the batch; caches each image's wrong class and active hinges."""
        own = self._start(s, y)
        rows = np.arange(y.shape[0])
        self._neg = self._negatives(s, own)  # (B,)
        hinge = s.dtype.type(self.margin) + s.dtype.type(self.slope) * (s[rows, self._neg] - s[rows, y])
        self._on = hinge > 0
        self.active = float(self._on.mean())
        return float(np.where(self._on, hinge, 0).sum(dtype=np.float64) / s.shape[0])

    def backward(self) -> np.ndarray:
        """Return dLoss/dS (B, K): slope/B at the wrong class and -slope/B at the own, where active."""
        rows = np.arange(self._shape[0])
        on = self._on.astype(self._dtype) * (self._dtype.type(self.slope) * self._per_image())
        grad = self._zeros()
        grad[rows, self._neg] += on
        grad[rows, self._y] -= on
        return grad


class HardestHinge(_OneNegativeHinge):
    """The structured-SVM hinge: only the most similar wrong class must stay ``margin`` below.

    mean_i max(0, m - S_iy + max_{k != y_i} S_ik).
    """

    name = "hardest_hinge"

    def _negatives(self, s: np.ndarray, own: np.ndarray) -> np.ndarray:
        return np.where(own, -np.inf, s).argmax(axis=1)


class Triplet(_OneNegativeHinge):
    """FaceNet's triplet on unit vectors, one negative class per image drawn from ``rng``.

    With unit rows ``|u - v|^2 = 2 - 2 cos``, so the squared-distance triplet
    mean_i max(0, m + |u_i - v_y|^2 - |u_i - v_n|^2) is mean_i max(0, m + 2 (S_in - S_iy)).
    A fresh negative is drawn at every ``forward``.
    """

    name = "triplet"
    slope = 2.0

    def __init__(self, margin: float, rng: np.random.Generator) -> None:
        super().__init__(margin)
        self.rng = rng

    def _negatives(self, s: np.ndarray, own: np.ndarray) -> np.ndarray:
        return sample_negatives(self._y, s.shape[1], self.rng)


def expected_triplet(s: np.ndarray, y: np.ndarray, margin: float) -> tuple[float, float]:
    """Return (loss, active) of :class:`Triplet` averaged over every wrong class, not one drawn.

    mean_i mean_{n != y_i} max(0, m + 2 (S_in - S_iy)) is what the sampled loss estimates,
    without its sampling noise, so a split scores the same however it is cut into chunks
    or shared among processes. ``active``: the fraction of (image, wrong class) hinges > 0.
    """
    rows = np.arange(y.shape[0])
    hinge = margin + 2.0 * (s - s[rows, y][:, None])  # (B, K)
    on = (hinge > 0) & ~_own(s, y)
    pairs = max(y.shape[0] * (s.shape[1] - 1), 1)
    return float(np.where(on, hinge, 0).sum(dtype=np.float64) / pairs), float(on.sum() / pairs)


class CosineContrastive(EmbeddingObjective):
    """Pull the own cosine to 1 and push every other cosine below ``margin`` (the delta)."""

    name = "cosine_contrastive"

    def forward(self, s: np.ndarray, y: np.ndarray) -> float:
        """Return mean_i [(1 - S_iy) + mean_{k != y_i} max(0, S_ik - m)]."""
        own = self._start(s, y)
        push = s - s.dtype.type(self.margin)  # (B, K)
        self._on = (push > 0) & ~own
        self.active = self._pair_fraction()
        pull = (1 - s[own]).sum(dtype=np.float64)
        pushed = np.where(self._on, push, 0).sum(dtype=np.float64) / (s.shape[1] - 1)
        return float((pull + pushed) / s.shape[0])

    def backward(self) -> np.ndarray:
        """Return dLoss/dS (B, K): 1/(B(K-1)) on each active push, -1/B on the own class."""
        grad = self._on.astype(self._dtype) * (self._per_image() / self._dtype.type(self._shape[1] - 1))
        grad[np.arange(self._shape[0]), self._y] = -self._per_image()
        return grad


class AlignOnly(EmbeddingObjective):
    """The bare discrepancy mean_i (1 - S_iy): pulls each image to its class, pushes nothing."""

    name = "align_only"

    def forward(self, s: np.ndarray, y: np.ndarray) -> float:
        """Return mean_i (1 - S_iy)."""
        own = self._start(s, y)
        gap = 1 - s[own]  # (B,)
        self.active = float((gap > 0).mean())
        return float(gap.sum(dtype=np.float64) / s.shape[0])

    def backward(self) -> np.ndarray:
        """Return dLoss/dS (B, K): -1/B on the own class, 0 elsewhere."""
        grad = self._zeros()
        grad[np.arange(self._shape[0]), self._y] = -self._per_image()
        return grad


class SoftmaxCE(EmbeddingObjective):
    """Cross-entropy of ``scale * S`` (a cross-entropy: outside Part II's rule, for comparison only).

    Every term of a cross-entropy is non-zero, so ``active`` is always 1.
    """

    name = "softmax_ce"

    def __init__(self, scale: float, label_smoothing: float = 0.0) -> None:
        self.scale = scale
        self.ce = SoftmaxCrossEntropy(label_smoothing)

    def forward(self, s: np.ndarray, y: np.ndarray) -> float:
        """Return the mean cross-entropy of the logits ``scale * S`` (B, K)."""
        self._start(s, y)
        self.active = 1.0
        return self.ce.forward(s.dtype.type(self.scale) * s, y)

    def backward(self) -> np.ndarray:
        """Return dLoss/dS = scale * (softmax - onehot) / B, (B, K)."""
        return self._dtype.type(self.scale) * self.ce.backward()


OBJECTIVES = ("hinge_rank", "hardest_hinge", "triplet", "cosine_contrastive", "align_only",
              "softmax_ce")


def make_objective(name: str, *, margin: float, scale: float, rng: np.random.Generator,
                   label_smoothing: float = 0.0) -> EmbeddingObjective:
    """Return the objective called ``name`` (one of :data:`OBJECTIVES`)."""
    if name == "hinge_rank":
        return HingeRank(margin)
    if name == "hardest_hinge":
        return HardestHinge(margin)
    if name == "triplet":
        return Triplet(margin, rng)
    if name == "cosine_contrastive":
        return CosineContrastive(margin)
    if name == "align_only":
        return AlignOnly()
    if name == "softmax_ce":
        return SoftmaxCE(scale, label_smoothing)
    raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")


def class_cosine(v: np.ndarray) -> float:
    """Return the mean cosine between distinct rows of unit-row class embeddings v (K, E)."""
    k = v.shape[0]
    gram = np.asarray(v, np.float64) @ np.asarray(v, np.float64).T  # (K, K)
    return float((gram.sum() - np.trace(gram)) / (k * (k - 1)))
