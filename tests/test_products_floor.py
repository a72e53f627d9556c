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
             "runs/two_tower-numpy": {"seconds": 6.0},
             "sweep/width": {"seconds": 0.1}, "data/": {"seconds": 0.5}}
    (root / "pipeline.json").write_text(json.dumps({"steps": steps, "final": final, "study": {
        "train_images": STUDY_IMAGES}, "jobs": 2, "wall_seconds": 12.0, "cpu_seconds": 23.0}))
    return root


def test_every_heavy_step_is_read_with_the_shapes_and_work_it_trained(tmp_path):
    module, root = _script(), _results(tmp_path)
    steps = {s["step"]: s for s in module.steps_of(root, module.read_job(root))}
    assert set(steps) == {"points/aaaa+2", "points/bbbb", "runs/classifier-numpy", "runs/two_tower-torch",
                          "runs/two_tower-numpy"}
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
    monkeypatch.setattr(module, "TRAIN_CURVE_IMAGES", 50)  # below the split: the curve is a sample
    root = _results(tmp_path)
    steps = module.steps_of(root, module.read_job(root))
    timed = []

    def fake_timer(widths, size, x, seed, backward=True):  # a pass costs rows x the widths after the input
        timed.append((tuple(widths), size, x.shape[0], backward))
        return type("T", (), {"cost": x.shape[0] * sum(widths[1:]) * (3 if backward else 1) * 1e-6})()

    monkeypatch.setattr(module, "best_time", lambda timer, repeats: timer.cost)
    monkeypatch.setattr(module, "products_timer", fake_timer)
    images = module.np.zeros((N_TRAIN + N_VAL, 784), module.np.float32)
    cache: dict = {}
    for s in steps:
        s["floor_s"] = module.floor_seconds(s, images, 3, cache)
    floor = {s["step"]: s["floor_s"] for s in steps}
    # 3 seeds x (3 epochs x (3 x 40 training rows + 20 scored) + 5 views x 20), widths 8 + 5
    assert floor["points/aaaa+2"] == pytest.approx(3 * (3 * (3 * 40 + 20) + 5 * 20) * 13e-6)
    assert floor["points/bbbb"] == pytest.approx((2 * (3 * 40 + 20) + 5 * 20) * 18e-6)  # 8 + 4 + 6
    # 4 epochs x (3 x 60 + (20 + 50 of the curve)) + the test split once (no shifts)
    assert floor["runs/classifier-numpy"] == pytest.approx((4 * (3 * 60 + 70) + 30) * 13e-6)
    # the two-tower's run: 5 epochs, its image tower 784-8-3, five test views
    assert floor["runs/two_tower-torch"] == pytest.approx((5 * (3 * 60 + 70) + 5 * 30) * 11e-6)
    assert floor["runs/two_tower-numpy"] == floor["runs/two_tower-torch"]
    rows = module.SCORING_ROWS  # training in the step's batches, scoring in the tasks' chunks
    assert ((784, 8, 5), 16, 40, True) in timed and ((784, 8, 5), rows, 20, False) in timed
    assert ((784, 8, 4, 6), 32, 40, True) in timed and ((784, 8, 3), rows, 70, False) in timed
    assert len(timed) == len(set(timed)) == 10  # each distinct pass timed once, across steps
    totals = module.summarise(steps, 2, 12.0, 23.0)
    assert totals["floor_core_s"] == pytest.approx(sum(floor.values()))
    assert totals["wall_floor_s"] == pytest.approx(totals["floor_core_s"] / 2)
    assert totals["by_kind"]["study setting"]["measured_s"] == 11.0
    assert totals["by_kind"]["final run"]["steps"] == 3


def test_the_floor_keeps_the_best_of_the_timed_passes():
    calls = iter([9.0, 3.0, 2.0, 4.0])  # the first call warms up and is not counted
    assert _script().best_time(lambda: next(calls), 3) == 2.0


def test_a_real_timing_writes_its_json(tmp_path):
    module = _script()
    out, job = tmp_path / "floor.json", tmp_path / "job"
    job.mkdir()
    assert module.main([str(_results(job)), "--json", str(out), "--repeats", "1"]) == 0
    written = json.loads(out.read_text())
    assert written["floor_core_s"] > 0 and len(written["steps"]) == 5
    assert all(s["floor_s"] > 0 for s in written["steps"])


def _unfinished(root: Path) -> None:
    job = json.loads((root / "pipeline.json").read_text())
    del job["wall_seconds"]
    (root / "pipeline.json").write_text(json.dumps(job))


@pytest.mark.parametrize("spoil", [
    lambda root: (root / "pipeline.json").unlink(),
    lambda root: (root / "pipeline.json").write_text("{not json"),
    _unfinished,
    lambda root: (root / "data" / "data.json").unlink(),
    lambda root: (root / "sweep" / "points" / "aaaa.json").unlink(),
    lambda root: (root / "data" / "data.json").write_text(json.dumps({"counts": {}})),
    None,  # --repeats 0
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, spoil):
    root = _results(tmp_path)
    if spoil is not None:
        spoil(root)
    assert _script().main([str(root), *([] if spoil else ["--repeats", "0"])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("products_floor: ") and "Traceback" not in err
