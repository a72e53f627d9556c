"""Training one torch model in several processes: ``torchrun ... -m doodlelab train ... --backend torch``.

torchrun starts the processes and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous address; :func:`start` joins them into one process group (gloo on CPUs, NCCL
on GPUs). The model is wrapped in ``torch.nn.parallel.DistributedDataParallel``, which
averages gradients over processes after every backward pass. Every process walks the
same seeded global batch order and keeps its contiguous share of each batch
(:func:`doodlelab.data.batches.shard_rows`); dropout masks and distortions are drawn for the whole
global batch from the shared seeded streams and sliced, so the processes together
compute exactly the one-process step (up to float rounding of the gradient sum).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from doodlelab.data.batches import shard_rows
from doodlelab.errors import UserError


@dataclass
class ProcessGroup:
    """This process's place in the group: a :class:`~doodlelab.training.fit.Shard` over torch.distributed."""

    rank: int
    world_size: int
    backend: str  # "gloo" or "nccl"
    device: torch.device

    def rows(self, n: int) -> slice:
        """Return this rank's contiguous share of a global batch of ``n`` rows."""
        return shard_rows(n, self.rank, self.world_size)

    def all_sum(self, values: np.ndarray) -> np.ndarray:
        """Return ``values`` (float64) summed over every process."""
        where = self.device if self.backend == "nccl" else torch.device("cpu")
        t = torch.from_numpy(np.array(values, dtype=np.float64)).to(where)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.cpu().numpy()

    def share(self, value: object) -> object:
        """Return rank 0's ``value`` in every process (any picklable object; the others pass None)."""
        box = [value if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def describe(self) -> dict[str, object]:
        """Return what env.json records about the group."""
        return {"world_size": self.world_size, "backend": self.backend, "rank": self.rank}

    def close(self) -> None:
        """Leave the process group."""
        if dist.is_initialized():
            dist.destroy_process_group()


def start(device: torch.device) -> ProcessGroup:
    """Join the process group torchrun started this process in (``registry.under_torchrun``)."""
    if not dist.is_available():
        raise UserError("this PyTorch build has no torch.distributed; run one process")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return ProcessGroup(dist.get_rank(), dist.get_world_size(), backend, device)


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Return ``model`` inside DistributedDataParallel (sharing its parameters)."""
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
