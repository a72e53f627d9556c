"""End-to-end runs of the ``doodlelab`` CLI on tiny folders built in code."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from doodlelab.cli.commands import main
from tests.conftest import make_course_folder, make_k_class_folder, need_module

FAST = ["--set", "train.epochs=3", "--set", "model.hidden=[32]", "--set", "train.batch_size=16"]


def _train(course: Path, out: Path, *extra: str) -> int:
    return main(["train", "classifier", "--data", str(course), "--out", str(out), *FAST, *extra])


def test_train_writes_a_complete_run_folder(course_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DOODLELAB_THREADS", raising=False)
    out = tmp_path / "run"
    assert _train(course_dir, out) == 0
    assert "test: accuracy=" in capsys.readouterr().out
    for name in ("config.json", "env.json", "split.npz", "history.csv", "metrics.json",
                 "weights.npz"):
        assert (out / name).is_file(), name
    for stem in ("loss", "accuracy", "confusion", "roc", "pr", "mistakes"):
        assert (out / "figures" / f"{stem}.png").stat().st_size > 1000
    figure_csv = {}
    for stem in ("loss", "accuracy", "confusion", "roc", "pr"):
        with open(out / "figures" / f"{stem}.csv") as fh:
            figure_csv[stem] = list(csv.DictReader(fh))
    config = json.loads((out / "config.json").read_text())
    assert config["backend"] == "numpy" and config["train"]["epochs"] == 3
    assert config["model"]["hidden"] == [32]
    metrics = json.loads((out / "metrics.json").read_text())
    names = ["rabbit", "yoga", "hand", "snowman", "motorbike"]
    assert set(metrics["per_class"]) == set(names) and metrics["class_names"] == names
    matrix = np.array(metrics["confusion_matrix"])
    # Rows are the true classes of the 25 test images (5 of each), the diagonal is the hits.
    test_y = np.load(course_dir / "test_labels.npy")
    np.testing.assert_array_equal(matrix.sum(axis=1), np.bincount(test_y, minlength=5))
    assert [metrics["per_class"][n]["support"] for n in names] == [5] * 5
    assert metrics["accuracy"] == pytest.approx(np.trace(matrix) / 25)
    # The figures' CSVs hold the same numbers: the matrix, and ROC curves whose area is the AUC.
    assert [[int(r[n]) for n in names] for r in figure_csv["confusion"]] == matrix.tolist()
    for name in names:
        curve = [(float(r["fpr"]), float(r["tpr"])) for r in figure_csv["roc"] if r["class"] == name]
        fpr, tpr = np.array(curve).T
        area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
        assert area == pytest.approx(metrics["per_class"][name]["roc_auc"], abs=1e-9), name
    assert {r["class"] for r in figure_csv["pr"]} == set(names)
    with open(out / "figures" / "mistakes.csv") as fh:
        mistakes = list(csv.DictReader(fh))
    assert len(mistakes) == matrix.sum() - np.trace(matrix)
    assert all(m["true"] != m["predicted"] for m in mistakes)
    probs = [float(m["probability"]) for m in mistakes]
    assert probs == sorted(probs, reverse=True)
    assert metrics["accuracy"] > 0.6  # the synthetic classes are easy
    with open(out / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for stem in ("loss", "accuracy"):  # the curves plot the history, epoch by epoch
        for split in ("train", "val"):
            assert [float(r[f"{split}_{stem}"]) for r in figure_csv[stem]] == \
                [float(r[f"{split}_{stem}"]) for r in rows]
    # 5 validation images: every validation accuracy is a multiple of 1/5.
    assert all(float(r["val_accuracy"]) * 5 == pytest.approx(round(float(r["val_accuracy"]) * 5))
               for r in rows)
    env = json.loads((out / "env.json").read_text())
    assert env["seed"] == 0 and "train_images.npy" in env["data_checksums"]
    assert "train_seconds" in env["timings"] and env["n_train"] + env["n_val"] == 60
    # batches of 16 through 784-32-5: 0.8 MFLOP per product, far below 200 MFLOP: one thread
    assert env["training_threads"] == 1 and env["blas"]
    with np.load(out / "split.npz") as z:
        assert z["val"].size == 5 and z["train"].size == 55


def test_same_seed_gives_identical_metrics(course_dir, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert _train(course_dir, a) == 0 and _train(course_dir, b) == 0
    assert (a / "metrics.json").read_bytes() == (b / "metrics.json").read_bytes()
    with np.load(a / "weights.npz") as wa, np.load(b / "weights.npz") as wb:
        for k in wa.files:
            np.testing.assert_array_equal(wa[k], wb[k])
    assert _train(course_dir, c, "--set", "train.seed=1") == 0
    with np.load(a / "weights.npz") as wa, np.load(c / "weights.npz") as wc:
        assert not np.array_equal(wa["0.weight"], wc["0.weight"])


def test_evaluate_on_a_folder_with_only_test_files(course_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(course_dir, out) == 0
    only_test = tmp_path / "only_test"
    only_test.mkdir()
    for name in ("test_images.npy", "test_labels.npy"):
        (only_test / name).write_bytes((course_dir / name).read_bytes())
    capsys.readouterr()
    report = tmp_path / "eval.json"
    assert main(["evaluate", str(out), "--data", str(only_test), "--json", str(report)]) == 0
    assert "accuracy=" in capsys.readouterr().out
    assert json.loads(report.read_text()) == json.loads((out / "metrics.json").read_text())


def test_config_file_is_used(course_dir, tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[model]\nhidden = [16, 8]\nactivation = \"tanh\"\ndropout = 0.1\n[train]\nepochs = 2\n")
    out = tmp_path / "run"
    assert main(["train", "classifier", "--data", str(course_dir), "--out", str(out),
                 "--config", str(toml)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["hidden"] == [16, 8] and config["model"]["activation"] == "tanh"
    assert config["model"]["dropout"] == 0.1
    with np.load(out / "weights.npz") as w:
        assert w["3.weight"].shape == (16, 8)  # Linear, Tanh, Dropout, Linear


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and err.startswith("doodlelab")
    return err


@pytest.mark.parametrize(
    "args,match",
    [
        (["--set", "optim.lr=-0.1"], "optim.lr"),
        (["--set", "train.epochs=many"], "train.epochs"),
        (["--set", "nope"], "section.key=value"),
        (["--config", "/nonexistent.toml"], "does not exist"),
        (["--set", "two_tower.loss=mse"], "two_tower.loss must be one of hinge_rank"),
        (["--set", "two_tower.margin=-0.1"], "two_tower.margin must be in [0, 2]"),
        (["--set", "two_tower.margin=2.5"], "two_tower.margin must be in [0, 2]"),
    ],
)
def test_bad_config_is_exit_2_and_writes_nothing(course_dir, tmp_path, capsys, args, match):
    out = tmp_path / "run"
    assert main(["train", "classifier", "--data", str(course_dir), "--out", str(out), *args]) == 2
    assert match in _one_line_error(capsys)
    assert not out.exists()


def test_bad_data_is_exit_2_and_writes_nothing(tmp_path, capsys):
    course = make_course_folder(tmp_path / "course")
    np.save(course / "train_labels.npy", np.full(60, 9))
    out = tmp_path / "run"
    assert main(["train", "classifier", "--data", str(course), "--out", str(out)]) == 2
    assert "outside 0..4" in _one_line_error(capsys)
    assert not out.exists()
    assert main(["train", "classifier", "--data", str(tmp_path / "missing")]) == 2
    assert "does not exist" in _one_line_error(capsys)


def test_existing_run_is_never_overwritten_without_asking(course_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(course_dir, out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert _train(course_dir, out, "--set", "train.seed=5") == 2
    assert "already holds a run" in _one_line_error(capsys)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert _train(course_dir, out, "--set", "train.seed=5", "--overwrite") == 0
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == 5


def test_evaluate_errors(tmp_path, course_dir, capsys):
    assert main(["evaluate", str(tmp_path), "--data", str(course_dir)]) == 2
    assert "not a run folder" in _one_line_error(capsys)


def test_usage_errors_are_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "regressor"])
    assert exc.value.code == 2
    _one_line_error(capsys)


def test_module_entry_point_and_version(tmp_path):
    done = subprocess.run([sys.executable, "-m", "doodlelab", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("doodlelab ")
    done = subprocess.run([sys.executable, "-m", "doodlelab", "evaluate", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and "Traceback" not in done.stderr


# A thread inside torch's C++ code with the GIL released, as a gloo worker of a process group is
# while it releases the tensors of the last collective; then the CLI ends with a usage error.
UNDER_TORCHRUN = """
import atexit, sys, threading, torch
a = torch.randn(300, 300)

