"""One fit loop for every model and backend.

The loop only talks to a *task* (see :mod:`doodlelab.tasks.classifier`): it sets the
learning rate, feeds (augmented) mini-batches to ``train_batch``, measures clean
loss and accuracy on the training and validation images after every epoch, keeps
the best weights, stops early when validation stops improving, and stops a run
whose loss has become NaN or infinite with a message saying what to change.

The images may be an array or :class:`~doodlelab.data.images.ImageRows` read on demand
from a memory map: the loop only ever indexes mini-batches and chunks of them. Under
``torchrun`` a :class:`Shard` says which rows of every global batch this process trains
on; every process draws the whole global batch's randomness from the same seeded
streams and keeps its slice, and the epoch's sums are added over processes.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from tqdm.auto import tqdm

from doodlelab.config import Config
from doodlelab.data.augment import random_affine
from doodlelab.data.batches import iterate_minibatches, n_batches
from doodlelab.errors import UserError
from doodlelab.nn.losses import log_softmax
from doodlelab.nn.optim import LRSchedule

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


SCORE_ROWS = 8192  # rows per chunk when the clean loss of a whole split is measured


class Shard(Protocol):
    """This process's part of the work when several train one model (see ``twin.distributed``)."""

    rank: int
    world_size: int

    def rows(self, n: int) -> slice: ...
    def all_sum(self, values: np.ndarray) -> np.ndarray: ...


class OneProcess:
    """The :class:`Shard` of a run that is one process: every row, sums as they are."""

    rank = 0
    world_size = 1

    def rows(self, n: int) -> slice:
        """Return ``slice(0, n)``: all of a batch of ``n`` rows."""
        return slice(0, n)

    def all_sum(self, values: np.ndarray) -> np.ndarray:
        """Return ``values`` unchanged: there is no other process to add."""
        return values


def shard_rows(n: int, rank: int, world_size: int) -> slice:
    """Return rank ``rank``'s contiguous share of ``n`` rows split over ``world_size`` processes."""
    return slice(n * rank // world_size, n * (rank + 1) // world_size)


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


def split_scores(task: Task, x: np.ndarray, y: np.ndarray, shard: Shard | None = None) -> tuple[float, float]:
    """Return (mean cross-entropy, accuracy) of eval-mode logits over every row, chunk by chunk.

    Each process scores its share of the rows; the sums are added over processes.
    """
    shard = shard or OneProcess()
    mine = shard.rows(y.shape[0])
    loss_sum, correct = 0.0, 0
    for start in range(mine.start, mine.stop, SCORE_ROWS):
        stop = min(start + SCORE_ROWS, mine.stop)
        logits, yb = task.logits(x[start:stop]), y[start:stop]
        logp = log_softmax(logits.astype(np.float64))
        loss_sum -= float(logp[np.arange(yb.shape[0]), yb].sum())
        correct += int((logits.argmax(axis=1) == yb).sum())
    loss_sum, correct = shard.all_sum(np.array([loss_sum, correct], dtype=np.float64))
    return float(loss_sum / y.shape[0]), float(correct / y.shape[0])


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
    shard: Shard | None = None,
) -> FitResult:
    """Train ``task`` for ``cfg.train.epochs`` epochs; return history and best epoch.

    ``progress=None`` shows a tqdm bar only when stderr is a terminal. With a ``shard``
    of several processes the task must have ``set_batch_shard`` (the torch tasks do).
    """
    shard = shard or OneProcess()
    t = cfg.train
    schedule = schedule_from(cfg)
    history: list[dict[str, float]] = []
    monitor = t.monitor
    best_value = math.inf if monitor == "val_loss" else -math.inf
    best_epoch, best_state, waited = 0, task.state_dict(), 0
    stopped_early = False
    if progress is None:
        progress = sys.stderr.isatty()
    bar = tqdm(range(1, t.epochs + 1), desc=f"train {task.backend}", unit="epoch",
               disable=not progress, leave=False)
    start = time.perf_counter()
    epoch_seconds = []
    steps_per_epoch = n_batches(y_train.shape[0], t.batch_size)
    for epoch in bar:
        tick = time.perf_counter()
        epoch_lr = schedule(epoch - 1)  # recorded in the history
        total_loss, total_correct, seen = 0.0, 0, 0
        term_sums: dict[str, float] = {}
        for i, idx in enumerate(iterate_minibatches(y_train.shape[0], t.batch_size, shuffle_rng)):
            lr = schedule(epoch - 1 + i / steps_per_epoch)  # the schedule moves every step
            task.set_lr(lr)
            mine = shard.rows(idx.shape[0])
            if shard.world_size > 1:
                task.set_batch_shard(idx.shape[0], mine)  # type: ignore[attr-defined]
            xb = random_affine(x_train[idx[mine]], cfg.augment, augment_rng, batch_rows=(idx.shape[0], mine))
            yb = y_train[idx[mine]]
            loss, correct = task.train_batch(xb, yb)
            if not math.isfinite(loss):
                bar.close()
                raise TrainingDiverged(
                    f"training diverged in epoch {epoch} (batch loss {loss}); "
                    f"lower optim.lr (now {lr:g}) or check the data"
                )
            total_loss += loss * yb.shape[0]
            for name, value in getattr(task, "loss_terms", {}).items():
                term_sums[name] = term_sums.get(name, 0.0) + value * yb.shape[0]
            total_correct += correct
            seen += yb.shape[0]
        train_loss, train_acc = split_scores(task, x_train, y_train, shard)
        val_loss, val_acc = split_scores(task, x_val, y_val, shard)
        sums = shard.all_sum(np.array([total_loss, total_correct, seen, *term_sums.values()], np.float64))
        total_loss, total_correct, seen = float(sums[0]), float(sums[1]), float(sums[2])
        term_sums = dict(zip(term_sums, (float(v) for v in sums[3:])))
        seconds = time.perf_counter() - tick
        epoch_seconds.append(seconds)
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_accuracy": train_acc,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "batch_loss": total_loss / seen,
            "batch_accuracy": total_correct / seen,
            "lr": epoch_lr,
            "seconds": seconds,
            **{f"{TERM_PREFIX}{name}": total / seen for name, total in term_sums.items()},
        }
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        bar.set_postfix(loss=f"{train_loss:.3f}", val_acc=f"{val_acc:.3f}")
        value = row[monitor]
        if _is_better(value, best_value, monitor, t.min_delta):
            best_value, best_epoch, waited = value, epoch, 0
            if t.restore_best:
                best_state = task.state_dict()
        else:
            waited += 1
            if t.patience and waited >= t.patience:
                stopped_early = True
                break
    bar.close()
    restore = t.restore_best and best_epoch > 0
    if restore:
        task.load_state_dict(best_state)
    return FitResult(
        history=history,
        best_epoch=best_epoch,
        weights_epoch=best_epoch if restore else len(history),
        stopped_early=stopped_early,
        train_seconds=time.perf_counter() - start,
        epoch_seconds=epoch_seconds,
    )
