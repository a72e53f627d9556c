"""Two finished runs side by side, typically the numpy and the torch backend of one config.

Writes into one folder:

- ``comparison.csv`` / ``comparison.json``: every test metric of both runs (macro scores
  and per-class ones) with the difference ``b - a``;
- ``loss.png``/``.csv`` and ``accuracy.png``/``.csv``: both runs' train and validation
  curves overlaid (:func:`doodlelab.training.figures.plot_curves`);
- in ``metrics.json`` also the largest per-epoch difference of each curve, the number
  that says how closely the two trainings followed each other.

Reads run folders (through :class:`~doodlelab.runs.folder.RunFolder`) only; it never imports torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from doodlelab.errors import UserError
from doodlelab.files.atomic import write_csv, write_json
from doodlelab.runs.folder import RunFolder
from doodlelab.training.metrics import SCALAR_KEYS as SCALAR_METRICS

SUMMARY_JSON, SUMMARY_CSV = "comparison.json", "comparison.csv"  # the comparison folder's own files
CLASS_METRICS = ("precision", "recall", "f1", "roc_auc", "pr_auc")
CURVES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


def comparison_files() -> tuple[str, ...]:
    """Return the names of every file a finished comparison folder holds (the summary first)."""
    from doodlelab.training.figures import curve_files

    return (SUMMARY_JSON, SUMMARY_CSV, *curve_files())


def read_run(run_dir: Path) -> dict[str, Any]:
    """Return ``{"run_dir", "task", "backend", "metrics", "history"}`` of a finished run.

    ``history`` is the list of per-epoch rows of ``history.csv`` (epoch and the curves).
    """
    run = RunFolder(run_dir).require_finished()
    config, metrics, rows = run.config, run.metrics, run.history
    if not all(set(CURVES) <= set(row) for row in rows):
        raise UserError(f"{run.path}: the history lacks the columns {', '.join(CURVES)}")
    history = [{k: float(v) for k, v in row.items() if k in ("epoch", *CURVES)} for row in rows]
    return {"run_dir": str(run_dir), "task": config.get("task"),
            "backend": config.get("backend"), "metrics": metrics, "history": history,
            "predictions": run.predictions}


def mcnemar(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    """Return McNemar's exact test of the two runs on their test images (None without predictions of
    the same images): which images only one of them gets right, and the p-value."""
    from doodlelab.training.metrics import mcnemar_exact

    if a["predictions"] is None or b["predictions"] is None:
        return None
    (pa, ya), (pb, yb) = a["predictions"], b["predictions"]
    if ya.shape != yb.shape or not np.array_equal(ya, yb):
        return None
    return mcnemar_exact(pa.argmax(axis=1) == ya, pb.argmax(axis=1) == yb)


def run_labels(a: dict[str, Any], b: dict[str, Any]) -> tuple[str, str]:
    """Return two distinct labels: the backends if they differ, else the folder names."""
    reserved = {"metric", "difference"}
    for la, lb in ((a["backend"], b["backend"]),
                   (Path(a["run_dir"]).name, Path(b["run_dir"]).name)):
        if la and lb and la != lb and not {la, lb} & reserved:
            return str(la), str(lb)
    return "run A", "run B"


def _metric_values(metrics: dict[str, Any]) -> dict[str, float | None]:
    """Flatten the scalar and per-class test metrics: ``accuracy``, ``rabbit.f1``, ..."""
    values: dict[str, float | None] = {k: metrics.get(k) for k in SCALAR_METRICS}
    for name, scores in (metrics.get("per_class") or {}).items():
        for k in CLASS_METRICS:
            values[f"{name}.{k}"] = scores.get(k)
    return values


def metric_rows(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Return one ``{"metric", "a", "b", "difference"}`` row per test metric (difference b - a)."""
    va, vb = _metric_values(a["metrics"]), _metric_values(b["metrics"])
    rows = []
    for name in dict.fromkeys([*va, *vb]):
        x, y = va.get(name), vb.get(name)
        diff = y - x if x is not None and y is not None else None
        rows.append({"metric": name, "a": x, "b": y, "difference": diff})
    return rows


def curve_differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Return the largest |a - b| of each curve over the epochs both runs have."""
    common = min(len(a["history"]), len(b["history"]))
    diffs = {k: max((abs(ra[k] - rb[k]) for ra, rb in zip(a["history"], b["history"])),
                    default=0.0) for k in CURVES}
    return {"epochs_compared": common, "max_abs_diff": diffs}


def compare_runs(run_a: Path, run_b: Path, out: Path) -> dict[str, Any]:
    """Write the side-by-side metrics (CSV + JSON) and overlaid curves (PNG + CSV) to ``out``.

    Returns what ``metrics.json`` holds: ``runs`` (label, folder, task, backend per
    side ``a``/``b``), ``metrics`` (rows of :func:`metric_rows`) and ``curves``.
    """
    from doodlelab.training.figures import plot_curves

    a, b = read_run(run_a), read_run(run_b)
    la, lb = run_labels(a, b)
    rows = metric_rows(a, b)
    summary = {
        "runs": {side: {"label": label, "run_dir": run["run_dir"], "task": run["task"],
                        "backend": run["backend"]}
                 for side, label, run in (("a", la, a), ("b", lb, b))},
        "metrics": rows,
        "curves": curve_differences(a, b),
        "mcnemar": mcnemar(a, b),
    }
    out = Path(out)
    write_csv(out / SUMMARY_CSV,
              [{"metric": r["metric"], la: r["a"], lb: r["b"], "difference": r["difference"]}
               for r in rows],
              ["metric", la, lb, "difference"])
    write_json(out / SUMMARY_JSON, summary)
    plot_curves({la: a["history"], lb: b["history"]}, out)
    return summary


def format_comparison(summary: dict[str, Any]) -> str:
    """Return the macro metrics of both runs as a small aligned table."""
    la, lb = summary["runs"]["a"]["label"], summary["runs"]["b"]["label"]
    width = max(len(la), len(lb), 10)
    lines = [f"{'metric':<16} {la:>{width}} {lb:>{width}} {'b - a':>10}"]

    def cell(v: float | None, w: int) -> str:
        return f"{v:>{w}.4f}" if v is not None else f"{'n/a':>{w}}"

    for r in summary["metrics"]:
        if r["metric"] in SCALAR_METRICS:
            lines.append(f"{r['metric']:<16} {cell(r['a'], width)} {cell(r['b'], width)} "
                         f"{cell(r['difference'], 10)}")
    curves = summary["curves"]
    lines.append(f"largest curve difference over {curves['epochs_compared']} epochs: " + ", ".join(
        f"{k} {v:.2e}" for k, v in curves["max_abs_diff"].items()))
    return "\n".join(lines)


# -- command line ------------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``compare`` to the ``doodlelab`` subcommands."""
    p = subparsers.add_parser("compare", help="two runs side by side: test metrics, overlaid curves")
    p.add_argument("run_a", type=Path, metavar="RUN_A")
    p.add_argument("run_b", type=Path, metavar="RUN_B")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="folder to write (default: runs/compare-<RUN_A>-<RUN_B>)")


def command(args: argparse.Namespace) -> int:
    """Run ``doodlelab compare``; return 0."""
    out = args.out or Path("runs") / f"compare-{args.run_a.name}-{args.run_b.name}"
    summary = compare_runs(args.run_a, args.run_b, out)
    print(format_comparison(summary))
    print(f"-> {out}")
    return 0
