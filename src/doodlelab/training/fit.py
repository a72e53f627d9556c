"""One fit loop for every model and backend.

The loop only talks to a *task* (:class:`doodlelab.tasks.protocol.Task`): it sets the
learning rate, feeds (augmented) mini-batches to ``train_batch``, measures clean
loss and accuracy on the training and validation images after every epoch (the
training images only with ``score_train``, and at most :data:`TRAIN_CURVE_IMAGES` of them,
see :func:`curve_sample`), keeps
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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from doodlelab.config import Config
from doodlelab.data.augment import random_affine
from doodlelab.data.batches import iterate_minibatches, n_batches
from doodlelab.data.images import rows_of
from doodlelab.data.split import stratified_subset
from doodlelab.errors import UserError
from doodlelab.files.terminal import show_progress
from doodlelab.kinds import Backend, Kind
from doodlelab.nn.optim import LRSchedule
from doodlelab.tasks.mlp import N_CLASSES
from doodlelab.tasks.protocol import DistributedTask, Task
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
DIAG_PREFIX = "diag_"  # history columns of a task's per-epoch diagnostics (on validation)


def history_columns(history: list[dict[str, float]]) -> list[str]:
    """Return the CSV columns of ``history``: :data:`HISTORY_COLUMNS`, then loss terms and diagnostics."""
    first = history[0] if history else {}
    extra = [k for k in first if k.startswith(TERM_PREFIX)]
    return [*HISTORY_COLUMNS, *extra, *(k for k in first if k.startswith(DIAG_PREFIX))]


SCORE_ROWS = 8192  # rows per chunk when the clean loss of a whole split is measured
# The clean training scores of every epoch (train_loss, train_accuracy) are measured on at most this
# many training images: all of a split this size or smaller (the stand-in's 4,500), else a fixed
# stratified sample of it. The curve then costs the same on the assignment's 18,000 training images
# (issue 20: scoring all of them was ~17% of a final run there) and its sampling error stays small
# (a standard error of at most 0.75 points of accuracy).
TRAIN_CURVE_IMAGES = 4500


def curve_sample(x_train: Any, y_train: np.ndarray, seed: int) -> tuple[Any, np.ndarray]:
    """Return the training images (and labels) an epoch's clean training scores are measured on.

    All of them when there are at most :data:`TRAIN_CURVE_IMAGES`; otherwise that many, each
    class in its share, drawn once from ``seed`` by the subset's own stream (no training stream
    moves), so every epoch, every backend and a resumed run score the same images.
    """
    n = y_train.shape[0]
    if n <= TRAIN_CURVE_IMAGES:
        return x_train, y_train
    idx = stratified_subset(np.arange(n), y_train, TRAIN_CURVE_IMAGES, seed)
    return rows_of(x_train, idx), y_train[idx]


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


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite."""


@dataclass
class FitResult:
    """What :func:`fit` returns: per-epoch rows, the best epoch and timings."""

    history: list[dict[str, float]]
    best_epoch: int  # epoch with the best monitored validation value
    weights_epoch: int  # epoch whose weights the task holds now (best if restored, else last)
    stopped_early: bool
    train_seconds: float
    epoch_seconds: list[float] = field(default_factory=list)


def split_scores(task: Task, x: np.ndarray, y: np.ndarray, shard: Shard | None = None) -> dict[str, float]:
    """Return ``task.evaluate`` over every row ({"loss", "accuracy", diagnostics...}), chunk by chunk.

    Each process evaluates its share of the rows in chunks of :data:`SCORE_ROWS`; every
    score is weighted by its chunk's rows and the sums are added over processes. The
    objectives' scores are means over rows (``class_cosine`` is the same in every chunk),
    so the chunked value is the whole split's however it is cut (the triplet is scored
    over every wrong class, not sampled); one chunk in one process is returned as is.
    """
    shard = shard or OneProcess()
    mine = shard.rows(y.shape[0])
    bounds = [(start, min(start + SCORE_ROWS, mine.stop))
              for start in range(mine.start, mine.stop, SCORE_ROWS)]
    chunks = [(stop - start, task.evaluate(x[start:stop], y[start:stop])) for start, stop in bounds]
    if shard.world_size == 1 and len(chunks) == 1:
        return chunks[0][1]
    if not chunks:  # a share with no rows (fewer rows than processes) still joins the sum, with weight 0
        chunks = [(0, task.evaluate(x[:1], y[:1]))]
    names = list(chunks[0][1])
    sums = sum(np.array([scores[k] for k in names], np.float64) * n for n, scores in chunks)
    totals = shard.all_sum(np.asarray(sums, np.float64))
    return {k: float(v / y.shape[0]) for k, v in zip(names, totals)}


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


