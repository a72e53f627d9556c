"""What the per-epoch clean scoring of the training split costs (``score_train``, the curve sample).

    python benchmarks/bench_score_train.py [--data DIR] [--epochs 2] [--rounds 3] [--set K=V] [--json FILE]

After every epoch the fit loop scores the whole training split in eval mode for the
history's ``train_loss`` / ``train_accuracy`` (a forward pass over every training
image), besides the validation split. A study row decides on validation scores only,
so ``fit(score_train=False)`` leaves it out. This script trains the default classifier
and the default two-tower with the fit loop on ``--data``'s training file (its saved
split: 90 % train, 10 % validation), ``--epochs`` epochs a run, with and without the
training-split scoring, alternating, ``--rounds`` times, and reports the median
wall and CPU seconds per epoch of each and the share of an epoch the scoring took. It
also checks that both give the same validation numbers (the scoring draws nothing).
Three ways are timed: ``whole`` (every training image scored, as before issue 20's curve
sample), ``sample`` (what ``fit`` does: at most ``training.fit.TRAIN_CURVE_IMAGES``, the same
as ``whole`` on a split that small) and ``not_scored`` (a study row).
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
from doodlelab.training import fit as loop
from doodlelab.training.fit import fit_new

CURVE_IMAGES = loop.TRAIN_CURVE_IMAGES
MODES = {"whole": (True, None), "sample": (True, CURVE_IMAGES), "not_scored": (False, CURVE_IMAGES)}


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
    """Return the epoch seconds of every way of scoring (:data:`MODES`), in a fresh order every round."""
    seconds: dict[str, list[float]] = {name: [] for name in MODES}
    cpu: dict[str, list[float]] = {name: [] for name in MODES}
    same = True
    for i in range(rounds):
        accs = {}
        names = list(MODES)[i % len(MODES):] + list(MODES)[: i % len(MODES)]
        for name in names:
            flag, cap = MODES[name]
            loop.TRAIN_CURVE_IMAGES = cap if cap is not None else 1 << 62
            time.sleep(0.25)
            epochs, cpu_epoch, accs[name] = one_fit(cfg, kind, data, flag)
            seconds[name] += epochs
            cpu[name].append(cpu_epoch)
        loop.TRAIN_CURVE_IMAGES = CURVE_IMAGES
        same &= len({tuple(a) for a in accs.values()}) == 1
    med = {k: statistics.median(v) for k, v in seconds.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    return {"epoch_seconds": seconds, "cpu_seconds_per_epoch": cpu, "median": med, "median_cpu": med_cpu,
            "same_validation": same, "scoring_share": 1 - med["not_scored"] / med["whole"],
            "scoring_share_cpu": 1 - med_cpu["not_scored"] / med_cpu["whole"],
            "sample_saves_cpu": 1 - med_cpu["sample"] / med_cpu["whole"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=os.environ.get("DOODLELAB_DATA"))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--set", action="append", default=[], metavar="K=V",
                   help="a setting, e.g. train.batch_size=64")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    cfg = load_config(None, [f"train.epochs={args.epochs}", *args.set])
    data = prepare(cfg, args.data, test=False, word_vectors=True)
    report = {"train_images": int(data.train_idx.size), "val_images": int(data.val_idx.size),
              "threads_env": os.environ.get("DOODLELAB_THREADS"),
              "epochs": args.epochs, "rounds": args.rounds, "settings": args.set,
              "curve_images": CURVE_IMAGES, "load_average_before": os.getloadavg()[0]}
    for kind in KINDS:
        r = report[kind] = measure(cfg, kind, data, args.rounds)
        m = r["median_cpu"]
        print(f"{kind}: CPU s/epoch scoring every training image {m['whole']:.3f}, a sample of at most "
              f"{CURVE_IMAGES} {m['sample']:.3f}, none {m['not_scored']:.3f}: scoring them all is "
              f"{100 * r['scoring_share_cpu']:.0f}% of an epoch, the sample saves "
              f"{100 * r['sample_saves_cpu']:.0f}% (wall s/epoch {r['median']['whole']:.3f}, "
              f"{r['median']['sample']:.3f}, {r['median']['not_scored']:.3f}); "
              f"same validation numbers: {r['same_validation']}")
    report["load_average_after"] = os.getloadavg()[0]
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
