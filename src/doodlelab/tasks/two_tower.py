"""The word-embedding ("two-tower") classifier on the numpy core.

Two MLPs map into one ``embed_dim``-dimensional space, each ending in a row-wise
:class:`~doodlelab.nn.L2Normalize`:

- the image tower ``f``: (B, 784) -> (B, E), built like the classifier's MLP;
- the word tower ``g``: (K, D) -> (K, E), fed the word vectors (GloVe) of the K
  class names.

``S = f(x) g(w)^T`` (B, K) holds the cosines of every image with every class. The
loss is an objective on S (``two_tower.loss``, :mod:`doodlelab.nn.embedding_losses`;
by default DeViSE's ranking hinge, no cross-entropy), plus optional extra terms:

    objective(S, y)                                  # e.g. sum_k max(0, m - S_iy + S_ik)
    + align_weight * mean(1 - S_iy)                  # extra pull of each image to its class
    + l2/2 * sum W^2                                 # penalty on weight matrices

Each term is reported separately (:attr:`NumpyTwoTower.loss_terms`) so the fit loop
can log and plot it. The prediction is the most similar class; the scores are
``logit_scale * S``. Because the word tower takes any word vector, the same model
scores class names it never saw in training (zero-shot): pass their vectors to
:meth:`NumpyTwoTower.logits`.

The task interface is the classifier's (``set_lr``, ``train_batch``, ``logits``,
``evaluate``, ``state_dict``, ``load_state_dict``), so :func:`doodlelab.training.fit.fit` drives both.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from doodlelab.config import Config
from doodlelab.geometry import N_PIXELS
from doodlelab.kinds import TWO_TOWER, Kind
from doodlelab.nn import L2Normalize, Module, Sequential, l2_penalty
from doodlelab.nn.embedding_losses import (
    AlignOnly,
    EmbeddingObjective,
    class_cosine,
    expected_triplet,
    make_objective,
)
from doodlelab.tasks.base import NumpyTask
from doodlelab.tasks.mlp import build_mlp
from doodlelab.tasks.streams import Streams
from doodlelab.tasks.threads import blas_threads


class Towers(Module):
    """The two towers as one module, so parameters are named ``image.*`` and ``text.*``."""

    def __init__(self, image: Sequential, text: Sequential) -> None:
        super().__init__()
        self.image, self.text = image, text

    def children(self) -> list[tuple[str, Module]]:
        return [("image", self.image), ("text", self.text)]


def build_towers(cfg: Config, word_dim: int, *, rng: np.random.Generator,
                 dropout_rng: np.random.Generator, dtype: np.dtype | type = np.float32) -> Towers:
    """Return the image tower (B, 784) -> (B, E) and the word tower (K, D) -> (K, E), both unit-length.

    The image tower is drawn first from ``rng``, then the word tower (no dropout:
    it sees only the K class vectors).
    """
    t = cfg.two_tower
    image = build_mlp(cfg.model, rng=rng, dropout_rng=dropout_rng, n_in=N_PIXELS,
                      n_out=t.embed_dim, dtype=dtype)
    text_cfg = replace(cfg.model, hidden=t.text_hidden, dropout=0.0, input_dropout=0.0)
    text = build_mlp(text_cfg, rng=rng, dropout_rng=dropout_rng, n_in=word_dim,
                     n_out=t.embed_dim, dtype=dtype)
    return Towers(Sequential(*image.layers, L2Normalize()), Sequential(*text.layers, L2Normalize()))


def objective_for(cfg: Config, rng: np.random.Generator) -> EmbeddingObjective:
    """Return the configured objective ``cfg.two_tower.loss`` (its negatives drawn from ``rng``)."""
    t = cfg.two_tower
    return make_objective(t.loss, margin=t.margin, scale=t.logit_scale, rng=rng,
                          label_smoothing=cfg.train.label_smoothing)


def embedding_scores(cfg: Config, u: np.ndarray, v: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Return the scores of unit image rows u (N, E) against unit class rows v (K, E), labels (N,).

    ``loss``: the objective plus ``align_weight`` times the align term (the data part of
    the training objective, without the weight penalty); ``accuracy``; ``active``: the
    objective's fraction of non-zero terms; ``class_cosine``: the mean cosine between
    distinct class embeddings (near 1 = collapsed); and each term of ``loss``, unweighted, as
    ``term_<name>`` (the objective's name, and ``align`` when it is weighted in), as the
    training batches report theirs, so both splits can show the terms that add up to the loss.
    """
    s = np.asarray(u, np.float64) @ np.asarray(v, np.float64).T  # (N, K)
    if cfg.two_tower.loss == "triplet":  # every wrong class, not a drawn one: no sampling noise
        value, active = expected_triplet(s, y, cfg.two_tower.margin)
    else:
        objective = objective_for(cfg, np.random.default_rng(0))  # (the others draw nothing)
        value, active = objective.forward(s, y), objective.active
    terms = {f"term_{cfg.two_tower.loss}": float(value)}
    loss = value
    if cfg.two_tower.align_weight:
        terms["term_align"] = float(AlignOnly().forward(s, y))
        loss += cfg.two_tower.align_weight * terms["term_align"]
    return {"loss": loss, "accuracy": float((s.argmax(axis=1) == y).mean()),
            "active": active, "class_cosine": class_cosine(v), **terms}


