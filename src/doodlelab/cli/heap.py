"""How this process's C heap gives memory back: large freed arrays return to the system.

glibc's ``malloc`` serves a request above its mmap threshold (128 KiB at start) with a
fresh mapping that ``free`` unmaps. But each time such a block is freed the threshold
rises to its size (up to 32 MiB), so later arrays of a few MiB to 32 MiB come from the
heap instead, and a heap keeps its freed holes: a training process on a large folder
(label and index arrays of 10-20 MB made and dropped while the data is prepared, chunks
of images while a split is scored) kept some 40 MB it no longer used (measured with
``benchmarks/bench_scale.py memory``).

:func:`return_large_blocks` fixes the mmap threshold at 8 MiB: arrays that grow with the
data (a split's labels and indices, a chunk of images) are mappings, given back when
freed. A training step's own arrays (a weight gradient of 784 x 512 float32 is 1.6 MB)
stay below it and are reused from the heap. Fixing one threshold also stops glibc
moving the other, the heap's trim threshold, which then falls back to 128 KiB and makes
every step give its pages back and fault them in again (the numpy core's epoch took
1.3 to 1.8 times as long, measured); it is fixed at 64 MiB, the top of the range glibc's
own rule would reach. Elsewhere than glibc (macOS, musl) nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1  # mallopt's parameter numbers in glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 8 << 20  # bytes: every block from this size up is its own mapping
TRIM_THRESHOLD = 64 << 20  # bytes of free heap top kept for the next allocations


def return_large_blocks(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Make blocks of ``mmap_threshold`` bytes or more separate mappings, unmapped when freed.

    Returns whether both settings were made (False off glibc or when the C library refuses).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))
                    and libc.mallopt(M_TRIM_THRESHOLD, int(trim_threshold)))
    except (OSError, AttributeError):
        return False
