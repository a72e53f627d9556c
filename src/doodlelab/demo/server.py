"""A small local web server: draw a doodle in the browser, every trained run answers.

Routes:

- ``GET /``: the page (``static/index.html``, no outside files, works offline);
- ``GET /api/models``: ``{"models": [{"name", "task", "backend", "tta", "accuracy"}], "classes"}``;
- ``POST /api/predict``: body ``{"strokes": [[[x...], [y...]], ...], "raw": true}``; answers
  ``{"image": 28x28 ints, "models": [{"name", "task", "backend", "probabilities", "prediction"}],
  "classes"}``.

The browser's strokes (screen coordinates) go through the dataset's own recipe,
:func:`~doodlelab.data.render.simplify` then :func:`~doodlelab.data.render.render`, so
the models see exactly the kind of 28x28 image they were trained on, and each run
predicts with its own ``eval.tta`` setting. Bad requests (not JSON, wrong shape, too
big) get HTTP 4xx with ``{"error": one line}``; an unexpected failure is HTTP 500 with a
one-line error, and its traceback goes to the server's terminal, never to the client.

Models are called under one lock: the backends set process-wide BLAS and torch thread
counts around every forward pass, so two requests must not interleave. The demo is for
one person at a time; a doodle takes a few milliseconds.

Heavy imports (numpy, the tasks, cairo) happen inside the functions, so the CLI can
import :func:`add_parser` cheaply.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import traceback
from dataclasses import dataclass, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from doodlelab.errors import UserError

MAX_BODY = 1_000_000  # bytes of one POST body
DRAIN_LIMIT = 4 * MAX_BODY  # a larger body is refused unread; the connection just closes
MAX_STROKES = 500
MAX_POINTS = 10_000  # over all strokes: simplify + render of 10k random points take about a second
SOCKET_TIMEOUT = 10.0  # seconds a client may take to send its request
_PREDICT_LOCK = threading.Lock()


@dataclass(frozen=True)
class LoadedModel:
    """One finished run ready to answer: its task object (``model``) and prediction rule."""

    name: str
    task: str  # "classifier" or "two_tower"
    backend: str  # "numpy" or "torch"
    run_dir: Path
    model: Any  # a Task: logits(x (N, 784)) -> (N, K)
    tta: bool
    accuracy: float | None  # test accuracy from metrics.json, if it holds one
    classes: tuple[str, ...] = ()  # the run's class names in label order

    def info(self) -> dict[str, Any]:
        """Return what the page shows about this model (JSON-ready)."""
        return {"name": self.name, "task": self.task, "backend": self.backend, "tta": self.tta,
                "accuracy": self.accuracy, "classes": list(self.classes)}


def all_classes(models: list[LoadedModel]) -> list[str]:
    """Return every class any of ``models`` knows, in first-seen order."""
    return list(dict.fromkeys(c for m in models for c in m.classes))


def load_model(run_dir: str | Path) -> LoadedModel:
    """Return the trained model of one finished run folder; UserError if it is not one."""
    from doodlelab.runfolder import RunFolder

    run = RunFolder(run_dir)
    if not run.path.is_dir():
        raise UserError(f"{run.path} is not a folder; pass run folders written by `doodlelab train`")
    run.require_finished()
    accuracy = run.metrics.get("accuracy")
    label = f"{run.path.resolve().name} ({run.task}, {run.backend})"
    return LoadedModel(label, run.task, run.backend, run.path, run.load_task(), bool(run.settings.eval.tta),
                       float(accuracy) if isinstance(accuracy, (int, float)) else None, run.classes)


def load_models(run_dirs: list[str | Path] | tuple[str | Path, ...]) -> list[LoadedModel]:
    """Return one LoadedModel per run folder, named ``<folder> (<task>, <backend>)``, names unique."""
    if not run_dirs:
        raise UserError("no run folder given; pass at least one folder written by `doodlelab train`")
    models: list[LoadedModel] = []
    seen: set[str] = set()
    for run_dir in run_dirs:
        model = load_model(run_dir)
        name, k = model.name, 2
        while name in seen:  # two folders of one name (a/np, b/np): number the later ones
            name, k = f"{model.name} #{k}", k + 1
        seen.add(name)
        models.append(replace(model, name=name))
    return models


def _check_strokes(strokes: object, raw: bool) -> list:
    """Return the strokes after checking shape, size limits and (simplified) coordinate range."""
    from doodlelab.data.render import check_drawing

    if isinstance(strokes, (list, tuple)) and len(strokes) > MAX_STROKES:
        raise UserError(f"strokes: {len(strokes)} strokes; at most {MAX_STROKES} are accepted")
    arrays = check_drawing(strokes, "strokes")
    points = sum(a.shape[1] for a in arrays)
    if points > MAX_POINTS:
        raise UserError(f"strokes: {points} points; at most {MAX_POINTS} are accepted")
    if not raw and any(a.min() < 0 or a.max() > 255 for a in arrays):
        raise UserError("strokes: simplified strokes must lie in 0..255; "
                        "send raw=true for screen coordinates")
    return list(strokes)  # type: ignore[arg-type]


def predict(models: list[LoadedModel], raw_strokes: object, *, raw: bool = True) -> dict[str, Any]:
    """Render the drawing once and return every model's class probabilities (JSON-ready).

    ``raw_strokes`` is a list of ``[[x...], [y...]]`` strokes in any coordinates (a
    browser's); ``raw=False`` means they are already in the dataset's simplified form
    (0..255). Returns ``{"image": (28, 28) ints 0..255, "models": [{"name", "task",
    "backend", "probabilities": {class: p}, "prediction"}], "classes": [...]}``.
    """
    import numpy as np

    from doodlelab.data.course import validate_images
    from doodlelab.data.render import render, simplify
    from doodlelab.scoring import probabilities

    strokes = _check_strokes(raw_strokes, raw)
    image = render(simplify(strokes) if raw else strokes)  # (28, 28) uint8
    x = validate_images(image[None], "drawing")  # (1, 784) float32 in [0, 1], as training saw
    answers = []
    with _PREDICT_LOCK:
        for m in models:
            p = probabilities(m.model, x, tta=m.tta)[0]  # (K,) float64
            answers.append({
                "name": m.name, "task": m.task, "backend": m.backend,
                "probabilities": {c: float(v) for c, v in zip(m.classes, p)},
                "prediction": m.classes[int(np.argmax(p))],
            })
    return {"image": image.tolist(), "models": answers, "classes": all_classes(list(models))}


def page() -> bytes:
    """Return the bytes of the demo page, ``static/index.html`` inside the package."""
    from importlib.resources import files

    return (files("doodlelab.demo") / "static" / "index.html").read_bytes()


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "error"


class DemoHandler(BaseHTTPRequestHandler):
    """Request handler of the demo; the models and the page live on ``self.server``."""

    server_version = "doodlelab-demo"
    timeout = SOCKET_TIMEOUT
    server: DemoServer

    # -- responses ---------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode("utf-8"), "application/json; charset=utf-8")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer an error as ``{"error": one line}`` JSON (also for http.server's own errors)."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self.close_connection = True
        self._json(code, {"error": _one_line(message or phrase)})

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet per request; the terminal shows only the URL and real failures."""

    # -- routes ------------------------------------------------------------------------

    def do_GET(self) -> None:
        """Serve the page and the model list."""
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            csp = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                   "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'")
            self._send(200, self.server.page, "text/html; charset=utf-8",
                       {"Content-Security-Policy": csp, "Referrer-Policy": "no-referrer"})
        elif path == "/api/models":
            models = self.server.models
            self._json(200, {"models": [m.info() for m in models], "classes": all_classes(models)})
        else:
            self.send_error(404, f"no such page: {path[:200]}")

    def do_HEAD(self) -> None:
        """Answer like GET without the body."""
        self.do_GET()

    def do_POST(self) -> None:
        """Predict the drawing in the JSON body."""
        path = self.path.split("?", 1)[0]
        if path != "/api/predict":
            self.send_error(404, f"no such page: {path[:200]}")
            return
        body = self._read_body()
        if body is None:
            return
        try:
            request = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            self.send_error(400, f"the request body is not JSON ({_one_line(str(exc))[:200]})")
            return
        if not isinstance(request, dict) or "strokes" not in request:
            self.send_error(400, 'expected a JSON object {"strokes": [[[x...], [y...]], ...]}')
            return
        raw = request.get("raw", True)
        if not isinstance(raw, bool):
            self.send_error(400, '"raw" must be true (screen coordinates) or false (simplified 0..255)')
            return
        try:
            answer = predict(self.server.models, request["strokes"], raw=raw)
        except UserError as exc:
            self.send_error(400, str(exc))
            return
        except Exception:  # the client gets one line; the server's terminal the traceback
            traceback.print_exc(file=sys.stderr)
            self.send_error(500, "internal error while predicting; see the server's terminal")
            return
        self._json(200, answer)

    def _read_body(self) -> bytes | None:
        """Return the request body, or answer 4xx and return None (missing, bad or too big)."""
        if self.headers.get("Transfer-Encoding"):
            self.send_error(411, "send the body with a Content-Length, not chunked")
            return None
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            self.send_error(411, "a POST needs a Content-Length header")
            return None
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if length < 0:
            self.send_error(400, f"bad Content-Length {length_text[:40]!r}")
            return None
        if length > MAX_BODY:
            if length <= DRAIN_LIMIT:  # read and drop it, so the client is not reset mid-send
                left = length
                while left > 0:
                    chunk = self.rfile.read(min(65536, left))
                    if not chunk:
                        break
                    left -= len(chunk)
            self.send_error(413, f"the request body is {length} bytes; at most {MAX_BODY} are accepted")
            return None
        body = self.rfile.read(length)
        if len(body) != length:
            self.send_error(400, f"the request body ended after {len(body)} of {length} bytes")
            return None
        return body


class DemoServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that holds the loaded models and the page bytes."""

    def __init__(self, address: tuple[str, int], models: list[LoadedModel]) -> None:
        self.models = list(models)
        self.page = page()
        if ":" in address[0]:  # an IPv6 literal such as ::1
            self.address_family = socket.AF_INET6
        super().__init__(address, DemoHandler)

    @property
    def url(self) -> str:
        """Return the page's address, e.g. ``http://127.0.0.1:8000/``."""
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def make_server(models: list[LoadedModel], host: str = "127.0.0.1", port: int = 0) -> DemoServer:
    """Return a bound (not yet serving) demo server; port 0 picks a free port (see ``.url``)."""
    if not models:
        raise UserError("the demo needs at least one trained model")
    if not 0 <= int(port) <= 65535:
        raise UserError(f"--port {port}: expected 0..65535 (0 picks a free port)")
    try:
        return DemoServer((host, int(port)), models)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                        "choose another --port or --host") from None


def serve(run_dirs: list[str | Path], host: str = "127.0.0.1", port: int = 8000,
          open_browser: bool = False) -> None:
    """Load the runs, print the URL and serve the demo until Ctrl-C."""
    models = load_models(run_dirs)
    server = make_server(models, host, port)
    try:
        for m in models:
            acc = f", test accuracy {m.accuracy:.3f}" if m.accuracy is not None else ""
            print(f"  {m.name}: tta={'on' if m.tta else 'off'}{acc}")
        if host not in ("127.0.0.1", "localhost", "::1"):
            print(f"warning: listening on {host}: other machines may reach this page", file=sys.stderr)
        print(f"doodlelab demo: open {server.url} (Ctrl-C stops)", flush=True)
        if open_browser:
            import webbrowser

            webbrowser.open(server.url)
        server.serve_forever()
    except KeyboardInterrupt:
        print("doodlelab demo: stopped")
    finally:
        server.server_close()


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``demo RUN_DIR [RUN_DIR ...] [--host] [--port] [--open]`` to a subparsers object."""
    p = subparsers.add_parser("demo", help="a web page where you draw and every trained run answers",
                              description="Serve a page where a person draws a doodle with mouse, pen "
                              "or finger, and every given run predicts it.")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="finished run folders")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--open", dest="open_browser", action="store_true", help="open the page in a browser")
    return p


def command(args: argparse.Namespace) -> int:
    """Run ``doodlelab demo``; return the exit status (UserError propagates to the CLI)."""
    serve(args.run_dirs, args.host, args.port, open_browser=getattr(args, "open_browser", False))
    return 0
