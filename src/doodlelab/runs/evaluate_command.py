"""``doodlelab evaluate``: the test metrics of a trained run on a folder's test files."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from doodlelab.data.course import add_data_arg, load_split, resolve_data_dir
from doodlelab.errors import UserError
from doodlelab.runs.folder import RunFolder
from doodlelab.training.scoring import score_on_test, summary_line


def _names(classes: tuple[str, ...]) -> str:
    return ", ".join(classes[:5]) + (", ..." if len(classes) > 5 else "")


def evaluate_run(run_dir: Path, data: str | Path | None) -> dict[str, Any]:
    """Return the test metrics of the trained model in ``run_dir`` on the test files of ``data``.

    The data folder may hold only the test files; the training files are never read.
    """
    run = RunFolder(run_dir)
    cfg, classes = run.settings, run.classes
    data_dir = resolve_data_dir(data)
    test = load_split(data_dir, "test")
    if test.classes != classes:
        raise UserError(f"{run_dir} was trained on {len(classes)} classes ({_names(classes)}) but "
                        f"{data_dir} holds {_names(test.classes)}")
    return score_on_test(run.load_task(), test, cfg)[0]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``evaluate`` to the ``doodlelab`` subcommands."""
    p = subparsers.add_parser("evaluate", help="test metrics of a trained run")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    add_data_arg(p)
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the metrics here")


def command(args: argparse.Namespace) -> int:
    """Run ``doodlelab evaluate``; return 0."""
    from doodlelab.files.atomic import write_json

    metrics = evaluate_run(args.run_dir, args.data)
    if args.json:
        write_json(args.json, metrics)
    print(f"test: {summary_line(metrics)}")
    return 0
