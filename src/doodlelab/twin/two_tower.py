"""The two-tower classifier on PyTorch: the twin of :class:`doodlelab.tasks.two_tower.NumpyTwoTower`.

Same towers (built in numpy from the run's init stream and copied), same dropout
masks (drawn from the run's dropout stream), the same objective on the cosines
(:mod:`doodlelab.twin.embedding_losses`, differentiated by autograd; the triplet's
negatives drawn from the run's negatives stream), and ``torch.optim.SGD``.
"""

from __future__ import annotations

import numpy as np
import torch

from doodlelab.config import Config
from doodlelab.geometry import N_PIXELS
from doodlelab.kinds import TWO_TOWER, Kind
from doodlelab.tasks.streams import Streams
from doodlelab.tasks.two_tower import build_towers, embedding_scores
from doodlelab.twin.base import TorchTask, configure_threads, torch_threads
from doodlelab.twin.embedding_losses import Objective, align_only
from doodlelab.twin.losses import l2_penalty
from doodlelab.twin.modules import from_numpy, torch_dtype


class TorchTowers(torch.nn.Module):
    """The image and word towers as one module: parameters ``image.*`` and ``text.*``."""

    def __init__(self, image: torch.nn.Module, text: torch.nn.Module) -> None:
        super().__init__()
        self.image, self.text = image, text

    def forward(self, images: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """Return the cosines (B, K) of images (B, 784) and word vectors (K, D), both towers applied."""
        return self.image(images) @ self.text(vectors).T


class TorchTwoTower(TorchTask):
    """Image and word-vector MLPs trained with torch autograd and ``torch.optim.SGD``."""

    kind: Kind = TWO_TOWER

    def __init__(self, cfg: Config, streams: Streams, class_vectors: np.ndarray,
                 dtype: np.dtype | type = np.float32, device: torch.device | str = "cpu") -> None:
        configure_threads()
        self.device = torch.device(device)
        self.cfg = cfg
        self.np_dtype = np.dtype(dtype)
        self.dtype = torch_dtype(dtype)
        vectors = np.ascontiguousarray(class_vectors, dtype=self.np_dtype)
        if vectors.ndim != 2 or vectors.shape[0] < 2:
            raise ValueError(f"class_vectors must be (K >= 2, D), got {vectors.shape}")
        self.class_vectors = torch.from_numpy(vectors).to(self.device)  # (K, D)
        self.n_classes = vectors.shape[0]
        towers = build_towers(cfg, vectors.shape[1], rng=streams.init, dropout_rng=streams.dropout,
                              dtype=self.np_dtype)
        self.model = TorchTowers(from_numpy(towers.image), from_numpy(towers.text)).to(self.device)
        self.widths = (N_PIXELS, *cfg.model.hidden, cfg.two_tower.embed_dim)
        t = cfg.two_tower
        self.objective = Objective(t.loss, margin=t.margin, scale=t.logit_scale, rng=streams.negatives,
                                   label_smoothing=cfg.train.label_smoothing)
        self.loss_terms: dict[str, float] = {}
        self._setup_optimizer()

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """One SGD step on (B, 784), (B,); return (objective, number correct)."""
        with torch_threads(self.threads(len(y))):
            objective, logits = self.compute_gradients(x, y)
            self.optimizer.step()
        return objective, int((logits.argmax(axis=1) == y).sum())

    def batch_network(self) -> torch.nn.Module:
        """Return the image tower: the word tower sees the same K class vectors in every process."""
        return self.model.image

    def set_batch_shard(self, n: int, rows: slice) -> None:
        """Say that the next batch is rows ``rows`` of a global batch of ``n`` (dropout and negatives)."""
        super().set_batch_shard(n, rows)
        self.objective.shard = (n, rows)

    def compute_gradients(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Set ``.grad`` of every parameter; return (objective, scores = logit_scale * S (B, K)).

        Under DistributedDataParallel the batch's terms are weighted by this process's share
        (:meth:`data_term`) and the returned objective is this process's own batch mean.
        """
        t = self.cfg.two_tower
        labels = self._labels(y)
        self.model.train()
        self.optimizer.zero_grad()
        s = (self.model if self.trainer is None else self.trainer)(self._tensor(x), self.class_vectors)
        terms = self._batch_terms(s, labels)
        data = terms[t.loss] + t.align_weight * terms["align"] if t.align_weight else terms[t.loss]
        objective = self.data_term(data, s)
        penalty = l2_penalty(self.model, self.cfg.optim.l2) if self.cfg.optim.l2 else None
        if penalty is not None:
            terms["l2"] = penalty
            objective = objective + penalty
        objective.backward()
        self.loss_terms = {k: float(v.item()) for k, v in terms.items()}
        if self.trainer is None:
            value = objective.item()
        else:  # this process's own batch objective, not the weighted share it back-propagated
            value = data.item() + (penalty.item() if penalty is not None else 0.0)
        return float(value), t.logit_scale * s.detach().cpu().numpy()

    def _batch_terms(self, s: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the objective's terms of the batch (zeros, still in the graph, for an empty share)."""
        t = self.cfg.two_tower
        if labels.shape[0] == 0:
            if t.loss == "triplet":
                self.objective.negatives(np.zeros(0, dtype=np.int64), s.shape[1])
            zero = s.sum() * 0.0
            return {t.loss: zero, **({"align": zero} if t.align_weight else {})}
        terms = {t.loss: self.objective(s, labels)}
        if t.align_weight:
            terms["align"] = align_only(s, labels)
        return terms

    def class_embeddings(self, class_vectors: np.ndarray | None = None) -> np.ndarray:
        """Return the eval-mode word-tower embeddings (K, E) of ``class_vectors`` (default: the classes)."""
        vectors = self.class_vectors if class_vectors is None else self._tensor(class_vectors)
        self.model.eval()
        with torch.inference_mode():
            return self.model.text(vectors).cpu().numpy()

    def embed(self, x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        """Return eval-mode image embeddings (N, E), unit rows, for images (N, 784)."""
        self.model.eval()
        with torch.inference_mode(), torch_threads(self.threads(min(batch_size, max(len(x), 1)))):
            out = [self.model.image(self._tensor(x[i : i + batch_size])).cpu().numpy()
                   for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.cfg.two_tower.embed_dim), self.np_dtype)

    def logits(self, x: np.ndarray, class_vectors: np.ndarray | None = None) -> np.ndarray:
        """Return ``logit_scale * cos`` (N, K) of images against the classes' (or given) vectors."""
        v = self.class_embeddings(class_vectors)
        return self.np_dtype.type(self.cfg.two_tower.logit_scale) * (self.embed(x) @ v.T)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Return eval-mode scores on images (N, 784), labels (N,), computed as the core does."""
        return embedding_scores(self.cfg, self.embed(x), self.class_embeddings(), y)

    def input_gradient(self, x: np.ndarray, k: int) -> np.ndarray:
        """Return d logit_k / d x (N, 784) in eval mode, by autograd (the core's backward twin)."""
        v = torch.from_numpy(self.class_embeddings()[k]).to(self.device)  # (E,), no gradient
        images = self._tensor(x).clone().requires_grad_(True)
        self.model.eval()
        (self.cfg.two_tower.logit_scale * (self.model.image(images) @ v)).sum().backward()
        self.model.zero_grad(set_to_none=True)
        return images.grad.cpu().numpy()