class NumpyTwoTower(NumpyTask):
    """Image and word-vector MLPs trained with the from-scratch backprop and SGD."""

    kind: Kind = TWO_TOWER

    def __init__(self, cfg: Config, streams: Streams, class_vectors: np.ndarray,
                 dtype: np.dtype | type = np.float32) -> None:
        self.cfg = cfg
        self.dtype = np.dtype(dtype)
        self.class_vectors = np.ascontiguousarray(class_vectors, dtype=self.dtype)  # (K, D)
        if self.class_vectors.ndim != 2 or self.class_vectors.shape[0] < 2:
            raise ValueError(f"class_vectors must be (K >= 2, D), got {self.class_vectors.shape}")
        self.n_classes, self.word_dim = self.class_vectors.shape
        self.model = build_towers(cfg, self.word_dim, rng=streams.init,
                                  dropout_rng=streams.dropout, dtype=dtype)
        self.widths = (N_PIXELS, *cfg.model.hidden, cfg.two_tower.embed_dim)
        self.objective = objective_for(cfg, streams.negatives)
        self.align = AlignOnly()
        self.loss_terms: dict[str, float] = {}
        self._setup_optimizer()

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """One SGD step on (B, 784), (B,); return (objective, number correct)."""
        x = np.asarray(x, dtype=self.dtype)
        with blas_threads(self.threads(x.shape[0])):
            objective, logits = self.compute_gradients(x, y)
            # Every gradient is complete before any parameter moves.
            self.optimizer.step()
        return objective, int((logits.argmax(axis=1) == y).sum())

    def compute_gradients(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Set the gradients of the objective on (B, 784), (B,); return (objective, scores (B, K)).

        Also sets :attr:`loss_terms`: the objective's value under its name, and
        ``align`` / ``l2`` when weighted.
        """
        x = np.asarray(x, dtype=self.dtype)
        self.model.train()
        u = self.model.image.forward(x)  # (B, E), unit rows
        v = self.model.text.forward(self.class_vectors)  # (K, E), unit rows
        s = u @ v.T  # (B, K) cosines
        total, ds = self.objective_terms(s, y)
        # S = U V^T, so dU = dS V and dV = dS^T U. The two towers hold every parameter, and
        # each tower's gradients are set to this batch's (no zero_grad needed).
        self.model.image.backward(ds @ v, input_grad=False, accumulate=False)  # images need no gradient
        self.model.text.backward(ds.T @ u, input_grad=False, accumulate=False)  # nor the word vectors
        l2 = l2_penalty(self.model, self.cfg.optim.l2)
        if self.cfg.optim.l2:
            self.loss_terms["l2"] = l2
        return total + l2, self.dtype.type(self.cfg.two_tower.logit_scale) * s

    def objective_terms(self, s: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Return (objective + align_weight * align, its gradient dS (B, K)) and set :attr:`loss_terms`."""
        w = self.cfg.two_tower.align_weight
        value = self.objective.forward(s, y)
        ds = self.objective.backward()
        self.loss_terms = {self.objective.name: value}
        if w:
            self.loss_terms["align"] = self.align.forward(s, y)
            ds += self.dtype.type(w) * self.align.backward()
            value += w * self.loss_terms["align"]
        return value, ds

    def class_embeddings(self, class_vectors: np.ndarray | None = None) -> np.ndarray:
        """Return the eval-mode word-tower embeddings (K, E) of ``class_vectors`` (default: the classes)."""
        vectors = self.class_vectors if class_vectors is None else np.asarray(class_vectors, self.dtype)
        self.model.eval()
        return self.model.text.forward(vectors)

    def embed(self, x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        """Return eval-mode image embeddings (N, E), unit rows, for images (N, 784)."""
        self.model.eval()
        x = np.asarray(x, dtype=self.dtype)
        with blas_threads(self.threads(min(batch_size, max(x.shape[0], 1)))):
            out = [self.model.image.forward(x[i : i + batch_size])
                   for i in range(0, x.shape[0], batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.cfg.two_tower.embed_dim), self.dtype)

    def logits(self, x: np.ndarray, class_vectors: np.ndarray | None = None) -> np.ndarray:
        """Return ``logit_scale * cos`` (N, K) of images (N, 784) against the classes' (or given) vectors."""
        v = self.class_embeddings(class_vectors)
        return self.dtype.type(self.cfg.two_tower.logit_scale) * (self.embed(x) @ v.T)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Return eval-mode scores on images (N, 784), labels (N,): see :func:`embedding_scores`."""
        return embedding_scores(self.cfg, self.embed(x), self.class_embeddings(), y)

    def input_gradient(self, x: np.ndarray, k: int) -> np.ndarray:
        """Return d logit_k / d x (N, 784) in eval mode, by the core's own backward pass.

        ``logit_k = s * u . v_k`` with ``u`` the image embedding, so the gradient at
        ``u`` is ``s * v_k``; the image tower's backward carries it to the pixels.
        """
        x = np.asarray(x, dtype=self.dtype)
        v = self.class_embeddings()[k]  # (E,), eval mode
        u = self.model.image.forward(x)  # (N, E)
        du = np.broadcast_to(self.dtype.type(self.cfg.two_tower.logit_scale) * v, u.shape)
        dx = self.model.image.backward(np.ascontiguousarray(du))  # (N, 784)
        self.model.zero_grad()
        return dx
