"""The word-embedding ("two-tower") classifier on the numpy core.

Two MLPs map into one ``embed_dim``-dimensional space, each ending in a row-wise
:class:`~doodlelab.nn.L2Normalize`:

- the image tower ``f``: (B, 784) -> (B, E), built like the classifier's MLP;
- the word tower ``g``: (K, D) -> (K, E), fed the word vectors (GloVe) of the K
  class names.

The logits of an image are ``s * cos(f(x), g(w_k))`` for every class k (``s`` =
``two_tower.logit_scale``), and the loss is

    cross-entropy(logits, y)                        # pull to its class, push from the rest
    + align_weight * mean(1 - cos(f(x), g(w_y)))    # optional extra pull to its own class
    + l2/2 * sum W^2                                 # optional penalty on weight matrices

Each term is reported separately (:attr:`NumpyTwoTower.loss_terms`) so the fit loop
can log and plot it. The prediction is the most similar class. Because the word
tower takes any word vector, the same model scores class names it never saw in
training (zero-shot): pass their vectors to :meth:`NumpyTwoTower.logits`.

The task interface is the classifier's (``set_lr``, ``train_batch``, ``logits``,
``state_dict``, ``load_state_dict``), so :func:`doodlelab.train.fit` drives both.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from doodlelab.config import Config
from doodlelab.nn import L2Normalize, Module, Sequential, SoftmaxCrossEntropy, l2_penalty
from doodlelab.tasks.base import NumpyTask
from doodlelab.tasks.mlp import N_INPUTS, build_mlp
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
    image = build_mlp(cfg.model, rng=rng, dropout_rng=dropout_rng, n_in=N_INPUTS,
                      n_out=t.embed_dim, dtype=dtype)
    text_cfg = replace(cfg.model, hidden=t.text_hidden, dropout=0.0, input_dropout=0.0)
    text = build_mlp(text_cfg, rng=rng, dropout_rng=dropout_rng, n_in=word_dim,
                     n_out=t.embed_dim, dtype=dtype)
    return Towers(Sequential(*image.layers, L2Normalize()), Sequential(*text.layers, L2Normalize()))


class NumpyTwoTower(NumpyTask):
    """Image and word-vector MLPs trained with the from-scratch backprop and SGD."""
    task = "two_tower"

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
        self.widths = (N_INPUTS, *cfg.model.hidden, cfg.two_tower.embed_dim)
        self.loss = SoftmaxCrossEntropy(cfg.train.label_smoothing)
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
        """Set the gradients of the objective on (B, 784), (B,); return (objective, logits (B, K)).

        Also sets :attr:`loss_terms` (``ce``, and ``align`` / ``l2`` when weighted).
        """
        x = np.asarray(x, dtype=self.dtype)
        t = self.cfg.two_tower
        scale = self.dtype.type(t.logit_scale)
        self.model.train()
        self.optimizer.zero_grad()
        u = self.model.image.forward(x)  # (B, E), unit rows
        v = self.model.text.forward(self.class_vectors)  # (K, E), unit rows
        logits = scale * (u @ v.T)  # (B, K) scaled cosines
        ce = self.loss.forward(logits, y)
        dlogits = self.loss.backward()  # (B, K)
        du = scale * (dlogits @ v)  # (B, E)
        dv = scale * (dlogits.T @ u)  # (K, E)
        terms = {"ce": ce}
        if t.align_weight:
            own = v[y]  # (B, E): each image's class embedding
            terms["align"] = float(np.mean(1.0 - (u * own).sum(axis=1)))
            # d/du_i of -w/B * sum_i u_i . v_{y_i} is -w/B * v_{y_i}; d/dv_k is the sum
            # of -w/B * u_i over the images of class k (a one-hot product).
            coef = self.dtype.type(t.align_weight / x.shape[0])
            du -= coef * own
            onehot = np.zeros((x.shape[0], self.n_classes), dtype=self.dtype)
            onehot[np.arange(x.shape[0]), y] = 1
            dv -= coef * (onehot.T @ u)
        self.model.image.backward(du, input_grad=False)  # images need no gradient
        self.model.text.backward(dv, input_grad=False)  # nor the fixed word vectors
        l2 = l2_penalty(self.model, self.cfg.optim.l2)
        if self.cfg.optim.l2:
            terms["l2"] = l2
        self.loss_terms = terms
        return ce + t.align_weight * terms.get("align", 0.0) + l2, logits

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
