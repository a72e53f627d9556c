"""End-to-end on the real Quick, Draw! folder named by $DOODLELAB_DATA (skipped without it).

These are the issue's acceptance checks, run the way a user runs them: the default
configuration through the CLI, numpy and torch, on the real data.
"""

from __future__ import annotations

import json

import pytest

from doodlelab.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_runs(tmp_path_factory, real_data_dir) -> dict[str, dict]:
    """Train the default classifier with both backends once; return their metrics."""
    real = real_data_dir
    base = tmp_path_factory.mktemp("real")
    out = {}
    for backend in ("numpy", "torch"):
        if backend == "torch":
            pytest.importorskip("torch")
        run = base / backend
        assert main(["train", "classifier", "--backend", backend, "--data", str(real),
                     "--out", str(run)]) == 0
        out[backend] = {"dir": run, "metrics": json.loads((run / "metrics.json").read_text())}
    return out


def test_default_numpy_classifier_reaches_088(default_runs):
    assert default_runs["numpy"]["metrics"]["accuracy"] >= 0.88


def test_torch_twin_reaches_087_within_1_5_points_of_numpy(default_runs):
    a = default_runs["numpy"]["metrics"]["accuracy"]
    b = default_runs["torch"]["metrics"]["accuracy"]
    assert b >= 0.87
    assert abs(a - b) <= 0.015


def test_backends_train_the_same_split(default_runs):
    a = (default_runs["numpy"]["dir"] / "split.npz").read_bytes()
    b = (default_runs["torch"]["dir"] / "split.npz").read_bytes()
    assert a == b


def test_same_seed_same_metrics_on_real_data(real_data_dir, tmp_path):
    short = ["--set", "train.epochs=3"]
    for name in ("a", "b"):
        assert main(["train", "classifier", "--data", str(real_data_dir),
                     "--out", str(tmp_path / name), *short]) == 0
    assert (tmp_path / "a" / "metrics.json").read_bytes() == \
        (tmp_path / "b" / "metrics.json").read_bytes()
