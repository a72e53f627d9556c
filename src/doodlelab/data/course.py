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

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from doodlelab.errors import UserError
from doodlelab.fileio import sha256_stream

CLASSES: tuple[str, ...] = ("rabbit", "yoga", "hand", "snowman", "motorbike")
IMAGE_SIDE = 28
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE
ENV_VAR = "DOODLELAB_DATA"
DEFAULT_DIR = Path("data") / "quickdraw_subset_np"
CLASSES_FILE = "classes.json"


class DataError(UserError):
    """The data folder or one of its files is missing or malformed."""


@dataclass
class Split:
    """One split of the data: ``x`` float32 (N, 784) in [0, 1], ``y`` int64 (N,)."""

    x: np.ndarray
    y: np.ndarray
    checksums: dict[str, str] = field(default_factory=dict)
    classes: tuple[str, ...] = CLASSES  # names in label order

    def __len__(self) -> int:
        return int(self.y.shape[0])


def resolve_data_dir(data: str | Path | None) -> Path:
    """Return the data folder: ``--data``, else ``$DOODLELAB_DATA``, else ``./data/...``."""
    if data is not None:
        path = Path(data)
        source = "--data"
    elif os.environ.get(ENV_VAR):
        path = Path(os.environ[ENV_VAR])
        source = f"${ENV_VAR}"
    elif DEFAULT_DIR.is_dir():
        return DEFAULT_DIR
    else:
        raise DataError(
            f"no data folder given: pass --data DIR, set ${ENV_VAR}, or put the course's "
            f"quickdraw_subset_np folder at ./{DEFAULT_DIR}"
        )
    if not path.is_dir():
        raise DataError(f"data folder {path} (from {source}) does not exist or is not a folder")
    return path


def _load_array(path: Path) -> tuple[np.ndarray, str]:
    """Return the array of one .npy file and the SHA-256 of its bytes, opening the file once."""
    if not path.is_file():
        raise DataError(
            f"{path} is missing: the data folder needs {path.name} in the course layout "
            "(train_images.npy, train_labels.npy, test_images.npy, test_labels.npy)"
        )
    try:
        with open(path, "rb") as fh:
            digest = sha256_stream(fh)
            fh.seek(0)
            if fh.read(6) != b"\x93NUMPY":
                raise DataError(f"{path} is not a readable .npy file (no NumPy header); "
                                "save it with numpy.save")
            fh.seek(0)
            return np.load(fh, allow_pickle=False), digest
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataError(
                f"{path} holds pickled Python objects, which are refused for safety; "
                "save it as a plain numeric array with numpy.save"
            ) from None
        raise DataError(f"{path} is not a readable .npy file ({exc})") from None
    except PermissionError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror})") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npy file ({exc})") from None


def validate_images(arr: np.ndarray, name: str) -> np.ndarray:
    """Return images as float32 (N, 784) in [0, 1], or raise DataError naming ``name``."""
    if arr.ndim == 3 and arr.shape[1:] == (IMAGE_SIDE, IMAGE_SIDE):
        flat = arr.reshape(arr.shape[0], N_PIXELS)
    elif arr.ndim == 2 and arr.shape[1] == N_PIXELS:
        flat = arr
    else:
        raise DataError(
            f"{name} has shape {arr.shape}; expected (N, 28, 28) or (N, 784) grayscale images"
        )
    if flat.shape[0] == 0:
        raise DataError(f"{name} holds no images (N = 0)")
    if flat.dtype == np.uint8:
        return flat.astype(np.float32) / np.float32(255)
    if np.issubdtype(flat.dtype, np.integer):
        lo, hi = int(flat.min()), int(flat.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{name} has integer pixels in [{lo}, {hi}]; expected 0..255")
        return flat.astype(np.float32) / np.float32(255)
    if np.issubdtype(flat.dtype, np.floating):
        out = flat.astype(np.float32)
        if not np.isfinite(out).all():
            raise DataError(f"{name} contains NaN or infinite pixels")
        lo, hi = float(out.min()), float(out.max())
        if lo < 0.0 or hi > 1.0:
            raise DataError(
                f"{name} has float pixels in [{lo:g}, {hi:g}]; expected [0, 1] "
                "(or uint8 0..255)"
            )
        return out
    raise DataError(f"{name} has dtype {flat.dtype}; expected uint8 or float pixels")


def load_classes(data_dir: Path) -> tuple[str, ...]:
    """Return the class names of a folder in label order: its ``classes.json``, else the course's five."""
    path = Path(data_dir) / CLASSES_FILE
    if not path.exists():
        return CLASSES
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not readable JSON ({exc}); fix it or remove it") from None
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


def load_split(data_dir: Path, split: str) -> Split:
    """Return the validated ``{split}_images.npy`` / ``{split}_labels.npy`` of ``data_dir``, each opened once.

    ``x`` float32 (N, 784) in [0, 1], ``y`` int64 (N,), the files' SHA-256 and the class names.
    """
    classes = load_classes(data_dir)
    img_path = Path(data_dir) / f"{split}_images.npy"
    lab_path = Path(data_dir) / f"{split}_labels.npy"
    images, image_sum = _load_array(img_path)
    x = validate_images(images, str(img_path))
    labels, label_sum = _load_array(lab_path)
    y = validate_labels(labels, str(lab_path), x.shape[0], len(classes))
    return Split(x=x, y=y, checksums={img_path.name: image_sum, lab_path.name: label_sum}, classes=classes)
