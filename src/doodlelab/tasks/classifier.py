"""The softmax classifier on the numpy core: MLP + fused softmax cross-entropy + SGD.

A *task* is what the fit loop in :mod:`doodlelab.train` drives. It owns the model,
loss and optimizer of one backend and answers four questions: train on this batch,
give logits for these images, hand me your weights, take these weights. The torch
twin (:mod:`doodlelab.twin.classifier`) implements the same methods.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from doodlelab.config import Config, ModelConfig
from doodlelab.nn import SGD, Dropout, Linear, Sequential, SoftmaxCrossEntropy, l2_penalty
from doodlelab.nn.modules import ACTIVATIONS, Module

N_INPUTS = 784
N_CLASSES = 5


@dataclass
class Streams:
    """The independent random streams of one run, all derived from ``train.seed``.

    Both backends draw initial weights, dropout masks, batch order and augmentation
    from these numpy Generators, so a numpy run and its torch twin see the same
    randomness.
    """

    init: np.random.Generator
    dropout: np.random.Generator
    shuffle: np.random.Generator
    augment: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int) -> Streams:
        """Return the four streams for ``seed`` (SeedSequence keeps them independent)."""
        return cls(*(np.random.default_rng([seed, k]) for k in range(4)))


def build_mlp(
    cfg: ModelConfig,
    *,
    rng: np.random.Generator,
    dropout_rng: np.random.Generator,
    n_in: int = N_INPUTS,
    n_out: int = N_CLASSES,
    dtype: np.dtype | type = np.float32,
) -> Sequential:
    """Return ``[Dropout] Linear, act, [Dropout], ..., Linear``: (B, n_in) -> (B, n_out)."""
    act = ACTIVATIONS[cfg.activation]
    layers: list[Module] = []
    if cfg.input_dropout > 0:
        layers.append(Dropout(cfg.input_dropout, rng=dropout_rng))
    width = n_in
    for h in cfg.hidden:
        layers += [Linear(width, h, rng=rng, init=cfg.init, dtype=dtype), act()]
        if cfg.dropout > 0:
            layers.append(Dropout(cfg.dropout, rng=dropout_rng))
        width = h
    layers.append(Linear(width, n_out, rng=rng, init=cfg.init, dtype=dtype))
    return Sequential(*layers)


class NumpyClassifier:
    """MLP classifier trained with the from-scratch backprop and SGD."""

    backend = "numpy"

    def __init__(self, cfg: Config, streams: Streams, dtype: np.dtype | type = np.float32) -> None:
        self.cfg = cfg
        self.model = build_mlp(cfg.model, rng=streams.init, dropout_rng=streams.dropout, dtype=dtype)
        self.loss = SoftmaxCrossEntropy(cfg.train.label_smoothing)
        o = cfg.optim
        self.optimizer = SGD(
            self.model.parameters(),
            lr=o.lr,
            momentum=o.momentum,
            nesterov=o.nesterov,
            weight_decay=o.weight_decay,
        )

    def set_lr(self, lr: float) -> None:
        """Set the learning rate used by the next steps."""
        self.optimizer.lr = lr

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """One SGD step on (B, 784), (B,); return (objective, number correct)."""
        self.model.train()
        self.model.zero_grad()
        logits = self.model.forward(x)
        loss = self.loss.forward(logits, y)
        self.model.backward(self.loss.backward())
        loss += l2_penalty(self.model, self.cfg.optim.l2)
        # Every gradient is complete before any parameter moves.
        self.optimizer.step()
        return loss, int((logits.argmax(axis=1) == y).sum())

    def logits(self, x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        """Return eval-mode logits (N, 5) for images (N, 784)."""
        self.model.eval()
        out = [self.model.forward(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
        return np.concatenate(out) if out else np.zeros((0, N_CLASSES), np.float32)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Return copies of the weights in numpy layout (Linear weight is (in, out))."""
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Load weights in numpy layout."""
        self.model.load_state_dict(state)
