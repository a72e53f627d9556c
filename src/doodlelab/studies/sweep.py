"""Hyperparameter sweeps judged on the validation split only.

``doodlelab sweep --grid optim.lr=[0.02,0.05,0.1] --grid model.dropout=[0.0,0.3]``
trains the classifier once per combination (and per seed) on the training part of
the course folder and records how it did on the validation part. The test files are
never read, so a default chosen from a sweep is chosen without looking at test.

Writes into ``--out``: ``sweep.csv`` (one row per combination and seed: the
settings, validation accuracy and loss of the kept weights, the accuracy with
test-time shift averaging (``eval.tta``), the best validation accuracy over epochs
and its epoch, final train accuracy, seconds), ``summary.csv`` (mean and std over
seeds per combination, best first) and ``histories.csv`` (every epoch of every run,
for curves).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from doodlelab.config import Config, ConfigError, add_config_args, build_config, parse_override
from doodlelab.data.course import add_data_arg
from doodlelab.data.prepare import Prepared, class_word_vectors
from doodlelab.errors import UserError
from doodlelab.files.atomic import write_csv
from doodlelab.files.terminal import show_progress
from doodlelab.kinds import BACKENDS, CLASSIFIER, KINDS, NUMPY, Backend, Kind
from doodlelab.training.fit import FitResult, fit_new
from doodlelab.training.registry import spec, task_class
from doodlelab.training.scoring import probabilities
from doodlelab.training.seeds import fit_seeds

SWEEP_CSV, HISTORIES_CSV, SUMMARY_CSV = "sweep.csv", "histories.csv", "summary.csv"  # a sweep folder's files


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """Parse ``section.key=[v1, v2, ...]`` (TOML array) items into ``{"section.key": [...]}``."""
    grid: dict[str, list[Any]] = {}
    for text in items:
        section, key, values = parse_override(text)
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f"--grid {text!r}: expected a non-empty TOML array, e.g. optim.lr=[0.01,0.05]"
            )
        grid[f"{section}.{key}"] = values
    return grid


def combinations(base: Config, grid: dict[str, list[Any]]) -> list[tuple[dict[str, Any], Config]]:
    """Return ``(settings, config)`` for every point of the grid, each config checked."""
    keys = list(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        settings = dict(zip(keys, values))
        raw = base.to_dict()
        for dotted, value in settings.items():
            section, key = dotted.split(".")
            raw.setdefault(section, {})[key] = value
        out.append((settings, build_config(raw)))
    return out


def _fmt(value: Any) -> str:
    return "[" + ",".join(str(v) for v in value) + "]" if isinstance(value, list) else str(value)


def label_of(settings: dict[str, Any]) -> str:
    """Return the label of a grid point: ``optim.lr=0.05 model.hidden=[512,256]`` (``base`` if empty)."""
    return " ".join(f"{k}={_fmt(v)}" for k, v in settings.items()) or "base"


def sweep_point(data: Prepared, cfg: Config, settings: dict[str, Any], seed: int, *, backend: Backend = NUMPY,
                kind: Kind = CLASSIFIER, class_vectors: Any = None, train_images: int | None = None,
                score_train: bool = True) -> tuple[dict[str, Any], list[dict]]:
    """Train one grid point with ``seed`` on ``data``'s training file; return its sweep.csv row (no
    ``point`` column: the caller numbers the points) and its history rows.

    ``train_images`` caps the training images: a stratified subset of the seed's training split.
    """
    return sweep_point_seeds(data, cfg, settings, [seed], backend=backend, kind=kind,
                             class_vectors=class_vectors, train_images=train_images,
                             score_train=score_train)[0]


class Gathered(Sequence):
    """``array[rows[i]]`` for each index array of ``rows``, gathered only when item ``i`` is asked for."""

    def __init__(self, array: Any, rows: list[np.ndarray]) -> None:
        self.array, self.rows = array, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Any:  # type: ignore[override]
        return self.array[self.rows[i]]


def sweep_point_seeds(data: Prepared, cfg: Config, settings: dict[str, Any], seeds: list[int], *,
                      backend: Backend = NUMPY, kind: Kind = CLASSIFIER, class_vectors: Any = None,
                      train_images: int | None = None,
                      score_train: bool = True) -> list[tuple[dict[str, Any], list[dict]]]:
    """Train one grid point once per seed (:func:`~doodlelab.training.seeds.fit_seeds`); return
    ``[(row, history rows)]`` in ``seeds``' order, each what :func:`sweep_point` returns for that seed.

    Each seed trains on its own split (``data.split_for(seed)``, capped to ``train_images``
    by a stratified subset drawn with the seed). ``score_train=False`` leaves the clean
    scoring of the training split out of every epoch (its history columns and
    ``final_train_accuracy`` are NaN; see :func:`doodlelab.training.fit.fit`).
    """
    from doodlelab.data.split import stratified_subset

    train = data.train
    splits = [data.split_for(seed, cfg.data.val_fraction) for seed in seeds]
    if train_images is not None:
        splits = [(stratified_subset(t, train.y, train_images, seed), v)
                  for seed, (t, v) in zip(seeds, splits)]
    train_rows, val_rows = [t for t, _ in splits], [v for _, v in splits]
    parts = (Gathered(train.x, train_rows), Gathered(train.y, train_rows),
             Gathered(train.x, val_rows), Gathered(train.y, val_rows))
    fitted = fit_seeds(cfg, backend, kind, seeds, *parts, class_vectors=class_vectors,
                       n_classes=len(data.classes), progress=False, score_train=score_train)
    out = []
    for seed, (task, result), x_val, y_val in zip(seeds, fitted, parts[2], parts[3]):
        shifted = probabilities(task, x_val, tta=True).argmax(axis=1)
        row = _row(0, settings, seed, result, float((shifted == y_val).mean()))
        del row["point"]
        out.append((row, [{"label": row["label"], "seed": seed, **h} for h in result.history]))
    return out


def write_sweep(out: Path, rows: list[dict[str, Any]], histories: list[dict[str, Any]]) -> list[dict]:
    """Write the sweep, histories and (last) summary CSVs of ``rows``; return the summary rows."""
    def union(items: list[dict[str, Any]]) -> list[str]:  # points may log different loss terms
        return list(dict.fromkeys(k for item in items for k in item))

    write_csv(Path(out) / SWEEP_CSV, rows, union(rows))
    write_csv(Path(out) / HISTORIES_CSV, histories, union(histories))
    summary = summarize(rows)
    write_csv(Path(out) / SUMMARY_CSV, summary)
    return summary


def _class_vectors(data: Prepared, base: Config,
                   points: list[tuple[dict[str, Any], Config]]) -> dict[str, np.ndarray]:
    """Return the class vectors (K, D) of every ``two_tower.word_vectors`` source in the grid, by source.

    ``data``'s own vectors (if it holds them) are those of ``base``'s source.
    """
    vectors: dict[str, np.ndarray] = {}
    if data.class_vectors is not None:
        vectors[base.two_tower.word_vectors] = data.class_vectors
    for _, cfg in points:
        source = cfg.two_tower.word_vectors
        if source not in vectors:
            vectors[source] = class_word_vectors(source, data.classes)[0]
    return vectors


def _row(i: int, settings: dict[str, Any], seed: int, result: FitResult,
         val_accuracy_tta: float) -> dict[str, Any]:
    """Return the sweep.csv row of one trained point and seed."""
    best = max(result.history, key=lambda h: (h["val_accuracy"], -h["epoch"]))
    kept = result.history[result.weights_epoch - 1]
    return {
        "point": i, "label": label_of(settings),
        "seed": seed,
        **{k: _fmt(v) for k, v in settings.items()},
        "val_accuracy": kept["val_accuracy"],
        "val_loss": kept["val_loss"],
        "val_accuracy_tta": val_accuracy_tta,
        "best_val_accuracy": best["val_accuracy"],
        "best_epoch": int(best["epoch"]),
        "val_loss_at_best": best["val_loss"],
        "min_val_loss": min(h["val_loss"] for h in result.history),
        "final_val_accuracy": result.history[-1]["val_accuracy"],
        "final_train_accuracy": result.history[-1]["train_accuracy"],
        "seconds": round(result.train_seconds, 2),
    }


def run_sweep(
    *,
    data: Prepared,
    out: Path,
    base: Config,
    grid: dict[str, list[Any]],
    seeds: list[int],
    backend: Backend = NUMPY,
    progress: bool | None = None,
    kind: Kind = CLASSIFIER,
) -> list[dict[str, Any]]:
    """Train every combination for every seed on ``data``'s training file; write the CSVs and
    return the summary rows.

    ``kind`` is the model kind (a kind with word vectors has them read once per
    ``two_tower.word_vectors`` source in the grid; ``data``'s when it holds them).
    """
    task_class(backend, kind)
    if not seeds:
        raise UserError("--seeds needs at least one seed")
    points = combinations(base, grid)  # every config is checked before any training
    out = Path(out)
    if (out / SWEEP_CSV).exists():
        raise UserError(f"{out} already holds a sweep ({SWEEP_CSV}); choose another --out")
    progress = show_progress(progress)
    # every word-vector source is read (and checked) before any training
    vectors = _class_vectors(data, base, points) if spec(kind).word_vectors else {}
    train = data.train
    rows: list[dict[str, Any]] = []
    histories: list[dict[str, Any]] = []
    jobs = [(i, settings, cfg, seed) for i, (settings, cfg) in enumerate(points) for seed in seeds]
    for i, settings, cfg, seed in tqdm(jobs, desc="sweep", unit="run", disable=not progress):
        raw = cfg.to_dict()
        raw["train"]["seed"] = seed
        cfg = build_config(raw)
        train_idx, val_idx = data.split_for(seed, cfg.data.val_fraction)
        task, result = fit_new(cfg, backend, kind, train.x[train_idx], train.y[train_idx],
                               train.x[val_idx], train.y[val_idx], progress=False,
                               class_vectors=vectors.get(cfg.two_tower.word_vectors),
                               n_classes=len(data.classes))
        shifted = probabilities(task, train.x[val_idx], tta=True).argmax(axis=1)
        rows.append(_row(i, settings, seed, result, float((shifted == train.y[val_idx]).mean())))
        histories += [{"point": i, "label": rows[-1]["label"], "seed": seed, **h} for h in result.history]
        write_csv(out / SWEEP_CSV, rows)  # after every run: an interrupted sweep keeps its rows
    # Runs of different objectives log different term_* columns: keep every one (blank where absent).
    write_csv(out / HISTORIES_CSV, histories, list(dict.fromkeys(k for h in histories for k in h)))
    summary = summarize(rows)
    write_csv(out / SUMMARY_CSV, summary)
    return summary


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return one row per grid point, best first.

    ``val_accuracy`` is the validation accuracy of the weights the run keeps (the last
    epoch's unless ``train.restore_best``); ``best_val_accuracy`` is the highest over
    epochs, which is optimistic: picking a maximum out of many noisy epochs.
    """
    by_point: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_point.setdefault(row["point"], []).append(row)
    summary = []
    for point, group in by_point.items():
        accs = [float(r["val_accuracy"]) for r in group]
        summary.append({
            "point": point,
            "label": group[0]["label"],
            "seeds": len(group),
            "val_accuracy_mean": round(statistics.fmean(accs), 6),
            "val_accuracy_std": round(statistics.pstdev(accs), 6),
            "val_loss_mean": round(statistics.fmean(float(r["val_loss"]) for r in group), 6),
            "val_accuracy_tta_mean": round(
                statistics.fmean(float(r["val_accuracy_tta"]) for r in group), 6),
            "best_val_accuracy_mean": round(
                statistics.fmean(float(r["best_val_accuracy"]) for r in group), 6),
            "best_epoch_mean": round(statistics.fmean(int(r["best_epoch"]) for r in group), 1),
            "seconds_mean": round(statistics.fmean(float(r["seconds"]) for r in group), 2),
        })
    summary.sort(key=lambda r: -r["val_accuracy_mean"])
    return summary


# -- command line ------------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sweep`` to the ``doodlelab`` subcommands."""
    p = subparsers.add_parser("sweep", help="grid of settings judged on the validation split only")
    add_data_arg(p)
    p.add_argument("--grid", action="append", default=[], metavar="SECTION.KEY=[V1,V2]",
                   help="values to try for one setting (TOML array); repeat for a grid")
    p.add_argument("--seeds", default="0", metavar="S1,S2",
                   help="comma-separated training seeds per point (default 0)")
    p.add_argument("--backend", choices=list(BACKENDS), default=NUMPY)
    p.add_argument("--model", choices=list(KINDS), default=CLASSIFIER,
                   help=f"which model to sweep (default {CLASSIFIER})")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the CSVs")
    add_config_args(p)


def command(args: argparse.Namespace) -> int:
    """Run ``doodlelab sweep``; return 0."""
    from doodlelab.config import load_config
    from doodlelab.data.prepare import prepare

    base = load_config(args.config, args.overrides)
    grid = parse_grid(args.grid)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds {args.seeds!r}: expected comma-separated integers") from None
    task_class(args.backend, args.model)
    combinations(base, grid)  # a bad grid fails before the data is read
    data = prepare(base, args.data, test=False)  # a sweep never reads the test files
    summary = run_sweep(data=data, out=args.out, base=base, grid=grid, seeds=seeds,
                        backend=args.backend, kind=args.model)
    for row in summary:
        print(f"{row['val_accuracy_mean']:.4f} +- {row['val_accuracy_std']:.4f}  "
              f"(best epoch {row['best_epoch_mean']:g}, {row['seconds_mean']:g} s)  {row['label']}")
    print(f"-> {args.out}")
    return 0
