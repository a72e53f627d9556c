"""Test-set metrics against numbers worked out by hand (never scikit-learn called again).

The main case: 8 images of 3 classes. Rows are true classes, columns predictions.

    sample  true  probs (class 0, 1, 2)   argmax
    s0      0     0.80  0.15  0.05        0
    s1      0     0.60  0.30  0.10        0
    s2      0     0.30  0.45  0.25        1
    s3      1     0.10  0.70  0.20        1
    s4      1     0.20  0.42  0.38        1
    s5      2     0.50  0.10  0.40        0
    s6      2     0.25  0.40  0.35        1
    s7      2     0.15  0.20  0.65        2

Confusion [[2, 1, 0], [0, 2, 0], [1, 1, 1]]; column sums (predicted) 3, 4, 1.
No score repeats within a column, so ROC-AUC and average precision have no ties.
Macro precision, macro recall, accuracy and weighted precision all differ, so mixing
up ``average=`` or precision with recall changes a number.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from doodlelab.training.metrics import SCALAR_KEYS, classification_metrics

Y = np.array([0, 0, 0, 1, 1, 2, 2, 2])
PROBS = np.array([
    [0.80, 0.15, 0.05],
    [0.60, 0.30, 0.10],
    [0.30, 0.45, 0.25],
    [0.10, 0.70, 0.20],
    [0.20, 0.42, 0.38],
    [0.50, 0.10, 0.40],
    [0.25, 0.40, 0.35],
    [0.15, 0.20, 0.65],
])
NAMES = ["rabbit", "yoga", "hand"]

# Precision = diagonal / column sum: 2/3, 2/4, 1/1.
PRECISION = [2 / 3, 1 / 2, 1.0]
# Recall = diagonal / row sum: 2/3, 2/2, 1/3.
RECALL = [2 / 3, 1.0, 1 / 3]
# F1 = 2PR/(P+R): class 0: 2/3; class 1: 2(1/2)(1)/(3/2) = 2/3; class 2: 2(1)(1/3)/(4/3) = 1/2.
F1 = [2 / 3, 2 / 3, 1 / 2]
# One-vs-rest ROC-AUC = share of (positive, negative) pairs ranked right.
#   class 0: positives 0.80, 0.60, 0.30 vs negatives 0.10 0.20 0.50 0.25 0.15: 5 + 5 + 4 = 14 of 15
#   class 1: positives 0.70, 0.42 vs negatives 0.15 0.30 0.45 0.10 0.40 0.20: 6 + 5 = 11 of 12
#   class 2: positives 0.40, 0.35, 0.65 vs negatives 0.05 0.10 0.25 0.20 0.38: 5 + 4 + 5 = 14 of 15
ROC_AUC = [14 / 15, 11 / 12, 14 / 15]
# Average precision = mean over positives of the precision at that positive's rank.
#   class 0 ranking 0.80+ 0.60+ 0.50- 0.30+ ...: (1/1 + 2/2 + 3/4) / 3 = 11/12
#   class 1 ranking 0.70+ 0.45- 0.42+ ...:       (1/1 + 2/3) / 2       = 5/6
#   class 2 ranking 0.65+ 0.40+ 0.38- 0.35+ ...: (1/1 + 2/2 + 3/4) / 3 = 11/12
# (the trapezoid under the PR curve would give other numbers).
AVERAGE_PRECISION = [11 / 12, 5 / 6, 11 / 12]


@pytest.fixture
def metrics():  # per test, so that mutation testing maps every test to the function it checks
    return classification_metrics(Y, PROBS, NAMES)


def test_confusion_matrix_and_accuracy_by_hand(metrics):
    assert metrics["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [1, 1, 1]]
    assert metrics["accuracy"] == pytest.approx(5 / 8)  # diagonal 2 + 2 + 1 of 8
    assert metrics["n_samples"] == 8
    assert metrics["class_names"] == NAMES


def test_macro_averages_by_hand(metrics):
    # macro precision (2/3 + 1/2 + 1)/3 = 13/18 = 0.7222; micro would be 5/8 = accuracy,
    # weighted (3 * 2/3 + 2 * 1/2 + 3 * 1)/8 = 0.75.
    assert metrics["precision_macro"] == pytest.approx(13 / 18, abs=1e-9)
    # macro recall (2/3 + 1 + 1/3)/3 = 2/3; micro = weighted = 5/8.
    assert metrics["recall_macro"] == pytest.approx(2 / 3, abs=1e-9)
    # macro F1 = mean of per-class F1 = (2/3 + 2/3 + 1/2)/3 = 11/18 = 0.6111, not the F1 of
    # the macro precision and recall (2 * 13/18 * 2/3 / (13/18 + 2/3) = 0.6933).
    assert metrics["f1_macro"] == pytest.approx(11 / 18, abs=1e-9)
    # ROC-AUC (14/15 + 11/12 + 14/15)/3 = 167/180 = 0.9278
    assert metrics["roc_auc_macro"] == pytest.approx(167 / 180, abs=1e-9)
    # average precision (11/12 + 5/6 + 11/12)/3 = 8/9 = 0.8889
    assert metrics["pr_auc_macro"] == pytest.approx(8 / 9, abs=1e-9)


@pytest.mark.parametrize("c", range(3))
def test_per_class_numbers_by_hand(metrics, c):
    row = metrics["per_class"][NAMES[c]]
    assert row["precision"] == pytest.approx(PRECISION[c], abs=1e-9)
    assert row["recall"] == pytest.approx(RECALL[c], abs=1e-9)
    assert row["f1"] == pytest.approx(F1[c], abs=1e-9)
    assert row["roc_auc"] == pytest.approx(ROC_AUC[c], abs=1e-9)
    assert row["pr_auc"] == pytest.approx(AVERAGE_PRECISION[c], abs=1e-9)
    assert row["support"] == [3, 2, 3][c]


def test_floats_are_rounded_to_ten_digits_and_the_result_is_json(metrics):
    assert metrics["precision_macro"] == round(13 / 18, 10)  # 0.7222222222, not ...2222222
    assert metrics["per_class"]["rabbit"]["precision"] == 0.6666666667
    assert json.loads(json.dumps(metrics)) == metrics
    assert set(SCALAR_KEYS) <= set(metrics)


@pytest.mark.filterwarnings("error")  # no "ill-defined" or "only one class" warning either
def test_a_class_missing_from_the_labels_is_left_out_of_the_macro_aurocs():
    # Labels hold classes 0 and 1 only; class 2 has no positives, so it has no ROC-AUC and
    # no average precision, and the macro values average the two classes that exist.
    y = np.array([0, 0, 1])
    probs = np.array([[0.5, 0.3, 0.2], [0.2, 0.5, 0.3], [0.3, 0.6, 0.1]])  # argmax 0, 1, 1
    m = classification_metrics(y, probs, ["a", "b", "c"])
    # class 0: positives 0.5, 0.2 vs negative 0.3 -> 1 of 2 pairs; class 1: 0.6 vs 0.3, 0.5 -> 2 of 2
    assert m["per_class"]["a"]["roc_auc"] == pytest.approx(0.5)
    assert m["per_class"]["b"]["roc_auc"] == pytest.approx(1.0)
    assert m["per_class"]["c"]["roc_auc"] is None and m["per_class"]["c"]["pr_auc"] is None
    assert m["roc_auc_macro"] == pytest.approx(0.75)
    # class 0 ranking 0.5+ 0.3- 0.2+: (1 + 2/3)/2 = 5/6; class 1: its only positive ranks first: 1
    assert m["pr_auc_macro"] == pytest.approx((5 / 6 + 1) / 2)
    # precision of class 0: 1/1; class 1: 1/2 (s1 and s2 predicted 1); class 2 never predicted: 0
    assert m["precision_macro"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    assert m["per_class"]["c"]["support"] == 0
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]


@pytest.mark.filterwarnings("error")  # no "mean of empty slice" on the way to None
def test_labels_of_one_class_have_no_roc_auc_but_an_average_precision():
    # Every label is 0: no negatives anywhere for class 0 and no positives for the others.
    y = np.array([0, 0])
    probs = np.array([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1]])
    m = classification_metrics(y, probs, ["a", "b", "c"])
    assert m["roc_auc_macro"] is None
    assert m["per_class"]["a"]["roc_auc"] is None
    assert m["pr_auc_macro"] == pytest.approx(1.0)  # all positives: precision 1 at every rank
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["recall_macro"] == pytest.approx((1 / 2 + 0 + 0) / 3)


def test_the_accuracy_interval_is_wilsons_by_hand():
    from doodlelab.training.metrics import accuracy_interval

    z, n, p = 1.959963985, 100, 0.9  # 90 of 100 right; z = the normal's 97.5% quantile
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low, high = accuracy_interval(90, 100)
    assert (low, high) == (pytest.approx(centre - half, abs=1e-9), pytest.approx(centre + half, abs=1e-9))
    assert low == pytest.approx(0.8256, abs=1e-4) and high == pytest.approx(0.9448, abs=1e-4)


def test_metrics_carry_the_count_and_the_interval_of_the_accuracy(metrics):
    from doodlelab.training.metrics import accuracy_interval

    assert metrics["accuracy"] == metrics["n_correct"] / metrics["n_samples"]
    assert metrics["accuracy_ci95"] == [round(v, 10) for v in accuracy_interval(metrics["n_correct"],
                                                                                metrics["n_samples"])]


def test_mcnemar_counts_only_the_disagreements_and_gives_the_exact_binomial_p_value():
    from doodlelab.training.metrics import mcnemar_exact

    # 1 image only a gets right, 9 only b, 5 both, 3 neither
    a = np.array([1] + [0] * 9 + [1] * 5 + [0] * 3, bool)
    b = np.array([0] + [1] * 9 + [1] * 5 + [0] * 3, bool)
    got = mcnemar_exact(a, b)
    assert (got["only_a"], got["only_b"], got["both_right"], got["both_wrong"], got["n"]) == (1, 9, 5, 3, 18)
    assert got["p_value"] == pytest.approx(2 * (1 + 10) / 2**10)  # 2 P(X <= 1), X ~ Bin(10, 1/2)


def test_mcnemar_of_classifiers_that_never_disagree_is_one_and_refuses_other_images():
    from doodlelab.training.metrics import mcnemar_exact

    same = np.array([True, False, True])
    assert mcnemar_exact(same, same)["p_value"] == 1.0
    with pytest.raises(ValueError, match="same images"):
        mcnemar_exact(same, same[:2])
