"""Checkers of notebook 01 (the data): images to network inputs, and a stratified split.

The expectations are worked out here by hand: pixel values whose quotient by 255 is
known (255 -> 1.0, 51 -> 0.2), and a label vector whose classes have 40, 20, 30, 10
and 50 images, so a stratified 10 % holds exactly 4, 2, 3, 1 and 5 of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from doodlelab.exercises.diagnosis import array_problem, as_array, unpack
from doodlelab.exercises.verdict import CORRECT, WRONG, Verdict, attempt, checker, describe
from doodlelab.geometry import N_PIXELS, SHAPE, SIDE

PIXELS = "pixels_to_inputs"
SPLIT = "split_indices"


def _sample_images() -> tuple[np.ndarray, np.ndarray]:
    """Return 3 uint8 images (3, 28, 28) with known values and their inputs (3, 784) float32."""
    images = np.zeros((3, *SHAPE), dtype=np.uint8)
    images[0, 5, :] = 255  # a white row: 1.0
    images[1, :, 7] = 51  # a grey column: 51 / 255 = 0.2
    images[2, 10:20, 3:9] = 102  # a grey block: 0.4
    images[2, SIDE - 1, SIDE - 1] = 255  # the last pixel of the last image: the last entry of row 2
    expected = np.zeros((3, N_PIXELS), dtype=np.float32)
    expected[0, 5 * SIDE : 6 * SIDE] = 1.0
    expected[1, 7::SIDE] = 0.2
    for r in range(10, 20):
        expected[2, r * SIDE + 3 : r * SIDE + 9] = 0.4
    expected[2, N_PIXELS - 1] = 1.0
    return images, expected


@checker(PIXELS)
def check_pixels_to_inputs(fn: Any) -> Verdict:
    """Check ``fn(images (N, 28, 28) uint8) -> (N, 784) float32 in [0, 1]`` on hand-worked pixels."""
    images, expected = _sample_images()
    got, verdict = attempt(PIXELS, fn, images.copy(), hint=f"the input is uint8 (N, {SIDE}, {SIDE})")
    if verdict:
        return verdict
    arr = as_array(got)
    if arr is not None and arr.shape == images.shape:
        return Verdict(PIXELS, WRONG, f"the result has shape {images.shape}: flatten each image to one row "
                                      f"of {N_PIXELS} values, (N, {N_PIXELS}), with reshape(len(images), -1)")
    if arr is not None and arr.shape == expected.shape:
        if arr.max() > 1.0:
            return Verdict(PIXELS, WRONG, f"values go up to {arr.max():g}: divide by 255 so that the "
                                          "pixels lie in [0, 1]")
        if np.isin(arr, (0.0, 1.0)).all():
            return Verdict(PIXELS, WRONG, "every value is 0 or 1: the grey pixels were rounded away "
                                          "(integer division?); divide as floats, images / 255")
        if np.allclose(np.sort(arr, axis=1), np.sort(expected, axis=1)) and not np.allclose(arr, expected):
            return Verdict(PIXELS, WRONG, "the right values in the wrong order: flatten each image row "
                                          "by row (reshape), without transposing it")
    problem = array_problem("the result", got, expected.astype(np.float64),
                            hints={"values": "divide the uint8 pixels by 255"})
    if problem:
        return Verdict(PIXELS, WRONG, problem)
    if np.asarray(got).dtype != np.float32:
        return Verdict(PIXELS, WRONG, f"the values are right but the dtype is {np.asarray(got).dtype}: "
                                      "the network trains in float32, add .astype(np.float32)")
    return Verdict(PIXELS, CORRECT, f"uint8 (N, {SIDE}, {SIDE}) -> float32 (N, {N_PIXELS}) in [0, 1], "
                                    "pixels in row order")


# -- the stratified split ----------------------------------------------------------------------

CLASS_SIZES = (40, 20, 30, 10, 50)  # a 10 % stratified split keeps 4, 2, 3, 1, 5 of them
VAL_FRACTION = 0.1


def _sample_labels() -> np.ndarray:
    """Return 150 labels (150,) with :data:`CLASS_SIZES` images per class, in a seeded shuffled order."""
    labels = np.repeat(np.arange(len(CLASS_SIZES)), CLASS_SIZES)
    return np.random.default_rng(1234).permutation(labels)


def _as_indices(value: Any, name: str) -> tuple[np.ndarray | None, str]:
    """Return (value as an int64 1-D array, "") or (None, what is wrong)."""
    arr = as_array(value)
    if arr is None or arr.ndim != 1:
        return None, f"{name} should be a 1-D array of indices, got {describe(value)}"
    if not np.all(arr == np.round(arr)):
        return None, f"{name} holds non-integers: it should hold indices into labels"
    return arr.astype(np.int64), ""


def _partition_problem(train: np.ndarray, val: np.ndarray, n: int) -> str:
    """Return what keeps (train, val) from being a partition of range(n), or ""."""
    for name, idx in (("train_idx", train), ("val_idx", val)):
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            return f"{name} holds {int(idx.min() if idx.min() < 0 else idx.max())}, outside 0..{n - 1}"
        if np.unique(idx).size != idx.size:
            return f"{name} holds an index twice: draw without replacement (rng.permutation)"
    shared = np.intersect1d(train, val).size
    if shared:
        return f"{shared} indices are in both train_idx and val_idx: an image belongs to one side only"
    missing = n - train.size - val.size
    if missing:
        return f"{missing} of the {n} images are on neither side: every index 0..{n - 1} goes to one side"
    return ""


def _strata_problem(val: np.ndarray, labels: np.ndarray) -> str:
    """Return how the validation side misses round(VAL_FRACTION * n_c) images of each class c, or ""."""
    want = [round(VAL_FRACTION * s) for s in CLASS_SIZES]
    counts = np.bincount(labels[val], minlength=len(CLASS_SIZES))
    if val.size == labels.size - sum(want):
        return "val_idx holds 90 % of the images: train and validation are swapped"
    for c, (have, need) in enumerate(zip(counts, want)):
        if have != need:
            share = "the right total but " if val.size == sum(want) else ""
            return (f"{share}class {c} has {have} of its {CLASS_SIZES[c]} images in validation, expected "
                    f"{need}: take round(val_fraction * n_c) images within each class")
    return ""


def _split(fn: Any, labels: np.ndarray,
           seed: int) -> tuple[tuple[np.ndarray, np.ndarray] | None, Verdict | None]:
    """Call the learner's split; return ((train_idx, val_idx), None) or (None, the verdict)."""
    got, verdict = attempt(SPLIT, fn, labels.copy(), VAL_FRACTION, seed,
                           hint="split_indices(labels, val_fraction, seed) returns (train_idx, val_idx)")
    if verdict:
        return None, verdict
    parts, problem = unpack(got, ("train_idx", "val_idx"))
    if parts is None:
        return None, Verdict(SPLIT, WRONG, problem)
    (train, p1), (val, p2) = _as_indices(parts[0], "train_idx"), _as_indices(parts[1], "val_idx")
    if train is None or val is None:
        return None, Verdict(SPLIT, WRONG, p1 or p2)
    return (train, val), None


