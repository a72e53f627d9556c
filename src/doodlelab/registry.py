"""The one map from (task, backend) to a task class, and the one place outside twin/ that
brings in torch (on demand: numpy-only commands never import it).

Every command that builds a model asks here: training, evaluation, the demo, the studies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from doodlelab.config import Config
from doodlelab.errors import UserError
from doodlelab.tasks.mlp import N_CLASSES
from doodlelab.tasks.streams import Streams

BACKENDS = ("numpy", "torch")
TASKS = ("classifier", "two_tower")


def require_torch(what: str) -> None:
    """Import torch now; if it is missing, UserError naming ``what`` and how to install it."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise UserError(f"{what} needs PyTorch ({exc}); install it with pip install -e '.[torch]'") from None


def backend_versions(backend: str) -> dict[str, Any]:
    """Return what a run's env.json records about ``backend``: torch's version and thread count."""
    if backend != "torch":
        return {}
    import torch

    return {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def task_class(backend: str, task: str = "classifier") -> type:
    """Return the task class of ``task`` on ``backend``; UserError if it cannot be had."""
    if task not in TASKS:
        raise UserError(f"unknown model {task!r}; choose one of {', '.join(TASKS)}")
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "numpy":
        from doodlelab.tasks.classifier import NumpyClassifier
        from doodlelab.tasks.two_tower import NumpyTwoTower

        return NumpyTwoTower if task == "two_tower" else NumpyClassifier
    require_torch("the torch backend")
    from doodlelab.twin.classifier import TorchClassifier
    from doodlelab.twin.two_tower import TorchTwoTower

    return TorchTwoTower if task == "two_tower" else TorchClassifier


def make_task(cfg: Config, backend: str, task: str = "classifier", *, streams: Streams | None = None,
              class_vectors: np.ndarray | None = None, n_classes: int = N_CLASSES,
              dtype: Any = np.float32) -> Any:
    """Return a fresh task of ``task`` on ``backend`` with weights drawn from ``streams``.

    ``streams`` defaults to those of ``cfg.train.seed``. A classifier gets ``n_classes``
    outputs; a two-tower task needs ``class_vectors`` (K, D), the word vectors of the K classes.
    """
    cls = task_class(backend, task)
    streams = streams if streams is not None else Streams.from_seed(cfg.train.seed)
    if task == "two_tower":
        if class_vectors is None:
            raise ValueError("a two-tower task needs class_vectors")
        return cls(cfg, streams, class_vectors, dtype=dtype)
    return cls(cfg, streams, dtype=dtype, n_classes=n_classes)
