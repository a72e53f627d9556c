"""``doodlelab fetch``: a course-layout folder (the four .npy files and ``classes.json``) sampled
from the official class files.

Each class is sampled with :func:`doodlelab.data.official.ranged.sample_class` (Range requests: only
the kept drawings are transferred, plus less than one block a class), then split into
disjoint train and test drawings and shuffled, all from one seed.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from doodlelab.data.course import CLASSES, CLASSES_FILE, DEFAULT_DIR, SPLITS, image_file, label_file
from doodlelab.data.official.class_names import QUICKDRAW_CLASSES, check_class_names
from doodlelab.data.official.download import class_url, download_class, resolve_base_url
from doodlelab.data.official.ranged import ClassSample, sample_class
from doodlelab.errors import UserError
from doodlelab.files.atomic import write_bytes, write_json
from doodlelab.files.terminal import show_progress
from doodlelab.geometry import SHAPE


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
            write_json(tmp / CLASSES_FILE, manifest)
            out.mkdir(exist_ok=True)
            for fname in (*arrays, CLASSES_FILE):  # classes.json last: it marks a complete folder
                os.replace(tmp / fname, out / fname)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        raise UserError(f"cannot write the course folder {out} ({exc.strerror or exc})") from None


FETCH_JOBS = 4  # classes fetched at once: each waits on the network far more than on the CPU


def _samples(names: list[str], need: int, seed: int, cache_dir: str | Path | None, base: str,
             allow_unknown: bool, timeout: float, progress: bool, jobs: int) -> Iterator[ClassSample]:
    """Yield each class's sample in the order of ``names``, ``jobs`` classes fetched at a time."""
    def one(name: str) -> ClassSample:
        return sample_class(name, need, seed, cache_dir, base, allow_unknown=allow_unknown,
                            timeout=timeout, progress=progress and jobs == 1)  # one bar per class alone

    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="fetch")
    try:
        with tqdm(total=len(names), desc="fetch", unit="class", disable=not progress) as bar:
            for sample in pool.map(one, names):  # in order, whichever finishes first
                bar.update()
                yield sample
    finally:  # on an error, classes not started yet are not fetched
        pool.shutdown(wait=True, cancel_futures=True)


def _sample_all(names: list[str], n_train: int, n_test: int, seed: int, cache_dir: str | Path | None,
                base: str, allow_unknown: bool, timeout: float, progress: bool,
                jobs: int = FETCH_JOBS) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Return the four course arrays by file name, and where each class's drawings came from."""
    need = n_train + n_test
    rng = np.random.default_rng(seed)
    images: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    labels: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    sources = []
    fetched = _samples(names, need, seed, cache_dir, base, allow_unknown, timeout, progress, jobs)
    for label, (name, sample) in enumerate(zip(names, fetched)):
        pick = rng.choice(sample.pixels.shape[0], size=need, replace=False)  # distinct: train, test disjoint
        for split, idx in zip(SPLITS, (pick[:n_train], pick[n_train:])):
            images[split].append(sample.pixels[idx].reshape(-1, *SHAPE))
            labels[split].append(np.full(idx.size, label, dtype=np.int64))
        sources.append({"label": label, "name": name, "url": class_url(name, base), "drawings": sample.rows,
                        "rows_fetched": int(sample.pixels.shape[0]),
                        "sha256_rows_fetched": hashlib.sha256(sample.pixels).hexdigest()})
    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        x = np.concatenate(images.pop(split))  # (K * per_class, 28, 28) uint8
        y = np.concatenate(labels.pop(split))  # (K * per_class,) int64
        order = rng.permutation(y.shape[0])
        arrays[image_file(split)] = x[order]
        arrays[label_file(split)] = y[order]
    return arrays, sources


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
    jobs: int = FETCH_JOBS,
) -> dict[str, Any]:
    """Write a course-layout folder from the official class files; return what ``classes.json`` holds.

    Label k is ``classes[k]``. Images are uint8 (K * per_class, 28, 28), labels int64
    (K * per_class,). Each class's rows come from :func:`~doodlelab.data.official.ranged.sample_class`
    (seeded blocks); from one ``numpy.random.default_rng(seed)``, for each class in label
    order, ``per_class_train + per_class_test`` distinct rows of its sample (the first ones
    train, the rest test), then one permutation per split. Same seed and same class files:
    byte-identical folder, whether the server honours Range or not. An existing non-empty
    ``out_dir`` is refused unless ``overwrite``, which replaces the five files and leaves
    anything else there alone. ``jobs`` classes are fetched at a time (the folder does not
    depend on it).
    """
    names = check_class_names(classes, allow_unknown)
    jobs = _check_count("jobs", jobs)
    n_train = _check_count("per_class_train", per_class_train)
    n_test = _check_count("per_class_test", per_class_test)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"seed must be a whole number >= 0 (got {seed!r})")
    out = Path(out_dir)
    _check_out_dir(out, overwrite)
    base = resolve_base_url(base_url)
    progress = show_progress(progress)
    arrays, sources = _sample_all(names, n_train, n_test, seed, cache_dir, base, allow_unknown, timeout,
                                  progress, jobs)
    manifest = {
        "classes": names,
        "seed": int(seed),
        "per_class": {"train": n_train, "test": n_test},
        "counts": {"train": n_train * len(names), "test": n_test * len(names)},
        "image_shape": list(SHAPE),
        "source_url": base,
        "sources": sources,
    }
    _write_folder(out, arrays, manifest)
    return manifest