@checker(SPLIT)
def check_split_indices(fn: Any) -> Verdict:
    """Check ``fn(labels, val_fraction, seed) -> (train_idx, val_idx)``: a seeded stratified partition."""
    labels = _sample_labels()
    first, verdict = _split(fn, labels, 0)
    if verdict:
        return verdict
    problem = _partition_problem(*first, labels.size) or _strata_problem(first[1], labels)
    if problem:
        return Verdict(SPLIT, WRONG, problem)
    again, verdict = _split(fn, labels, 0)
    if verdict:
        return verdict
    if not np.array_equal(np.sort(again[1]), np.sort(first[1])):
        return Verdict(SPLIT, WRONG, "two calls with seed 0 gave different splits: draw from "
                                     "np.random.default_rng(seed), not from numpy's global state")
    other, verdict = _split(fn, labels, 1)
    if verdict:
        return verdict
    if np.array_equal(np.sort(other[1]), np.sort(first[1])):
        return Verdict(SPLIT, WRONG, "seeds 0 and 1 give the same split: the images should be picked at "
                                     "random, from a generator made with the seed")
    return Verdict(SPLIT, CORRECT, "a seeded partition with round(10 % of each class) in validation "
                                   "(4, 2, 3, 1, 5 of 40, 20, 30, 10, 50)")
