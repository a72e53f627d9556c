"""`--device` for the torch backend: cpu here; cuda and mps where the machine has them."""

from __future__ import annotations

import json

import pytest

from tests.conftest import need_module

torch = need_module("torch", "torch")

from doodlelab.cli.commands import main
from tests.conftest import make_course_folder


def _mps() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


AVAILABLE = {"cpu": True, "auto": True, "cuda": torch.cuda.is_available(), "mps": _mps()}


def test_auto_prefers_cuda_then_mps_then_cpu():
    from doodlelab.twin.device import resolve_device

    expected = "cuda" if AVAILABLE["cuda"] else "mps" if AVAILABLE["mps"] else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize("device", ["cpu", "cuda", "mps"])
def test_torch_trains_on_the_device(tmp_path, device):
    if not AVAILABLE[device]:
        pytest.skip(f"no {device} device on this machine")
    data = make_course_folder(tmp_path / "course")
    assert main(["train", "classifier", "--backend", "torch", "--device", device, "--data", str(data),
                 "--out", str(tmp_path / "run"), "--set", "train.epochs=2",
                 "--set", "model.hidden=[16]"]) == 0
    env = json.loads((tmp_path / "run" / "env.json").read_text())
    assert env["device"] == {"cpu": "cpu", "cuda": "cuda:0", "mps": "mps"}[device]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.5  # five classes: it learned on that device


@pytest.mark.parametrize("args,message", [
    (["--backend", "numpy", "--device", "cuda"], "is for the torch backend"),
    *([(["--backend", "torch", "--device", "cuda"], "sees no CUDA GPU")] if not AVAILABLE["cuda"] else []),
])
def test_a_device_that_cannot_be_had_is_one_line(tmp_path, capsys, args, message):
    data = make_course_folder(tmp_path / "course")
    assert main(["train", "classifier", *args, "--data", str(data), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "run").exists()
