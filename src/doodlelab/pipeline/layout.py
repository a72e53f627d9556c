"""The layout of a results folder of ``doodlelab run``, shared by the pipeline and the report.

One module names the paths, so the pipeline that writes them, the report that reads
them and the tests agree by construction::

    pipeline.json                 settings, steps (stamp, seconds), studies, wall and CPU time, commands
    data/data.json                data folder, checksums, counts per class (train / validation / test)
    data/split.npz, examples.png  the split all four runs share; a few doodles per class (+ .csv)
    runs/<kind>-<backend>/        the four runs (doodlelab train): each model kind on each backend
    gradcheck.json                numpy backprop vs torch autograd on the real first batches, both models
    drift.json                    numpy vs torch trained side by side for a few epochs, float32 and float64
    compare/<kind>/               numpy vs torch side by side (doodlelab compare)
    compare/part1-vs-part2/       the numpy classifier against the numpy two-tower model, same test images
    sweep/<study>/                one study: its rows, curves, decision.json and summary.csv
                                  (doodlelab.pipeline.summaries)
    sweep/points/<key>.json       one trained study row (settings, seed): reused by every study that has it
    figures/                      the report's pictures drawn from the runs (doodlelab.pipeline.evidence)
    report/report.typ, .pdf, .html  the Typst template and the report it compiles to

The files inside those folders are named by their owners and asked of them here: a run
folder's by :mod:`doodlelab.runs.folder`, the split's by :mod:`doodlelab.data.split`, a
comparison's by :mod:`doodlelab.studies.compare`, a study's by :mod:`doodlelab.studies.sweep`,
the pictures by :mod:`doodlelab.training.figures`, the report's by
:mod:`doodlelab.pipeline.report.build`.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from doodlelab.data.split import SPLIT_FILE
from doodlelab.kinds import BACKENDS, KINDS, Backend, Kind
from doodlelab.studies.compare import comparison_files
from doodlelab.studies.sweep import HISTORIES_CSV, SUMMARY_CSV, SWEEP_CSV
from doodlelab.training.figures import EXAMPLES_FILES

RUNS: tuple[tuple[Kind, Backend], ...] = tuple(itertools.product(KINDS, BACKENDS))  # the four runs
MANIFEST = "pipeline.json"
GRADCHECK = "gradcheck.json"
DRIFT = "drift.json"  # numpy vs torch over a few epochs, float32 and float64 (studies.drift)
DATA_JSON = "data.json"
SWEEP_FILES = (SWEEP_CSV, HISTORIES_CSV, SUMMARY_CSV)  # the summary is written last
COMPARE_FILES = comparison_files()
DATA_FILES = (DATA_JSON, SPLIT_FILE, *EXAMPLES_FILES)


def run_name(kind: Kind, backend: Backend) -> str:
    """Return the folder name of one run under ``runs/``: ``classifier-numpy`` etc."""
    return f"{kind}-{backend}"


def run_dir(out: Path, kind: Kind, backend: Backend) -> Path:
    """Return the folder of one of the four runs."""
    return Path(out) / "runs" / run_name(kind, backend)


def data_dir(out: Path) -> Path:
    """Return the folder of the data's description, the shared split and the example doodles."""
    return Path(out) / "data"


def compare_dir(out: Path, kind: Kind) -> Path:
    """Return the folder of the numpy-vs-torch comparison of one model kind."""
    return Path(out) / "compare" / kind


def parts_compare_dir(out: Path) -> Path:
    """Return the folder comparing Part I's model with Part II's (both numpy) on the same test images."""
    return Path(out) / "compare" / "part1-vs-part2"


def figures_dir(out: Path) -> Path:
    """Return the folder of the pictures drawn from the runs."""
    return Path(out) / "figures"


def sweep_dir(out: Path, name: str) -> Path:
    """Return the folder of one study (``doodlelab sweep`` layout)."""
    return Path(out) / "sweep" / name


def point_file(out: Path, key: str) -> Path:
    """Return the file of one trained study row (its settings and seed hashed into ``key``)."""
    return Path(out) / "sweep" / "points" / f"{key}.json"


def read_json(path: Path) -> Any:
    """Return the parsed JSON file at ``path``, or None if it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def run_finished(folder: Path) -> bool:
    """Return whether a run folder is complete (its RunFolder says so)."""
    from doodlelab.runs.folder import RunFolder

    return RunFolder(folder).finished


def same_run(folder: Path, kind: Kind, backend: Backend, cfg: dict[str, Any],
             checksums: dict[str, str]) -> bool:
    """Return whether the finished run in ``folder`` was trained as ``kind`` on ``backend`` with ``cfg``
    on data with these ``checksums`` (read from its config and env)."""
    from doodlelab.errors import UserError
    from doodlelab.runs.folder import RunFolder

    try:
        run = RunFolder(folder)
        raw, env = run.config, run.env
    except UserError:
        return False
    return (run.kind == kind and raw.get("backend") == backend
            and all(raw.get(section) == values for section, values in cfg.items())
            and env.get("data_checksums") == checksums)
