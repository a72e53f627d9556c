"""The matrix-product floor of a finished main job: how fast could its evidence be trained at all?

    python benchmarks/products_floor.py RESULTS [--json FILE] [--repeats 5]

RESULTS is the folder a ``doodlelab run`` wrote. For every heavy step it trained (each study
setting with its seeds, each of the four final runs) this reads the shapes it trained (layer
widths, batch size, epochs, how many images it trained on and scored every epoch) and *times*
the matrix products of that work alone on this machine: per epoch the training products of
``matmul_floor.epoch_products`` over the images the step trained on, then the forward products
of scoring the validation split (and, in a final run, its training-curve sample); a final run
adds the test split's forward products once per test-time view, a study row its validation
split's (the test-time-shift accuracy of every row). Scoring runs in the tasks' chunks of
``SCORING_ROWS`` images. Each distinct shape is timed ``--repeats`` times after a warm-up
and the *best* time is taken, as befits a floor. Every product runs at one BLAS
thread (as each worker of the job's pool does), in float32 with weights of the step's shapes.

What is left out makes the floor *lower* than any real run: biases, activations, losses, the
optimizer, augmentation, the word tower's products (5 class vectors a step), the torch runs'
own overheads (their products are timed at numpy's rate), Python, writing files. So if the
floor divided by the job's workers is above a wall-time target, no implementation of the same
evidence meets that target on this machine.

Prints one line per kind of step and the totals; ``--json`` writes every step's floor beside
its measured seconds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from doodlelab.data.augment import TTA_SHIFTS
from doodlelab.files.atomic import write_json
from doodlelab.geometry import N_PIXELS
from doodlelab.pipeline import layout
from doodlelab.pipeline.rows import parse_job_name
from doodlelab.studies.matmul_floor import products_timer
from doodlelab.tasks.mlp import N_CLASSES
from doodlelab.training.fit import TRAIN_CURVE_IMAGES

SCORING_ROWS = 2048  # the tasks' eval-mode chunk (``logits`` / ``embed``'s ``batch_size``)


class NotAJob(Exception):
    """RESULTS is not a finished ``doodlelab run`` this script can read."""


def image_widths(model: str, config: dict[str, Any]) -> list[int]:
    """Return the widths of the image MLP a step trains (a two-tower's ends in the shared space)."""
    out = config["two_tower"]["embed_dim"] if model == "two_tower" else N_CLASSES
    return [N_PIXELS, *config["model"]["hidden"], out]


def steps_of(results: Path, job: dict[str, Any]) -> list[dict[str, Any]]:
    """Return every heavy step of the finished job ``job`` (its manifest) in ``results``: its shapes,
    its work and its measured seconds."""
    counts = read_json_file(layout.data_dir(results) / layout.DATA_JSON)["counts"]
    n_train, n_val, n_test = (sum(counts[split].values()) for split in ("train", "validation", "test"))
    study_images = job["study"]["train_images"]
    steps = []
    for name, step in job["steps"].items():
        if name.startswith("points/"):
            key, seeds = parse_job_name(name)
            point = read_json_file(layout.point_file(results, key))
            model, config = point["stamp"]["model"], point["stamp"]["config"]
            steps.append({"step": name, "what": "study setting", "model": model,
                          "widths": image_widths(model, config), "batch": config["train"]["batch_size"],
                          "epochs": config["train"]["epochs"], "seeds": seeds,
                          "train": min(study_images, n_train), "scored": n_val, "end_rows": n_val,
                          "end_views": len(TTA_SHIFTS), "seconds": step["seconds"]})
        elif name.startswith("runs/"):
            model = name.removeprefix("runs/").rsplit("-", 1)[0]
            config = job["final"][model]["config"]
            views = len(TTA_SHIFTS) if config["eval"]["tta"] else 1
            steps.append({"step": name, "what": "final run", "model": model,
                          "widths": image_widths(model, config), "batch": config["train"]["batch_size"],
                          "epochs": config["train"]["epochs"], "seeds": 1, "train": n_train,
                          "scored": n_val + min(TRAIN_CURVE_IMAGES, n_train), "end_rows": n_test,
                          "end_views": views, "seconds": step["seconds"]})
    return steps


def read_json_file(path: Path) -> Any:
    """Return the parsed JSON file at ``path``; :class:`NotAJob` if it is missing or not JSON."""
    found = layout.read_json(path)
    if found is None:
        raise NotAJob(f"{path} is missing or not JSON")
    return found


def read_job(results: Path) -> dict[str, Any]:
    """Return the manifest of a *finished* job (it has its wall and CPU seconds); :class:`NotAJob` if not."""
    job = read_json_file(results / layout.MANIFEST)
    missing = [k for k in ("steps", "final", "study", "jobs", "wall_seconds", "cpu_seconds") if k not in job]
    if missing:
        raise NotAJob(f"{results / layout.MANIFEST} has no {', '.join(missing)} "
                      "(not a finished `doodlelab run`)")
    return job


def best_time(timer: Any, repeats: int) -> float:
    """Return the least of ``repeats`` calls of ``timer`` after one warm-up call."""
    timer()
    return min(timer() for _ in range(repeats))


def floor_seconds(step: dict[str, Any], images: np.ndarray, repeats: int, cache: dict) -> float:
    """Return the timed products of ``step`` over all its seeds: per seed, epochs x (training +
    scoring), then the scoring at the end (a study row's validation with its test-time shifts, a
    final run's test split). ``cache`` keeps each distinct timing across steps."""
    widths, batch = step["widths"], step["batch"]

    def timed(rows: int, backward: bool, size: int) -> float:
        key = (tuple(widths), rows, backward, size)
        if key not in cache:
            timer = products_timer(widths, size, images[:rows], 0, backward=backward)
            cache[key] = best_time(timer, repeats)
        return cache[key]

    epoch = timed(step["train"], True, batch) + timed(step["scored"], False, SCORING_ROWS)
    end = step["end_views"] * timed(step["end_rows"], False, SCORING_ROWS)
    return step["seeds"] * (step["epochs"] * epoch + end)


def summarise(steps: list[dict[str, Any]], jobs: int, wall: float, cpu: float) -> dict[str, Any]:
    """Return the totals by kind of step and the wall-time floor of the whole job on ``jobs`` workers."""
    kinds: dict[str, dict[str, float]] = {}
    for s in steps:
        k = kinds.setdefault(s["what"], {"floor_s": 0.0, "measured_s": 0.0, "steps": 0})
        k["floor_s"] += s["floor_s"]
        k["measured_s"] += s["seconds"]
        k["steps"] += 1
    floor = sum(s["floor_s"] for s in steps)
    measured = sum(s["seconds"] for s in steps)
    return {"by_kind": kinds, "floor_core_s": floor, "measured_step_s": measured,
            "products_share": floor / measured, "jobs": jobs, "wall_floor_s": floor / jobs,
            "job_wall_s": wall, "job_cpu_s": cpu}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a folder `doodlelab run` finished")
    parser.add_argument("--json", type=Path, help="write every step's floor and the totals here")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per shape (the best is kept)")
    args = parser.parse_args(argv)
    try:
        if args.repeats < 1:
            raise NotAJob(f"--repeats must be at least 1 (got {args.repeats})")
        job = read_job(args.results)
        steps = steps_of(args.results, job)
    except (NotAJob, KeyError, TypeError, AttributeError) as e:
        detail = e if isinstance(e, NotAJob) else f"{args.results} is not laid out as a finished job ({e!r})"
        print(f"products_floor: {detail}", file=sys.stderr)
        return 2
    largest = max(max(s["train"], s["scored"], s["end_rows"]) for s in steps)
    images = np.random.default_rng(0).random((largest, N_PIXELS), dtype=np.float32)
    cache: dict = {}
    for s in steps:
        s["floor_s"] = floor_seconds(s, images, args.repeats, cache)
    totals = summarise(steps, job["jobs"], job["wall_seconds"], job["cpu_seconds"])
    for what, k in totals["by_kind"].items():
        print(f"{what:14s} {k['steps']:3d} steps  products {k['floor_s']:7.1f} s  "
              f"measured {k['measured_s']:7.1f} s  ({k['floor_s'] / k['measured_s']:.0%})")
    print(f"products of the whole job {totals['floor_core_s']:.1f} core-s = "
          f"{totals['wall_floor_s']:.1f} s wall "
          f"on {totals['jobs']} workers at best; the job took {totals['job_wall_s']:.1f} s wall, "
          f"{totals['job_cpu_s']:.1f} CPU s")
    if args.json:
        write_json(args.json, {"results": str(args.results), **totals, "steps": steps})
    return 0


if __name__ == "__main__":
    sys.exit(main())
