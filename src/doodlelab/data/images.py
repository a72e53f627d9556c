"""Images read on demand from a memory-mapped ``.npy`` file: out-of-core training data.

:class:`ImageRows` stands where a float32 ``(N, 784)`` array would: indexing it with a
slice, an index array or a boolean mask gathers those rows and converts only them
(uint8 ``/ 255`` exactly as the in-memory loader does), so a training process never
holds the whole training set. The map (``np.load(mmap_mode="r")``) gives the layout;
the rows of a memory-mapped file are read with ``os.pread`` at their offsets rather
than through the map, because touching one mapped row makes the kernel map a whole
large folio (measured on Linux 6.18: 12,800 random rows of a 2 GB file left 1.9 GB
resident), which would grow a process with the file. Scans through the map
(:func:`chunks`) hand their pages back after each chunk (``madvise(MADV_DONTNEED)``;
they stay in the page cache). Resident memory stays flat however large the file.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator

import numpy as np

from doodlelab.geometry import N_PIXELS

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
        self._fd: int | None = None

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

    def __getitem__(self, key: int | slice | np.ndarray | tuple) -> np.ndarray:
        """Return the chosen rows as float32 (B, 784) (one row: (784,)), read from the file now.

        A tuple picks rows with its first element and pixels with the rest, as for an array.
        """
        if isinstance(key, tuple):
            rows = self[key[0]]
            return rows[key[1:]] if rows.ndim == 1 else rows[(slice(None), *key[1:])]
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        picked = self._source_rows(key)
        if not isinstance(self.source, np.memmap) or self.source.filename is None:
            return to_float(np.asarray(self.source[picked]))
        ids = np.arange(*picked.indices(self.source.shape[0])) if isinstance(picked, slice) else picked
        return to_float(self._pread(np.asarray(ids, dtype=np.int64)))

    def _pread(self, ids: np.ndarray) -> np.ndarray:
        """Return rows ``ids`` of the mapped file read with ``os.pread`` (runs of rows in one call)."""
        src = self.source
        row_bytes = src.itemsize * int(np.prod(src.shape[1:]))
        if self._fd is None:  # the loader's descriptor of the file, else the file opened now
            shared = getattr(src, "source_fd", None)
            self._fd = os.dup(shared) if shared is not None else os.open(src.filename, os.O_RDONLY)
        ids = np.where(ids < 0, ids + src.shape[0], ids)
        out = np.empty((ids.shape[0], *src.shape[1:]), dtype=src.dtype)
        buf = memoryview(out.reshape(-1).view(np.uint8))
        # A new run starts wherever the next row is not the one after the previous.
        starts = np.flatnonzero(np.diff(ids, prepend=-2) != 1)
        for first, stop in zip(starts, [*starts[1:], ids.shape[0]]):
            want = (stop - first) * row_bytes
            got = os.preadv(self._fd, [buf[first * row_bytes : first * row_bytes + want]],
                            src.offset + int(ids[first]) * row_bytes)
            if got != want:
                raise OSError(f"{src.filename} is shorter than its header says (rows {ids[first]}+)")
        return out

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

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
