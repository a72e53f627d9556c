"""What each speed change of the numpy core buys: undo one at a time, ABAB in one process.

    python benchmarks/bench_changes.py                 # machine as it is
    python benchmarks/bench_changes.py --hog           # plus one busy-loop process on a core

Variants (all train the default classifier with NumpyClassifier.train_batch on the
same synthetic images; epochs are interleaved, in a fresh random order every round
and after a short pause, so load changes hit all alike and no variant inherits the
spinning BLAS workers of a 2-thread one):

- ``all changes``: the code as it is (1 BLAS thread for training batches);
- ``- skip images' grad``: the first Linear also computes d(loss)/d(images);
- ``- ReLU by mask``: ReLU forward/backward through ``np.where`` as before;
- ``- thread rule (2 threads)``: BLAS on every usable CPU, numpy's default;
- ``original``: all three undone, i.e. the code before the speed work.

``--hog`` starts ``python -c "while True: pass"`` for the measurement (and stops
it), which is what another engineer's experiment does to this 2-core machine.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np

from doodlelab.config import Config
from doodlelab.nn import modules
from doodlelab.studies.bench import synthetic_data, time_epoch
from doodlelab.tasks import base
from doodlelab.tasks.classifier import NumpyClassifier
from doodlelab.tasks.streams import Streams
from doodlelab.tasks.threads import usable_cpus


def _where_forward(self: modules.ReLU, x: np.ndarray) -> np.ndarray:
    self._mask = x > 0
    return np.where(self._mask, x, 0).astype(x.dtype, copy=False)


def _where_backward(self: modules.ReLU, dout: np.ndarray) -> np.ndarray:
    return np.where(self._mask, dout, 0).astype(dout.dtype, copy=False)


_backward = modules.Sequential.backward


def _full_backward(self: modules.Sequential, dout: np.ndarray, *, input_grad: bool = True):
    return _backward(self, dout, input_grad=True)


@contextlib.contextmanager
def undone(*names: str) -> Iterator[None]:
    """Within the block the named changes are reverted (by patching classes)."""
    saved = []
    patches = {
        "grad": [(modules.Sequential, "backward", _full_backward)],
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
    "- skip images' grad": ("grad",),
    "- ReLU by mask": ("relu",),
    "- thread rule (2 threads)": ("threads",),
    "original": ("grad", "relu", "threads"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--hog", action="store_true", help="keep one core busy meanwhile")
    args = parser.parse_args()
    cfg = Config()
    x, y = synthetic_data(args.samples)
    tasks = {name: NumpyClassifier(cfg, Streams.from_seed(0)) for name in VARIANTS}
    rngs = {name: np.random.default_rng(1) for name in VARIANTS}
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.hog else None
    order = np.random.default_rng(2)
    try:
        for rep in range(args.epochs + 1):  # the first round is the warm-up
            for i in order.permutation(len(VARIANTS)):  # a fresh order every round
                name, changes = list(VARIANTS.items())[i]
                time.sleep(0.25)  # let OpenBLAS workers of a 2-thread variant stop spinning
                with undone(*changes):
                    sec = time_epoch(tasks[name].train_batch, x, y, cfg.train.batch_size,
                                     rngs[name])
                if rep:
                    times[name].append(sec * 20_000 / args.samples)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    base = statistics.median(times["all changes"])
    print(f"784-{'-'.join(map(str, cfg.model.hidden))}-5, batch {cfg.train.batch_size}, "
          f"dropout {cfg.model.dropout:g}; seconds per 20000-image epoch, median of "
          f"{args.epochs}{', one core kept busy' if args.hog else ''}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:<28} {med:6.3f}  x{med / base:5.2f}   [{min(ts):.3f} .. {max(ts):.3f}]")


if __name__ == "__main__":
    main()
