"""Checkers of notebook 04 (the torch twin): weights into torch's layout, and the relative error.

No torch here (the package's rule): the core stores a ``Linear`` weight ``(in, out)``
and torch ``(out, in)``, so the expected layout is a transpose worked out with numpy
on a small state dict; the relative error is checked on numbers worked out by hand.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from doodlelab.exercises.diagnosis import as_array, close
from doodlelab.exercises.verdict import CORRECT, WRONG, Verdict, attempt, checker, describe

LAYOUT, RELATIVE = "to_torch_layout", "relative_error"


def _sample_state() -> dict[str, np.ndarray]:
    """Return a numpy-layout state of a 6-4-3 MLP: weights (in, out), biases (out,)."""
    rng = np.random.default_rng(4)
    return {"0.weight": rng.normal(size=(6, 4)), "0.bias": rng.normal(size=4),
            "2.weight": rng.normal(size=(4, 3)), "2.bias": rng.normal(size=3)}


def _entry_problem(name: str, got: Any, numpy_value: np.ndarray) -> str:
    """Return what is wrong with one converted entry, or ""."""
    arr = as_array(got)
    is_weight = name.endswith("weight")
    want = numpy_value.T if is_weight else numpy_value
    if arr is None:
        return f"{name} is {describe(got)}, not an array"
    if is_weight and arr.shape == numpy_value.shape:
        return (f"{name} has shape {arr.shape}, the core's (in, out): torch's Linear stores (out, in) = "
                f"{want.shape}, so transpose the weight (.T)")
    if arr.shape != want.shape:
        return f"{name} has shape {arr.shape}, expected {want.shape}"
    if close(arr, want):
        return ""
    if is_weight and close(arr, numpy_value.reshape(want.shape)):
        return (f"{name} has the right shape but its entries are in the wrong places: transpose (.T), "
                "do not reshape")
    if not is_weight:
        return f"{name} changed: a bias keeps its shape and values, only weights are transposed"
    return f"{name} is not the transpose of the numpy weight"


@checker(LAYOUT)
def check_to_torch_layout(fn: Any) -> Verdict:
    """Check ``fn(state) -> state``: every ``*.weight`` transposed to (out, in), every bias unchanged."""
    state = _sample_state()
    got, verdict = attempt(LAYOUT, fn, {k: v.copy() for k, v in state.items()},
                           hint="state maps names such as '0.weight' to numpy arrays")
    if verdict:
        return verdict
    if not isinstance(got, dict):
        return Verdict(LAYOUT, WRONG, f"return a dict of arrays under the same names, got {describe(got)}")
    missing, extra = sorted(set(state) - set(got)), sorted(set(got) - set(state))
    if missing or extra:
        what = f"missing {', '.join(missing)}" if missing else f"unexpected {', '.join(map(str, extra))}"
        return Verdict(LAYOUT, WRONG, f"the names must stay the same: {what}")
    for name, value in state.items():
        problem = _entry_problem(name, got[name], value)
        if problem:
            return Verdict(LAYOUT, WRONG, problem)
    return Verdict(LAYOUT, CORRECT, "weights (in, out) -> (out, in), biases unchanged, names kept")


# -- the relative error ---------------------------------------------------------------------------

# Worked by hand: sizes max(|a|, |b|) = [10.1, 1, 0.003, 2]; the floor 1e-2 x 10.1 = 0.101 lifts the
# third; the gaps [0.1, 0, 0.003, 0] over [10.1, 1, 0.101, 2] give [0.0099, 0, 0.0297, 0].
A = (10.0, 1.0, 0.0, -2.0)
B = (10.1, 1.0, 0.003, -2.0)
EXPECTED = 0.003 / 0.101  # 0.029703
FLOOR = 1e-2
WRONG_FORMS = {  # a value the usual mistakes give on (A, B), and where to look
    0.1: "that is the largest absolute gap: divide each entry's gap by that entry's size",
    1.0: "an entry near zero decides (0.003 against 0 gives 1.0): entries smaller than floor x the "
         "largest are judged against that floor",
}
_BY_LARGEST = ("you divided by the largest entry of the whole tensor, so small entries' errors vanish: "
               "divide each entry's gap by its own size, max(|a_i|, |b_i|, floor x largest)")
WRONG_FORMS.update({0.1 / 10.1: _BY_LARGEST, 0.1 / 10.0: _BY_LARGEST,  # the largest of both, or of a
                    0.003 / 0.1: "the floor came from a alone (0.01 x 10): take floor x the largest |entry| "
                                 "of a and b together"})


@checker(RELATIVE)
def check_relative_error(fn: Any) -> Verdict:
    """Check ``fn(a, b, floor) -> float``: max_i |a_i - b_i| / max(|a_i|, |b_i|, floor x largest entry)."""
    got, verdict = attempt(RELATIVE, fn, np.array(A), np.array(B), FLOOR)
    if verdict:
        return verdict
    value = as_array(got)
    if value is None or value.size != 1:
        return Verdict(RELATIVE, WRONG, f"return one number (the largest relative gap), got {describe(got)}")
    value = float(value.reshape(()))
    if not math.isfinite(value):
        return Verdict(RELATIVE, WRONG, f"got {value} for a = {list(A)}, b = {list(B)}: a zero entry was "
                                        "divided by; judge entries against max(|a_i|, |b_i|, "
                                        "floor x largest)")
    if not math.isclose(value, EXPECTED, rel_tol=1e-6):
        for wrong, where in WRONG_FORMS.items():
            if math.isclose(value, wrong, rel_tol=1e-6):
                return Verdict(RELATIVE, WRONG, f"got {value:.4g} for a = {list(A)}, b = {list(B)}; {where}")
        return Verdict(RELATIVE, WRONG, f"got {value:.4g} for a = {list(A)}, b = {list(B)}, expected "
                                        f"{EXPECTED:.4g} (the third entry: 0.003 / (0.01 x 10.1))")
    zeros, verdict = attempt(RELATIVE, fn, np.zeros(3), np.zeros(3), FLOOR)
    if verdict:
        return verdict
    zero = as_array(zeros)
    if zero is None or zero.size != 1 or float(zero.reshape(())) != 0.0:
        return Verdict(RELATIVE, WRONG, f"two all-zero tensors give {zeros}, expected 0: they agree exactly "
                                        "(return 0 when the largest entry is 0)")
    return Verdict(RELATIVE, CORRECT, f"{EXPECTED:.4f} on the hand-worked pair, and 0 for two all-zero "
                                      "tensors")
