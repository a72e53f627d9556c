"""Checkers of notebook 03: the solution passes, the blank is "not yet", plausible mistakes are named."""

from __future__ import annotations

import numpy as np
import pytest

from doodlelab.exercises import CORRECT, NOT_YET, WRONG, check
from doodlelab.exercises.descent import LR, MU, P_MOMENTUM, P_NESTEROV, V_NEW, G, P, V
from tests.conftest import need_module
from tests.notebook_cells import blank, solution


@pytest.mark.parametrize("name", ["minibatch_indices", "momentum_step", "nesterov_step"])
def test_the_notebook_solution_passes_and_the_blank_is_not_yet(name) -> None:
    assert check(name, solution(name)).status == CORRECT
    assert check(name, blank(name)).status == NOT_YET


@pytest.mark.parametrize("nesterov, p_new", [(False, P_MOMENTUM), (True, P_NESTEROV)])
def test_the_hand_worked_steps_are_torchs(nesterov, p_new) -> None:
    """torch.optim.SGD, given the same velocity buffer, moves p to the values worked out by hand."""
    torch = need_module("torch", "torch")
    p = torch.tensor(P, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=LR, momentum=MU, nesterov=nesterov)
    p.grad = torch.tensor(G, dtype=torch.float64)
    opt.state[p]["momentum_buffer"] = torch.tensor(V, dtype=torch.float64)
    opt.step()
    assert p.detach().numpy() == pytest.approx(p_new, abs=1e-12)
    assert opt.state[p]["momentum_buffer"].numpy() == pytest.approx(V_NEW, abs=1e-12)


def _step(v_of, p_of):
    def step(p, g, v, lr, mu):
        v_new = v_of(p, g, v, lr, mu)
        return p_of(p, g, v, v_new, lr, mu), v_new
    return step


TORCH_V = lambda p, g, v, lr, mu: mu * v + g  # noqa: E731
MOMENTUM_MISTAKES = {
    "textbook form": (lambda p, g, v, lr, mu: (p + mu * v - lr * g, mu * v - lr * g),
                      "v_new is the textbook form mu*v - lr*g"),
    "no momentum": (_step(lambda p, g, v, lr, mu: g, lambda p, g, v, vn, lr, mu: p - lr * vn),
                    "v_new ignores the old velocity"),
    "dampening": (_step(lambda p, g, v, lr, mu: mu * v + (1 - mu) * g,
                        lambda p, g, v, vn, lr, mu: p - lr * vn),
                  "(dampening)"),
    "uphill": (_step(TORCH_V, lambda p, g, v, vn, lr, mu: p + lr * vn), "p_new moved uphill"),
    "steps along g": (_step(TORCH_V, lambda p, g, v, vn, lr, mu: p - lr * g), "p_new steps along g alone"),
    "Nesterov instead": (_step(TORCH_V, lambda p, g, v, vn, lr, mu: p - lr * (g + mu * vn)),
                         "that is the Nesterov step"),
    "swapped": (lambda p, g, v, lr, mu: (mu * v + g, p - lr * (mu * v + g)), "p_new and v_new are swapped"),
    "one value": (lambda p, g, v, lr, mu: p - lr * (mu * v + g), "return 2 values (p_new, v_new)"),
}
NESTEROV_MISTAKES = {
    "classic momentum": (_step(TORCH_V, lambda p, g, v, vn, lr, mu: p - lr * vn),
                         "that is the classic momentum step"),
    "old velocity in the look-ahead": (_step(TORCH_V, lambda p, g, v, vn, lr, mu: p - lr * (g + mu * v)),
                                       "the same as a look-ahead with the old v"),
    "uphill": (_step(TORCH_V, lambda p, g, v, vn, lr, mu: p + lr * (g + mu * vn)), "p_new moved uphill"),
    "textbook velocity": (lambda p, g, v, lr, mu: (p + mu * (mu * v - lr * g) - lr * g, mu * v - lr * g),
                          "v_new is the textbook form"),
    "lookahead without g": (_step(TORCH_V, lambda p, g, v, vn, lr, mu: p - lr * mu * vn),
                            "p_new is [0.9388, -2.0576], expected [0.8888, -2.1576]"),
}


def _batches(n, size, rng, drop_last=False, shuffle=True, replace=False):
    if replace:
        order = rng.choice(n, size=n, replace=True)
    else:
        order = rng.permutation(n) if shuffle else np.arange(n)
    stop = n - n % size if drop_last else n
    return [order[s : s + size] for s in range(0, stop, size)]


BATCH_MISTAKES = {
    "last batch dropped": (lambda n, b, rng: _batches(n, b, rng, drop_last=True),
                           "the last 3 examples are never used: keep the last, smaller batch"),
    "no shuffle": (lambda n, b, rng: _batches(n, b, rng, shuffle=False), "the indices come in order 0..n-1"),
    "with replacement": (lambda n, b, rng: _batches(n, b, rng, replace=True),
                         "times in one epoch: shuffle with rng.permutation(n)"),
    "global random state": (lambda n, b, rng: _batches(n, b, np.random.default_rng()),
                            "two generators with one seed gave different orders"),
    "fixed seed inside": (lambda n, b, rng: _batches(n, b, np.random.default_rng(0)),
                          "generators seeded 0 and 1 gave the same order"),
    "batch count instead of size": (lambda n, b, rng: np.array_split(rng.permutation(n), b),
                                    "batch sizes [11, 11, 11, 10, 10, 10, 10, 10, 10, 10]"),
    "index off by one": (lambda n, b, rng: [i + 1 for i in _batches(n, b, rng)],
                         "an index is outside 0..102"),
    "floats": (lambda n, b, rng: [i.astype(float) for i in _batches(n, b, rng)],
               "each batch should be a 1-D array of integer indices"),
}


@pytest.mark.parametrize("name, mistakes", [("momentum_step", MOMENTUM_MISTAKES),
                                             ("nesterov_step", NESTEROV_MISTAKES),
                                             ("minibatch_indices", BATCH_MISTAKES)])
def test_mistakes_are_named(name, mistakes) -> None:
    for mistake, (fn, phrase) in mistakes.items():
        verdict = check(name, fn)
        assert verdict.status == WRONG and phrase in verdict.message, (mistake, str(verdict))
        assert "\n" not in str(verdict)
