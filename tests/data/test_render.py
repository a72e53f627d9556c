"""Strokes to bitmaps: bit-exact with the dataset, the simplification recipe, bad input."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import need_cairo

need_cairo()

from doodlelab.cli.commands import main
from doodlelab.data.render import (
    check_drawing,
    read_ndjson,
    render,
    render_ndjson,
    simplify,
)
from doodlelab.errors import UserError

# A small rabbit-ish doodle in simplified coordinates (starts at 0, spans 0..255).
DOODLE = [[[0, 40, 120, 200, 255, 180, 60, 0], [120, 60, 40, 80, 150, 230, 255, 120]],
          [[60, 70, 80], [40, 0, 40]], [[150, 160, 170], [40, 5, 40]], [[120], [150]]]


def _write_ndjson(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# -- bit-exact with the dataset's own bitmaps ------------------------------------------

def test_render_matches_the_official_bitmaps_bit_for_bit(shared_data_dir):
    fixture = json.loads((shared_data_dir / "fixtures" / "renderer_exact_match.json").read_text())
    assert len(fixture) >= 5
    for item in fixture:
        expected = np.array(item["expected_bitmap_28x28"], dtype=np.uint8)
        got = render(item["drawing"])
        assert got.dtype == np.uint8 and got.shape == (28, 28)
        np.testing.assert_array_equal(got, expected, err_msg=f"key_id {item['key_id']}")


def test_every_shared_stroke_drawing_renders_to_an_image_of_the_course_folder(shared_data_dir):
    course = shared_data_dir / "quickdraw_subset_np"
    images = np.concatenate([np.load(course / "train_images.npy"), np.load(course / "test_images.npy")])
    known = {im.tobytes() for im in images}
    rendered, labels, words = render_ndjson(
        shared_data_dir / "strokes" / "quickdraw_5class_simplified.ndjson",
        ["rabbit", "yoga", "hand", "snowman", "motorbike"], progress=False)
    assert len(rendered) > 2000 and set(labels.tolist()) == {0, 1, 2, 3, 4}
    missing = sum(im.tobytes() not in known for im in rendered)
    assert missing == 0, f"{missing} of {len(rendered)} drawings render to no course image"


# -- properties that hold for any drawing ----------------------------------------------

def test_render_is_white_on_black_and_centres_the_bounding_box():
    img = render(DOODLE)
    assert img.dtype == np.uint8 and img.shape == (28, 28)
    assert img.max() == 255 and img[0].max() == 0 and img[:, 0].max() == 0  # padding stays black
    rows, cols = np.nonzero(img)
    assert abs((rows.min() + rows.max()) / 2 - 13.5) <= 1 and abs((cols.min() + cols.max()) / 2 - 13.5) <= 1


def test_render_depends_on_the_extent_not_on_the_start_of_simplified_strokes():
    small = [[[x // 2 for x in xs], [y // 2 for y in ys]] for xs, ys in DOODLE]
    img = render(small)
    rows, cols = np.nonzero(img)
    assert abs((rows.min() + rows.max()) / 2 - 13.5) <= 1 and abs((cols.min() + cols.max()) / 2 - 13.5) <= 1
    assert rows.max() - rows.min() < 20  # half the size, still centred
    assert not np.array_equal(img, render(DOODLE))


def test_one_point_stroke_is_a_round_dot_in_the_middle():
    img = render([[[0], [0]]])  # simplified form: a lone point sits at 0
    assert img[13:15, 13:15].min() > 0 and img.sum() > 0
    np.testing.assert_array_equal(img, img.T)  # a round cap is symmetric
    np.testing.assert_array_equal(img, img[::-1, ::-1])


def test_mirrored_drawing_renders_mirrored():
    mirrored = [[[255 - x for x in xs], ys] for xs, ys in DOODLE]
    diff = np.abs(render(mirrored).astype(int) - render(DOODLE)[:, ::-1].astype(int))
    assert diff.mean() < 1 and diff.max() <= 16  # cairo's sampling grid is not exactly symmetric


def test_simplify_follows_the_published_recipe():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 2 * np.pi, 400)
    circle = [[(300 + 90 * np.cos(t) + rng.normal(0, 0.2, t.size)).tolist(),
               (-50 + 60 * np.sin(t)).tolist()]]  # wider than tall, far from the origin
    line = [[[10, 500], [10, 10]], [[10, 20, 30, 40], [30, 30, 30, 30]]]
    out = simplify(circle + line)
    pts = np.concatenate([np.array(s) for s in out], axis=1)
    assert pts.dtype.kind == "i" and pts.min(axis=1).tolist() == [0, 0] and pts.max() == 255
    assert 8 <= len(out[0][0]) < 100  # the circle keeps some points, far fewer than 400
    assert [len(s[0]) for s in out[1:]] == [2, 2]  # straight lines collapse to their ends


def test_rdp_error_stays_within_epsilon():
    t = np.linspace(0, 3, 300)
    raw = [[(t * 80).tolist(), (100 + 40 * np.sin(3 * t)).tolist()]]
    out = np.array(simplify(raw, epsilon=2.0)[0], dtype=float)
    scale = 255.0 / (t.max() * 80)
    dense = np.stack([t * 80 * scale, (40 * np.sin(3 * t) - (40 * np.sin(3 * t)).min()) * scale])
    # distance of every original point to the simplified polyline
    a, b = out[:, :-1], out[:, 1:]
    ab = b - a
    best = np.full(dense.shape[1], np.inf)
    for k in range(ab.shape[1]):
        s = np.clip(((dense - a[:, k:k + 1]) * ab[:, k:k + 1]).sum(0) / (ab[:, k] ** 2).sum(), 0, 1)
        best = np.minimum(best, np.hypot(*(dense - (a[:, k:k + 1] + s * ab[:, k:k + 1]))))
    assert best.max() <= 2.0 + 1.0  # epsilon plus resampling and rounding to integers


def test_simplifying_a_simplified_drawing_barely_changes_its_bitmap(shared_data_dir):
    drawings = list(read_ndjson(shared_data_dir / "strokes" / "quickdraw_5class_simplified.ndjson"))[:50]
    for d in drawings:
        a, b = render(d.strokes).astype(int), render(simplify(d.strokes)).astype(int)
        assert np.abs(a - b).mean() < 6, d.key_id


def test_simplify_then_render_is_the_same_at_any_scale_and_place():
    big = [[[3 * x + 1000 for x in xs], [3 * y - 70 for y in ys]] for xs, ys in DOODLE]
    diff = np.abs(render(simplify(big)).astype(int) - render(simplify(DOODLE)).astype(int))
    assert diff.mean() < 2


# -- bad input -------------------------------------------------------------------------

@pytest.mark.parametrize("bad, message", [
    ([], "non-empty list"),
    ("strokes", "non-empty list"),
    ([[[1, 2, 3], [4, 5]]], "same number"),
    ([[[], []]], "at least one"),
    ([[[1, "a"], [2, 3]]], "not numbers"),
    ([[[1, float("nan")], [2, 3]]], "NaN"),
    ([[1, 2]], "not [[x...], [y...]]"),
])
def test_check_drawing_names_the_problem(bad, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace(".", r"\.")):
        check_drawing(bad)


def test_read_ndjson_names_the_bad_line(tmp_path):
    path = tmp_path / "s.ndjson"
    path.write_text(json.dumps({"word": "hand", "drawing": DOODLE}) + "\n\n{not json\n")
    it = read_ndjson(path)
    assert next(it).word == "hand"
    with pytest.raises(UserError, match=r"s\.ndjson:3: not valid JSON"):
        next(it)
    path.write_text(json.dumps({"word": "hand"}) + "\n")
    with pytest.raises(UserError, match=r":1: expected an object"):
        list(read_ndjson(path))
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(UserError, match="not a UTF-8"):
        list(read_ndjson(path))
    with pytest.raises(UserError, match="missing.ndjson does not exist"):
        list(read_ndjson(tmp_path / "missing.ndjson"))


def test_missing_cairo_is_one_actionable_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cairocffi", None)  # import now raises ImportError
    with pytest.raises(UserError, match="apt-get install libcairo2"):
        render(DOODLE)


# -- the CLI ---------------------------------------------------------------------------

def test_cli_render_writes_images_and_labels(tmp_path, capsys):
    rows = [{"word": w, "key_id": str(i), "drawing": DOODLE} for i, w in
            enumerate(["hand", "zebra", "rabbit", "hand"])]
    src = _write_ndjson(tmp_path / "s.ndjson", rows)
    images, labels = tmp_path / "x.npy", tmp_path / "y.npy"
    assert main(["render", str(src), "--images", str(images), "--labels", str(labels)]) == 0
    x, y = np.load(images), np.load(labels)
    assert x.shape == (3, 28, 28) and x.dtype == np.uint8 and y.tolist() == [2, 0, 2]  # zebra skipped
    np.testing.assert_array_equal(x[0], render(DOODLE))
    captured = capsys.readouterr()
    assert "3 drawings (hand 2, rabbit 1)" in captured.out
    assert captured.err == ""  # stderr is not a terminal here: no tqdm bar (it printed one before)

    assert main(["render", str(src), "--images", str(images)]) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err
    assert main(["render", str(src), "--images", str(images), "--overwrite",
                 "--classes", "zebra,hand"]) == 0
    assert np.load(images).shape == (3, 28, 28)


def test_cli_render_bad_file_writes_nothing(tmp_path, capsys):
    src = tmp_path / "s.ndjson"
    src.write_text(json.dumps({"word": "hand", "drawing": DOODLE}) + "\n" + '{"drawing": [[1]]}\n')
    out = tmp_path / "x.npy"
    assert main(["render", str(src), "--images", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "s.ndjson:2" in err and "Traceback" not in err
    assert not out.exists()
    assert main(["render", str(src), "--images", str(out), "--classes", "a,a"]) == 2
    assert main(["render", str(tmp_path / "none.ndjson"), "--images", str(out)]) == 2
    assert not out.exists()


# -- properties (hypothesis) -------------------------------------------------------------------

_simplified = st.lists(st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 255), min_size=n, max_size=n),
    st.lists(st.integers(0, 255), min_size=n, max_size=n)).map(list)), min_size=1, max_size=4)


@settings(max_examples=25, deadline=None)
@given(drawing=_simplified)
def test_any_simplified_drawing_renders_to_a_lit_28x28_bitmap_that_mirrors(drawing):
    lo = min(min(xs) for xs, _ in drawing)
    drawing = [[[x - lo for x in xs], ys] for xs, ys in drawing]  # simplified drawings start at x = 0
    image = render(drawing)
    assert image.shape == (28, 28) and image.dtype == np.uint8
    assert image.max() > 0  # every stroke, even one point, leaves ink
    # mirrored within its own extent 0..hi it renders mirrored (the centring is symmetric then)
    hi = max(max(xs) for xs, _ in drawing)
    mirrored = [[[hi - x for x in xs], ys] for xs, ys in drawing]
    flipped = render(mirrored).astype(int)
    # cairo's sampling grid is not exactly symmetric: measured on 400 random drawings, the mean
    # pixel difference stays below 1.3 and the total ink within 0.5 %
    assert np.abs(flipped - image[:, ::-1].astype(int)).mean() < 3
    assert abs(flipped.sum() - int(image.sum())) <= 0.02 * image.sum()


_raw = st.lists(st.integers(1, 10).flatmap(lambda n: st.tuples(
    st.lists(st.floats(-1e9, 1e9), min_size=n, max_size=n),
    st.lists(st.floats(-1e9, 1e9), min_size=n, max_size=n)).map(list)), min_size=1, max_size=3)


@settings(max_examples=25, deadline=None)
@given(drawing=_raw)
def test_simplify_maps_any_raw_drawing_into_the_canvas(drawing):
    out = simplify(drawing)
    assert len(out) == len(drawing)
    for xs, ys in out:
        assert len(xs) == len(ys) >= 1
        assert all(isinstance(v, int) and 0 <= v <= 255 for v in xs + ys)
    assert render(out).shape == (28, 28)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["drawing", "word", "x"]),
                                                                inner, max_size=3),
    max_leaves=20)


@settings(max_examples=60, deadline=None)
@given(value=_json_values, raw=st.booleans())
def test_read_ndjson_of_any_json_line_yields_checked_drawings_or_one_user_error(value, raw, tmp_path_factory):
    path = tmp_path_factory.mktemp("nd") / "s.ndjson"
    path.write_text(json.dumps(value) + "\n")
    try:
        drawings = list(read_ndjson(path, raw=raw))
    except UserError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    for d in drawings:  # accepted: the strokes are safe to simplify and render
        assert render(simplify(d.strokes) if raw else d.strokes).shape == (28, 28)
