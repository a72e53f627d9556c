"""The demo app: tiny runs trained in code, asked through FastAPI's TestClient (and uvicorn for a burst)."""

from __future__ import annotations

import asyncio
import json
from importlib.resources import files
from pathlib import Path

import httpx2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from doodlelab.config import build_config
from doodlelab.data.course import CLASSES, validate_images
from doodlelab.data.render import read_ndjson, render, simplify
from doodlelab.demo.app import create_app
from doodlelab.demo.predict import predict
from doodlelab.training.registry import make_task
from doodlelab.training.scoring import probabilities
from tests.conftest import need_module
from tests.demo.conftest import HAS_TORCH, serving

# A snowman in screen coordinates (pixels, y down), as a browser records it.
SNOWMAN = [
    [[300 + 40 * np.cos(t) for t in np.linspace(0, 6.3, 30)],
     [100 + 40 * np.sin(t) for t in np.linspace(0, 6.3, 30)]],
    [[300 + 60 * np.cos(t) for t in np.linspace(0, 6.3, 40)],
     [200 + 60 * np.sin(t) for t in np.linspace(0, 6.3, 40)]],
    [[250.5, 200.25], [180.0, 150.0]],
    [[330], [95]],  # a one-point stroke: an eye
]
SNOWMAN = [[[round(float(v), 2) for v in axis] for axis in stroke] for stroke in SNOWMAN]


@pytest.fixture(scope="module")
def client(models) -> TestClient:
    """FastAPI's TestClient on the demo app of the tiny runs."""
    return TestClient(create_app(models))


def _post(client: TestClient, obj: object) -> tuple[int, dict]:
    resp = client.post("/api/predict", json=obj)
    assert resp.headers["content-type"].startswith("application/json")
    return resp.status_code, resp.json()


def _reference_task(run_dir: Path, backend: str | None = None):
    """Return (task, cfg) of a run rebuilt here from its own files, optionally on another backend."""
    raw = json.loads((run_dir / "config.json").read_text())
    cfg = build_config({k: v for k, v in raw.items() if k not in ("task", "backend", "classes")})
    vectors = None
    if raw["task"] == "two_tower":
        with np.load(run_dir / "class_vectors.npz") as z:
            vectors = z["vectors"]
    task = make_task(cfg, backend or raw["backend"], raw["task"], class_vectors=vectors)
    with np.load(run_dir / "weights.npz") as z:
        task.load_state_dict({k: z[k] for k in z.files})
    return task, cfg


def _relu_mlp(weights: dict[str, np.ndarray], prefix: str, x: np.ndarray) -> np.ndarray:
    """Return x through the Linear layers ``{prefix}{i}.weight/bias`` with ReLU between them."""
    index = sorted({int(k[len(prefix):].split(".")[0]) for k in weights if k.startswith(prefix)})
    for n, i in enumerate(index):
        x = x @ weights[f"{prefix}{i}.weight"].astype(np.float64) + weights[f"{prefix}{i}.bias"]
        if n < len(index) - 1:
            x = np.maximum(x, 0)
    return x


def _shifted(image: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """Return a (28, 28) image moved dr rows down and dc columns right, black where it enters."""
    out = np.zeros_like(image)
    out[max(dr, 0):28 + min(dr, 0), max(dc, 0):28 + min(dc, 0)] = \
        image[max(-dr, 0):28 - max(dr, 0), max(-dc, 0):28 - max(dc, 0)]
    return out


def _written_out_probabilities(run_dir: Path, image: np.ndarray) -> np.ndarray:
    """Return (5,) probabilities of a run on a uint8 image by a forward pass written out here.

    Weights come from the run's weights.npz; the classifier runs average the softmax over the
    image and its four one-pixel shifts (eval.tta on), the two-tower run (tta off) scores
    10 x the cosine between its image and word embeddings.
    """
    with np.load(run_dir / "weights.npz") as z:
        weights = dict(z)
    if json.loads((run_dir / "config.json").read_text())["task"] == "two_tower":
        with np.load(run_dir / "class_vectors.npz") as z:
            vectors = z["vectors"].astype(np.float64)
        u = _relu_mlp(weights, "image.", image.reshape(1, 784) / 255.0)
        v = _relu_mlp(weights, "text.", vectors)
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        logits = [10.0 * (u @ v.T)[0]]
    else:
        views = [image, *(_shifted(image, dr, dc) for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)))]
        logits = [_relu_mlp(weights, "", view.reshape(1, 784) / 255.0)[0] for view in views]
    probs = [np.exp(z - z.max()) / np.exp(z - z.max()).sum() for z in logits]
    return sum(probs) / len(probs)


def _strict_json(text: str) -> object:
    """Parse JSON, refusing the bare NaN/Infinity that Python's json module would accept."""
    def refuse(name: str) -> None:
        raise AssertionError(f"bare {name} in a JSON answer")
    return json.loads(text, parse_constant=refuse)


def _assert_one_line_error(resp: httpx2.Response, expected: int = 400) -> str:
    assert resp.status_code == expected, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    answer = _strict_json(resp.text)
    assert set(answer) == {"error"} and isinstance(answer["error"], str) and answer["error"]
    assert "\n" not in answer["error"] and "Traceback" not in answer["error"]
    return answer["error"]


# -- the page and the model list -------------------------------------------------------

def test_the_page_is_package_data_and_is_served(client):
    resource = files("doodlelab.demo") / "static" / "index.html"
    resp = client.get("/")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    assert resp.content == resource.read_bytes()
    text = resp.text
    for needle in ("<canvas", "<script>", "pointerdown", "api/predict", "api/models", "Undo", "Clear",
                   'data-testid="canvas"', 'data-testid="clear"', '"prediction"', "raw: true"):
        assert needle in text, needle
    assert 'src="http' not in text and 'href="http' not in text  # works offline: nothing from outside
    assert "default-src 'none'" in resp.headers["content-security-policy"]
    assert client.head("/").status_code == 200


