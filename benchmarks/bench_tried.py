"""Speed changes of the numpy core that were tried in issue 20 and not kept: what each would buy.

    python benchmarks/bench_tried.py [--samples 10000] [--rounds 9] [--json FILE]

Each variant is patched into the core for its epochs only and timed against the core
as it is, A/B on the fit loop's real training epoch (``fit.train_epoch`` over
``fit.epoch_batches``) of the default classifier, alternating which goes first, in
CPU seconds of this process (other processes on a shared machine inflate wall time
2-3x; CPU seconds far less). Both models start from the same seed and see the same
batches, so the script also says whether the variant trains bit for bit alike.

- ``in-place layers``: ReLU and Dropout overwrite their input and gradient and keep
  their masks in buffers reused across steps;
- ``scratch SGD``: the SGD step writes its temporaries into two reused arrays;
- ``direct grads``: the weight and bias gradients are written by ``np.matmul(..., out=)``
  and ``np.sum(..., out=)`` instead of added into zeroed arrays, with no ``zero_grad``.
  (Measured here at 0.96-0.98 and then kept, as ``accumulate=False``: since then the
  core does this itself and the variant changes nothing; ``bench_changes.py`` undoes it.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from doodlelab.config import Config
from doodlelab.nn import modules, optim
from doodlelab.studies.bench import synthetic_data
from doodlelab.tasks.streams import Streams
from doodlelab.training.fit import epoch_batches, schedule_from, train_epoch
from doodlelab.training.registry import make_task


def _relu_forward(self: modules.ReLU, x: np.ndarray) -> np.ndarray:
    mask = getattr(self, "_buf", None)
    if mask is None or mask.shape != x.shape:
        mask = self._buf = np.empty(x.shape, np.bool_)
    self._mask = np.greater(x, 0, out=mask)
    return np.multiply(x, mask, out=x)


def _relu_backward(self: modules.ReLU, dout: np.ndarray) -> np.ndarray:
    return np.multiply(dout, self._mask, out=dout)


def _dropout_forward(self: modules.Dropout, x: np.ndarray) -> np.ndarray:
    if not self.training or self.p == 0.0:
        self._scale = None
        return x
    bufs = getattr(self, "_bufs", None)
    if bufs is None or bufs[0].shape != x.shape:
        bufs = self._bufs = (np.empty(x.shape, np.float32), np.empty(x.shape, np.bool_), np.empty_like(x))
    self.rng.random(dtype=np.float32, out=bufs[0])
    np.greater_equal(bufs[0], self.p, out=bufs[1])
    self._scale = np.multiply(bufs[1], np.asarray(1.0 / (1.0 - self.p), dtype=x.dtype), out=bufs[2])
    return np.multiply(x, self._scale, out=x)


def _dropout_backward(self: modules.Dropout, dout: np.ndarray) -> np.ndarray:
    return dout if self._scale is None else np.multiply(dout, self._scale, out=dout)


def _scratch_step(self: optim.SGD) -> None:
    f = self.parameters[0][0].dtype.type
    if not hasattr(self, "_scratch"):
        big = max(p.size for p, _ in self.parameters)
        self._scratch = (np.empty(big, f), np.empty(big, f))
    for (p, g), v in zip(self.parameters, self.velocity):
        d = self._scratch[0][: p.size].reshape(p.shape)
        t = self._scratch[1][: p.size].reshape(p.shape)
        np.multiply(p, f(self.weight_decay), out=d)
        np.add(g, d, out=d)
        v *= f(self.momentum)
        v += d
        np.multiply(v, f(self.momentum), out=t)
        np.add(d, t, out=d)
        d *= f(self.lr)
        p -= d


def _direct_grads(self: modules.Linear, dout: np.ndarray) -> None:
    np.matmul(self._x.T, dout, out=self.grads["weight"])
    if "bias" in self.params:
        np.sum(dout, axis=0, out=self.grads["bias"])


VARIANTS: dict[str, list[tuple[object, str, Callable]]] = {
    "in-place layers": [(modules.ReLU, "forward", _relu_forward), (modules.ReLU, "backward", _relu_backward),
                        (modules.Dropout, "forward", _dropout_forward),
                        (modules.Dropout, "backward", _dropout_backward)],
    "scratch SGD": [(optim.SGD, "step", _scratch_step)],
    "direct grads": [(modules.Linear, "accumulate_grads", _direct_grads),
                     (optim.SGD, "zero_grad", lambda self: None)],
}


def _epoch(task, x, y, cfg: Config, streams: Streams, epoch: int, patches=()) -> float:
    """Return the CPU seconds of one training epoch, with ``patches`` in place during it."""
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in patches]
    for owner, attr, value in patches:
        setattr(owner, attr, value)
    try:
        before = time.process_time()
        train_epoch(task, epoch_batches(x, y, cfg, epoch, streams.shuffle, streams.augment),
                    schedule_from(cfg), epoch)
        return time.process_time() - before
    finally:
        for owner, attr, value in reversed(saved):
            setattr(owner, attr, value)


def ab(name: str, samples: int, rounds: int) -> dict:
    """Return the CPU seconds of the core and of variant ``name``, their ratio, and whether they agree."""
    cfg = Config()
    x, y = synthetic_data(samples)
    streams = {k: Streams.from_seed(0) for k in ("core", "variant")}
    tasks = {k: make_task(cfg, "numpy", "classifier", streams=s) for k, s in streams.items()}
    seconds: dict[str, list[float]] = {"core": [], "variant": []}
    for epoch in range(rounds + 1):  # the first is the warm-up
        for key in (("core", "variant") if epoch % 2 else ("variant", "core")):
            patches = VARIANTS[name] if key == "variant" else ()
            sec = _epoch(tasks[key], x, y, cfg, streams[key], epoch, patches)
            if epoch:
                seconds[key].append(sec * 20_000 / samples)
    same = all(np.array_equal(a, b) for a, b in zip(tasks["core"].state_dict().values(),
                                                    tasks["variant"].state_dict().values()))
    med = {k: statistics.median(v) for k, v in seconds.items()}
    return {"cpu_seconds_per_20000": seconds, "median": med, "variant/core": med["variant"] / med["core"],
            "same_weights": same}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    report = {}
    for name in VARIANTS:
        r = report[name] = ab(name, args.samples, args.rounds)
        print(f"{name:<16} core {r['median']['core']:.3f} s CPU, variant {r['median']['variant']:.3f}: "
              f"variant/core {r['variant/core']:.3f}; same weights: {r['same_weights']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
