"""The main job's studies: the momentum study's plain-SGD row at momentum's step, and what the rule does
with a setting that is shown but never chosen."""

from __future__ import annotations

import csv
import json

import pytest

from doodlelab.config import load_config
from doodlelab.pipeline.plan import default_setting, plan_for
from doodlelab.pipeline.rows import study_entry
from doodlelab.pipeline.summaries import write_study


def _momentum(overrides: list[str]):
    cfg = load_config(None, overrides)
    (study,) = [s for s in plan_for(cfg).studies if s.name == "momentum"]
    return cfg, study


@pytest.mark.parametrize("lr, matched", [(0.05, 0.5), (0.02, 0.2), (0.1, 1.0)])
def test_plain_sgd_is_shown_at_the_rate_that_matches_momentums_step(lr, matched):
    # with momentum 0.9 a steady gradient moves the weights by lr * (1 + 0.9 + 0.81 + ...) = 10 lr a step
    cfg, study = _momentum([f"optim.lr={lr}"])
    shown = [s for s in study.settings if not s.candidate]
    assert [s.name for s in shown] == [f"none, rate {matched:g}"]
    assert dict(shown[0].values) == {"optim.momentum": 0.0, "optim.nesterov": False, "optim.lr": matched}
    assert default_setting(study, cfg).name == "0.9"  # the configuration's own row is still the candidate


def test_a_row_shown_only_is_never_chosen_even_when_it_scores_best(tmp_path):
    cfg, study = _momentum([])
    entry = study_entry(cfg, study)
    scores = {"none": 0.70, "none, rate 0.5": 0.95, "0.9": 0.90, "0.9, Nesterov": 0.89}
    done = [(name, seed, {"row": {"val_accuracy": acc + 0.001 * seed, "val_loss": 0.5,
                                  "val_accuracy_tta": acc, "best_val_accuracy": acc, "best_epoch": 1,
                                  "seconds": 1.0},
                          "history": [{"epoch": 1, "val_accuracy": acc, "val_loss": 0.5}]})
            for name, acc in scores.items() for seed in study.seeds]
    decision = write_study(tmp_path, entry, done, figure=False)
    assert decision["best"] == "0.9" and decision["chosen"] == "0.9"
    (shown,) = decision["comparison"]
    assert shown["name"] == "none, rate 0.5" and shown["status"] == "comparison"
    assert shown["versus_best"]["mean"] == pytest.approx(0.05)  # against the best candidate, paired
    with open(tmp_path / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # Nesterov is the same 0.01 behind on every seed: below, not tied
    assert [(r["setting"], r["status"]) for r in rows] == [
        ("none", "below"), ("none, rate 0.5", "comparison"), ("0.9", "best"), ("0.9, Nesterov", "below")]
    assert json.loads((tmp_path / "decision.json").read_text())["chosen"] == "0.9"
