"""Training the seeds of a study row together (stacked) vs one by one: is it faster?

    python benchmarks/bench_stacking.py [--data DIR] [--seeds 5] [--epochs 3] [--json FILE]

The models of S seeds have the same shapes, so their weights can be stacked along a
leading axis, (S, in, out), and every layer run as one batched product for all seeds
(``np.matmul`` of (S, B, in) by (S, in, out)) and one elementwise pass over (S, B, D)
arrays, paying the Python cost of a step once instead of S times.

``StackedMLP`` here is that, for the image MLP of both models (Linear, ReLU, Dropout,
L2Normalize), with each seed keeping its own initial weights (copied from the seed's
own task), its own dropout stream, batch order and augmentation (each seed's
``epoch_batches`` from its own streams). The loss, and the two-tower's word tower and
objective, stay per seed (the core's own objects on (B, K) arrays). Before timing, the
script checks that a few stacked steps give every seed bit for bit the weights the
seed's own task reaches alone on the same batches (numpy runs a stacked product as
one BLAS call per seed, with the same shapes, so the bits agree).

Timed, interleaved (alternating which goes first), in wall and CPU seconds: one
epoch of the S seeds one after the other with the core (``fit``'s training epoch
each) against one stacked epoch of all S, for the default classifier and the default
two-tower, on the training images of ``--data`` (no clean scoring in either).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from doodlelab.config import Config
from doodlelab.data.course import load_split
from doodlelab.kinds import KINDS
from doodlelab.nn import Dropout, L2Normalize, Linear, ReLU, Sequential
from doodlelab.tasks.streams import Streams
from doodlelab.tasks.threads import blas_threads
from doodlelab.training.fit import epoch_batches, schedule_from, train_epoch
from doodlelab.training.registry import make_task


class StackedMLP:
    """The Sequentials of S seeds as one: weights (S, in, out), biases (S, 1, out), SGD of the core."""

    def __init__(self, models: list[Sequential], sgd: dict) -> None:
        self.layers = []  # (kind, data) per layer
        for i, layer in enumerate(models[0].layers):
            if isinstance(layer, Linear):
                w = np.stack([m.layers[i].params["weight"] for m in models])
                b = np.stack([m.layers[i].params["bias"] for m in models])[:, None, :]
                self.layers.append(("linear", [w, b]))
            elif isinstance(layer, Dropout):
                self.layers.append(("dropout", (layer.p, [m.layers[i].rng for m in models])))
            elif isinstance(layer, ReLU):
                self.layers.append(("relu", None))
            elif isinstance(layer, L2Normalize):
                self.layers.append(("l2", layer.eps))
            else:
                raise TypeError(f"no stacked form of {type(layer).__name__}")
        self.params = [p for kind, data in self.layers if kind == "linear" for p in data]
        self.shapes = [p.shape for p, _ in models[0].parameters()]
        self.grads = [np.zeros_like(p) for p in self.params]
        self.velocity = [np.zeros_like(p) for p in self.params]
        self.lr, self.mu = sgd["lr"], sgd["momentum"]
        self.wd, self.nesterov = sgd["weight_decay"], sgd["nesterov"]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Return the outputs (S, B, out) of inputs (S, B, in), caching what backward needs."""
        self.cache = []
        for kind, data in self.layers:
            if kind == "linear":
                self.cache.append(x)
                x = np.matmul(x, data[0])
                x += data[1]
            elif kind == "relu":
                mask = x > 0
                self.cache.append(mask)
                np.multiply(x, mask, out=x)
            elif kind == "dropout":
                p, rngs = data
                draws = np.empty(x.shape, np.float32)
                for s, rng in enumerate(rngs):
                    rng.random(dtype=np.float32, out=draws[s])
                scale = (draws >= p) * np.asarray(1.0 / (1.0 - p), dtype=x.dtype)
                self.cache.append(scale)
                np.multiply(x, scale, out=x)
            else:  # l2: rows to unit length, as nn.L2Normalize
                norm = np.sqrt((x * x).sum(axis=-1, keepdims=True))
                clamped, norm = norm < data, np.maximum(norm, x.dtype.type(data))
                x = x / norm
                self.cache.append((clamped, norm, x))
        return x

    def backward(self, dout: np.ndarray) -> None:
        """Set the gradients of every stacked parameter from d(loss)/d(outputs) (S, B, out)."""
        g = iter(reversed(range(len(self.params) // 2)))
        for (kind, data), cached in zip(reversed(self.layers), reversed(self.cache)):
            if kind == "linear":
                j = next(g)
                self.grads[2 * j][...] = np.matmul(cached.transpose(0, 2, 1), dout)
                self.grads[2 * j + 1][...] = dout.sum(axis=1, keepdims=True)
                if j:
                    dout = np.matmul(dout, data[0].transpose(0, 2, 1))
            elif kind in ("relu", "dropout"):
                np.multiply(dout, cached, out=dout)
            else:
                clamped, norm, y = cached
                radial = (dout * y).sum(axis=-1, keepdims=True)
                dout = np.where(clamped, dout, dout - y * radial) / norm

    def step(self) -> None:
        """One SGD update of every stacked parameter: the core's formula, array by array."""
        f = self.params[0].dtype.type
        for p, g, v in zip(self.params, self.grads, self.velocity):
            d = g + f(self.wd) * p if self.wd else g
            v *= f(self.mu)
            v += d
            d = d + f(self.mu) * v if self.nesterov else v
            p -= f(self.lr) * d

    def seed_params(self, s: int) -> list[np.ndarray]:
        """Return seed ``s``'s parameters in the core's order (weight, bias per Linear)."""
        return [p[s].reshape(shape) for p, shape in zip(self.params, self.shapes)]


def stacked_step(kind: str, stack: StackedMLP, tasks: list, batches: list) -> None:
    """One training step of every seed at once: stacked image MLP, per-seed loss (and word tower)."""
    x = np.stack([b.x for b in batches])
    with blas_threads(tasks[0].threads(x.shape[1])):
        out = stack.forward(x)
        rows = []
        if kind == "classifier":
            for t, logits, b in zip(tasks, out, batches):
                t.loss.forward(logits, b.y)
                rows.append(t.loss.backward())
        else:
            for t, u, b in zip(tasks, out, batches):
                t.text_sgd.zero_grad()
                v = t.model.text.forward(t.class_vectors)
                _, ds = t.objective_terms(u @ v.T, b.y)
                t.model.text.backward(ds.T @ u, input_grad=False)
                rows.append(ds @ v)
                t.text_sgd.step()
        stack.backward(np.stack(rows))
        stack.step()


def _tasks(cfg: Config, kind: str, seeds: list[int], vectors: np.ndarray | None) -> tuple[list, list]:
    streams = [Streams.from_seed(s) for s in seeds]
    tasks = [make_task(replace(cfg, train=replace(cfg.train, seed=s)), "numpy", kind, streams=st,
                       class_vectors=vectors) for s, st in zip(seeds, streams)]
    return tasks, streams


def stacked_setup(cfg: Config, kind: str, seeds: list[int], vectors: np.ndarray | None):
    """Return (stack, tasks, streams): S fresh tasks whose image MLPs are stacked."""
    from doodlelab.nn import SGD

    tasks, streams = _tasks(cfg, kind, seeds, vectors)
    image = [t.model if kind == "classifier" else t.model.image for t in tasks]
    for t in tasks:
        t.model.train()
        if kind == "two_tower":
            t.text_sgd = SGD(t.model.text.parameters(), **cfg.optim.sgd_kwargs())
    return StackedMLP(image, cfg.optim.sgd_kwargs()), tasks, streams


def stacked_epoch(cfg: Config, kind: str, setup, x: np.ndarray, y: np.ndarray, epoch: int,
                  limit: int | None = None) -> float:
    """Return the seconds of one stacked epoch (every seed's own batches, zipped); ``limit`` steps at most."""
    stack, tasks, streams = setup
    schedule = schedule_from(cfg)
    iters = [epoch_batches(x, y, cfg, epoch, st.shuffle, st.augment) for st in streams]
    tick = time.perf_counter()
    for i, batches in enumerate(zip(*iters)):
        if limit is not None and i == limit:
            break
        stack.lr = schedule(batches[0].position)
        for t in tasks:
            if kind == "two_tower":
                t.text_sgd.lr = stack.lr
        stacked_step(kind, stack, tasks, list(batches))
    return time.perf_counter() - tick


def alone_epoch(cfg: Config, setup, x: np.ndarray, y: np.ndarray, epoch: int) -> float:
    """Return the seconds of one training epoch of every seed, one after the other, with the core."""
    tasks, streams = setup
    schedule = schedule_from(cfg)
    tick = time.perf_counter()
    for t, st in zip(tasks, streams):
        train_epoch(t, epoch_batches(x, y, cfg, epoch, st.shuffle, st.augment), schedule, epoch)
    return time.perf_counter() - tick


def check_identical(cfg: Config, kind: str, seeds: list[int], vectors, x, y, steps: int = 4) -> bool:
    """Return whether ``steps`` stacked steps give every seed the weights of its task trained alone."""
    setup = stacked_setup(cfg, kind, seeds, vectors)
    stacked_epoch(cfg, kind, setup, x, y, 0, limit=steps)
    tasks, streams = _tasks(cfg, kind, seeds, vectors)
    schedule = schedule_from(cfg)
    same = True
    for s, (t, st) in enumerate(zip(tasks, streams)):
        batches = epoch_batches(x, y, cfg, 0, st.shuffle, st.augment)
        train_epoch(t, (b for _, b in zip(range(steps), batches)), schedule, 0)
        image = t.model if kind == "classifier" else t.model.image
        alone = [p for p, _ in image.parameters()]
        same &= all(np.array_equal(a, b) for a, b in zip(alone, setup[0].seed_params(s)))
    return bool(same)


def measure(cfg: Config, kind: str, seeds: list[int], vectors, x, y, epochs: int) -> dict:
    """Return the interleaved epoch seconds of the seeds alone and stacked, and their medians."""
    stacked = stacked_setup(cfg, kind, seeds, vectors)
    alone = _tasks(cfg, kind, seeds, vectors)
    times: dict[str, list[float]] = {"alone": [], "stacked": []}
    cpu: dict[str, list[float]] = {"alone": [], "stacked": []}
    runs = {"alone": lambda e: alone_epoch(cfg, alone, x, y, e),
            "stacked": lambda e: stacked_epoch(cfg, kind, stacked, x, y, e)}
    for epoch in range(epochs + 1):  # the first is the warm-up
        for name in (("alone", "stacked") if epoch % 2 else ("stacked", "alone")):
            time.sleep(0.25)
            before = time.process_time()
            sec = runs[name](epoch)
            if epoch:
                times[name].append(sec)
                cpu[name].append(time.process_time() - before)
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    return {"seconds": times, "cpu_seconds": cpu, "median": med, "median_cpu": med_cpu,
            "stacked/alone": med["stacked"] / med["alone"],
            "stacked/alone_cpu": med_cpu["stacked"] / med_cpu["alone"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=os.environ.get("DOODLELAB_DATA"))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    train = load_split(args.data, "train")
    x, y = np.asarray(train.x, np.float32), train.y
    seeds = list(range(args.seeds))
    vectors = np.random.default_rng(0).normal(size=(5, 50)).astype(np.float32)  # stand-in GloVe rows
    report = {"images": int(y.shape[0]), "seeds": args.seeds, "epochs": args.epochs,
              "load_average_before": os.getloadavg()[0]}
    for kind in KINDS:
        cfg = Config()
        report[kind] = {"identical": check_identical(cfg, kind, seeds, vectors, x, y),
                        **measure(cfg, kind, seeds, vectors, x, y, args.epochs)}
        r = report[kind]
        print(f"{kind}: {args.seeds} seeds, {y.shape[0]} images: alone {r['median']['alone']:.2f} s, "
              f"stacked {r['median']['stacked']:.2f} s per epoch of all seeds "
              f"(stacked/alone {r['stacked/alone']:.2f}, in CPU seconds {r['stacked/alone_cpu']:.2f}); "
              f"stacked weights identical: {r['identical']}")
    report["load_average_after"] = os.getloadavg()[0]
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
