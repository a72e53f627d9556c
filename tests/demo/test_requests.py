"""Malformed requests to the demo: every one a 4xx with a one-line JSON error, never a 5xx."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doodlelab.demo.app import MAX_BODY, MAX_POINTS, MAX_STROKES, create_app
from tests.demo.test_app import _assert_one_line_error, _strict_json


@pytest.fixture(scope="module")
def client(models) -> TestClient:
    """TestClient on the demo app; a server exception would raise here, not hide as a 500."""
    return TestClient(create_app(models))


LINE = "[[1, 2], [1, 2]]"
BAD_BODIES = {
    "not JSON": b"{bad",
    "not UTF-8": b"\xff\xfe{}",
    "deeply nested": b"[" * 100_000,
    "deeply nested object": b'{"strokes": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "not an object": b"[1, 2]",
    "no strokes": b'{"lines": []}',
    "an unknown key": b'{"strokes": [' + LINE.encode() + b'], "colour": 1}',
    "strokes not a list": b'{"strokes": "abc"}',
    "empty drawing": b'{"strokes": []}',
    "stroke of one list": b'{"strokes": [[[1, 2, 3]]]}',
    "empty stroke": b'{"strokes": [[[], []]]}',
    "x and y of different lengths": b'{"strokes": [[[1, 2, 3], [4, 5]]]}',
    "not numbers": b'{"strokes": [[["a", {}], [1, 2]]]}',
    "numbers as strings": b'{"strokes": [[["1", "2"], [1, 2]]]}',
    "booleans as numbers": b'{"strokes": [[[true, false], [1, 2]]]}',
    "NaN": b'{"strokes": [[[1, NaN], [1, 2]]]}',
    "Infinity": b'{"strokes": [[[1, Infinity], [1, 2]]]}',
    "-Infinity in the times": b'{"strokes": [[[1, 2], [1, 2], [0, -Infinity]]]}',
    "NaN as raw": b'{"strokes": [' + LINE.encode() + b'], "raw": NaN}',
    "NaN under an unknown key": b'{"strokes": [' + LINE.encode() + b'], "x": NaN}',
    "+1e308": b'{"strokes": [[[0, 1e308], [0, 1]]]}',
    "-1e308": b'{"strokes": [[[-1e308, 0], [0, 1]]]}',
    "1e309 (overflows to inf)": b'{"strokes": [[[0, 1e309], [0, 1]]]}',
    "a 400-digit coordinate": b'{"strokes": [[[0, 1' + b"0" * 399 + b'], [0, 1]]]}',
    "a 5000-digit coordinate": b'{"strokes": [[[0, 1' + b"0" * 4999 + b'], [0, 1]]]}',
    "raw not a boolean": b'{"strokes": [' + LINE.encode() + b'], "raw": "yes"}',
    "simplified out of range": b'{"strokes": [[[0, 300], [0, 10]]], "raw": false}',
    "too many points": json.dumps({"strokes": [[list(range(MAX_POINTS + 1)),
                                                list(range(MAX_POINTS + 1))]]}).encode(),
    "too many strokes": json.dumps({"strokes": [[[1], [1]]] * (MAX_STROKES + 1)}).encode(),
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=list(BAD_BODIES))
def test_bad_requests_are_400_with_one_line(client, body):
    resp = client.post("/api/predict", content=body, headers={"Content-Type": "application/json"})
    _assert_one_line_error(resp, 400)


def test_errors_name_the_place_and_the_problem(client):
    def error(body: bytes) -> str:
        return _assert_one_line_error(client.post("/api/predict", content=body,
                                                  headers={"Content-Type": "application/json"}))

    assert error(BAD_BODIES["+1e308"]).startswith("strokes.0.0.1: ")
    assert "finite" in error(BAD_BODIES["NaN"])
    assert "raw=true" in error(BAD_BODIES["simplified out of range"])
    assert f"at most {MAX_POINTS}" in error(BAD_BODIES["too many points"])
    assert "as many" in error(BAD_BODIES["x and y of different lengths"])


def test_a_body_not_sent_as_json_is_415_and_says_how(client):
    resp = client.post("/api/predict", content=b'{"strokes": [' + LINE.encode() + b"]}",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert "application/json" in _assert_one_line_error(resp, 415)
    resp = client.post("/api/predict", content=b'{"strokes": [' + LINE.encode() + b"]}")
    assert "without a Content-Type" in _assert_one_line_error(resp, 415)


def test_oversize_bodies_are_413_before_parsing(client):
    big = json.dumps({"strokes": [[[1] * (MAX_BODY // 4), [2] * (MAX_BODY // 4)]]}).encode()
    assert len(big) > MAX_BODY
    resp = client.post("/api/predict", content=big, headers={"Content-Type": "application/json"})
    assert "at most" in _assert_one_line_error(resp, 413)
    # a body sent in chunks without a Content-Length is counted as it arrives
    chunks = (big[i : i + 65536] for i in range(0, len(big), 65536))
    resp = client.post("/api/predict", content=chunks, headers={"Content-Type": "application/json"})
    _assert_one_line_error(resp, 413)
    # a small body under a huge declared length is refused from the header alone
    resp = client.post("/api/predict", content=b"{}", headers={"Content-Length": str(10**12)})
    _assert_one_line_error(resp, 413)


JSON_LEAVES = (st.none() | st.booleans() | st.integers() | st.text(max_size=5)
               | st.floats(allow_nan=True, allow_infinity=True))
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=30)
NUMBERS = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**400), 10**400)
STROKES = st.lists(st.lists(st.lists(NUMBERS, max_size=4), max_size=4), max_size=4)
BODIES = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries({"strokes": STROKES | JSON_VALUES}, optional={"raw": JSON_LEAVES}),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=BODIES)
def test_random_json_bodies_never_give_a_5xx(client, body):
    text = json.dumps(body)  # Python writes NaN/Infinity bare, as a careless client would
    resp = client.post("/api/predict", content=text.encode(), headers={"Content-Type": "application/json"})
    assert resp.status_code in (200, 400), resp.text  # 413/415 cannot happen here
    answer = _strict_json(resp.text)
    if resp.status_code == 400:
        assert "\n" not in answer["error"]
    else:
        assert len(answer["models"]) == len(client.app.state.models)
