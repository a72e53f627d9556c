"""The BLAS thread policy: how many threads a matrix product of a given size gets.

Both backends follow it (the torch twin sets its intra-op threads by the same rule),
and ``env.json`` records its answer, because the thread count changes float32 rounding.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache

from doodlelab.errors import UserError

# One thread per this many FLOPs of the largest matrix product of a pass (see
# matmul_threads): a training batch of 64-128 images runs on one thread, the
# 2048-image evaluation batches on every usable CPU.
FLOPS_PER_THREAD = 200e6
THREADS_ENV = "DOODLELAB_THREADS"  # a positive integer here overrides the rule


def usable_cpus() -> int:
    """Return how many CPUs this process may use: its affinity, capped by ``OMP_NUM_THREADS``."""
    if hasattr(os, "sched_getaffinity"):
        cpus = max(1, len(os.sched_getaffinity(0)))
    else:
        cpus = max(1, os.cpu_count() or 1)
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        cpus = min(cpus, int(env))
    return cpus


def matmul_threads(rows: int, widths: Sequence[int], cpus: int | None = None) -> int:
    """Return the thread count for products of ``rows`` rows through layers ``widths``.

    The rule: one thread per ``FLOPS_PER_THREAD`` (200 MFLOP) of the largest product
    ``2 * rows * in * out``, at least 1 and at most the usable CPUs. Measured on the
    2-core machine this was tuned on (docs/speed.md): with both cores idle,
    two threads make any of these products ~1.9x faster; with another training run
    on the other core they make a batch-64/128 product 3-20x *slower* (OpenBLAS
    workers spin after each call, and two processes doing so fight over both
    cores). From ~400 MFLOP up (500+ images through 784-512) each thread has
    milliseconds of work and the loss is bounded (~1.5x) while the idle gain stays
    ~2x. So training batches run on one thread and 2048-image evaluation on every
    CPU. Torch's twin applies the same rule.

    ``DOODLELAB_THREADS=n`` in the environment forces ``n`` threads for every pass
    (e.g. 2 on a machine known to be otherwise idle).
    """
    forced = os.environ.get(THREADS_ENV, "").strip()
    if forced:
        if not forced.isdigit() or int(forced) < 1:
            raise UserError(f"{THREADS_ENV} must be a positive integer (got {forced!r})")
        return int(forced)
    largest = 2 * rows * max((a * b for a, b in zip(widths[:-1], widths[1:])), default=0)
    return max(1, min(cpus or usable_cpus(), int(largest // FLOPS_PER_THREAD)))


@lru_cache(maxsize=1)
def _blas_controller():  # type: ignore[no-untyped-def]
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


@contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` threads in every BLAS library loaded (numpy's included)."""
    with _blas_controller().limit(limits=n):
        yield
