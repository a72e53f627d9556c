"""Downloading whole official Quick, Draw! class files into a cache folder, bounded and locked.

Google publishes one file per class, ``<base>/<class name>.npy``: a uint8 ``(N, 784)``
array of 28x28 drawings, N about 100k-300k (100-250 MB a class). :func:`download_class`
streams one into a cache folder as ``<name>.npy.part`` (resumed with an HTTP Range
request when the server allows it), checks its ``.npy`` header without unpickling
anything, and renames it to ``<name>.npy`` only once it is complete and valid: a file
under its final name is always whole. A download stops at :func:`max_class_bytes`
whatever the server claims, and one cache entry is written by one process at a time
(a lock file beside it). Sampling a few rows without the whole file is
:mod:`doodlelab.data.official.ranged`; building a course folder is :mod:`doodlelab.data.official.fetch`.

HTTP here uses the standard library (urllib, which honours the usual proxy variables).
A resumed download is not matched against a changed file on the server (no ETag): the
official files have not changed since 2017, and the header/size check catches a file
whose length changed.
"""

from __future__ import annotations

import http.client
import io
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from doodlelab import __version__
from doodlelab.data.official.class_names import (  # noqa: F401  (re-exported: the names live there)
    LIST_HINT,
    QUICKDRAW_CLASSES,
    check_class_names,
)
from doodlelab.errors import UserError
from doodlelab.files.terminal import show_progress
from doodlelab.geometry import N_PIXELS

BASE_URL = "https://storage.googleapis.com/quickdraw_dataset/full/numpy_bitmap"
URL_ENV_VAR = "DOODLELAB_QUICKDRAW_URL"
MAX_BYTES_ENV_VAR = "DOODLELAB_MAX_CLASS_MB"
# The largest official class file is about 270 MB; nothing beyond this is written.
DEFAULT_MAX_CLASS_BYTES = 320 * 2**20
LOCK_WAIT_SECONDS = 3600.0  # how long a fetch waits for another process fetching the same class
HEADER_BYTES = 4096  # a (N, 784) uint8 .npy header takes 128 bytes; this bounds a malformed one

_MAGIC = b"\x93NUMPY"
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(UserError):
    """A class file could not be fetched, or the server sent something that is not one."""


class NotAClassFile(Exception):
    """Why a file is not a Quick, Draw! class array (turned into a DownloadError by callers)."""


def _one_line(obj: object) -> str:
    return " ".join(str(obj).split())


