"""Early stopping on validation, replayed on a finished main job's final runs.

    python benchmarks/early_stop_replay.py RESULTS [--patience 5 10 20] [--monitor val_accuracy val_loss]
                                          [--json FILE]

The second half of the speed issue's lever 2: stop a final run once its monitored validation
score has not improved for ``patience`` epochs, keeping the best epoch's weights. Training is
deterministic, so a finished run's ``history.csv`` says exactly where ``fit``'s own rule
(``training.fit.improves``, ``train.patience``, the run's own ``train.min_delta``) would have stopped it:
this prints, per run, monitor and patience, the epoch it stops at, the seconds of the epochs it
would have skipped (each epoch's own ``seconds``), and the validation accuracy of the epoch it
would keep against the last epoch's (the weights the job keeps). The test accuracy of those
weights cannot be replayed: the job saved the last epoch's weights only.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import Any

from doodlelab.files.atomic import write_json
from doodlelab.pipeline import layout
from doodlelab.runs.folder import CONFIG
from doodlelab.training.fit import improves


def replay(history: list[dict[str, float]], monitor: str, patience: int,
           min_delta: float = 0.0) -> dict[str, Any]:
    """Return where early stopping on ``monitor`` with ``patience`` stops ``history`` and what it keeps."""
    best, best_epoch, waited, stop = (math.inf if monitor == "val_loss" else -math.inf), 0, 0, None
    for row in history:
        if improves(row[monitor], best, monitor, min_delta):
            best, best_epoch, waited = row[monitor], int(row["epoch"]), 0
            continue
        waited += 1
        if waited >= patience:
            stop = int(row["epoch"])
            break
    trained = stop or len(history)
    total = sum(r["seconds"] for r in history)
    return {"monitor": monitor, "patience": patience, "stops_at": stop, "epochs": len(history),
            "seconds_saved": sum(r["seconds"] for r in history[trained:]), "seconds": total,
            "kept_epoch": best_epoch, "kept_val_accuracy": history[best_epoch - 1]["val_accuracy"],
            "last_val_accuracy": history[-1]["val_accuracy"]}


class NotARun(Exception):
    """A final run's files cannot be replayed."""


def read_history(path: Path) -> list[dict[str, float]]:
    """Return a run's history rows with every column a float; :class:`NotARun` if there are none."""
    with path.open(newline="") as fh:
        try:
            rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]
        except (TypeError, ValueError) as e:
            raise NotARun(f"{path} has a value that is not a number ({e})") from e
    if not rows or not {"epoch", "val_accuracy", "val_loss", "seconds"} <= rows[0].keys():
        raise NotARun(f"{path} has no epochs with epoch, val_accuracy, val_loss and seconds")
    return rows


def min_delta_of(run: Path) -> float:
    """Return the run's own ``train.min_delta`` (from its config.json; 0 if it has none)."""
    config = layout.read_json(run / CONFIG) or {}
    return float(config.get("train", {}).get("min_delta", 0.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a folder `doodlelab run` finished")
    parser.add_argument("--patience", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--monitor", nargs="+", default=["val_accuracy", "val_loss"],
                        choices=["val_accuracy", "val_loss"])
    parser.add_argument("--json", type=Path, help="write every replay here")
    args = parser.parse_args(argv)
    runs = sorted((args.results / "runs").glob("*/history.csv"))
    job = layout.read_json(args.results / layout.MANIFEST)
    problem = (f"{args.results} has no runs/*/history.csv" if not runs
               else f"a patience must be at least 1 (got {min(args.patience)})" if min(args.patience) < 1
               else f"{args.results / layout.MANIFEST} is missing or not JSON" if args.json and job is None
               else None)
    try:
        histories = [] if problem else [(path, read_history(path)) for path in runs]
    except NotARun as e:
        problem = str(e)
    if problem:
        print(f"early_stop_replay: {problem}", file=sys.stderr)
        return 2
    out = []
    for path, history in histories:
        min_delta = min_delta_of(path.parent)
        for monitor in args.monitor:
            for patience in args.patience:
                r = {"run": path.parent.name, **replay(history, monitor, patience, min_delta)}
                out.append(r)
                stop = f"stops at {r['stops_at']}" if r["stops_at"] else "never stops"
                print(f"{r['run']:18s} {monitor:12s} patience {patience:3d}: {stop:14s} of {r['epochs']}, "
                      f"saves {r['seconds_saved']:5.1f} of {r['seconds']:5.1f} s; keeps epoch "
                      f"{r['kept_epoch']} (val acc {r['kept_val_accuracy']:.4f}, "
                      f"last {r['last_val_accuracy']:.4f})")
    if args.json:
        write_json(args.json, {"results": str(args.results), "replays": out, "final": job.get("final")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
