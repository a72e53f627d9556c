"""The train/validation split: seeded, stratified, saved as ``split.npz`` (:data:`SPLIT_FILE`) in a
run folder and in a results folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from doodlelab.errors import UserError
from doodlelab.files.atomic import write_npz

SPLIT_FILE = "split.npz"


def stratified_split(
    labels: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted ``(train_idx, val_idx)``: ``round(val_fraction * n_c)`` of each class c.

    Depends only on the labels, the fraction and the seed, so every model and backend
    trained with one seed on one data set sees the same split. Classes with at least
    two examples keep at least one on each side.
    """
    rng = np.random.default_rng([seed, 0x5EED])  # own stream, independent of training
    val = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = int(round(val_fraction * members.size))
        if members.size >= 2:
            k = min(max(k, 1), members.size - 1)
        val.append(rng.permutation(members)[:k])
    val_idx = np.sort(np.concatenate(val)).astype(np.int64)
    mask = np.ones(labels.shape[0], dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask).astype(np.int64), val_idx


def stratified_subset(idx: np.ndarray, labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Return at most ``n`` of ``idx`` (sorted), each class kept in its share of ``idx``.

    ``labels`` are the labels of the whole file (``labels[idx]`` those of ``idx``). With
    ``len(idx) <= n`` all of ``idx`` is returned. Otherwise class c keeps
    ``round(n * n_c / len(idx))`` members (rounded so the total is ``n``: largest remainders
    first), drawn from their own seeded stream, so a subset depends only on ``idx``, the
    labels, ``n`` and ``seed``.
    """
    idx = np.asarray(idx, np.int64)
    if idx.size <= n:
        return np.sort(idx)
    classes, counts = np.unique(labels[idx], return_counts=True)
    exact = n * counts / idx.size
    keep = np.floor(exact).astype(int)
    for c in np.argsort(-(exact - keep), kind="stable")[: n - keep.sum()]:
        keep[c] += 1
    rng = np.random.default_rng([seed, 0x5B5E7])  # own stream, independent of the split and training
    chosen = [rng.permutation(idx[labels[idx] == c])[:k] for c, k in zip(classes, keep)]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def save_split(path: Path, train_idx: np.ndarray, val_idx: np.ndarray) -> Path:
    """Atomically write the indices to ``path`` (keys ``train`` and ``val``)."""
    return write_npz(path, train=train_idx, val=val_idx)


def load_split_file(path: Path, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(train_idx, val_idx)`` int64 of a split file; with ``n``, check they partition range(n).

    Read through :func:`doodlelab.files.checked.read_npz_checked`: exactly the members ``train``
    and ``val``, 1-D integer arrays (of at most ``n`` entries together when ``n`` is given).
    """
    from doodlelab.files.checked import MAX_NPZ_BYTES, Member, read_npz_checked

    z = read_npz_checked(path, {"train": Member((None,), "i"), "val": Member((None,), "i")},
                         max_bytes=MAX_NPZ_BYTES if n is None else 8 * n,
                         fix="it is not a split file of these training images")
    train_idx, val_idx = z["train"], z["val"]
    if n is None:
        return train_idx.astype(np.int64), val_idx.astype(np.int64)
    both = np.concatenate([train_idx, val_idx])
    if both.size != n or not np.array_equal(np.sort(both), np.arange(n)):
        raise UserError(f"{path} does not partition the {n} training images; was it made for other data?")
    return train_idx.astype(np.int64), val_idx.astype(np.int64)
