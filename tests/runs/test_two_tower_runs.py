"""``doodlelab train two_tower`` end to end on tiny folders, with word vectors from a small GloVe file."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from doodlelab.cli.commands import main
from doodlelab.data.course import CLASSES
from tests.conftest import need_module

FAST = ["--set", "train.epochs=3", "--set", "model.hidden=[32]", "--set", "train.batch_size=16",
        "--set", "two_tower.embed_dim=8", "--set", "two_tower.text_hidden=[8]"]


@pytest.fixture
def glove_file(tmp_path):
    """A GloVe text file holding the five class names (and a distractor), 6-d."""
    rng = np.random.default_rng(0)
    lines = [f"{w} " + " ".join(f"{v:.5f}" for v in rng.normal(size=6))
             for w in (*CLASSES, "zebra")]
    path = tmp_path / "glove.tiny.6d.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _train(course, out, glove, *extra):
    return main(["train", "two_tower", "--data", str(course), "--out", str(out), *FAST,
                 "--set", f"two_tower.word_vectors={json.dumps(str(glove))}", *extra])


def test_two_tower_run_folder_terms_and_evaluate(course_dir, glove_file, tmp_path, capsys):
    out = tmp_path / "tt"
    assert _train(course_dir, out, glove_file, "--set", "two_tower.align_weight=0.5",
                  "--set", "optim.l2=0.001", "--set", "train.epochs=20") == 0
    assert "test: accuracy=" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "two_tower" and config["two_tower"]["align_weight"] == 0.5
    assert config["two_tower"]["loss"] == "hinge_rank"  # the default objective, named
    with np.load(out / "class_vectors.npz", allow_pickle=False) as z:
        assert z["names"].tolist() == list(CLASSES) and z["vectors"].shape == (5, 6)
    env = json.loads((out / "env.json").read_text())
    assert env["word_vectors"]["dim"] == 6 and len(env["word_vectors"]["sha256"]) == 64
    with open(out / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    terms = {k for k in rows[0] if k.startswith("term_")}
    assert len(rows) == 20 and terms == {"term_hinge_rank", "term_align", "term_l2"}  # no cross-entropy
    assert {"diag_active", "diag_class_cosine"} <= set(rows[0])
    assert 0.0 <= float(rows[-1]["diag_active"]) <= 1.0 and -1.0 <= float(rows[-1]["diag_class_cosine"]) < 1.0
    assert (out / "figures" / "loss_terms.png").stat().st_size > 1000
    assert (out / "figures" / "diagnostics.png").stat().st_size > 1000
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.5  # the synthetic classes are easy
    # evaluate reads the class vectors from the run, not from the GloVe file
    glove_file.unlink()
    assert main(["evaluate", str(out), "--data", str(course_dir), "--json", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["accuracy"] == metrics["accuracy"]


def test_two_tower_uses_the_classifier_split_and_is_deterministic(course_dir, glove_file, tmp_path):
    assert _train(course_dir, tmp_path / "a", glove_file) == 0
    assert _train(course_dir, tmp_path / "b", glove_file) == 0
    assert main(["train", "classifier", "--data", str(course_dir), "--out", str(tmp_path / "c"),
                 "--set", "train.epochs=1"]) == 0
    assert (tmp_path / "a" / "metrics.json").read_bytes() == (tmp_path / "b" / "metrics.json").read_bytes()
    assert (tmp_path / "a" / "split.npz").read_bytes() == (tmp_path / "c" / "split.npz").read_bytes()


def test_torch_two_tower_run_matches_numpy_closely(course_dir, glove_file, tmp_path):
    need_module("torch", "torch")
    assert _train(course_dir, tmp_path / "np", glove_file) == 0
    assert _train(course_dir, tmp_path / "pt", glove_file, "--backend", "torch") == 0
    a = json.loads((tmp_path / "np" / "metrics.json").read_text())
    b = json.loads((tmp_path / "pt" / "metrics.json").read_text())
    assert abs(a["accuracy"] - b["accuracy"]) <= 0.05


def test_missing_class_word_is_one_line_and_writes_nothing(course_dir, tmp_path, capsys):
    path = tmp_path / "glove.bad.txt"
    path.write_text("rabbit 0.1 0.2\nyoga 0.3 0.4\n")
    out = tmp_path / "tt"
    assert _train(course_dir, out, path) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "hand" in err and "Traceback" not in err
    assert not out.exists()


def test_sweep_of_the_two_tower_model(course_dir, glove_file, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", "--model", "two_tower", "--data", str(course_dir), "--out", str(out),
                 "--grid", "two_tower.margin=[0.1,1.0]", *FAST,
                 "--set", f"two_tower.word_vectors={json.dumps(str(glove_file))}"]) == 0
    with open(out / "sweep.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["two_tower.margin"] for r in rows] == ["0.1", "1.0"]
    with open(out / "histories.csv") as fh:
        history = list(csv.DictReader(fh))
    losses = {p: [float(h["val_loss"]) for h in history if h["point"] == p] for p in ("0", "1")}
    # The grid value reaches the model: same seed and split, other margin, other curves.
    assert len(losses["0"]) == len(losses["1"]) > 0 and losses["0"] != losses["1"]
    for r in rows:  # each row's numbers are its own run's last epoch
        assert float(r["final_val_accuracy"]) == [float(h["val_accuracy"]) for h in history
                                                  if h["point"] == r["point"]][-1]
