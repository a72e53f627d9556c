"""The layout of a results folder of ``doodlelab run``, shared by the pipeline and the report.

One module names the paths, so the pipeline that writes them, the report that reads
them and the tests agree by construction::

    pipeline.json                 settings, steps (stamp, seconds), studies, wall and CPU time, commands
    data/data.json                data folder, checksums, counts per class (train / validation / test)
    data/split.npz, examples.png  the split all four runs share; a few doodles per class (+ .csv)
    runs/<task>-<backend>/        the four runs (doodlelab train): classifier / two_tower x numpy / torch
    gradcheck.json                numpy backprop vs torch autograd on the real first batches, both models
    drift.json                    numpy vs torch trained side by side for a few epochs, float32 and float64
    compare/<task>/               numpy vs torch side by side (doodlelab compare)
    sweep/<study>/                one study (doodlelab sweep format: sweep.csv, histories.csv, summary.csv,
                                  study.png + .csv: validation accuracy, mean and spread over seeds)
    sweep/points/<key>.json       one trained study row (settings, seed): reused by every study that has it
    figures/                      pictures drawn from the runs: first-layer weights, test embeddings (+ .csv)
    report/report.typ, .pdf, .html  the Typst template and the report it compiles to

Run folders are read through :mod:`doodlelab.runs.train_command` (``config.json``, ``env.json``,
``metrics.json`` written last).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RUNS = (("classifier", "numpy"), ("classifier", "torch"), ("two_tower", "numpy"), ("two_tower", "torch"))
MANIFEST = "pipeline.json"
GRADCHECK = "gradcheck.json"
DRIFT = "drift.json"  # numpy vs torch over a few epochs, float32 and float64 (studies.drift)
SWEEP_FILES = ("sweep.csv", "histories.csv", "summary.csv")  # summary.csv is written last
COMPARE_FILES = ("comparison.json", "comparison.csv", "loss.png", "loss.csv", "accuracy.png", "accuracy.csv")
DATA_FILES = ("data.json", "split.npz", "examples.png", "examples.csv")


def run_name(task: str, backend: str) -> str:
    """Return the folder name of one run under ``runs/``: ``classifier-numpy`` etc."""
    return f"{task}-{backend}"


def run_dir(out: Path, task: str, backend: str) -> Path:
    """Return the folder of one of the four runs."""
    return Path(out) / "runs" / run_name(task, backend)


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


def same_run(folder: Path, task: str, backend: str, cfg: dict[str, Any], checksums: dict[str, str]) -> bool:
    """Return whether the finished run in ``folder`` was trained with ``task``, ``backend``, ``cfg``
    on data with these ``checksums`` (read from its config and env)."""
    from doodlelab.errors import UserError
    from doodlelab.runs.folder import RunFolder

    try:
        run = RunFolder(folder)
        raw, env = run.config, run.env
    except UserError:
        return False
    return (raw.get("task", "classifier") == task and raw.get("backend") == backend
            and all(raw.get(section) == values for section, values in cfg.items())
            and env.get("data_checksums") == checksums)
