"""Strokes to 28x28 bitmaps, the way Quick, Draw!'s own ``numpy_bitmap`` files were made.

A *drawing* is a list of strokes, each ``[[x0, x1, ...], [y0, y1, ...]]``. The official
*simplified* drawings (``simplified/<class>.ndjson``) are already aligned to the
top-left corner and scaled into 0..255; :func:`simplify` makes raw strokes (a mouse
or a finger on a web page) look like that. :func:`render` then rasterises them with
the dataset's recipe: the 256x256 coordinate space is centred on the drawing's
bounding box, padded by 16 units plus half the 16-unit line width on every side,
scaled to 28x28, and the strokes are drawn white on black with round caps and joins
and cairo's best antialiasing. The result equals the dataset's own bitmaps bit for
bit (``tests/data/test_render.py`` checks it on the shared fixture and on 2124 real
drawings).

Rasterising anti-aliased round-capped lines exactly as cairo does is not something
to re-derive in numpy, so :func:`render` calls cairo through ``cairocffi`` (PyPI)
on the system's ``libcairo2``; everything else here is numpy.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from doodlelab.errors import UserError
from doodlelab.files.terminal import show_progress
from doodlelab.geometry import SIDE

CANVAS = 256.0  # the simplified drawings' coordinate space, 0..255
LINE_WIDTH = 16.0  # in canvas units
PADDING = 16.0  # canvas units of margin around the line's outer edge
RAW_LIMIT = 1e9  # |raw coordinate| above this is refused: screens and tablets stay far below
MAX_NDJSON_BYTES = 4 << 30  # one strokes file (the largest official class file is ~1 GB)
MAX_LINE_BYTES = 1 << 20  # one drawing: the official files' longest lines are a few 10 KB


def _cairo():  # type: ignore[no-untyped-def]
    try:
        import cairocffi
    except (ImportError, OSError) as exc:  # OSError: the wrapper is there but libcairo is not
        raise UserError(
            f"rendering strokes needs cairo ({exc}); install it with "
            "`pip install 'doodlelab[render]'` and the system library (`apt-get install libcairo2`)"
        ) from None
    return cairocffi


def check_drawing(drawing: object, where: str = "drawing") -> list[np.ndarray]:
    """Return the strokes of ``drawing`` as float64 arrays (2, n) after checking their shape.

    Raises UserError naming ``where`` for anything that is not a non-empty list of
    ``[[x...], [y...]]`` strokes with equally many finite numbers in both lists.
    """
    if not isinstance(drawing, (list, tuple)) or not drawing:
        raise UserError(f"{where}: a drawing must be a non-empty list of strokes [[x...], [y...]]")
    strokes = []
    for k, stroke in enumerate(drawing):
        if (not isinstance(stroke, (list, tuple)) or len(stroke) < 2
                or not all(isinstance(c, (list, tuple)) for c in stroke[:2])):
            raise UserError(f"{where}: stroke {k} is not [[x...], [y...]]")
        xs, ys = stroke[0], stroke[1]
        if len(xs) != len(ys) or not xs:
            raise UserError(f"{where}: stroke {k} has {len(xs)} x and {len(ys)} y values "
                            "(need the same number, at least one)")
        try:
            arr = np.array([xs, ys], dtype=np.float64)
        except OverflowError:
            raise UserError(f"{where}: stroke {k} holds a number beyond float range") from None
        except (TypeError, ValueError):
            raise UserError(f"{where}: stroke {k} holds values that are not numbers") from None
        if not np.isfinite(arr).all():
            raise UserError(f"{where}: stroke {k} holds NaN or infinite coordinates")
        strokes.append(arr)
    return strokes


def check_canvas(strokes: list[np.ndarray], where: str = "drawing", raw: bool = False) -> None:
    """Raise UserError naming ``where`` unless ``strokes`` lie in 0..255 (``raw``: within +-RAW_LIMIT)."""
    points = np.concatenate(strokes, axis=1)  # (2, total points): one reduction, not one per stroke
    lo, hi = float(points.min()), float(points.max())
    if raw:
        if max(-lo, hi) > RAW_LIMIT:
            raise UserError(f"{where}: coordinates reach {max(-lo, hi):.3g}; raw strokes must lie within "
                            f"+-{RAW_LIMIT:g}")
    elif lo < 0 or hi > CANVAS - 1:
        k = next(k for k, s in enumerate(strokes) if s.min() < 0 or s.max() > CANVAS - 1)
        span = f"[{strokes[k].min():g}, {strokes[k].max():g}]"
        raise UserError(f"{where}: stroke {k} has coordinates in {span}; "
                        "simplified strokes lie in 0..255 (pass --raw for other coordinates)")


def render(drawing: object, side: int = SIDE, *, line_width: float = LINE_WIDTH,
           padding: float = PADDING) -> np.ndarray:
    """Return the (side, side) uint8 bitmap of a drawing in 0..255 coordinates, white on black."""
    strokes = check_drawing(drawing)
    cairo = _cairo()
    surface = cairo.ImageSurface(cairo.FORMAT_ARGB32, side, side)
    ctx = cairo.Context(surface)
    ctx.set_antialias(cairo.ANTIALIAS_BEST)
    ctx.set_line_cap(cairo.LINE_CAP_ROUND)
    ctx.set_line_join(cairo.LINE_JOIN_ROUND)
    ctx.set_line_width(line_width)
    margin = 2 * padding + line_width  # padding and half a line on each side
    scale = side / (CANVAS + margin)
    ctx.scale(scale, scale)
    ctx.translate(margin / 2, margin / 2)

    # The dataset's centring: shift by (canvas - max) / 2, which centres the bounding
    # box of simplified strokes (they start at 0). Using the minimum too would be
    # more general but no longer reproduces the dataset: raw strokes go through
    # simplify() first.
    offset = (CANVAS - np.concatenate(strokes, axis=1).max(axis=1)) / 2

    ctx.set_source_rgb(0, 0, 0)
    ctx.paint()
    ctx.set_source_rgb(1, 1, 1)
    for stroke in strokes:
        xs, ys = stroke + offset[:, None]
        ctx.move_to(xs[0], ys[0])
        for x, y in zip(xs, ys):  # from the first point again: a one-point stroke is a dot
            ctx.line_to(x, y)
        ctx.stroke()
    surface.flush()
    pixels = np.frombuffer(surface.get_data(), dtype=np.uint8).reshape(side, surface.get_stride())
    # ARGB32 is stored B, G, R, A per pixel on little-endian machines; white on black
    # makes all three colour bytes equal, so the first is the grey level.
    return pixels[:, 0 : 4 * side : 4].copy()


def _resample(stroke: np.ndarray, spacing: float = 1.0) -> np.ndarray:
    """Return the polyline (2, n) re-sampled every ``spacing`` units along its length (2, m)."""
    if stroke.shape[1] < 2:
        return stroke
    seg = np.hypot(*np.diff(stroke, axis=1))
    along = np.concatenate([[0.0], np.cumsum(seg)])
    if along[-1] == 0:
        return stroke[:, :1]
    at = np.arange(0.0, along[-1], spacing)
    if at[-1] < along[-1]:
        at = np.append(at, along[-1])  # keep the end point
    return np.stack([np.interp(at, along, stroke[0]), np.interp(at, along, stroke[1])])


def _rdp_keep(points: np.ndarray, epsilon: float) -> np.ndarray:
    """Return the boolean mask (n,) of points Ramer-Douglas-Peucker keeps for tolerance ``epsilon``."""
    n = points.shape[1]
    keep = np.zeros(n, dtype=bool)
    keep[[0, n - 1]] = True
    stack = [(0, n - 1)]
    while stack:  # iterative: long strokes would overflow Python's recursion limit
        first, last = stack.pop()
        if last - first < 2:
            continue
        a, b = points[:, first], points[:, last]
        inner = points[:, first + 1 : last]
        ab = b - a
        length = np.hypot(*ab)
        if length == 0:  # closed loop: distance to the point itself
            dist = np.hypot(*(inner - a[:, None]))
        else:  # distance to the line through a and b (|cross product| / |ab|)
            dist = np.abs(ab[0] * (inner[1] - a[1]) - ab[1] * (inner[0] - a[0])) / length
        k = int(np.argmax(dist))
        if dist[k] > epsilon:
            mid = first + 1 + k
            keep[mid] = True
            stack += [(first, mid), (mid, last)]
    return keep


def simplify(drawing: object, epsilon: float = 2.0, where: str = "drawing") -> list[list[list[int]]]:
    """Return raw strokes in the dataset's *simplified* form (integers, 0..255).

    The published recipe: align the drawing to the top-left corner (minimum 0),
    scale it uniformly so that its larger side spans 0..255, resample every stroke
    at 1-unit spacing, then simplify each with Ramer-Douglas-Peucker at ``epsilon``
    2.0, and round to integers. Coordinates beyond +-RAW_LIMIT are a UserError naming ``where``.
    """
    strokes = check_drawing(drawing, where)
    check_canvas(strokes, where, raw=True)
    points = np.concatenate(strokes, axis=1)
    low = points.min(axis=1)
    span = float((points.max(axis=1) - low).max())
    factor = 255.0 / span if span > 0 else 1.0
    out = []
    for stroke in strokes:
        line = _resample((stroke - low[:, None]) * factor)
        kept = np.rint(line[:, _rdp_keep(line, epsilon)]).astype(int)
        out.append(kept.tolist())
    return out


@dataclass(frozen=True)
class Drawing:
    """One line of an ndjson strokes file: the class ``word``, its ``key_id`` and the strokes."""

    word: str
    key_id: str
    strokes: list


def _ndjson_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) of a bounded UTF-8 file, skipping blank lines; UserError otherwise."""
    from doodlelab.files.checked import open_bounded

    with open_bounded(path, MAX_NDJSON_BYTES, "strokes file") as fh:
        for number, line in enumerate(iter(lambda: fh.readline(MAX_LINE_BYTES + 1), b""), start=1):
            if len(line) > MAX_LINE_BYTES:
                raise UserError(f"{path}:{number}: longer than {MAX_LINE_BYTES} bytes; one drawing per line")
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise UserError(f"{path}:{number}: not a UTF-8 text file of JSON lines") from None
            if text.strip():
                yield number, text


