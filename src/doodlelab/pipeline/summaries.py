"""One study's folder under ``sweep/``: its rows as tables, its curves, and its decision.

Reads the trained rows (``sweep/points/<key>.json``, one per setting and seed) and writes,
with :mod:`doodlelab.studies.decision` deciding:

- ``sweep.csv``: one row per setting and seed (validation accuracy and loss of the kept
  weights, with test-time shifts, best epoch, seconds);
- ``histories.csv``: every epoch of every row; ``curves.csv`` and ``curves.svg``: the
  validation accuracy and loss per epoch, mean over seeds, one line per setting;
- ``decision.json``: the verdict of every setting (mean and 95% interval, paired
  difference to the best, best / tied / below, chosen, the configuration's), the pairwise
  paired differences, and what the study is (question, settings simplest first, seeds);
- ``summary.csv`` (last): the verdicts as a table.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from doodlelab.files.atomic import write_csv, write_json
from doodlelab.studies.decision import Decision, decide, paired_difference, t_interval
from doodlelab.studies.sweep import HISTORIES_CSV, SUMMARY_CSV, SWEEP_CSV

SUMMARY = SUMMARY_CSV  # written last: a study folder without it is unfinished
CURVES, DECISION = "curves.csv", "decision.json"
FILES = (SWEEP_CSV, HISTORIES_CSV, CURVES, DECISION, SUMMARY)
ROW_SCORES = ("val_accuracy", "val_loss", "val_accuracy_tta", "best_val_accuracy", "best_epoch", "seconds")


Done = Sequence[tuple[str, int, Mapping[str, Any]]]  # (setting name, seed, trained row {"row", "history"})


def _rows(done: Done) -> list[dict[str, Any]]:
    return [{"setting": name, "seed": seed, **{k: result["row"][k] for k in ROW_SCORES}}
            for name, seed, result in done]


def _curves(done: Done) -> list[dict[str, Any]]:
    """Return the mean validation accuracy and loss per setting and epoch over the seeds."""
    by: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for name, _seed, result in done:
        for h in result["history"]:
            by.setdefault((name, int(h["epoch"])), []).append(h)
    return [{"setting": name, "epoch": epoch,
             "val_accuracy": statistics.fmean(float(h["val_accuracy"]) for h in hs),
             "val_loss": statistics.fmean(float(h["val_loss"]) for h in hs), "seeds": len(hs)}
            for (name, epoch), hs in by.items()]


def _decision(entry: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> tuple[Decision, list[dict]]:
    """Decide among the candidate settings; return the decision and the comparison-only verdicts."""
    accuracy: dict[str, dict[int, float]] = {}
    for r in rows:
        accuracy.setdefault(r["setting"], {})[int(r["seed"])] = float(r["val_accuracy"])
    candidates = [s["name"] for s in entry["settings"] if s["candidate"]]
    decision = decide([(n, accuracy[n]) for n in candidates], default=entry["default"])
    others = []
    for s in entry["settings"]:
        if not s["candidate"]:
            acc = accuracy[s["name"]]
            others.append({"name": s["name"], "accuracy": t_interval(list(acc.values())).__dict__,
                           "versus_best": paired_difference(acc, accuracy[decision.best]).__dict__,
                           "status": "comparison", "chosen": False, "default": False})
    return decision, others


def _summary(decision: Decision, others: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
             order: Sequence[str]) -> list[dict[str, Any]]:
    tta = {n: statistics.fmean(float(r["val_accuracy_tta"]) for r in rows if r["setting"] == n)
           for n in order}
    verdicts = {v.name: {"accuracy": v.accuracy.__dict__, "versus_best": v.versus_best.__dict__,
                         "status": v.status, "chosen": v.chosen, "default": v.default}
                for v in decision.verdicts}
    verdicts.update({o["name"]: o for o in others})
    out = []
    for name in order:
        v = verdicts[name]
        out.append({"setting": name, "status": v["status"], "chosen": v["chosen"], "default": v["default"],
                    "mean": v["accuracy"]["mean"], "low": v["accuracy"]["low"], "high": v["accuracy"]["high"],
                    "versus_best": v["versus_best"]["mean"], "versus_best_low": v["versus_best"]["low"],
                    "versus_best_high": v["versus_best"]["high"], "tta_mean": tta[name],
                    "seeds": v["accuracy"]["n"]})
    return out


def write_study(folder: Path, entry: Mapping[str, Any], done: Done, figure: bool = True) -> dict[str, Any]:
    """Write the study folder of ``entry`` (:func:`doodlelab.pipeline.rows.study_entry`) from ``done``:
    ``(setting name, seed, trained row {"row", "history"})`` per row; return ``decision.json``."""
    from doodlelab.training.figures import plot_study_curves

    folder = Path(folder)
    rows = _rows(done)
    write_csv(folder / SWEEP_CSV, rows)
    histories = [{"setting": name, "seed": seed, **h}
                 for name, seed, result in done for h in result["history"]]
    write_csv(folder / HISTORIES_CSV, histories, list(dict.fromkeys(k for h in histories for k in h)))
    curves = _curves(done)
    write_csv(folder / CURVES, curves)
    if figure:
        names = [s["name"] for s in entry["settings"]]
        plot_study_curves(curves, names, (folder / CURVES).with_suffix(".svg"))
    decision, others = _decision(entry, rows)
    out = {"study": dict(entry), **decision.to_dict(), "comparison": others}
    write_json(folder / DECISION, out)
    write_csv(folder / SUMMARY, _summary(decision, others, rows, [s["name"] for s in entry["settings"]]))
    return out
