"""Several processes, one model: `torchrun --nproc_per_node=2 -m doodlelab train ... --backend torch`.

Two CPU processes (gloo) sharing each global batch must give the one-process loss curve:
every process draws the whole batch's dropout masks and distortions and keeps its slice,
and DistributedDataParallel averages share-weighted gradients.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("this PyTorch build has no torch.distributed", allow_module_level=True)

from doodlelab.cli import main
from doodlelab.config import AugmentConfig
from doodlelab.data.augment import random_affine
from doodlelab.data.batches import shard_rows
from doodlelab.fileio import read_csv
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


def test_two_processes_give_the_one_process_losses_and_the_same_folder(tmp_path):
    data = make_course_folder(tmp_path / "course", n_train=610, n_test=60)  # 549 train: last batch 37
    args = ["train", "classifier", "--backend", "torch", "--data", str(data),
            "--set", "train.epochs=2", "--set", "train.seed=4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "doodlelab", *args, "--out", str(tmp_path / "two")],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("classifier (torch) ->") == 1  # rank 0 alone reports
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    two, one = read_csv(tmp_path / "two" / "history.csv"), read_csv(tmp_path / "one" / "history.csv")
    assert len(two) == len(one) == 2
    for a, b in zip(two, one):
        for col in ("train_loss", "val_loss", "batch_loss"):
            assert abs(float(a[col]) - float(b[col])) <= 1e-4 * abs(float(b[col])), (col, a, b)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*"))
    assert sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*")) == files
    for name in ("config.json", "split.npz"):
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()
    meta = json.loads((tmp_path / "two" / "env.json").read_text())
    assert meta["world_size"] == 2 and meta["distributed"]["backend"] == "gloo"
    assert json.loads((tmp_path / "one" / "env.json").read_text())["world_size"] == 1
