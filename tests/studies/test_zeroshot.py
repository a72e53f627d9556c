"""``doodlelab zeroshot``: the two-tower model trained without some classes, scored on them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from doodlelab.cli.commands import main
from tests.conftest import make_k_class_folder

NAMES = ["cat", "dog", "hot air balloon", "rabbit", "yoga", "hand", "snowman"]
FAST = ["--set", "train.epochs=12", "--set", "model.hidden=[32]", "--set", "train.batch_size=16",
        "--set", "two_tower.embed_dim=8", "--set", "two_tower.text_hidden=[8]"]


@pytest.fixture
def seven(tmp_path):
    data = make_k_class_folder(tmp_path / "seven", NAMES)
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
    # Whatever the model learnt: a class that beats all 7 names beats the 2 held-out ones, and
    # a share a of rank-1 images puts the mean rank at 1 * a + 2 * (1 - a) or more.
    assert report["accuracy_among_all"] <= report["accuracy_among_unseen"]
    assert report["mean_rank"] >= 2 - report["accuracy_among_all"]
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


# Scripted test scores (columns a, b, c, d; c and d held out), worked by hand:
#   image label  scores          among {c, d}  among all  rank of true  among {a, b}
#   0     a      5  1  2  0      -             -          -             a  right
#   1     b      3  2  1  0      -             -          -             a  wrong
#   2     c      1  0  3  2      c  right      c right    1
#   3     c      4  0  2  3      d  wrong      a wrong    3 (a, d above)
#   4     d      0  5  1  2      d  right      b wrong    2 (b above)
#   5     d      1  0  0.5 3     d  right      d right    1
SCORES = np.array([[5, 1, 2, 0], [3, 2, 1, 0], [1, 0, 3, 2], [4, 0, 2, 3], [0, 5, 1, 2],
                   [1, 0, 0.5, 3]], float)


def test_zero_shot_scores_by_hand():
    from doodlelab.studies.zeroshot import _scores

    report = _scores(SCORES, np.array([0, 1, 2, 2, 3, 3]), ("a", "b", "c", "d"), [0, 1], [2, 3])
    assert report["n_test_unseen"] == 4
    assert report["accuracy_among_unseen"] == 0.75  # images 2, 4, 5 of 2..5
    assert report["accuracy_among_all"] == 0.5  # images 2, 5
    assert report["mean_rank"] == 1.75  # (1 + 3 + 2 + 1) / 4
    assert report["seen_accuracy_among_seen"] == 0.5  # image 0 right, image 1 wrong
    # ROC-AUC of c: positives 3, 2 against negatives 2, 1, 1, 0.5: 4 + (0.5 + 3) = 7.5 of 8 pairs;
    # of d: positives 2, 3 against negatives 0, 0, 2, 3: (2 + 0.5) + (3 + 0.5) = 6 of 8.
    assert report["roc_auc"] == {"c": 0.9375, "d": 0.75}
    assert report["chance_among_unseen"] == 0.5 and report["chance_mean_rank"] == 2.5
    assert report["chance_among_all"] == 0.25
