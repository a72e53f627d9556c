"""Sampling drawings of an official class file with HTTP Range requests: n drawings cost about n x 784 bytes.

A class file is a plain ``.npy`` array, so row ``i`` lives at ``offset + 784 * i``. One
request reads the header (the first 4 KiB), then :func:`plan_blocks` picks seeded blocks
of consecutive rows, one block in each of up to 48 equal strata of the file, so the
sample spreads over the whole file (the files are roughly in collection order) while
the number of requests stays small. The blocks hold at least the rows asked for and
fewer than one block more. They are appended to ``<cache>/samples/<name>-<plan>.npy.part``
block by block (a rerun resumes after the last whole block) and renamed to ``.npy``
when complete. A server that ignores Range gets the whole file instead
(:func:`doodlelab.data.official.download.download_class`), from which the same blocks are taken:
the sample does not depend on how it was fetched.

HTTP here goes through one ``requests`` session per sample (keep-alive: one connection
for all the blocks of a class), which honours the usual proxy variables.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from doodlelab import __version__
from doodlelab.data.official import download as dl
from doodlelab.data.official.class_names import check_class_names
from doodlelab.errors import UserError
from doodlelab.geometry import N_PIXELS

if TYPE_CHECKING:  # requests is imported where a request is made: every command imports this module
    import requests
from doodlelab.files.atomic import write_bytes
from doodlelab.files.terminal import show_progress

MAX_BLOCKS = 48  # requests per class beyond the header; more spread costs more round trips


class RangeUnsupported(Exception):
    """The server answered a Range request with the whole file (status 200)."""


@dataclass(frozen=True)
class BlockPlan:
    """Which rows of a class file to fetch: ``len(starts)`` blocks of ``block`` consecutive rows."""

    rows: int  # drawings in the class file
    starts: np.ndarray  # (B,) int64, increasing first row of every block
    block: int

    def row_ids(self) -> np.ndarray:
        """Return the (B * block,) int64 rows the plan fetches, in file order."""
        return (self.starts[:, None] + np.arange(self.block)).reshape(-1)

    def key(self) -> str:
        """Return a 16-hex-digit name of this plan (its rows and blocks), used as the cache key."""
        digest = hashlib.sha256(f"{self.rows}:{self.block}:".encode() + self.starts.tobytes())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class ClassSample:
    """Rows of one class file: ``pixels`` uint8 (R, 784) are rows ``row_ids`` (R,) of ``rows`` drawings."""

    name: str
    rows: int
    row_ids: np.ndarray
    pixels: np.ndarray
    source: str  # "ranged" (blocks over HTTP), "whole file" (cached or fetched whole) or "cache"


def plan_blocks(rows: int, need: int, seed: int, name: str, max_blocks: int = MAX_BLOCKS) -> BlockPlan:
    """Return the seeded block plan that covers ``need`` of ``rows`` drawings (the same for any fetch)."""
    n_blocks = max(1, min(max_blocks, need))
    block = -(-need // n_blocks)
    n_blocks = -(-need // block)
    stratum = rows // n_blocks
    if block > stratum:  # nearly every row is needed: one block of the whole file
        return BlockPlan(rows, np.zeros(1, dtype=np.int64), rows)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), 0xB10C])
    starts = np.arange(n_blocks, dtype=np.int64) * stratum + rng.integers(0, stratum - block + 1, n_blocks)
    return BlockPlan(rows, starts, block)


def _session() -> requests.Session:
    import requests

    session = requests.Session()
    session.headers["User-Agent"] = f"doodlelab/{__version__}"
    return session


def get_range(session: requests.Session, url: str, name: str, first: int, last: int,
              timeout: float) -> tuple[bytes, int | None]:
    """Return (bytes ``first..last`` of ``url``, the file size if announced); RangeUnsupported on 200.

    Fewer bytes than asked are accepted only at the end of the file.
    """
    import requests

    try:
        with session.get(url, headers={"Range": f"bytes={first}-{last}"}, timeout=timeout,
                         stream=True) as resp:
            if resp.status_code == 200:
                raise RangeUnsupported
            if resp.status_code != 206:
                raise dl.http_error(url, name, resp.status_code, resp.reason or "")
            match = dl.CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
            if not match or int(match[1]) != first or int(match[2]) > last:
                raise dl.DownloadError(f"{url} answered a Range request with the wrong range "
                                       f"({resp.headers.get('Content-Range')!r}); try again later")
            total = int(match[3]) if match[3] != "*" else None
            body = _read_at_most(resp, last - first + 2)
    except requests.Timeout:
        raise dl.timed_out(url, timeout) from None
    except requests.exceptions.ChunkedEncodingError:
        raise dl.DownloadError(f"the connection to {url} broke during a block; run the command again "
                               "to resume") from None
    except requests.RequestException as exc:
        raise dl.DownloadError(f"cannot reach {url} ({type(exc).__name__}); check the network "
                               "connection or the base URL") from None
    short = len(body) != last - first + 1
    if len(body) != int(match[2]) - first + 1 or (short and (total is None or int(match[2]) != total - 1)):
        raise dl.DownloadError(f"{url} sent {len(body)} bytes for the range {first}-{last}; "
                               "run the command again to resume")
    return body, total


def _read_at_most(resp: requests.Response, limit: int) -> bytes:
    """Return the body of ``resp``, reading no more than ``limit`` bytes of it."""
    chunks, size = [], 0
    for chunk in resp.iter_content(1 << 16):
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def remote_layout(session: requests.Session, url: str, name: str, timeout: float) -> tuple[int, int] | None:
    """Return ``(N, data offset)`` of a remote class file, or None when the server ignores Range."""
    try:
        head, total = get_range(session, url, name, 0, dl.HEADER_BYTES - 1, timeout)
    except RangeUnsupported:
        return None
    try:
        rows, offset = dl.parse_header(head)
        if total is not None:
            dl.check_size(rows, offset, total)
    except dl.NotAClassFile as exc:
        raise dl.not_a_class_file(url, exc) from None
    return rows, offset


def _check_enough(name: str, rows: int, need: int, where: object) -> None:
    if rows < need:
        raise UserError(f"class {name!r} has only {rows} drawings ({where}), fewer than the {need} "
                        "asked for; ask for fewer")


def _from_whole_file(name: str, path: Path, need: int, seed: int) -> ClassSample:
    rows = dl.check_cached(path)
    _check_enough(name, rows, need, path)
    plan = plan_blocks(rows, need, seed, name)
    ids = plan.row_ids()
    bitmaps = np.load(path, mmap_mode="r", allow_pickle=False)  # (rows, 784) uint8, nothing read yet
    return ClassSample(name, rows, ids, np.asarray(bitmaps[ids]), "whole file")


def _resume_point(part: Path, block_bytes: int) -> int:
    """Return how many whole blocks ``part`` holds, cutting off a trailing partial block."""
    if not part.is_file():
        return 0
    done = part.stat().st_size // block_bytes
    if part.stat().st_size != done * block_bytes:
        with open(part, "r+b") as fh:
            fh.truncate(done * block_bytes)
    return done


def _fetch_blocks(session: requests.Session, url: str, name: str, plan: BlockPlan, offset: int,
                  part: Path, timeout: float, progress: bool) -> None:
    """Append the plan's blocks to ``part``, starting after the whole blocks it already holds."""
    block_bytes = plan.block * N_PIXELS
    done = _resume_point(part, block_bytes)
    with open(part, "ab") as fh, tqdm(total=len(plan.starts) * block_bytes, initial=done * block_bytes,
                                      desc=name, unit="B", unit_scale=True, unit_divisor=1024,
                                      disable=not progress, leave=False) as bar:
        for start in plan.starts[done:]:
            first = offset + int(start) * N_PIXELS
            body, _ = get_range(session, url, name, first, first + block_bytes - 1, timeout)
            fh.write(body)
            fh.flush()
            bar.update(len(body))


