"""Where a numpy training epoch's time goes: per-operation timers around the fit loop's epoch.

    python benchmarks/profile_epoch.py [--samples 20000] [--epochs 3] [--json FILE] [--set K=V ...]

Wraps the operations of one training step of the default classifier (or ``--set``'s)
with timers and runs ``bench.fit_epoch`` (the fit loop's epoch: shuffled batches, their
gather and augmentation, the schedule, ``train_batch``) on seeded synthetic images:

- ``matmul forward`` / ``matmul weight grad`` / ``matmul input grad``: the products,
  with the bias add of the forward pass and the bias gradient's column sum;
- ``relu``, ``dropout`` (drawing the masks and applying them), ``loss`` (softmax
  cross-entropy forward and backward), ``optimizer`` (the SGD update);
- ``augment`` (the random shifts of the batch) and ``gather`` (the rest of making the
  batches: the permutation and ``x[idx]``);
- ``rest``: what is left of the epoch (Python of the loop and the step, argmax, timers).

The timers count CPU seconds of this process (``time.process_time``), which other
processes on a shared machine inflate far less than wall time; each adds about a
microsecond per call, so the total is a little above a bare epoch's. The shares are
what to read.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from doodlelab.config import load_config
from doodlelab.nn import losses, modules, optim
from doodlelab.studies import bench
from doodlelab.studies.bench import fit_epoch, synthetic_data
from doodlelab.tasks.streams import Streams
from doodlelab.training import fit
from doodlelab.training.registry import make_task

SECONDS: dict[str, float] = defaultdict(float)


def timed(owner: object, attr: str, label: str) -> None:
    """Replace ``owner.attr`` by a wrapper that adds its seconds to ``SECONDS[label]``."""
    inner: Callable = getattr(owner, attr)

    def wrapper(*args, **kwargs):
        tick = time.process_time()
        try:
            return inner(*args, **kwargs)
        finally:
            SECONDS[label] += time.process_time() - tick

    setattr(owner, attr, wrapper)


def _timed_input_grad(dout: np.ndarray, weight: np.ndarray) -> np.ndarray:
    tick = time.process_time()
    out = dout @ weight.T
    SECONDS["matmul input grad"] += time.process_time() - tick
    return out


def _linear_backward(self: modules.Linear, dout: np.ndarray) -> np.ndarray:
    self.accumulate_grads(dout)
    return _timed_input_grad(dout, self.params["weight"])


def _linear_backward_assign(self: modules.Linear, dout: np.ndarray) -> np.ndarray:
    self.assign_grads(dout)
    return _timed_input_grad(dout, self.params["weight"])


def install_timers() -> None:
    """Put timers around every operation of a training step (see the module docstring)."""
    timed(modules.Linear, "forward", "matmul forward")
    timed(modules.Linear, "accumulate_grads", "matmul weight grad")
    timed(modules.Linear, "assign_grads", "matmul weight grad")  # what a training step calls
    modules.Linear.backward = _linear_backward
    modules.Linear.backward_assign = _linear_backward_assign
    for cls, name in ((modules.ReLU, "relu"), (modules.Dropout, "dropout")):
        timed(cls, "forward", name)
        timed(cls, "backward", name)
    timed(losses.SoftmaxCrossEntropy, "forward", "loss")
    timed(losses.SoftmaxCrossEntropy, "backward", "loss")
    timed(optim.SGD, "step", "optimizer")
    timed(optim.SGD, "zero_grad", "zero_grad")  # (a training step no longer calls it)
    timed(fit, "random_affine", "augment")
    make_batches = bench.epoch_batches

    def batches(*args, **kwargs):  # the time of every next(): permutation, gather, augment
        gen = make_batches(*args, **kwargs)
        while True:
            tick = time.process_time()
            try:
                batch = next(gen)
            except StopIteration:
                return
            finally:
                SECONDS["batches"] += time.process_time() - tick
            yield batch

    bench.epoch_batches = batches  # the name bench.fit_epoch calls


def profile(cfg, samples: int, epochs: int) -> dict[str, float]:
    """Return the seconds per operation (per epoch, mean of ``epochs``) and the epoch's total."""
    x, y = synthetic_data(samples)
    streams = Streams.from_seed(0)
    task = make_task(cfg, "numpy", "classifier", streams=streams)
    fit_epoch(task, x, y, cfg, streams, 0)  # warm-up
    install_timers()
    SECONDS.clear()
    before = time.process_time()
    for e in range(1, epochs + 1):
        fit_epoch(task, x, y, cfg, streams, e)
    total = time.process_time() - before
    SECONDS["gather"] = SECONDS.pop("batches") - SECONDS["augment"]  # augment runs inside next()
    per_epoch = {k: v / epochs for k, v in SECONDS.items()}
    per_epoch["rest"] = (total - sum(SECONDS.values())) / epochs
    per_epoch["epoch"] = total / epochs
    return per_epoch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=20_000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--json", type=Path)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    args = p.parse_args()
    cfg = load_config(None, args.overrides)
    report = profile(cfg, args.samples, args.epochs)
    epoch = report["epoch"]
    matmul = sum(v for k, v in report.items() if k.startswith("matmul"))
    print(f"{args.samples} images, epoch {epoch:.3f} s (timers on); matmuls {matmul:.3f} s = "
          f"{100 * matmul / epoch:.0f}%")
    for name, sec in sorted(report.items(), key=lambda kv: -kv[1]):
        if name != "epoch":
            print(f"  {name:<20} {sec:7.3f} s  {100 * sec / epoch:5.1f}%")
    if args.json:
        args.json.write_text(json.dumps({"samples": args.samples, "seconds_per_epoch": report}, indent=1))


if __name__ == "__main__":
    main()
