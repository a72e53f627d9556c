"""The two-tower classifier on PyTorch: the twin of :class:`doodlelab.tasks.two_tower.NumpyTwoTower`.

Same towers (built in numpy from the run's init stream and copied), same dropout
masks (drawn from the run's dropout stream), the same loss terms, written as plain
tensor expressions that autograd differentiates, and ``torch.optim.SGD``.
"""

from __future__ import annotations

import numpy as np
import torch

from doodlelab.config import Config
from doodlelab.tasks.mlp import N_INPUTS
from doodlelab.tasks.streams import Streams
from doodlelab.tasks.two_tower import build_towers
from doodlelab.twin.base import TorchTask, configure_threads, torch_threads
from doodlelab.twin.losses import SoftmaxCrossEntropy, l2_penalty
from doodlelab.twin.modules import from_numpy, torch_dtype


class TorchTowers(torch.nn.Module):
    """The image and word towers as one module: parameters ``image.*`` and ``text.*``."""

    def __init__(self, image: torch.nn.Module, text: torch.nn.Module) -> None:
        super().__init__()
        self.image, self.text = image, text


class TorchTwoTower(TorchTask):
    """Image and word-vector MLPs trained with torch autograd and ``torch.optim.SGD``."""
    task = "two_tower"

    def __init__(self, cfg: Config, streams: Streams, class_vectors: np.ndarray,
                 dtype: np.dtype | type = np.float32) -> None:
        configure_threads()
        self.cfg = cfg
        self.np_dtype = np.dtype(dtype)
        self.dtype = torch_dtype(dtype)
        vectors = np.ascontiguousarray(class_vectors, dtype=self.np_dtype)
        if vectors.ndim != 2 or vectors.shape[0] < 2:
            raise ValueError(f"class_vectors must be (K >= 2, D), got {vectors.shape}")
        self.class_vectors = torch.from_numpy(vectors)  # (K, D)
        towers = build_towers(cfg, vectors.shape[1], rng=streams.init, dropout_rng=streams.dropout,
                              dtype=self.np_dtype)
        self.model = TorchTowers(from_numpy(towers.image), from_numpy(towers.text))
        self.widths = (N_INPUTS, *cfg.model.hidden, cfg.two_tower.embed_dim)
        self.loss = SoftmaxCrossEntropy(cfg.train.label_smoothing)
        self.loss_terms: dict[str, float] = {}
        self._setup_optimizer()

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """One SGD step on (B, 784), (B,); return (objective, number correct)."""
        with torch_threads(self.threads(len(y))):
            objective, logits = self.compute_gradients(x, y)
            self.optimizer.step()
        return objective, int((logits.argmax(axis=1) == y).sum())

    def compute_gradients(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Set ``.grad`` of every parameter; return (objective, logits (B, K)) like the core."""
        t = self.cfg.two_tower
        labels = torch.from_numpy(np.require(y, dtype=np.int64, requirements=["C", "W"]))
        self.model.train()
        self.optimizer.zero_grad()
        u = self.model.image(self._tensor(x))  # (B, E)
        v = self.model.text(self.class_vectors)  # (K, E)
        logits = t.logit_scale * (u @ v.T)
        ce = self.loss(logits, labels)
        objective = ce
        terms = {"ce": ce}
        if t.align_weight:
            terms["align"] = (1.0 - (u * v[labels]).sum(dim=1)).mean()
            objective = objective + t.align_weight * terms["align"]
        if self.cfg.optim.l2:
            terms["l2"] = l2_penalty(self.model, self.cfg.optim.l2)
            objective = objective + terms["l2"]
        objective.backward()
        self.loss_terms = {k: float(v.item()) for k, v in terms.items()}
        return float(objective.item()), logits.detach().numpy()

    def class_embeddings(self, class_vectors: np.ndarray | None = None) -> np.ndarray:
        """Return the eval-mode word-tower embeddings (K, E) of ``class_vectors`` (default: the classes)."""
        vectors = self.class_vectors if class_vectors is None else self._tensor(class_vectors)
        self.model.eval()
        with torch.inference_mode():
            return self.model.text(vectors).numpy()

    def embed(self, x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        """Return eval-mode image embeddings (N, E), unit rows, for images (N, 784)."""
        self.model.eval()
        with torch.inference_mode(), torch_threads(self.threads(min(batch_size, max(len(x), 1)))):
            out = [self.model.image(self._tensor(x[i : i + batch_size])).numpy()
                   for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.cfg.two_tower.embed_dim), self.np_dtype)

    def logits(self, x: np.ndarray, class_vectors: np.ndarray | None = None) -> np.ndarray:
        """Return ``logit_scale * cos`` (N, K) of images against the classes' (or given) vectors."""
        v = self.class_embeddings(class_vectors)
        return self.np_dtype.type(self.cfg.two_tower.logit_scale) * (self.embed(x) @ v.T)

    def input_gradient(self, x: np.ndarray, k: int) -> np.ndarray:
        """Return d logit_k / d x (N, 784) in eval mode, by autograd (the core's backward twin)."""
        v = torch.from_numpy(self.class_embeddings()[k])  # (E,), no gradient
        images = self._tensor(x).clone().requires_grad_(True)
        self.model.eval()
        (self.cfg.two_tower.logit_scale * (self.model.image(images) @ v)).sum().backward()
        self.model.zero_grad(set_to_none=True)
        return images.grad.numpy()
