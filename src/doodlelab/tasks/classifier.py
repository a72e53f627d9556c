"""The softmax classifier on the numpy core: MLP + fused softmax cross-entropy + SGD.

A *task* is what the fit loop in :mod:`doodlelab.train` drives. It owns the model,
loss and optimizer of one backend and answers four questions: train on this batch,
give logits for these images, hand me your weights, take these weights. The torch
twin (:mod:`doodlelab.twin.classifier`) implements the same methods.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from doodlelab.config import Config, ModelConfig
from doodlelab.errors import UserError
from doodlelab.nn import SGD, Dropout, Linear, Sequential, SoftmaxCrossEntropy, l2_penalty, log_softmax
from doodlelab.nn.modules import ACTIVATIONS, Module

N_INPUTS = 784
N_CLASSES = 5

# One thread per this many FLOPs of the largest matrix product of a pass (see
# matmul_threads): a training batch of 64-128 images runs on one thread, the
# 2048-image evaluation batches on every usable CPU.
FLOPS_PER_THREAD = 200e6
THREADS_ENV = "DOODLELAB_THREADS"  # a positive integer here overrides the rule


def usable_cpus() -> int:
    """Return how many CPUs this process may use: its affinity, capped by ``OMP_NUM_THREADS``."""
    if hasattr(os, "sched_getaffinity"):
        cpus = max(1, len(os.sched_getaffinity(0)))
    else:
        cpus = max(1, os.cpu_count() or 1)
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        cpus = min(cpus, int(env))
    return cpus


def matmul_threads(rows: int, widths: Sequence[int], cpus: int | None = None) -> int:
    """Return the thread count for products of ``rows`` rows through layers ``widths``.

    The rule: one thread per ``FLOPS_PER_THREAD`` (200 MFLOP) of the largest product
    ``2 * rows * in * out``, at least 1 and at most the usable CPUs. Measured on the
    2-core machine this was tuned on (benchmarks/README.md): with both cores idle,
    two threads make any of these products ~1.9x faster; with another training run
    on the other core they make a batch-64/128 product 3-20x *slower* (OpenBLAS
    workers spin after each call, and two processes doing so fight over both
    cores). From ~400 MFLOP up (500+ images through 784-512) each thread has
    milliseconds of work and the loss is bounded (~1.5x) while the idle gain stays
    ~2x. So training batches run on one thread and 2048-image evaluation on every
    CPU. Torch's twin applies the same rule.

    ``DOODLELAB_THREADS=n`` in the environment forces ``n`` threads for every pass
    (e.g. 2 on a machine known to be otherwise idle).
    """
    forced = os.environ.get(THREADS_ENV, "").strip()
    if forced:
        if not forced.isdigit() or int(forced) < 1:
            raise UserError(f"{THREADS_ENV} must be a positive integer (got {forced!r})")
        return int(forced)
    largest = 2 * rows * max((a * b for a, b in zip(widths[:-1], widths[1:])), default=0)
    return max(1, min(cpus or usable_cpus(), int(largest // FLOPS_PER_THREAD)))


@lru_cache(maxsize=1)
def _blas_controller():  # type: ignore[no-untyped-def]
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


@contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` threads in every BLAS library loaded (numpy's included)."""
    with _blas_controller().limit(limits=n):
        yield


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
    negatives: np.random.Generator  # the triplet objective's sampled negative classes

    @classmethod
    def from_seed(cls, seed: int) -> Streams:
        """Return the five streams for ``seed`` (SeedSequence keeps them independent)."""
        return cls(*(np.random.default_rng([seed, k]) for k in range(5)))


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


def cross_entropy_scores(logits: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Return {"loss": mean cross-entropy, "accuracy"} of logits (N, C) against labels (N,)."""
    logp = log_softmax(logits.astype(np.float64))
    return {"loss": float(-logp[np.arange(y.shape[0]), y].mean()),
            "accuracy": float((logits.argmax(axis=1) == y).mean())}


class NumpyClassifier:
    """MLP classifier trained with the from-scratch backprop and SGD."""

    backend = "numpy"

    def __init__(self, cfg: Config, streams: Streams, dtype: np.dtype | type = np.float32,
                 n_classes: int = N_CLASSES) -> None:
        self.cfg = cfg
        self.dtype = np.dtype(dtype)
        self.n_classes = n_classes
        self.widths = (N_INPUTS, *cfg.model.hidden, n_classes)
        self.model = build_mlp(cfg.model, rng=streams.init, dropout_rng=streams.dropout,
                               n_out=n_classes, dtype=dtype)
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

    def threads(self, rows: int) -> int:
        """Return the BLAS thread count for passes of ``rows`` images (see :func:`matmul_threads`)."""
        return matmul_threads(rows, self.widths)

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """One SGD step on (B, 784), (B,); return (objective, number correct)."""
        x = np.asarray(x, dtype=self.dtype)  # a no-op for float32 batches; the twin casts too
        self.model.train()
        self.optimizer.zero_grad()
        with blas_threads(self.threads(x.shape[0])):
            logits = self.model.forward(x)
            loss = self.loss.forward(logits, y)
            self.model.backward(self.loss.backward(), input_grad=False)  # images need no grad
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

    def state_dict(self) -> dict[str, np.ndarray]:
        """Return copies of the weights in numpy layout (Linear weight is (in, out))."""
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Load weights in numpy layout."""
        self.model.load_state_dict(state)