def improves(value: float, best: float, monitor: str, min_delta: float) -> bool:
    """Return whether the monitored ``value`` beats ``best`` by more than ``min_delta``
    (a lower ``val_loss``, a higher accuracy)."""
    if monitor == "val_loss":
        return value < best - min_delta
    return value > best + min_delta


@dataclass(frozen=True)
class Batch:
    """One training mini-batch as :func:`fit` feeds it to ``train_batch``."""

    position: float  # epochs since the start, e.g. 1.25 = a quarter into the second epoch
    x: np.ndarray  # (B, 784) images, augmented
    y: np.ndarray  # (B,) labels
    size: int = 0  # rows of the global batch this one is a share of (0: the whole batch)
    rows: slice = field(default_factory=lambda: slice(None))  # which rows of the global batch these are


def epoch_batches(x: np.ndarray, y: np.ndarray, cfg: Config, epoch: int,
                  shuffle_rng: np.random.Generator, augment_rng: np.random.Generator,
                  shard: Shard | None = None) -> Iterator[Batch]:
    """Yield the mini-batches of 0-based ``epoch``: a fresh permutation, each batch augmented.

    With a ``shard`` each batch is this process's rows of the global batch; the
    distortions of the whole global batch are drawn, so ``augment_rng`` moves as in one process.
    """
    shard = shard or OneProcess()
    steps = n_batches(y.shape[0], cfg.train.batch_size)
    for i, idx in enumerate(iterate_minibatches(y.shape[0], cfg.train.batch_size, shuffle_rng)):
        mine = shard.rows(idx.shape[0])
        xb = random_affine(x[idx[mine]], cfg.augment, augment_rng, batch_rows=(idx.shape[0], mine))
        yield Batch(epoch + i / steps, xb, y[idx[mine]], idx.shape[0], mine)


def training_batches(x: np.ndarray, y: np.ndarray, cfg: Config, shuffle_rng: np.random.Generator,
                     augment_rng: np.random.Generator) -> Iterator[Batch]:
    """Yield every mini-batch of ``cfg.train.epochs`` epochs in the order :func:`fit` trains on them."""
    for epoch in range(cfg.train.epochs):
        yield from epoch_batches(x, y, cfg, epoch, shuffle_rng, augment_rng)


def train_epoch(task: Task, batches: Iterator[Batch], schedule: LRSchedule, epoch: int,
                 shard: Shard | None = None) -> dict[str, float]:
    """Run one epoch of SGD steps; return the running ``batch_loss``, ``batch_accuracy`` and term means.

    With several processes the sums are added over them before the means are taken.
    """
    shard = shard or OneProcess()
    total_loss, total_correct, seen = 0.0, 0, 0
    term_sums: dict[str, float] = {}
    for batch in batches:
        lr = schedule(batch.position)  # the schedule moves every step
        task.set_lr(lr)
        if shard.world_size > 1:
            assert isinstance(task, DistributedTask), "only a torch task trains in several processes"
            task.set_batch_shard(batch.size, batch.rows)
        loss, correct = task.train_batch(batch.x, batch.y)
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"training diverged in epoch {epoch} (batch loss {loss}); "
                f"lower optim.lr (now {lr:g}) or check the data"
            )
        n = batch.y.shape[0]
        total_loss += loss * n
        for name, value in task.loss_terms.items():
            term_sums[name] = term_sums.get(name, 0.0) + value * n
        total_correct += correct
        seen += n
    if shard.world_size > 1:
        sums = shard.all_sum(np.array([total_loss, total_correct, seen, *term_sums.values()], np.float64))
        total_loss, total_correct, seen = float(sums[0]), float(sums[1]), float(sums[2])
        term_sums = dict(zip(term_sums, (float(v) for v in sums[3:])))
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
        if improves(value, self.best_value, self.t.monitor, self.t.min_delta):
            self.best_value, self.best_epoch, self.waited = value, int(row["epoch"]), 0
            if self.t.restore_best:
                self.best_state = self.task.state_dict()
            return False
        self.waited += 1
        return bool(self.t.patience and self.waited >= self.t.patience)


# fit(score_train=False) skips the clean (eval-mode) scoring of the whole training split after
# every epoch, which only the curves of train_loss / train_accuracy use (a study row decides on
# validation scores): those two columns are NaN in every row, and batch_loss / batch_accuracy
# (the running means over the epoch's training steps, always there) are the training curve.
# Nothing else changes: scoring draws no randomness, so weights and validation scores keep their bits.
NOT_SCORED = {"loss": math.nan, "accuracy": math.nan}


