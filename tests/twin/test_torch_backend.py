"""End to end: `train classifier --backend torch`, and its numpy twin run, on a tiny folder.

Both runs share seed, split, batch order, augmentation, initial weights and dropout
masks, so their histories differ only by float32 rounding; `doodlelab compare` puts
them side by side.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import need_module

need_module("torch", "torch")

from doodlelab.cli.commands import main
from doodlelab.files.atomic import read_csv
from doodlelab.runs.folder import RunFolder
from doodlelab.tasks.classifier import NumpyClassifier
from doodlelab.tasks.streams import Streams
from doodlelab.twin.classifier import TorchClassifier
from tests.conftest import make_course_folder

CURVES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "batch_loss")
METRIC_KEYS = {"accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc_macro",
               "pr_auc_macro", "per_class", "confusion_matrix"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A tiny course folder and a 2-epoch run of each backend on it."""
    root = tmp_path_factory.mktemp("backends")
    data = make_course_folder(root / "course", n_train=200, n_test=50)
    out = {"data": data}
    for backend in ("numpy", "torch"):
        out[backend] = root / f"run-{backend}"
        code = main(["train", "classifier", "--backend", backend, "--data", str(data),
                     "--out", str(out[backend]), "--set", "train.epochs=2"])
        assert code == 0
    return out


def test_torch_run_folder_is_complete(runs) -> None:
    run = runs["torch"]
    for name in ("config.json", "env.json", "split.npz", "history.csv", "weights.npz",
                 "metrics.json", "figures/loss.png", "figures/loss.csv",
                 "figures/accuracy.png", "figures/accuracy.csv", "figures/confusion.png"):
        assert (run / name).is_file(), name
    assert json.loads((run / "config.json").read_text())["backend"] == "torch"
    env = json.loads((run / "env.json").read_text())
    assert env["torch"].startswith("2.") and env["torch_threads"] >= 1
    assert METRIC_KEYS <= set(json.loads((run / "metrics.json").read_text()))
    assert [row["epoch"] for row in read_csv(run / "history.csv")] == ["1", "2"]


def test_numpy_and_torch_runs_agree(runs) -> None:
    with np.load(runs["numpy"] / "split.npz") as a, np.load(runs["torch"] / "split.npz") as b:
        assert np.array_equal(a["train"], b["train"]) and np.array_equal(a["val"], b["val"])
    hist_np, hist_t = read_csv(runs["numpy"] / "history.csv"), read_csv(runs["torch"] / "history.csv")
    assert len(hist_np) == len(hist_t) == 2
    for row_np, row_t in zip(hist_np, hist_t):
        for key in CURVES:
            assert float(row_t[key]) == pytest.approx(float(row_np[key]), abs=1e-4), key
    w_np, w_t = RunFolder(runs["numpy"]).weights, RunFolder(runs["torch"]).weights
    assert list(w_np) == list(w_t)
    for name in w_np:
        assert w_t[name].shape == w_np[name].shape  # numpy layout whatever the backend
        np.testing.assert_allclose(w_t[name], w_np[name], atol=1e-4)


def test_torch_weights_load_into_either_backend(runs, capsys) -> None:
    from doodlelab.config import load_config

    cfg = load_config(None, ["train.epochs=2"])
    weights = RunFolder(runs["torch"]).weights
    x = np.random.default_rng(0).random((10, 784), dtype=np.float32)
    logits = []
    for task in (NumpyClassifier(cfg, Streams.from_seed(0)), TorchClassifier(cfg, Streams.from_seed(0))):
        task.load_state_dict(weights)
        logits.append(task.logits(x))
    np.testing.assert_allclose(logits[0], logits[1], atol=1e-5)

    assert main(["evaluate", str(runs["torch"]), "--data", str(runs["data"])]) == 0
    saved = json.loads((runs["torch"] / "metrics.json").read_text())
    assert f"accuracy={saved['accuracy']:.4f}" in capsys.readouterr().out


def test_compare_writes_metrics_and_overlaid_curves(runs, tmp_path, capsys) -> None:
    out = tmp_path / "cmp"
    assert main(["compare", str(runs["numpy"]), str(runs["torch"]), "--out", str(out)]) == 0
    for name in ("comparison.csv", "comparison.json", "loss.png", "loss.csv", "accuracy.png",
                 "accuracy.csv"):
        assert (out / name).is_file(), name
    rows = {r["metric"]: r for r in read_csv(out / "comparison.csv")}
    assert list(next(iter(rows.values()))) == ["metric", "numpy", "torch", "difference"]
    for key in ("accuracy", "f1_macro", "rabbit.recall", "motorbike.pr_auc"):
        assert key in rows
    acc = rows["accuracy"]
    assert float(acc["difference"]) == pytest.approx(float(acc["torch"]) - float(acc["numpy"]))
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["runs"]["a"]["backend"] == "numpy" and summary["runs"]["b"]["label"] == "torch"
    assert summary["curves"]["epochs_compared"] == 2
    assert max(summary["curves"]["max_abs_diff"].values()) <= 1e-4
    loss_rows = read_csv(out / "loss.csv")
    assert sorted({r["run"] for r in loss_rows}) == ["numpy", "torch"] and len(loss_rows) == 4
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "numpy" in printed and "torch" in printed


def test_compare_refuses_an_unfinished_run(runs, tmp_path, capsys) -> None:
    half = tmp_path / "half"
    half.mkdir()
    (half / "config.json").write_text((runs["torch"] / "config.json").read_text())
    assert main(["compare", str(runs["numpy"]), str(half), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "is not a finished run (no metrics.json)" in err and err.count("\n") == 1
    assert main(["compare", str(tmp_path / "nope"), str(half)]) == 2