def default_cache_dir() -> Path:
    """Return ``$XDG_CACHE_HOME/doodlelab/quickdraw`` (``~/.cache/...`` when unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "doodlelab" / "quickdraw"


def resolve_base_url(base_url: str | None = None) -> str:
    """Return the base URL: ``base_url``, else ``$DOODLELAB_QUICKDRAW_URL``, else the official one."""
    if base_url is not None:
        url, source = base_url, "the base URL"
    elif os.environ.get(URL_ENV_VAR):
        url, source = os.environ[URL_ENV_VAR], f"${URL_ENV_VAR}"
    else:
        url, source = BASE_URL, "the base URL"
    url = url.strip().rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"{source} {url!r} is not an http:// or https:// address")
    return url


def class_url(name: str, base_url: str | None = None) -> str:
    """Return the URL of one class file, ``<base>/<URL-quoted name>.npy``."""
    return f"{resolve_base_url(base_url)}/{urllib.parse.quote(name)}.npy"


def parse_header(head: bytes) -> tuple[int, int]:
    """Return ``(N, data offset)`` from the first bytes of a uint8 (N, 784) C-order .npy file.

    Raises NotAClassFile for anything else (never unpickles: the header is a literal dict).
    """
    if head[: len(_MAGIC)] != _MAGIC:
        raise NotAClassFile("it has no NumPy header (not an .npy file)")
    version = tuple(head[6:8])
    if version not in ((1, 0), (2, 0)):
        raise NotAClassFile(f"it uses .npy format version {version}; expected (1, 0) or (2, 0)")
    read_header = {1: np.lib.format.read_array_header_1_0, 2: np.lib.format.read_array_header_2_0}
    fh = io.BytesIO(head)
    try:
        np.lib.format.read_magic(fh)
        shape, fortran, dtype = read_header[version[0]](fh)  # literal_eval of a dict: never unpickles
    except Exception as exc:  # on garbage numpy raises ValueError, SyntaxError, tokenize.TokenError...
        raise NotAClassFile(f"its .npy header is malformed ({type(exc).__name__})") from None
    if dtype.hasobject:
        raise NotAClassFile("it holds pickled Python objects, which are refused for safety")
    if dtype != np.uint8:
        raise NotAClassFile(f"its dtype is {dtype}; expected uint8 pixels")
    if len(shape) != 2 or shape[1] != N_PIXELS:
        raise NotAClassFile(f"its shape is {shape}; expected (N, {N_PIXELS}) flattened 28x28 bitmaps")
    if fortran:
        raise NotAClassFile("it is stored in Fortran order; expected C order (numpy.save's default)")
    if shape[0] == 0:
        raise NotAClassFile("it holds no drawings (N = 0)")
    return int(shape[0]), fh.tell()


def check_size(rows: int, offset: int, size: int) -> None:
    """Raise NotAClassFile unless ``size`` bytes is exactly ``offset`` header bytes plus ``rows`` rows."""
    expected = offset + rows * N_PIXELS
    if size < expected:
        raise NotAClassFile(f"it is truncated ({size} of {expected} bytes)")
    if size > expected:
        raise NotAClassFile(f"it has {size - expected} unexpected bytes after the array")


def bitmap_rows(path: Path) -> int:
    """Return N for a uint8 (N, 784) C-order .npy file of exactly the right size, else NotAClassFile."""
    with open(path, "rb") as fh:
        rows, offset = parse_header(fh.read(HEADER_BYTES))
    check_size(rows, offset, path.stat().st_size)
    return rows


def max_class_bytes() -> int:
    """Return the most bytes one class file may have: ``$DOODLELAB_MAX_CLASS_MB`` MiB, else 320 MiB."""
    raw = os.environ.get(MAX_BYTES_ENV_VAR, "").strip()
    if not raw:
        return DEFAULT_MAX_CLASS_BYTES
    try:
        mib = float(raw)
    except ValueError:
        mib = -1.0
    if not mib > 0:
        raise UserError(f"${MAX_BYTES_ENV_VAR} must be a positive number of MiB (got {raw!r})")
    return int(mib * 2**20)


@contextmanager
def cache_entry_lock(cache: Path, name: str, timeout: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """Hold ``<cache>/.locks/<name>.lock`` for the block: one process fetches one class at a time.

    The lock is the kernel's (``flock``), so a killed holder never leaves a stale lock. A
    second process waits (saying so on stderr) up to ``timeout`` seconds, then gives up.
    """
    (cache / ".locks").mkdir(exist_ok=True)
    lock = FileLock(str(cache / ".locks" / f"{name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"doodlelab: waiting for another process fetching {name!r} into {cache}", file=sys.stderr)
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise DownloadError(
                f"another process has been fetching {name!r} into {cache} for over {timeout:g} s "
                f"({lock.lock_file}); let it finish or stop it, then run again"
            ) from None
    try:
        yield
    finally:
        lock.release()


def not_a_class_file(url: str, why: object) -> DownloadError:
    return DownloadError(
        f"{url} is not a Quick, Draw! class file: {why}; nothing was kept (check the base URL or "
        f"${URL_ENV_VAR})"
    )


def http_error(url: str, name: str, status: int, reason: object) -> DownloadError:
    """Return the one-line error of an HTTP error status (404: no such class)."""
    if status == 404:
        return DownloadError(f"no class named {name!r} on the server ({url} answered 404 Not Found); "
                             f"{LIST_HINT}")
    return DownloadError(f"{url} answered HTTP {status} {_one_line(reason)}; "
                         "try again later or check the base URL")


def timed_out(url: str, timeout: float) -> DownloadError:
    """Return the one-line error of a server that did not answer in time."""
    return DownloadError(f"{url} did not answer within {timeout:g} s; try again later")


def _request(url: str, name: str, start: int, timeout: float) -> http.client.HTTPResponse | None:
    """Open ``url`` (from byte ``start`` when > 0); return None when the server answers 416."""
    headers = {"User-Agent": f"doodlelab/{__version__}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and start:
            return None
        raise http_error(url, name, exc.code, exc.reason) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise timed_out(url, timeout) from None
        reason = getattr(exc.reason, "strerror", None) or exc.reason
        raise DownloadError(
            f"cannot reach {url} ({_one_line(reason)}); check the network connection or the base URL"
        ) from None
    except TimeoutError:
        raise timed_out(url, timeout) from None
    except (OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"cannot download {url} ({_one_line(exc) or type(exc).__name__})") from None


def _read(resp: http.client.HTTPResponse, n: int, url: str, done: int) -> bytes:
    try:
        return resp.read(n)
    except (OSError, http.client.HTTPException) as exc:
        why = _one_line(exc) or type(exc).__name__
        raise DownloadError(
            f"download of {url} stopped after {done} bytes ({why}); run the command again to resume"
        ) from None


def _valid_prefix(part: Path) -> bool:
    """Return True when ``part`` starts like an .npy file (or is too short to tell): worth resuming."""
    try:
        with open(part, "rb") as fh:
            head = fh.read(len(_MAGIC))
    except OSError:
        return False
    return head == _MAGIC[: len(head)]


def _open_resumable(url: str, part: Path, name: str, timeout: float) -> tuple[http.client.HTTPResponse, int]:
    """Return (response, first byte it carries): resuming a valid ``part`` when the server allows it."""
    start = part.stat().st_size if part.is_file() else 0
    if start and not _valid_prefix(part):
        part.unlink()  # not the start of a class file: nothing worth keeping
        start = 0
    resp = _request(url, name, start, timeout)
    if resp is None:  # 416: nothing after `start`; the caller checks whether the .part is whole
        return _request(url, name, 0, timeout), 0  # type: ignore[return-value]
    if resp.status == 206 and start:
        match = CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
        if not match or int(match[1]) != start:
            resp.close()
            raise DownloadError(
                f"{url} answered the resume request with the wrong range "
                f"({resp.headers.get('Content-Range')!r}); the partial file was kept, run again"
            )
        return resp, start
    if resp.status == 200:
        return resp, 0  # no Range support (or no Range asked): the whole file follows
    resp.close()
    raise DownloadError(f"{url} answered HTTP {resp.status}, expected 200; check the base URL")


def _expected_total(resp: http.client.HTTPResponse, start: int) -> int | None:
    """Return the file size the server announces (Content-Range total, else start + Content-Length)."""
    match = CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
    if match and match[3] != "*":
        return int(match[3])
    length = resp.headers.get("Content-Length", "")
    return start + int(length) if length.isdigit() else None


def _stream(resp: http.client.HTTPResponse, target: Path, start: int, limit: int, url: str,
            name: str, chunk_size: int, progress: bool) -> int:
    """Append the body to ``target`` (truncated first when ``start`` is 0); return the file's size."""
    total = _expected_total(resp, start)
    received = 0
    with open(target, "ab" if start else "wb") as fh, tqdm(
        total=total, initial=start, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
        disable=not progress, leave=False,
    ) as bar:
        while block := _read(resp, chunk_size, url, start + received):
            if not start and not received and block[: len(_MAGIC)] != _MAGIC[: len(block)]:
                raise NotAClassFile("it has no NumPy header (not an .npy file)")  # fail before 200 MB
            if start + received + len(block) > limit:
                raise NotAClassFile(f"it is larger than {limit} bytes, the most a class file may be "
                                    f"(${MAX_BYTES_ENV_VAR} sets it in MiB)")
            fh.write(block)
            received += len(block)
            bar.update(len(block))
        fh.flush()
        os.fsync(fh.fileno())
    if total is not None and start + received < total:
        raise DownloadError(
            f"download of {url} was cut off after {start + received} of {total} bytes; "
            "run the command again to resume"
        )
    return start + received


