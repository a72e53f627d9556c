"""Several processes, one model: `torchrun --nproc_per_node=2 -m doodlelab train ... --backend torch`.

Two CPU processes (gloo) sharing each global batch must give the one-process loss curve:
every process draws the whole batch's dropout masks and distortions and keeps its slice,
and DistributedDataParallel averages share-weighted gradients.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import missing, need_module

torch = need_module("torch", "torch")
if not torch.distributed.is_available():
    missing("torch", "this PyTorch build has no torch.distributed")

from doodlelab.cli.commands import main
from doodlelab.config import AugmentConfig
from doodlelab.data.augment import random_affine
from doodlelab.data.batches import shard_rows
from doodlelab.files.atomic import read_csv
from doodlelab.twin.modules import Dropout
from tests.conftest import make_course_folder


def test_shares_of_a_batch_cover_it_once_and_differ_by_at_most_one():
    for n in (0, 1, 37, 64):
        shares = [shard_rows(n, r, 3) for r in range(3)]
        assert shares[0].start == 0 and shares[-1].stop == n
        assert all(a.stop == b.start for a, b in zip(shares, shares[1:]))
        assert max(s.stop - s.start for s in shares) - min(s.stop - s.start for s in shares) <= 1


def test_a_share_gets_its_slice_of_the_whole_batch_randomness():
    x = np.random.default_rng(0).random((37, 784)).astype(np.float32)
    rows = shard_rows(37, 1, 2)
    whole = random_affine(x, AugmentConfig(), np.random.default_rng(5))
    part = random_affine(x[rows], AugmentConfig(), np.random.default_rng(5), batch_rows=(37, rows))
    assert np.array_equal(part, whole[rows])
    drop = Dropout(0.5, rng=np.random.default_rng(9)).train()
    full = drop(torch.ones(37, 8)).numpy()
    drop.rng, drop.shard = np.random.default_rng(9), (37, rows)
    assert np.array_equal(drop(torch.ones(rows.stop - rows.start, 8)).numpy(), full[rows])


EPOCHS = 6
# Dropout and weight decay keep the losses away from zero on this easy folder, so that a relative
# comparison of one process with two measures rounding, not the last digits of a loss near 0.
ARGS = ["train", "classifier", "--backend", "torch", "--set", f"train.epochs={EPOCHS}",
        "--set", "train.seed=4", "--set", "model.dropout=0.1", "--set", "optim.weight_decay=0.0001"]


@dataclass
class Launch:
    """What a finished torchrun left: its exit status and output, and every rank's whole stderr."""

    returncode: int
    stdout: str  # the ranks' stdout (inherited from torchrun)
    stderr: str  # torchrun's own messages
    ranks: list[str]  # rank r's whole stderr, from torchrun's per-rank log file

    def __str__(self) -> str:
        """Everything, for an assertion message: a failing rank's own last words are never cut."""
        parts = [f"torchrun exited {self.returncode}; its stderr:\n{self.stderr}"]
        parts += [f"---- rank {r} stderr ----\n{text}" for r, text in enumerate(self.ranks)]
        return "\n".join(parts)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2])}


def _launcher(logs: Path) -> list[str]:
    """Return the torchrun command up to the module, every rank's stderr kept in a file under ``logs``."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "--log-dir", str(logs), "--redirects", "2", "-m", "doodlelab"]


def _launch(args: list[str], cwd: Path) -> Launch:
    """Run ``torchrun --nproc_per_node=2 -m doodlelab *args`` in ``cwd``; return what it left."""
    logs = cwd / f"torchrun-logs-{time.monotonic_ns()}"
    done = subprocess.run([*_launcher(logs), *args], env=_env(), capture_output=True, text=True,
                          timeout=600, cwd=cwd)
    ranks = []
    for rank in (0, 1):
        files = sorted(logs.glob(f"*/attempt_*/{rank}/stderr.log"))
        ranks.append("\n".join(f.read_text(errors="replace") for f in files) if files else "(no log file)")
    return Launch(done.returncode, done.stdout, done.stderr, ranks)


def _torchrun(data: Path, out: Path, *extra: str, wait: bool = True):
    """Run (or with ``wait=False`` start) ``torchrun --nproc_per_node=2 -m doodlelab`` into ``out``."""
    args = [*ARGS, "--data", str(data), "--out", str(out), *extra]
    if not wait:
        return subprocess.Popen([*_launcher(out.parent / "torchrun-logs"), *args], env=_env(), cwd=out.parent,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _launch(args, out.parent)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A course folder, a whole 2-process run of it and the same run in one process."""
    root = tmp_path_factory.mktemp("distributed")
    data = make_course_folder(root / "course", n_train=2010, n_test=60)  # 1809 train: last batch 17
    done = _torchrun(data, root / "two")
    assert done.returncode == 0, str(done)
    assert done.stdout.count("classifier (torch) ->") == 1  # rank 0 alone reports
    assert main([*ARGS, "--data", str(data), "--out", str(root / "one")]) == 0
    return data, root / "two", root / "one"


