"""No data folder: `run` and `train` fetch the course's five classes from the (local, fake) bucket."""

from __future__ import annotations

import json

import numpy as np
import pytest

from doodlelab.cli.commands import main
from doodlelab.data.course import CLASSES
from doodlelab.data.official import autofetch
from tests.conftest import write_tiny_glove
from tests.quickdraw_server import VirtualClass, row_ids


@pytest.fixture
def fresh_machine(server, tmp_path, monkeypatch):
    """No data folder anywhere, an empty user cache, and the base URL pointing at the local server."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DOODLELAB_DATA", raising=False)
    monkeypatch.delenv(autofetch.OFFLINE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DOODLELAB_QUICKDRAW_URL", server.url)
    server.files.update({name: VirtualClass(30_000 + k, k) for k, name in enumerate(CLASSES)})
    return server


@pytest.mark.slow  # trains on the 20,000 fetched images
def test_train_without_a_data_folder_fetches_the_course_sizes_and_trains(fresh_machine, tmp_path, capsys):
    assert main(["train", "classifier", "--out", "run", "--set", "train.epochs=1",
                 "--set", "model.hidden=[8]"]) == 0
    folder = tmp_path / "cache" / "doodlelab" / "quickdraw_subset_np"
    assert "fetching the course's 5 classes" in capsys.readouterr().err
    for split, per_class in (("train", 4000), ("test", 1000)):
        labels = np.load(folder / f"{split}_labels.npy")
        assert np.bincount(labels).tolist() == [per_class] * 5
        images = np.load(folder / f"{split}_images.npy")
        assert (images[:, 0, 0] == labels).all()  # each image is a drawing of its class
        assert len(set(zip(labels.tolist(), row_ids(images).tolist()))) == labels.size  # all distinct
    env = json.loads((tmp_path / "run" / "env.json").read_text())
    assert env["data_dir"] == str(folder.resolve())
    asked = len(fresh_machine.requests)
    assert main(["train", "classifier", "--out", "run2", "--set", "train.epochs=1",
                 "--set", "model.hidden=[8]"]) == 0
    assert len(fresh_machine.requests) == asked  # the fetched folder is found next time


@pytest.mark.parametrize("how", ["flag", "env"])
def test_offline_keeps_the_one_line_error(fresh_machine, monkeypatch, capsys, how):
    args = ["run", "--quick"] + (["--offline"] if how == "flag" else [])
    if how == "env":
        monkeypatch.setenv(autofetch.OFFLINE_ENV, "1")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no data folder given" in err
    assert fresh_machine.requests == []


@pytest.mark.slow  # the whole pipeline and its report
def test_run_quick_without_a_data_folder_fetches_and_finishes(fresh_machine, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(autofetch, "COURSE_TRAIN", 60)  # the flow, not the size (tested above)
    monkeypatch.setattr(autofetch, "COURSE_TEST", 20)
    glove = write_tiny_glove(tmp_path / "glove.tiny.6d.txt")  # the word vectors are not what is tested here
    words = f"two_tower.word_vectors={json.dumps(str(glove))}"
    assert main(["run", "--quick", "--out", "results", "--set", words]) == 0
    folder = tmp_path / "cache" / "doodlelab" / "quickdraw_subset_np"
    assert np.bincount(np.load(folder / "train_labels.npy")).tolist() == [60] * 5
    assert (tmp_path / "results" / "report" / "report.html").is_file()
    manifest = json.loads((tmp_path / "results" / "pipeline.json").read_text())
    assert manifest["data_dir"] == str(folder.resolve())