def _fetch(url: str, part: Path, name: str, timeout: float, chunk_size: int, progress: bool) -> None:
    """Stream ``url`` into ``part``, resuming from the bytes already there when the server allows it.

    At most :func:`max_class_bytes` bytes are ever written. A restart from zero (a server
    that ignores Range) goes to a sibling file first, so a failed restart never shortens
    the valid progress already in ``part``.
    """
    limit = max_class_bytes()
    had = part.stat().st_size if part.is_file() else 0
    if had:
        try:
            bitmap_rows(part)
            return  # a whole file that was never renamed (e.g. killed just before)
        except NotAClassFile:
            pass
    resp, start = _open_resumable(url, part, name, timeout)
    target = part if start or not part.is_file() else part.with_name(part.name + ".restart")
    total = _expected_total(resp, start)
    try:
        with resp:
            if total is not None and total > limit:
                raise NotAClassFile(f"the server announces {total} bytes, more than the {limit} a class "
                                    f"file may have (${MAX_BYTES_ENV_VAR} sets the limit in MiB)")
            _stream(resp, target, start, limit, url, name, chunk_size, progress)
    except NotAClassFile as exc:
        target.unlink(missing_ok=True)
        raise not_a_class_file(url, exc) from None
    except DownloadError:
        if target != part and target.is_file():
            _keep_longer(target, part)
        raise
    except OSError as exc:  # writing failed (reading errors arrive as DownloadError)
        raise DownloadError(f"cannot write {target} ({exc.strerror or exc}); free some space or "
                            "choose another cache folder") from None
    if target != part:
        os.replace(target, part)


