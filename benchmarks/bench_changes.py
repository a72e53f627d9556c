"""What each speed change of the numpy core buys: undo one at a time, ABAB in one process.

    python benchmarks/bench_changes.py                 # machine as it is
    python benchmarks/bench_changes.py --hog           # plus one busy-loop process on a core

Variants (all train the default classifier with NumpyClassifier.train_batch on the
same synthetic images; epochs are interleaved, in a fresh random order every round
and after a short pause, so load changes hit all alike and no variant inherits the
spinning BLAS workers of a 2-thread one):

- ``all changes``: the code as it is (1 BLAS thread for training batches);
- ``- window-gather shifts``: the augmentation's whole-pixel shifts are one flat ``take`` of
  784 offsets per image again (issue 20's first form) instead of one gather of 28x28 windows
  (``data.augment.shift_images``);
- ``- flat-take shifts``: the whole-pixel shifts gather with three index arrays, as before
  issue 20;
- ``- gradients set, not added``: every step zeroes the gradients and adds this batch's
  into them again (``Linear.assign_grads`` / ``backward_assign`` fall back to
  ``zero_grad`` + ``accumulate_grads`` / ``backward``);
- ``- skip images' grad``: the first Linear also computes d(loss)/d(images);
- ``- ReLU by mask``: ReLU forward/backward through ``np.where`` as before;
- ``- thread rule (2 threads)``: BLAS on every usable CPU, numpy's default;
- ``original``: all five undone, i.e. the code before the speed work.

Each epoch is the fit loop's training epoch (``bench.fit_epoch``: shuffled batches with
their gather and augmentation, the schedule's learning rate, ``train_batch``).

``--hog`` starts ``python -c "while True: pass"`` for the measurement (and stops
it), which is what another engineer's experiment does to this 2-core machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from doodlelab.config import Config
from doodlelab.data import augment
from doodlelab.nn import modules
from doodlelab.studies.bench import fit_epoch, synthetic_data
from doodlelab.tasks import base
from doodlelab.tasks.classifier import NumpyClassifier
from doodlelab.tasks.streams import Streams
from doodlelab.tasks.threads import usable_cpus


def _where_forward(self: modules.ReLU, x: np.ndarray) -> np.ndarray:
    self._mask = x > 0
    return np.where(self._mask, x, 0).astype(x.dtype, copy=False)


def _where_backward(self: modules.ReLU, dout: np.ndarray) -> np.ndarray:
    return np.where(self._mask, dout, 0).astype(dout.dtype, copy=False)


def _padded(x: np.ndarray, dr: np.ndarray, dc: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Return (the batch zero-padded by its largest move, that move, the padded side)."""
    b = x.shape[0]
    reach = int(max(np.abs(dr).max(initial=0), np.abs(dc).max(initial=0)))
    side = 28 + 2 * reach
    padded = np.zeros((b, side, side), dtype=x.dtype)
    padded[:, reach : reach + 28, reach : reach + 28] = x.reshape(b, 28, 28)
    return padded, reach, side


def _indexed_shifts(x: np.ndarray, dr: np.ndarray, dc: np.ndarray) -> np.ndarray:
    padded, reach, _ = _padded(x, dr, dc)
    ramp = np.arange(28)
    rows = ramp[None, :] + (reach - dr)[:, None]
    cols = ramp[None, :] + (reach - dc)[:, None]
    images = np.arange(len(x))[:, None, None]
    return padded[images, rows[:, :, None], cols[:, None, :]].reshape(len(x), 784)


def _flat_take_shifts(x: np.ndarray, dr: np.ndarray, dc: np.ndarray) -> np.ndarray:
    padded, reach, side = _padded(x, dr, dc)
    ramp = np.arange(28)
    pixels = (ramp[:, None] * side + ramp[None, :]).reshape(-1)
    starts = np.arange(len(x)) * side * side + (reach - dr) * side + (reach - dc)
    return padded.reshape(-1).take(starts[:, None] + pixels[None, :])


_backward = modules.Sequential.backward


