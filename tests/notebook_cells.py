"""The stored notebooks, read as plain JSON: their cells, tags, exercises and solutions.

The checker tests take the solutions from the notebooks themselves (so the solution a
learner reads is the one shown to pass), and the notebook tests read the cells' tags.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOLUTIONS = NOTEBOOKS / "solutions"
EXERCISE, SOLUTION = "exercise", "solution"
_DEF = re.compile(r"^def (\w+)\(", re.M)


def solution_paths() -> list[Path]:
    """Return the solutions copies, in order."""
    return sorted(SOLUTIONS.glob("*.ipynb"))


def learner_paths() -> list[Path]:
    """Return the learner's copies, in order."""
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def cells(path: Path) -> list[dict[str, Any]]:
    """Return the cells of a stored notebook."""
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def source(cell: dict[str, Any]) -> str:
    """Return a cell's source as one string."""
    text = cell["source"]
    return "".join(text) if isinstance(text, list) else text


def tags(cell: dict[str, Any]) -> list[str]:
    """Return a cell's Jupyter tags."""
    return list(cell.get("metadata", {}).get("tags", []))


def defined(cell: dict[str, Any]) -> str:
    """Return the name of the (first) function a cell defines, "" if none."""
    match = _DEF.search(source(cell))
    return match.group(1) if match else ""


def tagged(path: Path, tag: str) -> list[dict[str, Any]]:
    """Return the cells of ``path`` carrying ``tag``."""
    return [cell for cell in cells(path) if tag in tags(cell)]


def solution(name: str) -> Callable[..., Any]:
    """Return the function ``name`` as the solution cell of a stored notebook defines it.

    The cell runs with numpy as ``np`` and a no-op ``check`` (the tests call the checker).
    """
    for path in solution_paths():
        for cell in tagged(path, SOLUTION):
            if defined(cell) == name:
                namespace: dict[str, Any] = {"np": np, "check": lambda *args: None}
                exec(compile(source(cell), f"{path.name}[solution {name}]", "exec"), namespace)
                return namespace[name]
    raise LookupError(f"no solution cell defines {name} in {SOLUTIONS}")


def blank(name: str) -> Callable[..., Any]:
    """Return the function ``name`` as the learner's blank (the exercise cell) defines it."""
    for path in learner_paths():
        for cell in tagged(path, EXERCISE):
            if defined(cell) == name:
                namespace: dict[str, Any] = {"np": np, "check": lambda *args: None}
                exec(compile(source(cell), f"{path.name}[exercise {name}]", "exec"), namespace)
                return namespace[name]
    raise LookupError(f"no exercise cell defines {name} in {NOTEBOOKS}")
