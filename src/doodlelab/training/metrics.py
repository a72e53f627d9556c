"""Test-set metrics, all computed by scikit-learn.

``metrics.json`` holds model quality only (no timings), so two runs with one seed
compare equal byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SCALAR_KEYS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc_macro",
               "pr_auc_macro")


def classification_metrics(
    y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str]
) -> dict[str, object]:
    """Return accuracy, macro precision/recall/F1/ROC-AUC/PR-AUC, per-class and confusion.

    ``probs`` is (N, C) class probabilities; the prediction is their argmax. ROC-AUC is
    one-vs-rest; PR-AUC is average precision. Every float is rounded to 10 digits so
    that the file does not change with the last bit of a BLAS reduction order.
    """
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        confusion_matrix,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    labels = list(range(len(class_names)))
    y_pred = probs.argmax(axis=1)
    onehot = np.eye(len(labels), dtype=int)[y_true]
    p, r, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    present = onehot.sum(axis=0) > 0
    roc = np.full(len(labels), np.nan)
    ap = np.full(len(labels), np.nan)
    for c in labels:
        if present[c] and onehot[:, c].min() == 0:  # needs positives and negatives
            roc[c] = roc_auc_score(onehot[:, c], probs[:, c])
        if present[c]:
            ap[c] = average_precision_score(onehot[:, c], probs[:, c])
    per_class = {
        name: {
            "precision": _r(p[c]),
            "recall": _r(r[c]),
            "f1": _r(f1[c]),
            "roc_auc": _r(roc[c]),
            "pr_auc": _r(ap[c]),
            "support": int(support[c]),
        }
        for c, name in enumerate(class_names)
    }
    correct = int((y_pred == y_true).sum())
    return {
        "n_samples": int(y_true.shape[0]),
        "n_correct": correct,
        "accuracy": _r(accuracy_score(y_true, y_pred)),
        "accuracy_ci95": [_r(v) for v in accuracy_interval(correct, int(y_true.shape[0]))],
        "precision_macro": _r(p.mean()),
        "recall_macro": _r(r.mean()),
        "f1_macro": _r(f1.mean()),
        "roc_auc_macro": _r(np.nanmean(roc)) if np.isfinite(roc).any() else None,
        "pr_auc_macro": _r(np.nanmean(ap)) if np.isfinite(ap).any() else None,
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "class_names": list(class_names),
    }


def _r(x: float) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) else round(x, 10)


def accuracy_interval(correct: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Return the Wilson score interval of an accuracy of ``correct`` out of ``n`` at ``level``."""
    from scipy.stats import binomtest

    if n <= 0:
        return (float("nan"), float("nan"))
    ci = binomtest(correct, n).proportion_ci(confidence_level=level, method="wilson")
    return (float(ci.low), float(ci.high))


def mcnemar_exact(a_correct: np.ndarray, b_correct: np.ndarray) -> dict[str, float | int]:
    """Return McNemar's exact test of two classifiers on the same images (Dietterich 1998).

    ``a_correct``, ``b_correct``: (N,) booleans, whether each classifier got each image
    right. Only the images they disagree on count: ``only_a`` (a right, b wrong) and
    ``only_b``; under "equally accurate" each such image is a fair coin, so the two-sided
    p-value is that of a binomial test of ``only_a`` out of ``only_a + only_b`` at 1/2
    (1 when they never disagree).
    """
    from scipy.stats import binomtest

    a, b = np.asarray(a_correct, bool), np.asarray(b_correct, bool)
    if a.shape != b.shape:
        raise ValueError(f"McNemar's test needs both classifiers on the same images ({a.shape} vs {b.shape})")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"n": int(a.size), "both_right": int((a & b).sum()), "both_wrong": int((~a & ~b).sum()),
            "only_a": only_a, "only_b": only_b, "p_value": float(p)}
