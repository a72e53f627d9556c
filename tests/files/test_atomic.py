"""Atomic writes: all or nothing, and the file mode a plain open() would give."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from doodlelab.files import atomic


def test_written_files_get_the_usual_mode_not_mkstemps_0600(tmp_path):
    path = atomic.write_json(tmp_path / "a.json", {"x": 1})
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == atomic.FILE_MODE


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = atomic.write_text(tmp_path / "a.txt", "old")

    def boom(fh):
        fh.write(b"half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic._atomic(path, boom)
    assert path.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_npz_round_trip_without_pickles(tmp_path):
    path = atomic.write_npz(tmp_path / "w.npz", a=np.arange(3.0))
    with np.load(path, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["a"], np.arange(3.0))
