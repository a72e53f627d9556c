"""Fixtures of the demo tests: tiny runs trained in code, and the app served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import make_course_folder, need_cairo, need_module, write_tiny_glove

need_cairo()
need_module("demo", "fastapi")
need_module("demo", "uvicorn")

from doodlelab.cli.commands import main
from doodlelab.demo.models import LoadedModel, load_models
from doodlelab.demo.serve import bind, make_server, url_of

HAS_TORCH = importlib.util.find_spec("torch") is not None
TINY = ["--set", "train.epochs=2", "--set", "model.hidden=[16]", "--set", "train.batch_size=16"]


@pytest.fixture(scope="session")
def run_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Tiny finished runs: numpy classifier, numpy two-tower (no TTA), their torch twins if available."""
    root = tmp_path_factory.mktemp("demo")
    course = make_course_folder(root / "course")
    glove = write_tiny_glove(root / "glove.tiny.6d.txt")
    two_tower = ["--set", "two_tower.embed_dim=8", "--set", "two_tower.text_hidden=[8]",
                 "--set", f"two_tower.word_vectors={json.dumps(str(glove))}", "--set", "eval.tta=false"]
    plan = [("np", "classifier", "numpy", []), ("tt", "two_tower", "numpy", two_tower)]
    if HAS_TORCH:
        plan += [("pt", "classifier", "torch", []), ("ptt", "two_tower", "torch", two_tower)]
    for name, task, backend, extra in plan:
        assert main(["train", task, "--backend", backend, "--data", str(course),
                     "--out", str(root / name), *TINY, *extra]) == 0
    return [root / name for name, *_ in plan]


@pytest.fixture(scope="session")
def models(run_dirs: list[Path]) -> list[LoadedModel]:
    """The tiny runs loaded as the demo loads them."""
    return load_models(run_dirs)


@contextmanager
def serving(app: object) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 and a free port in a thread; yield its URL."""
    sock = bind("127.0.0.1", 0)
    server = make_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
