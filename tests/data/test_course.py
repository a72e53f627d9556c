"""Loading and validating course folders: every bad input is one clear DataError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from doodlelab.data.course import DataError, load_split, resolve_data_dir
from tests.conftest import make_course_folder


def test_loads_uint8_folder_as_float32_flat(course_dir):
    s = load_split(course_dir, "train")
    assert s.x.shape == (60, 784) and s.x.dtype == np.float32
    assert s.y.dtype == np.int64 and set(s.y) == {0, 1, 2, 3, 4}
    raw = np.load(course_dir / "train_images.npy").reshape(60, 784)
    np.testing.assert_array_equal(s.x, raw.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(s.y, np.load(course_dir / "train_labels.npy"))
    assert set(s.checksums) == {"train_images.npy", "train_labels.npy"}


def test_flat_and_float_images_are_accepted(tmp_path):
    make_course_folder(tmp_path, flat=True)
    a = load_split(tmp_path, "train")
    np.save(tmp_path / "train_images.npy", a.x.astype(np.float64))
    b = load_split(tmp_path, "train")
    np.testing.assert_allclose(a.x, b.x)


def _write(tmp_path: Path, images=None, labels=None) -> Path:
    make_course_folder(tmp_path)
    if images is not None:
        np.save(tmp_path / "train_images.npy", images)
    if labels is not None:
        np.save(tmp_path / "train_labels.npy", labels)
    return tmp_path


GOOD_Y = np.arange(60) % 5
GOOD_X = np.zeros((60, 28, 28), np.uint8)


@pytest.mark.parametrize(
    "images,labels,match",
    [
        (np.zeros((60, 28, 27), np.uint8), None, "shape"),
        (np.zeros((60, 10), np.uint8), None, "shape"),
        (np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64), "no images"),
        (np.full((60, 28, 28), np.nan), None, "NaN"),
        (np.full((60, 28, 28), 3.0), None, r"\[0, 1\]"),
        (np.full((60, 28, 28), 300, np.int32), None, "0..255"),
        (np.zeros((60, 28, 28), np.complex64), None, "dtype"),
        (None, np.arange(59) % 5, "59 labels"),
        (None, np.full(60, 7), "outside 0..4"),
        (None, np.r_[np.arange(59) % 5, 5], r"outside 0\.\.4 \(e\.g\. 5 at index 59\)"),  # label == K
        (None, np.full(60, -1), "outside 0..4"),
        (None, np.full(60, 0.5), "non-integer"),
        (None, np.full(60, np.nan), "NaN"),
        (None, np.zeros((60, 2), np.int64), "shape"),
        (None, np.array(["a"] * 60), "dtype"),
    ],
)
def test_bad_arrays_are_rejected_with_file_name(tmp_path, images, labels, match):
    _write(tmp_path, images, labels)
    with pytest.raises(DataError, match=match) as err:
        load_split(tmp_path, "train")
    assert "train_" in str(err.value) and "\n" not in str(err.value)


def test_labels_run_from_zero_to_k_minus_one_and_k_follows_classes_json(tmp_path):
    import json

    _write(tmp_path, labels=np.r_[np.arange(59) % 5, 4])  # K - 1 = 4 is the largest label
    assert load_split(tmp_path, "train").y[-1] == 4
    _write(tmp_path, labels=np.r_[np.arange(59) % 2, 2])
    (tmp_path / "classes.json").write_text(json.dumps(["cat", "dog", "owl"]))
    split = load_split(tmp_path, "train")  # K = 3: the labels 0..2 are fine
    assert split.classes == ("cat", "dog", "owl") and split.y[-1] == 2
    (tmp_path / "classes.json").write_text(json.dumps(["cat", "dog"]))
    with pytest.raises(DataError, match=r"outside 0\.\.1 \(e\.g\. 2 at index 59\)"):
        load_split(tmp_path, "train")  # K = 2: label 2 == K


def test_integer_labels_of_any_width_and_whole_floats_become_int64(tmp_path):
    for labels in (GOOD_Y.astype(np.uint8), GOOD_Y.astype(np.int32), GOOD_Y.astype(np.float64),
                   GOOD_Y.reshape(60, 1)):
        _write(tmp_path, labels=labels)
        y = load_split(tmp_path, "train").y
        assert y.dtype == np.int64
        np.testing.assert_array_equal(y, GOOD_Y)


def test_pixels_are_scaled_to_zero_one_from_every_integer_type(tmp_path):
    x = np.zeros((60, 784), np.int32)
    x[0, :3] = [0, 51, 255]
    _write(tmp_path, images=x)
    np.testing.assert_allclose(load_split(tmp_path, "train").x[0, :3], [0.0, 0.2, 1.0])
    _write(tmp_path, images=x.astype(np.float64) / 255)
    np.testing.assert_allclose(load_split(tmp_path, "train").x[0, :3], [0.0, 0.2, 1.0], rtol=1e-6)


def test_pickled_file_is_refused_without_unpickling(tmp_path):
    make_course_folder(tmp_path)
    np.save(tmp_path / "train_labels.npy", np.array([{"x": 1}] * 60, dtype=object),
            allow_pickle=True)
    with pytest.raises(DataError, match="pickled"):
        load_split(tmp_path, "train")


@pytest.mark.parametrize("content", [b"", b"not a numpy file at all", b"\x93NUMPY\x01\x00garbage"])
def test_unreadable_file(tmp_path, content):
    make_course_folder(tmp_path)
    (tmp_path / "train_images.npy").write_bytes(content)
    with pytest.raises(DataError, match="not a readable"):
        load_split(tmp_path, "train")


def test_missing_file_names_the_layout(tmp_path):
    make_course_folder(tmp_path)
    (tmp_path / "test_labels.npy").unlink()
    with pytest.raises(DataError, match="test_labels.npy is missing"):
        load_split(tmp_path, "test")


def test_data_dir_resolution_order(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    monkeypatch.setenv("DOODLELAB_DATA", str(b))
    assert resolve_data_dir(a) == a
    assert resolve_data_dir(None) == b
    monkeypatch.delenv("DOODLELAB_DATA")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="DOODLELAB_DATA"):
        resolve_data_dir(None)
    (tmp_path / "data" / "quickdraw_subset_np").mkdir(parents=True)
    assert resolve_data_dir(None) == Path("data/quickdraw_subset_np")
    with pytest.raises(DataError, match="does not exist"):
        resolve_data_dir(tmp_path / "nope")


def test_real_data_folder_validates(real_data_dir):
    train, test = load_split(real_data_dir, "train"), load_split(real_data_dir, "test")
    assert train.x.shape[1] == test.x.shape[1] == 784
    assert set(np.unique(train.y)) == {0, 1, 2, 3, 4}
