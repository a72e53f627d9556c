"""Write the learner's copies of the notebooks from the solutions copies, outputs stripped.

The notebooks in ``solutions/`` are the source: each exercise cell (tag ``exercise``,
the blank a learner fills in) is followed by its solution cell (tag ``solution``). The
learner's copy of ``solutions/NN_name.ipynb`` is ``NN_name.ipynb`` beside this file: the
same notebook without the ``solution`` cells. Both copies are stored without outputs,
execution counts or editor metadata, so they open clean in Jupyter, JupyterLab, VS Code
and Colab and a diff shows only what a person changed.

    python notebooks/build.py            # rewrite both copies of every notebook
    python notebooks/build.py --check    # exit 1, naming them, if any stored copy is stale
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SOLUTIONS = HERE / "solutions"
EXERCISE, SOLUTION = "exercise", "solution"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def tags(cell: nbformat.NotebookNode) -> list[str]:
    """Return the Jupyter tags of a cell (``metadata.tags``), [] when it has none."""
    return list(cell.get("metadata", {}).get("tags", []))


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return a copy of ``nb`` with no outputs, execution counts or metadata beyond the cells' tags."""
    out = copy.deepcopy(nb)
    out.metadata = nbformat.from_dict({"kernelspec": KERNELSPEC, "language_info": {"name": "python"}})
    for cell in out.cells:
        cell.metadata = nbformat.from_dict({"tags": tags(cell)} if tags(cell) else {})
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return out


def learner_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return the learner's copy: ``nb`` cleaned, without the cells tagged ``solution``."""
    out = clean(nb)
    out.cells = [cell for cell in out.cells if SOLUTION not in tags(cell)]
    return out


def render(nb: nbformat.NotebookNode) -> str:
    """Return the notebook file's text: nbformat's JSON (validated), ending in a newline."""
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def copies(solutions: Path = SOLUTIONS) -> dict[Path, str]:
    """Return path -> text of every stored notebook: each solutions copy and its learner's copy."""
    out = {}
    for source in sorted(solutions.glob("*.ipynb")):
        nb = nbformat.read(source, as_version=4)
        out[source] = render(clean(nb))
        out[solutions.parent / source.name] = render(learner_copy(nb))
    return out


def stale(solutions: Path = SOLUTIONS) -> list[Path]:
    """Return the stored notebooks whose text is not what :func:`copies` makes (missing ones too)."""
    return [path for path, text in copies(solutions).items()
            if not path.is_file() or path.read_text(encoding="utf-8") != text]


def main(argv: list[str] | None = None) -> int:
    """Rewrite the copies (or, with --check, report stale ones); return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale copies (exit 1 if any)")
    args = parser.parse_args(argv)
    if args.check:
        behind = stale()
        for path in behind:
            print(f"build.py: {path.relative_to(HERE)} is stale; run python notebooks/build.py",
                  file=sys.stderr)
        return 1 if behind else 0
    for path, text in copies().items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(HERE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
