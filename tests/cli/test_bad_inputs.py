"""Every bad file or setting is one line on stderr, exit status 2, no traceback, nothing written.

One table of cases, each a hostile input seen on main at 64d968c (issue 9): a damaged
run folder for ``evaluate``, bad settings for ``train``, bad strokes for ``render``.
The run folders are trained once per module with tiny settings.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from doodlelab.cli.commands import main
from tests.conftest import make_course_folder

TINY = ["--set", "model.hidden=[4]", "--set", "train.epochs=1", "--set", "train.batch_size=32"]
WORDS = ("rabbit", "yoga", "hand", "snowman", "motorbike")
DOODLE = [[[0, 40, 120, 255], [120, 60, 40, 255]]]


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> dict[str, Path]:
    """A course folder, a GloVe file, and one finished tiny run of each model."""
    root = tmp_path_factory.mktemp("lab")
    data = make_course_folder(root / "data", n_train=40, n_test=10)
    glove = root / "glove.txt"
    rng = np.random.default_rng(0)
    glove.write_text("".join(f"{w} " + " ".join(f"{v:.3f}" for v in rng.normal(size=3)) + "\n"
                             for w in WORDS))
    vectors = ["--set", f"two_tower.word_vectors={json.dumps(str(glove))}"]
    for model, extra in (("classifier", []), ("two_tower", vectors)):
        assert main(["train", model, "--data", str(data), "--out", str(root / model), *TINY, *extra]) == 0
    return {"root": root, "data": data, "glove": glove, "classifier": root / "classifier",
            "two_tower": root / "two_tower"}


# -- ways to damage a file ------------------------------------------------------------------

def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _weights(run: Path) -> dict[str, np.ndarray]:
    with np.load(run / "weights.npz") as z:
        return {k: z[k] for k in z.files}


def _changed_weight(change: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        w = _weights(run)
        w["0.weight"] = change(w["0.weight"])
        (run / "weights.npz").write_bytes(_npz_bytes(**w))
    return damage


def _huge_header(run: Path) -> None:
    # a member whose .npy header claims (100000, 100000) float32 (37 GiB) over 16 bytes of data
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        member, {"descr": "<f4", "fortran_order": False, "shape": (100000, 100000)})
    member.write(b"\0" * 16)
    w = _weights(run)
    with zipfile.ZipFile(run / "weights.npz", "w") as zf:
        for k, v in w.items():
            data = member.getvalue() if k == "0.weight" else _npz_member(v)
            zf.writestr(f"{k}.npy", data)


def _npz_member(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _pickled_member(run: Path) -> None:
    w = _weights(run)
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(run / "weights.npz", "w") as zf:
        for k, v in w.items():
            zf.writestr(f"{k}.npy", buf.getvalue() if k == "0.weight" else _npz_member(v))


def _config(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        raw = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps(change(raw)))
    return damage


def _set(raw: dict, key: str, value: object) -> dict:
    section, _, field = key.partition(".")
    if field:
        raw[section][field] = value
    else:
        raw[section] = value
    return raw


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:300])


def _fewer_class_vectors(run: Path) -> None:
    with np.load(run / "class_vectors.npz") as z:
        names, vectors = z["names"], z["vectors"]
    (run / "class_vectors.npz").write_bytes(_npz_bytes(names=names[:3], vectors=vectors[:3]))


EVALUATE_CASES = {
    # name: (model, damage, what the line must say)
    "empty weights.npz": ("classifier", lambda r: (r / "weights.npz").write_bytes(b""),
                          "weights.npz is not a readable .npz archive"),
    "truncated weights.npz": ("classifier", lambda r: _truncate(r / "weights.npz"),
                              "weights.npz is not a readable .npz archive"),
    "member claims 100000x100000": ("classifier", _huge_header, "0.weight has shape (100000, 100000)"),
    "pickled member": ("classifier", _pickled_member, "pickled"),
    "NaN weights": ("classifier", _changed_weight(lambda w: np.full_like(w, np.nan)), "NaN or infinite"),
    "inf weights": ("classifier", _changed_weight(lambda w: np.full_like(w, -np.inf)), "NaN or infinite"),
    "int64 weights": ("classifier", _changed_weight(lambda w: (w * 100).astype(np.int64)), "dtype int64"),
    "weights of another shape": ("classifier", _changed_weight(lambda w: w[:, :3]), "has shape (784, 3)"),
    "config.json is a list": ("classifier", _config(lambda raw: [raw]), "config.json must be an object"),
    "config.json model is a string": ("classifier", _config(lambda raw: _set(raw, "model", "x")),
                                      "config.json.model must be an object"),
    "config.json unknown task": ("classifier", _config(lambda raw: _set(raw, "task", "x")),
                                 "config.json.task must be one of classifier, two_tower"),
    "config.json epochs of the wrong type": ("classifier",
                                            _config(lambda raw: _set(raw, "train.epochs", "ten")),
                                            "train.epochs must be of type int"),
    "config.json classes not strings": ("classifier", _config(lambda raw: _set(raw, "classes", [1, 2])),
                                        "config.json.classes[0] must be a string"),
    "config.json nested 100k deep": ("classifier",
                                     lambda r: (r / "config.json").write_text("[" * 100_000 + "]" * 100_000),
                                     "nested deeper than"),
    "config.json not UTF-8": ("classifier", lambda r: (r / "config.json").write_bytes(b'{"task": "\xff"}'),
                              "config.json is not UTF-8"),
    "class_vectors.npz with fewer rows than classes": ("two_tower", _fewer_class_vectors,
                                                       "member names has shape (3,), expected (5,)"),
}


def _restamp(run: Path) -> None:
    """Record the damaged files' SHA-256 in run.json, as a writer that wrote them would have.

    The run folder's own check (a file that is not the one its run wrote) would refuse the
    folder first; this makes each case reach the reader of the damaged file itself.
    """
    status = json.loads((run / "run.json").read_text())
    status["files"] = {name: hashlib.sha256((run / name).read_bytes()).hexdigest()
                       for name in status["files"]}
    (run / "run.json").write_text(json.dumps(status))


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line_exit_2(argv: list[str], capsys, message: str) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("doodlelab: error: ") and "Traceback" not in captured.err
    assert message in captured.err, captured.err


@pytest.mark.parametrize("case", list(EVALUATE_CASES))
def test_evaluate_refuses_a_damaged_run_folder(case: str, lab, tmp_path: Path, capsys) -> None:
    model, damage, message = EVALUATE_CASES[case]
    run = tmp_path / "run"
    shutil.copytree(lab[model], run)
    damage(run)
    _restamp(run)
    before = _snapshot(run)
    out = tmp_path / "metrics.json"
    _one_line_exit_2(["evaluate", str(run), "--data", str(lab["data"]), "--json", str(out)], capsys, message)
    assert not out.exists() and _snapshot(run) == before


TRAIN_CASES = {
    # name: (model, extra arguments ({toml}: a file of BAD_TOML[name]), what the line must say)
    "50 hidden layers": ("classifier", ["--set", "model.hidden=" + str([64] * 50)],
                         "model.hidden must be a list of 1 to 16 widths"),
    "3 x 8192 hidden units": ("classifier", ["--set", "model.hidden=[8192, 8192, 8192]"],
                              "model.hidden must be a model of at most 50,000,000 parameters"),
    "a width too large": ("classifier", ["--set", "model.hidden=[100000]"], "model.hidden must be widths in"),
    "word tower of 40 layers": ("two_tower", ["--set", "two_tower.text_hidden=" + str([8] * 40)],
                                "two_tower.text_hidden must be a list of at most 16 widths"),
    "word vectors from /dev/zero": ("two_tower", ["--set", "two_tower.word_vectors=/dev/zero"],
                                    "/dev/zero is not a regular file"),
    "non-UTF-8 TOML": ("classifier", ["--config", "{toml}"], "is not UTF-8 text"),
    "a TOML section that is a value": ("classifier", ["--config", "{toml}"],
                                       "model must be a [section] table"),
}
BAD_TOML = {"non-UTF-8 TOML": b'[model]\nactivation = "r\xe9lu"\n',  # Latin-1, not UTF-8
            "a TOML section that is a value": b"model = 3\n"}


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_train_refuses_bad_settings_before_writing(case: str, lab, tmp_path: Path, capsys) -> None:
    model, extra, message = TRAIN_CASES[case]
    toml = tmp_path / "bad.toml"
    toml.write_bytes(BAD_TOML.get(case, b""))
    extra = [a.replace("{toml}", str(toml)) for a in extra]
    out = tmp_path / "run"
    _one_line_exit_2(["train", model, "--data", str(lab["data"]), "--out", str(out), *TINY, *extra],
                     capsys, message)
    assert not out.exists()


def _line(obj: object) -> str:
    return json.dumps(obj) + "\n"


RENDER_CASES = {
    # name: (ndjson text, extra arguments, what the line must say)
    "a line nested 100k deep": ('{"drawing": ' + "[" * 100_000 + "]" * 100_000 + "}\n", [],
                                "s.ndjson:1: JSON nested deeper than"),
    "a 400-digit coordinate": ('{"word": "hand", "drawing": [[[' + "9" * 400 + ', 1], [1, 2]]]}\n', ["--raw"],
                               "s.ndjson:1: stroke 0 holds a number beyond float range"),
    "a coordinate beyond float range": ('{"word": "hand", "drawing": [[[1e400, 1], [1, 2]]]}\n', ["--raw"],
                                        "s.ndjson:1: stroke 0 holds NaN or infinite coordinates"),
    "--raw with +1e308": (_line({"word": "hand", "drawing": [[[1e308, 0], [0, 5]]]}), ["--raw"],
                          "raw strokes must lie within +-1e+09"),
    "--raw with -1e308": (_line({"word": "hand", "drawing": [[[-1e308, 0], [0, 5]]]}), ["--raw"],
                          "raw strokes must lie within +-1e+09"),
    "coordinates outside 0..255 without --raw": (_line({"word": "hand", "drawing": [[[0, 300], [0, 5]]]}), [],
                                                 "s.ndjson:1: stroke 0 has coordinates in [0, 300]"),
    "negative coordinates without --raw": (_line({"word": "hand", "drawing": [[[-4, 30], [0, 5]]]}), [],
                                           "simplified strokes lie in 0..255"),
    "one file for images and labels": (_line({"word": "hand", "drawing": DOODLE}), ["--labels", "{images}"],
                                       "give each its own file"),
    "a line longer than 1 MB": ('{"drawing": [[[' + "1, " * 400_000 + "1], [1]]]}\n", [], "longer than"),
}


@pytest.mark.parametrize("case", list(RENDER_CASES))
def test_render_refuses_bad_strokes_before_writing(case: str, tmp_path: Path, capsys) -> None:
    text, extra, message = RENDER_CASES[case]
    src = tmp_path / "s.ndjson"
    src.write_text(text)
    images = tmp_path / "x.npy"
    extra = [a.replace("{images}", str(images)) for a in extra]
    _one_line_exit_2(["render", str(src), "--images", str(images), *extra], capsys, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.ndjson"]


def _claims_37_gib(path: Path) -> None:
    path.write_bytes(_member_bytes((100000, 100000)) + b"\0" * 16)


def _member_bytes(shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buf.getvalue()


DATA_CASES = {
    "train_images.npy claims 100000x100000": (_claims_37_gib, "header claims 10000000000 bytes"),
    "train_images.npy truncated": (lambda p: p.write_bytes(p.read_bytes()[:-100]), "truncated or corrupt"),
    "train_images.npy empty": (lambda p: p.write_bytes(b""), "no NumPy header"),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_train_refuses_a_damaged_data_file_before_allocating(case: str, lab, tmp_path: Path, capsys) -> None:
    damage, message = DATA_CASES[case]
    data = tmp_path / "data"
    shutil.copytree(lab["data"], data)
    damage(data / "train_images.npy")
    out = tmp_path / "run"
    _one_line_exit_2(["train", "classifier", "--data", str(data), "--out", str(out), *TINY], capsys, message)
    assert not out.exists()


@pytest.mark.parametrize("case", ["class_vectors.npz with fewer rows than classes", "NaN weights",
                                  "int64 weights", "config.json is a list"])
def test_the_demo_refuses_the_same_damaged_runs(case: str, lab, tmp_path: Path) -> None:
    # the demo loads runs through the same readers (it served 3 classes, or answered bare NaN)
    from doodlelab.demo.models import load_model
    from doodlelab.errors import UserError

    model, damage, message = EVALUATE_CASES[case]
    run = tmp_path / "run"
    shutil.copytree(lab[model], run)
    damage(run)
    _restamp(run)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_model(run)