def spin():
    while True:
        a @ a

threading.Thread(target=spin, daemon=True).start()
atexit.register(lambda: print("interpreter shutdown ran", flush=True))
sys.argv = ["doodlelab", "train", "classifier", "--resume"]
from doodlelab.cli.commands import run
run()
"""


def test_a_torchrun_process_ends_without_the_interpreter_shutdown_that_kills_gloo_threads():
    """Without it a worker thread needing the GIL during shutdown aborts the process (SIGABRT)."""
    need_module("torch", "torch")
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "1", "LOCAL_WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", UNDER_TORCHRUN], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 2, done.stderr  # the usage error's status, not -6
        assert done.stderr.count("\n") == 1 and "--resume needs --out" in done.stderr  # flushed
        assert "interpreter shutdown ran" not in done.stdout


def test_sweep_judges_on_validation_without_reading_test(course_dir, tmp_path, capsys):
    (course_dir / "test_images.npy").unlink()  # proves the sweep never needs the test split
    out = tmp_path / "sweep"
    assert main(["sweep", "--data", str(course_dir), "--out", str(out), *FAST,
                 "--grid", "optim.lr=[0.01, 0.1]", "--grid", "model.dropout=[0.0, 0.2]",
                 "--seeds", "0,1"]) == 0
    printed = capsys.readouterr().out
    assert "optim.lr=0.1" in printed
    with open(out / "sweep.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and {r["seed"] for r in rows} == {"0", "1"}
    with open(out / "histories.csv") as fh:
        history = list(csv.DictReader(fh))
    assert len(history) == 8 * 3
    for r in rows:  # the best epoch's validation accuracy, read from that run's own history
        own = [float(h["val_accuracy"]) for h in history
               if (h["point"], h["seed"]) == (r["point"], r["seed"])]
        assert len(own) == 3 and float(r["best_val_accuracy"]) == max(own)
        assert float(r["final_val_accuracy"]) == own[-1]
    with open(out / "summary.csv") as fh:
        summary = list(csv.DictReader(fh))
    means = [float(r["val_accuracy_mean"]) for r in summary]
    assert len(summary) == 4 and means == sorted(means, reverse=True)


@pytest.mark.parametrize("grid,match", [("optim.lr=0.1", "TOML array"),
                                        ("optim.lr=[-1.0]", "optim.lr"),
                                        ("optim.rate=[1.0]", "unknown key")])
def test_sweep_rejects_bad_grids_before_training(course_dir, tmp_path, capsys, grid, match):
    out = tmp_path / "sweep"
    assert main(["sweep", "--data", str(course_dir), "--out", str(out), "--grid", grid]) == 2
    assert match in _one_line_error(capsys)
    assert not out.exists()


def test_unwritable_out_is_one_line_exit_2(course_dir, capsys):
    assert main(["train", "classifier", "--data", str(course_dir), "--out", "/dev/null/run",
                 *FAST]) == 2
    assert "/dev/null/run" in _one_line_error(capsys)


def test_a_folder_of_seven_classes_trains_evaluates_and_gradchecks(tmp_path, course_dir, capsys):
    names = ["cat", "dog", "hot air balloon", "rabbit", "yoga", "hand", "snowman"]
    data = make_k_class_folder(tmp_path / "seven", names)
    out = tmp_path / "run"
    assert main(["train", "classifier", "--data", str(data), "--out", str(out), *FAST,
                 "--set", "train.epochs=15"]) == 0
    config = json.loads((out / "config.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert config["classes"] == names and len(metrics["confusion_matrix"]) == 7
    assert set(metrics["per_class"]) == set(names) and metrics["accuracy"] > 0.5
    assert main(["evaluate", str(out), "--data", str(data)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", str(course_dir)]) == 2  # five other classes
    assert "trained on 7 classes" in capsys.readouterr().err
    need_module("torch", "torch")
    assert main(["gradcheck", "--data", str(data), "--steps", "2", "--set", "model.hidden=[16]"]) == 0


def test_bad_classes_json_or_labels_beyond_it_are_exit_2(tmp_path, capsys):
    data = make_k_class_folder(tmp_path / "three", ["a", "b", "c"])
    (data / "classes.json").write_text('["a", "b"]')  # labels go up to 2
    assert _train(data, tmp_path / "r1") == 2
    assert "labels outside 0..1" in capsys.readouterr().err
    (data / "classes.json").write_text('["a", "a", "b"]')
    assert _train(data, tmp_path / "r2") == 2
    assert "names a class twice" in capsys.readouterr().err
    (data / "classes.json").write_text("{not json")
    assert _train(data, tmp_path / "r3") == 2
    assert "classes.json: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r3").exists()