def _children(pid: int) -> list[int]:
    """Return the pids whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    """Return whether ``pid`` exists and has not ended (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _losses(run: Path) -> list[dict[str, str]]:
    return read_csv(run / "history.csv")


@pytest.mark.slow
def test_two_processes_give_the_one_process_losses_and_the_same_folder(runs):
    _, two, one = runs
    assert len(_losses(two)) == len(_losses(one)) == EPOCHS
    for a, b in zip(_losses(two), _losses(one)):
        for col in ("train_loss", "val_loss", "batch_loss"):
            assert abs(float(a[col]) - float(b[col])) <= 1e-4 * abs(float(b[col])), (col, a, b)
    files = sorted(p.relative_to(one) for p in one.rglob("*"))
    assert sorted(p.relative_to(two) for p in two.rglob("*")) == files
    for name in ("config.json", "split.npz"):
        assert (two / name).read_bytes() == (one / name).read_bytes()
    meta = json.loads((two / "env.json").read_text())
    assert meta["world_size"] == 2 and meta["distributed"]["backend"] == "gloo"
    assert json.loads((one / "env.json").read_text())["world_size"] == 1


@pytest.mark.slow
def test_two_processes_killed_mid_run_resume_from_rank_0s_checkpoint(runs, tmp_path):
    data, whole, _ = runs
    cut = tmp_path / "cut"
    proc = _torchrun(data, cut, wait=False)
    partial = tmp_path / ".cut.partial"
    deadline, workers = time.monotonic() + 600, []
    while proc.poll() is None and time.monotonic() < deadline:
        if (partial / "checkpoint.npz").is_file() and len(read_csv(partial / "history.csv")) >= 2:
            workers = _children(proc.pid)  # torchrun starts each worker in a session of its own
            for pid in [proc.pid, *workers]:  # torchrun and both workers, with no warning
                os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not cut.exists() and (partial / "checkpoint.npz").is_file()
    done = _torchrun(data, cut, "--resume")
    assert done.returncode == 0, str(done)
    resumed = _losses(cut)
    assert [row["epoch"] for row in resumed] == [str(e) for e in range(1, EPOCHS + 1)]
    for a, b in zip(resumed, _losses(whole)):  # the same run as the one never stopped
        for col in ("train_loss", "val_loss", "batch_loss", "val_accuracy"):
            assert abs(float(a[col]) - float(b[col])) <= 1e-5 * abs(float(b[col])), (col, a, b)
    assert json.loads((cut / "env.json").read_text())["world_size"] == 2
    assert main(["evaluate", str(cut), "--data", str(data)]) == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_a_lost_peer_keeps_the_last_epoch_and_says_how_to_resume(runs, tmp_path):
    """Rank 1 killed with no launcher to stop rank 0: rank 0's next collective fails, its epoch is kept."""
    data, whole, _ = runs
    port, cut = _free_port(), tmp_path / "cut"
    procs = []
    for rank in (0, 1):  # what torchrun would set, without torchrun watching over them
        env = {**_env(), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
               "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}
        procs.append(subprocess.Popen([sys.executable, "-m", "doodlelab", *ARGS, "--data", str(data),
                                       "--out", str(cut)], env=env, cwd=tmp_path,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    partial, deadline = tmp_path / ".cut.partial", time.monotonic() + 600
    while procs[1].poll() is None and time.monotonic() < deadline:
        if (partial / "checkpoint.npz").is_file() and len(read_csv(partial / "history.csv")) >= 2:
            procs[1].kill()
            break
        time.sleep(0.002)
    assert procs[1].wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    _, err = procs[0].communicate(timeout=120)
    assert procs[0].returncode == 130, err
    assert "another process of this run stopped" in err and "Traceback" not in err
    assert "torchrun --nproc_per_node=2 -m doodlelab train classifier" in err and "--resume" in err
    assert json.loads((partial / "run.json").read_text())["status"] == "interrupted"
    done = _torchrun(data, cut, "--resume")
    assert done.returncode == 0, str(done)
    for a, b in zip(_losses(cut), _losses(whole)):
        for col in ("train_loss", "val_loss", "batch_loss"):
            assert abs(float(a[col]) - float(b[col])) <= 1e-5 * abs(float(b[col])), (col, a, b)


@pytest.mark.slow
def test_a_resume_with_nothing_to_resume_stops_every_process_with_one_line(runs, tmp_path):
    data, _, _ = runs
    done = _torchrun(data, tmp_path / "never", "--resume")
    assert done.returncode != 0, str(done)
    for rank in done.ranks:  # every process stops with the one line, and no traceback
        assert rank.count("doodlelab: error:") == 1 and "no interrupted run to resume" in rank, str(done)
        assert "Traceback" not in rank, str(done)
    assert not (tmp_path / "never").exists() and not (tmp_path / ".never.partial").exists()


@pytest.mark.slow
def test_the_two_tower_model_trains_in_two_processes_as_in_one(tmp_path):
    """The triplet objective (sampled negatives), dropout, and a last batch of one row (an empty share)."""
    data = make_course_folder(tmp_path / "course", n_train=610, n_test=60)  # 549 train rows
    rng = np.random.default_rng(0)
    glove = tmp_path / "glove.6d.txt"
    glove.write_text("".join(f"{w} " + " ".join(f"{v:.5f}" for v in rng.normal(size=6)) + "\n"
                             for w in ("rabbit", "yoga", "hand", "snowman", "motorbike")))
    args = ["train", "two_tower", "--backend", "torch", "--data", str(data),
            "--set", "train.epochs=2", "--set", "train.batch_size=137",  # 549 = 4 x 137 + 1
            "--set", "two_tower.loss=triplet", "--set", "two_tower.align_weight=0.5",
            "--set", "model.dropout=0.3", "--set", f"two_tower.word_vectors={json.dumps(str(glove))}"]
    done = _launch([*args, "--out", str(tmp_path / "two")], tmp_path)
    assert done.returncode == 0, str(done)
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    two, one = _losses(tmp_path / "two"), _losses(tmp_path / "one")
    assert len(two) == len(one) == 2
    for a, b in zip(two, one):
        for col in ("train_loss", "val_loss", "batch_loss", "term_triplet", "term_align"):
            assert abs(float(a[col]) - float(b[col])) <= 1e-4 * abs(float(b[col])), (col, a, b)
    assert json.loads((tmp_path / "two" / "env.json").read_text())["world_size"] == 2
