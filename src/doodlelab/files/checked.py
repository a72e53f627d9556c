"""Every file doodlelab reads, checked before use: one reader per kind of file.

Writes live in :mod:`doodlelab.files.atomic`; this module is the other half. Each reader
raises :class:`~doodlelab.errors.UserError` (one line naming the file and what is
wrong) instead of letting numpy, zipfile or json fail with a traceback, and bounds
what it reads before allocating it:

- :func:`read_npz_checked` reads an ``.npz`` member by member, judging each one by its
  ``.npy`` header (shape, dtype, byte size, no pickled objects) against what the caller
  expects (usually derived from ``config.json``) before any array is read; NaN and
  infinite floats are refused.
- :func:`read_json_checked` reads a JSON file of bounded size and nesting depth and
  checks it against a small schema (:class:`Obj`, :class:`ListOf`, :class:`Choice`,
  :class:`Num`, Python types), naming the field that breaks it.
- :func:`open_bounded` opens a regular file (never ``/dev/zero`` or a pipe) of bounded size,
  for the streaming readers (word vectors, ndjson strokes).
- :func:`parse_json_line` parses one JSON text with bounded length and nesting depth.
"""

from __future__ import annotations

import json
import math
import os
import stat
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from doodlelab.errors import UserError

MAX_JSON_BYTES = 16 << 20  # config.json, metrics.json, classes.json, pipeline.json: far below this
MAX_JSON_DEPTH = 32  # the deepest file doodlelab writes nests 5 levels
MAX_NPZ_BYTES = 1 << 30  # per member, whatever the caller expects
MAX_NPY_BYTES = 8 << 30  # one data array (the course's train_images.npy is 3.9 MB)
MAX_MAPPED_NPY_BYTES = 1 << 40  # one memory-mapped training array: read row by row, never allocated whole


# ---------------------------------------------------------------------------------------------
# .npz archives


@dataclass(frozen=True)
class Member:
    """What one ``.npz`` member must be: a shape (None = any length on that axis) and a dtype kind.

    ``kind`` holds the numpy dtype kinds allowed: ``"f"`` float, ``"i"`` signed int, ``"U"``
    text (``"fiU"``: any of them); ``dtype``, when given, must match exactly (float32 weights).
    """

    shape: tuple[int | None, ...] | None  # None: any shape
    kind: str = "f"
    dtype: str | None = None
    finite: bool = True  # floats: refuse NaN and infinities

    @classmethod
    def like(cls, array: np.ndarray) -> Member:
        """Return the spec that an array of exactly ``array``'s shape and dtype meets."""
        return cls(tuple(array.shape), array.dtype.kind, array.dtype.str)


class _Refused(Exception):
    """A member breaks its spec; read_npz_checked adds the file and the fix."""


def _member_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype, int]:
    """Return (shape, dtype, offset of the data) from a member's .npy header, reading nothing else."""
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unknown .npy version {version}")
        return shape, dtype, fh.tell()


def _check_member(name: str, info: zipfile.ZipInfo, header: tuple, spec: Member, max_bytes: int) -> None:
    shape, dtype, offset = header
    if dtype.hasobject:
        raise _Refused(f"member {name} holds pickled Python objects, which are refused for safety")
    if spec.shape is not None and (len(shape) != len(spec.shape)
                                   or any(w is not None and w != s for w, s in zip(spec.shape, shape))):
        want = str(tuple("N" if w is None else w for w in spec.shape)).replace("'", "")
        raise _Refused(f"member {name} has shape {shape}, expected {want}")
    if dtype.kind not in spec.kind or (spec.dtype is not None and dtype.str != np.dtype(spec.dtype).str):
        want = (np.dtype(spec.dtype).name if spec.dtype
                else {"f": "float", "i": "int", "U": "text"}.get(spec.kind, spec.kind))
        raise _Refused(f"member {name} has dtype {dtype}, expected {want}")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > max_bytes:
        raise _Refused(f"member {name} claims {nbytes} bytes {shape}, above the limit of {max_bytes}")
    if info.file_size - offset != nbytes:
        raise _Refused(f"member {name} holds {info.file_size - offset} data bytes but its header claims "
                       f"{nbytes} {shape}: the file is truncated or corrupt")


def _read_members(zf: zipfile.ZipFile, expected: Mapping[str, Member] | Member,
                  max_bytes: int) -> dict[str, np.ndarray]:
    infos = {i.filename.removesuffix(".npy"): i for i in zf.infolist()}
    if isinstance(expected, Member):
        expected = {k: expected for k in infos}
    if not infos or sorted(infos) != sorted(expected):
        raise _Refused(f"holds members {sorted(infos)}, expected {sorted(expected)}")
    headers = {k: _member_header(zf, infos[k]) for k in expected}
    for k, spec in expected.items():
        _check_member(k, infos[k], headers[k], spec, max_bytes)
    out = {}
    for k, spec in expected.items():
        with zf.open(infos[k]) as fh:
            out[k] = np.lib.format.read_array(fh, allow_pickle=False)
        if spec.finite and out[k].dtype.kind == "f" and not np.isfinite(out[k]).all():
            raise _Refused(f"member {k} holds NaN or infinite values")
    return out


