"""A run folder is one run or nothing: one writer, moved into place when finished, checked on load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from doodlelab.cli import main
from doodlelab.lock import FolderLock

SMALL = ["--set", "model.hidden=[16]", "--set", "train.batch_size=16", "--set", "train.epochs=2"]


def _train(course: Path, out: Path, *extra: str) -> int:
    return main(["train", "classifier", "--data", str(course), "--out", str(out), *SMALL, *extra])


def test_a_second_writer_is_refused_naming_the_holder(course_dir, tmp_path, capsys):
    out = tmp_path / "run"
    with FolderLock(out):
        assert _train(course_dir, out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"pid {os.getpid()}" in err and "being written" in err
    assert not out.exists() and not (tmp_path / ".run.partial").exists()
    assert _train(course_dir, out) == 0  # released: the next writer goes ahead


def test_a_stale_lock_is_taken_over(course_dir, tmp_path, capsys):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs
    lock = tmp_path / ".run.lock"
    lock.write_text(json.dumps({"pid": gone.pid, "host": os.uname().nodename, "since": "then"}))
    assert _train(course_dir, tmp_path / "run") == 0
    assert "stale lock" in capsys.readouterr().err and not lock.exists()


def test_a_folder_mixing_two_runs_is_refused(course_dir, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _train(course_dir, a) == 0
    assert _train(course_dir, b, "--set", "train.seed=1") == 0
    status = json.loads((a / "run.json").read_text())
    assert status["status"] == "finished" and set(status["files"]) >= {"config.json", "weights.npz"}
    assert not (tmp_path / ".a.partial").exists() and not (a / "checkpoint.npz").exists()
    (a / "weights.npz").write_bytes((b / "weights.npz").read_bytes())
    capsys.readouterr()
    assert main(["evaluate", str(a), "--data", str(course_dir)]) == 2
    err = capsys.readouterr().err
    assert "mixes two runs" in err and err.count("\n") == 1


def test_an_overwrite_replaces_the_old_run_only_when_finished(course_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(course_dir, out) == 0
    (out / "notes.txt").write_text("mine")
    old = (out / "weights.npz").read_bytes()
    assert _train(course_dir, out, "--overwrite", "--set", "train.epochs=bad") == 2  # refused early
    assert (out / "weights.npz").read_bytes() == old
    assert _train(course_dir, out, "--overwrite", "--set", "train.seed=3") == 0
    assert (out / "weights.npz").read_bytes() != old and (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == 3
    assert main(["evaluate", str(out), "--data", str(course_dir)]) == 0


@pytest.mark.parametrize("argv, message", [
    (["--resume"], "needs --out"),
    (["--out", "X", "--resume", "--overwrite"], "pass one of them"),
])
def test_resume_usage_errors(course_dir, argv, message, capsys):
    assert main(["train", "classifier", "--data", str(course_dir), *argv]) == 2
    assert message in capsys.readouterr().err
