"""The drawing page in the system's Chromium: where the browser is and how a drawing is drawn on it.

Shared by the real-browser test and ``docs/make_demo_png.py``, which both drive the page with
Playwright (a test and documentation dependency: they import it, this module does not) and
never download a browser.
"""

from __future__ import annotations

import shutil
from typing import Any

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CANVAS_MARGIN = 20  # pixels kept free on each side of the page's canvas


def chromium_path() -> str:
    """Return the system's Chromium: the one on PATH, else Debian's ``/usr/bin/chromium``."""
    return shutil.which("chromium") or "/usr/bin/chromium"


def draw_strokes(page: Any, strokes: list) -> None:
    """Draw strokes (0..255 coordinates) on a Playwright page's canvas: mouse moves, one press per stroke."""
    box = page.get_by_test_id("canvas").bounding_box()

    def at(x: float, y: float) -> tuple[float, float]:
        return (box["x"] + CANVAS_MARGIN + x / 255 * (box["width"] - 2 * CANVAS_MARGIN),
                box["y"] + CANVAS_MARGIN + y / 255 * (box["height"] - 2 * CANVAS_MARGIN))

    for xs, ys, *_ in strokes:
        page.mouse.move(*at(xs[0], ys[0]))
        page.mouse.down()
        for x, y in zip(xs[1:], ys[1:]):
            page.mouse.move(*at(x, y), steps=2)
        page.mouse.up()
