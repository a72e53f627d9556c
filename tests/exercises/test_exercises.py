"""The list of exercises, and the promise of every checker: one line back, whatever it is given."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from doodlelab.exercises import CORRECT, EXERCISES, NOT_YET, WRONG, Verdict, check


def test_at_least_ten_exercises_two_or_three_per_notebook() -> None:
    per_notebook = Counter(e.notebook for e in EXERCISES.values())
    assert len(EXERCISES) >= 10
    assert sorted(per_notebook) == ["01_data", "02_backprop", "03_training", "04_torch_twin", "05_two_tower"]
    assert all(2 <= n <= 3 for n in per_notebook.values()), per_notebook


def test_an_unknown_exercise_is_one_line_not_a_key_error() -> None:
    verdict = check("linear_forward", lambda x: x)
    assert verdict.status == WRONG and "there is no exercise 'linear_forward'" in verdict.message


class Weird:
    """A value no checker expects: not a number, not iterable, comparing to nothing."""

    def __array__(self, *args, **kwargs):
        raise RuntimeError("no array here")


def _interrupting(*args):
    raise KeyError("missing")


HOSTILE = {
    "a string": lambda *args: "done",
    "a dict": lambda *args: {"a": 1},
    "an object": lambda *args: Weird(),
    "a tuple of objects": lambda *args: (Weird(), Weird(), Weird()),
    "a list of strings": lambda *args: ["a", "b", "c"],
    "an empty list": lambda *args: [],
    "NaN everywhere": lambda *args: np.full((3, 3), np.nan),
    "a ragged list": lambda *args: [[1, 2], [3]],
    "an integer": lambda *args: 7,
    "a generator": lambda *args: (i for i in range(3)),
    "a KeyError": _interrupting,
    "a pair of None": lambda *args: (None, None),
    "a triple of strings": lambda *args: ("a", "b", "c"),
}


@pytest.mark.parametrize("name", list(EXERCISES))
def test_no_answer_ends_in_a_traceback(name) -> None:
    for label, fn in HOSTILE.items():
        verdict = check(name, fn)
        assert isinstance(verdict, Verdict) and verdict.status in (WRONG, NOT_YET), (label, str(verdict))
        assert "\n" not in str(verdict) and verdict.exercise == name


@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_learners_arguments_are_theirs_to_change(name) -> None:
    """A solution that scribbles over its inputs after computing still passes: the checker gives copies."""
    from tests.notebook_cells import solution

    good = solution(name)

    def scribbling(*args):
        result = good(*args)
        for a in args:
            if isinstance(a, np.ndarray) and a.dtype.kind == "f":
                a[...] = 12345.0
        return result

    assert check(name, scribbling).status == CORRECT
