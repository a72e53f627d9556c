"""Each fact once: the source itself is scanned (every string constant, f-string parts included).

A fact stated in two modules drifts apart the day one of them changes. These tests read
``src/doodlelab`` with :mod:`ast` and hold each fact to its one owner: the model kinds and
backends (``kinds.py``), the image geometry (``geometry.py``), every file name, the shared
command-line flags, the data-folder search order, the TOML reader and the progress-bar rule.
Docstrings may name a file or a shape (``(B, 784)``) to explain; code may not.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

import doodlelab

SRC = Path(doodlelab.__file__).parent
FILE_NAME = re.compile(r"[A-Za-z_][\w-]*\.(?:json|npz|npy|csv|png|pdf|html|typ|toml|yml)\b")
GEOMETRY_NUMBER = re.compile(r"(?<![\w.])(?:28|784)(?![\w.])")


@cache
def _modules() -> dict[str, ast.Module]:
    """Return every module of the package, parsed, by its path under ``src/doodlelab``."""
    return {str(p.relative_to(SRC)): ast.parse(p.read_text(encoding="utf-8"))
            for p in sorted(SRC.rglob("*.py"))}


def _docstrings(tree: ast.Module) -> set[int]:
    """Return the ids of the docstring constants of a module, its classes and its functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


@cache
def _constants(kind: type) -> list[tuple[str, int, object]]:
    """Return (module, line, value) of every constant of type ``kind`` in the code (docstrings aside)."""
    out = []
    for name, tree in _modules().items():
        skip = _docstrings(tree)
        out += [(name, node.lineno, node.value) for node in ast.walk(tree)
                if isinstance(node, ast.Constant) and type(node.value) is kind and id(node) not in skip]
    return out


def _owners(matches: list[tuple[str, str]]) -> dict[str, set[str]]:
    """Return fact -> the modules stating it, from (module, fact) pairs."""
    owners: dict[str, set[str]] = defaultdict(set)
    for module, fact in matches:
        owners[fact].add(module)
    return owners


def test_the_scanner_sees_f_string_parts_and_skips_docstrings() -> None:
    tree = ast.parse('"""doc: split.npz"""\nx = f"{a}/split.npz"\n')
    docs = _docstrings(tree)
    parts = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and id(n) not in docs]
    assert parts == ["/split.npz"] and FILE_NAME.findall(parts[0]) == ["split.npz"]
    assert GEOMETRY_NUMBER.findall("(N, 28, 28) or (N, 784); 0.28, 1280, 28x28") == ["28", "28", "784"]


@pytest.mark.parametrize("word", ["classifier", "two_tower", "numpy", "torch"])
def test_kinds_and_backends_are_spelled_in_kinds_py_only(word: str) -> None:
    """Everyone else imports ``CLASSIFIER``, ``KINDS``, ``NUMPY``, ``BACKENDS``... from doodlelab.kinds."""
    where = {f"{module}:{line}" for module, line, value in _constants(str) if value == word}
    assert {w.split(":")[0] for w in where} == {"kinds.py"}, sorted(where)


def test_the_image_geometry_is_stated_in_geometry_py_only() -> None:
    numbers = [f"{m}:{line}" for m, line, value in _constants(int)
               if value in (28, 784) and m != "geometry.py"]
    texts = [f"{m}:{line}" for m, line, value in _constants(str)
             if GEOMETRY_NUMBER.search(str(value)) and m != "geometry.py"]
    assert numbers + texts == []


def test_the_core_needs_no_image_geometry() -> None:
    """nn/ imports nothing outside itself (test_architecture), so it must not need 28 or 784 either."""
    assert not [(m, line) for m, line, value in _constants(int) if m.startswith("nn/") and value in (28, 784)]


def test_every_file_name_has_one_owner() -> None:
    """A file's name is in the code of one module; the others ask it (RunFolder, layout, SPLIT_FILE...)."""
    owners = _owners([(module, name) for module, _, value in _constants(str)
                      for name in FILE_NAME.findall(str(value))])
    shared = {name: sorted(modules) for name, modules in owners.items() if len(modules) > 1}
    assert shared == {}


@pytest.mark.parametrize("name, owner", [
    ("split.npz", "data/split.py"), ("config.json", "runs/folder.py"), ("metrics.json", "runs/folder.py"),
    ("weights.npz", "runs/folder.py"), ("history.csv", "runs/folder.py"), ("env.json", "runs/folder.py"),
    ("pipeline.json", "pipeline/layout.py"), ("gradcheck.json", "pipeline/layout.py"),
    ("data.json", "pipeline/layout.py"),
    ("summary.csv", "studies/sweep.py"), ("sweep.csv", "studies/sweep.py"),
    ("comparison.json", "studies/compare.py"), ("examples.png", "training/figures.py"),
    ("classes.json", "data/course.py"), ("_images.npy", "data/course.py"), ("_labels.npy", "data/course.py"),
])
def test_each_file_name_lives_with_its_format(name: str, owner: str) -> None:
    owners = _owners([(module, found) for module, _, value in _constants(str)
                      for found in FILE_NAME.findall(str(value))])
    assert owners[name] == {owner}


def _declared_flags() -> list[tuple[str, str]]:
    """Return (module, flag) of every ``add_argument("--flag", ...)`` call."""
    out = []
    for module, tree in _modules().items():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "add_argument" and node.args
                    and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("--")):
                out.append((module, str(node.args[0].value)))
    return out


@pytest.mark.parametrize("flag, owner", [
    ("--data", "data/course.py"), ("--offline", "data/official/autofetch.py"),
    ("--config", "config.py"), ("--set", "config.py")])
def test_shared_flags_are_declared_by_their_owner_only(flag: str, owner: str) -> None:
    assert _owners(_declared_flags())[flag] == {owner}


def test_the_data_folder_search_order_is_stated_once() -> None:
    """data/course.py owns the search (resolve_data_dir) and its words (SEARCH_ORDER, in each --data help)."""
    words = [(m, str(value)) for m, _, value in _constants(str)
             if "quickdraw_subset_np" in str(value) or "DOODLELAB_DATA" in str(value)]
    assert {m for m, _ in words} == {"data/course.py"}, words


def _calls_and_imports(name: str) -> set[str]:
    """Return the modules that import ``name`` or call an attribute ``name``."""
    found = set()
    for module, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and any(a.name == name for a in node.names):
                found.add(module)
            elif isinstance(node, ast.Attribute) and node.attr == name:
                found.add(module)
    return found


def test_one_toml_reader_and_one_progress_rule() -> None:
    assert _calls_and_imports("tomllib") == {"config.py"}
    assert _calls_and_imports("isatty") == {"files/terminal.py"}


def test_a_kind_is_compared_only_where_kinds_are_told_apart() -> None:
    """Code asks the registry's KindSpec or the task (isinstance of a capability protocol) instead of
    ``kind == TWO_TOWER``. The assignment's part of a study (rows.py) is the one place outside the
    registry that still tells the kinds apart by name."""
    names = {"CLASSIFIER", "TWO_TOWER"}
    found = set()
    for module, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and any(
                    isinstance(n, ast.Name) and n.id in names for n in [node.left, *node.comparators]):
                found.add(module)
    assert found <= {"training/registry.py", "pipeline/rows.py"}, found
