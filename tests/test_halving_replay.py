"""benchmarks/halving_replay.py: the settings successive halving would have stopped, on made-up histories."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "halving_replay.py"
SEEDS = (0, 1, 2)
# validation accuracy per seed at epoch 3 (half of 6) and at the end, per setting
AT_HALF = {"d": (0.80, 0.81, 0.82), "x": (0.60, 0.61, 0.62), "w": (0.70, 0.71, 0.72),
           "y": (0.79, 0.83, 0.80), "z": (0.70, 0.70, 0.73), "e3": (0.5, 0.5, 0.5)}
AT_END = {"d": (0.90, 0.91, 0.92), "x": (0.70, 0.71, 0.72), "w": (0.80, 0.80, 0.81),
          "y": (0.90, 0.92, 0.91), "z": (0.91, 0.93, 0.92), "e3": (0.85, 0.86, 0.84)}
STUDIES = {"a": (("d", 6), ("x", 6), ("w", 6), ("y", 6)),  # w, x below d at half and at the end
           "b": (("d", 6), ("z", 6)),  # z below at half, ahead at the end: a wrong stop
           "epochs": (("e3", 3), ("x", 6))}  # settings of unequal length: never halved, so x runs on
SECONDS = {"d": 10.0, "x": 20.0, "w": 30.0, "y": 40.0, "z": 50.0, "e3": 5.0}


def _script():
    spec = importlib.util.spec_from_file_location("halving_replay", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _accuracy(setting: str, seed: int, epoch: int, epochs: int) -> float:
    if epoch == epochs:
        return AT_END[setting][seed]
    return AT_HALF[setting][seed] if epoch == epochs // 2 else 0.1


def _results(root: Path) -> Path:
    steps, studies = {}, []
    for study, settings in STUDIES.items():
        keys = [f"{name}{seed}" for name, _ in settings for seed in SEEDS]
        entry = {"name": study, "seeds": list(SEEDS), "settings": [{"name": n} for n, _ in settings]}
        studies.append(entry)
        steps[f"sweep/{study}"] = {"stamp": [entry, keys]}
        folder = root / "sweep" / study
        folder.mkdir(parents=True)
        with (folder / "histories.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, ["setting", "seed", "epoch", "val_accuracy"])
            writer.writeheader()
            for name, epochs in settings:
                for seed in SEEDS:
                    for epoch in range(1, epochs + 1):
                        writer.writerow({"setting": name, "seed": seed, "epoch": epoch,
                                         "val_accuracy": _accuracy(name, seed, epoch, epochs)})
    steps |= {f"points/{name}0+2": {"seconds": s} for name, s in SECONDS.items()}
    (root / "pipeline.json").write_text(json.dumps({"studies": studies, "steps": steps}))
    return root


def test_a_setting_stops_only_where_every_study_it_is_in_stops_it_and_wrong_stops_are_named(tmp_path):
    replay = _script().replay(_results(tmp_path), 0.5)
    stopped = sorted((r["study"], r["setting"]) for r in replay["stopped"])
    assert stopped == [("a", "w"), ("b", "z")]  # x: the epochs study runs it on; y: tied with d at half
    assert replay["stopped_settings"] == 2 and replay["settings"] == 6
    assert replay["saved_core_seconds"] == pytest.approx((30.0 + 50.0) * (1 - 3 / 6))
    assert replay["study_core_seconds"] == pytest.approx(sum(SECONDS.values()))
    wrong = replay["stopped_but_not_below_at_the_end"]
    assert [(r["setting"], r["epoch"], r["of"]) for r in wrong] == [("z", 3, 6)]
    assert wrong[0]["end_mean_vs_best"] == 0.0  # z is study b's best at the end: halving stopped the winner
