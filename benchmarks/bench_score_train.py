"""What the per-epoch clean scoring of the training split costs a study row (``score_train``).

    python benchmarks/bench_score_train.py [--data DIR] [--epochs 2] [--rounds 3] [--json FILE]

After every epoch the fit loop scores the whole training split in eval mode for the
history's ``train_loss`` / ``train_accuracy`` (a forward pass over every training
image), besides the validation split. A study row decides on validation scores only,
so ``fit(score_train=False)`` leaves it out. This script trains the default classifier
and the default two-tower with the fit loop on ``--data``'s training file (its saved
split: 90 % train, 10 % validation), ``--epochs`` epochs a run, with and without the
training-split scoring, alternating, ``--rounds`` times, and reports the median
wall and CPU seconds per epoch of each and the share of an epoch the scoring took. It
also checks that both give the same validation numbers (the scoring draws nothing).
Run it with ``DOODLELAB_THREADS=1`` to time what a study row costs in a worker of
``doodlelab run`` (one BLAS thread each).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from doodlelab.config import load_config
from doodlelab.data.prepare import prepare
from doodlelab.kinds import KINDS
from doodlelab.training.fit import fit_new


def one_fit(cfg, kind: str, data, score_train: bool) -> tuple[list[float], float, list[float]]:
    """Return (wall seconds of every epoch, CPU seconds per epoch, validation accuracy of every epoch)."""
    train = data.train
    before = time.process_time()
    _, result = fit_new(cfg, "numpy", kind, train.x[data.train_idx], train.y[data.train_idx],
                        train.x[data.val_idx], train.y[data.val_idx], class_vectors=data.class_vectors,
                        n_classes=len(data.classes), progress=False, score_train=score_train)
    cpu = (time.process_time() - before) / len(result.history)
    return result.epoch_seconds, cpu, [row["val_accuracy"] for row in result.history]


def measure(cfg, kind: str, data, rounds: int) -> dict:
    """Return the epoch seconds with and without the training-split scoring, alternating."""
    seconds: dict[str, list[float]] = {"scored": [], "not_scored": []}
    cpu: dict[str, list[float]] = {"scored": [], "not_scored": []}
    same = True
    for i in range(rounds):
        accs = {}
        for name, flag in (("scored", True), ("not_scored", False))[:: 1 if i % 2 else -1]:
            time.sleep(0.25)
            epochs, cpu_epoch, accs[name] = one_fit(cfg, kind, data, flag)
            seconds[name] += epochs
            cpu[name].append(cpu_epoch)
        same &= accs["scored"] == accs["not_scored"]
    med = {k: statistics.median(v) for k, v in seconds.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    return {"epoch_seconds": seconds, "cpu_seconds_per_epoch": cpu, "median": med, "median_cpu": med_cpu,
            "same_validation": same, "scoring_share": 1 - med["not_scored"] / med["scored"],
            "scoring_share_cpu": 1 - med_cpu["not_scored"] / med_cpu["scored"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=os.environ.get("DOODLELAB_DATA"))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    cfg = load_config(None, [f"train.epochs={args.epochs}"])
    data = prepare(cfg, args.data, test=False, word_vectors=True)
    report = {"train_images": int(data.train_idx.size), "val_images": int(data.val_idx.size),
              "threads_env": os.environ.get("DOODLELAB_THREADS"),
              "epochs": args.epochs, "rounds": args.rounds, "load_average_before": os.getloadavg()[0]}
    for kind in KINDS:
        r = report[kind] = measure(cfg, kind, data, args.rounds)
        print(f"{kind}: {r['median']['scored']:.3f} s/epoch scoring the training split, "
              f"{r['median']['not_scored']:.3f} s without: the scoring is {100 * r['scoring_share']:.0f}% "
              f"of an epoch ({100 * r['scoring_share_cpu']:.0f}% in CPU seconds: "
              f"{r['median_cpu']['scored']:.3f} vs {r['median_cpu']['not_scored']:.3f}); "
              f"same validation numbers: {r['same_validation']}")
    report["load_average_after"] = os.getloadavg()[0]
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
