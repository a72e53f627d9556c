"""The browser demo: runs trained in code, served on 127.0.0.1, asked over HTTP."""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import threading
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import skip_without_cairo

skip_without_cairo()

from doodlelab.cli import main
from doodlelab.config import build_config
from doodlelab.data.course import CLASSES, validate_images
from doodlelab.data.render import read_ndjson, render, simplify
from doodlelab.demo.server import (
    MAX_BODY,
    MAX_POINTS,
    DemoServer,
    add_parser,
    command,
    load_models,
    make_server,
    predict,
)
from doodlelab.errors import UserError
from doodlelab.registry import make_task
from doodlelab.scoring import probabilities
from doodlelab.tasks.streams import Streams
from tests.conftest import make_course_folder

HAS_TORCH = importlib.util.find_spec("torch") is not None
TINY = ["--set", "train.epochs=2", "--set", "model.hidden=[16]", "--set", "train.batch_size=16"]

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
def run_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Tiny finished runs: numpy classifier, numpy two-tower without TTA, torch classifier if available."""
    root = tmp_path_factory.mktemp("demo")
    course = make_course_folder(root / "course")
    rng = np.random.default_rng(0)
    glove = root / "glove.tiny.6d.txt"
    glove.write_text("".join(f"{w} " + " ".join(f"{v:.5f}" for v in rng.normal(size=6)) + "\n"
                             for w in CLASSES))
    runs = [root / "np", root / "tt"]
    assert main(["train", "classifier", "--data", str(course), "--out", str(runs[0]), *TINY]) == 0
    assert main(["train", "two_tower", "--data", str(course), "--out", str(runs[1]), *TINY,
                 "--set", "two_tower.embed_dim=8", "--set", "two_tower.text_hidden=[8]",
                 "--set", f"two_tower.word_vectors={json.dumps(str(glove))}",
                 "--set", "eval.tta=false"]) == 0
    if HAS_TORCH:
        runs.append(root / "pt")
        assert main(["train", "classifier", "--backend", "torch", "--data", str(course),
                     "--out", str(runs[2]), *TINY]) == 0
    return runs


@pytest.fixture(scope="module")
def server(run_dirs: list[Path]) -> Iterator[DemoServer]:
    """The demo serving the tiny runs on 127.0.0.1 and a free port, in a thread."""
    srv = make_server(load_models(run_dirs), "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def _request(srv: DemoServer, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _post(srv: DemoServer, obj: object) -> tuple[int, dict]:
    status, headers, body = _request(srv, "POST", "/api/predict", json.dumps(obj).encode(),
                                     {"Content-Type": "application/json"})
    assert headers["content-type"].startswith("application/json")
    return status, json.loads(body)


def _reference_probabilities(run_dir: Path, image: np.ndarray) -> np.ndarray:
    """Return (5,) probabilities of a run on a uint8 image, rebuilt here from the run's own files."""
    raw = json.loads((run_dir / "config.json").read_text())
    cfg = build_config({k: v for k, v in raw.items() if k not in ("task", "backend", "classes")})
    task_name = raw["task"]
    vectors = None
    if task_name == "two_tower":
        with np.load(run_dir / "class_vectors.npz") as z:
            vectors = z["vectors"]
    task = make_task(cfg, raw["backend"], task_name, streams=Streams.from_seed(cfg.train.seed),
                     class_vectors=vectors)
    with np.load(run_dir / "weights.npz") as z:
        task.load_state_dict({k: z[k] for k in z.files})
    x = validate_images(image[None], "image")  # the course loader's uint8 -> float conversion
    return probabilities(task, x, tta=cfg.eval.tta)[0]


def _assert_one_line_error(status: int, answer: dict, expected: int = 400) -> str:
    assert status == expected, answer
    assert set(answer) == {"error"} and isinstance(answer["error"], str) and answer["error"]
    assert "\n" not in answer["error"] and "Traceback" not in answer["error"]
    return answer["error"]


# -- the page and the model list -------------------------------------------------------