# -- command line ------------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``fetch`` to the ``doodlelab`` subcommands."""
    p = subparsers.add_parser("fetch", help="official Quick, Draw! bitmaps to a course-layout folder")
    p.add_argument("classes", nargs="*", metavar="CLASS",
                   help="class names in label order (default: rabbit yoga hand snowman motorbike)")
    p.add_argument("--list", action="store_true", help="print the 345 official class names and exit")
    p.add_argument("--all", action="store_true", help="every one of the 345 official classes")
    p.add_argument("--out", type=Path, default=DEFAULT_DIR, metavar="DIR",
                   help=f"folder to write (default {DEFAULT_DIR})")
    p.add_argument("--train", type=int, default=4000, metavar="N", help="training drawings per class")
    p.add_argument("--test", type=int, default=1000, metavar="N", help="test drawings per class")
    p.add_argument("--seed", type=int, default=0, help="which drawings are picked (default 0)")
    p.add_argument("--cache", type=Path, default=None, metavar="DIR",
                   help="where downloaded class files are kept (default ~/.cache/doodlelab/quickdraw)")
    p.add_argument("--url", default=None, metavar="BASE",
                   help="base URL of <class>.npy files (default $DOODLELAB_QUICKDRAW_URL, "
                        "else the official bucket)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SEC")
    p.add_argument("--jobs", type=int, default=FETCH_JOBS, metavar="N",
                   help=f"classes fetched at once (default {FETCH_JOBS}; the folder is the same for any N)")
    p.add_argument("--download-only", action="store_true", help="only fill the cache")
    p.add_argument("--overwrite", action="store_true", help="replace the course files in --out")
    p.add_argument("--allow-unknown", action="store_true",
                   help="accept class names outside the official 345 (for other servers)")


def command(args: argparse.Namespace) -> int:
    """Run ``doodlelab fetch``; return 0."""
    if args.list:
        print("\n".join(QUICKDRAW_CLASSES))
        return 0
    if args.all and args.classes:
        raise UserError("give class names or --all, not both")
    classes = list(QUICKDRAW_CLASSES) if args.all else args.classes or list(CLASSES)
    if args.download_only:
        for name in check_class_names(classes, args.allow_unknown):
            path = download_class(name, args.cache, args.url, allow_unknown=args.allow_unknown,
                                  timeout=args.timeout)
            print(f"{name} -> {path}")
        return 0
    manifest = build_course_folder(
        classes, args.out, args.train, args.test, args.seed, args.cache, args.url,
        overwrite=args.overwrite, allow_unknown=args.allow_unknown, timeout=args.timeout, jobs=args.jobs)
    counts = manifest.get("counts", {})
    print(f"{len(manifest['classes'])} classes -> {args.out} ({counts}); see {args.out / CLASSES_FILE}")
    return 0
