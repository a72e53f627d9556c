"""The demo's models: finished run folders loaded once, checked, and named for the page.

Runs are read through :class:`~doodlelab.runs.folder.RunFolder` (``load_task``). A run is
refused at startup (UserError: one line, exit 2) when it is not finished, when its weights
hold NaN or infinite values, or when it scores a different number of classes than its
configuration names (e.g. class word vectors with too few rows).
Each loaded model also carries its *numpy-core copy* (the task itself for numpy runs),
which computes the saliency maps with the core's own backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from doodlelab.errors import UserError
from doodlelab.geometry import N_PIXELS
from doodlelab.kinds import NUMPY, Backend, Kind
from doodlelab.runs.folder import RunFolder
from doodlelab.tasks.protocol import EmbeddingTask, Task


@dataclass(frozen=True)
class LoadedModel:
    """One finished run ready to answer: its trained task, the task's numpy copy and its prediction rule."""

    name: str
    kind: Kind
    backend: Backend
    run_dir: Path
    task: Task  # logits(x (N, 784)) -> (N, K)
    tta: bool
    accuracy: float | None  # the run's test accuracy, if its metrics hold one
    classes: tuple[str, ...] = ()  # the run's class names in label order
    numpy_task: Task | None = None  # the same weights on the numpy core (input_gradient for saliency)

    @property
    def cosines(self) -> bool:
        """Return whether the model scores a drawing by its cosine with each class word (two-tower)."""
        return isinstance(self.task, EmbeddingTask)

    def info(self) -> dict[str, Any]:
        """Return what the page shows about this model (JSON-ready)."""
        return {"name": self.name, "kind": self.kind, "backend": self.backend, "tta": self.tta,
                "accuracy": self.accuracy, "classes": list(self.classes), "cosines": self.cosines}


def all_classes(models: list[LoadedModel]) -> list[str]:
    """Return every class any of ``models`` knows, in first-seen order."""
    return list(dict.fromkeys(c for m in models for c in m.classes))


def load_task(run: RunFolder) -> Task:
    """Return the trained task of one finished run folder (weights loaded); UserError if not."""
    return run.require_finished().load_task()


def n_scored(task: Task) -> int:
    """Return how many classes ``task`` scores (the width of its logits)."""
    return int(task.logits(np.zeros((1, N_PIXELS), np.float32)).shape[1])


def numpy_copy(task: Task) -> Task:
    """Return ``task`` itself if it runs on the numpy core, else a numpy task with its weights."""
    if task.backend == NUMPY:
        return task
    from doodlelab.training.registry import task_like

    return task_like(task, NUMPY)


def check_task(task: Task, classes: tuple[str, ...], run: RunFolder) -> None:
    """Raise UserError unless the task scores ``len(classes)`` classes with finite weights."""
    n = n_scored(task)
    if n != len(classes):
        raise UserError(f"{run.path}: the model scores {n} classes but the run's configuration names "
                        f"{len(classes)}; its files do not belong together, train it again")
    for key, value in task.state_dict().items():
        if not np.isfinite(value).all():
            raise UserError(f"{run.path}: weight {key} holds NaN or infinite values; train it again")
    if isinstance(task, EmbeddingTask) and not np.isfinite(np.asarray(task.class_vectors)).all():
        raise UserError(f"{run.path}: the class word vectors hold NaN or infinite values; train it again")


def load_model(run_dir: str | Path) -> LoadedModel:
    """Return the trained model of one finished run folder; UserError if it is not one."""
    run = RunFolder(run_dir)
    task = load_task(run)
    check_task(task, run.classes, run)
    accuracy = run.metrics.get("accuracy")
    label = f"{run.path.resolve().name} ({run.kind}, {run.backend})"
    return LoadedModel(label, run.kind, run.backend, run.path, task, bool(run.settings.eval.tta),
                       float(accuracy) if isinstance(accuracy, (int, float)) else None, run.classes,
                       numpy_copy(task))


def load_models(run_dirs: list[str | Path] | tuple[str | Path, ...]) -> list[LoadedModel]:
    """Return one LoadedModel per run folder, named ``<folder> (<kind>, <backend>)``, names unique."""
    if not run_dirs:
        raise UserError("no run folder given; pass at least one folder written by `doodlelab train`")
    models: list[LoadedModel] = []
    seen: set[str] = set()
    for run_dir in run_dirs:
        model = load_model(run_dir)
        name, k = model.name, 2
        while name in seen:  # two folders of one name (a/np, b/np): number the later ones
            name, k = f"{model.name} #{k}", k + 1
        seen.add(name)
        models.append(replace(model, name=name))
    return models