def _epoch_row(epoch: int, running: dict[str, float], train_scores: dict[str, float],
               val_scores: dict[str, float], lr: float) -> dict[str, float]:
    """Return one history row (``seconds`` still 0): clean scores, batch means, terms, diagnostics."""
    train_scores, val_scores, running = dict(train_scores), dict(val_scores), dict(running)
    row = {"epoch": epoch,
           "train_loss": train_scores.pop("loss"), "train_accuracy": train_scores.pop("accuracy"),
           "val_loss": val_scores.pop("loss"), "val_accuracy": val_scores.pop("accuracy"),
           "batch_loss": running.pop("batch_loss"), "batch_accuracy": running.pop("batch_accuracy"),
           "lr": lr, "seconds": 0.0, **running}
    row.update({f"{DIAG_PREFIX}{name}": value for name, value in val_scores.items()})
    return row


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
    start: FitState | None = None,
    checkpoint: Callable[[FitState], None] | None = None, score_train: bool = True,
) -> FitResult:
    """Train ``task`` for ``cfg.train.epochs`` epochs; return history and best epoch.

    ``progress=None`` shows a tqdm bar only when stderr is a terminal. With a ``shard``
    of several processes the task must have ``set_batch_shard`` (the torch tasks do).
    ``start`` continues a fit after its ``start.epoch`` epochs (the task and the random
    streams must be in the state they had then); ``checkpoint`` receives the state after
    every epoch. The clean training scores are measured on :func:`curve_sample`'s images;
    ``score_train=False`` skips them (:data:`NOT_SCORED`).
    """
    schedule = schedule_from(cfg)
    history: list[dict[str, float]] = list(start.history) if start is not None else []
    stop, stopped_early = _EarlyStop(task, cfg, start), False
    progress = show_progress(progress)
    tick0 = time.perf_counter()
    epoch_seconds = [float(row["seconds"]) for row in history]
    x_curve, y_curve = curve_sample(x_train, y_train, cfg.train.seed) if score_train else (None, None)
    first = start.epoch + 1 if start is not None else 1
    with tqdm(range(first, cfg.train.epochs + 1), desc=f"train {task.backend}", unit="epoch",
              disable=not progress, leave=False) as bar:
        for epoch in bar:
            tick = time.perf_counter()
            batches = epoch_batches(x_train, y_train, cfg, epoch - 1, shuffle_rng, augment_rng, shard)
            running = train_epoch(task, batches, schedule, epoch, shard)
            row = _epoch_row(epoch, running, split_scores(task, x_curve, y_curve, shard) if score_train
                             else NOT_SCORED, split_scores(task, x_val, y_val, shard), schedule(epoch - 1))
            epoch_seconds.append(time.perf_counter() - tick)
            row["seconds"] = epoch_seconds[-1]
            history.append(row)
            if on_epoch is not None:
                on_epoch(row)
            bar.set_postfix(loss=f"{row['train_loss' if score_train else 'batch_loss']:.3f}",
                            val_acc=f"{row['val_accuracy']:.3f}")
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


def fit_new(cfg: Config, backend: Backend, kind: Kind, x_train: np.ndarray, y_train: np.ndarray,
            x_val: np.ndarray, y_val: np.ndarray, *, class_vectors: np.ndarray | None = None,
            n_classes: int = N_CLASSES, progress: bool | None = None,
            on_epoch: Callable[[dict[str, float]], None] | None = None,
            checkpoint: Callable[[dict[str, np.ndarray], dict[str, Any]], None] | None = None,
            resume: Checkpoint | None = None, device: Any = None,
            group: Any = None, score_train: bool = True) -> tuple[Task, FitResult]:
    """Build a fresh task of model ``kind`` on ``backend`` from ``cfg.train.seed``'s streams and fit it.

    Returns the trained task and the :class:`FitResult`. Images (N, 784) (or rows read on
    demand), labels (N,); a two-tower task needs ``class_vectors`` (K, D). ``checkpoint``
    receives :func:`checkpoint_of` after every epoch; ``resume`` (such a pair) continues
    from it. ``device`` (a torch device) places a torch task; ``group`` (a
    ``twin.distributed.ProcessGroup``) trains it in several processes. ``score_train``: see
    :func:`fit`.
    """
    from doodlelab.training.registry import make_task

    streams = Streams.from_seed(cfg.train.seed)
    task = make_task(cfg, backend, kind, streams=streams, class_vectors=class_vectors,
                     n_classes=n_classes, device=device)
    if group is not None:
        assert isinstance(task, DistributedTask), "only a torch task trains in several processes"
        task.distribute(group.world_size)
    start = resume_state(task, streams, *resume) if resume is not None else None
    save = None if checkpoint is None else (lambda state: checkpoint(*checkpoint_of(task, streams, state)))
    result = fit(task, x_train, y_train, x_val, y_val, cfg, shuffle_rng=streams.shuffle,
                 augment_rng=streams.augment, progress=progress, on_epoch=on_epoch, shard=group,
                 start=start, checkpoint=save, score_train=score_train)
    return task, result
