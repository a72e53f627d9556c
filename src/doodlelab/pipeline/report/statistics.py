"""What the report's template is told that it cannot compute itself: statistics of the studies' files.

Typst reads the results folder directly, but a Student-t quantile and a paired interval
across two studies are :mod:`doodlelab.studies.decision`'s, so they are computed here with
it and handed to the template in ``report/inputs.json`` rather than written a second time
in Typst.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from doodlelab.pipeline import layout
from doodlelab.studies.decision import paired_difference, t_multiplier
from doodlelab.studies.sweep import SWEEP_CSV

# Settings of two studies that the report compares seed by seed, (study, setting) against
# (study, setting): the triplet loss against the ranking hinge at the same cosine margin (a
# triplet margin m in squared distance is m/2 in cosine on unit vectors).
CROSS_PAIRS = ((("objective", "triplet, margin 0.5"), ("margin", "0.25")),
               (("objective", "triplet, margin 1"), ("margin", "0.5")))


# The study whose starting setting the report's paragraph on the test-time shifts (I.1 (c)) reads.
SHIFT_GAIN_STUDY = "width"


def tie_width(studies: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Return ``{"seeds", "standard_errors"}``: how many standard errors a tie's 95% interval spans
    with the deciding studies' number of seeds (None unless they all have one count of two or more)."""
    counts = {len(s["seeds"]) for s in studies if s.get("decides")}
    if len(counts) != 1 or min(counts) < 2:
        return None
    (n,) = counts
    return {"seeds": n, "standard_errors": t_multiplier(n)}


def _seed_accuracies(root: Path, study: str, setting: str, column: str = "val_accuracy") -> dict[int, float]:
    """Return seed -> ``column`` (the validation accuracy) of one setting of a study ({} without its
    sweep.csv)."""
    path = layout.sweep_dir(root, study) / SWEEP_CSV
    if not path.is_file():
        return {}
    with path.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["setting"] == setting and r.get(column)]
    return {int(r["seed"]): float(r[column]) for r in rows}


def shift_gain(root: Path, study: str, setting: str | None) -> dict[str, Any] | None:
    """Return what the test-time shifts add to one setting's validation accuracy, seed by seed: the
    paired difference with shifts - without (mean, low, high, n) and ``higher``, the number of seeds
    on which the shifts score higher; None without the setting's rows or their shifted scores."""
    if setting is None:
        return None
    plain = _seed_accuracies(root, study, setting)
    shifted = _seed_accuracies(root, study, setting, "val_accuracy_tta")
    if not plain or set(plain) != set(shifted):
        return None
    diff = paired_difference(shifted, plain)
    return {"study": study, "setting": setting, "mean": diff.mean, "low": diff.low, "high": diff.high,
            "n": diff.n, "higher": sum(shifted[s] > plain[s] for s in plain)}


def cross_pairs(root: Path) -> list[dict[str, Any]]:
    """Return every :data:`CROSS_PAIRS` comparison whose two settings were trained with the same seeds:
    ``a``, ``b`` ([study, setting]), the paired difference a - b (mean, low, high, n) and ``lower``,
    the number of seeds on which a is below b."""
    found = []
    for (study_a, a), (study_b, b) in CROSS_PAIRS:
        acc_a, acc_b = _seed_accuracies(root, study_a, a), _seed_accuracies(root, study_b, b)
        if not acc_a or set(acc_a) != set(acc_b):
            continue
        diff = paired_difference(acc_a, acc_b)
        found.append({"a": [study_a, a], "b": [study_b, b], "mean": diff.mean, "low": diff.low,
                      "high": diff.high, "n": diff.n, "lower": sum(acc_a[s] < acc_b[s] for s in acc_a)})
    return found