def _full_backward(self: modules.Sequential, dout: np.ndarray, *, input_grad: bool = True,
                   accumulate: bool = True):
    return _backward(self, dout, input_grad=True, accumulate=accumulate)


@contextlib.contextmanager
def undone(*names: str) -> Iterator[None]:
    """Within the block the named changes are reverted (by patching classes)."""
    saved = []
    patches = {
        "grad": [(modules.Sequential, "backward", _full_backward)],
        "shifts": [(augment, "shift_images", _indexed_shifts)],
        "window": [(augment, "shift_images", _flat_take_shifts)],
        "assign": [(modules.Linear, "assign_grads", modules.Module.assign_grads),
                   (modules.Linear, "backward_assign", modules.Module.backward_assign)],
        "relu": [(modules.ReLU, "forward", _where_forward),
                 (modules.ReLU, "backward", _where_backward)],
        "threads": [(base, "matmul_threads", lambda rows, widths, cpus=None: usable_cpus())],
    }
    for name in names:
        for owner, attr, value in patches[name]:
            saved.append((owner, attr, getattr(owner, attr)))
            setattr(owner, attr, value)
    try:
        yield
    finally:
        for owner, attr, value in reversed(saved):
            setattr(owner, attr, value)


VARIANTS = {
    "all changes": (),
    "- window-gather shifts": ("window",),
    "- flat-take shifts": ("shifts",),
    "- gradients set, not added": ("assign",),
    "- skip images' grad": ("grad",),
    "- ReLU by mask": ("relu",),
    "- thread rule (2 threads)": ("threads",),
    "original": ("shifts", "assign", "grad", "relu", "threads"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--hog", action="store_true", help="keep one core busy meanwhile")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the seconds here")
    args = parser.parse_args()
    cfg = Config()
    x, y = synthetic_data(args.samples)
    streams = {name: Streams.from_seed(0) for name in VARIANTS}
    tasks = {name: NumpyClassifier(cfg, streams[name]) for name in VARIANTS}
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.hog else None
    order = np.random.default_rng(2)
    try:
        for rep in range(args.epochs + 1):  # the first round is the warm-up
            for i in order.permutation(len(VARIANTS)):  # a fresh order every round
                name, changes = list(VARIANTS.items())[i]
                time.sleep(0.25)  # let OpenBLAS workers of a 2-thread variant stop spinning
                with undone(*changes):
                    before = time.process_time()
                    sec = fit_epoch(tasks[name], x, y, cfg, streams[name], rep)
                    cpu_sec = time.process_time() - before
                if rep:
                    times[name].append(sec * 20_000 / args.samples)
                    cpu[name].append(cpu_sec * 20_000 / args.samples)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    base = statistics.median(times["all changes"])
    base_cpu = statistics.median(cpu["all changes"])
    print(f"784-{'-'.join(map(str, cfg.model.hidden))}-5, batch {cfg.train.batch_size}, "
          f"dropout {cfg.model.dropout:g}; seconds per 20000-image epoch, median of "
          f"{args.epochs}{', one core kept busy' if args.hog else ''}: wall, then CPU seconds of "
          "this process (every thread's; other processes inflate them less)")
    for name, ts in times.items():
        med, med_cpu = statistics.median(ts), statistics.median(cpu[name])
        print(f"  {name:<28} {med:6.3f}  x{med / base:5.2f}   [{min(ts):.3f} .. {max(ts):.3f}]   "
              f"CPU {med_cpu:6.3f}  x{med_cpu / base_cpu:5.2f}")
    if args.json:
        args.json.write_text(json.dumps({
            "samples": args.samples, "epochs": args.epochs, "hog": args.hog,
            "load_average": os.getloadavg()[0], "seconds_per_20000": times,
            "cpu_seconds_per_20000": cpu,
            "median": {name: statistics.median(ts) for name, ts in times.items()},
            "relative": {name: statistics.median(ts) / base for name, ts in times.items()},
            "relative_cpu": {name: statistics.median(ts) / base_cpu for name, ts in cpu.items()}},
            indent=1))


if __name__ == "__main__":
    main()
