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

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from doodlelab.config import Config, add_config_args
from doodlelab.data.course import Split, add_data_arg
from doodlelab.data.prepare import Prepared
from doodlelab.errors import UserError
from doodlelab.files.atomic import write_json
from doodlelab.kinds import BACKENDS, NUMPY, TWO_TOWER, Backend
from doodlelab.training.fit import fit_new
from doodlelab.training.registry import task_class


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


def _seen_split(data: Prepared, seen: list[int]) -> tuple[Split, np.ndarray, np.ndarray]:
    """Return the seen classes' training images (relabelled) and ``data``'s split restricted to them."""
    train, train_idx, val_idx = data.train, data.train_idx, data.val_idx
    is_seen = np.isin(train.y, seen)
    position = np.cumsum(is_seen) - 1  # where each seen image sits inside the seen-only arrays
    return (_subset(train, is_seen, seen), position[train_idx[is_seen[train_idx]]],
            position[val_idx[is_seen[val_idx]]])


def _scores(scores: np.ndarray, y: np.ndarray, classes: tuple[str, ...], seen: list[int],
            unseen: list[int]) -> dict[str, Any]:
    """Return the zero-shot scores (module docstring) of logits (N, K) against test labels (N,)."""
    from sklearn.metrics import roc_auc_score

    is_unseen = np.isin(y, unseen)
    rank = 1 + (scores > scores[np.arange(len(y)), y][:, None]).sum(axis=1)
    out: dict[str, Any] = {
        "n_test_unseen": int(is_unseen.sum()),
        "accuracy_among_all": float((scores[is_unseen].argmax(axis=1) == y[is_unseen]).mean()),
        "chance_among_all": 1.0 / len(classes),
        "mean_rank": float(rank[is_unseen].mean()),
        "chance_mean_rank": (len(classes) + 1) / 2,
        "roc_auc": {classes[k]: float(roc_auc_score(y == k, scores[:, k])) for k in unseen},
        "seen_accuracy_among_seen": float(
            (np.asarray(seen)[scores[~is_unseen][:, seen].argmax(axis=1)] == y[~is_unseen]).mean()),
    }
    if len(unseen) >= 2:
        picked = np.asarray(unseen)[scores[is_unseen][:, unseen].argmax(axis=1)]
        out["accuracy_among_unseen"] = float((picked == y[is_unseen]).mean())
        out["chance_among_unseen"] = 1.0 / len(unseen)
    return out


def zero_shot(*, data: Prepared, holdout: list[str], cfg: Config, backend: Backend = NUMPY,
              out: Path | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Train the two-tower model without ``holdout`` and score its classes zero-shot; return the report.

    ``data`` must hold the test split and the class vectors. The split is ``data``'s
    (the usual stratified one of ``cfg``) restricted to the seen classes' images, so the
    seen images train and validate exactly as in a full run.
    """
    classes = data.classes
    unseen = _check_holdout(classes, holdout)
    seen = [k for k in range(len(classes)) if k not in unseen]
    if data.test is None or data.class_vectors is None:
        raise ValueError("zero_shot needs the test split and the class vectors")
    seen_train, train_sel, val_sel = _seen_split(data, seen)
    task, result = fit_new(cfg, backend, TWO_TOWER, seen_train.x[train_sel], seen_train.y[train_sel],
                           seen_train.x[val_sel], seen_train.y[val_sel], progress=progress,
                           class_vectors=data.class_vectors[seen])
    scores = task.logits(data.test.x, data.class_vectors)  # (N, K): scaled cosines against every name
    report: dict[str, Any] = {
        "holdout": list(holdout), "seen": [classes[k] for k in seen], "backend": backend,
        "seed": cfg.train.seed, "word_vectors": data.word_vectors,
        **_scores(scores, data.test.y, classes, seen, unseen),
        "final_val_accuracy_seen": result.history[-1]["val_accuracy"],
    }
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


# -- command line ------------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``zeroshot`` to the ``doodlelab`` subcommands."""
    p = subparsers.add_parser("zeroshot", help="two-tower model trained without some classes, scored on them")
    p.add_argument("--holdout", required=True, metavar="NAME,NAME",
                   help="classes left out of training, recognised only through their word vectors")
    p.add_argument("--backend", choices=list(BACKENDS), default=NUMPY)
    add_data_arg(p)
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the report here")
    add_config_args(p)


def command(args: argparse.Namespace) -> int:
    """Run ``doodlelab zeroshot``; return 0."""
    from doodlelab.config import load_config
    from doodlelab.data.course import load_classes, resolve_data_dir
    from doodlelab.data.prepare import prepare

    cfg = load_config(args.config, args.overrides)
    task_class(args.backend, TWO_TOWER)
    holdout = [h.strip() for h in args.holdout.split(",") if h.strip()]
    _check_holdout(load_classes(resolve_data_dir(args.data)), holdout)  # before the data is read
    data = prepare(cfg, args.data, word_vectors=True)
    report = zero_shot(data=data, holdout=holdout, cfg=cfg, backend=args.backend, out=args.json)
    print(format_zero_shot(report))
    return 0
