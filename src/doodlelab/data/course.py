"""Loading and validating a folder in the course's ``quickdraw_subset_np`` layout.

The folder holds ``train_images.npy`` / ``train_labels.npy`` and
``test_images.npy`` / ``test_labels.npy``. Images are ``(N, 28, 28)`` or ``(N, 784)``,
either uint8 in 0..255 or floats in [0, 1]; labels are ``(N,)`` integers 0..K-1. The
class names are the course's five (0 rabbit, 1 yoga, 2 hand, 3 snowman, 4 motorbike)
unless the folder holds a ``classes.json`` (as ``doodlelab fetch`` writes) whose
``classes`` list names them in label order.
Everything is checked before any training starts, and every problem becomes one
:class:`~doodlelab.errors.UserError` line that names the file and what to do.
Files are always opened with ``allow_pickle=False``: a pickled array can run code.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from doodlelab.data.images import ImageRows, chunks, to_float
from doodlelab.errors import UserError
from doodlelab.files.atomic import sha256_stream
from doodlelab.geometry import N_PIXELS, SHAPE

CLASSES: tuple[str, ...] = ("rabbit", "yoga", "hand", "snowman", "motorbike")
ENV_VAR = "DOODLELAB_DATA"
DEFAULT_DIR = Path("data") / "quickdraw_subset_np"
CLASSES_FILE = "classes.json"
SPLITS = ("train", "test")
# Where a command looks for the course folder, in order (resolve_data_dir; the --data help)
SEARCH_ORDER = f"--data DIR, else ${ENV_VAR}, else ./{DEFAULT_DIR}, else a fetched folder in the user cache"


def image_file(split: str) -> str:
    """Return the file name of a split's images: ``train_images.npy`` or ``test_images.npy``."""
    return f"{split}_images.npy"


def label_file(split: str) -> str:
    """Return the file name of a split's labels: ``train_labels.npy`` or ``test_labels.npy``."""
    return f"{split}_labels.npy"


class DataError(UserError):
    """The data folder or one of its files is missing or malformed."""


@dataclass
class Split:
    """One split of the data: ``x`` float32 (N, 784) in [0, 1] (or rows read on demand), ``y`` int64 (N,)."""

    x: np.ndarray | ImageRows
    y: np.ndarray
    checksums: dict[str, str] = field(default_factory=dict)
    classes: tuple[str, ...] = CLASSES  # names in label order

    def __len__(self) -> int:
        return int(self.y.shape[0])


