"""Images read on demand from a memory-mapped ``.npy`` file: out-of-core training data.

:class:`ImageRows` stands where a float32 ``(N, 784)`` array would: indexing it with a
slice, an index array or a boolean mask gathers those rows from the map and converts
only them (uint8 ``/ 255`` exactly as the in-memory loader does), so a training process
never holds the whole training set. File pages a gather touched are handed back to the
kernel every :data:`RELEASE_BYTES` read (``madvise(MADV_DONTNEED)``; they stay in the
page cache), so the resident memory of a process stays flat however large the file.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator

import numpy as np

N_PIXELS = 784
RELEASE_BYTES = 64 << 20  # hand mapped pages back after this many bytes were gathered
CHUNK_ROWS = 65_536  # rows per step when a whole file is scanned (validation)


def to_float(block: np.ndarray) -> np.ndarray:
    """Return pixels (B, 784) as float32 in [0, 1]: integers divided by 255, floats cast."""
    flat = block.reshape(block.shape[0], N_PIXELS)
    out = flat.astype(np.float32)
    if np.issubdtype(flat.dtype, np.integer):
        out /= np.float32(255)  # in place: the same division, without a second copy
    return out


class ImageRows:
    """Rows ``rows`` (default all) of an image array (M, 28, 28) or (M, 784), as float32 (N, 784)."""

    def __init__(self, source: np.ndarray, rows: np.ndarray | None = None) -> None:
        self.source = source
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self._gathered = 0

    @property
    def shape(self) -> tuple[int, int]:
        """Return (N, 784)."""
        return (len(self), N_PIXELS)

    dtype = np.dtype(np.float32)
    ndim = 2

    def __len__(self) -> int:
        return int(self.source.shape[0] if self.rows is None else self.rows.shape[0])

    def _source_rows(self, key: slice | np.ndarray) -> slice | np.ndarray:
        if isinstance(key, slice):
            return key if self.rows is None else self.rows[key]
        key = np.asarray(key)
        if key.dtype == np.bool_:
            key = np.flatnonzero(key)
        return key if self.rows is None else self.rows[key]

    def __getitem__(self, key: slice | np.ndarray) -> np.ndarray:
        """Return the chosen rows as float32 (B, 784), read from the file now."""
        picked = self._source_rows(key)
        block = np.asarray(self.source[picked])
        self._gathered += block.nbytes
        if self._gathered >= RELEASE_BYTES:
            self.release()
        return to_float(block)

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        """Return every row in memory (only for small sets: this is what the class avoids)."""
        out = self[slice(None)]
        return out if dtype is None else out.astype(dtype)

    def subset(self, idx: np.ndarray) -> ImageRows:
        """Return the view of rows ``idx`` of this one, still read on demand."""
        idx = np.asarray(idx, dtype=np.int64)
        return ImageRows(self.source, idx if self.rows is None else self.rows[idx])

    def release(self) -> None:
        """Hand the file pages mapped so far back to the kernel (no-op for in-memory arrays)."""
        self._gathered = 0
        handle = getattr(self.source, "_mmap", None)
        if isinstance(handle, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
            handle.madvise(mmap.MADV_DONTNEED)


def rows_of(x: np.ndarray | ImageRows, idx: np.ndarray) -> np.ndarray | ImageRows:
    """Return rows ``idx`` of ``x``: a lazy view for :class:`ImageRows`, a copy for an array."""
    return x.subset(idx) if isinstance(x, ImageRows) else x[idx]


def chunks(source: np.ndarray, chunk_rows: int | None = None) -> Iterator[np.ndarray]:
    """Yield ``source`` in blocks of ``chunk_rows`` (default :data:`CHUNK_ROWS`) rows, releasing pages."""
    chunk_rows = chunk_rows or CHUNK_ROWS
    view = ImageRows(source)
    for start in range(0, source.shape[0], chunk_rows):
        yield np.asarray(source[start : start + chunk_rows])
        view.release()
