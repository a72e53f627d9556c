"""Downloading the official Quick, Draw! bitmaps into a local cache, one file per class.

Google publishes one file per class, ``<base>/<class name>.npy``: a uint8 ``(N, 784)``
array of 28x28 drawings, N about 100k-300k (100-250 MB a class). :func:`download_class`
streams one into a cache folder as ``<name>.npy.part`` (resumed with an HTTP Range
request when the server allows it), checks its ``.npy`` header without unpickling
anything, and renames it to ``<name>.npy`` only once it is complete and valid: a file
under its final name is always whole. :func:`doodlelab.data.fetch.build_course_folder`
then samples a course-layout folder from the cached files.

HTTP uses the standard library only (urllib, which honours the usual proxy variables).
A resumed download is not matched against a changed file on the server (no ETag): the
official files have not changed since 2017, and the header/size check catches a file
whose length changed.
"""

from __future__ import annotations

import difflib
import http.client
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from doodlelab import __version__
from doodlelab.data.course import CLASSES, N_PIXELS
from doodlelab.errors import UserError

BASE_URL = "https://storage.googleapis.com/quickdraw_dataset/full/numpy_bitmap"
URL_ENV_VAR = "DOODLELAB_QUICKDRAW_URL"
MANIFEST = "classes.json"
LIST_HINT = "see `doodlelab fetch --list` for the 345 class names"

COURSE_CLASSES: tuple[str, ...] = CLASSES  # ("rabbit", "yoga", "hand", "snowman", "motorbike")

# The 345 official categories, as in googlecreativelab/quickdraw-dataset's categories.txt
# (case and hyphens matter: they are the file names on the server).
QUICKDRAW_CLASSES: tuple[str, ...] = (
    "aircraft carrier", "airplane", "alarm clock", "ambulance", "angel", "animal migration", "ant",
    "anvil", "apple", "arm", "asparagus", "axe", "backpack", "banana", "bandage", "barn", "baseball",
    "baseball bat", "basket", "basketball", "bat", "bathtub", "beach", "bear", "beard", "bed", "bee",
    "belt", "bench", "bicycle", "binoculars", "bird", "birthday cake", "blackberry", "blueberry",
    "book", "boomerang", "bottlecap", "bowtie", "bracelet", "brain", "bread", "bridge", "broccoli",
    "broom", "bucket", "bulldozer", "bus", "bush", "butterfly", "cactus", "cake", "calculator",
    "calendar", "camel", "camera", "camouflage", "campfire", "candle", "cannon", "canoe", "car",
    "carrot", "castle", "cat", "ceiling fan", "cello", "cell phone", "chair", "chandelier", "church",
    "circle", "clarinet", "clock", "cloud", "coffee cup", "compass", "computer", "cookie", "cooler",
    "couch", "cow", "crab", "crayon", "crocodile", "crown", "cruise ship", "cup", "diamond",
    "dishwasher", "diving board", "dog", "dolphin", "donut", "door", "dragon", "dresser", "drill",
    "drums", "duck", "dumbbell", "ear", "elbow", "elephant", "envelope", "eraser", "eye", "eyeglasses",
    "face", "fan", "feather", "fence", "finger", "fire hydrant", "fireplace", "firetruck", "fish",
    "flamingo", "flashlight", "flip flops", "floor lamp", "flower", "flying saucer", "foot", "fork",
    "frog", "frying pan", "garden", "garden hose", "giraffe", "goatee", "golf club", "grapes", "grass",
    "guitar", "hamburger", "hammer", "hand", "harp", "hat", "headphones", "hedgehog", "helicopter",
    "helmet", "hexagon", "hockey puck", "hockey stick", "horse", "hospital", "hot air balloon",
    "hot dog", "hot tub", "hourglass", "house", "house plant", "hurricane", "ice cream", "jacket",
    "jail", "kangaroo", "key", "keyboard", "knee", "knife", "ladder", "lantern", "laptop", "leaf",
    "leg", "light bulb", "lighter", "lighthouse", "lightning", "line", "lion", "lipstick", "lobster",
    "lollipop", "mailbox", "map", "marker", "matches", "megaphone", "mermaid", "microphone",
    "microwave", "monkey", "moon", "mosquito", "motorbike", "mountain", "mouse", "moustache", "mouth",
    "mug", "mushroom", "nail", "necklace", "nose", "ocean", "octagon", "octopus", "onion", "oven",
    "owl", "paintbrush", "paint can", "palm tree", "panda", "pants", "paper clip", "parachute",
    "parrot", "passport", "peanut", "pear", "peas", "pencil", "penguin", "piano", "pickup truck",
    "picture frame", "pig", "pillow", "pineapple", "pizza", "pliers", "police car", "pond", "pool",
    "popsicle", "postcard", "potato", "power outlet", "purse", "rabbit", "raccoon", "radio", "rain",
    "rainbow", "rake", "remote control", "rhinoceros", "rifle", "river", "roller coaster",
    "rollerskates", "sailboat", "sandwich", "saw", "saxophone", "school bus", "scissors", "scorpion",
    "screwdriver", "sea turtle", "see saw", "shark", "sheep", "shoe", "shorts", "shovel", "sink",
    "skateboard", "skull", "skyscraper", "sleeping bag", "smiley face", "snail", "snake", "snorkel",
    "snowflake", "snowman", "soccer ball", "sock", "speedboat", "spider", "spoon", "spreadsheet",
    "square", "squiggle", "squirrel", "stairs", "star", "steak", "stereo", "stethoscope", "stitches",
    "stop sign", "stove", "strawberry", "streetlight", "string bean", "submarine", "suitcase", "sun",
    "swan", "sweater", "swing set", "sword", "syringe", "table", "teapot", "teddy-bear", "telephone",
    "television", "tennis racquet", "tent", "The Eiffel Tower", "The Great Wall of China",
    "The Mona Lisa", "tiger", "toaster", "toe", "toilet", "tooth", "toothbrush", "toothpaste",
    "tornado", "tractor", "traffic light", "train", "tree", "triangle", "trombone", "truck", "trumpet",
    "t-shirt", "umbrella", "underwear", "van", "vase", "violin", "washing machine", "watermelon",
    "waterslide", "whale", "wheel", "windmill", "wine bottle", "wine glass", "wristwatch", "yoga",
    "zebra", "zigzag",
)

