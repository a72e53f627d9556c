"""Downloading class files and building course folders, against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import io
import json
import socket

import numpy as np
import pytest

from doodlelab.data import course
from doodlelab.data.official import ranged
from doodlelab.data.official.download import (
    QUICKDRAW_CLASSES,
    URL_ENV_VAR,
    DownloadError,
    check_class_names,
    download_class,
)
from doodlelab.data.official.fetch import build_course_folder
from doodlelab.errors import UserError
from tests.quickdraw_server import FakeQuickDraw

COURSE_FILES = ("train_images.npy", "train_labels.npy", "test_images.npy", "test_labels.npy")


def npy_bytes(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def class_rows(n: int, label: int, seed: int = 0) -> np.ndarray:
    """(n, 784) uint8 random drawings whose first pixel is ``label``: rows say which class they are."""
    x = np.random.default_rng([seed, label]).integers(0, 256, size=(n, 784), dtype=np.uint8)
    x[:, 0] = label
    return x


def serve_course(server: FakeQuickDraw, n: int = 50) -> dict[str, np.ndarray]:
    rows = {name: class_rows(n + 3 * k, k) for k, name in enumerate(course.CLASSES)}
    server.files.update({name: npy_bytes(x) for name, x in rows.items()})
    return rows


def kept(cache) -> list:
    """Return what a cache folder holds besides its lock files."""
    return [p for p in cache.iterdir() if p.name != ".locks"]


def one_line_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert msg and "\n" not in msg
    return msg


# -- download_class ----------------------------------------------------------------------------------


def test_download_equals_served_file_and_cache_is_reused(server, tmp_path):
    data = npy_bytes(class_rows(50, 0))
    server.files["rabbit"] = data
    path = download_class("rabbit", tmp_path / "cache", server.url, progress=True)
    assert path == tmp_path / "cache" / "rabbit.npy"
    assert path.read_bytes() == data
    assert not (tmp_path / "cache" / "rabbit.npy.part").exists()
    assert server.requests == [("/qd/rabbit.npy", None)]
    assert download_class("rabbit", tmp_path / "cache", server.url, progress=False) == path
    assert len(server.requests) == 1  # served from the cache


def test_names_with_spaces_are_url_quoted_and_env_var_sets_the_base(server, tmp_path, monkeypatch):
    server.files["hot air balloon"] = npy_bytes(class_rows(10, 1))
    monkeypatch.setenv(URL_ENV_VAR, server.url + "/")
    path = download_class("hot air balloon", tmp_path, progress=False)
    assert path.name == "hot air balloon.npy"
    assert server.requests[0][0] == "/qd/hot%20air%20balloon.npy"


def test_cut_off_download_keeps_part_and_resumes_with_range(server, tmp_path):
    data = npy_bytes(class_rows(50, 2))
    server.files["hand"] = data
    server.cut_after = 1000
    with pytest.raises(DownloadError) as excinfo:
        download_class("hand", tmp_path, server.url, progress=False)
    assert "resume" in one_line_error(excinfo)
    assert (tmp_path / "hand.npy.part").stat().st_size == 1000
    assert not (tmp_path / "hand.npy").exists()
    server.cut_after = None
    path = download_class("hand", tmp_path, server.url, progress=False)
    assert server.requests[-1] == ("/qd/hand.npy", "bytes=1000-")
    assert path.read_bytes() == data and not (tmp_path / "hand.npy.part").exists()


def test_existing_part_is_resumed_in_small_chunks(server, tmp_path):
    data = npy_bytes(class_rows(50, 3))
    server.files["snowman"] = data
    (tmp_path / "snowman.npy.part").write_bytes(data[:777])
    path = download_class("snowman", tmp_path, server.url, chunk_size=256, progress=False)
    assert server.requests == [("/qd/snowman.npy", "bytes=777-")]
    assert path.read_bytes() == data


def test_server_without_range_support_restarts_from_zero(server, tmp_path):
    data = npy_bytes(class_rows(50, 4))
    server.files["motorbike"] = data
    server.ranges = False
    (tmp_path / "motorbike.npy.part").write_bytes(data[:300])
    path = download_class("motorbike", tmp_path, server.url, progress=False)
    assert server.requests[0][1] == "bytes=300-"  # a resume was asked for, the server sent it all
    assert path.read_bytes() == data and not list(tmp_path.glob("*.part*"))


def test_a_part_that_is_not_an_npy_start_is_not_resumed(server, tmp_path):
    data = npy_bytes(class_rows(50, 4))
    server.files["motorbike"] = data
    (tmp_path / "motorbike.npy.part").write_bytes(b"stale bytes that must not survive")
    path = download_class("motorbike", tmp_path, server.url, progress=False)
    assert server.requests == [("/qd/motorbike.npy", None)] and path.read_bytes() == data


@pytest.mark.parametrize("part", ["complete", "too long"])
def test_416_finishes_a_complete_part_or_starts_over(server, tmp_path, part):
    data = npy_bytes(class_rows(20, 1))
    server.files["yoga"] = data
    (tmp_path / "yoga.npy.part").write_bytes(data if part == "complete" else data + b"junk")
    path = download_class("yoga", tmp_path, server.url, progress=False)
    assert path.read_bytes() == data
    assert len(server.requests) == (0 if part == "complete" else 2)  # a whole .part needs no request


def test_404_is_one_line_pointing_at_the_list(server, tmp_path):
    with pytest.raises(DownloadError) as excinfo:
        download_class("rabbit", tmp_path, server.url, progress=False)
    msg = one_line_error(excinfo)
    assert "no class named 'rabbit'" in msg and "--list" in msg
    assert kept(tmp_path) == []


def test_server_error_status_is_one_line(server, tmp_path):
    server.status = 503
    with pytest.raises(DownloadError) as excinfo:
        download_class("rabbit", tmp_path, server.url, progress=False)
    assert "HTTP 503" in one_line_error(excinfo)
    assert kept(tmp_path) == []


def test_connection_refused_is_one_line(tmp_path, local_only):
    with socket.socket() as sock:  # a port that nobody listens on any more
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError) as excinfo:
        download_class("rabbit", tmp_path, f"http://127.0.0.1:{port}/qd", progress=False)
    assert "cannot reach" in one_line_error(excinfo)
    assert kept(tmp_path) == []


def test_timeout_is_one_line(server, tmp_path):
    server.files["rabbit"] = npy_bytes(class_rows(5, 0))
    server.delay = 1.0
    with pytest.raises(DownloadError) as excinfo:
        download_class("rabbit", tmp_path, server.url, timeout=0.2, progress=False)
    assert "did not answer within 0.2 s" in one_line_error(excinfo)
    assert not (tmp_path / "rabbit.npy").exists()


GOOD = npy_bytes(class_rows(50, 0))


@pytest.mark.parametrize(
    "body,reason",
    [
        (b"<html><body>Sign in to this network</body></html>", "no NumPy header"),
        (npy_bytes(np.array([{"a": 1}, None], dtype=object), allow_pickle=True), "pickled"),
        (npy_bytes(np.zeros((50, 784), np.float32)), "dtype is float32"),
        (npy_bytes(np.zeros((50, 28, 28), np.uint8)), "shape"),
        (npy_bytes(np.zeros((0, 784), np.uint8)), "no drawings"),
        (npy_bytes(np.asfortranarray(np.zeros((50, 784), np.uint8))), "Fortran"),
        (GOOD[:-100], "truncated"),
        (GOOD + b"extra", "unexpected bytes"),
        (b"\x93NUMPY\x01\x00\x10\x00{'descr': oops   }\n", "malformed"),
        (b"\x93NUMPY\x03\x00" + GOOD[8:], "version (3, 0)"),
    ],
    ids=["html", "pickled", "float", "3d", "empty", "fortran", "truncated", "extra", "bad-header", "v3"],
)
def test_bad_content_is_refused_and_nothing_is_kept(server, tmp_path, body, reason):
    server.files["rabbit"] = body
    with pytest.raises(DownloadError) as excinfo:
        download_class("rabbit", tmp_path, server.url, progress=False)
    msg = one_line_error(excinfo)
    assert reason in msg and "not a Quick, Draw! class file" in msg
    assert kept(tmp_path) == []  # neither .npy nor a .part that could never be resumed


def test_broken_cached_file_is_reported_not_replaced(server, tmp_path):
    (tmp_path / "rabbit.npy").write_bytes(b"not numpy")
    with pytest.raises(DownloadError) as excinfo:
        download_class("rabbit", tmp_path, server.url, progress=False)
    assert "delete it" in one_line_error(excinfo)
    assert (tmp_path / "rabbit.npy").read_bytes() == b"not numpy" and server.requests == []


def test_base_url_must_be_http(tmp_path):
    with pytest.raises(UserError, match="http"):
        download_class("rabbit", tmp_path, "ftp://example.invalid/qd", progress=False)


# -- class names -------------------------------------------------------------------------------------


def test_official_class_list():
    assert len(QUICKDRAW_CLASSES) == 345 == len(set(QUICKDRAW_CLASSES))
    assert QUICKDRAW_CLASSES[0] == "aircraft carrier" and QUICKDRAW_CLASSES[-1] == "zigzag"
    assert {"hot air balloon", "The Eiffel Tower", "teddy-bear", "t-shirt"} <= set(QUICKDRAW_CLASSES)
    assert course.CLASSES == ("rabbit", "yoga", "hand", "snowman", "motorbike") == course.CLASSES
    assert set(course.CLASSES) <= set(QUICKDRAW_CLASSES)


@pytest.mark.parametrize(
    "names,pattern",
    [
        (["rabit"], r"unknown Quick, Draw! class 'rabit' \(did you mean 'rabbit'\?\)"),
        (["the eiffel tower"], r"did you mean 'The Eiffel Tower'"),
        (["teddy bear", "yogga"], r"classes 'teddy bear' \(did you mean 'teddy-bear'.*'yogga' \(did you"),
        (["qwxzzy"], r"unknown Quick, Draw! class 'qwxzzy'; see `doodlelab fetch --list`"),
        (["hand", "hand"], "more than once"),
        ([], "no classes"),
        (["../secrets"], "not a usable class name"),
        ([" rabbit"], "not a usable class name"),
    ],
)
def test_class_name_validation(names, pattern):
    with pytest.raises(UserError, match=pattern) as excinfo:
        check_class_names(names)
    one_line_error(excinfo)


def test_unknown_names_are_allowed_for_custom_servers_but_must_be_file_safe(server, tmp_path):
    assert check_class_names("rabbit") == ["rabbit"]
    server.files["my doodles"] = npy_bytes(class_rows(10, 0))
    assert download_class("my doodles", tmp_path, server.url, allow_unknown=True, progress=False).is_file()
    with pytest.raises(UserError, match="not a usable class name"):
        check_class_names(["a/b"], allow_unknown=True)


# -- build_course_folder -----------------------------------------------------------------------------


def build(server, tmp_path, out="course", seed=7, n_train=20, n_test=10, **kw):
    return build_course_folder(course.CLASSES, tmp_path / out, n_train, n_test, seed=seed,
                               cache_dir=tmp_path / "cache", base_url=server.url, progress=False, **kw)


def test_built_folder_passes_the_course_loader(server, tmp_path):
    rows = serve_course(server)
    manifest = build(server, tmp_path)
    out = tmp_path / "course"
    assert sorted(p.name for p in out.iterdir()) == sorted((*COURSE_FILES, "classes.json"))
    train, test = course.load_split(out, "train"), course.load_split(out, "test")
    assert train.x.shape == (100, 784) and test.x.shape == (50, 784)
    assert np.bincount(train.y).tolist() == [20] * 5 and np.bincount(test.y).tolist() == [10] * 5
    x_train = np.load(out / "train_images.npy", allow_pickle=False)
    x_test = np.load(out / "test_images.npy", allow_pickle=False)
    assert x_train.shape == (100, 28, 28) and x_train.dtype == np.uint8
    assert np.load(out / "train_labels.npy", allow_pickle=False).dtype == np.int64
    assert (x_train[:, 0, 0] == train.y).all() and (x_test[:, 0, 0] == test.y).all()  # right class
    assert len(set(np.diff(train.y))) > 1  # shuffled, not in label blocks
    for k, name in enumerate(course.CLASSES):
        served = {r.tobytes() for r in rows[name]}
        tr = {r.tobytes() for r in x_train[train.y == k].reshape(-1, 784)}
        te = {r.tobytes() for r in x_test[test.y == k].reshape(-1, 784)}
        assert len(tr) == 20 and len(te) == 10 and not tr & te and tr | te <= served
    saved = json.loads((out / "classes.json").read_text())
    assert saved == manifest
    assert saved["classes"] == list(course.CLASSES) and saved["seed"] == 7
    assert saved["counts"] == {"train": 100, "test": 50} and saved["source_url"] == server.url
    for k, src in enumerate(saved["sources"]):
        name = course.CLASSES[k]
        assert src["label"] == k and src["name"] == name and src["drawings"] == 50 + 3 * k
        assert 30 <= src["rows_fetched"] < 30 + 30
        assert src["url"] == f"{server.url}/{name}.npy"


def test_same_seed_same_bytes_other_seed_different(server, tmp_path):
    serve_course(server)
    build(server, tmp_path, out="a", seed=1)
    first = len(server.requests)
    build(server, tmp_path, out="b", seed=1)
    assert len(server.requests) == first + 5  # one header each, then the rows come from the cache
    build(server, tmp_path, out="c", seed=2)
    for fname in (*COURSE_FILES, "classes.json"):
        assert (tmp_path / "a" / fname).read_bytes() == (tmp_path / "b" / fname).read_bytes()
    for fname in ("train_images.npy", "test_images.npy"):
        assert (tmp_path / "a" / fname).read_bytes() != (tmp_path / "c" / fname).read_bytes()


def test_cached_whole_class_files_are_memory_mapped_and_give_the_same_folder(server, tmp_path, monkeypatch):
    serve_course(server)
    build(server, tmp_path, out="ranged")
    for name in course.CLASSES:
        download_class(name, tmp_path / "cache", server.url, progress=False)
    asked = len(server.requests)
    calls = []
    real_load = np.load
    monkeypatch.setattr(ranged.np, "load", lambda *a, **kw: calls.append(kw) or real_load(*a, **kw))
    build(server, tmp_path, out="whole")
    assert len(server.requests) == asked  # nothing more was fetched
    assert len(calls) == 5 and all(kw == {"mmap_mode": "r", "allow_pickle": False} for kw in calls)
    for fname in COURSE_FILES:
        assert (tmp_path / "ranged" / fname).read_bytes() == (tmp_path / "whole" / fname).read_bytes()


def test_refuses_a_non_empty_folder_unless_overwrite(server, tmp_path):
    serve_course(server)
    out = tmp_path / "course"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="--overwrite") as excinfo:
        build(server, tmp_path)
    one_line_error(excinfo)
    assert server.requests == []  # refused before downloading anything
    build(server, tmp_path, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and course.load_split(out, "test").x.shape[0] == 50
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no build folder left


def test_an_existing_empty_folder_is_fine(server, tmp_path):
    serve_course(server)
    (tmp_path / "course").mkdir()
    build(server, tmp_path)
    assert (tmp_path / "course" / "classes.json").is_file()


def test_too_few_drawings(server, tmp_path):
    serve_course(server)
    with pytest.raises(UserError, match=r"class 'rabbit' has only 50 drawings .* fewer than the 60") as exc:
        build(server, tmp_path, n_train=40, n_test=20)
    one_line_error(exc)
    assert not (tmp_path / "course").exists()


@pytest.mark.parametrize(
    "kw,pattern",
    [({"n_train": 0}, "per_class_train"), ({"n_test": 2.5}, "per_class_test"),
     ({"seed": -1}, "seed"), ({"n_train": True}, "per_class_train")],
)
def test_bad_numbers_are_refused_before_any_request(server, tmp_path, kw, pattern):
    with pytest.raises(UserError, match=pattern):
        build(server, tmp_path, **kw)
    assert server.requests == []


def test_build_validates_class_names(server, tmp_path):
    with pytest.raises(UserError, match="did you mean 'snowman'"):
        build_course_folder(["snowmen"], tmp_path / "out", 1, 1, cache_dir=tmp_path, base_url=server.url)
    assert server.requests == []


# -- the CLI: fetch, then train on what it wrote --------------------------------------------------------

def test_cli_fetch_builds_a_folder_that_trains(server, tmp_path, capsys):
    from doodlelab.cli.commands import main

    serve_course(server, n=40)
    server.files["hot air balloon"] = npy_bytes(class_rows(45, 5))
    out, cache = tmp_path / "course", tmp_path / "cache"
    assert main(["fetch", *course.CLASSES, "hot air balloon", "--url", server.url, "--out", str(out),
                 "--cache", str(cache), "--train", "30", "--test", "10", "--seed", "3"]) == 0
    assert "6 classes" in capsys.readouterr().out
    assert main(["train", "classifier", "--data", str(out), "--out", str(tmp_path / "run"),
                 "--set", "train.epochs=2", "--set", "model.hidden=[16]"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "hot air balloon" in metrics["per_class"] and len(metrics["confusion_matrix"]) == 6
    assert main(["fetch", "--url", server.url, "--out", str(out), "--cache", str(cache)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_cli_fetch_list_download_only_and_bad_names(server, tmp_path, capsys):
    from doodlelab.cli.commands import main

    assert main(["fetch", "--list"]) == 0
    names = capsys.readouterr().out.split("\n")
    assert len([n for n in names if n]) == 345 and "hot air balloon" in names
    serve_course(server, n=5)
    assert main(["fetch", "hand", "--download-only", "--url", server.url, "--cache", str(tmp_path)]) == 0
    assert (tmp_path / "hand.npy").is_file() and "hand ->" in capsys.readouterr().out
    assert main(["fetch", "rabit", "--url", server.url, "--cache", str(tmp_path),
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean 'rabbit'" in err
    assert len(server.requests) == 1  # the bad name was refused before any request
