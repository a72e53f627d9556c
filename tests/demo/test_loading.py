"""Loading runs for the demo, and its command line: bad runs are refused at startup with one line."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pytest

from doodlelab.cli.commands import main
from doodlelab.data.course import CLASSES
from doodlelab.demo.models import load_models
from doodlelab.demo.predict import predict
from doodlelab.demo.serve import add_parser, bind, command
from doodlelab.errors import UserError


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def _demo_refuses(run: Path, capsys, needle: str) -> None:
    """Assert ``doodlelab demo RUN`` exits 2 with one line naming ``needle`` before serving."""
    assert main(["demo", str(run), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("doodlelab: error: ") and needle in err, err
    assert "Traceback" not in err


def test_folders_that_are_not_finished_runs_are_refused(run_dirs, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_bytes((run_dirs[0] / "config.json").read_bytes())
    for bad in (empty, unfinished, tmp_path / "missing"):
        with pytest.raises(UserError, match=str(bad.name)):
            load_models([bad])
        _demo_refuses(bad, capsys, bad.name)
    with pytest.raises(UserError):
        load_models([])


def _tampered(run: Path, to: Path) -> Path:
    """Copy a run without its ``run.json`` (a folder from before it existed), so only the demo's
    own checks stand between a tampered file and the page (with it, the checksums refuse first)."""
    bad = _copy(run, to)
    (bad / "run.json").unlink()
    return bad


def test_nan_weights_are_refused_at_startup(run_dirs, tmp_path, capsys):
    bad = _tampered(run_dirs[0], tmp_path / "nan")
    with np.load(bad / "weights.npz") as z:
        weights = {k: z[k] for k in z.files}
    key = sorted(weights)[-1]
    weights[key].flat[0] = np.nan
    np.savez(bad / "weights.npz", **weights)
    with pytest.raises(UserError, match="NaN"):
        load_models([bad])
    _demo_refuses(bad, capsys, key)
    checked = _copy(run_dirs[0], tmp_path / "nan-checked")  # with run.json: its checksum refuses
    np.savez(checked / "weights.npz", **weights)
    _demo_refuses(checked, capsys, "weights.npz")


@pytest.mark.parametrize("rows", [3, 6])
def test_class_vectors_of_another_class_count_are_refused(run_dirs, tmp_path, capsys, rows):
    bad = _tampered(run_dirs[1], tmp_path / f"rows{rows}")  # the numpy two-tower run
    with np.load(bad / "class_vectors.npz") as z:
        vectors = z["vectors"]
    vectors = np.resize(vectors, (rows, vectors.shape[1]))
    np.savez(bad / "class_vectors.npz", names=np.array([f"c{i}" for i in range(rows)]), vectors=vectors)
    with pytest.raises(UserError, match=fr"member names has shape \({rows},\), expected \(5,\)"):
        load_models([bad])
    _demo_refuses(bad, capsys, "class_vectors.npz: member names has shape")


def test_two_folders_of_one_name_get_distinct_names(run_dirs, tmp_path):
    other = _copy(run_dirs[0], tmp_path / run_dirs[0].name)
    names = [m.name for m in load_models([run_dirs[0], other])]
    assert names == ["np (classifier, numpy)", "np (classifier, numpy) #2"]


def test_parser_and_command(run_dirs, tmp_path):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["demo", str(run_dirs[0]), str(run_dirs[1]), "--port", "0"])
    assert args.run_dirs == run_dirs[:2] and args.host == "127.0.0.1" and args.port == 0
    assert parser.parse_args(["demo", "x"]).port == 8000
    with pytest.raises(UserError, match="not a run folder"):
        command(parser.parse_args(["demo", str(tmp_path)]))
    held = bind("127.0.0.1", 0)
    try:
        with pytest.raises(UserError, match="cannot listen"):
            bind("127.0.0.1", held.getsockname()[1])
    finally:
        held.close()
    with pytest.raises(UserError, match="0..65535"):
        bind("127.0.0.1", 70000)


def test_a_run_of_other_classes_answers_with_its_own_names(run_dirs, tmp_path):
    from tests.conftest import make_k_class_folder

    names = ["cat", "dog", "hot air balloon"]
    data = make_k_class_folder(tmp_path / "three", names, n_train=45, n_test=12)
    run = tmp_path / "three-run"
    assert main(["train", "classifier", "--data", str(data), "--out", str(run),
                 "--set", "train.epochs=2", "--set", "model.hidden=[16]"]) == 0
    models = load_models([run_dirs[0], run])
    assert models[1].classes == tuple(names) and models[0].classes == CLASSES
    answer = predict(models, [[[0, 50, 100], [0, 80, 20]]])
    assert list(answer["models"][1]["probabilities"]) == names
    assert answer["models"][1]["prediction"] in names
    assert np.array(answer["models"][1]["saliency"]).shape == (28, 28)
    assert answer["classes"] == [*CLASSES, *names]
