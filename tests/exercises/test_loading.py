"""Checkers of notebook 01: the solution passes, the blank is "not yet", plausible mistakes are named."""

from __future__ import annotations

import numpy as np
import pytest

from doodlelab.exercises import CORRECT, NOT_YET, WRONG, check
from doodlelab.exercises.loading import CLASS_SIZES, _sample_images, _sample_labels
from tests.notebook_cells import blank, solution


def test_the_hand_worked_pixels() -> None:
    images, expected = _sample_images()
    assert expected[0, 140:168].tolist() == [1.0] * 28  # row 5 of image 0, white
    assert expected[1, 7] == np.float32(0.2) and expected[1, 7 + 28] == np.float32(0.2)  # 51 / 255
    assert expected[2, 783] == 1.0 and images[2, 27, 27] == 255
    assert np.count_nonzero(expected[2]) == 61  # a 10 x 6 block and the last pixel


def test_the_hand_worked_labels() -> None:
    assert np.bincount(_sample_labels()).tolist() == list(CLASS_SIZES)


@pytest.mark.parametrize("name", ["pixels_to_inputs", "split_indices"])
def test_the_notebook_solution_passes_and_the_blank_is_not_yet(name) -> None:
    assert check(name, solution(name)).status == CORRECT
    assert check(name, blank(name)).status == NOT_YET


PIXEL_MISTAKES = {
    "no flattening": (lambda im: (im / 255).astype(np.float32), "has shape (3, 28, 28): flatten each image"),
    "no scaling": (lambda im: im.reshape(len(im), -1).astype(np.float32),
                   "values go up to 255: divide by 255"),
    "integer division": (lambda im: (im.reshape(len(im), -1) // 255).astype(np.float32),
                         "every value is 0 or 1: the grey pixels were rounded away"),
    "float64 left": (lambda im: im.reshape(len(im), -1) / 255, "the dtype is float64: the network trains in "
                                                                "float32"),
    "transposed images": (lambda im: (im.transpose(0, 2, 1).reshape(len(im), -1) / 255).astype(np.float32),
                          "the right values in the wrong order: flatten each image row by row"),
    "flattened (784, N)": (lambda im: (im.reshape(len(im), -1).T / 255).astype(np.float32),
                           "has shape (784, 3), expected (3, 784): it is transposed"),
}


@pytest.mark.parametrize("mistake", PIXEL_MISTAKES)
def test_pixel_mistakes_are_named(mistake) -> None:
    fn, phrase = PIXEL_MISTAKES[mistake]
    verdict = check("pixels_to_inputs", fn)
    assert verdict.status == WRONG and phrase in verdict.message and "\n" not in str(verdict)


def _split_with(pick):
    """Return a split function whose validation side is pick(labels, val_fraction, rng)."""
    def split(labels, val_fraction, seed):
        val = np.unique(pick(labels, val_fraction, np.random.default_rng(seed)))
        return np.setdiff1d(np.arange(labels.size), val), val
    return split


SPLIT_MISTAKES = {
    "plain random": (_split_with(lambda y, f, rng: rng.permutation(y.size)[: round(f * y.size)]),
                     "the right total but class"),
    "floor of the total, first of each class": (
        _split_with(lambda y, f, rng: np.concatenate([np.flatnonzero(y == c)[: round(f * (y == c).sum())]
                                                       for c in np.unique(y)])),
        "seeds 0 and 1 give the same split"),
    "global state": (_split_with(lambda y, f, rng: np.concatenate(
        [np.random.permutation(np.flatnonzero(y == c))[: round(f * (y == c).sum())] for c in np.unique(y)])),
        "two calls with seed 0 gave different splits"),
    "swapped": (lambda y, f, s: solution("split_indices")(y, f, s)[::-1], "train and validation are swapped"),
    "overlap": (lambda y, f, s: (np.arange(y.size), solution("split_indices")(y, f, s)[1]),
                "indices are in both train_idx and val_idx"),
    "a part lost": (lambda y, f, s: (solution("split_indices")(y, f, s)[0][10:],
                                     solution("split_indices")(y, f, s)[1]),
                    "10 of the 150 images are on neither side"),
    "with replacement": (lambda y, f, s: (np.arange(y.size), np.zeros(15, int)),
                         "val_idx holds an index twice"),
    "one array": (lambda y, f, s: np.arange(y.size), "return 2 values (train_idx, val_idx)"),
}


@pytest.mark.parametrize("mistake", SPLIT_MISTAKES)
def test_split_mistakes_are_named(mistake) -> None:
    fn, phrase = SPLIT_MISTAKES[mistake]
    verdict = check("split_indices", fn)
    assert verdict.status == WRONG and phrase in verdict.message, str(verdict)
