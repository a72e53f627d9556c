"""What torch's multi-tensor SGD step would buy the torch twin over its per-parameter loop (tried, reverted).

    python benchmarks/bench_torch_optimizer.py [--samples 10000] [--rounds 11] [--json FILE]

The torch twin builds ``torch.optim.SGD(..., foreach=False)``, a loop over the parameters
(torch's default on the CPU); ``foreach=True`` (its default on a GPU) makes each operation of
the update one call over every parameter, but its Nesterov update adds the momentum term into
``.grad`` in place, which the gradient check reads after a step, so the twin does not use it.
This script times the fit loop's real training epoch (``bench.fit_epoch``, as ``doodlelab
bench`` does) of each torch model with ``foreach`` on and off, A/B with alternating order, in
CPU seconds of this process, for the default configuration and for the grown folder's picks
(batches of 64, Nesterov momentum, learning rate 0.1). Both start from the same seed and see the
same batches, so it also says whether they train bit for bit alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from doodlelab.config import load_config
from doodlelab.kinds import CLASSIFIER, TWO_TOWER
from doodlelab.studies.bench import fit_epoch, synthetic_data
from doodlelab.tasks.streams import Streams
from doodlelab.training.registry import make_task

GROWN_PICKS = ["train.batch_size=64", "optim.lr=0.1", "optim.nesterov=true"]
CONFIGS = {"default": [], "grown folder's picks": GROWN_PICKS}


def _task(cfg, kind: str, streams: Streams, foreach: bool):
    vectors = np.random.default_rng(0).standard_normal((5, 50)).astype(np.float32)  # any K x D will do
    task = make_task(cfg, "torch", kind, streams=streams,
                     class_vectors=vectors if kind == TWO_TOWER else None)
    for group in task.optimizer.param_groups:
        group["foreach"] = foreach
    return task


def ab(kind: str, overrides: list[str], samples: int, rounds: int) -> dict:
    """Return the CPU seconds per 20,000 images with and without ``foreach``; whether the weights agree."""
    cfg = load_config(None, overrides)
    x, y = synthetic_data(samples)
    streams = {k: Streams.from_seed(0) for k in ("foreach", "loop")}
    tasks = {k: _task(cfg, kind, s, foreach=k == "foreach") for k, s in streams.items()}
    seconds: dict[str, list[float]] = {"foreach": [], "loop": []}
    for epoch in range(rounds + 1):  # the first is the warm-up
        for key in (("foreach", "loop") if epoch % 2 else ("loop", "foreach")):
            before = time.process_time()
            fit_epoch(tasks[key], x, y, cfg, streams[key], epoch)
            if epoch:
                seconds[key].append((time.process_time() - before) * 20_000 / samples)
    same = all(torch.equal(a, b) for a, b in zip(tasks["foreach"].model.parameters(),
                                                 tasks["loop"].model.parameters()))
    med = {k: statistics.median(v) for k, v in seconds.items()}
    return {"overrides": overrides, "cpu_seconds_per_20000": seconds, "median": med,
            "foreach/loop": med["foreach"] / med["loop"], "same_weights": same}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=11)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    report = {}
    for kind in (CLASSIFIER, TWO_TOWER):
        for name, overrides in CONFIGS.items():
            r = report[f"{kind}, {name}"] = ab(kind, overrides, args.samples, args.rounds)
            print(f"{kind:<10} {name:<21} per-parameter loop {r['median']['loop']:.3f} s CPU, foreach "
                  f"{r['median']['foreach']:.3f}: foreach/loop {r['foreach/loop']:.3f}; "
                  f"same weights: {r['same_weights']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
