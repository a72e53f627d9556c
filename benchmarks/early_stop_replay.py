"""Early stopping on validation, replayed on a finished main job's final runs.

    python benchmarks/early_stop_replay.py RESULTS [--patience 5 10 20] [--monitor val_accuracy val_loss]
                                          [--json FILE]

The second half of the speed issue's lever 2: stop a final run once its monitored validation
score has not improved for ``patience`` epochs, keeping the best epoch's weights. Training is
deterministic, so a finished run's ``history.csv`` says exactly where ``fit``'s own rule
(``training.fit.improves``, ``train.patience``, ``train.min_delta`` 0) would have stopped it:
this prints, per run, monitor and patience, the epoch it stops at, the seconds of the epochs it
would have skipped (each epoch's own ``seconds``), and the validation accuracy of the epoch it
would keep against the last epoch's (the weights the job keeps). The test accuracy of those
weights cannot be replayed: the job saved the last epoch's weights only.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

from doodlelab.files.atomic import write_json
from doodlelab.training.fit import improves


def replay(history: list[dict[str, float]], monitor: str, patience: int) -> dict[str, Any]:
    """Return where early stopping on ``monitor`` with ``patience`` stops ``history`` and what it keeps."""
    best, best_epoch, waited, stop = (math.inf if monitor == "val_loss" else -math.inf), 0, 0, None
    for row in history:
        if improves(row[monitor], best, monitor, 0.0):
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


def read_history(path: Path) -> list[dict[str, float]]:
    """Return a run's history rows with every column a float."""
    with path.open(newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a folder `doodlelab run` finished")
    parser.add_argument("--patience", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--monitor", nargs="+", default=["val_accuracy", "val_loss"],
                        choices=["val_accuracy", "val_loss"])
    parser.add_argument("--json", type=Path, help="write every replay here")
    args = parser.parse_args(argv)
    runs = sorted((args.results / "runs").glob("*/history.csv"))
    if not runs or any(p < 1 for p in args.patience):
        print(f"early_stop_replay: {args.results} has no runs/*/history.csv, or a patience below 1",
              file=sys.stderr)
        return 2
    out = []
    for path in runs:
        history = read_history(path)
        for monitor in args.monitor:
            for patience in args.patience:
                r = {"run": path.parent.name, **replay(history, monitor, patience)}
                out.append(r)
                stop = f"stops at {r['stops_at']}" if r["stops_at"] else "never stops"
                print(f"{r['run']:18s} {monitor:12s} patience {patience:3d}: {stop:14s} of {r['epochs']}, "
                      f"saves {r['seconds_saved']:5.1f} of {r['seconds']:5.1f} s; keeps epoch "
                      f"{r['kept_epoch']} (val acc {r['kept_val_accuracy']:.4f}, "
                      f"last {r['last_val_accuracy']:.4f})")
    if args.json:
        write_json(args.json, {"results": str(args.results), "replays": out,
                               "final": json.loads((args.results / "pipeline.json").read_text())["final"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
