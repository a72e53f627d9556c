"""The demo as a FastAPI app: draw a doodle in the browser, every trained run answers.

Routes (``/openapi.json`` describes them with their schemas):

- ``GET /``: the page (``static/index.html``, no outside files, works offline);
- ``GET /api/models``: ``{"models": [{"name", "kind", "backend", "tta", "accuracy", "classes", "cosines"}],
  "classes"}``;
- ``POST /api/predict``: body ``{"strokes": [[[x...], [y...]], ...], "raw": true}``; answers
  ``{"image": 28x28 ints, "models": [{"name", "kind", "backend", "probabilities", "prediction",
  "saliency", ["cosines"]}], "classes"}`` (see :mod:`doodlelab.demo.predict`).

The request's limits are pydantic constraints (:class:`PredictRequest`): at most
``MAX_STROKES`` strokes and ``MAX_POINTS`` points, every coordinate a finite JSON number
within ``MAX_COORD``, nothing but ``strokes`` and ``raw``. The body is refused past
``MAX_BODY`` bytes before it is parsed. Every malformed request gets a 4xx with
``{"error": one line}``; an unexpected failure is a 500 with one line, its traceback on
the server's terminal.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator
from starlette.exceptions import HTTPException

from doodlelab.demo.models import LoadedModel, all_classes, load_models
from doodlelab.demo.predict import predict
from doodlelab.geometry import SHAPE
from doodlelab.kinds import Backend, Kind

MAX_BODY = 1_000_000  # bytes of one POST body
MAX_STROKES = 500
MAX_POINTS = 10_000  # over all strokes: simplify + render of 10k random points take about a second
MAX_COORD = 1e6  # |coordinate| of a raw stroke; the page sends 0..1000
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'")

Coordinate = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-MAX_COORD, le=MAX_COORD)]
Axis = Annotated[list[Coordinate], Field(min_length=1, max_length=MAX_POINTS)]


class PredictRequest(BaseModel):
    """A drawing: strokes ``[[x...], [y...]]`` (an optional third list, times, is ignored)."""

    model_config = ConfigDict(extra="forbid")
    strokes: Annotated[list[Annotated[list[Axis], Field(min_length=2, max_length=3)]],
                       Field(min_length=1, max_length=MAX_STROKES)]
    raw: StrictBool = Field(True, description="true: screen coordinates; false: simplified 0..255")

    @model_validator(mode="after")
    def _consistent(self) -> PredictRequest:
        points = 0
        for k, stroke in enumerate(self.strokes):
            if len({len(axis) for axis in stroke}) != 1:
                raise ValueError(f"stroke {k} has {len(stroke[0])} x and {len(stroke[1])} y values; "
                                 "they must be as many")
            points += len(stroke[0])
        if points > MAX_POINTS:
            raise ValueError(f"{points} points; at most {MAX_POINTS} are accepted")
        if not self.raw and any(not 0 <= v <= 255 for s in self.strokes for axis in s[:2] for v in axis):
            raise ValueError("simplified strokes must lie in 0..255; send raw=true for screen coordinates")
        return self


class ModelAnswer(BaseModel):
    """One model's answer: probabilities per class, the prediction, and why."""

    name: str
    kind: Kind
    backend: Backend
    probabilities: dict[str, float]
    prediction: str
    saliency: list[list[float]] = Field(description=f"{SHAPE} d score(prediction) / d pixel")
    cosines: dict[str, float] | None = Field(None, description="two-tower runs: cosine to each class word")


class PredictAnswer(BaseModel):
    """The image the models saw and every model's answer."""

    image: list[list[int]] = Field(description=f"{SHAPE} uint8, white on black")
    models: list[ModelAnswer]
    classes: list[str]


def one_line(text: object) -> str:
    """Return ``text`` on one line (whitespace runs become one space), never empty."""
    return " ".join(str(text).split()) or "error"


def _error(status: int, message: object) -> JSONResponse:
    return JSONResponse({"error": one_line(message)[:500]}, status_code=status,
                        headers={"Cache-Control": "no-store"})


EXPECTED = 'expected a JSON object {"strokes": [[[x...], [y...]], ...], "raw": true}'


