"""Checkers of notebook 04: the solution passes, the blank is "not yet", plausible mistakes are named."""

from __future__ import annotations

import numpy as np
import pytest

from doodlelab.exercises import CORRECT, NOT_YET, WRONG, check
from doodlelab.exercises.parity import EXPECTED, A, B, _sample_state
from tests.conftest import need_module
from tests.notebook_cells import blank, solution


@pytest.mark.parametrize("name", ["to_torch_layout", "relative_error"])
def test_the_notebook_solution_passes_and_the_blank_is_not_yet(name) -> None:
    assert check(name, solution(name)).status == CORRECT
    assert check(name, blank(name)).status == NOT_YET


def test_the_expected_layout_is_what_torch_loads() -> None:
    """A state in torch's layout, as the checker expects it, loads into torch's Linear layers and
    computes what the numpy layout computes."""
    torch = need_module("torch", "torch")
    state = _sample_state()
    twin = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3)).double()
    twin.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(solution("to_torch_layout")(state)[k]))
                          for k in state})
    x = np.random.default_rng(0).normal(size=(2, 6))
    hidden = np.maximum(x @ state["0.weight"] + state["0.bias"], 0)
    expected = hidden @ state["2.weight"] + state["2.bias"]
    assert twin(torch.from_numpy(x)).detach().numpy() == pytest.approx(expected)


def test_the_hand_worked_relative_error() -> None:
    # Entry by entry: gaps [0.1, 0, 0.003, 0]; sizes [10.1, 1, 0.003, 2], the third floored to 0.101.
    assert EXPECTED == pytest.approx(0.0297029703)
    assert np.abs(np.subtract(A, B)).max() == pytest.approx(0.1)


LAYOUT_MISTAKES = {
    "nothing transposed": (lambda s: dict(s), "0.weight has shape (6, 4), the core's (in, out): torch's "
                                               "Linear stores (out, in) = (4, 6)"),
    "reshaped": (lambda s: {k: (a.reshape(a.shape[::-1]) if a.ndim == 2 else a) for k, a in s.items()},
                 "0.weight has the right shape but its entries are in the wrong places"),
    "bias flipped": (lambda s: {k: (a.T if a.ndim == 2 else a[::-1]) for k, a in s.items()},
                     "0.bias changed"),
    "names lost": (lambda s: [a.T for a in s.values()],
                   "return a dict of arrays under the same names, got a list"),
    "renamed": (lambda s: {k.replace("weight", "W"): a.T if a.ndim == 2 else a for k, a in s.items()},
                "the names must stay the same: missing 0.weight, 2.weight"),
    "weights as nested lists": (lambda s: {k: a.T.tolist() if a.ndim == 2 else a for k, a in s.items()}, ""),
}

RELATIVE_MISTAKES = {
    "absolute gap": (lambda a, b, f: np.abs(a - b).max(), "that is the largest absolute gap"),
    "no floor": (lambda a, b, f: np.max(np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-300)),
                 "an entry near zero decides"),
    "by the largest entry": (lambda a, b, f: np.abs(a - b).max() / np.abs(a).max(),
                             "you divided by the largest entry of the whole tensor"),
    "by |a| alone": (lambda a, b, f: np.max(np.abs(a - b) / np.abs(a)), "a zero entry was divided by"),
    "nan for zeros": (lambda a, b, f: float(np.max(np.abs(a - b) / np.maximum(
        np.maximum(np.abs(a), np.abs(b)), f * max(np.abs(a).max(), np.abs(b).max())))),
                      "two all-zero tensors give nan, expected 0"),
    "floor from a alone": (lambda a, b, f: float(np.max(np.abs(a - b) / np.maximum(
        np.maximum(np.abs(a), np.abs(b)), f * np.abs(a).max()))), "the floor came from a alone"),
    "per-entry array": (lambda a, b, f: np.abs(a - b) / np.maximum(np.abs(a), 1), "return one number"),
}


@pytest.mark.parametrize("name, mistakes", [("to_torch_layout", LAYOUT_MISTAKES),
                                             ("relative_error", RELATIVE_MISTAKES)])
def test_mistakes_are_named(name, mistakes) -> None:
    for mistake, (fn, phrase) in mistakes.items():
        verdict = check(name, fn)
        if not phrase:  # nested lists are arrays too: accepted
            assert verdict.status == CORRECT, (mistake, str(verdict))
            continue
        assert verdict.status == WRONG and phrase in verdict.message, (mistake, str(verdict))
        assert "\n" not in str(verdict)