def read_npz_checked(path: str | Path, expected: Mapping[str, Member] | Member, *,
                     fix: str = "write it again", max_bytes: int = MAX_NPZ_BYTES) -> dict[str, np.ndarray]:
    """Return ``{name: array}`` of an .npz holding exactly the members of ``expected``, each checked.

    ``expected`` may also be one Member that every member (at least one) must meet.

    Every header is checked (shape, dtype, bytes <= ``max_bytes`` and equal to what the
    member holds, no pickles) before any array is read; then float members must be finite.
    Any problem, an empty, truncated or non-zip file included, is a UserError naming ``path``
    and ending with ``fix`` (what the user should do).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} is missing; {fix}")
    try:
        with zipfile.ZipFile(path) as zf:
            return _read_members(zf, expected, max_bytes)
    except _Refused as exc:
        raise UserError(f"{path}: {exc}; {fix}") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
        raise UserError(f"{path} is not a readable .npz archive ({reason}); {fix}") from None


def _npy_header(fh: BinaryIO, path: Path, max_bytes: int) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Return (shape, fortran order, dtype) of the ``.npy`` open as ``fh``, checked against its size.

    A header claiming more bytes than the file holds (or than ``max_bytes``) is refused
    before anything is allocated; ``fh`` is left just after the header.
    """
    magic = fh.read(6)
    if magic.startswith(b"PK\x03\x04"):
        raise UserError(f"{path} is an .npz archive; expected a single .npy array")
    if magic != b"\x93NUMPY":
        raise UserError(f"{path} is not a readable .npy file (no NumPy header); save it with numpy.save")
    fh.seek(0)
    try:
        version = np.lib.format.read_magic(fh)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(fh)
    except ValueError as exc:
        raise UserError(f"{path} is not a readable .npy file ({exc})") from None
    if dtype.hasobject:
        raise UserError(f"{path} holds pickled Python objects, which are refused for safety; "
                        "save it as a plain numeric array with numpy.save")
    claimed = math.prod(shape) * dtype.itemsize
    held = os.fstat(fh.fileno()).st_size - fh.tell()
    if claimed > max_bytes or claimed != held:
        raise UserError(f"{path} is not a readable .npy file: its header claims {claimed} bytes {shape} "
                        f"but it holds {held}; it is truncated or corrupt")
    return shape, fortran, dtype


def read_npy_from(fh: BinaryIO, path: Path, max_bytes: int = MAX_NPY_BYTES) -> np.ndarray:
    """Return the array of the ``.npy`` open as ``fh`` (at its start), its header checked (no pickles).

    The header is read first: a header claiming more bytes than the file holds (or than
    ``max_bytes``) is refused before anything is allocated; ``path`` names the file in errors.
    """
    _npy_header(fh, path, max_bytes)
    fh.seek(0)
    try:
        return np.lib.format.read_array(fh, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"{path} is not a readable .npy file ({exc})") from None


def map_npy_from(fh: BinaryIO, path: Path, max_bytes: int = MAX_MAPPED_NPY_BYTES) -> np.ndarray:
    """Return the ``.npy`` open as ``fh`` (at its start) memory-mapped read-only, checked as read_npy_from.

    Nothing is read but the header. The map carries ``source_fd``, a duplicate of ``fh``'s
    descriptor, so :class:`~doodlelab.data.images.ImageRows` reads rows from the file opened once.
    """
    shape, fortran, dtype = _npy_header(fh, path, max_bytes)
    if 0 in shape:
        return np.empty(shape, dtype=dtype)
    mapped = np.memmap(fh, dtype=dtype, mode="r", offset=fh.tell(), shape=shape,
                       order="F" if fortran else "C")
    mapped.source_fd = os.dup(fh.fileno())
    return mapped


# ---------------------------------------------------------------------------------------------
# JSON


@dataclass(frozen=True)
class ListOf:
    """A JSON list whose items all meet ``item``, with ``min_len <= len <= max_len``."""

    item: Any
    min_len: int = 0
    max_len: int = 1_000_000
    unique: bool = False


