"""Where the torch twin computes: ``--device cpu|cuda|mps|auto`` (the numpy core is always on the CPU)."""

from __future__ import annotations

import os

import torch

from doodlelab.errors import UserError

DEVICES = ("cpu", "cuda", "mps", "auto")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str = "cpu") -> torch.device:
    """Return the torch device for ``name``; ``auto`` is cuda, else mps, else cpu.

    Under ``torchrun`` a CUDA process takes the GPU of its ``LOCAL_RANK``. A device that
    is not there is a UserError naming it.
    """
    if name not in DEVICES:
        raise UserError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda: this PyTorch sees no CUDA GPU (torch.cuda.is_available() "
                            "is False); use --device cpu or auto")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    if name == "mps" and not _mps_available():
        raise UserError("--device mps: Apple's Metal backend is not available here; use --device cpu or auto")
    return torch.device(name)
