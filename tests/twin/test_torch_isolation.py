"""Only doodlelab.twin imports torch: the numpy core and the CLI never do."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import need_module

NUMPY_SIDE = (
    "doodlelab.nn",
    "doodlelab.tasks.classifier",
    "doodlelab.tasks.two_tower",
    "doodlelab.training.fit",
    "doodlelab.runs.train_command",
    "doodlelab.runs.folder",
    "doodlelab.training.registry",
    "doodlelab.runs.evaluate_command",
    "doodlelab.data.prepare",
    "doodlelab.studies.gradcheck",
    "doodlelab.studies.bench",
    "doodlelab.cli.commands",
    "doodlelab.studies.compare",
    "doodlelab.training.figures",
    "doodlelab.training.metrics",
)


def _torch_imported_after(modules: tuple[str, ...]) -> bool:
    code = (f"import sys\nimport {', '.join(modules)}\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    return out.stdout.strip() == "True"


def test_numpy_side_never_imports_torch() -> None:
    assert not _torch_imported_after(NUMPY_SIDE)


def test_the_twin_does_import_torch() -> None:
    need_module("torch", "torch")
    assert _torch_imported_after(("doodlelab.twin",))
