"""One fit loop for every model and backend.

The loop only talks to a *task* (see :mod:`doodlelab.tasks.base`): it sets the
learning rate, feeds (augmented) mini-batches to ``train_batch``, measures clean
loss and accuracy on the training and validation images after every epoch, keeps
the best weights, stops early when validation stops improving, and stops a run
whose loss has become NaN or infinite with a message saying what to change.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from doodlelab.config import Config
from doodlelab.data.augment import random_affine
from doodlelab.data.batches import iterate_minibatches, n_batches
from doodlelab.errors import UserError
from doodlelab.nn.losses import log_softmax
from doodlelab.nn.optim import LRSchedule
from doodlelab.tasks.mlp import N_CLASSES
from doodlelab.tasks.streams import STREAMS, Streams

HISTORY_COLUMNS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "batch_loss",
    "batch_accuracy",
    "lr",
    "seconds",
)


TERM_PREFIX = "term_"  # history columns of the separate loss terms a task reports


def history_columns(history: list[dict[str, float]]) -> list[str]:
    """Return the CSV columns of ``history``: :data:`HISTORY_COLUMNS`, then any loss-term columns."""
    extra = [k for k in (history[0] if history else {}) if k.startswith(TERM_PREFIX)]
    return [*HISTORY_COLUMNS, *extra]


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite."""


class Task(Protocol):
    """What the fit loop needs from a model, whatever its backend."""

    backend: str

    def set_lr(self, lr: float) -> None: ...
    def train_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]: ...
    def logits(self, x: np.ndarray) -> np.ndarray: ...
    def state_dict(self) -> dict[str, np.ndarray]: ...
    def load_state_dict(self, state: dict[str, np.ndarray]) -> None: ...
    def training_state(self) -> dict[str, np.ndarray]: ...
    def load_training_state(self, state: dict[str, np.ndarray]) -> None: ...

    # Optional: a task whose objective has several terms sets ``loss_terms`` (name ->
    # value of the last batch) in ``train_batch``; the loop logs each one's epoch mean
    # as ``term_<name>`` so they can be plotted separately.


@dataclass
class FitResult:
    """What :func:`fit` returns: per-epoch rows, the best epoch and timings."""

    history: list[dict[str, float]]
    best_epoch: int  # epoch with the best monitored validation value
    weights_epoch: int  # epoch whose weights the task holds now (best if restored, else last)
    stopped_early: bool
    train_seconds: float
    epoch_seconds: list[float] = field(default_factory=list)