def _save_sample(path: Path, pixels: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, pixels, allow_pickle=False)
    write_bytes(path, buf.getbuffer())


def _ranged(session: requests.Session, url: str, name: str, layout: tuple[int, int], need: int,
            seed: int, cache: Path, timeout: float, progress: bool) -> ClassSample:
    rows, offset = layout
    _check_enough(name, rows, need, url)
    plan = plan_blocks(rows, need, seed, name)
    final = cache / "samples" / f"{name}-{plan.key()}.npy"
    shape = (len(plan.starts) * plan.block, N_PIXELS)
    if final.is_file():
        pixels = np.load(final, allow_pickle=False)
        if pixels.shape == shape and pixels.dtype == np.uint8:
            return ClassSample(name, rows, plan.row_ids(), pixels, "cache")
        final.unlink()  # not what this plan fetches: fetch it again
    part = final.with_name(final.name + ".part")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        _fetch_blocks(session, url, name, plan, offset, part, timeout, progress)
        pixels = np.fromfile(part, dtype=np.uint8).reshape(shape)
        _save_sample(final, pixels)
        part.unlink()
    except OSError as exc:
        raise dl.DownloadError(f"cannot write {part} ({exc.strerror or exc}); free some space or choose "
                               "another cache folder") from None
    return ClassSample(name, rows, plan.row_ids(), pixels, "ranged")


def sample_class(
    name: str,
    need: int,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    base_url: str | None = None,
    *,
    allow_unknown: bool = False,
    timeout: float = 60.0,
    progress: bool | None = None,
) -> ClassSample:
    """Return at least ``need`` drawings of class ``name`` (fewer than one block more), fetched by Range.

    A whole class file already in the cache is used as it is; a server that ignores Range
    gets the whole file downloaded (bounded, resumable). Either way the rows are those of
    :func:`plan_blocks` for ``seed``, so the result does not depend on the route.
    """
    check_class_names([name], allow_unknown)
    url = dl.class_url(name, base_url)
    cache = Path(cache_dir) if cache_dir is not None else dl.default_cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise dl.DownloadError(f"cannot create the cache folder {cache} ({exc.strerror or exc})") from None
    progress = show_progress(progress)
    whole = cache / f"{name}.npy"
    with dl.cache_entry_lock(cache, name):
        if whole.exists():
            return _from_whole_file(name, whole, need, seed)
        with _session() as session:
            layout = remote_layout(session, url, name, timeout)
            if layout is not None:
                try:
                    return _ranged(session, url, name, layout, need, seed, cache, timeout, progress)
                except RangeUnsupported:
                    pass  # the server stopped honouring Range: take the whole file
        dl.fetch_whole_file(url, name, cache, timeout, progress=progress)
    return _from_whole_file(name, whole, need, seed)
