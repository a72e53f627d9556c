"""Build a course folder of the assignment's size (20,000 train / 5,000 test) from a smaller one.

    python benchmarks/make_assignment_size.py OUT [--source DIR] [--train 20000] [--test 5000] [--seed 0]

The course's own folder holds 20,000 training and 5,000 test images; the development
stand-in holds 5,000 and 1,119. Timings of the main job at the assignment's size need a
folder of that size, so this script grows the stand-in: every split keeps each of its
images once and fills the rest with copies moved by 1 or 2 whole pixels (one of the 24
moves with ``max(|rows|, |columns|)`` in {1, 2}; pixels entering from outside are black),
class by class, so every class gets the same number of images (the first classes take
one more when the total does not divide). A copy never repeats a move of the same image
until all 24 are used. Training images are built only from training images and test
images only from test images, so train and test still share no drawing. The result is
in the course layout (``uint8 (N, 28, 28)`` images, ``int64 (N,)`` labels), shuffled
with ``--seed``, and the same source and seed give the same bytes.

``--source`` defaults to ``$DOODLELAB_DATA``. ``OUT`` must not exist or be empty (or
pass ``--overwrite``). The four files are written beside each other under temporary
names and renamed at the end, so an interrupted run leaves no folder that looks finished.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from doodlelab.data.augment import shift_images

SIDE = 28
FILES = ("train_images.npy", "train_labels.npy", "test_images.npy", "test_labels.npy")
# Every whole-pixel move of 1 or 2 pixels: (rows down, columns right), 24 of them.
MOVES = np.array([(r, c) for r in range(-2, 3) for c in range(-2, 3) if max(abs(r), abs(c)) >= 1])


def per_class_counts(total: int, n_classes: int) -> np.ndarray:
    """Return how many images each class gets: ``total // K`` each, the first ``total % K`` one more."""
    counts = np.full(n_classes, total // n_classes, dtype=np.int64)
    counts[: total % n_classes] += 1
    return counts


def grow_class(images: np.ndarray, want: int, rng: np.random.Generator) -> np.ndarray:
    """Return ``want`` uint8 images (want, 28, 28) of one class: each original once, then moved copies.

    ``images`` (n, 28, 28). Copy pass k (k >= 1) gives every original its k-th move of
    its own shuffled order of :data:`MOVES`; the last pass takes a random subset of the
    originals. With ``want <= n`` a random subset of the originals is returned unmoved.
    """
    n = images.shape[0]
    if want <= n:
        return images[np.sort(rng.choice(n, want, replace=False))]
    passes = -(-want // n) - 1  # copy passes after the originals
    if passes > len(MOVES):
        raise SystemExit(f"cannot build {want} images from {n}: at most {len(MOVES) + 1} per image")
    orders = np.argsort(rng.random((n, len(MOVES))), axis=1)  # each image's own order of moves
    out = [images]
    for k in range(passes):
        left = want - n * (k + 1)
        rows = np.arange(n) if left >= n else np.sort(rng.choice(n, left, replace=False))
        move = MOVES[orders[rows, k]]
        flat = images[rows].reshape(rows.size, SIDE * SIDE)
        out.append(shift_images(flat, move[:, 0], move[:, 1]).reshape(rows.size, SIDE, SIDE))
    return np.concatenate(out)


def grow_split(images: np.ndarray, labels: np.ndarray, total: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return ``total`` class-balanced images (total, 28, 28) uint8 and labels (total,) int64, shuffled."""
    classes = np.unique(labels)
    xs, ys = [], []
    for c, want in zip(classes, per_class_counts(total, classes.size)):
        xs.append(grow_class(images[labels == c], int(want), rng))
        ys.append(np.full(int(want), c, dtype=np.int64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    order = rng.permutation(total)
    return np.ascontiguousarray(x[order]), y[order]


def load_source(source: Path) -> dict[str, np.ndarray]:
    """Return the four arrays of a course folder, images as uint8 (N, 28, 28)."""
    arrays = {}
    for name in FILES:
        path = source / name
        if not path.is_file():
            raise SystemExit(f"{path} is missing: --source must be a course folder ({', '.join(FILES)})")
        arrays[name] = np.load(path, allow_pickle=False)
    for split in ("train", "test"):
        x = arrays[f"{split}_images.npy"]
        if x.dtype != np.uint8:
            raise SystemExit(f"{source / f'{split}_images.npy'} is {x.dtype}: this script needs uint8 0..255")
        arrays[f"{split}_images.npy"] = x.reshape(x.shape[0], SIDE, SIDE)
        arrays[f"{split}_labels.npy"] = arrays[f"{split}_labels.npy"].astype(np.int64)
    return arrays


def write_folder(out: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the four arrays into ``out`` under temporary names, then rename them into place."""
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        with open(out / f".{name}.partial", "wb") as fh:
            np.save(fh, arrays[name])
    for name in FILES:
        os.replace(out / f".{name}.partial", out / name)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="folder to write (must not exist or be empty)")
    p.add_argument("--source", type=Path, default=os.environ.get("DOODLELAB_DATA"),
                   help="course folder to grow (default: $DOODLELAB_DATA)")
    p.add_argument("--train", type=int, default=20_000, help="training images (default 20000)")
    p.add_argument("--test", type=int, default=5_000, help="test images (default 5000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the moves, subsets and order (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace the files of an existing folder")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.source is None:
        raise SystemExit("no source folder: pass --source DIR or set $DOODLELAB_DATA")
    if args.train < 1 or args.test < 1:
        raise SystemExit("--train and --test must be at least 1")
    if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:
        raise SystemExit(f"{args.out} is not empty: choose a new folder or pass --overwrite")
    src = load_source(args.source)
    rng = np.random.default_rng(args.seed)
    out = {}
    for split, total in (("train", args.train), ("test", args.test)):
        x, y = grow_split(src[f"{split}_images.npy"], src[f"{split}_labels.npy"], total, rng)
        out[f"{split}_images.npy"], out[f"{split}_labels.npy"] = x, y
        print(f"{split}: {src[f'{split}_labels.npy'].size} -> {total} images, per class "
              f"{np.bincount(y).tolist()}")
    write_folder(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
