"""``doodlelab fetch``: a course-layout folder sampled from the official class bitmaps.

:func:`build_course_folder` downloads (:mod:`doodlelab.data.download`, cached and
resumable) and samples disjoint train/test drawings from the cached files
(memory-mapped: only the chosen rows are read), then writes the course's four files
plus ``classes.json``.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from doodlelab.data.course import CLASSES, IMAGE_SIDE
from doodlelab.data.download import (
    MANIFEST,
    QUICKDRAW_CLASSES,
    bitmap_rows,
    check_class_names,
    class_url,
    download_class,
    resolve_base_url,
)
from doodlelab.errors import UserError
from doodlelab.fileio import sha256_file, write_bytes, write_json


def _check_count(flag: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UserError(f"{flag} must be a whole number >= 1 (got {value!r})")
    return int(value)


def _check_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder; choose another output folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(
            f"{out} already holds files; pass --overwrite to replace the course files in it, "
            "or choose a new or empty folder"
        )


def _write_folder(out: Path, arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> None:
    """Write every file into a hidden sibling folder, then move them into ``out``, manifest last."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
        try:
            for fname, arr in arrays.items():
                buf = io.BytesIO()
                np.save(buf, arr, allow_pickle=False)
                write_bytes(tmp / fname, buf.getbuffer())
            write_json(tmp / MANIFEST, manifest)
            out.mkdir(exist_ok=True)
            for fname in (*arrays, MANIFEST):  # classes.json last: it marks a complete folder
                os.replace(tmp / fname, out / fname)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        raise UserError(f"cannot write the course folder {out} ({exc.strerror or exc})") from None


