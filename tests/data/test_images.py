"""Out-of-core images: rows gathered from a memory map, validated chunk by chunk."""

from __future__ import annotations

import numpy as np
import pytest

from doodlelab.data import course, images
from doodlelab.data.course import DataError, load_split
from doodlelab.data.images import ImageRows, rows_of
from tests.conftest import make_course_folder


@pytest.fixture
def mapped(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (300, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    return x, np.load(tmp_path / "x.npy", mmap_mode="r")


def test_gathers_convert_only_the_chosen_rows_exactly(mapped):
    x, mm = mapped
    rows = ImageRows(mm)
    idx = np.array([299, 0, 17, 17])
    expected = x.reshape(300, 784)[idx].astype(np.float32) / np.float32(255)
    assert np.array_equal(rows[idx], expected) and rows[idx].dtype == np.float32
    assert np.array_equal(rows[5:9], x[5:9].reshape(4, 784) / np.float32(255))
    sub = rows.subset(np.arange(100, 300, 2))  # rows 100, 102, ...
    assert len(sub) == 100 and sub.shape == (100, 784)
    assert np.array_equal(sub[np.array([0, 99])], rows[np.array([100, 298])])
    assert np.array_equal(sub.subset(np.array([3]))[0:1], rows[np.array([106])])
    mask = np.zeros(100, bool)
    mask[[1, 4]] = True
    assert np.array_equal(sub[mask], rows[np.array([102, 108])])
    assert np.array_equal(rows_of(np.asarray(rows), np.array([2])), rows[np.array([2])])


def _resident_file_mb() -> float | None:
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("RssFile:"))
    except (OSError, StopIteration):
        return None


def test_random_gathers_do_not_make_the_file_resident(tmp_path):
    if _resident_file_mb() is None:
        pytest.skip("no /proc/self/status RssFile on this system")
    n = 60_000  # 47 MB of images
    x = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.uint8, shape=(n, 784))
    x[:, 0] = np.arange(n) % 251
    x.flush()
    del x
    rows = ImageRows(np.load(tmp_path / "big.npy", mmap_mode="r"))
    before = _resident_file_mb()
    idx = np.random.default_rng(0).integers(0, n, 4000)
    got = np.concatenate([rows[idx[i : i + 64]] for i in range(0, idx.size, 64)])
    assert np.array_equal(got[:, 0], (idx % 251).astype(np.float32) / np.float32(255))
    assert _resident_file_mb() - before < 8  # through the map this was the whole file


def test_a_bad_pixel_in_a_late_chunk_is_found_without_loading_the_file(tmp_path, monkeypatch):
    make_course_folder(tmp_path)
    x = np.random.default_rng(1).random((60, 784))
    x[57, 3] = np.nan
    np.save(tmp_path / "train_images.npy", x)
    monkeypatch.setattr(images, "CHUNK_ROWS", 8)
    seen = []
    real = course._check_pixels
    monkeypatch.setattr(course, "_check_pixels", lambda b, n: seen.append(b.shape[0]) or real(b, n))
    with pytest.raises(DataError, match="NaN"):
        load_split(tmp_path, "train")
    assert max(seen) == 8 and sum(seen) == 60  # every chunk looked at, none bigger than 8 rows
    x[57, 3] = 1.5
    np.save(tmp_path / "train_images.npy", x)
    with pytest.raises(DataError, match=r"float pixels in \[.*, 1\.5\]"):
        load_split(tmp_path, "train")