@dataclass(frozen=True)
class Obj:
    """A JSON object: ``fields`` name -> spec; ``required`` must be present; others allowed if ``extra``."""

    fields: Mapping[str, Any] = field(default_factory=dict)
    required: Sequence[str] = ()
    extra: bool = True


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of JSON values."""

    values: tuple[Any, ...]


@dataclass(frozen=True)
class Num:
    """A finite JSON number (not a bool, not 1e400) in [lo, hi]."""

    lo: float = -math.inf
    hi: float = math.inf


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               dict: "an object", list: "a list"}


def _bad(where: str, rule: str, value: Any) -> UserError:
    shown = repr(value)
    return UserError(f"{where} must be {rule} (got {shown[:60] + '...' if len(shown) > 60 else shown})")


def check_json(value: Any, spec: Any, where: str) -> Any:
    """Return ``value`` if it meets ``spec``; else a UserError naming ``where`` (``file: field.sub``)."""
    if isinstance(spec, Obj):
        if not isinstance(value, dict):
            raise _bad(where, "an object", value)
        for key in spec.required:
            if key not in value:
                raise UserError(f"{where} lacks the field {key!r}")
        for key, item in value.items():
            if key in spec.fields:
                check_json(item, spec.fields[key], f"{where}.{key}")
            elif not spec.extra:
                raise UserError(f"{where} has an unknown field {key!r}; known: {', '.join(spec.fields)}")
    elif isinstance(spec, ListOf):
        if not isinstance(value, list) or not spec.min_len <= len(value) <= spec.max_len:
            raise _bad(where, f"a list of {spec.min_len} to {spec.max_len} items", value)
        for i, item in enumerate(value):
            check_json(item, spec.item, f"{where}[{i}]")
        if spec.unique and len({json.dumps(v, sort_keys=True) for v in value}) != len(value):
            raise UserError(f"{where} names an item twice")
    elif isinstance(spec, Choice):
        if isinstance(value, (dict, list)) or value not in spec.values:
            raise _bad(where, "one of " + ", ".join(map(str, spec.values)), value)
    elif isinstance(spec, Num):
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or not spec.lo <= value <= spec.hi):
            raise _bad(where, f"a number in [{spec.lo:g}, {spec.hi:g}]", value)
    elif spec is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(where, "a number", value)
    elif spec is not None and (not isinstance(value, spec) or (spec is int and isinstance(value, bool))):
        raise _bad(where, _TYPE_NAMES.get(spec, getattr(spec, "__name__", str(spec))), value)
    return value


def _depth(text: str) -> int:
    """Return the deepest bracket nesting of ``text``; brackets inside strings count too (an upper bound)."""
    codes = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    step = (codes == ord("[")).astype(np.int64) + (codes == ord("{"))
    step -= (codes == ord("]")) + (codes == ord("}"))
    return int(np.cumsum(step).max(initial=0))


def parse_json_line(text: str, where: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Return the parsed JSON ``text``; a UserError naming ``where`` if it is invalid or nested too deep.

    NaN and Infinity are refused (they are not JSON). Numbers are parsed as Python does:
    a caller that needs floats checks their range (``1e400`` parses as inf).
    """
    if text.count("[") + text.count("{") > max_depth and _depth(text) > max_depth:
        raise UserError(f"{where}: JSON nested deeper than {max_depth} levels")

    def no_constant(name: str) -> None:
        raise ValueError(f"{name} is not a JSON number")

    try:
        return json.loads(text, parse_constant=no_constant)
    except json.JSONDecodeError as exc:
        at = f"line {exc.lineno} column {exc.colno}"
        raise UserError(f"{where}: not valid JSON ({exc.msg}, {at})") from None
    except (ValueError, RecursionError) as exc:
        raise UserError(f"{where}: not valid JSON ({exc})") from None


def read_json_checked(path: str | Path, spec: Any = None, *, fix: str = "fix it or write it again",
                      max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Return the JSON value in ``path`` after checking size, UTF-8, nesting depth and ``spec``.

    Every problem is one UserError naming ``path`` (and the field, for a schema failure)
    and ending with ``fix``.
    """
    path = Path(path)
    with open_bounded(path, max_bytes, "JSON file") as fh:
        data = fh.read(max_bytes + 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; {fix}") from None
    try:
        value = parse_json_line(text, str(path))
        return check_json(value, spec, str(path))
    except UserError as exc:
        raise UserError(f"{exc}; {fix}") from None


# ---------------------------------------------------------------------------------------------
# streamed files


def open_bounded(path: str | Path, max_bytes: int, what: str = "file") -> BinaryIO:
    """Return ``path`` opened for binary reading after checking it is a regular file of <= ``max_bytes``.

    Devices (``/dev/zero``), pipes and folders are refused before they are opened (opening a
    pipe would block), so a reader cannot run forever; a reader that streams should still
    stop at ``max_bytes`` (the file may grow).
    """
    path = Path(path)
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise UserError(f"{what} {path} is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"{what} {path} is not a regular file (a device or pipe); give a file")
        if st.st_size > max_bytes:
            raise UserError(f"{what} {path} is {st.st_size} bytes, above the limit of {max_bytes}")
        return open(path, "rb")  # noqa: SIM115 - returned to the caller
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be read ({exc.strerror or exc})") from None
