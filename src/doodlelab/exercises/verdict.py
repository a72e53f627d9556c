"""What a checker answers: one line (correct, wrong or not yet), never a traceback.

A checker calls the learner's function through :func:`attempt`, which turns a blank
(``raise NotImplementedError``, or a body that returns nothing) into "not yet" and any
other exception into one "wrong" line naming it, with numpy's warnings silenced so the
verdict is the only thing the cell prints. :func:`checker` wraps a whole checker so that
even a return value it did not foresee ends as one line, not a traceback.
"""

from __future__ import annotations

import functools
import html
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

CORRECT, WRONG, NOT_YET = "correct", "wrong", "not yet"
MAX_LINE = 300  # characters of a verdict's message; a longer one is cut with "..."
_COLORS = {CORRECT: "#1a7f37", WRONG: "#cf222e", NOT_YET: "#9a6700"}
_MARKS = {CORRECT: "\u2714", WRONG: "\u2718", NOT_YET: "\u2026"}  # check mark, cross, ellipsis


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """Return ``text`` with its whitespace runs (newlines too) made single spaces, cut at ``limit``."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


@dataclass(frozen=True)
class Verdict:
    """A checker's answer: the exercise, its status and one line saying what is wrong and where to look."""

    exercise: str
    status: str  # CORRECT, WRONG or NOT_YET
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", one_line(self.message))

    @property
    def correct(self) -> bool:
        """Return True when the learner's function passed every check."""
        return self.status == CORRECT

    def __str__(self) -> str:
        return f"{self.exercise}: {self.status}. {self.message}"

    __repr__ = __str__  # what a notebook cell shows as text

    def _repr_html_(self) -> str:
        mark, color = _MARKS[self.status], _COLORS[self.status]
        return (f'<span style="color:{color}"><b>{mark} {html.escape(self.exercise)}: {self.status}.</b> '
                f"{html.escape(self.message)}</span>")


def _blank_verdict(exercise: str, fn: Callable[..., Any]) -> Verdict:
    name = getattr(fn, "__name__", exercise)
    return Verdict(exercise, NOT_YET, f"{name} still raises NotImplementedError: write its body in place of "
                                      "that line and run the cell again")


def attempt(exercise: str, fn: Any, *args: Any, hint: str = "") -> tuple[Any, Verdict | None]:
    """Call ``fn(*args)``; return (its result, None), or (None, the verdict) when it cannot be judged.

    "not yet" for a blank (NotImplementedError, or None returned); "wrong" for a value
    that is not a function or any other exception, with ``hint`` saying where to look.
    """
    name = getattr(fn, "__name__", exercise)
    if not callable(fn):
        return None, Verdict(exercise, WRONG, f"pass the function itself (check({exercise!r}, {exercise})), "
                                              f"not {describe(fn)}")
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            result = fn(*args)
    except NotImplementedError:
        return None, _blank_verdict(exercise, fn)
    except Exception as exc:  # the learner's code: any error becomes one line
        first = one_line(str(exc), 120) or "(no message)"
        where = f"; {hint}" if hint else ""
        return None, Verdict(exercise, WRONG, f"{name} raised {type(exc).__name__}: {first}{where}")
    if result is None or result is Ellipsis:
        return None, Verdict(exercise, NOT_YET, f"{name} returns nothing yet: finish its body so that it "
                                                "returns its result, then run the cell again")
    return result, None


def checker(exercise: str) -> Callable[[Callable[[Any], Verdict]], Callable[[Any], Verdict]]:
    """Decorate a checker so that nothing it meets ends in a traceback: an error becomes a "wrong" line."""

    def wrap(check: Callable[[Any], Verdict]) -> Callable[[Any], Verdict]:
        @functools.wraps(check)
        def run(fn: Any) -> Verdict:
            try:
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    return check(fn)
            except Exception as exc:  # a return value no rule foresaw
                return Verdict(exercise, WRONG, f"could not read what {exercise} returned "
                                                f"({type(exc).__name__}: {one_line(str(exc), 100)}); "
                                                "compare its type and shape with the docstring")
        return run

    return wrap


def describe(value: Any) -> str:
    """Return a short phrase for a value: "None", "a float", "an array of shape (3, 4)", "a tuple of 2"."""
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    if isinstance(value, (tuple, list, dict)):
        return f"a {type(value).__name__} of {len(value)}"
    name = type(value).__name__
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"