def cached_course_dir() -> Path:
    """Return where a fetched course folder lives: ``$XDG_CACHE_HOME/doodlelab/quickdraw_subset_np``."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "doodlelab" / DEFAULT_DIR.name


def resolve_data_dir(data: str | Path | None) -> Path:
    """Return the data folder: ``--data``, else ``$DOODLELAB_DATA``, else ``./data/...``, else the fetched.

    The fetched one is the user-cache course folder that ``doodlelab run`` / ``train`` build
    when nothing else is found (:mod:`doodlelab.data.official.autofetch`); it counts once complete.
    """
    if data is not None:
        path = Path(data)
        source = "--data"
    elif os.environ.get(ENV_VAR):
        path = Path(os.environ[ENV_VAR])
        source = f"${ENV_VAR}"
    elif DEFAULT_DIR.is_dir():
        return DEFAULT_DIR
    elif (cached_course_dir() / CLASSES_FILE).is_file():  # classes.json is written last
        return cached_course_dir()
    else:
        raise DataError(
            f"no data folder given: pass --data DIR, set ${ENV_VAR}, or put the course's "
            f"quickdraw_subset_np folder at ./{DEFAULT_DIR}"
        )
    if not path.is_dir():
        raise DataError(f"data folder {path} (from {source}) does not exist or is not a folder")
    return path


def _load_array(path: Path, mmap: bool = False) -> tuple[np.ndarray, str]:
    """Return the array of one .npy file and the SHA-256 of its bytes, opening the file once.

    The file is read through :func:`doodlelab.files.checked.read_npy_from`: its header must
    match its size (no 37 GiB allocation for a 16-byte file) and hold no pickles. With
    ``mmap`` the array is memory-mapped from that open file by
    :func:`~doodlelab.files.checked.map_npy_from` (same checks; the descriptor stays open for
    :class:`~doodlelab.data.images.ImageRows` to read rows from).
    """
    from doodlelab.files.checked import (
        MAX_MAPPED_NPY_BYTES,
        MAX_NPY_BYTES,
        map_npy_from,
        open_bounded,
        read_npy_from,
    )

    if not path.is_file():
        raise DataError(
            f"{path} is missing: the data folder needs {path.name} in the course layout "
            f"({', '.join(f(s) for s in SPLITS for f in (image_file, label_file))})"
        )
    try:
        with open_bounded(path, MAX_MAPPED_NPY_BYTES if mmap else MAX_NPY_BYTES, "data file") as fh:
            digest = sha256_stream(fh)
            fh.seek(0)
            return (map_npy_from(fh, path) if mmap else read_npy_from(fh, path)), digest
    except DataError:
        raise
    except UserError as exc:
        raise DataError(str(exc)) from None


def _flat_images(arr: np.ndarray, name: str) -> np.ndarray:
    """Return ``arr`` viewed as (N, 784), or raise DataError on a wrong shape or no images."""
    if arr.ndim == 3 and arr.shape[1:] == SHAPE:
        flat = arr.reshape(arr.shape[0], N_PIXELS)
    elif arr.ndim == 2 and arr.shape[1] == N_PIXELS:
        flat = arr
    else:
        raise DataError(
            f"{name} has shape {arr.shape}; expected (N, {SHAPE[0]}, {SHAPE[1]}) or (N, {N_PIXELS}) "
            "grayscale images"
        )
    if flat.shape[0] == 0:
        raise DataError(f"{name} holds no images (N = 0)")
    return flat


def _check_pixels(block: np.ndarray, name: str) -> None:
    """Raise DataError unless the pixels of ``block`` are uint8, integers 0..255 or floats in [0, 1]."""
    if block.dtype == np.uint8 or block.size == 0:
        return
    if np.issubdtype(block.dtype, np.integer):
        lo, hi = int(block.min()), int(block.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{name} has integer pixels in [{lo}, {hi}]; expected 0..255")
    elif np.issubdtype(block.dtype, np.floating):
        out = block.astype(np.float32)
        if not np.isfinite(out).all():
            raise DataError(f"{name} contains NaN or infinite pixels")
        lo, hi = float(out.min()), float(out.max())
        if lo < 0.0 or hi > 1.0:
            raise DataError(
                f"{name} has float pixels in [{lo:g}, {hi:g}]; expected [0, 1] "
                "(or uint8 0..255)"
            )
    else:
        raise DataError(f"{name} has dtype {block.dtype}; expected uint8 or float pixels")


def validate_images(arr: np.ndarray, name: str) -> np.ndarray:
    """Return images as float32 (N, 784) in [0, 1], or raise DataError naming ``name``."""
    flat = _flat_images(arr, name)
    _check_pixels(flat, name)
    return to_float(flat)


def validate_image_file(arr: np.ndarray, name: str) -> ImageRows:
    """Return a memory-mapped image array as :class:`ImageRows`, checked chunk by chunk (never whole)."""
    _check_pixels(arr[:0], name)  # the dtype, before any pixel is read
    flat = _flat_images(arr, name)
    if flat.dtype != np.uint8:
        for block in chunks(flat):
            _check_pixels(block, name)
    return ImageRows(arr)


def load_classes(data_dir: Path) -> tuple[str, ...]:
    """Return the class names of a folder in label order: its ``classes.json``, else the course's five."""
    path = Path(data_dir) / CLASSES_FILE
    if not path.exists():
        return CLASSES
    from doodlelab.files.checked import read_json_checked

    try:
        names = read_json_checked(path, fix="fix it or remove it")
    except UserError as exc:
        raise DataError(str(exc)) from None
    if isinstance(names, dict):
        names = names.get("classes")
    if (not isinstance(names, list) or len(names) < 2
            or not all(isinstance(n, str) and n.strip() for n in names)):
        raise DataError(f"{path} must hold a list of at least two class names "
                        '(or {"classes": [...]}) in label order')
    if len(set(names)) != len(names):
        raise DataError(f"{path} names a class twice")
    return tuple(names)


def validate_labels(arr: np.ndarray, name: str, n_images: int, n_classes: int = len(CLASSES)) -> np.ndarray:
    """Return labels as int64 (N,) in 0..n_classes-1, or raise DataError naming ``name``."""
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"{name} has shape {arr.shape}; expected (N,) class indices")
    if arr.shape[0] != n_images:
        raise DataError(
            f"{name} has {arr.shape[0]} labels but the matching images file has {n_images} images"
        )
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise DataError(f"{name} contains NaN or infinite labels")
        if not (arr == np.round(arr)).all():
            raise DataError(f"{name} has non-integer labels; expected class indices 0..{n_classes - 1}")
    elif not np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        raise DataError(f"{name} has dtype {arr.dtype}; expected integer class indices")
    labels = arr.astype(np.int64)
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        raise DataError(
            f"{name} has labels outside 0..{n_classes - 1} "
            f"(e.g. {labels[bad][0]} at index {int(np.flatnonzero(bad)[0])})"
        )
    return labels


def load_split(data_dir: Path, split: str, lazy: bool | None = None) -> Split:
    """Return the validated ``{split}_images.npy`` / ``{split}_labels.npy`` of ``data_dir``, each opened once.

    ``x`` float32 (N, 784) in [0, 1], ``y`` int64 (N,), the files' SHA-256 and the class names.
    With ``lazy`` (the default for the training split) the images are memory-mapped and
    ``x`` is an :class:`~doodlelab.data.images.ImageRows` that reads rows on demand.
    """
    lazy = split == "train" if lazy is None else lazy
    classes = load_classes(data_dir)
    img_path = Path(data_dir) / image_file(split)
    lab_path = Path(data_dir) / label_file(split)
    images, image_sum = _load_array(img_path, mmap=lazy)
    x = validate_image_file(images, str(img_path)) if lazy else validate_images(images, str(img_path))
    labels, label_sum = _load_array(lab_path)
    y = validate_labels(labels, str(lab_path), x.shape[0], len(classes))
    return Split(x=x, y=y, checksums={img_path.name: image_sum, lab_path.name: label_sum}, classes=classes)


def add_data_arg(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """Add ``--data DIR``, the course folder, to a command's parser (``help`` replaces the default)."""
    p.add_argument("--data", metavar="DIR", help=help or f"course folder (looked for as: {SEARCH_ORDER})")