def test_the_page_is_package_data_and_is_served(server):
    resource = files("doodlelab.demo") / "static" / "index.html"
    assert resource.is_file()
    status, headers, body = _request(server, "GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert body == resource.read_bytes()
    text = body.decode("utf-8")
    for needle in ("<canvas", "<script>", "pointerdown", "api/predict", "api/models", "Undo", "Clear"):
        assert needle in text, needle
    assert 'src="http' not in text and 'href="http' not in text  # works offline: nothing from outside
    assert "default-src 'none'" in headers["content-security-policy"]


def test_models_are_listed(server, run_dirs):
    status, _, body = _request(server, "GET", "/api/models")
    info = json.loads(body)
    assert status == 200 and info["classes"] == list(CLASSES)
    got = [(m["name"], m["task"], m["backend"], m["tta"]) for m in info["models"]]
    expected = [("np (classifier, numpy)", "classifier", "numpy", True),
                ("tt (two_tower, numpy)", "two_tower", "numpy", False)]
    if HAS_TORCH:
        expected.append(("pt (classifier, torch)", "classifier", "torch", True))
    assert got == expected
    assert all(0.0 <= m["accuracy"] <= 1.0 for m in info["models"])


def test_unknown_routes_and_methods_are_json_errors(server):
    for method, path, code in (("GET", "/nope", 404), ("POST", "/api/nope", 404), ("DELETE", "/", 501)):
        status, headers, body = _request(server, method, path, b"{}" if method == "POST" else None)
        assert headers["content-type"].startswith("application/json")
        _assert_one_line_error(status, json.loads(body), code)


# -- predictions -----------------------------------------------------------------------

def test_predict_renders_once_and_every_model_answers_as_its_run_would(server, run_dirs):
    status, answer = _post(server, {"strokes": SNOWMAN})
    assert status == 200, answer
    image = render(simplify(SNOWMAN))
    np.testing.assert_array_equal(np.array(answer["image"], dtype=np.uint8), image)
    assert answer["classes"] == list(CLASSES)
    assert len(answer["models"]) == len(run_dirs)
    for run_dir, m in zip(run_dirs, answer["models"]):
        p = np.array([m["probabilities"][c] for c in CLASSES])
        assert list(m["probabilities"]) == list(CLASSES)
        assert p.min() >= 0 and abs(p.sum() - 1) < 1e-9
        ref = _reference_probabilities(run_dir, image)
        assert int(np.argmax(p)) == int(np.argmax(ref))
        np.testing.assert_allclose(p, ref, rtol=1e-6, atol=1e-9)
        assert m["prediction"] == CLASSES[int(np.argmax(ref))]
        assert m["name"].startswith(run_dir.name + " (")
    # the Python function gives the same answer as the HTTP route
    assert json.loads(json.dumps(predict(server.models, SNOWMAN))) == answer


def test_simplified_real_drawings_are_rendered_as_the_dataset(server, shared_data_dir):
    path = shared_data_dir / "strokes" / "quickdraw_5class_simplified.ndjson"
    firsts: dict[str, list] = {}
    for drawing in read_ndjson(path):
        firsts.setdefault(drawing.word, drawing.strokes)
        if len(firsts) == len(CLASSES):
            break
    for word, strokes in firsts.items():
        status, answer = _post(server, {"strokes": strokes, "raw": False})
        assert status == 200, (word, answer)
        np.testing.assert_array_equal(np.array(answer["image"], dtype=np.uint8), render(strokes))


def test_concurrent_requests_get_the_same_answer(server):
    expected = _post(server, {"strokes": SNOWMAN})[1]
    results: list[dict] = []

    def ask() -> None:
        results.append(_post(server, {"strokes": SNOWMAN})[1])

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert results == [expected] * 6


# -- bad requests ----------------------------------------------------------------------

BAD_BODIES = {
    "not JSON": b"{bad",
    "not UTF-8": b"\xff\xfe{}",
    "deeply nested": b"[" * 100_000,
    "not an object": b"[1, 2]",
    "no strokes": b'{"lines": []}',
    "strokes not a list": b'{"strokes": "abc"}',
    "empty drawing": b'{"strokes": []}',
    "stroke of one list": b'{"strokes": [[[1, 2, 3]]]}',
    "x and y of different lengths": b'{"strokes": [[[1, 2, 3], [4, 5]]]}',
    "not numbers": b'{"strokes": [[["a", {}], [1, 2]]]}',
    "NaN": b'{"strokes": [[[1, NaN], [1, 2]]]}',
    "raw not a boolean": b'{"strokes": [[[1, 2], [1, 2]]], "raw": "yes"}',
    "simplified out of range": b'{"strokes": [[[0, 300], [0, 10]]], "raw": false}',
    "too many points": json.dumps({"strokes": [[list(range(MAX_POINTS + 1)),
                                                list(range(MAX_POINTS + 1))]]}).encode(),
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=list(BAD_BODIES))
def test_bad_requests_are_400_with_one_line(server, body):
    status, headers, raw = _request(server, "POST", "/api/predict", body,
                                    {"Content-Type": "application/json"})
    assert headers["content-type"].startswith("application/json")
    _assert_one_line_error(status, json.loads(raw))


def test_oversize_and_unsized_bodies_are_refused(server):
    big = json.dumps({"strokes": [[[1] * (MAX_BODY // 4), [2] * (MAX_BODY // 4)]]}).encode()
    assert len(big) > MAX_BODY
    status, _, raw = _request(server, "POST", "/api/predict", big)
    assert "at most" in _assert_one_line_error(status, json.loads(raw), 413)
    # an absurd Content-Length is refused without waiting for the body
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.putrequest("POST", "/api/predict")
        conn.putheader("Content-Length", str(10**12))
        conn.endheaders()
        resp = conn.getresponse()
        _assert_one_line_error(resp.status, json.loads(resp.read()), 413)
    finally:
        conn.close()
    for length, code in (("-5", 400), ("ten", 400)):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            conn.putrequest("POST", "/api/predict")
            conn.putheader("Content-Length", length)
            conn.endheaders()
            resp = conn.getresponse()
            _assert_one_line_error(resp.status, json.loads(resp.read()), code)
        finally:
            conn.close()


# -- loading runs, the command line ----------------------------------------------------

def test_folders_that_are_not_finished_runs_are_user_errors(run_dirs, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_bytes((run_dirs[0] / "config.json").read_bytes())
    for bad in (empty, unfinished, tmp_path / "missing"):
        with pytest.raises(UserError, match=str(bad.name)):
            load_models([bad])
    with pytest.raises(UserError):
        load_models([])


def test_two_folders_of_one_name_get_distinct_names(run_dirs, tmp_path):
    other = tmp_path / run_dirs[0].name
    other.mkdir()
    for path in run_dirs[0].iterdir():
        if path.is_file():
            (other / path.name).write_bytes(path.read_bytes())
    names = [m.name for m in load_models([run_dirs[0], other])]
    assert names == ["np (classifier, numpy)", "np (classifier, numpy) #2"]


def test_parser_and_command(run_dirs, tmp_path, server):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["demo", str(run_dirs[0]), str(run_dirs[1]), "--port", "0"])
    assert args.run_dirs == run_dirs[:2] and args.host == "127.0.0.1" and args.port == 0
    assert parser.parse_args(["demo", "x"]).port == 8000
    with pytest.raises(UserError, match="not a run folder"):
        command(parser.parse_args(["demo", str(tmp_path)]))
    busy = server.server_address[1]  # the port the module's server already holds
    with pytest.raises(UserError, match="cannot listen"):
        make_server(server.models, "127.0.0.1", busy)


def test_a_run_of_other_classes_answers_with_its_own_names(run_dirs, tmp_path):
    from tests.test_cli import _k_class_folder

    names = ["cat", "dog", "hot air balloon"]
    data = _k_class_folder(tmp_path / "three", names, n_train=45, n_test=12)
    run = tmp_path / "three-run"
    assert main(["train", "classifier", "--data", str(data), "--out", str(run),
                 "--set", "train.epochs=2", "--set", "model.hidden=[16]"]) == 0
    models = load_models([run_dirs[0], run])
    assert models[1].classes == tuple(names) and models[0].classes == CLASSES
    answer = predict(models, [[[0, 50, 100], [0, 80, 20]]])
    assert list(answer["models"][1]["probabilities"]) == names
    assert answer["models"][1]["prediction"] in names
    assert answer["classes"] == [*CLASSES, *names]