def read_ndjson(path: str | Path, raw: bool = True) -> Iterator[Drawing]:
    """Yield the drawings of a Quick, Draw! ``.ndjson`` file, checking each line.

    Every line is a JSON object with at least ``drawing`` (strokes) and usually
    ``word`` and ``key_id``; blank lines are skipped. A malformed line (too long, nested
    too deep, a number beyond float range, a coordinate outside 0..255, or with ``raw``
    beyond +-RAW_LIMIT) raises UserError naming the file and line number.
    """
    from doodlelab.files.checked import parse_json_line

    path = Path(path)
    for number, line in _ndjson_lines(path):
        where = f"{path}:{number}"
        obj = parse_json_line(line, where)
        if not isinstance(obj, dict) or "drawing" not in obj:
            raise UserError(f"{where}: expected an object with a \"drawing\" list of strokes")
        check_canvas(check_drawing(obj["drawing"], where), where, raw=raw)
        yield Drawing(str(obj.get("word", "")), str(obj.get("key_id", "")), obj["drawing"])


def render_ndjson(path: str | Path, classes: Sequence[str] | None = None, *, raw: bool = False,
                  progress: bool | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Render every drawing of an ndjson file: return images (N, 28, 28) uint8, labels (N,) int64, words.

    With ``classes``, only drawings whose ``word`` is one of them are kept and the
    label is the word's position in ``classes``; without, every drawing is kept and
    labels are -1. ``raw=True`` runs :func:`simplify` first, for strokes that are not
    in the dataset's simplified form; without it coordinates must lie in 0..255.
    ``progress=None`` shows a tqdm bar only when stderr is a terminal.
    """

    from tqdm import tqdm

    progress = show_progress(progress)
    index = {name: k for k, name in enumerate(classes)} if classes is not None else None
    images, labels, words = [], [], []
    for drawing in tqdm(read_ndjson(path, raw=raw), desc=f"render {Path(path).name}", unit=" drawings",
                        disable=not progress, leave=False):
        if index is not None and drawing.word not in index:
            continue
        strokes = simplify(drawing.strokes) if raw else drawing.strokes
        images.append(render(strokes))
        labels.append(index[drawing.word] if index is not None else -1)
        words.append(drawing.word)
    stack = np.stack(images) if images else np.zeros((0, SIDE, SIDE), np.uint8)
    return stack, np.asarray(labels, dtype=np.int64), words


# -- command line ------------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``render`` to the ``doodlelab`` subcommands."""
    p = subparsers.add_parser("render",
                              help="Quick, Draw! strokes (.ndjson) to 28x28 images, the dataset's way")
    p.add_argument("strokes", type=Path, metavar="STROKES.ndjson",
                   help="one JSON drawing a line, as in the official simplified/<class>.ndjson")
    p.add_argument("--images", type=Path, required=True, metavar="FILE.npy",
                   help=f"where to write the (N, {SIDE}, {SIDE}) uint8 images")
    p.add_argument("--labels", type=Path, default=None, metavar="FILE.npy",
                   help="also write (N,) int64 labels: the position of each drawing's word in --classes")
    p.add_argument("--classes", default=None, metavar="NAME,NAME",
                   help="keep only drawings of these words, labelled in this order "
                        "(default with --labels: rabbit,yoga,hand,snowman,motorbike)")
    p.add_argument("--raw", action="store_true",
                   help="strokes are raw (any coordinates): simplify them as the dataset did first")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")


def _classes_arg(args: argparse.Namespace) -> list[str] | None:
    """Return the ``--classes`` names (the course's five with ``--labels`` alone), or None for all."""
    from doodlelab.data.course import CLASSES

    if args.classes is not None:
        classes = [c.strip() for c in args.classes.split(",") if c.strip()]
        if not classes or len(set(classes)) != len(classes):
            raise UserError(f"--classes {args.classes!r}: expected distinct comma-separated names")
        return classes
    return list(CLASSES) if args.labels is not None else None


def command(args: argparse.Namespace) -> int:
    """Run ``doodlelab render``; return 0."""
    import io

    from doodlelab.files.atomic import write_bytes

    outputs = [p for p in (args.images, args.labels) if p is not None]
    if len({p.resolve() for p in outputs}) != len(outputs):
        raise UserError(f"--images and --labels both name {args.images}; give each its own file")
    if not args.overwrite:
        for path in outputs:
            if path.exists():
                raise UserError(f"{path} exists; pass --overwrite to replace it")
    classes = _classes_arg(args)
    images, labels, words = render_ndjson(args.strokes, classes, raw=args.raw)
    if len(images) == 0:
        raise UserError(f"{args.strokes}: no drawing" + (f" of {', '.join(classes)}" if classes else ""))
    # Everything is rendered before anything is written: a bad line leaves no half output.
    for path, array in ((args.images, images), (args.labels, labels)):
        if path is not None:
            buf = io.BytesIO()
            np.save(buf, array, allow_pickle=False)
            write_bytes(path, buf.getvalue())
    counts = ", ".join(f"{w} {words.count(w)}" for w in dict.fromkeys(words))
    print(f"{len(images)} drawings ({counts}) -> {args.images}"
          + (f", {args.labels}" if args.labels is not None else ""))
    return 0
