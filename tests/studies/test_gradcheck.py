"""`doodlelab gradcheck`: numpy backprop against torch autograd on the first batch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import need_module, write_tiny_glove

need_module("torch", "torch")

from doodlelab.cli.commands import main
from doodlelab.config import Config, build_config, load_config
from doodlelab.data.course import load_split
from doodlelab.data.prepare import prepare
from doodlelab.data.split import stratified_split
from doodlelab.nn.embedding_losses import OBJECTIVES
from doodlelab.studies import gradcheck
from doodlelab.tasks.streams import Streams
from doodlelab.training.fit import fit, schedule_from

PARAMS = ["0.weight", "0.bias", "3.weight", "3.bias", "6.weight", "6.bias"]


def test_synthetic_gradcheck_meets_the_thresholds(tmp_path: Path, capsys) -> None:
    out = tmp_path / "gc.json"
    # the default network, with dropout (its masks must be the same on both sides) and Nesterov momentum
    assert main(["gradcheck", "--json", str(out), "--set", "model.dropout=0.1",
                 "--set", "optim.nesterov=true"]) == 0
    report = json.loads(out.read_text())
    assert report["passed"] is True and report["failures"] == []
    model = report["classifier"]
    assert model["batch"] == {"source": "synthetic", "seed": 0,
                              "size": Config().train.batch_size}
    for dtype, limit in (("float64", 1e-10), ("float32", 5e-4)):
        assert report["thresholds"][dtype] == limit
        rows = model[dtype]
        assert [r["param"] for r in rows] == PARAMS
        assert rows[0]["shape"] == [784, 512]
        for row in rows:
            assert row["max_rel_diff"] <= limit
            assert row["max_abs_diff"] <= limit  # these gradients are below 1 in size
            assert row["cosine"] == pytest.approx(1.0, abs=1e-9)
        assert model["optimizer"][dtype]["max_rel_param_diff"] <= limit
        assert model["optimizer"][dtype]["worst_param"] in PARAMS
    assert model["optimizer"]["steps"] == 5
    printed = capsys.readouterr().out
    assert "float64  0.weight        784x512" in printed
    assert "after 5 optimizer steps" in printed
    assert "FAILED" not in printed


def test_gradcheck_on_a_data_folder_uses_the_first_training_batch(course_dir: Path, tmp_path):
    out = tmp_path / "gc.json"
    code = main(["gradcheck", "--data", str(course_dir), "--json", str(out), "--steps", "2",
                 "--set", "model.hidden=[32,16]", "--set", "train.batch_size=16"])
    assert code == 0
    report = json.loads(out.read_text())
    batch = report["classifier"]["batch"]
    assert batch["source"] == "data" and batch["augmented"] is True and batch["size"] == 16
    assert report["classifier"]["float32"][0]["shape"] == [784, 32]


def test_a_difference_above_the_threshold_fails_with_status_1(monkeypatch, capsys) -> None:
    monkeypatch.setitem(gradcheck.THRESHOLDS, "float32", 1e-30)
    assert main(["gradcheck", "--steps", "1", "--set", "model.hidden=[8]"]) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out
    assert "doodlelab: gradcheck failed: classifier: float32 gradient of" in captured.err


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "--steps must be in [1, 100]"),
    (["--data", "/nonexistent/folder"], "does not exist"),
    (["--set", "optim.lr=-1"], "optim.lr"),
])
def test_bad_input_is_one_line_and_status_2(argv, message, capsys) -> None:
    assert main(["gradcheck", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


class _Recorder:
    """A task that only remembers what the fit loop feeds it."""

    backend = "record"
    loss_terms: dict[str, float] = {}

    def __init__(self) -> None:
        self.batches: list[tuple[float, np.ndarray, np.ndarray]] = []
        self.lr = 0.0

    def set_lr(self, lr: float) -> None:
        self.lr = lr

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        self.batches.append((self.lr, x.copy(), y.copy()))
        return 1.0, 0

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.zeros((x.shape[0], 5), np.float32)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        return {"loss": 0.0, "accuracy": 0.0}

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        pass


def test_training_batches_are_the_batches_fit_trains_on(course_dir: Path) -> None:
    cfg = load_config(None, ["train.batch_size=16", "train.epochs=3", "optim.schedule=cosine"])
    train = load_split(course_dir, "train")
    train_idx, val_idx = stratified_split(train.y, cfg.data.val_fraction, cfg.train.seed)
    streams = Streams.from_seed(cfg.train.seed)
    recorder = _Recorder()
    fit(recorder, train.x[train_idx], train.y[train_idx], train.x[val_idx], train.y[val_idx],
        cfg, shuffle_rng=streams.shuffle, augment_rng=streams.augment, progress=False)

    n = 6  # crosses from epoch 0 into epoch 1 (4 batches per epoch)
    mine = gradcheck.first_batches(prepare(cfg, course_dir, test=False), cfg, n)
    assert len(mine) == n and mine[4].position == 1 and mine[5].position == 1.25
    schedule = schedule_from(cfg)
    for batch, (lr, x_fit, y_fit) in zip(mine, recorder.batches):
        np.testing.assert_array_equal(batch.x, x_fit)
        np.testing.assert_array_equal(batch.y, y_fit)
        assert schedule(batch.position) == lr  # the per-step cosine learning rate fit used


def test_compare_arrays_definitions() -> None:
    a = np.array([[1.0, -2.0], [0.0, 4.0]])
    row = gradcheck.compare_arrays(a, a + np.array([[1e-3, 0.0], [0.0, 0.0]]))
    assert row["max_abs_diff"] == pytest.approx(1e-3)
    assert row["max_rel_diff"] == pytest.approx(1e-3 / 1.001)  # entry by entry: against |1.001|
    assert row["cosine"] == pytest.approx(1.0, abs=1e-6)
    zero = gradcheck.compare_arrays(np.zeros(3), np.zeros(3))
    assert zero == {"max_abs_diff": 0.0, "max_rel_diff": 0.0, "cosine": 1.0}
    assert gradcheck.compare_arrays(np.ones(2), -np.ones(2))["cosine"] == pytest.approx(-1.0)


def test_relative_error_is_scale_free_with_a_floor_for_tiny_entries() -> None:
    a = np.array([4.0, -2.0, 1e-6, 0.0])
    b = a + np.array([4e-6, 0.0, 1e-6, 0.0])  # 1e-6 relative on the big entry; the tiny one doubles
    # the tiny entry is judged against the floor 1e-2 * 4, not against its own 1e-6
    assert gradcheck.relative_error(a, b) == pytest.approx(max(4e-6 / 4.000004, 1e-6 / 4e-2))
    assert gradcheck.relative_error(1e12 * a, 1e12 * b) == pytest.approx(gradcheck.relative_error(a, b))
    assert gradcheck.relative_error(a, b, floor=1e-9) == pytest.approx(0.5)  # 1e-6 vs 2e-6
    assert gradcheck.relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert np.isnan(gradcheck.relative_error(np.array([np.nan, 1.0]), np.ones(2)))
    assert np.isnan(gradcheck.relative_error(np.array([np.inf, 1.0]), np.ones(2)))


def test_gradients_of_order_1e12_pass_on_their_relative_error() -> None:
    # A class whose word vector is zero has a word-tower output of exactly zero (biases
    # start at 0), so its normalisation divides by eps = 1e-12: gradients ~1e12. An absolute
    # limit failed there on rounding alone (`doodlelab run --quick` exited 1 on the real data).
    vectors = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    vectors[4] = 0.0
    cfg = build_config({"model": {"hidden": [8]}, "train": {"batch_size": 16},
                        "two_tower": {"embed_dim": 4, "text_hidden": [4]}})
    report = gradcheck.run_gradcheck(cfg, steps=2, kinds=("two_tower",), class_vectors=vectors)
    tower = report["two_tower"]
    biggest = max(r["max_abs_diff"] for r in tower["float32"])
    assert biggest > 1e-5  # the old absolute float32 limit would have failed this
    assert report["passed"], report["failures"]
    assert max(r["max_rel_diff"] for r in tower["float32"]) <= 5e-4


def test_report_leaves_room_for_more_models() -> None:
    report = gradcheck.run_gradcheck(build_config({"model": {"hidden": [4]}}), steps=1)
    assert set(report) == {"thresholds", "step_thresholds", "passed", "failures", "classifier"}
    assert report["classifier"]["model"]["layers"] == [784, 4, 5]
    report["two_tower"] = report["classifier"]  # a second model block prints the same way
    assert gradcheck.format_report(report).count("numpy backprop vs torch autograd") == 2


@pytest.mark.slow
def test_gradcheck_on_the_real_first_batch(real_data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "gc.json"
    assert main(["gradcheck", "--data", str(real_data_dir), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["passed"] and report["classifier"]["batch"]["source"] == "data"
    for dtype, limit in report["thresholds"].items():
        assert max(r["max_abs_diff"] for r in report["classifier"][dtype]) <= limit


def test_two_tower_gradcheck_on_a_data_folder(course_dir: Path, tmp_path: Path) -> None:
    glove = write_tiny_glove(tmp_path / "glove.tiny.txt", dim=4, seed=0, digits=4)
    out = tmp_path / "gc.json"
    assert main(["gradcheck", "--model", "all", "--data", str(course_dir), "--json", str(out),
                 "--steps", "3", "--set", "model.hidden=[16]", "--set", "train.batch_size=16",
                 "--set", "two_tower.embed_dim=6", "--set", "two_tower.align_weight=0.5",
                 "--set", f"two_tower.word_vectors={json.dumps(str(glove))}"]) == 0
    report = json.loads(out.read_text())
    assert report["passed"] and set(report) >= {"classifier", "two_tower"}
    tower = report["two_tower"]
    assert tower["model"]["layers"] == [784, 16, 6]
    assert tower["model"]["word_tower"] == [4, *Config().two_tower.text_hidden, 6]
    names = [r["param"] for r in tower["float64"]]
    assert names[0] == "image.0.weight" and "text.0.weight" in names
    assert max(r["max_abs_diff"] for r in tower["float64"]) <= 1e-10
    assert tower["optimizer"]["steps"] == 3


@pytest.mark.parametrize("loss", OBJECTIVES)
def test_two_tower_gradcheck_for_every_objective(loss: str, tmp_path: Path) -> None:
    glove = write_tiny_glove(tmp_path / "glove.tiny.txt", dim=4, seed=1, digits=4)
    out = tmp_path / "gc.json"
    assert main(["gradcheck", "--model", "two_tower", "--json", str(out), "--steps", "2",
                 "--set", f"two_tower.loss={loss}", "--set", "model.hidden=[12]",
                 "--set", "train.batch_size=24", "--set", "two_tower.embed_dim=5",
                 "--set", "two_tower.text_hidden=[6]",
                 "--set", f"two_tower.word_vectors={json.dumps(str(glove))}"]) == 0
    report = json.loads(out.read_text())
    tower = report["two_tower"]
    assert report["passed"] and tower["model"]["objective"]["loss"] == loss
    for dtype, limit in (("float64", 1e-10), ("float32", 1e-5)):
        assert max(r["max_abs_diff"] for r in tower[dtype]) <= limit
        assert tower["optimizer"][dtype]["max_abs_param_diff"] <= limit
    assert min(r["cosine"] for r in tower["float64"]) > 1 - 1e-9


def _model_with_steps(float32_model_rel: float, float32_tensor_rel: float) -> dict:
    row = {"param": "image.0.bias", "shape": [8], "max_abs_diff": 1e-15, "max_rel_diff": 1e-12, "cosine": 1.0}
    steps = {"max_abs_param_diff": 4.7e-6, "worst_param": "image.0.bias", "max_abs_objective_diff": 0.0}
    return {"float64": [row], "float32": [row], "optimizer": {
        "steps": 5, "float64": {**steps, "max_rel_param_diff": 6e-14, "max_model_rel_param_diff": 1e-15},
        "float32": {**steps, "max_rel_param_diff": float32_tensor_rel,
                    "max_model_rel_param_diff": float32_model_rel}}}


def test_float32_steps_are_judged_against_the_models_scale_not_a_near_zero_bias() -> None:
    # a hinge term switched by rounding: 1.2 % of a bias still near zero, 5e-4 of the model's scale
    assert gradcheck.failures(_model_with_steps(5.2e-4, 0.012)) == []
    (only,) = gradcheck.failures(_model_with_steps(6e-3, 6e-3))
    assert "float32 parameters after 5 steps differ by 0.006" in only and "> 0.005" in only
