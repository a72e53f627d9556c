"""How a learner's array differs from the expected one, in one phrase a learner can act on.

:func:`array_problem` tries the usual mistakes in order: not an array, a wrong shape (a
transposed one named as such), NaN, then a value that is the expected one times a
constant: -1 (a sign), B or 1/B (a mean where a sum belongs, or a division by the batch
size that is missing or doubled). Each kind of problem can carry the exercise's own
hint, which says where to look; the checkers add them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from doodlelab.exercises.verdict import describe

RTOL = 1e-5  # agreement asked of a learner's array, relative to its largest expected entry
SCALE_RTOL = 1e-3  # how near a fitted factor must be to -1, B or 1/B to be named


def as_array(value: Any) -> np.ndarray | None:
    """Return ``value`` as a float64 array, or None when it is not numbers."""
    if value is None or isinstance(value, (str, bytes, dict)):
        return None
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def close(got: np.ndarray, expected: np.ndarray, rtol: float = RTOL) -> bool:
    """Return True when ``got`` matches ``expected`` to ``rtol`` of its largest entry (at least 1e-12)."""
    scale = max(float(np.max(np.abs(expected))) if expected.size else 0.0, 1e-12)
    return got.shape == expected.shape and bool(np.all(np.abs(got - expected) <= rtol * scale))


def fitted_factor(got: np.ndarray, expected: np.ndarray, rtol: float = RTOL) -> float | None:
    """Return c when ``got`` is ``c * expected`` (least squares, then checked), else None."""
    denom = float(np.vdot(expected, expected))
    if denom == 0.0:
        return None
    c = float(np.vdot(got, expected)) / denom
    return c if close(got, c * expected, rtol) else None


def factor_kind(c: float, batch: int | None) -> tuple[str, str]:
    """Return (kind, phrase) naming a factor: "sign", "batch" (B times), "per_batch" (1/B) or "scale"."""
    def near(a: float, b: float) -> bool:
        return abs(a - b) <= SCALE_RTOL * max(abs(b), 1.0)

    if near(c, -1.0):
        return "sign", "has the wrong sign"
    if batch and batch > 1:
        if near(c, batch):
            return "batch", f"is {batch} times too large (the batch size is {batch})"
        if near(c * batch, 1.0):
            return "per_batch", f"is 1/{batch} of the expected values (the batch size is {batch})"
        if near(c, -batch) or near(c * batch, -1.0):
            return "sign", f"has the wrong sign and is {c:.3g} times the expected values"
    return "scale", f"is {c:.3g} times the expected values"


def shape_problem(name: str, arr: np.ndarray, expected: np.ndarray) -> tuple[str, str] | None:
    """Return (kind, phrase) when the shapes differ: "transposed" or "shape"; None when they agree."""
    if arr.shape == expected.shape:
        return None
    if arr.ndim == 2 and expected.ndim == 2 and arr.shape == expected.shape[::-1]:
        return "transposed", f"{name} has shape {arr.shape}, expected {expected.shape}: it is transposed"
    return "shape", f"{name} has shape {arr.shape}, expected {expected.shape}"


def array_problem(name: str, got: Any, expected: np.ndarray, *, batch: int | None = None,
                  hints: Mapping[str, str] | None = None, rtol: float = RTOL) -> str | None:
    """Return one phrase saying how ``got`` differs from ``expected`` (plus the hint of its kind), or None.

    Kinds: "type", "transposed", "shape", "nan", "sign", "batch", "per_batch", "scale",
    "values". ``batch`` (B) lets a factor of B or 1/B be named as such.
    """
    hints = hints or {}
    kind, phrase = _classify(name, got, expected, batch, rtol)
    if kind == "":
        return None
    hint = hints.get(kind, "")
    return f"{phrase}: {hint}" if hint else phrase


def _classify(name: str, got: Any, expected: np.ndarray, batch: int | None,
              rtol: float) -> tuple[str, str]:
    """Return (kind, phrase) of the first problem of ``got``, or ("", "") when it matches."""
    arr = as_array(got)
    if arr is None:
        return "type", f"{name} is {describe(got)}, not an array of shape {expected.shape}"
    shape = shape_problem(name, arr, expected)
    if shape is not None:
        return shape
    if not np.all(np.isfinite(arr)):
        return "nan", f"{name} holds NaN or infinite values"
    if close(arr, expected, rtol):
        return "", ""
    c = fitted_factor(arr, expected, rtol)
    if c is not None:
        kind, phrase = factor_kind(c, batch)
        if kind != "scale" or expected.size > 1:  # any number is a multiple of another one
            return kind, f"{name} {phrase}"
    worst = int(np.argmax(np.abs(arr - expected)))
    index = np.unravel_index(worst, expected.shape) if expected.ndim else ()
    at = f" at {tuple(int(i) for i in index)}" if expected.ndim else ""
    if expected.size == 1:
        return "values", f"{name} is {arr.flat[0]:.6g} where {expected.flat[0]:.6g} is expected"
    return "values", (f"{name} differs from the expected values (largest gap{at}: "
                      f"{arr.flat[worst]:.4g} where {expected.flat[worst]:.4g} is expected)")


def scalar_problem(name: str, got: Any, expected: float, *, batch: int | None = None,
                   hints: Mapping[str, str] | None = None, rtol: float = RTOL) -> str | None:
    """Return one phrase saying how the number ``got`` differs from ``expected``, or None.

    An array of several values is a "per_item" problem (a mean or a sum is missing).
    """
    hints = hints or {}
    arr = as_array(got)
    if arr is not None and arr.size > 1:
        phrase = f"{name} is {describe(np.asarray(got))}, not one number"
        return f"{phrase}: {hints['per_item']}" if "per_item" in hints else phrase
    if arr is not None:
        got = arr.reshape(())
    return array_problem(name, got, np.asarray(expected, dtype=np.float64), batch=batch, hints=hints,
                         rtol=rtol)


def unpack(value: Any, names: Sequence[str]) -> tuple[tuple[Any, ...] | None, str]:
    """Return (the parts, "") when ``value`` is a tuple or list of len(names), else (None, what is wrong)."""
    wanted = f"({', '.join(names)})"
    if isinstance(value, (tuple, list)) and len(value) == len(names):
        return tuple(value), ""
    return None, f"return {len(names)} values {wanted}, got {describe(value)}"