def build_course_folder(
    classes: Iterable[str],
    out_dir: str | Path,
    per_class_train: int,
    per_class_test: int,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    base_url: str | None = None,
    *,
    overwrite: bool = False,
    allow_unknown: bool = False,
    timeout: float = 60.0,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Write a course-layout folder from the official class files; return what ``classes.json`` holds.

    Label k is ``classes[k]``. Images are uint8 (K * per_class, 28, 28), labels int64
    (K * per_class,). From one ``numpy.random.default_rng(seed)``: for each class in label
    order, ``per_class_train + per_class_test`` distinct rows (the first ones train, the rest
    test), then one permutation per split. Same seed and same class files: byte-identical
    folder. An existing non-empty ``out_dir`` is refused unless ``overwrite``, which replaces
    the five files and leaves anything else there alone. The course loader
    (:mod:`doodlelab.data.course`) reads the class names from ``classes.json``.
    """
    names = check_class_names(classes, allow_unknown)
    n_train = _check_count("per_class_train", per_class_train)
    n_test = _check_count("per_class_test", per_class_test)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"seed must be a whole number >= 0 (got {seed!r})")
    out = Path(out_dir)
    _check_out_dir(out, overwrite)
    base = resolve_base_url(base_url)
    if progress is None:
        progress = sys.stderr.isatty()
    files = _download_all(names, n_train, n_test, cache_dir, base, allow_unknown, timeout, progress)
    arrays, sources = _sample(files, n_train, n_test, seed, base, progress)
    manifest = {
        "classes": names,
        "seed": int(seed),
        "per_class": {"train": n_train, "test": n_test},
        "counts": {"train": n_train * len(names), "test": n_test * len(names)},
        "image_shape": [IMAGE_SIDE, IMAGE_SIDE],
        "source_url": base,
        "sources": sources,
    }
    _write_folder(out, arrays, manifest)
    return manifest


def _download_all(names: list[str], n_train: int, n_test: int, cache_dir: str | Path | None, base: str,
                  allow_unknown: bool, timeout: float, progress: bool) -> list[tuple[str, Path, int]]:
    """Return ``(name, cached file, drawings)`` per class, each holding ``n_train + n_test`` or more."""
    need = n_train + n_test
    files = []
    for name in names:
        path = download_class(name, cache_dir, base, allow_unknown=allow_unknown, timeout=timeout,
                              progress=progress)
        n = bitmap_rows(path)
        if n < need:
            raise UserError(
                f"class {name!r} has only {n} drawings ({path}), fewer than the {need} asked for "
                f"({n_train} train + {n_test} test per class); ask for fewer"
            )
        files.append((name, path, n))
    return files


def _sample(files: list[tuple[str, Path, int]], n_train: int, n_test: int, seed: int, base: str,
            progress: bool) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Return the four course arrays by file name, and where each class's drawings came from."""
    rng = np.random.default_rng(seed)
    images: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    labels: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    sources = []
    for label, (name, path, n) in enumerate(tqdm(files, desc="sample", unit="class",
                                                  disable=not progress, leave=False)):
        bitmaps = np.load(path, mmap_mode="r", allow_pickle=False)  # (n, 784) uint8, nothing read yet
        pick = rng.choice(n, size=n_train + n_test, replace=False)  # distinct: train, test disjoint
        for split, idx in (("train", pick[:n_train]), ("test", pick[n_train:])):
            rows = np.asarray(bitmaps[np.sort(idx)])  # sorted: one forward pass over the file
            images[split].append(rows.reshape(-1, IMAGE_SIDE, IMAGE_SIDE))
            labels[split].append(np.full(rows.shape[0], label, dtype=np.int64))
        del bitmaps
        sources.append({"label": label, "name": name, "url": class_url(name, base), "drawings": n,
                        "sha256": sha256_file(path)})
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        x = np.concatenate(images.pop(split))  # (K * per_class, 28, 28) uint8
        y = np.concatenate(labels.pop(split))  # (K * per_class,) int64
        order = rng.permutation(y.shape[0])
        arrays[f"{split}_images.npy"] = x[order]
        arrays[f"{split}_labels.npy"] = y[order]
    return arrays, sources


# -- command line ------------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``fetch`` to the ``doodlelab`` subcommands."""
    p = subparsers.add_parser("fetch", help="official Quick, Draw! bitmaps to a course-layout folder")
    p.add_argument("classes", nargs="*", metavar="CLASS",
                   help="class names in label order (default: rabbit yoga hand snowman motorbike)")
    p.add_argument("--list", action="store_true", help="print the 345 official class names and exit")
    p.add_argument("--out", type=Path, default=Path("data/quickdraw_subset_np"), metavar="DIR",
                   help="folder to write (default data/quickdraw_subset_np)")
    p.add_argument("--train", type=int, default=4000, metavar="N", help="training drawings per class")
    p.add_argument("--test", type=int, default=1000, metavar="N", help="test drawings per class")
    p.add_argument("--seed", type=int, default=0, help="which drawings are picked (default 0)")
    p.add_argument("--cache", type=Path, default=None, metavar="DIR",
                   help="where downloaded class files are kept (default ~/.cache/doodlelab/quickdraw)")
    p.add_argument("--url", default=None, metavar="BASE",
                   help="base URL of <class>.npy files (default $DOODLELAB_QUICKDRAW_URL, "
                        "else the official bucket)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SEC")
    p.add_argument("--download-only", action="store_true", help="only fill the cache")
    p.add_argument("--overwrite", action="store_true", help="replace the course files in --out")
    p.add_argument("--allow-unknown", action="store_true",
                   help="accept class names outside the official 345 (for other servers)")


def command(args: argparse.Namespace) -> int:
    """Run ``doodlelab fetch``; return 0."""
    if args.list:
        print("\n".join(QUICKDRAW_CLASSES))
        return 0
    classes = args.classes or list(CLASSES)
    if args.download_only:
        for name in check_class_names(classes, args.allow_unknown):
            path = download_class(name, args.cache, args.url, allow_unknown=args.allow_unknown,
                                  timeout=args.timeout)
            print(f"{name} -> {path}")
        return 0
    manifest = build_course_folder(
        classes, args.out, args.train, args.test, args.seed, args.cache, args.url,
        overwrite=args.overwrite, allow_unknown=args.allow_unknown, timeout=args.timeout)
    counts = manifest.get("counts", {})
    print(f"{len(manifest['classes'])} classes -> {args.out} ({counts}); see {args.out / MANIFEST}")
    return 0
