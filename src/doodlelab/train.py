"""One fit loop for every model and backend.

The loop only talks to a *task* (see :mod:`doodlelab.tasks.classifier`): it sets the
learning rate, feeds (augmented) mini-batches to ``train_batch``, measures clean
loss and accuracy on the training and validation images after every epoch, keeps
the best weights, stops early when validation stops improving, and stops a run
whose loss has become NaN or infinite with a message saying what to change.
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
DIAG_PREFIX = "diag_"  # history columns of a task's per-epoch diagnostics (on validation)


def history_columns(history: list[dict[str, float]]) -> list[str]:
    """Return the CSV columns of ``history``: :data:`HISTORY_COLUMNS`, then loss terms and diagnostics."""
    first = history[0] if history else {}
    extra = [k for k in first if k.startswith(TERM_PREFIX)]
    return [*HISTORY_COLUMNS, *extra, *(k for k in first if k.startswith(DIAG_PREFIX))]


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite."""


class Task(Protocol):
    """What the fit loop needs from a model, whatever its backend."""

    backend: str

    def set_lr(self, lr: float) -> None: ...
    def train_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]: ...
    def logits(self, x: np.ndarray) -> np.ndarray: ...
    # {"loss": the task's objective, "accuracy", and any diagnostics (logged as diag_<name>)}
    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]: ...
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
) -> FitResult:
    """Train ``task`` for ``cfg.train.epochs`` epochs; return history and best epoch.

    ``progress=None`` shows a tqdm bar only when stderr is a terminal.
    """
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
            xb = random_affine(x_train[idx], cfg.augment, augment_rng)
            yb = y_train[idx]
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
        train_scores = task.evaluate(x_train, y_train)
        val_scores = task.evaluate(x_val, y_val)
        train_loss, train_acc = train_scores.pop("loss"), train_scores.pop("accuracy")
        val_loss, val_acc = val_scores.pop("loss"), val_scores.pop("accuracy")
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
            **{f"{DIAG_PREFIX}{name}": value for name, value in val_scores.items()},
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
