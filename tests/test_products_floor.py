"""benchmarks/products_floor.py: the products-only floor of a finished main job, on a made-up one."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from doodlelab.config import Config

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "products_floor.py"
N_TRAIN, N_VAL, N_TEST = 60, 20, 30  # the made-up split's sizes
STUDY_IMAGES = 40  # a study row trains on at most this many


def _script():
    spec = importlib.util.spec_from_file_location("products_floor", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(hidden, batch, epochs, embed=16, tta=True):
    raw = Config().to_dict()
    raw["model"]["hidden"], raw["train"]["batch_size"], raw["train"]["epochs"] = hidden, batch, epochs
    raw["two_tower"]["embed_dim"], raw["eval"]["tta"] = embed, tta
    return raw


def _results(root: Path) -> Path:
    """A finished job: one classifier setting (3 seeds), one two-tower setting (1 seed), two final runs."""
    points = {"aaaa": ("classifier", _config([8], 16, 3)),
              "bbbb": ("two_tower", _config([8, 4], 32, 2, embed=6))}
    (root / "sweep" / "points").mkdir(parents=True)
    for key, (model, config) in points.items():
        (root / "sweep" / "points" / f"{key}.json").write_text(json.dumps({"stamp": {"model": model,
                                                                                     "config": config}}))
    (root / "data").mkdir()
    counts = {"train": {"a": N_TRAIN - 10, "b": 10}, "validation": {"a": N_VAL}, "test": {"a": N_TEST}}
    (root / "data" / "data.json").write_text(json.dumps({"counts": counts}))
    final = {"classifier": {"config": _config([8], 16, 4, tta=False)},
             "two_tower": {"config": _config([8], 16, 5, embed=3)}}
    steps = {"points/aaaa+2": {"seconds": 9.0}, "points/bbbb": {"seconds": 2.0},
             "runs/classifier-numpy": {"seconds": 5.0}, "runs/two_tower-torch": {"seconds": 7.0},
             "sweep/width": {"seconds": 0.1}, "data/": {"seconds": 0.5}}
    (root / "pipeline.json").write_text(json.dumps({"steps": steps, "final": final, "study": {
        "train_images": STUDY_IMAGES}, "jobs": 2, "wall_seconds": 12.0, "cpu_seconds": 23.0}))
    return root


def test_every_heavy_step_is_read_with_the_shapes_and_work_it_trained(tmp_path):
    steps = {s["step"]: s for s in _script().steps_of(_results(tmp_path))}
    assert set(steps) == {"points/aaaa+2", "points/bbbb", "runs/classifier-numpy", "runs/two_tower-torch"}
    point = steps["points/aaaa+2"]
    assert (point["widths"], point["batch"], point["epochs"], point["seeds"]) == ([784, 8, 5], 16, 3, 3)
    assert (point["train"], point["scored"], point["end_rows"], point["end_views"]) == (STUDY_IMAGES, N_VAL,
                                                                                        N_VAL, 5)
    assert steps["points/bbbb"]["widths"] == [784, 8, 4, 6] and steps["points/bbbb"]["seeds"] == 1
    run = steps["runs/two_tower-torch"]  # the whole training split; validation and the curve's images scored
    assert (run["widths"], run["train"], run["scored"], run["end_rows"], run["end_views"]) == (
        [784, 8, 3], N_TRAIN, N_VAL + N_TRAIN, N_TEST, 5)
    assert steps["runs/classifier-numpy"]["end_views"] == 1  # no test-time shifts: the test split once


def test_the_floor_is_the_timed_passes_times_the_work_and_the_totals_add_up(tmp_path, monkeypatch):
    module = _script()
    steps = module.steps_of(_results(tmp_path))
    # a made-up clock: a timed pass of r rows costs r (training: 3 r) microseconds
    monkeypatch.setattr(module, "median_time", lambda timer, repeats: timer.cost)
    monkeypatch.setattr(module, "products_timer", lambda widths, size, x, seed, backward=True: type(
        "T", (), {"cost": x.shape[0] * (3 if backward else 1) * 1e-6})())
    images = module.np.zeros((N_TRAIN + N_VAL, 784), module.np.float32)
    for s in steps:
        s["floor_s"] = module.floor_seconds(s, images, 3, {})
    floor = {s["step"]: s["floor_s"] for s in steps}
    # 3 seeds x (3 epochs x (3 x 40 + 20) + 5 views x 20)
    assert floor["points/aaaa+2"] == pytest.approx(3 * (3 * (3 * 40 + 20) + 5 * 20) * 1e-6)
    assert floor["runs/classifier-numpy"] == pytest.approx((4 * (3 * 60 + 80) + 30) * 1e-6)
    totals = module.summarise(steps, 2, 12.0, 23.0)
    assert totals["floor_core_s"] == pytest.approx(sum(floor.values()))
    assert totals["wall_floor_s"] == pytest.approx(totals["floor_core_s"] / 2)
    assert totals["by_kind"]["study setting"]["measured_s"] == 11.0
    assert totals["by_kind"]["final run"]["steps"] == 2


def test_a_real_timing_writes_its_json_and_a_folder_without_a_job_is_one_line(tmp_path, capsys):
    module = _script()
    out, job = tmp_path / "floor.json", tmp_path / "job"
    job.mkdir()
    assert module.main([str(_results(job)), "--json", str(out), "--repeats", "1"]) == 0
    written = json.loads(out.read_text())
    assert written["floor_core_s"] > 0 and len(written["steps"]) == 4
    assert all(s["floor_s"] > 0 for s in written["steps"])
    assert module.main([str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
