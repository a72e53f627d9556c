"""``doodlelab zeroshot``: the two-tower model trained without some classes, scored on them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from doodlelab.cli import main
from tests.test_cli import _k_class_folder

NAMES = ["cat", "dog", "hot air balloon", "rabbit", "yoga", "hand", "snowman"]
FAST = ["--set", "train.epochs=12", "--set", "model.hidden=[32]", "--set", "train.batch_size=16",
        "--set", "two_tower.embed_dim=8", "--set", "two_tower.text_hidden=[8]"]


@pytest.fixture
def seven(tmp_path):
    data = _k_class_folder(tmp_path / "seven", NAMES)
    rng = np.random.default_rng(0)
    words = ["cat", "dog", "hot", "air", "balloon", "rabbit", "yoga", "hand", "snowman"]
    glove = tmp_path / "glove.tiny.txt"
    glove.write_text("".join(f"{w} " + " ".join(f"{v:.4f}" for v in rng.normal(size=5)) + "\n"
                             for w in words))
    return data, glove


def _run(data, glove, *args):
    return main(["zeroshot", "--data", str(data), *FAST,
                 "--set", f"two_tower.word_vectors={json.dumps(str(glove))}", *args])


def test_zero_shot_report(seven, tmp_path, capsys):
    data, glove = seven
    out = tmp_path / "zs.json"
    assert _run(data, glove, "--holdout", "hot air balloon,snowman", "--json", str(out)) == 0
    printed = capsys.readouterr().out
    assert "accuracy among the held-out classes" in printed and "chance 0.500" in printed
    report = json.loads(out.read_text())
    test_y = np.load(data / "test_labels.npy")
    assert report["n_test_unseen"] == int(np.isin(test_y, [2, 6]).sum())
    assert report["seen"] == ["cat", "dog", "rabbit", "yoga", "hand"]
    assert set(report["roc_auc"]) == {"hot air balloon", "snowman"}
    assert report["chance_among_all"] == pytest.approx(1 / 7) and report["chance_mean_rank"] == 4.0
    assert 1.0 <= report["mean_rank"] <= 7.0
    for key in ("accuracy_among_unseen", "accuracy_among_all", "seen_accuracy_among_seen"):
        assert 0.0 <= report[key] <= 1.0
    assert report["seen_accuracy_among_seen"] > 0.6  # the seen part trained properly
    assert report["word_vectors"]["dim"] == 5


@pytest.mark.parametrize("holdout, message", [
    ("zebra", "not a class of this data"),
    ("cat,cat", "distinct"),
    ("cat,dog,hot air balloon,rabbit,yoga,hand", "keep at least 2"),
])
def test_bad_holdout_is_one_line_exit_2(seven, capsys, holdout, message):
    data, glove = seven
    assert _run(data, glove, "--holdout", holdout) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