def _keep_longer(candidate: Path, part: Path) -> None:
    """Keep whichever of two prefixes of one file is longer under ``part``'s name."""
    if candidate.stat().st_size > part.stat().st_size:
        os.replace(candidate, part)
    else:
        candidate.unlink()


def download_class(
    name: str,
    cache_dir: str | Path | None = None,
    base_url: str | None = None,
    *,
    allow_unknown: bool = False,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
    progress: bool | None = None,
) -> Path:
    """Return ``<cache_dir>/<name>.npy`` (uint8 (N, 784)), downloading it unless already cached.

    ``cache_dir=None`` uses :func:`default_cache_dir`; ``base_url=None`` uses
    :func:`resolve_base_url`; ``progress=None`` shows a byte bar only when stderr is a terminal.
    """
    check_class_names([name], allow_unknown)
    url = class_url(name, base_url)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the cache folder {cache} ({exc.strerror or exc})") from None
    with cache_entry_lock(cache, name):
        return fetch_whole_file(url, name, cache, timeout, chunk_size,
                                show_progress(progress))


def fetch_whole_file(url: str, name: str, cache: Path, timeout: float = 60.0, chunk_size: int = 1 << 20,
                     progress: bool = False) -> Path:
    """Return ``<cache>/<name>.npy``, downloading it unless cached; the caller holds the entry's lock."""
    final = cache / f"{name}.npy"
    if final.exists():
        check_cached(final)
        return final
    part = cache / f"{name}.npy.part"
    _fetch(url, part, name, timeout, chunk_size, progress)
    try:
        bitmap_rows(part)
    except NotAClassFile as exc:
        part.unlink(missing_ok=True)  # complete but wrong: resuming it could never help
        raise not_a_class_file(url, exc) from None
    os.replace(part, final)
    return final


def check_cached(path: Path) -> int:
    """Return N of a cached class file, or raise DownloadError saying to delete it."""
    try:
        return bitmap_rows(path)
    except (NotAClassFile, OSError) as exc:
        raise DownloadError(
            f"cached file {path} is not a usable Quick, Draw! class file ({_one_line(exc)}); "
            "delete it and run again to download it afresh"
        ) from None