def _validation_message(exc: RequestValidationError) -> str:
    """Return the first validation error as ``where: what`` (e.g. ``strokes.0.1.3: ...``)."""
    errors = exc.errors()
    if not errors:
        return EXPECTED
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    what = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if first.get("type") == "json_invalid":
        cause = (first.get("ctx") or {}).get("error", "")
        at = f" at character {loc[0]}" if loc else ""
        return f"the request body is not JSON ({cause}{at})"
    if not loc and first.get("type") in ("model_attributes_type", "dict_type", "model_type"):
        return EXPECTED
    return f"{'.'.join(loc) or 'strokes'}: {what}{more}"


def _unparsable_body(exc: HTTPException) -> str:
    """Return why a body that FastAPI could not parse was refused (nesting, number length)."""
    cause = exc.__cause__
    if isinstance(cause, RecursionError):
        return "the request body is nested too deeply to read"
    if isinstance(cause, ValueError):
        return f"the request body cannot be read ({str(cause).split(':')[0]})"  # not the server's advice
    return "the request body cannot be read as JSON"


def _install_error_handlers(app: FastAPI) -> None:
    """Answer every error as ``{"error": one line}`` JSON."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.method == "POST" and not (kind == "application/json" or kind.endswith("+json")):
            sent = f"as {kind[:80]!r}" if kind else "without a Content-Type"
            return _error(415, f"the body is sent {sent}; send it as application/json "
                          "(curl: -H 'Content-Type: application/json')")
        return _error(400, _validation_message(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _error(404, f"no such page: {request.url.path[:200]}")
        if exc.status_code == 405:
            return _error(405, f"{request.method} is not allowed on {request.url.path[:200]}")
        if exc.status_code == 400 and exc.__cause__ is not None:
            return _error(400, _unparsable_body(exc))
        return _error(exc.status_code, exc.detail)

    @app.exception_handler(Exception)
    async def failure(request: Request, exc: Exception) -> JSONResponse:
        traceback.print_exception(exc, file=sys.stderr)
        return _error(500, "internal error while predicting; see the server's terminal")


class BodyLimit:
    """ASGI middleware: refuse a request body over ``limit`` bytes with 413 before it is parsed."""

    def __init__(self, app: Callable[..., Awaitable[None]], limit: int = MAX_BODY) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = f"the request body is over {self.limit} bytes; at most {self.limit} are accepted"
        declared = dict(scope.get("headers", ())).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await _error(413, too_big)(scope, receive, send)
            return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:  # a body without (or beyond) its Content-Length
                raise HTTPException(413, too_big)
            return message

        await self.app(scope, counted, send)


def page() -> bytes:
    """Return the bytes of the demo page, ``static/index.html`` inside the package."""
    from importlib.resources import files

    return (files("doodlelab.demo") / "static" / "index.html").read_bytes()


def create_app(runs: Sequence[LoadedModel | str | Path]) -> FastAPI:
    """Return the demo app answering with ``runs`` (loaded models, or run folders to load)."""
    models = (list(runs) if all(isinstance(r, LoadedModel) for r in runs)
              else load_models(list(runs)))  # type: ignore[arg-type]
    # No /docs or /redoc: their pages load Swagger/ReDoc from a CDN, and the demo works offline.
    app = FastAPI(title="doodlelab demo", description="Draw a doodle; every trained run answers.",
                  docs_url=None, redoc_url=None)
    app.state.models = models
    html = page()
    _install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=MAX_BODY)

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False)
    @app.api_route("/index.html", methods=["GET", "HEAD"], response_class=HTMLResponse,
                   include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(html, headers={"Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer",
                                           "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    @app.get("/api/models")
    def list_models() -> dict[str, Any]:
        """The loaded models and every class they know."""
        return {"models": [m.info() for m in models], "classes": all_classes(models)}

    @app.post("/api/predict", response_model=PredictAnswer, response_model_exclude_none=True,
              responses={400: {"description": "a malformed drawing: {\"error\": one line}"},
                         413: {"description": "a body over the size limit"}})
    def predict_drawing(drawing: PredictRequest) -> dict[str, Any]:
        """Render the drawing as the dataset did and return every model's answer."""
        return predict(models, drawing.strokes, raw=drawing.raw)

    return app
