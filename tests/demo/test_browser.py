"""The page in a real browser: Chromium (Debian's package) driven by Playwright draws real doodles.

It draws the strokes of real Quick, Draw! drawings with mouse moves on the canvas and checks
that every model's shown prediction is the API's answer for the strokes the page sent, that
the shown 28x28 image is the renderer's, and that each saliency map is drawn from the API's
gradients. Skipped only where no Chromium is installed (``.ci/run`` installs it with apt-get).
Set ``DOODLELAB_DEMO_SCREENSHOT=docs/demo.png`` to keep the screenshot it takes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx2
import numpy as np
import pytest

from doodlelab.data.render import read_ndjson, render, simplify
from doodlelab.demo.app import create_app
from doodlelab.demo.browser import CHROMIUM_ARGS, chromium_path, draw_strokes
from tests.conftest import missing, need_module
from tests.demo.conftest import serving

pytestmark = pytest.mark.slow  # a real browser
sync_api = need_module("chromium", "playwright.sync_api")
CHROMIUM = chromium_path()
if not Path(CHROMIUM).is_file():
    missing("chromium", "no chromium on PATH nor at /usr/bin/chromium")
WORDS = ("snowman", "rabbit", "motorbike")  # one real drawing of each


@pytest.fixture(scope="module")
def drawings(shared_data_dir: Path) -> list[list]:
    """The first drawing of each class in WORDS from the shared simplified strokes file."""
    firsts: dict[str, list] = {}
    for d in read_ndjson(shared_data_dir / "strokes" / "quickdraw_5class_simplified.ndjson"):
        if d.word in WORDS:
            firsts.setdefault(d.word, d.strokes)
        if len(firsts) == len(WORDS):
            break
    return [firsts[w] for w in WORDS]


@pytest.fixture(scope="module")
def page_url(models):
    """The demo app of the tiny runs, served by uvicorn on 127.0.0.1."""
    with serving(create_app(models)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium from the system's package (never a downloaded browser)."""
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _shown_pixels(page, selector: str) -> np.ndarray:
    """Return the RGBA pixels (28, 28, 4) of a 28x28 canvas on the page."""
    data = page.evaluate("(sel) => Array.from(document.querySelector(sel).getContext('2d')"
                         ".getImageData(0, 0, 28, 28).data)", selector)
    return np.array(data, dtype=np.uint8).reshape(28, 28, 4)


def _heat_colours(grad: np.ndarray) -> np.ndarray:
    """Return the RGB (28, 28, 3) the page should paint for a saliency map (its diverging scale)."""
    top = np.abs(grad).max()
    t = grad / top if top > 0 else np.zeros_like(grad)
    fade = np.floor(255 * (1 - np.abs(t)) + 0.5)
    return np.stack([np.where(t >= 0, 255, fade), fade, np.where(t >= 0, fade, 255)], axis=-1)


def _check_answer_shown(page, url: str, body: dict) -> None:
    """Assert the page shows the API's answer to ``body``: predictions, image, saliency, cosines."""
    answer = httpx2.post(url + "api/predict", json=body, timeout=30).json()
    image = render(simplify(body["strokes"]))
    np.testing.assert_array_equal(np.array(answer["image"], dtype=np.uint8), image)
    shown = _shown_pixels(page, "#seen")
    np.testing.assert_array_equal(shown[..., 0], image)  # grey: R = G = B = the pixel
    np.testing.assert_array_equal(shown[..., 2], image)
    for m in answer["models"]:
        prediction = page.locator(f'[data-testid="prediction"][data-model="{m["name"]}"]')
        assert prediction.inner_text() == m["prediction"]
        heat = _shown_pixels(page, f'canvas[data-testid="saliency"][data-model="{m["name"]}"]')
        np.testing.assert_allclose(heat[..., :3], _heat_colours(np.array(m["saliency"])), atol=1)
        if "cosines" in m:
            card = page.locator("article.model", has=prediction)
            assert card.locator(".cos .pct").all_inner_texts() == [f"{v:.2f}" for v in m["cosines"].values()]


def test_drawing_real_doodles_shows_every_models_answer(browser, page_url, drawings, models, tmp_path):
    page = browser.new_page(viewport={"width": 1180, "height": 900})
    sent: list[dict] = []
    page.on("request", lambda r: sent.append(json.loads(r.post_data))
            if r.url.endswith("/api/predict") else None)
    page.goto(page_url)
    names = [m.name for m in models]
    for name in names:  # the cards are built from /api/models, empty until something is drawn
        assert page.locator(f'[data-testid="prediction"][data-model="{name}"]').inner_text() == ""
    for k, strokes in enumerate(drawings):
        if k:  # the clear button is enabled once something is drawn
            page.get_by_test_id("clear").click()
        sent.clear()
        draw_strokes(page, strokes)
        page.wait_for_selector(f'#models[data-answered="{len(strokes)}"]', timeout=15_000)
        # one request per finished stroke, each holding the strokes drawn so far, raw screen units
        assert [len(b["strokes"]) for b in sent] == list(range(1, len(strokes) + 1))
        assert all(b["raw"] is True for b in sent)
        final = sent[-1]
        _check_answer_shown(page, page_url, final)
        # what the page sent is the drawing: the same strokes, so (nearly) the same image
        ours, theirs = render(simplify(final["strokes"])) > 127, render(strokes) > 127
        assert (ours & theirs).sum() / (ours | theirs).sum() > 0.6
    shot = tmp_path / "demo.png"
    page.screenshot(path=str(shot))
    if os.environ.get("DOODLELAB_DEMO_SCREENSHOT"):  # kept small: 64 colours
        from PIL import Image

        Image.open(shot).convert("RGB").quantize(colors=64).save(os.environ["DOODLELAB_DEMO_SCREENSHOT"],
                                                                 optimize=True)
    # undo takes the last stroke back and asks again; clear empties every answer
    n = len(drawings[-1])
    page.get_by_role("button", name="Undo stroke").click()
    page.wait_for_selector(f'#models[data-answered="{n - 1}"]', timeout=15_000)
    _check_answer_shown(page, page_url, sent[-1])
    page.get_by_test_id("clear").click()
    assert page.locator("#models").get_attribute("data-answered") == "0"
    assert page.get_by_test_id("prediction").all_inner_texts() == [""] * len(names)
    page.close()
