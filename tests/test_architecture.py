"""The import rules of docs/architecture.md, read from the source (every import, also inside functions)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import doodlelab

SRC = Path(doodlelab.__file__).parent


def _unit(path: Path) -> str:
    """Return the part of the package a file belongs to: its subpackage, or its own module name."""
    return path.relative_to(SRC).with_suffix("").parts[0]


def _imports(path: Path) -> list[str]:
    """Return every module ``path`` imports (top level and inside functions), absolute names."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import; the house uses absolute imports"
            names.append(node.module)
            if node.module == "doodlelab":  # from doodlelab import nn, twin ...
                names += [f"doodlelab.{a.name}" for a in node.names
                          if (SRC / a.name).is_dir() or (SRC / f"{a.name}.py").is_file()]
    return names


def _graph() -> dict[str, dict[str, list[str]]]:
    """Return unit -> imported unit -> the files that make the import."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(SRC.rglob("*.py")):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "doodlelab" and len(parts) > 1 and parts[1] != _unit(path):
                graph[_unit(path)][parts[1]].append(str(path.relative_to(SRC)))
    return graph


def _files_importing(prefix: str) -> set[str]:
    return {str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
            if any(n == prefix or n.startswith(prefix + ".") for n in _imports(p))}


def test_nn_imports_nothing_outside_itself() -> None:
    assert dict(_graph().get("nn", {})) == {}
    assert not _files_importing("torch") & {str(p.relative_to(SRC)) for p in (SRC / "nn").rglob("*.py")}


def test_torch_is_imported_only_in_twin_and_the_registry() -> None:
    outside = {f for f in _files_importing("torch") if not f.startswith("twin/")}
    assert outside == {"registry.py"}


def test_only_the_registry_reaches_into_twin() -> None:
    users = {f for f in _files_importing("doodlelab.twin") if not f.startswith("twin/")}
    assert users == {"registry.py"}


def test_no_import_cycle_between_packages() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(unit: str, path: list[str]) -> None:
        state[unit] = 1
        for dep in graph.get(unit, {}):
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep] if dep in path else [unit, dep]
                where = {f"{a} -> {b}": graph[a][b] for a, b in zip(cycle, cycle[1:])}
                raise AssertionError(f"import cycle {' -> '.join(cycle)}: {where}")
            if state.get(dep) is None:
                visit(dep, [*path, dep])
        state[unit] = 2

    for unit in sorted(graph):
        if unit not in state:
            visit(unit, [unit])


def test_the_rules_see_real_imports() -> None:
    """The scanner itself: it finds a function-level import and a known edge."""
    graph = _graph()
    assert "runfolder.py" in graph["registry"] or "registry" in graph["runfolder"]
    assert "registry" in graph["train"]  # train.fit_new imports it inside the function
    assert "twin" in graph["registry"] and "tasks" in graph["twin"]
