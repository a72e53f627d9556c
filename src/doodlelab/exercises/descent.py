"""Checkers of notebook 03 (training): one SGD step with momentum, one Nesterov step, the mini-batches.

The steps follow ``torch.optim.SGD`` (dampening 0), as :class:`doodlelab.nn.SGD` does::

    v = mu * v + g;   p = p - lr * v               (momentum)
    v = mu * v + g;   p = p - lr * (g + mu * v)    (Nesterov)

Their expected values are worked out by hand below for one step from a non-zero
velocity, which tells this form from the textbook ``v = mu * v - lr * g; p = p + v``
(the two agree on the parameters only while the learning rate stays the same).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from doodlelab.exercises.diagnosis import as_array, close, unpack
from doodlelab.exercises.verdict import CORRECT, WRONG, Verdict, attempt, checker, describe

MOMENTUM, NESTEROV, MINIBATCHES = "momentum_step", "nesterov_step", "minibatch_indices"

# One step, worked by hand: p = [1, -2], g = [0.5, 1], v = [0.2, -0.4], lr = 0.1, mu = 0.9.
P, G, V, LR, MU = (1.0, -2.0), (0.5, 1.0), (0.2, -0.4), 0.1, 0.9
V_NEW = (0.68, 0.64)  # 0.9 * 0.2 + 0.5, 0.9 * -0.4 + 1
P_MOMENTUM = (0.932, -2.064)  # p - 0.1 * v_new
P_NESTEROV = (0.8888, -2.1576)  # p - 0.1 * (g + 0.9 * v_new) = p - 0.1 * (1.112, 1.576)


def _step(exercise: str, fn: Any) -> tuple[tuple[np.ndarray, np.ndarray] | None, Verdict | None]:
    """Call ``fn(p, g, v, lr, mu)`` on the hand-worked case: ((p_new, v_new), None) or (None, verdict)."""
    p, g, v = np.array(P), np.array(G), np.array(V)
    got, verdict = attempt(exercise, fn, p, g, v, LR, MU, hint="p, g and v are arrays of one shape")
    if verdict:
        return None, verdict
    parts, problem = unpack(got, ("p_new", "v_new"))
    if parts is None:
        return None, Verdict(exercise, WRONG, problem)
    p_new, v_new = as_array(parts[0]), as_array(parts[1])
    for name, arr, value in (("p_new", p_new, parts[0]), ("v_new", v_new, parts[1])):
        if arr is None or arr.shape != (2,):
            return None, Verdict(exercise, WRONG, f"{name} should be an array shaped like p, (2,), "
                                                  f"got {describe(value)}")
    return (p_new, v_new), None


def _velocity_problem(v_new: np.ndarray) -> str:
    """Return what is wrong with the new velocity of the hand-worked step, or ""."""
    p, g, v = np.array(P), np.array(G), np.array(V)
    if close(v_new, np.array(V_NEW)):
        return ""
    if close(v_new, MU * v - LR * g):
        return ("v_new is the textbook form mu*v - lr*g: doodlelab and torch keep v = mu*v + g and step "
                "p -= lr*v (the two differ as soon as lr changes)")
    if close(v_new, g):
        return "v_new ignores the old velocity: v = mu*v + g"
    if close(v_new, MU * v + (1 - MU) * g):
        return ("v_new is an average mu*v + (1 - mu)*g (dampening): torch's default adds all of g, "
                "v = mu*v + g")
    if close(v_new, p - LR * (MU * v + g)) or close(v_new, np.array(P_MOMENTUM)):
        return "p_new and v_new are swapped: return (p_new, v_new)"
    return f"v_new is {np.round(v_new, 4).tolist()}, expected {list(V_NEW)}: v = mu*v + g"


@checker(MOMENTUM)
def check_momentum_step(fn: Any) -> Verdict:
    """Check ``fn(p, g, v, lr, mu) -> (p_new, v_new)``: torch's momentum step, on a hand-worked case."""
    got, verdict = _step(MOMENTUM, fn)
    if verdict:
        return verdict
    p_new, v_new = got
    problem = _velocity_problem(v_new)
    if problem:
        return Verdict(MOMENTUM, WRONG, problem)
    p, g = np.array(P), np.array(G)
    if close(p_new, np.array(P_MOMENTUM)):
        return Verdict(MOMENTUM, CORRECT, "v = mu*v + g, then p -= lr*v (torch.optim.SGD's step)")
    if close(p_new, p + LR * np.array(V_NEW)):
        return Verdict(MOMENTUM, WRONG, "p_new moved uphill: subtract the step, p -= lr*v")
    if close(p_new, p - LR * g):
        return Verdict(MOMENTUM, WRONG, "p_new steps along g alone: step along the new velocity, p -= lr*v")
    if close(p_new, np.array(P_NESTEROV)):
        return Verdict(MOMENTUM, WRONG, "that is the Nesterov step: plain momentum steps p -= lr*v")
    return Verdict(MOMENTUM, WRONG, f"p_new is {np.round(p_new, 4).tolist()}, expected {list(P_MOMENTUM)}: "
                                    "p -= lr*v with the new v")