_KNOWN = frozenset(QUICKDRAW_CLASSES)
_MAGIC = b"\x93NUMPY"
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(UserError):
    """A class file could not be fetched, or the server sent something that is not one."""


class _BadFile(Exception):
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


def _suggestions(name: str) -> list[str]:
    by_lower = {c.lower(): c for c in QUICKDRAW_CLASSES}
    key = " ".join(name.lower().split())
    if key in by_lower:
        return [by_lower[key]]
    return [by_lower[m] for m in difflib.get_close_matches(key, list(by_lower), n=3, cutoff=0.75)]


def check_class_names(names: Iterable[str] | str, allow_unknown: bool = False) -> list[str]:
    """Return ``names`` as a list after checking them: official (unless allowed), unique, file-safe."""
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise UserError(f"no classes given; name at least one Quick, Draw! class ({LIST_HINT})")
    for name in names:
        if not isinstance(name, str):
            raise UserError(f"class names must be strings (got {name!r})")
        if (
            not name
            or name != name.strip()
            or name in (".", "..")
            or any(c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in name)
        ):
            raise UserError(
                f"{name!r} is not a usable class name: it becomes the file name <name>.npy, so it must be "
                "non-empty, without slashes, control characters or surrounding spaces"
            )
    twice = [n for n, k in Counter(names).items() if k > 1]
    if twice:
        raise UserError(f"class {twice[0]!r} is listed more than once; each class gets one label")
    unknown = [n for n in names if n not in _KNOWN]
    if unknown and not allow_unknown:
        described = []
        for name in unknown:
            close = _suggestions(name)
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
            described.append(f"{name!r}{hint}")
        noun = "class" if len(unknown) == 1 else "classes"
        raise UserError(
            f"unknown Quick, Draw! {noun} {', '.join(described)}; {LIST_HINT}, "
            "or pass --allow-unknown for a server with other classes"
        )
    return names


