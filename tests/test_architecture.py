"""The package map of docs/architecture.md, held against the source (every import, also inside functions).

The map is read from the document, so the document and the tree cannot drift apart: every
package and loose module of ``src/doodlelab`` must be in the map, and each may import only
the parts in the bands below its own.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

import doodlelab

SRC = Path(doodlelab.__file__).parent
REPO = SRC.parents[1]
MAP_DOC = REPO / "docs" / "architecture.md"
MAX_LOOSE_MODULES = 6


def _unit(path: Path) -> str:
    """Return the part of the package a file belongs to: its top subpackage, or its own module name."""
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
            if node.module == "doodlelab":  # from doodlelab import __version__ ...
                names += [f"doodlelab.{a.name}" for a in node.names
                          if (SRC / a.name).is_dir() or (SRC / f"{a.name}.py").is_file()]
    return names


def _imported_unit(name: str) -> str | None:
    """Return the unit an absolute import name lands in (``doodlelab`` itself is ``__init__``)."""
    parts = name.split(".")
    if parts[0] != "doodlelab":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _graph() -> dict[str, dict[str, list[str]]]:
    """Return unit -> imported unit -> the files that make the import."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(SRC.rglob("*.py")):
        for name in _imports(path):
            target = _imported_unit(name)
            if target is not None and target != _unit(path):
                graph[_unit(path)][target].append(str(path.relative_to(SRC)))
    return graph


def _bands() -> list[list[str]]:
    """Return the package map's bands, top first, each a list of unit names, read from the document."""
    text = MAP_DOC.read_text(encoding="utf-8")
    block = re.search(r"## Package map[^\n]*\n+```\n(.*?)```", text, re.S)
    assert block, f"{MAP_DOC}: no package map block"
    bands: list[list[str]] = [[]]
    for line in block.group(1).splitlines():
        if line.strip() and set(line.strip()) == {"─"}:
            bands.append([])
        elif m := re.match(r"^  ([A-Za-z_]+)(/|\.py)\s", line + " "):
            bands[-1].append(m.group(1))
    return [band for band in bands if band]


def _units_in_tree() -> set[str]:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    return packages | {p.stem for p in SRC.glob("*.py")}


def _files_importing(prefix: str) -> set[str]:
    return {str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
            if any(n == prefix or n.startswith(prefix + ".") for n in _imports(p))}


def test_the_map_lists_every_part_of_the_tree_and_nothing_else() -> None:
    mapped = [unit for band in _bands() for unit in band]
    assert len(mapped) == len(set(mapped)), f"a part is in two places of the map: {mapped}"
    assert set(mapped) == _units_in_tree()


def test_imports_go_down_the_map() -> None:
    band_of = {unit: i for i, band in enumerate(_bands()) for unit in band}
    upward = {f"{a} -> {b}": files for a, deps in _graph().items() for b, files in deps.items()
              if band_of[b] <= band_of[a]}
    assert upward == {}


def test_nn_imports_nothing_outside_itself() -> None:
    assert dict(_graph().get("nn", {})) == {}
    assert not _files_importing("torch") & {str(p.relative_to(SRC)) for p in (SRC / "nn").rglob("*.py")}


def test_torch_is_imported_only_in_twin_and_the_registry() -> None:
    outside = {f for f in _files_importing("torch") if not f.startswith("twin/")}
    assert outside == {"training/registry.py"}


def test_only_the_registry_reaches_into_twin() -> None:
    users = {f for f in _files_importing("doodlelab.twin") if not f.startswith("twin/")}
    assert users == {"training/registry.py"}


def test_few_loose_modules_beside_the_packages() -> None:
    loose = sorted(p.name for p in SRC.glob("*.py"))
    assert len(loose) <= MAX_LOOSE_MODULES, loose


def _module_names() -> set[str]:
    """Return the name of every module and package under src/doodlelab (``__init__``, ``__main__`` aside)."""
    names = {p.stem for p in SRC.rglob("*.py") if not p.stem.startswith("__")}
    return names | {p.name for p in SRC.rglob("*") if p.is_dir() and (p / "__init__.py").is_file()}


def _confusable(a: str, b: str) -> bool:
    """Return whether ``b`` is ``a`` with more letters at the end (a prefix) or ``a``'s plural."""
    return a != b and (b.startswith(a) or b in (f"{a}s", f"{a}es"))


@pytest.mark.parametrize("a, b, expected", [
    ("run", "runs", True), ("runs", "runfolder", False), ("train", "training", True), ("fit", "fit", False),
    ("class", "classes", True), ("losses", "embedding_losses", False)])
def test_the_name_rule_itself(a: str, b: str, expected: bool) -> None:
    assert _confusable(a, b) is expected


def test_no_module_name_is_a_prefix_or_plural_of_another() -> None:
    """A module named again in another package is a mirror (twin/ of nn/ and tasks/); a prefix or a
    plural (run/runs/runfolder) is a puzzle for the reader."""
    names = _module_names()
    assert sorted((a, b) for a in names for b in names if _confusable(a, b)) == []


def test_tests_mirror_the_packages() -> None:
    """Every folder of tests/ is the test folder of a package of the same path under src/doodlelab."""
    tests = REPO / "tests"
    folders = {p.relative_to(tests) for p in tests.rglob("*") if p.is_dir() and any(p.glob("test_*.py"))}
    assert {str(f) for f in folders if not (SRC / f / "__init__.py").is_file()} == set()


def test_the_rules_see_real_imports() -> None:
    """The scanner itself: it finds a function-level import and known edges, and reads every band."""
    graph = _graph()
    assert "registry" not in graph  # registry is a module of training/, not a unit of its own
    assert "training" in graph["runs"]  # runs/folder.py asks the registry for a task
    assert "tasks" in graph["twin"]
    fit_imports = _imports(SRC / "training" / "fit.py")
    assert "doodlelab.training.registry" in fit_imports  # fit_new imports it inside the function
    assert _bands()[:2] == [["__main__"], ["cli"]]
    assert _bands()[-1] == ["kinds", "geometry", "errors", "__init__"]
