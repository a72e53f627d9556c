"""benchmarks/make_assignment_size.py: a class-balanced course folder grown by whole-pixel moves."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from doodlelab.data.augment import shift_images
from doodlelab.data.course import load_split
from tests.conftest import make_course_folder

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "make_assignment_size.py"


def _script():
    spec = importlib.util.spec_from_file_location("make_assignment_size", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _moves_of(image: np.ndarray) -> dict[bytes, tuple[int, int]]:
    """Return every 0-2 pixel move of one (28, 28) image, keyed by its bytes."""
    flat = image.reshape(1, 784)
    return {shift_images(flat, np.array([r]), np.array([c])).tobytes(): (r, c)
            for r in range(-2, 3) for c in range(-2, 3)}


def test_grows_each_split_from_its_own_images_balanced_and_repeatable(tmp_path: Path) -> None:
    src = make_course_folder(tmp_path / "src", n_train=40, n_test=15)
    script = _script()
    assert script.main([str(tmp_path / "a"), "--source", str(src), "--train", "103", "--test", "50"]) == 0
    assert script.main([str(tmp_path / "b"), "--source", str(src), "--train", "103", "--test", "50"]) == 0
    for name in script.FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    for split, total, per_class in (("train", 103, [21, 21, 21, 20, 20]), ("test", 50, [10] * 5)):
        x = np.load(tmp_path / "a" / f"{split}_images.npy")
        y = np.load(tmp_path / "a" / f"{split}_labels.npy")
        assert x.shape == (total, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
        assert np.bincount(y).tolist() == per_class
        sx, sy = np.load(src / f"{split}_images.npy"), np.load(src / f"{split}_labels.npy")
        known = {}
        for i in range(sx.shape[0]):  # every move of every source image of this split
            known.update({k: (i, m) for k, m in _moves_of(sx[i]).items()})
        seen = set()
        for img, label in zip(x, y):
            i, move = known[img.tobytes()]  # KeyError: not a 0-2 pixel move of this split's images
            assert sy[i] == label and (i, move) not in seen  # no image repeats a move
            seen.add((i, move))
        assert {i for i, m in seen if m == (0, 0)} == set(range(sx.shape[0]))  # every original kept
    assert len(load_split(tmp_path / "a", "train")) == 103  # the course loader accepts the folder


def test_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    src = make_course_folder(tmp_path / "src", n_train=10, n_test=5)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not empty"):
        _script().main([str(tmp_path / "out"), "--source", str(src)])
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