def test_models_are_listed(client, run_dirs):
    resp = client.get("/api/models")
    info = resp.json()
    assert resp.status_code == 200 and info["classes"] == list(CLASSES)
    got = [(m["name"], m["kind"], m["backend"], m["tta"], m["cosines"]) for m in info["models"]]
    expected = [("np (classifier, numpy)", "classifier", "numpy", True, False),
                ("tt (two_tower, numpy)", "two_tower", "numpy", False, True)]
    if HAS_TORCH:
        expected += [("pt (classifier, torch)", "classifier", "torch", True, False),
                     ("ptt (two_tower, torch)", "two_tower", "torch", False, True)]
    assert got == expected
    assert all(0.0 <= m["accuracy"] <= 1.0 for m in info["models"])


def test_unknown_routes_and_methods_are_json_errors(client):
    assert "/nope" in _assert_one_line_error(client.get("/nope"), 404)
    _assert_one_line_error(client.post("/api/nope", json={}), 404)
    _assert_one_line_error(client.delete("/"), 405)
    _assert_one_line_error(client.get("/api/predict"), 405)
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == {"/api/models", "/api/predict"}
    assert "strokes" in schema["components"]["schemas"]["PredictRequest"]["properties"]
    _assert_one_line_error(client.get("/docs"), 404)  # it would need a CDN


# -- predictions -----------------------------------------------------------------------

def test_every_model_answers_as_its_run_would_and_shows_why(client, run_dirs):
    status, answer = _post(client, {"strokes": SNOWMAN})
    assert status == 200, answer
    image = render(simplify(SNOWMAN))
    np.testing.assert_array_equal(np.array(answer["image"], dtype=np.uint8), image)
    x = validate_images(image[None], "image")  # the course loader's uint8 -> float conversion
    assert answer["classes"] == list(CLASSES) and len(answer["models"]) == len(run_dirs)
    for run_dir, m in zip(run_dirs, answer["models"]):
        task, cfg = _reference_task(run_dir)
        p = np.array([m["probabilities"][c] for c in CLASSES])
        assert list(m["probabilities"]) == list(CLASSES) and abs(p.sum() - 1) < 1e-9
        np.testing.assert_allclose(p, probabilities(task, x, tta=cfg.eval.tta)[0], rtol=1e-6, atol=1e-9)
        # and independently of the library: the forward pass written out in this file
        np.testing.assert_allclose(p, _written_out_probabilities(run_dir, image), rtol=1e-5, atol=1e-7)
        k = int(np.argmax(p))
        assert m["prediction"] == CLASSES[k] and m["name"].startswith(run_dir.name + " (")
        # saliency: the numpy core's backward on the run's weights, whichever backend trained it
        core, _ = _reference_task(run_dir, "numpy")
        np.testing.assert_allclose(np.array(m["saliency"]), core.input_gradient(x, k).reshape(28, 28),
                                   rtol=1e-6, atol=1e-9)
        if m["kind"] == "two_tower":
            cos = np.array([m["cosines"][c] for c in CLASSES])
            assert np.all(np.abs(cos) <= 1 + 1e-6)
            np.testing.assert_allclose(cos * cfg.two_tower.logit_scale, task.logits(x)[0], rtol=1e-5,
                                       atol=1e-5)
        else:
            assert "cosines" not in m
    # the Python function gives the same answer as the HTTP route
    assert json.loads(json.dumps(predict(client.app.state.models, SNOWMAN))) == answer


def test_torch_runs_saliency_equals_their_own_autograd(client, run_dirs):
    need_module("torch", "torch")
    answer = _post(client, {"strokes": SNOWMAN})[1]
    x = validate_images(render(simplify(SNOWMAN))[None], "image")
    for run_dir, m in zip(run_dirs, answer["models"]):
        if m["backend"] == "torch":
            task, _ = _reference_task(run_dir)
            grad = task.input_gradient(x, CLASSES.index(m["prediction"])).reshape(28, 28)
            np.testing.assert_allclose(np.array(m["saliency"]), grad, rtol=1e-4, atol=1e-6)


def test_simplified_real_drawings_are_rendered_as_the_dataset(client, shared_data_dir):
    path = shared_data_dir / "strokes" / "quickdraw_5class_simplified.ndjson"
    firsts: dict[str, list] = {}
    for drawing in read_ndjson(path):
        firsts.setdefault(drawing.word, drawing.strokes)
        if len(firsts) == len(CLASSES):
            break
    for word, strokes in firsts.items():
        status, answer = _post(client, {"strokes": strokes, "raw": False})
        assert status == 200, (word, answer)
        np.testing.assert_array_equal(np.array(answer["image"], dtype=np.uint8), render(strokes))


def test_a_burst_of_200_concurrent_requests_on_uvicorn_is_all_answered(models):
    body = {"strokes": SNOWMAN, "raw": True}

    async def burst(url: str) -> list[httpx2.Response]:
        limits = httpx2.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx2.AsyncClient(base_url=url, limits=limits, timeout=120) as http:
            return await asyncio.gather(*(http.post("api/predict", json=body) for _ in range(200)))

    with serving(create_app(models)) as url:
        assert url.startswith("http://127.0.0.1:")
        answers = asyncio.run(burst(url))
    assert [r.status_code for r in answers] == [200] * 200
    first = answers[0].json()
    assert all(r.json() == first for r in answers)
