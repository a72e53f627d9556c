"""Take ``docs/demo.png``: the drawing page, with the main job's four final models answering a real drawing.

    python docs/make_demo_png.py [--results DIR] [--strokes FILE.ndjson] [--word WORD] [--out FILE]

1. Take the four final runs of a finished ``doodlelab run`` (``--results``, default ``results/``):
   the classifier and the two-tower model, each trained with numpy and with torch on the
   studies' picks (``results/runs/<kind>-<backend>``, as ``doodlelab.pipeline.layout`` names them).
2. Serve them with ``doodlelab demo RUN_DIR ... --port 0`` (a subprocess, exactly as a user
   starts it) and open the page in the system's Chromium with Playwright (``/usr/bin/chromium``;
   no browser is downloaded).
3. Draw the first drawing of ``--word`` (default snowman) from the simplified strokes file
   (the course's ``quickdraw_5class_simplified.ndjson``) with mouse moves, one press per
   stroke, wait until every run has answered the whole drawing, and save the screenshot
   (64 colours, to keep the file small).

``--strokes`` defaults to ``$DOODLELAB_SHARED_DATA/strokes/quickdraw_5class_simplified.ndjson``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from doodlelab.data.render import read_ndjson
from doodlelab.demo.browser import CHROMIUM_ARGS, chromium_path, draw_strokes
from doodlelab.pipeline.layout import RUNS, run_dir, run_finished

DOCS = Path(__file__).resolve().parent
VIEWPORT = {"width": 1180, "height": 1100}
STROKES_FILE = Path("strokes") / "quickdraw_5class_simplified.ndjson"


def final_runs(results: Path) -> list[Path]:
    """Return the four final runs of a main job's results folder; stop with one line if one is unfinished."""
    runs = [run_dir(results, kind, backend) for kind, backend in RUNS]
    missing = [str(run) for run in runs if not run_finished(run)]
    if missing:
        raise SystemExit(f"no finished run in {', '.join(missing)}: "
                         f"run `doodlelab run --out {results}` first")
    return runs


def first_drawing(strokes_file: Path, word: str) -> list:
    """Return the strokes of the first drawing of ``word`` in a simplified ndjson file."""
    for drawing in read_ndjson(strokes_file):
        if drawing.word == word:
            return drawing.strokes
    raise SystemExit(f"no drawing of {word!r} in {strokes_file}")


@contextmanager
def demo_server(runs: list[Path]) -> Iterator[str]:
    """Start ``doodlelab demo RUNS --port 0``; yield the page's URL once it listens; stop it after."""
    proc = subprocess.Popen([sys.executable, "-m", "doodlelab", "demo", *map(str, runs), "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="")
            if found := re.search(r"open (http://\S+)", line):
                yield found.group(1)
                return
        raise SystemExit(f"doodlelab demo stopped (exit status {proc.wait()})")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def screenshot(url: str, strokes: list, out: Path) -> None:
    """Open ``url`` in Chromium, draw ``strokes``, wait for every answer and save the page to ``out``."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(url)
        draw_strokes(page, strokes)
        page.wait_for_selector(f'#models[data-answered="{len(strokes)}"]', timeout=60_000)
        raw = out.with_suffix(".full.png")
        page.screenshot(path=str(raw), full_page=True)
        browser.close()
    Image.open(raw).convert("RGB").quantize(colors=64).save(out, optimize=True)
    raw.unlink()


def main() -> None:
    """Parse the arguments, get the runs, serve them and take the picture."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="a finished main job's results folder")
    shared = os.environ.get("DOODLELAB_SHARED_DATA")
    p.add_argument("--strokes", type=Path, default=Path(shared) / STROKES_FILE if shared else None,
                   help="simplified strokes (.ndjson) to draw from")
    p.add_argument("--word", default="snowman", help="draw the first drawing of this class")
    p.add_argument("--out", type=Path, default=DOCS / "demo.png")
    args = p.parse_args()
    if args.strokes is None:
        p.error("give --strokes (or set DOODLELAB_SHARED_DATA)")
    runs = final_runs(args.results)
    strokes = first_drawing(args.strokes, args.word)
    with demo_server(runs) as url:
        screenshot(url, strokes, args.out)
    print(f"{args.out}: the {len(runs)} final runs of {args.results} answering the first {args.word} "
          f"of {args.strokes.name}")

if __name__ == "__main__":
    main()
