"""The checked readers: .npz by header, JSON by schema, bounded files and lines."""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest

from doodlelab.config import MAX_PARAMETERS, Config, ConfigError, build_config
from doodlelab.errors import UserError
from doodlelab.files.checked import (
    Choice,
    ListOf,
    Member,
    Num,
    Obj,
    check_json,
    open_bounded,
    parse_json_line,
    read_json_checked,
    read_npz_checked,
)


def _member(header_shape: tuple[int, ...], data: bytes, descr: str = "<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": header_shape})
    return buf.getvalue() + data


def test_a_member_is_judged_by_its_header_before_it_is_read(tmp_path):
    path = tmp_path / "a.npz"
    with zipfile.ZipFile(path, "w") as zf:  # claims 40 GB, holds 8 bytes
        zf.writestr("w.npy", _member((100000, 100000), b"\0" * 8))
    with pytest.raises(UserError, match=r"member w claims 40000000000 bytes .* above the limit"):
        read_npz_checked(path, Member(None))
    with zipfile.ZipFile(path, "w") as zf:  # claims 8 floats, holds 2
        zf.writestr("w.npy", _member((8,), b"\0" * 8))
    with pytest.raises(UserError, match="holds 8 data bytes but its header claims 32"):
        read_npz_checked(path, {"w": Member((8,))})


def test_read_npz_checked_returns_exactly_the_expected_members(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, w=np.arange(6, dtype=np.float32).reshape(2, 3), names=np.array(["a", "b"]))
    got = read_npz_checked(path, {"w": Member((2, None), "f", "float32"), "names": Member((2,), "U")})
    np.testing.assert_array_equal(got["w"], np.arange(6).reshape(2, 3))
    assert got["names"].tolist() == ["a", "b"]
    with pytest.raises(UserError, match=r"member w has shape \(2, 3\), expected \(3, N\); redo"):
        read_npz_checked(path, {"w": Member((3, None)), "names": Member((2,), "U")}, fix="redo")
    with pytest.raises(UserError, match="member w has dtype float32, expected float64"):
        read_npz_checked(path, {"w": Member((2, 3), "f", "float64"), "names": Member((2,), "U")})
    with pytest.raises(UserError, match=r"holds members \['names', 'w'\], expected \['w'\]"):
        read_npz_checked(path, {"w": Member((2, 3))})
    (tmp_path / "none.npz").write_bytes(b"not a zip at all")
    with pytest.raises(UserError, match="none.npz is not a readable .npz archive"):
        read_npz_checked(tmp_path / "none.npz", Member(None))
    with pytest.raises(UserError, match="missing.npz is missing"):
        read_npz_checked(tmp_path / "missing.npz", Member(None))


SPEC = Obj({"name": str, "n": int, "lr": Num(0, 1), "kind": Choice(("a", "b")),
            "tags": ListOf(str, min_len=1, unique=True), "inner": Obj({"x": float}, extra=False)},
           required=("name",))


@pytest.mark.parametrize("value, message", [
    ([], "f must be an object"),
    ({}, "f lacks the field 'name'"),
    ({"name": 3}, "f.name must be a string"),
    ({"name": "x", "n": True}, "f.n must be an integer"),
    ({"name": "x", "n": 2.5}, "f.n must be an integer"),
    ({"name": "x", "lr": 2}, r"f.lr must be a number in \[0, 1\]"),
    ({"name": "x", "lr": "0.1"}, "f.lr must be a number"),
    ({"name": "x", "lr": float("inf")}, "f.lr must be a number"),
    ({"name": "x", "kind": "c"}, "f.kind must be one of a, b"),
    ({"name": "x", "kind": ["a"]}, "f.kind must be one of a, b"),
    ({"name": "x", "tags": []}, "f.tags must be a list of 1 to"),
    ({"name": "x", "tags": ["a", 1]}, r"f.tags\[1\] must be a string"),
    ({"name": "x", "tags": ["a", "a"]}, "f.tags names an item twice"),
    ({"name": "x", "inner": {"y": 1}}, "f.inner has an unknown field 'y'"),
    ({"name": "x", "inner": {"x": None}}, "f.inner.x must be a number"),
])
def test_check_json_names_the_field_that_breaks_the_schema(value, message):
    with pytest.raises(UserError, match=message):
        check_json(value, SPEC, "f")


def test_check_json_accepts_what_meets_the_schema():
    ok = {"name": "x", "n": 3, "lr": 0.5, "kind": "b", "tags": ["a", "b"], "inner": {"x": 2}, "other": [1]}
    assert check_json(ok, SPEC, "f") is ok


@pytest.mark.parametrize("text, message", [
    ("[" * 40 + "]" * 40, "nested deeper than 32 levels"),
    ("[" + "9" * 5000 + "]", "not valid JSON"),  # Python's 4300-digit limit on int()
    ("[NaN]", "NaN is not a JSON number"),
    ("[-Infinity]", "-Infinity is not a JSON number"),
    ("{1: 2}", "not valid JSON"),
])
def test_parse_json_line_refuses_what_would_recurse_or_is_not_json(text, message):
    with pytest.raises(UserError, match=message):
        parse_json_line(text, "here")


def test_parse_json_line_keeps_what_is_in_range():
    assert parse_json_line("[" * 32 + "1e308" + "]" * 32, "x") is not None
    assert parse_json_line("[" + "9" * 400 + "]", "x") == [int("9" * 400)]  # callers check the range


def test_read_json_checked_bounds_the_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"a": "b" * 100}))
    with pytest.raises(UserError, match="above the limit of 50"):
        read_json_checked(path, max_bytes=50)
    assert read_json_checked(path, Obj({"a": str})) == {"a": "b" * 100}
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(UserError, match="c.json is not UTF-8 text; fix it"):
        read_json_checked(path)


def test_open_bounded_refuses_devices_pipes_and_folders(tmp_path):
    with pytest.raises(UserError, match="/dev/zero is not a regular file"):
        open_bounded("/dev/zero", 1 << 20)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="not a regular file"):
        open_bounded(fifo, 1 << 20)  # refused before open(), which would block without a writer
    with pytest.raises(UserError, match="is a folder"):
        open_bounded(tmp_path, 1 << 20)


def test_resource_limits_name_the_field():
    assert Config().n_parameters()["classifier"] == 785 * 512 + 513 * 256 + 257 * 5  # 534,533
    with pytest.raises(ConfigError, match="model.hidden must be a list of 1 to 16 widths"):
        build_config({"model": {"hidden": [8] * 17}})
    with pytest.raises(ConfigError, match=f"at most {MAX_PARAMETERS:,} parameters"):
        build_config({"model": {"hidden": [8192, 8192]}})  # 73.6 M
    with pytest.raises(ConfigError, match="two_tower.text_hidden must be a list of at most 16"):
        build_config({"two_tower": {"text_hidden": [4] * 17}})
    build_config({"model": {"hidden": [4096, 4096]}})  # 20.0 M: allowed
    with pytest.raises(ConfigError, match="config: model must be a \\[section\\] table"):
        build_config({"model": "x"})
