"""The statistics the report's template is handed: the tie width and the cross-study pairs, by hand."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from doodlelab.pipeline import layout
from doodlelab.pipeline.report.statistics import CROSS_PAIRS, cross_pairs, shift_gain, tie_width
from doodlelab.studies.sweep import SWEEP_CSV


def _sweep(root: Path, study: str, rows: list[tuple], columns: tuple[str, ...] = ()) -> None:
    folder = layout.sweep_dir(root, study)
    folder.mkdir(parents=True)
    with (folder / SWEEP_CSV).open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["setting", "seed", "val_accuracy", *columns])
        writer.writerows(rows)


def test_the_tie_width_is_students_quantile_for_the_deciding_studies_seeds() -> None:
    five = {"decides": True, "seeds": [0, 1, 2, 3, 4]}
    assert tie_width([five, five]) == {"seeds": 5, "standard_errors": pytest.approx(2.776, abs=5e-4)}
    assert tie_width([five, {"decides": False, "seeds": [0, 1]}])["seeds"] == 5  # only deciding ones count
    assert tie_width([five, {"decides": True, "seeds": [0, 1]}]) is None  # two counts: no single width
    assert tie_width([{"decides": True, "seeds": [0]}]) is None  # one seed: no interval


def test_a_cross_pair_is_the_paired_difference_over_the_shared_seeds(tmp_path: Path) -> None:
    (study_a, a), (study_b, b) = CROSS_PAIRS[0]
    _sweep(tmp_path, study_a, [(a, 0, 0.80), (a, 1, 0.84), (a, 2, 0.83), ("other", 0, 0.5)])
    _sweep(tmp_path, study_b, [(b, 0, 0.82), (b, 1, 0.85), (b, 2, 0.82)])
    (pair,) = cross_pairs(tmp_path)  # the second pair's settings are absent
    assert pair["a"] == [study_a, a] and pair["b"] == [study_b, b]
    # differences -0.02, -0.01, +0.01: mean -0.00667, sd 0.01528, t(0.975, 2) = 4.303
    assert pair["mean"] == pytest.approx(-0.02 / 3)
    assert pair["high"] - pair["mean"] == pytest.approx(4.303 * 0.015275 / 3 ** 0.5, rel=1e-3)
    assert pair["n"] == 3 and pair["lower"] == 2


def test_a_cross_pair_trained_with_other_seeds_is_left_out(tmp_path: Path) -> None:
    (study_a, a), (study_b, b) = CROSS_PAIRS[0]
    _sweep(tmp_path, study_a, [(a, 0, 0.80), (a, 1, 0.84)])
    _sweep(tmp_path, study_b, [(b, 0, 0.82), (b, 2, 0.85)])
    assert cross_pairs(tmp_path) == []


def test_the_shift_gain_is_the_paired_difference_of_shifted_and_plain_accuracy(tmp_path: Path) -> None:
    _sweep(tmp_path, "width", [("512", 0, 0.80, 0.81), ("512", 1, 0.84, 0.86), ("512", 2, 0.83, 0.82),
                               ("256", 0, 0.10, 0.90)], columns=("val_accuracy_tta",))
    gain = shift_gain(tmp_path, "width", "512")
    # differences +0.01, +0.02, -0.01: mean +0.00667, sd 0.01528, t(0.975, 2) = 4.303
    assert gain["mean"] == pytest.approx(0.02 / 3)
    assert gain["low"] == pytest.approx(0.02 / 3 - 4.303 * 0.015275 / 3 ** 0.5, rel=1e-3)
    assert gain["n"] == 3 and gain["higher"] == 2 and (gain["study"], gain["setting"]) == ("width", "512")


def test_no_shift_gain_without_the_setting_or_its_shifted_scores(tmp_path: Path) -> None:
    _sweep(tmp_path, "width", [("512", 0, 0.80), ("512", 1, 0.84)])  # a sweep.csv without shifted scores
    assert shift_gain(tmp_path, "width", "512") is None
    assert shift_gain(tmp_path, "width", None) is None  # no starting setting recorded
    assert shift_gain(tmp_path, "depth", "512") is None  # no such study
