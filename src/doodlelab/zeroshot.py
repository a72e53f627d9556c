"""Zero-shot classes through word vectors: train the two-tower model without some classes.

The held-out classes' images are removed from training and validation, and the word
tower only ever sees the remaining classes' vectors. At test time every test image
is scored against *all* class names, so a held-out class can only be recognised
through where the word tower maps its (never trained) GloVe vector. Reported, on the
held-out classes' test images:

- ``accuracy_among_unseen``: the most similar of the held-out classes is the right one
  (the classic zero-shot score; chance 1/U; needs U >= 2 held-out classes);
- ``accuracy_among_all``: the most similar of all K classes is the right one
  (generalised zero-shot; seen classes usually win, chance 1/K);
- ``mean_rank``: the true class's rank among all K (1 = best, chance (K+1)/2);
- ``roc_auc``: per held-out class, how well its similarity separates its images from
  every other test image (0.5 = chance);

and the accuracy on the seen classes' test images among the seen classes, as a
check that the model itself trained well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from doodlelab.config import Config
from doodlelab.data.course import Split, load_split, resolve_data_dir
from doodlelab.data.split import stratified_split
from doodlelab.errors import UserError
from doodlelab.fileio import write_json


def _check_holdout(classes: tuple[str, ...], holdout: list[str]) -> list[int]:
    """Return the label indices of ``holdout``; UserError for unknown, repeated or too many names."""
    unknown = [h for h in holdout if h not in classes]
    if unknown:
        raise UserError(f"--holdout {', '.join(unknown)}: not a class of this data "
                        f"({', '.join(classes)})")
    if len(set(holdout)) != len(holdout) or not holdout:
        raise UserError("--holdout needs one or more distinct class names")
    if len(classes) - len(holdout) < 2:
        raise UserError(f"--holdout leaves {len(classes) - len(holdout)} class to train on; keep at least 2")
    return [classes.index(h) for h in holdout]


def _subset(split: Split, keep: np.ndarray, labels: list[int]) -> Split:
    """Return the images of ``split`` whose label is in ``labels``, relabelled 0..len(labels)-1."""
    remap = np.full(len(split.classes), -1, dtype=np.int64)
    remap[labels] = np.arange(len(labels))
    return Split(x=split.x[keep], y=remap[split.y[keep]], checksums=split.checksums,
                 classes=tuple(split.classes[i] for i in labels))


def zero_shot(*, data: str | Path | None, holdout: list[str], cfg: Config, backend: str = "numpy",
              out: Path | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Train the two-tower model without ``holdout`` and score its classes zero-shot; return the report.

    The split is the usual stratified one of ``cfg`` restricted to the seen classes'
    images, so the seen images train and validate exactly as in a full run.
    """
    from sklearn.metrics import roc_auc_score

    from doodlelab.runs import class_word_vectors, fit_classifier

    data_dir = resolve_data_dir(data)
    train, test = load_split(data_dir, "train"), load_split(data_dir, "test")
    classes = train.classes
    unseen = _check_holdout(classes, holdout)
    seen = [k for k in range(len(classes)) if k not in unseen]
    all_vectors, provenance = class_word_vectors(cfg, classes)  # (K, D)

    train_idx, val_idx = stratified_split(train.y, cfg.data.val_fraction, cfg.train.seed)
    seen_train = _subset(train, np.isin(train.y, seen), seen)
    # positions of the seen images inside the seen-only arrays, split as in a full run
    position = np.cumsum(np.isin(train.y, seen)) - 1
    train_sel = position[train_idx[np.isin(train.y[train_idx], seen)]]
    val_sel = position[val_idx[np.isin(train.y[val_idx], seen)]]
    task, result = fit_classifier(cfg, backend, seen_train, train_sel, val_sel, progress=progress,
                                  task_name="two_tower", class_vectors=all_vectors[seen])

    scores = task.logits(test.x, all_vectors)  # (N, K): scaled cosines against every class name
    is_unseen = np.isin(test.y, unseen)
    rank = 1 + (scores > scores[np.arange(len(test.y)), test.y][:, None]).sum(axis=1)
    report: dict[str, Any] = {
        "holdout": list(holdout),
        "seen": [classes[k] for k in seen],
        "backend": backend,
        "seed": cfg.train.seed,
        "word_vectors": provenance,
        "n_test_unseen": int(is_unseen.sum()),
        "accuracy_among_all": float((scores[is_unseen].argmax(axis=1) == test.y[is_unseen]).mean()),
        "chance_among_all": 1.0 / len(classes),
        "mean_rank": float(rank[is_unseen].mean()),
        "chance_mean_rank": (len(classes) + 1) / 2,
        "roc_auc": {classes[k]: float(roc_auc_score(test.y == k, scores[:, k])) for k in unseen},
        "seen_accuracy_among_seen": float(
            (np.asarray(seen)[scores[~is_unseen][:, seen].argmax(axis=1)] == test.y[~is_unseen]).mean()),
        "final_val_accuracy_seen": result.history[-1]["val_accuracy"],
    }
    if len(unseen) >= 2:
        picked = np.asarray(unseen)[scores[is_unseen][:, unseen].argmax(axis=1)]
        report["accuracy_among_unseen"] = float((picked == test.y[is_unseen]).mean())
        report["chance_among_unseen"] = 1.0 / len(unseen)
    if out is not None:
        write_json(Path(out), report)
    return report


def format_zero_shot(report: dict[str, Any]) -> str:
    """Return the report as a few readable lines."""
    lines = [f"held out: {', '.join(report['holdout'])}  (trained on {', '.join(report['seen'])}; "
             f"{report['n_test_unseen']} held-out test images)"]
    if "accuracy_among_unseen" in report:
        lines.append(f"  accuracy among the held-out classes: {report['accuracy_among_unseen']:.3f} "
                     f"(chance {report['chance_among_unseen']:.3f})")
    lines += [
        f"  accuracy among all classes:         {report['accuracy_among_all']:.3f} "
        f"(chance {report['chance_among_all']:.3f})",
        f"  mean rank of the true class:        {report['mean_rank']:.2f} "
        f"(chance {report['chance_mean_rank']:.2f})",
        "  ROC-AUC of each held-out class:     "
        + ", ".join(f"{k} {v:.3f}" for k, v in report["roc_auc"].items()) + " (chance 0.5)",
        f"  seen classes' test accuracy:        {report['seen_accuracy_among_seen']:.3f}",
    ]
    return "\n".join(lines)
