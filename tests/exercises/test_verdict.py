"""The verdict (one line, never a traceback) and the diagnosis of an array, on hand-made values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from doodlelab.exercises.diagnosis import array_problem, fitted_factor, scalar_problem, unpack
from doodlelab.exercises.verdict import CORRECT, NOT_YET, WRONG, Verdict, attempt, checker, describe, one_line


def test_a_verdict_is_one_line_whatever_its_message() -> None:
    v = Verdict("f", WRONG, "first line\n  second\tline " + "x" * 400)
    assert "\n" not in str(v) and "\t" not in str(v)
    assert str(v).startswith("f: wrong. first line second line x")
    assert str(v).endswith("...") and len(v.message) == 300
    assert repr(v) == str(v)


def test_the_html_form_escapes_the_message() -> None:
    html = Verdict("f", CORRECT, "a < b & c")._repr_html_()
    assert "a &lt; b &amp; c" in html and "f: correct." in html


def test_one_line_keeps_a_short_text() -> None:
    assert one_line("a  b\n c") == "a b c"
    assert one_line("abcdef", limit=5) == "ab..."


def test_a_blank_is_not_yet_and_names_the_function() -> None:
    def fill_me(x):
        raise NotImplementedError

    result, verdict = attempt("ex", fill_me, 1)
    assert result is None and verdict.status == NOT_YET
    assert "fill_me still raises NotImplementedError" in verdict.message


def test_a_body_that_returns_nothing_is_not_yet() -> None:
    _, verdict = attempt("ex", lambda x: None, 1)
    assert verdict.status == NOT_YET and "returns nothing" in verdict.message


def test_an_exception_becomes_one_wrong_line_with_the_hint() -> None:
    def broken(x):
        raise ValueError("shapes (2,3)\nand (4,5) not aligned")

    _, verdict = attempt("ex", broken, 1, hint="look at the shapes")
    assert verdict.status == WRONG
    assert str(verdict) == ("ex: wrong. broken raised ValueError: shapes (2,3) and (4,5) not aligned; "
                            "look at the shapes")


def test_something_not_callable_is_named() -> None:
    _, verdict = attempt("ex", 3.0)
    assert verdict.status == WRONG
    assert "pass the function itself" in verdict.message and "not a float" in verdict.message


def test_numpy_warnings_of_the_learner_are_silenced() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result, verdict = attempt("ex", lambda x: np.log(x), np.array([0.0, -1.0]))
    assert verdict is None and np.isneginf(result[0]) and np.isnan(result[1])


def test_the_checker_wrapper_turns_its_own_surprise_into_a_line() -> None:
    @checker("ex")
    def check(fn):
        return fn() + 1  # a str + 1 fails inside the checker

    verdict = check(lambda: "text")
    assert verdict.status == WRONG
    assert verdict.message.startswith("could not read what ex returned (TypeError")


@pytest.mark.parametrize("value, phrase", [
    (None, "None"), (1.5, "a float"), (np.zeros((3, 4)), "an array of shape (3, 4)"),
    ((1, 2), "a tuple of 2"), ([1], "a list of 1"), (object(), "an object")])
def test_describe(value, phrase) -> None:
    assert describe(value) == phrase


EXPECTED = np.array([[1.0, -2.0, 0.5], [3.0, 0.25, -1.0]])  # (2, 3)


@pytest.mark.parametrize("got, phrase", [
    ("text", "g is a str, not an array of shape (2, 3)"),
    (EXPECTED.T, "g has shape (3, 2), expected (2, 3): it is transposed"),
    (EXPECTED[0], "g has shape (3,), expected (2, 3)"),
    (np.where(EXPECTED > 2, np.nan, EXPECTED), "g holds NaN or infinite values"),
    (-EXPECTED, "g has the wrong sign"),
    (4 * EXPECTED, "g is 4 times too large (the batch size is 4)"),
    (EXPECTED / 4, "g is 1/4 of the expected values (the batch size is 4)"),
    (-EXPECTED / 4, "g has the wrong sign and is -0.25 times the expected values"),
    (2.5 * EXPECTED, "g is 2.5 times the expected values"),
    (EXPECTED + np.array([[0, 0, 0], [0, 1.0, 0]]),
     "g differs from the expected values (largest gap at (1, 1): 1.25 where 0.25 is expected)"),
])
def test_array_problem_names_the_first_problem(got, phrase) -> None:
    assert array_problem("g", got, EXPECTED, batch=4) == phrase


def test_array_problem_accepts_a_match_within_the_tolerance_and_adds_hints() -> None:
    assert array_problem("g", EXPECTED * (1 + 1e-7), EXPECTED) is None
    assert array_problem("g", EXPECTED.T, EXPECTED, hints={"transposed": "use x.T @ d"}).endswith(
        "it is transposed: use x.T @ d")
    assert array_problem("g", EXPECTED + 1e-3, EXPECTED) is not None


def test_fitted_factor() -> None:
    assert fitted_factor(3 * EXPECTED, EXPECTED) == pytest.approx(3)
    assert fitted_factor(EXPECTED + 1, EXPECTED) is None
    assert fitted_factor(EXPECTED, np.zeros_like(EXPECTED)) is None


def test_scalar_problem() -> None:
    assert scalar_problem("loss", np.float32(2.0), 2.0) is None
    assert scalar_problem("loss", [2.0], 2.0) is None  # one number in a list is one number
    assert scalar_problem("loss", 16.0, 2.0, batch=8) == "loss is 8 times too large (the batch size is 8)"
    assert scalar_problem("loss", np.ones(8), 2.0, hints={"per_item": "take the mean"}) == (
        "loss is an array of shape (8,), not one number: take the mean")


def test_unpack() -> None:
    assert unpack((1, 2), ("a", "b")) == ((1, 2), "")
    assert unpack([1, 2], ("a", "b")) == ((1, 2), "")
    assert unpack(np.zeros(2), ("a", "b")) == (None, "return 2 values (a, b), got an array of shape (2,)")
