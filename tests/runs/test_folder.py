"""A run folder is one run or nothing: one writer, moved into place when finished, checked on
load, and an interrupted run resumes to the same bytes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from doodlelab.cli.commands import main
from doodlelab.files.atomic import read_csv
from doodlelab.files.lock import FolderLock
from tests.conftest import need_module, write_tiny_glove

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


def test_a_lock_held_by_a_killed_unreaped_process_is_stale(course_dir, tmp_path, capsys):
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    stat = Path(f"/proc/{zombie.pid}/stat")
    deadline = time.monotonic() + 30
    while stat.is_file() and ") Z " not in stat.read_text() and time.monotonic() < deadline:
        time.sleep(0.01)  # ended but not waited for: the pid still answers signals
    if not stat.is_file():
        zombie.wait()
        pytest.skip("no /proc on this system")
    lock = tmp_path / ".run.lock"
    lock.write_text(json.dumps({"pid": zombie.pid, "host": os.uname().nodename, "since": "then"}))
    assert _train(course_dir, tmp_path / "run") == 0
    assert "stale lock" in capsys.readouterr().err and not lock.exists()
    zombie.wait()


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


def _weights(run: Path) -> dict[str, bytes]:
    with np.load(run / "weights.npz") as z:
        return {name: z[name].tobytes() for name in z.files}


def _history_without_timing(run: Path) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in read_csv(run / "history.csv")]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["classifier", "two_tower"])
def test_sigkill_mid_training_then_resume_gives_the_uninterrupted_run(course_dir, tmp_path, test_seed, model):
    """Killed at a seeded random point, resumed: the same metrics, weights and history, to the bit."""
    sets = ["--set", "model.hidden=[24]", "--set", "train.batch_size=8", "--set", "train.epochs=40",
            "--set", "train.restore_best=true", "--set", "model.dropout=0.2"]
    if model == "two_tower":
        glove = write_tiny_glove(tmp_path / "glove.tiny.6d.txt")
        sets += ["--set", f"two_tower.word_vectors={json.dumps(str(glove))}",  # sampled negatives too
                 "--set", "two_tower.embed_dim=8", "--set", "two_tower.loss=triplet",
                 "--set", "two_tower.align_weight=0.5"]
    env = {**os.environ, "DOODLELAB_THREADS": "1"}
    cmd = [sys.executable, "-m", "doodlelab", "train", model, "--data", str(course_dir), *sets]
    subprocess.run([*cmd, "--out", str(tmp_path / "whole")], env=env, check=True, timeout=600,
                   capture_output=True)
    stop_after = random.Random(test_seed).randint(2, 20)  # after a whole number of epochs or mid-way
    cut = tmp_path / "cut"
    proc = subprocess.Popen([*cmd, "--out", str(cut)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    history = tmp_path / ".cut.partial" / "history.csv"
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        if history.is_file() and history.read_text().count("\n") > stop_after:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (cut / "metrics.json").exists()
    assert main(["evaluate", str(cut), "--data", str(course_dir)]) == 2  # nothing finished there
    done = subprocess.run([*cmd, "--out", str(cut), "--resume"], env=env, timeout=600,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    whole = tmp_path / "whole"
    assert (cut / "metrics.json").read_bytes() == (whole / "metrics.json").read_bytes()
    assert _weights(cut) == _weights(whole)
    resumed = _history_without_timing(cut)
    assert resumed == _history_without_timing(whole)
    assert [row["epoch"] for row in resumed] == [str(e) for e in range(1, 41)]


@pytest.mark.slow
def test_sigterm_stops_at_a_safe_point_and_prints_the_resume_command(course_dir, tmp_path):
    cmd = [sys.executable, "-m", "doodlelab", "train", "classifier", "--data", str(course_dir),
           "--out", str(tmp_path / "run"), "--set", "model.hidden=[24]", "--set", "train.batch_size=8",
           "--set", "train.epochs=400"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    checkpoint = tmp_path / ".run.partial" / "checkpoint.npz"
    deadline = time.monotonic() + 600
    while not checkpoint.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    status = json.loads((tmp_path / ".run.partial" / "run.json").read_text())
    assert status["status"] == "interrupted" and checkpoint.is_file()
    assert not (tmp_path / ".run.lock").exists()
    assert main(["train", "classifier", "--data", str(course_dir), "--out", str(tmp_path / "run"),
                 "--set", "model.hidden=[24]", "--set", "train.batch_size=8",
                 "--set", "train.epochs=400", "--set", "train.seed=5", "--resume"]) == 2  # other settings
    assert main(["train", "classifier", "--data", str(course_dir), "--out", str(tmp_path / "run"),
                 "--set", "model.hidden=[24]"]) == 2  # an interrupted run is not silently discarded


@pytest.mark.parametrize("argv, message", [
    (["--resume"], "needs --out"),
    (["--out", "X", "--resume", "--overwrite"], "pass one of them"),
])
def test_resume_usage_errors(course_dir, argv, message, capsys):
    assert main(["train", "classifier", "--data", str(course_dir), *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_fit_resumed_from_a_checkpoint_ends_where_the_whole_fit_ends(course_dir, backend):
    if backend == "torch":
        need_module("torch", "torch")
    import copy

    import numpy as np

    from doodlelab.config import load_config
    from doodlelab.data.prepare import prepare
    from doodlelab.training.fit import fit_new

    cfg = load_config(None, ["model.hidden=[12]", "train.batch_size=8", "train.epochs=6",
                             "train.restore_best=true", "model.dropout=0.3"])
    data = prepare(cfg, course_dir, test=False)
    x, y = data.train.x, data.train.y
    arrays = (x[data.train_idx], y[data.train_idx], x[data.val_idx], y[data.val_idx])
    saved = {}

    def keep(a, meta):
        saved[meta["epoch"]] = copy.deepcopy((a, meta))

    whole, result = fit_new(cfg, backend, "classifier", *arrays, progress=False, checkpoint=keep)
    assert sorted(saved) == [1, 2, 3, 4, 5, 6]
    resumed, again = fit_new(cfg, backend, "classifier", *arrays, progress=False, resume=saved[3])
    assert [r["val_loss"] for r in again.history] == pytest.approx([r["val_loss"] for r in result.history],
                                                                   abs=0 if backend == "numpy" else 1e-5)
    for name, w in whole.state_dict().items():
        if backend == "numpy":
            np.testing.assert_array_equal(resumed.state_dict()[name], w)
        else:
            np.testing.assert_allclose(resumed.state_dict()[name], w, atol=1e-5)


def test_an_interrupted_run_is_found_and_resumed_in_process(course_dir, tmp_path, monkeypatch):
    from doodlelab.config import load_config
    from doodlelab.data.prepare import prepare
    from doodlelab.runs.folder import RunFolder
    from doodlelab.runs.train_command import run_identity, train_run

    cfg = load_config(None, ["model.hidden=[12]", "train.batch_size=8", "train.epochs=5"])
    data = prepare(cfg, course_dir)
    train_run(data, tmp_path / "whole", cfg, progress=False)
    write = RunFolder.write_checkpoint

    def stop_after_two(self, arrays, state):
        write(self, arrays, state)
        if state["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunFolder, "write_checkpoint", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        train_run(data, tmp_path / "cut", cfg, progress=False)
    monkeypatch.undo()
    cut = RunFolder(tmp_path / "cut")
    assert cut.can_resume(run_identity(data, cfg, "numpy", "classifier"))
    assert not cut.can_resume(run_identity(data, cfg, "numpy", "two_tower"))
    assert not cut.finished and not (tmp_path / ".cut.lock").exists()
    train_run(data, tmp_path / "cut", cfg, progress=False, resume=True)
    assert cut.finished and not cut.can_resume(run_identity(data, cfg, "numpy", "classifier"))
    whole = (tmp_path / "whole" / "metrics.json").read_bytes()
    assert (tmp_path / "cut" / "metrics.json").read_bytes() == whole


class _Rank0Group:
    """A stand-in for a torchrun process group (rank 0 of 2): records what it hands the other rank."""

    rank, world_size, closed = 0, 2, False

    def __init__(self):
        self.shared = []

    def share(self, value):
        self.shared.append(value)
        return value

    def close(self):
        self.closed = True


def test_rank_0_hands_the_other_processes_its_error_before_anything_is_written(course_dir, tmp_path,
                                                                               monkeypatch, capsys):
    import doodlelab.runs.train_command as runs
    from doodlelab.training.registry import Placement

    group = _Rank0Group()
    monkeypatch.setattr(runs, "place", lambda backend, device: Placement(group=group))
    out = tmp_path / "run"
    assert main(["train", "classifier", "--backend", "torch", "--data", str(course_dir),
                 "--out", str(out), "--resume"]) == 2
    assert "no interrupted run to resume" in capsys.readouterr().err
    [(error, checkpoint)] = group.shared  # the others raise the same one line
    assert "no interrupted run to resume" in error and checkpoint is None
    assert group.closed and [p.name for p in tmp_path.iterdir()] == [course_dir.name]  # no run, no partial