def loss_and_accuracy(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Return (mean cross-entropy, accuracy) of logits (N, C) against labels (N,)."""
    logp = log_softmax(logits.astype(np.float64))
    loss = float(-logp[np.arange(y.shape[0]), y].mean())
    return loss, float((logits.argmax(axis=1) == y).mean())


def schedule_from(cfg: Config) -> LRSchedule:
    """Return the learning-rate schedule described by ``cfg.optim``."""
    o = cfg.optim
    return LRSchedule(
        o.schedule,
        o.lr,
        cfg.train.epochs,
        step_size=o.step_size,
        gamma=o.gamma,
        min_lr=o.min_lr,
        warmup_epochs=o.warmup_epochs,
    )


def _is_better(value: float, best: float, monitor: str, min_delta: float) -> bool:
    if monitor == "val_loss":
        return value < best - min_delta
    return value > best + min_delta


@dataclass(frozen=True)
class Batch:
    """One training mini-batch as :func:`fit` feeds it to ``train_batch``."""

    position: float  # epochs since the start, e.g. 1.25 = a quarter into the second epoch
    x: np.ndarray  # (B, 784) images, augmented
    y: np.ndarray  # (B,) labels


def epoch_batches(x: np.ndarray, y: np.ndarray, cfg: Config, epoch: int,
                  shuffle_rng: np.random.Generator, augment_rng: np.random.Generator) -> Iterator[Batch]:
    """Yield the mini-batches of 0-based ``epoch``: a fresh permutation, each batch augmented."""
    steps = n_batches(y.shape[0], cfg.train.batch_size)
    for i, idx in enumerate(iterate_minibatches(y.shape[0], cfg.train.batch_size, shuffle_rng)):
        yield Batch(epoch + i / steps, random_affine(x[idx], cfg.augment, augment_rng), y[idx])


def training_batches(x: np.ndarray, y: np.ndarray, cfg: Config, shuffle_rng: np.random.Generator,
                     augment_rng: np.random.Generator) -> Iterator[Batch]:
    """Yield every mini-batch of ``cfg.train.epochs`` epochs in the order :func:`fit` trains on them."""
    for epoch in range(cfg.train.epochs):
        yield from epoch_batches(x, y, cfg, epoch, shuffle_rng, augment_rng)


def _train_epoch(task: Task, batches: Iterator[Batch], schedule: LRSchedule, epoch: int) -> dict[str, float]:
    """Run one epoch of SGD steps; return the running ``batch_loss``, ``batch_accuracy`` and term means."""
    total_loss, total_correct, seen = 0.0, 0, 0
    term_sums: dict[str, float] = {}
    for batch in batches:
        lr = schedule(batch.position)  # the schedule moves every step
        task.set_lr(lr)
        loss, correct = task.train_batch(batch.x, batch.y)
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"training diverged in epoch {epoch} (batch loss {loss}); "
                f"lower optim.lr (now {lr:g}) or check the data"
            )
        n = batch.y.shape[0]
        total_loss += loss * n
        for name, value in getattr(task, "loss_terms", {}).items():
            term_sums[name] = term_sums.get(name, 0.0) + value * n
        total_correct += correct
        seen += n
    return {"batch_loss": total_loss / seen, "batch_accuracy": total_correct / seen,
            **{f"{TERM_PREFIX}{name}": total / seen for name, total in term_sums.items()}}


@dataclass
class FitState:
    """Where a fit stands after a whole epoch: enough, with the task and the streams, to go on."""

    epoch: int  # epochs done
    history: list[dict[str, float]]
    best_value: float
    best_epoch: int
    waited: int  # epochs since the best one
    best_state: dict[str, np.ndarray]  # the best epoch's weights (train.restore_best)


class _EarlyStop:
    """Tracks the monitored validation value: the best epoch, its weights if kept, patience."""

    def __init__(self, task: Task, cfg: Config, start: FitState | None = None) -> None:
        self.task, self.t = task, cfg.train
        self.best_value = math.inf if self.t.monitor == "val_loss" else -math.inf
        self.best_epoch, self.best_state, self.waited = 0, task.state_dict(), 0
        if start is not None:
            self.best_value, self.best_epoch, self.waited = start.best_value, start.best_epoch, start.waited
            self.best_state = start.best_state

    def should_stop(self, row: dict[str, float]) -> bool:
        """Record epoch ``row``; return whether patience has run out."""
        value = row[self.t.monitor]
        if _is_better(value, self.best_value, self.t.monitor, self.t.min_delta):
            self.best_value, self.best_epoch, self.waited = value, int(row["epoch"]), 0
            if self.t.restore_best:
                self.best_state = self.task.state_dict()
            return False
        self.waited += 1
        return bool(self.t.patience and self.waited >= self.t.patience)


def fit(
    task: Task,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    cfg: Config,
    *,
    shuffle_rng: np.random.Generator,
    augment_rng: np.random.Generator,
    progress: bool | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    start: FitState | None = None,
    checkpoint: Callable[[FitState], None] | None = None,
) -> FitResult:
    """Train ``task`` for ``cfg.train.epochs`` epochs; return history and best epoch.

    ``progress=None`` shows a tqdm bar only when stderr is a terminal. ``start`` continues
    a fit after its ``start.epoch`` epochs (the task and the random streams must be in the
    state they had then); ``checkpoint`` receives the state after every epoch.
    """
    schedule = schedule_from(cfg)
    history: list[dict[str, float]] = list(start.history) if start is not None else []
    stop, stopped_early = _EarlyStop(task, cfg, start), False
    if progress is None:
        progress = sys.stderr.isatty()
    tick0 = time.perf_counter()
    epoch_seconds = [float(row["seconds"]) for row in history]
    first = start.epoch + 1 if start is not None else 1
    with tqdm(range(first, cfg.train.epochs + 1), desc=f"train {task.backend}", unit="epoch",
              disable=not progress, leave=False) as bar:
        for epoch in bar:
            tick = time.perf_counter()
            batches = epoch_batches(x_train, y_train, cfg, epoch - 1, shuffle_rng, augment_rng)
            running = _train_epoch(task, batches, schedule, epoch)
            train_loss, train_acc = loss_and_accuracy(task.logits(x_train), y_train)
            val_loss, val_acc = loss_and_accuracy(task.logits(x_val), y_val)
            epoch_seconds.append(time.perf_counter() - tick)
            row = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc,
                   "val_loss": val_loss, "val_accuracy": val_acc,
                   "batch_loss": running.pop("batch_loss"),
                   "batch_accuracy": running.pop("batch_accuracy"),
                   "lr": schedule(epoch - 1), "seconds": epoch_seconds[-1], **running}
            history.append(row)
            if on_epoch is not None:
                on_epoch(row)
            bar.set_postfix(loss=f"{train_loss:.3f}", val_acc=f"{val_acc:.3f}")
            stopped_early = stop.should_stop(row)
            if checkpoint is not None:
                checkpoint(FitState(epoch, history, stop.best_value, stop.best_epoch, stop.waited,
                                    stop.best_state))
            if stopped_early:
                break
    restore = cfg.train.restore_best and stop.best_epoch > 0
    if restore:
        task.load_state_dict(stop.best_state)
    return FitResult(history=history, best_epoch=stop.best_epoch,
                     weights_epoch=stop.best_epoch if restore else len(history),
                     stopped_early=stopped_early, train_seconds=time.perf_counter() - tick0,
                     epoch_seconds=epoch_seconds)


BEST = "best."  # prefix of the best epoch's weights in a checkpoint


Checkpoint = tuple[dict[str, np.ndarray], dict[str, Any]]  # (arrays, JSON-ready state)


def checkpoint_of(task: Task, streams: Streams, state: FitState) -> Checkpoint:
    """Return (arrays, JSON-ready state) that :func:`resume_state` turns back into this point of a fit."""
    arrays = {**task.training_state(), **{f"{BEST}{k}": v for k, v in state.best_state.items()}}
    meta = {"epoch": state.epoch, "history": state.history, "best_value": state.best_value,
            "best_epoch": state.best_epoch, "waited": state.waited,
            "streams": {name: getattr(streams, name).bit_generator.state for name in STREAMS}}
    return arrays, meta


def resume_state(task: Task, streams: Streams, arrays: dict[str, np.ndarray],
                 meta: dict[str, Any]) -> FitState:
    """Put ``task`` and ``streams`` back where a checkpoint left them; return the fit's state."""
    task.load_training_state({k: v for k, v in arrays.items() if not k.startswith(BEST)})
    for name in STREAMS:
        getattr(streams, name).bit_generator.state = meta["streams"][name]
    best = {k[len(BEST):]: v for k, v in arrays.items() if k.startswith(BEST)}
    return FitState(int(meta["epoch"]), list(meta["history"]), float(meta["best_value"]),
                    int(meta["best_epoch"]), int(meta["waited"]), best)


def fit_new(cfg: Config, backend: str, task_name: str, x_train: np.ndarray, y_train: np.ndarray,
            x_val: np.ndarray, y_val: np.ndarray, *, class_vectors: np.ndarray | None = None,
            n_classes: int = N_CLASSES, progress: bool | None = None,
            on_epoch: Callable[[dict[str, float]], None] | None = None,
            checkpoint: Callable[[dict[str, np.ndarray], dict[str, Any]], None] | None = None,
            resume: Checkpoint | None = None) -> tuple[Task, FitResult]:
    """Build a fresh ``task_name`` on ``backend`` from ``cfg.train.seed``'s streams and fit it.

    Returns the trained task and the :class:`FitResult`. Images (N, 784), labels (N,);
    a two-tower task needs ``class_vectors`` (K, D). ``checkpoint`` receives
    :func:`checkpoint_of` after every epoch; ``resume`` (such a pair) continues from it.
    """
    from doodlelab.registry import make_task

    streams = Streams.from_seed(cfg.train.seed)
    task = make_task(cfg, backend, task_name, streams=streams, class_vectors=class_vectors,
                     n_classes=n_classes)
    start = resume_state(task, streams, *resume) if resume is not None else None
    save = None if checkpoint is None else (lambda state: checkpoint(*checkpoint_of(task, streams, state)))
    result = fit(task, x_train, y_train, x_val, y_val, cfg, shuffle_rng=streams.shuffle,
                 augment_rng=streams.augment, progress=progress, on_epoch=on_epoch, start=start,
                 checkpoint=save)
    return task, result
