"""Shared fixtures: tiny course folders built in code, and the real data when available."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import Phase, settings

from tests.quickdraw_server import start_server, stop_server

# Timing deadlines make property tests flaky on a loaded 2-core machine; correctness
# is what they check, speed lives in benchmarks/.
settings.register_profile("doodlelab", deadline=None)
# Under mutation testing (mutmut sets MUTANT_UNDER_TEST; docs/testing.md) every property
# test runs a few examples: a mutant is judged by hundreds of short test runs on 2 cores.
# No shrinking there either: a failing example fails the mutant at once.
settings.register_profile("mutation", deadline=None, max_examples=4, database=None,
                          phases=[Phase.explicit, Phase.generate])
settings.load_profile("mutation" if "MUTANT_UNDER_TEST" in os.environ else "doodlelab")


def examples(n: int) -> int:
    """Return ``n`` hypothesis examples, capped by the active profile (4 under mutmut)."""
    return min(n, settings().max_examples)

REAL_DATA_ENV = "DOODLELAB_DATA"
FIVE_CLASSES = ("rabbit", "yoga", "hand", "snowman", "motorbike")  # the course's order, written out


def write_tiny_glove(path: Path, words: tuple[str, ...] = FIVE_CLASSES, dim: int = 6, seed: int = 0,
                     digits: int = 5) -> Path:
    """Write a GloVe text file of ``words`` with seeded random ``dim``-d vectors; return its path."""
    rng = np.random.default_rng(seed)
    path.write_text("".join(f"{w} " + " ".join(f"{v:.{digits}f}" for v in rng.normal(size=dim)) + "\n"
                            for w in words))
    return path


def make_k_class_folder(path: Path, names: list[str], n_train: int = 70, n_test: int = 28) -> Path:
    """Write a learnable folder of len(names) classes (a band per class) with its classes.json."""
    rng = np.random.default_rng(0)
    path.mkdir(parents=True)
    k = len(names)
    for split, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n) % k
        x = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(y):
            x[i, 2 + 3 * c : 5 + 3 * c, 4:24] = 255
        np.save(path / f"{split}_images.npy", x)
        np.save(path / f"{split}_labels.npy", y.astype(np.int64))
    (path / "classes.json").write_text(json.dumps({"classes": names}))
    return path


def make_course_folder(
    path: Path, n_train: int = 60, n_test: int = 25, seed: int = 0, flat: bool = False
) -> Path:
    """Write a learnable synthetic course folder: each class lights up its own band."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n) % 5
        rng.shuffle(y)
        x = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(y):
            x[i, 4 + 4 * c : 8 + 4 * c, 6:22] = 255  # class-specific horizontal band
        if flat:
            x = x.reshape(n, 784)
        np.save(path / f"{split}_images.npy", x)
        np.save(path / f"{split}_labels.npy", y.astype(np.int64))
    return path


@pytest.fixture
def course_dir(tmp_path: Path) -> Path:
    """A small synthetic folder in the course layout."""
    return make_course_folder(tmp_path / "course")


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real Quick, Draw! folder named by $DOODLELAB_DATA; skip when it is not set."""
    value = os.environ.get(REAL_DATA_ENV)
    if not value or not Path(value).is_dir():
        pytest.skip(f"${REAL_DATA_ENV} does not name the real data folder")
    return Path(value)


SHARED_DATA_ENV = "DOODLELAB_SHARED_DATA"


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The shared data folder (strokes/, fixtures/) named by $DOODLELAB_SHARED_DATA; skip without it."""
    value = os.environ.get(SHARED_DATA_ENV)
    if not value or not Path(value).is_dir():
        pytest.skip(f"${SHARED_DATA_ENV} does not name the shared data folder")
    return Path(value)


def skip_without_cairo() -> None:
    """Skip the calling test module where cairo (cairocffi + the system's libcairo2) is missing."""
    try:
        import cairocffi  # noqa: F401
    except (ImportError, OSError) as exc:  # OSError: the wrapper is there, libcairo2 is not
        pytest.skip(f"cairo is not available: {exc}", allow_module_level=True)


@pytest.fixture
def local_only(monkeypatch):
    """No proxy and no base-URL override from the environment: requests go straight to 127.0.0.1."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                "DOODLELAB_QUICKDRAW_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")


@pytest.fixture
def server(local_only):
    """A threaded fake of the official bucket on 127.0.0.1 (ephemeral port)."""
    state, httpd, thread = start_server()
    yield state
    stop_server(httpd, thread)
