"""The demo's models: finished run folders loaded once, checked, and named for the page.

A run is refused at startup (UserError: one line, exit 2) when it is not finished, when
its weights hold NaN or infinite values, or when it scores a different number of
classes than its ``config.json`` names (e.g. a ``class_vectors.npz`` with too few rows).
Each loaded model also carries its *numpy-core copy* (the model itself for numpy runs),
which computes the saliency maps with the core's own backward pass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from doodlelab.errors import UserError


@dataclass(frozen=True)
class LoadedModel:
    """One finished run ready to answer: its task (``model``), numpy copy and prediction rule."""

    name: str
    task: str  # "classifier" or "two_tower"
    backend: str  # "numpy" or "torch"
    run_dir: Path
    model: Any  # a Task: logits(x (N, 784)) -> (N, K)
    tta: bool
    accuracy: float | None  # test accuracy from metrics.json, if it holds one
    classes: tuple[str, ...] = ()  # the run's class names in label order
    core: Any = None  # the same weights on the numpy core (input_gradient for saliency)

    def info(self) -> dict[str, Any]:
        """Return what the page shows about this model (JSON-ready)."""
        return {"name": self.name, "task": self.task, "backend": self.backend, "tta": self.tta,
                "accuracy": self.accuracy, "classes": list(self.classes)}


def all_classes(models: list[LoadedModel]) -> list[str]:
    """Return every class any of ``models`` knows, in first-seen order."""
    return list(dict.fromkeys(c for m in models for c in m.classes))


def _test_accuracy(path: Path) -> float | None:
    try:
        value = json.loads(path.read_text()).get("accuracy")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def load_task(run_dir: Path) -> Any:
    """Return the trained task of one finished run folder (weights loaded); UserError if not."""
    from doodlelab.runs import load_run, load_weights, make_classifier, read_class_vectors
    from doodlelab.tasks.classifier import Streams

    raw, cfg = load_run(run_dir)
    if not (run_dir / "metrics.json").is_file():
        raise UserError(f"{run_dir} is not a finished run (no metrics.json); train it again")
    task_name = str(raw.get("task", "classifier"))
    vectors = read_class_vectors(run_dir) if task_name == "two_tower" else None
    model = make_classifier(cfg, str(raw.get("backend", "numpy")), Streams.from_seed(cfg.train.seed),
                            task_name, vectors, n_classes=len(run_classes(raw)))
    try:
        model.load_state_dict(load_weights(run_dir / "weights.npz"))
    except (KeyError, ValueError) as exc:
        raise UserError(f"{run_dir}/weights.npz does not match config.json ({exc})") from None
    return model


def run_classes(raw: dict[str, Any]) -> tuple[str, ...]:
    """Return the class names a run's raw ``config.json`` names (the course's five by default)."""
    from doodlelab.data.course import CLASSES

    return tuple(str(c) for c in raw.get("classes", CLASSES))


def n_scored(task: Any) -> int:
    """Return how many classes ``task`` scores (the width of its logits)."""
    return int(task.logits(np.zeros((1, 784), np.float32)).shape[1])


def numpy_core_copy(task: Any) -> Any:
    """Return ``task`` itself if it runs on the numpy core, else a numpy task with its weights."""
    if task.backend == "numpy":
        return task
    from doodlelab.runs import make_classifier
    from doodlelab.tasks.classifier import Streams

    kind = getattr(task, "task", "classifier")
    vectors = np.asarray(task.class_vectors) if kind == "two_tower" else None
    core = make_classifier(task.cfg, "numpy", Streams.from_seed(task.cfg.train.seed), kind, vectors,
                           n_classes=n_scored(task))
    core.load_state_dict(task.state_dict())
    return core


def check_task(task: Any, classes: tuple[str, ...], run_dir: Path) -> None:
    """Raise UserError unless the task scores ``len(classes)`` classes with finite weights."""
    n = n_scored(task)
    if n != len(classes):
        raise UserError(f"{run_dir}: the model scores {n} classes but config.json names "
                        f"{len(classes)}; the run's files do not belong together, train it again")
    for key, value in task.state_dict().items():
        if not np.isfinite(value).all():
            raise UserError(f"{run_dir}/weights.npz: {key} holds NaN or infinite values; train it again")
    vectors = getattr(task, "class_vectors", None)
    if vectors is not None and not np.isfinite(np.asarray(vectors)).all():
        raise UserError(f"{run_dir}/class_vectors.npz holds NaN or infinite values; train it again")


def load_model(run_dir: str | Path) -> LoadedModel:
    """Return the trained model of one finished run folder; UserError if it is not one."""
    from doodlelab.runs import load_run

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a folder; pass run folders written by `doodlelab train`")
    raw, cfg = load_run(run_dir)
    classes = run_classes(raw)
    task = load_task(run_dir)
    check_task(task, classes, run_dir)
    kind = getattr(task, "task", "classifier")
    label = f"{run_dir.resolve().name} ({kind}, {task.backend})"
    return LoadedModel(label, kind, task.backend, run_dir, task, bool(cfg.eval.tta),
                       _test_accuracy(run_dir / "metrics.json"), classes, numpy_core_copy(task))


def load_models(run_dirs: list[str | Path] | tuple[str | Path, ...]) -> list[LoadedModel]:
    """Return one LoadedModel per run folder, named ``<folder> (<task>, <backend>)``, names unique."""
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