@checker(NESTEROV)
def check_nesterov_step(fn: Any) -> Verdict:
    """Check ``fn(p, g, v, lr, mu) -> (p_new, v_new)``: torch's Nesterov step, on a hand-worked case."""
    got, verdict = _step(NESTEROV, fn)
    if verdict:
        return verdict
    p_new, v_new = got
    problem = _velocity_problem(v_new)
    if problem:
        return Verdict(NESTEROV, WRONG, problem)
    p, g = np.array(P), np.array(G)
    if close(p_new, np.array(P_NESTEROV)):
        return Verdict(NESTEROV, CORRECT, "v = mu*v + g, then p -= lr*(g + mu*v) (torch's nesterov=True)")
    if close(p_new, np.array(P_MOMENTUM)):
        return Verdict(NESTEROV, WRONG, "that is the classic momentum step p -= lr*v (the same as a "
                                        "look-ahead with the old v): Nesterov steps p -= lr*(g + mu*v) with "
                                        "the new v, one velocity ahead")
    if close(p_new, p + LR * (g + MU * np.array(V_NEW))):
        return Verdict(NESTEROV, WRONG, "p_new moved uphill: subtract the step, p -= lr*(g + mu*v)")
    return Verdict(NESTEROV, WRONG, f"p_new is {np.round(p_new, 4).tolist()}, expected {list(P_NESTEROV)}: "
                                    "p -= lr*(g + mu*v) with the new v")


# -- mini-batches --------------------------------------------------------------------------------

N, BATCH = 103, 10  # 10 full batches and a last one of 3


def _batches(fn: Any, seed: int) -> tuple[list[np.ndarray] | None, Verdict | None]:
    """Call ``fn(N, BATCH, rng)``; return (the batches as int arrays, None) or (None, the verdict)."""
    got, verdict = attempt(MINIBATCHES, fn, N, BATCH, np.random.default_rng(seed),
                           hint="minibatch_indices(n, batch_size, rng) returns a list of index arrays")
    if verdict:
        return None, verdict
    try:
        batches = [np.asarray(b) for b in got]
    except TypeError:
        return None, Verdict(MINIBATCHES, WRONG, f"return a list of index arrays, got {describe(got)}")
    if not batches or any(b.ndim != 1 or not np.issubdtype(b.dtype, np.integer) for b in batches):
        return None, Verdict(MINIBATCHES, WRONG, "each batch should be a 1-D array of integer indices "
                                                 f"(got {describe(got)})")
    return batches, None


def _coverage_problem(batches: list[np.ndarray]) -> str:
    """Return how the batches fail to hold every index 0..N-1 once, or ""."""
    flat = np.concatenate(batches)
    counts = np.bincount(flat[(flat >= 0) & (flat < N)], minlength=N)
    if flat.size and (flat.min() < 0 or flat.max() >= N):
        return f"an index is outside 0..{N - 1}: index the n examples, 0..n-1"
    if counts.max() > 1:
        return (f"index {int(np.argmax(counts))} appears {counts.max()} times in one epoch: shuffle with "
                "rng.permutation(n), which draws without replacement")
    missing = int((counts == 0).sum())
    if missing and len(batches) == N // BATCH:
        return (f"the last {missing} examples are never used: keep the last, smaller batch "
                f"({N} examples in batches of {BATCH} make {-(-N // BATCH)} batches)")
    if missing:
        return f"{missing} of the {N} examples are in no batch: every example is used once per epoch"
    return ""


@checker(MINIBATCHES)
def check_minibatch_indices(fn: Any) -> Verdict:
    """Check ``fn(n, batch_size, rng) -> [index arrays]``: one shuffled pass, the last batch kept."""
    batches, verdict = _batches(fn, 0)
    if verdict:
        return verdict
    problem = _coverage_problem(batches)
    if problem:
        return Verdict(MINIBATCHES, WRONG, problem)
    sizes = [b.size for b in batches]
    expected_sizes = [BATCH] * (N // BATCH) + [N % BATCH]
    if sizes != expected_sizes:
        return Verdict(MINIBATCHES, WRONG, f"batch sizes {sizes}: every batch holds batch_size = {BATCH} "
                                           f"indices but the last, which holds the {N % BATCH} left over")
    flat = np.concatenate(batches)
    if np.array_equal(flat, np.arange(N)):
        return Verdict(MINIBATCHES, WRONG, "the indices come in order 0..n-1: shuffle them with "
                                           "rng.permutation(n) so each epoch sees new batches")
    again, verdict = _batches(fn, 0)
    other, verdict2 = _batches(fn, 1)
    if verdict or verdict2:
        return verdict or verdict2
    if not np.array_equal(np.concatenate(again), flat):
        return Verdict(MINIBATCHES, WRONG, "two generators with one seed gave different orders: draw the "
                                           "order from the rng passed in, not from np.random")
    if np.array_equal(np.concatenate(other), flat):
        return Verdict(MINIBATCHES, WRONG, "generators seeded 0 and 1 gave the same order: draw it from "
                                           "the rng passed in")
    return Verdict(MINIBATCHES, CORRECT, f"{N} examples in {len(batches)} shuffled batches of {BATCH} "
                                         f"(the last holds {N % BATCH}), drawn from the rng passed in")
