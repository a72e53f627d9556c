"""How far the numpy classifier and its torch twin drift apart over whole epochs, in float32 and float64.

The gradient check (:mod:`doodlelab.studies.gradcheck`) shows the two implementations agree
on the first steps. Over thousands of steps float32 rounding (a different order of the
same sums in two BLAS calls) makes two runs drift apart, and a drift could also hide a
real difference. This study trains both from the same initial weights on the very same
mini-batches (the fit loop's own, with its shuffling, augmentation, dropout masks and
schedule) for a few epochs, once in float32 and once in float64, and after every epoch
records how far the parameters are apart and on how many validation images the two
predictions differ. If the difference is rounding, float64 shrinks it by about nine
orders of magnitude; a real difference would not shrink.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from doodlelab.config import Config
from doodlelab.data.prepare import Prepared
from doodlelab.data.split import stratified_subset
from doodlelab.kinds import CLASSIFIER
from doodlelab.studies.gradcheck import DTYPES, _pair, compare_arrays
from doodlelab.tasks.streams import Streams
from doodlelab.training.fit import epoch_batches, schedule_from


def _epoch(core: Any, twin: Any, batches: Any, schedule: Any, dtype: type) -> None:
    for batch in batches:
        lr = schedule(batch.position)
        core.set_lr(lr)
        twin.set_lr(lr)
        x = batch.x.astype(dtype)
        core.train_batch(x, batch.y)
        twin.train_batch(x, batch.y)


def drift(cfg: Config, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
          dtype_name: str, epochs: int, n_classes: int) -> list[dict[str, Any]]:
    """Train the classifier in numpy and torch side by side in ``dtype_name``; return one row per epoch."""
    dtype = DTYPES[dtype_name]
    core, twin = _pair(cfg, dtype, n_classes, CLASSIFIER, None)
    streams = Streams.from_seed(cfg.train.seed)  # the batches both see, as fit draws them
    schedule = schedule_from(cfg)
    rows = []
    for epoch in range(epochs):
        batches = epoch_batches(x_train, y_train, cfg, epoch, streams.shuffle, streams.augment)
        _epoch(core, twin, batches, schedule, dtype)
        a, b = core.state_dict(), twin.state_dict()
        diffs = [compare_arrays(a[k], b[k]) for k in a]
        pa, pb = core.logits(x_val.astype(dtype)).argmax(1), twin.logits(x_val.astype(dtype)).argmax(1)
        rows.append({"epoch": epoch + 1, "max_abs_param_diff": max(d["max_abs_diff"] for d in diffs),
                     "max_rel_param_diff": max(d["max_rel_diff"] for d in diffs),
                     "val_disagreements": int((pa != pb).sum()), "val_images": int(y_val.size),
                     "val_accuracy_numpy": float((pa == y_val).mean()),
                     "val_accuracy_torch": float((pb == y_val).mean())})
    return rows


def run_drift(cfg: Config, data: Prepared, epochs: int = 5,
              train_images: int | None = None) -> dict[str, Any]:
    """Return ``{"epochs", "train_images", "float32": [rows], "float64": [rows]}`` (see :func:`drift`).

    ``train_images`` caps the training images (a stratified subset of the split's training part).
    """
    train = data.train
    idx = data.train_idx
    if train_images is not None:
        idx = stratified_subset(idx, train.y, train_images, cfg.train.seed)
    x_val, y_val = train.x[data.val_idx], train.y[data.val_idx]
    out: dict[str, Any] = {"epochs": epochs, "train_images": int(idx.size)}
    for name in ("float32", "float64"):
        out[name] = drift(cfg, train.x[idx], train.y[idx], x_val, y_val, name, epochs, len(data.classes))
    return out