def bitmap_rows(path: Path) -> int:
    """Return N for a uint8 (N, 784) C-order .npy file of exactly the right size; else raise _BadFile."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        if fh.read(len(_MAGIC)) != _MAGIC:
            raise _BadFile("it has no NumPy header (not an .npy file)")
        fh.seek(0)
        version = tuple(fh.read(8)[6:])
        if version not in ((1, 0), (2, 0)):
            raise _BadFile(f"it uses .npy format version {version}; expected (1, 0) or (2, 0)")
        read_header = {1: np.lib.format.read_array_header_1_0, 2: np.lib.format.read_array_header_2_0}
        fh.seek(0)
        try:
            np.lib.format.read_magic(fh)
            shape, fortran, dtype = read_header[version[0]](fh)  # literal_eval of a dict: never unpickles
        except Exception as exc:  # on garbage numpy raises ValueError, SyntaxError, tokenize.TokenError...
            raise _BadFile(f"its .npy header is malformed ({type(exc).__name__})") from None
        offset = fh.tell()
    if dtype.hasobject:
        raise _BadFile("it holds pickled Python objects, which are refused for safety")
    if dtype != np.uint8:
        raise _BadFile(f"its dtype is {dtype}; expected uint8 pixels")
    if len(shape) != 2 or shape[1] != N_PIXELS:
        raise _BadFile(f"its shape is {shape}; expected (N, {N_PIXELS}) flattened 28x28 bitmaps")
    if fortran:
        raise _BadFile("it is stored in Fortran order; expected C order (numpy.save's default)")
    if shape[0] == 0:
        raise _BadFile("it holds no drawings (N = 0)")
    expected = offset + shape[0] * N_PIXELS
    if size < expected:
        raise _BadFile(f"it is truncated ({size} of {expected} bytes)")
    if size > expected:
        raise _BadFile(f"it has {size - expected} unexpected bytes after the array")
    return int(shape[0])


def _not_a_class_file(url: str, why: object) -> DownloadError:
    return DownloadError(
        f"{url} is not a Quick, Draw! class file: {why}; nothing was kept (check the base URL or "
        f"${URL_ENV_VAR})"
    )


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
        if exc.code == 404:
            raise DownloadError(
                f"no class named {name!r} on the server ({url} answered 404 Not Found); {LIST_HINT}"
            ) from None
        raise DownloadError(
            f"{url} answered HTTP {exc.code} {_one_line(exc.reason)}; try again later or check the base URL"
        ) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise DownloadError(f"{url} did not answer within {timeout:g} s; try again later") from None
        reason = getattr(exc.reason, "strerror", None) or exc.reason
        raise DownloadError(
            f"cannot reach {url} ({_one_line(reason)}); check the network connection or the base URL"
        ) from None
    except TimeoutError:
        raise DownloadError(f"{url} did not answer within {timeout:g} s; try again later") from None
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


def _fetch(url: str, part: Path, name: str, timeout: float, chunk_size: int, progress: bool) -> None:
    """Stream ``url`` into ``part``, resuming from the bytes already there when the server allows it."""
    start = part.stat().st_size if part.is_file() else 0
    resp = _request(url, name, start, timeout)
    if resp is None:  # 416: nothing after `start`, so the .part may already be the whole file
        try:
            bitmap_rows(part)
            return
        except _BadFile:
            part.unlink()
            start = 0
            resp = _request(url, name, 0, timeout)
            assert resp is not None  # a request without Range never returns None
    with resp:
        if resp.status == 206 and start:
            match = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
            if not match or int(match[1]) != start:
                part.unlink()
                raise DownloadError(
                    f"{url} answered the resume request with the wrong range "
                    f"({resp.headers.get('Content-Range')!r}); the partial file was dropped, run again"
                )
            total = int(match[3]) if match[3] != "*" else None
        elif resp.status == 200:
            start = 0  # no Range support (or no Range asked): the whole file follows
            total = None
        else:
            raise DownloadError(f"{url} answered HTTP {resp.status}, expected 200; check the base URL")
        length_header = resp.headers.get("Content-Length")
        length = int(length_header) if length_header and length_header.isdigit() else None
        if total is None and length is not None:
            total = start + length
        received = 0
        try:
            with open(part, "ab" if start else "wb") as fh, tqdm(
                total=total, initial=start, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
                disable=not progress, leave=False,
            ) as bar:
                while block := _read(resp, chunk_size, url, start + received):
                    if not start and not received and block[: len(_MAGIC)] != _MAGIC[: len(block)]:
                        raise _BadFile("it has no NumPy header (not an .npy file)")  # fail before 200 MB
                    fh.write(block)
                    received += len(block)
                    bar.update(len(block))
                fh.flush()
                os.fsync(fh.fileno())
        except _BadFile as exc:
            part.unlink(missing_ok=True)
            raise _not_a_class_file(url, exc) from None
        except OSError as exc:  # writing failed (reading errors arrive as DownloadError)
            raise DownloadError(f"cannot write {part} ({exc.strerror or exc}); free some space or "
                                "choose another cache folder") from None
    if length is not None and received < length:
        raise DownloadError(
            f"download of {url} was cut off after {start + received} of {start + length} bytes; "
            "run the command again to resume"
        )


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
    final = cache / f"{name}.npy"
    part = cache / f"{name}.npy.part"
    if final.exists():
        try:
            bitmap_rows(final)
        except (_BadFile, OSError) as exc:
            raise DownloadError(
                f"cached file {final} is not a usable Quick, Draw! class file ({_one_line(exc)}); "
                "delete it and run again to download it afresh"
            ) from None
        return final
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the cache folder {cache} ({exc.strerror or exc})") from None
    if progress is None:
        progress = sys.stderr.isatty()
    _fetch(url, part, name, timeout, chunk_size, progress)
    try:
        bitmap_rows(part)
    except _BadFile as exc:
        part.unlink(missing_ok=True)  # complete but wrong: resuming it could never help
        raise _not_a_class_file(url, exc) from None
    os.replace(part, final)
    return final
