"""Load once, pass values: what a command reads from a course folder before anything trains.

:func:`prepare` reads and validates the training (and test) files once, draws the
train/validation split of ``cfg``, and, when a two-tower model will train, reads the
class names' word vectors. Commands call it once and hand the :class:`Prepared`
value down to training, the sweeps, gradcheck and zero-shot; nothing below a command
opens a data path again.

The arrays are whatever :func:`~doodlelab.data.course.load_split` returns (plain
``np.ndarray``-compatible values, so a ``np.memmap`` could flow through unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from doodlelab.config import Config
from doodlelab.data.course import Split, load_split, resolve_data_dir
from doodlelab.data.split import stratified_split


@dataclass(frozen=True)
class Prepared:
    """The validated data of one command: the course files, the split, checksums, class vectors."""

    data_dir: Path
    train: Split  # the whole training file: x (N, 784) float32, y (N,) int64
    test: Split | None  # None when the command must not read the test files (sweeps)
    train_idx: np.ndarray  # (N_train,) sorted indices into ``train``
    val_idx: np.ndarray  # (N_val,) sorted indices into ``train``
    seed: int  # the train.seed the split was drawn with
    val_fraction: float
    class_vectors: np.ndarray | None = None  # (K, D) float32 word vectors of the classes
    word_vectors: dict[str, Any] | None = None  # where they came from (provenance)

    @property
    def classes(self) -> tuple[str, ...]:
        """Return the class names in label order."""
        return self.train.classes

    @property
    def checksums(self) -> dict[str, str]:
        """Return the SHA-256 of every course file read, by file name."""
        return {**self.train.checksums, **(self.test.checksums if self.test is not None else {})}

    def split_for(self, seed: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(train_idx, val_idx)`` for ``seed`` and ``val_fraction``: this split if they match."""
        if (seed, val_fraction) == (self.seed, self.val_fraction):
            return self.train_idx, self.val_idx
        return stratified_split(self.train.y, val_fraction, seed)


def class_word_vectors(source: str, names: tuple[str, ...]) -> tuple[np.ndarray, dict[str, Any]]:
    """Return the word vectors (K, D) float32 of the class ``names`` from ``source``, and their provenance."""
    from doodlelab.data.wordvec import control_vectors, load_word_vectors

    control = control_vectors(source, names)
    if control is not None:
        return control
    words = load_word_vectors(source, words=names)
    return words.phrase_vectors(names), words.provenance


def prepare(cfg: Config, data_dir: str | Path | None, *, test: bool = True,
            word_vectors: bool = False) -> Prepared:
    """Return the validated data ``cfg`` trains on, read once (UserError on any bad file).

    ``data_dir`` None is looked for as :func:`~doodlelab.data.course.resolve_data_dir` does.
    ``test=False`` leaves the test files unread; ``word_vectors=True`` also reads the
    class names' vectors from ``cfg.two_tower.word_vectors`` (a two-tower model will train).
    """
    folder = resolve_data_dir(data_dir)
    train = load_split(folder, "train")
    test_split = load_split(folder, "test") if test else None
    train_idx, val_idx = stratified_split(train.y, cfg.data.val_fraction, cfg.train.seed)
    vectors, provenance = (class_word_vectors(cfg.two_tower.word_vectors, train.classes)
                           if word_vectors else (None, None))
    return Prepared(data_dir=folder, train=train, test=test_split, train_idx=train_idx,
                    val_idx=val_idx, seed=cfg.train.seed, val_fraction=cfg.data.val_fraction,
                    class_vectors=vectors, word_vectors=provenance)
