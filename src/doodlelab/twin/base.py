"""What every torch task shares: numpy images in, the optimizer from the config, the learning
rate, the thread rule, weights and gradients in numpy layout.

The twin of :class:`doodlelab.tasks.base.NumpyTask`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from doodlelab.config import Config
from doodlelab.kinds import TORCH, Backend
from doodlelab.tasks.base import MOMENTUM
from doodlelab.tasks.threads import matmul_threads, usable_cpus
from doodlelab.twin.modules import (
    Dropout,
    load_numpy_state,
    numpy_grads,
    numpy_layout,
    numpy_state,
    torch_layout,
)


def configure_threads() -> int:
    """Give torch one intra-op thread per usable CPU unless ``OMP_NUM_THREADS`` says otherwise.

    Returns the number of threads torch now uses.
    """
    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(usable_cpus())
    return torch.get_num_threads()


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TorchTask:
    """Base of the torch tasks. Subclasses build ``model`` and call :meth:`_setup_optimizer`.

    Subclasses set ``np_dtype``, ``device`` and ``widths`` (the image MLP's layer sizes).
    When several processes train one model (``twin.distributed``), :meth:`distribute`
    wraps the model in DistributedDataParallel and :meth:`set_batch_shard` says which
    rows of the global batch the next batch is.
    """

    backend: Backend = TORCH
    cfg: Config
    model: torch.nn.Module
    np_dtype: np.dtype
    optimizer: torch.optim.Optimizer
    widths: tuple[int, ...]
    device: torch.device = torch.device("cpu")
    trainer: torch.nn.Module | None = None  # the DistributedDataParallel wrapper, when distributed
    batch_share: float = 1.0  # (local rows x processes) / global rows of the current batch
    world_size: int = 1

    def distribute(self, world_size: int) -> None:
        """Train through DistributedDataParallel from now on (the process group must exist)."""
        from doodlelab.twin.distributed import wrap

        self.world_size = world_size
        self.trainer = wrap(self.model, self.device)

    def batch_network(self) -> torch.nn.Module:
        """Return the part of the model that sees the images of a batch (all of it here)."""
        return self.model

    def set_batch_shard(self, n: int, rows: slice) -> None:
        """Say that the next batch is rows ``rows`` of a global batch of ``n`` images."""
        for module in self.batch_network().modules():
            if isinstance(module, Dropout):
                module.shard = (n, rows)
        self.batch_share = (rows.stop - rows.start) * self.world_size / max(n, 1)

    def data_term(self, loss: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Return the batch loss weighted so that averaging over processes gives the global mean."""
        if self.trainer is None:
            return loss
        if logits.shape[0] == 0:  # an empty share still joins the gradient average
            return logits.sum() * 0.0
        return loss * self.batch_share

    def _labels(self, y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.require(y, dtype=np.int64, requirements=["C", "W"])).to(self.device)

    def _setup_optimizer(self) -> None:
        """Make ``optimizer``: ``torch.optim.SGD`` over ``model`` with ``cfg.optim``'s settings.

        ``foreach=False`` on every device (torch's default on the CPU; on a GPU it would be True):
        the multi-tensor Nesterov update adds the momentum term into ``.grad`` in place, so the
        gradients read after a step would no longer be the step's gradients, which the gradient
        check reads there. ``benchmarks/bench_torch_optimizer.py`` measures what it would buy.
        """
        self.optimizer = torch.optim.SGD(self.model.parameters(), foreach=False,
                                         **self.cfg.optim.sgd_kwargs())

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        """Return images as a torch tensor of the model dtype on the task's device."""
        return torch.from_numpy(np.require(x, dtype=self.np_dtype, requirements=["C", "W"])).to(self.device)

    def set_lr(self, lr: float) -> None:
        """Set the learning rate used by the next steps."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def threads(self, rows: int) -> int:
        """Return the intra-op thread count for ``rows`` images: the numpy core's rule."""
        return matmul_threads(rows, self.widths)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Return copies of the weights in numpy layout (Linear weight is (in, out))."""
        return numpy_state(self.model)

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Load weights in numpy layout."""
        load_numpy_state(self.model, state)

    def grads(self) -> dict[str, np.ndarray]:
        """Return the ``.grad`` of every parameter after the last step, in numpy layout."""
        return numpy_grads(self.model)

    def training_state(self) -> dict[str, np.ndarray]:
        """Return copies of the weights and of the optimizer's momentum buffers (``momentum.<name>``)."""
        params = dict(self.model.named_parameters())
        buffers = {name: self.optimizer.state[p]["momentum_buffer"] for name, p in params.items()
                   if self.optimizer.state.get(p, {}).get("momentum_buffer") is not None}
        state = self.state_dict()
        state.update({f"{MOMENTUM}{name}": a for name, a in numpy_layout(self.model, buffers).items()})
        return state

    def load_training_state(self, state: dict[str, np.ndarray]) -> None:
        """Load what :meth:`training_state` returned: weights and momentum buffers."""
        self.load_state_dict({k: v for k, v in state.items() if not k.startswith(MOMENTUM)})
        buffers = torch_layout(self.model, {k[len(MOMENTUM):]: v for k, v in state.items()
                                            if k.startswith(MOMENTUM)})
        for name, p in self.model.named_parameters():
            if name in buffers:
                self.optimizer.state[p]["momentum_buffer"] = buffers[name].to(device=p.device, dtype=p.dtype)
