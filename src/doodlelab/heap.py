"""How this process's C heap gives memory back: large freed arrays return to the system.

glibc's ``malloc`` serves a request above its mmap threshold (128 KiB at start) with a
fresh mapping that ``free`` unmaps. But each time such a block is freed the threshold
rises to its size (up to 32 MiB), so later arrays of a few MiB to 32 MiB come from the
heap instead, and a heap keeps its freed holes: a training process on a large folder
(label and index arrays of 10-20 MB made and dropped while the data is prepared, chunks
of images while a split is scored) kept some 40 MB it no longer used (measured with
``benchmarks/bench_scale.py memory``). :func:`return_large_blocks` fixes the threshold,
which also turns off that rise. Elsewhere than glibc (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h
LARGE_BLOCK = 1 << 20  # bytes: every block from this size up is its own mapping


def return_large_blocks(threshold: int = LARGE_BLOCK) -> bool:
    """Make blocks of ``threshold`` bytes or more separate mappings, unmapped when freed.

    Returns whether the setting was made (False off glibc or when the C library refuses).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, int(threshold)))
    except (OSError, AttributeError):
        return False
