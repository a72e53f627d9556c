"""The one map from (kind, backend) to a task class, what differs between the kinds, and the one
place outside twin/ that brings in torch (on demand: numpy-only commands never import it).

Every command that builds a model asks here: training, evaluation, the demo, the studies.
What a command must know of a kind (does it train against the class names' word vectors?)
is its :class:`KindSpec`, not a comparison of the kind's name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from doodlelab.config import Config
from doodlelab.errors import UserError
from doodlelab.kinds import BACKENDS, KINDS, NUMPY, TORCH, TWO_TOWER, Backend, Kind
from doodlelab.tasks.mlp import N_CLASSES
from doodlelab.tasks.protocol import Task
from doodlelab.tasks.streams import Streams


@dataclass(frozen=True)
class KindSpec:
    """What the commands must know of a model kind besides its task classes."""

    kind: Kind
    # trains against the class names' word vectors: prepare() reads them, the run folder keeps
    # them (class_vectors.npz) and the task is built with them
    word_vectors: bool


SPECS: dict[str, KindSpec] = {kind: KindSpec(kind, word_vectors=kind == TWO_TOWER) for kind in KINDS}


def spec(kind: str) -> KindSpec:
    """Return what differs for model ``kind``; UserError naming the kinds if it is none of them."""
    if kind not in SPECS:
        raise UserError(f"unknown model {kind!r}; choose one of {', '.join(KINDS)}")
    return SPECS[kind]


def require_torch(what: str) -> None:
    """Import torch now; if it is missing, UserError naming ``what`` and how to install it."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise UserError(f"{what} needs PyTorch ({exc}); install it with pip install -e '.[torch]'") from None


def backend_versions(backend: Backend) -> dict[str, Any]:
    """Return what a run's env.json records about ``backend``: torch's version and thread count."""
    if backend != TORCH:
        return {}
    import torch

    return {torch.__name__: torch.__version__, "torch_threads": torch.get_num_threads()}


def _numpy_classes() -> dict[str, type]:
    from doodlelab.tasks.classifier import NumpyClassifier
    from doodlelab.tasks.two_tower import NumpyTwoTower

    return {cls.kind: cls for cls in (NumpyClassifier, NumpyTwoTower)}


def _torch_classes() -> dict[str, type]:
    require_torch("the torch backend")
    from doodlelab.twin.classifier import TorchClassifier
    from doodlelab.twin.two_tower import TorchTwoTower

    return {cls.kind: cls for cls in (TorchClassifier, TorchTwoTower)}


def task_class(backend: str, kind: str) -> type:
    """Return the task class of model ``kind`` on ``backend``; UserError if it cannot be had."""
    spec(kind)
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return (_numpy_classes() if backend == NUMPY else _torch_classes())[kind]


def make_task(cfg: Config, backend: Backend, kind: Kind, *, streams: Streams | None = None,
              class_vectors: np.ndarray | None = None, n_classes: int = N_CLASSES,
              dtype: Any = np.float32, device: Any = None) -> Task:
    """Return a fresh task of model ``kind`` on ``backend`` with weights drawn from ``streams``.

    ``streams`` defaults to those of ``cfg.train.seed``. A classifier gets ``n_classes``
    outputs; a kind with ``word_vectors`` needs ``class_vectors`` (K, D), the word vectors of
    the K classes. ``device`` (a torch device) places a torch task; None is the CPU.
    """
    cls = task_class(backend, kind)
    streams = streams if streams is not None else Streams.from_seed(cfg.train.seed)
    placed = {"device": device} if device is not None else {}  # a torch device, for torch tasks
    if spec(kind).word_vectors:
        if class_vectors is None:
            raise ValueError(f"a {kind} task needs class_vectors")
        return cls(cfg, streams, class_vectors, dtype=dtype, **placed)
    return cls(cfg, streams, dtype=dtype, n_classes=n_classes, **placed)


def task_like(task: Task, backend: Backend) -> Task:
    """Return a task of ``task``'s kind and settings on ``backend`` holding a copy of its weights."""
    vectors = np.asarray(task.class_vectors) if spec(task.kind).word_vectors else None  # type: ignore[attr-defined]
    twin = make_task(task.cfg, backend, task.kind, class_vectors=vectors, n_classes=task.n_classes)
    twin.load_state_dict(task.state_dict())
    return twin


@dataclass
class Placement:
    """Where a run computes: a torch device (None: the CPU) and a process group (None: one process)."""

    device: Any = None
    group: Any = None  # a doodlelab.twin.distributed.ProcessGroup

    @property
    def writes(self) -> bool:
        """Return True for the process that writes the run folder (rank 0, or the only one)."""
        return self.group is None or self.group.rank == 0

    def describe(self) -> dict[str, Any]:
        """Return what env.json records: device, world_size and the process group (None: one process)."""
        return {"device": str(self.device) if self.device is not None else "cpu",
                "world_size": 1 if self.group is None else self.group.world_size,
                "distributed": None if self.group is None else self.group.describe()}


def under_torchrun() -> bool:
    """Return True when torchrun (or alike) started this process as one of ``WORLD_SIZE`` > 1."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def place(backend: Backend, device: str = "cpu") -> Placement:
    """Return the placement of a run: resolve ``device`` and join torchrun's group if started by it."""
    distributed = under_torchrun()
    if backend != TORCH:
        if device != "cpu":
            raise UserError(f"--device {device} is for the torch backend; the numpy core runs on the CPU")
        if distributed:
            raise UserError("several processes (torchrun) train the torch backend only; add --backend torch")
        return Placement()
    from doodlelab.twin.device import resolve_device

    resolved = resolve_device(device)
    if not distributed:
        return Placement(device=resolved)
    from doodlelab.twin.distributed import start

    return Placement(device=resolved, group=start(resolved))
